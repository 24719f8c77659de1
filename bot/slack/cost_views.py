"""Block Kit and CSV renderings of a UsageReport, kept inside Slack's documented message limits."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from bot.core.answers import PersonaFeedback
from bot.core.usage import Breakdown, UsageReport

# Slack's documented Block Kit limits (api.slack.com/reference/block-kit/blocks): header text 150 chars,
# section text 3,000, section fields 10 of 2,000 each, 50 blocks per message. Message `text` is kept under
# 4,000, the length chat.update accepts and the project's practical ceiling.
HEADER_TEXT_LIMIT = 150
SECTION_TEXT_LIMIT = 3_000
MAX_BLOCKS = 50
FALLBACK_TEXT_LIMIT = 4_000

TOP_ROWS = 10  # per top-N list: enough to spot the big spenders, short enough to read on a phone
BAR_WIDTH = 20  # characters in the longest chart bar
MAX_DAILY_BARS = 31  # longer ranges are charted per week so the chart stays one screen tall
MAX_CHART_LINES = 60
BAR = "▇"
SLIVER = "▏"  # shown for a non-zero amount too small for one full bar character


def usd(amount: float) -> str:
    """Dollars the way people read them: cents, thousands separators, and sub-cent spend still visible."""
    if 0 < abs(amount) < 0.01:
        return f"${amount:.4f}"
    return f"${amount:,.2f}"


def count(value: int) -> str:
    """Exact integers with thousands separators, for the summary fields."""
    return f"{value:,}"


def compact(value: int) -> str:
    """Short token counts (12.3k, 4.5M) for the top lists, where exact figures would crowd the line."""
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")):
        if abs(value) >= size:
            return f"{value / size:.1f}".rstrip("0").rstrip(".") + suffix
    return str(value)


def usage_report(
    report: UsageReport, label: str, *, personal: bool = False, feedback: Sequence[PersonaFeedback] = ()
) -> tuple[str, list[dict[str, Any]]]:
    """The /claude-cost answer: totals, top users/channels/models, a cost chart and the 👍 / 👎 per persona;
    `personal` for `me`."""
    title = f"{'Your' if personal else 'Claude'} usage — {label}: {usd(report.cost_usd)}"
    period = _period_text(report.start, report.end)
    if report.requests == 0:
        text = f"No Claude usage recorded for {label} ({period})."
        empty = [_section(text)]
        if feedback:
            empty.append(_section(feedback_text(feedback)))
            text += "\n" + feedback_summary(feedback)
        return text, empty

    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _clip(title, HEADER_TEXT_LIMIT), "emoji": True}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": period}]},
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in _figures(report)],
        },
    ]
    if report.unpriced_requests:
        blocks.append(_section(_unpriced_warning(report.unpriced_requests)))
    tops: list[tuple[str, Sequence[Breakdown], str]] = [
        ("Top channels", report.top_channels, "channel"),
        ("Top models", report.top_models, "model"),
        ("By provider", report.top_providers, "provider"),
    ]
    if not personal:
        tops.insert(0, ("Top users", report.top_users, "user"))
    for heading, rows, kind in tops:
        if rows:
            blocks.append(_section(f"*{heading}*\n" + "\n".join(_breakdown_lines(rows, kind, report.cost_usd))))
    chart_title, chart_lines = cost_chart(report.by_day, report.start, report.end)
    if chart_lines:
        blocks.append(_section(f"*{chart_title}*\n```" + "\n".join(chart_lines) + "```"))
    text = _fallback(report, label, title, period)
    if feedback:
        blocks.append(_section(feedback_text(feedback)))
        text = _clip(text + "\n" + feedback_summary(feedback), FALLBACK_TEXT_LIMIT)
    return text, blocks[:MAX_BLOCKS]


def feedback_text(feedback: Sequence[PersonaFeedback]) -> str:
    """👍 / 👎 per persona on the period's answers, with the share of positive votes."""
    lines = ["*Feedback on answers*"]
    for row in feedback[:TOP_ROWS]:
        share = row.up / (row.up + row.down)
        lines.append(
            f"• {_name(row.persona, 'persona')} — :+1: {count(row.up)} · :-1: {count(row.down)} ({share:.0%} positive)"
        )
    return "\n".join(lines)


def feedback_summary(feedback: Sequence[PersonaFeedback]) -> str:
    up, down = sum(row.up for row in feedback), sum(row.down for row in feedback)
    return f"Feedback: {count(up)} helpful, {count(down)} not helpful"


def cost_chart(by_day: Sequence[tuple[date, float]], start: date, end: date) -> tuple[str, list[str]]:
    """Text bars scaled to the busiest bucket: per day up to a month, per 7 days (or wider) beyond."""
    days = (end - start).days + 1
    if days <= 0:
        return "Cost per day", []
    spent: dict[date, float] = {}
    for day, cost in by_day:
        spent[day] = spent.get(day, 0.0) + cost
    span = 1 if days <= MAX_DAILY_BARS else max(7, math.ceil(days / MAX_CHART_LINES))
    buckets: list[tuple[date, float]] = []
    for offset in range(0, days, span):
        first = start + timedelta(days=offset)
        last = min(end, first + timedelta(days=span - 1))
        total = sum(cost for day, cost in spent.items() if first <= day <= last)
        buckets.append((first, total))
    peak = max(cost for _, cost in buckets)
    lines = [f"{first:%m-%d} {_bar(cost, peak):<{BAR_WIDTH}} {usd(cost)}" for first, cost in buckets]
    if span == 1:
        title = "Cost per day"
    elif span == 7:
        title = "Cost per week (from the date shown)"
    else:
        title = f"Cost per {span} days (from the date shown)"
    return title, lines


def csv_text(rows: Sequence[dict[str, str | int | float]]) -> str:
    """The export file: a header row naming every column any row has, in first-seen order."""
    if not rows:
        return ""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns), restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _figures(report: UsageReport) -> list[tuple[str, str]]:
    return [
        ("Requests", count(report.requests)),
        ("Total cost", usd(report.cost_usd)),
        ("Input tokens", count(report.input_tokens)),
        ("Output tokens", count(report.output_tokens)),
        ("Cache write tokens", count(report.cache_write_tokens)),
        ("Cache read tokens", count(report.cache_read_tokens)),
        ("Web searches", count(report.web_searches)),
        ("Saved by caching", usd(report.cache_savings_usd)),
    ]


def _unpriced_warning(unpriced: int) -> str:
    calls = "call" if unpriced == 1 else "calls"
    return (
        f":warning: {count(unpriced)} {calls} used a model with no known price and are not in the cost; "
        "their tokens are counted."
    )


def _breakdown_lines(rows: Sequence[Breakdown], kind: str, total_usd: float) -> list[str]:
    lines = []
    for rank, row in enumerate(rows[:TOP_ROWS], start=1):
        share = f" ({row.cost_usd / total_usd:.0%})" if total_usd > 0 else ""
        lines.append(
            f"{rank}. {_name(row.key, kind)} — {usd(row.cost_usd)}{share} · {count(row.requests)} "
            f"{'request' if row.requests == 1 else 'requests'} · {compact(row.input_tokens)} in / "
            f"{compact(row.output_tokens)} out"
        )
    return lines


def _name(key: str, kind: str) -> str:
    """Slack renders <@U…> and <#C…> as the person's or channel's current name for each viewer."""
    if not key:
        return "_unknown_"
    if kind == "user":
        return f"<@{key}>"
    if kind == "channel":
        return "a direct message" if key.startswith("D") else f"<#{key}>"
    return f"`{key.replace('`', '')}`"


def _bar(cost: float, peak: float) -> str:
    if peak <= 0 or cost <= 0:
        return ""
    return BAR * round(BAR_WIDTH * cost / peak) or SLIVER


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip(text, SECTION_TEXT_LIMIT)}}


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    # A clipped code block still needs its closing fence, or the rest of the message renders as code.
    tail = "…```" if text.count("```") % 2 == 0 and text.endswith("```") else "…"
    return text[: limit - len(tail)] + tail


def _period_text(start: date, end: date) -> str:
    days = f"{start:%Y-%m-%d}" if start == end else f"{start:%Y-%m-%d} to {end:%Y-%m-%d}"
    return f"{days} (UTC)"


def _fallback(report: UsageReport, label: str, title: str, period: str) -> str:
    """Plain text for notifications and clients without Block Kit: the headline figures only."""
    lines = [
        f"{title} ({period})",
        f"{count(report.requests)} requests · {count(report.input_tokens)} input / "
        f"{count(report.output_tokens)} output tokens · {count(report.web_searches)} web searches · "
        f"{usd(report.cache_savings_usd)} saved by caching",
    ]
    if report.unpriced_requests:
        lines.append(_unpriced_warning(report.unpriced_requests))
    return _clip("\n".join(lines), FALLBACK_TEXT_LIMIT)
