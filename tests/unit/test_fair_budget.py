"""FairRateBudget: answers waiting for a workspace's edit budget are served in the order they asked."""

from __future__ import annotations

import asyncio

from bot.core.fair_budget import FairRateBudget
from bot.core.ports import RateBucket

T1, T2 = RateBucket("chat.update", "T1"), RateBucket("chat.update", "T2")


class SharedBudget:
    """A shared budget the test refills by hand; it notes how many ask it at once."""

    def __init__(self) -> None:
        self.units: dict[RateBucket, int] = {}
        self.asking = 0
        self.most_asking = 0
        self.questions = 0
        self.held: list[float] = []

    async def reserve(self, bucket: RateBucket, per_minute: int) -> float:
        self.asking += 1
        self.most_asking = max(self.most_asking, self.asking)
        self.questions += 1
        await asyncio.sleep(0)  # a round trip to Redis
        self.asking -= 1
        if self.units.get(bucket):
            self.units[bucket] -= 1
            return 0.0
        return 0.01

    async def hold_off(self, bucket: RateBucket, seconds: float) -> None:
        self.held.append(seconds)


async def test_waiters_are_served_in_the_order_they_asked_and_only_one_asks_at_a_time() -> None:
    shared = SharedBudget()
    fair = FairRateBudget(shared)
    served: list[int] = []

    async def answer(n: int) -> None:
        assert await fair.reserve(T1, 45) == 0.0
        served.append(n)

    waiters = []
    for n in range(5):
        waiters.append(asyncio.create_task(answer(n)))
        await asyncio.sleep(0)  # each asks after the one before
    for _ in range(5):
        shared.units[T1] = 1
        await asyncio.sleep(0.03)
    await asyncio.gather(*waiters)
    assert served == [0, 1, 2, 3, 4]
    assert shared.most_asking == 1
    assert shared.questions < 5 * 5  # not every waiter polling on every tick


async def test_buckets_are_separate_lines_and_hold_off_reaches_the_shared_budget() -> None:
    shared = SharedBudget()
    fair = FairRateBudget(shared)
    blocked = asyncio.create_task(fair.reserve(T1, 45))
    await asyncio.sleep(0.02)
    shared.units[T2] = 1
    assert await asyncio.wait_for(fair.reserve(T2, 45), 1.0) == 0.0  # not behind T1's line
    shared.units[T1] = 1
    await asyncio.wait_for(blocked, 1.0)
    await fair.hold_off(T1, 2.0)
    assert shared.held == [2.0]
