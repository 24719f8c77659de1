"""The provider circuit breaker: the Redis one (shared by processes) and its in-memory twin pass the same tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import redis.asyncio as redis

from bot.core.breaker import BREAKER_TTL_S, BreakerPolicy, MemoryCircuitBreaker
from bot.core.ports import CircuitBreaker
from bot.storage.breaker import RedisCircuitBreaker
from bot.storage.keys import Keys

POLICY = BreakerPolicy(failure_threshold=2, cooldown_s=30.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


Factory = Callable[[Clock], CircuitBreaker]


@pytest.fixture(params=["memory", "redis"])
def make(request: pytest.FixtureRequest, redis_client: redis.Redis, key_prefix: str) -> Factory:
    if request.param == "memory":
        return lambda clock: MemoryCircuitBreaker(POLICY, clock)
    return lambda clock: RedisCircuitBreaker(redis_client, Keys(key_prefix), POLICY, clock)


async def test_failures_in_a_row_open_the_breaker_for_the_cooldown(make: Factory) -> None:
    clock = Clock()
    breaker = make(clock)
    assert await breaker.allow("bedrock")
    await breaker.record_failure("bedrock")
    assert await breaker.allow("bedrock")  # one failure is not a pattern
    await breaker.record_failure("bedrock")
    assert not await breaker.allow("bedrock")
    assert await breaker.allow("vertex")  # per provider
    clock.now += 29
    assert not await breaker.allow("bedrock")


async def test_after_the_cooldown_one_probe_goes_and_its_outcome_decides(make: Factory) -> None:
    clock = Clock()
    breaker = make(clock)
    for _ in range(2):
        await breaker.record_failure("bedrock")
    clock.now += 31
    assert await breaker.allow("bedrock")  # the probe
    assert not await breaker.allow("bedrock")  # everyone else waits for it
    await breaker.record_failure("bedrock")  # the probe failed: open again at once, for a full cool-down
    clock.now += 29
    assert not await breaker.allow("bedrock")
    clock.now += 2
    assert await breaker.allow("bedrock")
    await breaker.record_success("bedrock")  # the probe succeeded: closed
    assert await breaker.allow("bedrock") and await breaker.allow("bedrock")
    await breaker.record_failure("bedrock")
    assert await breaker.allow("bedrock")  # the count started afresh


async def test_a_probe_that_never_reports_lets_another_probe_after_its_lease(make: Factory) -> None:
    clock = Clock()
    breaker = make(clock)
    for _ in range(2):
        await breaker.record_failure("vertex")
    clock.now += 31
    assert await breaker.allow("vertex")
    clock.now += POLICY.probe_lease_s + 1
    assert await breaker.allow("vertex")


async def test_two_processes_share_one_breaker(redis_client: redis.Redis, key_prefix: str) -> None:
    clock = Clock()
    one, two = (RedisCircuitBreaker(redis_client, Keys(key_prefix), POLICY, clock) for _ in range(2))
    await one.record_failure("anthropic")
    await two.record_failure("anthropic")
    assert not await one.allow("anthropic") and not await two.allow("anthropic")
    clock.now += 31
    probes = await asyncio.gather(one.allow("anthropic"), two.allow("anthropic"))
    assert sorted(probes) == [False, True]  # exactly one probe across processes
    ttl = await redis_client.ttl(f"{key_prefix}breaker:anthropic")
    assert 0 < ttl <= BREAKER_TTL_S
    await two.record_success("anthropic")
    assert await redis_client.exists(f"{key_prefix}breaker:anthropic") == 0
