"""In-memory twin of the answer store (core.answers.AnswerStore): records, Stop flags, votes and the live answers.

Same contract as `bot/storage/answer_store.py`, run by the same tests (tests/contract/test_answer_store.py); one
process only, so production uses Redis. Without StopSignals, `Answers` reads the Stop flag by polling.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import date, timedelta

from bot.core.answer_records import AnswerRecord, Vote

_UNKNOWN_PERSONA = "(unknown)"  # as the Redis store counts an answer whose persona was never known
_STOP_FLAG_TTL_S = 3600.0


class MemoryAnswerStore:
    """Implements core.answers.AnswerStore; records live `record_ttl_s` (by `clock`, monotonic seconds)."""

    def __init__(self, *, record_ttl_s: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = record_ttl_s
        self._clock = clock
        self._records: dict[tuple[str, str], tuple[AnswerRecord, float]] = {}
        self._stops: dict[tuple[str, str], float] = {}
        self._votes: dict[tuple[str, str], dict[str, Vote]] = defaultdict(dict)
        self._feedback: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self._live: dict[tuple[str, str], float] = {}

    async def put_answer(self, record: AnswerRecord) -> None:
        self._records[(record.workspace_id, record.answer_id)] = (record, self._clock() + self._ttl_s)

    async def get_answer(self, workspace_id: str, answer_id: str) -> AnswerRecord | None:
        record, expires_at = self._records.get((workspace_id, answer_id), (None, -math.inf))
        return record if expires_at > self._clock() else None

    async def open_answer(self, record: AnswerRecord, live_until: float, now: float) -> int:
        await self.put_answer(record)
        self._live[(record.workspace_id, record.answer_id)] = live_until
        return self._lapsed(now)

    async def close_answer(self, record: AnswerRecord, now: float) -> int:
        await self.put_answer(record)
        self._live.pop((record.workspace_id, record.answer_id), None)
        return self._lapsed(now)

    async def keep_alive(self, answers: Sequence[tuple[str, str]], live_until: float) -> None:
        for answer in answers:
            if answer in self._live:
                self._live[answer] = live_until

    async def claim_lapsed(self, now: float, hold_until: float, limit: int) -> list[tuple[str, str]]:
        due = sorted((at, answer) for answer, at in self._live.items() if at <= now)[:limit]
        for _, answer in due:
            self._live[answer] = hold_until
        return [answer for _, answer in due]

    async def drop_live(self, workspace_id: str, answer_id: str) -> None:
        self._live.pop((workspace_id, answer_id), None)

    async def request_stop(self, workspace_id: str, answer_id: str) -> None:
        self._stops[(workspace_id, answer_id)] = self._clock() + _STOP_FLAG_TTL_S

    async def stop_requested(self, workspace_id: str, answer_id: str) -> bool:
        return self._stops.get((workspace_id, answer_id), -math.inf) > self._clock()

    async def record_vote(self, record: AnswerRecord, user_id: str, vote: Vote) -> bool:
        votes = self._votes[(record.workspace_id, record.answer_id)]
        old = votes.get(user_id)
        if old == vote:
            return False
        counts = self._feedback[(record.workspace_id, record.day)]
        persona = record.persona or _UNKNOWN_PERSONA
        if old is not None:
            counts[f"{persona}:{old}"] -= 1
        votes[user_id] = vote
        counts[f"{persona}:{vote}"] += 1
        return True

    async def votes(self, workspace_id: str, start: date, end: date) -> dict[str, tuple[int, int]]:
        totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for offset in range(max((end - start).days + 1, 0)):
            day = (start + timedelta(days=offset)).isoformat()
            for field, count in self._feedback.get((workspace_id, day), {}).items():
                persona, _, vote = field.rpartition(":")
                totals[persona][0 if vote == "up" else 1] += count
        return {persona: (up, down) for persona, (up, down) in totals.items()}

    def _lapsed(self, now: float) -> int:
        return sum(1 for at in self._live.values() if at <= now)
