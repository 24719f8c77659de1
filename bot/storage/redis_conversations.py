"""The Redis ConversationStore: a thread's turns, its meta hash, and its fenced lease (see bot/core/leases.py).

Every key of one thread shares its hash tag (`Keys._thread`), so each script below touches one slot on a cluster.
A write given a lease runs as one script that first compares the lease's token with the thread's fence counter:
no other holder can take the thread between the check and the write.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as redis
from redis.exceptions import RedisError

from bot.core import texts
from bot.core.conversation import (
    TURN_JSON,
    ConversationKey,
    Fold,
    MeasuredSize,
    OpenExchange,
    StoredConversation,
    Turn,
)
from bot.core.errors import StorageUnavailable
from bot.core.i18n import Text, tr
from bot.core.leases import Lease, LeaseLost
from bot.core.ports import ExchangeMark
from bot.storage.keys import Keys
from bot.storage.redis_errors import UNREACHABLE, stopped, translated

log = logging.getLogger("bot.storage.redis_store")
D = TypeVar("D", Fold, MeasuredSize, OpenExchange)

STALE = -1  # what a fenced script returns when the lease's token is no longer the thread's

# KEYS: lock, fence. ARGV: lease ms, fence TTL s. Returns the new token, or 0 while someone holds the thread.
_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local token = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('SET', KEYS[1], token, 'PX', ARGV[1])
return token
"""
# KEYS: lock, fence. ARGV: token, lease ms. A lock key that expired while this holder could not reach Redis is taken
# back if nobody else took the thread meanwhile (the fence is still this token): its writes were never at risk.
_RENEW_FENCED = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end"
_RENEW = (
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end"
)
_FENCE = "if ARGV[1] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[1] then return -1 end\n"
# KEYS: turns, meta, fence. ARGV: token or '', TTL s, persona or '', measured or '', exchange or '', turns...
_APPEND = (
    _FENCE
    + """
local added = #ARGV - 5
local length
if added > 0 then length = redis.call('RPUSH', KEYS[1], unpack(ARGV, 6)) else length = redis.call('LLEN', KEYS[1]) end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[2], 'persona', ARGV[3]) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[2], 'measured', ARGV[4]) end
if ARGV[5] == 'open' then
  redis.call('HSET', KEYS[2], 'open', cjson.encode({token = tonumber(ARGV[1]), question_index = length - added}))
elseif ARGV[5] == 'close' then
  redis.call('HDEL', KEYS[2], 'open')
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return length
"""
)
# KEYS: turns, meta, fence. ARGV: token or '', TTL s, fold.
_SAVE_FOLD = _FENCE + "redis.call('HSET', KEYS[2], 'fold', ARGV[3])\nredis.call('EXPIRE', KEYS[2], ARGV[2])\nreturn 1"
# KEYS: turns, meta, fence. ARGV: token or ''.
_FORGET = _FENCE + "return redis.call('DEL', KEYS[1], KEYS[2])"
# KEYS: turns, meta, fence. ARGV: token or '', keep, exchange or ''. LTRIM 0 -1 would keep everything: keep 0 deletes.
_REWIND = (
    _FENCE
    + """
local keep = tonumber(ARGV[2])
if keep <= 0 then redis.call('DEL', KEYS[1]) else redis.call('LTRIM', KEYS[1], 0, keep - 1) end
if ARGV[3] == 'open' and keep > 0 then
  redis.call('HSET', KEYS[2], 'open', cjson.encode({token = tonumber(ARGV[1]), question_index = keep - 1}))
end
return 1
"""
)


def _decode(kind: type[D], raw: str | None) -> D | None:
    """A small JSON record from a hash field; an unreadable one is treated as absent, never as a failure."""
    if raw is None:
        return None
    try:
        return kind(**json.loads(raw))
    except (ValueError, TypeError):
        log.warning("ignoring an unreadable %s record", kind.__name__)
        return None


def _fenced(lease: Lease | None, result: object) -> None:
    """A stale token marks the lease lost for good and stops the caller."""
    if lease is not None and result == STALE:
        lease.lose()
        raise LeaseLost()


class RedisConversations:
    """The ConversationStore half of RedisStore (which sets these attributes and registers the scripts)."""

    client: redis.Redis
    keys: Keys
    _conversation_ttl_s: int
    _lock_lease_ms: int
    _lock_wait_s: float
    _socket_timeout_s: float

    def _register_conversation_scripts(self) -> None:
        register = self.client.register_script
        self._acquire_script: Any = register(_ACQUIRE)
        self._renew_fenced: Any = register(_RENEW_FENCED)
        self._release: Any = register(_RELEASE)
        self._renew: Any = register(_RENEW)
        self._append: Any = register(_APPEND)
        self._save_fold: Any = register(_SAVE_FOLD)
        self._forget: Any = register(_FORGET)
        self._rewind: Any = register(_REWIND)

    def _thread_keys(self, key: ConversationKey) -> list[str]:
        return [self.keys.conversation(key), self.keys.conversation_meta(key), self.keys.conversation_fence(key)]

    @translated
    async def load(self, key: ConversationKey) -> StoredConversation:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.lrange(self.keys.conversation(key), 0, -1)
            pipe.hmget(self.keys.conversation_meta(key), ["persona", "fold", "measured", "open"])
            raw, (persona, fold, measured, opened) = await pipe.execute()
        turns = []
        for item in raw:
            try:
                turns.append(TURN_JSON.validate_json(item))
            except ValueError:
                # One unreadable entry (e.g. written by a newer version) must not make the thread unusable.
                log.warning("skipping an unreadable turn in %s", self.keys.conversation(key))
        return StoredConversation(
            turns=turns,
            persona=persona,
            fold=_decode(Fold, fold),
            measured=_decode(MeasuredSize, measured),
            open=_decode(OpenExchange, opened),
        )

    @translated
    async def append(
        self,
        key: ConversationKey,
        *turns: Turn,
        persona: str | None = None,
        measured: MeasuredSize | None = None,
        lease: Lease | None = None,
        exchange: ExchangeMark | None = None,
    ) -> None:
        if exchange == "open" and lease is None:
            raise ValueError("an open exchange belongs to a lease")
        args = [
            str(lease.token) if lease is not None else "",
            self._conversation_ttl_s,
            persona or "",
            json.dumps(dataclasses.asdict(measured)) if measured is not None else "",
            exchange or "",
            *(TURN_JSON.dump_json(turn, exclude_none=True).decode() for turn in turns),
        ]
        _fenced(lease, await self._append(keys=self._thread_keys(key), args=args))

    @translated
    async def save_fold(self, key: ConversationKey, fold: Fold, *, lease: Lease | None = None) -> None:
        token = str(lease.token) if lease is not None else ""
        args = [token, self._conversation_ttl_s, json.dumps(dataclasses.asdict(fold))]
        _fenced(lease, await self._save_fold(keys=self._thread_keys(key), args=args))

    @translated
    async def forget(self, key: ConversationKey, *, lease: Lease | None = None) -> bool:
        result = await self._forget(keys=self._thread_keys(key), args=[str(lease.token) if lease is not None else ""])
        _fenced(lease, result)
        return bool(result)

    @translated
    async def exists(self, key: ConversationKey) -> bool:
        return bool(await self.client.exists(self.keys.conversation(key)))

    @translated
    async def rewind(
        self, key: ConversationKey, keep: int, *, lease: Lease | None = None, exchange: ExchangeMark | None = None
    ) -> None:
        token = str(lease.token) if lease is not None else ""
        _fenced(lease, await self._rewind(keys=self._thread_keys(key), args=[token, keep, exchange or ""]))

    @contextlib.asynccontextmanager
    async def lock(self, key: ConversationKey) -> AsyncIterator[Lease]:
        """A fenced lease, renewed while held, so a crashed holder frees the thread within one lease."""
        name, fence = self.keys.conversation_lock(key), self.keys.conversation_fence(key)
        fence_ttl_s = max(self._conversation_ttl_s, 2 * self._lock_lease_ms // 1000 + 1)
        token = await self._take(name, self._lock_wait_s, texts.THREAD_BUSY, [fence], [fence_ttl_s])
        lease = Lease(token)
        async with self._held(
            name, str(token), lease, lambda: self._renew_fenced(keys=[name, fence], args=[token, self._lock_lease_ms])
        ):
            yield lease

    @contextlib.asynccontextmanager
    async def leased_lock(
        self, name: str, *, wait_s: float | None = None, busy: Text = texts.THREAD_BUSY
    ) -> AsyncIterator[None]:
        """Hold `name` across processes (no fencing), renewing the lease while held; StorageUnavailable(busy) after
        `wait_s`. A lost lease is logged (the holder is not told: it only guards a token refresh, not history)."""
        token = secrets.token_hex(8)
        await self._take(name, self._lock_wait_s if wait_s is None else wait_s, busy, [], [], token=token)
        lease = Lease(0)
        async with self._held(name, token, lease, lambda: self._renew(keys=[name], args=[token, self._lock_lease_ms])):
            yield

    @translated
    async def _take(
        self, name: str, wait_s: float, busy: Text, keys: list[str], args: list[object], *, token: str = ""
    ) -> int:
        """Poll until the lock is ours: a fenced one returns its new token, a plain one (given `token`) 0."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        delay = 0.02
        while True:
            if token:
                if await self.client.set(name, token, nx=True, px=self._lock_lease_ms):
                    return 0
            elif taken := int(await self._acquire_script(keys=[name, *keys], args=[self._lock_lease_ms, *args])):
                return taken
            if loop.time() > deadline:
                raise StorageUnavailable(tr(busy))
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, 0.25)

    @contextlib.asynccontextmanager
    async def _held(
        self, name: str, token: str, lease: Lease, renew: Callable[[], Awaitable[object]]
    ) -> AsyncIterator[None]:
        released = asyncio.Event()
        renewer = asyncio.create_task(self._keep_renewing(name, renew, lease, released))
        try:
            yield
        finally:
            released.set()
            await stopped(renewer, within_s=self._socket_timeout_s + 1)
            try:
                await self._release(keys=[name], args=[token])
            except UNREACHABLE:
                log.warning("could not release %s; its lease will expire", name)

    async def _keep_renewing(
        self, name: str, renew: Callable[[], Awaitable[object]], lease: Lease, released: asyncio.Event
    ) -> None:
        """Renew every third of the lease (sooner after a failure); a refusal marks the lease lost. Stopped by
        `released`, not cancelled (see `stopped`)."""
        interval_s = self._lock_lease_ms / 3000
        while not released.is_set():
            wait_s = interval_s if lease.renewal_failures == 0 else min(interval_s, 0.25)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(released.wait(), wait_s)
            if released.is_set():
                return
            try:
                renewed = await renew()
            except (*UNREACHABLE, RedisError) as error:
                lease.renewal_failures += 1
                log.warning("could not renew %s (%d in a row): %s", name, lease.renewal_failures, type(error).__name__)
                continue
            if not renewed:
                log.error("lost the lease on %s: another holder took it while this one could not renew", name)
                lease.lose()
                return
            lease.renewal_failures = 0
