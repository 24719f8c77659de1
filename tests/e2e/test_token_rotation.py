"""Rotating tokens refreshed by two bot processes at once: Slack's refresh token is single-use, so only one process
may spend it and the other must use what the first one stored."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.oauth.installation_store import Installation
from slack_sdk.web.async_client import AsyncWebClient

from bot.settings import Settings
from bot.slack.oauth import build_install_flow
from bot.storage import redis_store
from bot.storage.keys import Keys
from bot.storage.redis_store import RedisStore
from bot.wiring import oauth_config
from tests.contract.test_redis_store import _proxy_for
from tests.fakes.slack_api import FakeSlack
from tests.fakes.tcp_proxy import TcpProxy


def _store(url: str, key_prefix: str) -> RedisStore:
    return RedisStore(
        redis_store.connect(url), Keys(key_prefix), conversation_ttl_s=3600, dm_idle_reset_s=3600, dedup_ttl_s=60
    )


@pytest.fixture
async def far_redis(redis_url: str) -> AsyncIterator[TcpProxy]:
    """Redis seen from a process on a slow link: every round trip takes 0.3 s or more."""
    proxy = await _proxy_for(redis_url)
    proxy.delay_s = 0.15
    yield proxy
    await proxy.stop()


async def _installed(slack: FakeSlack) -> Installation:
    """T0001's installation as Bolt stores it after oauth.v2.access, with a token that expires within the hour."""
    body = await AsyncWebClient(base_url=slack.api_url).oauth_v2_access(
        client_id=slack.client_id, client_secret=slack.client_secret, code=slack.grant_code("T0001")
    )
    return Installation(
        app_id=body["app_id"],
        team_id="T0001",
        bot_token=body["access_token"],
        bot_id="B0BOT",
        bot_user_id=body["bot_user_id"],
        bot_scopes=body["scope"],
        bot_refresh_token=body["refresh_token"],
        bot_token_expires_in=body["expires_in"],
        user_id="U0USER",
        token_type="bot",
    )


async def test_two_processes_refreshing_at_once_spend_the_refresh_token_once(
    settings_for: Callable[..., Settings],
    slack: FakeSlack,
    redis_url: str,
    key_prefix: str,
    far_redis: TcpProxy,
    redis_client: Any,
) -> None:
    slack.token_rotation = True
    slack.token_lifetime_s = 3600  # under the two hours before expiry at which tokens are refreshed
    installation = await _installed(slack)
    slack.token_lifetime_s = 43_200
    settings = settings_for(
        slack_bot_token=None, slack_client_id=slack.client_id, slack_client_secret=slack.client_secret
    )
    near, far = _store(redis_url, key_prefix), _store(far_redis.url, key_prefix)
    web = AsyncWebClient(base_url=slack.api_url)

    async def noop(_: str) -> None:
        return None

    processes = []
    for store in (far, near):
        config, installations = oauth_config(settings, store, web, on_installed=noop)
        processes.append((build_install_flow(web, config)[1], installations))
    await processes[1][1].async_save(installation)

    async def authorize(index: int) -> str | None:
        result = await processes[index][0](
            context=AsyncBoltContext(client=web), enterprise_id=None, team_id="T0001", user_id="U0USER"
        )
        return None if result is None else result.bot_token

    def refreshes() -> list[Any]:
        return [c for c in slack.calls_to("oauth.v2.access") if c.params.get("grant_type") == "refresh_token"]

    try:
        first = asyncio.create_task(authorize(0))  # the far process takes the lock and refreshes...
        deadline = time.monotonic() + 10
        while not refreshes():
            assert time.monotonic() < deadline, "the first process never refreshed"
            await asyncio.sleep(0.01)
        second = await authorize(1)  # ...while the near one finds the token expiring and waits for the lock
        first_token = await first
    finally:
        await near.close()
        await far.close()

    assert [c.ok for c in refreshes()] == [True], "the refresh token was spent once, by one process"
    fresh = refreshes()[0].response["access_token"]
    assert first_token == fresh and second == fresh
    stored = await processes[1][1].find_by_workspace("T0001")
    assert stored is not None and stored.bot_token == fresh
