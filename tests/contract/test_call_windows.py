"""CallWindows, in Redis and in memory: one suite, the same rules (bot/core/ports.py)."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as redis

from bot.core.call_windows import FairCallWindows, LocalCallWindows
from bot.core.errors import StorageUnavailable
from bot.core.ports import Allowance, CallWindows
from bot.storage.call_windows import RedisCallWindows
from bot.storage.keys import Keys

EDITS = Allowance("chat.update", "T1", 5, window_s=1.0)


@pytest.fixture(params=["redis", "memory"])
def windows(request: pytest.FixtureRequest, redis_client: redis.Redis, key_prefix: str) -> CallWindows:
    if request.param == "memory":
        return LocalCallWindows()
    return RedisCallWindows(redis_client, Keys(key_prefix))


async def test_a_window_allows_a_burst_up_to_its_limit_then_says_how_long_to_wait(windows: CallWindows) -> None:
    assert [await windows.take([EDITS]) for _ in range(5)] == [0.0] * 5
    wait = await windows.take([EDITS])
    assert 0.5 < wait <= 1.0
    await asyncio.sleep(wait + 0.05)
    assert await windows.take([EDITS]) == 0.0


async def test_optional_calls_leave_promised_calls_and_a_margin_free(windows: CallWindows) -> None:
    assert await windows.promise(EDITS, ["a#final", "b#final"], keep=1, ttl_s=30)  # 2 promised + 1 kept <= 5
    assert not await windows.promise(EDITS, ["c#final", "c#first"], keep=2, ttl_s=30)  # 2 + 2 + 2 > 5
    assert await windows.take([EDITS], keep=1) == 0.0
    assert await windows.take([EDITS], keep=1) == 0.0  # 1 used + this one + 2 promised + 1 kept = 5
    assert await windows.take([EDITS], keep=1) > 0  # optional: would eat into the promised final edits
    assert await windows.take([EDITS], settle=["a#final"]) == 0.0  # promised: goes
    assert await windows.take([EDITS], settle=["b#final"]) == 0.0
    assert await windows.take([EDITS]) == 0.0  # 4 used, nothing promised: one more fits
    assert await windows.take([EDITS]) > 0


async def test_an_unused_promise_can_be_given_back_and_lapses_by_itself(windows: CallWindows) -> None:
    assert await windows.promise(EDITS, ["a#final", "a#first"], keep=0, ttl_s=30)
    assert await windows.promise(EDITS, ["b#final"], keep=0, ttl_s=0.2)
    assert not await windows.promise(EDITS, ["c#final", "c#first", "c#x"], keep=0, ttl_s=30)
    await windows.release(EDITS, ["a#final", "a#first"])
    assert await windows.promise(EDITS, ["c#final", "c#first"], keep=1, ttl_s=30)
    await asyncio.sleep(0.3)  # b's promise lapsed: its process died
    assert await windows.promise(EDITS, ["d#final"], keep=1, ttl_s=30)


async def test_calls_made_on_a_promise_are_counted_when_recorded_late(windows: CallWindows) -> None:
    assert await windows.promise(EDITS, ["a#first", "a#final"], keep=0, ttl_s=30)
    made = time.time()
    assert await windows.take([EDITS], settle=["a#first", "a#final"], spent=[made]) == 0.0  # two calls counted
    for _ in range(3):
        assert await windows.take([EDITS]) == 0.0
    assert await windows.take([EDITS]) > 0


async def test_a_take_over_several_allowances_is_all_or_nothing(windows: CallWindows) -> None:
    channel = Allowance("chat.postMessage", "T1", 1, 1.0, "C1")
    workspace = Allowance("chat.postMessage", "T1", 3, 1.0)
    assert await windows.take([channel, workspace]) == 0.0
    assert await windows.take([channel, workspace]) > 0  # the channel is full: the workspace is not charged
    other = Allowance("chat.postMessage", "T1", 1, 1.0, "C2")
    assert await windows.take([other, workspace]) == 0.0
    assert await windows.take([Allowance("chat.postMessage", "T1", 1, 1.0, "C3"), workspace]) == 0.0
    assert await windows.take([Allowance("chat.postMessage", "T1", 1, 1.0, "C4"), workspace]) > 0  # 3 in the workspace


async def test_a_hold_off_stops_everyone_for_its_retry_after(windows: CallWindows) -> None:
    await windows.hold_off(EDITS, 0.3)
    assert 0.1 < await windows.take([EDITS]) <= 0.3


class _Down:
    async def take(self, *args: object, **kwargs: object) -> float:
        raise StorageUnavailable("down")

    promise = release = hold_off = take


async def test_without_the_shared_store_a_process_keeps_its_own_windows() -> None:
    fair = FairCallWindows(_Down())  # type: ignore[arg-type]
    for _ in range(5):
        await asyncio.wait_for(fair.take([EDITS]), 0.5)
    assert not await fair.try_take([EDITS], keep=0)
    started = time.monotonic()
    await fair.take([EDITS])  # waits its turn in the local window instead of failing
    assert time.monotonic() - started > 0.5
