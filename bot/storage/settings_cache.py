"""A short-lived copy of what admins set per workspace (channel personas, budgets), read by every answer.

Each answer read its workspace's budgets, and each new thread its channel's persona: one Redis round trip each, for
values an admin changes a few times a month (issue 15: at most 12 round trips per answer). Reads are kept for
SETTINGS_CACHE_S; a change made through this process is seen at once, one made through another process within
SETTINGS_CACHE_S (the budget's amounts are then enforced atomically by the ledger as before).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

SETTINGS_CACHE_S = 5.0
MAX_CACHED = 10_000  # channels and workspaces kept; the oldest go first


class WorkspaceSettingsStore(Protocol):
    async def channel_persona(self, workspace_id: str, channel_id: str) -> str | None: ...

    async def set_channel_persona(self, workspace_id: str, channel_id: str, persona: str) -> None: ...

    async def budgets(self, workspace_id: str) -> dict[str, float | None]: ...

    async def set_budget(self, workspace_id: str, kind: str, usd: float | None) -> None: ...


K = TypeVar("K")
V = TypeVar("V")


class _Recent(Generic[K, V]):
    """Values read lately, each for `ttl_s`; bounded (least recently stored go first)."""

    def __init__(self, ttl_s: float, clock: Callable[[], float]) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> tuple[bool, V | None]:
        found = self._items.get(key)
        if found is None or found[0] <= self._clock():
            return False, None
        return True, found[1]

    def put(self, key: K, value: V) -> None:
        self._items[key] = (self._clock() + self._ttl_s, value)
        self._items.move_to_end(key)
        while len(self._items) > MAX_CACHED:
            self._items.popitem(last=False)

    def forget(self, key: K) -> None:
        self._items.pop(key, None)


class CachedWorkspaceSettings:
    """The store's channel personas and budgets, read through a SETTINGS_CACHE_S copy; writes go straight through."""

    def __init__(
        self,
        store: WorkspaceSettingsStore,
        *,
        ttl_s: float = SETTINGS_CACHE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._personas: _Recent[tuple[str, str], str | None] = _Recent(ttl_s, clock)
        self._budgets: _Recent[str, dict[str, float | None]] = _Recent(ttl_s, clock)

    async def channel_persona(self, workspace_id: str, channel_id: str) -> str | None:
        known, persona = self._personas.get((workspace_id, channel_id))
        if not known:
            persona = await self._store.channel_persona(workspace_id, channel_id)
            self._personas.put((workspace_id, channel_id), persona)
        return persona

    async def set_channel_persona(self, workspace_id: str, channel_id: str, persona: str) -> None:
        self._personas.forget((workspace_id, channel_id))
        await self._store.set_channel_persona(workspace_id, channel_id, persona)
        self._personas.forget((workspace_id, channel_id))

    async def budgets(self, workspace_id: str) -> dict[str, float | None]:
        known, budgets = self._budgets.get(workspace_id)
        if not known or budgets is None:
            budgets = await self._store.budgets(workspace_id)
            self._budgets.put(workspace_id, budgets)
        return dict(budgets)

    async def set_budget(self, workspace_id: str, kind: str, usd: float | None) -> None:
        self._budgets.forget(workspace_id)
        await self._store.set_budget(workspace_id, kind, usd)
        self._budgets.forget(workspace_id)
