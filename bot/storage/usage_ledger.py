"""Usage and cost in Redis: per-day aggregates for reports, counters and reservations for budgets, raw records.

Every record lands in one MULTI transaction; a report reads a few hashes per day in one pipeline and never the raw
records. Costs are stored as integer micro-dollars so sums are exact however many calls are added up.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import secrets
from collections import Counter, defaultdict
from collections.abc import Callable, Coroutine, Mapping
from datetime import date, timedelta
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as redis
from redis.exceptions import RedisError

from bot.core.errors import StorageUnavailable
from bot.core.usage import Breakdown, Claim, UsageRecord, UsageReport, month_key
from bot.storage.keys import AGGREGATE_TTL_S, CLAIM_TTL_S, RESERVATION_TTL_S, UsageKeys
from bot.storage.redis_store import _translated as _translated_unreachable

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")

DAY_S = 86_400
MAX_REPORT_DAYS = 400  # aggregates do not outlive AGGREGATE_TTL_S, so a longer range could only read zeros
TOP_N = 10  # per top list in a report
MICROS_PER_USD = 1_000_000

# Hash fields. Totals (per workspace-day, per user-day) use the bare names; the per-user, per-channel and per-model
# hashes of a day prefix them with the id ("U1:cost_micros"), and a user-day hash keeps that person's breakdowns as
# "channel:C1:cost_micros" / "model:claude-x:cost_micros". Ids go before the last ":" (model ids may contain one).
REQUESTS = "requests"
INPUT = "input"
OUTPUT = "output"
CACHE_WRITE = "cache_write"
CACHE_READ = "cache_read"
WEB_SEARCHES = "web_searches"
COST = "cost_micros"
SAVINGS = "savings_micros"
UNPRICED = "unpriced"
TOTAL_FIELDS = (REQUESTS, INPUT, OUTPUT, CACHE_WRITE, CACHE_READ, WEB_SEARCHES, COST, SAVINGS, UNPRICED)
USER_FIELDS = (REQUESTS, INPUT, OUTPUT, CACHE_WRITE, CACHE_READ, WEB_SEARCHES, COST)  # enough for the CSV export
BREAKDOWN_FIELDS = (REQUESTS, INPUT, OUTPUT, COST)
CHANNEL_PART = "channel"
MODEL_PART = "model"
PROVIDER_PART = "provider"


def _translated(method: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """The store's translation of an unreachable Redis, plus any refusal (OOM, READONLY): the core sees no redis."""
    inner = _translated_unreachable(method)

    @functools.wraps(method)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await inner(*args, **kwargs)
        except RedisError as error:
            log.warning("redis refused a usage command: %s: %s", type(error).__name__, error)
            raise StorageUnavailable() from error

    return wrapper


# Admit a call only if spent + open reservations + its estimate stays within each budget (-1 = no budget), then
# hold the estimate until it is released or expires. Expired reservations (a crashed process) are dropped first.
# KEYS: month cost, user-day hash, workspace reservations, user reservations.
# ARGV: estimate micros, month budget micros, user-day budget micros, ttl ms, reservation id, user-day cost field.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function held(key)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local total = 0
  for _, member in ipairs(redis.call('ZRANGE', key, 0, -1)) do
    total = total + tonumber(string.match(member, ':(%d+)$') or '0')
  end
  return total
end
local estimate = tonumber(ARGV[1])
local month_budget = tonumber(ARGV[2])
local user_budget = tonumber(ARGV[3])
if month_budget >= 0 then
  local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
  if spent + held(KEYS[3]) + estimate > month_budget then return 'workspace' end
end
if user_budget >= 0 then
  local spent = tonumber(redis.call('HGET', KEYS[2], ARGV[6]) or '0')
  if spent + held(KEYS[4]) + estimate > user_budget then return 'user' end
end
local ttl = tonumber(ARGV[4])
for i = 3, 4 do
  redis.call('ZADD', KEYS[i], now + ttl, ARGV[5])
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return 'ok'
"""


class RedisUsageLedger:
    """Where every call's usage is recorded and budgets are checked; expects a client with decode_responses=True."""

    def __init__(
        self,
        client: redis.Redis,
        keys: UsageKeys | str,
        *,
        raw_retention_days: int = 30,
        on_record: Callable[[UsageRecord], None] | None = None,
    ) -> None:
        self.client = client
        self.keys = UsageKeys(keys) if isinstance(keys, str) else keys
        self._raw_ttl_s = raw_retention_days * DAY_S
        self._reserve: Any = client.register_script(_RESERVE)
        self._on_record = on_record  # e.g. metrics; told first, so a Redis outage does not hide what was billed

    @_translated
    async def record(self, record: UsageRecord, *, savings_usd: float = 0.0) -> None:
        """One MULTI: the day's totals and breakdowns, the person's day, the month counter and the raw record."""
        if self._on_record is not None:
            self._on_record(record)
        day, ws, usage = record.day, record.workspace_id, record.usage
        totals = {
            REQUESTS: 1,
            INPUT: usage.input_tokens,
            OUTPUT: usage.output_tokens,
            CACHE_WRITE: usage.cache_write_tokens,
            CACHE_READ: usage.cache_read_tokens,
            WEB_SEARCHES: usage.web_search_requests,
            COST: _micros(record.cost_usd),
            SAVINGS: _micros(savings_usd),
            UNPRICED: 0 if record.priced else 1,
        }
        k = self.keys
        by_id = {
            k.day_users(ws, day): (record.user_id, USER_FIELDS),
            k.day_channels(ws, day): (record.channel_id, BREAKDOWN_FIELDS),
            k.day_models(ws, day): (record.model, BREAKDOWN_FIELDS),
            k.day_providers(ws, day): (record.provider, BREAKDOWN_FIELDS),
        }
        user_day = k.user_day(ws, record.user_id, day)
        month_cost = k.month_cost(ws, month_key(day))
        async with self.client.pipeline(transaction=True) as pipe:
            _add(pipe, k.day_totals(ws, day), {name: totals[name] for name in TOTAL_FIELDS})
            for name, (item, fields) in by_id.items():
                _add(pipe, name, {f"{item}:{field}": totals[field] for field in fields})
            _add(pipe, user_day, totals)
            parts = {CHANNEL_PART: record.channel_id, MODEL_PART: record.model, PROVIDER_PART: record.provider}
            for part, item in parts.items():
                _add(pipe, user_day, {f"{part}:{item}:{field}": totals[field] for field in BREAKDOWN_FIELDS})
            pipe.incrby(month_cost, totals[COST])
            for name in (k.day_totals(ws, day), *by_id, user_day, month_cost):
                pipe.expire(name, AGGREGATE_TTL_S)
            pipe.rpush(k.raw(ws, day), _raw_json(record, savings_usd))
            pipe.expire(k.raw(ws, day), self._raw_ttl_s)
            await pipe.execute()

    @_translated
    async def report(self, workspace_id: str, start: date, end: date, *, user_id: str | None = None) -> UsageReport:
        """The range's figures from the daily aggregates: one pipeline of a few hashes per day (one with user_id)."""
        days = _days(start, end)
        k = self.keys
        async with self.client.pipeline(transaction=False) as pipe:
            for day in days:
                if user_id is not None:
                    pipe.hgetall(k.user_day(workspace_id, user_id, day))
                else:
                    pipe.hgetall(k.day_totals(workspace_id, day))
                    pipe.hgetall(k.day_users(workspace_id, day))
                    pipe.hgetall(k.day_channels(workspace_id, day))
                    pipe.hgetall(k.day_models(workspace_id, day))
                    pipe.hgetall(k.day_providers(workspace_id, day))
            replies: list[dict[str, str]] = await pipe.execute()

        totals: Counter[str] = Counter()
        by_day: list[tuple[date, float]] = []
        users, channels, models, providers = _Tally(), _Tally(), _Tally(), _Tally()
        if user_id is not None:
            for day, hash_ in zip(days, replies, strict=True):
                own, parts = _split_user_day(hash_)
                totals.update(own)
                by_day.append((day, _usd(own[COST])))
                channels.add(parts[CHANNEL_PART])
                models.add(parts[MODEL_PART])
                providers.add(parts[PROVIDER_PART])
            if totals[REQUESTS]:
                users.add({f"{user_id}:{field}": str(totals[field]) for field in BREAKDOWN_FIELDS})
        else:
            for index, day in enumerate(days):
                day_totals, day_users, day_channels, day_models, day_providers = replies[5 * index : 5 * index + 5]
                own = _ints(day_totals)
                totals.update(own)
                by_day.append((day, _usd(own[COST])))
                users.add(day_users)
                channels.add(day_channels)
                models.add(day_models)
                providers.add(day_providers)
        return UsageReport(
            workspace_id=workspace_id,
            start=start,
            end=end,
            requests=totals[REQUESTS],
            input_tokens=totals[INPUT],
            output_tokens=totals[OUTPUT],
            cache_write_tokens=totals[CACHE_WRITE],
            cache_read_tokens=totals[CACHE_READ],
            web_searches=totals[WEB_SEARCHES],
            cost_usd=_usd(totals[COST]),
            cache_savings_usd=_usd(totals[SAVINGS]),
            unpriced_requests=totals[UNPRICED],
            by_day=by_day,
            top_users=users.top(),
            top_channels=channels.top(),
            top_models=models.top(),
            top_providers=providers.top(),
        )

    @_translated
    async def export_rows(self, workspace_id: str, start: date, end: date) -> list[dict[str, str | int | float]]:
        """One row per day per person who used Claude that day, oldest day first: the admin's CSV."""
        days = _days(start, end)
        async with self.client.pipeline(transaction=False) as pipe:
            for day in days:
                pipe.hgetall(self.keys.day_users(workspace_id, day))
            replies: list[dict[str, str]] = await pipe.execute()
        rows: list[dict[str, str | int | float]] = []
        for day, hash_ in zip(days, replies, strict=True):
            tally = _Tally()
            tally.add(hash_)
            for user in sorted(tally.items):
                figures = tally.items[user]
                rows.append(
                    {
                        "date": day.isoformat(),
                        "user": user,
                        "requests": figures[REQUESTS],
                        "input_tokens": figures[INPUT],
                        "output_tokens": figures[OUTPUT],
                        "cache_write_tokens": figures[CACHE_WRITE],
                        "cache_read_tokens": figures[CACHE_READ],
                        "cost_usd": _usd(figures[COST]),
                    }
                )
        return rows

    @_translated
    async def month_spent(self, workspace_id: str, month: str) -> float:
        """USD recorded in a calendar month ("2026-11"), for the workspace budget."""
        return _usd(int(await self.client.get(self.keys.month_cost(workspace_id, month)) or 0))

    @_translated
    async def user_day_spent(self, workspace_id: str, user_id: str, day: date) -> float:
        """USD one person's calls cost on a UTC day, for the daily budget."""
        return _usd(int(await self.client.hget(self.keys.user_day(workspace_id, user_id, day), COST) or 0))

    @_translated
    async def reserve(
        self,
        workspace_id: str,
        user_id: str,
        *,
        month: str,
        day: date,
        estimate_usd: float,
        month_budget_usd: float | None,
        user_day_budget_usd: float | None,
        ttl_s: int = RESERVATION_TTL_S,
    ) -> tuple[bool, str]:
        """Atomically hold the estimate if both budgets allow it: (True, reservation id) or (False, which budget)."""
        estimate = max(0, math.ceil(estimate_usd * MICROS_PER_USD))
        reservation_id = f"{secrets.token_hex(8)}:{estimate}"
        k = self.keys
        outcome = await self._reserve(
            keys=[
                k.month_cost(workspace_id, month),
                k.user_day(workspace_id, user_id, day),
                k.reserved(workspace_id),
                k.user_reserved(workspace_id, user_id),
            ],
            args=[
                estimate,
                _budget_micros(month_budget_usd),
                _budget_micros(user_day_budget_usd),
                max(1, ttl_s) * 1000,
                reservation_id,
                COST,
            ],
        )
        outcome = str(outcome)
        return (True, reservation_id) if outcome == "ok" else (False, outcome)

    @_translated
    async def release(self, workspace_id: str, user_id: str, reservation_id: str) -> None:
        """Drop a reservation once the real cost is recorded or the call failed; unknown or expired ids are fine."""
        if not reservation_id:
            return
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.zrem(self.keys.reserved(workspace_id), reservation_id)
            pipe.zrem(self.keys.user_reserved(workspace_id, user_id), reservation_id)
            await pipe.execute()

    @_translated
    async def claim_once(self, claim: Claim) -> bool:
        """True for exactly one caller per claim until its time-to-live passes, however many processes ask."""
        return bool(await self.client.set(self.keys.once(claim), "1", nx=True, ex=CLAIM_TTL_S[claim.kind]))


class _Tally:
    """Sums "<id>:<field>" hashes across days into per-id counters, and ranks them."""

    def __init__(self) -> None:
        self.items: defaultdict[str, Counter[str]] = defaultdict(Counter)

    def add(self, hash_: Mapping[str, str]) -> None:
        for name, value in hash_.items():
            item, _, field = name.rpartition(":")
            self.items[item][field] += int(value)

    def top(self) -> list[Breakdown]:
        rows = [Breakdown(item, _usd(f[COST]), f[REQUESTS], f[INPUT], f[OUTPUT]) for item, f in self.items.items()]
        rows.sort(key=lambda row: (-row.cost_usd, -row.requests, row.key))
        return rows[:TOP_N]


def _add(pipe: Any, name: str, increments: Mapping[str, int]) -> None:
    """HINCRBY each non-zero figure (a zero would only add a field)."""
    for field, amount in increments.items():
        if amount:
            pipe.hincrby(name, field, amount)


def _split_user_day(hash_: Mapping[str, str]) -> tuple[Counter[str], dict[str, dict[str, str]]]:
    """A user-day hash's own totals, and its "channel:..." / "model:..." fields grouped by part."""
    own: Counter[str] = Counter()
    parts: dict[str, dict[str, str]] = {CHANNEL_PART: {}, MODEL_PART: {}, PROVIDER_PART: {}}
    for name, value in hash_.items():
        part, sep, rest = name.partition(":")
        if sep and part in parts:
            parts[part][rest] = value
        elif not sep:
            own[name] += int(value)
    return own, parts


def _ints(hash_: Mapping[str, str]) -> Counter[str]:
    return Counter({name: int(value) for name, value in hash_.items()})


def _days(start: date, end: date) -> list[date]:
    """Every day in the inclusive range; bounded so a report's reads stay bounded."""
    count = (end - start).days + 1
    if count < 1:
        raise ValueError(f"a report cannot end ({end}) before it starts ({start})")
    if count > MAX_REPORT_DAYS:
        raise ValueError(f"a report covers at most {MAX_REPORT_DAYS} days")
    return [start + timedelta(days=offset) for offset in range(count)]


def _micros(usd: float) -> int:
    return round(usd * MICROS_PER_USD)


def _usd(micros: int) -> float:
    return micros / MICROS_PER_USD


def _budget_micros(usd: float | None) -> int:
    return -1 if usd is None else max(0, round(usd * MICROS_PER_USD))


def _raw_json(record: UsageRecord, savings_usd: float) -> str:
    return json.dumps(
        {
            "at": record.at.isoformat(),
            "user": record.user_id,
            "channel": record.channel_id,
            "persona": record.persona,
            "model": record.model,
            "provider": record.provider,
            **dataclasses.asdict(record.usage),  # input/output/cache_write/cache_read tokens, web_search_requests
            "cost_usd": record.cost_usd,
            "priced": record.priced,
            "savings_usd": savings_usd,
        },
        separators=(",", ":"),
    )
