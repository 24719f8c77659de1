"""bot.web.fetch against real local servers: readable pages come back; private addresses are never even dialled.

Every test runs under a connection guard that records each outgoing TCP connect and refuses any non-loopback
destination before a packet leaves, so "no connection attempt" is checked at the socket, not inside the fetcher.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from bot.core.tools.registry import ToolError
from bot.web.fetch import TRUNCATION_MARKER, SafeWebFetcher

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PNG = b"\x89PNG\r\n\x1a\n" + b"pixels" * 100

ARTICLE = """<!doctype html>
<html><head>
  <meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">
  <title>Caf\xe9 &amp; Tea   Notes</title>
  <style>body { color: red }</style>
  <script>document.write("<p>injected by script</p>")</script>
</head><body>
  <header><nav><a href="/">Home</a> <a href="/about">About</a></nav></header>
  <main>
    <h1>Brewing   guide</h1>
    <p>Water at 96&deg;C &mdash; not <b>boiling</b>, &lt;really&gt;.</p>
    <h2>Steps</h2>
    <ul><li>Grind</li><li><p>Pour</p></li></ul>
    <pre><code>ratio = 1 / 16
print(ratio)</code></pre>
    <table><tr><th>Bean</th><th>Grams</th></tr><tr><td>Kenya</td><td>18</td></tr></table>
    <noscript>Enable JavaScript</noscript>
    <svg><title>icon</title><text>svg text</text></svg>
  </main>
  <aside>Sponsored</aside>
  <footer>Copyright</footer>
</body></html>
"""


@dataclass
class Site:
    """A local aiohttp server that records each request's path and Host header."""

    url: str
    port: int
    requests: list[tuple[str, str]] = field(default_factory=list)


Serve = Callable[..., Awaitable[Site]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    runners: list[web.AppRunner] = []

    async def start(routes: dict[str, Handler], host: str = "127.0.0.1", port: int = 0) -> Site:
        site = Site(url="", port=0)

        async def dispatch(request: web.Request) -> web.StreamResponse:
            site.requests.append((request.path, request.headers.get("Host", "")))
            handler = routes.get(request.path)
            return await handler(request) if handler else web.Response(status=404, text="no such page")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", dispatch)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        runners.append(runner)
        site.port = runner.addresses[0][1]
        site.url = f"http://{host}:{site.port}"
        return site

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def fetchers() -> AsyncIterator[Callable[..., SafeWebFetcher]]:
    made: list[SafeWebFetcher] = []

    def make(**kwargs: Any) -> SafeWebFetcher:
        kwargs.setdefault("allow_hosts", ["127.0.0.1"])
        kwargs.setdefault("timeout_s", 2.0)
        fetcher = SafeWebFetcher(**kwargs)
        made.append(fetcher)
        return fetcher

    yield make
    for fetcher in made:
        await fetcher.close()


@pytest.fixture(autouse=True)
async def dialled(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every address a TCP connect was attempted to; non-loopback ones are refused here, before any traffic."""
    attempts: list[str] = []

    def check(address: Any) -> None:
        host = str(address[0])
        attempts.append(host)
        if not ipaddress.ip_address(host.split("%")[0]).is_loopback:
            raise ConnectionRefusedError(f"test guard: no connections to {host}")

    loop = asyncio.get_running_loop()
    real_sock_connect = loop.sock_connect

    async def guarded_sock_connect(sock: socket.socket, address: Any) -> None:
        check(address)
        await real_sock_connect(sock, address)

    real_connect = socket.socket.connect

    def guarded_connect(self: socket.socket, address: Any) -> None:
        if (
            self.family in (socket.AF_INET, socket.AF_INET6)
            and not ipaddress.ip_address(str(address[0]).split("%")[0]).is_loopback
        ):  # second line of defence should the event loop ever bypass sock_connect
            raise ConnectionRefusedError(f"test guard: no connections to {address[0]}")
        real_connect(self, address)

    monkeypatch.setattr(loop, "sock_connect", guarded_sock_connect)
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    return attempts


@dataclass
class ScriptedDNS:
    """An injected resolver: each name answers from its script in turn (the last answer repeats); calls recorded."""

    answers: dict[str, Sequence[list[str]]] = field(default_factory=dict)
    calls: list[tuple[str, int]] = field(default_factory=list)

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        script = self.answers.get(host)
        if not script:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        nth = sum(1 for name, _ in self.calls if name == host) - 1
        return list(script[min(nth, len(script) - 1)])


def page(body: bytes | str, content_type: str, **headers: str) -> Handler:
    data = body.encode() if isinstance(body, str) else body

    async def handler(_: web.Request) -> web.Response:
        return web.Response(body=data, headers={"Content-Type": content_type, **headers})

    return handler


def redirect(location: str, status: int = 302) -> Handler:
    async def handler(_: web.Request) -> web.Response:
        return web.Response(status=status, headers={"Location": location})

    return handler


# ----------------------------------------------------------------------------------------- what comes back


async def test_an_html_page_becomes_its_title_and_readable_text(serve: Serve, fetchers: Any) -> None:
    site = await serve({"/article": page(ARTICLE.encode("latin-1"), "text/html")})  # charset only in <meta>
    title, text = await fetchers().fetch_text(f"{site.url}/article", max_chars=20000)
    assert title == "Café & Tea Notes"
    assert text == (
        "# Brewing guide\n\n"
        "Water at 96°C — not boiling, <really>.\n\n"
        "## Steps\n\n"
        "- Grind\n- Pour\n\n"
        "```\nratio = 1 / 16\nprint(ratio)\n```\n\n"
        "Bean | Grams\nKenya | 18"
    )
    for dropped in ("injected", "color", "Home", "Sponsored", "Copyright", "JavaScript", "svg text", "icon"):
        assert dropped not in text


async def test_the_header_charset_wins_and_bad_bytes_do_not_fail_the_page(serve: Serve, fetchers: Any) -> None:
    sjis = "<h1>日本語</h1><p>テキスト</p>".encode("shift_jis")
    broken = b"<p>caf\xe9 ok</p>"  # Latin-1 bytes on a page that declares nothing: read as UTF-8 with U+FFFD
    site = await serve({"/sjis": page(sjis, "text/html; charset=shift_jis"), "/broken": page(broken, "text/html")})
    fetcher = fetchers()
    assert await fetcher.fetch_text(f"{site.url}/sjis", max_chars=1000) == ("日本語", "# 日本語\n\nテキスト")
    assert await fetcher.fetch_text(f"{site.url}/broken", max_chars=1000) == ("", "caf\ufffd ok")


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain; charset=utf-8", "Plain notes: 5 < 6 & that's fine.\nSecond line."),
        ("text/markdown", "# Readme\n\n- item <b>kept as written</b>"),
        ("application/json", json.dumps({"name": "café", "tags": ["a", "b"]}, ensure_ascii=False)),
    ],
)
async def test_text_markdown_and_json_come_back_as_written(
    serve: Serve, fetchers: Any, content_type: str, body: str
) -> None:
    site = await serve({"/doc": page(body, content_type)})
    assert await fetchers().fetch_text(f"{site.url}/doc", max_chars=1000) == ("", body)


@pytest.mark.parametrize("content_type", ["image/png", "application/pdf", "application/octet-stream"])
async def test_images_pdfs_and_binaries_are_refused(serve: Serve, fetchers: Any, content_type: str) -> None:
    site = await serve({"/file": page(PNG, content_type)})
    with pytest.raises(ToolError, match=f"unsupported content type {content_type}"):
        await fetchers().fetch_text(f"{site.url}/file", max_chars=1000)


async def test_an_error_status_is_a_refusal_naming_it(serve: Serve, fetchers: Any) -> None:
    site = await serve({})
    with pytest.raises(ToolError, match="answered HTTP 404"):
        await fetchers().fetch_text(f"{site.url}/missing", max_chars=1000)


async def test_long_text_is_cut_to_max_chars_with_a_marker(serve: Serve, fetchers: Any) -> None:
    site = await serve({"/long": page("<p>" + "lorem ipsum " * 1000 + "</p>", "text/html")})
    _, text = await fetchers().fetch_text(f"{site.url}/long", max_chars=1000)
    assert len(text) <= 1000
    assert text.startswith("lorem ipsum lorem")
    assert text.endswith(f"ipsum\n\n{TRUNCATION_MARKER}")


async def test_the_user_agent_is_ours(serve: Serve, fetchers: Any) -> None:
    seen: list[str] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append(request.headers.get("User-Agent", ""))
        return web.Response(text="ok")

    site = await serve({"/": echo})
    await fetchers(user_agent="TestBot/1").fetch_text(f"{site.url}/", max_chars=1000)
    assert seen == ["TestBot/1"]


# ----------------------------------------------------------------------------------------- size and time


async def test_a_declared_length_over_the_cap_is_refused_before_reading(serve: Serve, fetchers: Any) -> None:
    site = await serve({"/big": page(b"x" * 50_000, "text/plain")})
    with pytest.raises(ToolError, match="50,000 bytes; the limit is 10,000"):
        await fetchers(max_bytes=10_000).fetch_text(f"{site.url}/big", max_chars=1000)


async def test_an_endless_body_is_cut_off_at_the_cap(serve: Serve, fetchers: Any) -> None:
    chunk = b"x" * 65536
    total = 1000 * len(chunk)
    sent: list[int] = [0]
    finished = asyncio.Event()

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})  # chunked: no Content-Length
        await response.prepare(request)
        try:
            while sent[0] < total:
                await response.write(chunk)
                sent[0] += len(chunk)
        except ConnectionResetError:
            pass
        finally:
            finished.set()
        return response

    site = await serve({"/endless": endless})
    with pytest.raises(ToolError, match="larger than the 200,000-byte limit"):
        await fetchers(max_bytes=200_000).fetch_text(f"{site.url}/endless", max_chars=1000)
    await asyncio.wait_for(finished.wait(), 2)
    assert sent[0] < total // 10  # the fetcher hung up; the server did not get to send it all


async def test_a_slow_body_times_out(serve: Serve, fetchers: Any) -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        await response.write(b"first bytes, then nothing")
        await asyncio.sleep(5)
        return response

    site = await serve({"/slow": slow})
    started = time.monotonic()
    with pytest.raises(ToolError, match=re.escape("took longer than 0.3 s")):
        await fetchers(timeout_s=0.3).fetch_text(f"{site.url}/slow", max_chars=1000)
    assert time.monotonic() - started < 1.5


# ----------------------------------------------------------------------------------------- redirects


async def test_redirects_on_allowed_hosts_are_followed(serve: Serve, fetchers: Any) -> None:
    end = await serve({"/end": page("<title>End</title><p>arrived</p>", "text/html")})
    start = await serve({"/start": redirect("/middle", 301), "/middle": redirect(f"{end.url}/end#section", 307)})
    assert await fetchers().fetch_text(f"{start.url}/start", max_chars=1000) == ("End", "arrived")
    assert [path for path, _ in start.requests] == ["/start", "/middle"]
    assert [path for path, _ in end.requests] == ["/end"]


async def test_too_many_redirects_are_refused(serve: Serve, fetchers: Any) -> None:
    site = await serve({f"/{n}": redirect(f"/{n + 1}") for n in range(5)})
    with pytest.raises(ToolError, match=r"too many redirects \(more than 2\)"):
        await fetchers(max_redirects=2).fetch_text(f"{site.url}/0", max_chars=1000)
    assert [path for path, _ in site.requests] == ["/0", "/1", "/2"]


async def test_a_redirect_to_a_host_not_allowed_is_refused_without_contacting_it(
    serve: Serve, fetchers: Any, dialled: list[str]
) -> None:
    trap = await serve({"/": page("secret admin page", "text/plain")}, host="127.0.0.2")
    site = await serve({"/go": redirect(f"{trap.url}/")})
    with pytest.raises(ToolError, match=re.escape("refused: 127.0.0.2 is a loopback address")):
        await fetchers(allow_hosts=["127.0.0.1"]).fetch_text(f"{site.url}/go", max_chars=1000)
    assert trap.requests == []
    assert dialled == ["127.0.0.1"]


@pytest.mark.parametrize("location", ["file:///etc/passwd", "ftp://127.0.0.1/x", "http://user:pw@127.0.0.1/"])
async def test_a_redirect_to_a_refused_url_shape_is_refused(serve: Serve, fetchers: Any, location: str) -> None:
    site = await serve({"/go": redirect(location)})
    with pytest.raises(ToolError, match=r"only http and https|user name or password"):
        await fetchers().fetch_text(f"{site.url}/go", max_chars=1000)
    assert [path for path, _ in site.requests] == ["/go"]


# ----------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.0.0.1/", "10.0.0.1 is a private address"),
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254 is a link-local address"),
        ("http://[::1]/", "::1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]/", "::ffff:7f00:1 is a loopback address"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://0.0.0.0/", "0.0.0.0 is an unspecified address"),
        ("http://0.1.2.3/", "0.1.2.3 is an unspecified address"),
        ("http://100.64.0.1/", "carrier-grade NAT"),
        ("http://172.16.5.4:8080/", "private address"),
        ("http://192.168.1.1/", "private address"),
        ("http://224.0.0.1/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://[fd00::1]/", "private address"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[fec0::1]/", "site-local"),
        ("http://[64:ff9b::a00:1]/", "private address"),  # NAT64 of 10.0.0.1
        ("http://[2002:a00:1::]/", "private address"),  # 6to4 of 10.0.0.1
        ("file:///etc/passwd", "only http and https URLs can be fetched, not file"),
        ("ftp://x", "only http and https URLs can be fetched, not ftp"),
        ("//example.com/", "not a URL without a scheme"),
        ("http://user:pass@host/", "user name or password"),
        ("http:///nohost", "no host"),
        ("http://example.com:99999/", "does not parse.*[Pp]ort"),
    ],
)
async def test_refused_urls_are_never_resolved_or_dialled(
    fetchers: Any, dialled: list[str], url: str, reason: str
) -> None:
    dns = ScriptedDNS({"host": [["93.184.216.34"]], "example.com": [["93.184.216.34"]]})
    with pytest.raises(ToolError, match=reason):
        await fetchers(allow_hosts=(), resolver=dns).fetch_text(url, max_chars=1000)
    assert dns.calls == []
    assert dialled == []


async def test_loopback_is_refused_unless_allow_listed(serve: Serve, fetchers: Any, dialled: list[str]) -> None:
    site = await serve({"/": page("local", "text/plain")})
    with pytest.raises(ToolError, match=re.escape("127.0.0.1 is a loopback address")):
        await fetchers(allow_hosts=()).fetch_text(f"{site.url}/", max_chars=1000)
    assert site.requests == []
    assert dialled == []
    assert await fetchers(allow_hosts=[" 127.0.0.1 "]).fetch_text(f"{site.url}/", max_chars=1000) == ("", "local")


@pytest.mark.parametrize(
    "answer",
    [["10.1.2.3"], ["93.184.216.34", "10.1.2.3"], ["::1"], ["169.254.169.254"], ["::ffff:10.1.2.3"]],
)
async def test_a_name_resolving_to_any_private_address_is_refused(
    fetchers: Any, dialled: list[str], answer: list[str]
) -> None:
    dns = ScriptedDNS({"intranet.example.com": [answer]})
    with pytest.raises(ToolError, match=r"intranet\.example\.com resolves to .*, which is a"):
        await fetchers(allow_hosts=(), resolver=dns).fetch_text("https://intranet.example.com/", max_chars=1000)
    assert dns.calls == [("intranet.example.com", 443)]
    assert dialled == []


async def test_a_name_that_does_not_resolve_is_a_plain_refusal(fetchers: Any, dialled: list[str]) -> None:
    with pytest.raises(ToolError, match=re.escape("could not resolve nowhere.example")):
        await fetchers(resolver=ScriptedDNS()).fetch_text("http://nowhere.example/", max_chars=1000)
    assert dialled == []


# ----------------------------------------------------------------------------------------- DNS rebinding


async def test_the_connection_goes_to_the_checked_address_not_a_second_lookup(
    serve: Serve, fetchers: Any, dialled: list[str]
) -> None:
    site = await serve({"/": page("<title>Real</title><p>the checked server</p>", "text/html")})
    trap = await serve({"/": page("<p>rebound</p>", "text/html")}, host="127.0.0.2", port=site.port)
    dns = ScriptedDNS({"rebind.test": [["127.0.0.1"], ["127.0.0.2"]]})
    fetcher = fetchers(allow_hosts=["rebind.test"], resolver=dns)
    assert await fetcher.fetch_text(f"http://rebind.test:{site.port}/", max_chars=1000) == (
        "Real",
        "the checked server",
    )
    assert dns.calls == [("rebind.test", site.port)]  # one lookup, and the connector asked no one else
    assert dialled == ["127.0.0.1"]
    assert site.requests == [("/", f"rebind.test:{site.port}")]  # the Host header keeps the name
    assert trap.requests == []


async def test_a_name_that_rebinds_to_loopback_is_dialled_only_at_its_public_address(
    serve: Serve, fetchers: Any, dialled: list[str]
) -> None:
    site = await serve({"/": page("internal", "text/plain")})
    dns = ScriptedDNS({"rebind.example": [["93.184.216.34"], ["127.0.0.1"]]})
    with pytest.raises(ToolError, match=re.escape("could not fetch rebind.example: the connection failed")):
        await fetchers(allow_hosts=(), resolver=dns).fetch_text(f"http://rebind.example:{site.port}/", max_chars=1000)
    # The guard refused the public address (no traffic left the machine); loopback was never tried.
    assert dialled == ["93.184.216.34"]
    assert dns.calls == [("rebind.example", site.port)]
    assert site.requests == []


async def test_each_redirect_hop_is_resolved_and_checked_again(serve: Serve, fetchers: Any, dialled: list[str]) -> None:
    site = await serve({"/": redirect("http://inside.example/admin")})
    dns = ScriptedDNS({"inside.example": [["10.0.0.7"]]})
    with pytest.raises(ToolError, match=re.escape("inside.example resolves to 10.0.0.7, which is a private address")):
        await fetchers(resolver=dns).fetch_text(f"{site.url}/", max_chars=1000)
    assert dns.calls == [("inside.example", 80)]
    assert dialled == ["127.0.0.1"]


async def test_close_can_be_called_twice_and_before_any_fetch(fetchers: Any) -> None:
    fetcher = fetchers()
    await fetcher.close()
    await fetcher.close()
