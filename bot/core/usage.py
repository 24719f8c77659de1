"""What Claude calls cost: list prices, per-call records, usage reports and the periods people ask about."""

from __future__ import annotations

import calendar
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from bot.core import texts
from bot.core.events import Usage
from bot.core.i18n import MONTH_YEAR, fmt_date, tr, trn

_PER_MTOK = 1_000_000

# Prompt-caching multipliers on the model's input price (platform.claude.com, prompt caching). The bot only asks
# for 5-minute caching (no "ttl" on cache_control), so every cache write is priced at the 5-minute rate; a 1-hour
# write would cost 2x, but Usage does not split the two kinds.
CACHE_WRITE_MULTIPLIER = 1.25
CACHE_READ_MULTIPLIER = 0.1
WEB_SEARCH_USD = 10.0 / 1000  # $10 per 1,000 web searches, on top of the tokens the results add
# Long-context pricing (platform.claude.com pricing, "Long context pricing"): a request whose input (with cache
# reads and writes) passes 200K tokens is billed at premium rates for the whole call, 2x input and 1.5x output
# (documented for Sonnet 4 / 4.5 with the 1M window; applied to every model here, unverified for the others, so a
# budget never undercounts such a call). CONTEXT_TOKEN_LIMIT above 200K makes such calls possible.
LONG_CONTEXT_THRESHOLD = 200_000
LONG_CONTEXT_INPUT_MULTIPLIER = 2.0
LONG_CONTEXT_OUTPUT_MULTIPLIER = 1.5

ClaimKind = Literal["budget_warning", "turned_away", "weekly_summary"]


@dataclass(frozen=True, slots=True)
class Claim:
    """Something done once however many processes try; storage names its key and decides how long it holds."""

    kind: ClaimKind
    workspace_id: str
    subject: str  # the month, the person or the ISO week it is done once for


MAX_PERIOD_DAYS = 366  # "Nd" periods; aggregates are kept ~400 days, so longer would only show zeros


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """List price in USD per million tokens; cache and search prices derive from these."""

    input_per_mtok: float
    output_per_mtok: float


def _price(input_per_mtok: float, output_per_mtok: float) -> ModelPrice:
    return ModelPrice(input_per_mtok, output_per_mtok)


# Public list prices (USD / MTok) for the ids in anthropic.types.model_param; dated ids share their alias's price.
# Left out on purpose, so their calls are flagged as unpriced rather than guessed: claude-mythos-5-1,
# claude-mythos-5-2, claude-mythos-preview, claude-opus-4-8 (no published price found) and claude-haiku-5-5
# (only "from $0.10 / $0.50" is published; its tiers are unknown). Set PRICE_OVERRIDES for any of them.
DEFAULT_PRICES: dict[str, ModelPrice] = {
    "claude-fable-5-2": _price(8.0, 40.0),  # unverified: third-party docs quoting the list price
    "claude-fable-5-1": _price(10.0, 50.0),
    "claude-fable-5": _price(10.0, 50.0),
    "claude-mythos-5": _price(10.0, 50.0),  # the docs' lineup prices Mythos 5 the same as Fable 5
    "claude-opus-5-5": _price(4.0, 20.0),
    "claude-opus-5": _price(5.0, 25.0),
    "claude-sonnet-5-5": _price(2.0, 10.0),
    "claude-sonnet-5": _price(2.0, 10.0),
    "claude-opus-4-7": _price(5.0, 25.0),  # unverified: third-party, same as Opus 4.5 / 4.6
    "claude-opus-4-6": _price(5.0, 25.0),
    "claude-opus-4-5": _price(5.0, 25.0),
    "claude-opus-4-5-20251101": _price(5.0, 25.0),
    "claude-sonnet-4-6": _price(3.0, 15.0),  # unverified: third-party, same as Sonnet 4.5
    "claude-sonnet-4-5": _price(3.0, 15.0),
    "claude-sonnet-4-5-20250929": _price(3.0, 15.0),
    "claude-haiku-4-5": _price(1.0, 5.0),
    "claude-haiku-4-5-20251001": _price(1.0, 5.0),
}

# What may follow a known id for a prefix match: a date or tag ("-20250929", "@20250929", "-latest"), but never
# a further version number ("claude-mythos-5-1" is a different model from "claude-mythos-5", not a snapshot of it).
_SNAPSHOT_SUFFIX = re.compile(r"[-@](?!\d{1,2}(?:$|[-@.]))\S+")
_DAYS = re.compile(r"(\d{1,4})d")
_MONTH = re.compile(r"(\d{4})-(\d{1,2})")


# Where Claude is served (bot.settings.PROVIDER_NAMES). Amazon Bedrock, Google Vertex AI and Microsoft Foundry list
# Claude at Anthropic's prices, so the defaults apply to every provider. Bedrock's and Vertex's *regional* endpoints
# (a `us.`/`eu.` inference profile, a CLOUD_ML_REGION other than `global`) add a premium, about 10 % for Claude
# Sonnet 4.5 and later (Claude's docs, "global vs regional endpoints"; the exact figure is unverified here): set
# PRICE_OVERRIDES per provider for it, e.g. {"vertex": {"claude-sonnet-5-5": {"input": 2.2, "output": 11.0}}}.
PRICED_PROVIDERS = ("anthropic", "bedrock", "vertex", "foundry")


class PriceTable:
    """Prices by model id: the defaults with the operator's overrides on top, and per-provider overrides on those."""

    def __init__(
        self,
        prices: Mapping[str, ModelPrice] = DEFAULT_PRICES,
        overrides: Mapping[str, ModelPrice] | None = None,
        per_provider: Mapping[str, Mapping[str, ModelPrice]] | None = None,
    ) -> None:
        self._prices: dict[str, ModelPrice] = {**prices, **(overrides or {})}
        # Longest first, so "claude-opus-4-5-..." matches claude-opus-4-5 before any shorter id.
        self._by_length = sorted(self._prices, key=len, reverse=True)
        self._per_provider = {name: PriceTable({}, table) for name, table in (per_provider or {}).items()}

    @classmethod
    def from_setting(cls, overrides_json: str) -> PriceTable:
        """The defaults plus PRICE_OVERRIDES, e.g. {"claude-x": {"input": 1.0, "output": 5.0}}; blank means none."""
        if not overrides_json.strip():
            return cls()
        try:
            raw = json.loads(overrides_json)
        except json.JSONDecodeError as error:
            raise ValueError(f"price overrides are not valid JSON ({error.msg}, at character {error.pos})") from None
        if not isinstance(raw, dict):
            raise ValueError('price overrides must be a JSON object like {"claude-x": {"input": 1.0, "output": 5.0}}')
        per_provider: dict[str, dict[str, ModelPrice]] = {}
        for provider in [name for name in raw if name in PRICED_PROVIDERS]:
            table = raw.pop(provider)
            if not isinstance(table, dict):
                raise ValueError(f'price overrides: "{provider}" must map model ids to prices')
            per_provider[provider] = {_model_id(model): _override(model, value) for model, value in table.items()}
        overrides = {_model_id(model): _override(model, value) for model, value in raw.items()}
        return cls(overrides=overrides, per_provider=per_provider)

    def price(self, model: str, provider: str = "anthropic") -> ModelPrice | None:
        """The provider's override, else the exact id, else the longest known id this one is a dated snapshot of."""
        own = self._per_provider.get(provider)
        found = own.price(model) if own is not None else None
        if found is not None:
            return found
        found = self._prices.get(model)
        if found is not None:
            return found
        for known in self._by_length:
            if model.startswith(known) and _SNAPSHOT_SUFFIX.fullmatch(model, len(known)):
                return self._prices[known]
        return None

    def cost(self, model: str, usage: Usage, provider: str = "anthropic") -> tuple[float, bool]:
        """(USD, known): an unknown model costs 0.0 with known=False, so the caller records it as unpriced."""
        price = self.price(model, provider)
        if price is None:
            return 0.0, False
        price = _for_input(price, usage.input_tokens + usage.cache_write_tokens + usage.cache_read_tokens)
        usd = (
            usage.input_tokens * price.input_per_mtok
            + usage.cache_write_tokens * price.input_per_mtok * CACHE_WRITE_MULTIPLIER
            + usage.cache_read_tokens * price.input_per_mtok * CACHE_READ_MULTIPLIER
            + usage.output_tokens * price.output_per_mtok
        ) / _PER_MTOK + usage.web_search_requests * WEB_SEARCH_USD
        return usd, True

    def cache_savings(self, model: str, usage: Usage, provider: str = "anthropic") -> float:
        """What the cache reads saved against paying the full input price for those tokens (0.0 if unpriced)."""
        price = self.price(model, provider)
        if price is None:
            return 0.0
        price = _for_input(price, usage.input_tokens + usage.cache_write_tokens + usage.cache_read_tokens)
        return usage.cache_read_tokens * price.input_per_mtok * (1 - CACHE_READ_MULTIPLIER) / _PER_MTOK

    def estimate(self, model: str, input_tokens: int, max_output_tokens: int, web_searches: int = 0) -> float:
        """A budget reservation: all input as cache writes, every allowed output token, every allowed search's
        fee, at long-context rates past the threshold; an unknown model at the dearest prices."""
        price = _for_input(self.price(model) or self._dearest(), input_tokens)
        return (
            input_tokens * price.input_per_mtok * CACHE_WRITE_MULTIPLIER + max_output_tokens * price.output_per_mtok
        ) / _PER_MTOK + web_searches * WEB_SEARCH_USD

    def _dearest(self) -> ModelPrice:
        if not self._prices:
            return ModelPrice(0.0, 0.0)
        return ModelPrice(
            max(p.input_per_mtok for p in self._prices.values()),
            max(p.output_per_mtok for p in self._prices.values()),
        )


def _for_input(price: ModelPrice, input_tokens: int) -> ModelPrice:
    """The price of a call with this much input: long-context rates past the threshold."""
    if input_tokens <= LONG_CONTEXT_THRESHOLD:
        return price
    return ModelPrice(
        price.input_per_mtok * LONG_CONTEXT_INPUT_MULTIPLIER, price.output_per_mtok * LONG_CONTEXT_OUTPUT_MULTIPLIER
    )


def _model_id(model: str) -> str:
    if not model.strip():
        raise ValueError("price overrides: a model id is empty")
    return model.strip()


def _override(model: str, value: Any) -> ModelPrice:
    """One override entry, checked so a typo stops start-up with a message naming the model."""
    if not isinstance(value, dict) or set(value) != {"input", "output"}:
        raise ValueError(f'price overrides: "{model}" must be {{"input": <USD per MTok>, "output": <USD per MTok>}}')
    numbers = []
    for kind in ("input", "output"):
        number = value[kind]
        if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number) or number < 0:
            raise ValueError(f'price overrides: "{model}" {kind} must be a number of USD per MTok, 0 or more')
        numbers.append(float(number))
    return ModelPrice(numbers[0], numbers[1])


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One model call as billed, with who asked and where; `at` is an aware time (the ledger files it by UTC day)."""

    workspace_id: str
    user_id: str
    channel_id: str
    persona: str
    model: str
    usage: Usage
    cost_usd: float
    priced: bool
    at: datetime
    provider: str = "anthropic"  # where the call was served (CLAUDE_PROVIDERS)

    def __post_init__(self) -> None:
        if self.at.tzinfo is None or self.at.utcoffset() is None:
            raise ValueError("UsageRecord.at must be timezone-aware (UTC)")

    @property
    def day(self) -> date:
        """The UTC calendar day budgets and reports count this call in."""
        return self.at.astimezone(UTC).date()


@dataclass(frozen=True, slots=True)
class Breakdown:
    """One row of a top list (a user, channel or model)."""

    key: str
    cost_usd: float
    requests: int
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class UsageReport:
    """A workspace's (or one person's) usage over an inclusive range of UTC days."""

    workspace_id: str
    start: date
    end: date
    requests: int
    input_tokens: int
    output_tokens: int
    cache_write_tokens: int
    cache_read_tokens: int
    web_searches: int
    cost_usd: float
    cache_savings_usd: float
    unpriced_requests: int
    by_day: list[tuple[date, float]]
    top_users: list[Breakdown]
    top_channels: list[Breakdown]
    top_models: list[Breakdown]
    top_providers: list[Breakdown] = field(default_factory=list)


def parse_period(text: str, today: date) -> tuple[date, date, str]:
    """(start, end, label) for "", "today", "7d", "30d" or "2026-11"; ValueError with a sentence to show otherwise."""
    word = text.strip().lower()
    if word in ("", "today"):
        return today, today, tr(texts.PERIOD_TODAY)
    days = _DAYS.fullmatch(word)
    if days:
        count = int(days.group(1))
        if not 1 <= count <= MAX_PERIOD_DAYS:
            raise ValueError(tr(texts.PERIOD_BAD_DAYS, max=MAX_PERIOD_DAYS))
        label = trn(texts.PERIOD_LAST_DAYS, count) if count > 1 else tr(texts.PERIOD_TODAY)
        return today - timedelta(days=count - 1), today, label
    month = _MONTH.fullmatch(word)
    if month:
        year, number = int(month.group(1)), int(month.group(2))
        if not 1 <= number <= 12:
            raise ValueError(tr(texts.PERIOD_BAD_MONTH, text=text.strip(), example=month_key(today)))
        first = date(year, number, 1)
        if first > today:
            raise ValueError(tr(texts.PERIOD_NOT_STARTED, month=fmt_date(first, MONTH_YEAR)))
        last = date(year, number, calendar.monthrange(year, number)[1])
        if last >= today:
            return first, today, tr(texts.PERIOD_MONTH_SO_FAR, month=fmt_date(first, MONTH_YEAR))
        return first, last, fmt_date(first, MONTH_YEAR)
    raise ValueError(tr(texts.PERIOD_UNKNOWN, text=text.strip()))


def month_key(day: date) -> str:
    """The calendar month a budget counts in, e.g. "2026-11"."""
    return f"{day:%Y-%m}"
