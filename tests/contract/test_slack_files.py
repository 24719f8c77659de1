"""bot.slack.files against the fake Slack and small hostile servers: the token only goes to allowed hosts."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.core.i18n import tr
from bot.core.texts import FILE_MISSING_SCOPE
from bot.slack.files import FileRefused, SlackFile, SlackFileFetcher, slack_file_from_event
from tests.fakes.slack_api import FakeSlack

TOKEN = "xoxb-1111-2222-SECRETsecretSECRET"
PNG = b"\x89PNG\r\n\x1a\n" + b"pixels" * 100

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class TinyServer:
    """A one-route aiohttp server that records each request's path and Authorization header."""

    url: str
    requests: list[tuple[str, str | None]] = field(default_factory=list)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler, str], Awaitable[TinyServer]]]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler, host: str = "127.0.0.1") -> TinyServer:
        server = TinyServer(url="")

        async def record(request: web.Request) -> web.StreamResponse:
            server.requests.append((request.path_qs, request.headers.get("Authorization")))
            return await handler(request)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", record)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, host, 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        server.url = f"http://{host}:{port}"
        return server

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(bot_token=TOKEN) as fake:
        yield fake


@dataclass
class Client:
    """A real aiohttp session whose trace records every request it starts: 'no connection' is then checkable."""

    session: aiohttp.ClientSession
    started: list[str]


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    started: list[str] = []

    async def on_start(_s: aiohttp.ClientSession, _ctx: Any, params: aiohttp.TraceRequestStartParams) -> None:
        started.append(str(params.url))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    async with aiohttp.ClientSession(trace_configs=[trace]) as session:
        yield Client(session, started)


def fetcher_for(slack: FakeSlack, client: Client, **kwargs: Any) -> SlackFileFetcher:
    kwargs.setdefault("bot_token", TOKEN)
    kwargs.setdefault("allowed_hosts", SlackFileFetcher.default_allowed_hosts(slack.api_url))
    return SlackFileFetcher(session=client.session, **kwargs)


def file_at(url: str, size: int | None = None) -> SlackFile:
    return SlackFile(id="F0TEST", name="picture.png", mimetype="image/png", size=size, url=url)


async def refused(
    fetcher: SlackFileFetcher, file: SlackFile, caplog: pytest.LogCaptureFixture, *, token: str = TOKEN
) -> FileRefused:
    """Fetch expecting a refusal, and check the token appears nowhere in what the refusal leaves behind."""
    caplog.set_level(logging.DEBUG)
    with pytest.raises(FileRefused) as info:
        await fetcher.fetch(file)
    exc = info.value
    for text in (str(exc), repr(exc), exc.user_message, repr(exc.args), repr(exc.__cause__), caplog.text):
        assert token not in text
    assert exc.__cause__ is None  # aiohttp errors keep request headers (the token) on request_info
    return exc


# ------------------------------------------------------------------------------------------ payloads


def test_slack_file_from_event_prefers_the_download_url() -> None:
    f = slack_file_from_event(
        {
            "id": "F1",
            "name": "a.png",
            "mimetype": "image/png",
            "size": 12,
            "mode": "hosted",
            "url_private": "https://files.slack.com/files-pri/T1-F1/a.png",
            "url_private_download": "https://files.slack.com/files-pri/T1-F1/download/a.png",
        }
    )
    assert f == SlackFile("F1", "a.png", "image/png", 12, "https://files.slack.com/files-pri/T1-F1/download/a.png")


@pytest.mark.parametrize(
    "payload",
    [
        {"id": "F1", "mode": "tombstone"},
        {"id": "F1", "mode": "external", "url_private": "https://docs.example.com/x"},
        {"id": "F1", "is_external": True, "url_private": "https://files.slack.com/x"},
        {"id": "F1", "file_access": "check_file_info"},
        {"id": "F1", "mode": "hidden_by_limit", "url_private": "https://files.slack.com/x"},
        {"url_private": "https://files.slack.com/x"},
    ],
)
def test_slack_file_from_event_skips_what_cannot_be_downloaded(payload: dict[str, Any]) -> None:
    assert slack_file_from_event(payload) is None


def test_default_allowed_hosts() -> None:
    assert SlackFileFetcher.default_allowed_hosts("https://slack.com/api/") == {"files.slack.com", "slack.com"}
    assert SlackFileFetcher.default_allowed_hosts("http://127.0.0.1:5555/api/") == {"files.slack.com", "127.0.0.1"}


def test_repr_hides_the_token() -> None:
    fetcher = SlackFileFetcher(bot_token=TOKEN, allowed_hosts=["files.slack.com"])
    assert TOKEN not in repr(fetcher) and TOKEN not in str(vars(fetcher).keys())


# ------------------------------------------------------------------------------------------ happy paths


async def test_downloads_with_the_bearer_token(slack: FakeSlack, client: Client) -> None:
    f = slack_file_from_event(slack.add_file(PNG, name="dot.png", mimetype="image/png"))
    assert f is not None and "/download/" in f.url
    assert await fetcher_for(slack, client).fetch(f) == PNG
    (download,) = slack.file_downloads
    assert download["authorization"] == f"Bearer {TOKEN}" and download["served"] == "file"


async def test_falls_back_to_url_private(slack: FakeSlack, client: Client) -> None:
    payload = slack.add_file(PNG, name="dot.png", mimetype="image/png")
    del payload["url_private_download"]
    f = slack_file_from_event(payload)
    assert f is not None and await fetcher_for(slack, client).fetch(f) == PNG


async def test_follows_redirects_within_the_allow_list_resending_the_token(
    slack: FakeSlack, client: Client, serve: Any
) -> None:
    target = slack.add_file(PNG, name="dot.png", mimetype="image/png")["url_private_download"]

    async def hops(request: web.Request) -> web.StreamResponse:
        if request.path == "/start":
            raise web.HTTPFound("/next")  # relative
        raise web.HTTPTemporaryRedirect(target)  # another allowed host:port

    server = await serve(hops)
    assert await fetcher_for(slack, client).fetch(file_at(server.url + "/start")) == PNG
    assert server.requests == [("/start", f"Bearer {TOKEN}"), ("/next", f"Bearer {TOKEN}")]
    assert [d["authorization"] for d in slack.file_downloads] == [f"Bearer {TOKEN}"]


async def test_close_only_closes_its_own_session(client: Client) -> None:
    own = SlackFileFetcher(bot_token=TOKEN, allowed_hosts=["files.slack.com"])
    await own.close()  # nothing opened yet: fine
    shared = SlackFileFetcher(bot_token=TOKEN, allowed_hosts=["files.slack.com"], session=client.session)
    await shared.close()
    assert not client.session.closed


# ------------------------------------------------------------------------------------------ hosts


async def test_foreign_host_on_loopback_is_refused_before_connecting(
    slack: FakeSlack, client: Client, serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def answer(_r: web.Request) -> web.StreamResponse:
        return web.Response(body=PNG, content_type="image/png")

    foreign = await serve(answer, "127.0.0.2")
    exc = await refused(fetcher_for(slack, client), file_at(foreign.url + "/x.png"), caplog)
    assert (
        exc.reason == "not_allowed" and exc.user_message == "I couldn't download that file: it isn't stored on Slack."
    )
    assert foreign.requests == [] and client.started == []


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/files-pri/T1-F1/a.png",
        "https://files.slack.com.evil.com/files-pri/a.png",
        "https://files.slack.com@evil.com/a.png",
        "https://files.slack.com:443@evil.com/a.png",
        "https://evil.com#@files.slack.com/a.png",
        "https://evil.com\\@files.slack.com/a.png",
        "https://user:pw@files.slack.com/a.png",
        "https://files.sl\u0430ck.com/a.png",  # a Cyrillic look-alike "a"
        "https://files.xn--slck-63d.com/a.png",
        "https://files.slack.com./a.png",
        "https://files%2eslack.com/a.png",
        "http://files.slack.com/a.png",
        "ftp://files.slack.com/a.png",
        "file:///etc/passwd",
        "//files.slack.com/a.png",
        "/files-pri/T1-F1/a.png",
        "https://files.slack.com/a.png\r\nX-Injected: 1",
        "",
    ],
)
async def test_tricky_urls_are_refused_before_connecting(
    slack: FakeSlack, client: Client, caplog: pytest.LogCaptureFixture, url: str
) -> None:
    exc = await refused(fetcher_for(slack, client), file_at(url), caplog)
    assert exc.reason == "not_allowed"
    assert client.started == []


async def test_plain_http_only_for_loopback_addresses(client: Client, caplog: pytest.LogCaptureFixture) -> None:
    fetcher = SlackFileFetcher(
        bot_token=TOKEN, allowed_hosts=["files.internal.test", "localhost"], session=client.session
    )
    for url in ("http://files.internal.test/a.png", "http://localhost:1/a.png"):
        assert (await refused(fetcher, file_at(url), caplog)).reason == "not_allowed"
    assert client.started == []


async def test_redirect_to_a_foreign_host_is_refused(
    slack: FakeSlack, client: Client, serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def steal(_r: web.Request) -> web.StreamResponse:
        return web.Response(body=PNG, content_type="image/png")

    foreign = await serve(steal, "127.0.0.2")

    async def bounce(_r: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(foreign.url + f"/steal?token={TOKEN}")

    allowed = await serve(bounce)
    exc = await refused(fetcher_for(slack, client), file_at(allowed.url + "/file"), caplog)
    assert exc.reason == "redirect"
    assert len(allowed.requests) == 1 and foreign.requests == []


async def test_redirect_loops_stop_after_three_hops(
    slack: FakeSlack, client: Client, serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def loop(_r: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/again")

    server = await serve(loop)
    exc = await refused(fetcher_for(slack, client), file_at(server.url + "/start"), caplog)
    assert exc.reason == "redirect" and len(server.requests) == 4  # the request and three redirects followed


# ------------------------------------------------------------------------------------------ sizes


async def test_size_in_the_payload_over_the_cap_is_refused_before_connecting(
    slack: FakeSlack, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    f = slack_file_from_event(slack.add_file(PNG, name="dot.png", mimetype="image/png"))
    assert f is not None
    big = SlackFile(f.id, f.name, f.mimetype, 30 * 1024 * 1024, f.url)
    exc = await refused(fetcher_for(slack, client), big, caplog)
    assert exc.reason == "too_large" and exc.user_message == "That file is 30 MB; I can download files up to 20 MB."
    assert client.started == [] and slack.file_downloads == []


async def test_content_length_over_the_cap_is_refused(
    slack: FakeSlack, client: Client, serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def big(_r: web.Request) -> web.StreamResponse:
        return web.Response(body=bytes(2048 + 1), content_type="image/png")

    server = await serve(big)
    exc = await refused(fetcher_for(slack, client, max_bytes=2048), file_at(server.url + "/big.png"), caplog)
    assert exc.reason == "too_large" and "Content-Length 2049" in str(exc)


async def test_endless_stream_is_cut_off_at_the_cap(
    slack: FakeSlack, client: Client, serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sent = 0
    stopped = asyncio.Event()

    async def endless(request: web.Request) -> web.StreamResponse:
        nonlocal sent
        resp = web.StreamResponse(headers={"Content-Type": "image/png"})  # chunked: no Content-Length
        await resp.prepare(request)
        try:
            while True:
                await resp.write(b"\0" * 16384)
                sent += 16384
        except (ConnectionError, RuntimeError):
            return resp
        finally:
            stopped.set()

    server = await serve(endless)
    fetcher = fetcher_for(slack, client, max_bytes=256 * 1024)
    async with asyncio.timeout(10):  # the body never ends: only stopping at the cap can finish this test
        exc = await refused(fetcher, file_at(server.url + "/stream.png"), caplog)
        await stopped.wait()
    assert exc.reason == "too_large"
    assert exc.user_message == "That file is larger than 0.3 MB; I can download files up to 0.3 MB."
    assert sent < 64 * 1024 * 1024


# ------------------------------------------------------------------------------------------ failures


async def test_wrong_token_gets_the_sign_in_page_and_a_plain_message(
    slack: FakeSlack, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    f = slack_file_from_event(slack.add_file(PNG, name="dot.png", mimetype="image/png"))
    assert f is not None
    wrong = "xoxb-9999-WRONGwrongWRONG"
    exc = await refused(fetcher_for(slack, client, bot_token=wrong), f, caplog, token=wrong)
    assert exc.reason == "auth"
    assert exc.user_message == tr(FILE_MISSING_SCOPE)
    assert tr(FILE_MISSING_SCOPE) == (
        "I couldn't download that file from Slack; the bot may be missing the files:read permission."
    )
    assert [d["served"] for d in slack.file_downloads] == ["sign_in_page"]


async def test_html_with_the_right_token_is_refused_too(
    slack: FakeSlack, client: Client, serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def page(_r: web.Request) -> web.StreamResponse:
        return web.Response(text="<html>Sign in</html>", content_type="text/html")

    server = await serve(page)
    exc = await refused(fetcher_for(slack, client), file_at(server.url + "/a.png"), caplog)
    assert exc.reason == "auth"


async def test_non_200_names_the_status(slack: FakeSlack, client: Client, caplog: pytest.LogCaptureFixture) -> None:
    exc = await refused(fetcher_for(slack, client), file_at(slack.base_url + "/files-pri/T0001-FNOPE/x.png"), caplog)
    assert exc.reason == "http_status" and exc.user_message == "I couldn't download that file from Slack (HTTP 404)."
    assert [d["served"] for d in slack.file_downloads] == ["not_found"]


async def test_slow_server_times_out(
    slack: FakeSlack, client: Client, serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    release = asyncio.Event()

    async def stall(_r: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.Response(body=PNG, content_type="image/png")

    server = await serve(stall)
    try:
        exc = await refused(fetcher_for(slack, client, timeout_s=0.2), file_at(server.url + "/slow.png"), caplog)
    finally:
        release.set()
    assert exc.reason == "timeout" and "0.2 seconds" in exc.user_message


async def test_connection_failure_is_refused_plainly(
    slack: FakeSlack, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exc = await refused(fetcher_for(slack, client), file_at(f"http://127.0.0.1:{port}/x.png"), caplog)
    assert exc.reason == "network"
    assert exc.user_message == "I couldn't download that file from Slack: the connection failed."
