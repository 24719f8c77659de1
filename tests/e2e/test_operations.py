"""What an operator sees: Prometheus metrics at /metrics and one JSON log line per event, with the request's ids."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Callable, Iterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot import logs
from tests.conftest import TlsRedis
from tests.e2e.conftest import BotFactory
from tests.e2e.helpers import wait_for_reply
from tests.fakes.anthropic_api import FakeAnthropic, MidStreamErrorReply, TextReply
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import app_mention, event_callback

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(url: str, *, token: str | None = None) -> Samples:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, http.get(url + "/metrics", headers=headers) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape_until(url: str, done: Callable[[Samples], bool]) -> Samples:
    """Scrape until `done` holds (or 5 s pass): an answer's last observations land just after its final edit."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while True:
        samples = await scrape(url)
        if done(samples) or loop.time() > deadline:
            return samples
        await asyncio.sleep(0.02)


async def scrape_when(url: str, name: str, expected: float, **labels: str) -> Samples:
    """Scrape until a counter reaches `expected`."""
    return await scrape_until(url, lambda samples: value(samples, name, **labels) >= expected)


async def test_metrics_count_requests_first_text_tokens_cost_claude_errors_and_slack_429s(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await start_bot()
    slack.fail_next("chat.postMessage", "ratelimited", status=429, retry_after=0)
    claude.script(MidStreamErrorReply("Hel"), TextReply("Hello from Claude."))
    ts = "1700000300.000100"
    await running.sender.send_event(event_callback(app_mention("hi", ts=ts)))
    await wait_for_reply(slack, "C0GENERAL", ts, "Hello from Claude.")

    # The answer is counted at its final edit; it leaves "in progress" a moment later, when its last steps are done.
    def answered_and_done(s: Samples) -> bool:
        return value(s, "claudebot_answers_total", outcome="ok") >= 1 and value(s, "claudebot_answers_in_progress") == 0

    samples = await scrape_until(running.metrics_url, answered_and_done)
    assert value(samples, "claudebot_answers_total", outcome="ok") == 1
    assert value(samples, "claudebot_slack_events_total", kind="app_mention", outcome="accepted") == 1
    assert value(samples, "claudebot_slack_ack_seconds_count", kind="app_mention") == 1
    assert value(samples, "claudebot_answer_first_text_seconds_count") == 1
    assert value(samples, "claudebot_answer_seconds_count") == 1
    assert value(samples, "claudebot_claude_errors_total", type="overloaded_error") == 1
    assert value(samples, "claudebot_slack_rate_limited_total", method="chat.postMessage") == 1
    # The fake bills 25 input and 12 output tokens per call; the call that failed mid-stream is billed too, for
    # what its message_start reported (25 input, 1 output).
    model = claude.requests[-1].model or ""
    where = {"workspace": "T0001", "model": model}
    assert value(samples, "claudebot_claude_calls_total", **where) == 2
    assert value(samples, "claudebot_claude_tokens_total", **where, kind="input") == 25 + 25
    assert value(samples, "claudebot_claude_tokens_total", **where, kind="output") == 12 + 1
    assert value(samples, "claudebot_claude_tokens_total", **where, kind="cache_read") == 0
    assert value(samples, "claudebot_claude_cost_usd_total", **where) > 0
    assert value(samples, "claudebot_answers_in_progress") == 0


async def test_a_repeated_delivery_is_counted_as_a_duplicate(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await start_bot()
    payload = event_callback(app_mention("once", ts="1700000301.000100"))
    await running.sender.send_event(payload)
    await running.sender.send_event(payload, retry_num=1)
    await wait_for_reply(slack, "C0GENERAL", "1700000301.000100", "OK")
    samples = await scrape(running.metrics_url)
    assert value(samples, "claudebot_slack_events_total", kind="app_mention", outcome="accepted") == 1
    assert value(samples, "claudebot_slack_events_total", kind="app_mention", outcome="duplicate") == 1


async def test_metrics_can_require_a_bearer_token(start_bot: BotFactory) -> None:
    running = await start_bot(metrics_token="scrape-me")
    async with aiohttp.ClientSession() as http:
        async with http.get(running.metrics_url + "/metrics") as response:
            assert response.status == 401
        async with http.get(running.metrics_url + "/metrics", headers={"Authorization": "Bearer wrong"}) as response:
            assert response.status == 401
    samples = await scrape(running.metrics_url, token="scrape-me")
    assert any(name.startswith("claudebot_") for name, _ in samples)


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Everything logged at INFO and above, formatted as in production with LOG_FORMAT=json."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.RedactSecrets())
    root = logging.getLogger()
    saved_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield buffer
    root.removeHandler(handler)
    root.setLevel(saved_level)


async def test_log_lines_are_json_with_the_events_ids_and_never_the_message_text(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, json_log: io.StringIO
) -> None:
    running = await start_bot()
    claude.script(TextReply("The totals are in the sheet."))
    ts = "1700000302.000100"
    payload = event_callback(app_mention("what are the confidential quarterly totals?", ts=ts))
    await running.sender.send_event(payload)
    await wait_for_reply(slack, "C0GENERAL", ts, "The totals are in the sheet.")
    await scrape_when(running.metrics_url, "claudebot_answers_total", 1, outcome="ok")

    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    [finished] = [line for line in lines if str(line["message"]).startswith("answer finished")]
    assert finished["workspace"] == "T0001"
    assert finished["channel"] == "C0GENERAL"
    assert finished["thread"] == ts
    assert finished["event_id"] == payload["event_id"]
    assert finished["kind"] == "app_mention"
    assert str(finished["anthropic_request_id"]).startswith("req_")
    assert isinstance(finished["duration_ms"], int) and "first_text_ms" in finished
    assert {"ts", "level", "logger", "message"} <= finished.keys()
    text = json_log.getvalue()
    assert "quarterly" not in text and "totals are in the sheet" not in text


async def test_the_bot_answers_with_redis_over_tls_and_a_password_that_is_never_logged(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, tls_redis: TlsRedis, json_log: io.StringIO
) -> None:
    running = await start_bot(redis_url=tls_redis.url(), redis_tls_ca_file=tls_redis.ca_file)
    ts = "1700000303.000100"
    await running.sender.send_event(event_callback(app_mention("hello over TLS", ts=ts)))
    await wait_for_reply(slack, "C0GENERAL", ts, "OK")
    async with aiohttp.ClientSession() as http, http.get(running.url + "/healthz") as response:
        assert response.status == 200
    assert f"rediss://127.0.0.1:{tls_redis.port}/0 (password)" in json_log.getvalue()
    assert tls_redis.password not in json_log.getvalue()
