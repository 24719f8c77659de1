"""A fake Anthropic Messages API: a real aiohttp server on 127.0.0.1 for the real ``anthropic`` SDK.

Point ``anthropic.AsyncAnthropic(base_url=fake.base_url, api_key="test-key")`` at it.  It speaks the
wire protocol of ``anthropic==2.14.0`` (``anthropic-version: 2026-10-21``, Bearer auth, SSE transcripts
as in the reference notes) and validates requests roughly like the real API does, answering
``400 invalid_request_error`` with a readable message when the client sends something the real API
would reject.

Usage::

    async with FakeAnthropic() as fake:
        fake.script(TextReply("Hello!"), HttpErrorReply(529, "overloaded_error", retry_after_ms="1"))
        client = AsyncAnthropic(base_url=fake.base_url, api_key="test-key")
        ...
        req = (await fake.wait_for_requests(1))[0]
        assert req.last_user_text() == "hi"

Replies are taken FIFO from the queue built with :meth:`FakeAnthropic.script`; when it is empty,
:attr:`FakeAnthropic.default_reply` is used.  A queued item may be a callable taking the
:class:`RecordedRequest` and returning a reply (or an awaitable of one).  Requests rejected by
validation (auth, version header, body) are recorded but do NOT consume a queued reply.

``FakeAnthropic(token_accounting=True)`` replaces the fixed usage (input 25 / output 12 / cache 0 / 0)
of replies without an explicit ``usage`` by estimates (see :func:`estimate_input_tokens`) and a
simulated prompt cache (breakpoints, 20-block lookback, minimum prefix, TTL on ``fake.clock``), so
benchmarks can measure what prompt caching saves.

Fault injection (``fake.faults = ClaudeFaults(http_429=0.05, cut_stream=0.05, ...)``): each /v1/messages call,
scripted or default, is with those probabilities answered 429 / 529, or streamed half-way and then ended by an
``error`` event or cut (the connection aborted, or the stream ended without ``message_stop``); ``injected`` counts
them by kind, and each streamed request's ``ended`` says how its stream ended (``client_gone`` when the client
left first, e.g. its process was killed).

This module must not import anything from the ``bot`` package.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import inspect
import itertools
import json
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from aiohttp import web

__all__ = [
    "DEFAULT_MODELS",
    "DEFAULT_SEARCH_RESULTS",
    "SERVER_TOOL_NAMES",
    "ClaudeFaults",
    "DisconnectReply",
    "FakeAnthropic",
    "HttpErrorReply",
    "MidStreamErrorReply",
    "RecordedRequest",
    "Reply",
    "StallReply",
    "TextReply",
    "ToolUseReply",
    "TruncatedReply",
    "WebSearchReply",
    "estimate_input_tokens",
    "fake_signature",
]

ALLOWED_MESSAGE_KEYS = frozenset(
    {
        "model",
        "max_tokens",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "thinking",
        "output_config",
        "cache_control",
        "stop_sequences",
        "metadata",
        "service_tier",
        "speed",
        "inference_geo",
        "diagnostics",
        "container",
        "stream",
        "context_management",
        "mcp_servers",
    }
)
ALLOWED_COUNT_TOKENS_KEYS = frozenset(
    {
        "model",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "thinking",
        "output_config",
        "cache_control",
        "speed",
        "context_management",
        "mcp_servers",
    }
)
KNOWN_BLOCK_TYPES = frozenset(
    {
        "text",
        "image",
        "document",
        "search_result",
        "tool_use",
        "tool_result",
        "thinking",
        "redacted_thinking",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "container_upload",
        "tool_reference",
        "mcp_tool_use",
        "mcp_tool_result",
    }
)
MAX_CACHE_CONTROL_BLOCKS = 4
# Server tools known to anthropic==2.14.0 (``SDK/types/tool_union_param.py``): type -> required name
# (``None``: the entry carries no name).
SERVER_TOOL_NAMES: dict[str, str | None] = {
    "web_search_20250305": "web_search",
    "web_search_20260209": "web_search",
    "web_search_20260318": "web_search",
    "web_fetch_20250910": "web_fetch",
    "web_fetch_20260209": "web_fetch",
    "web_fetch_20260309": "web_fetch",
    "web_fetch_20260318": "web_fetch",
    "code_execution_20250522": "code_execution",
    "code_execution_20250825": "code_execution",
    "code_execution_20260120": "code_execution",
    "code_execution_20260521": "code_execution",
    "bash_20250124": "bash",
    "text_editor_20250124": "str_replace_editor",
    "text_editor_20250429": "str_replace_based_edit_tool",
    "text_editor_20250728": "str_replace_based_edit_tool",
    "memory_20250818": "memory",
    "tool_search_tool_regex_20251119": "tool_search_tool_regex",
    "tool_search_tool_regex": "tool_search_tool_regex",
    "tool_search_tool_bm25_20251119": "tool_search_tool_bm25",
    "tool_search_tool_bm25": "tool_search_tool_bm25",
    "browser_toolset_20260801": None,
    "computer_toolset_20260801": None,
}
WEB_SEARCH_TOOL_TYPES = frozenset(t for t, n in SERVER_TOOL_NAMES.items() if n == "web_search")
_WEB_SEARCH_TOOL_KEYS = frozenset(
    {
        "type",
        "name",
        "allowed_callers",
        "allowed_domains",
        "blocked_domains",
        "cache_control",
        "defer_loading",
        "max_uses",
        "strict",
        "user_location",
        "response_inclusion",
    }
)
_SERVER_TOOL_USE_NAMES = frozenset(
    {
        "web_search",
        "web_fetch",
        "code_execution",
        "bash_code_execution",
        "text_editor_code_execution",
        "tool_search_tool_regex",
        "tool_search_tool_bm25",
    }
)
_TOOL_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")

_STATUS_FOR_ERROR_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}
_DEFAULT_ERROR_MESSAGES = {
    "invalid_request_error": "Invalid request",
    "authentication_error": "invalid x-api-key",
    "permission_error": "Your API key does not have permission to use the specified resource.",
    "not_found_error": "Not found",
    "rate_limit_error": "Number of request tokens has exceeded your per-minute rate limit",
    "api_error": "Internal server error",
    "overloaded_error": "Overloaded",
    "timeout_error": "Request timed out",
}


def _capabilities(*, adaptive: bool, enabled: bool = True) -> dict[str, Any]:
    """The Models API's `capabilities` object (every key present, as the SDK's ModelCapabilities documents).

    Which thinking types each model accepts is not in our reference for every model [U]: 5.x and 4.6 models are
    given adaptive thinking, Haiku 4.5 only manual budgets, so tests can take both paths.
    """

    def yes(flag: bool = True) -> dict[str, bool]:
        return {"supported": flag}

    return {
        "batch": yes(),
        "citations": yes(),
        "code_execution": yes(),
        "context_management": {"supported": True},
        "effort": {"supported": True, "low": yes(), "medium": yes(), "high": yes(), "max": yes()},
        "image_input": yes(),
        "pdf_input": yes(),
        "server_tools": {"supported": True, "code_execution": yes(), "web_search": yes()},
        "structured_outputs": yes(),
        "thinking": {
            "supported": adaptive or enabled,
            "types": {
                "adaptive": yes(adaptive),
                "between_tools": yes(adaptive),
                "disabled": yes(),
                "enabled": yes(enabled),
            },
        },
    }


DEFAULT_MODELS: list[dict[str, Any]] = [
    {
        "type": "model",
        "id": "claude-sonnet-5-5",
        "display_name": "Claude Sonnet 5.5",
        "created_at": "2026-09-30T00:00:00Z",
        "lifecycle": "active",
        "line": "sonnet",
        "max_input_tokens": 1_000_000,
        "max_tokens": 128_000,
        "capabilities": _capabilities(adaptive=True),
    },
    {
        "type": "model",
        "id": "claude-haiku-5-5",
        "display_name": "Claude Haiku 5.5",
        "created_at": "2026-09-29T00:00:00Z",
        "lifecycle": "active",
        "line": "haiku",
        "max_input_tokens": 1_000_000,
        "max_tokens": 128_000,
        "capabilities": _capabilities(adaptive=True),
    },
    {
        "type": "model",
        "id": "claude-opus-5-5",
        "display_name": "Claude Opus 5.5",
        "created_at": "2026-09-28T00:00:00Z",
        "lifecycle": "active",
        "line": "opus",
        "max_input_tokens": 1_000_000,
        "max_tokens": 128_000,
        "capabilities": _capabilities(adaptive=True),
    },
    {
        "type": "model",
        "id": "claude-sonnet-4-6",
        "display_name": "Claude Sonnet 4.6",
        "created_at": "2026-02-17T00:00:00Z",
        "lifecycle": "active",
        "line": "sonnet",
        "max_input_tokens": 1_000_000,
        "max_tokens": 128_000,
        "capabilities": _capabilities(adaptive=True),
    },
    {
        "type": "model",
        "id": "claude-haiku-4-5",
        "display_name": "Claude Haiku 4.5",
        "created_at": "2025-10-01T00:00:00Z",
        "lifecycle": "active",
        "line": "haiku",
        "max_input_tokens": 200_000,
        "max_tokens": 64_000,
        "capabilities": _capabilities(adaptive=False),
    },
]


# --------------------------------------------------------------------------------------------------
# Recorded requests
# --------------------------------------------------------------------------------------------------


class _Headers(dict):  # type: ignore[type-arg]
    """A ``dict[str, str]`` with lower-cased keys and case-insensitive lookups."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__()
        for k, v in items:
            key = k.lower()
            super().__setitem__(key, f"{self[key]}, {v}" if key in self else v)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())  # type: ignore[no-any-return]

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


def _text_of(content: Any) -> str:
    """Joined text of a str content or a list of blocks (text blocks only)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


@dataclass
class RecordedRequest:
    """One HTTP request received by the fake (body parsed as JSON; ``{}`` if it was not JSON)."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    method: str = "POST"
    query: dict[str, str] = field(default_factory=dict)
    raw_body: bytes = b""
    # filled in when the response is chosen:
    status: int | None = None  # HTTP status answered (200 for streams, even if they later fail)
    reply: Reply | None = None  # the scripted/default reply used, None if rejected by validation
    error: str | None = None  # validation error message, if any
    # How a stream ended: complete | error_event | truncated | disconnected | client_gone (None: not streamed).
    ended: str | None = None
    ended_at: float | None = None  # time.monotonic() when a complete stream sent its message_stop
    # The usage the response reported to the client, cumulative as the SDK accumulates it (message_start, then
    # message_delta): what the real API would bill. None when no usage was reported (an HTTP error, a rejection).
    reported_usage: dict[str, int] | None = None

    @property
    def messages(self) -> list[dict[str, Any]]:
        msgs = self.body.get("messages")
        return msgs if isinstance(msgs, list) else []

    @property
    def system_text(self) -> str:
        """``system`` as a string (text blocks joined with no separator); ``""`` if absent."""
        return _text_of(self.body.get("system"))

    @property
    def model(self) -> str | None:
        m = self.body.get("model")
        return m if isinstance(m, str) else None

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True

    @property
    def tools(self) -> list[dict[str, Any]]:
        tools = self.body.get("tools")
        return tools if isinstance(tools, list) else []

    @property
    def server_tools(self) -> list[dict[str, Any]]:
        """The ``tools`` entries that are server tools (``type`` set and not ``"custom"``)."""
        return [t for t in self.tools if isinstance(t, dict) and t.get("type") not in (None, "custom")]

    @property
    def web_search_tool(self) -> dict[str, Any] | None:
        """The ``web_search_*`` server tool definition of this request, if any."""
        for tool in self.server_tools:
            if tool.get("type") in WEB_SEARCH_TOOL_TYPES:
                return tool
        return None

    def last_user_text(self) -> str:
        """Text of the last ``user`` message (str content, or its text blocks joined)."""
        for msg in reversed(self.messages):
            if isinstance(msg, dict) and msg.get("role") == "user":
                return _text_of(msg.get("content"))
        return ""

    def tool_results(self) -> list[dict[str, Any]]:
        """All ``tool_result`` blocks, in order, across all messages."""
        out: list[dict[str, Any]] = []
        for msg in self.messages:
            content = msg.get("content") if isinstance(msg, dict) else None
            if isinstance(content, list):
                out.extend(b for b in content if isinstance(b, dict) and b.get("type") == "tool_result")
        return out


# --------------------------------------------------------------------------------------------------
# Replies
# --------------------------------------------------------------------------------------------------

_DEFAULT_USAGE = {
    "input_tokens": 25,
    "output_tokens": 12,
    "cache_creation_input_tokens": 0,
    "cache_read_input_tokens": 0,
}


def _split(text: str, pieces: int = 3) -> list[str]:
    """Split ``text`` into up to ``pieces`` non-empty parts (``[]`` for an empty string)."""
    if not text:
        return []
    n = min(pieces, len(text))
    size, rem = divmod(len(text), n)
    out, pos = [], 0
    for i in range(n):
        step = size + (1 if i < rem else 0)
        out.append(text[pos : pos + step])
        pos += step
    return out


_SIG_PREFIX = base64.b64encode(b"fakesig:").decode()[:8]  # "ZmFrZXNp": first 6 bytes, stable prefix


def fake_signature(thinking: str) -> str:
    """The signature the fake issues for a thinking text (verified when the block is passed back)."""
    digest = hashlib.sha256(thinking.encode()).hexdigest()[:24]
    return base64.b64encode(f"fakesig:{digest}".encode()).decode()


@dataclass
class TextReply:
    """A normal text answer (optionally preceded by a thinking block)."""

    text: str
    chunks: list[str] | None = None  # text deltas; default: text split into ~3 pieces
    chunk_delay_s: float = 0.0  # sleep between deltas
    usage: dict[str, int] | None = None  # merged over input 25 / output 12 / cache 0 / 0
    stop_reason: str = "end_turn"
    model: str | None = None  # default: echo the request's model
    thinking: str | None = None  # if set, a signed thinking block comes first
    gate: asyncio.Event | None = None  # after the FIRST text delta, wait for this before the rest
    first_byte_delay_s: float = 0.0  # sleep before the response status/headers are sent
    stop_sequence: str | None = None  # echoed when stop_reason == "stop_sequence"

    def __post_init__(self) -> None:
        if self.chunks is not None and "".join(self.chunks) != self.text:
            raise ValueError("TextReply: ''.join(chunks) must equal text")


@dataclass
class ToolUseReply:
    """An assistant turn ending in ``tool_use`` (stop_reason ``tool_use``)."""

    tool_name: str
    tool_input: dict[str, Any]
    text_before: str = ""
    tool_use_id: str | None = None  # default: toolu_fake_<n>
    thinking: str | None = None
    usage: dict[str, int] | None = None
    model: str | None = None
    # further (name, input) tool_use blocks in the same turn (parallel tool use); ids auto-generated
    parallel: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    chunk_delay_s: float = 0.0
    first_byte_delay_s: float = 0.0


DEFAULT_SEARCH_RESULTS: list[dict[str, Any]] = [
    {"title": "Fake result one", "url": "https://example.com/one"},
    {"title": "Fake result two", "url": "https://example.org/two"},
]


@dataclass
class WebSearchReply:
    """A turn that used the server-side web search tool (stop_reason ``end_turn``).

    Content: ``server_tool_use`` (id ``srvtoolu_…``, name ``web_search``, input ``{"query": query}``
    streamed as input_json_delta), ``web_search_tool_result`` (delivered whole in content_block_start),
    then a text block with ``text_after``; ``usage.server_tool_use.web_search_requests == 1``.
    ``results`` entries need ``title`` and ``url`` (``encrypted_content`` / ``page_age`` may override
    the defaults ``"ZmFrZQ=="`` / ``None``).

    The request must offer a ``web_search_*`` server tool: otherwise it is answered with
    ``400 web_search tool not enabled in this request`` and the reply stays at the head of the queue.
    """

    query: str
    results: list[dict[str, Any]] = field(default_factory=lambda: [dict(r) for r in DEFAULT_SEARCH_RESULTS])
    text_after: str = "Here is what I found."
    _: KW_ONLY
    usage: dict[str, int] | None = None
    tool_use_id: str | None = None  # default: srvtoolu_fake_<n>
    thinking: str | None = None  # if set, a signed thinking block comes first
    model: str | None = None
    chunk_delay_s: float = 0.0
    first_byte_delay_s: float = 0.0

    def __post_init__(self) -> None:
        for r in self.results:
            if not isinstance(r.get("title"), str) or not isinstance(r.get("url"), str):
                raise ValueError("WebSearchReply: each result needs str 'title' and 'url'")


@dataclass
class HttpErrorReply:
    """A non-2xx HTTP answer with the API's JSON error body and a unique ``request-id`` header."""

    status: int
    error_type: str
    message: str = ""  # default: a typical message for error_type
    retry_after: str | None = None  # ``retry-after`` header (seconds; SDK obeys it without a cap!)
    should_retry: str | None = None  # ``x-should-retry`` header ("true"/"false")
    retry_after_ms: str | None = None  # ``retry-after-ms`` header (SDK prefers this; "0" is ignored)
    headers: dict[str, str] | None = None  # extra response headers


@dataclass
class MidStreamErrorReply:
    """200 SSE stream: text deltas of ``partial_text``, then an ``event: error`` (transcript (d)).

    For a non-streaming request: an HTTP error with the matching status (529 for overloaded_error).
    """

    partial_text: str
    error_type: str = "overloaded_error"
    message: str = "Overloaded"
    usage: dict[str, int] | None = None  # what message_start reports (default: the fixed 25 / 12 / 0 / 0)


@dataclass
class TruncatedReply:
    """200 SSE stream with ``partial_text`` that ends cleanly without message_delta / message_stop.

    For a non-streaming request: the connection is dropped before any response.
    """

    partial_text: str


@dataclass
class DisconnectReply:
    """200 SSE stream with ``partial_text``, then the TCP connection is aborted mid-body.

    For a non-streaming request: the connection is dropped before any response.
    """

    partial_text: str


@dataclass
class StallReply:
    """200 SSE stream: ``partial_text``, total silence (no pings) for ``stall_s``, then ``rest``, normal end.

    For a non-streaming request: waits ``stall_s`` before sending the full JSON message.
    """

    partial_text: str
    stall_s: float
    rest: str = "(late)"


@dataclass
class ClaudeFaults:
    """Fractions of /v1/messages calls answered with a fault instead of their reply (0 = never); seeded."""

    http_429: float = 0.0  # rate_limit_error with ``retry-after``
    http_529: float = 0.0  # overloaded_error
    error_event: float = 0.0  # half the reply's text, then an ``event: error`` (overloaded_error)
    cut_stream: float = 0.0  # half the text, then the connection aborted or the stream ended without message_stop
    retry_after_s: str = "1"
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def pick(self) -> str | None:
        """Which fault this call gets, if any."""
        roll = self._rng.random()
        for kind, share in (
            ("http_429", self.http_429),
            ("http_529", self.http_529),
            ("error_event", self.error_event),
            ("cut_stream", self.cut_stream),
        ):
            if roll < share:
                return kind
            roll -= share
        return None

    def coin(self) -> bool:
        return self._rng.random() < 0.5


Reply = (
    TextReply
    | ToolUseReply
    | WebSearchReply
    | HttpErrorReply
    | MidStreamErrorReply
    | TruncatedReply
    | DisconnectReply
    | StallReply
)
ReplyFactory = Callable[[RecordedRequest], "Reply | Awaitable[Reply]"]


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


class _Invalid(Exception):
    def __init__(self, message: str, status: int = 400, error_type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_type = error_type


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _count_cache_control(obj: Any) -> int:
    """Count ``cache_control`` markers in blocks (recursing into tool_result contents)."""
    n = 0
    if isinstance(obj, list):
        for item in obj:
            n += _count_cache_control(item)
    elif isinstance(obj, dict):
        if obj.get("cache_control") is not None:
            n += 1
        content = obj.get("content")
        if isinstance(content, list):
            n += _count_cache_control(content)
    return n


def _validate_system(system: Any, where: str) -> None:
    if isinstance(system, str):
        return
    if not isinstance(system, list):
        raise _Invalid(f"{where}: Input should be a valid string or a list of text blocks")
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _Invalid(f"{where}.{i}: system content blocks must have type 'text'")
        if not isinstance(block.get("text"), str) or not block["text"].strip():
            raise _Invalid(f"{where}.{i}: text content blocks must contain non-whitespace text")


def _validate_block(block: Any, where: str, role: str) -> None:
    if not isinstance(block, dict):
        raise _Invalid(f"{where}: Input should be a valid dictionary")
    btype = block.get("type")
    if not isinstance(btype, str):
        raise _Invalid(f"{where}.type: Field required")
    if btype not in KNOWN_BLOCK_TYPES:
        raise _Invalid(f"{where}: Input tag '{btype}' found using 'type' does not match any of the expected tags")
    if btype == "text":
        if not isinstance(block.get("text"), str):
            raise _Invalid(f"{where}.text: Field required")
        if not block["text"].strip():
            raise _Invalid(f"{where}: text content blocks must contain non-whitespace text")
    elif btype == "thinking":
        if role != "assistant":
            raise _Invalid(f"{where}: thinking blocks are only allowed in assistant messages")
        if not isinstance(block.get("thinking"), str):
            raise _Invalid(f"{where}.thinking: Field required")
        sig = block.get("signature")
        if not isinstance(sig, str) or not sig:
            raise _Invalid(f"{where}.signature: Field required")
        issued_by_us = sig.startswith(_SIG_PREFIX)  # hand-made signatures from tests are not verified
        if issued_by_us and sig != fake_signature(block["thinking"]):
            raise _Invalid(f"{where}: Invalid `signature` in `thinking` block")
    elif btype == "redacted_thinking":
        if not isinstance(block.get("data"), str):
            raise _Invalid(f"{where}.data: Field required")
    elif btype == "tool_use":
        if role != "assistant":
            raise _Invalid(f"{where}: tool_use blocks are only allowed in assistant messages")
        for key in ("id", "name"):
            if not isinstance(block.get(key), str):
                raise _Invalid(f"{where}.{key}: Field required")
        if not isinstance(block.get("input"), dict):
            raise _Invalid(f"{where}.input: Input should be a valid dictionary")
    elif btype == "server_tool_use":
        if role != "assistant":
            raise _Invalid(f"{where}: server_tool_use blocks are only allowed in assistant messages")
        for key in ("id", "name"):
            if not isinstance(block.get(key), str):
                raise _Invalid(f"{where}.{key}: Field required")
        if block["name"] not in _SERVER_TOOL_USE_NAMES:
            raise _Invalid(
                f"{where}.name: Input should be {', '.join(repr(n) for n in sorted(_SERVER_TOOL_USE_NAMES))}"
            )
        if not isinstance(block.get("input"), dict):
            raise _Invalid(f"{where}.input: Input should be a valid dictionary")
    elif btype == "web_search_tool_result":
        if role != "assistant":
            raise _Invalid(f"{where}: web_search_tool_result blocks are only allowed in assistant messages")
        if not isinstance(block.get("tool_use_id"), str):
            raise _Invalid(f"{where}.tool_use_id: Field required")
        content = block.get("content")
        if isinstance(content, dict):
            if content.get("type") != "web_search_tool_result_error" or not isinstance(content.get("error_code"), str):
                raise _Invalid(
                    f"{where}.content: Input should be a list of web_search_result blocks or an error object"
                )
        elif isinstance(content, list):
            for j, sub in enumerate(content):
                if not isinstance(sub, dict) or sub.get("type") != "web_search_result":
                    raise _Invalid(f"{where}.content.{j}.type: Input should be 'web_search_result'")
                for key in ("url", "title", "encrypted_content"):
                    if not isinstance(sub.get(key), str):
                        raise _Invalid(f"{where}.content.{j}.{key}: Field required")
        else:
            raise _Invalid(f"{where}.content: Field required")
    elif btype == "tool_result":
        if role != "user":
            raise _Invalid(f"{where}: tool_result blocks are only allowed in user messages")
        if not isinstance(block.get("tool_use_id"), str):
            raise _Invalid(f"{where}.tool_use_id: Field required")
        content = block.get("content")
        if content is not None and not isinstance(content, str | list):
            raise _Invalid(f"{where}.content: Input should be a valid string or list")
        if isinstance(content, list):
            for j, sub in enumerate(content):
                if not isinstance(sub, dict) or not isinstance(sub.get("type"), str):
                    raise _Invalid(f"{where}.content.{j}.type: Field required")


def _validate_messages(messages: Any, thinking: Any = None) -> None:
    if not isinstance(messages, list):
        raise _Invalid("messages: Input should be a valid list")
    if not messages:
        raise _Invalid("messages: at least one message is required")
    first_non_system: str | None = None
    for i, msg in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(msg, dict):
            raise _Invalid(f"{where}: Input should be a valid dictionary")
        role = msg.get("role")
        if role not in ("user", "assistant", "system"):
            raise _Invalid(f"{where}.role: Input should be 'user', 'assistant' or 'system'")
        extra = set(msg) - {"role", "content"}
        if extra:
            raise _Invalid(f"{where}.{sorted(extra)[0]}: Extra inputs are not permitted")
        if "content" not in msg:
            raise _Invalid(f"{where}.content: Field required")
        content = msg["content"]
        is_final_assistant = role == "assistant" and i == len(messages) - 1
        if isinstance(content, str):
            if not content and not is_final_assistant:
                raise _Invalid(
                    f"{where}: all messages must have non-empty content except for the optional final assistant message"
                )
        elif isinstance(content, list):
            if not content and not is_final_assistant:
                raise _Invalid(
                    f"{where}: all messages must have non-empty content except for the optional final assistant message"
                )
            for j, block in enumerate(content):
                _validate_block(block, f"{where}.content.{j}", role)
                if role == "system" and block.get("type") != "text":
                    raise _Invalid(f"{where}.content.{j}: system messages may only contain text blocks")
        else:
            raise _Invalid(f"{where}.content: Input should be a valid string or a list of content blocks")
        if role != "system" and first_non_system is None:
            first_non_system = role
            if role != "user":
                raise _Invalid('messages: first message must use the "user" role')
    if first_non_system is None:
        raise _Invalid('messages: first message must use the "user" role')

    # Pair tool_use with tool_result.  Consecutive user/assistant turns are merged like the API does.
    turns: list[tuple[int, str, list[dict[str, Any]]]] = []
    for i, msg in enumerate(messages):
        content = msg["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
        if turns and turns[-1][1] == msg["role"] and msg["role"] != "system":
            turns[-1][2].extend(blocks)
        else:
            turns.append((i, msg["role"], blocks))
    for t, (idx, role, blocks) in enumerate(turns):
        if role == "user":
            result_ids = [b["tool_use_id"] for b in blocks if b.get("type") == "tool_result"]
            if not result_ids:
                continue
            prev = turns[t - 1] if t > 0 else None
            prev_ids = (
                {b["id"] for b in prev[2] if b.get("type") == "tool_use"}
                if prev is not None and prev[1] == "assistant"
                else set()
            )
            unexpected = [r for r in result_ids if r not in prev_ids]
            if unexpected:
                raise _Invalid(
                    f"messages.{idx}.content: unexpected `tool_use_id` found in `tool_result` blocks: "
                    f"{', '.join(unexpected)}. Each `tool_result` block must have a corresponding "
                    "`tool_use` block in the previous message."
                )
        if role != "assistant":
            continue
        # Server tool results must follow their server_tool_use in the same assistant turn; they need
        # no tool_result from the client (a trailing server_tool_use without result = paused turn).
        server_ids: set[str] = set()
        for b in blocks:
            if b.get("type") == "server_tool_use":
                server_ids.add(b["id"])
            elif b.get("type") == "web_search_tool_result" and b["tool_use_id"] not in server_ids:
                raise _Invalid(
                    f"messages.{idx}.content: `web_search_tool_result` block with tool_use_id "
                    f"{b['tool_use_id']} has no preceding `server_tool_use` block with that id"
                )
        use_ids = [b["id"] for b in blocks if b.get("type") == "tool_use"]
        if not use_ids:
            continue
        nxt = turns[t + 1] if t + 1 < len(turns) else None
        answered: set[str] = set()
        if nxt is not None and nxt[1] == "user":
            # tool_result blocks must come first in the next user turn
            for b in nxt[2]:
                if b.get("type") != "tool_result":
                    break
                answered.add(b["tool_use_id"])
        missing = [u for u in use_ids if u not in answered]
        if missing:
            raise _Invalid(
                f"messages.{idx}: tool_use ids were found without tool_result blocks immediately after: "
                f"{', '.join(missing)}. Each tool_use block must have a corresponding tool_result block "
                "in the next message, and tool_result blocks must come first in that message."
            )

    # With thinking on, the assistant turn of an ongoing tool loop (the last one with a tool_use)
    # must start with its thinking block, passed back unmodified.
    thinking_on = isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
    last_assistant = next((turn for turn in reversed(turns) if turn[1] == "assistant"), None)
    if thinking_on and last_assistant is not None:
        idx, _, blocks = last_assistant
        if any(b.get("type") == "tool_use" for b in blocks):
            first = blocks[0].get("type")
            if first not in ("thinking", "redacted_thinking"):
                raise _Invalid(
                    f"messages.{idx}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
                    f"`{first}`. When `thinking` is enabled, a final `assistant` message must start with a "
                    "thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). "
                    "We recommend you include thinking blocks from previous turns. To avoid this requirement, "
                    "disable `thinking`. Please consult our documentation at "
                    "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
                )


def _validate_server_tool(tool: dict[str, Any], where: str) -> None:
    ttype = tool["type"]
    if ttype not in SERVER_TOOL_NAMES:
        raise _Invalid(
            f"{where}: Input tag '{ttype}' found using 'type' does not match any of the expected tags: "
            f"'custom', {', '.join(repr(t) for t in SERVER_TOOL_NAMES)}"
        )
    expected = SERVER_TOOL_NAMES[ttype]
    if expected is not None and tool.get("name") != expected:
        raise _Invalid(f"{where}.{ttype}.name: Input should be '{expected}'")
    if ttype not in WEB_SEARCH_TOOL_TYPES:
        return
    extra = sorted(set(tool) - _WEB_SEARCH_TOOL_KEYS)
    if extra:
        raise _Invalid(f"{where}.{ttype}.{extra[0]}: Extra inputs are not permitted")
    max_uses = tool.get("max_uses")
    if max_uses is not None and (not _is_int(max_uses) or max_uses < 1):
        raise _Invalid(f"{where}.{ttype}.max_uses: Input should be an integer greater than or equal to 1")
    for key in ("allowed_domains", "blocked_domains"):
        value = tool.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(d, str) for d in value)):
            raise _Invalid(f"{where}.{ttype}.{key}: Input should be a valid list of strings")
    if tool.get("allowed_domains") is not None and tool.get("blocked_domains") is not None:
        raise _Invalid(f"{where}.{ttype}: cannot specify both allowed_domains and blocked_domains")
    location = tool.get("user_location")
    if location is not None and (not isinstance(location, dict) or location.get("type") != "approximate"):
        raise _Invalid(f"{where}.{ttype}.user_location.type: Input should be 'approximate'")


def _validate_tools(tools: Any, tool_choice: Any) -> None:
    names: set[str] = set()
    if tools is not None:
        if not isinstance(tools, list):
            raise _Invalid("tools: Input should be a valid list")
        for i, tool in enumerate(tools):
            where = f"tools.{i}"
            if not isinstance(tool, dict):
                raise _Invalid(f"{where}: Input should be a valid dictionary")
            ttype = tool.get("type")
            if ttype not in (None, "custom"):
                if not isinstance(ttype, str):
                    raise _Invalid(f"{where}.type: Input should be a valid string")
                _validate_server_tool(tool, where)
                if SERVER_TOOL_NAMES[ttype] is None:
                    continue
            name = tool.get("name")
            if not isinstance(name, str) or not _TOOL_NAME_RE.match(name):
                raise _Invalid(f"{where}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
            if name in names:
                raise _Invalid("tools: Tool names must be unique.")
            names.add(name)
            if ttype in (None, "custom") and not isinstance(tool.get("input_schema"), dict):
                raise _Invalid(f"{where}.custom.input_schema: Field required")
    if tool_choice is not None:
        if not isinstance(tool_choice, dict) or tool_choice.get("type") not in (
            "auto",
            "any",
            "tool",
            "none",
        ):
            raise _Invalid("tool_choice: Input tag found using 'type' does not match any of the expected tags")
        if tool_choice["type"] == "tool" and tool_choice.get("name") not in names:
            raise _Invalid(f"tool_choice.tool.name: Tool '{tool_choice.get('name')}' not found in tools")


def _validate_thinking(thinking: Any, max_tokens: int | None) -> None:
    if thinking is None:
        return
    if not isinstance(thinking, dict) or thinking.get("type") not in (
        "enabled",
        "adaptive",
        "disabled",
        "between_tools",
    ):
        raise _Invalid("thinking: Input tag found using 'type' does not match any of the expected tags")
    if thinking["type"] == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or isinstance(budget, bool):
            raise _Invalid("thinking.enabled.budget_tokens: Field required")
        if budget < 1024:
            raise _Invalid("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
        if max_tokens is not None and budget >= max_tokens:
            raise _Invalid(
                "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our "
                "documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
                "#max-tokens-and-context-window-size"
            )


def _validate_for_model(body: dict[str, Any], models: list[dict[str, Any]]) -> None:
    """What the named model cannot take (its Models API capabilities and output limit), refused with a 400 as the
    real API does. The messages' wording is unverified; a model the fake does not list is not checked."""
    info = next((m for m in models if m.get("id") == body.get("model")), None)
    if info is None:
        return
    limit = info.get("max_tokens")
    if _is_int(body.get("max_tokens")) and _is_int(limit) and body["max_tokens"] > limit:
        raise _Invalid(
            f"max_tokens: {body['max_tokens']} > {limit}, which is the maximum allowed number of output tokens "
            f"for {info['id']}"
        )
    capabilities = info.get("capabilities") or {}
    thinking = body.get("thinking")
    types = (capabilities.get("thinking") or {}).get("types") or {}
    if isinstance(thinking, dict) and not (types.get(thinking.get("type")) or {"supported": True})["supported"]:
        raise _Invalid(f"thinking.type: '{thinking['type']}' thinking is not supported for model {info['id']}")
    effort = (body.get("output_config") or {}).get("effort") if isinstance(body.get("output_config"), dict) else None
    levels = capabilities.get("effort") or {}
    if effort is not None and levels and not (levels.get("supported") and (levels.get(effort) or {}).get("supported")):
        raise _Invalid(f"output_config.effort: '{effort}' is not supported for model {info['id']}")


def _validate_common(body: dict[str, Any], allowed: frozenset[str], *, needs_max_tokens: bool) -> None:
    for key in body:
        if key not in allowed:
            raise _Invalid(f"{key}: Extra inputs are not permitted")
    if "model" not in body:
        raise _Invalid("model: Field required")
    if not isinstance(body["model"], str) or not body["model"]:
        raise _Invalid("model: Input should be a valid string")
    max_tokens: int | None = None
    if needs_max_tokens:
        if "max_tokens" not in body:
            raise _Invalid("max_tokens: Field required")
        if not _is_int(body["max_tokens"]):
            raise _Invalid("max_tokens: Input should be a valid integer")
        max_tokens = body["max_tokens"]
        if max_tokens < 0:
            raise _Invalid("max_tokens: Input should be greater than or equal to 0")
    if "messages" not in body:
        raise _Invalid("messages: Field required")
    _validate_messages(body["messages"], body.get("thinking"))
    if "system" in body:
        _validate_system(body["system"], "system")
    _validate_tools(body.get("tools"), body.get("tool_choice"))
    _validate_thinking(body.get("thinking"), max_tokens)
    if "stream" in body and not isinstance(body["stream"], bool):
        raise _Invalid("stream: Input should be a valid boolean")
    if "stop_sequences" in body and (
        not isinstance(body["stop_sequences"], list) or not all(isinstance(s, str) for s in body["stop_sequences"])
    ):
        raise _Invalid("stop_sequences: Input should be a valid list of strings")
    n_cache = (
        _count_cache_control(body.get("tools"))
        + _count_cache_control(body.get("system"))
        + _count_cache_control(body.get("messages"))
        + (1 if body.get("cache_control") is not None else 0)
    )
    if n_cache > MAX_CACHE_CONTROL_BLOCKS:
        raise _Invalid(
            f"A maximum of {MAX_CACHE_CONTROL_BLOCKS} blocks with cache_control may be provided. Found {n_cache}."
        )


# --------------------------------------------------------------------------------------------------
# Token accounting and prompt cache (opt-in: ``FakeAnthropic(token_accounting=True)``)
# --------------------------------------------------------------------------------------------------

CHARS_PER_TOKEN = 4
IMAGE_TOKENS = 1_600  # any image block, whatever its size
DOCUMENT_PAGE_TOKENS = 1_500  # one "page" of a base64/url/file document
DOCUMENT_PAGE_BYTES = 50_000  # decoded bytes of a base64 document that count as one page
CACHE_LOOKBACK_BLOCKS = 20  # earlier block boundaries searched before each breakpoint
_NOT_AUTO_CACHEABLE = frozenset({"thinking", "redacted_thinking"})


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _strip_cache_control(block: Any) -> Any:
    """A copy without ``cache_control`` (also inside tool_result contents): markers are not content."""
    if isinstance(block, list):
        return [_strip_cache_control(b) for b in block]
    if not isinstance(block, dict):
        return block
    out = {k: v for k, v in block.items() if k != "cache_control"}
    if isinstance(out.get("content"), list):
        out["content"] = _strip_cache_control(out["content"])
    return out


def _document_tokens(source: Any) -> int:
    """base64: 1,500 per started 50 KB decoded; text/content sources: chars/4; url/file: one page."""
    if not isinstance(source, dict):
        return DOCUMENT_PAGE_TOKENS
    stype = source.get("type")
    if stype == "base64":
        nbytes = len(str(source.get("data", ""))) * 3 // 4
        return max(1, -(-nbytes // DOCUMENT_PAGE_BYTES)) * DOCUMENT_PAGE_TOKENS
    if stype == "text":
        return len(str(source.get("data", ""))) // CHARS_PER_TOKEN
    if stype == "content":
        content = source.get("content")
        if isinstance(content, str):
            return len(content) // CHARS_PER_TOKEN
        return sum(_raw_block_tokens(b) for b in content) if isinstance(content, list) else 0
    return DOCUMENT_PAGE_TOKENS


def _raw_block_tokens(block: Any) -> int:
    """Deterministic token estimate of one request content block (may be 0; callers floor at 1)."""
    if not isinstance(block, dict):
        return len(_canonical(block)) // CHARS_PER_TOKEN
    btype = block.get("type")
    if btype == "image":
        return IMAGE_TOKENS
    if btype == "document":
        return _document_tokens(block.get("source"))
    if btype in ("tool_result", "mcp_tool_result"):
        content = block.get("content")
        if isinstance(content, list):
            return sum(_raw_block_tokens(b) for b in content)
        return len(content) // CHARS_PER_TOKEN if isinstance(content, str) else 0
    if btype == "text":
        chars = len(str(block.get("text", "")))
    elif btype == "thinking":
        chars = len(str(block.get("thinking", "")))
    elif btype == "redacted_thinking":
        chars = len(str(block.get("data", "")))
    elif btype in ("tool_use", "server_tool_use", "mcp_tool_use"):
        chars = len(json.dumps(block.get("input", {})))
    elif btype == "search_result":
        header = len(str(block.get("title", ""))) + len(str(block.get("source", "")))
        chars = header + len(_text_of(block.get("content")))
    else:  # server tool results, container uploads, ...: their JSON
        chars = len(json.dumps(_strip_cache_control(block)))
    return chars // CHARS_PER_TOKEN


@dataclass(frozen=True)
class _PrefixBlock:
    """One unit of the cacheable prefix (a tool definition, a system block or a message content block)."""

    section: str  # "tools" | "system" | "messages"
    identity: str  # canonical JSON of what the block contributes to the prefix, cache_control removed
    tokens: int  # >= 1
    marked: bool  # carries an explicit cache_control (for tool_result: possibly on a nested block)
    auto_cacheable: bool  # may take the automatic breakpoint of a top-level cache_control


@dataclass(frozen=True)
class _PromptLayout:
    """A request laid out as prefix blocks: ``digests[i]``/``cumulative[i]`` describe the prefix ``blocks[:i+1]``."""

    blocks: list[_PrefixBlock]
    digests: list[str]
    cumulative: list[int]
    breakpoints: list[int]  # sorted block indexes

    @property
    def total_tokens(self) -> int:
        return self.cumulative[-1] if self.cumulative else 0


def _prefix_blocks(body: dict[str, Any]) -> list[_PrefixBlock]:
    """Tools, then system blocks, then every message's content blocks: the order the API caches in."""
    out: list[_PrefixBlock] = []
    for tool in body.get("tools") or []:
        if isinstance(tool, dict):
            stripped = _strip_cache_control(tool)
            tokens = max(1, len(json.dumps(stripped)) // CHARS_PER_TOKEN)
            out.append(_PrefixBlock("tools", _canonical(stripped), tokens, tool.get("cache_control") is not None, True))
    system = body.get("system")
    system_blocks = [{"type": "text", "text": system}] if isinstance(system, str) and system else system
    for block in system_blocks if isinstance(system_blocks, list) else []:
        if isinstance(block, dict):
            tokens = max(1, _raw_block_tokens(block))
            marked = block.get("cache_control") is not None
            out.append(_PrefixBlock("system", _canonical(_strip_cache_control(block)), tokens, marked, True))
    for index, msg in enumerate(body.get("messages") or []):
        if not isinstance(msg, dict):
            continue
        content = msg.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) and content else content
        for block in blocks if isinstance(blocks, list) else []:
            if not isinstance(block, dict):
                continue
            identity = _canonical([index, msg.get("role"), _strip_cache_control(block)])
            out.append(
                _PrefixBlock(
                    "messages",
                    identity,
                    max(1, _raw_block_tokens(block)),
                    _count_cache_control(block) > 0,
                    block.get("type") not in _NOT_AUTO_CACHEABLE,
                )
            )
    return out


def _layout(body: dict[str, Any]) -> _PromptLayout:
    """Blocks, chained prefix digests (seeded with the model), cumulative tokens and breakpoints."""
    blocks = _prefix_blocks(body)
    digest = hashlib.sha256(_canonical({"model": body.get("model")}).encode()).hexdigest()
    digests: list[str] = []
    cumulative: list[int] = []
    running = 0
    for block in blocks:
        digest = hashlib.sha256(f"{digest}\n{block.identity}".encode()).hexdigest()
        digests.append(digest)
        running += block.tokens
        cumulative.append(running)
    points = {i for i, b in enumerate(blocks) if b.marked}
    if body.get("cache_control") is not None:  # automatic caching: the last cacheable message block
        auto = [i for i, b in enumerate(blocks) if b.section == "messages" and b.auto_cacheable]
        if auto:
            points.add(auto[-1])
    return _PromptLayout(blocks, digests, cumulative, sorted(points))


def estimate_input_tokens(body: dict[str, Any]) -> int:
    """Token estimate used by count_tokens: the sum of the per-block estimates, at least 1.

    Per block (each at least 1): text / thinking / redacted_thinking data: chars / 4; tool_use input and
    tool definitions: JSON chars / 4 (without ``cache_control``); tool_result: its str content / 4 or
    the sum of its inner blocks; image: 1,600; document: 1,500 per started 50 KB of decoded base64
    data (text sources chars / 4, url/file sources 1,500); anything else: its JSON / 4.  With
    ``token_accounting`` on, ``input + cache_read + cache_creation`` of /v1/messages equals this.
    """
    return max(1, _layout(body).total_tokens)


def _output_tokens(blocks: list[dict[str, Any]]) -> int:
    """Estimate of the generated content: text, thinking and tool-call input JSON chars / 4, at least 1."""
    chars = 0
    for block in blocks:
        if block["type"] == "text":
            chars += len(block["text"])
        elif block["type"] == "thinking":
            chars += len(block["thinking"])
        elif block["type"] in ("tool_use", "server_tool_use"):
            chars += len(json.dumps(block["input"]))
    return max(1, chars // CHARS_PER_TOKEN)


class _PromptCache:
    """Prefix digest -> expiry time on the fake's clock.  Mimics the API's ephemeral prompt cache.

    :meth:`apply` is the whole algorithm: for each breakpoint look for an entry at that block or up
    to ``CACHE_LOOKBACK_BLOCKS`` boundaries before it; the longest hit is read (and its TTL
    refreshed); then every breakpoint whose prefix reaches ``min_tokens`` is written, and
    creation = tokens from the end of the read prefix to the last written breakpoint.
    """

    def __init__(self, min_tokens: int, ttl_s: float) -> None:
        self.min_tokens = min_tokens
        self.ttl_s = ttl_s
        self.entries: dict[str, float] = {}

    def purge(self, now: float) -> None:
        self.entries = {d: exp for d, exp in self.entries.items() if exp > now}

    def apply(self, layout: _PromptLayout, now: float) -> tuple[int, int]:
        """Read and write the cache for one request; return ``(cache_read, cache_creation)`` tokens."""
        self.purge(now)
        read_at: int | None = None
        for point in layout.breakpoints:
            for pos in range(point, max(-1, point - CACHE_LOOKBACK_BLOCKS - 1), -1):
                if layout.digests[pos] in self.entries:
                    if read_at is None or pos > read_at:
                        read_at = pos
                    break
        read = 0 if read_at is None else layout.cumulative[read_at]
        if read_at is not None:
            self.entries[layout.digests[read_at]] = now + self.ttl_s
        written_to = read
        for point in layout.breakpoints:
            if layout.cumulative[point] >= self.min_tokens:
                self.entries[layout.digests[point]] = now + self.ttl_s
                written_to = max(written_to, layout.cumulative[point])
        return read, written_to - read


# --------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------


class _Closing(Exception):
    """Raised inside handlers when the fake is stopping."""


def _billed(usage: dict[str, Any]) -> dict[str, int]:
    """The billed counts of a usage object (tokens and server-tool requests), for the reported-usage tally."""
    counts = {k: v for k, v in usage.items() if k.endswith("_tokens") and isinstance(v, int)}
    for name, value in (usage.get("server_tool_use") or {}).items():
        counts[name] = value
    return counts


def _sse(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n".encode()


class FakeAnthropic:
    """Fake Anthropic API server.  See the module docstring."""

    def __init__(
        self,
        *,
        api_key: str = "test-key",
        token_accounting: bool = False,
        min_cacheable_tokens: int = 1024,
        cache_ttl_s: float = 300.0,
    ) -> None:
        """``token_accounting=True``: replies without an explicit ``usage`` get estimated token counts
        and a simulated prompt cache (see :class:`_PromptCache`) instead of the fixed 25 / 12 / 0 / 0.
        """
        self.api_key = api_key
        self.token_accounting = token_accounting
        self.clock: Callable[[], float] = time.monotonic  # the prompt cache's clock; tests may replace it
        self._prompt_cache = _PromptCache(min_cacheable_tokens, cache_ttl_s)
        self.base_url: str = ""
        self.requests: list[RecordedRequest] = []  # POST /v1/messages only
        self.other_requests: list[RecordedRequest] = []  # count_tokens, models, unknown paths
        self.default_reply: Reply | ReplyFactory = TextReply("OK")  # a callable: a reply made for each request
        self.models: list[dict[str, Any]] = [dict(m) for m in DEFAULT_MODELS]
        self.active_streams: int = 0
        self.max_active_streams: int = 0  # high-water mark of active_streams
        self.faults = ClaudeFaults()  # none by default
        self.injected: collections.Counter[str] = collections.Counter()  # faults injected, by kind
        self._queue: collections.deque[Reply | ReplyFactory] = collections.deque()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._closing = asyncio.Event()
        self._cond: asyncio.Condition | None = None

    # ---- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("FakeAnthropic already started")
        self._closing = asyncio.Event()
        self._cond = asyncio.Condition()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self._add_dialect_routes(app)  # a cloud provider's paths (tests/fakes/cloud_api.py), before the catch-all
        app.router.add_post("/v1/messages", self._handle_messages)
        app.router.add_post("/v1/messages/count_tokens", self._handle_count_tokens)
        app.router.add_get("/v1/models", self._handle_models_list)
        app.router.add_get("/v1/models/{model_id}", self._handle_model_get)
        app.router.add_route("*", "/{tail:.*}", self._handle_unknown)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        host, port = runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"

    def _add_dialect_routes(self, app: web.Application) -> None:
        """Anthropic's own API has no other paths; the cloud fakes add theirs here."""

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._closing.set()  # wakes up gated / stalled / delayed handlers, which abort their streams
        await runner.cleanup()

    async def __aenter__(self) -> FakeAnthropic:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---- scripting ------------------------------------------------------------------------------

    def script(self, *replies: Reply | ReplyFactory) -> None:
        """Append replies (or callables ``RecordedRequest -> Reply``) to the FIFO queue."""
        self._queue.extend(replies)

    @property
    def cache_entries(self) -> int:
        """Live (unexpired) prompt-cache entries, for debugging ``token_accounting``."""
        self._prompt_cache.purge(self.clock())
        return len(self._prompt_cache.entries)

    def _accounted_usage(self, rec: RecordedRequest, blocks: list[dict[str, Any]]) -> dict[str, int]:
        """Usage of a /v1/messages request from its layout and the prompt cache (mutates the cache)."""
        layout = _layout(rec.body)
        read, creation = self._prompt_cache.apply(layout, self.clock())
        return {
            "input_tokens": layout.total_tokens - read - creation,
            "output_tokens": _output_tokens(blocks),
            "cache_creation_input_tokens": creation,
            "cache_read_input_tokens": read,
        }

    def reported_usage(self) -> dict[str, int]:
        """The usage every /v1/messages response reported so far, summed: what the real API would have billed
        (a failed stream counts what it reported before it failed)."""
        total: dict[str, int] = collections.Counter()
        for rec in self.requests:
            total.update(rec.reported_usage or {})
        return dict(total)

    @property
    def queued_replies(self) -> int:
        """How many scripted replies have not been used yet."""
        return len(self._queue)

    async def wait_for_requests(
        self,
        count: int,
        timeout: float = 5.0,  # noqa: ASYNC109 - public API takes a timeout
    ) -> list[RecordedRequest]:
        """Wait until at least ``count`` /v1/messages requests arrived; return (a copy of) all of them."""
        assert self._cond is not None, "FakeAnthropic not started"
        cond = self._cond
        try:
            async with asyncio.timeout(timeout):
                async with cond:
                    await cond.wait_for(lambda: len(self.requests) >= count)
        except TimeoutError:
            raise TimeoutError(
                f"FakeAnthropic: expected {count} /v1/messages request(s) within {timeout}s, got {len(self.requests)}"
            ) from None
        return list(self.requests)

    # ---- helpers --------------------------------------------------------------------------------

    def _next_id(self) -> int:
        return next(self._ids)

    def _check_auth(self, req: RecordedRequest) -> None:
        auth = req.headers.get("authorization", "")
        ok = auth == f"Bearer {self.api_key}" or req.headers.get("x-api-key") == self.api_key
        if not ok:
            raise _Invalid("invalid x-api-key", 401, "authentication_error")
        if not req.headers.get("anthropic-version"):
            raise _Invalid("anthropic-version: header is required")

    async def _record(self, request: web.Request, into: list[RecordedRequest]) -> RecordedRequest:
        raw = await request.read()
        body: Any = {}
        parse_error = False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                parse_error = True
        rec = RecordedRequest(
            path=request.path,
            headers=_Headers(request.headers.items()),
            body=body if isinstance(body, dict) else {},
            method=request.method,
            query=dict(request.query.items()),
            raw_body=raw,
        )
        if parse_error:
            rec.error = "There was an error parsing the body of your request."
        elif raw and not isinstance(body, dict):
            rec.error = "Input should be a valid dictionary"
        into.append(rec)
        if into is self.requests and self._cond is not None:
            async with self._cond:
                self._cond.notify_all()
        return rec

    def _error_response(
        self,
        status: int,
        error_type: str,
        message: str,
        headers: dict[str, str] | None = None,
        rec: RecordedRequest | None = None,
    ) -> web.Response:
        request_id = f"req_fake_{self._next_id()}"
        body = {"type": "error", "error": {"type": error_type, "message": message}, "request_id": request_id}
        if rec is not None:
            rec.status = status
        return web.json_response(body, status=status, headers={"request-id": request_id, **(headers or {})})

    def _invalid_response(self, exc: _Invalid, rec: RecordedRequest) -> web.Response:
        rec.error = exc.message
        return self._error_response(exc.status, exc.error_type, exc.message, rec=rec)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but raise _Closing as soon as the fake is stopping."""
        if self._closing.is_set():
            raise _Closing
        if seconds <= 0:
            return
        try:
            await asyncio.wait_for(self._closing.wait(), seconds)
        except TimeoutError:
            return
        raise _Closing

    async def _wait_gate(self, gate: asyncio.Event) -> None:
        if gate.is_set():
            return
        gate_task = asyncio.ensure_future(gate.wait())
        closing_task = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({gate_task, closing_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gate_task.cancel()
            closing_task.cancel()
            await asyncio.gather(gate_task, closing_task, return_exceptions=True)
        if not gate.is_set():
            raise _Closing

    async def _next_reply(self, rec: RecordedRequest) -> Reply:
        item: Reply | ReplyFactory = self._queue.popleft() if self._queue else self.default_reply
        if callable(item):
            result = item(rec)
            if inspect.isawaitable(result):
                result = await result
            item = result
        return self._with_fault(item)

    def _with_fault(self, reply: Reply) -> Reply:
        """The reply, or (by ``faults``) a failure in its place: an HTTP error, or half its text and then an end."""
        kind = self.faults.pick()
        if kind is None:
            return reply
        self.injected[kind] += 1
        text = str(getattr(reply, "text", "") or getattr(reply, "text_before", "") or "Partial answer")
        partial = text[: max(1, len(text) // 2)]
        if kind == "http_429":
            return HttpErrorReply(429, "rate_limit_error", retry_after=self.faults.retry_after_s)
        if kind == "http_529":
            return HttpErrorReply(529, "overloaded_error")
        if kind == "error_event":
            return MidStreamErrorReply(partial)
        return DisconnectReply(partial) if self.faults.coin() else TruncatedReply(partial)

    # ---- /v1/messages ---------------------------------------------------------------------------

    async def _handle_messages(self, request: web.Request) -> web.StreamResponse:
        rec = await self._record(request, self.requests)
        try:
            self._check_auth(rec)
            if rec.error is not None:
                raise _Invalid(rec.error)
            _validate_common(rec.body, ALLOWED_MESSAGE_KEYS, needs_max_tokens=True)
            _validate_for_model(rec.body, self.models)
        except _Invalid as exc:
            return self._invalid_response(exc, rec)

        reply = await self._next_reply(rec)
        if isinstance(reply, WebSearchReply) and rec.web_search_tool is None:
            # The scripted turn cannot happen: put it back so the rejection does not consume it.
            self._queue.appendleft(reply)
            return self._invalid_response(_Invalid("web_search tool not enabled in this request"), rec)
        rec.reply = reply
        try:
            if isinstance(reply, HttpErrorReply):
                return self._http_error(reply, rec)
            if rec.stream:
                return await self._stream(request, rec, reply)
            return await self._non_stream(request, rec, reply)
        except _Closing:
            if request.transport is not None:
                request.transport.abort()
            return web.Response(status=503)

    def _http_error(self, reply: HttpErrorReply, rec: RecordedRequest) -> web.Response:
        headers = dict(reply.headers or {})
        if reply.retry_after is not None:
            headers["retry-after"] = reply.retry_after
        if reply.retry_after_ms is not None:
            headers["retry-after-ms"] = reply.retry_after_ms
        if reply.should_retry is not None:
            headers["x-should-retry"] = reply.should_retry
        message = reply.message or _DEFAULT_ERROR_MESSAGES.get(reply.error_type, "Error")
        return self._error_response(reply.status, reply.error_type, message, headers, rec=rec)

    def _plan(self, rec: RecordedRequest, reply: Reply) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Content blocks (with their delta pieces under '_pieces') and the final message fields."""
        blocks: list[dict[str, Any]] = []
        model = getattr(reply, "model", None) or rec.model or "claude-sonnet-4-6"
        explicit_usage: dict[str, int] | None = getattr(reply, "usage", None)
        usage = {**_DEFAULT_USAGE, **(explicit_usage or {})}
        thinking = getattr(reply, "thinking", None)
        if thinking is not None:
            blocks.append(
                {
                    "type": "thinking",
                    "thinking": thinking,
                    "signature": fake_signature(thinking),
                    "_pieces": _split(thinking, 2),
                }
            )
        stop_reason: str | None = "end_turn"
        stop_sequence: str | None = None
        server_tool_use: dict[str, int] | None = None
        if isinstance(reply, TextReply):
            pieces = list(reply.chunks) if reply.chunks is not None else _split(reply.text)
            blocks.append({"type": "text", "text": reply.text, "_pieces": pieces})
            stop_reason = reply.stop_reason
            if stop_reason == "stop_sequence":
                seqs = rec.body.get("stop_sequences") or [None]
                stop_sequence = reply.stop_sequence or seqs[0]
        elif isinstance(reply, ToolUseReply):
            if reply.text_before:
                blocks.append({"type": "text", "text": reply.text_before, "_pieces": _split(reply.text_before)})
            calls = [
                (reply.tool_name, reply.tool_input, reply.tool_use_id),
                *((n, i, None) for n, i in reply.parallel),
            ]
            for name, tool_input, tool_id in calls:
                raw = json.dumps(tool_input)
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": tool_id or f"toolu_fake_{self._next_id():02d}",
                        "name": name,
                        "input": tool_input,
                        "_pieces": ["", *_split(raw, 2)],
                    }
                )
            stop_reason = "tool_use"
        elif isinstance(reply, WebSearchReply):
            srv_id = reply.tool_use_id or f"srvtoolu_fake_{self._next_id():02d}"
            tool_input = {"query": reply.query}
            blocks.append(
                {
                    "type": "server_tool_use",
                    "id": srv_id,
                    "name": "web_search",
                    "input": tool_input,
                    "_pieces": ["", *_split(json.dumps(tool_input), 2)],
                }
            )
            results = [
                {
                    "type": "web_search_result",
                    "title": r["title"],
                    "url": r["url"],
                    "encrypted_content": r.get("encrypted_content", "ZmFrZQ=="),
                    "page_age": r.get("page_age"),
                }
                for r in reply.results
            ]
            blocks.append({"type": "web_search_tool_result", "tool_use_id": srv_id, "content": results, "_pieces": []})
            blocks.append({"type": "text", "text": reply.text_after, "_pieces": _split(reply.text_after)})
            server_tool_use = {"web_search_requests": 1, "web_fetch_requests": 0}
        elif isinstance(reply, StallReply):
            text = reply.partial_text + reply.rest
            blocks.append({"type": "text", "text": text, "_pieces": [reply.partial_text, reply.rest]})
        else:  # partial-text replies
            partial = reply.partial_text  # type: ignore[union-attr]
            blocks.append({"type": "text", "text": partial, "_pieces": _split(partial, 2)})
            stop_reason = None
        if self.token_accounting and explicit_usage is None:
            usage = self._accounted_usage(rec, blocks)
        output_details = None
        if thinking is not None:
            thinking_tokens = usage.pop("thinking_tokens", None)
            if thinking_tokens is None:
                thinking_tokens = min(usage["output_tokens"], max(1, len(thinking) // 4))
            output_details = {"thinking_tokens": thinking_tokens}
        else:
            usage.pop("thinking_tokens", None)
        final = {
            "id": f"msg_fake_{self._next_id():02d}",
            "model": model,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": usage,
            "output_tokens_details": output_details,
            "server_tool_use": server_tool_use,
        }
        return blocks, final

    @staticmethod
    def _public_block(block: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in block.items() if not k.startswith("_")}

    def _full_usage(
        self,
        usage: dict[str, int],
        output_details: dict[str, int] | None,
        server_tool_use: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "input_tokens": usage["input_tokens"],
            "output_tokens": usage["output_tokens"],
            "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
            "cache_read_input_tokens": usage["cache_read_input_tokens"],
            "cache_creation": {
                "ephemeral_5m_input_tokens": usage["cache_creation_input_tokens"],
                "ephemeral_1h_input_tokens": 0,
            },
            "service_tier": "standard",
        }
        if output_details is not None:
            out["output_tokens_details"] = output_details
        if server_tool_use is not None:
            out["server_tool_use"] = server_tool_use
        return out

    async def _non_stream(self, request: web.Request, rec: RecordedRequest, reply: Reply) -> web.StreamResponse:
        if isinstance(reply, MidStreamErrorReply):
            status = _STATUS_FOR_ERROR_TYPE.get(reply.error_type, 500)
            return self._error_response(status, reply.error_type, reply.message, rec=rec)
        if isinstance(reply, TruncatedReply | DisconnectReply):
            if request.transport is not None:
                request.transport.abort()
            rec.status = 0
            return web.Response(status=503)
        await self._sleep(getattr(reply, "first_byte_delay_s", 0.0))
        if isinstance(reply, StallReply):
            await self._sleep(reply.stall_s)
        blocks, final = self._plan(rec, reply)
        body = {
            "id": final["id"],
            "type": "message",
            "role": "assistant",
            "model": final["model"],
            "content": [self._public_block(b) for b in blocks],
            "stop_reason": final["stop_reason"],
            "stop_sequence": final["stop_sequence"],
            "usage": self._full_usage(final["usage"], final["output_tokens_details"], final["server_tool_use"]),
        }
        rec.status = 200
        rec.reported_usage = _billed(body["usage"])
        return web.json_response(body, headers={"request-id": f"req_fake_{self._next_id()}"})

    async def _stream(self, request: web.Request, rec: RecordedRequest, reply: Reply) -> web.StreamResponse:
        await self._sleep(getattr(reply, "first_byte_delay_s", 0.0))
        blocks, final = self._plan(rec, reply)
        request_id = f"req_fake_{self._next_id()}"
        resp = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "request-id": request_id,
            },
        )
        try:
            await resp.prepare(request)
        except ConnectionError:  # the client went away before the headers (e.g. its process was killed)
            rec.status, rec.ended = 0, "client_gone"
            return resp
        rec.status = 200
        self.active_streams += 1
        self.max_active_streams = max(self.max_active_streams, self.active_streams)
        try:
            await self._emit(request, resp, reply, blocks, final, request_id, rec_of=rec)
        except (ConnectionError, _Closing):
            # client went away (e.g. its read timeout fired) or the fake is stopping
            rec.ended = rec.ended or "client_gone"
            if request.transport is not None:
                request.transport.abort()
        finally:
            self.active_streams -= 1
        return resp

    async def _emit(
        self,
        request: web.Request,
        resp: web.StreamResponse,
        reply: Reply,
        blocks: list[dict[str, Any]],
        final: dict[str, Any],
        request_id: str,
        rec_of: RecordedRequest | None = None,  # where the reported usage is tallied
    ) -> None:
        usage = final["usage"]
        start_usage = {
            **self._full_usage(usage, None),
            "output_tokens": 1,
        }
        message = {
            "id": final["id"],
            "type": "message",
            "role": "assistant",
            "model": final["model"],
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": start_usage,
        }
        await resp.write(_sse({"type": "message_start", "message": message}))
        if rec_of is not None:
            rec_of.reported_usage = _billed(start_usage)
        await resp.write(_sse({"type": "ping"}))

        chunk_delay = getattr(reply, "chunk_delay_s", 0.0)
        gate = reply.gate if isinstance(reply, TextReply) else None
        partial = isinstance(reply, MidStreamErrorReply | TruncatedReply | DisconnectReply)
        sent_text_delta = False
        first_delta = True

        for index, block in enumerate(blocks):
            btype = block["type"]
            start_block: dict[str, Any]
            if btype == "thinking":
                start_block = {"type": "thinking", "thinking": "", "signature": ""}
            elif btype == "text":
                start_block = {"type": "text", "text": ""}
            elif btype in ("tool_use", "server_tool_use"):
                start_block = {"type": btype, "id": block["id"], "name": block["name"], "input": {}}
            else:  # delivered whole in its start event (e.g. web_search_tool_result), no deltas
                start_block = self._public_block(block)
            await resp.write(_sse({"type": "content_block_start", "index": index, "content_block": start_block}))
            for piece_no, piece in enumerate(block["_pieces"]):
                if not first_delta:
                    await self._sleep(chunk_delay)
                first_delta = False
                if btype == "thinking":
                    delta = {"type": "thinking_delta", "thinking": piece}
                elif btype == "text":
                    delta = {"type": "text_delta", "text": piece}
                else:
                    delta = {"type": "input_json_delta", "partial_json": piece}
                if isinstance(reply, StallReply) and btype == "text" and piece_no == 1:
                    await self._sleep(reply.stall_s)  # total silence, no pings
                await resp.write(_sse({"type": "content_block_delta", "index": index, "delta": delta}))
                if btype == "text" and not sent_text_delta:
                    sent_text_delta = True
                    if gate is not None:
                        await self._wait_gate(gate)
            if btype == "thinking":
                sig = {"type": "signature_delta", "signature": block["signature"]}
                await resp.write(_sse({"type": "content_block_delta", "index": index, "delta": sig}))
            if partial:
                break
            await resp.write(_sse({"type": "content_block_stop", "index": index}))

        if isinstance(reply, MidStreamErrorReply):
            err = {
                "type": "error",
                "error": {"type": reply.error_type, "message": reply.message},
                "request_id": request_id,
            }
            if rec_of is not None:
                rec_of.ended = "error_event"
            await resp.write(_sse(err))
            await resp.write_eof()
            return
        if isinstance(reply, TruncatedReply):
            if rec_of is not None:
                rec_of.ended = "truncated"
            await resp.write_eof()
            return
        if isinstance(reply, DisconnectReply):
            if rec_of is not None:
                rec_of.ended = "disconnected"
            await asyncio.sleep(0.01)  # let the partial deltas reach the client first
            if request.transport is not None:
                request.transport.abort()
            return

        delta_usage: dict[str, Any] = {"output_tokens": usage["output_tokens"]}
        if final["output_tokens_details"] is not None:
            delta_usage["output_tokens_details"] = final["output_tokens_details"]
        if final["server_tool_use"] is not None:
            delta_usage["server_tool_use"] = final["server_tool_use"]
        await resp.write(
            _sse(
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": final["stop_reason"], "stop_sequence": final["stop_sequence"]},
                    "usage": delta_usage,
                }
            )
        )
        if rec_of is not None:
            rec_of.reported_usage = _billed({**start_usage, **delta_usage})
        if rec_of is not None:
            rec_of.ended, rec_of.ended_at = "complete", time.monotonic()
        await resp.write(_sse({"type": "message_stop"}))
        await resp.write_eof()

    # ---- other endpoints ------------------------------------------------------------------------

    async def _handle_count_tokens(self, request: web.Request) -> web.StreamResponse:
        rec = await self._record(request, self.other_requests)
        try:
            self._check_auth(rec)
            if rec.error is not None:
                raise _Invalid(rec.error)
            _validate_common(rec.body, ALLOWED_COUNT_TOKENS_KEYS, needs_max_tokens=False)
            _validate_for_model(rec.body, self.models)
        except _Invalid as exc:
            return self._invalid_response(exc, rec)
        rec.status = 200
        return web.json_response(
            {"input_tokens": estimate_input_tokens(rec.body)},
            headers={"request-id": f"req_fake_{self._next_id()}"},
        )

    async def _handle_models_list(self, request: web.Request) -> web.StreamResponse:
        rec = await self._record(request, self.other_requests)
        try:
            self._check_auth(rec)
            lifecycles = request.query.getall("lifecycle[]", []) or request.query.getall("lifecycle", [])
            wanted = set(lifecycles) if lifecycles else {"active", "deprecated"}
            models = [m for m in self.models if m.get("lifecycle", "active") in wanted]
            ids = [m["id"] for m in models]
            try:
                limit = int(request.query.get("limit", "20"))
            except ValueError:
                raise _Invalid("limit: Input should be a valid integer") from None
            if not 1 <= limit <= 1000:
                raise _Invalid("limit: Input should be between 1 and 1000")
            after_id, before_id = request.query.get("after_id"), request.query.get("before_id")
            if after_id is not None and before_id is not None:
                raise _Invalid("after_id and before_id cannot both be set")
            if after_id is not None:
                if after_id not in ids:
                    raise _Invalid(f"after_id: unknown model id '{after_id}'")
                rest = models[ids.index(after_id) + 1 :]
                page, has_more = rest[:limit], len(rest) > limit
            elif before_id is not None:
                if before_id not in ids:
                    raise _Invalid(f"before_id: unknown model id '{before_id}'")
                rest = models[: ids.index(before_id)]
                page, has_more = rest[-limit:], len(rest) > limit
            else:
                page, has_more = models[:limit], len(models) > limit
        except _Invalid as exc:
            return self._invalid_response(exc, rec)
        rec.status = 200
        body = {
            "data": page,
            "has_more": has_more,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
        }
        return web.json_response(body, headers={"request-id": f"req_fake_{self._next_id()}"})

    async def _handle_model_get(self, request: web.Request) -> web.StreamResponse:
        rec = await self._record(request, self.other_requests)
        try:
            self._check_auth(rec)
        except _Invalid as exc:
            return self._invalid_response(exc, rec)
        model_id = request.match_info["model_id"]
        for m in self.models:
            if m["id"] == model_id:
                rec.status = 200
                return web.json_response(m, headers={"request-id": f"req_fake_{self._next_id()}"})
        return self._error_response(404, "not_found_error", f"model: {model_id}", rec=rec)

    async def _handle_unknown(self, request: web.Request) -> web.StreamResponse:
        rec = await self._record(request, self.other_requests)
        return self._error_response(404, "not_found_error", f"Not found: {request.method} {request.path}", rec=rec)
