"""The buttons under every answer: Stop while it runs (from any process), then 👍 / 👎 and Regenerate."""

from __future__ import annotations

import asyncio

from bot.core.conversation import ConversationKey, TextBlock
from tests.e2e.conftest import BotFactory, RunningBot
from tests.e2e.helpers import (
    action_ids,
    answer_id_of,
    bot_messages,
    eventually,
    response_at,
    settle,
    slash,
    wait_for_reply,
)
from tests.fakes.anthropic_api import FakeAnthropic, TextReply
from tests.fakes.slack_api import FakeMessage, FakeSlack
from tests.fakes.slack_requests import app_mention, block_action, event_callback

FINAL_BUTTONS = ["answer_good", "answer_bad", "answer_regenerate"]


async def click(
    running: RunningBot, slack: FakeSlack, action_id: str, message: FakeMessage, *, user: str = "U0USER"
) -> str:
    """Click a button under `message`; returns the response_url where an ephemeral reply would go."""
    url = slack.new_response_url()
    payload = block_action(
        action_id,
        value=answer_id_of(message),
        user_id=user,
        channel_id=message.channel,
        message_ts=message.ts,
        thread_ts=message.thread_ts,
        response_url=url,
    )
    status, _ = await running.sender.send_interaction(payload)
    assert status == 200
    return url


async def shown_partly(slack: FakeSlack, root: str, text: str) -> FakeMessage:
    """The answer's message once it shows `text` and is still being written (it carries Stop)."""

    def check() -> FakeMessage | None:
        messages = bot_messages(slack, "C0GENERAL", root)
        if messages and text in messages[-1].text and action_ids(messages[-1]) == ["answer_stop"]:
            return messages[-1]
        return None

    return await eventually(check, f"a running answer showing {text!r}")


async def test_stop_keeps_what_was_written_marks_it_stopped_and_bills_what_was_used(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    slack.add_user("U0ADMIN", name="boss", is_admin=True)
    gate = asyncio.Event()
    claude.script(
        TextReply(
            "Partial start. The rest never shows.", chunks=["Partial start. ", "The rest never shows."], gate=gate
        )
    )
    root = "1700004000.000100"
    await running.sender.send_event(event_callback(app_mention("write a lot", ts=root)))
    running_answer = await shown_partly(slack, root, "Partial start.")

    # Only the asker may stop it.
    refused = await response_at(
        slack, await click(running, slack, "answer_stop", running_answer, user="U0ADMIN"), "refusal"
    )
    assert "Only the person who asked" in refused["text"] and refused["response_type"] == "ephemeral"

    await click(running, slack, "answer_stop", running_answer)
    [stopped] = await wait_for_reply(slack, "C0GENERAL", root, "Stopped")
    assert "Partial start." in stopped.text and "rest never shows" not in stopped.text
    assert action_ids(stopped) == FINAL_BUTTONS  # Stop is gone once the answer is over

    gate.set()  # the model would go on now, but its stream was cancelled: nothing more reaches Slack
    await settle()
    assert "rest never shows" not in bot_messages(slack, "C0GENERAL", root)[-1].text
    stored = await running.bot.store.load(ConversationKey("T0001", "C0GENERAL", root))
    assert [turn.role for turn in stored.turns] == ["user", "assistant"]
    assert stored.turns[1].blocks == (TextBlock(text="Partial start. "),)

    report = await slash(running, slack, "/claude-cost", "today", user_id="U0ADMIN")
    fields = {
        f["text"].split("\n")[0].strip("*"): f["text"].split("\n")[1]
        for b in report["blocks"]
        for f in b.get("fields", [])
    }
    assert fields["Requests"] == "1"
    assert fields["Input tokens"] == "25"  # what the call reported before it was stopped
    assert int(fields["Output tokens"]) > 0  # estimated from the text written so far


async def test_stop_clicked_on_another_process_reaches_the_answer(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    writer, other = await start_bot(), await start_bot()  # two processes sharing Redis, as behind a load balancer
    gate = asyncio.Event()
    claude.script(TextReply("Working on it. Never finished.", chunks=["Working on it. ", "Never finished."], gate=gate))
    root = "1700004001.000100"
    await writer.sender.send_event(event_callback(app_mention("go", ts=root)))
    running_answer = await shown_partly(slack, root, "Working on it.")
    await click(other, slack, "answer_stop", running_answer)
    [stopped] = await wait_for_reply(slack, "C0GENERAL", root, "Stopped")
    assert "Never finished" not in stopped.text
    gate.set()


async def test_regenerate_answers_again_in_a_new_message_and_history_keeps_one_answer(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script(TextReply("First answer."), TextReply("Second answer."))
    root = "1700004002.000100"
    await running.sender.send_event(event_callback(app_mention("what is 6 times 7?", ts=root)))
    [first] = await wait_for_reply(slack, "C0GENERAL", root, "First answer.")

    await click(running, slack, "answer_regenerate", first)
    messages = await wait_for_reply(slack, "C0GENERAL", root, "Second answer.")
    assert [m.ts for m in messages] == [first.ts, messages[1].ts]  # a new message below; the old one stays
    assert action_ids(messages[1]) == FINAL_BUTTONS
    # Claude saw the question alone, not its earlier answer; history holds the question and the new answer.
    assert [m["role"] for m in claude.requests[1].messages] == ["user"]
    stored = await running.bot.store.load(ConversationKey("T0001", "C0GENERAL", root))
    assert [(t.role, t.text) for t in stored.turns] == [("user", "what is 6 times 7?"), ("assistant", "Second answer.")]

    again = await response_at(slack, await click(running, slack, "answer_regenerate", first), "second regenerate")
    assert "already regenerated" in again["text"]
    not_yours = await response_at(
        slack, await click(running, slack, "answer_regenerate", messages[1], user="U0OTHER"), "someone else's"
    )
    assert "Only the person who asked" in not_yours["text"]
    await settle()
    assert len(claude.requests) == 2


async def test_feedback_is_counted_once_per_person_per_persona_and_shown_in_claude_cost(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    slack.add_user("U0ADMIN", name="boss", is_admin=True)
    claude.default_reply = TextReply("An answer.")
    root = "1700004003.000100"
    await running.sender.send_event(event_callback(app_mention("hi", ts=root)))
    [answer] = await wait_for_reply(slack, "C0GENERAL", root, "An answer.")

    thanks = await response_at(slack, await click(running, slack, "answer_good", answer), "thanks")
    assert thanks["text"] == "Thanks for the feedback!" and thanks["response_type"] == "ephemeral"
    same = await response_at(slack, await click(running, slack, "answer_good", answer), "a repeated vote")
    assert "already recorded" in same["text"]
    await response_at(slack, await click(running, slack, "answer_bad", answer, user="U0ADMIN"), "a second voter")
    # A changed mind moves the vote rather than adding one.
    await response_at(slack, await click(running, slack, "answer_bad", answer, user="U0ADMIN"), "same again")
    await response_at(slack, await click(running, slack, "answer_good", answer, user="U0ADMIN"), "changed vote")

    report = await slash(running, slack, "/claude-cost", "today", user_id="U0ADMIN")
    assert "`default` — :+1: 2 · :-1: 0 (100% positive)" in str(report["blocks"])
    assert "Feedback: 2 helpful, 0 not helpful" in report["text"]


async def test_regenerate_double_clicked_calls_claude_once_and_history_matches_what_slack_shows(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """Two clicks at once, on two processes, while the thread is busy: both pass the first check and wait for the
    thread; the first answers again, the second must find (under the lock) that the answer was already replaced."""
    first_process, second_process = await start_bot(), await start_bot()
    claude.script(TextReply("First answer."), TextReply("Second answer."), TextReply("Third answer."))
    root = "1700004005.000100"
    await first_process.sender.send_event(event_callback(app_mention("what is 6 times 7?", ts=root)))
    [first] = await wait_for_reply(slack, "C0GENERAL", root, "First answer.")

    key = ConversationKey("T0001", "C0GENERAL", root)
    store = first_process.bot.store
    await store.client.set(store.keys.conversation_lock(key), "someone else", px=1500)  # busy for a moment
    await asyncio.gather(
        click(first_process, slack, "answer_regenerate", first),
        click(second_process, slack, "answer_regenerate", first),
    )
    await wait_for_reply(slack, "C0GENERAL", root, "Second answer.")
    await settle(2.0)
    assert len(claude.requests) == 2, "one call for the question, one for a single regeneration"
    shown = "\n".join(m.text for m in bot_messages(slack, "C0GENERAL", root))
    assert "Third answer." not in shown
    stored = await store.load(key)
    assert [(t.role, t.text) for t in stored.turns] == [("user", "what is 6 times 7?"), ("assistant", "Second answer.")]
