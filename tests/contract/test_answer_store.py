"""The answer store against a real Redis (and its in-memory twin): records, Stop flags, votes per persona, live
answers, the pane's contexts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import pytest
import redis.asyncio as redis

from bot.core.answers import AnswerRecord, AnswerStore
from bot.core.assistant import PaneContextStore
from bot.storage.answer_store import RedisAnswerStore, RedisPaneContexts
from bot.storage.keys import Keys
from bot.storage.memory_answers import MemoryAnswerStore
from bot.storage.memory_workspaces import MemoryPaneContexts
from tests.conftest import RedisTarget


def record(answer_id: str = "a1", **fields: object) -> AnswerRecord:
    values: dict[str, object] = {
        "workspace_id": "T1",
        "answer_id": answer_id,
        "channel_id": "C1",
        "thread_id": "1700000000.000100",
        "asker_id": "U1",
        "persona": "default",
        "day": "2026-05-04",
    }
    values.update(fields)
    return AnswerRecord(**values)  # type: ignore[arg-type]


@pytest.fixture
async def client(redis_target: RedisTarget, redis_client: redis.Redis) -> AsyncIterator[redis.Redis]:
    instance = redis_target.connect(socket_timeout_s=1.0)
    yield instance
    await instance.aclose()


@pytest.fixture
def keys(redis_target: RedisTarget, key_prefix: str) -> Keys:
    return redis_target.keys(key_prefix)


@pytest.fixture
def store(client: redis.Redis, keys: Keys) -> RedisAnswerStore:
    return RedisAnswerStore(client, keys, record_ttl_s=3600)


@pytest.fixture(params=["redis", "memory"])
def stores(request: pytest.FixtureRequest, client: redis.Redis, keys: Keys) -> tuple[AnswerStore, AnswerStore]:
    """Two processes' handles on one answer store: Redis, or its in-memory twin (one process, one instance)."""
    if request.param == "memory":
        memory = MemoryAnswerStore(record_ttl_s=3600)
        return memory, memory
    return RedisAnswerStore(client, keys, record_ttl_s=3600), RedisAnswerStore(client, keys, record_ttl_s=3600)


async def test_a_record_round_trips_and_expires_with_conversations(
    store: RedisAnswerStore, redis_client: redis.Redis, keys: Keys
) -> None:
    saved = record(question_index=4, state="done", shown_in="1700000000.000100")
    await store.put_answer(saved)
    assert await store.get_answer("T1", "a1") == saved
    assert await store.get_answer("T2", "a1") is None  # workspaces never share answers
    assert 3500 < await redis_client.ttl(keys.answer("T1", "a1")) <= 3600


async def test_an_unreadable_record_reads_as_missing(
    store: RedisAnswerStore, redis_client: redis.Redis, keys: Keys
) -> None:
    await redis_client.set(keys.answer("T1", "bad"), '{"written_by": "a newer version"}')
    assert await store.get_answer("T1", "bad") is None


async def test_a_stop_flag_is_seen_by_any_store_on_the_same_redis(
    store: RedisAnswerStore, client: redis.Redis, keys: Keys
) -> None:
    other_process = RedisAnswerStore(client, keys, record_ttl_s=3600)
    assert not await store.stop_requested("T1", "a1")
    await other_process.request_stop("T1", "a1")
    assert await store.stop_requested("T1", "a1")
    assert not await store.stop_requested("T2", "a1")


async def test_votes_count_once_per_person_move_when_changed_and_sum_per_persona(
    stores: tuple[AnswerStore, AnswerStore],
) -> None:
    store, _ = stores
    first, second = record("a1"), record("a2", persona="code_reviewer", day="2026-05-06")
    assert await store.record_vote(first, "U1", "up")
    assert not await store.record_vote(first, "U1", "up")  # the same vote again changes nothing
    assert await store.record_vote(first, "U2", "up")
    assert await store.record_vote(first, "U2", "down")  # a changed mind moves the vote
    assert await store.record_vote(second, "U1", "down")
    assert await store.record_vote(record("a3", persona=""), "U1", "up")  # persona never known

    assert await store.votes("T1", date(2026, 5, 1), date(2026, 5, 31)) == {
        "default": (1, 1),
        "code_reviewer": (0, 1),
        "(unknown)": (1, 0),
    }
    # Counted on the day the answer was asked.
    assert await store.votes("T1", date(2026, 5, 5), date(2026, 5, 6)) == {"code_reviewer": (0, 1)}
    assert await store.votes("T2", date(2026, 5, 1), date(2026, 5, 31)) == {}
    assert await store.votes("T1", date(2026, 5, 6), date(2026, 5, 1)) == {}


@pytest.mark.parametrize("backend", ["redis", "memory"])
async def test_the_pane_remembers_the_channel_beside_each_thread(client: redis.Redis, keys: Keys, backend: str) -> None:
    contexts: PaneContextStore = (
        RedisPaneContexts(client, keys, ttl_s=3600) if backend == "redis" else MemoryPaneContexts(ttl_s=3600)
    )
    assert await contexts.pane_context("T1", "D1", "1.0") is None
    await contexts.save_pane_context("T1", "D1", "1.0", "C1")
    await contexts.save_pane_context("T1", "D1", "2.0", None)
    assert await contexts.pane_context("T1", "D1", "1.0") == "C1"
    assert await contexts.pane_context("T1", "D1", "2.0") is None
    assert await contexts.pane_context("T2", "D1", "1.0") is None


async def test_live_answers_are_renewed_claimed_once_when_lapsed_and_closed_with_their_record(
    stores: tuple[AnswerStore, AnswerStore],
) -> None:
    store, other_process = stores
    assert await store.open_answer(record("a1"), live_until=100.0, now=50.0) == 0
    await store.open_answer(record("a2"), live_until=100.0, now=50.0)
    # Each start (and end) also says whether some live answer has lapsed, in the same round trip.
    assert await store.open_answer(record("a3", workspace_id="T2"), live_until=100.0, now=120.0) == 3
    assert await store.get_answer("T1", "a1") == record("a1")  # the record, in the same round trip
    await store.keep_alive([("T1", "a2")], live_until=200.0)
    await store.keep_alive([("T1", "gone")], live_until=200.0)  # never live: not brought to life

    assert await store.claim_lapsed(now=50.0, hold_until=500.0, limit=10) == []  # nothing lapsed yet
    claimed = await store.claim_lapsed(now=150.0, hold_until=500.0, limit=10)
    assert sorted(claimed) == [("T1", "a1"), ("T2", "a3")]  # a2 was renewed
    assert await other_process.claim_lapsed(now=150.0, hold_until=500.0, limit=10) == []  # claimed once only

    assert await store.close_answer(record("a1", state="interrupted", question_index=3), now=150.0) == 0
    assert await store.get_answer("T1", "a1") == record("a1", state="interrupted", question_index=3)
    await store.drop_live("T2", "a3")
    # A claimer that died leaves its claims to lapse again; closed and dropped answers are gone for good.
    assert sorted(await other_process.claim_lapsed(now=600.0, hold_until=900.0, limit=10)) == [("T1", "a2")]
    await store.keep_alive([("T1", "a1")], live_until=1000.0)  # a late heartbeat does not revive a closed answer
    assert await store.claim_lapsed(now=950.0, hold_until=2000.0, limit=10) == [("T1", "a2")]
