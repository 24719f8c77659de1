"""Answers left behind by a process that died, finished by the sweeper of a running bot (in this process).

A dead process is stood in for by what it leaves in Redis and Slack: the answer's record, live with a deadline
that has passed, its question in history, and its message as it was when the process died. The real processes'
version (SIGKILL mid-stream) is in test_processes.py.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.core import answers
from bot.core.answers import AnswerRecord
from bot.core.conversation import ConversationKey, Turn
from bot.storage.answer_store import RedisAnswerStore
from tests.e2e.conftest import BotFactory, RunningBot
from tests.e2e.helpers import action_ids, answer_id_of, bot_messages, eventually, wait_for_reply
from tests.fakes.anthropic_api import FakeAnthropic, TextReply
from tests.fakes.slack_api import FakeMessage, FakeSlack
from tests.fakes.slack_requests import app_mention, block_action, event_callback

pytestmark = pytest.mark.timeout(60)
FINAL_BUTTONS = ["answer_good", "answer_bad", "answer_regenerate"]


def answer_store(running: RunningBot) -> RedisAnswerStore:
    return RedisAnswerStore(running.bot.store.client, running.bot.store.keys, record_ttl_s=3600)


async def left_behind(running: RunningBot, slack: FakeSlack, root: str, answer_id: str, *, stream_ts: str = "") -> None:
    """What a process that died while answering "what is two plus two?" in `root` leaves in Redis (and the
    question in Slack)."""
    slack.add_history("C0GENERAL", [{"ts": root, "user": "U0USER", "text": "<@UBOT> what is two plus two?"}])
    key = ConversationKey("T0001", "C0GENERAL", root)
    await running.bot.store.append(key, Turn.user("what is two plus two?", author_id="U0USER"), persona="default")
    record = AnswerRecord("T0001", answer_id, "C0GENERAL", root, "U0USER", shown_in=root, stream_ts=stream_ts)
    await answer_store(running).open_answer(record, live_until=time.time() - 1, now=time.time())


async def half_streamed(running: RunningBot, root: str) -> str:
    """A native stream started and appended to, never stopped: as its process left it."""
    client = running.bot.app.client
    started = await client.chat_startStream(
        channel="C0GENERAL", thread_ts=root, recipient_user_id="U0USER", recipient_team_id="T0001"
    )
    await client.chat_appendStream(channel="C0GENERAL", ts=started["ts"], markdown_text="Two plus two is")
    return str(started["ts"])


async def closed_record(running: RunningBot, answer_id: str) -> AnswerRecord:
    for _ in range(200):
        record = await answer_store(running).get_answer("T0001", answer_id)
        if record is not None and record.state != "running":
            return record
        await asyncio.sleep(0.05)
    raise AssertionError(f"answer {answer_id} was never closed")


def interrupted_in(slack: FakeSlack, root: str) -> FakeMessage | None:
    return next((m for m in bot_messages(slack, "C0GENERAL", root) if "interrupted" in m.text), None)


async def test_a_native_answer_notes_its_stream_while_live_and_leaves_no_live_entry_once_done(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await start_bot(slack_native_streaming="true")
    gate = asyncio.Event()
    claude.script(TextReply("Two plus two is four.", chunks=["Two plus two ", "is four."], gate=gate))
    root = "1700009300.000100"
    await running.sender.send_event(event_callback(app_mention("what is two plus two?", ts=root)))
    streaming = await eventually(
        lambda: next((m for m in bot_messages(slack, "C0GENERAL", root) if m.streaming and m.text), None),
        "the answer streaming",
    )
    live = running.bot.store.keys.live_answers()
    [member] = await running.bot.store.client.zrange(live, 0, -1)
    workspace, _, answer_id = str(member).partition(" ")
    record = None
    for _ in range(100):  # noted right after the stream's first append
        record = await answer_store(running).get_answer(workspace, answer_id)
        if record is not None and record.stream_ts:
            break
        await asyncio.sleep(0.05)
    assert record is not None and record.stream_ts == streaming.ts and record.state == "running"
    gate.set()
    await wait_for_reply(slack, "C0GENERAL", root, "is four.")
    for _ in range(100):  # the answer leaves the live set in the write of its final record
        if not await running.bot.store.client.zrange(live, 0, -1):
            break
        await asyncio.sleep(0.05)
    assert await running.bot.store.client.zrange(live, 0, -1) == []
    done = await answer_store(running).get_answer(workspace, answer_id)
    assert done is not None and done.state == "done"


async def test_the_sweeper_stops_a_dead_processes_native_stream_with_a_note_and_regenerate_works(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await start_bot(slack_native_streaming="true")
    claude.script(TextReply("Four."))
    root = "1700009301.000100"
    ts = await half_streamed(running, root)
    await left_behind(running, slack, root, "deadbeef01", stream_ts=ts)

    finished = await eventually(lambda: interrupted_in(slack, root), "the stream finished as interrupted", timeout=15)
    assert finished.ts == ts and finished.stream_state == "stopped"  # stopped, not left streaming
    assert finished.text.startswith("Two plus two is") and action_ids(finished) == FINAL_BUTTONS
    record = await closed_record(running, "deadbeef01")  # closed once the message is
    assert record.state == "interrupted" and record.question_index == 0
    assert await running.bot.store.client.zrange(running.bot.store.keys.live_answers(), 0, -1) == []

    await running.sender.send_interaction(
        block_action(
            "answer_regenerate",
            value=answer_id_of(finished),
            message_ts=ts,
            thread_ts=root,
            response_url=slack.new_response_url(),
        )
    )
    await wait_for_reply(slack, "C0GENERAL", root, "Four.")
    assert "what is two plus two?" in str(claude.requests[-1].body["messages"])


async def test_a_stream_slack_already_ended_is_rewritten_with_the_note(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await start_bot(slack_native_streaming="true")
    root = "1700009302.000100"
    ts = await half_streamed(running, root)
    slack.expire_stream("C0GENERAL", ts)
    await left_behind(running, slack, root, "deadbeef02", stream_ts=ts)

    finished = await eventually(lambda: interrupted_in(slack, root), "the message rewritten", timeout=15)
    assert finished.ts == ts and finished.text.startswith("Two plus two is")
    assert action_ids(finished) == FINAL_BUTTONS


async def test_an_answer_that_died_before_showing_anything_gets_a_message_saying_so(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await start_bot()
    root = "1700009303.000100"
    await left_behind(running, slack, root, "deadbeef03")

    finished = await eventually(lambda: interrupted_in(slack, root), "a message saying so", timeout=15)
    assert action_ids(finished) == FINAL_BUTTONS and answer_id_of(finished) == "deadbeef03"
    await asyncio.sleep(6)  # another sweep: nothing is finished twice
    assert len(bot_messages(slack, "C0GENERAL", root)) == 1


async def test_a_long_answer_is_renewed_and_never_taken_over_by_another_process(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(answers, "HEARTBEAT_S", 0.5)  # production: 5 s and 15 s; here the answer outlives both
    monkeypatch.setattr(answers, "LIVE_FOR_S", 1.5)  # several times over
    writer, sweeper = await start_bot(), await start_bot()
    words = [f"w{i} " for i in range(30)]
    claude.script(TextReply("".join(words), chunks=words, chunk_delay_s=0.25))  # about 7.5 s
    root = "1700009304.000100"
    await writer.sender.send_event(event_callback(app_mention("take your time", ts=root)))
    await wait_for_reply(slack, "C0GENERAL", root, "w29", timeout=30)
    assert sweeper.bot is not writer.bot
    [answer] = bot_messages(slack, "C0GENERAL", root)
    assert not any("interrupted" in text for text in answer.edits) and action_ids(answer) == FINAL_BUTTONS


async def test_an_answer_stays_live_until_its_final_edit_is_shown(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """The model is done and the answer stored, but Slack holds its final edit back (a 429): a process dying now must
    leave the answer live, for another to finish, not its message showing Stop and the cursor for good."""
    running = await start_bot()
    gate = asyncio.Event()
    claude.script(TextReply("Two plus two is four.", chunks=["Two plus two ", "is four."], gate=gate))
    root = "1700009305.000100"
    await running.sender.send_event(event_callback(app_mention("what is two plus two?", ts=root)))
    shown = await eventually(
        lambda: next((m for m in bot_messages(slack, "C0GENERAL", root) if "Two plus two" in m.text), None),
        "the first words",
    )
    answer_id = answer_id_of(shown)
    slack.fail_next("chat.update", "ratelimited", status=429, retry_after=2)
    gate.set()
    key = ConversationKey("T0001", "C0GENERAL", root)

    async def stored() -> bool:
        turns = (await running.bot.store.load(key)).turns
        return any(turn.role == "assistant" and "is four." in str(turn.blocks) for turn in turns)

    for _ in range(100):
        if await stored():
            break
        await asyncio.sleep(0.05)
    assert await stored()
    await asyncio.sleep(0.3)  # the answer's end, in the core, is well past
    assert "answer_stop" in action_ids(slack.message("C0GENERAL", shown.ts))  # its final edit still held back
    live = await running.bot.store.client.zrange(running.bot.store.keys.live_answers(), 0, -1)
    assert f"T0001 {answer_id}" in live
    assert (await answer_store(running).get_answer("T0001", answer_id)).state == "running"  # type: ignore[union-attr]

    await wait_for_reply(slack, "C0GENERAL", root, "is four.")
    record = await closed_record(running, answer_id)
    assert record.state == "done" and record.question_index == 0
    assert await running.bot.store.client.zrange(running.bot.store.keys.live_answers(), 0, -1) == []
