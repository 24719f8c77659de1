"""Usage that could not be recorded because storage was away: recorded in the background once it is back.

Every call that reached the API must end up in the ledger (issue: "ledger equal to what the API billed"), yet
recording must never hold up the answer. A record refused with StorageUnavailable is tried again with back-off for
up to RETRY_FOR_S; shutdown waits for these within its own bound. A refusal is clean (Redis unreachable: the MULTI
did not run); a timeout may be ambiguous, so a rare retry after one could count a call twice (logged).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from bot.core.errors import StorageUnavailable

log = logging.getLogger(__name__)

RETRY_FOR_S = 300.0  # longer than a Redis restart or failover; the process's own memory holds the record meanwhile
FIRST_DELAY_S = 0.5
MAX_DELAY_S = 10.0


class LateRecords:
    """The background retries of this process's unrecorded usage."""

    def __init__(self, *, retry_for_s: float = RETRY_FOR_S) -> None:
        self._retry_for_s = retry_for_s
        self._tasks: set[asyncio.Task[None]] = set()

    def retry(self, record: Callable[[], Awaitable[None]], what: str) -> None:
        task = asyncio.create_task(self._until_recorded(record, what), name="late-usage-record")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _until_recorded(self, record: Callable[[], Awaitable[None]], what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline, delay = loop.time() + self._retry_for_s, FIRST_DELAY_S
        while loop.time() < deadline:
            await asyncio.sleep(delay)
            try:
                await record()
            except StorageUnavailable:
                delay = min(delay * 2, MAX_DELAY_S)
                continue
            log.info("recorded %s once storage was back", what)
            return
        log.error("gave up recording %s: storage stayed unreachable for %.0f s", what, self._retry_for_s)

    async def drain(self, timeout_s: float | None = None) -> None:
        """On shutdown: let waiting records go in if storage comes back within `timeout_s`."""
        if not self._tasks:
            return
        _, unfinished = await asyncio.wait(set(self._tasks), timeout=timeout_s)
        for task in unfinished:
            log.error("shutting down with usage not recorded: storage stayed unreachable")
            task.cancel()
