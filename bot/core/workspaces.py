"""Workspaces as tenants: the id every stored item is scoped by, and what happens to a workspace's data when it leaves.

The workspace id is the installation's tenant:
- an ordinary install (including a workspace-level install inside an Enterprise Grid org): the workspace's team id
  (`T…`). Team ids are unique across Slack, so the enterprise id would add nothing, and single-workspace deployments
  keep the keys they always had.
- an org-wide install (`is_enterprise_install`): the enterprise id (`E…`), even though each event names the workspace
  it happened in. The org is what installed the bot, holds its one token, has one budget and one bill, and leaves as
  a whole; channels shared by several of its workspaces stay one conversation whichever workspace an event names.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from bot.core.errors import StorageUnavailable
from bot.core.ports import WorkspacePurges

log = logging.getLogger(__name__)

UNKNOWN_WORKSPACE = "unknown"
# A purge claimed by a process that then crashed is retried by another after this long.
PURGE_LEASE_S = 600.0


def workspace_id(*, enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None) -> str:
    """The tenant id for an installation or an incoming request (see the module docstring)."""
    if is_enterprise_install and enterprise_id:
        return enterprise_id
    return team_id or enterprise_id or UNKNOWN_WORKSPACE


class WorkspaceRetention:
    """An uninstalled workspace's data is deleted after a grace period, unless the workspace comes back first.

    Pending purges live in the store (not in memory), so a restart or another process finishes them.
    """

    def __init__(self, purges: WorkspacePurges, *, grace_s: float, clock: Callable[[], float] = time.time) -> None:
        self._purges = purges
        self._grace_s = grace_s
        self._clock = clock

    @property
    def check_every_s(self) -> float:
        """Often enough that a purge is at most a quarter of the grace late, and never busier than 20 times a second."""
        return min(300.0, max(0.05, self._grace_s / 4))

    async def left(self, workspace: str) -> None:
        await self._purges.schedule(workspace, self._clock() + self._grace_s)
        log.info("workspace %s left; its data is deleted in %.0f s unless it reinstalls", workspace, self._grace_s)

    async def returned(self, workspace: str) -> None:
        if await self._purges.cancel(workspace):
            log.info("workspace %s is back; its data is kept", workspace)

    async def purge_due(self) -> list[str]:
        """Delete the data of every workspace whose grace period is over; returns their ids."""
        done = []
        for workspace in await self._purges.claim_due(self._clock(), lease_s=PURGE_LEASE_S):
            deleted = await self._purges.purge(workspace)
            await self._purges.finish(workspace)
            log.info("deleted %d stored items of departed workspace %s", deleted, workspace)
            done.append(workspace)
        return done

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set: purge whatever is due, then wait. A Redis outage only delays it.

        Stopping waits for the current Redis command instead of cancelling it, which would leak its connection.
        """
        while not stop.is_set():
            try:
                await self.purge_due()
            except StorageUnavailable:
                log.warning("could not check for departed workspaces' data; will try again")
            except Exception:
                log.exception("purging departed workspaces' data failed; will try again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.check_every_s)
