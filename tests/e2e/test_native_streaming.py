"""Slack's native streaming (chat.startStream / appendStream / stopStream), and the edit-in-place fallback whenever
Slack refuses it: before the answer shows, or part-way through."""

from __future__ import annotations

import asyncio

from tests.e2e.conftest import BotFactory
from tests.e2e.helpers import action_ids, bot_messages, eventually, settle, wait_for_reply
from tests.fakes.anthropic_api import FakeAnthropic, TextReply, ToolUseReply
from tests.fakes.slack_api import FakeMessage, FakeSlack
from tests.fakes.slack_requests import app_mention, event_callback

FINAL_BUTTONS = ["answer_good", "answer_bad", "answer_regenerate"]


def finished_stream(slack: FakeSlack, channel: str, thread_ts: str, contains: str) -> FakeMessage | None:
    """The bot's one message in the thread, once its stream is stopped and shows `contains`."""
    messages = bot_messages(slack, channel, thread_ts)
    if len(messages) == 1 and messages[0].stream_state == "stopped" and contains in messages[0].text:
        return messages[0]
    return None


async def test_an_answer_streams_natively_and_ends_with_its_buttons(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await start_bot(slack_native_streaming="true")
    claude.script(TextReply("Hello **there**, friend.", chunks=["Hello ", "**there**", ", friend."]))
    root = "1700002000.000100"
    await running.sender.send_event(event_callback(app_mention("hi", ts=root)))

    answer = await eventually(lambda: finished_stream(slack, "C0GENERAL", root, "friend."), "the streamed answer")
    assert answer.text == "Hello **there**, friend."  # Markdown as Claude wrote it: Slack renders markdown_text
    assert action_ids(answer) == FINAL_BUTTONS
    [start] = slack.calls_to("chat.startStream")
    assert start.params["thread_ts"] == root
    assert (start.params["recipient_user_id"], start.params["recipient_team_id"]) == ("U0USER", "T0001")
    assert slack.calls_to("chat.update") == [] and slack.calls_to("chat.postMessage") == []
    [status] = slack.calls_to("assistant.threads.setStatus")
    assert status.params["status"] == "is thinking…"


async def test_a_workspace_that_refuses_native_streaming_gets_edited_messages(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await start_bot(slack_native_streaming="true")
    slack.refuse_streaming("not_allowed")
    claude.default_reply = TextReply("Answered anyway.")
    await running.sender.send_event(event_callback(app_mention("hi", ts="1700002001.000100")))
    [answer] = await wait_for_reply(slack, "C0GENERAL", "1700002001.000100", "Answered anyway.")
    assert action_ids(answer) == FINAL_BUTTONS

    # The refusal is remembered: the next answer in this workspace does not ask again.
    await running.sender.send_event(event_callback(app_mention("again", ts="1700002001.000200")))
    await wait_for_reply(slack, "C0GENERAL", "1700002001.000200", "Answered anyway.")
    assert len(slack.calls_to("chat.startStream")) == 1


async def test_a_stream_that_ends_mid_answer_continues_in_the_same_message_without_losing_text(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await start_bot(slack_native_streaming="true")
    gate = asyncio.Event()
    claude.script(
        TextReply(
            "First part. Second part. Third part.", chunks=["First part. ", "Second part. ", "Third part."], gate=gate
        )
    )
    root = "1700002002.000100"
    await running.sender.send_event(event_callback(app_mention("tell me", ts=root)))
    [start] = await slack.wait_for("chat.startStream", where=lambda c: c.ok)
    slack.expire_stream("C0GENERAL", start.response["ts"])  # Slack ends the stream on its side
    gate.set()

    [answer] = await wait_for_reply(slack, "C0GENERAL", root, "Third part.")
    assert answer.ts == start.response["ts"]  # the same message, edited from here on
    assert answer.text.count("First part.") == 1 and "Second part. Third part." in answer.text
    assert action_ids(answer) == FINAL_BUTTONS
    await settle()
    assert len(bot_messages(slack, "C0GENERAL", root)) == 1


async def test_slacks_own_stop_control_on_a_stream_stops_the_answer_where_the_person_saw_it(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await start_bot(slack_native_streaming="true")
    gate = asyncio.Event()
    claude.script(TextReply("Seen so far. Not wanted.", chunks=["Seen so far. ", "Not wanted."], gate=gate))
    root = "1700002003.000100"
    await running.sender.send_event(event_callback(app_mention("go on", ts=root)))
    [start] = await slack.wait_for("chat.startStream", where=lambda c: c.ok)
    slack.stop_stream_by_user("C0GENERAL", start.response["ts"])
    gate.set()

    [answer] = await wait_for_reply(slack, "C0GENERAL", root, "Stopped")
    assert answer.ts == start.response["ts"]
    assert "Seen so far." in answer.text and "Not wanted" not in answer.text
    assert answer.text.count("Stopped") == 1
    assert action_ids(answer) == FINAL_BUTTONS


async def test_a_tool_step_shows_as_a_task_card_in_the_stream(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await start_bot(slack_native_streaming="true")
    claude.script(ToolUseReply("read_channel", {}, text_before="Let me look."), TextReply("Nothing new there."))
    root = "1700002004.000100"
    await running.sender.send_event(event_callback(app_mention("anything new?", ts=root)))

    answer = await eventually(lambda: finished_stream(slack, "C0GENERAL", root, "Nothing new"), "the answer")
    assert answer.text == "Let me look.\n\nNothing new there."
    tasks = [(c["status"], c["title"]) for c in answer.chunks if c["type"] == "task_update"]
    assert [status for status, _ in tasks] == ["in_progress", "complete"]
    assert tasks[0][1] == tasks[1][1] == "Reading this channel…"
