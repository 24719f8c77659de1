"""The usage ledger against a real Redis: reports add up exactly, workspaces stay apart, budgets hold under load."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any, cast

import pytest
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from bot.core.errors import StorageUnavailable
from bot.core.events import Usage
from bot.core.usage import Claim, UsageRecord
from bot.storage.keys import AGGREGATE_TTL_S, RESERVATION_TTL_S
from bot.storage.usage_ledger import RedisUsageLedger
from tests.conftest import RedisTarget

NOV_1, NOV_2, NOV_3, NOV_4, NOV_5 = (date(2026, 11, day) for day in range(1, 6))
SONNET, HAIKU = "claude-sonnet-4-5", "claude-haiku-4-5"


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def record(
    user: str,
    channel: str,
    model: str,
    usage: Usage,
    cost: float,
    when: datetime,
    *,
    workspace: str = "T1",
    priced: bool = True,
) -> UsageRecord:
    return UsageRecord(workspace, user, channel, "default", model, usage, cost, priced, when)


# (record, savings) over three of five days, three people, three channels, three models (one unpriced).
T1_RECORDS = [
    (record("U1", "C1", SONNET, Usage(1_000, 200, 300, 4_000, 1), 0.1, at(NOV_1, 0)), 0.0108),
    (record("U1", "C2", HAIKU, Usage(500, 100), 0.2, datetime(2026, 11, 1, 23, 59, 59, tzinfo=UTC)), 0.0),
    (record("U2", "C1", SONNET, Usage(2_000, 300, 0, 1_000, 0), 1.25, at(NOV_2)), 0.0027),
    (record("U3", "C3", "claude-mystery", Usage(10, 10), 0.0, at(NOV_4), priced=False), 0.0),
    # 01:00 at UTC+5 is still the 4th in UTC: days are UTC days.
    (
        record("U2", "C1", HAIKU, Usage(7, 3), 0.000001, datetime(2026, 11, 5, 1, tzinfo=timezone(timedelta(hours=5)))),
        0,
    ),
]
T2_RECORD = record("U1", "C1", SONNET, Usage(9_999, 9_999), 99.0, at(NOV_2), workspace="T2")


@pytest.fixture
async def client(redis_target: RedisTarget, redis_client: redis.Redis) -> AsyncIterator[redis.Redis]:
    """The ledger's own client (as wiring builds it); `redis_client` cleans the prefix afterwards."""
    own = redis_target.connect()
    yield own
    await own.aclose()


@pytest.fixture
def ledger(client: redis.Redis, key_prefix: str, redis_target: RedisTarget) -> RedisUsageLedger:
    return RedisUsageLedger(client, redis_target.usage_keys(key_prefix), raw_retention_days=30)


@pytest.fixture
async def filled(ledger: RedisUsageLedger) -> RedisUsageLedger:
    await asyncio.gather(*(ledger.record(r, savings_usd=s) for r, s in T1_RECORDS))
    await ledger.record(T2_RECORD, savings_usd=1.0)
    return ledger


async def test_report_totals_are_the_exact_sums(filled: RedisUsageLedger) -> None:
    report = await filled.report("T1", NOV_1, NOV_5)
    usages = [r.usage for r, _ in T1_RECORDS]
    assert report.requests == 5
    assert report.input_tokens == sum(u.input_tokens for u in usages) == 3_517
    assert report.output_tokens == sum(u.output_tokens for u in usages) == 613
    assert report.cache_write_tokens == 300 and report.cache_read_tokens == 5_000 and report.web_searches == 1
    assert report.cost_usd == 1.550001  # integer micro-dollars: no 0.1 + 0.2 float drift
    assert report.cache_savings_usd == 0.0135
    assert report.unpriced_requests == 1
    assert (report.workspace_id, report.start, report.end) == ("T1", NOV_1, NOV_5)


async def test_by_day_is_every_day_in_range_zero_filled(filled: RedisUsageLedger) -> None:
    report = await filled.report("T1", date(2026, 10, 31), NOV_5)
    assert report.by_day == [
        (date(2026, 10, 31), 0.0),
        (NOV_1, 0.3),
        (NOV_2, 1.25),
        (NOV_3, 0.0),
        (NOV_4, 0.000001),
        (NOV_5, 0.0),
    ]


async def test_top_lists_are_ordered_by_cost(filled: RedisUsageLedger) -> None:
    report = await filled.report("T1", NOV_1, NOV_5)
    assert [(b.key, b.cost_usd, b.requests) for b in report.top_users] == [
        ("U2", 1.250001, 2),
        ("U1", 0.3, 2),
        ("U3", 0.0, 1),
    ]
    assert [(b.key, b.cost_usd, b.input_tokens, b.output_tokens) for b in report.top_channels] == [
        ("C1", 1.350001, 3_007, 503),
        ("C2", 0.2, 500, 100),
        ("C3", 0.0, 10, 10),
    ]
    assert [b.key for b in report.top_models] == [SONNET, HAIKU, "claude-mystery"]
    assert report.top_models[0].requests == 2


async def test_top_lists_keep_the_ten_biggest(ledger: RedisUsageLedger) -> None:
    await asyncio.gather(
        *(ledger.record(record(f"U{i:02d}", "C1", SONNET, Usage(1, 1), i / 100, at(NOV_1))) for i in range(1, 13))
    )
    report = await ledger.report("T1", NOV_1, NOV_1)
    assert [b.key for b in report.top_users] == [f"U{i:02d}" for i in range(12, 2, -1)]
    assert report.requests == 12


async def test_workspaces_never_see_each_others_figures(filled: RedisUsageLedger) -> None:
    other = await filled.report("T2", NOV_1, NOV_5)
    assert (other.requests, other.input_tokens, other.cost_usd, other.cache_savings_usd) == (1, 9_999, 99.0, 1.0)
    assert [b.key for b in other.top_users] == ["U1"]
    assert (await filled.report("T1", NOV_2, NOV_2)).cost_usd == 1.25
    assert (await filled.report("T3", NOV_1, NOV_5)).requests == 0


async def test_a_personal_report_has_only_that_persons_figures(filled: RedisUsageLedger) -> None:
    mine = await filled.report("T1", NOV_1, NOV_5, user_id="U1")
    assert (mine.requests, mine.input_tokens, mine.output_tokens) == (2, 1_500, 300)
    assert (mine.cache_write_tokens, mine.cache_read_tokens, mine.web_searches) == (300, 4_000, 1)
    assert (mine.cost_usd, mine.cache_savings_usd, mine.unpriced_requests) == (0.3, 0.0108, 0)
    assert [(b.key, b.cost_usd) for b in mine.top_users] == [("U1", 0.3)]
    assert [(b.key, b.cost_usd) for b in mine.top_channels] == [("C2", 0.2), ("C1", 0.1)]
    assert [(b.key, b.requests) for b in mine.top_models] == [(HAIKU, 1), (SONNET, 1)]
    assert mine.by_day[:2] == [(NOV_1, 0.3), (NOV_2, 0.0)] and len(mine.by_day) == 5

    nobody = await filled.report("T1", NOV_1, NOV_5, user_id="U9")
    assert (nobody.requests, nobody.cost_usd, nobody.top_users, nobody.top_channels) == (0, 0.0, [], [])
    assert [cost for _, cost in nobody.by_day] == [0.0] * 5


async def test_month_and_user_day_spending(filled: RedisUsageLedger) -> None:
    assert await filled.month_spent("T1", "2026-11") == 1.550001
    assert await filled.month_spent("T2", "2026-11") == 99.0
    assert await filled.month_spent("T1", "2026-10") == 0.0
    assert await filled.user_day_spent("T1", "U1", NOV_1) == 0.3
    assert await filled.user_day_spent("T1", "U2", NOV_4) == 0.000001
    assert await filled.user_day_spent("T1", "U1", NOV_2) == 0.0
    assert await filled.user_day_spent("T2", "U2", NOV_2) == 0.0


async def test_export_has_one_row_per_day_per_person(filled: RedisUsageLedger) -> None:
    rows = await filled.export_rows("T1", NOV_1, NOV_5)
    assert rows == [
        {
            "date": "2026-11-01",
            "user": "U1",
            "requests": 2,
            "input_tokens": 1_500,
            "output_tokens": 300,
            "cache_write_tokens": 300,
            "cache_read_tokens": 4_000,
            "cost_usd": 0.3,
        },
        {
            "date": "2026-11-02",
            "user": "U2",
            "requests": 1,
            "input_tokens": 2_000,
            "output_tokens": 300,
            "cache_write_tokens": 0,
            "cache_read_tokens": 1_000,
            "cost_usd": 1.25,
        },
        {
            "date": "2026-11-04",
            "user": "U2",
            "requests": 1,
            "input_tokens": 7,
            "output_tokens": 3,
            "cache_write_tokens": 0,
            "cache_read_tokens": 0,
            "cost_usd": 0.000001,
        },
        {
            "date": "2026-11-04",
            "user": "U3",
            "requests": 1,
            "input_tokens": 10,
            "output_tokens": 10,
            "cache_write_tokens": 0,
            "cache_read_tokens": 0,
            "cost_usd": 0.0,
        },
    ]
    assert await filled.export_rows("T1", NOV_3, NOV_3) == []


async def test_raw_records_expire_after_the_retention_and_aggregates_after_about_400_days(
    filled: RedisUsageLedger, redis_client: redis.Redis
) -> None:
    raw_key = filled.keys.raw("T1", NOV_1)
    assert 29 * 86_400 < await redis_client.ttl(raw_key) <= 30 * 86_400
    raw = [json.loads(item) for item in await redis_client.lrange(raw_key, 0, -1)]
    assert {(r["user"], r["model"], r["cost_usd"]) for r in raw} == {("U1", SONNET, 0.1), ("U1", HAIKU, 0.2)}
    for name in (
        filled.keys.day_totals("T1", NOV_1),
        filled.keys.day_users("T1", NOV_1),
        filled.keys.day_channels("T1", NOV_1),
        filled.keys.day_models("T1", NOV_1),
        filled.keys.user_day("T1", "U1", NOV_1),
        filled.keys.month_cost("T1", "2026-11"),
    ):
        assert AGGREGATE_TTL_S - 60 < await redis_client.ttl(name) <= AGGREGATE_TTL_S, name


class CountingClient:
    """The real client, noting each pipeline execute's size and any command sent outside a pipeline."""

    def __init__(self, real: redis.Redis) -> None:
        self.real = real
        self.pipeline_sizes: list[int] = []
        self.direct: list[str] = []

    def pipeline(self, transaction: bool = True) -> Any:
        pipe = self.real.pipeline(transaction=transaction)
        execute = pipe.execute

        async def counted(raise_on_error: bool = True) -> Any:
            self.pipeline_sizes.append(len(pipe))
            return await execute(raise_on_error)

        pipe.execute = counted  # type: ignore[method-assign]
        return pipe

    def register_script(self, script: str) -> Any:
        return self.real.register_script(script)

    def __getattr__(self, name: str) -> Any:
        self.direct.append(name)
        return getattr(self.real, name)


async def test_a_month_report_is_one_round_trip_of_a_few_reads_per_day(
    filled: RedisUsageLedger, client: redis.Redis
) -> None:
    counting = CountingClient(client)
    ledger = RedisUsageLedger(cast(redis.Redis, counting), filled.keys)
    report = await ledger.report("T1", date(2026, 10, 15), date(2026, 11, 14))
    assert report.requests == 5 and len(report.by_day) == 31
    assert counting.pipeline_sizes == [5 * 31] and counting.direct == []  # totals, users, channels, models, providers

    counting.pipeline_sizes.clear()
    await ledger.report("T1", date(2026, 10, 15), date(2026, 11, 14), user_id="U1")
    assert counting.pipeline_sizes == [31] and counting.direct == []

    counting.pipeline_sizes.clear()
    await ledger.record(record("U1", "C1", SONNET, Usage(1, 1), 0.01, at(NOV_1)))
    assert len(counting.pipeline_sizes) == 1 and counting.direct == []  # one MULTI per record


async def test_reserve_refuses_past_the_month_budget_and_release_frees(ledger: RedisUsageLedger) -> None:
    async def ask(user: str, estimate: float = 0.4, workspace: str = "T1") -> tuple[bool, str]:
        return await ledger.reserve(
            workspace,
            user,
            month="2026-11",
            day=NOV_1,
            estimate_usd=estimate,
            month_budget_usd=1.0,
            user_day_budget_usd=None,
        )

    first, second = await ask("U1"), await ask("U2")
    assert first[0] and second[0] and first[1] != second[1]
    assert await ask("U3") == (False, "workspace")  # 0.4 + 0.4 held, + 0.4 > 1.0
    assert (await ask("U3", workspace="T2"))[0]  # another workspace's budget is its own

    await ledger.release("T1", "U1", first[1])
    await ledger.release("T1", "U1", first[1])  # twice is harmless
    assert (await ask("U3"))[0]

    # What was really spent counts too: 0.8 held + 0.15 spent + 0.1 > 1.0.
    await ledger.record(record("U1", "C1", SONNET, Usage(1, 1), 0.15, at(NOV_1)))
    assert await ask("U4", 0.1) == (False, "workspace")
    assert (await ask("U4", 0.05))[0]


async def test_reserve_refuses_past_a_persons_day_budget(ledger: RedisUsageLedger) -> None:
    async def ask(user: str, estimate: float, day: date = NOV_1) -> tuple[bool, str]:
        return await ledger.reserve(
            "T1",
            user,
            month="2026-11",
            day=day,
            estimate_usd=estimate,
            month_budget_usd=100.0,
            user_day_budget_usd=0.5,
        )

    await ledger.record(record("U1", "C1", SONNET, Usage(1, 1), 0.2, at(NOV_1)))
    assert (await ask("U1", 0.25))[0]
    assert await ask("U1", 0.1) == (False, "user")  # 0.2 spent + 0.25 held + 0.1 > 0.5
    assert (await ask("U2", 0.45))[0]  # someone else's day is their own
    # Yesterday's spending does not count today (reservations are the person's, whatever the day).
    assert (await ask("U3", 0.5, NOV_2))[0]


async def test_no_budget_always_admits(ledger: RedisUsageLedger) -> None:
    ok, reservation = await ledger.reserve(
        "T1", "U1", month="2026-11", day=NOV_1, estimate_usd=1e6, month_budget_usd=None, user_day_budget_usd=None
    )
    assert ok and reservation
    await ledger.release("T1", "U1", reservation)


async def test_concurrent_reservations_never_overshoot_the_budget(ledger: RedisUsageLedger) -> None:
    estimate, budget = 0.01, 0.0505  # room for five
    results = await asyncio.gather(
        *(
            ledger.reserve(
                "T1",
                f"U{i}",
                month="2026-11",
                day=NOV_1,
                estimate_usd=estimate,
                month_budget_usd=budget,
                user_day_budget_usd=None,
            )
            for i in range(20)
        )
    )
    granted = [detail for ok, detail in results if ok]
    assert len(granted) == 5
    assert len(granted) * estimate <= budget + estimate
    assert {detail for ok, detail in results if not ok} == {"workspace"}


async def test_expired_reservations_stop_counting(ledger: RedisUsageLedger, redis_client: redis.Redis) -> None:
    # A crashed process's reservation: already past its expiry time.
    await redis_client.zadd(ledger.keys.reserved("T1"), {"crashed:900000": 1})
    ok, reservation = await ledger.reserve(
        "T1", "U1", month="2026-11", day=NOV_1, estimate_usd=0.5, month_budget_usd=1.0, user_day_budget_usd=None
    )
    assert ok
    assert await redis_client.zrange(ledger.keys.reserved("T1"), 0, -1) == [reservation]
    assert 0 < await redis_client.pttl(ledger.keys.reserved("T1")) <= RESERVATION_TTL_S * 1000


async def test_claim_once_is_true_once(ledger: RedisUsageLedger, redis_client: redis.Redis) -> None:
    warned = Claim("budget_warning", "T1", "2026-11")
    assert await ledger.claim_once(warned)
    assert not await ledger.claim_once(warned)
    assert await ledger.claim_once(Claim("weekly_summary", "T1", "2026-W48"))
    assert await ledger.claim_once(Claim("budget_warning", "T2", "2026-11"))
    assert 39 * 86_400 < await redis_client.ttl(ledger.keys.once(warned)) <= 40 * 86_400


async def test_a_report_range_is_checked(ledger: RedisUsageLedger) -> None:
    with pytest.raises(ValueError, match="before it starts"):
        await ledger.report("T1", NOV_2, NOV_1)
    with pytest.raises(ValueError, match="at most"):
        await ledger.report("T1", date(2020, 1, 1), NOV_1)


async def test_an_unreachable_redis_is_storage_unavailable(key_prefix: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the socket closes
    no_retries = Retry(NoBackoff(), 0)
    dead = redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_connect_timeout=0.5, retry=no_retries)
    ledger = RedisUsageLedger(dead, key_prefix)
    try:
        with pytest.raises(StorageUnavailable):
            await ledger.record(record("U1", "C1", SONNET, Usage(1, 1), 0.01, at(NOV_1)))
        with pytest.raises(StorageUnavailable):
            await ledger.report("T1", NOV_1, NOV_5)
        with pytest.raises(StorageUnavailable):
            await ledger.reserve(
                "T1", "U1", month="2026-11", day=NOV_1, estimate_usd=1, month_budget_usd=2, user_day_budget_usd=None
            )
        with pytest.raises(StorageUnavailable):
            await ledger.claim_once(Claim("turned_away", "T1", "U1"))
    finally:
        await dead.aclose()


async def test_a_redis_refusal_is_storage_unavailable_too(ledger: RedisUsageLedger, redis_client: redis.Redis) -> None:
    await redis_client.set(ledger.keys.day_totals("T1", NOV_1), "not a hash")  # WRONGTYPE on the next write
    with pytest.raises(StorageUnavailable):
        await ledger.record(record("U1", "C1", SONNET, Usage(1, 1), 0.01, at(NOV_1)))
