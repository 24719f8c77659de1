"""Downloads files people share in Slack, sending the bot token only to Slack's own hosts and never reading too much.

Facts (Slack docs, https://docs.slack.dev/messaging/working-with-files and https://docs.slack.dev/reference/objects/file-object):
- a private file is a plain GET of `url_private_download` (or `url_private`) with `Authorization: Bearer <token>`;
  the token needs `files:read`.
- without a valid token Slack answers 200 with its HTML sign-in page, so an HTML body means "not authorised"
  (unverified: reported by people who hit it, e.g. bolt-js issue #2585, not stated in Slack's docs).
- redirects are followed by hand: HTTP clients decide on their own whether to resend the token, and a file
  URL (or a redirect) that leaves the allow-list must not see it at all.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from yarl import URL

from bot.core import texts
from bot.core.conversation import IncomingFile
from bot.core.errors import MediaRefused
from bot.core.i18n import number, tr
from bot.slack.workspaces import WorkspaceClients, WorkspaceNotInstalled

log = logging.getLogger(__name__)

SLACK_FILES_HOST = "files.slack.com"
MAX_REDIRECTS = 3
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_CHUNK_BYTES = 64 * 1024
# Events for files the bot cannot download: deleted (tombstone), linked from elsewhere, or over the plan's limit.
_UNDOWNLOADABLE_MODES = frozenset({"tombstone", "external", "hidden_by_limit"})

RefusalReason = Literal["not_allowed", "too_large", "auth", "http_status", "redirect", "timeout", "network"]


class FileRefused(Exception):
    """A file the bot would not or could not download; `user_message` is safe to show and never holds a token."""

    def __init__(self, user_message: str, *, reason: RefusalReason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.user_message = user_message
        self.reason = reason


@dataclass(frozen=True)
class SlackFile:
    """The parts of a Slack file object needed to fetch it; `url` is still untrusted until the fetcher checks it."""

    id: str
    name: str
    mimetype: str
    size: int | None
    url: str


def slack_file_from_event(file: dict[str, Any]) -> SlackFile | None:
    """A downloadable file from an event's `files` entry; None for deleted, external or stub entries."""
    if file.get("mode") in _UNDOWNLOADABLE_MODES or file.get("is_external"):
        return None
    # Slack Connect stubs carry only an id and `file_access: check_file_info`: call files.info first.
    url = file.get("url_private_download") or file.get("url_private")
    file_id = file.get("id")
    if not isinstance(url, str) or not url or not isinstance(file_id, str):
        return None
    size = file.get("size")
    return SlackFile(
        id=file_id,
        name=str(file.get("name") or file.get("title") or file_id),
        mimetype=str(file.get("mimetype") or ""),
        size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        url=url,
    )


class SlackFileFetcher:
    """Fetches private Slack files over an allow-list of hosts, with size caps, manual redirects and a timeout."""

    def __init__(
        self,
        *,
        bot_token: str = "",
        allowed_hosts: Iterable[str],
        max_bytes: int = 20 * 1024 * 1024,
        timeout_s: float = 30.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        hosts = frozenset(h.strip().lower() for h in allowed_hosts)
        if not hosts or any(not h or not h.isascii() for h in hosts):
            raise ValueError("allowed_hosts must be non-empty ASCII host names")
        self._bot_token = bot_token
        self._allowed_hosts = hosts
        self._max_bytes = max_bytes
        self._timeout_s = timeout_s
        self._session = session
        self._owns_session = session is None

    def __repr__(self) -> str:
        return f"SlackFileFetcher(allowed_hosts={sorted(self._allowed_hosts)!r}, max_bytes={self._max_bytes})"

    @staticmethod
    def default_allowed_hosts(slack_api_url: str) -> frozenset[str]:
        """Slack's file host plus the Web API's host, which is also where tests' fake Slack serves files."""
        host = URL(slack_api_url).raw_host
        return frozenset({SLACK_FILES_HOST} | ({host.lower()} if host else set()))

    async def fetch(self, file: SlackFile, *, token: str | None = None) -> bytes:
        """The file's bytes, or FileRefused; nothing is requested unless the URL is on an allowed host.

        `token` is the bot token of the file's workspace (default: the one given at construction).
        """
        token = token or self._bot_token
        try:
            url = self._checked_url(file.url)
            if file.size is not None and file.size > self._max_bytes:
                raise self._too_large(f"Slack says the file is {_mb(file.size)}", file.size)
            async with asyncio.timeout(self._timeout_s):
                data = await self._download(url, token)
        except FileRefused as exc:
            log.info("not downloading Slack file %s: %s", file.id, _redacted(str(exc), token))
            raise
        except TimeoutError:
            log.info("not downloading Slack file %s: timed out after %s s", file.id, self._timeout_s)
            raise FileRefused(
                tr(texts.FILE_TIMEOUT, seconds=number(self._timeout_s)),
                reason="timeout",
                detail=f"no complete answer within {self._timeout_s:g} s",
            ) from None
        except aiohttp.ClientError as exc:
            # Dropped (`from None`): the aiohttp error's request_info holds our request headers, token included.
            detail = _redacted(f"{type(exc).__name__}: {exc}", token)
            log.info("not downloading Slack file %s: %s", file.id, detail)
            raise FileRefused(tr(texts.FILE_CONNECTION_FAILED), reason="network", detail=detail) from None
        log.debug("downloaded Slack file %s: %d bytes", file.id, len(data))
        return data

    async def close(self) -> None:
        """Close the HTTP session if this fetcher opened it; a session passed in belongs to the caller."""
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def _download(self, url: URL, token: str) -> bytes:
        session = self._get_session()
        for hops in range(MAX_REDIRECTS + 1):
            async with session.get(
                url,
                headers={"Authorization": f"Bearer {token}"},
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            ) as resp:
                if resp.status in _REDIRECT_STATUSES:
                    url = self._redirect_target(url, resp.headers.get("Location"), hops)
                    continue
                return await self._read_body(resp, url)
        raise AssertionError("unreachable: the last hop either returns or refuses")  # pragma: no cover

    def _redirect_target(self, url: URL, location: str | None, hops: int) -> URL:
        if hops >= MAX_REDIRECTS:
            raise FileRefused(
                tr(texts.FILE_TOO_MANY_REDIRECTS),
                reason="redirect",
                detail=f"more than {MAX_REDIRECTS} redirects",
            )
        if not location:
            raise FileRefused(tr(texts.FILE_DOWNLOAD_FAILED), reason="redirect", detail="redirect without Location")
        try:
            target: str | None = str(url.join(URL(location, encoded=True)))
        except ValueError:
            target = None
        problem = self._refusal(target) if target is not None else "Location does not parse"
        if target is None or problem is not None:
            raise FileRefused(
                tr(texts.FILE_REDIRECT_REFUSED),
                reason="redirect",
                detail=f"redirect refused: {problem}",
            )
        return URL(target, encoded=True)

    async def _read_body(self, resp: aiohttp.ClientResponse, url: URL) -> bytes:
        if resp.status != 200:
            raise FileRefused(
                tr(texts.FILE_HTTP_ERROR, status=resp.status),
                reason="http_status",
                detail=f"HTTP {resp.status} from {url.raw_host}",
            )
        if resp.content_type in _HTML_TYPES:
            raise FileRefused(
                tr(texts.FILE_MISSING_SCOPE), reason="auth", detail=f"HTML page instead of a file from {url.raw_host}"
            )
        if resp.content_length is not None and resp.content_length > self._max_bytes:
            raise self._too_large(f"Content-Length {resp.content_length}", resp.content_length)
        body = bytearray()
        async for chunk in resp.content.iter_chunked(_CHUNK_BYTES):
            body += chunk
            if len(body) > self._max_bytes:  # stop at once: the rest may never end
                raise self._too_large(f"more than {self._max_bytes} bytes arrived", None)
        return bytes(body)

    def _checked_url(self, raw: str) -> URL:
        problem = self._refusal(raw)
        if problem is not None:
            raise FileRefused(tr(texts.FILE_NOT_ON_SLACK), reason="not_allowed", detail=problem)
        return URL(raw, encoded=True)

    def _refusal(self, raw: object) -> str | None:
        """Why this URL must not be fetched (with our token), or None when it may be."""
        if not isinstance(raw, str) or not raw.isascii() or not raw.isprintable() or "\\" in raw or " " in raw:
            return "URL is not plain printable ASCII"  # also rules out IDN look-alikes written in Unicode
        try:
            url = URL(raw, encoded=True)
        except ValueError:
            return "URL does not parse"
        host = (url.raw_host or "").lower()
        if not url.is_absolute() or not host:
            return "URL has no host"
        if url.raw_user is not None or url.raw_password is not None:
            return f"URL carries user info (host {host})"
        if host not in self._allowed_hosts:
            return f"host {host} is not in the allow-list"
        if url.scheme == "https":
            return None
        if url.scheme == "http" and _is_loopback(host):
            return None  # only a local stand-in for Slack (tests) may be reached without TLS
        return f"scheme {url.scheme or '(none)'} is not allowed for host {host}"

    def _too_large(self, detail: str, size: int | None) -> FileRefused:
        limit = _mb(self._max_bytes)
        if size is None:
            return FileRefused(tr(texts.FILE_LARGER_THAN, limit=limit), reason="too_large", detail=detail)
        return FileRefused(tr(texts.FILE_TOO_LARGE, size=_mb(size), limit=limit), reason="too_large", detail=detail)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # No cookie jar: Slack's sign-in cookies must not follow us from one download to the next.
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        return self._session


def _redacted(text: str, token: str) -> str:
    return text.replace(token, "[token]") if token else text


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name, even "localhost", is not trusted to stay local


def _mb(n: int) -> str:
    """Megabytes rounded up to a tenth, so a file just over a limit never reads as equal to it."""
    return tr(texts.MEGABYTES, value=number(math.ceil(n * 10 / (1024 * 1024)) / 10))


class SlackFileSource:
    """The core's FileSource port: core file references in, bytes out (with the workspace's token), refusals as
    MediaRefused."""

    def __init__(self, fetcher: SlackFileFetcher, workspaces: WorkspaceClients) -> None:
        self._fetcher = fetcher
        self._workspaces = workspaces

    async def fetch(self, workspace_id: str, file: IncomingFile) -> bytes:
        if not file.url:
            raise MediaRefused(tr(texts.FILE_UNDOWNLOADABLE))
        try:
            token = await self._workspaces.token(workspace_id)
            return await self._fetcher.fetch(
                SlackFile(id=file.id, name=file.name, mimetype=file.mimetype, size=file.size, url=file.url),
                token=token,
            )
        except (FileRefused, WorkspaceNotInstalled) as refused:
            raise MediaRefused(refused.user_message) from None

    async def close(self) -> None:
        await self._fetcher.close()


def incoming_files(event: dict[str, Any]) -> tuple[IncomingFile, ...]:
    """Every file on a message, downloadable or not (the core tells the user about the ones it cannot use)."""
    files = []
    for raw in event.get("files") or []:
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            continue
        usable = slack_file_from_event(raw)
        if usable is None:
            files.append(IncomingFile(id=raw["id"], name=str(raw.get("name") or raw.get("title") or raw["id"])))
        else:
            files.append(
                IncomingFile(id=usable.id, name=usable.name, mimetype=usable.mimetype, size=usable.size, url=usable.url)
            )
    return tuple(files)
