"""The production Service serves Slack's port on a thread of its own (bot/intake_loop.py): an event is acked while the
bot's event loop is busy, and still answered once; acks given just before shutdown are honoured; the pages that
need the bot (health, install) are served through the thread as before."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bot.server import SLACK_PATH, Service
from bot.settings import Settings
from tests.e2e.conftest import SIGNING_SECRET
from tests.e2e.helpers import bot_messages, settle, wait_for_reply
from tests.fakes.anthropic_api import FakeAnthropic, TextReply
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import app_mention, event_callback, sign


@pytest.fixture
async def service(settings_for: Callable[..., Settings], redis_client: Any) -> AsyncIterator[Service]:
    running = Service(settings_for())
    await running.start()
    yield running
    if running.bot.slack_deps.in_progress.accepting:
        await running.shutdown()


def deliver_from_another_thread(url: str, payload: dict[str, Any]) -> tuple[int, float]:
    """Slack's delivery, sent and timed outside the test's event loop (which is the bot's, and will be blocked)."""
    body = json.dumps(payload).encode()
    ts = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": sign(SIGNING_SECRET, ts, body),
    }
    started = time.perf_counter()
    request = urllib.request.Request(url + SLACK_PATH, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # our own loopback port
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    return status, time.perf_counter() - started


async def ask_while_the_bots_loop_is_blocked(service: Service, payload: dict[str, Any], busy_s: float) -> float:
    """Deliver `payload` while the bot's loop is stuck in work for `busy_s`; the ack's time as Slack saw it."""
    loop = asyncio.get_running_loop()
    delivery = loop.run_in_executor(None, deliver_from_another_thread, service.url, payload)
    time.sleep(busy_s)  # noqa: ASYNC251  # the point: the bot's loop is stuck, as under a burst of answers
    status, seconds = await delivery
    assert status == 200
    return seconds


async def test_an_event_is_acked_while_the_bots_loop_is_busy_and_answered_once_it_is_free(
    service: Service, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script(TextReply("Answered after the busy second."))
    root = "1700011000.000100"
    ack_s = await ask_while_the_bots_loop_is_blocked(service, event_callback(app_mention("hello?", ts=root)), 1.5)
    assert ack_s < 0.5, f"the ack waited {ack_s:.2f} s for the bot's loop"
    await wait_for_reply(slack, "C0GENERAL", root, "Answered after the busy second.")
    await settle(0.3)
    assert len(claude.requests) == 1 and len(bot_messages(slack, "C0GENERAL", root)) == 1


async def test_an_event_acked_just_before_shutdown_is_answered_not_dropped(
    service: Service, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """The ack went out while the bot still took work; shutdown starts before the bot's loop has seen the event.
    Slack will not deliver it again, so it must be answered within the grace period."""
    claude.script(TextReply("Answered during the grace period."))
    root = "1700011100.000100"
    await ask_while_the_bots_loop_is_blocked(service, event_callback(app_mention("just in time?", ts=root)), 0.5)
    await service.shutdown()  # before the loop has run the handed-over dispatch
    assert [m.text for m in bot_messages(slack, "C0GENERAL", root)] == ["Answered during the grace period."]


def get(url: str) -> tuple[int, str]:
    """A GET from outside the bot's loop; redirects are not followed (the install page answers with one)."""

    class NoRedirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None

    try:
        with urllib.request.build_opener(NoRedirects).open(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def test_health_metrics_and_acks_are_served_while_the_port_runs_on_its_own_thread(
    service: Service, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    loop = asyncio.get_running_loop()
    claude.script(TextReply("Counted."))
    root = "1700011200.000100"
    await loop.run_in_executor(
        None, deliver_from_another_thread, service.url, event_callback(app_mention("hi", ts=root))
    )
    await wait_for_reply(slack, "C0GENERAL", root, "Counted.")
    status, text = await loop.run_in_executor(None, get, service.url + "/healthz")
    assert status == 200 and json.loads(text)["redis"] == "ok"
    status, text = await loop.run_in_executor(None, get, service.metrics_url + "/metrics")
    assert status == 200 and 'claudebot_slack_ack_seconds_count{kind="app_mention"} 1.0' in text


async def test_the_install_page_is_served_through_the_thread_and_capped(
    settings_for: Callable[..., Settings], slack: FakeSlack, redis_client: Any
) -> None:
    oauth = {"slack_bot_token": None, "slack_client_id": slack.client_id, "slack_client_secret": slack.client_secret}
    service = Service(settings_for(**oauth, install_rate_per_minute=2))
    await service.start()
    try:
        loop = asyncio.get_running_loop()
        visits = [await loop.run_in_executor(None, get, service.url + "/slack/install") for _ in range(3)]
        assert [status for status, _ in visits] == [302, 302, 429]
    finally:
        await service.shutdown()
