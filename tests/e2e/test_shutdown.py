"""SIGTERM mid-answer: new work is turned away so Slack redelivers it, the running answer finishes or ends with a
note (never a frozen "Thinking…"), and its history is saved. Runs the production Service, as `serve()` does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from bot.core.conversation import ConversationKey
from bot.core.i18n import tr
from bot.core.texts import INTERRUPTED, RESTARTING
from bot.server import SLACK_PATH, Service
from bot.settings import Settings
from bot.storage.keys import Keys
from tests.e2e.conftest import SIGNING_SECRET, BotFactory
from tests.e2e.helpers import STREAMING_CURSOR, bot_messages, wait_for_reply
from tests.fakes.anthropic_api import FakeAnthropic, TextReply
from tests.fakes.slack_api import FakeMessage, FakeSlack
from tests.fakes.slack_requests import SlackRequestSender, app_mention, event_callback, slash_command

ServiceFactory = Callable[..., Awaitable[Service]]


@pytest.fixture
async def start_service(settings_for: Callable[..., Settings], redis_client: Any) -> AsyncIterator[ServiceFactory]:
    services: list[Service] = []

    async def start(**overrides: Any) -> Service:
        service = Service(settings_for(**overrides))
        await service.start()
        services.append(service)
        return service

    yield start
    for service in services:
        if service.bot.slack_deps.in_progress.accepting:
            await service.shutdown()


async def wait_for_text(slack: FakeSlack, channel: str, thread_ts: str, text: str) -> list[FakeMessage]:
    """The bot's messages once they show `text`, finished or still streaming."""
    async with asyncio.timeout(10):
        while True:
            messages = bot_messages(slack, channel, thread_ts)
            if any(text in m.text for m in messages):
                return messages
            await asyncio.sleep(0.02)


async def saved_turns(redis_client: Any, key_prefix: str, thread_ts: str) -> list[str]:
    return list(
        await redis_client.lrange(
            Keys(key_prefix).conversation(ConversationKey("T0001", "C0GENERAL", thread_ts)), 0, -1
        )
    )


async def wait_until_draining(url: str) -> None:
    """/healthz turns 503 as soon as shutdown starts, which is what tells a load balancer to stop sending work."""
    async with aiohttp.ClientSession() as http, asyncio.timeout(10):
        while True:
            async with http.get(url + "/healthz") as response:
                if response.status == 503 and (await response.json())["status"] == "shutting down":
                    return
            await asyncio.sleep(0.02)


async def test_shutdown_finishes_the_answer_refuses_new_work_and_slack_redelivers_it_elsewhere(
    start_service: ServiceFactory,
    start_bot: BotFactory,
    slack: FakeSlack,
    claude: FakeAnthropic,
    redis_client: Any,
    key_prefix: str,
) -> None:
    service = await start_service(shutdown_grace_s=30)
    sender = SlackRequestSender(service.url + SLACK_PATH, SIGNING_SECRET)
    gate = asyncio.Event()
    claude.script(TextReply("Halfway there, and done.", chunks=["Halfway there", ", and done."], gate=gate))
    first, later = "1700000400.000100", "1700000400.000200"
    try:
        await sender.send_event(event_callback(app_mention("go", ts=first)))
        await wait_for_text(slack, "C0GENERAL", first, "Halfway there")
        stopping = asyncio.create_task(service.shutdown())
        await wait_until_draining(service.url)

        refused = event_callback(app_mention("one more thing", ts=later))
        status, _ = await sender.send_event(refused)
        assert status == 503  # not acked: Slack delivers it again
        status, body = await sender.send_command(slash_command("/claude-tools", response_url=slack.new_response_url()))
        assert status == 200 and tr(RESTARTING) in body  # commands are never redelivered: say so instead

        gate.set()
        await asyncio.wait_for(stopping, 20)
    finally:
        await sender.close()
    [answer] = bot_messages(slack, "C0GENERAL", first)
    assert answer.text == "Halfway there, and done."
    assert len(claude.requests) == 1
    assert len(await saved_turns(redis_client, key_prefix, first)) == 2  # the question and the whole answer

    # The redelivery reaches a process that is up (here: a second one on the same Redis) and is answered: the
    # refusal came before de-duplication marked the event as seen.
    other = await start_bot()
    await other.sender.send_event(refused, retry_num=1, retry_reason="http_error")
    await wait_for_reply(slack, "C0GENERAL", later, "OK")


async def test_an_answer_that_outlasts_the_grace_period_ends_with_a_note(
    start_service: ServiceFactory, slack: FakeSlack, claude: FakeAnthropic, redis_client: Any, key_prefix: str
) -> None:
    service = await start_service(shutdown_grace_s=0.2)
    sender = SlackRequestSender(service.url + SLACK_PATH, SIGNING_SECRET)
    never = asyncio.Event()
    claude.script(
        TextReply("Halfway there, and never more.", chunks=["Halfway there", ", and never more."], gate=never)
    )
    ts = "1700000401.000100"
    try:
        await sender.send_event(event_callback(app_mention("go", ts=ts)))
        await wait_for_text(slack, "C0GENERAL", ts, "Halfway there")
        await asyncio.wait_for(service.shutdown(), 20)
    finally:
        await sender.close()
    [answer] = bot_messages(slack, "C0GENERAL", ts)
    assert answer.text.startswith("Halfway there") and tr(INTERRUPTED) in answer.text
    assert not answer.text.endswith(STREAMING_CURSOR) and "Thinking" not in answer.text
    metrics = service.bot.core.metrics.exposition().decode()
    assert 'claudebot_answers_total{outcome="interrupted"} 1.0' in metrics
    assert len(await saved_turns(redis_client, key_prefix, ts)) == 1  # the question is kept: asking again continues


async def test_socket_mode_serves_health_and_metrics_and_leaves_new_events_unacked_while_shutting_down(
    start_service: ServiceFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    service = await start_service(slack_app_token="xapp-test", slack_signing_secret=None, shutdown_grace_s=30)
    gate = asyncio.Event()
    claude.script(TextReply("Over the socket.", chunks=["Over the", " socket."], gate=gate))
    ts = "1700000402.000100"
    await slack.wait_socket_connected()
    ack = await slack.send_socket_envelope("events_api", event_callback(app_mention("hi", ts=ts)))
    assert ack["envelope_id"]
    await wait_for_text(slack, "C0GENERAL", ts, "Over the")
    metrics = service.bot.core.metrics.exposition().decode()
    assert 'claudebot_slack_ack_seconds_count{kind="app_mention"} 1.0' in metrics

    stopping = asyncio.create_task(service.shutdown())
    await wait_until_draining(service.url)
    with pytest.raises(TimeoutError):  # no ack: Slack redelivers it
        await slack.send_socket_envelope("events_api", event_callback(app_mention("later", ts=ts + "1")), timeout=1)
    gate.set()
    await asyncio.wait_for(stopping, 20)
    await wait_for_reply(slack, "C0GENERAL", ts, "Over the socket.", timeout=1)
    assert len(claude.requests) == 1


@pytest.mark.slow  # a few seconds: without Redis, edits fall back to a slow local pace and saves back off
async def test_shutdown_waits_for_history_saves_held_up_by_a_redis_blip(
    start_service: ServiceFactory,
    slack: FakeSlack,
    claude: FakeAnthropic,
    redis_url: str,
    redis_client: Any,
    key_prefix: str,
) -> None:
    from tests.contract.test_redis_store import _proxy_for

    proxy = await _proxy_for(redis_url)
    service = await start_service(redis_url=proxy.url, shutdown_grace_s=30)
    sender = SlackRequestSender(service.url + SLACK_PATH, SIGNING_SECRET)
    gate = asyncio.Event()
    claude.script(TextReply("Saved in the end.", chunks=["Saved", " in the end."], gate=gate))
    ts = "1700000403.000100"
    try:
        await sender.send_event(event_callback(app_mention("remember this", ts=ts)))
        await wait_for_text(slack, "C0GENERAL", ts, "Saved")
        await proxy.cut()  # the answer is shown, but cannot be saved yet: it keeps the thread and retries
        gate.set()
        await wait_for_text(slack, "C0GENERAL", ts, "Saved in the end.")
        stopping = asyncio.create_task(service.shutdown())
        await wait_until_draining(service.url)
        await proxy.restore()
        await asyncio.wait_for(stopping, 20)
    finally:
        await sender.close()
        await proxy.stop()
    assert len(await saved_turns(redis_client, key_prefix, ts)) == 2
