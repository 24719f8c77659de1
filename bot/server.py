"""The aiohttp app for HTTP mode: Slack's endpoint, the OAuth install pages (multi-workspace), and a health check that
tells the truth about Redis."""

from __future__ import annotations

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp

from bot.core.ports import HealthCheck

SLACK_PATH = "/slack/events"


def build_web_app(app: AsyncApp, health: HealthCheck) -> web.Application:
    async def slack_events(request: web.Request) -> web.Response:
        # Bolt verifies the signature (401 on a bad or stale one) and acks before listeners run.
        bolt_response = await app.async_dispatch(await to_bolt_request(request))
        return await to_aiohttp_response(bolt_response)

    async def healthz(_: web.Request) -> web.Response:
        if await health.healthy():
            return web.json_response({"status": "ok"})
        return web.json_response({"status": "redis unreachable"}, status=503)

    web_app = web.Application(client_max_size=1024**2)
    web_app.add_routes([web.post(SLACK_PATH, slack_events), web.get("/healthz", healthz)])
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
