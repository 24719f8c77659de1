"""The one check on every `response_url` the bot may POST to (Bolt's `respond`, and anything else of ours).

Slack's response URLs live on its hooks host (https://hooks.slack.com/..., https://api.slack.com/interactivity/
handling#message_responses). A request that names another host was not written by Slack: posting there would send
an answer (a cost report, say) wherever the sender likes. So such a request is refused before any listener runs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from yarl import URL

log = logging.getLogger(__name__)

SLACK_HOOKS_HOST = "hooks.slack.com"


class ResponseUrlPolicy:
    """hooks.slack.com, plus SLACK_API_URL's host and its `hooks.` sibling (GovSlack: hooks.slack-gov.com; tests: the
    fake Slack, which alone may use plain http)."""

    def __init__(self, api_url: str) -> None:
        self._api_host = (URL(api_url).host or "").lower()
        self._hosts = {SLACK_HOOKS_HOST, self._api_host, "hooks." + self._api_host}

    def allows(self, url: object) -> bool:
        if not isinstance(url, str) or not url:
            return False
        try:
            parsed = URL(url)
        except ValueError:
            return False
        host = (parsed.host or "").lower()
        if host not in self._hosts or parsed.user or parsed.password:
            return False
        return parsed.scheme == "https" or (parsed.scheme == "http" and host == self._api_host)


def response_urls(body: dict[str, Any]) -> Iterator[object]:
    """Every response URL a request carries: commands and clicks have `response_url`, modal submissions may have
    `response_urls` (one per conversation picked)."""
    if "response_url" in body:
        yield body["response_url"]
    many = body.get("response_urls")
    if isinstance(many, list):
        for item in many:
            yield item.get("response_url") if isinstance(item, dict) else item


def guard(app: AsyncApp, policy: ResponseUrlPolicy) -> None:
    """Registered before every other middleware, so nothing (not even the shutdown notice) can `respond` first."""

    @app.middleware
    async def response_url_on_slack(
        req: AsyncBoltRequest, body: dict[str, Any], next: Callable[[], Awaitable[None]]
    ) -> Any:
        if all(policy.allows(url) for url in response_urls(body)):
            return await next()
        log.warning("refused a request whose response_url is not on Slack's hooks host")
        if req.mode == "socket_mode":  # Bolt acks a socket envelope only on 200; unacked, Slack would resend it
            return BoltResponse(status=200, body="")
        return BoltResponse(status=400, body="response_url is not a Slack URL")
