"""Extended thinking: a live "Thinking… Ns" status instead of a blank, then the answer; thinking never shown."""

from __future__ import annotations

import logging
import re

import pytest

from tests.e2e.conftest import BotFactory
from tests.e2e.helpers import wait_for_reply
from tests.fakes.anthropic_api import FakeAnthropic, RecordedRequest, TextReply
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import app_mention, event_callback

SECRET_THOUGHT = "the user probably means the 2024 schema, check the index first"


async def test_while_claude_thinks_the_message_counts_the_seconds_then_shows_only_the_answer(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await start_bot(thinking="adaptive")
    # Thinking arrives in two pieces 1.5 s apart: long enough for the status to tick at least once.
    claude.script(TextReply("Use a composite index.", thinking=SECRET_THOUGHT, chunk_delay_s=1.5))
    root = "1700000900.000100"
    await running.sender.send_event(event_callback(app_mention("why is this query slow?", ts=root)))
    [answer] = await wait_for_reply(slack, "C0GENERAL", root, "composite index", timeout=20)

    assert claude.requests[0].body["thinking"] == {"type": "adaptive"}  # the model supports its own adaptive mode
    shown = [c.params["text"] for c in slack.calls_to("chat.update") if c.params.get("ts") == answer.ts]
    statuses = [text for text in shown if re.fullmatch(r"_Thinking… \d+s_", text)]
    assert statuses, shown  # a live status while thinking, not a blank or a frozen placeholder
    assert shown.index(statuses[-1]) < next(i for i, t in enumerate(shown) if "composite index" in t)
    assert all(SECRET_THOUGHT not in text for text in shown)  # thinking is never shown
    assert "Thinking" not in answer.text


async def test_without_adaptive_support_a_cheap_triage_picks_the_budget(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, caplog: pytest.LogCaptureFixture
) -> None:
    running = await start_bot(thinking="adaptive", claude_model="claude-haiku-4-5", log_thinking=True)

    def route(request: RecordedRequest) -> TextReply:
        if request.body["max_tokens"] == 5:  # the triage call
            return TextReply("complex")
        return TextReply("Here is the careful answer.", thinking="step by step")

    claude.script(route, route)
    root = "1700000901.000100"
    with caplog.at_level(logging.INFO, logger="bot.core.replies"):
        await running.sender.send_event(event_callback(app_mention("design our sharding strategy", ts=root)))
        await wait_for_reply(slack, "C0GENERAL", root, "careful answer")

    triage, answer = claude.requests
    assert triage.model == "claude-haiku-4-5" and "simple, moderate or complex" in triage.system_text
    assert "design our sharding strategy" in triage.last_user_text()
    assert answer.body["thinking"] == {"type": "enabled", "budget_tokens": 16_384}
    assert answer.body["max_tokens"] > 16_384  # the budget leaves room for the answer itself
    # Opt-in debugging: the thinking goes to the log (and nowhere else).
    assert any("step by step" in r.getMessage() for r in caplog.records)


async def test_a_simple_question_gets_no_thinking_after_triage(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await start_bot(thinking="adaptive", claude_model="claude-haiku-4-5")
    claude.script(TextReply("simple"), TextReply("Hello!"))
    root = "1700000902.000100"
    await running.sender.send_event(event_callback(app_mention("hi there", ts=root)))
    await wait_for_reply(slack, "C0GENERAL", root, "Hello!")
    assert "thinking" not in claude.requests[1].body
