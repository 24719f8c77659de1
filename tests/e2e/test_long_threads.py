"""Long threads: they keep working past the context window, keep their meaning, and read earlier turns from cache."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.core.conversation import ConversationKey
from tests.e2e.conftest import BotFactory, RunningBot
from tests.e2e.helpers import STREAMING_CURSOR, bot_messages, wait_for_reply
from tests.e2e.test_answer_actions import click
from tests.fakes.anthropic_api import FakeAnthropic, RecordedRequest, TextReply, ToolUseReply, estimate_input_tokens
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import app_mention, event_callback, message

ROOT = "1700001000.000100"
THREAD = ConversationKey("T0001", "C0GENERAL", ROOT)
SUMMARY = "- Code name BLUEBIRD.\n- Decision: the budget is 4,217 euros (agreed by Ada)."
FILLER = " ".join(f"word{i}" for i in range(130))  # ~900 characters of padding per message


@pytest.fixture
async def claude() -> AsyncIterator[FakeAnthropic]:
    """Token accounting on: usage is counted from what is sent, and cache hits by prefix, like the real API."""
    async with FakeAnthropic(token_accounting=True) as fake:
        yield fake


def is_summary_request(request: RecordedRequest) -> bool:
    return "running summary" in request.system_text


def answer_or_summarise(request: RecordedRequest) -> TextReply:
    if is_summary_request(request):
        return TextReply(SUMMARY)
    return TextReply(f"Noted. {FILLER}", chunks=[f"Noted. {FILLER}"])


async def say(running: RunningBot, slack: FakeSlack, text: str, expect: str = "Noted.") -> None:
    """Post a follow-up in the thread and wait until its answer is complete."""
    before = len(bot_messages(slack, "C0GENERAL", ROOT))
    await running.sender.send_event(event_callback(message(text, thread_ts=ROOT)))
    for _ in range(1_000):
        shown = bot_messages(slack, "C0GENERAL", ROOT)
        if len(shown) > before and expect in shown[-1].text and not shown[-1].text.endswith(STREAMING_CURSOR):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no complete answer to {text[:30]!r}")


async def long_thread(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, *, folded_turns_kept: int | None = None
) -> RunningBot:
    """A thread that outgrows an 8,000-token window: the first message, a decision, then many more messages."""
    running = await start_bot(
        context_token_limit=8_000,
        claude_max_tokens=1_000,
        context_keep_recent_turns=2,
        workspace_edits_per_minute=6_000,  # many quick turns: not what the edit budget is tested on
    )
    if folded_turns_kept is not None:  # not a setting (keys.MAX_FOLDED_TURNS_KEPT): a few, so trimming shows soon
        running.bot.store._folded_turns_kept = folded_turns_kept
    claude.default_reply = answer_or_summarise  # type: ignore[assignment]
    await running.sender.send_event(event_callback(app_mention(f"Kickoff: code name BLUEBIRD. {FILLER}", ts=ROOT)))
    await wait_for_reply(slack, "C0GENERAL", ROOT, "Noted.")
    await say(running, slack, f"The budget we agreed is 4,217 euros. {FILLER}")
    for n in range(2, 16):
        await say(running, slack, f"note #{n}. {FILLER}")
        if any(is_summary_request(r) for r in claude.requests):
            break
    return running


async def test_a_thread_longer_than_the_window_keeps_working_with_summary_first_message_and_recent_turns(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await long_thread(start_bot, slack, claude)
    summary_calls = [r for r in claude.requests if is_summary_request(r)]
    assert len(summary_calls) == 1, "the thread outgrew 70% of the window and was folded once, in one chunk"
    summary_call = summary_calls[0]
    assert summary_call.model == "claude-haiku-4-5"  # the cheap, fast model
    assert "decisions" in summary_call.system_text and "commitments" in summary_call.system_text
    assert "4,217 euros" in summary_call.last_user_text()  # the decision is what gets summarised

    folded = claude.requests[claude.requests.index(summary_call) + 1]
    assert SUMMARY not in folded.system_text  # a summary repeats what people wrote: data, not instructions
    texts = [str(m["content"]) for m in folded.messages]
    opening = folded.messages[0]["content"][0]["text"]
    assert "<conversation_summary>" in opening and SUMMARY.strip() in opening
    assert "BLUEBIRD" in texts[0] and "folded into the summary" in texts[0]  # the first message stays verbatim
    assert not any("budget we agreed" in t for t in texts)  # the folded middle is gone from the request...
    assert "note #" in texts[-1]  # ...the latest turns are there verbatim
    assert "search_history" in [t["name"] for t in folded.tools]

    # ...but not from Redis: the folded turns are kept, read only when searched (an answer reads from the fold on).
    stored = await running.bot.store.load(THREAD)
    assert stored.fold is not None and stored.fold.summary == SUMMARY
    assert not any("4,217 euros" in turn.text for turn in stored.turns)
    assert any("4,217 euros" in turn.text for _, turn in await running.bot.store.folded(THREAD, stored.fold.upto))

    # Many more turns later the thread still answers, and each request stays within the window.
    for n in range(20, 28):
        await say(running, slack, f"later note #{n}. {FILLER}")
    sizes = [estimate_input_tokens(r.body) + r.body["max_tokens"] for r in claude.requests if not is_summary_request(r)]
    assert max(sizes) <= 8_000, sizes  # no request ever exceeded the window (the fake counts as the API would)
    assert sizes[-1] < sizes[len(sizes) // 2] * 1.5  # once folding starts, the size stays bounded
    assert len([r for r in claude.requests if is_summary_request(r)]) >= 2  # folded again, in chunks


async def test_search_history_returns_the_exact_words_of_folded_turns(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await long_thread(start_bot, slack, claude)
    claude.script(ToolUseReply("search_history", {"query": '"budget we agreed"'}), TextReply("It was 4,217 euros."))
    await say(running, slack, "What exact budget figure did we agree?", expect="It was 4,217 euros.")
    [result] = claude.requests[-1].tool_results()
    assert "The budget we agreed is 4,217 euros." in str(result["content"])
    assert not result.get("is_error")


async def test_a_thread_that_goes_on_and_on_keeps_a_bounded_list_and_answers_as_before(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """Fold after fold, Redis keeps turn 0, a few folded turns and the unfolded ones; answers still see the first
    message, the summary and the latest turns, and search_history still finds the recently folded ones."""
    running = await long_thread(start_bot, slack, claude, folded_turns_kept=2)
    for n in range(20, 34):
        await say(running, slack, f"later note #{n}. {FILLER}")
    store = running.bot.store
    stored = await store.load(THREAD)
    assert stored.fold is not None
    length = await store.client.llen(store.keys.conversation(THREAD))
    base = int(await store.client.hget(store.keys.conversation_meta(THREAD), "base"))
    assert base > 0 and length + base == len(stored.turns)  # trimmed, and indexes still count every turn
    assert length <= 1 + 2 + (len(stored.turns) - stored.fold.upto)  # turn 0, 2 folded turns, the unfolded ones
    summaries = [r for r in claude.requests if is_summary_request(r)]
    assert len(summaries) >= 3

    last = claude.requests[-1]
    texts = [str(m["content"]) for m in last.messages]
    assert SUMMARY.strip() in last.messages[0]["content"][0]["text"]
    assert "BLUEBIRD" in texts[0] and "folded into the summary" in texts[0]
    assert "later note #33" in texts[-1]
    assert [t.text for t in stored.turns[stored.fold.upto :]][-2].startswith("later note #33")  # nothing lost

    [(_, kept_question), _] = await store.folded(THREAD, stored.fold.upto)  # the 2 kept: the last folded exchange
    phrase = kept_question.text.split(".")[0]
    claude.script(ToolUseReply("search_history", {"query": f'"{phrase}"'}), TextReply("Found it."))
    await say(running, slack, "What did that note say?", expect="Found it.")
    [result] = claude.requests[-1].tool_results()
    assert phrase in str(result["content"]) and not result.get("is_error")

    # Regenerate finds its question by the absolute index recorded with the answer, though the list was trimmed.
    before = await store.load(THREAD)
    claude.script(TextReply("Regenerated."))
    await click(running, slack, "answer_regenerate", bot_messages(slack, "C0GENERAL", ROOT)[-1])
    await wait_for_reply(slack, "C0GENERAL", ROOT, "Regenerated.")
    resent = claude.requests[-1]
    assert "What did that note say?" in str(resent.messages[-1]) and "Found it." not in str(resent.messages)
    after = await store.load(THREAD)
    assert [t.text for t in after.turns[-2:]] == [before.turns[-4].text, "Regenerated."]
    assert len(after.turns) == len(before.turns) - 2  # the tool call, its result and the answer became one answer


async def test_cache_breakpoints_sit_on_the_stable_prefix_and_the_conversation(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await long_thread(start_bot, slack, claude)
    await say(running, slack, "one more")
    body: dict[str, Any] = claude.requests[-1].body
    assert body["cache_control"] == {"type": "ephemeral"}  # automatic: the newest block
    assert not any("cache_control" in tool for tool in body["tools"])  # covered by the system breakpoint
    marked = [i for i, part in enumerate(body["system"]) if "cache_control" in part]
    assert marked == [len(body["system"]) - 2]  # the end of the persona's stable text
    assert "cache_control" not in body["system"][-1]  # the day and place come after the cached prefix
    assert SUMMARY in body["messages"][0]["content"][0]["text"]  # the summary opens the conversation, as data
    previous_turn = body["messages"][-2]["content"]
    assert "cache_control" in previous_turn[-1]  # the conversation so far is read from cache next time


async def test_prompt_caching_reads_earlier_turns_instead_of_paying_for_them_again(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await start_bot(workspace_edits_per_minute=6_000)
    claude.default_reply = answer_or_summarise  # type: ignore[assignment]
    await running.sender.send_event(event_callback(app_mention(f"Kickoff. {FILLER} {FILLER}", ts=ROOT)))
    await wait_for_reply(slack, "C0GENERAL", ROOT, "Noted.")
    for n in range(3):
        await say(running, slack, f"note #{n}. {FILLER}")
    from datetime import UTC, datetime

    today = datetime.now(UTC).date()
    report = await running.bot.core.usage.report("T0001", today, today)
    assert report.cache_read_tokens > report.input_tokens  # most of each turn came from the cache
    assert report.cache_savings_usd > 0  # and /claude-cost shows what it saved
