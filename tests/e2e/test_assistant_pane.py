"""Slack's assistant pane: a greeting with the viewed channel's persona and its suggested prompts, the pane
following the person from channel to channel, and questions answered with a status, a title and a streamed answer."""

from __future__ import annotations

import asyncio

from tests.e2e.conftest import RunningBot
from tests.e2e.helpers import action_ids, bot_messages, eventually
from tests.fakes.anthropic_api import FakeAnthropic, TextReply
from tests.fakes.slack_api import FakeMessage, FakeSlack
from tests.fakes.slack_requests import assistant_thread_started, dm_message, event_callback

REVIEWER_PROMPTS = ["Review a snippet", "Review a diff", "Find a bug", "Review checklist"]


async def open_pane(running: RunningBot, slack: FakeSlack, thread_ts: str, viewing: str | None) -> None:
    await running.sender.send_event(
        event_callback(assistant_thread_started(thread_ts=thread_ts, context_channel_id=viewing))
    )
    await eventually(lambda: slack.suggested_prompts.get(("D0DM", thread_ts)), "suggested prompts")


async def test_a_new_pane_thread_greets_with_the_viewed_channels_persona_and_its_prompts(
    running: RunningBot, slack: FakeSlack
) -> None:
    await running.bot.store.set_channel_persona("T0001", "C0GENERAL", "code_reviewer")
    await open_pane(running, slack, "1700003000.000100", viewing="C0GENERAL")

    prompts = slack.suggested_prompts[("D0DM", "1700003000.000100")]
    assert [p["title"] for p in prompts] == REVIEWER_PROMPTS
    assert all(p["message"] for p in prompts)
    [greeting] = bot_messages(slack, "D0DM", "1700003000.000100")
    assert "code_reviewer" in greeting.text and "<#C0GENERAL>" in greeting.text
    [call] = slack.calls_to("assistant.threads.setSuggestedPrompts")
    assert call.params["title"] == "Try asking"

    # Opened from nowhere in particular (no context): the default persona's prompts, a plain greeting.
    await open_pane(running, slack, "1700003000.000200", viewing=None)
    default_prompts = slack.suggested_prompts[("D0DM", "1700003000.000200")]
    assert "What can you do?" in [p["title"] for p in default_prompts]


async def test_a_question_in_the_pane_gets_a_status_a_title_and_a_streamed_answer_as_the_viewed_channels_persona(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    await running.bot.store.set_channel_persona("T0001", "C0GENERAL", "code_reviewer")
    slack.add_channel("C0DATA", name="data")
    await running.bot.store.set_channel_persona("T0001", "C0DATA", "sql_expert")
    thread = "1700003001.000100"
    await open_pane(running, slack, thread, viewing="C0GENERAL")
    # The person moves to #data before asking: the pane follows, and so does the persona.
    moved = assistant_thread_started(thread_ts=thread, context_channel_id="C0DATA")
    moved["type"] = "assistant_thread_context_changed"
    await running.sender.send_event(event_callback(moved))
    # Acked events are handled concurrently: the move is in before the person, seconds later, types a question.
    for _ in range(200):
        if (await running.bot.slack_deps.pane.persona("T0001", "D0DM", thread)).name == "sql_expert":
            break
        await asyncio.sleep(0.01)

    claude.script(TextReply("Dialect: PostgreSQL (assumed). Use `GROUP BY`."))
    question = "How do I count   orders per customer in our warehouse, including the ones without any orders at all?"
    await running.sender.send_event(event_callback(dm_message(question, thread_ts=thread)))

    def streamed_answer() -> list[FakeMessage]:
        return [m for m in bot_messages(slack, "D0DM", thread) if m.stream_state == "stopped"]

    [answer] = await eventually(streamed_answer, "the streamed answer")  # auto mode streams natively in the pane
    assert "GROUP BY" in answer.text
    assert action_ids(answer) == ["answer_good", "answer_bad", "answer_regenerate"]
    [status] = slack.calls_to("assistant.threads.setStatus")
    assert status.params["status"] == "is thinking…" and status.params["thread_ts"] == thread
    title = slack.assistant_titles[("D0DM", thread)]
    assert title.startswith("How do I count orders per customer") and len(title) <= 60
    assert claude.requests[0].system_text.startswith("You are a senior database engineer")

    # A follow-up keeps the thread's persona and title.
    claude.script(TextReply("Add an index on customer_id."))
    await running.sender.send_event(event_callback(dm_message("and faster?", thread_ts=thread)))
    await eventually(lambda: len(streamed_answer()) == 2, "the follow-up answer")
    assert len(slack.calls_to("assistant.threads.setTitle")) == 1
    assert claude.requests[1].system_text.startswith("You are a senior database engineer")
