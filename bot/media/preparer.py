"""The core's MediaPreparer port over the Pillow-based preparation in images.py."""

from __future__ import annotations

import base64
import threading

from bot.core.errors import MediaRefused
from bot.core.ports import Attachment
from bot.media.images import UnsupportedFile, prepare_media


class PillowMediaPreparer:
    """Implements core.ports.MediaPreparer; Pillow's errors never reach the core.

    Each decode may hold a few hundred MB at its peak (a 64 MP PNG): at most `decode_concurrency` run at once,
    whatever the number of messages with images arriving together; the others wait their turn.
    """

    def __init__(self, decode_concurrency: int = 2) -> None:
        self._slots = threading.BoundedSemaphore(decode_concurrency)

    def prepare(self, data: bytes, name: str) -> tuple[Attachment, str | None]:
        try:
            with self._slots:  # runs in a worker thread (asyncio.to_thread): a thread semaphore
                prepared = prepare_media(data, claimed_name=name)
        except UnsupportedFile as error:
            raise MediaRefused(error.user_message) from None
        attachment = Attachment(
            kind=prepared.kind,
            media_type=prepared.media_type,
            data_b64=base64.b64encode(prepared.data).decode(),
            width=prepared.width,
            height=prepared.height,
            pages=prepared.pages,
        )
        return attachment, prepared.note
