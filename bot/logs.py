"""Logging format and levels, applied once at start-up (never at import), and the request context of each line.

Entry points (the Slack middleware) call `start_request` with what they know about one request: workspace, channel,
thread, Slack's event id. Every line logged while handling it, in any module and in the tasks it starts, then
carries those fields without anyone passing them around (contextvars are copied into new tasks). Lines are JSON
objects, one per line, for log collectors, or plain text for people.

Never logged: tokens and passwords, redacted by value (every configured secret, and each installation's tokens as
the bot reads them: `add_secrets`) and by shape (even inside a library's message or a traceback), and the text of
messages, unless LOG_MESSAGE_TEXT asks for it on the `bot.content` logger.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

# Belt and braces: tokens must never reach a log line, even inside a third-party library's message.
# xoxe.xoxb-/xoxe.xoxp- are rotating access tokens, xoxe- their refresh tokens (Slack's token rotation docs:
# https://api.slack.com/authentication/rotation).
_SECRET_SHAPES = re.compile(
    r"(xoxe\.xox[a-z]-[A-Za-z0-9-]+|xox[abposre]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+|sk-ant-[A-Za-z0-9_-]+)"
)
# Secrets known by value, newest last; bounded so a bot with many workspaces does not grow it forever.
MAX_KNOWN_SECRETS = 10_000
MIN_SECRET_CHARS = 8  # shorter values would redact ordinary words; no real secret is this short
_known: dict[str, None] = {}
_known_pattern: re.Pattern[str] | None = None
_known_lock = threading.Lock()
# The user:password part of any URL (rediss://:password@host): the host stays readable, the secret goes.
_URL_CREDENTIALS = re.compile(r"(?<=://)[^\s/@]+@")

# Questions and answers are logged only here, at DEBUG, and this logger is silent unless LOG_MESSAGE_TEXT is set.
CONTENT_LOGGER = "bot.content"

_context: ContextVar[Mapping[str, str]] = ContextVar("log_context", default=MappingProxyType({}))
# Attributes every LogRecord has; anything else on a record came from `extra=` and is worth printing.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def add_secrets(values: Iterable[str | None]) -> None:
    """Redact these values wherever they appear in a log line from now on (configured secrets, tokens read)."""
    global _known_pattern
    # A value the shapes already catch wherever it appears is left out: the list (scanned for every line) stays short.
    fresh = [
        v
        for v in values
        if isinstance(v, str) and len(v) >= MIN_SECRET_CHARS and v not in _known and not _SECRET_SHAPES.fullmatch(v)
    ]
    if not fresh:
        return
    with _known_lock:
        for value in fresh:
            _known[value] = None
        while len(_known) > MAX_KNOWN_SECRETS:
            del _known[next(iter(_known))]
        ordered = sorted(_known, key=len, reverse=True)  # longest first: a secret containing another goes whole
        _known_pattern = re.compile("|".join(re.escape(value) for value in ordered))


def redact(text: str) -> str:
    text = _URL_CREDENTIALS.sub("[redacted]@", _SECRET_SHAPES.sub("[redacted]", text))  # whole tokens first
    pattern = _known_pattern
    return pattern.sub("[redacted]", text) if pattern is not None else text


def start_request(**fields: str | None) -> None:
    """Replace the context with one request's fields (empty ones left out): nothing leaks from a previous one."""
    _context.set({name: value for name, value in fields.items() if value})


def bind(**fields: str | None) -> None:
    """Add fields to the current request's context (e.g. Claude's request id once it is known).

    Within a request the fields are added in place: a task started for the request (a stoppable model stream runs
    in its own task, with a copy of the context) shares the same dict, so its ids reach the request's later lines.
    """
    current = _context.get()
    new = {name: value for name, value in fields.items() if value}
    if isinstance(current, dict):
        current.update(new)
    else:  # outside any request: never mutate the shared empty default
        _context.set(new)


def context() -> Mapping[str, str]:
    return _context.get()


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {name: value for name, value in vars(record).items() if name not in _RECORD_ATTRIBUTES}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: timestamp, level, logger, message, the request context and any `extra=` fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **context(),
            **_extras(record),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(line, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    """The classic line, with the request context and extras appended as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = {**context(), **_extras(record)}
        if fields:
            head, newline, tail = text.partition("\n")  # a traceback stays below the line it belongs to
            pairs = " ".join(f"{name}={value}" for name, value in fields.items())
            text = f"{head} [{pairs}]{newline}{tail}"
        return redact(text)


def configure(level: str, *, fmt: str = "text", message_text: bool = False) -> None:
    """Install one handler on the root logger; `fmt` is json, text or auto (text on a terminal, else json)."""
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The SDKs log request and event bodies (message text) at DEBUG; keep them at INFO unless asked.
    for noisy in ("httpx2", "httpcore", "anthropic", "slack_sdk", "slack_bolt", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))
    logging.getLogger(CONTENT_LOGGER).setLevel(logging.DEBUG if message_text else logging.CRITICAL + 1)
