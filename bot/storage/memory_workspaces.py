"""In-memory twins of the workspace-side storage ports: pending purges and the assistant pane's channel context.

Same contract as their Redis implementations (`bot/storage/workspace_data.py`, `bot/storage/answer_store.py`), run by
the same tests; one process only, so production uses Redis.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from bot.storage.memory import MemoryStore

_CLAIM_BATCH = 20  # as many as the Redis schedule hands out per claim


class MemoryWorkspacePurges:
    """Implements core.ports.WorkspacePurges over a MemoryStore: a schedule of due times, claims that lapse."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._due: dict[str, float] = {}

    async def schedule(self, workspace_id: str, due_at: float) -> None:
        self._due[workspace_id] = due_at

    async def cancel(self, workspace_id: str) -> bool:
        return self._due.pop(workspace_id, None) is not None

    async def claim_due(self, now: float, *, lease_s: float) -> list[str]:
        """Due workspaces, each claimed until `now + lease_s` (a claimer that dies lets it come back)."""
        due = sorted((at, workspace) for workspace, at in self._due.items() if at <= now)[:_CLAIM_BATCH]
        for _, workspace in due:
            self._due[workspace] = now + lease_s
        return [workspace for _, workspace in due]

    async def purge(self, workspace_id: str) -> int:
        return self._store.drop_workspace(workspace_id)

    async def finish(self, workspace_id: str) -> None:
        self._due.pop(workspace_id, None)


class MemoryPaneContexts:
    """Implements core.assistant.PaneContextStore: the channel beside each pane thread, for `ttl_s`."""

    def __init__(self, *, ttl_s: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._contexts: dict[tuple[str, str, str], tuple[str, float]] = {}

    async def save_pane_context(self, workspace_id: str, pane_id: str, thread_id: str, channel_id: str | None) -> None:
        self._contexts[(workspace_id, pane_id, thread_id)] = (channel_id or "", self._clock() + self._ttl_s)

    async def pane_context(self, workspace_id: str, pane_id: str, thread_id: str) -> str | None:
        channel, expires_at = self._contexts.get((workspace_id, pane_id, thread_id), ("", -math.inf))
        return channel if channel and expires_at > self._clock() else None
