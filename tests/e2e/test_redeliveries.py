"""A Slack retry while Redis is unreachable is still recognised: acked at once, the question answered once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from bot.slack.middleware import RecentDeliveries
from tests.contract.test_redis_store import _proxy_for
from tests.e2e.conftest import BotFactory
from tests.e2e.helpers import bot_messages, settle, wait_for_reply
from tests.fakes.anthropic_api import FakeAnthropic, TextReply
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import app_mention, event_callback
from tests.fakes.tcp_proxy import TcpProxy


@pytest.fixture
async def outage(redis_url: str) -> AsyncIterator[TcpProxy]:
    """Redis behind a proxy the test cuts (an outage) and restores."""
    proxy = await _proxy_for(redis_url)
    try:
        yield proxy
    finally:
        await proxy.stop()


async def test_a_retry_during_a_redis_outage_is_acked_at_once_and_answered_once(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, outage: TcpProxy
) -> None:
    running = await start_bot(redis_url=outage.url)
    claude.script(TextReply("Answered once."), TextReply("Answered twice!"))
    root = "1700000951.000100"
    delivery = event_callback(app_mention("are you there?", ts=root))
    await outage.cut()

    for retry in (None, 1):  # Slack's first delivery, then its retry (x-slack-retry-num: 1) of the same event_id
        started = time.monotonic()
        status, _ = await running.sender.send_event(delivery, retry_num=retry)
        assert status == 200 and time.monotonic() - started < 1.0, "acked at once, without Redis"
    await asyncio.sleep(1.5)  # the checks wait for Redis rather than let either delivery through unseen
    await outage.restore()

    await wait_for_reply(slack, "C0GENERAL", root, "Answered once.", timeout=30)
    await settle(2.0)
    assert len(claude.requests) == 1
    assert [m.text for m in bot_messages(slack, "C0GENERAL", root) if "Answered" in m.text] == ["Answered once."]


async def test_a_retry_to_another_process_during_a_redis_outage_is_answered_once(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, outage: TcpProxy
) -> None:
    first, second = await start_bot(redis_url=outage.url), await start_bot(redis_url=outage.url)
    claude.script(TextReply("Answered once."), TextReply("Answered twice!"))
    root = "1700000952.000100"
    delivery = event_callback(app_mention("are you there?", ts=root))
    await outage.cut()

    assert (await first.sender.send_event(delivery))[0] == 200
    assert (await second.sender.send_event(delivery, retry_num=1))[0] == 200
    await asyncio.sleep(1.5)
    await outage.restore()

    await wait_for_reply(slack, "C0GENERAL", root, "Answered", timeout=30)
    await settle(2.0)
    assert len(claude.requests) == 1


def test_recent_deliveries_are_bounded_and_forgotten_after_their_time() -> None:
    now = [0.0]
    recent = RecentDeliveries(capacity=3, ttl_s=10.0, clock=lambda: now[0])
    assert recent.claim("T1", ["event:E1", "msg:C1:1.1"])
    assert not recent.claim("T1", ["event:E1"]), "a retry of the same event"
    assert not recent.claim("T1", ["event:E2", "msg:C1:1.1"]), "the mention's second copy"
    assert recent.claim("T2", ["event:E1"]), "ids are per workspace"
    assert len(recent) == 3
    now[0] = 11.0
    assert recent.claim("T1", ["event:E1"]), "forgotten after ttl_s"
    assert len(recent) == 1
