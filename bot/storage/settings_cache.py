"""A copy of what admins set per workspace (channel personas, budgets), read by every answer.

Each answer read its workspace's budgets, and each new thread its channel's persona: one Redis round trip each, for
values an admin changes a few times a month (issue 15: at most 12 round trips per answer). Every change is published
(RedisStore.follow_settings_changes) and every process drops its copy of that workspace when it hears it, so while
this process listens a read is kept for HEARD_SETTINGS_CACHE_S. While it does not (not started, or Redis is away and
it is subscribing again) a read is kept for SETTINGS_CACHE_S only, and what it kept while listening is dropped when
listening stops. A change made through this process is seen at once either way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)

SETTINGS_CACHE_S = 5.0  # while changes cannot be heard
HEARD_SETTINGS_CACHE_S = 300.0  # while they are: only a lost message can leave a copy stale, for at most this long
MAX_CACHED = 10_000  # channels and workspaces kept; the oldest go first
FOLLOW_RETRY_S = (1.0, 2.0, 5.0, 15.0)  # waits before subscribing again after the subscription broke
CLOSE_WAIT_S = 3.0  # closing a subscription can hang on a connection Redis never answers again; shutdown goes on


class WorkspaceSettingsStore(Protocol):
    async def channel_persona(self, workspace_id: str, channel_id: str) -> str | None: ...

    async def set_channel_persona(self, workspace_id: str, channel_id: str, persona: str) -> None: ...

    async def budgets(self, workspace_id: str) -> dict[str, float | None]: ...

    async def set_budget(self, workspace_id: str, kind: str, usd: float | None) -> None: ...

    async def follow_settings_changes(
        self, on_change: Callable[[str], None], on_ready: Callable[[], Awaitable[None]]
    ) -> None: ...


K = TypeVar("K")
V = TypeVar("V")


class _Recent(Generic[K, V]):
    """Values read lately, each until its own deadline; bounded (least recently stored go first)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> tuple[bool, V | None]:
        found = self._items.get(key)
        if found is None or found[0] <= self._clock():
            return False, None
        return True, found[1]

    def put(self, key: K, value: V, ttl_s: float) -> None:
        self._items[key] = (self._clock() + ttl_s, value)
        self._items.move_to_end(key)
        while len(self._items) > MAX_CACHED:
            self._items.popitem(last=False)

    def forget(self, key: K) -> None:
        self._items.pop(key, None)

    def forget_where(self, matches: Callable[[K], bool]) -> None:
        for key in [key for key in self._items if matches(key)]:
            del self._items[key]

    def clear(self) -> None:
        self._items.clear()


class CachedWorkspaceSettings:
    """The store's channel personas and budgets, read through a copy (module docstring); writes go straight through."""

    def __init__(
        self,
        store: WorkspaceSettingsStore,
        *,
        ttl_s: float = SETTINGS_CACHE_S,
        heard_ttl_s: float = HEARD_SETTINGS_CACHE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._heard_ttl_s = heard_ttl_s
        self._personas: _Recent[tuple[str, str], str | None] = _Recent(clock)
        self._budgets: _Recent[str, dict[str, float | None]] = _Recent(clock)
        self._hearing = False
        # Counts changes heard: a read that was under way when one came is not kept (it may predate the change).
        self._changes = 0
        self._follower: asyncio.Task[None] | None = None

    async def channel_persona(self, workspace_id: str, channel_id: str) -> str | None:
        known, persona = self._personas.get((workspace_id, channel_id))
        if not known:
            changes, ttl_s = self._changes, self._ttl()
            persona = await self._store.channel_persona(workspace_id, channel_id)
            if changes == self._changes:
                self._personas.put((workspace_id, channel_id), persona, ttl_s)
        return persona

    async def set_channel_persona(self, workspace_id: str, channel_id: str, persona: str) -> None:
        self._changed(workspace_id)
        await self._store.set_channel_persona(workspace_id, channel_id, persona)
        self._changed(workspace_id)

    async def budgets(self, workspace_id: str) -> dict[str, float | None]:
        known, budgets = self._budgets.get(workspace_id)
        if not known or budgets is None:
            changes, ttl_s = self._changes, self._ttl()
            budgets = await self._store.budgets(workspace_id)
            if changes == self._changes:
                self._budgets.put(workspace_id, budgets, ttl_s)
        return dict(budgets)

    async def set_budget(self, workspace_id: str, kind: str, usd: float | None) -> None:
        self._changed(workspace_id)
        await self._store.set_budget(workspace_id, kind, usd)
        self._changed(workspace_id)

    @property
    def hearing(self) -> bool:
        """Subscribed to changes: reads are kept for the long time-to-live."""
        return self._hearing

    def start(self) -> None:
        """Listen for changes made through any process, for as long as this one runs (until `close`)."""
        if self._follower is None:
            self._follower = asyncio.create_task(self._follow(), name="settings-follower")

    async def close(self) -> None:
        if self._follower is None:
            return
        self._follower.cancel()
        _, stuck = await asyncio.wait([self._follower], timeout=CLOSE_WAIT_S)
        if stuck:
            log.warning("the settings follower did not stop within %g s; leaving it", CLOSE_WAIT_S)

    def _ttl(self) -> float:
        return self._heard_ttl_s if self._hearing else self._ttl_s

    def _changed(self, workspace_id: str) -> None:
        self._changes += 1
        self._budgets.forget(workspace_id)
        self._personas.forget_where(lambda key: key[0] == workspace_id)

    async def _heard_all(self) -> None:
        """Subscribed: from now on every change is heard, and anything read before is dropped."""
        self._forget_all()
        self._hearing = True

    def _forget_all(self) -> None:
        self._changes += 1
        self._hearing = False
        self._budgets.clear()
        self._personas.clear()

    async def _follow(self) -> None:
        failures = 0
        while True:
            try:
                await self._store.follow_settings_changes(self._changed, self._heard_all)
                failures = 0
            except asyncio.CancelledError:
                self._forget_all()
                raise
            except Exception as error:  # StorageUnavailable, or anything else: listening starts again
                log.warning("stopped hearing settings changes (%s); subscribing again", type(error).__name__)
                failures += 1
            self._forget_all()
            await asyncio.sleep(FOLLOW_RETRY_S[min(failures, len(FOLLOW_RETRY_S) - 1)])
