"""The "save" step of an answer: turns reach history in conversation order, even across a Redis blip."""

from __future__ import annotations

import asyncio
import logging

from bot.core.conversation import ConversationKey, Fold, MeasuredSize, Turn
from bot.core.errors import StorageUnavailable
from bot.core.ports import ConversationStore

log = logging.getLogger(__name__)


class HistoryWriter:
    """Writes an answer's turns (and new folds) to its conversation; the pipeline's only writer of history."""

    def __init__(self, conversations: ConversationStore) -> None:
        self._conversations = conversations
        self._pending_saves: set[asyncio.Task[None]] = set()
        self._unsaved: dict[ConversationKey, list[Turn]] = {}

    async def save_fold(self, key: ConversationKey, fold: Fold) -> None:
        """A fold that cannot be stored is made again next time; the answer goes on either way."""
        try:
            await self._conversations.save_fold(key, fold)
        except StorageUnavailable:
            log.warning("could not store a thread's new summary; it will be made again")

    async def save_eventually(self, key: ConversationKey, turn: Turn, measured: MeasuredSize | None = None) -> None:
        """An answer the user has seen must reach history even if Redis blips: retry in the background, in order.

        One queue per conversation: a later turn never overtakes an earlier one still waiting to be saved (a tool
        result stored before its tool call would make the thread unusable).
        """
        queue = self._unsaved.get(key)
        if queue is not None:
            queue.append(turn)
            return
        try:
            await self._conversations.append(key, turn, measured=measured)
        except StorageUnavailable:
            log.warning("storage unavailable while saving an answer; retrying in the background")
            self._unsaved[key] = [turn]
            task = asyncio.create_task(self._flush_unsaved(key))
            self._pending_saves.add(task)
            task.add_done_callback(self._pending_saves.discard)

    async def _flush_unsaved(self, key: ConversationKey, attempts: int = 120) -> None:
        queue = self._unsaved[key]
        try:
            for attempt in range(attempts):
                try:
                    while queue:
                        await self._conversations.append(key, queue[0])
                        queue.pop(0)
                    return
                except StorageUnavailable:
                    await asyncio.sleep(min(0.25 * 2**attempt, 5.0))
            log.error("gave up saving %d turns to history after %d attempts", len(queue), attempts)
        finally:
            del self._unsaved[key]

    async def drain(self, timeout_s: float | None = None) -> None:
        """Let background saves finish on shutdown (within `timeout_s`: a Redis that stays away must not hang it)."""
        if not self._pending_saves:
            return
        _, unfinished = await asyncio.wait(set(self._pending_saves), timeout=timeout_s)
        if unfinished:
            waiting = sum(len(turns) for turns in self._unsaved.values())
            log.error("shutting down with %d turns not saved to history: storage stayed unreachable", waiting)
            for task in unfinished:
                task.cancel()
