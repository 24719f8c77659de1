"""Answering a message: the use case (`Replies`) and the steps of its pipeline."""

from bot.core.replies.use_case import Replies

__all__ = ["Replies"]
