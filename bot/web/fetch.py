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
import codecs
import contextvars
import ipaddress
import logging
import re
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping
from html.parser import HTMLParser
from typing import Literal

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from bot.core.tools.registry import ToolError
from bot.web.addresses import IPAddress, non_public_reason

log = logging.getLogger(__name__)

Resolver = Callable[[str, int], Awaitable[list[str]]]

TRUNCATION_MARKER = "[…truncated]"
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_TEXT_TYPES = frozenset({"text/plain", "text/markdown", "text/x-markdown", "application/json"})
_CHUNK_BYTES = 64 * 1024
_SNIFF_BYTES = 4096  # browsers look for <meta charset> in the first 1024 bytes; be a little more forgiving
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

    def __repr__(self) -> str:
        return f"SafeWebFetcher(allow_hosts={sorted(self._allow_hosts)!r}, max_bytes={self._max_bytes})"

    async def fetch_text(self, url: str, *, max_chars: int) -> tuple[str, str]:
        """(title, readable text) of a public page; ToolError, with a reason Claude can relay, for anything else."""
        target = _checked_url(url)
        host = target.raw_host or ""
        try:
            async with asyncio.timeout(self._timeout_s):
                kind, content_type, charset, body = await self._download(target)
        except ToolError as refused:
            log.info("fetch_url did not fetch %s: %s", host, refused)
            raise
        except TimeoutError:
            raise ToolError(f"fetching {host} took longer than {self._timeout_s:g} s") from None
        except aiohttp.ClientError as error:
            raise ToolError(f"could not fetch {host}: {_network_reason(error)}") from None
        except OSError as error:
            raise ToolError(f"could not fetch {host}: {error.strerror or type(error).__name__}") from None
        # Parsing up to max_bytes of HTML takes a while; keep it off the event loop that answers Slack.
        title, text = await asyncio.to_thread(_readable, kind, body, charset)
        log.debug("fetch_url read %s (%s, %d bytes)", host, content_type, len(body))
        return title, truncated(text, max_chars)

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


# --------------------------------------------------------------------------------------------- readable text


def _readable(kind: Literal["html", "text"], body: bytes, charset: str | None) -> tuple[str, str]:
    """(title, text) of a page body: HTML reduced to its readable parts, anything else decoded as it is."""
    if kind == "text":
        return "", _decode(body, charset, None).replace("\r\n", "\n").strip()
    parser = _ReadableHTML()
    parser.feed(_decode(body, charset, _meta_charset(body)))
    parser.close()
    return parser.title(), parser.text()


_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([a-z0-9_.:-]+)""", re.IGNORECASE)
# WHATWG: these labels mean windows-1252, and a <meta> claiming UTF-16 is wrong (it could not have been read).
_CHARSET_ALIASES = {"iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "us-ascii": "cp1252"}


def _meta_charset(body: bytes) -> str | None:
    match = _META_CHARSET.search(body[:_SNIFF_BYTES])
    if match is None:
        return None
    label = match.group(1).decode("ascii").lower()
    return "utf-8" if label.startswith("utf-16") else label


def _decode(body: bytes, declared: str | None, sniffed: str | None) -> str:
    """A byte-order mark wins, then the header's charset, then <meta>, then UTF-8; bad bytes become U+FFFD."""
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if body.startswith(bom):
            return body.decode(codec, "replace")
    for label in (declared, sniffed):
        if not label:
            continue
        name = _CHARSET_ALIASES.get(label.strip().lower(), label.strip())
        try:
            return body.decode(name, "replace")
        except LookupError:
            continue
    return body.decode("utf-8", "replace")


_SKIPPED = frozenset(
    {"script", "style", "nav", "footer", "header", "aside", "noscript", "svg", "template", "iframe", "canvas"}
)
_BLOCKS = frozenset(
    {
        "address", "article", "blockquote", "body", "caption", "details", "div", "dl", "fieldset", "figcaption",
        "figure", "form", "hr", "html", "main", "ol", "p", "section", "summary", "table", "tbody", "tfoot",
        "thead", "ul",
    }
)  # fmt: skip
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_ROWS = frozenset({"tr", "dt", "dd"})
_CELLS = frozenset({"td", "th"})
_INLINE_CODE = frozenset({"code", "kbd", "samp"})


class _ReadableHTML(HTMLParser):
    """Keeps what a reader would read: headings, paragraphs, list items, code and table cells, as Markdown-ish text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)  # entities arrive decoded in handle_data
        self._skipping: list[str] = []
        self._in_title = False
        self._title: list[str] = []
        self._first_h1: str | None = None
        self._pre_depth = 0
        self._pre: list[str] = []
        self._parts: list[str] = []
        self._prefix = ""
        self._prefix_tag = ""
        # Consecutive lines of one group (a list, a table, a paragraph split by <br>) sit on adjacent lines.
        self._group: str | None = None
        self._cells = 0
        self._blocks: list[tuple[str, str | None]] = []

    def title(self) -> str:
        return _collapse("".join(self._title)) or self._first_h1 or ""

    def text(self) -> str:
        self._flush()
        out: list[str] = []
        previous: str | None = None
        for text, group in self._blocks:
            if out:
                out.append("\n" if group is not None and group == previous else "\n\n")
            out.append(text)
            previous = group
        return "".join(out)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skipping.append(tag)
        elif self._skipping:
            return
        elif tag == "title":
            self._in_title = True
        elif tag == "pre":
            self._flush()
            self._pre_depth += 1
        elif self._pre_depth:
            return  # markup inside <pre> (spans, <code>) is presentation only
        elif tag in _HEADINGS:
            self._start(tag, "#" * _HEADINGS[tag] + " ", group=None)
        elif tag == "li":
            self._start(tag, "- ", group="list")
        elif tag in _ROWS:
            self._start(tag, "", group="table" if tag == "tr" else "list")
            self._cells = 0
        elif tag in _CELLS:
            if self._cells:
                self._parts.append(" | ")
            self._cells += 1
        elif tag == "br":
            if self._group is None:
                self._group = f"lines{len(self._blocks)}"
            self._flush()
        elif tag in _BLOCKS:
            self._end_block()
        elif tag in _INLINE_CODE:
            self._parts.append("`")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            if tag in self._skipping:
                # Close the innermost open element of this name, and any unclosed ones inside it.
                del self._skipping[len(self._skipping) - 1 - self._skipping[::-1].index(tag) :]
            return
        if self._skipping:
            return
        if tag == "title":
            self._in_title = False
        elif tag == "pre" and self._pre_depth:
            self._pre_depth -= 1
            if not self._pre_depth:
                code = "\n".join(line.rstrip() for line in "".join(self._pre).strip("\n").splitlines())
                self._pre.clear()
                if code.strip():
                    self._blocks.append((f"```\n{code}\n```", None))
        elif self._pre_depth:
            return
        elif tag in _HEADINGS or tag == "li" or tag in _ROWS:
            self._flush()
            self._prefix, self._prefix_tag, self._group = "", "", None
        elif tag in _BLOCKS:
            self._end_block()
        elif tag in _INLINE_CODE:
            self._parts.append("`")

    def handle_data(self, data: str) -> None:
        if self._skipping:
            return
        if self._in_title:
            self._title.append(data)
        elif self._pre_depth:
            self._pre.append(data)
        else:
            self._parts.append(data)

    def _start(self, tag: str, prefix: str, *, group: str | None) -> None:
        self._flush()
        self._prefix, self._prefix_tag, self._group = prefix, tag, group

    def _end_block(self) -> None:
        self._flush()
        if not self._prefix_tag:  # a <p> opening a list item still belongs to the list's group
            self._group = None

    def _flush(self) -> None:
        """End the current line; a pending prefix ("- ", "## ") waits for text, so <li><p>x</p></li> stays "- x"."""
        text = _collapse("".join(self._parts))
        self._parts.clear()
        if not text or text == "``":
            return
        self._blocks.append((self._prefix + text, self._group))
        if self._prefix_tag == "h1" and self._first_h1 is None:
            self._first_h1 = text
        self._prefix, self._prefix_tag = "", ""


def _collapse(text: str) -> str:
    return " ".join(text.split())
