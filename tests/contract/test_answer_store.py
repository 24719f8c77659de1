"""The answer store against a real Redis: records, Stop flags, votes per persona, the pane's contexts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import pytest
import redis.asyncio as redis

from bot.core.answers import AnswerRecord
from bot.core.assistant import PaneContextStore
from bot.storage.answer_store import RedisAnswerStore, RedisPaneContexts
from bot.storage.keys import Keys
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


async def test_votes_count_once_per_person_move_when_changed_and_sum_per_persona(store: RedisAnswerStore) -> None:
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
