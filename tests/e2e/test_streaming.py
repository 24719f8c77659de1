"""Long and fast answers: continued across messages without loss, edits paced within Slack's limits."""

from __future__ import annotations

import asyncio
import re

import pytest

from bot.core.ports import Allowance
from bot.storage.call_windows import RedisCallWindows
from tests.e2e.conftest import BotFactory, RunningBot
from tests.e2e.helpers import bot_messages, wait_for_reply
from tests.fakes.anthropic_api import FakeAnthropic, TextReply
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import app_mention, event_callback


def long_answer() -> str:
    paragraphs = [f"Paragraph {i}: " + ("lorem ipsum dolor sit amet " * 12).strip() + "." for i in range(20)]
    code = "```python\n" + "\n".join(f"print('line {i}')" for i in range(120)) + "\n```"
    return "\n\n".join([*paragraphs[:10], code, *paragraphs[10:], "The end."])


async def test_a_long_answer_continues_in_further_messages_with_nothing_cut(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    text = long_answer()
    chunks = [text[i : i + 400] for i in range(0, len(text), 400)]
    claude.script(TextReply(text, chunks=chunks))
    root = "1700000300.000100"
    await running.sender.send_event(event_callback(app_mention("write a lot", ts=root)))
    messages = await wait_for_reply(slack, "C0GENERAL", root, "The end.", timeout=20)
    assert len(messages) >= 3
    assert all(len(m.text) <= 3500 for m in messages)
    shown = "\n".join(m.text for m in messages)
    for i in range(20):
        assert f"Paragraph {i}:" in shown
    for i in range(120):
        assert f"print('line {i}')" in shown
    # Every message has balanced code fences: a split block is closed and reopened.
    assert all(m.text.count("```") % 2 == 0 for m in messages)
    assert all(call.ok for call in slack.calls if call.method.startswith("chat."))  # Slack refused nothing


async def test_edits_are_paced_per_message(running: RunningBot, slack: FakeSlack, claude: FakeAnthropic) -> None:
    words = [f"w{i} " for i in range(40)]
    claude.script(TextReply("".join(words), chunks=words, chunk_delay_s=0.05))  # about 2 s of streaming
    root = "1700000301.000100"
    await running.sender.send_event(event_callback(app_mention("go", ts=root)))
    await wait_for_reply(slack, "C0GENERAL", root, "w39")
    updates = slack.calls_to("chat.update")
    # 40 deltas in ~2 s at a 1 s pace: the first text at once, about one edit a second, then the final one.
    assert 2 <= len(updates) <= 5
    assert not updates[-1].params["text"].endswith("▍")


async def test_an_answers_web_api_calls_share_keep_alive_connections(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    words = [f"w{i} " for i in range(30)]
    claude.script(TextReply("".join(words), chunks=words, chunk_delay_s=0.05))
    root = "1700000304.000100"
    await running.sender.send_event(event_callback(app_mention("go", ts=root)))
    await wait_for_reply(slack, "C0GENERAL", root, "w29")
    calls = [c for c in slack.calls if c.method != "auth.test"]
    assert len(calls) >= 4  # placeholder, who asks, which channel, edits
    # A new connection per call would mean a TCP and TLS handshake with Slack for every edit.
    assert len({c.peer for c in calls}) <= 3  # the placeholder and the two look-ups may run side by side


@pytest.mark.slow
async def test_many_answers_in_one_workspace_stay_within_its_chat_update_budget(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    # A scaled-down Tier 3: Slack allows 7 edits a minute here and the bot spends 6. Twelve answers at once cannot
    # each be edited; those the budget cannot finish are posted when ready instead. None waits a minute for its turn.
    slack.enforce_rate_limit("chat.update", per_minute=7)
    running = await start_bot(workspace_edits_per_minute=6)
    words = [f"w{i} " for i in range(10)]
    claude.default_reply = TextReply("".join(words), chunks=words, chunk_delay_s=0.05)
    roots = [f"1700000302.00{i:04d}" for i in range(12)]
    for root in roots:
        await running.sender.send_event(event_callback(app_mention("go", ts=root)))
    for root in roots:
        await wait_for_reply(slack, "C0GENERAL", root, "w9", timeout=20)
    assert slack.rate_limited_count == 0
    assert len(slack.calls_to("chat.update")) <= 6
    for root in roots:  # every answer shown once, in full
        assert [m.text for m in bot_messages(slack, "C0GENERAL", root)] == ["".join(words).strip()]


async def test_an_answer_in_a_workspace_without_edits_to_spare_is_posted_once_complete(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await start_bot(workspace_edits_per_minute=6)
    windows = RedisCallWindows(running.bot.store.client, running.bot.store.keys)
    for _ in range(6):  # other processes have just spent the workspace's edits
        assert await windows.take([Allowance("chat.update", "T0001", 6)]) == 0
    claude.script(TextReply("All done in one go.", chunks=["All done ", "in one go."], chunk_delay_s=0.1))
    root = "1700000305.000100"
    await running.sender.send_event(event_callback(app_mention("go", ts=root)))
    [answer] = await wait_for_reply(slack, "C0GENERAL", root, "All done in one go.")
    assert answer.edits == ["All done in one go."]  # no placeholder, no edit: one post of the finished text
    assert slack.calls_to("chat.update") == []


async def test_a_long_answer_without_edits_to_spare_is_posted_in_markdown_aware_parts(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await start_bot(workspace_edits_per_minute=6, max_message_chars=600)
    windows = RedisCallWindows(running.bot.store.client, running.bot.store.keys)
    for _ in range(6):
        assert await windows.take([Allowance("chat.update", "T0001", 6)]) == 0
    code = "```python\n" + "".join(f"x_{i} = {i}\n" for i in range(90)) + "```"
    text = "Intro paragraph.\n\n" + code + "\n\nThe end."
    claude.script(TextReply(text, chunks=[text[k : k + 40] for k in range(0, len(text), 40)], chunk_delay_s=0.01))
    root = "1700000306.000100"
    await running.sender.send_event(event_callback(app_mention("go", ts=root)))
    messages = await wait_for_reply(slack, "C0GENERAL", root, "The end.")
    assert len(messages) >= 2 and slack.calls_to("chat.update") == []
    assert all(m.edits == [m.text] for m in messages)  # each part posted once, never edited
    assert all(m.text.count("```") % 2 == 0 for m in messages)  # code blocks closed and reopened across parts
    shown = "\n".join(m.text for m in messages)
    assert all(f"x_{i} = {i}" in shown for i in range(60)) and shown.count("x_89 = 89") == 1


async def test_a_429_slows_the_answer_down_instead_of_failing_it(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    gate = asyncio.Event()
    claude.script(TextReply("Slow and steady wins.", chunks=["Slow and ", "steady wins."], gate=gate))
    slack.fail_next("chat.update", "ratelimited", status=429, retry_after=1)
    root = "1700000303.000100"
    await running.sender.send_event(event_callback(app_mention("go", ts=root)))
    await slack.wait_for("chat.update")
    gate.set()
    [answer] = await wait_for_reply(slack, "C0GENERAL", root, "steady wins.")
    assert answer.text == "Slow and steady wins."
    assert re.search("Slow", answer.edits[-1])
