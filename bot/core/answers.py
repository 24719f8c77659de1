"""Answers as things people act on: Stop while one is being written, Regenerate and 👍 / 👎 once it is done.

Each answer gets a record (who asked, where, with which persona, where its question sits in the thread) in a store
that every bot process shares, because a click may reach any process; while it runs, the process writing it keeps the
record in memory too, so updating it costs one write and no read. Stop is a flag in that store and a signal every
process hears (StopSignals): it cancels the model stream, keeps the text written so far and bills what was used.

An answer being written is also *live* in the store, with a deadline its process renews (`keep_alive`, every
HEARTBEAT_S); registered and removed in the same round trips as its record (`begin`, `finish`), so a short answer
costs no extra trip. When a process dies mid-answer its answers' deadlines lapse, another process claims each one
(`claim_lapsed`: one claimer per answer) and finishes it in the chat as interrupted (bot/slack/recovery.py). An answer
is written until its final message is on screen: shown by a chat surface (`shown`), it ends when that message does.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

from bot.core.answer_records import AnswerRecord as AnswerRecord
from bot.core.answer_records import AnswerState as AnswerState
from bot.core.answer_records import AnswerStore as AnswerStore
from bot.core.answer_records import StopSignals as StopSignals
from bot.core.answer_records import Vote as Vote
from bot.core.conversation import IncomingMessage, ToolResultBlock, Turn
from bot.core.errors import BotError, StorageUnavailable
from bot.core.interrupts import STOPPED_TOOL_RESULT as STOPPED_TOOL_RESULT
from bot.core.interrupts import Interrupt as Interrupt
from bot.core.interrupts import ShownModelEvent as ShownModelEvent
from bot.core.interrupts import interrupted_question
from bot.core.interrupts import shown_events as shown_events
from bot.core.interrupts import stoppable_call as stoppable_call
from bot.core.interrupts import stopped_results as stopped_results
from bot.core.replay import replay_of

log = logging.getLogger(__name__)

STOP_POLL_S = 1.0  # without StopSignals (tests, a store without pub/sub): how often the Stop flag is read
CLOSE_WAIT_S = 3.0  # what shutdown gives the Stop watcher and the heartbeat to stop
STOP_RETRY_S = (0.5, 1.0, 2.0, 5.0)  # waits before the Stop watcher listens again after a failure
RECENT_STOPS = 10_000  # Stops heard lately, for answers that start watching just after their Stop was clicked
# An answer being written is "live": its process renews its deadline every HEARTBEAT_S; once the deadline has passed,
# any process may take it over and finish it as interrupted (bot/slack/recovery.py). With a sweep every few seconds
# an answer whose process died is finished within LIVE_FOR_S + the sweep interval (under 30 s); a process must miss
# about three heartbeats in a row before its answers are taken from it.
HEARTBEAT_S = 5.0
LIVE_FOR_S = 15.0
BEAT_TICK_S = 1.0  # how often, while answers are being written, the heartbeat checks (locally) which are due
# A claimed answer not finished within this (its new owner died too, or Slack or Redis turned it away: a 429, an
# outage) is claimed again by the next sweep. Finishing one takes a few Web API calls, far less than this.
CLAIM_HOLD_S = 15.0


class CannotRegenerate(BotError):
    """Regenerate was clicked on an answer that cannot be answered again (not the asker's, not the latest...)."""


@dataclass(frozen=True, slots=True)
class PersonaFeedback:
    persona: str
    up: int
    down: int


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
        # The live answers written here: the task writing each, and when its deadline was last set (epoch s).
        self._writers: dict[tuple[str, str], tuple[asyncio.Task[object] | None, float]] = {}
        self._beater: asyncio.Task[None] | None = None  # renews them while there are any
        # The answers a chat surface is showing (`shown`): the task showing each, and its final record once finished.
        self._showing: dict[tuple[str, str], tuple[asyncio.Task[object] | None, AnswerRecord | None]] = {}
        self._looked_at = -math.inf  # when this process last learned whether any live answer had lapsed
        self._lapsed_seen = False

    async def begin(self, message: IncomingMessage, shown_in: str) -> None:
        """Called before anything is shown, so a Stop clicked on the first placeholder finds the answer. The answer is
        live from here (same round trip): if this process dies before `finish`, another one finishes it."""
        record = self._new_record(message, shown_in)
        key = (record.workspace_id, record.answer_id)
        self._running[key] = record
        now = self._now()
        self._writers[key] = (asyncio.current_task(), now)
        if self._beater is None or self._beater.done():
            self._beater = asyncio.create_task(self._beat(), name="answer-heartbeat")
        with _logged("record a new answer"):
            self._saw(await self._store.open_answer(record, now + LIVE_FOR_S, now), now)

    async def streamed(self, workspace_id: str, answer_id: str, ts: str) -> None:
        """Where Slack streams the answer natively: whoever finishes it after this process died must stop that stream
        (its messages carry no buttons to be found by until then). One write, for natively streamed answers only."""
        key = (workspace_id, answer_id)
        if (record := self._running.get(key)) is None:
            return
        self._running[key] = record = dataclasses.replace(record, stream_ts=ts)
        with _logged("record where an answer streams"):
            await self._store.put_answer(record)

    async def keep_alive(self) -> None:
        """Renew the deadline of the answers written here that were last renewed HEARTBEAT_S ago or more, all in one
        round trip (an answer shorter than that is never renewed). An answer whose task ended without `finish`
        (cancelled before its pipeline started) is left to lapse and be taken over."""
        now = self._now()
        due = []
        for key, (task, renewed_at) in list(self._writers.items()):
            if task is not None and task.done():
                self._writers.pop(key, None)
                self._running.pop(key, None)
            elif now - renewed_at >= HEARTBEAT_S:
                due.append(key)
                self._writers[key] = (task, now)
        if due:
            await self._store.keep_alive(due, now + LIVE_FOR_S)

    async def _beat(self) -> None:
        """While this process writes answers (also while a graceful shutdown lets them finish), renew them; a
        failure is logged and the next tick tries again."""
        while self._writers:
            await asyncio.sleep(BEAT_TICK_S)
            try:
                await self.keep_alive()
            except StorageUnavailable:
                log.warning("could not renew the answers in progress: storage unavailable; trying again")
            except Exception:
                log.exception("could not renew the answers in progress; trying again")

    def sweep_due(self, every_s: float) -> bool:
        """Whether to look for lapsed answers now: one was seen, or nothing was learned for `every_s` (each answer's
        start and end look for free, so a busy process seldom sweeps on its own)."""
        return self._lapsed_seen or self._now() - self._looked_at >= every_s

    def _saw(self, lapsed: int, now: float) -> None:
        self._looked_at = now
        self._lapsed_seen = self._lapsed_seen or lapsed > 0

    async def claim_lapsed(self, limit: int = 20) -> list[AnswerRecord]:
        """Answers whose process stopped renewing them (it died, or lost Redis for LIVE_FOR_S), each claimed by one
        process only, still running: the caller finishes each in the chat and then calls `interrupted`."""
        now = self._now()
        claimed = await self._store.claim_lapsed(now, now + CLAIM_HOLD_S, limit)
        self._looked_at, self._lapsed_seen = now, len(claimed) >= limit  # a full batch: more may be waiting
        if mine := [key for key in claimed if key in self._writers]:  # this process was only slow: renew them
            await self._store.keep_alive(mine, now + LIVE_FOR_S)
        records = []
        for key in claimed:
            if key in self._writers:
                continue
            record = await self._store.get_answer(*key)
            if record is None or record.state != "running":  # expired, or finished while its close failed
                await self._store.drop_live(*key)
            else:
                records.append(record)
        return records

    async def interrupted(self, record: AnswerRecord, turns: Sequence[Turn]) -> AnswerRecord:
        """Close an answer whose process died, shown as interrupted: Regenerate works on it when its question is
        the thread's latest (`turns`: the thread's history, which is not changed)."""
        index = record.question_index
        if index is None:
            index = interrupted_question(turns, record.asker_id)
        closed = dataclasses.replace(record, state="interrupted", question_index=index)
        await self._store.close_answer(closed, self._now())
        return closed

    async def record(self, workspace_id: str, answer_id: str) -> AnswerRecord | None:
        return await self._current(workspace_id, answer_id)

    async def _current(self, workspace_id: str, answer_id: str) -> AnswerRecord | None:
        """The answer's record: the final one kept here while this process shows its final message (`shown`), so a
        click on the buttons that message just brought finds the answer finished; else the stored one."""
        showing = self._showing.get((workspace_id, answer_id))
        if showing is not None and showing[1] is not None:
            return showing[1]
        return await self._store.get_answer(workspace_id, answer_id)

    async def asked(self, message: IncomingMessage, persona: str, question_index: int) -> None:
        """Kept in memory while the answer runs here (written with its end: only a finished answer's buttons need
        them); written at once otherwise."""
        key = (message.key.workspace_id, message.answer_id or "")
        if key in self._running:
            self._running[key] = dataclasses.replace(self._running[key], persona=persona, question_index=question_index)
            return
        await self._update(message, persona=persona, question_index=question_index)

    @contextlib.asynccontextmanager
    async def shown(self, workspace_id: str, answer_id: str) -> AsyncIterator[None]:
        """Around showing an answer: its end (`finish`) is written as the block ends, once the surface has shown the
        final message. Written before, a process dying while that message waits its turn (a 429, the edit budget)
        would leave it showing Stop for good, no longer live for another process to finish. Renewed meanwhile."""
        key = (workspace_id, answer_id)
        self._showing[key] = (asyncio.current_task(), None)
        try:
            yield
        finally:
            _, final = self._showing.pop(key)
            if final is not None:  # else never finished here (yet): `finish` writes it, as without a surface
                try:
                    with _logged("update an answer's record"):
                        now = self._now()
                        self._saw(await self._store.close_answer(final, now), now)
                finally:
                    self._writers.pop(key, None)

    async def finish(self, message: IncomingMessage, state: AnswerState) -> None:
        """The final record, and the answer no longer live, in the one write its end always made: now, or once it
        is shown when a surface shows it (`shown`)."""
        key = (message.key.workspace_id, message.answer_id or "")
        showing, record = self._showing.get(key), self._running.get(key)
        if showing is not None and record is not None:
            self._showing[key] = (showing[0], dataclasses.replace(record, state=state))
            self._running.pop(key, None)
            if key in self._writers:  # the task writing it ends now: the one showing it keeps it renewed
                self._writers[key] = (showing[0], self._writers[key][1])
            return
        try:
            await self._update(message, close=True, state=state)
        finally:
            self._running.pop(key, None)
            self._writers.pop(key, None)

    async def replaced(self, record: AnswerRecord) -> None:
        with _logged("mark an answer as regenerated"):
            await self._store.put_answer(dataclasses.replace(record, state="replaced"))

    async def stop(self, workspace_id: str, answer_id: str, user_id: str) -> Literal["ok", "not_yours", "finished"]:
        """Ask the answer to stop, wherever it runs; only the person who asked may stop it."""
        record = await self._current(workspace_id, answer_id)
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
        record = await self._current(workspace_id, answer_id)
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
        """After the answers: the Stop watcher and the heartbeat stop."""
        tasks = [task for task in (self._follower, self._beater) if task is not None]
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        # Bounded: closing the Stop watcher's subscription can hang on a connection Redis never answers again (seen
        # after a network cut), and shutdown must still end.
        _, stuck = await asyncio.wait(tasks, timeout=CLOSE_WAIT_S)
        if stuck:
            log.warning("the Stop watcher did not stop within %g s; leaving it", CLOSE_WAIT_S)

    async def _poll(self, workspace_id: str, answer_id: str, interrupt: Interrupt, finished: asyncio.Event) -> None:
        """Read the Stop flag until the answer ends; no failure ends it early (the answer would lose its Stop)."""
        failures = 0
        while not finished.is_set():
            wait = self._poll_s
            try:
                if await self._store.stop_requested(workspace_id, answer_id):
                    interrupt.fire()
                    return
                failures = 0
            except StorageUnavailable:
                pass  # the next poll tries again; the answer itself carries on
            except Exception:
                log.exception("an answer's Stop check failed; checking again shortly")
                wait = max(wait, STOP_RETRY_S[min(failures, len(STOP_RETRY_S) - 1)])
                failures += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), wait)

    async def _update(self, message: IncomingMessage, *, close: bool = False, **changes: object) -> None:
        key = (message.key.workspace_id, message.answer_id or "")
        with _logged("update an answer's record"):
            record = self._running.get(key) or await self._store.get_answer(*key)
            record = dataclasses.replace(record or self._new_record(message, shown_in=""), **changes)  # type: ignore[arg-type]
            if key in self._running:
                self._running[key] = record
            if close:
                now = self._now()
                self._saw(await self._store.close_answer(record, now), now)
            else:
                await self._store.put_answer(record)

    def _now(self) -> float:
        """Epoch seconds: live answers' deadlines are compared across processes (their clocks agree, as NTP keeps
        them, to well within the seconds these deadlines allow)."""
        return self._clock().timestamp()

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
            replay=replay_of(message),
        )


@contextlib.contextmanager
def _logged(what: str) -> Iterator[None]:
    try:
        yield
    except StorageUnavailable:
        log.warning("could not %s: storage unavailable; its buttons may not work", what)
