"""Redis clients: one server (redis:// rediss:// unix://) or a Redis Cluster (REDIS_CLUSTER=true) seeded by one node.

Which keys share a slot on a cluster is decided in `keys.py`; this module only builds and inspects clients.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError


def connect(
    url: str,
    *,
    socket_timeout_s: float = 3.0,
    tls_ca_file: Path | None = None,
    max_connections: int = 1_000,
    cluster: bool = False,
) -> redis.Redis:
    """A client that retries a dropped connection a few times quickly, then lets callers see the outage.

    `rediss://` means TLS (certificates checked against the system's CAs, or `tls_ca_file`); a password comes in the
    URL (`rediss://:password@host:6380/0`, or `user:password@` for an ACL user). redis-py also reads options from the
    URL's query (`?ssl_cert_reqs=none`, `?ssl_ca_certs=/path`), and those win over the keywords given here.

    The pool opens connections as commands need them, up to `max_connections`: redis-py's default of 100 refused the
    101st concurrent command with MaxConnectionsError, which read as a Redis outage under load (200 simultaneous
    mentions made de-duplication fail open). Not a BlockingConnectionPool: under the same load its wait (a Condition
    inside a timeout) left about 1 % of answers hanging for good after a command was cancelled (redis-py #3056
    describes that deadlock), which the load benchmark showed on main.
    """
    tls: dict[str, Any] = {"ssl_ca_certs": str(tls_ca_file)} if tls_ca_file is not None else {}
    options: dict[str, Any] = {
        "max_connections": max_connections,
        "decode_responses": True,
        "socket_timeout": socket_timeout_s,
        "socket_connect_timeout": socket_timeout_s,
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=3),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
        # No PING before a connection's first command (and after 15 s idle), which cost every connection a burst
        # opens one more round trip: a dead connection fails its command instead, and `retry` sends it again on a
        # new one, which is what the PING's own retry did.
        "health_check_interval": 0,
        # RESP2: a new connection sends its first command at once. redis-py 8 defaults to RESP3, whose HELLO and
        # maintenance-notifications handshake cost every connection a burst opens two round trips before it; the
        # stores use nothing RESP3 adds (no client-side caching, no push notifications).
        "protocol": 2,
        **tls,
    }
    if cluster:
        return connect_cluster(url, options)
    # No CLIENT SETINFO: two round trips less for every connection a burst opens.
    return redis.Redis.from_pool(redis.ConnectionPool.from_url(url, driver_info=None, **options))


LISTEN_TICK_S = 1.0  # how long one read of a Pub/Sub channel waits (a local wait: no Redis command is sent)


async def listen(
    client: redis.Redis, channel: str, on_message: Callable[[str], None], on_ready: Callable[[], Awaitable[None]]
) -> None:
    """Hear every message on `channel` until the connection breaks (then raise); `on_ready` runs once subscribed, so
    the caller can catch up on what it missed while not listening. Plain SUBSCRIBE: global on a cluster too."""
    if is_cluster(client):  # a subscription at start-up may be the client's first use: learn the slots first
        await cast(RedisCluster, client).initialize()
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(channel)
        await on_ready()
        while True:
            message = await pubsub.get_message(timeout=LISTEN_TICK_S)
            if message is not None and isinstance(message.get("data"), str):
                on_message(message["data"])
    finally:
        await asyncio.shield(pubsub.aclose())  # type: ignore[no-untyped-call]


def public_location(url: str) -> str:
    """The URL without its user name, password or query, for logs: `rediss://cache.internal:6380/0 (password)`."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # redis-py will refuse it with its own message; the log line need not
        port = ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}" + (" (password)" if parts.password else "")


class _WarmedCluster(RedisCluster):
    """RedisCluster whose first command runs alone.

    With redis-py 8.1, twenty commands issued at once on a fresh client failed with
    `AttributeError: 'NoneType' object has no attribute 'writelines'` (a connection used while another coroutine was
    still opening it), and a bot gets exactly that burst when Slack delivers several events at start-up. Once one
    command has completed, concurrent commands work (tests/contract run hundreds at once on the cluster;
    test_concurrent_reservations_never_overshoot_the_budget[cluster] is twenty first commands at once). Seen with
    redis-py 8.1.0 against Redis 6.2; no matching upstream issue was found. Unverified: whether the same race comes
    back when the client re-initialises after a failover (MOVED / connection errors).
    """

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if self.__dict__.get("_warm") is not True:
            lock: asyncio.Lock = self.__dict__.setdefault("_warm_lock", asyncio.Lock())
            async with lock:
                if self.__dict__.get("_warm") is not True:
                    result = await super().execute_command(*args, **kwargs)
                    self.__dict__["_warm"] = True
                    return result
        return await super().execute_command(*args, **kwargs)


def connect_cluster(url: str, options: dict[str, Any]) -> redis.Redis:
    """A Redis Cluster client seeded by one node (`REDIS_URL`); it learns the other nodes with CLUSTER SLOTS.

    `max_connections` is per node there. The URL's password and `rediss://` (and REDIS_TLS_CA_FILE) apply to every
    node. The client is typed as `redis.Redis` because RedisCluster offers the same command API and the stores only
    use commands, and single-slot scripts, transactions and pipelines, that both support (see `keys.py`).
    """
    return cast(redis.Redis, _WarmedCluster.from_url(url, **options))


def is_cluster(client: redis.Redis) -> bool:
    return isinstance(client, RedisCluster)


async def cluster_state(client: redis.Redis) -> str:
    """CLUSTER INFO's cluster_state as the seed (default) node sees it: "ok", or "fail" while slots are uncovered."""
    info = await cast(RedisCluster, client).cluster_info()
    return str(info.get("cluster_state", "unknown"))
