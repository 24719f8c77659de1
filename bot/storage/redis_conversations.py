"""The Redis ConversationStore: a thread's turns, its meta hash, and its fenced lease (see bot/core/leases.py).

Every key of one thread shares its hash tag (`Keys._thread`), so each of its scripts (bot/storage/thread_scripts.py)
touches one slot on a cluster. A write given a lease runs as one script that first compares the lease's token with
the thread's fence counter: no other holder can take the thread between the check and the write.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import secrets
import time
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
from bot.storage import thread_scripts as scripts
from bot.storage.keys import Keys
from bot.storage.redis_errors import UNREACHABLE, stopped, translated
from bot.storage.thread_window import absolute

log = logging.getLogger("bot.storage.redis_store")

# A waiter in a thread's queue tries again at least every 0.25 s; one silent this long has stopped (its process died).
WAITER_ALIVE_MS = 5_000
D = TypeVar("D", Fold, MeasuredSize, OpenExchange)

STALE = -1  # what a fenced script returns when the lease's token is no longer the thread's
_FINISHED = 2  # what a renewal returns once the holder's last write gave the thread up


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
    _folded_turns_kept: int

    def _register_conversation_scripts(self) -> None:
        register = self.client.register_script
        self._acquire_script: Any = register(scripts.ACQUIRE)
        self._acquire_and_load: Any = register(scripts.ACQUIRE_AND_LOAD)
        self._renew_fenced: Any = register(scripts.RENEW_FENCED)
        self._release: Any = register(scripts.RELEASE)
        self._renew: Any = register(scripts.RENEW)
        self._append: Any = register(scripts.APPEND)
        self._save_fold: Any = register(scripts.SAVE_FOLD)
        self._forget: Any = register(scripts.FORGET)
        self._rewind: Any = register(scripts.REWIND)
        self._load: Any = register(scripts.LOAD)
        self._folded: Any = register(scripts.FOLDED)

    def _thread_keys(self, key: ConversationKey) -> list[str]:
        return [self.keys.conversation(key), self.keys.conversation_meta(key), self.keys.conversation_fence(key)]

    @translated
    async def load(self, key: ConversationKey) -> StoredConversation:
        return self._stored(key, await self._load(keys=self._thread_keys(key)[:2]))

    def _stored(self, key: ConversationKey, raw: list[Any]) -> StoredConversation:
        persona, fold, measured, opened, base, start = raw[:6]
        turns = self._turns(key, raw[6:])
        return StoredConversation(
            turns=absolute(turns[:1], turns[1:], int(start) + int(base)),
            persona=persona,
            fold=_decode(Fold, fold),
            measured=_decode(MeasuredSize, measured),
            open=_decode(OpenExchange, opened),
        )

    @translated
    async def folded(self, key: ConversationKey, upto: int) -> list[tuple[int, Turn]]:
        raw = await self._folded(keys=self._thread_keys(key)[:2], args=[upto])
        base = int(raw[0])
        return [(base + position, turn) for position, turn in enumerate(self._turns(key, raw[1:]), start=1)]

    def _turns(self, key: ConversationKey, raw: list[Any]) -> list[Turn]:
        turns = []
        for item in raw:
            try:
                turns.append(TURN_JSON.validate_json(item))
            except ValueError:
                # One unreadable entry (e.g. written by a newer version) must not make the thread unusable.
                log.warning("skipping an unreadable turn in %s", self.keys.conversation(key))
        return turns

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
        if exchange in ("open", "finish") and lease is None:
            raise ValueError("an open exchange belongs to a lease")
        args = [
            str(lease.token) if lease is not None else "",
            self._conversation_ttl_s,
            persona or "",
            json.dumps(dataclasses.asdict(measured)) if measured is not None else "",
            exchange or "",
            *(TURN_JSON.dump_json(turn, exclude_none=True).decode() for turn in turns),
        ]
        keys = [*self._thread_keys(key), self.keys.conversation_lock(key)]
        _fenced(lease, await self._append(keys=keys, args=args))
        if exchange == "finish" and lease is not None:
            lease.end()

    @translated
    async def save_fold(self, key: ConversationKey, fold: Fold, *, lease: Lease | None = None) -> None:
        token = str(lease.token) if lease is not None else ""
        record = json.dumps(dataclasses.asdict(fold))
        args = [token, self._conversation_ttl_s, record, fold.upto, self._folded_turns_kept]
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
    async def lock(self, key: ConversationKey, *, order: float | None = None) -> AsyncIterator[Lease]:
        """A fenced lease, renewed while held, so a crashed holder frees the thread within one lease. Waiters take
        the thread in `order` (their question's time), earliest first."""
        name, fence = self.keys.conversation_lock(key), self.keys.conversation_fence(key)
        queue, waiters = self.keys.conversation_lock_queue(key), self.keys.conversation_lock_waiters(key)
        fence_ttl_s = max(self._conversation_ttl_s, 2 * self._lock_lease_ms // 1000 + 1)
        waiter = secrets.token_hex(8)
        args = [fence_ttl_s, time.time() if order is None else order, waiter, WAITER_ALIVE_MS]
        try:
            token, preloaded = await self._take_and_load(name, [fence, queue, waiters], args, key)
            if not token:
                token = await self._take(name, self._lock_wait_s, texts.THREAD_BUSY, [fence, queue, waiters], args)
        except BaseException:
            with contextlib.suppress(
                *UNREACHABLE, StorageUnavailable
            ):  # gave up waiting: out of the queue now, not in a few seconds
                await self._leave_queue(queue, waiters, waiter)
            raise
        lease = Lease(token)
        lease.preloaded = preloaded
        renew_keys = [name, fence, self.keys.conversation_meta(key)]
        async with self._held(
            name, str(token), lease, lambda: self._renew_fenced(keys=renew_keys, args=[token, self._lock_lease_ms])
        ):
            yield lease

    async def _leave_queue(self, queue: str, waiters: str, waiter: str) -> None:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.zrem(queue, waiter)
            pipe.hdel(waiters, waiter)
            await pipe.execute()

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

    async def _take_and_load(
        self, name: str, keys: list[str], args: list[object], key: ConversationKey
    ) -> tuple[int, StoredConversation | None]:
        """A first try at the thread's lock that also reads the thread, in one round trip; (0, None) when the
        thread is held (`_take` then waits for it, and the holder loads it afterwards)."""
        lock_keys = [name, *keys, *self._thread_keys(key)[:2]]
        raw = await self._acquire_and_load(keys=lock_keys, args=[self._lock_lease_ms, *args])
        token = int(raw[0])
        return (token, self._stored(key, raw[1:])) if token else (0, None)

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
            if not lease.ended:  # else the holder's last write gave the thread up already
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
            if renewed == _FINISHED:
                return
            if not renewed:
                log.error("lost the lease on %s: another holder took it while this one could not renew", name)
                lease.lose()
                return
            lease.renewal_failures = 0
