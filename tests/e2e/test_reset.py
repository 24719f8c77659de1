"""Starting over: a thread or a DM is forgotten on request, privately confirmed, and nothing else is touched."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from bot.core.conversation import ConversationKey
from tests.e2e.conftest import RunningBot
from tests.e2e.helpers import wait_for_reply
from tests.fakes.anthropic_api import FakeAnthropic, TextReply
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import (
    app_mention,
    dm_message,
    event_callback,
    message,
    message_shortcut,
    slash_command,
)


async def response_to(slack: FakeSlack, url: str) -> dict[str, object]:
    for _ in range(250):
        posts = [p for p in slack.response_url_posts if p["url"] == url]
        if posts:
            return posts[-1]["body"]  # type: ignore[no-any-return]
        await asyncio.sleep(0.02)
    raise AssertionError("no response_url post")


async def ephemeral_saying(slack: FakeSlack, words: str) -> dict[str, object]:
    for _ in range(250):
        for call in slack.ephemerals:
            if words in call.params.get("text", ""):
                return call.params
        await asyncio.sleep(0.02)
    raise AssertionError(f"no ephemeral message saying {words!r}: {[c.params for c in slack.ephemerals]}")


async def usage_requests(running: RunningBot) -> int:
    today = datetime.now(UTC).date()
    return (await running.bot.core.usage.report("T0001", today, today)).requests


async def test_mentioning_reset_in_a_thread_forgets_exactly_that_thread(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    kept, forgotten = "1700000800.000100", "1700000801.000100"
    for root in (kept, forgotten):
        await running.sender.send_event(event_callback(app_mention(f"remember {root}", ts=root)))
        await wait_for_reply(slack, "C0GENERAL", root, "OK")
    spent = await usage_requests(running)
    replies_before = len(claude.requests)

    await running.sender.send_event(event_callback(app_mention("reset", thread_ts=forgotten)))
    confirmation = await ephemeral_saying(slack, "forgotten this thread")
    assert confirmation["user"] == "U0USER" and confirmation["thread_ts"] == forgotten
    assert len(claude.requests) == replies_before  # no answer, no cost: it is a command, not a question

    store = running.bot.store
    assert not await store.exists(ConversationKey("T0001", "C0GENERAL", forgotten))
    assert await store.exists(ConversationKey("T0001", "C0GENERAL", kept))
    assert await usage_requests(running) == spent  # the usage ledger keeps what was spent

    # Plain follow-ups no longer continue it; a new mention starts over with nothing from before.
    await running.sender.send_event(event_callback(message("still there?", thread_ts=forgotten)))
    claude.script(TextReply("Starting fresh."))
    await running.sender.send_event(event_callback(app_mention("new question", thread_ts=forgotten)))
    await wait_for_reply(slack, "C0GENERAL", forgotten, "Starting fresh.")
    fresh = claude.requests[-1]
    assert len(fresh.messages) == 1 and fresh.last_user_text().endswith("new question")
    assert len(claude.requests) == replies_before + 1


async def test_forget_this_thread_shortcut_clears_the_thread_and_confirms_privately(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    root = "1700000802.000100"
    await running.sender.send_event(event_callback(app_mention("hello", ts=root)))
    [answer] = await wait_for_reply(slack, "C0GENERAL", root, "OK")

    url = slack.new_response_url()
    shortcut = message_shortcut(
        "forget_thread", {"user": "UBOT", "ts": answer.ts, "thread_ts": root, "text": "OK"}, response_url=url
    )
    status, _ = await running.sender.send_interaction(shortcut)
    assert status == 200
    body = await response_to(slack, url)
    assert body["response_type"] == "ephemeral" and "forgotten this thread" in str(body["text"])
    assert not await running.bot.store.exists(ConversationKey("T0001", "C0GENERAL", root))

    again = slack.new_response_url()
    await running.sender.send_interaction(
        message_shortcut("forget_thread", {"user": "U0USER", "ts": root, "text": "hello"}, response_url=again)
    )
    assert "nothing to forget" in str((await response_to(slack, again))["text"])


async def test_claude_reset_in_a_dm_starts_a_fresh_conversation(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    await running.sender.send_event(event_callback(dm_message("my name is Ada", ts="1700000803.000100")))
    await wait_for_reply(slack, "D0DM", None, "OK")

    url = slack.new_response_url()
    await running.sender.send_command(slash_command("/claude-reset", channel_id="D0DM", response_url=url))
    body = await response_to(slack, url)
    assert body["response_type"] == "ephemeral" and "Fresh start" in str(body["text"])

    claude.script(TextReply("Nice to meet you."))
    await running.sender.send_event(event_callback(dm_message("who am I?", ts="1700000804.000100")))
    await wait_for_reply(slack, "D0DM", None, "Nice to meet you.")
    assert len(claude.requests[-1].messages) == 1  # nothing from before the reset


async def test_claude_reset_in_a_channel_explains_how_to_clear_a_thread(running: RunningBot, slack: FakeSlack) -> None:
    url = slack.new_response_url()
    await running.sender.send_command(slash_command("/claude-reset", response_url=url))
    body = await response_to(slack, url)
    assert body["response_type"] == "ephemeral" and "Forget this thread" in str(body["text"])
