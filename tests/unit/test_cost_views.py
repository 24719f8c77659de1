"""The /claude-cost rendering: figures people can read, a proportional chart, Slack's limits kept, a CSV that parses."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from datetime import date, timedelta
from typing import Any

from bot.core.answers import PersonaFeedback
from bot.core.usage import Breakdown, UsageReport
from bot.slack.cost_views import cost_chart, csv_text, usage_report


def make_report(
    start: date = date(2026, 11, 1),
    days: int = 7,
    *,
    daily: list[float] | None = None,
    people: int = 3,
    unpriced: int = 0,
) -> UsageReport:
    costs = daily if daily is not None else [1.0 + i for i in range(days)]
    by_day = [(start + timedelta(days=i), cost) for i, cost in enumerate(costs)]
    total = sum(costs)
    users = [Breakdown(f"U{i:04d}", total / (i + 2), 10 + i, 12_345 * (i + 1), 678) for i in range(people)]
    return UsageReport(
        workspace_id="T0TEAM",
        start=start,
        end=start + timedelta(days=len(costs) - 1),
        requests=1234,
        input_tokens=1_234_567,
        output_tokens=89_012,
        cache_write_tokens=5_000,
        cache_read_tokens=250_000,
        web_searches=17,
        cost_usd=total,
        cache_savings_usd=0.675,
        unpriced_requests=unpriced,
        by_day=by_day,
        top_users=users,
        top_channels=[Breakdown("C0GENERAL", total * 0.75, 900, 1_000_000, 60_000), Breakdown("D0DM", 0.5, 3, 10, 5)],
        top_models=[Breakdown("claude-sonnet-4-5", total, 1234, 1_234_567, 89_012)],
    )


def all_text(blocks: list[dict[str, Any]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def assert_within_slack_limits(text: str, blocks: list[dict[str, Any]]) -> None:
    """Block Kit's documented limits, as the fake Slack enforces them on chat.postMessage."""
    assert len(blocks) <= 50
    assert len(text) <= 4000
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "section":
            assert "text" in block or "fields" in block
            if "text" in block:
                assert 0 < len(block["text"]["text"]) <= 3000
            assert len(block.get("fields", [])) <= 10
            assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))


def chart_lines(blocks: list[dict[str, Any]]) -> list[str]:
    (chart,) = [b["text"]["text"] for b in blocks if "```" in b.get("text", {}).get("text", "")]
    return chart.split("```")[1].splitlines()


def test_header_and_figures_are_formatted_for_people() -> None:
    report = make_report(daily=[1.0, 2.5, 1234.5])
    text, blocks = usage_report(report, "this month")
    assert blocks[0]["type"] == "header"
    assert blocks[0]["text"]["text"] == "Claude usage — this month: $1,238.00"
    rendered = all_text(blocks)
    for figure in ("1,234", "1,234,567", "89,012", "5,000", "250,000", "17", "$0.68"):
        assert figure in rendered
    assert "Nov 1, 2026 to Nov 3, 2026 (UTC)" in rendered  # dates in the reader's locale (English here)
    assert "$1,238.00" in text and "1,234 requests" in text
    assert_within_slack_limits(text, blocks)


def test_tops_mention_people_and_channels_so_slack_shows_their_names() -> None:
    _, blocks = usage_report(make_report(), "7d")
    rendered = all_text(blocks)
    assert "<@U0000>" in rendered and "<@U0002>" in rendered
    assert "<#C0GENERAL>" in rendered and "(75%)" in rendered
    assert "<#D0DM>" not in rendered and "a direct message" in rendered
    assert "`claude-sonnet-4-5`" in rendered and "1.2M in / 89k out" in rendered


def test_personal_report_leaves_out_the_people_list() -> None:
    _, blocks = usage_report(make_report(), "7d", personal=True)
    assert blocks[0]["text"]["text"].startswith("Your usage — 7d")
    assert "Top users" not in all_text(blocks) and "Top channels" in all_text(blocks)


def test_unpriced_calls_are_flagged_only_when_there_are_some() -> None:
    text, blocks = usage_report(make_report(unpriced=3), "7d")
    assert "3 calls used a model with no known price" in all_text(blocks) and "no known price" in text
    _, clean = usage_report(make_report(), "7d")
    assert "no known price" not in all_text(clean)


def test_no_usage_says_so_plainly() -> None:
    empty = make_report(daily=[0.0, 0.0], people=0)
    empty = dataclasses.replace(empty, requests=0, top_channels=[], top_models=[])
    text, blocks = usage_report(empty, "today")
    assert text.startswith("No Claude usage recorded for today") and len(blocks) == 1


def test_chart_bars_are_proportional_to_the_busiest_day() -> None:
    _, blocks = usage_report(make_report(daily=[1.0, 4.0, 2.0, 0.0, 0.001]), "7d")
    lines = chart_lines(blocks)
    assert len(lines) == 5
    assert [line.count("▇") for line in lines] == [5, 20, 10, 0, 0]
    assert lines[0].startswith("11/1 ▇▇▇▇▇ ") and lines[0].endswith("$1.00")
    assert "▏" in lines[4] and lines[4].endswith("$0.0010")  # tiny spend still shows
    assert len({line.index("$") for line in lines}) == 1  # amounts line up


def test_days_without_usage_still_get_a_line() -> None:
    title, lines = cost_chart(
        [(date(2026, 11, 1), 2.0), (date(2026, 11, 4), 1.0)], date(2026, 11, 1), date(2026, 11, 4)
    )
    assert title == "Cost per day"
    assert [line[:5] for line in lines] == ["11/1 ", "11/2 ", "11/3 ", "11/4 "]  # month/day, in English
    assert lines[1].endswith("$0.00")


def test_ninety_days_chart_per_week_and_stay_within_limits() -> None:
    report = make_report(date(2026, 9, 1), daily=[float(i % 10) for i in range(90)], people=40, unpriced=2)
    text, blocks = usage_report(report, "2026-09 to 2026-11 " + "x" * 200)
    assert_within_slack_limits(text, blocks)
    lines = chart_lines(blocks)
    assert len(lines) == 13  # 90 days in 7-day buckets
    assert "per week" in all_text(blocks)
    assert lines[0].startswith("9/1 ") and lines[1].startswith("9/8 ")
    assert lines[0].endswith(f"${sum(i % 10 for i in range(7)):.2f}")
    top_users = next(b["text"]["text"] for b in blocks if "Top users" in b.get("text", {}).get("text", ""))
    assert top_users.count("<@U") == 10  # the top ten, not all forty


def test_a_year_long_chart_still_fits() -> None:
    report = make_report(date(2025, 1, 1), daily=[1.0] * 366)
    text, blocks = usage_report(report, "a year")
    assert_within_slack_limits(text, blocks)
    assert len(chart_lines(blocks)) <= 60


def test_csv_parses_back_with_a_header_row() -> None:
    rows: list[dict[str, str | int | float]] = [
        {"date": "2026-11-01", "user": "U1", "channel": "C1", "model": "claude-sonnet-4-5", "cost_usd": 1.25},
        {"date": "2026-11-02", "user": "U2", "channel": "C1", "model": 'odd, "quoted"', "cost_usd": 0.5, "extra": 7},
    ]
    parsed = list(csv.DictReader(io.StringIO(csv_text(rows))))
    assert parsed[0] == {
        "date": "2026-11-01",
        "user": "U1",
        "channel": "C1",
        "model": "claude-sonnet-4-5",
        "cost_usd": "1.25",
        "extra": "",
    }
    assert parsed[1]["model"] == 'odd, "quoted"' and parsed[1]["extra"] == "7"
    assert csv_text([]) == ""


def test_feedback_per_persona_is_shown_with_its_share_of_positive_votes() -> None:
    feedback = [PersonaFeedback("code_reviewer", up=3, down=1), PersonaFeedback("default", up=0, down=2)]
    text, blocks = usage_report(make_report(), "today", feedback=feedback)
    shown = all_text(blocks)
    assert "`code_reviewer` — :+1: 3 · :-1: 1 (75% positive)" in shown
    assert "`default` — :+1: 0 · :-1: 2 (0% positive)" in shown
    assert "Feedback: 3 helpful, 3 not helpful" in text
    assert_within_slack_limits(text, blocks)


def test_feedback_is_shown_even_for_a_period_without_usage() -> None:
    empty = dataclasses.replace(make_report(), requests=0)
    text, blocks = usage_report(empty, "today", feedback=[PersonaFeedback("default", up=1, down=0)])
    assert "No Claude usage" in text and "`default` — :+1: 1" in all_text(blocks)
