"""Answers as things people act on: Stop while one is being written, Regenerate and 👍 / 👎 once it is done.

Each answer gets a record (who asked, where, with which persona, where its question sits in the thread) in a store
that every bot process shares, because a click may reach any process; while it runs, the process writing it keeps the
record in memory too, so updating it costs one write and no read. Stop is a flag in that store and a signal every
process hears (StopSignals): it cancels the model stream, keeps the text written so far and bills what was used.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal, Protocol, TypeVar, assert_never

from bot.core.conversation import ConversationKey, IncomingMessage, TextBlock, ToolCallBlock, ToolResultBlock, Turn
from bot.core.errors import BotError, StorageUnavailable
from bot.core.events import (
    AttemptRestarted,
    ModelEvent,
    ModelTurnComplete,
    TextDelta,
    ThinkingStarted,
    ToolRunning,
    Usage,
    UsageSoFar,
)
from bot.core.metering import estimate_input_tokens
from bot.core.ports import ModelRequest

log = logging.getLogger(__name__)
T = TypeVar("T")

STOP_POLL_S = 1.0  # without StopSignals (tests, a store without pub/sub): how often the Stop flag is read
STOP_RETRY_S = (0.5, 1.0, 2.0, 5.0)  # waits before the Stop watcher listens again after a failure
RECENT_STOPS = 10_000  # Stops heard lately, for answers that start watching just after their Stop was clicked
CHARS_PER_TOKEN = 4  # output tokens of a stopped call are estimated from its text: the API reports them at the end
STOPPED_TOOL_RESULT = "Stopped by the user before this tool finished."

AnswerState = Literal["running", "done", "stopped", "failed", "replaced"]
Vote = Literal["up", "down"]
# What a model call shows the user; UsageSoFar stays inside the core.
ShownModelEvent = TextDelta | ThinkingStarted | ToolRunning | AttemptRestarted | ModelTurnComplete


class CannotRegenerate(BotError):
    """Regenerate was clicked on an answer that cannot be answered again (not the asker's, not the latest...)."""


@dataclass(frozen=True, slots=True)
class AnswerRecord:
    workspace_id: str
    answer_id: str
    channel_id: str
    thread_id: str
    asker_id: str
    shown_in: str = ""  # where the chat surface shows it (Slack: the thread's ts; "" for a top-level DM)
    persona: str = ""
    question_index: int | None = None  # the question's turn in the conversation, once it is stored
    day: str = ""  # the UTC date it was asked (ISO): its feedback counts on this day
    state: AnswerState = "running"

    @property
    def key(self) -> ConversationKey:
        return ConversationKey(self.workspace_id, self.channel_id, self.thread_id)


@dataclass(frozen=True, slots=True)
class PersonaFeedback:
    persona: str
    up: int
    down: int


class AnswerStore(Protocol):
    async def put_answer(self, record: AnswerRecord) -> None: ...

    async def get_answer(self, workspace_id: str, answer_id: str) -> AnswerRecord | None: ...

    async def request_stop(self, workspace_id: str, answer_id: str) -> None: ...

    async def stop_requested(self, workspace_id: str, answer_id: str) -> bool: ...

    async def record_vote(self, record: AnswerRecord, user_id: str, vote: Vote) -> bool:
        """One vote per person per answer, counted on the answer's day for its persona; a changed vote moves.

        False when the person had already voted this way.
        """
        ...

    async def votes(self, workspace_id: str, start: date, end: date) -> dict[str, tuple[int, int]]:
        """(up, down) per persona for answers asked from `start` to `end` (inclusive)."""
        ...


class StopSignals(Protocol):
    async def follow_stops(self, on_stop: Callable[[str, str], None], on_ready: Callable[[], Awaitable[None]]) -> None:
        """Call `on_stop(workspace_id, answer_id)` for every Stop requested anywhere, until the link breaks (raises).

        `on_ready` is awaited once listening, so Stops requested while nobody listened can be read from the flags.
        """
        ...


class Interrupt:
    """Fires when an answer must stop; a stream watched through it ends early and its producer is cancelled."""

    def __init__(self) -> None:
        self._fired = asyncio.Event()

    def fire(self) -> None:
        self._fired.set()

    @property
    def stopped(self) -> bool:
        return self._fired.is_set()

    async def until_stopped(self, source: AsyncIterator[T]) -> AsyncIterator[T]:
        """Items of `source` until Stop. The source runs in one task of its own (an SDK stream must be entered and
        left in the same task), which is cancelled at Stop: that closes the model's HTTP stream."""
        if self.stopped:
            await _close(source)
            return
        queue: asyncio.Queue[tuple[Literal["item", "end", "error"], object]] = asyncio.Queue()

        async def pump() -> None:
            try:
                async for item in source:
                    await queue.put(("item", item))
            except Exception as error:
                await queue.put(("error", error))
            else:
                await queue.put(("end", None))

        producer = asyncio.create_task(pump())
        fired = asyncio.create_task(self._fired.wait())
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, fired}, return_when=asyncio.FIRST_COMPLETED)
                if self.stopped:
                    getter.cancel()
                    return
                kind, value = getter.result()
                if kind == "end":
                    return
                if kind == "error":
                    assert isinstance(value, Exception)
                    raise value
                yield value  # type: ignore[misc]  # "item" entries hold the source's own items
        finally:
            fired.cancel()
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer


async def _close(source: AsyncIterator[object]) -> None:
    aclose = getattr(source, "aclose", None)
    if aclose is not None:
        await aclose()


async def shown_events(source: AsyncIterator[ModelEvent]) -> AsyncIterator[ShownModelEvent]:
    """A model call's events as they are shown and stored, for answers nobody can stop."""
    async for event in source:
        if not isinstance(event, UsageSoFar):
            yield event


async def stoppable_call(
    interrupt: Interrupt, source: AsyncIterator[ModelEvent], request: ModelRequest
) -> AsyncIterator[ShownModelEvent]:
    """A model call's events until Stop; then a ModelTurnComplete ("stopped") with the text and usage so far."""
    if interrupt.stopped:  # stopped before this call was made: nothing was sent, nothing to bill
        await _close(source)
        yield ModelTurnComplete(blocks=(), usage=Usage(), stop_reason="stopped", model=request.model)
        return
    progress: UsageSoFar | None = None
    text = ""
    unreported_chars = 0  # text since the last progress report, not yet in its output estimate
    async for event in interrupt.until_stopped(source):
        match event:  # exhaustive: a new model event must be placed here (mypy --strict checks assert_never)
            case UsageSoFar():
                progress, unreported_chars = event, 0
                continue
            case TextDelta():
                text += event.text
                unreported_chars += len(event.text)
            case AttemptRestarted():
                text = ""
            case ThinkingStarted() | ToolRunning() | ModelTurnComplete():
                pass
            case _:
                assert_never(event)
        yield event
        if isinstance(event, ModelTurnComplete):
            return
    if interrupt.stopped:
        yield _stopped_call(request, progress, text, unreported_chars)


def _stopped_call(
    request: ModelRequest, progress: UsageSoFar | None, text: str, unreported_chars: int
) -> ModelTurnComplete:
    """Bill what a cancelled call used: its reported input, and output estimated from what it wrote.

    Without a progress report the request was sent but nothing came back yet: its input is estimated, since the
    provider may already have read the prompt.
    """
    if progress is None:
        usage, model = Usage(input_tokens=estimate_input_tokens(request)), request.model
        provider = "anthropic"  # unknown: nothing came back; billed at the list price
    else:
        extra = math.ceil(unreported_chars / CHARS_PER_TOKEN)
        usage = dataclasses.replace(progress.usage, output_tokens=progress.usage.output_tokens + extra)
        model, provider = progress.model, progress.provider
    blocks = (TextBlock(text=text),) if text.strip() else ()
    return ModelTurnComplete(blocks=blocks, usage=usage, stop_reason="stopped", model=model, provider=provider)


def stopped_results(calls: Sequence[ToolCallBlock], results: Sequence[ToolResultBlock]) -> list[ToolResultBlock]:
    """Every tool call needs a result in history, or the thread cannot continue: stopped calls get an error one."""
    done = {result.tool_call_id: result for result in results}
    return [
        done.get(call.id) or ToolResultBlock(tool_call_id=call.id, text=STOPPED_TOOL_RESULT, is_error=True)
        for call in calls
    ]


def is_latest_question(turns: Sequence[Turn], index: int) -> bool:
    """True when the person's turn at `index` is the thread's last question (only answers and tool results follow)."""
    if not 0 <= index < len(turns) or turns[index].role != "user":
        return False
    return all(
        turn.role == "assistant" or all(isinstance(block, ToolResultBlock) for block in turn.blocks)
        for turn in turns[index + 1 :]
    )


class Answers:
    """Records answers and acts on them; storage trouble never costs an answer, it only disables its buttons."""

    def __init__(
        self,
        store: AnswerStore,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        poll_s: float = STOP_POLL_S,
        signals: StopSignals | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._poll_s = poll_s
        self._signals = signals
        self._running: dict[tuple[str, str], AnswerRecord] = {}  # records of the answers this process is writing
        self._watched: dict[tuple[str, str], Interrupt] = {}
        self._recent: OrderedDict[tuple[str, str], None] = OrderedDict()  # Stops heard lately
        self._follower: asyncio.Task[None] | None = None

    async def begin(self, message: IncomingMessage, shown_in: str) -> None:
        """Called before anything is shown, so a Stop clicked on the first placeholder finds the answer."""
        record = self._new_record(message, shown_in)
        self._running[(record.workspace_id, record.answer_id)] = record
        with _logged("record a new answer"):
            await self._store.put_answer(record)

    async def record(self, workspace_id: str, answer_id: str) -> AnswerRecord | None:
        return await self._store.get_answer(workspace_id, answer_id)

    async def asked(self, message: IncomingMessage, persona: str, question_index: int) -> None:
        """Kept in memory while the answer runs here (written with its end: only a finished answer's buttons need
        them); written at once otherwise."""
        key = (message.key.workspace_id, message.answer_id or "")
        if key in self._running:
            self._running[key] = dataclasses.replace(self._running[key], persona=persona, question_index=question_index)
            return
        await self._update(message, persona=persona, question_index=question_index)

    async def finish(self, message: IncomingMessage, state: AnswerState) -> None:
        try:
            await self._update(message, state=state)
        finally:
            self._running.pop((message.key.workspace_id, message.answer_id or ""), None)

    async def replaced(self, record: AnswerRecord) -> None:
        with _logged("mark an answer as regenerated"):
            await self._store.put_answer(dataclasses.replace(record, state="replaced"))

    async def stop(self, workspace_id: str, answer_id: str, user_id: str) -> Literal["ok", "not_yours", "finished"]:
        """Ask the answer to stop, wherever it runs; only the person who asked may stop it."""
        record = await self._store.get_answer(workspace_id, answer_id)
        if record is None or record.state != "running":
            return "finished"
        if record.asker_id != user_id:
            return "not_yours"
        await self._store.request_stop(workspace_id, answer_id)
        return "ok"

    @contextlib.asynccontextmanager
    async def watch(self, message: IncomingMessage) -> AsyncIterator[Interrupt]:
        """An Interrupt that fires when Stop is asked for this answer, from this process or another."""
        if self._signals is not None:
            async with self._listening(message) as interrupt:
                yield interrupt
            return
        interrupt = Interrupt()
        finished = asyncio.Event()
        poller = asyncio.create_task(self._poll(message.key.workspace_id, message.answer_id or "", interrupt, finished))
        try:
            yield interrupt
        finally:
            # Told to stop, not cancelled: a cancel landing inside a Redis call could come back as a timeout, be
            # taken for an outage, and leave the poller (and this answer, waiting for it) running for good.
            finished.set()
            done, _ = await asyncio.wait({poller}, timeout=self._poll_s + 5)
            if not done:
                poller.cancel()

    async def vote(
        self, workspace_id: str, answer_id: str, user_id: str, vote: Vote
    ) -> Literal["ok", "same", "unknown"]:
        record = await self._store.get_answer(workspace_id, answer_id)
        if record is None:
            return "unknown"
        return "ok" if await self._store.record_vote(record, user_id, vote) else "same"

    async def feedback(self, workspace_id: str, start: date, end: date) -> list[PersonaFeedback]:
        """Votes per persona on answers asked in the period, most voted first."""
        votes = await self._store.votes(workspace_id, start, end)
        rows = [PersonaFeedback(persona, up, down) for persona, (up, down) in votes.items() if up or down]
        return sorted(rows, key=lambda row: (-(row.up + row.down), row.persona))

    @contextlib.asynccontextmanager
    async def _listening(self, message: IncomingMessage) -> AsyncIterator[Interrupt]:
        """No Redis command per answer: one subscription per process hears every Stop (StopSignals)."""
        key = (message.key.workspace_id, message.answer_id or "")
        interrupt = Interrupt()
        self._watched[key] = interrupt
        if key in self._recent:
            interrupt.fire()
        if self._follower is None or self._follower.done():
            self._follower = asyncio.create_task(self._follow(), name="stop-watcher")
        try:
            yield interrupt
        finally:
            self._watched.pop(key, None)
            self._running.pop(key, None)

    async def _follow(self) -> None:
        """Listen for Stops for as long as the process runs: a failure is logged and listening starts again."""
        failures = 0
        assert self._signals is not None
        while True:
            try:
                await self._signals.follow_stops(self._heard, self._catch_up)
                failures = 0
            except asyncio.CancelledError:
                raise
            except StorageUnavailable:
                log.warning("the Stop watcher lost the store; listening again shortly")
            except Exception:
                log.exception("the Stop watcher failed; listening again shortly")
            await asyncio.sleep(STOP_RETRY_S[min(failures, len(STOP_RETRY_S) - 1)])
            failures += 1

    def _heard(self, workspace_id: str, answer_id: str) -> None:
        key = (workspace_id, answer_id)
        self._recent[key] = None
        if len(self._recent) > RECENT_STOPS:
            self._recent.popitem(last=False)
        if (interrupt := self._watched.get(key)) is not None:
            interrupt.fire()

    async def _catch_up(self) -> None:
        """Read the flags of the answers running here: a Stop requested while not listening is not missed."""
        for (workspace_id, answer_id), interrupt in list(self._watched.items()):
            with contextlib.suppress(StorageUnavailable):
                if not interrupt.stopped and await self._store.stop_requested(workspace_id, answer_id):
                    interrupt.fire()

    async def close(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            await asyncio.gather(self._follower, return_exceptions=True)

    async def _poll(self, workspace_id: str, answer_id: str, interrupt: Interrupt, finished: asyncio.Event) -> None:
        while not finished.is_set():
            try:
                if await self._store.stop_requested(workspace_id, answer_id):
                    interrupt.fire()
                    return
            except StorageUnavailable:
                pass  # the next poll tries again; the answer itself carries on
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), self._poll_s)

    async def _update(self, message: IncomingMessage, **changes: object) -> None:
        key = (message.key.workspace_id, message.answer_id or "")
        with _logged("update an answer's record"):
            record = self._running.get(key) or await self._store.get_answer(*key)
            record = dataclasses.replace(record or self._new_record(message, shown_in=""), **changes)  # type: ignore[arg-type]
            if key in self._running:
                self._running[key] = record
            await self._store.put_answer(record)

    def _new_record(self, message: IncomingMessage, shown_in: str) -> AnswerRecord:
        key = message.key
        return AnswerRecord(
            workspace_id=key.workspace_id,
            answer_id=message.answer_id or "",
            channel_id=key.channel_id,
            thread_id=key.thread_id,
            asker_id=message.user_id,
            shown_in=shown_in,
            day=self._clock().date().isoformat(),
        )


@contextlib.contextmanager
def _logged(what: str) -> Iterator[None]:
    try:
        yield
    except StorageUnavailable:
        log.warning("could not %s: storage unavailable; its buttons may not work", what)
