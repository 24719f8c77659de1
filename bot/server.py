"""The aiohttp app (Slack's endpoint, the OAuth install pages for several workspaces, a health check that tells the
truth, Prometheus metrics) and the running service around it: Socket Mode or HTTP intake, and an orderly shutdown."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

from bot.core.ports import HealthCheck
from bot.metrics import CONTENT_TYPE, Metrics
from bot.settings import Settings
from bot.slack.middleware import request_kind
from bot.wiring import Bot, build_bot

log = logging.getLogger(__name__)

SLACK_PATH = "/slack/events"


def build_web_app(
    app: AsyncApp,
    health: HealthCheck,
    *,
    metrics: Metrics | None = None,
    metrics_token: str | None = None,
    accepting: Callable[[], bool] = lambda: True,
) -> web.Application:
    """`accepting` turns false on shutdown: /healthz then says 503 so load balancers send work elsewhere."""

    async def slack_events(request: web.Request) -> web.Response:
        # Bolt verifies the signature (401 on a bad or stale one) and acks before listeners run.
        started = time.perf_counter()
        bolt_request = await to_bolt_request(request)
        bolt_response = await app.async_dispatch(bolt_request)
        if metrics is not None:
            metrics.slack_acked(request_kind(bolt_request.body), time.perf_counter() - started)
        return await to_aiohttp_response(bolt_response)

    async def healthz(_: web.Request) -> web.Response:
        if not accepting():
            return web.json_response({"status": "shutting down"}, status=503)
        report = await health.health_report()
        if report.get("redis") == "ok":
            return web.json_response({"status": "ok", **report})
        return web.json_response({"status": f"redis {report.get('redis', 'unreachable')}", **report}, status=503)

    async def metrics_page(request: web.Request) -> web.Response:
        if metrics is None:
            raise web.HTTPNotFound()
        expected = f"Bearer {metrics_token}"
        if metrics_token and not hmac.compare_digest(
            request.headers.get("Authorization", "").encode(), expected.encode()
        ):
            return web.Response(status=401, text="metrics need a bearer token", headers={"WWW-Authenticate": "Bearer"})
        return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})

    web_app = web.Application(client_max_size=1024**2)
    web_app.add_routes(
        [web.post(SLACK_PATH, slack_events), web.get("/healthz", healthz), web.get("/metrics", metrics_page)]
    )
    flow = app.oauth_flow
    if flow is not None:

        async def install(request: web.Request) -> web.Response:
            """Sets the state cookie and redirects to Slack's "Allow" page."""
            return await to_aiohttp_response(await flow.handle_installation(await to_bolt_request(request)))

        async def oauth_redirect(request: web.Request) -> web.Response:
            """Slack sends the installer back here with a one-time code and our state."""
            return await to_aiohttp_response(await flow.handle_callback(await to_bolt_request(request)))

        web_app.add_routes([web.get(flow.install_path, install), web.get(flow.redirect_uri_path, oauth_redirect)])
    return web_app


def web_app_for(bot: Bot, settings: Settings) -> web.Application:
    token = settings.metrics_token.get_secret_value() if settings.metrics_token is not None else None
    return build_web_app(
        bot.app,
        bot.store,
        metrics=bot.core.metrics,
        metrics_token=token,
        accepting=lambda: bot.slack_deps.in_progress.accepting,
    )


class _TimedSocketModeHandler(AsyncSocketModeHandler):
    """Bolt's Socket Mode handler, timing each ack as the HTTP endpoint does."""

    def __init__(self, app: AsyncApp, app_token: str, metrics: Metrics) -> None:
        super().__init__(app, app_token)
        self._metrics = metrics

    async def handle(self, client: Any, req: Any) -> None:
        started = time.perf_counter()
        await super().handle(client, req)
        self._metrics.slack_acked(request_kind(req.payload), time.perf_counter() - started)


class Service:
    """One running bot: Slack intake (Socket Mode when SLACK_APP_TOKEN is set, else HTTP), /healthz and /metrics on
    HOST:PORT in both modes, and an orderly shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bot = build_bot(settings)
        self._runner = web.AppRunner(web_app_for(self.bot, settings), access_log=None)
        self._socket: _TimedSocketModeHandler | None = None

    @property
    def url(self) -> str:
        """Where the HTTP listener really is (PORT=0 picks a free port)."""
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}"

    async def start(self) -> None:
        settings = self.settings
        await self.bot.start()
        if not await self.bot.store.healthy():
            log.warning("Redis is not answering yet; /healthz reports 503 until it does")
        await self._runner.setup()
        await web.TCPSite(self._runner, settings.host, settings.port).start()
        if settings.slack_app_token is not None:
            token = settings.slack_app_token.get_secret_value()
            self._socket = _TimedSocketModeHandler(self.bot.app, token, self.bot.core.metrics)
            await self._socket.connect_async()  # type: ignore[no-untyped-call]  # Bolt leaves it unannotated
            log.info("connected to Slack in Socket Mode; /healthz and /metrics on %s", self.url)
        else:
            log.info("listening for Slack on %s%s", self.url, SLACK_PATH)

    async def shutdown(self) -> None:
        """Stop taking new work, give answers in progress SHUTDOWN_GRACE_S (then close them with a note), flush
        history, and only then disconnect: until the end, Approve clicks for those answers still get through."""
        log.info("shutting down: new work is turned away; answers in progress get %g s", self.settings.shutdown_grace_s)
        await self.bot.stop_work(self.settings.shutdown_grace_s)
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]  # Bolt leaves it unannotated
        await self._runner.cleanup()
        await self.bot.close(grace_s=0)
        log.info("shut down")
