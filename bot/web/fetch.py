"""Fetches public web pages for Claude without letting a URL (or its DNS, or its redirects) reach private networks.

Why it is built this way:
- the address check and the connection use the *same* resolution: names are resolved once, every address is
  checked, and the connector's resolver may only hand back those checked addresses. A second lookup could
  answer differently (DNS rebinding) and land on 127.0.0.1 or the cloud metadata service.
- redirects are followed by hand so each hop passes the same checks as the first URL.
- the body is read in chunks up to a byte cap (after decompression), because a page may never end.
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Literal

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from bot.core.tools.registry import ToolError
from bot.web.addresses import IPAddress, non_public_reason
from bot.web.readable import PageUnreadable, readable

log = logging.getLogger(__name__)

Resolver = Callable[[str, int], Awaitable[list[str]]]

TRUNCATION_MARKER = "[…truncated]"
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_TEXT_TYPES = frozenset({"text/plain", "text/markdown", "text/x-markdown", "application/json"})
_CHUNK_BYTES = 64 * 1024
_PARSE_CONCURRENCY = 2  # parser processes at once per fetcher: the machine has few cores to spare
_ACCEPT = "text/html,application/xhtml+xml,text/plain;q=0.9,text/markdown;q=0.9,application/json;q=0.8,*/*;q=0.1"

# The checked addresses for the hosts of the request this task is making; the connector may connect nowhere else.
_PINNED: contextvars.ContextVar[Mapping[str, tuple[str, ...]]] = contextvars.ContextVar("web_fetch_pinned")


class SafeWebFetcher:
    """The WebFetcher port over aiohttp: public http(s) pages only, as (title, readable text)."""

    def __init__(
        self,
        *,
        allow_hosts: Iterable[str] = (),
        timeout_s: float = 10.0,
        max_bytes: int = 2_000_000,
        max_redirects: int = 5,
        resolver: Resolver | None = None,
        user_agent: str = "ClaudeSlackBot/0.1 (+fetch_url)",
    ) -> None:
        self._allow_hosts = frozenset(_normal_host(h) for h in allow_hosts if h.strip())
        self._timeout_s = timeout_s
        self._max_bytes = max_bytes
        self._max_redirects = max_redirects
        self._resolve = resolver or _system_resolve
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None
        self._parse_slots: asyncio.Semaphore | None = None

    def __repr__(self) -> str:
        return f"SafeWebFetcher(allow_hosts={sorted(self._allow_hosts)!r}, max_bytes={self._max_bytes})"

    async def fetch_text(self, url: str, *, max_chars: int) -> tuple[str, str]:
        """(title, readable text) of a public page; ToolError, with a reason Claude can relay, for anything else."""
        target = _checked_url(url)
        host = target.raw_host or ""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        try:
            # One limit for the whole tool: download and reading the page share it.
            async with asyncio.timeout_at(deadline):
                kind, content_type, charset, body = await self._download(target)
                async with self._parsing():
                    title, text = await readable(kind, body, charset, seconds=max(0.1, deadline - loop.time()))
        except ToolError as refused:
            log.info("fetch_url did not fetch %s: %s", host, refused)
            raise
        except PageUnreadable as error:
            raise ToolError(f"could not read the page at {host}: {error}") from None
        except TimeoutError:
            raise ToolError(f"fetching {host} took longer than {self._timeout_s:g} s") from None
        except aiohttp.ClientError as error:
            raise ToolError(f"could not fetch {host}: {_network_reason(error)}") from None
        except OSError as error:
            raise ToolError(f"could not fetch {host}: {error.strerror or type(error).__name__}") from None
        log.debug("fetch_url read %s (%s, %d bytes)", host, content_type, len(body))
        return title, truncated(text, max_chars)

    def _parsing(self) -> asyncio.Semaphore:
        """At most a few pages are parsed at once (each in its own process), whatever the number of fetches."""
        if self._parse_slots is None:
            self._parse_slots = asyncio.Semaphore(_PARSE_CONCURRENCY)
        return self._parse_slots

    async def close(self) -> None:
        """Close the HTTP session (and its pooled connections) if one was opened."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _download(self, url: URL) -> tuple[Literal["html", "text"], str, str | None, bytes]:
        session = self._get_session()
        for hops in range(self._max_redirects + 1):
            token = _PINNED.set(await self._vetted_addresses(url))
            try:
                async with session.get(
                    url,
                    allow_redirects=False,
                    headers={"User-Agent": self._user_agent, "Accept": _ACCEPT},
                    timeout=aiohttp.ClientTimeout(total=self._timeout_s, connect=self._timeout_s),
                ) as resp:
                    if resp.status in _REDIRECT_STATUSES:
                        url = self._redirect_target(url, resp.headers.get("Location"), hops)
                        continue
                    return await self._read(resp, url)
            finally:
                _PINNED.reset(token)
        raise AssertionError("unreachable: the last hop either returns or refuses")  # pragma: no cover

    async def _vetted_addresses(self, url: URL) -> dict[str, tuple[str, ...]]:
        """Resolve the URL's host once and check every address; the result is all the connector may use."""
        host = _normal_host(url.raw_host or "")
        allowed = host in self._allow_hosts
        literal = _ip(host)
        if literal is not None:
            if not allowed:
                _refuse_address(literal, host)
            return {}  # aiohttp connects to an IP literal without asking the resolver
        try:
            found = await self._resolve(host, url.port or 0)
        except OSError:
            raise ToolError(f"could not resolve {host}") from None
        addresses = tuple(dict.fromkeys(found))
        if not addresses:
            raise ToolError(f"could not resolve {host}")
        parsed = []
        for address in addresses:
            ip = _ip(address)
            if ip is None:
                raise ToolError(f"{host} resolved to something that is not an IP address")
            if not allowed:
                _refuse_address(ip, host)
            parsed.append(str(ip))
        return {host: tuple(parsed)}

    def _redirect_target(self, url: URL, location: str | None, hops: int) -> URL:
        if hops >= self._max_redirects:
            raise ToolError(f"too many redirects (more than {self._max_redirects})")
        if not location:
            raise ToolError(f"{url.raw_host} answered with a redirect but no Location")
        try:
            joined = str(url.join(URL(location)))
        except ValueError:
            raise ToolError(f"{url.raw_host} redirected to a URL that does not parse") from None
        return _checked_url(joined)

    async def _read(
        self, resp: aiohttp.ClientResponse, url: URL
    ) -> tuple[Literal["html", "text"], str, str | None, bytes]:
        host = url.raw_host
        if not 200 <= resp.status < 300:
            raise ToolError(f"{host} answered HTTP {resp.status}")
        content_type = resp.content_type.lower()
        kind: Literal["html", "text"]
        if content_type in _HTML_TYPES:
            kind = "html"
        elif content_type in _TEXT_TYPES:
            kind = "text"
        else:
            raise ToolError(f"unsupported content type {content_type} (only web pages and text can be read)")
        if resp.content_length is not None and resp.content_length > self._max_bytes:
            raise ToolError(f"the page is {resp.content_length:,} bytes; the limit is {self._max_bytes:,}")
        body = bytearray()
        async for chunk in resp.content.iter_chunked(_CHUNK_BYTES):
            body += chunk
            if len(body) > self._max_bytes:  # stop at once: the rest may never end
                raise ToolError(f"the page is larger than the {self._max_bytes:,}-byte limit")
        return kind, content_type, resp.charset, bytes(body)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(resolver=_PinnedResolver(), use_dns_cache=False)
            # trust_env=False: an environment proxy would resolve names itself, after (and apart from) our checks.
            # No cookie jar: pages fetched for one person must not see cookies set while fetching for another.
            self._session = aiohttp.ClientSession(
                connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar()
            )
        return self._session


class _PinnedResolver(AbstractResolver):
    """The connector's resolver: answers only with addresses already checked for this request, never with DNS."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = _PINNED.get({}).get(_normal_host(host))
        if not addresses:
            raise OSError(f"{host} was not checked before connecting")  # fail closed, never look it up
        results: list[ResolveResult] = []
        for address in addresses:
            address_family = socket.AF_INET6 if ":" in address else socket.AF_INET
            if family in (socket.AF_UNSPEC, address_family):
                results.append(
                    ResolveResult(hostname=host, host=address, port=port, family=address_family, proto=0, flags=0)
                )
        if not results:
            raise OSError(f"{host} has no checked address of the requested family")
        return results

    async def close(self) -> None:
        return None


async def _system_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for host (the default; tests inject their own)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _checked_url(raw: str) -> URL:
    """The URL as yarl sees it, if its shape may be fetched: http(s), a host, no user info."""
    try:
        url = URL(raw.strip())
    except (ValueError, TypeError) as error:
        raise ToolError(f"that URL does not parse ({error})") from None
    if url.scheme not in ("http", "https"):
        raise ToolError(f"only http and https URLs can be fetched, not {url.scheme or 'a URL without a scheme'}")
    if url.raw_user is not None or url.raw_password is not None:
        raise ToolError("URLs with a user name or password are not fetched")
    if not url.raw_host:
        raise ToolError("that URL has no host")
    return url.with_fragment(None)


def _refuse_address(ip: IPAddress, host: str) -> None:
    problem = non_public_reason(ip)
    if problem is not None:
        where = str(ip) if _normal_host(host) == str(ip) else f"{host} resolves to {ip}, which"
        raise ToolError(f"refused: {where} is {problem}; only public addresses can be fetched")


def _ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _normal_host(host: str) -> str:
    """One spelling per host: lower case, no brackets or trailing dot, IPs in canonical form."""
    host = host.strip().lower().removeprefix("[").removesuffix("]").rstrip(".")
    ip = _ip(host)
    return str(ip) if ip is not None else host


def _network_reason(error: aiohttp.ClientError) -> str:
    if isinstance(error, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return "its TLS certificate could not be verified"
    if isinstance(error, aiohttp.ClientConnectorError):
        return "the connection failed"
    if isinstance(error, aiohttp.InvalidURL):
        return "the URL is not valid"
    return f"the connection failed ({type(error).__name__})"


def truncated(text: str, max_chars: int) -> str:
    """Text of at most max_chars, ending in a marker when something was cut (preferably at a word break)."""
    if len(text) <= max_chars:
        return text
    suffix = f"\n\n{TRUNCATION_MARKER}"
    keep = text[: max(0, max_chars - len(suffix))]
    cut = keep.rfind(" ", len(keep) * 3 // 4)
    if cut > 0:
        keep = keep[:cut]
    return keep.rstrip() + suffix
