"""Files in a conversation: fetched and prepared once, kept by reference, re-attached to every later request.

History holds MediaBlock references, never bytes; the processed bytes live once per file in the media store with
the conversations' time-to-live. Each request carries the newest media that fit the per-thread count and the
request's byte budget; older ones are replaced by a short text placeholder and the user is told.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from bot.core.conversation import Block, IncomingMessage, MediaBlock, TextBlock, Turn
from bot.core.errors import MediaRefused
from bot.core.ports import Attachment, FileSource, MediaPreparer, MediaStore

log = logging.getLogger(__name__)

# The Messages API caps a request at 32 MB; base64 media plus the rest of the request must fit under it.
MAX_REQUEST_MEDIA_B64_CHARS = 24 * 1024 * 1024
# What Claude is asked when someone shares files without writing anything.
DEFAULT_FILE_PROMPT = (
    "(No message came with the attached file(s). Describe what they show and give a constructive critique: "
    "what works, what could be clearer or better, and concrete suggestions.)"
)


@dataclass(frozen=True, slots=True)
class ResolvedHistory:
    turns: tuple[Turn, ...]
    attachments: dict[str, Attachment]
    dropped: int


class Attachments:
    """Turns a message's files into MediaBlocks, and a thread's MediaBlocks back into sendable attachments."""

    def __init__(
        self,
        files: FileSource,
        preparer: MediaPreparer,
        store: MediaStore,
        *,
        max_media_per_request: int = 20,
        max_request_b64_chars: int = MAX_REQUEST_MEDIA_B64_CHARS,
    ) -> None:
        self._files = files
        self._preparer = preparer
        self._store = store
        self._max_media = max_media_per_request
        self._max_chars = max_request_b64_chars

    async def ingest(self, message: IncomingMessage) -> tuple[list[MediaBlock], list[str]]:
        """Fetch and prepare each file once (reusing a stored copy); a file that cannot be used becomes a notice."""
        workspace = message.key.workspace_id
        stored = await self._store.get_media(workspace, [f.id for f in message.files]) if message.files else {}
        blocks: list[MediaBlock] = []
        notices: list[str] = []
        for file in message.files:
            attachment = stored.get(file.id)
            if attachment is None:
                try:
                    data = await self._files.fetch(workspace, file)
                    # Decoding and resizing is CPU work: keep the event loop (every other answer) responsive.
                    prepared, note = await asyncio.to_thread(self._preparer.prepare, data, file.name)
                except MediaRefused as refused:
                    notices.append(f"“{file.name}”: {refused.user_message}")
                    continue
                await self._store.put_media(workspace, file.id, prepared)
                if note:
                    notices.append(f"“{file.name}”: {note}")
                attachment = prepared
            blocks.append(
                MediaBlock(ref=file.id, kind=attachment.kind, media_type=attachment.media_type, name=file.name)
            )
        return blocks, notices

    async def resolve(self, workspace_id: str, history: Sequence[Turn]) -> ResolvedHistory:
        """Attach the newest media within the limits; replace the rest (and expired ones) with placeholders."""
        media = [block for turn in history for block in turn.blocks if isinstance(block, MediaBlock)]
        if not media:
            return ResolvedHistory(tuple(history), {}, 0)
        available = await self._store.get_media(workspace_id, list(dict.fromkeys(b.ref for b in media)))
        kept: dict[str, Attachment] = {}
        budget = self._max_chars
        for block in reversed(media):  # newest first
            attachment = available.get(block.ref)
            if attachment is None or block.ref in kept:
                continue
            if len(kept) >= self._max_media or len(attachment.data_b64) > budget:
                break
            kept[block.ref] = attachment
            budget -= len(attachment.data_b64)
        dropped = len({b.ref for b in media if b.ref in available} - kept.keys())
        turns = tuple(_with_placeholders(turn, kept, available) for turn in history)
        return ResolvedHistory(turns, kept, dropped)


def _with_placeholders(turn: Turn, kept: dict[str, Attachment], available: dict[str, Attachment]) -> Turn:
    if not any(isinstance(b, MediaBlock) and b.ref not in kept for b in turn.blocks):
        return turn
    blocks: list[Block] = []
    for block in turn.blocks:
        if isinstance(block, MediaBlock) and block.ref not in kept:
            why = "left out to stay within limits" if block.ref in available else "no longer available"
            blocks.append(TextBlock(text=f"[{block.kind} “{block.name or block.ref}” {why}]"))
        else:
            blocks.append(block)
    return Turn(role=turn.role, blocks=tuple(blocks), author_id=turn.author_id)
