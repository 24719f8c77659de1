"""In-memory twins of the storage ports, for unit tests of the core that run in milliseconds.

They keep the Redis store's contract (the same storage test suite runs over both, as aiogram runs one suite over its
memory and Redis storages), but live in one process: a lock here does not reach another bot process, so production
always uses Redis. Time-to-live is honoured against an injectable monotonic clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from bot.core.conversation import ConversationKey, Fold, MeasuredSize, OpenExchange, StoredConversation, Turn
from bot.core.errors import StorageUnavailable
from bot.core.leases import Lease, LeaseLost
from bot.core.ports import Attachment, ExchangeMark
from bot.storage.expiring import Expiring as _Expiring
from bot.storage.keys import MAX_FOLDED_TURNS_KEPT
from bot.storage.memory_usage import MemoryUsageLedger as MemoryUsageLedger
from bot.storage.thread_window import absolute, load_start, trimmed_count

_THREAD_BUSY = "This thread is busy with another answer; please try again shortly."
_APPROVAL_POLL_S = 0.01


@dataclass
class _Conversation:
    turns: list[Turn] = field(default_factory=list)
    persona: str | None = None
    fold: Fold | None = None
    measured: MeasuredSize | None = None
    open: OpenExchange | None = None
    base: int = 0  # turns trimmed away after turn 0, as in Redis (bot/storage/thread_window.py)
    expires_at: float = math.inf


class MemoryStore:
    """Conversations, channel settings, profiles, media, approvals, event de-duplication and budgets in one process.

    The keyword arguments are the Redis store's, so a test builds either with the same settings.
    """

    def __init__(
        self,
        *,
        conversation_ttl_s: int,
        dm_idle_reset_s: int,
        dedup_ttl_s: int,
        profile_ttl_s: int = 3600,
        lock_wait_s: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
        folded_turns_kept: int = MAX_FOLDED_TURNS_KEPT,
    ) -> None:
        self._conversation_ttl_s = conversation_ttl_s
        self._folded_turns_kept = folded_turns_kept
        self._dm_idle_reset_s = dm_idle_reset_s
        self._dedup_ttl_s = dedup_ttl_s
        self._profile_ttl_s = profile_ttl_s
        self._lock_wait_s = lock_wait_s
        self._clock = clock
        self._conversations: dict[ConversationKey, _Conversation] = {}
        self._holders: dict[ConversationKey, Lease] = {}  # who holds each thread now
        self._fences: dict[ConversationKey, int] = {}  # the last token given out per thread
        self._released = asyncio.Event()  # set and replaced on every release, to wake waiting holders
        self._waiting: dict[ConversationKey, list[tuple[float, str]]] = {}  # each thread's waiters: (order, id)
        self._values = _Expiring(clock)  # DM sessions, deliveries, profiles, media, approvals
        self._channel_personas: dict[tuple[str, str], str] = {}
        self._budgets: dict[str, dict[str, float | None]] = {}
        self.up = True  # a test sets False to see how callers meet an outage

    def _check(self) -> None:
        if not self.up:
            raise StorageUnavailable()

    # --- ConversationStore ---------------------------------------------------------------------------
    def _live(self, key: ConversationKey) -> _Conversation | None:
        conversation = self._conversations.get(key)
        if conversation is not None and conversation.expires_at <= self._clock():
            del self._conversations[key]
            return None
        return conversation

    def _fence(self, key: ConversationKey, lease: Lease | None) -> None:
        """As in Redis: a write given a lease that is no longer the thread's latest is refused, and the lease lost."""
        self._check()
        if lease is not None and self._fences.get(key) != lease.token:
            lease.lose()
            raise LeaseLost()

    def _touched(self, key: ConversationKey) -> _Conversation:
        conversation = self._live(key) or self._conversations.setdefault(key, _Conversation())
        conversation.expires_at = self._clock() + self._conversation_ttl_s
        return conversation

    async def load(self, key: ConversationKey) -> StoredConversation:
        self._check()
        found = self._live(key) or _Conversation()
        start = load_start(found.fold.upto if found.fold else None, found.base, len(found.turns))
        turns = absolute(found.turns[:1], found.turns[start:], start + found.base)
        return StoredConversation(
            turns, persona=found.persona, fold=found.fold, measured=found.measured, open=found.open
        )

    async def append(
        self,
        key: ConversationKey,
        *turns: Turn,
        persona: str | None = None,
        measured: MeasuredSize | None = None,
        lease: Lease | None = None,
        exchange: ExchangeMark | None = None,
    ) -> None:
        if exchange == "finish" and lease is not None and lease.ended:
            return  # as in Redis: a finish applied once is not applied again
        self._fence(key, lease)
        if exchange in ("open", "finish") and lease is None:
            raise ValueError("an open exchange belongs to a lease")
        conversation = self._touched(key)
        conversation.turns.extend(turns)
        if persona is not None:
            conversation.persona = persona
        if measured is not None:
            conversation.measured = measured
        if exchange == "open" and lease is not None:
            question = len(conversation.turns) + conversation.base - len(turns)
            conversation.open = OpenExchange(token=lease.token, question_index=question)
        elif exchange in ("close", "finish"):
            conversation.open = None
        if exchange == "finish" and lease is not None:
            lease.end()
            if self._holders.get(key) is lease:
                self._release_thread(key)

    async def save_fold(self, key: ConversationKey, fold: Fold, *, lease: Lease | None = None) -> None:
        self._fence(key, lease)
        conversation = self._touched(key)
        conversation.fold = fold
        drop = trimmed_count(fold.upto, self._folded_turns_kept, conversation.base, len(conversation.turns))
        del conversation.turns[1 : drop + 1]
        conversation.base += drop

    async def folded(self, key: ConversationKey, upto: int) -> list[tuple[int, Turn]]:
        self._check()
        found = self._live(key) or _Conversation()
        return [(p + found.base, found.turns[p]) for p in range(1, min(upto - found.base, len(found.turns)))]

    async def forget(self, key: ConversationKey, *, lease: Lease | None = None) -> bool:
        self._fence(key, lease)
        return self._live(key) is not None and self._conversations.pop(key, None) is not None

    async def end_dm_session(self, workspace_id: str, channel_id: str) -> None:
        self._check()
        self._values.delete(("dm", workspace_id, channel_id))

    async def exists(self, key: ConversationKey) -> bool:
        self._check()
        found = self._live(key)
        return found is not None and bool(found.turns)

    async def dm_session(self, workspace_id: str, channel_id: str, candidate_id: str) -> str:
        self._check()
        name = ("dm", workspace_id, channel_id)
        current = self._values.get(name)
        session = str(current) if current is not None else candidate_id
        self._values.set(name, session, self._dm_idle_reset_s)
        return session

    async def rewind(
        self, key: ConversationKey, keep: int, *, lease: Lease | None = None, exchange: ExchangeMark | None = None
    ) -> None:
        self._fence(key, lease)
        found = self._live(key)
        if found is not None:
            del found.turns[max(1, keep - found.base) if keep > 0 else 0 :]
            found.base = found.base if found.turns else 0
            if exchange == "open" and lease is not None and keep > 0:
                found.open = OpenExchange(token=lease.token, question_index=keep - 1)

    @contextlib.asynccontextmanager
    async def lock(self, key: ConversationKey, *, order: float | None = None) -> AsyncIterator[Lease]:
        """One holder per thread within this process, waiters served in `order` (earliest first);
        StorageUnavailable(busy) after the wait, as in Redis."""
        self._check()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._lock_wait_s
        me = (time.time() if order is None else order, secrets.token_hex(4))
        waiting = self._waiting.setdefault(key, [])
        waiting.append(me)
        try:
            while key in self._holders or min(waiting) != me:
                released = self._released
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(released.wait(), max(0.0, deadline - loop.time()))
                if (key in self._holders or min(waiting) != me) and loop.time() >= deadline:
                    raise StorageUnavailable(_THREAD_BUSY)
        finally:
            waiting.remove(me)
            if not waiting:
                del self._waiting[key]
            self._released.set()  # the next waiter may be first now
            self._released = asyncio.Event()
        lease = Lease(self._fences.get(key, 0) + 1)
        self._fences[key] = lease.token
        self._holders[key] = lease
        lease.preloaded = await self.load(key)  # as Redis reads it with the lock
        try:
            yield lease
        finally:
            if self._holders.get(key) is lease:
                self._release_thread(key)

    def expire_lease(self, key: ConversationKey) -> None:
        """For tests: the holder's lease runs out as if its process had been cut off from storage for too long.

        The holder is not told: as with Redis, it finds out when storage refuses its next write (or renewal)."""
        self._release_thread(key)

    def _release_thread(self, key: ConversationKey) -> None:
        self._holders.pop(key, None)
        self._released.set()
        self._released = asyncio.Event()

    # --- ChannelSettingsStore ---------------------------------------------------------------------------
    async def channel_persona(self, workspace_id: str, channel_id: str) -> str | None:
        self._check()
        return self._channel_personas.get((workspace_id, channel_id))

    async def set_channel_persona(self, workspace_id: str, channel_id: str, persona: str) -> None:
        self._check()
        self._channel_personas[(workspace_id, channel_id)] = persona

    # --- MediaStore -----------------------------------------------------------------------------------
    async def get_media(self, workspace_id: str, refs: Sequence[str]) -> dict[str, Attachment]:
        self._check()
        found = {}
        for ref in refs:
            value = self._values.get(("media", workspace_id, ref))
            if isinstance(value, Attachment):
                found[ref] = value
                self._values.set(("media", workspace_id, ref), value, self._conversation_ttl_s)
        return found

    async def put_media(self, workspace_id: str, ref: str, attachment: Attachment) -> None:
        self._check()
        self._values.set(("media", workspace_id, ref), attachment, self._conversation_ttl_s)

    # --- BudgetStore -----------------------------------------------------------------------------------
    async def follow_settings_changes(
        self, on_change: Callable[[str], None], on_ready: Callable[[], Awaitable[None]]
    ) -> None:
        """One process: its settings copy sees its own writes, so there is nothing to hear; waits until cancelled."""
        await on_ready()
        await asyncio.Event().wait()

    async def budgets(self, workspace_id: str) -> dict[str, float | None]:
        self._check()
        return dict(self._budgets.get(workspace_id, {}))

    async def set_budget(self, workspace_id: str, kind: str, usd: float | None) -> None:
        self._check()
        self._budgets.setdefault(workspace_id, {})[kind] = usd

    # --- Approvals ------------------------------------------------------------------------------------
    async def open(self, workspace_id: str, approval_id: str, user_id: str, ttl_s: int) -> None:
        self._check()
        self._values.set(("approval", workspace_id, approval_id), [user_id, "pending"], ttl_s)

    async def wait(self, workspace_id: str, approval_id: str, timeout_s: float) -> bool | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        name = ("approval", workspace_id, approval_id)
        while loop.time() < deadline:
            record = self._values.get(name)
            if not isinstance(record, list):
                return None
            if record[1] in ("approved", "denied"):
                return bool(record[1] == "approved")
            await asyncio.sleep(_APPROVAL_POLL_S)
        record = self._values.get(name)
        if isinstance(record, list):
            record[1] = "expired"  # a late click is then told it expired
        return None

    async def decide(self, workspace_id: str, approval_id: str, user_id: str, approved: bool) -> str:
        self._check()
        record = self._values.get(("approval", workspace_id, approval_id))
        if not isinstance(record, list):
            return "expired"
        if record[0] != user_id:
            return "not_yours"
        if record[1] != "pending":
            return "stopped" if record[1] == "stopped" else "expired"
        record[1] = "approved" if approved else "denied"
        return "ok"

    async def abandon(self, workspace_id: str, approval_id: str) -> None:
        self._check()
        record = self._values.get(("approval", workspace_id, approval_id))
        if isinstance(record, list) and record[1] == "pending":
            record[1] = "stopped"

    # --- ProfileCache --------------------------------------------------------------------------------
    async def get_profile(self, kind: str, workspace_id: str, object_id: str) -> dict[str, str] | None:
        self._check()
        value = self._values.get(("profile", kind, workspace_id, object_id))
        return dict(value) if isinstance(value, dict) else None

    async def put_profile(self, kind: str, workspace_id: str, object_id: str, profile: dict[str, str]) -> None:
        self._check()
        self._values.set(("profile", kind, workspace_id, object_id), dict(profile), self._profile_ttl_s)

    # --- EventLedger ---------------------------------------------------------------------------------
    async def first_sightings(
        self, workspace_id: str, delivery_ids: Sequence[str], *, claim: str | None = None
    ) -> list[bool]:
        self._check()
        token = claim or secrets.token_hex(8)
        fresh = []
        for delivery_id in delivery_ids:
            name = ("delivery", workspace_id, delivery_id)
            if self._values.get(name) is None:
                self._values.set(name, token, self._dedup_ttl_s)
            fresh.append(self._values.get(name) == token)
        return fresh

    # --- HealthCheck ---------------------------------------------------------------------------------
    async def healthy(self) -> bool:
        return self.up

    async def health_report(self) -> dict[str, str]:
        return {"memory": "ok" if self.up else "down"}

    async def close(self) -> None:
        """Nothing to release; here so tests close either store the same way."""

    # --- Workspace data (the purge of bot/storage/memory_workspaces.py) ------------------------------------
    def drop_workspace(self, workspace_id: str) -> int:
        """Delete what this store holds for one workspace (its conversations, settings and caches); items deleted."""
        doomed = [key for key in self._conversations if key.workspace_id == workspace_id]
        for key in doomed:
            del self._conversations[key]
        personas = [where for where in self._channel_personas if where[0] == workspace_id]
        for where in personas:
            del self._channel_personas[where]
        budgets = 1 if self._budgets.pop(workspace_id, None) is not None else 0
        return len(doomed) + len(personas) + budgets + self._values.drop_where(lambda name: workspace_id in name)
