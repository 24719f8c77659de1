"""Self-tests of the fake Slack's OAuth and multi-workspace side, driven by the real slack_sdk client: the install
redirect, oauth.v2.access (codes, client credentials, token rotation), and tokens that only reach their own workspace.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_api import FakeSlack

REDIRECT = "https://bot.example.test/slack/oauth_redirect"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        fake.redirect_urls = [REDIRECT]
        fake.add_workspace("T0002", name="Second")
        fake.add_channel("C0ONE", name="one")
        fake.add_channel("C0TWO", name="two", team_id="T0002")
        yield fake


@pytest.fixture
def oauth(slack: FakeSlack) -> AsyncWebClient:
    """The app's client for oauth.* calls: no token, credentials go as HTTP Basic auth."""
    return AsyncWebClient(base_url=slack.api_url)


async def api_error(coro: Any) -> str:
    with pytest.raises(SlackApiError) as info:
        await coro
    return str(info.value.response["error"])


async def exchange(slack: FakeSlack, oauth: AsyncWebClient, team: str) -> Any:
    code = slack.grant_code(team)
    return await oauth.oauth_v2_access(client_id=slack.client_id, client_secret=slack.client_secret, code=code)


async def test_authorize_sends_the_installer_back_with_a_code_and_the_state(slack: FakeSlack) -> None:
    url = f"{slack.base_url}/oauth/v2/authorize?client_id={slack.client_id}&scope=chat:write&state=s1&team=T0002"
    async with aiohttp.ClientSession() as session, session.get(url, allow_redirects=False) as resp:
        assert resp.status == 302
        location = resp.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["s1"] and len(query["code"][0]) > 20
    assert slack.authorize_requests[-1]["scope"] == "chat:write"

    elsewhere = f"{slack.base_url}/oauth/v2/authorize?client_id={slack.client_id}&redirect_uri=https://evil.test/"
    async with aiohttp.ClientSession() as session, session.get(elsewhere, allow_redirects=False) as resp:
        assert resp.status == 400 and "bad_redirect_uri" in await resp.text()


async def test_a_code_buys_that_workspaces_own_token_once(slack: FakeSlack, oauth: AsyncWebClient) -> None:
    access = await exchange(slack, oauth, "T0002")

    assert access["token_type"] == "bot" and access["access_token"].startswith("xoxb-")
    assert access["team"] == {"id": "T0002", "name": "Second"} and access["enterprise"] is None
    assert access["bot_user_id"] == "UBOT0002" and access["is_enterprise_install"] is False
    assert access["authed_user"]["id"] == slack.installer_user_id and "chat:write" in access["scope"]
    assert "refresh_token" not in access and "expires_in" not in access
    (call,) = slack.calls_to("oauth.v2.access")
    assert call.params["client_id"] == slack.client_id and call.token is None

    me = await AsyncWebClient(token=access["access_token"], base_url=slack.api_url).auth_test()
    assert (me["team_id"], me["user_id"], me["bot_id"]) == ("T0002", "UBOT0002", "BBOT0002")
    assert slack.workspace_of_token(access["access_token"]) == "T0002"

    code = slack.grant_code("T0002")
    await oauth.oauth_v2_access(client_id=slack.client_id, client_secret=slack.client_secret, code=code)
    again = oauth.oauth_v2_access(client_id=slack.client_id, client_secret=slack.client_secret, code=code)
    assert await api_error(again) == "invalid_code"


async def test_the_client_credentials_are_checked(slack: FakeSlack, oauth: AsyncWebClient) -> None:
    code = slack.grant_code("T0002")
    wrong_secret = oauth.oauth_v2_access(client_id=slack.client_id, client_secret="nope", code=code)
    assert await api_error(wrong_secret) == "bad_client_secret"
    wrong_id = oauth.oauth_v2_access(client_id="9.9", client_secret=slack.client_secret, code=code)
    assert await api_error(wrong_id) == "invalid_client_id"
    as_form = await oauth.api_call(
        "oauth.v2.access", data={"client_id": slack.client_id, "client_secret": slack.client_secret, "code": code}
    )
    assert as_form["ok"], "the code survives refused attempts"


async def test_a_token_reaches_its_own_workspaces_channels_only(slack: FakeSlack, oauth: AsyncWebClient) -> None:
    second = AsyncWebClient(token=(await exchange(slack, oauth, "T0002"))["access_token"], base_url=slack.api_url)
    first = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)

    assert (await second.chat_postMessage(channel="C0TWO", text="hi"))["message"]["user"] == "UBOT0002"
    assert await api_error(second.chat_postMessage(channel="C0ONE", text="hi")) == "channel_not_found"
    assert await api_error(first.chat_postMessage(channel="C0TWO", text="hi")) == "channel_not_found"

    slack.uninstall("T0002")
    assert await api_error(second.auth_test()) == "token_revoked"
    assert (await first.auth_test())["team_id"] == "T0001"


async def test_rotating_tokens_expire_and_refresh_once_per_refresh_token(
    slack: FakeSlack, oauth: AsyncWebClient
) -> None:
    slack.token_rotation = True
    access = await exchange(slack, oauth, "T0002")
    assert access["access_token"].startswith("xoxe.xoxb-") and access["refresh_token"].startswith("xoxe-1-")
    assert access["expires_in"] == 43_200
    bot = AsyncWebClient(token=access["access_token"], base_url=slack.api_url)
    assert (await bot.auth_test())["team_id"] == "T0002"

    slack.expire_tokens("T0002")
    assert await api_error(bot.auth_test()) == "token_expired"
    refreshed = await oauth.oauth_v2_access(
        client_id=slack.client_id,
        client_secret=slack.client_secret,
        grant_type="refresh_token",
        refresh_token=access["refresh_token"],
    )
    assert refreshed["token_type"] == "bot" and refreshed["refresh_token"] != access["refresh_token"]
    assert refreshed["team"]["id"] == "T0002"
    fresh = AsyncWebClient(token=refreshed["access_token"], base_url=slack.api_url)
    assert (await fresh.auth_test())["user_id"] == "UBOT0002"
    reused = oauth.oauth_v2_access(
        client_id=slack.client_id,
        client_secret=slack.client_secret,
        grant_type="refresh_token",
        refresh_token=access["refresh_token"],
    )
    assert await api_error(reused) == "invalid_refresh_token"


async def test_an_org_wide_install_reaches_every_workspace_of_the_org(slack: FakeSlack, oauth: AsyncWebClient) -> None:
    slack.add_workspace("T0003", enterprise_id="E0001")
    slack.add_workspace("T0004", enterprise_id="E0001")

    access = await exchange(slack, oauth, "E0001")

    assert access["team"] is None and access["enterprise"]["id"] == "E0001" and access["is_enterprise_install"]
    # One bot user for the whole org, invited to a channel in each of its workspaces.
    slack.add_channel("C0THREE", name="three", team_id="T0003", members=[access["bot_user_id"]])
    slack.add_channel("C0FOUR", name="four", team_id="T0004", members=[access["bot_user_id"]])
    org = AsyncWebClient(token=access["access_token"], base_url=slack.api_url)
    await org.chat_postMessage(channel="C0THREE", text="hi")
    await org.chat_postMessage(channel="C0FOUR", text="hi")
    assert await api_error(org.chat_postMessage(channel="C0TWO", text="hi")) == "channel_not_found"
    me = await org.auth_test()
    assert me["is_enterprise_install"] is True and me["enterprise_id"] == "E0001"


async def test_exchange_turns_a_legacy_token_into_a_rotating_one(slack: FakeSlack, oauth: AsyncWebClient) -> None:
    refused = oauth.oauth_v2_exchange(
        token=slack.bot_token, client_id=slack.client_id, client_secret=slack.client_secret
    )
    assert await api_error(refused) == "token_rotation_not_enabled"
    slack.token_rotation = True
    exchanged = await oauth.oauth_v2_exchange(
        token=slack.bot_token, client_id=slack.client_id, client_secret=slack.client_secret
    )
    assert exchanged["access_token"].startswith("xoxe.xoxb-") and exchanged["refresh_token"]
    again = oauth.oauth_v2_exchange(token=slack.bot_token, client_id=slack.client_id, client_secret=slack.client_secret)
    assert await api_error(again) == "token_already_exchanged"
