"""What only the Redis store does: TTLs as Redis sees them, lease renewal, outages, pool size, rate budgets.

What every storage backend must do is in test_storage.py, run over Redis and the in-memory twin alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis as sync_redis
import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster

from bench.processes import DedicatedRedis
from bot.core.conversation import ConversationKey, Fold, TextBlock, Turn
from bot.core.errors import StorageUnavailable
from bot.core.leases import LeaseLost
from bot.storage.connection import connect
from bot.storage.redis_store import RedisStore
from tests.cluster import RedisClusterProcesses
from tests.conftest import RedisTarget
from tests.fakes.tcp_proxy import TcpProxy

KEY = ConversationKey("T1", "C1", "1700000000.000100")


def make_store(target: RedisTarget, prefix: str, url: str | None = None, **overrides: float) -> RedisStore:
    options: dict[str, float] = {
        "conversation_ttl_s": 3600,
        "dm_idle_reset_s": 60,
        "dedup_ttl_s": 600,
        "lock_lease_s": 1.0,
        "lock_wait_s": 5.0,
    }
    options.update(overrides)
    client = target.connect(url, socket_timeout_s=1.0)
    return RedisStore(client, target.keys(prefix), **options)  # type: ignore[arg-type]


@pytest.fixture
async def store(redis_target: RedisTarget, key_prefix: str, redis_client: redis.Redis) -> AsyncIterator[RedisStore]:
    instance = make_store(redis_target, key_prefix)
    yield instance
    await instance.close()


async def test_history_expires_after_its_time_to_live(store: RedisStore, redis_client: redis.Redis) -> None:
    await store.append(KEY, Turn.user("hi"))
    ttl = await redis_client.ttl(store.keys.conversation(KEY))
    assert 3500 < ttl <= 3600


async def test_history_survives_a_new_store_instance(
    redis_target: RedisTarget, key_prefix: str, store: RedisStore
) -> None:
    await store.append(KEY, Turn.user("remember me"))
    restarted = make_store(redis_target, key_prefix)
    try:
        assert [t.text for t in (await restarted.load(KEY)).turns] == ["remember me"]
    finally:
        await restarted.close()


async def test_an_unreadable_entry_is_skipped_not_fatal(store: RedisStore, redis_client: redis.Redis) -> None:
    await redis_client.rpush(store.keys.conversation(KEY), "{not json")
    await store.append(KEY, Turn.user("still here"))
    assert [t.text for t in (await store.load(KEY)).turns] == ["still here"]


async def test_a_burst_of_200_concurrent_commands_is_served_not_read_as_an_outage(store: RedisStore) -> None:
    firsts = await asyncio.gather(*(store.first_sightings("T1", [f"event:burst-{n}"]) for n in range(200)))
    assert all(first for (first,) in firsts)
    if isinstance(store.client, RedisCluster):  # a pool per node
        assert all(node.max_connections >= 200 for node in store.client.get_nodes())
    else:
        assert store.client.connection_pool.max_connections >= 200


async def test_lock_is_renewed_while_held_past_its_lease(store: RedisStore, redis_client: redis.Redis) -> None:
    async with store.lock(KEY):
        await asyncio.sleep(1.5)  # lease is 1 s: without renewal the key would be gone
        assert await redis_client.exists(store.keys.conversation_lock(KEY))
    assert not await redis_client.exists(store.keys.conversation_lock(KEY))


async def test_unreachable_redis_is_reported_as_storage_unavailable_then_recovers(
    redis_url: str, key_prefix: str, redis_client: redis.Redis
) -> None:
    proxy = await _proxy_for(redis_url)
    store = make_store(RedisTarget(redis_url, cluster=False), key_prefix, proxy.url)
    try:
        await store.append(KEY, Turn.user("before"))
        await proxy.cut()
        with pytest.raises(StorageUnavailable):
            await store.load(KEY)
        assert not await store.healthy()
        await proxy.restore()
        assert [t.text for t in (await store.load(KEY)).turns] == ["before"]
        assert await store.healthy()
    finally:
        await store.close()
        await proxy.stop()


async def test_a_renewal_that_cannot_reach_redis_is_counted_and_the_lease_is_taken_back_if_nobody_took_it(
    redis_url: str, key_prefix: str, redis_client: redis.Redis
) -> None:
    """An outage longer than the lease: the lock key expires meanwhile, but with nobody else holding the thread the
    fence is still this lease's, so its renewal takes the key back and its writes go on (nothing was at risk)."""
    proxy = await _proxy_for(redis_url)
    store = make_store(RedisTarget(redis_url, cluster=False), key_prefix, proxy.url)
    try:
        async with store.lock(KEY) as lease:
            await proxy.cut()
            await asyncio.sleep(1.6)  # lease is 1 s
            assert lease.renewal_failures >= 1, "failed renewals are noticed"
            assert not await redis_client.exists(store.keys.conversation_lock(KEY))
            await proxy.restore()
            await asyncio.sleep(0.6)
            assert await redis_client.get(store.keys.conversation_lock(KEY)) == str(lease.token)
            assert lease.renewal_failures == 0 and not lease.lost
            await store.append(KEY, Turn.user("still mine"), lease=lease)
        assert [t.text for t in (await store.load(KEY)).turns] == ["still mine"]
    finally:
        await store.close()
        await proxy.stop()


async def test_a_holder_cut_off_past_its_lease_while_another_takes_the_thread_learns_it_lost_it(
    redis_url: str, key_prefix: str, redis_client: redis.Redis
) -> None:
    proxy = await _proxy_for(redis_url)
    target = RedisTarget(redis_url, cluster=False)
    cut_off, other = make_store(target, key_prefix, proxy.url), make_store(target, key_prefix)
    try:
        async with cut_off.lock(KEY) as old:
            await proxy.cut()
            async with other.lock(KEY) as new:  # waits for the old lease to run out (1 s)
                await proxy.restore()
                await asyncio.wait_for(old.wait_lost(), 2.0)  # its next renewal is refused
                with pytest.raises(LeaseLost):
                    await cut_off.append(KEY, Turn.user("late"), lease=old)
                await other.append(KEY, Turn.user("new holder"), lease=new)
                assert await redis_client.get(other.keys.conversation_lock(KEY)) == str(new.token)
        assert [t.text for t in (await other.load(KEY)).turns] == ["new holder"]
    finally:
        await cut_off.close()
        await other.close()
        await proxy.stop()


async def _proxy_for(redis_url: str) -> TcpProxy:
    if redis_url.startswith("unix://"):
        proxy = TcpProxy(unix_path=redis_url.removeprefix("unix://"))
    else:
        from urllib.parse import urlparse

        parsed = urlparse(redis_url)
        db = int(parsed.path.strip("/") or 0)  # the same database as the test's own client reads
        proxy = TcpProxy(target_host=parsed.hostname or "127.0.0.1", target_port=parsed.port or 6379, db=db)
    await proxy.start()
    return proxy


async def test_profiles_are_cached_with_a_time_to_live(store: RedisStore, redis_client: redis.Redis) -> None:
    await store.put_profile("user", "T1", "U1", {"display_name": "Ada", "tz": "Europe/London"})
    assert await store.get_profile("user", "T1", "U1") == {"display_name": "Ada", "tz": "Europe/London"}
    assert await store.get_profile("user", "T2", "U1") is None
    assert 0 < await redis_client.ttl(store.keys.profile("user", "T1", "U1")) <= 3600


async def test_health_reports_the_clusters_state_and_fails_while_a_slot_is_uncovered(
    tmp_path: Path, key_prefix: str
) -> None:
    cluster = RedisClusterProcesses(tmp_path, nodes=1).start()  # its own: the test breaks it
    store = make_store(RedisTarget(cluster.url, cluster=True), key_prefix)
    try:
        assert await store.health_report() == {"redis": "ok", "redis_cluster_state": "ok"}
        with sync_redis.Redis(port=cluster.ports[0]) as node:
            node.execute_command("CLUSTER DELSLOTS", 100)  # one slot's keys now have no home
        assert await store.health_report() == {"redis": "cluster fail", "redis_cluster_state": "fail"}
        assert not await store.healthy()
    finally:
        await store.close()
        cluster.stop()


async def test_redis_cluster_aimed_at_a_server_not_in_cluster_mode_is_an_outage_not_a_crash(key_prefix: str) -> None:
    async with DedicatedRedis() as plain:  # a private server: the cluster client only asks it CLUSTER SLOTS
        store = make_store(RedisTarget(plain.url, cluster=True), key_prefix)
        try:
            assert await store.health_report() == {"redis": "unreachable", "redis_cluster_state": "unknown"}
            with pytest.raises(StorageUnavailable):
                await store.load(KEY)
        finally:
            await store.close()


async def test_a_long_thread_s_list_stays_bounded_however_often_it_folds(
    redis_target: RedisTarget, key_prefix: str, redis_client: redis.Redis
) -> None:
    """Fold after fold, only turn 0, the kept folded turns and the unfolded ones stay in Redis: the list is capped."""
    store = make_store(redis_target, key_prefix, folded_turns_kept=4)
    try:
        length = 0
        for n in range(60):
            await store.append(KEY, Turn.user(f"q{n}"), Turn(role="assistant", blocks=(TextBlock(text=f"a{n}"),)))
            length += 2
            await store.save_fold(KEY, Fold(summary=f"up to {n}", upto=length - 2, reads=(), urls=()))
        assert await redis_client.llen(store.keys.conversation(KEY)) == 1 + 4 + 2
        assert await redis_client.hget(store.keys.conversation_meta(KEY), "base") == str(length - 2 - 4 - 1)
        loaded = await store.load(KEY)
        assert len(loaded.turns) == length and [t.text for t in loaded.turns[-2:]] == ["q59", "a59"]
        assert loaded.turns[0].text == "q0"
    finally:
        await store.close()


async def test_loading_a_folded_thread_never_reads_its_whole_list(
    redis_target: RedisTarget, key_prefix: str, redis_client: redis.Redis, store: RedisStore
) -> None:
    """What Redis runs for a load (seen by MONITOR, script commands included): no LRANGE over the whole list."""
    if redis_target.cluster:
        pytest.skip("MONITOR is per node; the single server shows the same scripts")
    turns = [Turn.user(f"message {n}") for n in range(40)]
    await store.append(KEY, *turns)
    await store.save_fold(KEY, Fold(summary="s", upto=30, reads=(), urls=()))
    name, done = store.keys.conversation(KEY), f"{key_prefix}monitor-done"
    monitor_client = redis_target.connect()
    seen: list[str] = []
    try:
        async with monitor_client.monitor() as monitor:
            loaded = await store.load(KEY)
            await redis_client.get(done)
            while True:
                command = (await asyncio.wait_for(monitor.next_command(), 5))["command"]
                if done in command:
                    break
                if name in command:
                    seen.append(command)
    finally:
        await monitor_client.aclose()
    assert [t.text for t in loaded.turns[30:]] == [t.text for t in turns[30:]]
    ranges = [command for command in seen if command.upper().startswith("LRANGE")]
    assert ranges and all(not command.endswith(" 0 -1") for command in ranges), seen


async def test_a_new_connection_sends_its_first_command_without_a_handshake(redis_url: str) -> None:
    # A burst opens a connection per concurrent command; each handshake round trip (HELLO, CLIENT SETINFO, a
    # maintenance-notifications opt-in, a PING) would be paid again for every one of them.
    proxy = await _proxy_for(redis_url)
    client = connect(proxy.url)
    try:
        assert await client.get("never-set-by-any-test") is None
        selects = 1 if proxy.url.rstrip("/").rsplit("/", 1)[-1] not in ("", "0") else 0
        assert proxy.requests == 1 + selects  # the command itself (and SELECT for a database other than 0)
    finally:
        await client.aclose()
        await proxy.stop()
