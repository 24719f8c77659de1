"""Mentions, follow-ups and DMs: answered in the right place, streamed into one message, remembered in Redis."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.conftest import BotFactory, RunningBot
from tests.e2e.helpers import bot_messages, settle, wait_for_reply
from tests.fakes.anthropic_api import FakeAnthropic, TextReply
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import app_mention, dm_message, event_callback, message


async def test_mention_is_answered_in_a_thread_by_editing_one_message(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    gate = asyncio.Event()
    claude.script(
        TextReply(
            "Paris is the **capital** of France.",
            chunks=["Paris is ", "the **capital** of France."],
            gate=gate,
        )
    )
    mention = app_mention("what's the capital of France?", ts="1700000001.000100")
    status, _ = await running.sender.send_event(event_callback(mention))
    assert status == 200

    placeholder = (await slack.wait_for("chat.postMessage"))[0]
    assert placeholder.params["thread_ts"] == "1700000001.000100"
    # The first text shows while Claude is still writing.
    await slack.wait_for("chat.update", where=lambda c: "Paris is" in c.params.get("text", ""))
    gate.set()

    [answer] = await wait_for_reply(slack, "C0GENERAL", "1700000001.000100", "of France.")
    assert answer.text == "Paris is the *capital* of France."  # Markdown rendered as Slack mrkdwn
    assert answer.ts == placeholder.response["ts"]  # one message, edited in place
    assert len(slack.calls_to("chat.postMessage")) == 1
    request = claude.requests[0]
    # The bot's own mention is stripped; the message carries who sent it and when, in their time zone. The
    # channel's topic and purpose (written by members) open the conversation as data, not in the system prompt.
    data, text = request.last_user_text().split("</channel_context>", 1)
    assert data.startswith("<channel_context>") and "Anything goes" in data
    assert "Anything goes" not in request.system_text
    header, said = text.split("]", 1)
    assert said == "what's the capital of France?"
    assert header.startswith("[Ada (Staff Engineer), <@U0USER>,") and header.endswith("Europe/Paris")


async def test_mention_inside_a_thread_answers_in_that_thread(running: RunningBot, slack: FakeSlack) -> None:
    mention = app_mention("and you?", ts="1700000002.000200", thread_ts="1700000000.000001")
    await running.sender.send_event(event_callback(mention))
    await wait_for_reply(slack, "C0GENERAL", "1700000000.000001", "OK")
    assert all(c.params["thread_ts"] == "1700000000.000001" for c in slack.calls_to("chat.postMessage"))


async def test_follow_up_in_the_thread_continues_the_conversation_without_a_mention(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script(TextReply("Blue."), TextReply("Because of Rayleigh scattering."))
    root = "1700000003.000100"
    await running.sender.send_event(event_callback(app_mention("what colour is the sky?", ts=root)))
    await wait_for_reply(slack, "C0GENERAL", root, "Blue.")

    await running.sender.send_event(event_callback(message("why?", thread_ts=root)))
    await wait_for_reply(slack, "C0GENERAL", root, "Rayleigh")
    follow_up = claude.requests[1]
    assert [m["role"] for m in follow_up.messages] == ["user", "assistant", "user"]
    assert "sky" in str(follow_up.messages[0]["content"]) and "Blue." in str(follow_up.messages[1]["content"])


@pytest.mark.slow
async def test_claude_is_asked_while_the_placeholder_is_still_on_its_way_to_slack(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    await running.sender.send_event(event_callback(app_mention("warm up", ts="1700000010.000100")))
    await wait_for_reply(slack, "C0GENERAL", "1700000010.000100", "OK")  # who asks and where are cached now
    slack.latency_s = 4.0  # a slow Slack: each call lands after 2 s and is answered after 4 s
    root = "1700000010.000200"
    await running.sender.send_event(event_callback(app_mention("and now?", ts=root)))
    await claude.wait_for_requests(2, timeout=1.5)
    assert slack.calls_to("chat.postMessage")[1:] == []  # the placeholder has not even landed yet
    slack.latency_s = 0.0
    await wait_for_reply(slack, "C0GENERAL", root, "OK")


async def test_chatter_in_threads_the_bot_never_joined_is_left_alone(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    await running.sender.send_event(event_callback(message("lunch?", thread_ts="1700000004.000001")))
    await running.sender.send_event(event_callback(message("top-level chatter")))
    await settle()
    assert claude.requests == []
    assert slack.calls_to("chat.postMessage") == []


async def test_messages_from_bots_including_itself_are_ignored(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    root = "1700000005.000100"
    await running.sender.send_event(event_callback(app_mention("hi", ts=root)))
    await wait_for_reply(slack, "C0GENERAL", root, "OK")
    await running.sender.send_event(event_callback(message("beep", thread_ts=root, bot_id="BOTHER")))
    await running.sender.send_event(event_callback(message("my own words", thread_ts=root, user="UBOT")))
    await running.sender.send_event(event_callback(dm_message("bot to bot", user="UOTHERBOT") | {"bot_id": "B9"}))
    await settle()
    assert len(claude.requests) == 1


async def test_history_survives_a_restart_of_the_bot(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script(TextReply("Noted: your name is Ada."), TextReply("Your name is Ada."))
    first = await start_bot()
    root = "1700000006.000100"
    await first.sender.send_event(event_callback(app_mention("my name is Ada", ts=root)))
    await wait_for_reply(slack, "C0GENERAL", root, "Noted")
    await first.stop()

    second = await start_bot()
    await second.sender.send_event(event_callback(message("what's my name?", thread_ts=root)))
    await wait_for_reply(slack, "C0GENERAL", root, "Your name is Ada.")
    assert "my name is Ada" in str(claude.requests[1].messages)


async def test_top_level_dms_continue_one_conversation_until_an_idle_period(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await start_bot(dm_idle_reset_s=1)
    claude.script(TextReply("Hi!"), TextReply("Still here."), TextReply("Fresh start."))
    await running.sender.send_event(event_callback(dm_message("hello", ts="1700000007.000100")))
    await wait_for_reply(slack, "D0DM", None, "Hi!")
    await running.sender.send_event(event_callback(dm_message("still there?", ts="1700000007.000200")))
    await wait_for_reply(slack, "D0DM", None, "Still here.")
    assert len(claude.requests[1].messages) == 3  # continued: hello, Hi!, still there?

    await asyncio.sleep(1.2)  # longer than the idle period
    await running.sender.send_event(event_callback(dm_message("new topic", ts="1700000007.000300")))
    await wait_for_reply(slack, "D0DM", None, "Fresh start.")
    assert len(claude.requests[2].messages) == 1
    assert all("thread_ts" not in c.params for c in slack.calls_to("chat.postMessage"))  # DMs answer inline


async def test_a_thread_inside_a_dm_is_its_own_conversation(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script(TextReply("Top level."), TextReply("In the thread."))
    await running.sender.send_event(event_callback(dm_message("hello", ts="1700000008.000100")))
    await wait_for_reply(slack, "D0DM", None, "Top level.")
    await running.sender.send_event(
        event_callback(dm_message("a side question", ts="1700000008.000300", thread_ts="1700000008.000100"))
    )
    await wait_for_reply(slack, "D0DM", "1700000008.000100", "In the thread.")
    assert len(claude.requests[1].messages) == 1


async def test_two_messages_in_one_thread_are_answered_one_after_the_other(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    # Two bot processes sharing Redis: the lock must hold across them.
    first, second = await start_bot(), await start_bot()
    gate = asyncio.Event()
    claude.script(TextReply("First answer.", gate=gate), TextReply("Second answer."))
    root = "1700000009.000100"
    await first.sender.send_event(event_callback(app_mention("one", ts=root)))
    await claude.wait_for_requests(1)
    await second.sender.send_event(event_callback(app_mention("two", ts="1700000009.000200", thread_ts=root)))
    await settle(0.5)
    assert len(claude.requests) == 1  # the second waits for the first to finish
    gate.set()
    await wait_for_reply(slack, "C0GENERAL", root, "Second answer.")
    second_request = claude.requests[1]
    assert "First answer." in str(second_request.messages)  # and it sees the first answer
    assert bot_messages(slack, "C0GENERAL", root)[0].text == "First answer."
