"""The public HTTP surface against strangers: forged, unsigned, oversized and malformed requests, a forged
response_url, /metrics kept apart, and the install page's caps. Everything drives the real aiohttp app and Bolt."""

from __future__ import annotations

import io
import json
import logging
import time
from typing import Any

import aiohttp
import pytest

from bot.server import SLACK_PATH, Service
from tests.e2e.conftest import BotFactory, RunningBot
from tests.e2e.helpers import eventually, response_at, settle, wait_for_reply
from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import SlackRequestSender, app_mention, event_callback, sign, slash_command

# The string main's Socket Mode app verified against: anyone could sign with it.
OLD_PLACEHOLDER = "unused-in-socket-mode"


async def post(url: str, body: bytes, *, content_type: str = "application/json", **headers: str) -> tuple[int, str]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=body, headers={"Content-Type": content_type, **headers}) as response,
    ):
        return response.status, await response.text()


def signed_headers(secret: str, body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": sign(secret, ts, body)}


async def test_socket_mode_without_a_signing_secret_serves_no_slack_route(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await start_bot(slack_app_token="xapp-1-test", slack_signing_secret=None)
    body = json.dumps(event_callback(app_mention("forged", ts="1700000900.000100"))).encode()

    status, _ = await post(running.url + SLACK_PATH, body, **signed_headers(OLD_PLACEHOLDER, body))

    assert status == 404
    await settle()
    assert claude.requests == [] and slack.calls_to("chat.postMessage") == []
    async with aiohttp.ClientSession() as http, http.get(running.url + "/healthz") as response:
        assert response.status == 200  # the health check stays


async def test_the_socket_mode_service_answers_over_the_socket_and_serves_no_http_intake(
    settings_for: Any, slack: FakeSlack
) -> None:
    service = Service(settings_for(slack_app_token=slack.app_token, slack_signing_secret=None))
    await service.start()
    try:
        await slack.wait_socket_connected()
        body = json.dumps(event_callback(app_mention("forged", ts="1700000904.000100"))).encode()
        assert (await post(service.url + SLACK_PATH, body, **signed_headers(OLD_PLACEHOLDER, body)))[0] == 404
        ts = "1700000904.000200"
        await slack.send_socket_envelope("events_api", event_callback(app_mention("over the socket", ts=ts)))
        await wait_for_reply(slack, "C0GENERAL", ts, "OK")
        trap = slack.new_response_url().replace("127.0.0.1", "localhost")
        await slack.send_socket_envelope("slash_commands", slash_command("/claude-cost", "me", response_url=trap))
        await settle()
        assert slack.response_url_posts == [], "a response_url off Slack's host is refused in Socket Mode too"
    finally:
        await service.shutdown()


async def test_socket_mode_with_a_real_signing_secret_verifies_against_it(
    start_bot: BotFactory, slack: FakeSlack
) -> None:
    running = await start_bot(slack_app_token="xapp-1-test")  # the fixture's real SLACK_SIGNING_SECRET
    body = json.dumps(event_callback(app_mention("forged", ts="1700000901.000100"))).encode()
    assert (await post(running.url + SLACK_PATH, body, **signed_headers(OLD_PLACEHOLDER, body)))[0] == 401
    ts = "1700000901.000200"
    status, _ = await running.sender.send_event(event_callback(app_mention("real", ts=ts)))
    assert status == 200
    await wait_for_reply(slack, "C0GENERAL", ts, "OK")


async def test_a_response_url_off_slacks_hooks_host_is_never_posted_to(start_bot: BotFactory, slack: FakeSlack) -> None:
    slack.add_user("U0ADMIN", name="boss", is_admin=True)
    running = await start_bot()
    # A loopback trap under another host name: were the bot to post there, the fake would record it.
    trap = slack.new_response_url().replace("127.0.0.1", "localhost")

    status, _ = await running.sender.send_command(
        slash_command("/claude-cost", "30d", user_id="U0ADMIN", response_url=trap)
    )

    assert status == 400
    await settle()
    assert slack.response_url_posts == []
    genuine = slack.new_response_url()
    await running.sender.send_command(slash_command("/claude-cost", "30d", user_id="U0ADMIN", response_url=genuine))
    assert "Claude usage" in str(await response_at(slack, genuine, "the genuine report"))


async def test_unsigned_and_malformed_requests_get_4xx_one_line_each_and_never_a_traceback(
    running: RunningBot, caplog: pytest.LogCaptureFixture
) -> None:
    url, secret = running.url + SLACK_PATH, running.sender.signing_secret
    form = "application/x-www-form-urlencoded"
    bodies: list[tuple[bytes, str]] = [
        (b'{"type": "event_callback", "event": ', "application/json"),
        (b'[{"type": "event_callback"}]', "application/json"),
        (b"payload=%7Bnot-json", form),
        (b"payload=%5B1%2C2%5D", form),
        (b'{"type": "\xff\xfe"}', "application/json"),
        (b"\xff\xfe\xfd", form),
    ]
    caplog.set_level(logging.INFO)
    for body, content_type in bodies:
        assert (await post(url, body, content_type=content_type))[0] == 401, body
        signed = await post(url, body, content_type=content_type, **signed_headers(secret, body))
        assert signed[0] == 400, body
    assert not [r for r in caplog.records if r.exc_info], "no traceback for bad input"
    assert len([r for r in caplog.records if "rejected" in r.getMessage()]) == 2 * len(bodies)


async def test_bodies_over_the_cap_get_413_without_being_read(running: RunningBot) -> None:
    huge = b'{"type": "event_callback", "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    headers = {"Content-Type": "application/json", **signed_headers(running.sender.signing_secret, huge)}
    async with (
        aiohttp.ClientSession() as http,
        http.post(running.url + SLACK_PATH, data=io.BytesIO(huge), headers=headers) as response,
    ):
        assert response.status == 413

    async def chunks() -> Any:  # no Content-Length: the read itself must stop at the cap
        for _ in range(40):
            yield b"x" * 65536

    async with aiohttp.ClientSession() as http, http.post(running.url + SLACK_PATH, data=chunks()) as response:
        assert response.status == 413


async def test_replayed_and_forged_signatures_are_refused(running: RunningBot, claude: FakeAnthropic) -> None:
    payload = event_callback(app_mention("hello", ts="1700000902.000100"))
    stale = int(time.time()) - 6 * 60
    assert (await running.sender.send_event(payload, timestamp=stale))[0] == 401
    assert (await running.sender.send_event(payload, signature="v0=" + "0" * 64))[0] == 401
    assert (await running.sender.send_event(payload, signature="v0=\u00e9"))[0] == 401
    await settle()
    assert claude.requests == []


async def test_metrics_live_on_their_own_loopback_port_not_on_slacks(settings_for: Any) -> None:
    service = Service(settings_for())
    await service.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(service.url + "/metrics") as response:
                assert response.status == 404
            async with http.get(service.metrics_url + "/metrics") as response:
                assert response.status == 200 and "claudebot_" in await response.text()
        assert service.metrics_url.startswith("http://127.0.0.1:")
    finally:
        await service.shutdown()


async def test_junk_requests_never_add_metric_labels(running: RunningBot) -> None:
    url = running.url + SLACK_PATH
    for i in range(50):
        body = json.dumps({"type": f"junk-{i}", "event": {"type": f"evil-{i}"}}).encode()
        assert (await post(url, body))[0] == 401
    signed = json.dumps({"type": "event_callback", "event": {"type": "made_up_kind"}, "team_id": "T0001"}).encode()
    await post(url, signed, **signed_headers(running.sender.signing_secret, signed))
    async with aiohttp.ClientSession() as http, http.get(running.metrics_url + "/metrics") as response:
        text = await response.text()
    assert "junk-" not in text and "evil-" not in text and "made_up_kind" not in text
    assert 'claudebot_slack_events_total{kind="rejected",outcome="bad_signature"} 50.0' in text


async def test_install_visits_are_capped_per_client_address_and_x_forwarded_for_needs_a_trusted_proxy(
    start_bot: BotFactory, slack: FakeSlack
) -> None:
    oauth = {"slack_bot_token": None, "slack_client_id": slack.client_id, "slack_client_secret": slack.client_secret}
    running = await start_bot(**oauth, install_rate_per_minute=2)

    async def visit(target: RunningBot, forwarded_for: str | None = None) -> tuple[int, str]:
        headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{target.url}/slack/install", headers=headers, allow_redirects=False) as response,
        ):
            return response.status, await response.text()

    assert [(await visit(running, f"198.51.100.{i}"))[0] for i in range(3)] == [302, 302, 429]  # XFF ignored
    status, text = await visit(running)
    assert status == 429 and "try again" in text and len(text) < 200

    proxied = await start_bot(**oauth, install_rate_per_minute=2, trusted_proxies="127.0.0.1")
    statuses = [(await visit(proxied, f"203.0.113.7, 198.51.100.{i}"))[0] for i in range(4)]
    assert statuses == [302, 302, 302, 302], "each forwarded client has its own allowance behind a trusted proxy"
    assert [(await visit(proxied, "198.51.100.1"))[0] for _ in range(2)] == [302, 429]  # its 2nd and 3rd visits


async def test_live_install_states_are_capped(start_bot: BotFactory, slack: FakeSlack) -> None:
    oauth = {"slack_bot_token": None, "slack_client_id": slack.client_id, "slack_client_secret": slack.client_secret}
    running = await start_bot(**oauth, install_max_states=2)
    async with aiohttp.ClientSession() as http:
        statuses = []
        for _ in range(3):
            async with http.get(f"{running.url}/slack/install", allow_redirects=False) as response:
                statuses.append(response.status)
    assert statuses == [302, 302, 429]


async def test_admin_status_is_checked_afresh_and_cost_admins_can_be_scoped(
    start_bot: BotFactory, slack: FakeSlack
) -> None:
    slack.add_user("U0BOSS", name="boss", is_admin=True)
    running = await start_bot(cost_admins="T0001:U0SCOPED,T0999:U0ELSEWHERE")

    async def cost(user: str) -> dict[str, Any]:
        url = slack.new_response_url()
        await running.sender.send_command(slash_command("/claude-cost", "7d", user_id=user, response_url=url))
        return await response_at(slack, url, f"/claude-cost for {user}")

    first = await cost("U0BOSS")
    assert "Claude usage" in str(first) and first.get("unfurl_links") is False and first.get("unfurl_media") is False
    slack.add_user("U0BOSS", name="boss", is_admin=False)  # demoted in Slack a moment later
    assert "Only workspace admins" in (await cost("U0BOSS"))["text"]
    assert "Claude usage" in str(await cost("U0SCOPED"))
    assert "Only workspace admins" in (await cost("U0ELSEWHERE"))["text"], "scoped to another workspace"


async def test_the_sender_helper_still_reaches_the_bot(running: RunningBot, slack: FakeSlack) -> None:
    """The signed path the fakes use is unchanged: a mention is answered."""
    sender: SlackRequestSender = running.sender
    ts = "1700000903.000100"
    assert (await sender.send_event(event_callback(app_mention("hi", ts=ts))))[0] == 200
    await wait_for_reply(slack, "C0GENERAL", ts, "OK")
    await eventually(lambda: slack.calls_to("chat.postMessage"), "the answer")
