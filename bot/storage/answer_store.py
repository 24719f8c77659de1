"""Redis versions of the answer store (records, Stop flags, votes) and of the assistant pane's contexts."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, timedelta
from typing import Any

import redis.asyncio as redis

from bot.core.answer_records import AnswerRecord, Vote
from bot.storage.connection import listen
from bot.storage.keys import FEEDBACK_TTL_S, STOP_FLAG_TTL_S, Keys
from bot.storage.redis_store import _translated

log = logging.getLogger(__name__)

MAX_FEEDBACK_DAYS = 400
UNKNOWN_PERSONA = "(unknown)"  # an answer that failed before its persona was known; not a valid persona name

# One vote per person per answer; a changed vote moves from one count to the other. Returns 0 when unchanged.
_VOTE = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old == ARGV[2] then return 0 end
if old then redis.call('HINCRBY', KEYS[2], ARGV[3] .. ':' .. old, -1) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('HINCRBY', KEYS[2], ARGV[3] .. ':' .. ARGV[2], 1)
redis.call('EXPIRE', KEYS[2], ARGV[5])
return 1
"""


# Claim the live answers whose deadline passed: each moves to the claimer's hold, so only one process gets it.
_CLAIM_LAPSED = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], member) end
return due
"""


def _live_member(workspace_id: str, answer_id: str) -> str:
    return f"{workspace_id} {answer_id}"


class RedisAnswerStore:
    """Implements core.answers.AnswerStore; every key is under the answer's workspace."""

    def __init__(self, client: redis.Redis, keys: Keys, *, record_ttl_s: int) -> None:
        self._client = client
        self._keys = keys
        self._record_ttl_s = record_ttl_s
        self._vote: Any = client.register_script(_VOTE)
        self._claim: Any = client.register_script(_CLAIM_LAPSED)

    @_translated
    async def put_answer(self, record: AnswerRecord) -> None:
        name = self._keys.answer(record.workspace_id, record.answer_id)
        await self._client.set(name, _json(record), ex=self._record_ttl_s)

    @_translated
    async def open_answer(self, record: AnswerRecord, live_until: float, now: float) -> int:
        """Not a MULTI: on a cluster the record and the live set sit in different slots, which a non-transactional
        pipeline allows; the commands still go in one round trip (per node)."""
        member = _live_member(record.workspace_id, record.answer_id)
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.set(self._keys.answer(record.workspace_id, record.answer_id), _json(record), ex=self._record_ttl_s)
            pipe.zadd(self._keys.live_answers(), {member: live_until})
            pipe.zcount(self._keys.live_answers(), "-inf", now)
            return int((await pipe.execute())[-1])

    @_translated
    async def close_answer(self, record: AnswerRecord, now: float) -> int:
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.set(self._keys.answer(record.workspace_id, record.answer_id), _json(record), ex=self._record_ttl_s)
            pipe.zrem(self._keys.live_answers(), _live_member(record.workspace_id, record.answer_id))
            pipe.zcount(self._keys.live_answers(), "-inf", now)
            return int((await pipe.execute())[-1])

    @_translated
    async def keep_alive(self, answers: Sequence[tuple[str, str]], live_until: float) -> None:
        """XX: an answer already finished (or claimed and closed by another process) is not brought back."""
        if answers:
            mapping = {_live_member(*answer): live_until for answer in answers}
            await self._client.zadd(self._keys.live_answers(), mapping, xx=True)

    @_translated
    async def claim_lapsed(self, now: float, hold_until: float, limit: int) -> list[tuple[str, str]]:
        members = await self._claim(keys=[self._keys.live_answers()], args=[now, hold_until, limit])
        claimed = []
        for member in members:
            workspace_id, _, answer_id = str(member).partition(" ")
            if workspace_id and answer_id:
                claimed.append((workspace_id, answer_id))
        return claimed

    @_translated
    async def drop_live(self, workspace_id: str, answer_id: str) -> None:
        await self._client.zrem(self._keys.live_answers(), _live_member(workspace_id, answer_id))

    @_translated
    async def get_answer(self, workspace_id: str, answer_id: str) -> AnswerRecord | None:
        raw = await self._client.get(self._keys.answer(workspace_id, answer_id))
        if raw is None:
            return None
        try:
            return AnswerRecord(**json.loads(raw))
        except (ValueError, TypeError):
            log.warning("ignoring an unreadable answer record")
            return None

    @_translated
    async def request_stop(self, workspace_id: str, answer_id: str) -> None:
        """The flag (for a process that reconnects later), then the signal (for those listening)."""
        await self._client.set(self._keys.answer_stop(workspace_id, answer_id), 1, ex=STOP_FLAG_TTL_S)
        # Not in the SET's pipeline: a cluster client refuses PUBLISH there. A Stop click is rare; two trips are fine.
        await self._client.publish(self._keys.answer_stops_channel(), f"{workspace_id} {answer_id}")

    @_translated
    async def follow_stops(self, on_stop: Callable[[str, str], None], on_ready: Callable[[], Awaitable[None]]) -> None:
        """Hear every Stop request until the connection breaks (then raise); `on_ready` runs once subscribed, so the
        caller can read the flags of requests made while it was not listening."""

        def heard(data: str) -> None:
            workspace_id, _, answer_id = data.partition(" ")
            on_stop(workspace_id, answer_id)

        await listen(self._client, self._keys.answer_stops_channel(), heard, on_ready)

    @_translated
    async def stop_requested(self, workspace_id: str, answer_id: str) -> bool:
        return bool(await self._client.exists(self._keys.answer_stop(workspace_id, answer_id)))

    @_translated
    async def record_vote(self, record: AnswerRecord, user_id: str, vote: Vote) -> bool:
        keys = [
            self._keys.answer_votes(record.workspace_id, record.answer_id),
            self._keys.feedback_day(record.workspace_id, record.day),
        ]
        persona = record.persona or UNKNOWN_PERSONA
        args = [user_id, vote, persona, self._record_ttl_s, FEEDBACK_TTL_S]
        return bool(await self._vote(keys=keys, args=args))

    @_translated
    async def votes(self, workspace_id: str, start: date, end: date) -> dict[str, tuple[int, int]]:
        days = (end - start).days + 1
        if days <= 0:
            return {}
        async with self._client.pipeline(transaction=False) as pipe:
            for offset in range(min(days, MAX_FEEDBACK_DAYS)):
                pipe.hgetall(self._keys.feedback_day(workspace_id, (start + timedelta(days=offset)).isoformat()))
            hashes = await pipe.execute()
        totals: dict[str, dict[str, int]] = defaultdict(lambda: {"up": 0, "down": 0})
        for counts in hashes:
            for field, value in counts.items():
                persona, _, vote = str(field).rpartition(":")
                if vote in ("up", "down"):
                    totals[persona][vote] += int(value)
        return {persona: (counts["up"], counts["down"]) for persona, counts in totals.items()}


def _json(record: AnswerRecord) -> str:
    return json.dumps(dataclasses.asdict(record))


class RedisPaneContexts:
    """Implements core.assistant.PaneContextStore."""

    def __init__(self, client: redis.Redis, keys: Keys, *, ttl_s: int) -> None:
        self._client = client
        self._keys = keys
        self._ttl_s = ttl_s

    @_translated
    async def save_pane_context(self, workspace_id: str, pane_id: str, thread_id: str, channel_id: str | None) -> None:
        name = self._keys.pane_context(workspace_id, pane_id, thread_id)
        await self._client.set(name, channel_id or "", ex=self._ttl_s)

    @_translated
    async def pane_context(self, workspace_id: str, pane_id: str, thread_id: str) -> str | None:
        value = await self._client.get(self._keys.pane_context(workspace_id, pane_id, thread_id))
        return str(value) if value else None
