"""Deleting a departed workspace's data in Redis: a schedule of pending purges, and the purge itself (SCAN, never KEYS).

The schedule is one sorted set (workspace id scored by due time), so pending purges survive restarts and any bot
process may carry them out; claiming moves the score forward by a lease, so one process does each purge and a crashed
one's claim comes back.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as redis

from bot.storage.keys import Keys
from bot.storage.redis_store import _translated

_SCAN_COUNT = 1000
_DELETE_BATCH = 500
_CLAIM_BATCH = 20

# KEYS: the schedule. ARGV: now, lease end, batch size. Returns the workspaces claimed.
_CLAIM_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, workspace in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], workspace)
end
return due
"""


class RedisWorkspacePurges:
    """Implements core.ports.WorkspacePurges."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys
        self._claim: Any = client.register_script(_CLAIM_DUE)

    @_translated
    async def schedule(self, workspace_id: str, due_at: float) -> None:
        await self._client.zadd(self._keys.pending_purges(), {workspace_id: due_at})

    @_translated
    async def cancel(self, workspace_id: str) -> bool:
        return bool(await self._client.zrem(self._keys.pending_purges(), workspace_id))

    @_translated
    async def claim_due(self, now: float, *, lease_s: float) -> list[str]:
        claimed = await self._claim(keys=[self._keys.pending_purges()], args=[now, now + lease_s, _CLAIM_BATCH])
        return [str(workspace) for workspace in claimed]

    @_translated
    async def purge(self, workspace_id: str) -> int:
        """One pass over the keyspace, filtered by Redis on the workspace id and here on each key's exact shape."""
        glob, exact = self._keys.workspace_data(workspace_id)
        deleted = 0
        batch: list[str] = []
        async for name in self._client.scan_iter(match=glob, count=_SCAN_COUNT):
            if exact.fullmatch(name):
                batch.append(name)
            if len(batch) >= _DELETE_BATCH:
                deleted += await self._client.unlink(*batch)
                batch.clear()
        if batch:
            deleted += await self._client.unlink(*batch)
        return deleted

    @_translated
    async def finish(self, workspace_id: str) -> None:
        await self._client.zrem(self._keys.pending_purges(), workspace_id)
