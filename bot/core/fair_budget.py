"""Waiting for a shared rate budget in turn: first come, first served, one question to the budget at a time."""

from __future__ import annotations

import asyncio

from bot.core.ports import RateBucket, RateBudget


class FairRateBudget:
    """A RateBudget whose waiters in this process queue per bucket and only the first in line asks the shared one.

    Without it, every waiter polled the shared budget after the wait it was told, so when a workspace's Tier 3
    budget was spent all of them woke together, one won and the others asked again: with 200 answers waiting in
    one workspace that was ~150 Redis calls a second, and the order was luck, so an answer could wait minutes
    longer than one that arrived after it. Here `reserve` returns 0 once the caller's unit is taken.
    """

    def __init__(self, shared: RateBudget) -> None:
        self._shared = shared
        self._lines: dict[RateBucket, asyncio.Lock] = {}  # asyncio.Lock wakes its waiters in arrival order

    async def reserve(self, bucket: RateBucket, per_minute: int) -> float:
        line = self._lines.setdefault(bucket, asyncio.Lock())
        async with line:
            while True:
                wait_s = await self._shared.reserve(bucket, per_minute)
                if wait_s <= 0:
                    return 0.0
                await asyncio.sleep(wait_s)  # the shared budget says when; polling sooner only costs round trips

    async def hold_off(self, bucket: RateBucket, seconds: float) -> None:
        await self._shared.hold_off(bucket, seconds)
