"""Builds the Bolt AsyncApp from its dependencies, plus the one app-wide error handler."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from slack_bolt.async_app import AsyncApp
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import async_default_handlers
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from bot.core import texts
from bot.core.errors import BotError
from bot.core.i18n import tr
from bot.metrics import Metrics
from bot.slack import listeners, middleware, response_urls
from bot.slack.deps import SlackDeps
from bot.slack.oauth import OAuthConfig, build_install_flow
from bot.slack.reply_notes import FAILURE_PREFIX
from bot.slack.response_urls import ResponseUrlPolicy

log = logging.getLogger(__name__)


class _RateLimitCounter(AsyncRetryHandler):
    """Counts Slack's 429 answers by method. Never retries: callers pace themselves by Retry-After (reply_stream)."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(max_retry_count=2**31)  # consulted on every response, however many retries came before
        self._metrics = metrics

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is not None and response.status_code == 429:
            self._metrics.slack_rate_limited(urlsplit(request.url).path.rsplit("/", 1)[-1])
        return False


def web_client(
    *, token: str | None, base_url: str, metrics: Metrics, session: aiohttp.ClientSession | None = None
) -> AsyncWebClient:
    """The bot's Web API client; Bolt copies its retry handlers into every per-request client (slack.md §1.1)."""
    return AsyncWebClient(
        token=token,
        base_url=base_url,
        session=session,
        retry_handlers=[*async_default_handlers(), _RateLimitCounter(metrics)],
    )


def build_app(
    *, client: AsyncWebClient, signing_secret: str | None, deps: SlackDeps, oauth: OAuthConfig | None = None
) -> AsyncApp:
    """With `oauth`, tokens come from each workspace's installation and `client` carries none; else `client`'s."""
    install = build_install_flow(client, oauth) if oauth is not None else None
    app = AsyncApp(
        client=client,
        # HTTP requests are verified twice: by bot.intake on the raw bytes before anything is parsed, then by Bolt.
        # Without a secret (Socket Mode only) there is no HTTP route to verify, and Bolt's check is off rather than
        # run against a made-up secret ("" also stops Bolt reading SLACK_SIGNING_SECRET behind our back).
        signing_secret=signing_secret or "",
        request_verification_enabled=signing_secret is not None,
        process_before_response=False,
        logger=logging.getLogger("slack_bolt"),
        before_authorize=middleware.reject_malformed,
        oauth_flow=install[0] if install else None,
        # Bolt takes an AsyncAuthorize instance as well as a function (isinstance check in AsyncApp.__init__).
        authorize=install[1] if install else None,  # type: ignore[arg-type]
        installation_store=oauth.installations if oauth else None,
    )
    response_urls.guard(app, ResponseUrlPolicy(client.base_url))  # first: see response_urls.py
    middleware.register(app, deps.ledger, in_progress=deps.in_progress, metrics=deps.metrics)
    listeners.register_all(app, deps)

    @app.error
    async def on_error(error: Exception, body: dict[str, Any], client: AsyncWebClient) -> None:
        """Anything a listener did not handle: log it with context and tell the thread, briefly."""
        raw_event = body.get("event")
        event: dict[str, Any] = raw_event if isinstance(raw_event, dict) else {}
        log.error(
            "unhandled %s in %s event: %s",
            type(error).__name__,
            event.get("type") or body.get("type"),
            error,
            exc_info=error,
        )
        channel = event.get("channel")
        if channel and event.get("ts"):
            thread_ts = event.get("thread_ts") or (None if event.get("channel_type") == "im" else event["ts"])
            notice = error.notice() if isinstance(error, BotError) else tr(texts.GENERIC_FAILURE)
            try:
                await client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=FAILURE_PREFIX + notice)
            except Exception:
                log.exception("could not post the failure notice")

    return app
