"""The aiohttp apps (on PORT: Slack's endpoint, the OAuth install pages for several workspaces, a health check that
tells the truth; on METRICS_HOST:METRICS_PORT: Prometheus metrics) and the running service around them: Socket Mode
or HTTP intake, and an orderly shutdown."""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.socket_mode.internals import build_headers
from slack_bolt.async_app import AsyncApp
from slack_bolt.oauth.async_oauth_flow import AsyncOAuthFlow
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from bot import intake
from bot.core.errors import StorageUnavailable
from bot.core.ports import HealthCheck
from bot.intake import SlackVerifier
from bot.intake_loop import IntakeThread, LoopBridge, SameLoop
from bot.metrics import CONTENT_TYPE, Metrics
from bot.settings import Settings
from bot.slack.incoming import acks_at_once, from_a_bot
from bot.slack.middleware import ACKED_AT_PORT, request_kind
from bot.wiring import Bot, build_bot

log = logging.getLogger(__name__)

SLACK_PATH = "/slack/events"
# How long shutdown waits for events acked at the port to reach their listeners (a dispatch takes milliseconds).
HANDED_OVER_SETTLE_S = 5.0
Handler = Callable[[web.Request], Awaitable[web.Response]]


class InstallLimits(Protocol):
    async def admit(self, address: str) -> str | None:
        """None to let this visitor start an install; else a short reason (answered with 429)."""


def build_web_app(
    app: AsyncApp,
    health: HealthCheck,
    *,
    signing_secret: str | None,
    metrics: Metrics | None = None,
    accepting: Callable[[], bool] = lambda: True,
    install_limits: InstallLimits | None = None,
    trusted_proxies: Sequence[str] = (),
    bridge: LoopBridge | None = None,
) -> web.Application:
    """The public port. POST /slack/events exists only with a signing secret: in Socket Mode without one, Slack's
    requests come over the socket and this route answers 404, so no one can forge them over HTTP.

    `accepting` turns false on shutdown: /healthz then says 503 so load balancers send work elsewhere. `bridge` says
    where the bot's work runs when this app is served on a loop of its own (`bot.intake_loop`)."""
    bridge = bridge or SameLoop()

    async def healthz(_: web.Request) -> web.Response:
        if not accepting():
            return web.json_response({"status": "shutting down"}, status=503)
        report = await bridge.run(health.health_report())
        if report.get("redis") == "ok":
            return web.json_response({"status": "ok", **report})
        return web.json_response({"status": f"redis {report.get('redis', 'unreachable')}", **report}, status=503)

    web_app = web.Application(client_max_size=intake.MAX_BODY_BYTES)
    web_app.add_routes([web.get("/healthz", healthz)])
    if signing_secret:
        intake_route = _slack_intake(app, SlackVerifier(signing_secret), metrics, accepting, bridge)
        web_app.add_routes([web.post(SLACK_PATH, intake_route)])
    if app.oauth_flow is not None:
        web_app.add_routes(_install_routes(app.oauth_flow, install_limits, trusted_proxies, bridge))
    return web_app


def _slack_intake(
    app: AsyncApp,
    verifier: SlackVerifier,
    metrics: Metrics | None,
    accepting: Callable[[], bool],
    bridge: LoopBridge,
) -> Handler:
    """POST /slack/events: size cap, signature on the raw bytes, shape; only then Bolt sees the request, and only
    then is it counted under its kind. Events are acked here, before Bolt (whose listeners would ack them anyway):
    no Redis or Slack call, and no wait for the bot's busy loop, stands between Slack and its 200."""

    async def slack_events(request: web.Request) -> web.Response:
        started = time.perf_counter()
        raw, rejection = await _read_body(request)
        body = None
        if rejection is None:
            body, rejection = intake.check(verifier, raw, request.headers, request.content_type)
        if rejection is not None or body is None:
            rejection = rejection or intake.MALFORMED
            if metrics is not None:
                metrics.slack_rejected(rejection.reason, time.perf_counter() - started)
            return web.Response(status=rejection.status, text=rejection.text)
        kind = request_kind(body)
        acked = acks_at_once(body) and accepting()
        if acked and from_a_bot(body):  # what the `ignore_other_bots` middleware would do, without the bot's loop
            if metrics is not None:
                metrics.slack_event(kind, "ignored")
            response = web.Response(status=200)
        elif acked and bridge.admit(app.async_dispatch(_bolt_request(request, raw, acked=True))):
            response = web.Response(status=200)
        else:
            bolt_response = await bridge.run(app.async_dispatch(_bolt_request(request, raw, acked=False)))
            response = await to_aiohttp_response(bolt_response)
        if metrics is not None:
            metrics.slack_acked(kind, time.perf_counter() - started)
        return response

    return slack_events


def _bolt_request(request: web.Request, raw: bytes, *, acked: bool) -> AsyncBoltRequest:
    context = {ACKED_AT_PORT: True} if acked else None
    return AsyncBoltRequest(
        body=raw.decode(), query=request.query_string, headers=dict(request.headers), context=context
    )


def _install_routes(
    flow: AsyncOAuthFlow, install_limits: InstallLimits | None, trusted_proxies: Sequence[str], bridge: LoopBridge
) -> list[web.RouteDef]:
    async def install(request: web.Request) -> web.Response:
        """Sets the state cookie and redirects to Slack's "Allow" page; each visit stores a state, so capped."""
        if install_limits is not None:
            try:
                refusal = await bridge.run(install_limits.admit(client_address(request, trusted_proxies)))
            except StorageUnavailable:
                refusal = None  # the flow cannot store a state either, and answers with its "try again" page
            if refusal is not None:
                return web.Response(status=429, text=refusal, headers={"Retry-After": "60"})
        bolt_request = await to_bolt_request(request)
        return await to_aiohttp_response(await bridge.run(flow.handle_installation(bolt_request)))

    async def oauth_redirect(request: web.Request) -> web.Response:
        """Slack sends the installer back here with a one-time code and our state."""
        bolt_request = await to_bolt_request(request)
        return await to_aiohttp_response(await bridge.run(flow.handle_callback(bolt_request)))

    return [web.get(flow.install_path, install), web.get(flow.redirect_uri_path, oauth_redirect)]


async def _read_body(request: web.Request) -> tuple[bytes, intake.Rejection | None]:
    """The raw body, read no further than MAX_BODY_BYTES (aiohttp's client_max_size stops the read there)."""
    if (request.content_length or 0) > intake.MAX_BODY_BYTES:
        log.info("rejected a Slack request: %d bytes is over the cap", request.content_length or 0)
        return b"", intake.TOO_LARGE
    try:
        return await request.read(), None
    except web.HTTPRequestEntityTooLarge:
        log.info("rejected a Slack request: body over the %d-byte cap", intake.MAX_BODY_BYTES)
        return b"", intake.TOO_LARGE


def client_address(request: web.Request, trusted_proxies: Sequence[str]) -> str:
    """Who is asking: the peer address, or, when the peer is one of TRUSTED_PROXIES, the nearest address in
    X-Forwarded-For that is not itself a trusted proxy (the proxies append, so the right end is theirs)."""
    peer = request.remote or "unknown"
    trusted = set(trusted_proxies)
    if peer not in trusted:
        return peer
    hops = [hop.strip() for hop in request.headers.get("X-Forwarded-For", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if hop not in trusted:
            return hop[:64]
    return peer


def build_metrics_app(metrics: Metrics, *, token: str | None) -> web.Application:
    """GET /metrics on its own port (METRICS_HOST:METRICS_PORT): it names workspaces and their costs."""
    expected = f"Bearer {token}".encode() if token else None

    async def metrics_page(request: web.Request) -> web.Response:
        given = request.headers.get("Authorization", "").encode("utf-8", "replace")
        if expected is not None and not hmac.compare_digest(given, expected):
            return web.Response(status=401, text="metrics need a bearer token", headers={"WWW-Authenticate": "Bearer"})
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    web_app = web.Application(client_max_size=64 * 1024)
    web_app.add_routes([web.get("/metrics", metrics_page)])
    return web_app


def web_app_for(bot: Bot, settings: Settings, bridge: LoopBridge | None = None) -> web.Application:
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else None
    return build_web_app(
        bot.app,
        bot.store,
        signing_secret=secret,
        metrics=bot.core.metrics,
        accepting=lambda: bot.slack_deps.in_progress.accepting,
        install_limits=bot.install_limits,
        trusted_proxies=sorted(settings.id_list(settings.trusted_proxies)),
        bridge=bridge,
    )


def metrics_app_for(bot: Bot, settings: Settings) -> web.Application:
    token = settings.metrics_token.get_secret_value() if settings.metrics_token is not None else None
    return build_metrics_app(bot.core.metrics, token=token)


class _TimedSocketModeHandler(AsyncSocketModeHandler):
    """Bolt's Socket Mode handler, acking events before Bolt sees them (as the HTTP port does) and timing each ack."""

    def __init__(self, bot: Bot, app_token: str, bridge: LoopBridge) -> None:
        super().__init__(bot.app, app_token)
        self._metrics = bot.core.metrics
        self._in_progress = bot.slack_deps.in_progress
        self._bridge = bridge

    async def handle(self, client: Any, req: Any) -> None:
        started = time.perf_counter()
        payload = req.payload if isinstance(req.payload, dict) else {}
        kind = request_kind(payload)
        if req.type == "events_api" and acks_at_once(payload) and self._in_progress.accepting:
            if from_a_bot(payload):
                self._metrics.slack_event(kind, "ignored")
            else:
                context = {ACKED_AT_PORT: True}
                bolt_request = AsyncBoltRequest(
                    mode="socket_mode", body=payload, headers=build_headers(req), context=context
                )
                if not self._bridge.admit(self.app.async_dispatch(bolt_request)):
                    return await self._through_bolt(client, req, started)  # shutting down: Bolt refuses it
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
            self._metrics.slack_acked(kind, time.perf_counter() - started)
            return None
        return await self._through_bolt(client, req, started)

    async def _through_bolt(self, client: Any, req: Any, started: float) -> None:
        await super().handle(client, req)
        self._metrics.slack_acked(request_kind(req.payload), time.perf_counter() - started)


class Service:
    """One running bot: Slack intake (Socket Mode when SLACK_APP_TOKEN is set, else HTTP), /healthz on HOST:PORT in
    both modes, /metrics on METRICS_HOST:METRICS_PORT, and an orderly shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bot = build_bot(settings)
        self._metrics_runner = web.AppRunner(metrics_app_for(self.bot, settings), access_log=None)
        self._socket: _TimedSocketModeHandler | None = None
        self._socket_bridge = SameLoop()
        self._intake: IntakeThread | None = None
        self._address: tuple[str, int] | None = None

    @property
    def url(self) -> str:
        """Where the HTTP listener really is (PORT=0 picks a free port)."""
        assert self._address is not None, "the service has not started"
        return _http_url(*self._address)

    @property
    def metrics_url(self) -> str:
        return _http_url(*self._metrics_runner.addresses[0][:2])

    async def start(self) -> None:
        settings = self.settings
        await self.bot.start()
        if not await self.bot.store.healthy():
            log.warning("Redis is not answering yet; /healthz reports 503 until it does")
        self._intake = IntakeThread(asyncio.get_running_loop())
        build = functools.partial(web_app_for, self.bot, settings, self._intake)
        self._address = await self._intake.serve(build, settings.host, settings.port)
        await self._metrics_runner.setup()
        await web.TCPSite(self._metrics_runner, settings.metrics_host, settings.metrics_port).start()
        if settings.slack_app_token is not None:
            token = settings.slack_app_token.get_secret_value()
            self._socket = _TimedSocketModeHandler(self.bot, token, self._socket_bridge)
            await self._socket.connect_async()  # type: ignore[no-untyped-call]  # Bolt leaves it unannotated
            intake_note = f"; HTTP intake at {SLACK_PATH} too" if settings.slack_signing_secret else ""
            log.info("connected to Slack in Socket Mode; /healthz on %s%s", self.url, intake_note)
        else:
            log.info("listening for Slack on %s%s", self.url, SLACK_PATH)
        log.info("metrics on %s/metrics", self.metrics_url)

    async def shutdown(self) -> None:
        """Stop taking new work, give answers in progress SHUTDOWN_GRACE_S (then close them with a note), flush
        history, and only then disconnect: until the end, Approve clicks for those answers still get through."""
        log.info("shutting down: new work is turned away; answers in progress get %g s", self.settings.shutdown_grace_s)
        self.bot.slack_deps.in_progress.stop_accepting()
        # Events acked before that moment reach their listeners (and are waited for) rather than being turned away.
        for bridge in (self._intake, self._socket_bridge):
            if bridge is not None:
                await bridge.settle(HANDED_OVER_SETTLE_S)
        await self.bot.stop_work(self.settings.shutdown_grace_s)
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]  # Bolt leaves it unannotated
        if self._intake is not None:
            await self._intake.stop()
        await self._metrics_runner.cleanup()
        await self.bot.close(grace_s=0)
        log.info("shut down")


def _http_url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
