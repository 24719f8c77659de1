"""The "save" and "lock" steps of an answer: turns reach history in conversation order, whatever fails.

An answer holds its thread's lease (bot/core/leases.py) from the question to its last save. A save that fails is
retried while the lease is still held, never in the background after the thread is released: the next question, in
this process or another, waits for the thread, so it is stored after the answer and Claude sees the answer. If the
lease is lost meanwhile (another holder took the thread), the save is refused and the user told; if storage stays
away too long, the user is told the answer was not saved and the thread's next holder closes the exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging

from bot.core.conversation import ConversationKey, Fold, MeasuredSize, StoredConversation, Turn
from bot.core.errors import StorageUnavailable
from bot.core.leases import AnswerNotSaved, Lease, LeaseLost, abandoned, closing_turns
from bot.core.ports import ConversationStore

log = logging.getLogger(__name__)
SAVE_RETRY_S = (0.1, 0.2, 0.5)  # waits between attempts to save while storage is unreachable (then the last, again)


class HistoryWriter:
    """Writes an answer's turns (and new folds) to its conversation; the pipeline's only writer of history."""

    def __init__(self, conversations: ConversationStore, *, save_wait_s: float = 30.0) -> None:
        self._conversations = conversations
        self._save_wait_s = save_wait_s

    async def take_over(self, key: ConversationKey, lease: Lease, stored: StoredConversation) -> StoredConversation:
        """Close an exchange left open by a holder that died or lost the thread, before anything else is stored."""
        found = stored.open
        if found is None or not abandoned(found, lease):
            return stored
        closing = closing_turns(stored.turns, found)
        log.warning(
            "closing an answer interrupted in %s/%s (%d turns added)", key.channel_id, key.thread_id, len(closing)
        )
        await self._conversations.append(key, *closing, lease=lease, exchange="close")
        return dataclasses.replace(stored, turns=[*stored.turns, *closing], open=None)

    async def save_fold(self, key: ConversationKey, fold: Fold, lease: Lease) -> None:
        """A fold that cannot be stored is made again next time; the answer goes on either way."""
        try:
            await self._conversations.save_fold(key, fold, lease=lease)
        except StorageUnavailable:
            log.warning("could not store a thread's new summary; it will be made again")

    async def save(
        self,
        key: ConversationKey,
        *turns: Turn,
        lease: Lease,
        measured: MeasuredSize | None = None,
        close: bool = False,
    ) -> None:
        """Save the turns, retrying while the lease holds. The answer's last save (`close`) closes the exchange and
        gives the thread up in the same write, so the next question need not wait for a separate release.

        Raises LeaseLost when another holder has the thread, AnswerNotSaved when storage stays away too long.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._save_wait_s
        attempt = 0
        while True:
            lease.check()
            try:
                await self._conversations.append(
                    key, *turns, measured=measured, lease=lease, exchange="finish" if close else None
                )
                return
            except StorageUnavailable:
                if loop.time() >= deadline:
                    log.error("gave up saving %d turns to %s: storage stayed unreachable", len(turns), key.thread_id)
                    raise AnswerNotSaved() from None
                if attempt == 0:
                    log.warning("storage unavailable while saving an answer; retrying while holding the thread")
                await asyncio.sleep(SAVE_RETRY_S[min(attempt, len(SAVE_RETRY_S) - 1)])
                attempt += 1

    async def close_after_failure(self, key: ConversationKey, lease: Lease) -> None:
        """An answer that failed still leaves valid history: tool calls get error results and the exchange closes
        (the question stays, unanswered, as before). Best effort: the next holder closes it otherwise."""
        with contextlib.suppress(StorageUnavailable, LeaseLost):
            stored = await self._conversations.load(key)
            if stored.open is None or stored.open.token != lease.token:
                return
            closing = closing_turns(stored.turns, stored.open, interrupted=False)
            await self._conversations.append(key, *closing, lease=lease, exchange="close")

    async def drain(self, timeout_s: float | None = None) -> None:
        """Nothing to wait for: no save outlives its answer (kept for the shutdown sequence that calls it)."""
