"""CallWindows, in Redis and in memory: one suite, the same rules (bot/core/ports.py)."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as redis

from bot.core import call_windows
from bot.core.call_windows import LEASED_CALLS, FairCallWindows, LocalCallWindows
from bot.core.errors import StorageUnavailable
from bot.core.ports import Allowance, CallWindows, Granted
from bot.storage.call_windows import RedisCallWindows
from bot.storage.keys import Keys
from tests.contract.test_redis_store import _proxy_for

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


async def test_a_quiet_window_grants_optional_calls_ahead_and_a_busy_one_one_at_a_time(windows: CallWindows) -> None:
    edits = Allowance("chat.update", "T1", 10, window_s=1.0)
    first = await windows.take_some([edits], keep=0, most=3, hold_s=0.5)  # 3 of 10: at most half used
    assert (first.calls, first.wait_s, len(set(first.ahead))) == (3, 0.0, 2)
    assert await windows.take_some([edits], keep=0, most=3, hold_s=0.5) == Granted(1)  # 6 would be over half
    assert await windows.take_some([edits], keep=4, most=3, hold_s=0.5) == Granted(1)  # 4 used + 1 + 4 kept = 9
    refused = await windows.take_some([edits], keep=5, most=3, hold_s=0.5)
    assert refused.calls == 0 and 0 < refused.wait_s <= 1.0  # 5 used + 1 + 5 kept > 10: refused, as take would
    assert [await windows.take([edits]) for _ in range(5)] == [0.0] * 5
    assert await windows.take([edits]) > 0


async def test_calls_granted_ahead_count_until_the_last_moment_they_may_be_made(windows: CallWindows) -> None:
    edits = Allowance("chat.update", "T1", 6, window_s=1.0)
    assert (await windows.take_some([edits], keep=0, most=3, hold_s=0.5)).calls == 3
    assert [await windows.take([edits]) for _ in range(3)] == [0.0] * 3
    await asyncio.sleep(1.1)  # the calls made at once have left the window; the two granted ahead count till 1.5 s
    assert [await windows.take([edits]) for _ in range(4)] == [0.0] * 4
    assert 0.1 < await windows.take([edits]) <= 0.5


async def test_calls_granted_ahead_and_not_made_are_given_back(windows: CallWindows) -> None:
    edits = Allowance("chat.update", "T1", 6, window_s=1.0)
    granted = await windows.take_some([edits], keep=0, most=3, hold_s=0.5)
    assert await windows.take([edits], give_back=granted.ahead) == 0.0  # the final edit: 2 used, not 4
    assert [await windows.take([edits]) for _ in range(4)] == [0.0] * 4
    assert await windows.take([edits]) > 0
    assert await windows.take([edits], give_back=granted.ahead) > 0  # given back once only


async def test_optional_calls_granted_ahead_are_spent_without_a_round_trip(
    redis_url: str, redis_client: redis.Redis, key_prefix: str
) -> None:
    proxy = await _proxy_for(redis_url)
    client = redis.Redis.from_url(proxy.url, protocol=2)
    fair = FairCallWindows(RedisCallWindows(client, Keys(key_prefix)))
    quiet, busy = Allowance("chat.update", "T1", 45), Allowance("chat.update", "T2", 45)
    try:
        assert await fair.try_take([Allowance("chat.update", "T3", 45)], keep=0)  # connects, loads the script
        asked = proxy.requests
        assert [await fair.try_take([quiet], keep=3) for _ in range(LEASED_CALLS + 1)] == [True] * (LEASED_CALLS + 1)
        assert proxy.requests - asked == 2  # one question for the first LEASED_CALLS calls, one for the next
        window = Keys(key_prefix).call_window("chat.update", "T1", "")
        assert await redis_client.zcard(window) == 2 * LEASED_CALLS
        asked = proxy.requests
        await fair.take([quiet])  # the answer's final edit: it hands back the two calls granted ahead and not made
        assert proxy.requests - asked == 1
        assert await redis_client.zcard(window) == LEASED_CALLS + 2
        for _ in range(20):
            await fair.take([busy])
        asked = proxy.requests
        assert [await fair.try_take([busy], keep=3) for _ in range(3)] == [True] * 3
        assert proxy.requests - asked == 3  # over half used: one call per question, nothing held back
        await fair.hold_off(quiet, 0.3)  # a 429: calls granted ahead are not made, and everyone waits
        assert not await fair.try_take([quiet], keep=3)
    finally:
        await client.aclose()
        await proxy.stop()


async def test_calls_granted_ahead_too_late_to_make_are_given_back_with_the_next_take(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(call_windows, "LEASE_HOLD_S", 0.05)
    local = LocalCallWindows()
    fair = FairCallWindows(local)
    edits = Allowance("chat.update", "T1", 12, window_s=5.0)
    assert await fair.try_take([edits], keep=0)  # 3 granted: 1 made, 2 ahead
    await asyncio.sleep(0.1)
    assert await fair.try_take([edits], keep=0)  # the 2 ahead are too late now: asked again (3 more, 2 ahead)
    await fair.take([edits])  # gives back all 4 not made
    assert [await local.take([edits]) for _ in range(9)] == [0.0] * 9  # 3 made + 9 = 12
    assert await local.take([edits]) > 0


class _Down:
    async def take(self, *args: object, **kwargs: object) -> float:
        raise StorageUnavailable("down")

    promise = release = hold_off = take_some = take


async def test_without_the_shared_store_a_process_keeps_its_own_windows() -> None:
    fair = FairCallWindows(_Down())  # type: ignore[arg-type]
    for _ in range(5):
        await asyncio.wait_for(fair.take([EDITS]), 0.5)
    assert not await fair.try_take([EDITS], keep=0)
    started = time.monotonic()
    await fair.take([EDITS])  # waits its turn in the local window instead of failing
    assert time.monotonic() - started > 0.5
