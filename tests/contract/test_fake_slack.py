"""Self-tests of the fake Slack (tests/fakes/slack_api.py) and the request builders/sender
(tests/fakes/slack_requests.py), driven by the REAL slack_sdk / slack_bolt clients.

If slack_sdk or Bolt change their wire format, these fail before any end-to-end test does.
"""

from __future__ import annotations

import asyncio
import json
import struct
import time
import types
import zlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp, AsyncAssistant
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import builtin_async_handlers
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from tests.fakes import slack_requests as sr
from tests.fakes.slack_api import METHODS_DIR, FakeSlack

SECRET = "test-signing-secret"


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)


async def api_error(coro: Any) -> SlackApiError:
    with pytest.raises(SlackApiError) as info:
        await coro
    return info.value


def png(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


# ------------------------------------------------------------------------------------------ basics


async def test_vendored_method_files_present() -> None:
    names = {p.stem for p in METHODS_DIR.glob("*.json")}
    expected = {
        "auth.test",
        "chat.postMessage",
        "chat.update",
        "chat.postEphemeral",
        "chat.delete",
        "chat.getPermalink",
        "conversations.info",
        "conversations.replies",
        "conversations.history",
        "conversations.members",
        "users.info",
        "users.conversations",
        "files.info",
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
        "team.info",
        "reactions.add",
        "reactions.remove",
        "views.open",
        "views.publish",
        "apps.connections.open",
        "assistant.threads.setStatus",
        "assistant.threads.setSuggestedPrompts",
        "assistant.threads.setTitle",
        "chat.startStream",
        "chat.appendStream",
        "chat.stopStream",
    }
    assert expected <= names
    for name in names:  # every vendored method has a handler in the fake
        assert hasattr(FakeSlack, "_m_" + name.replace(".", "_")), name
    assert (METHODS_DIR.parent / "LICENSE.md").is_file()
    assert (METHODS_DIR.parent / "README.md").is_file()


async def test_auth_test_and_auth_errors(slack: FakeSlack, client: AsyncWebClient) -> None:
    assert slack.base_url.startswith("http://127.0.0.1:")
    assert slack.api_url == slack.base_url + "/api/"
    resp = await client.auth_test()
    assert resp.status_code == 200
    assert resp["user_id"] == "UBOT" and resp["bot_id"] == "BBOT" and resp["team_id"] == "T0001"
    assert resp["is_enterprise_install"] is False
    assert "chat:write" in resp.headers["x-oauth-scopes"]

    bad = AsyncWebClient(token="xoxb-wrong", base_url=slack.api_url)
    assert (await api_error(bad.auth_test())).response["error"] == "invalid_auth"
    none = AsyncWebClient(base_url=slack.api_url)
    assert (await api_error(none.auth_test())).response["error"] == "not_authed"
    app_token = AsyncWebClient(token=slack.app_token, base_url=slack.api_url)
    assert (await api_error(app_token.chat_postMessage(channel="C1", text="x"))).response[
        "error"
    ] == "not_allowed_token_type"
    # the token may also come as a form parameter
    form = await AsyncWebClient(base_url=slack.api_url).api_call("auth.test", data={"token": slack.bot_token})
    assert form["ok"] is True
    assert [c.token for c in slack.calls_to("auth.test")] == [
        slack.bot_token,
        "xoxb-wrong",
        None,
        slack.bot_token,
    ]
    assert all(c.http_method == "POST" for c in slack.calls)


async def test_unknown_method_and_missing_arguments(slack: FakeSlack, client: AsyncWebClient) -> None:
    err = await api_error(client.api_call("chat.fooBar", params={"x": "1"}))
    assert err.response.status_code == 200
    assert err.response["error"] == "unknown_method"

    err = await api_error(client.api_call("users.info", http_verb="GET", params={}))
    assert err.response["error"] == "invalid_arguments"
    assert err.response["response_metadata"]["messages"] == ["[ERROR] missing required field: user"]
    err = await api_error(client.api_call("chat.update", json={"channel": "C1", "text": "x"}))
    assert err.response["response_metadata"]["messages"] == ["[ERROR] missing required field: ts"]
    # JSON bodies are ignored by methods without JSON input support (users.info reads query/form only)
    err = await api_error(client.api_call("users.info", json={"user": "UBOT"}))
    assert err.response["error"] == "invalid_arguments"
    assert slack.calls[-1].params == {"user": "UBOT"}  # but the call records what was sent
    # better errors where the method documents one
    assert (await api_error(client.api_call("chat.postMessage", json={"text": "x"}))).response[
        "error"
    ] == "channel_not_found"
    err = await api_error(client.api_call("chat.postMessage", json={"channel": "C1", "text": ""}))
    assert err.response["error"] == "no_text"
    assert [c.ok for c in slack.calls] == [False] * 6


# ------------------------------------------------------------------------------------------ messages


async def test_post_update_delete_roundtrip(slack: FakeSlack, client: AsyncWebClient) -> None:
    first = await client.chat_postMessage(channel="C0GENERAL", text="hello", team_id="T0001")
    second = await client.chat_postMessage(channel="C0GENERAL", text="in thread", thread_ts=first["ts"])
    assert first["channel"] == "C0GENERAL"
    assert first["message"]["user"] == "UBOT" and first["message"]["bot_id"] == "BBOT"
    assert first["message"]["type"] == "message" and first["message"]["text"] == "hello"
    assert second["message"]["thread_ts"] == first["ts"]
    assert float(second["ts"]) > float(first["ts"])
    assert len(first["ts"].split(".")[1]) == 6
    call = slack.calls_to("chat.postMessage")[0]
    assert call.params == {"channel": "C0GENERAL", "text": "hello", "team_id": "T0001"}

    upd = await client.chat_update(channel="C0GENERAL", ts=first["ts"], text="hello again")
    assert upd["ts"] == first["ts"] and upd["text"] == "hello again" and upd["message"]["text"] == "hello again"
    msg = slack.message("C0GENERAL", first["ts"])
    assert msg.edits == ["hello", "hello again"] and msg.text == "hello again" and msg.user == "UBOT"
    assert [m.text for m in slack.messages_in("C0GENERAL")] == ["hello again", "in thread"]
    assert [m.ts for m in slack.messages_in("C0GENERAL", first["ts"])] == [first["ts"], second["ts"]]

    assert (await api_error(client.chat_update(channel="C0GENERAL", ts="1.000001", text="x"))).response[
        "error"
    ] == "message_not_found"
    slack.add_history("C0GENERAL", [{"ts": "1690000000.000100", "user": "U0USER", "text": "theirs"}])
    assert (await api_error(client.chat_update(channel="C0GENERAL", ts="1690000000.000100", text="x"))).response[
        "error"
    ] == "cant_update_message"

    deleted = await client.chat_delete(channel="C0GENERAL", ts=second["ts"])
    assert deleted["ts"] == second["ts"]
    assert slack.message("C0GENERAL", second["ts"]).deleted
    assert [m.ts for m in slack.messages_in("C0GENERAL")] == [first["ts"]]
    assert (await api_error(client.chat_delete(channel="C0GENERAL", ts=second["ts"]))).response[
        "error"
    ] == "message_not_found"


async def test_text_and_block_limits(client: AsyncWebClient, slack: FakeSlack) -> None:
    await client.chat_postMessage(channel="C1", text="x" * 4000)
    assert (await api_error(client.chat_postMessage(channel="C1", text="x" * 4001))).response["error"] == "msg_too_long"
    posted = await client.chat_postMessage(channel="C1", text="ok")
    assert (await api_error(client.chat_update(channel="C1", ts=posted["ts"], text="y" * 4001))).response[
        "error"
    ] == "msg_too_long"
    assert (await api_error(client.chat_postEphemeral(channel="C1", user="U1", text="y" * 4001))).response[
        "error"
    ] == "msg_too_long"

    md = await client.chat_postMessage(channel="C1", markdown_text="**bold**")
    assert slack.message("C1", md["ts"]).text == "**bold**"
    assert (await api_error(client.chat_postMessage(channel="C1", markdown_text="**b**", text="b"))).response[
        "error"
    ] == "markdown_text_conflict"
    assert (
        await api_error(
            client.chat_postMessage(
                channel="C1",
                markdown_text="m",
                blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "s"}}],
            )
        )
    ).response["error"] == "markdown_text_conflict"
    assert (await api_error(client.chat_postMessage(channel="C1", markdown_text="m" * 12001))).response[
        "error"
    ] == "msg_too_long"

    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "s" * 3001}}]
    err = await api_error(client.chat_postMessage(channel="C1", text="t", blocks=blocks))
    assert err.response["error"] == "invalid_blocks"
    assert "json-pointer:/blocks/0/text/text" in err.response["response_metadata"]["messages"][0]
    too_many = [{"type": "divider"}] * 51
    assert (await api_error(client.chat_postMessage(channel="C1", text="t", blocks=too_many))).response[
        "error"
    ] == "invalid_blocks"
    md_blocks = [{"type": "markdown", "text": "a" * 7000}, {"type": "markdown", "text": "b" * 6000}]
    assert (await api_error(client.chat_postMessage(channel="C1", text="t", blocks=md_blocks))).response[
        "error"
    ] == "msg_blocks_too_long"
    ok_blocks = [{"type": "markdown", "text": "a" * 12000}]
    resp = await client.chat_postMessage(channel="C1", text="fallback", blocks=ok_blocks)
    assert slack.message("C1", resp["ts"]).blocks == ok_blocks
    # form-encoded blocks (a JSON string) are accepted too, and recorded as given
    resp = await client.api_call(
        "chat.postMessage", data={"channel": "C1", "blocks": json.dumps([{"type": "divider"}])}
    )
    assert slack.message("C1", resp["ts"]).blocks == [{"type": "divider"}]
    assert slack.calls[-1].params["blocks"] == '[{"type": "divider"}]'


async def test_channel_registry_rules(slack: FakeSlack, client: AsyncWebClient) -> None:
    await client.chat_postMessage(channel="CANYTHING", text="accepted while no channel is registered")
    slack.add_channel("C0GENERAL", name="general", topic="chat")
    slack.add_channel("C0OUT", name="outside", members=["U1"])
    slack.add_channel("G0PRIV", name="secret", is_private=True, members=["U1"])
    await client.chat_postMessage(channel="C0GENERAL", text="member")
    await client.chat_postMessage(channel="D0DM", text="DMs are always accepted")
    assert (await api_error(client.chat_postMessage(channel="CUNKNOWN", text="x"))).response[
        "error"
    ] == "channel_not_found"
    assert (await api_error(client.chat_postMessage(channel="C0OUT", text="x"))).response["error"] == "not_in_channel"
    assert (await api_error(client.chat_postMessage(channel="G0PRIV", text="x"))).response[
        "error"
    ] == "channel_not_found"

    info = await client.conversations_info(channel="C0GENERAL", include_num_members=True)
    assert info["channel"]["name"] == "general" and info["channel"]["is_member"] is True
    assert info["channel"]["topic"]["value"] == "chat" and info["channel"]["num_members"] == 1
    im = await client.conversations_info(channel="D0UNREGISTERED")
    assert im["channel"]["is_im"] is True
    assert (await api_error(client.conversations_info(channel="CUNKNOWN"))).response["error"] == "channel_not_found"
    assert (await client.conversations_members(channel="C0OUT"))["members"] == ["U1"]
    convs = await client.users_conversations(types="public_channel,private_channel")
    assert [c["id"] for c in convs["channels"]] == ["C0GENERAL"]


async def test_ephemeral(slack: FakeSlack, client: AsyncWebClient) -> None:
    resp = await client.chat_postEphemeral(channel="C1", user="U1", text="only you")
    assert resp["message_ts"]
    slack.add_channel("C2", name="two", members=["UBOT", "U1"])
    assert (await api_error(client.chat_postEphemeral(channel="C2", user="U9", text="x"))).response[
        "error"
    ] == "user_not_in_channel"
    assert [c.params["text"] for c in slack.ephemerals] == ["only you"]
    assert slack.messages_in("C1") == []


# ------------------------------------------------------------------------------------------ failures


async def test_fail_next_and_retry_handler(
    slack: FakeSlack, client: AsyncWebClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    slack.fail_next("chat.update", "ratelimited", status=429, retry_after=7)
    posted = await client.chat_postMessage(channel="C1", text="a")
    err = await api_error(client.chat_update(channel="C1", ts=posted["ts"], text="b"))
    assert err.response.status_code == 429 and err.response["error"] == "ratelimited"
    assert err.response.headers["Retry-After"] == "7"
    assert slack.rate_limited_count == 1
    slack.fail_next("chat.postMessage", "internal_error", times=2)
    for _ in range(2):
        assert (await api_error(client.chat_postMessage(channel="C1", text="a"))).response["error"] == "internal_error"
    await client.chat_postMessage(channel="C1", text="third time lucky")

    # slack_sdk's own 429 handler retries after Retry-After (+ random jitter, zeroed here)
    monkeypatch.setattr(builtin_async_handlers, "random", types.SimpleNamespace(random=lambda: 0.0))
    client.retry_handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=1))
    slack.fail_next("chat.postMessage", "ratelimited", status=429, retry_after=0)
    resp = await client.chat_postMessage(channel="C1", text="after retry")
    assert resp["ok"] is True
    assert [c.status for c in slack.calls_to("chat.postMessage")][-2:] == [429, 200]
    assert slack.rate_limited_count == 2


async def test_enforced_rate_limit_is_per_team(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.enforce_rate_limit("chat.update", per_minute=2)
    posted = await client.chat_postMessage(channel="C1", text="a")
    for i in range(2):
        await client.chat_update(channel="C1", ts=posted["ts"], text=f"edit {i}")
    err = await api_error(client.chat_update(channel="C1", ts=posted["ts"], text="too fast"))
    assert err.response.status_code == 429 and err.response["error"] == "ratelimited"
    retry_after = err.response.headers["Retry-After"]
    assert retry_after.isdigit() and 1 <= int(retry_after) <= 60
    # another workspace (team_id param, as Bolt's per-request client sends) has its own budget
    await client.chat_update(channel="C1", ts=posted["ts"], text="other team", team_id="T0002")
    assert slack.rate_limited_count == 1
    assert slack.message("C1", posted["ts"]).edits == ["a", "edit 0", "edit 1", "other team"]

    slack.enforce_rate_limit("reactions.add", per_minute=1, window=0.2)
    await client.reactions_add(channel="C1", timestamp=posted["ts"], name="eyes")
    assert (
        await api_error(client.reactions_add(channel="C1", timestamp=posted["ts"], name="x"))
    ).response.status_code == 429
    await asyncio.sleep(0.25)
    await client.reactions_add(channel="C1", timestamp=posted["ts"], name="white_check_mark")


async def test_tier_3_allows_fifty_edits_a_minute_per_workspace_in_a_burst(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    slack.enforce_tier("chat.update", 3)
    posted = await client.chat_postMessage(channel="C1", text="a")
    edits = [client.chat_update(channel="C1", ts=posted["ts"], text=f"edit {i}", team_id="T1") for i in range(50)]
    await asyncio.gather(*edits)  # bursts are allowed
    err = await api_error(client.chat_update(channel="C1", ts=posted["ts"], text="51st", team_id="T1"))
    assert err.response.status_code == 429
    await client.chat_update(channel="C1", ts=posted["ts"], text="another workspace", team_id="T2")
    assert slack.rate_limited_count == 1
    with pytest.raises(ValueError, match="tiers"):
        slack.enforce_tier("chat.update", 5)


async def test_call_listeners_see_every_call_as_it_is_answered(slack: FakeSlack, client: AsyncWebClient) -> None:
    seen: list[str] = []
    slack.call_listeners.append(lambda call: seen.append(f"{call.method}:{call.error or 'ok'}"))
    slack.latency_s = 0.01  # a Slack round trip: the call still lands and is answered as before
    await client.chat_postMessage(channel="C1", text="hi")
    await api_error(client.chat_update(channel="C1", ts="1.0", text="x"))
    assert seen == ["chat.postMessage:ok", "chat.update:message_not_found"]


async def test_wait_for(slack: FakeSlack, client: AsyncWebClient) -> None:
    async def later() -> None:
        await asyncio.sleep(0.05)
        await client.chat_postMessage(channel="C1", text="one")
        await client.chat_postMessage(channel="C1", text="two")

    task = asyncio.create_task(later())
    calls = await slack.wait_for("chat.postMessage", 2, timeout=2)
    assert [c.params["text"] for c in calls] == ["one", "two"]
    got = await slack.wait_for("chat.postMessage", where=lambda c: c.params["text"] == "two")
    assert len(got) == 1
    await task
    with pytest.raises(TimeoutError):
        await slack.wait_for("chat.update", timeout=0.05)


# ------------------------------------------------------------------------------------------ reading


async def test_replies_and_history(slack: FakeSlack, client: AsyncWebClient) -> None:
    parent = "1700000000.000100"
    slack.add_history(
        "C1",
        [
            {"ts": parent, "user": "U1", "text": "question"},
            {"ts": "1700000001.000100", "user": "U2", "text": "me too", "thread_ts": parent},
            {"ts": "1700000002.000100", "user": "U1", "text": "top level"},
        ],
    )
    reply = await client.chat_postMessage(
        channel="C1",
        text="answer",
        thread_ts=parent,
        metadata={"event_type": "assistant_thread_context", "event_payload": {"channel_id": "C9"}},
    )
    resp = await client.conversations_replies(channel="C1", ts=parent)
    msgs = resp["messages"]
    assert [m["text"] for m in msgs] == ["question", "me too", "answer"]
    assert msgs[0]["reply_count"] == 2 and msgs[0]["thread_ts"] == parent
    assert msgs[2]["user"] == "UBOT" and msgs[2]["ts"] == reply["ts"] and "metadata" not in msgs[2]
    assert resp["has_more"] is False
    # the call Bolt's assistant thread-context store makes
    bolt_style = await client.conversations_replies(
        channel="C1", ts=parent, oldest=parent, include_all_metadata=True, limit=4
    )
    bot = [m for m in bolt_style["messages"] if m.get("user") == "UBOT" and m.get("subtype") is None]
    assert bot[0]["metadata"]["event_payload"] == {"channel_id": "C9"} and "blocks" in bot[0]
    page1 = await client.conversations_replies(channel="C1", ts=parent, limit=2)
    assert page1["has_more"] is True
    page2 = await client.conversations_replies(
        channel="C1", ts=parent, limit=2, cursor=page1["response_metadata"]["next_cursor"]
    )
    assert [m["text"] for m in page2["messages"]] == ["answer"]
    assert (await api_error(client.conversations_replies(channel="C1", ts="1600000000.000001"))).response[
        "error"
    ] == "thread_not_found"

    hist = await client.conversations_history(channel="C1")
    assert [m["text"] for m in hist["messages"]] == ["top level", "question"]  # newest first, no replies


async def test_observed_events_feed_replies(slack: FakeSlack, client: AsyncWebClient) -> None:
    event = sr.dm_message("hi there")
    slack.observe_event(sr.event_callback(event))
    reply = await client.chat_postMessage(channel="D0DM", text="hello!", thread_ts=event["ts"])
    assert float(reply["ts"]) > float(event["ts"])
    msgs = (await client.conversations_replies(channel="D0DM", ts=event["ts"], oldest=event["ts"]))["messages"]
    assert [m["text"] for m in msgs] == ["hi there", "hello!"]


async def test_users_and_team(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.add_user("U1", name="ada", real_name="Ada Lovelace", display_name="ada", title="Analyst", tz="UTC")
    user = (await client.users_info(user="U1"))["user"]
    assert user["real_name"] == "Ada Lovelace" and user["profile"]["title"] == "Analyst"
    assert user["tz"] == "UTC" and user["tz_offset"] == 0 and user["is_bot"] is False
    bot = (await client.users_info(user="UBOT"))["user"]
    assert bot["is_bot"] is True
    assert (await api_error(client.users_info(user="U404"))).response["error"] == "user_not_found"
    team = (await client.team_info())["team"]
    assert team["id"] == "T0001" and team["domain"]
    assert slack.calls_to("users.info")[0].http_method == "GET"


# ------------------------------------------------------------------------------------------ files


async def test_private_files(slack: FakeSlack, client: AsyncWebClient) -> None:
    f = slack.add_file(png(3, 2), name="dot.png", mimetype="image/png")
    assert f["size"] == len(png(3, 2)) and f["original_w"] == 3 and f["original_h"] == 2
    assert f["filetype"] == "png" and f["url_private_download"].startswith(slack.base_url + "/files-pri/")
    info = await client.files_info(file=f["id"])
    assert info["file"]["url_private"] == f["url_private"]
    assert (await api_error(client.files_info(file="F404"))).response["error"] == "file_not_found"
    text_file = slack.add_file(b"print(1)\n", name="a.py", mimetype="text/x-python")
    assert text_file["filetype"] == "python" and "original_w" not in text_file

    async with aiohttp.ClientSession() as session:
        auth = {"Authorization": f"Bearer {slack.bot_token}"}
        async with session.get(f["url_private_download"], headers=auth) as r:
            assert r.status == 200 and r.content_type == "image/png"
            assert await r.read() == png(3, 2)
        async with session.get(f["url_private"]) as r:
            assert r.status == 200 and r.content_type == "text/html"
        async with session.get(f["url_private"], headers={"Authorization": "Bearer xoxb-other"}) as r:
            assert r.content_type == "text/html"
    assert [(d["served"], d["status"]) for d in slack.file_downloads] == [
        ("file", 200),
        ("sign_in_page", 200),
        ("sign_in_page", 200),
    ]


async def test_upload_v2(slack: FakeSlack, client: AsyncWebClient) -> None:
    resp = await client.files_upload_v2(
        channel="C1",
        content="report body",
        filename="report.md",
        title="Report",
        thread_ts="1700000000.000100",
    )
    assert resp["file"]["id"].startswith("F")
    (upload,) = slack.uploaded_files
    assert upload["content"] == b"report body" and upload["channel_id"] == "C1"
    assert upload["thread_ts"] == "1700000000.000100" and upload["file"]["title"] == "Report"
    assert (await client.files_info(file=resp["file"]["id"]))["file"]["name"] == "report.md"
    err = await api_error(client.files_completeUploadExternal(files=[{"id": "F404", "title": "x"}]))
    assert err.response["error"] == "file_not_found"


# ------------------------------------------------------------------------------------------ misc methods


async def test_reactions_permalink_views(slack: FakeSlack, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel="C1", text="a", thread_ts="1700000000.000100")
    await client.reactions_add(channel="C1", timestamp="1700000000.000100", name="eyes")
    assert (await api_error(client.reactions_add(channel="C1", timestamp="1700000000.000100", name="eyes"))).response[
        "error"
    ] == "already_reacted"
    assert (await api_error(client.reactions_add(channel="C1", timestamp="1700000000.000100", name=":eyes:"))).response[
        "error"
    ] == "invalid_name"
    await client.reactions_remove(channel="C1", timestamp="1700000000.000100", name="eyes")
    assert (
        await api_error(client.reactions_remove(channel="C1", timestamp="1700000000.000100", name="eyes"))
    ).response["error"] == "no_reaction"
    assert slack.reactions[("C1", "1700000000.000100")] == []

    link = await client.chat_getPermalink(channel="C1", message_ts=posted["ts"])
    assert link["permalink"].endswith("?thread_ts=1700000000.000100&cid=C1")

    view = {"type": "modal", "title": {"type": "plain_text", "text": "Persona"}, "blocks": []}
    opened = await client.views_open(trigger_id="123.456.abc", view=view)
    assert opened["view"]["id"].startswith("V") and opened["view"]["type"] == "modal"
    assert (await api_error(client.views_open(trigger_id="123.456.abc", view=view))).response[
        "error"
    ] == "exchanged_trigger_id"
    long_title = {**view, "title": {"type": "plain_text", "text": "x" * 25}}
    err = await api_error(client.views_open(trigger_id="t2", view=long_title))
    assert err.response["error"] == "invalid_arguments"
    home = await client.views_publish(user_id="U1", view={"type": "home", "blocks": []})
    assert home["view"]["type"] == "home"
    assert len(slack.views) == 2


async def test_assistant_threads(slack: FakeSlack, client: AsyncWebClient) -> None:
    await client.assistant_threads_setStatus(
        channel_id="D1", thread_ts="1700000000.000100", status="is thinking...", loading_messages=["Reading"]
    )
    assert slack.assistant_status[("D1", "1700000000.000100")] == "is thinking..."
    await client.assistant_threads_setStatus(channel_id="D1", thread_ts="1700000000.000100", status="")
    assert ("D1", "1700000000.000100") not in slack.assistant_status
    await client.assistant_threads_setStatus(channel_id="D1", thread_ts="1700000000.000100", status="busy")
    await client.chat_postMessage(channel="D1", thread_ts="1700000000.000100", text="done")
    assert slack.assistant_status == {}  # a reply clears the status
    err = await api_error(
        client.assistant_threads_setStatus(
            channel_id="D1", thread_ts="1700000000.000100", status="x", loading_messages=["y" * 51]
        )
    )
    assert err.response["error"] == "invalid_arguments"
    await client.assistant_threads_setSuggestedPrompts(
        channel_id="D1", thread_ts="1700000000.000100", prompts=[{"title": "Hi", "message": "Say hi"}]
    )
    await client.assistant_threads_setTitle(channel_id="D1", thread_ts="1700000000.000100", title="Chat")
    assert slack.assistant_titles[("D1", "1700000000.000100")] == "Chat"


async def test_streaming_with_sdk_helper(slack: FakeSlack, client: AsyncWebClient) -> None:
    with pytest.raises(SlackApiError) as info:
        await client.chat_startStream(channel="C1", thread_ts="1700000000.000100", markdown_text="x")
    assert info.value.response["error"] == "missing_recipient_user_id"

    stream = await client.chat_stream(
        channel="C1",
        thread_ts="1700000000.000100",
        recipient_user_id="U1",
        recipient_team_id="T0001",
        buffer_size=5,
    )
    await stream.append(markdown_text="Hello ")
    await stream.append(markdown_text="world")
    assert stream.ts is not None
    assert slack.message("C1", stream.ts).streaming
    assert (await api_error(client.chat_update(channel="C1", ts=stream.ts, text="x"))).response[
        "error"
    ] == "streaming_state_conflict"
    await stream.stop(markdown_text="!")
    msg = slack.message("C1", stream.ts)
    assert msg.text == "Hello world!" and msg.stream_state == "stopped" and msg.thread_ts == "1700000000.000100"
    assert msg.edits == ["Hello ", "Hello world", "Hello world!"]
    assert [c.method for c in slack.calls if c.method.endswith("Stream")] == [
        "chat.startStream",
        "chat.startStream",
        "chat.appendStream",
        "chat.stopStream",
    ]
    assert (await api_error(client.chat_appendStream(channel="C1", ts=stream.ts, markdown_text="more"))).response[
        "error"
    ] == "message_not_in_streaming_state"

    started = await client.chat_startStream(channel="D1", thread_ts="1700000000.000100", markdown_text="a")
    slack.stop_stream_by_user("D1", started["ts"])
    assert (await api_error(client.chat_appendStream(channel="D1", ts=started["ts"], markdown_text="b"))).response[
        "error"
    ] == "stopped_by_user"
    assert (
        await api_error(client.chat_appendStream(channel="D1", ts=started["ts"], chunks=[{"type": "bogus"}]))
    ).response["error"] in ("invalid_chunks", "stopped_by_user")


async def test_streaming_can_be_refused_and_a_stopped_stream_is_then_edited(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    """A workspace without native streaming refuses all three methods; the edit fallback works on a stopped stream."""
    slack.refuse_streaming("not_allowed")
    for call in (
        client.chat_startStream(channel="D1", thread_ts="1700000000.000100", markdown_text="a"),
        client.chat_appendStream(channel="D1", ts="1700000000.000200", markdown_text="b"),
        client.chat_stopStream(channel="D1", ts="1700000000.000200"),
    ):
        assert (await api_error(call)).response["error"] == "not_allowed"
    slack.refuse_streaming(None)
    started = await client.chat_startStream(channel="D1", thread_ts="1700000000.000100", markdown_text="part")
    await client.chat_stopStream(channel="D1", ts=started["ts"])
    await client.chat_update(channel="D1", ts=started["ts"], text="part and the rest")
    assert slack.message("D1", started["ts"]).text == "part and the rest"


async def test_response_url_with_webhook_client(slack: FakeSlack) -> None:
    url = slack.new_response_url()
    assert url.startswith(slack.base_url)
    hook = AsyncWebhookClient(url)
    resp = await hook.send(text="ephemeral reply", response_type="ephemeral")
    assert resp.status_code == 200
    assert slack.response_url_posts == [{"url": url, "body": {"text": "ephemeral reply", "response_type": "ephemeral"}}]
    for _ in range(4):
        assert (await hook.send(text="again")).status_code == 200
    assert (await hook.send(text="sixth")).status_code == 404  # 5 uses per response_url


# ------------------------------------------------------------------------------------------ socket mode


async def test_socket_mode_client_connects_and_acks(slack: FakeSlack) -> None:
    web_client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    sm = SocketModeClient(app_token=slack.app_token, web_client=web_client, auto_reconnect_enabled=False)
    received: list[SocketModeRequest] = []

    async def listener(client: AsyncBaseSocketModeClient, req: SocketModeRequest) -> None:
        received.append(req)
        if req.type == "events_api":
            await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))

    sm.socket_mode_request_listeners.append(listener)
    try:
        await sm.connect()
        await slack.wait_socket_connected()
        (open_call,) = slack.calls_to("apps.connections.open")
        assert open_call.token == slack.app_token and open_call.response["url"].startswith("ws://127.0.0.1:")
        payload = sr.event_callback(sr.app_mention("hello"))
        ack = await slack.send_socket_envelope("events_api", payload, retry_attempt=1, retry_reason="timeout")
        assert ack == {"envelope_id": received[0].envelope_id}
        assert received[0].payload == payload and received[0].retry_attempt == 1
        assert received[0].retry_reason == "timeout" and received[0].accepts_response_payload is False
        assert slack.socket_acks == [ack]
        # an envelope the client does not ack
        with pytest.raises(TimeoutError):
            await slack.send_socket_envelope("interactive", sr.block_action("noop"), timeout=0.2)
    finally:
        await sm.close()
    # the bot token cannot open a socket
    err = await api_error(web_client.apps_connections_open(app_token=slack.bot_token))
    assert err.response["error"] == "not_allowed_token_type"


async def test_bolt_socket_mode_end_to_end(slack: FakeSlack) -> None:
    app = AsyncApp(client=AsyncWebClient(token=slack.bot_token, base_url=slack.api_url))
    seen_headers: list[Any] = []

    @app.event("app_mention")
    async def on_mention(event: dict[str, Any], say: Any, context: Any, body: dict[str, Any]) -> None:
        await say(text=f"you said: {event['text']}", thread_ts=event["ts"])

    @app.middleware
    async def capture(req: Any, next: Any) -> Any:
        seen_headers.append(req.headers.get("x-slack-retry-num"))
        return await next()

    @app.command("/claude-cost")
    async def cost(ack: Any, respond: Any) -> None:
        await ack("Counting…")
        await respond(text="$0.00")

    handler = AsyncSocketModeHandler(app, slack.app_token)
    try:
        await handler.connect_async()
        await slack.wait_socket_connected()
        event = sr.app_mention("ping")
        ack = await slack.send_socket_envelope("events_api", sr.event_callback(event))
        assert set(ack) == {"envelope_id"}
        (post,) = await slack.wait_for("chat.postMessage")
        assert post.ok and post.params["thread_ts"] == event["ts"] and post.params["team_id"] == "T0001"
        assert slack.messages_in("C0GENERAL", event["ts"])[0].text == "you said: <@UBOT> ping"
        assert slack.calls_to("auth.test")  # Bolt authorized against the fake

        await slack.send_socket_envelope("events_api", sr.event_callback(sr.app_mention("again")), retry_attempt=2)
        assert seen_headers[-1] == ["2"]

        url = slack.new_response_url()
        cmd_ack = await slack.send_socket_envelope("slash_commands", sr.slash_command("/claude-cost", response_url=url))
        assert cmd_ack["payload"] == {"text": "Counting…"}
        for _ in range(100):
            if slack.response_url_posts:
                break
            await asyncio.sleep(0.01)
        assert slack.response_url_posts[0]["body"]["text"] == "$0.00"

        # Slack asks the client to reconnect; it opens a new socket
        await slack.send_socket_disconnect()
        await slack.wait_for("apps.connections.open", 2)
        for _ in range(100):
            if slack.socket_connections == 2 and len(slack._open_sockets()) == 1:
                break
            await asyncio.sleep(0.01)
        assert slack.socket_connections == 2
        ack = await slack.send_socket_envelope("events_api", sr.event_callback(sr.app_mention("after")))
        assert "envelope_id" in ack
    finally:
        await handler.close_async()


async def test_bolt_assistant_flow(slack: FakeSlack) -> None:
    """Bolt's AsyncAssistant (hidden conversations.replies, metadata, status, prompts, say_stream) works."""
    app = AsyncApp(client=AsyncWebClient(token=slack.bot_token, base_url=slack.api_url))
    assistant = AsyncAssistant()
    done = asyncio.Event()

    @assistant.thread_started
    async def started(say: Any, set_suggested_prompts: Any) -> None:
        await say("How can I help?")
        await set_suggested_prompts(prompts=["Review my code"], title="Try")

    @assistant.user_message
    async def user_message(payload: dict[str, Any], set_status: Any, say_stream: Any, get_thread_context: Any) -> None:
        await set_status("is thinking...")
        context = await get_thread_context()
        stream = await say_stream(buffer_size=4)
        await stream.append(markdown_text=f"context channel: {context.channel_id}")
        await stream.stop()
        done.set()

    app.assistant(assistant)
    handler = AsyncSocketModeHandler(app, slack.app_token)
    try:
        await handler.connect_async()
        start = sr.assistant_thread_started(channel="D0DM")
        thread_ts = start["assistant_thread"]["thread_ts"]
        await slack.send_socket_envelope("events_api", sr.event_callback(start))
        (post,) = await slack.wait_for("chat.postMessage")
        assert post.ok and post.params["thread_ts"] == thread_ts
        assert post.params["metadata"]["event_payload"]["channel_id"] == "C0GENERAL"
        await slack.wait_for("assistant.threads.setSuggestedPrompts")

        await slack.send_socket_envelope("events_api", sr.event_callback(sr.dm_message("hi", thread_ts=thread_ts)))
        async with asyncio.timeout(3):
            await done.wait()
        assert [c.ok for c in slack.calls_to("assistant.threads.setStatus")] == [True]
        streamed = slack.messages_in("D0DM", thread_ts)[-1]
        assert streamed.text == "context channel: C0GENERAL" and streamed.stream_state == "stopped"
        assert all(c.ok for c in slack.calls), [(c.method, c.response) for c in slack.calls if not c.ok]
    finally:
        await handler.close_async()


# ------------------------------------------------------------------------------------------ HTTP mode


def test_signature_matches_slack_sdk_verifier() -> None:
    body = json.dumps(sr.event_callback(sr.app_mention("x"))).encode()
    ts = int(time.time())
    sig = sr.sign(SECRET, ts, body)
    verifier = SignatureVerifier(SECRET)
    assert sig == verifier.generate_signature(timestamp=str(ts), body=body)
    assert verifier.is_valid(body=body, timestamp=str(ts), signature=sig)
    assert not verifier.is_valid(body=body, timestamp=str(ts), signature=sr.sign("other", ts, body))


async def test_sender_against_bolt_http_app(slack: FakeSlack) -> None:
    app = AsyncApp(client=AsyncWebClient(token=slack.bot_token, base_url=slack.api_url), signing_secret=SECRET)
    retries: list[Any] = []
    got_files: list[Any] = []

    @app.event("app_mention")
    async def on_mention(event: dict[str, Any], say: Any, request: Any) -> None:
        retries.append(request.headers.get("x-slack-retry-num"))
        await say(text="pong", thread_ts=event.get("thread_ts") or event["ts"])

    @app.event("message")
    async def on_message(event: dict[str, Any]) -> None:
        got_files.append((event.get("subtype"), event.get("channel_type"), event.get("files")))

    @app.command("/claude-review")
    async def review(ack: Any, command: dict[str, Any], respond: Any) -> None:
        await ack(f"Reviewing {command['text']}")
        await respond(text="looks fine")

    @app.action("approve")
    async def approve(ack: Any, body: dict[str, Any]) -> None:
        await ack()

    runner = web.AppRunner(app.web_app(path="/slack/events"), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    sender = sr.SlackRequestSender(f"http://127.0.0.1:{port}/slack/events", SECRET, fake_slack=slack)
    try:
        mention = sr.app_mention("ping", thread_ts="1700000000.000100")
        assert mention["text"] == "<@UBOT> ping" and mention["type"] == "app_mention"
        assert sr.app_mention("<@UBOT> hi")["text"] == "<@UBOT> hi"
        payload = sr.event_callback(mention)
        assert payload["event_id"].startswith("Ev") and payload["authorizations"][0]["user_id"] == "UBOT"
        assert (await sender.send_event(payload))[0] == 200
        (post,) = await slack.wait_for("chat.postMessage")
        assert post.params["thread_ts"] == "1700000000.000100"
        assert (await sender.send_event(payload, retry_num=1))[0] == 200
        await slack.wait_for("chat.postMessage", 2)
        assert retries == [None, ["1"]]
        assert sender.sent[1]["headers"]["X-Slack-Retry-Reason"] == "http_timeout"

        status, text = await sender.send_event(payload, signature="v0=" + "0" * 64)
        assert status == 401
        status, _ = await sender.send_event(payload, timestamp=int(time.time()) - 600)
        assert status == 401

        f = slack.add_file(b"data", name="a.txt", mimetype="text/plain")
        assert (await sender.send_event(sr.event_callback(sr.dm_message("see file", files=[f]))))[0] == 200
        for _ in range(100):
            if got_files:
                break
            await asyncio.sleep(0.01)
        assert got_files[0][0] == "file_share" and got_files[0][1] == "im" and got_files[0][2][0]["id"] == f["id"]

        url = slack.new_response_url()
        form = sr.slash_command("/claude-review", "main.py", response_url=url)
        assert set(form) >= {
            "command",
            "text",
            "user_id",
            "channel_id",
            "team_id",
            "response_url",
            "trigger_id",
        }
        status, text = await sender.send_command(form)
        assert status == 200 and text == "Reviewing main.py"
        for _ in range(100):
            if slack.response_url_posts:
                break
            await asyncio.sleep(0.01)
        assert slack.response_url_posts[0]["body"]["text"] == "looks fine"

        status, _ = await sender.send_interaction(sr.block_action("approve", value="yes", message_ts="1.000100"))
        assert status == 200
    finally:
        await sender.close()
        await runner.cleanup()


async def test_enforce_slack_limits_applies_each_methods_tier_and_the_posting_limits() -> None:
    async with FakeSlack() as slack:
        slack.enforce_slack_limits(workspace_posts_per_minute=7)
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        for n in range(5):  # five posts in one channel at once: a short burst is allowed
            await client.chat_postMessage(channel="C0ONE", text=f"m{n}")
        with pytest.raises(SlackApiError) as refused:
            await client.chat_postMessage(channel="C0ONE", text="one too many")
        assert refused.value.response.status_code == 429
        await client.chat_postMessage(channel="C0TWO", text="another channel")
        await client.chat_postMessage(channel="C0TWO", text="still fine")
        with pytest.raises(SlackApiError):  # the workspace's ceiling (7 here), whatever the channel
            await client.chat_postMessage(channel="C0THREE", text="over the ceiling")
        assert slack.rate_limited["chat.postMessage"] == 2
        await client.chat_postMessage(channel="C0TWO", text="x", team_id="T0OTHER")  # another workspace's budget
        assert slack._limits["chat.startStream"] == {False: (20, 60.0)}  # Tier 2
        assert slack._limits["chat.update"] == {False: (50, 60.0)}


async def test_random_429s_answer_a_share_of_calls_with_retry_after(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.random_429s(1.0, retry_after=3)
    await client.auth_test()  # spared: a bot must be able to start
    err = await api_error(client.chat_postMessage(channel="C1", text="a"))
    assert err.response.status_code == 429 and err.response["error"] == "ratelimited"
    assert err.response.headers["Retry-After"] == "3"
    assert slack.random_429_count == {"chat.postMessage": 1} and slack.rate_limited_count == 1
    slack.random_429s(0.5, seed=1)
    outcomes = []
    for _ in range(40):
        try:
            await client.chat_postMessage(channel="C1", text="b")
            outcomes.append(200)
        except SlackApiError as error:
            outcomes.append(error.response.status_code)
    assert 8 <= outcomes.count(429) <= 32 and 8 <= outcomes.count(200) <= 32
    slack.random_429s(0)
    await client.chat_postMessage(channel="C1", text="c")
