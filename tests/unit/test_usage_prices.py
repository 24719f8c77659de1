"""Prices and periods: every token kind costs what Anthropic bills, unknown models are flagged, periods parse."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from bot.core.events import Usage
from bot.core.usage import (
    CACHE_READ_MULTIPLIER,
    CACHE_WRITE_MULTIPLIER,
    DEFAULT_PRICES,
    WEB_SEARCH_USD,
    ModelPrice,
    PriceTable,
    UsageRecord,
    month_key,
    parse_period,
)

MTOK = 1_000_000
K100 = 100_000  # input below the long-context threshold: list prices
TABLE = PriceTable({"claude-test": ModelPrice(3.0, 15.0), "claude-dear": ModelPrice(20.0, 100.0)})


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (Usage(input_tokens=K100), 0.3),
        (Usage(output_tokens=MTOK), 15.0),
        (Usage(cache_write_tokens=K100), 0.375),
        (Usage(cache_read_tokens=K100), 0.030),
        (Usage(web_search_requests=2), 0.02),
        (Usage(1_000, 500, 2_000, 10_000, 1), 0.003 + 0.0075 + 0.0075 + 0.003 + 0.01),
        (Usage(), 0.0),
    ],
)
def test_each_token_kind_is_priced_as_billed(usage: Usage, expected: float) -> None:
    usd, known = TABLE.cost("claude-test", usage)
    assert known and usd == pytest.approx(expected)


def test_the_multipliers_are_anthropics() -> None:
    assert (CACHE_WRITE_MULTIPLIER, CACHE_READ_MULTIPLIER, WEB_SEARCH_USD) == (1.25, 0.1, 0.01)


def test_an_unknown_model_is_flagged_not_priced() -> None:
    assert TABLE.cost("claude-unreleased-9", Usage(MTOK, MTOK, 0, 0, 3)) == (0.0, False)
    assert TABLE.price("claude-unreleased-9") is None
    assert TABLE.cache_savings("claude-unreleased-9", Usage(cache_read_tokens=MTOK)) == 0.0


def test_cache_savings_are_what_reads_saved_against_full_input_price() -> None:
    assert TABLE.cache_savings("claude-test", Usage(input_tokens=5, cache_read_tokens=K100)) == pytest.approx(0.27)
    assert TABLE.cache_savings("claude-test", Usage(cache_write_tokens=MTOK)) == 0.0


def test_estimate_covers_the_worst_case_and_is_conservative_for_unknown_models() -> None:
    known = TABLE.estimate("claude-test", 10_000, 1_000)
    assert known == pytest.approx((10_000 * 3.0 * 1.25 + 1_000 * 15.0) / MTOK)
    assert known >= TABLE.cost("claude-test", Usage(input_tokens=10_000, output_tokens=1_000))[0]
    # Unknown: the dearest known price, so an unpriced model can never slip under a budget.
    assert TABLE.estimate("claude-unreleased-9", 10_000, 1_000) == TABLE.estimate("claude-dear", 10_000, 1_000)
    assert PriceTable().estimate("claude-unreleased-9", 0, 1_000) == pytest.approx(
        max(p.output_per_mtok for p in DEFAULT_PRICES.values()) * 1_000 / MTOK
    )


def test_past_200k_input_tokens_the_whole_call_is_billed_at_long_context_rates() -> None:
    """2x input, 1.5x output once input with cache reads and writes passes 200K; the reservation knows it too."""
    at_threshold = Usage(input_tokens=150_000, cache_read_tokens=50_000, output_tokens=1_000)
    past = Usage(input_tokens=150_000, cache_read_tokens=50_001, output_tokens=1_000)
    assert TABLE.cost("claude-test", at_threshold)[0] == pytest.approx((150_000 * 3 + 50_000 * 0.3 + 1_000 * 15) / MTOK)
    assert TABLE.cost("claude-test", past)[0] == pytest.approx((150_000 * 6 + 50_001 * 0.6 + 1_000 * 22.5) / MTOK)
    assert TABLE.cache_savings("claude-test", past) == pytest.approx(50_001 * 6 * 0.9 / MTOK)
    assert TABLE.estimate("claude-test", 300_000, 1_000) == pytest.approx((300_000 * 6 * 1.25 + 1_000 * 22.5) / MTOK)
    assert TABLE.estimate("claude-test", 300_000, 1_000) >= TABLE.cost("claude-test", Usage(300_000, 1_000))[0]


def test_a_reservation_counts_every_search_the_call_may_make() -> None:
    assert TABLE.estimate("claude-test", 0, 0, web_searches=5) == pytest.approx(5 * WEB_SEARCH_USD)


def test_dated_snapshots_match_their_alias_but_newer_versions_do_not() -> None:
    prices = PriceTable()
    assert prices.price("claude-sonnet-4-5-20250929") == prices.price("claude-sonnet-4-5") == ModelPrice(3.0, 15.0)
    assert prices.price("claude-sonnet-4-5-20260101") == ModelPrice(3.0, 15.0)
    assert prices.price("claude-haiku-4-5@20251001") == ModelPrice(1.0, 5.0)
    assert prices.price("claude-opus-5-5") == ModelPrice(4.0, 20.0)  # not claude-opus-5's price
    assert prices.price("claude-opus-5-5-20270101") == ModelPrice(4.0, 20.0)
    assert prices.price("claude-mythos-5-1") is None  # a different model from claude-mythos-5
    assert prices.price("claude-opus-4-8") is None
    assert prices.price("claude-sonnet-45") is None


def test_default_prices_name_well_formed_ids_and_dated_ids_share_the_alias_price() -> None:
    # Not "only ids the installed SDK lists": an SDK release drops retired models from its list, and their prices
    # stay valid (old usage records are costed with them). What must hold is the shape of every id.
    model_id_shape = re.compile(r"claude-[a-z]+-\d+(?:-\d{1,2})?(?:-\d{8})?")
    assert all(model_id_shape.fullmatch(model_id) for model_id in DEFAULT_PRICES), sorted(DEFAULT_PRICES)
    assert {"claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-5", "claude-sonnet-5"} <= set(DEFAULT_PRICES)
    for model_id in DEFAULT_PRICES:
        alias = model_id.rsplit("-", 1)[0]
        if model_id[-8:].isdigit():
            assert DEFAULT_PRICES[model_id] == DEFAULT_PRICES[alias]


def test_overrides_from_json_replace_and_add_prices() -> None:
    prices = PriceTable.from_setting(
        '{"claude-sonnet-4-5": {"input": 1, "output": 2.5}, "my-proxy-model": {"input": 0.5, "output": 1.0}}'
    )
    assert prices.price("claude-sonnet-4-5-20250929") == ModelPrice(3.0, 15.0)  # the exact dated id keeps its own
    assert prices.price("claude-sonnet-4-5") == ModelPrice(1.0, 2.5)
    assert prices.cost("my-proxy-model", Usage(input_tokens=K100)) == (pytest.approx(0.05), True)
    assert prices.price("claude-haiku-4-5") == ModelPrice(1.0, 5.0)  # defaults stay
    assert PriceTable.from_setting("  ").price("claude-haiku-4-5") == ModelPrice(1.0, 5.0)
    assert PriceTable.from_setting("{}").price("claude-haiku-4-5") == ModelPrice(1.0, 5.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ('["claude-x"]', "must be a JSON object"),
        ('{"claude-x": 3}', '"claude-x" must be'),
        ('{"claude-x": {"input": 1}}', '"claude-x" must be'),
        ('{"claude-x": {"input": 1, "ouput": 5}}', '"claude-x" must be'),
        ('{"claude-x": {"input": -1, "output": 5}}', "input must be a number"),
        ('{"claude-x": {"input": 1, "output": "5"}}', "output must be a number"),
        ('{"claude-x": {"input": true, "output": 5}}', "input must be a number"),
        ('{" ": {"input": 1, "output": 5}}', "model id is empty"),
    ],
)
def test_bad_overrides_are_refused_with_a_plain_message(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        PriceTable.from_setting(text)
    assert "Traceback" not in str(caught.value)


TODAY = date(2026, 11, 17)


@pytest.mark.parametrize(
    ("text", "start", "end", "label"),
    [
        ("", TODAY, TODAY, "today"),
        ("today", TODAY, TODAY, "today"),
        (" Today ", TODAY, TODAY, "today"),
        ("1d", TODAY, TODAY, "today"),
        ("7d", date(2026, 11, 11), TODAY, "the last 7 days"),
        ("30D", date(2026, 10, 19), TODAY, "the last 30 days"),
        ("2026-11", date(2026, 11, 1), TODAY, "November 2026 so far"),
        ("2026-10", date(2026, 10, 1), date(2026, 10, 31), "October 2026"),
        ("2024-2", date(2024, 2, 1), date(2024, 2, 29), "February 2024"),
        ("2025-12", date(2025, 12, 1), date(2025, 12, 31), "December 2025"),
    ],
)
def test_periods(text: str, start: date, end: date, label: str) -> None:
    assert parse_period(text, TODAY) == (start, end, label)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("yesterdayish", "don't know the period"),
        ("0d", "1 to 366 days"),
        ("367d", "1 to 366 days"),
        ("2026-13", "not a month"),
        ("2026-12", "has not started yet"),
        ("2026-11-05", "don't know the period"),
    ],
)
def test_bad_periods_say_what_is_accepted(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_period(text, TODAY)


def test_month_key_and_record_day_are_utc() -> None:
    assert month_key(date(2026, 1, 5)) == "2026-01"
    late_evening_in_new_york = datetime(2026, 11, 30, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    record = UsageRecord("T1", "U1", "C1", "p", "m", Usage(), 0.0, True, late_evening_in_new_york)
    assert record.day == date(2026, 12, 1)
    assert UsageRecord("T1", "U1", "C1", "p", "m", Usage(), 0.0, True, datetime(2026, 1, 1, tzinfo=UTC)).day == date(
        2026, 1, 1
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        UsageRecord("T1", "U1", "C1", "p", "m", Usage(), 0.0, True, datetime(2026, 1, 1))


def test_a_model_the_sdk_no_longer_lists_keeps_its_price() -> None:
    """claude-sonnet-4-5 left the SDK's model list in anthropic 2.16; a record of a call to it still costs money."""
    assert PriceTable().price("claude-sonnet-4-5") == ModelPrice(3.0, 15.0)
    assert PriceTable().cost("claude-sonnet-4-5-20250929", Usage(input_tokens=K100)) == (pytest.approx(0.3), True)
