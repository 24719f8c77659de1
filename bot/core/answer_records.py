"""An answer's record, and the ports through which every bot process shares them (bot/core/answers.py uses them).

Split from answers.py, which is about what is done with them: Stop, the live answers' deadlines, votes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal, Protocol

from bot.core.conversation import ConversationKey

AnswerState = Literal["running", "done", "stopped", "failed", "replaced", "interrupted"]
Vote = Literal["up", "down"]


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
    stream_ts: str = ""  # the message Slack streams it into natively (chat.startStream), once there is one
    replay: str = ""  # the question, to ask it again if this answer's process dies before storing it (core/replay.py)

    @property
    def key(self) -> ConversationKey:
        return ConversationKey(self.workspace_id, self.channel_id, self.thread_id)


class AnswerStore(Protocol):
    async def put_answer(self, record: AnswerRecord) -> None: ...

    async def open_answer(self, record: AnswerRecord, live_until: float, now: float) -> int:
        """The record, and the answer among the live ones until `live_until` (epoch seconds), in one round trip;
        returns how many live answers had lapsed by `now` (read in the same trip: a busy process need not sweep)."""
        ...

    async def close_answer(self, record: AnswerRecord, now: float) -> int:
        """The record, and the answer no longer live, in one round trip; returns what `open_answer` does."""
        ...

    async def keep_alive(self, answers: Sequence[tuple[str, str]], live_until: float) -> None:
        """Renew the deadline of these (workspace id, answer id) that are still live; one round trip for all."""
        ...

    async def claim_lapsed(self, now: float, hold_until: float, limit: int) -> list[tuple[str, str]]:
        """Live answers whose deadline passed by `now`, each given to one caller only: their deadline moves to
        `hold_until`, so a caller that dies while finishing one leaves it to be claimed again."""
        ...

    async def drop_live(self, workspace_id: str, answer_id: str) -> None:
        """No longer live, without a record to write (it expired, or its answer had already ended)."""
        ...

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
