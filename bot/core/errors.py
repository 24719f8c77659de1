"""Domain errors: adapters translate SDK and driver failures into these, and the UI shows `user_message`."""

from __future__ import annotations

from bot.core import texts
from bot.core.i18n import tr


class BotError(Exception):
    """Base: carries a short, plain sentence that is safe to show a user (never a secret, never a traceback)."""

    def __init__(self, user_message: str, *, request_id: str | None = None) -> None:
        super().__init__(user_message)
        self.user_message = user_message
        self.request_id = request_id

    def notice(self) -> str:
        if not self.request_id:
            return self.user_message
        return tr(texts.REQUEST_ID_SUFFIX, message=self.user_message, request_id=self.request_id)


class ModelUnavailable(BotError):
    """Claude could not produce an answer even after retries."""


class StorageUnavailable(BotError):
    """The conversation store (Redis) did not answer."""

    def __init__(self, user_message: str | None = None) -> None:
        """The default sentence is rendered when raised, in the language of the person being answered."""
        super().__init__(user_message if user_message is not None else tr(texts.STORAGE_UNAVAILABLE))


class MediaRefused(BotError):
    """A file that cannot be shown to Claude (unsupported type, too large, not downloadable)."""
