"""A fake Slack: Web API, private file hosting, response_url and Socket Mode on one aiohttp server.

The server listens on 127.0.0.1 (random port) and speaks the wire protocol of ``slack_sdk==3.48``:
point ``AsyncWebClient(token=..., base_url=fake.api_url)`` at it, and Bolt's
``AsyncSocketModeHandler`` (through that client) gets a ``ws://`` URL from ``apps.connections.open``.

Usage::

    async with FakeSlack() as slack:
        slack.add_channel("C0GENERAL", name="general")
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        resp = await client.chat_postMessage(channel="C0GENERAL", text="hi")
        (call,) = await slack.wait_for("chat.postMessage")
        assert slack.message("C0GENERAL", resp["ts"]).text == "hi"

It refuses what the real API refuses, as far as the facts are known:

* Each method must have its description JSON in ``tests/data/slack-api-ref/methods/`` (copied from
  slack-ruby/slack-api-ref); other methods get ``unknown_method``.  Missing ``args.required`` give
  ``invalid_arguments`` (``[ERROR] missing required field: <name>``) unless a method has a better
  documented error.  A JSON body is only read for methods whose file says ``json_input_supported``.
* Auth: no token -> ``not_authed``; an unknown token -> ``invalid_auth``; the app-level token on a
  bot method (or the bot token on ``apps.connections.open``) -> ``not_allowed_token_type``.
* Message limits: ``text`` > 4,000 chars and ``markdown_text`` > 12,000 chars -> ``msg_too_long``;
  ``markdown_text`` with a non-empty ``text`` or ``blocks`` -> ``markdown_text_conflict``; nothing
  to show -> ``no_text``; blocks are checked for the documented limits (``invalid_blocks``,
  ``msg_blocks_too_long``).
* Rate limits: ``enforce_tier("chat.update", 3)`` applies Slack's budget for a rate-limit tier per workspace
  (HTTP 429 with ``Retry-After`` beyond it); ``enforce_slack_limits()`` applies every method's documented tier at
  once, plus ``chat.postMessage``'s per-channel limit (about 1 a second, short bursts allowed: 5 in any 5 s here) and
  its undocumented per-workspace ceiling ("several hundred a minute": a parameter). ``rate_limited`` counts 429s by
  method.  ``random_429s(0.05)`` answers that share of Web API calls, chosen at random (seeded), 429 with
  ``Retry-After`` on top of the enforced limits (fault injection for soaks).  ``latency_s`` adds a Web API round
  trip to every call, and ``call_listeners`` are told of each call as it is answered (the load harness in
  ``bench/`` uses both).
* Channels: once any channel is registered with :meth:`FakeSlack.add_channel`, unknown ``C``/``G``
  ids are ``channel_not_found`` and posting into a registered channel the bot is not a member of is
  ``not_in_channel``.  With no channel registered every channel id is accepted.  A channel belongs to
  one workspace: another workspace's token gets ``channel_not_found`` there.
* OAuth (multi-workspace): :meth:`FakeSlack.add_workspace` adds workspaces (or Enterprise Grid orgs);
  ``GET /oauth/v2/authorize`` plays the installer clicking "Allow" and redirects to the app's redirect
  URL with a one-time ``code``; ``oauth.v2.access`` (client id and secret by HTTP Basic auth or form,
  checked) exchanges it for that workspace's own bot token, or refreshes a rotating token with
  ``grant_type=refresh_token`` (the used refresh token is revoked, as Slack does).  Every call records
  the token it came with, so tests can tell which workspace's token the bot used.  Expired rotating
  tokens get ``token_expired``; revoked ones (:meth:`FakeSlack.uninstall`) ``token_revoked``.

This module must not import anything from the ``bot`` package.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import math
import mimetypes
import random
import secrets
import struct
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web
from yarl import URL

__all__ = [
    "DEFAULT_SCOPES",
    "TIER_PER_MINUTE",
    "ApiCall",
    "FakeMessage",
    "FakeSlack",
    "FakeWorkspace",
]

METHODS_DIR = Path(__file__).parents[1] / "data" / "slack-api-ref" / "methods"

DEFAULT_SCOPES = (
    "app_mentions:read",
    "assistant:write",
    "channels:history",
    "channels:read",
    "chat:write",
    "commands",
    "files:read",
    "files:write",
    "groups:history",
    "groups:read",
    "im:history",
    "im:read",
    "mpim:history",
    "mpim:read",
    "reactions:write",
    "team:read",
    "users:read",
)

TEXT_LIMIT = 4_000  # the practical limit the project targets (chat.update documents 4,000)
MARKDOWN_TEXT_LIMIT = 12_000
MARKDOWN_BLOCKS_LIMIT = 12_000  # cumulative text of all `markdown` blocks in one message
MAX_BLOCKS_MESSAGE = 50
MAX_BLOCKS_VIEW = 100
MAX_ATTACHMENTS = 100
SECTION_TEXT_LIMIT = 3_000
SECTION_FIELDS_MAX = 10
SECTION_FIELD_LIMIT = 2_000
HEADER_TEXT_LIMIT = 150
BLOCK_ID_LIMIT = 255
VIEW_BYTES_LIMIT = 250_000
VIEW_TITLE_LIMIT = 24
RESPONSE_URL_MAX_USES = 5
# Calls per minute per method per workspace by Slack's rate-limit tier (docs: "Tier 3: 50+ per minute", bursts
# allowed). `enforce_tier` applies them as a sliding one-minute window, which allows such bursts.
TIER_PER_MINUTE = {1: 1, 2: 20, 3: 50, 4: 100}
LOADING_MESSAGES_MAX = 10
LOADING_MESSAGE_LIMIT = 50

_POSTING_METHODS = frozenset({"chat.postMessage", "chat.update", "chat.postEphemeral"})
_STREAMING_METHODS = frozenset({"chat.startStream", "chat.appendStream", "chat.stopStream"})
# Authenticated with the app's client id and secret, not with a token.
_CLIENT_AUTH_METHODS = frozenset({"oauth.v2.access", "oauth.v2.exchange"})
OAUTH_CODE_TTL_S = 600  # Slack's codes expire after ten minutes
_CHUNK_TYPES = frozenset({"markdown_text", "task_update", "plan_update", "blocks"})
# required arguments whose empty string is a legal value
_EMPTY_ALLOWED = frozenset({("assistant.threads.setStatus", "status")})

_SIGN_IN_PAGE = (
    '<!DOCTYPE html><html lang="en-US"><head><meta charset="utf-8">'
    "<title>Sign in | Slack</title></head><body><h1>Sign in to your workspace</h1>"
    '<form action="/signin" method="post"><input name="email"></form></body></html>'
)


class _ApiError(Exception):
    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


def _too_long(limit: int, pointer: str) -> str:
    return f"[ERROR] must be less than {limit + 1} characters [json-pointer:{pointer}]"


def _missing_field(name: str) -> _ApiError:
    return _ApiError("invalid_arguments", response_metadata={"messages": [f"[ERROR] missing required field: {name}"]})


@dataclass
class ApiCall:
    """One Web API request as the fake received and answered it."""

    method: str
    params: dict[str, Any]  # query + form + JSON body merged; the token is in `token`, not here
    token: str | None
    http_method: str
    response: dict[str, Any]
    status: int
    at: float  # time.monotonic() when answered
    peer: str = ""  # the client's address and port: calls over one keep-alive connection share it

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.response.get("ok"))

    @property
    def error(self) -> str | None:
        return None if self.ok else self.response.get("error")


@dataclass
class FakeMessage:
    """A message the bot posted (chat.postMessage or chat.startStream), with its current state."""

    channel: str
    ts: str
    thread_ts: str | None
    text: str
    blocks: list[Any] | None
    edits: list[str]  # every text in order; edits[0] is what was posted
    user: str
    deleted: bool = False
    metadata: dict[str, Any] | None = None
    attachments: list[Any] | None = None
    stream_state: str | None = None  # None (ordinary message), "streaming", "stopped", "stopped_by_user"
    chunks: list[dict[str, Any]] = field(default_factory=list)  # streaming chunks in arrival order

    @property
    def streaming(self) -> bool:
        return self.stream_state == "streaming"


@dataclass
class FakeWorkspace:
    """A workspace the app can be installed in; `enterprise_id` puts it in an Enterprise Grid org."""

    team_id: str
    name: str
    domain: str
    bot_user_id: str
    bot_id: str
    enterprise_id: str | None = None
    enterprise_name: str | None = None


@dataclass
class _Grant:
    """What one token (bot access token or refresh token) is good for."""

    team_id: str | None  # None: an org-wide install (the whole enterprise)
    enterprise_id: str | None
    bot_user_id: str
    bot_id: str
    scopes: tuple[str, ...]
    expires_at: float | None = None  # rotating access tokens only
    revoked: bool = False

    def sees(self, workspace: FakeWorkspace) -> bool:
        if self.team_id is not None:
            return self.team_id == workspace.team_id
        return self.enterprise_id is not None and self.enterprise_id == workspace.enterprise_id


@dataclass
class _Code:
    grant: _Grant
    redirect_uri: str | None
    installer: str
    expires_at: float


# ----------------------------------------------------------------------------------------------
# small helpers


def _basic_auth(header: str) -> tuple[str, str] | None:
    """(client id, client secret) from an HTTP Basic Authorization header, if that is what it is."""
    if header[:6].lower() != "basic ":
        return None
    try:
        user, sep, password = base64.b64decode(header[6:].strip()).decode().partition(":")
    except ValueError:
        return None
    return (user, password) if sep else None


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    return bool(value)


def _as_int(value: Any, name: str, default: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise _ApiError(
            "invalid_arguments", response_metadata={"messages": [f"[ERROR] invalid integer value: {name}"]}
        ) from None


def _ts_micro(ts: str) -> int:
    sec, _, frac = str(ts).partition(".")
    return int(sec) * 1_000_000 + int((frac + "000000")[:6] or 0)


def _valid_ts(ts: Any) -> bool:
    if not isinstance(ts, str):
        return False
    sec, dot, frac = ts.partition(".")
    return sec.isdigit() and (not dot or frac.isdigit())


def _json_param(value: Any, name: str, error: str = "invalid_arguments") -> Any:
    """Arguments such as blocks/metadata/view arrive as JSON strings (form) or as JSON values (JSON body)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise _ApiError(
                error,
                response_metadata={"messages": [f"[ERROR] failed to parse json [json-pointer:/{name}]"]},
            ) from None
    return value


def _nonempty(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return value.strip() not in ("", "[]")
    if isinstance(value, (list, dict)):
        return len(value) > 0
    return True


def _rich_text(text: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "rich_text",
            "block_id": base64.b32encode(text.encode()[:20] or b"x").decode().lower()[:5],
            "elements": [{"type": "rich_text_section", "elements": [{"type": "text", "text": text}]}],
        }
    ]


def _text_of(obj: Any) -> str:
    if isinstance(obj, dict):
        return str(obj.get("text", ""))
    return "" if obj is None else str(obj)


def _image_size(data: bytes) -> tuple[int, int] | None:
    """Width/height from PNG, GIF or JPEG headers; None if unknown."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return int(w), int(h)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        w, h = struct.unpack("<HH", data[6:10])
        return int(w), int(h)
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            (length,) = struct.unpack(">H", data[i + 2 : i + 4])
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                h, w = struct.unpack(">HH", data[i + 5 : i + 9])
                return int(w), int(h)
            i += 2 + length
    return None


_FILETYPES = {
    "image/png": ("png", "PNG"),
    "image/jpeg": ("jpg", "JPEG"),
    "image/gif": ("gif", "GIF"),
    "image/webp": ("webp", "WebP"),
    "application/pdf": ("pdf", "PDF"),
    "text/plain": ("text", "Plain Text"),
    "text/markdown": ("markdown", "Markdown (raw)"),
    "text/x-python": ("python", "Python"),
    "text/x-python-script": ("python", "Python"),
    "application/json": ("json", "JSON"),
    "text/csv": ("csv", "CSV"),
    "text/html": ("html", "HTML"),
    "application/zip": ("zip", "Zip"),
    "application/javascript": ("javascript", "JavaScript/JSON"),
    "text/javascript": ("javascript", "JavaScript/JSON"),
}


def _filetype_for(name: str, mimetype: str) -> tuple[str, str]:
    if mimetype in _FILETYPES:
        return _FILETYPES[mimetype]
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext:
        return ext, ext.upper()
    return "binary", "Binary"


def _tz_info(tz: str) -> tuple[str, int]:
    try:
        from zoneinfo import ZoneInfo

        now = datetime.now(ZoneInfo(tz))
        offset = now.utcoffset()
        return (now.tzname() or tz), int(offset.total_seconds()) if offset is not None else 0
    except Exception:
        return "Coordinated Universal Time", 0


def _page(items: list[Any], cursor: Any, limit: int) -> tuple[list[Any], str]:
    start = 0
    if cursor:
        try:
            start = int(base64.b64decode(str(cursor)).decode().split(":", 1)[1])
        except Exception:
            raise _ApiError("invalid_cursor") from None
    end = start + limit
    next_cursor = base64.b64encode(f"offset:{end}".encode()).decode() if end < len(items) else ""
    return items[start:end], next_cursor


# ----------------------------------------------------------------------------------------------


class FakeSlack:
    """A local Slack for the real slack_sdk / Bolt clients.  See the module docstring."""

    app_id = "A0001"

    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test-token",
        team_id: str = "T0001",
        bot_user_id: str = "UBOT",
        bot_id: str = "BBOT",
        app_token: str = "xapp-test",
    ) -> None:
        self.bot_token = bot_token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_token = app_token
        self.team_name = "Fake Workspace"
        self.team_domain = "fake-workspace"
        self.bot_name = "claude"
        self.scopes: list[str] = list(DEFAULT_SCOPES)  # sent as x-oauth-scopes
        self.enforce_scopes = False  # True: methods whose bot scopes are all missing -> missing_scope
        self.streaming_refusal: str | None = None  # set by refuse_streaming()

        # OAuth: the app's credentials and Redirect URLs as configured at api.slack.com, and token rotation.
        self.client_id = "1111.2222"
        self.client_secret = "fake-client-secret"
        self.redirect_urls: list[str] = []
        self.text_limit = TEXT_LIMIT  # `text` longer than this is msg_too_long (lower it to stage a stricter Slack)
        self.token_rotation = False  # True: installs get expiring xoxe.xoxb- tokens plus refresh tokens
        self.token_lifetime_s = 43_200  # Slack's 12 hours
        self.installer_user_id = "U0INSTALLER"
        self.authorize_requests: list[dict[str, str]] = []  # query of every GET /oauth/v2/authorize
        self.workspaces: dict[str, FakeWorkspace] = {
            team_id: FakeWorkspace(team_id, self.team_name, self.team_domain, bot_user_id, bot_id)
        }
        self._grants: dict[str, _Grant] = {bot_token: _Grant(team_id, None, bot_user_id, bot_id, DEFAULT_SCOPES)}
        self._refresh_tokens: dict[str, _Grant] = {}
        self._codes: dict[str, _Code] = {}
        self._exchanged: set[str] = set()
        self._channel_teams: dict[str, str] = {}
        self._caller: _Grant | None = None  # the grant of the API call being answered

        self.base_url = ""
        self.api_url = ""
        self.calls: list[ApiCall] = []
        self.rate_limited_count = 0
        self.rate_limited: Counter[str] = Counter()  # 429s by method
        # Web API round trip: half of it passes before a call takes effect, half before the answer arrives.
        self.latency_s = 0.0
        self.call_listeners: list[Callable[[ApiCall], None]] = []  # told of every call as it is answered
        self.file_downloads: list[dict[str, Any]] = []
        self.response_url_posts: list[dict[str, Any]] = []
        self.socket_acks: list[dict[str, Any]] = []
        self.socket_frames: list[Any] = []  # every text frame the client sent over the socket, parsed
        self.socket_connections = 0  # websocket connections accepted so far
        self.uploaded_files: list[dict[str, Any]] = []  # files.completeUploadExternal results
        self.reactions: dict[tuple[str, str], list[str]] = {}  # (channel, ts) -> names the bot added
        self.views: list[dict[str, Any]] = []  # views opened / published, in order
        self.assistant_status: dict[tuple[str, str], str] = {}  # (channel_id, thread_ts) -> status
        self.assistant_titles: dict[tuple[str, str], str] = {}
        self.suggested_prompts: dict[tuple[str, str | None], list[dict[str, Any]]] = {}

        self._specs: dict[str, dict[str, Any] | None] = {}
        self._fail: dict[str, deque[dict[str, Any]]] = {}
        self._limits: dict[str, dict[bool, tuple[int, float]]] = {}  # method -> per channel? -> (calls, window s)
        self._random_429s: tuple[float, int, frozenset[str], random.Random] | None = None
        self.random_429_count: Counter[str] = Counter()  # 429s injected by random_429s, by method
        self._windows: dict[tuple[str, ...], deque[float]] = {}
        self._users: dict[str, dict[str, Any]] = {}
        self._locales: dict[str, str] = {}
        self._channels: dict[str, dict[str, Any]] = {}
        self._members: dict[str, list[str]] = {}
        self._members_explicit: set[str] = set()
        self._history: dict[str, dict[str, dict[str, Any]]] = {}
        self._messages: dict[tuple[str, str], FakeMessage] = {}
        self._files: dict[str, dict[str, Any]] = {}
        self._file_content: dict[str, bytes] = {}
        self._file_paths: dict[str, str] = {}  # URL path -> file id
        self._pending_uploads: dict[str, dict[str, Any]] = {}
        self._response_urls: dict[str, int] = {}
        self._used_triggers: set[str] = set()
        self._last_edit_ts: dict[tuple[str, str], str] = {}
        self._tickets: set[str] = set()
        self._sockets: list[web.WebSocketResponse] = []
        self._pending_acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._last_ts = 0
        self._call_event = asyncio.Event()
        self._socket_event = asyncio.Event()
        self._runner: web.AppRunner | None = None

        self.add_user(bot_user_id, name=self.bot_name, real_name="Claude", display_name="Claude", is_bot=True, tz="UTC")

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_get("/oauth/v2/authorize", self._handle_authorize)
        app.router.add_get("/socket", self._handle_socket)
        app.router.add_get("/files-pri/{path:.*}", self._handle_file)
        app.router.add_post("/upload/v1/{file_id}", self._handle_upload)
        app.router.add_post("/response/{hook}", self._handle_response_url)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        self.api_url = self.base_url + "/api/"
        for f in self._files.values():  # files added before start() get real URLs now
            self._set_file_urls(f)

    async def stop(self) -> None:
        for fut in self._pending_acks.values():
            if not fut.done():
                fut.cancel()
        self._pending_acks.clear()
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=1001, message=b"server shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ inspection

    def calls_to(self, method: str) -> list[ApiCall]:
        return [c for c in self.calls if c.method == method]

    async def wait_for(
        self,
        method: str,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109 - public API named by the test plan
        *,
        where: Callable[[ApiCall], bool] | None = None,
    ) -> list[ApiCall]:
        """Wait until at least `count` calls to `method` (matching `where`, refused ones included) arrived.

        Returns all matching calls so far.  Raises TimeoutError listing what did arrive.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            matched = [c for c in self.calls if c.method == method and (where is None or where(c))]
            if len(matched) >= count:
                return matched
            remaining = deadline - loop.time()
            if remaining <= 0:
                seen = [f"{c.method}:{c.error or 'ok'}" for c in self.calls]
                raise TimeoutError(
                    f"waited {timeout}s for {count} call(s) to {method}, got {len(matched)}; all calls: {seen}"
                )
            event = self._call_event
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await event.wait()

    def messages_in(
        self, channel: str, thread_ts: str | None = None, *, include_deleted: bool = False
    ) -> list[FakeMessage]:
        """Bot-posted messages in `channel`, in ts order.

        With `thread_ts`: the bot's replies in that thread, plus the parent if the bot posted it.
        """
        out = [
            m
            for (ch, _), m in self._messages.items()
            if ch == channel
            and (include_deleted or not m.deleted)
            and (thread_ts is None or m.thread_ts == thread_ts or m.ts == thread_ts)
        ]
        return sorted(out, key=lambda m: _ts_micro(m.ts))

    def message(self, channel: str, ts: str) -> FakeMessage:
        try:
            return self._messages[(channel, ts)]
        except KeyError:
            raise KeyError(f"no bot message {ts} in {channel}; have {sorted(self._messages)}") from None

    @property
    def ephemerals(self) -> list[ApiCall]:
        """Successful chat.postEphemeral calls."""
        return [c for c in self.calls if c.method == "chat.postEphemeral" and c.ok]

    # ------------------------------------------------------------------ failure injection

    def fail_next(
        self, method: str, error: str, *, times: int = 1, status: int = 200, retry_after: int | None = None
    ) -> None:
        """The next `times` calls to `method` (after auth) answer `{"ok": false, "error": error}`.

        With status=429 a `Retry-After` header is sent (default 1 s); pass error="ratelimited" as Slack does.
        """
        queue = self._fail.setdefault(method, deque())
        for _ in range(times):
            queue.append({"error": error, "status": status, "retry_after": retry_after})

    def enforce_rate_limit(
        self, method: str, per_minute: int, *, window: float = 60.0, per_channel: bool = False
    ) -> None:
        """At most `per_minute` calls to `method` per team (or, `per_channel`, per team and channel) in a sliding
        `window` (s); beyond -> HTTP 429. A method may have both kinds of limit.

        The team is the call's `team_id` argument (Bolt's per-request client sends the event's team), else ours.
        """
        self._limits.setdefault(method, {})[per_channel] = (per_minute, window)

    def random_429s(
        self, share: float, *, retry_after: int = 1, seed: int = 0, spare: frozenset[str] = frozenset({"auth.test"})
    ) -> None:
        """Answer `share` of Web API calls (except the `spare` methods), picked at random, HTTP 429 `ratelimited`
        with `Retry-After: retry_after`, whatever the limits: Slack's own hiccups, for fault injection."""
        self._random_429s = (share, retry_after, spare, random.Random(seed)) if share > 0 else None

    def enforce_slack_limits(self, *, workspace_posts_per_minute: int = 300) -> None:
        """Every method's documented rate-limit tier (tests/data/slack-api-ref), per workspace, and chat.postMessage's
        "special" limits: 1 a second per channel with short bursts (5 in any 5 s), and a per-workspace ceiling Slack
        calls "several hundred messages per minute" (not documented exactly). assistant.threads.setStatus is also
        "special" with no published figure: limited as Tier 4 here (UNVERIFIED)."""
        for path in sorted(METHODS_DIR.glob("*.json")):
            tier = str(json.loads(path.read_text()).get("rate_limits") or "")
            if tier in ("t1", "t2", "t3", "t4"):
                self.enforce_tier(path.stem, int(tier[1]))
        self.enforce_rate_limit("chat.postMessage", 5, window=5.0, per_channel=True)
        self.enforce_rate_limit("chat.postMessage", workspace_posts_per_minute)
        self.enforce_tier("assistant.threads.setStatus", 4)

    def refuse_streaming(self, error: str | None = "unknown_method") -> None:
        """Until called with None, chat.startStream/appendStream/stopStream answer `{"ok": false, "error": error}`.

        Stands in for a workspace or app where native streaming is not available. Which error real Slack gives
        there is not documented (unknown_method, not_allowed and missing_scope are all plausible).
        """
        self.streaming_refusal = error

    def expire_stream(self, channel: str, ts: str) -> None:
        """Simulate Slack ending a stream on its side: later appends and stops get `message_not_in_streaming_state`,
        while chat.update works again (slack_sdk's documented fallback for an expired stream)."""
        self.message(channel, ts).stream_state = "stopped"

    def enforce_tier(self, method: str, tier: int) -> None:
        """Slack's budget for `method`'s rate-limit tier, per workspace: e.g. chat.update is Tier 3 (50/min)."""
        if tier not in TIER_PER_MINUTE:
            raise ValueError(f"Slack's rate-limit tiers are {sorted(TIER_PER_MINUTE)}, not {tier}")
        self.enforce_rate_limit(method, TIER_PER_MINUTE[tier])

    def stop_stream_by_user(self, channel: str, ts: str) -> None:
        """Simulate the user pressing "stop" on a streaming message: later appends get `stopped_by_user`."""
        self.message(channel, ts).stream_state = "stopped_by_user"

    # ------------------------------------------------------------------ workspaces and OAuth

    def add_workspace(
        self,
        team_id: str,
        *,
        name: str | None = None,
        enterprise_id: str | None = None,
        enterprise_name: str | None = None,
        bot_user_id: str | None = None,
        bot_id: str | None = None,
    ) -> FakeWorkspace:
        """Another workspace the app may be installed in; its bot user and bot ids are its own, as in Slack."""
        suffix = team_id[1:]
        workspace = FakeWorkspace(
            team_id=team_id,
            name=name or f"Workspace {team_id}",
            domain=f"ws-{suffix.lower()}",
            bot_user_id=bot_user_id or f"UBOT{suffix}",
            bot_id=bot_id or f"BBOT{suffix}",
            enterprise_id=enterprise_id,
            enterprise_name=enterprise_name or (f"Org {enterprise_id}" if enterprise_id else None),
        )
        self.workspaces[team_id] = workspace
        self.add_user(workspace.bot_user_id, name=self.bot_name, real_name="Claude", is_bot=True, team_id=team_id)
        return workspace

    def grant_code(self, team: str, *, redirect_uri: str | None = None, installer: str | None = None) -> str:
        """The one-time code Slack issues when the installer clicks "Allow" for `team` (a team id, or an enterprise
        id for an org-wide install)."""
        if team.startswith("E"):
            members = [w for w in self.workspaces.values() if w.enterprise_id == team]
            if not members:
                raise KeyError(f"no workspace of enterprise {team}; add_workspace(..., enterprise_id={team!r})")
            grant = _Grant(None, team, f"UBOTORG{team[1:]}", f"BBOTORG{team[1:]}", tuple(self.scopes))
            # An org-wide install has one bot user for the whole org.
            self.add_user(grant.bot_user_id, name=self.bot_name, is_bot=True, team_id=members[0].team_id)
        else:
            workspace = self.workspaces[team]
            grant = _Grant(team, workspace.enterprise_id, workspace.bot_user_id, workspace.bot_id, tuple(self.scopes))
        code = f"{secrets.randbelow(10**10)}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"
        self._codes[code] = _Code(
            grant, redirect_uri, installer or self.installer_user_id, time.monotonic() + OAUTH_CODE_TTL_S
        )
        return code

    def workspace_of_token(self, token: str | None) -> str | None:
        """The team id (or enterprise id, for an org-wide install) a token was issued for."""
        grant = self._grants.get(token or "")
        return None if grant is None else grant.team_id or grant.enterprise_id

    def uninstall(self, team: str) -> list[str]:
        """Revoke every token (and refresh token) issued for `team` (team id, or enterprise id for an org-wide
        install), as uninstalling does; returns the revoked access tokens."""
        revoked = []
        for table in (self._grants, self._refresh_tokens):
            for token, grant in table.items():
                if (grant.team_id or grant.enterprise_id) == team and not grant.revoked:
                    grant.revoked = True
                    if table is self._grants:
                        revoked.append(token)
        return revoked

    def expire_tokens(self, team: str) -> None:
        """Make `team`'s rotating access tokens expired now (instead of waiting 12 hours)."""
        for grant in self._grants.values():
            if (grant.team_id or grant.enterprise_id) == team and grant.expires_at is not None:
                grant.expires_at = time.time() - 1

    def _issue(self, grant: _Grant) -> dict[str, Any]:
        """A new bot token for `grant`'s workspace (and, with rotation, a refresh token), as oauth.v2.access says."""
        issued = _Grant(grant.team_id, grant.enterprise_id, grant.bot_user_id, grant.bot_id, grant.scopes)
        body: dict[str, Any] = {"token_type": "bot", "scope": ",".join(grant.scopes), "bot_user_id": grant.bot_user_id}
        if self.token_rotation:
            token = f"xoxe.xoxb-1-{secrets.token_hex(12)}"
            issued.expires_at = time.time() + self.token_lifetime_s
            refresh = f"xoxe-1-{secrets.token_hex(16)}"
            self._refresh_tokens[refresh] = issued
            body.update(expires_in=self.token_lifetime_s, refresh_token=refresh)
        else:
            token = f"xoxb-{secrets.randbelow(10**12)}-{secrets.token_hex(12)}"
        self._grants[token] = issued
        body["access_token"] = token
        body["app_id"] = self.app_id
        workspace = self.workspaces.get(grant.team_id or "")
        body["team"] = {"id": workspace.team_id, "name": workspace.name} if workspace is not None else None
        enterprise = grant.enterprise_id
        body["enterprise"] = None
        if enterprise is not None:
            org_name = next((w.enterprise_name for w in self.workspaces.values() if w.enterprise_id == enterprise), "")
            body["enterprise"] = {"id": enterprise, "name": org_name}
        body["is_enterprise_install"] = grant.team_id is None
        return body

    def _check_client(self, p: dict[str, Any], basic: tuple[str, str] | None) -> None:
        client_id, client_secret = basic if basic is not None else (p.get("client_id"), p.get("client_secret"))
        if client_id != self.client_id:
            raise _ApiError("invalid_client_id")
        if client_secret != self.client_secret:
            raise _ApiError("bad_client_secret")

    # ------------------------------------------------------------------ directory data

    def add_user(
        self,
        user_id: str,
        *,
        name: str | None = None,
        real_name: str | None = None,
        display_name: str | None = None,
        title: str = "",
        tz: str = "Europe/London",
        is_admin: bool = False,
        is_owner: bool = False,
        is_bot: bool = False,
        team_id: str | None = None,
        email: str | None = None,
        locale: str = "en-US",
    ) -> dict[str, Any]:
        """`locale` is returned only when a call asks for it (`include_locale=true`), as Slack does."""
        name = name or user_id.lower()
        self._locales[user_id] = locale
        real_name = real_name if real_name is not None else name.replace(".", " ").title()
        display_name = display_name if display_name is not None else name
        tz_label, tz_offset = _tz_info(tz)
        team = team_id or self.team_id
        image = f"https://avatars.example.invalid/{user_id}"
        profile: dict[str, Any] = {
            "title": title,
            "phone": "",
            "skype": "",
            "real_name": real_name,
            "real_name_normalized": real_name,
            "display_name": display_name,
            "display_name_normalized": display_name,
            "fields": {},
            "status_text": "",
            "status_emoji": "",
            "status_expiration": 0,
            "avatar_hash": "g0000000000",
            "first_name": real_name.split(" ")[0] if real_name else "",
            "last_name": " ".join(real_name.split(" ")[1:]),
            **{f"image_{s}": f"{image}_{s}.png" for s in (24, 32, 48, 72, 192, 512)},
            "team": team,
        }
        if is_bot:
            profile["bot_id"] = self.bot_id if user_id == self.bot_user_id else f"B{user_id[1:]}"
            profile["api_app_id"] = self.app_id if user_id == self.bot_user_id else ""
            profile["always_active"] = True
        elif email is not None or not is_bot:
            profile["email"] = email or f"{name}@example.com"
        user = {
            "id": user_id,
            "team_id": team,
            "name": name,
            "deleted": False,
            "color": "9f69e7",
            "real_name": real_name,
            "tz": tz,
            "tz_label": tz_label,
            "tz_offset": tz_offset,
            "profile": profile,
            "is_admin": is_admin,
            "is_owner": is_owner,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": is_bot,
            "is_app_user": False,
            "updated": int(time.time()),
            "is_email_confirmed": not is_bot,
            "who_can_share_contact_card": "EVERYONE",
        }
        self._users[user_id] = user
        return user

    def add_channel(
        self,
        channel_id: str,
        *,
        name: str,
        topic: str = "",
        purpose: str = "",
        is_private: bool = False,
        is_im: bool = False,
        members: list[str] | None = None,
        team_id: str | None = None,
    ) -> dict[str, Any]:
        """Register a conversation (in the default workspace unless `team_id` names another).

        members=None means "the bot only".  An explicit `members` list must include the bot's user id
        for the bot to post there (else not_in_channel / channel_not_found, as Slack answers).
        """
        now = int(time.time())
        workspace = self.workspaces[team_id or self.team_id]
        if is_im:
            other = next((m for m in (members or []) if m != workspace.bot_user_id), None)
            channel: dict[str, Any] = {
                "id": channel_id,
                "created": now,
                "is_archived": False,
                "is_im": True,
                "is_org_shared": False,
                "context_team_id": workspace.team_id,
                "updated": now * 1000,
                "user": other,
                "is_user_deleted": False,
                "priority": 0,
            }
        else:
            channel = {
                "id": channel_id,
                "name": name,
                "is_channel": not is_private,
                "is_group": is_private,
                "is_im": False,
                "is_mpim": False,
                "is_private": is_private,
                "created": now,
                "is_archived": False,
                "is_general": name == "general",
                "unlinked": 0,
                "name_normalized": name,
                "is_shared": False,
                "is_org_shared": False,
                "is_pending_ext_shared": False,
                "pending_shared": [],
                "context_team_id": workspace.team_id,
                "updated": now * 1000,
                "parent_conversation": None,
                "creator": "U0CREATOR",
                "is_ext_shared": False,
                "shared_team_ids": [workspace.team_id],
                "pending_connected_team_ids": [],
                "topic": {
                    "value": topic,
                    "creator": "U0CREATOR" if topic else "",
                    "last_set": now if topic else 0,
                },
                "purpose": {
                    "value": purpose,
                    "creator": "U0CREATOR" if purpose else "",
                    "last_set": now if purpose else 0,
                },
                "previous_names": [],
            }
        self._channels[channel_id] = channel
        self._channel_teams[channel_id] = workspace.team_id
        self._members[channel_id] = list(members) if members is not None else [workspace.bot_user_id]
        if members is not None:
            self._members_explicit.add(channel_id)
        else:
            self._members_explicit.discard(channel_id)
        return channel

    def add_history(self, channel: str, messages: list[dict[str, Any]]) -> None:
        """Messages by others (each has ts, user, text, optionally thread_ts / files / bot_id / subtype)."""
        store = self._history.setdefault(channel, {})
        for raw in messages:
            msg = {"type": "message", **raw}
            if "ts" not in msg:
                msg["ts"] = self._next_ts()
            store[msg["ts"]] = msg
            self._bump_ts(msg["ts"])

    def observe_event(self, payload: dict[str, Any]) -> None:
        """Record the message an Events API payload describes, as Slack would have stored it.

        send_socket_envelope() calls this for events_api envelopes; HTTP-mode tests can call it (or pass
        the fake to SlackRequestSender) so that conversations.replies/history know the user's messages.
        `assistant_thread_started` creates the thread's root message (subtype assistant_app_thread).
        """
        if payload.get("type") != "event_callback":
            return
        event = payload.get("event") or {}
        if event.get("type") == "assistant_thread_started":
            # Slack creates the thread's root message (subtype assistant_app_thread) for the user
            thread = event.get("assistant_thread") or {}
            channel, root_ts = thread.get("channel_id"), thread.get("thread_ts")
            if channel and root_ts:
                root = {
                    "type": "message",
                    "subtype": "assistant_app_thread",
                    "user": thread.get("user_id", ""),
                    "text": "New chat",
                    "ts": root_ts,
                    "thread_ts": root_ts,
                    "team": self.team_id,
                    "assistant_app_thread": {"title": "New chat", "artifacts": []},
                }
                self._history.setdefault(channel, {}).setdefault(root_ts, root)
                self._bump_ts(root_ts)
            return
        if event.get("type") not in ("message", "app_mention") or "channel" not in event or "ts" not in event:
            return
        subtype = event.get("subtype")
        channel = event["channel"]
        if subtype == "message_changed":
            new = event.get("message") or {}
            old = self._history.get(channel, {}).get(new.get("ts", ""))
            if old is not None:
                old.update({k: v for k, v in new.items() if k != "ts"})
            return
        if subtype == "message_deleted":
            self._history.get(channel, {}).pop(event.get("deleted_ts", ""), None)
            return
        if subtype not in (None, "file_share", "thread_broadcast", "bot_message", "me_message"):
            return
        if event.get("bot_id") == self.bot_id or (channel, event["ts"]) in self._messages:
            return
        keep = (
            "type",
            "user",
            "text",
            "ts",
            "thread_ts",
            "parent_user_id",
            "files",
            "upload",
            "blocks",
            "bot_id",
            "subtype",
            "team",
            "client_msg_id",
            "attachments",
        )
        msg = {k: event[k] for k in keep if k in event}
        msg["type"] = "message"
        self._history.setdefault(channel, {}).setdefault(event["ts"], msg)
        self._bump_ts(event["ts"])

    def add_file(
        self,
        content: bytes,
        *,
        name: str,
        mimetype: str,
        filetype: str | None = None,
        title: str | None = None,
        team_id: str | None = None,
    ) -> dict[str, Any]:
        """Host a private file (in the default workspace unless `team_id` names another); returns its Slack file
        object (also served by files.info). Only a token of that workspace may download it."""
        file_id = f"F0FAKE{next(self._ids):04d}"
        f = self._register_file(file_id, content, name=name, mimetype=mimetype, filetype=filetype, title=title)
        if team_id is not None:
            f["user_team"] = team_id
        return f

    def new_response_url(self) -> str:
        if not self.base_url:
            raise RuntimeError("start() the fake before asking for a response_url")
        hook = f"{self.team_id}-{secrets.token_hex(8)}"
        self._response_urls[hook] = 0
        return f"{self.base_url}/response/{hook}"

    # ------------------------------------------------------------------ socket mode

    async def wait_socket_connected(self, timeout: float = 5.0, *, count: int = 1) -> None:  # noqa: ASYNC109
        """Until at least `count` connections are open (an app may hold up to 10, e.g. one per process)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self._open_sockets()) < count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"no Socket Mode connection within {timeout}s")
            event = self._socket_event
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await event.wait()

    async def send_socket_envelope(
        self,
        type: str,
        payload: dict[str, Any],
        *,
        retry_attempt: int | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
        retry_reason: str = "timeout",
        accepts_response_payload: bool | None = None,
        envelope_id: str | None = None,
        connection: int = -1,
    ) -> dict[str, Any]:
        """Send an envelope on one open socket (the newest unless `connection` picks another, in the order they
        opened): Slack delivers each envelope to one of an app's connections. Returns the client's ack frame.

        Raises TimeoutError if no ack with the same envelope_id arrives within `timeout`.
        """
        await self.wait_socket_connected(timeout, count=connection + 1 if connection >= 0 else 1)
        if accepts_response_payload is None:
            accepts_response_payload = type == "slash_commands" or (
                type == "interactive"
                and payload.get("type") in ("view_submission", "block_suggestion", "dialog_suggestion")
            )
        envelope_id = envelope_id or f"{secrets.token_hex(4)}-{secrets.token_hex(2)}-{secrets.token_hex(6)}"
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": type,
            "accepts_response_payload": accepts_response_payload,
        }
        if retry_attempt is not None:
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = retry_reason
        if type == "events_api":
            self.observe_event(payload)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending_acks[envelope_id] = fut
        try:
            await self._open_sockets()[connection].send_str(json.dumps(envelope))
            async with asyncio.timeout(timeout):
                return await fut
        except TimeoutError:
            raise TimeoutError(f"no ack for {type} envelope {envelope_id} within {timeout}s") from None
        finally:
            self._pending_acks.pop(envelope_id, None)

    async def send_socket_disconnect(self, reason: str = "refresh_requested") -> None:
        """Send a `disconnect` frame (slack_sdk then reconnects through apps.connections.open)."""
        await self.wait_socket_connected()
        frame = {"type": "disconnect", "reason": reason, "debug_info": {"host": "fake"}}
        await self._open_sockets()[-1].send_str(json.dumps(frame))

    def _open_sockets(self) -> list[web.WebSocketResponse]:
        return [ws for ws in self._sockets if not ws.closed]

    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
        if request.query.get("ticket") not in self._tickets:
            return web.Response(status=401, text="invalid or missing ticket")
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        self.socket_connections += 1
        await ws.send_str(
            json.dumps(
                {
                    "type": "hello",
                    "num_connections": len(self._open_sockets()),
                    "debug_info": {"host": "fake", "build_number": 1, "approximate_connection_time": 3600},
                    "connection_info": {"app_id": self.app_id},
                }
            )
        )
        self._notify_socket()
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    frame = json.loads(msg.data)
                except ValueError:
                    self.socket_frames.append(msg.data)
                    continue
                self.socket_frames.append(frame)
                if isinstance(frame, dict) and "envelope_id" in frame:
                    self.socket_acks.append(frame)
                    fut = self._pending_acks.get(frame["envelope_id"])
                    if fut is not None and not fut.done():
                        fut.set_result(frame)
        finally:
            with contextlib.suppress(ValueError):
                self._sockets.remove(ws)
            self._notify_socket()
        return ws

    def _notify_socket(self) -> None:
        self._socket_event.set()
        self._socket_event = asyncio.Event()

    # ------------------------------------------------------------------ HTTP plumbing

    async def _read_request(self, request: web.Request) -> tuple[dict[str, Any], dict[str, Any], bool]:
        """(all params as sent, JSON-body params, body_was_json)."""
        params: dict[str, Any] = {}
        for key in request.query:
            params.setdefault(key, request.query[key])
        json_params: dict[str, Any] = {}
        is_json = False
        ctype = request.content_type
        if request.method != "GET" and request.can_read_body:
            if ctype.startswith("multipart/"):
                form = await request.post()
                for key in form:
                    value = form[key]
                    params[key] = value if isinstance(value, str) else value.file.read()
            else:
                raw = await request.read()
                if ctype == "application/json" and raw.strip():
                    is_json = True
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        raise _ApiError("invalid_json") from None
                    if not isinstance(body, dict):
                        raise _ApiError("invalid_json")
                    json_params = body
                    params.update(body)
                elif raw:
                    params.update(dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)))
        return params, json_params, is_json

    def _spec(self, method: str) -> dict[str, Any] | None:
        if method not in self._specs:
            path = METHODS_DIR / f"{method}.json"
            self._specs[method] = json.loads(path.read_text("utf-8")) if path.is_file() else None
        return self._specs[method]

    def _record(self, call: ApiCall) -> None:
        self.calls.append(call)
        self._call_event.set()
        self._call_event = asyncio.Event()
        for listener in self.call_listeners:
            listener(call)

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s / 2)
        headers: dict[str, str] = {}
        status = 200
        token: str | None = None
        params: dict[str, Any] = {}
        try:
            try:
                params, json_params, is_json = await self._read_request(request)
            finally:
                auth = request.headers.get("Authorization", "")
                if auth[:7].lower() == "bearer ":
                    token = auth[7:].strip() or None
                form_token = params.pop("token", None)
                if token is None and isinstance(form_token, str) and form_token:
                    token = form_token
            spec = self._spec(method)
            if spec is None:
                raise _ApiError("unknown_method", req_method=method)
            if method in _CLIENT_AUTH_METHODS:
                if token is not None:
                    # An argument here (the token to exchange; slack_sdk sends it as a bearer header), not credentials.
                    params["token"] = token
                basic = _basic_auth(request.headers.get("Authorization", ""))
                if basic is not None:
                    params.setdefault("client_id", basic[0])
                    params.setdefault("client_secret", basic[1])
                self._check_client(params, basic)
                self._caller = None
            else:
                self._caller = self._check_auth(method, token)
            headers["x-oauth-scopes"] = ",".join(self.scopes)
            headers["x-accepted-oauth-scopes"] = ",".join((spec.get("scope") or {}).get("bot") or [])
            if method in _STREAMING_METHODS and self.streaming_refusal is not None:
                raise _ApiError(self.streaming_refusal)
            injected = self._injected_failure(method)
            if injected is not None:
                status = injected["status"]
                if status == 429 or injected["retry_after"] is not None:
                    headers["Retry-After"] = str(
                        int(injected["retry_after"] if injected["retry_after"] is not None else 1)
                    )
                if status == 429:
                    self.rate_limited_count += 1
                raise _ApiError(injected["error"])
            retry_after = self._random_429(method) or self._rate_limit(method, params)
            if retry_after is not None:
                status = 429
                headers["Retry-After"] = str(retry_after)
                self.rate_limited_count += 1
                raise _ApiError("ratelimited")
            if self.enforce_scopes:
                needed = (spec.get("scope") or {}).get("bot") or []
                if needed and not spec.get("no_scope_required") and not set(needed) & set(self.scopes):
                    raise _ApiError("missing_scope", needed=",".join(needed), provided=",".join(self.scopes))
            effective = dict(params)
            if is_json and not spec.get("json_input_supported"):
                for key in json_params:
                    effective.pop(key, None)  # Slack does not read JSON bodies for these methods
            self._check_required(method, spec, effective)
            handler = getattr(self, "_m_" + method.replace(".", "_"), None)
            if handler is None:
                raise _ApiError("fake_method_not_implemented")
            body = handler(effective)
            body = {"ok": True, **body}
        except _ApiError as exc:
            body = {"ok": False, "error": exc.error, **exc.extra}
        call = ApiCall(
            method=method,
            params=params,
            token=token,
            http_method=request.method,
            response=body,
            status=status,
            at=time.monotonic(),
            peer=":".join(map(str, request.transport.get_extra_info("peername") or ())) if request.transport else "",
        )
        self._record(call)
        if self.latency_s > 0:
            await asyncio.sleep(self.latency_s / 2)
        return web.json_response(body, status=status, headers=headers)

    def _check_auth(self, method: str, token: str | None) -> _Grant | None:
        """The bot grant behind `token` (None for the app-level token on apps.connections.open)."""
        if not token:
            raise _ApiError("not_authed")
        grant = self._grants.get(token)
        if method == "apps.connections.open":
            if token == self.app_token:
                return None
            if grant is not None:
                raise _ApiError("not_allowed_token_type")
            raise _ApiError("invalid_auth")
        if grant is not None:
            if grant.revoked:
                raise _ApiError("token_revoked")
            if grant.expires_at is not None and grant.expires_at <= time.time():
                raise _ApiError("token_expired")
            return grant
        if token == self.app_token:
            raise _ApiError("not_allowed_token_type")
        raise _ApiError("invalid_auth")

    @property
    def _bot_user(self) -> str:
        """The bot user of the workspace the current call's token belongs to."""
        return self._caller.bot_user_id if self._caller is not None else self.bot_user_id

    def _injected_failure(self, method: str) -> dict[str, Any] | None:
        queue = self._fail.get(method)
        if queue:
            return queue.popleft()
        return None

    def _random_429(self, method: str) -> int | None:
        if self._random_429s is None:
            return None
        share, retry_after, spare, rng = self._random_429s
        if method in spare or rng.random() >= share:
            return None
        self.random_429_count[method] += 1
        return retry_after

    def _rate_limit(self, method: str, params: dict[str, Any]) -> int | None:
        if method not in self._limits:
            return None
        team = str(params.get("team_id") or self.team_id)
        now = time.monotonic()
        counted = []
        for per_channel, (per_minute, window) in self._limits[method].items():
            where = (method, team, str(params.get("channel") or "")) if per_channel else (method, team)
            stamps = self._windows.setdefault(where, deque())
            while stamps and stamps[0] <= now - window:
                stamps.popleft()
            if len(stamps) >= per_minute:
                self.rate_limited[method] += 1
                return max(1, math.ceil(stamps[0] + window - now))
            counted.append(stamps)
        for stamps in counted:
            stamps.append(now)
        return None

    def _check_required(self, method: str, spec: dict[str, Any], p: dict[str, Any]) -> None:
        required = [r for r in (spec.get("args") or {}).get("required") or [] if r != "token"]
        if method in _POSTING_METHODS:
            if not _nonempty(p.get("channel")):
                raise _ApiError("channel_not_found")
            shows = ("text", "blocks", "attachments", "markdown_text")
            only_files_or_meta = method == "chat.update" and any(k in p for k in ("file_ids", "metadata"))
            if not only_files_or_meta and not any(_nonempty(p.get(k)) for k in shows):
                raise _ApiError("no_text")
        if method == "chat.appendStream" and _nonempty(p.get("chunks")):
            required = [r for r in required if r != "markdown_text"]  # slack_sdk sends chunks instead
        for name in required:
            value = p.get(name)
            if value is None or (value == "" and (method, name) not in _EMPTY_ALLOWED):
                raise _missing_field(name)

    # ------------------------------------------------------------------ shared checks / state

    def _next_ts(self, after: str | None = None) -> str:
        micro = max(int(time.time() * 1_000_000), self._last_ts + 100)
        if after is not None and _valid_ts(after):
            micro = max(micro, _ts_micro(after) + 100)
        self._last_ts = micro
        return f"{micro // 1_000_000}.{micro % 1_000_000:06d}"

    def _bump_ts(self, ts: str) -> None:
        if _valid_ts(ts):
            self._last_ts = max(self._last_ts, _ts_micro(ts))

    def _check_channel(self, channel: Any, *, posting: bool = False) -> str:
        if not isinstance(channel, str) or not channel:
            raise _ApiError("channel_not_found")
        if self._channels and channel[:1] in ("C", "G") and channel not in self._channels:
            raise _ApiError("channel_not_found")
        owner = self._channel_teams.get(channel)
        if owner is not None and self._caller is not None and not self._caller.sees(self.workspaces[owner]):
            raise _ApiError("channel_not_found")  # another workspace's channel, as far as this token knows
        if posting and channel in self._channels and self._bot_user not in self._members.get(channel, []):
            if self._channels[channel].get("is_private"):
                raise _ApiError("channel_not_found")
            raise _ApiError("not_in_channel")
        return channel

    def _check_text(self, p: dict[str, Any]) -> None:
        text, blocks, markdown_text = p.get("text"), p.get("blocks"), p.get("markdown_text")
        if markdown_text is not None:
            if _nonempty(text) or _nonempty(blocks):
                raise _ApiError("markdown_text_conflict")
            if len(str(markdown_text)) > MARKDOWN_TEXT_LIMIT:
                raise _ApiError("msg_too_long")
        if isinstance(text, str) and len(text) > self.text_limit:
            raise _ApiError("msg_too_long")
        attachments = p.get("attachments")
        if _nonempty(attachments):
            parsed = _json_param(attachments, "attachments", "invalid_attachments")
            if not isinstance(parsed, list):
                raise _ApiError("invalid_attachments")
            if len(parsed) > MAX_ATTACHMENTS:
                raise _ApiError("too_many_attachments")

    def _check_blocks(self, value: Any, *, limit: int = MAX_BLOCKS_MESSAGE, where: str = "blocks") -> list[Any] | None:
        if value is None:
            return None
        blocks = _json_param(value, where, "invalid_blocks_format")
        if not isinstance(blocks, list):
            raise _ApiError("invalid_blocks_format")
        errors: list[str] = []
        if len(blocks) > limit:
            errors.append(f"[ERROR] no more than {limit} items allowed [json-pointer:/{where}]")
        markdown_total = 0
        for i, block in enumerate(blocks):
            ptr = f"/{where}/{i}"
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                errors.append(f"[ERROR] missing required field: type [json-pointer:{ptr}]")
                continue
            if len(str(block.get("block_id", ""))) > BLOCK_ID_LIMIT:
                errors.append(
                    f"[ERROR] must be less than {BLOCK_ID_LIMIT + 1} characters [json-pointer:{ptr}/block_id]"
                )
            kind = block["type"]
            if kind == "section":
                if "text" not in block and "fields" not in block:
                    errors.append(f"[ERROR] must provide either text or fields [json-pointer:{ptr}]")
                if len(_text_of(block.get("text"))) > SECTION_TEXT_LIMIT:
                    errors.append(_too_long(SECTION_TEXT_LIMIT, f"{ptr}/text/text"))
                fields = block.get("fields") or []
                if len(fields) > SECTION_FIELDS_MAX:
                    errors.append(
                        f"[ERROR] no more than {SECTION_FIELDS_MAX} items allowed [json-pointer:{ptr}/fields]"
                    )
                for j, fld in enumerate(fields):
                    if len(_text_of(fld)) > SECTION_FIELD_LIMIT:
                        errors.append(
                            f"[ERROR] must be less than {SECTION_FIELD_LIMIT + 1} characters "
                            f"[json-pointer:{ptr}/fields/{j}/text]"
                        )
            elif kind == "header":
                if len(_text_of(block.get("text"))) > HEADER_TEXT_LIMIT:
                    errors.append(_too_long(HEADER_TEXT_LIMIT, f"{ptr}/text/text"))
            elif kind == "markdown":
                text = block.get("text")
                if not isinstance(text, str) or not text:
                    errors.append(f"[ERROR] missing required field: text [json-pointer:{ptr}]")
                else:
                    markdown_total += len(text)
            elif kind == "context" and len(block.get("elements") or []) > 10:
                errors.append(f"[ERROR] no more than 10 items allowed [json-pointer:{ptr}/elements]")
        if errors:
            raise _ApiError("invalid_blocks", errors=errors, response_metadata={"messages": errors})
        if markdown_total > MARKDOWN_BLOCKS_LIMIT:
            raise _ApiError("msg_blocks_too_long")
        return blocks

    def _metadata(self, value: Any) -> dict[str, Any] | None:
        if value is None:
            return None
        meta = _json_param(value, "metadata", "invalid_metadata_format")
        if meta == {}:
            return {}
        if not isinstance(meta, dict) or "event_type" not in meta or "event_payload" not in meta:
            raise _ApiError("invalid_metadata_format")
        return meta

    def _message_json(self, m: FakeMessage, *, metadata: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "user": m.user,
            "type": "message",
            "ts": m.ts,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "text": m.text,
            "team": self.team_id,
            "bot_profile": {
                "id": self.bot_id,
                "deleted": False,
                "name": self.bot_name,
                "updated": 1700000000,
                "app_id": self.app_id,
                "icons": {"image_36": "https://avatars.example.invalid/bot_36.png"},
                "team_id": self.team_id,
            },
            "blocks": m.blocks if m.blocks is not None else _rich_text(m.text),
        }
        if m.attachments:
            d["attachments"] = m.attachments
        if m.thread_ts is not None:
            d["thread_ts"] = m.thread_ts
            if m.thread_ts != m.ts:
                d["parent_user_id"] = self._author(m.channel, m.thread_ts)
        if len(m.edits) > 1:
            d["edited"] = {"user": self.bot_user_id, "ts": self._last_edit_ts.get((m.channel, m.ts), m.ts)}
        if metadata and m.metadata:
            d["metadata"] = m.metadata
        return d

    def _author(self, channel: str, ts: str) -> str:
        if (channel, ts) in self._messages:
            return self.bot_user_id
        return str(self._history.get(channel, {}).get(ts, {}).get("user", ""))

    def _all_messages(self, channel: str, *, metadata: bool) -> list[dict[str, Any]]:
        msgs = [
            {k: v for k, v in m.items() if metadata or k != "metadata"} for m in self._history.get(channel, {}).values()
        ]
        msgs += [
            self._message_json(m, metadata=metadata)
            for (ch, _), m in self._messages.items()
            if ch == channel and not m.deleted
        ]
        msgs.sort(key=lambda m: _ts_micro(m["ts"]))
        by_ts = {m["ts"]: m for m in msgs}
        for m in msgs:  # thread parents carry reply info, as in conversations.replies examples
            parent_ts = m.get("thread_ts")
            if parent_ts and parent_ts != m["ts"] and parent_ts in by_ts:
                parent = by_ts[parent_ts]
                parent["thread_ts"] = parent_ts
                parent["reply_count"] = parent.get("reply_count", 0) + 1
                users = parent.setdefault("reply_users", [])
                if m.get("user") and m["user"] not in users:
                    users.append(m["user"])
                parent["reply_users_count"] = len(users)
                parent["latest_reply"] = m["ts"]
        return msgs

    def _limit(self, p: dict[str, Any], default: int, maximum: int = 1000) -> int:
        limit = _as_int(p.get("limit"), "limit", default) or default
        return max(1, min(limit, maximum))

    def _in_range(self, ts: str, p: dict[str, Any]) -> bool:
        inclusive = _truthy(p.get("inclusive", False))
        value = _ts_micro(ts)
        oldest, latest = p.get("oldest"), p.get("latest")
        if oldest not in (None, ""):
            if not _valid_ts(str(oldest)):
                raise _ApiError("invalid_ts_oldest")
            o = _ts_micro(str(oldest))
            if value < o or (value == o and not inclusive):
                return False
        if latest not in (None, ""):
            if not _valid_ts(str(latest)):
                raise _ApiError("invalid_ts_latest")
            la = _ts_micro(str(latest))
            if value > la or (value == la and not inclusive):
                return False
        return True

    def _find_message(self, channel: str, ts: str) -> FakeMessage:
        m = self._messages.get((channel, ts))
        if m is None or m.deleted:
            if ts in self._history.get(channel, {}):
                raise _ApiError("cant_update_message")
            raise _ApiError("message_not_found")
        return m

    def _clear_status(self, channel: str, thread_ts: str | None) -> None:
        if thread_ts is not None:
            self.assistant_status.pop((channel, thread_ts), None)

    def _set_file_urls(self, f: dict[str, Any]) -> None:
        base = self.base_url or "http://127.0.0.1:0"
        key = f"{self.team_id}-{f['id']}"
        f["url_private"] = f"{base}/files-pri/{key}/{f['name']}"
        f["url_private_download"] = f"{base}/files-pri/{key}/download/{f['name']}"
        f["permalink"] = f"https://{self.team_domain}.slack.com/files/{self.bot_user_id}/{f['id']}/{f['name']}"
        f["permalink_public"] = f"https://slack-files.com/{key}-{secrets.token_hex(5)}"
        self._file_paths[f"/files-pri/{key}/{f['name']}"] = f["id"]
        self._file_paths[f"/files-pri/{key}/download/{f['name']}"] = f["id"]

    def _register_file(
        self,
        file_id: str,
        content: bytes,
        *,
        name: str,
        mimetype: str,
        filetype: str | None = None,
        title: str | None = None,
        user: str = "U0USER",
    ) -> dict[str, Any]:
        ftype, pretty = _filetype_for(name, mimetype)
        if filetype is not None:
            ftype, pretty = filetype, _FILETYPES.get(mimetype, (filetype, filetype.upper()))[1]
        now = int(time.time())
        f: dict[str, Any] = {
            "id": file_id,
            "created": now,
            "timestamp": now,
            "name": name,
            "title": title if title is not None else name,
            "mimetype": mimetype,
            "filetype": ftype,
            "pretty_type": pretty,
            "user": user,
            "user_team": self.team_id,
            "editable": False,
            "size": len(content),
            "mode": "hosted",
            "is_external": False,
            "external_type": "",
            "is_public": True,
            "public_url_shared": False,
            "display_as_bot": False,
            "username": "",
            "comments_count": 0,
            "is_starred": False,
            "shares": {},
            "channels": [],
            "groups": [],
            "ims": [],
            "has_rich_preview": False,
            "file_access": "visible",
        }
        size = _image_size(content) if mimetype.startswith("image/") else None
        if size is not None:
            f["original_w"], f["original_h"] = size
        self._files[file_id] = f
        self._file_content[file_id] = content
        self._set_file_urls(f)
        return f

    # ------------------------------------------------------------------ non-API routes

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization")
        file_id = self._file_paths.get(request.path)
        record: dict[str, Any] = {"path": request.path, "authorization": auth}
        self.file_downloads.append(record)
        if not self._may_download(auth, file_id):
            record.update(status=200, served="sign_in_page")
            return web.Response(status=200, text=_SIGN_IN_PAGE, content_type="text/html")
        if file_id is None:
            record.update(status=404, served="not_found")
            return web.Response(status=404, text="Not Found", content_type="text/plain")
        record.update(status=200, served="file", file_id=file_id)
        f = self._files[file_id]
        return web.Response(
            status=200,
            body=self._file_content[file_id],
            headers={
                "Content-Type": f["mimetype"],
                "Content-Disposition": f'attachment; filename="{f["name"]}"',
            },
        )

    def _may_download(self, auth: str | None, file_id: str | None) -> bool:
        """A valid bot token of the workspace the file lives in (any valid one for a path that is not a file)."""
        token = auth[7:] if auth and auth.startswith("Bearer ") else ""
        grant = self._grants.get(token)
        if grant is None or grant.revoked or (grant.expires_at is not None and grant.expires_at <= time.time()):
            return False
        team = self._files[file_id].get("user_team") if file_id is not None else None
        return team not in self.workspaces or grant.sees(self.workspaces[team])

    async def _handle_upload(self, request: web.Request) -> web.StreamResponse:
        file_id = request.match_info["file_id"]
        pending = self._pending_uploads.get(file_id)
        data = await request.read()
        if pending is None:
            return web.Response(status=404, text="Not Found", content_type="text/plain")
        pending["content"] = data
        return web.Response(status=200, text=f"OK - {len(data)}", content_type="text/plain")

    async def _handle_response_url(self, request: web.Request) -> web.StreamResponse:
        hook = request.match_info["hook"]
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        self.response_url_posts.append({"url": str(request.url), "body": body})
        if hook not in self._response_urls:
            return web.json_response({"ok": False, "error": "no_active_hooks"}, status=404)
        if not isinstance(body, dict):
            return web.json_response({"ok": False, "error": "invalid_payload"}, status=400)
        self._response_urls[hook] += 1
        if self._response_urls[hook] > RESPONSE_URL_MAX_USES:
            return web.json_response({"ok": False, "error": "used_url"}, status=404)
        return web.json_response({"ok": True})

    async def _handle_authorize(self, request: web.Request) -> web.StreamResponse:
        """slack.com/oauth/v2/authorize with the installer clicking "Allow": back to the app with a code and state."""
        query = dict(request.query)
        self.authorize_requests.append(query)
        if query.get("client_id") != self.client_id:
            return web.Response(status=400, text="invalid_client_id", content_type="text/plain")
        redirect_uri = query.get("redirect_uri")
        if redirect_uri is not None and redirect_uri not in self.redirect_urls:
            return web.Response(status=400, text="bad_redirect_uri", content_type="text/plain")
        target = redirect_uri or (self.redirect_urls[0] if self.redirect_urls else None)
        if target is None:
            return web.Response(status=400, text="no redirect URL configured", content_type="text/plain")
        code = self.grant_code(query.get("team") or self.team_id, redirect_uri=redirect_uri)
        location = str(URL(target).update_query(code=code, state=query.get("state", "")))
        raise web.HTTPFound(location)

    # ------------------------------------------------------------------ methods
    # Each handler gets the effective params and returns the success body (without "ok"),
    # or raises _ApiError.

    def _m_auth_test(self, p: dict[str, Any]) -> dict[str, Any]:
        grant = self._caller
        if grant is None or grant.team_id is not None:
            workspace = self.workspaces[grant.team_id if grant is not None and grant.team_id else self.team_id]
            body = {
                "url": f"https://{workspace.domain}.slack.com/",
                "team": workspace.name,
                "team_id": workspace.team_id,
                "is_enterprise_install": False,
            }
            if workspace.enterprise_id is not None:
                body["enterprise_id"] = workspace.enterprise_id
        else:
            # An org-wide token (unverified shape: the org stands in for the team).
            org = next(w for w in self.workspaces.values() if w.enterprise_id == grant.enterprise_id)
            body = {
                "url": f"https://{(org.enterprise_name or 'org').lower().replace(' ', '-')}.enterprise.slack.com/",
                "team": org.enterprise_name,
                "team_id": grant.enterprise_id,
                "enterprise_id": grant.enterprise_id,
                "is_enterprise_install": True,
            }
        return {
            **body,
            "user": self.bot_name,
            "user_id": grant.bot_user_id if grant is not None else self.bot_user_id,
            "bot_id": grant.bot_id if grant is not None else self.bot_id,
        }

    def _m_oauth_v2_access(self, p: dict[str, Any]) -> dict[str, Any]:
        """Exchange an install's code, or (grant_type=refresh_token) refresh a rotating token."""
        grant_type = p.get("grant_type") or "authorization_code"
        if grant_type == "refresh_token":
            old = self._refresh_tokens.get(str(p.get("refresh_token") or ""))
            if old is None or old.revoked:
                raise _ApiError("invalid_refresh_token")
            old.revoked = True  # Slack revokes a refresh token once it has been used
            return self._issue(old)
        if grant_type != "authorization_code":
            raise _ApiError("invalid_grant_type")
        code = self._codes.pop(str(p.get("code") or ""), None)
        if code is None or code.expires_at <= time.monotonic():
            raise _ApiError("invalid_code")
        if code.redirect_uri is not None and p.get("redirect_uri") not in (None, code.redirect_uri):
            raise _ApiError("bad_redirect_uri")
        return {**self._issue(code.grant), "authed_user": {"id": code.installer}}

    def _m_oauth_v2_exchange(self, p: dict[str, Any]) -> dict[str, Any]:
        """A legacy (non-expiring) token for an expiring one plus a refresh token; needs rotation on."""
        if not self.token_rotation:
            raise _ApiError("token_rotation_not_enabled")
        token = str(p["token"])
        grant = self._grants.get(token)
        if grant is None or grant.revoked or grant.expires_at is not None:
            raise _ApiError("invalid_token")
        if token in self._exchanged:
            raise _ApiError("token_already_exchanged")
        self._exchanged.add(token)
        issued = self._issue(grant)
        return {
            key: issued[key]
            for key in ("token_type", "scope", "bot_user_id", "access_token", "expires_in", "refresh_token", "app_id")
        }

    def _m_apps_connections_open(self, p: dict[str, Any]) -> dict[str, Any]:
        ticket = secrets.token_hex(8)
        self._tickets.add(ticket)
        ws_base = "ws://" + self.base_url.split("://", 1)[1]
        return {"url": f"{ws_base}/socket?ticket={ticket}&app_id={self.app_id}"}

    def _m_chat_postMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._check_channel(p.get("channel"), posting=True)
        self._check_text(p)
        blocks = self._check_blocks(p.get("blocks"))
        metadata = self._metadata(p.get("metadata"))
        thread_ts = p.get("thread_ts") or None
        if thread_ts is not None and not _valid_ts(str(thread_ts)):
            raise _ApiError("invalid_thread_ts")
        attachments = _json_param(p["attachments"], "attachments") if _nonempty(p.get("attachments")) else None
        text = str(p.get("text") or p.get("markdown_text") or "")
        ts = self._next_ts(after=thread_ts)
        msg = FakeMessage(
            channel=channel,
            ts=ts,
            thread_ts=thread_ts,
            text=text,
            blocks=blocks,
            edits=[text],
            user=self._bot_user,
            metadata=metadata or None,
            attachments=attachments,
        )
        self._messages[(channel, ts)] = msg
        self._clear_status(channel, thread_ts)
        return {"channel": channel, "ts": ts, "message": self._message_json(msg)}

    def _m_chat_update(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._check_channel(p.get("channel"), posting=True)
        msg = self._find_message(channel, str(p["ts"]))
        if msg.stream_state == "streaming":
            raise _ApiError("streaming_state_conflict")
        self._check_text(p)
        blocks = self._check_blocks(p.get("blocks"))
        metadata = self._metadata(p.get("metadata"))
        text = str(p.get("text") or p.get("markdown_text") or "")
        msg.text = text
        msg.blocks = blocks  # text without blocks removes the old blocks, as documented
        if _nonempty(p.get("attachments")):
            msg.attachments = _json_param(p["attachments"], "attachments")
        if metadata is not None:
            msg.metadata = metadata or None
        msg.edits.append(text)
        self._last_edit_ts[(channel, msg.ts)] = self._next_ts()
        message = self._message_json(msg)
        message.pop("ts", None)
        return {"channel": channel, "ts": msg.ts, "text": text, "message": message}

    def _m_chat_postEphemeral(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._check_channel(p.get("channel"), posting=True)
        user = str(p["user"])
        if channel in self._members_explicit and user not in self._members[channel]:
            raise _ApiError("user_not_in_channel")
        self._check_text(p)
        self._check_blocks(p.get("blocks"))
        return {"message_ts": self._next_ts()}

    def _m_chat_delete(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._check_channel(p.get("channel"))
        ts = str(p["ts"])
        m = self._messages.get((channel, ts))
        if m is None or m.deleted:
            if ts in self._history.get(channel, {}):
                raise _ApiError("cant_delete_message")
            raise _ApiError("message_not_found")
        m.deleted = True
        return {"channel": channel, "ts": ts}

    def _m_chat_getPermalink(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._check_channel(p.get("channel"))
        ts = str(p["message_ts"])
        if not _valid_ts(ts):
            raise _ApiError("message_not_found")
        link = f"https://{self.team_domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        m = self._messages.get((channel, ts))
        thread_ts = m.thread_ts if m is not None else self._history.get(channel, {}).get(ts, {}).get("thread_ts")
        if thread_ts and thread_ts != ts:
            link += f"?thread_ts={thread_ts}&cid={channel}"
        return {"channel": channel, "permalink": link}

    # streaming

    def _stream_text(self, p: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        markdown_text = p.get("markdown_text")
        if markdown_text is not None and len(str(markdown_text)) > MARKDOWN_TEXT_LIMIT:
            raise _ApiError("msg_too_long")
        chunks_raw = p.get("chunks")
        chunks: list[dict[str, Any]] = []
        if chunks_raw is not None:
            parsed = _json_param(chunks_raw, "chunks", "invalid_chunks")
            if not isinstance(parsed, list):
                raise _ApiError("invalid_chunks")
            for chunk in parsed:
                if not isinstance(chunk, dict) or chunk.get("type") not in _CHUNK_TYPES:
                    raise _ApiError("invalid_chunks")
                if chunk["type"] == "markdown_text":
                    if not isinstance(chunk.get("text"), str):
                        raise _ApiError("invalid_chunks")
                    if len(chunk["text"]) > MARKDOWN_TEXT_LIMIT:
                        raise _ApiError("msg_too_long")
                chunks.append(chunk)
        text = str(markdown_text or "") + "".join(c["text"] for c in chunks if c["type"] == "markdown_text")
        return text, chunks

    def _stream_message(self, p: dict[str, Any]) -> FakeMessage:
        channel = self._check_channel(p.get("channel"), posting=True)
        m = self._messages.get((channel, str(p["ts"])))
        if m is None or m.deleted:
            raise _ApiError("message_not_found")
        if m.stream_state == "stopped_by_user":
            raise _ApiError("stopped_by_user")
        if m.stream_state != "streaming":
            raise _ApiError("message_not_in_streaming_state")
        return m

    def _m_chat_startStream(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._check_channel(p.get("channel"), posting=True)
        if channel[:1] in ("C", "G"):
            if not p.get("recipient_user_id"):
                raise _ApiError("missing_recipient_user_id")
            if not p.get("recipient_team_id"):
                raise _ApiError("missing_recipient_team_id")
        thread_ts = p.get("thread_ts") or None
        if thread_ts is not None and not _valid_ts(str(thread_ts)):
            raise _ApiError("invalid_thread_ts")
        text, chunks = self._stream_text(p)
        ts = self._next_ts(after=thread_ts)
        self._messages[(channel, ts)] = FakeMessage(
            channel=channel,
            ts=ts,
            thread_ts=thread_ts,
            text=text,
            blocks=None,
            edits=[text],
            user=self._bot_user,
            stream_state="streaming",
            chunks=chunks,
        )
        self._clear_status(channel, thread_ts)
        return {"channel": channel, "ts": ts}

    def _m_chat_appendStream(self, p: dict[str, Any]) -> dict[str, Any]:
        m = self._stream_message(p)
        text, chunks = self._stream_text(p)
        if not text and not chunks:
            raise _ApiError("no_text")
        m.chunks.extend(chunks)
        if text:
            m.text += text
            m.edits.append(m.text)
        return {"channel": m.channel, "ts": m.ts}

    def _m_chat_stopStream(self, p: dict[str, Any]) -> dict[str, Any]:
        m = self._stream_message(p)
        text, chunks = self._stream_text(p)
        blocks = self._check_blocks(p.get("blocks"))
        metadata = self._metadata(p.get("metadata"))
        m.chunks.extend(chunks)
        if text:
            m.text += text
            m.edits.append(m.text)
        if blocks is not None:
            m.blocks = blocks
        if metadata:
            m.metadata = metadata
        m.stream_state = "stopped"
        message = self._message_json(m)
        return {"channel": m.channel, "ts": m.ts, "message": message}

    # conversations / users / team

    def _m_conversations_info(self, p: dict[str, Any]) -> dict[str, Any]:
        channel_id = str(p["channel"])
        channel = self._channels.get(channel_id)
        if channel is None:
            if channel_id.startswith("D"):
                channel = {
                    "id": channel_id,
                    "created": int(time.time()),
                    "is_archived": False,
                    "is_im": True,
                    "is_org_shared": False,
                    "context_team_id": self.team_id,
                    "updated": int(time.time()) * 1000,
                    "is_user_deleted": False,
                    "priority": 0,
                }
            else:
                raise _ApiError("channel_not_found")
        out = dict(channel)
        if not out.get("is_im"):
            out["is_member"] = self._bot_user in self._members.get(channel_id, [])
        if _truthy(p.get("include_num_members", False)) and not out.get("is_im"):
            out["num_members"] = len(self._members.get(channel_id, []))
        if _truthy(p.get("include_locale", False)):
            out["locale"] = "en-US"
        return {"channel": out}

    def _m_conversations_members(self, p: dict[str, Any]) -> dict[str, Any]:
        channel_id = str(p["channel"])
        if channel_id not in self._channels:
            raise _ApiError("channel_not_found")
        members, cursor = _page(self._members.get(channel_id, []), p.get("cursor"), self._limit(p, 100))
        return {"members": members, "response_metadata": {"next_cursor": cursor}}

    def _m_conversations_replies(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._check_channel(p.get("channel"))
        ts = str(p["ts"])
        if not _valid_ts(ts):
            raise _ApiError("thread_not_found")
        msgs = self._all_messages(channel, metadata=_truthy(p.get("include_all_metadata", False)))
        parent = next((m for m in msgs if m["ts"] == ts), None)
        replies = [m for m in msgs if m.get("thread_ts") == ts and m["ts"] != ts]
        if parent is None and not replies:
            raise _ApiError("thread_not_found")
        if parent is not None and parent.get("thread_ts") not in (None, ts):
            replies = []  # ts is itself a reply: Slack returns only that message
        selected = [m for m in replies if self._in_range(m["ts"], p)]
        ordered = ([parent] if parent is not None else []) + selected
        page, cursor = _page(ordered, p.get("cursor"), self._limit(p, 1000))
        return {"messages": page, "has_more": bool(cursor), "response_metadata": {"next_cursor": cursor}}

    def _m_conversations_history(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._check_channel(p.get("channel"))
        if channel in self._channels and self._bot_user not in self._members.get(channel, []):
            raise _ApiError("not_in_channel")
        msgs = self._all_messages(channel, metadata=_truthy(p.get("include_all_metadata", False)))
        top = [
            m
            for m in msgs
            if (m.get("thread_ts") in (None, m["ts"]) or m.get("subtype") == "thread_broadcast")
            and self._in_range(m["ts"], p)
        ]
        top.reverse()  # newest first
        page, cursor = _page(top, p.get("cursor"), self._limit(p, 100, 999))
        return {
            "messages": page,
            "has_more": bool(cursor),
            "pin_count": 0,
            "response_metadata": {"next_cursor": cursor},
        }

    def _m_users_info(self, p: dict[str, Any]) -> dict[str, Any]:
        user = self._users.get(str(p["user"]))
        if user is None:
            raise _ApiError("user_not_found")
        out = dict(user)
        if _truthy(p.get("include_locale", False)):
            out["locale"] = self._locales.get(out["id"], "en-US")
        return {"user": out}

    def _m_users_conversations(self, p: dict[str, Any]) -> dict[str, Any]:
        user = str(p.get("user") or self.bot_user_id)
        types = {t.strip() for t in str(p.get("types") or "public_channel").split(",") if t.strip()}
        allowed = {"public_channel", "private_channel", "mpim", "im"}
        if not types <= allowed:
            raise _ApiError("invalid_types")
        out = []
        for cid, ch in self._channels.items():
            kind = (
                "im"
                if ch.get("is_im")
                else "mpim"
                if ch.get("is_mpim")
                else "private_channel"
                if ch.get("is_private")
                else "public_channel"
            )
            if kind in types and user in self._members.get(cid, []):
                if _truthy(p.get("exclude_archived", False)) and ch.get("is_archived"):
                    continue
                out.append(ch)
        page, cursor = _page(out, p.get("cursor"), self._limit(p, 100))
        return {"channels": page, "response_metadata": {"next_cursor": cursor}}

    def _m_team_info(self, p: dict[str, Any]) -> dict[str, Any]:
        team = p.get("team")
        if team and team != self.team_id:
            raise _ApiError("team_not_found")
        return {
            "team": {
                "id": self.team_id,
                "name": self.team_name,
                "url": f"https://{self.team_domain}.slack.com/",
                "domain": self.team_domain,
                "email_domain": "example.com",
                "icon": {
                    "image_default": True,
                    **{
                        f"image_{s}": f"https://avatars.example.invalid/team_{s}.png"
                        for s in (34, 44, 68, 88, 102, 132)
                    },
                },
                "avatar_base_url": "https://avatars.example.invalid/",
                "is_verified": False,
            }
        }

    # reactions

    def _reaction_target(self, p: dict[str, Any]) -> tuple[str, str, str]:
        name = str(p.get("name") or "")
        if not name or ":" in name or " " in name:
            raise _ApiError("invalid_name")
        if not p.get("channel") or not p.get("timestamp"):
            raise _ApiError("no_item_specified")
        channel = self._check_channel(p.get("channel"))
        ts = str(p["timestamp"])
        if not _valid_ts(ts):
            raise _ApiError("bad_timestamp")
        m = self._messages.get((channel, ts))
        if m is not None and m.deleted:
            raise _ApiError("message_not_found")
        return channel, ts, name

    def _m_reactions_add(self, p: dict[str, Any]) -> dict[str, Any]:
        channel, ts, name = self._reaction_target(p)
        names = self.reactions.setdefault((channel, ts), [])
        if name in names:
            raise _ApiError("already_reacted")
        names.append(name)
        return {}

    def _m_reactions_remove(self, p: dict[str, Any]) -> dict[str, Any]:
        channel, ts, name = self._reaction_target(p)
        names = self.reactions.get((channel, ts), [])
        if name not in names:
            raise _ApiError("no_reaction")
        names.remove(name)
        return {}

    # files

    def _m_files_info(self, p: dict[str, Any]) -> dict[str, Any]:
        f = self._files.get(str(p["file"]))
        if f is None:
            raise _ApiError("file_not_found")
        return {"file": f, "comments": [], "response_metadata": {"next_cursor": ""}}

    def _m_files_getUploadURLExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        length = _as_int(p.get("length"), "length")
        if length is None or length <= 0:
            raise _ApiError("missing_argument")
        if len(str(p.get("alt_txt") or "")) > 1000:
            raise _ApiError("alt_txt_too_large")
        file_id = f"F0UPLD{next(self._ids):04d}"
        self._pending_uploads[file_id] = {"filename": str(p["filename"]), "length": length, "content": None}
        return {"upload_url": f"{self.base_url}/upload/v1/{file_id}", "file_id": file_id}

    def _m_files_completeUploadExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        items = _json_param(p["files"], "files")
        if not isinstance(items, list) or not items:
            raise _ApiError("invalid_arguments", response_metadata={"messages": ["[ERROR] invalid files"]})
        channel_id = p.get("channel_id") or None
        if channel_id is not None:
            self._check_channel(channel_id, posting=True)
        thread_ts = p.get("thread_ts") or None
        out = []
        for item in items:
            file_id = item.get("id") if isinstance(item, dict) else None
            pending = self._pending_uploads.get(str(file_id))
            if pending is None or pending["content"] is None:
                raise _ApiError("file_not_found")
        for item in items:
            pending = self._pending_uploads.pop(item["id"])
            name = pending["filename"]
            mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
            f = self._register_file(
                item["id"],
                pending["content"],
                name=name,
                mimetype=mimetype,
                title=item.get("title") or name,
                user=self._bot_user,
            )
            if channel_id is not None:
                f[
                    "channels"
                    if str(channel_id).startswith("C")
                    else "ims"
                    if str(channel_id).startswith("D")
                    else "groups"
                ].append(channel_id)
            self.uploaded_files.append(
                {
                    "file": f,
                    "content": pending["content"],
                    "channel_id": channel_id,
                    "channels": p.get("channels"),
                    "thread_ts": thread_ts,
                    "initial_comment": p.get("initial_comment"),
                }
            )
            out.append({"id": f["id"], "title": f["title"]})
        return {"files": out}

    # views

    def _check_view(self, p: dict[str, Any], kind: str) -> dict[str, Any]:
        raw = p["view"]
        view = _json_param(raw, "view")
        if not isinstance(view, dict):
            raise _ApiError("invalid_arguments", response_metadata={"messages": ["[ERROR] invalid view"]})
        if len(json.dumps(view)) > VIEW_BYTES_LIMIT:
            raise _ApiError("view_too_large")
        errors: list[str] = []
        if view.get("type") != kind:
            errors.append(f"[ERROR] must be '{kind}' [json-pointer:/view/type]")
        if kind == "modal":
            if not isinstance(view.get("title"), dict):
                errors.append("[ERROR] missing required field: title [json-pointer:/view]")
            for key in ("title", "submit", "close"):
                if len(_text_of(view.get(key))) > VIEW_TITLE_LIMIT:
                    errors.append(_too_long(VIEW_TITLE_LIMIT, f"/view/{key}/text"))
        if len(str(view.get("private_metadata", ""))) > 3000:
            errors.append("[ERROR] must be less than 3001 characters [json-pointer:/view/private_metadata]")
        if len(str(view.get("callback_id", ""))) > 255:
            errors.append("[ERROR] must be less than 256 characters [json-pointer:/view/callback_id]")
        if errors:
            raise _ApiError("invalid_arguments", response_metadata={"messages": errors})
        try:
            self._check_blocks(view.get("blocks", []), limit=MAX_BLOCKS_VIEW, where="view/blocks")
        except _ApiError as exc:
            if exc.error == "invalid_blocks":
                raise _ApiError("invalid_arguments", response_metadata=exc.extra["response_metadata"]) from None
            raise
        view_id = f"V0FAKE{next(self._ids):04d}"
        out = {
            "id": view_id,
            "team_id": self.team_id,
            "type": kind,
            "title": view.get("title"),
            "submit": view.get("submit"),
            "close": view.get("close"),
            "blocks": view.get("blocks", []),
            "private_metadata": view.get("private_metadata", ""),
            "callback_id": view.get("callback_id", ""),
            "external_id": view.get("external_id", ""),
            "state": {"values": {}},
            "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
            "clear_on_close": bool(view.get("clear_on_close", False)),
            "notify_on_close": bool(view.get("notify_on_close", False)),
            "root_view_id": view_id,
            "previous_view_id": None,
            "app_id": self.app_id,
            "app_installed_team_id": self.team_id,
            "bot_id": self.bot_id,
        }
        self.views.append(out)
        return out

    def _m_views_open(self, p: dict[str, Any]) -> dict[str, Any]:
        trigger = str(p["trigger_id"])
        if trigger in self._used_triggers:
            raise _ApiError("exchanged_trigger_id")
        view = self._check_view(p, "modal")
        self._used_triggers.add(trigger)
        return {"view": view}

    def _m_views_publish(self, p: dict[str, Any]) -> dict[str, Any]:
        view = self._check_view(p, "home")
        view["user_id"] = str(p["user_id"])
        return {"view": view}

    # assistant threads

    def _m_assistant_threads_setStatus(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._check_channel(p.get("channel_id"))
        thread_ts = str(p["thread_ts"])
        if not _valid_ts(thread_ts):
            raise _ApiError("invalid_thread_ts")
        loading = p.get("loading_messages")
        if loading is not None:
            loading = _json_param(loading, "loading_messages")
            if (
                not isinstance(loading, list)
                or not 1 <= len(loading) <= LOADING_MESSAGES_MAX
                or not all(isinstance(s, str) and 1 <= len(s) <= LOADING_MESSAGE_LIMIT for s in loading)
            ):
                raise _ApiError(
                    "invalid_arguments",
                    response_metadata={
                        "messages": ["[ERROR] invalid loading_messages [json-pointer:/loading_messages]"]
                    },
                )
        status = str(p["status"])
        if status:
            self.assistant_status[(channel, thread_ts)] = status
        else:
            self.assistant_status.pop((channel, thread_ts), None)
        return {}

    def _m_assistant_threads_setSuggestedPrompts(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._check_channel(p.get("channel_id"))
        prompts = _json_param(p["prompts"], "prompts")
        if (
            not isinstance(prompts, list)
            or not prompts
            or not all(
                isinstance(x, dict) and isinstance(x.get("title"), str) and isinstance(x.get("message"), str)
                for x in prompts
            )
        ):
            raise _ApiError(
                "invalid_arguments",
                response_metadata={"messages": ["[ERROR] invalid prompts [json-pointer:/prompts]"]},
            )
        thread_ts = p.get("thread_ts") or None
        if thread_ts is not None and not _valid_ts(str(thread_ts)):
            raise _ApiError("invalid_thread_ts")
        self.suggested_prompts[(channel, thread_ts)] = prompts
        return {}

    def _m_assistant_threads_setTitle(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = self._check_channel(p.get("channel_id"))
        thread_ts = str(p["thread_ts"])
        if not _valid_ts(thread_ts):
            raise _ApiError("invalid_thread_ts")
        self.assistant_titles[(channel, thread_ts)] = str(p["title"])
        return {}
