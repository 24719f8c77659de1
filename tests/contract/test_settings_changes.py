"""Channel personas and budgets changed through one process reach every other process's copy at once, over Redis
Pub/Sub (a single server and a cluster); without the subscription the copy is short-lived again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import redis.asyncio as redis

from bot.storage.redis_store import RedisStore
from bot.storage.settings_cache import CachedWorkspaceSettings
from tests.conftest import RedisTarget
from tests.contract.test_redis_store import _proxy_for, make_store
from tests.e2e.helpers import eventually


@pytest.fixture
async def elsewhere(redis_target: RedisTarget, key_prefix: str, redis_client: redis.Redis) -> AsyncIterator[RedisStore]:
    """Another bot process's store: its writes go straight to Redis, as /claude-budget's there would."""
    store = make_store(redis_target, key_prefix)
    yield store
    await store.close()


async def test_a_change_made_through_another_process_is_heard_at_once(
    redis_target: RedisTarget, key_prefix: str, elsewhere: RedisStore
) -> None:
    store = make_store(redis_target, key_prefix)
    cached = CachedWorkspaceSettings(store, ttl_s=60.0)  # a short copy would lapse long after this test's waits
    cached.start()
    try:
        await eventually(lambda: cached.hearing, "the settings subscription")
        assert await cached.budgets("T1") == {} and await cached.channel_persona("T1", "C1") is None
        await elsewhere.set_budget("T1", "month", 25.0)
        await _read_until(lambda: cached.budgets("T1"), {"month": 25.0}, within_s=2.0)
        await elsewhere.set_channel_persona("T1", "C1", "sql_expert")
        await asyncio.sleep(0.3)
        assert await cached.channel_persona("T1", "C1") == "sql_expert"
    finally:
        await cached.close()
        await store.close()


async def test_without_the_subscription_the_copy_is_short_lived_again(redis_url: str, key_prefix: str) -> None:
    single = RedisTarget(redis_url, cluster=False)  # the proxy stands in front of one server
    proxy = await _proxy_for(redis_url)
    store, elsewhere = make_store(single, key_prefix, url=proxy.url), make_store(single, key_prefix)
    cached = CachedWorkspaceSettings(store, ttl_s=0.2)
    cached.start()
    try:
        await eventually(lambda: cached.hearing, "the settings subscription")
        assert await cached.budgets("T1") == {}  # kept for the long time-to-live while hearing
        await proxy.cut()
        await eventually(lambda: not cached.hearing, "the subscription to break")
        await elsewhere.set_budget("T1", "month", 9.0)  # published while this process could not hear it
        await proxy.restore()
        await asyncio.sleep(0.3)  # the copy read before the cut was dropped; reads are kept 0.2 s again meanwhile
        assert await cached.budgets("T1") == {"month": 9.0}
        await eventually(lambda: cached.hearing, "the subscription again", timeout=5.0)
    finally:
        await cached.close()
        await store.close()
        if written := [key async for key in elsewhere.client.scan_iter(f"{key_prefix}*")]:
            await elsewhere.client.delete(*written)
        await elsewhere.close()
        await proxy.stop()


async def _read_until(read: Callable[[], Awaitable[object]], expected: object, *, within_s: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while (found := await read()) != expected:
        assert loop.time() < deadline, f"still {found!r}"
        await asyncio.sleep(0.02)
