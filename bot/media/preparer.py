"""The core's MediaPreparer port over the Pillow-based preparation in images.py."""

from __future__ import annotations

import base64

from bot.core.errors import MediaRefused
from bot.core.ports import Attachment
from bot.media.images import UnsupportedFile, prepare_media


class PillowMediaPreparer:
    """Implements core.ports.MediaPreparer; Pillow's errors never reach the core."""

    def prepare(self, data: bytes, name: str) -> tuple[Attachment, str | None]:
        try:
            prepared = prepare_media(data, claimed_name=name)
        except UnsupportedFile as error:
            raise MediaRefused(error.user_message) from None
        attachment = Attachment(
            kind=prepared.kind, media_type=prepared.media_type, data_b64=base64.b64encode(prepared.data).decode()
        )
        return attachment, prepared.note
