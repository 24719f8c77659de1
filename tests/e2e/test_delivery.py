"""How Slack delivers: signatures, retries, double deliveries, health, and Socket Mode."""

from __future__ import annotations

import time

import aiohttp

from tests.e2e.conftest import BotFactory, RunningBot
from tests.e2e.helpers import settle, wait_for_reply
from tests.fakes.anthropic_api import FakeAnthropic, TextReply
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import app_mention, event_callback, message


async def test_a_bad_or_stale_signature_gets_401_and_nothing_runs(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    payload = event_callback(app_mention("hi"))
    status, _ = await running.sender.send_event(payload, signature="v0=" + "0" * 64)
    assert status == 401
    status, _ = await running.sender.send_event(payload, timestamp=int(time.time()) - 600)
    assert status == 401
    await settle()
    assert claude.requests == [] and slack.calls_to("chat.postMessage") == []


async def test_url_verification_is_answered(running: RunningBot) -> None:
    status, body = await running.sender.send_event({"type": "url_verification", "challenge": "abc123", "token": "t"})
    assert status == 200 and "abc123" in body


async def test_a_retry_of_a_delivered_event_never_answers_twice(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    payload = event_callback(app_mention("hello", ts="1700000100.000100"))
    await running.sender.send_event(payload)
    status, _ = await running.sender.send_event(payload, retry_num=1, retry_reason="http_timeout")
    assert status == 200
    await wait_for_reply(slack, "C0GENERAL", "1700000100.000100", "OK")
    await settle()
    assert len(claude.requests) == 1
    assert len(slack.calls_to("chat.postMessage")) == 1


async def test_a_retry_whose_original_never_arrived_is_answered(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    payload = event_callback(app_mention("hello", ts="1700000101.000100"))
    await running.sender.send_event(payload, retry_num=2, retry_reason="http_error")
    await wait_for_reply(slack, "C0GENERAL", "1700000101.000100", "OK")
    assert len(claude.requests) == 1


async def test_a_mention_in_a_thread_delivered_as_app_mention_and_message_is_answered_once(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    root, ts = "1700000102.000100", "1700000102.000200"
    as_message = event_callback(message("<@UBOT> thoughts?", ts=ts, thread_ts=root))
    as_mention = event_callback(app_mention("thoughts?", ts=ts, thread_ts=root))
    await running.sender.send_event(as_message)
    await running.sender.send_event(as_mention)
    await wait_for_reply(slack, "C0GENERAL", root, "OK")
    await settle()
    assert len(claude.requests) == 1
    assert len(slack.calls_to("chat.postMessage")) == 1


async def test_health_reports_redis_state(start_bot: BotFactory, redis_url: str) -> None:
    from tests.contract.test_redis_store import _proxy_for

    proxy = await _proxy_for(redis_url)
    running = await start_bot(redis_url=proxy.url)
    async with aiohttp.ClientSession() as http:
        async with http.get(running.url + "/healthz") as response:
            assert response.status == 200
        await proxy.cut()
        async with http.get(running.url + "/healthz") as response:
            assert response.status == 503
        await proxy.restore()
        async with http.get(running.url + "/healthz") as response:
            assert response.status == 200
    await proxy.stop()


async def test_socket_mode_receives_events_and_acks_them(
    settings_for: object, slack: FakeSlack, claude: FakeAnthropic, redis_client: object
) -> None:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    from bot.wiring import build_bot

    settings = settings_for(slack_app_token="xapp-test", slack_signing_secret=None)  # type: ignore[operator]
    bot = build_bot(settings)
    handler = AsyncSocketModeHandler(bot.app, "xapp-test")
    try:
        await handler.connect_async()
        await slack.wait_socket_connected()
        payload = event_callback(app_mention("over the socket", ts="1700000103.000100"))
        ack = await slack.send_socket_envelope("events_api", payload)
        assert ack["envelope_id"]
        await wait_for_reply(slack, "C0GENERAL", "1700000103.000100", "OK")
        assert claude.requests[0].last_user_text().endswith("]over the socket")
    finally:
        await handler.close_async()
        await bot.close()


async def test_malformed_and_unexpected_payloads_never_break_the_bot(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    broken_event = event_callback({"type": "app_mention", "ts": "1700000104.000100"})  # no user, channel, text
    status, _ = await running.sender.send_event(broken_event)
    assert status == 200
    status, body = await running.sender.send_event({"type": "event_callback", "event": "not-an-object"})
    assert (status, body) == (400, "malformed event")
    status, _ = await running.sender.send_event(event_callback({"type": "reaction_added", "user": "U1"}))
    assert status in (200, 404)
    await settle()
    assert claude.requests == []
    # Still serving.
    await running.sender.send_event(event_callback(app_mention("still alive?", ts="1700000104.000200")))
    await wait_for_reply(slack, "C0GENERAL", "1700000104.000200", "OK")


async def test_shutdown_lets_an_answer_in_progress_finish(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    import asyncio

    running = await start_bot()
    claude.script(TextReply("Finished properly.", chunks=["Finished ", "properly."], chunk_delay_s=0.3))
    await running.sender.send_event(event_callback(app_mention("go", ts="1700000105.000100")))
    await slack.wait_for("chat.postMessage")
    await asyncio.wait_for(running.stop(), 10)
    [answer] = await wait_for_reply(slack, "C0GENERAL", "1700000105.000100", "Finished properly.", timeout=1)
    assert answer.text == "Finished properly."
