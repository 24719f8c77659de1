"""Redis implementations of the storage ports: conversations, locks, event de-duplication, profiles, approvals."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.core import texts
from bot.core.conversation import TURN_JSON, ConversationKey, Fold, MeasuredSize, StoredConversation, Turn
from bot.core.errors import StorageUnavailable
from bot.core.i18n import Text, tr
from bot.core.ports import Attachment
from bot.storage.connection import cluster_state, connect, is_cluster, public_location
from bot.storage.keys import Keys

__all__ = ["RedisStore", "connect", "public_location"]  # connect and public_location: where callers know them

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")
D = TypeVar("D", Fold, MeasuredSize)

# RedisClusterException: the cluster client found no usable node (all down, or REDIS_URL is not in cluster mode);
# redis-py does not derive it from RedisError.
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError, RedisClusterException)


def _translated(method: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Driver errors never leave the adapter: the core only knows StorageUnavailable."""

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except _UNREACHABLE as error:
            log.warning("redis unreachable: %s", type(error).__name__)
            raise StorageUnavailable() from error

    return wrapper


# Compare-and-delete / compare-and-extend: only the holder's token may release or renew a lock.
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end"
_RENEW = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end"
)
# Keep the current DM session while it is active; start the candidate after an idle period. One round trip.
_DM_SESSION = """
local current = redis.call('GET', KEYS[1])
if current then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return current
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return ARGV[1]
"""
# Only the person who asked may decide, and only once: "ok", "not_yours" or "expired".
_DECIDE = """
local user = redis.call('HGET', KEYS[1], 'user')
if not user then return 'expired' end
if user ~= ARGV[1] then return 'not_yours' end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'stopped' then return 'stopped' end
if state ~= 'pending' then return 'expired' end
redis.call('HSET', KEYS[1], 'state', ARGV[2])
return 'ok'
"""
# A pending approval whose answer stopped: settled as stopped (a decision that won the race is left as it is).
_ABANDON = """
if redis.call('HGET', KEYS[1], 'state') == 'pending' then redis.call('HSET', KEYS[1], 'state', 'stopped') end
return 1
"""
# GCRA rate limiter (a leaky bucket kept as one timestamp), plus a hold-off key set after a 429.
# Returns 0 when a unit was taken, else milliseconds to wait. Uses Redis's clock so processes agree.


async def _stopped(task: asyncio.Task[None], *, within_s: float) -> None:
    """Wait for a helper task told to stop by an Event; cancel it only if it does not stop in time.

    Cancelling one mid-command is what these helpers used to do, and under load a cancellation landing inside a
    Redis command could come back as a timeout instead (redis-py's socket timeout and the cancel racing), be handled
    as an outage, and leave the helper looping for good, with the answer that awaited it hanging (seen in
    bench/load.py on about 1 % of answers). It also left the connection in use.
    """
    done, _ = await asyncio.wait({task}, timeout=within_s)
    if not done:
        task.cancel()


def _socket_timeout_s(client: redis.Redis) -> float:
    if isinstance(client, RedisCluster):
        node = client.get_default_node() or next(iter(client.get_nodes()), None)
        kwargs = node.connection_kwargs if node is not None else {}
    else:
        kwargs = client.connection_pool.connection_kwargs
    return float(kwargs.get("socket_timeout") or 3.0)


def _decode(kind: type[D], raw: str | None) -> D | None:
    """A small JSON record from a hash field; an unreadable one is treated as absent, never as a failure."""
    if raw is None:
        return None
    try:
        return kind(**json.loads(raw))
    except (ValueError, TypeError):
        log.warning("ignoring an unreadable %s record", kind.__name__)
        return None


class RedisStore:
    """One Redis connection pool behind every storage port the bot uses."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        *,
        conversation_ttl_s: int,
        dm_idle_reset_s: int,
        dedup_ttl_s: int,
        profile_ttl_s: int = 3600,
        lock_lease_s: float = 30.0,
        lock_wait_s: float = 900.0,
    ) -> None:
        self.client = client
        self.keys = keys
        self._conversation_ttl_s = conversation_ttl_s
        self._dm_idle_reset_s = dm_idle_reset_s
        self._dedup_ttl_s = dedup_ttl_s
        self._profile_ttl_s = profile_ttl_s
        self._lock_lease_ms = int(lock_lease_s * 1000)
        self._lock_wait_s = lock_wait_s
        self._socket_timeout_s = _socket_timeout_s(client)
        self._release: Any = client.register_script(_RELEASE)
        self._renew: Any = client.register_script(_RENEW)
        self._dm_session: Any = client.register_script(_DM_SESSION)
        self._decide: Any = client.register_script(_DECIDE)
        self._abandon: Any = client.register_script(_ABANDON)

    # --- ConversationStore ---------------------------------------------------------------------------
    @_translated
    async def load(self, key: ConversationKey) -> StoredConversation:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.lrange(self.keys.conversation(key), 0, -1)
            pipe.hmget(self.keys.conversation_meta(key), ["persona", "fold", "measured"])
            raw, (persona, fold, measured) = await pipe.execute()
        turns = []
        for item in raw:
            try:
                turns.append(TURN_JSON.validate_json(item))
            except ValueError:
                # One unreadable entry (e.g. written by a newer version) must not make the thread unusable.
                log.warning("skipping an unreadable turn in %s", self.keys.conversation(key))
        return StoredConversation(
            turns=turns, persona=persona, fold=_decode(Fold, fold), measured=_decode(MeasuredSize, measured)
        )

    @_translated
    async def append(
        self,
        key: ConversationKey,
        *turns: Turn,
        persona: str | None = None,
        measured: MeasuredSize | None = None,
    ) -> None:
        name, meta = self.keys.conversation(key), self.keys.conversation_meta(key)
        async with self.client.pipeline(transaction=True) as pipe:
            if turns:
                pipe.rpush(name, *(TURN_JSON.dump_json(turn, exclude_none=True).decode() for turn in turns))
            if persona is not None:
                pipe.hset(meta, "persona", persona)
            if measured is not None:
                pipe.hset(meta, "measured", json.dumps(dataclasses.asdict(measured)))
            pipe.expire(name, self._conversation_ttl_s)
            pipe.expire(meta, self._conversation_ttl_s)
            await pipe.execute()

    @_translated
    async def save_fold(self, key: ConversationKey, fold: Fold) -> None:
        meta = self.keys.conversation_meta(key)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(meta, "fold", json.dumps(dataclasses.asdict(fold)))
            pipe.expire(meta, self._conversation_ttl_s)
            await pipe.execute()

    @_translated
    async def forget(self, key: ConversationKey) -> bool:
        return bool(await self.client.delete(self.keys.conversation(key), self.keys.conversation_meta(key)))

    @_translated
    async def end_dm_session(self, workspace_id: str, channel_id: str) -> None:
        await self.client.delete(self.keys.dm_session(workspace_id, channel_id))

    @_translated
    async def exists(self, key: ConversationKey) -> bool:
        return bool(await self.client.exists(self.keys.conversation(key)))

    @_translated
    async def dm_session(self, workspace_id: str, channel_id: str, candidate_id: str) -> str:
        name = self.keys.dm_session(workspace_id, channel_id)
        return str(await self._dm_session(keys=[name], args=[candidate_id, self._dm_idle_reset_s]))

    @_translated
    async def rewind(self, key: ConversationKey, keep: int) -> None:
        if keep <= 0:  # LTRIM 0 -1 would keep everything
            await self.client.delete(self.keys.conversation(key))
            return
        await self.client.ltrim(self.keys.conversation(key), 0, keep - 1)

    def lock(self, key: ConversationKey) -> contextlib.AbstractAsyncContextManager[None]:
        """A leased lock renewed while held, so a crashed holder frees the thread within one lease."""
        return self.leased_lock(self.keys.conversation_lock(key))

    @contextlib.asynccontextmanager
    async def leased_lock(
        self, name: str, *, wait_s: float | None = None, busy: Text = texts.THREAD_BUSY
    ) -> AsyncIterator[None]:
        """Hold `name` across processes, renewing the lease while held; StorageUnavailable(busy) after `wait_s`."""
        token = secrets.token_hex(8)
        await self._acquire(name, token, self._lock_wait_s if wait_s is None else wait_s, busy)
        released = asyncio.Event()
        renewer = asyncio.create_task(self._keep_renewing(name, token, released))
        try:
            yield
        finally:
            released.set()
            await _stopped(renewer, within_s=self._socket_timeout_s + 1)
            try:
                await self._release(keys=[name], args=[token])
            except _UNREACHABLE:
                log.warning("could not release %s; its lease will expire", name)

    @_translated
    async def _acquire(self, name: str, token: str, wait_s: float, busy: Text) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        delay = 0.02
        while not await self.client.set(name, token, nx=True, px=self._lock_lease_ms):
            if loop.time() > deadline:
                raise StorageUnavailable(tr(busy))
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    async def _keep_renewing(self, name: str, token: str, released: asyncio.Event) -> None:
        """Stopped by `released`, not cancelled (see `_stopped`)."""
        while not released.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(released.wait(), self._lock_lease_ms / 3000)
            if released.is_set():
                return
            try:
                await self._renew(keys=[name], args=[token, self._lock_lease_ms])
            except _UNREACHABLE:
                log.warning("could not renew %s", name)

    # --- ChannelSettingsStore ---------------------------------------------------------------------------
    @_translated
    async def channel_persona(self, workspace_id: str, channel_id: str) -> str | None:
        value = await self.client.get(self.keys.channel_persona(workspace_id, channel_id))
        return str(value) if value is not None else None

    @_translated
    async def set_channel_persona(self, workspace_id: str, channel_id: str, persona: str) -> None:
        await self.client.set(self.keys.channel_persona(workspace_id, channel_id), persona)

    # --- MediaStore -----------------------------------------------------------------------------------
    @_translated
    async def get_media(self, workspace_id: str, refs: Sequence[str]) -> dict[str, Attachment]:
        """One round trip for all of a thread's media; each read pushes the file's time-to-live forward."""
        if not refs:
            return {}
        async with self.client.pipeline(transaction=False) as pipe:
            for ref in refs:
                pipe.getex(self.keys.media(workspace_id, ref), ex=self._conversation_ttl_s)
            values = await pipe.execute()
        found = {}
        for ref, raw in zip(refs, values, strict=True):
            if raw is None:
                continue
            try:
                found[ref] = Attachment(**json.loads(raw))
            except (ValueError, TypeError):
                log.warning("skipping unreadable media %s", ref)
        return found

    @_translated
    async def put_media(self, workspace_id: str, ref: str, attachment: Attachment) -> None:
        value = json.dumps(
            {"kind": attachment.kind, "media_type": attachment.media_type, "data_b64": attachment.data_b64}
        )
        await self.client.set(self.keys.media(workspace_id, ref), value, ex=self._conversation_ttl_s)

    # --- BudgetStore -----------------------------------------------------------------------------------
    @_translated
    async def budgets(self, workspace_id: str) -> dict[str, float | None]:
        raw = await self.client.hgetall(self.keys.budgets(workspace_id))
        return {str(kind): (None if value == "off" else float(value)) for kind, value in raw.items()}

    @_translated
    async def set_budget(self, workspace_id: str, kind: str, usd: float | None) -> None:
        await self.client.hset(self.keys.budgets(workspace_id), kind, "off" if usd is None else repr(usd))

    # --- Approvals ------------------------------------------------------------------------------------
    @_translated
    async def open(self, workspace_id: str, approval_id: str, user_id: str, ttl_s: int) -> None:
        name = self.keys.approval(workspace_id, approval_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(name, mapping={"user": user_id, "state": "pending"})
            pipe.expire(name, ttl_s)
            await pipe.execute()

    async def wait(self, workspace_id: str, approval_id: str, timeout_s: float) -> bool | None:
        """Polls: the click may be handled by another bot process, so an in-memory future would not do."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        name = self.keys.approval(workspace_id, approval_id)
        while loop.time() < deadline:
            try:
                state = await self.client.hget(name, "state")
            except _UNREACHABLE:
                state = "pending"
            if state in ("approved", "denied"):
                return state == "approved"
            if state is None:
                return None
            await asyncio.sleep(0.2)
        with contextlib.suppress(*_UNREACHABLE):
            await self.client.hset(name, "state", "expired")  # a late click is then told it expired
        return None

    @_translated
    async def decide(self, workspace_id: str, approval_id: str, user_id: str, approved: bool) -> str:
        state = "approved" if approved else "denied"
        return str(await self._decide(keys=[self.keys.approval(workspace_id, approval_id)], args=[user_id, state]))

    @_translated
    async def abandon(self, workspace_id: str, approval_id: str) -> None:
        await self._abandon(keys=[self.keys.approval(workspace_id, approval_id)])

    # --- ProfileCache --------------------------------------------------------------------------------
    @_translated
    async def get_profile(self, kind: str, workspace_id: str, object_id: str) -> dict[str, str] | None:
        raw = await self.client.get(self.keys.profile(kind, workspace_id, object_id))
        if raw is None:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            return None
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else None

    @_translated
    async def put_profile(self, kind: str, workspace_id: str, object_id: str, profile: dict[str, str]) -> None:
        name = self.keys.profile(kind, workspace_id, object_id)
        await self.client.set(name, json.dumps(profile), ex=self._profile_ttl_s)

    # --- EventLedger ---------------------------------------------------------------------------------
    @_translated
    async def first_sightings(self, workspace_id: str, delivery_ids: Sequence[str]) -> list[bool]:
        """One round trip for all of a delivery's ids: it sits on the path of Slack's 3-second ack."""
        async with self.client.pipeline(transaction=False) as pipe:
            for delivery_id in delivery_ids:
                pipe.set(self.keys.delivery(workspace_id, delivery_id), 1, nx=True, ex=self._dedup_ttl_s)
            return [bool(fresh) for fresh in await pipe.execute()]

    # --- HealthCheck ---------------------------------------------------------------------------------
    async def healthy(self) -> bool:
        return (await self.health_report()).get("redis") == "ok"

    async def health_report(self) -> dict[str, str]:
        """What /healthz shows: `{"redis": "ok"}`; on a cluster also its `cluster_state` (CLUSTER INFO), and the
        cluster counts as healthy only when that is "ok" (a cluster missing slots refuses some keys)."""
        try:
            if not is_cluster(self.client):
                alive = bool(await asyncio.wait_for(self.client.ping(), timeout=2.0))
                return {"redis": "ok" if alive else "unreachable"}
            state = await asyncio.wait_for(cluster_state(self.client), timeout=2.0)
        except RedisClusterException as error:  # e.g. "Cluster mode is not enabled on this node": say so
            log.warning("redis cluster: %s", error)
            return {"redis": "unreachable", "redis_cluster_state": "unknown"}
        except (*_UNREACHABLE, TimeoutError, RedisError):
            return {"redis": "unreachable"}
        return {"redis": "ok" if state == "ok" else "cluster " + state, "redis_cluster_state": state}

    async def close(self) -> None:
        await self.client.aclose()
