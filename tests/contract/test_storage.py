"""One storage suite, run over every backend (Redis and the in-memory twin), as aiogram runs its storage tests.

What the core relies on from the storage ports is asserted here once; a backend that passes is interchangeable in
the core's unit tests. Redis-only behaviour (TTLs seen from Redis, lease renewal, outages, pool size) stays in
test_redis_store.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from bot.core.answers import is_latest_question
from bot.core.conversation import (
    NOT_LOADED,
    ConversationKey,
    Fold,
    MeasuredSize,
    OpenExchange,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
    Turn,
)
from bot.core.errors import StorageUnavailable
from bot.core.leases import LeaseLost
from bot.core.ports import Attachment
from bot.storage.memory import MemoryStore
from bot.storage.redis_store import RedisStore
from tests.conftest import RedisTarget

KEY = ConversationKey("T1", "C1", "1700000000.000100")
OPTIONS: dict[str, float] = {
    "conversation_ttl_s": 3600,
    "dm_idle_reset_s": 1,
    "dedup_ttl_s": 600,
    "lock_wait_s": 0.5,
}

Store = RedisStore | MemoryStore


@pytest.fixture(params=["redis", "memory"])
async def store(
    request: pytest.FixtureRequest, redis_target: RedisTarget, key_prefix: str, redis_client: redis.Redis
) -> AsyncIterator[Store]:
    """Each test runs once per backend (Redis: a single server and a cluster); `redis_client` deletes the Redis
    run's keys afterwards. The memory runs are repeated for each Redis target: they take milliseconds."""
    instance: Store
    if request.param == "redis":
        client = redis_target.connect(socket_timeout_s=1.0)
        instance = RedisStore(client, redis_target.keys(key_prefix), lock_lease_s=1.0, **OPTIONS)  # type: ignore[arg-type]
    else:
        instance = MemoryStore(**OPTIONS)  # type: ignore[arg-type]
    yield instance
    await instance.close()


async def test_history_round_trips_every_block_kind_in_order(store: Store) -> None:
    question = Turn.user("What is 2+2?", author_id="U1")
    answer = Turn(role="assistant", blocks=(ThinkingBlock(thinking="easy", signature="sig=="), TextBlock(text="4")))
    assert (await store.load(KEY)).turns == []
    await store.append(KEY, question)
    await store.append(KEY, answer)
    assert (await store.load(KEY)).turns == [question, answer]
    assert await store.exists(KEY)
    assert not await store.exists(ConversationKey("T1", "C1", "other"))


async def test_summary_and_measured_size_are_kept_beside_the_turns(store: Store) -> None:
    await store.append(KEY, Turn.user("q1"), Turn.user("q2"), measured=MeasuredSize(tokens=120, turns=2))
    await store.save_fold(KEY, Fold(summary="they asked twice", upto=1))
    loaded = await store.load(KEY)
    assert [t.text for t in loaded.turns] == ["q1", "q2"]
    assert loaded.fold == Fold(summary="they asked twice", upto=1)
    assert loaded.measured == MeasuredSize(tokens=120, turns=2)


async def test_forget_deletes_the_conversation_once(store: Store) -> None:
    await store.append(KEY, Turn.user("secret"), persona="sql_expert")
    assert await store.forget(KEY)
    assert not await store.exists(KEY)
    assert (await store.load(KEY)).persona is None
    assert not await store.forget(KEY)


async def test_rewind_keeps_the_first_turns_only(store: Store) -> None:
    turns = [Turn.user("q1"), Turn(role="assistant", blocks=(TextBlock(text="a1"),)), Turn.user("q2")]
    await store.append(KEY, *turns)
    await store.rewind(KEY, 1)
    assert (await store.load(KEY)).turns == turns[:1]
    await store.rewind(KEY, 0)
    assert (await store.load(KEY)).turns == []


async def test_a_thread_remembers_its_persona_and_channels_have_their_own(store: Store) -> None:
    assert (await store.load(KEY)).persona is None
    await store.append(KEY, Turn.user("hi"), persona="code_reviewer")
    await store.append(KEY, Turn.user("again"))
    assert (await store.load(KEY)).persona == "code_reviewer"
    assert await store.channel_persona("T1", "C1") is None
    await store.set_channel_persona("T1", "C1", "sql_expert")
    assert await store.channel_persona("T1", "C1") == "sql_expert"
    assert await store.channel_persona("T2", "C1") is None


async def test_dm_session_continues_while_active_and_restarts_after_idle_or_reset(store: Store) -> None:
    assert await store.dm_session("T1", "D1", "100.1") == "100.1"
    assert await store.dm_session("T1", "D1", "100.2") == "100.1"
    await store.end_dm_session("T1", "D1")
    assert await store.dm_session("T1", "D1", "100.3") == "100.3"
    await asyncio.sleep(1.2)  # dm_idle_reset_s is 1
    assert await store.dm_session("T1", "D1", "100.4") == "100.4"


async def test_lock_serialises_holders_of_the_same_thread(store: Store) -> None:
    order: list[str] = []

    async def hold(name: str) -> None:
        async with store.lock(KEY):
            order.append(f"{name}-in")
            await asyncio.sleep(0.05)
            order.append(f"{name}-out")

    await asyncio.gather(hold("a"), hold("b"))
    assert order in (["a-in", "a-out", "b-in", "b-out"], ["b-in", "b-out", "a-in", "a-out"])


async def test_a_lock_held_too_long_turns_the_next_answer_away_with_a_sentence(store: Store) -> None:
    async with store.lock(KEY):
        with pytest.raises(StorageUnavailable, match="busy"):
            async with store.lock(KEY):
                pass  # pragma: no cover - never entered
    async with store.lock(KEY):  # free again once released
        pass


async def test_a_lease_carries_the_thread_as_it_stood_when_it_was_taken(store: Store) -> None:
    """Redis reads the thread in the lock's own round trip; a holder that had to wait never gets an old read."""
    await store.append(KEY, Turn.user("one"), persona="default")
    async with store.lock(KEY) as lease:
        assert lease.preloaded == await store.load(KEY)

    async def next_holder() -> list[Turn]:
        async with store.lock(KEY) as lease:
            return (lease.preloaded or await store.load(KEY)).turns

    async with store.lock(KEY) as first:
        waiting = asyncio.create_task(next_holder())
        await asyncio.sleep(0.05)  # its first try found the thread held
        await store.append(KEY, Turn.user("two"), lease=first)
    assert await waiting == [Turn.user("one"), Turn.user("two")]


async def expire_lease(store: Store, key: ConversationKey) -> None:
    """The holder's lease runs out, as when its process is cut off from storage for longer than the lease."""
    if isinstance(store, MemoryStore):
        store.expire_lease(key)
    else:
        await store.client.delete(store.keys.conversation_lock(key))


async def test_each_lease_on_a_thread_has_a_higher_fencing_token(store: Store) -> None:
    async with store.lock(KEY) as first:
        pass
    async with store.lock(KEY) as second:
        pass
    async with store.lock(ConversationKey("T1", "C1", "other")) as elsewhere:
        pass
    assert second.token > first.token >= 1
    assert elsewhere.token >= 1
    assert not first.lost and not second.lost


async def test_a_holder_whose_lease_was_taken_over_cannot_write_and_learns_it_lost(store: Store) -> None:
    """Fencing: after another holder takes the thread, every write of the old one is refused, atomically."""
    question = Turn.user("q1")
    async with store.lock(KEY) as old:
        await store.append(KEY, question, lease=old, exchange="open")
        await expire_lease(store, KEY)
        async with store.lock(KEY) as new:
            assert new.token > old.token
            for write in (
                store.append(KEY, Turn(role="assistant", blocks=(TextBlock(text="late"),)), lease=old),
                store.save_fold(KEY, Fold(summary="late", upto=1), lease=old),
                store.rewind(KEY, 0, lease=old),
                store.forget(KEY, lease=old),
            ):
                with pytest.raises(LeaseLost):
                    await write
            assert old.lost
            await store.append(KEY, Turn.user("q2"), lease=new)
    stored = await store.load(KEY)
    assert [t.text for t in stored.turns] == ["q1", "q2"]
    assert stored.fold is None
    with pytest.raises(LeaseLost):
        old.check()


async def test_an_open_exchange_is_marked_with_the_question_and_cleared_with_the_last_save(store: Store) -> None:
    await store.append(KEY, Turn.user("q0"), Turn(role="assistant", blocks=(TextBlock(text="a0"),)))
    call = ToolCallBlock(id="toolu_1", name="fetch_url", input={"url": "https://example.com"})
    async with store.lock(KEY) as lease:
        await store.append(KEY, Turn.user("q1"), lease=lease, exchange="open")
        assert (await store.load(KEY)).open == OpenExchange(token=lease.token, question_index=2)
        await store.append(KEY, Turn(role="assistant", blocks=(call,)), lease=lease)
        assert (await store.load(KEY)).open == OpenExchange(token=lease.token, question_index=2)
        measured = MeasuredSize(tokens=50, turns=3)
        await store.append(KEY, Turn(role="assistant", blocks=(TextBlock(text="a1"),)), lease=lease, measured=measured)
        await store.append(KEY, lease=lease, exchange="close")
    stored = await store.load(KEY)
    assert stored.open is None
    assert stored.measured == measured
    assert len(stored.turns) == 5


async def test_the_answers_last_save_frees_the_thread_for_the_next_question_at_once(store: Store) -> None:
    async with store.lock(KEY) as first:
        await store.append(KEY, Turn.user("q1"), lease=first, exchange="open")
        await store.append(KEY, Turn(role="assistant", blocks=(TextBlock(text="a1"),)), lease=first, exchange="finish")
        assert first.ended and not first.lost
        await asyncio.sleep(0.8)  # renewals come every third of the 1 s lease: none may take the thread back
        async with store.lock(KEY) as second:  # while the first holder is still inside its `lock`
            await store.append(KEY, Turn.user("q2"), lease=second, exchange="open")
        with pytest.raises(LeaseLost):
            first.check()  # the first holder writes no more
    stored = await store.load(KEY)
    assert [t.text for t in stored.turns] == ["q1", "a1", "q2"]
    assert stored.open == OpenExchange(token=second.token, question_index=2)
    async with store.lock(KEY) as third:  # the second holder's exit released the thread as before
        assert third.token > second.token


async def test_a_finish_sent_again_after_a_lost_reply_is_not_applied_twice(store: Store) -> None:
    async with store.lock(KEY) as lease:
        await store.append(KEY, Turn.user("q1"), lease=lease, exchange="open")
        answer = Turn(role="assistant", blocks=(TextBlock(text="a1"),))
        await store.append(KEY, answer, lease=lease, exchange="finish")
        async with store.lock(KEY) as later:  # the next question took the thread before the retry came
            await store.append(KEY, Turn.user("q2"), lease=later, exchange="open")
            await store.append(KEY, answer, lease=lease, exchange="finish")  # the retry: neither refused nor applied
    stored = await store.load(KEY)
    assert [t.text for t in stored.turns] == ["q1", "a1", "q2"]
    assert stored.open == OpenExchange(token=later.token, question_index=2)


async def test_regenerate_reopens_the_question_it_answers_again(store: Store) -> None:
    await store.append(KEY, Turn.user("q1"), Turn(role="assistant", blocks=(TextBlock(text="a1"),)))
    async with store.lock(KEY) as lease:
        await store.rewind(KEY, 1, lease=lease, exchange="open")
    stored = await store.load(KEY)
    assert [t.text for t in stored.turns] == ["q1"]
    assert stored.open == OpenExchange(token=lease.token, question_index=0)


async def test_forget_under_a_lease_deletes_the_open_exchange_too(store: Store) -> None:
    async with store.lock(KEY) as lease:
        await store.append(KEY, Turn.user("q1"), lease=lease, exchange="open")
        assert await store.forget(KEY, lease=lease)
    assert (await store.load(KEY)).open is None


KEPT = 3  # folded turns a `trimming` store keeps, so trimming shows in a short thread


@pytest.fixture(params=["redis", "memory"])
async def trimming(
    request: pytest.FixtureRequest, redis_target: RedisTarget, key_prefix: str, redis_client: redis.Redis
) -> AsyncIterator[Store]:
    """Like `store`, keeping only KEPT folded turns."""
    instance: Store
    if request.param == "redis":
        client = redis_target.connect(socket_timeout_s=1.0)
        keys = redis_target.keys(key_prefix)
        instance = RedisStore(client, keys, lock_lease_s=1.0, folded_turns_kept=KEPT, **OPTIONS)  # type: ignore[arg-type]
    else:
        instance = MemoryStore(folded_turns_kept=KEPT, **OPTIONS)  # type: ignore[arg-type]
    yield instance
    await instance.close()


def exchanges(first: int, last: int) -> list[Turn]:
    """Question n is turn 2n, its answer turn 2n + 1: a turn's text says its absolute index."""
    turns: list[Turn] = []
    for n in range(first, last):
        turns += [Turn.user(f"q{n}"), Turn(role="assistant", blocks=(TextBlock(text=f"a{n}"),))]
    return turns


async def test_a_thread_with_a_fold_is_read_from_the_fold_on_and_its_folded_turns_on_demand(store: Store) -> None:
    turns = exchanges(0, 10)
    await store.append(KEY, *turns)
    await store.save_fold(KEY, Fold(summary="s", upto=12, reads=(), urls=()))
    loaded = await store.load(KEY)
    assert len(loaded.turns) == 20  # indexes stay absolute
    assert loaded.turns[0] == turns[0]  # the first message is always shown
    assert all(turn is NOT_LOADED for turn in loaded.turns[1:12])  # the model sees the summary, not these
    assert loaded.turns[12:] == turns[12:]
    assert await store.folded(KEY, 12) == [(i, turns[i]) for i in range(1, 12)]
    assert loaded.fold == Fold(summary="s", upto=12, reads=(), urls=())


async def test_a_fold_trims_what_it_need_not_keep_and_indexes_stay_absolute(trimming: Store) -> None:
    store = trimming
    turns = exchanges(0, 10)
    await store.append(KEY, *turns)
    await store.save_fold(KEY, Fold(summary="s", upto=12, reads=(), urls=()))
    assert await store.folded(KEY, 12) == [(i, turns[i]) for i in range(12 - KEPT, 12)]  # 1..8 trimmed away
    loaded = await store.load(KEY)
    assert len(loaded.turns) == 20 and loaded.turns[12:] == turns[12:] and loaded.turns[0] == turns[0]
    async with store.lock(KEY) as lease:
        await store.append(KEY, Turn.user("q10"), lease=lease, exchange="open")
        assert (await store.load(KEY)).open == OpenExchange(token=lease.token, question_index=20)
        await store.append(KEY, Turn(role="assistant", blocks=(TextBlock(text="a10"),)), lease=lease, exchange="close")
    loaded = await store.load(KEY)
    assert [t.text for t in loaded.turns[19:]] == ["a9", "q10", "a10"]
    assert is_latest_question(loaded.turns, 20)  # Regenerate's question_index still names q10
    async with store.lock(KEY) as lease:
        await store.rewind(KEY, 21, lease=lease, exchange="open")  # Regenerate drops a10 and answers q10 again
    loaded = await store.load(KEY)
    assert [t.text for t in loaded.turns[12:]] == [t.text for t in turns[12:]] + ["q10"]
    assert loaded.open == OpenExchange(token=lease.token, question_index=20)
    await store.save_fold(KEY, Fold(summary="s2", upto=18, reads=(), urls=()))  # a second fold trims further
    assert await store.folded(KEY, 18) == [(i, turns[i]) for i in range(18 - KEPT, 18)]
    loaded = await store.load(KEY)
    assert len(loaded.turns) == 21 and [t.text for t in loaded.turns[18:]] == ["q9", "a9", "q10"]


async def test_a_fold_never_trims_its_thread_s_first_message_nor_its_last_turn(trimming: Store) -> None:
    turns = exchanges(0, 4)
    await trimming.append(KEY, *turns)
    await trimming.save_fold(KEY, Fold(summary="s", upto=99, reads=(), urls=()))  # past the end: nothing is lost
    loaded = await trimming.load(KEY)
    assert loaded.turns[0] == turns[0] and loaded.turns[-1] == turns[-1] and len(loaded.turns) == 8


async def test_first_sighting_is_true_once_per_workspace(store: Store) -> None:
    assert await store.first_sightings("T1", ["event:Ev1"]) == [True]
    assert await store.first_sightings("T1", ["event:Ev1"]) == [False]
    assert await store.first_sightings("T1", ["event:Ev3", "msg:T1:C1:1.2"]) == [True, True]
    assert await store.first_sightings("T1", ["event:Ev4", "msg:T1:C1:1.2"]) == [True, False]
    assert await store.first_sightings("T2", ["event:Ev1"]) == [True]


async def test_a_first_sighting_asked_again_by_its_claimant_is_still_first(store: Store) -> None:
    """A retry after a lost reply (the first try may have landed) must not drop the delivery it claimed."""
    assert await store.first_sightings("T1", ["event:Ev5", "msg:T1:C1:5.1"], claim="mine") == [True, True]
    assert await store.first_sightings("T1", ["event:Ev5", "msg:T1:C1:5.1"], claim="mine") == [True, True]
    assert await store.first_sightings("T1", ["event:Ev5"], claim="theirs") == [False]
    assert await store.first_sightings("T1", ["event:Ev5"]) == [False]


async def test_profiles_are_cached_per_workspace(store: Store) -> None:
    await store.put_profile("user", "T1", "U1", {"display_name": "Ada", "tz": "Europe/London"})
    assert await store.get_profile("user", "T1", "U1") == {"display_name": "Ada", "tz": "Europe/London"}
    assert await store.get_profile("user", "T2", "U1") is None
    assert await store.get_profile("channel", "T1", "U1") is None


async def test_media_is_found_per_workspace_and_missing_refs_are_left_out(store: Store) -> None:
    image = Attachment(kind="image", media_type="image/png", data_b64="AAAA")
    await store.put_media("T1", "F1", image)
    assert await store.get_media("T1", ["F1", "F2"]) == {"F1": image}
    assert await store.get_media("T2", ["F1"]) == {}
    assert await store.get_media("T1", []) == {}


async def test_media_keeps_its_size_for_the_budget_estimate(store: Store) -> None:
    photo = Attachment(kind="image", media_type="image/jpeg", data_b64="AAAA", width=1568, height=1176)
    manual = Attachment(kind="pdf", media_type="application/pdf", data_b64="JVBE", pages=90)
    await store.put_media("T1", "F1", photo)
    await store.put_media("T1", "F2", manual)
    assert await store.get_media("T1", ["F1", "F2"]) == {"F1": photo, "F2": manual}


async def test_budgets_set_by_an_admin_are_read_back_and_off_removes_a_limit(store: Store) -> None:
    assert await store.budgets("T1") == {}
    await store.set_budget("T1", "month", 25.5)
    await store.set_budget("T1", "user_day", None)
    assert await store.budgets("T1") == {"month": 25.5, "user_day": None}
    assert await store.budgets("T2") == {}


async def test_only_the_asker_decides_an_approval_and_only_once(store: Store) -> None:
    await store.open("T1", "a1", "U1", ttl_s=60)
    assert await store.decide("T1", "a1", "U2", approved=True) == "not_yours"
    assert await store.decide("T2", "a1", "U1", approved=True) == "expired"
    waiting = asyncio.create_task(store.wait("T1", "a1", timeout_s=5))
    assert await store.decide("T1", "a1", "U1", approved=True) == "ok"
    assert await waiting is True
    assert await store.decide("T1", "a1", "U1", approved=False) == "expired"


async def test_an_approval_nobody_decides_expires_and_a_late_click_is_told(store: Store) -> None:
    await store.open("T1", "a2", "U1", ttl_s=60)
    assert await store.wait("T1", "a2", timeout_s=0.3) is None
    assert await store.decide("T1", "a2", "U1", approved=True) == "expired"
    assert await store.wait("T1", "unknown", timeout_s=0.3) is None


async def test_a_healthy_store_says_so(store: Store) -> None:
    assert await store.healthy()


async def test_waiting_questions_take_the_thread_in_the_order_they_were_asked(store: Store) -> None:
    """A question asked again after its process died (earlier) must not be overtaken by a later one that reached
    the thread first: each waiter takes the thread in its question's order."""
    taken: list[str] = []
    first = store.lock(KEY, order=100.0)
    await first.__aenter__()

    async def wait_for_thread(name: str, order: float) -> None:
        async with store.lock(KEY, order=order):
            taken.append(name)
            await asyncio.sleep(0.05)

    later = asyncio.create_task(wait_for_thread("asked at 300", 300.0))
    await asyncio.sleep(0.2)  # the later question is waiting before the earlier one arrives
    earlier = asyncio.create_task(wait_for_thread("asked at 200", 200.0))
    await asyncio.sleep(0.2)
    await first.__aexit__(None, None, None)
    await asyncio.wait_for(asyncio.gather(later, earlier), timeout=5)
    assert taken == ["asked at 200", "asked at 300"]


async def test_a_waiter_that_gave_up_does_not_hold_the_queue(store: Store) -> None:
    holder = store.lock(KEY, order=100.0)
    await holder.__aenter__()
    with pytest.raises(StorageUnavailable):
        async with store.lock(KEY, order=150.0):  # gives up after lock_wait_s (0.5 s here)
            pass
    await holder.__aexit__(None, None, None)
    async with asyncio.timeout(2):
        async with store.lock(KEY, order=300.0):
            pass
