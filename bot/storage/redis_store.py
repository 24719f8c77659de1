"""Redis implementations of the storage ports: conversations, locks, event de-duplication, profiles, approvals."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio as redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from bot.core.ports import Attachment
from bot.storage.connection import cluster_state, connect, is_cluster, listen, public_location
from bot.storage.keys import MAX_FOLDED_TURNS_KEPT, Keys
from bot.storage.redis_conversations import RedisConversations
from bot.storage.redis_errors import UNREACHABLE as _UNREACHABLE
from bot.storage.redis_errors import translated as _translated

# connect and public_location: where callers know them; _translated and _UNREACHABLE: where the other
# Redis adapters import them from.
__all__ = ["_UNREACHABLE", "RedisStore", "_translated", "connect", "public_location"]

log = logging.getLogger(__name__)

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


def _socket_timeout_s(client: redis.Redis) -> float:
    if isinstance(client, RedisCluster):
        node = client.get_default_node() or next(iter(client.get_nodes()), None)
        kwargs = node.connection_kwargs if node is not None else {}
    else:
        kwargs = client.connection_pool.connection_kwargs
    return float(kwargs.get("socket_timeout") or 3.0)


class RedisStore(RedisConversations):
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
        folded_turns_kept: int = MAX_FOLDED_TURNS_KEPT,
    ) -> None:
        self.client = client
        self._folded_turns_kept = folded_turns_kept
        self.keys = keys
        self._conversation_ttl_s = conversation_ttl_s
        self._dm_idle_reset_s = dm_idle_reset_s
        self._dedup_ttl_s = dedup_ttl_s
        self._profile_ttl_s = profile_ttl_s
        self._lock_lease_ms = int(lock_lease_s * 1000)
        self._lock_wait_s = lock_wait_s
        self._socket_timeout_s = _socket_timeout_s(client)
        self._register_conversation_scripts()
        self._dm_session: Any = client.register_script(_DM_SESSION)
        self._decide: Any = client.register_script(_DECIDE)
        self._abandon: Any = client.register_script(_ABANDON)

    # --- ConversationStore (the rest is RedisConversations) ---------------------------------------------
    @_translated
    async def end_dm_session(self, workspace_id: str, channel_id: str) -> None:
        await self.client.delete(self.keys.dm_session(workspace_id, channel_id))

    @_translated
    async def dm_session(self, workspace_id: str, channel_id: str, candidate_id: str) -> str:
        name = self.keys.dm_session(workspace_id, channel_id)
        return str(await self._dm_session(keys=[name], args=[candidate_id, self._dm_idle_reset_s]))

    # --- ChannelSettingsStore ---------------------------------------------------------------------------
    @_translated
    async def channel_persona(self, workspace_id: str, channel_id: str) -> str | None:
        value = await self.client.get(self.keys.channel_persona(workspace_id, channel_id))
        return str(value) if value is not None else None

    @_translated
    async def set_channel_persona(self, workspace_id: str, channel_id: str, persona: str) -> None:
        await self.client.set(self.keys.channel_persona(workspace_id, channel_id), persona)
        await self._settings_changed(workspace_id)

    async def _settings_changed(self, workspace_id: str) -> None:
        """Every process's copy of the workspace's settings is dropped (bot/storage/settings_cache.py). Not in the
        write's pipeline: a cluster client refuses PUBLISH there; a settings change is rare."""
        await self.client.publish(self.keys.settings_changes_channel(), workspace_id)

    @_translated
    async def follow_settings_changes(
        self, on_change: Callable[[str], None], on_ready: Callable[[], Awaitable[None]]
    ) -> None:
        """Hear every workspace whose settings change, until the connection breaks (then raise); `on_ready` runs
        once subscribed, so the caller can drop what it read while not listening."""
        await listen(self.client, self.keys.settings_changes_channel(), on_change, on_ready)

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
        fields = {"kind": attachment.kind, "media_type": attachment.media_type, "data_b64": attachment.data_b64}
        # Its size as the model reads it (a budget reservation covers it); absent in records stored before.
        sizes = {"width": attachment.width, "height": attachment.height, "pages": attachment.pages}
        value = json.dumps({**fields, **{name: size for name, size in sizes.items() if size is not None}})
        await self.client.set(self.keys.media(workspace_id, ref), value, ex=self._conversation_ttl_s)

    # --- BudgetStore -----------------------------------------------------------------------------------
    @_translated
    async def budgets(self, workspace_id: str) -> dict[str, float | None]:
        raw = await self.client.hgetall(self.keys.budgets(workspace_id))
        return {str(kind): (None if value == "off" else float(value)) for kind, value in raw.items()}

    @_translated
    async def set_budget(self, workspace_id: str, kind: str, usd: float | None) -> None:
        await self.client.hset(self.keys.budgets(workspace_id), kind, "off" if usd is None else repr(usd))
        await self._settings_changed(workspace_id)

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
    async def first_sightings(
        self, workspace_id: str, delivery_ids: Sequence[str], *, claim: str | None = None
    ) -> list[bool]:
        """One round trip for all of a delivery's ids. Each id is set to the claim if unset, then read back: it is
        ours if it holds our claim (set now, or by an earlier try of ours whose reply was lost)."""
        token = claim or secrets.token_hex(8)
        async with self.client.pipeline(transaction=False) as pipe:
            for delivery_id in delivery_ids:
                name = self.keys.delivery(workspace_id, delivery_id)
                pipe.set(name, token, nx=True, ex=self._dedup_ttl_s)
                pipe.get(name)
            replies = await pipe.execute()
        return [held == token for held in replies[1::2]]

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
