"""A busy workspace: acks that never wait for Redis, few Redis round trips per answer, Stop without polling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tests.contract.test_redis_store import _proxy_for
from tests.e2e.conftest import BotFactory
from tests.e2e.helpers import bot_messages, wait_for_reply
from tests.fakes.anthropic_api import FakeAnthropic, TextReply
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import app_mention, event_callback, message
from tests.fakes.tcp_proxy import TcpProxy


@pytest.fixture
async def redis_proxy(redis_url: str) -> AsyncIterator[TcpProxy]:
    proxy = await _proxy_for(redis_url)
    yield proxy
    await proxy.stop()


async def test_a_question_is_acked_before_a_slow_redis_answers_and_is_answered_once(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis_proxy: TcpProxy
) -> None:
    running = await start_bot(redis_url=redis_proxy.url)
    claude.script(TextReply("Here you are."))
    redis_proxy.delay_s = 0.15  # every Redis round trip now takes 0.3 s or more
    root = "1700000401.000100"
    acks = []
    for copy in (app_mention("hello", ts=root), message("<@UBOT> hello", ts=root)):  # Slack sends a mention twice
        started = time.monotonic()
        status, _ = await running.sender.send_event(event_callback(copy))
        acks.append(time.monotonic() - started)
        assert status == 200
    assert max(acks) < 0.15, acks  # neither ack waited for the de-duplication check
    await wait_for_reply(slack, "C0GENERAL", root, "Here you are.", timeout=30)
    await asyncio.sleep(1.0)
    assert [m.text for m in bot_messages(slack, "C0GENERAL", root)] == ["Here you are."]


async def test_an_answer_costs_at_most_twelve_redis_round_trips(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, redis_proxy: TcpProxy
) -> None:
    running = await start_bot(redis_url=redis_proxy.url)
    claude.script(TextReply("A first answer."), TextReply("A second answer, in the same thread."))
    root = "1700000402.000100"
    await running.sender.send_event(event_callback(app_mention("first", ts=root)))
    await wait_for_reply(slack, "C0GENERAL", root, "A first answer.")
    await asyncio.sleep(0.5)  # saves that follow the final edit
    before = redis_proxy.requests
    await running.sender.send_event(event_callback(app_mention("second", ts="1700000402.000200", thread_ts=root)))
    await wait_for_reply(slack, "C0GENERAL", root, "A second answer")
    await asyncio.sleep(0.5)
    assert redis_proxy.requests - before <= 12
