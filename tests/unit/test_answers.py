"""Stopping an answer: the model stream is cancelled in its own task, and the call is billed for what it used."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from bot.core.answers import (
    STOPPED_TOOL_RESULT,
    Answers,
    Interrupt,
    is_latest_question,
    stoppable_call,
    stopped_results,
)
from bot.core.assistant import thread_title
from bot.core.conversation import ConversationKey, IncomingMessage, TextBlock, ToolCallBlock, ToolResultBlock, Turn
from bot.core.events import ModelEvent, ModelTurnComplete, TextDelta, Usage, UsageSoFar
from bot.core.ports import ModelRequest

REQUEST = ModelRequest(model="claude-test", max_tokens=100, system=("Be brief.",), turns=(Turn.user("x" * 400),))


class GatedModel:
    """Reports usage, writes `first`, then waits forever (until cancelled), like a model stuck mid-answer."""

    def __init__(self, first: str) -> None:
        self.first = first
        self.cancelled = asyncio.Event()
        self.tasks: set[asyncio.Task[object] | None] = set()

    async def stream(self) -> AsyncIterator[ModelEvent]:
        self.tasks.add(asyncio.current_task())
        try:
            yield UsageSoFar(Usage(input_tokens=25, output_tokens=1, cache_read_tokens=7), "claude-test-1")
            yield TextDelta(self.first)
            self.tasks.add(asyncio.current_task())
            await asyncio.Event().wait()
            yield TextDelta("never")
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


async def collect(events: AsyncIterator[object]) -> list[object]:
    return [event async for event in events]


async def test_a_stop_cancels_the_model_stream_and_bills_what_it_used() -> None:
    interrupt, model = Interrupt(), GatedModel("Twelve chars")
    seen: list[object] = []

    async def consume() -> None:
        async for event in stoppable_call(interrupt, model.stream(), REQUEST):
            seen.append(event)
            if isinstance(event, TextDelta):
                interrupt.fire()

    await asyncio.wait_for(consume(), 5)
    await asyncio.wait_for(model.cancelled.wait(), 5)
    assert len(model.tasks) == 1  # the SDK stream was stepped and closed in one task
    assert seen[0] == TextDelta("Twelve chars")
    stopped = seen[-1]
    assert isinstance(stopped, ModelTurnComplete) and stopped.stop_reason == "stopped"
    assert stopped.blocks == (TextBlock(text="Twelve chars"),)
    assert stopped.model == "claude-test-1"
    # Input as reported; output as reported plus the text written since, at about four characters a token.
    assert stopped.usage == Usage(input_tokens=25, output_tokens=1 + 3, cache_read_tokens=7)


async def test_a_stop_before_anything_came_back_bills_the_estimated_prompt() -> None:
    interrupt = Interrupt()

    async def silent() -> AsyncIterator[ModelEvent]:
        await asyncio.Event().wait()
        yield TextDelta("never")

    async def stop_soon() -> None:
        await asyncio.sleep(0.05)
        interrupt.fire()

    stopper = asyncio.create_task(stop_soon())
    [stopped] = await asyncio.wait_for(collect(stoppable_call(interrupt, silent(), REQUEST)), 5)
    await stopper
    assert isinstance(stopped, ModelTurnComplete) and stopped.blocks == ()
    assert stopped.usage.input_tokens > 100 and stopped.usage.output_tokens == 0


async def test_a_call_stopped_before_it_started_is_not_made_and_costs_nothing() -> None:
    interrupt, model = Interrupt(), GatedModel("x")
    interrupt.fire()
    [stopped] = await collect(stoppable_call(interrupt, model.stream(), REQUEST))
    assert isinstance(stopped, ModelTurnComplete) and stopped.usage == Usage()
    assert model.tasks == set()  # the stream never started


async def test_without_a_stop_the_call_passes_through_and_errors_surface() -> None:
    async def failing() -> AsyncIterator[ModelEvent]:
        yield TextDelta("a")
        raise RuntimeError("model broke")

    events: list[object] = []
    try:
        async for event in stoppable_call(Interrupt(), failing(), REQUEST):
            events.append(event)
    except RuntimeError as error:
        assert str(error) == "model broke"
    else:
        raise AssertionError("the model's error was swallowed")
    assert events == [TextDelta("a")]


def test_stopped_tool_calls_get_an_error_result_each_so_the_thread_can_continue() -> None:
    calls = [ToolCallBlock(id="a", name="read_thread", input={}), ToolCallBlock(id="b", name="fetch_url", input={})]
    done = ToolResultBlock(tool_call_id="b", text="page")
    results = stopped_results(calls, [done])
    assert [r.tool_call_id for r in results] == ["a", "b"]
    assert results[0].is_error and results[0].text == STOPPED_TOOL_RESULT
    assert results[1] == done


def test_only_the_threads_last_question_can_be_answered_again() -> None:
    question = Turn.user("q1")
    tool_call = Turn(role="assistant", blocks=(ToolCallBlock(id="t", name="x", input={}),))
    tool_result = Turn(role="user", blocks=(ToolResultBlock(tool_call_id="t", text="r"),))
    answer = Turn(role="assistant", blocks=(TextBlock(text="a1"),))
    turns = [question, tool_call, tool_result, answer]
    assert is_latest_question(turns, 0)
    assert not is_latest_question([*turns, Turn.user("q2"), answer], 0)
    assert is_latest_question([*turns, Turn.user("q2"), answer], 4)
    assert not is_latest_question(turns, 3)  # an answer is not a question
    assert not is_latest_question(turns, 9)


def test_a_pane_thread_is_titled_with_its_first_question_on_one_line() -> None:
    assert thread_title("  How do I\n  rotate a key? ") == "How do I rotate a key?"
    long = thread_title("Please explain " + "very " * 30 + "carefully")
    assert len(long) <= 60 and long.endswith("…") and not long.endswith(" …")
    assert thread_title("<@U123> what now?") == "what now?"
    assert thread_title("") == "Shared a file"


class SwallowingStore:
    """An answer store whose Stop check turns a cancellation into an outage, as a Redis call racing its own socket
    timeout could: the poller must still end when the answer does."""

    def __init__(self) -> None:
        self.checks = 0

    async def stop_requested(self, workspace_id: str, answer_id: str) -> bool:
        self.checks += 1
        try:
            await asyncio.sleep(0.05)
        except asyncio.CancelledError:
            from bot.core.errors import StorageUnavailable

            raise StorageUnavailable("timed out") from None
        return False


async def test_the_stop_watcher_ends_with_its_answer_even_when_a_check_swallows_cancellation() -> None:
    from bot.core.answers import Answers
    from bot.core.conversation import ConversationKey, IncomingMessage

    store = SwallowingStore()
    answers = Answers(store, poll_s=0.01)  # type: ignore[arg-type]
    message = IncomingMessage(ConversationKey("T1", "C1", "1.1"), "1.2", "U1", "hi", answer_id="a1")
    async with asyncio.timeout(2):  # used to hang here for good
        async with answers.watch(message):
            await asyncio.sleep(0.1)
    checks = store.checks
    await asyncio.sleep(0.1)
    assert store.checks == checks  # and it stopped checking


class FlakySignals:
    """StopSignals whose first subscription dies of an unexpected error; the second one hears Stops."""

    def __init__(self) -> None:
        self.subscriptions = 0
        self.on_stop: object = None
        self.ready = asyncio.Event()

    async def follow_stops(self, on_stop: object, on_ready: object) -> None:
        self.subscriptions += 1
        if self.subscriptions == 1:
            raise RuntimeError("a bug in the listener")
        self.on_stop = on_stop
        await on_ready()  # type: ignore[operator]
        self.ready.set()
        await asyncio.Event().wait()


class FlagStore(SwallowingStore):
    def __init__(self, stopped: set[str]) -> None:
        super().__init__()
        self.stopped = stopped

    async def stop_requested(self, workspace_id: str, answer_id: str) -> bool:
        return answer_id in self.stopped


async def test_the_stop_watcher_logs_an_unexpected_failure_and_listens_again(caplog: object) -> None:
    from bot.core.answers import Answers
    from bot.core.conversation import ConversationKey, IncomingMessage

    signals = FlakySignals()
    answers = Answers(FlagStore({"missed"}), signals=signals)  # type: ignore[arg-type]
    heard = IncomingMessage(ConversationKey("T1", "C1", "1.1"), "1.2", "U1", "hi", answer_id="a1")
    missed = IncomingMessage(ConversationKey("T1", "C1", "1.3"), "1.4", "U1", "hi", answer_id="missed")
    async with answers.watch(heard) as interrupt, answers.watch(missed) as missed_interrupt:
        await asyncio.wait_for(signals.ready.wait(), 3)  # it came back after the failure
        assert missed_interrupt.stopped  # a Stop requested while it was down is read from its flag
        assert not interrupt.stopped
        signals.on_stop("T1", "a1")  # type: ignore[operator]
        assert interrupt.stopped
    assert "the Stop watcher failed" in caplog.text  # type: ignore[attr-defined]
    await answers.close()


async def test_a_stop_heard_just_before_its_answer_starts_watching_still_stops_it() -> None:
    from bot.core.answers import Answers
    from bot.core.conversation import ConversationKey, IncomingMessage

    signals = FlakySignals()
    signals.subscriptions = 1  # no failure this time
    answers = Answers(FlagStore(set()), signals=signals)  # type: ignore[arg-type]
    first = IncomingMessage(ConversationKey("T1", "C1", "1.1"), "1.2", "U1", "hi", answer_id="a1")
    async with answers.watch(first):
        await asyncio.wait_for(signals.ready.wait(), 1)
        signals.on_stop("T1", "a2")  # type: ignore[operator]
    second = IncomingMessage(ConversationKey("T1", "C1", "1.3"), "1.4", "U1", "hi", answer_id="a2")
    async with answers.watch(second) as interrupt:
        assert interrupt.stopped
    await answers.close()


class BrokenOnceStore(FlagStore):
    """Its first Stop check fails with an unexpected error (a bug, a protocol surprise); later ones work."""

    def __init__(self, stopped: set[str]) -> None:
        super().__init__(stopped)
        self.failed = False

    async def stop_requested(self, workspace_id: str, answer_id: str) -> bool:
        if not self.failed:
            self.failed = True
            raise RuntimeError("a bug in the store")
        return await super().stop_requested(workspace_id, answer_id)


async def test_the_polling_stop_check_logs_an_unexpected_failure_and_keeps_the_answer_stoppable(
    caplog: object,
) -> None:
    from bot.core.answers import Answers
    from bot.core.conversation import ConversationKey, IncomingMessage

    answers = Answers(BrokenOnceStore({"a1"}), poll_s=0.01)  # type: ignore[arg-type]
    message = IncomingMessage(ConversationKey("T1", "C1", "1.1"), "1.2", "U1", "hi", answer_id="a1")
    async with answers.watch(message) as interrupt:
        for _ in range(300):
            if interrupt.stopped:
                break
            await asyncio.sleep(0.01)
        assert interrupt.stopped  # the Stop requested after the failure still stops it
    assert "Stop check failed" in caplog.text  # type: ignore[attr-defined]


def test_an_interrupted_answer_belongs_to_the_last_question_only_while_no_answer_follows_it() -> None:
    from bot.core.interrupts import interrupted_question

    asked = Turn(role="user", blocks=(TextBlock(text="q2"),), author_id="U1")
    earlier = [Turn.user("q1", author_id="U1"), Turn(role="assistant", blocks=(TextBlock(text="a1"),))]
    tool_call = Turn(role="assistant", blocks=(ToolCallBlock(id="t", name="x", input={}),))
    tool_result = Turn(role="user", blocks=(ToolResultBlock(tool_call_id="t", text="r"),))
    assert interrupted_question([*earlier, asked], "U1") == 2  # died before any answer turn was saved
    assert interrupted_question([*earlier, asked, tool_call, tool_result], "U1") == 2  # died after a tool round
    assert interrupted_question(earlier, "U1") is None  # died before its question was stored: q1 was answered
    assert interrupted_question([*earlier, asked], "U2") is None  # someone else's question
    assert interrupted_question([], "U1") is None


async def answered_and_finished(answers: Answers, persona: str) -> None:
    """What the core does for answer a1 (asked by U1), in a task of its own as the read-ahead runs it: begin, watch,
    store the question, finish."""
    message = IncomingMessage(ConversationKey("T1", "C1", "1.1"), "1.2", "U1", "hi", answer_id="a1")

    async def core() -> None:
        await answers.begin(message, shown_in="1.1")
        async with answers.watch(message):
            await answers.asked(message, persona, 0)
            await answers.finish(message, "done")

    await asyncio.create_task(core())


async def test_a_shown_answer_stays_live_and_renewed_until_its_surface_has_shown_its_end() -> None:
    """The core finishes an answer (in the task reading it ahead) before Slack shows its final message: until the
    surface has, the answer stays live, renewed by the task showing it, so a process dying meanwhile leaves it to
    another to finish."""
    from datetime import UTC, datetime, timedelta

    from bot.core.answers import HEARTBEAT_S, LIVE_FOR_S
    from bot.storage.memory_answers import MemoryAnswerStore

    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    store = MemoryAnswerStore(record_ttl_s=3600)
    answers = Answers(store, clock=lambda: now[0], poll_s=0.01)

    async with answers.shown("T1", "a1"):
        await answered_and_finished(answers, "default")  # before its final message is shown
        record = await store.get_answer("T1", "a1")
        assert record is not None and record.state == "running"
        now[0] += timedelta(seconds=HEARTBEAT_S)
        await answers.keep_alive()  # renewed, though the task that wrote it is done
        now[0] += timedelta(seconds=LIVE_FOR_S - 1)
        assert await answers.claim_lapsed() == []  # not lapsed: nobody takes it over from a live process
    record = await store.get_answer("T1", "a1")
    assert record is not None and (record.state, record.persona, record.question_index) == ("done", "default", 0)
    later = (now[0] + timedelta(hours=1)).timestamp()
    assert await store.claim_lapsed(later, later, 10) == []  # no longer live
    await answers.close()


async def test_an_answer_finished_without_a_surface_showing_it_is_closed_at_once() -> None:
    from bot.core.answers import Answers
    from bot.core.conversation import ConversationKey, IncomingMessage
    from bot.storage.memory_answers import MemoryAnswerStore

    store = MemoryAnswerStore(record_ttl_s=3600)
    answers = Answers(store, poll_s=0.01)
    message = IncomingMessage(ConversationKey("T1", "C1", "1.1"), "1.2", "U1", "hi", answer_id="a1")
    await answers.begin(message, shown_in="1.1")
    await answers.finish(message, "stopped")
    record = await store.get_answer("T1", "a1")
    assert record is not None and record.state == "stopped"
    await answers.close()


async def test_a_click_on_the_final_buttons_finds_the_answer_finished_before_its_close_is_written() -> None:
    """The final message (with 👍 👎 Regenerate) is on screen a moment before the close write: a click in that moment
    counts under the answer's persona and sees it finished (CI once counted such a vote under "(unknown)")."""
    from datetime import date

    from bot.storage.memory_answers import MemoryAnswerStore

    store = MemoryAnswerStore(record_ttl_s=3600)
    answers = Answers(store, poll_s=0.01)

    async with answers.shown("T1", "a1"):
        await answered_and_finished(answers, "sql_expert")
        record = await answers.record("T1", "a1")
        assert record is not None and (record.state, record.persona) == ("done", "sql_expert")
        assert await answers.vote("T1", "a1", "U2", "up") == "ok"
        assert await answers.stop("T1", "a1", "U1") == "finished"
    day = date.fromisoformat(record.day)
    assert await store.votes("T1", day, day) == {"sql_expert": (1, 0)}
    await answers.close()
