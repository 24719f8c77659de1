"""Domain errors: adapters translate SDK and driver failures into these, and the UI shows `user_message`."""

from __future__ import annotations


class BotError(Exception):
    """Base: carries a short, plain sentence that is safe to show a user (never a secret, never a traceback)."""

    def __init__(self, user_message: str, *, request_id: str | None = None) -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.request_id = request_id

    def notice(self) -> str:
        suffix = f" (request id `{self.request_id}`)" if self.request_id else ""
        return f"{self.user_message}{suffix}"


class ModelUnavailable(BotError):
    """Claude could not produce an answer even after retries."""


class StorageUnavailable(BotError):
    """The conversation store (Redis) did not answer."""

    def __init__(self, user_message: str = "My memory store (Redis) is unreachable right now.") -> None:
        super().__init__(user_message)


class MediaRefused(BotError):
    """A file that cannot be shown to Claude (unsupported type, too large, not downloadable)."""
