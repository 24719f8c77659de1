"""Spending shared call windows in turn, and this process's own windows when the shared ones are unreachable."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from bot.core.errors import StorageUnavailable
from bot.core.ports import Allowance, CallWindows, Granted

log = logging.getLogger(__name__)

# A refused optional call or promise is not asked again for this long (at most): under pressure every answer would
# otherwise spend a round trip per interval learning that nothing is spare.
REFUSAL_MEMO_S = 0.5
# An optional call asks for this many at once, and may spend the spare ones within LEASE_HOLD_S without asking, while
# its windows are at most half used: a streaming answer's next interim edits then cost no round trip. A busy
# workspace never gets more than one at a time, so nothing is held back from answers waiting to finish.
LEASED_CALLS = 3
LEASE_HOLD_S = 5.0
LEASES_KEPT = 10_000  # buckets with calls granted ahead that one process remembers at most
AHEAD_KEPT_S = 120.0  # a call granted ahead in the local windows can be given back for this long (then it lapsed)
T = TypeVar("T")


class LocalCallWindows:
    """CallWindows in this process's memory: the same rules as the shared ones, for one process.

    Used when the shared store is unreachable (each process then paces itself) and by tests.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._calls: dict[str, deque[float]] = {}
        self._promised: dict[str, dict[str, float]] = {}
        self._held: dict[str, float] = {}
        self._ahead: dict[str, float] = {}  # calls granted ahead, by name: when they count as made
        self._named = 0

    async def take(
        self,
        allowances: Sequence[Allowance],
        *,
        keep: int | None = None,
        settle: Sequence[str] = (),
        spent: Sequence[float] = (),
        give_back: Sequence[str] = (),
    ) -> float:
        for name in give_back:
            if (at := self._ahead.pop(name, None)) is not None:
                for allowance in allowances:
                    with contextlib.suppress(ValueError):
                        self._calls.get(allowance.bucket, deque()).remove(at)
        wait = max((self._wait(allowance, 1, keep, settle) for allowance in allowances), default=0.0)
        if wait > 0:
            return wait
        ago = [time.time() - at for at in spent]  # `spent` is in epoch seconds, this clock need not be
        for allowance in allowances:
            made = [self._clock() - seconds for seconds in ago if seconds < allowance.window_s]
            calls = sorted([*self._calls[allowance.bucket], *made, self._clock()])
            self._calls[allowance.bucket] = deque(calls)
            for member in settle:
                self._promised[allowance.bucket].pop(member, None)
        return 0.0

    async def take_some(self, allowances: Sequence[Allowance], *, keep: int, most: int, hold_s: float) -> Granted:
        wait = max((self._wait(allowance, 1, keep, ()) for allowance in allowances), default=0.0)
        if wait > 0:
            return Granted(0, wait)
        granted = most if all(self._half_used_with(allowance, most, keep) for allowance in allowances) else 1
        now = self._clock()
        self._ahead = {name: at for name, at in self._ahead.items() if at > now - AHEAD_KEPT_S}
        ahead = tuple(f"ahead-{self._next_name()}" for _ in range(granted - 1))
        self._ahead.update(dict.fromkeys(ahead, now + hold_s))
        for allowance in allowances:
            made = [now, *[now + hold_s] * (granted - 1)]
            self._calls[allowance.bucket] = deque(sorted([*self._calls[allowance.bucket], *made]))
        return Granted(granted, 0.0, ahead)

    def _next_name(self) -> int:
        self._named += 1
        return self._named

    def _half_used_with(self, allowance: Allowance, more: int, keep: int) -> bool:
        used = len(self._calls[allowance.bucket]) + len(self._promised[allowance.bucket])
        return used + more + keep <= allowance.limit // 2

    async def promise(
        self, allowance: Allowance, members: Sequence[str], *, keep: int, ttl_s: float, now: Sequence[Allowance] = ()
    ) -> bool:
        if self._wait(allowance, len(members), keep, ()) > 0 or any(self._wait(a, 1, None, ()) > 0 for a in now):
            return False
        for each in now:  # in time order: calls granted ahead (take_some) may be later than now
            self._calls[each.bucket] = deque(sorted([*self._calls[each.bucket], self._clock()]))
        lapses = self._clock() + ttl_s
        self._promised[allowance.bucket].update(dict.fromkeys(members, lapses))
        return True

    async def release(self, allowance: Allowance, members: Sequence[str]) -> None:
        for member in members:
            self._promised.setdefault(allowance.bucket, {}).pop(member, None)

    async def hold_off(self, allowance: Allowance, seconds: float) -> None:
        self._held[allowance.bucket] = max(self._held.get(allowance.bucket, 0.0), self._clock() + seconds)

    def _wait(self, allowance: Allowance, need: int, keep: int | None, settle: Sequence[str]) -> float:
        now = self._clock()
        calls = self._calls.setdefault(allowance.bucket, deque())
        while calls and calls[0] <= now - allowance.window_s:
            calls.popleft()
        promised = self._promised.setdefault(allowance.bucket, {})
        for member in [m for m, lapses in promised.items() if lapses <= now]:
            del promised[member]
        wait = max(0.0, self._held.get(allowance.bucket, 0.0) - now)
        if keep is not None:
            need += keep + len(promised) - sum(1 for member in settle if member in promised)
        excess = len(calls) + need - allowance.limit
        if excess > len(calls):
            return max(wait, allowance.window_s)
        if excess > 0:
            return max(wait, calls[excess - 1] + allowance.window_s - now, 0.001)
        return wait


@dataclass(slots=True)
class _Leased:
    """Calls this process was granted ahead (take_some): made without asking until `until`, else given back."""

    ahead: list[str]
    until: float  # monotonic


class _Line:
    """Callers waiting for (or holding) one bucket's turn."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class FairCallWindows:
    """Necessary calls wait in line per bucket (first come, first served, only the first asks the shared store);
    optional calls and promises are one question each, never a wait. The shared store being down costs no answer:
    this process then keeps its own windows."""

    def __init__(self, shared: CallWindows, local: CallWindows | None = None) -> None:
        self._shared = shared
        self._local = local or LocalCallWindows()
        # One line per bucket while anyone is in it (asyncio.Lock wakes its waiters in arrival order); the last to
        # leave removes it, so a line per channel ever paced does not stay behind.
        self._lines: dict[tuple[str, ...], _Line] = {}
        self._refused: dict[tuple[object, ...], float] = {}  # question -> until when (monotonic) it is not asked
        self._leased: dict[tuple[str, ...], _Leased] = {}  # buckets -> optional calls granted ahead
        self._unspent: dict[tuple[str, ...], list[str]] = {}  # buckets -> calls granted ahead, not to be made

    async def take(
        self, allowances: Sequence[Allowance], *, settle: Sequence[str] = (), spent: Sequence[float] = ()
    ) -> None:
        """Wait for this call's turn in every allowance; the shared windows say how long, so no polling sooner.

        Calls this process was granted ahead for the same allowances and did not make are given back with the first
        question (an answer's final edit hands back what its interim edits did not use)."""
        key = tuple(a.bucket for a in allowances)
        self._set_aside(key)
        returning = self._unspent.pop(key, [])

        def ask(windows: CallWindows) -> Awaitable[float]:
            return windows.take(allowances, settle=settle, spent=spent, give_back=returning)

        if settle:
            if await self._ask(ask) <= 0:
                return  # promised: its room is set aside, so it need not queue behind anyone
            returning = []  # given back with that first question, granted or not
        line = self._lines.setdefault(key, _Line())
        line.users += 1
        started = time.monotonic()
        try:
            async with line.lock:
                while (wait_s := await self._ask(ask)) > 0:
                    returning = []
                    await asyncio.sleep(wait_s)  # the shared windows say when: polling sooner only costs round trips
        finally:
            line.users -= 1
            if line.users == 0:
                del self._lines[key]
        if (waited := time.monotonic() - started) > 1.0:
            log.info("waited %.1f s for a turn in %s", waited, allowances[0].bucket)

    async def try_take(self, allowances: Sequence[Allowance], *, keep: int) -> bool:
        """An optional call: True if it may go now. Spends a call granted ahead when there is one (no round trip)."""
        buckets = tuple(a.bucket for a in allowances)
        if self._spend_leased(buckets):
            return True
        question = ("take", keep, *buckets)
        if self._refused_lately(question):
            return False
        asked_at = time.monotonic()
        granted = await self._ask(lambda w: w.take_some(allowances, keep=keep, most=LEASED_CALLS, hold_s=LEASE_HOLD_S))
        if not granted.calls:
            self._remember_refusal(question, granted.wait_s)
            return False
        if granted.ahead:
            if len(self._leased) + len(self._unspent) >= LEASES_KEPT:  # forgotten ones only lapse, unused
                self._leased.clear()
                self._unspent.clear()
            self._leased[buckets] = _Leased(list(granted.ahead), asked_at + LEASE_HOLD_S)
        return True

    def _spend_leased(self, buckets: tuple[str, ...]) -> bool:
        leased = self._leased.get(buckets)
        if leased is None:
            return False
        if leased.until <= time.monotonic():  # too late to make them: they go back with the next take
            self._set_aside(buckets)
            return False
        leased.ahead.pop()
        if not leased.ahead:
            del self._leased[buckets]
        return True

    def _set_aside(self, buckets: tuple[str, ...]) -> None:
        """Calls granted ahead that will not be made: the next take for these buckets gives them back."""
        if (leased := self._leased.pop(buckets, None)) is not None:
            self._unspent.setdefault(buckets, []).extend(leased.ahead)

    async def promise(
        self, allowance: Allowance, members: Sequence[str], *, keep: int, ttl_s: float, now: Sequence[Allowance] = ()
    ) -> bool:
        question = ("promise", keep, len(members), allowance.bucket, *(a.bucket for a in now))
        if self._refused_lately(question):
            return False
        try:
            granted = await self._shared.promise(allowance, members, keep=keep, ttl_s=ttl_s, now=now)
        except StorageUnavailable:
            granted = await self._local.promise(allowance, members, keep=keep, ttl_s=ttl_s, now=now)
        if not granted:
            self._remember_refusal(question, REFUSAL_MEMO_S)
        return granted

    async def release(self, allowance: Allowance, members: Sequence[str]) -> None:
        try:
            await self._shared.release(allowance, members)
        except StorageUnavailable:
            await self._local.release(allowance, members)

    async def hold_off(self, allowance: Allowance, seconds: float) -> None:
        for buckets in [b for b in self._leased if allowance.bucket in b]:
            self._set_aside(buckets)  # Slack said 429: calls granted ahead are not made
        await self._local.hold_off(allowance, seconds)
        try:
            await self._shared.hold_off(allowance, seconds)
        except StorageUnavailable:
            log.warning("could not share a Retry-After hold; this process holds off alone")

    def _refused_lately(self, question: tuple[object, ...]) -> bool:
        until = self._refused.get(question)
        return until is not None and until > time.monotonic()

    def _remember_refusal(self, question: tuple[object, ...], wait_s: float) -> None:
        now = time.monotonic()
        if len(self._refused) > 10_000:
            self._refused = {q: until for q, until in self._refused.items() if until > now}
        self._refused[question] = now + min(wait_s, REFUSAL_MEMO_S)

    async def _ask(self, question: Callable[[CallWindows], Awaitable[T]]) -> T:
        try:
            return await question(self._shared)
        except StorageUnavailable:
            return await question(self._local)
