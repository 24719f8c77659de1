"""Multi-workspace (OAuth): installing through Slack's authorize page, each workspace answered with its own token,
rotating tokens refreshed, and an uninstalled workspace forgotten (its tokens at once, its data after the grace)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
import redis.asyncio as redis

from bot.slack.oauth import MANIFEST_BOT_SCOPES
from bot.storage.keys import Keys
from tests.e2e.conftest import BotFactory, RunningBot
from tests.e2e.helpers import bot_messages, settle, wait_for_reply
from tests.e2e.test_files import image_bytes
from tests.fakes.anthropic_api import FakeAnthropic, TextReply, ToolUseReply
from tests.fakes.slack_api import ApiCall, FakeSlack
from tests.fakes.slack_requests import app_mention, app_uninstalled, event_callback, tokens_revoked

STATE_COOKIE = "slack-app-oauth-state"  # Bolt's default cookie name
WAIT_S = 10.0


@pytest.fixture
async def browser() -> AsyncIterator[aiohttp.ClientSession]:
    """The installer's browser; cookies are passed by hand, as plain-HTTP 127.0.0.1 would not return Secure ones."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        yield session


@pytest.fixture
def second(slack: FakeSlack) -> None:
    """A second workspace with its own channel, as in the default workspace's #general."""
    slack.add_workspace("T0002", name="Second")
    slack.add_user("U0TWO", name="grace", team_id="T0002")
    slack.add_channel("C0TWO", name="two", team_id="T0002")


@pytest.fixture
def start_oauth_bot(start_bot: BotFactory, slack: FakeSlack) -> Callable[..., Any]:
    async def start(**overrides: Any) -> RunningBot:
        running = await start_bot(
            slack_bot_token=None, slack_client_id=slack.client_id, slack_client_secret=slack.client_secret, **overrides
        )
        # The Redirect URL configured in the Slack app, which Slack sends installers back to.
        slack.redirect_urls = [running.url + "/slack/oauth_redirect"]
        return running

    return start


async def begin_install(browser: aiohttp.ClientSession, running: RunningBot, team: str) -> tuple[str, str]:
    """GET /slack/install: (Slack's authorize URL it redirects to, the state cookie it sets)."""
    async with browser.get(f"{running.url}/slack/install?team={team}", allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()
        return resp.headers["Location"], resp.cookies[STATE_COOKIE].value


async def allow(browser: aiohttp.ClientSession, authorize_url: str) -> str:
    """The installer clicks "Allow" on Slack's page: Slack redirects back to the bot with a code and the state."""
    async with browser.get(authorize_url, allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()
        return resp.headers["Location"]


async def come_back(browser: aiohttp.ClientSession, redirect_url: str, cookie: str | None) -> tuple[int, str]:
    headers = {"Cookie": f"{STATE_COOKIE}={cookie}"} if cookie is not None else {}
    async with browser.get(redirect_url, headers=headers, allow_redirects=False) as resp:
        return resp.status, await resp.text()


async def install(browser: aiohttp.ClientSession, running: RunningBot, slack: FakeSlack, team: str) -> str:
    """The whole install; returns the bot token Slack issued for `team`."""
    authorize_url, cookie = await begin_install(browser, running, team)
    status, page = await come_back(browser, await allow(browser, authorize_url), cookie)
    assert status == 200, page
    return str(slack.calls_to("oauth.v2.access")[-1].response["access_token"])


def mention(text: str, ts: str, *, team: str = "T0001", channel: str = "C0GENERAL", bot: str = "UBOT") -> dict:
    user = "U0USER" if team == "T0001" else "U0TWO"
    event = app_mention(text, ts=ts, channel=channel, team=team, bot_user_id=bot, user=user)
    return event_callback(event, team_id=team, bot_user_id=bot)


def calls_about(slack: FakeSlack, channel: str) -> list[ApiCall]:
    return [c for c in slack.calls if c.params.get("channel") == channel]


async def eventually(check: Callable[[], Any], what: str) -> None:
    """Poll an async condition (Redis state the bot changes in the background) until it holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.05)


async def test_install_redirects_to_slack_and_stores_the_workspaces_own_token(
    start_oauth_bot: Callable[..., Any], slack: FakeSlack, browser: aiohttp.ClientSession, second: None
) -> None:
    running = await start_oauth_bot()

    authorize_url, cookie = await begin_install(browser, running, "T0002")

    assert authorize_url.startswith(slack.base_url + "/oauth/v2/authorize?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(authorize_url).query).items()}
    assert query["client_id"] == slack.client_id and query["team"] == "T0002"
    assert set(query["scope"].split(",")) == set(MANIFEST_BOT_SCOPES)
    assert query["state"] == cookie and len(cookie) >= 32

    status, page = await come_back(browser, await allow(browser, authorize_url), cookie)

    assert status == 200 and "Thank you" in page
    (exchange,) = slack.calls_to("oauth.v2.access")
    assert exchange.ok and exchange.params["client_id"] == slack.client_id and exchange.params["code"]
    token = exchange.response["access_token"]
    assert token not in page
    await running.sender.send_event(
        mention("hello", "1700009000.000100", team="T0002", channel="C0TWO", bot="UBOT0002")
    )
    await wait_for_reply(slack, "C0TWO", "1700009000.000100", "OK")
    assert {c.token for c in calls_about(slack, "C0TWO")} == {token}


async def test_a_forged_or_replayed_state_is_refused_with_a_clear_page(
    start_oauth_bot: Callable[..., Any], slack: FakeSlack, browser: aiohttp.ClientSession
) -> None:
    running = await start_oauth_bot()
    code = slack.grant_code("T0001")

    status, page = await come_back(browser, f"{running.url}/slack/oauth_redirect?code={code}&state=forged", None)
    assert status == 400 and "another browser" in page and "/slack/install" in page

    status, page = await come_back(browser, f"{running.url}/slack/oauth_redirect?code={code}&state=forged", "forged")
    assert status == 401 and "expired or has already been used" in page
    assert slack.calls_to("oauth.v2.access") == [], "no code is exchanged without a valid state"

    authorize_url, cookie = await begin_install(browser, running, "T0001")
    back = await allow(browser, authorize_url)
    assert (await come_back(browser, back, cookie))[0] == 200
    status, page = await come_back(browser, back, cookie)  # the same redirect, replayed
    assert status == 401 and "already been used" in page
    assert len(slack.calls_to("oauth.v2.access")) == 1
    assert code not in page


async def test_two_workspaces_are_each_answered_with_their_own_token(
    start_oauth_bot: Callable[..., Any], slack: FakeSlack, browser: aiohttp.ClientSession, second: None
) -> None:
    running = await start_oauth_bot()
    first_token = await install(browser, running, slack, "T0001")
    second_token = await install(browser, running, slack, "T0002")
    assert first_token != second_token

    await running.sender.send_event(mention("one?", "1700009100.000100"))
    await running.sender.send_event(mention("two?", "1700009100.000200", team="T0002", channel="C0TWO", bot="UBOT0002"))
    await wait_for_reply(slack, "C0GENERAL", "1700009100.000100", "OK")
    await wait_for_reply(slack, "C0TWO", "1700009100.000200", "OK")

    assert {c.token for c in calls_about(slack, "C0GENERAL")} == {first_token}
    assert {c.token for c in calls_about(slack, "C0TWO")} == {second_token}
    assert all(c.ok for c in slack.calls if c.method.startswith("chat."))

    # A workspace that never installed the app is not served with anyone else's token.
    slack.add_workspace("T0003")
    slack.add_channel("C0THREE", name="three", team_id="T0003")
    await running.sender.send_event(
        mention("three?", "1700009100.000300", team="T0003", channel="C0THREE", bot="UBOT0003")
    )
    await settle()
    assert bot_messages(slack, "C0THREE", "1700009100.000300") == [] and calls_about(slack, "C0THREE") == []


async def test_files_and_tools_use_the_asking_workspaces_token(
    start_oauth_bot: Callable[..., Any],
    slack: FakeSlack,
    claude: FakeAnthropic,
    browser: aiohttp.ClientSession,
    second: None,
) -> None:
    running = await start_oauth_bot()
    await install(browser, running, slack, "T0001")
    token = await install(browser, running, slack, "T0002")
    slack.add_history("C0TWO", [{"ts": "1700000000.000900", "user": "U0TWO", "text": "Launch on Monday"}])
    file = slack.add_file(image_bytes(40, 30), name="chart.png", mimetype="image/png", team_id="T0002")
    claude.script(ToolUseReply("read_channel", {}), TextReply("Monday, and a red chart."))

    root = "1700009200.000100"
    event = app_mention("summarise", ts=root, channel="C0TWO", team="T0002", bot_user_id="UBOT0002", files=[file])
    await running.sender.send_event(event_callback(event, team_id="T0002", bot_user_id="UBOT0002"))
    await wait_for_reply(slack, "C0TWO", root, "Monday")

    assert [d["authorization"] for d in slack.file_downloads] == [f"Bearer {token}"]
    history = slack.calls_to("conversations.history")
    assert history and all(c.ok and c.token == token for c in history)


async def test_an_expiring_token_is_refreshed_once_and_the_new_one_is_used(
    start_oauth_bot: Callable[..., Any], slack: FakeSlack, browser: aiohttp.ClientSession, second: None
) -> None:
    running = await start_oauth_bot()
    slack.token_rotation = True
    slack.token_lifetime_s = 3600  # less than the two hours before expiry at which Bolt refreshes
    installed = await install(browser, running, slack, "T0002")
    refresh_token = slack.calls_to("oauth.v2.access")[-1].response["refresh_token"]
    slack.token_lifetime_s = 43_200

    await running.sender.send_event(mention("a?", "1700009300.000100", team="T0002", channel="C0TWO", bot="UBOT0002"))
    await wait_for_reply(slack, "C0TWO", "1700009300.000100", "OK")

    (refresh,) = [c for c in slack.calls_to("oauth.v2.access") if c.params.get("grant_type") == "refresh_token"]
    assert refresh.ok and refresh.params["refresh_token"] == refresh_token
    fresh = refresh.response["access_token"]
    assert fresh != installed and {c.token for c in calls_about(slack, "C0TWO")} == {fresh}

    await running.sender.send_event(mention("b?", "1700009300.000200", team="T0002", channel="C0TWO", bot="UBOT0002"))
    await wait_for_reply(slack, "C0TWO", "1700009300.000200", "OK")
    refreshes = [c for c in slack.calls_to("oauth.v2.access") if c.params.get("grant_type") == "refresh_token"]
    assert len(refreshes) == 1, "the refreshed token was stored, so it is not refreshed again"


async def both_talking(
    starting: Awaitable[RunningBot], slack: FakeSlack, browser: aiohttp.ClientSession, seconds: str
) -> RunningBot:
    """The bot installed in both workspaces, each with one answered thread ({seconds}.000100 and .000200)."""
    running = await starting
    await install(browser, running, slack, "T0001")
    await install(browser, running, slack, "T0002")
    await running.sender.send_event(mention("one", f"{seconds}.000100"))
    await running.sender.send_event(mention("two", f"{seconds}.000200", team="T0002", channel="C0TWO", bot="UBOT0002"))
    await wait_for_reply(slack, "C0GENERAL", f"{seconds}.000100", "OK")
    await wait_for_reply(slack, "C0TWO", f"{seconds}.000200", "OK")
    return running


async def conversation_keys(client: redis.Redis, prefix: str, workspace: str) -> set[str]:
    return {key async for key in client.scan_iter(match=f"{prefix}conv:{workspace}:*")}


@pytest.mark.parametrize(
    "departure", [app_uninstalled(), tokens_revoked(bot=["UBOT0002"])], ids=["app_uninstalled", "tokens_revoked"]
)
async def test_leaving_deletes_the_token_at_once_and_the_conversations_after_the_grace(
    start_oauth_bot: Callable[..., Any],
    slack: FakeSlack,
    browser: aiohttp.ClientSession,
    second: None,
    redis_client: redis.Redis,
    key_prefix: str,
    departure: dict,
) -> None:
    running = await both_talking(start_oauth_bot(uninstall_data_grace_s=0.5), slack, browser, "1700009400")
    keys = Keys(key_prefix)
    assert await conversation_keys(redis_client, key_prefix, "T0002")

    slack.uninstall("T0002")
    sent_at = time.time()
    status, _ = await running.sender.send_event(event_callback(departure, team_id="T0002", bot_user_id="UBOT0002"))

    assert status == 200
    # The token is gone at once...
    await eventually(lambda: _no_token(running, "T0002"), "the bot token is deleted")
    # ...and the data is due one grace period later, not now.
    due = await redis_client.zscore(keys.pending_purges(), "T0002")
    assert due is None or due >= sent_at + 0.5
    await eventually(
        lambda: _none(conversation_keys(redis_client, key_prefix, "T0002")), "the conversations are deleted"
    )
    assert await conversation_keys(redis_client, key_prefix, "T0001"), "another workspace keeps its conversations"
    assert not await _no_token(running, "T0001")
    assert [k async for k in redis_client.scan_iter(match=f"{key_prefix}usage:T0002:*")], "usage history stays"

    # Nothing answers there any more, and its old token is never tried.
    before = len(slack.calls)
    await running.sender.send_event(
        mention("back?", "1700009400.000300", team="T0002", channel="C0TWO", bot="UBOT0002")
    )
    await settle()
    assert bot_messages(slack, "C0TWO", "1700009400.000300") == []
    assert [c for c in slack.calls[before:] if slack.workspace_of_token(c.token) == "T0002"] == []


async def _no_token(running: RunningBot, team: str) -> bool:
    installations = running.bot.slack_deps.installations
    assert installations is not None
    return await installations.async_find_bot(enterprise_id=None, team_id=team) is None


async def _none(keys: Any) -> bool:
    return not await keys


async def test_reinstalling_within_the_grace_keeps_the_data(
    start_oauth_bot: Callable[..., Any],
    slack: FakeSlack,
    browser: aiohttp.ClientSession,
    second: None,
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    running = await both_talking(start_oauth_bot(uninstall_data_grace_s=0.5), slack, browser, "1700009500")
    keys = Keys(key_prefix)

    await running.sender.send_event(event_callback(app_uninstalled(), team_id="T0002", bot_user_id="UBOT0002"))
    await eventually(lambda: _no_token(running, "T0002"), "T0002 is uninstalled")
    await install(browser, running, slack, "T0002")
    assert await redis_client.zscore(keys.pending_purges(), "T0002") is None

    # T0001 leaves after T0002 did: once T0001's data is gone, T0002's purge would have run too, had it stayed due.
    await running.sender.send_event(event_callback(app_uninstalled()))
    await eventually(lambda: _none(conversation_keys(redis_client, key_prefix, "T0001")), "T0001's data is deleted")
    assert await conversation_keys(redis_client, key_prefix, "T0002")


async def test_single_token_mode_schedules_the_purge_and_a_restart_cancels_it(
    start_bot: BotFactory, redis_client: redis.Redis, key_prefix: str
) -> None:
    running = await start_bot()
    await running.sender.send_event(event_callback(app_uninstalled()))
    keys = Keys(key_prefix)
    await eventually(lambda: _present(redis_client.zscore(keys.pending_purges(), "T0001")), "the purge is scheduled")

    await start_bot()  # the operator reinstalled the app and restarted the bot with its new token

    await eventually(lambda: _absent(redis_client.zscore(keys.pending_purges(), "T0001")), "the purge is cancelled")


async def _present(value: Any) -> bool:
    return await value is not None


async def _absent(value: Any) -> bool:
    return await value is None


async def test_an_org_wide_install_answers_in_each_workspace_and_keeps_data_under_the_org(
    start_oauth_bot: Callable[..., Any],
    slack: FakeSlack,
    browser: aiohttp.ClientSession,
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    slack.add_workspace("T0003", enterprise_id="E0001")
    slack.add_workspace("T0004", enterprise_id="E0001")
    running = await start_oauth_bot()
    token = await install(browser, running, slack, "E0001")
    org_bot = str(slack.calls_to("oauth.v2.access")[-1].response["bot_user_id"])
    for channel, team in (("C0THREE", "T0003"), ("C0FOUR", "T0004")):
        slack.add_channel(channel, name=channel.lower(), team_id=team, members=[org_bot])

    for ts, channel, team in (("1700009600.000100", "C0THREE", "T0003"), ("1700009600.000200", "C0FOUR", "T0004")):
        event = app_mention("hi", ts=ts, channel=channel, team=team, bot_user_id=org_bot)
        await running.sender.send_event(
            event_callback(event, team_id=team, enterprise_id="E0001", is_enterprise_install=True, bot_user_id=org_bot)
        )
        await wait_for_reply(slack, channel, ts, "OK")
        assert {c.token for c in calls_about(slack, channel)} == {token}

    # One tenant: both workspaces' conversations are kept under the org's id, and leave with it.
    assert len(await conversation_keys(redis_client, key_prefix, "E0001")) == 2
    assert not await conversation_keys(redis_client, key_prefix, "T0003")


async def test_the_install_page_says_so_when_redis_is_unreachable(
    start_bot: BotFactory, slack: FakeSlack, browser: aiohttp.ClientSession, redis_url: str
) -> None:
    from tests.contract.test_redis_store import _proxy_for

    proxy = await _proxy_for(redis_url)
    running = await start_bot(
        redis_url=proxy.url,
        slack_bot_token=None,
        slack_client_id=slack.client_id,
        slack_client_secret=slack.client_secret,
    )
    await proxy.cut()
    async with browser.get(f"{running.url}/slack/install", allow_redirects=False) as resp:
        assert resp.status == 503 and "try again in a minute" in await resp.text()
    await proxy.restore()
    assert (await begin_install(browser, running, "T0001"))[1]
    await proxy.stop()
