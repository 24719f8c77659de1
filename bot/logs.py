"""Logging format and levels, applied once at start-up (never at import)."""

from __future__ import annotations

import logging
import re

# Belt and braces: tokens must never reach a log line, even inside a third-party library's message.
_SECRET_SHAPES = re.compile(r"(xox[abposr]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+|sk-ant-[A-Za-z0-9_-]+)")


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _SECRET_SHAPES.search(message):
            record.msg = _SECRET_SHAPES.sub("[redacted]", message)
            record.args = None
        return True


def configure(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The SDKs log request bodies at DEBUG; keep them at INFO unless asked.
    for noisy in ("httpx2", "httpcore", "anthropic", "slack_sdk", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))
