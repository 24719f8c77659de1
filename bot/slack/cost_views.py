"""Block Kit and CSV renderings of a UsageReport, kept inside Slack's documented message limits."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from bot.core import texts
from bot.core.answers import PersonaFeedback
from bot.core.i18n import MONTH_DAY_NUMERIC, fmt_date, money, number, percent, tr, trn
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
    """Dollars the way the reader writes them (locale), sub-cent spend still visible."""
    return money(amount)


def count(value: int) -> str:
    """Exact integers with the reader's thousands separators, for the summary fields."""
    return number(value)


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
    title = tr(
        texts.REPORT_TITLE_PERSONAL if personal else texts.REPORT_TITLE_WORKSPACE,
        period=label,
        cost=usd(report.cost_usd),
    )
    period = _period_text(report.start, report.end)
    if report.requests == 0:
        text = tr(texts.REPORT_EMPTY, period=label, days=_days_text(report.start, report.end))
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
        (tr(texts.REPORT_TOP_CHANNELS), report.top_channels, "channel"),
        (tr(texts.REPORT_TOP_MODELS), report.top_models, "model"),
        (tr(texts.REPORT_BY_PROVIDER), report.top_providers, "provider"),
    ]
    if not personal:
        tops.insert(0, (tr(texts.REPORT_TOP_USERS), report.top_users, "user"))
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
    lines = [tr(texts.REPORT_FEEDBACK_HEADING)]
    for row in feedback[:TOP_ROWS]:
        share = percent(row.up / (row.up + row.down))
        lines.append(
            tr(
                texts.REPORT_FEEDBACK_ROW,
                persona=_name(row.persona, "persona"),
                up=count(row.up),
                down=count(row.down),
                share=share,
            )
        )
    return "\n".join(lines)


def feedback_summary(feedback: Sequence[PersonaFeedback]) -> str:
    up, down = sum(row.up for row in feedback), sum(row.down for row in feedback)
    return tr(texts.REPORT_FEEDBACK_SUMMARY, up=count(up), down=count(down))


def cost_chart(by_day: Sequence[tuple[date, float]], start: date, end: date) -> tuple[str, list[str]]:
    """Text bars scaled to the busiest bucket: per day up to a month, per 7 days (or wider) beyond."""
    days = (end - start).days + 1
    if days <= 0:
        return tr(texts.REPORT_CHART_DAY), []
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
    labels = [fmt_date(first, MONTH_DAY_NUMERIC) for first, _ in buckets]  # the reader's order: 11/1, 1.11.
    width = max(len(label) for label in labels)
    lines = [
        f"{label:<{width}} {_bar(cost, peak):<{BAR_WIDTH}} {usd(cost)}"
        for label, (_, cost) in zip(labels, buckets, strict=True)
    ]
    if span == 1:
        title = tr(texts.REPORT_CHART_DAY)
    elif span == 7:
        title = tr(texts.REPORT_CHART_WEEK)
    else:
        title = tr(texts.REPORT_CHART_DAYS, span=span)
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
        (tr(texts.REPORT_REQUESTS), count(report.requests)),
        (tr(texts.REPORT_TOTAL_COST), usd(report.cost_usd)),
        (tr(texts.REPORT_INPUT_TOKENS), count(report.input_tokens)),
        (tr(texts.REPORT_OUTPUT_TOKENS), count(report.output_tokens)),
        (tr(texts.REPORT_CACHE_WRITE_TOKENS), count(report.cache_write_tokens)),
        (tr(texts.REPORT_CACHE_READ_TOKENS), count(report.cache_read_tokens)),
        (tr(texts.REPORT_WEB_SEARCHES), count(report.web_searches)),
        (tr(texts.REPORT_SAVED_BY_CACHING), usd(report.cache_savings_usd)),
    ]


def _unpriced_warning(unpriced: int) -> str:
    return trn(texts.REPORT_UNPRICED, unpriced)


def _breakdown_lines(rows: Sequence[Breakdown], kind: str, total_usd: float) -> list[str]:
    lines = []
    for rank, row in enumerate(rows[:TOP_ROWS], start=1):
        share = f" ({percent(row.cost_usd / total_usd)})" if total_usd > 0 else ""
        lines.append(
            trn(
                texts.REPORT_ROW,
                row.requests,
                rank=rank,
                name=_name(row.key, kind),
                cost=usd(row.cost_usd),
                share=share,
                input=compact(row.input_tokens),
                output=compact(row.output_tokens),
            )
        )
    return lines


def _name(key: str, kind: str) -> str:
    """Slack renders <@U…> and <#C…> as the person's or channel's current name for each viewer."""
    if not key:
        return tr(texts.REPORT_UNKNOWN)
    if kind == "user":
        return f"<@{key}>"
    if kind == "channel":
        return tr(texts.REPORT_DIRECT_MESSAGE) if key.startswith("D") else f"<#{key}>"
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


def _days_text(start: date, end: date) -> str:
    if start == end:
        return fmt_date(start)
    return tr(texts.PERIOD_RANGE, start=fmt_date(start), end=fmt_date(end))


def _period_text(start: date, end: date) -> str:
    return tr(texts.PERIOD_UTC, days=_days_text(start, end))


def _fallback(report: UsageReport, label: str, title: str, period: str) -> str:
    """Plain text for notifications and clients without Block Kit: the headline figures only."""
    lines = [
        f"{title} ({period})",
        tr(
            texts.REPORT_FALLBACK_FIGURES,
            requests=count(report.requests),
            input=count(report.input_tokens),
            output=count(report.output_tokens),
            searches=count(report.web_searches),
            saved=usd(report.cache_savings_usd),
        ),
    ]
    if report.unpriced_requests:
        lines.append(_unpriced_warning(report.unpriced_requests))
    return _clip("\n".join(lines), FALLBACK_TEXT_LIMIT)
