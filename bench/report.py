"""Turns what one scenario recorded into numbers, and numbers into the table the bench prints."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.processes import RedisCounters
from bench.workload import Delivery, Scenario, TurnLog, expected_points
from tests.fakes.slack_api import ApiCall

TIER3_WINDOW_S = 60.0


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def busiest_window(times: list[float], window_s: float) -> int:
    """Most events in any `window_s`-long sliding window."""
    ordered = sorted(times)
    best = start = 0
    for end, at in enumerate(ordered):
        while ordered[start] <= at - window_s:
            start += 1
        best = max(best, end - start + 1)
    return best


@dataclass
class ScenarioResult:
    scenario: Scenario
    duration_s: float
    questions: int
    answered: int
    complete: int
    ack_ms: list[float]
    question_ack_ms: list[float]
    failed_acks: int
    overhead_ms: list[float]
    first_text_s: list[float]
    complete_overhead_s: list[float]
    calls_per_answer: dict[str, float]
    rate_limited: Counter[str]
    edit_intervals_s: list[float]
    paced_intervals_s: list[float]
    updates_per_message: float
    busiest_workspace_updates_per_min: int
    redis_round_trips_per_turn: float
    redis_commands_per_turn: dict[str, float]
    cpu_s_per_answer: float
    peak_rss_mb: float
    max_concurrent_streams: int
    harness_lag_ms: list[float] = field(default_factory=list)
    others_cores: float = 0.0

    @classmethod
    def build(
        cls,
        scenario: Scenario,
        *,
        ttft_s: float,
        model_s: float,
        duration_s: float,
        turns: list[TurnLog],
        deliveries: list[Delivery],
        calls: list[ApiCall],
        redis: RedisCounters,
        cpu_s: float,
        peak_rss_bytes: int,
        max_concurrent_streams: int,
        harness_lag_s: list[float],
        others_cores: float,
    ) -> ScenarioResult:
        answered = [t for t in turns if t.done_at is not None]
        points = expected_points(scenario.answer_chars)
        complete = [t for t in answered if all(f"Point {n}:" in t.shown_text() for n in range(1, points + 1))]
        per_answer = max(len(answered), 1)
        methods = Counter(call.method for call in calls)
        messages = [m for t in turns for m in t.messages]
        pairs = [(a, b) for m in messages for a, b in zip(m.updates, m.updates[1:], strict=False)]
        updates_by_team: defaultdict[str, list[float]] = defaultdict(list)
        for call in calls:
            if call.method == "chat.update" and call.ok:
                updates_by_team[str(call.params.get("team_id", ""))].append(call.at)
        first_text = [t.first_text_at - t.sent_at for t in turns if t.first_text_at is not None]
        return cls(
            scenario=scenario,
            duration_s=duration_s,
            questions=len(turns),
            answered=len(answered),
            complete=len(complete),
            ack_ms=[d.latency_s * 1000 for d in deliveries],
            question_ack_ms=[d.latency_s * 1000 for d in deliveries if d.kind == "question"],
            failed_acks=sum(1 for d in deliveries if d.status != 200),
            overhead_ms=[(s - ttft_s) * 1000 for s in first_text],
            first_text_s=first_text,
            complete_overhead_s=[t.done_at - t.sent_at - model_s for t in answered if t.done_at is not None],
            calls_per_answer={method: count / per_answer for method, count in sorted(methods.items())},
            rate_limited=Counter(call.method for call in calls if call.status == 429),
            edit_intervals_s=[later - earlier for (earlier, _), (later, _) in pairs],
            # Paced edits only: the final edit follows the end of the stream at once, by design.
            paced_intervals_s=[later - earlier for (earlier, _), (later, streaming) in pairs if streaming],
            updates_per_message=sum(len(m.updates) for m in messages) / max(len(messages), 1),
            busiest_workspace_updates_per_min=max(
                (busiest_window(times, TIER3_WINDOW_S) for times in updates_by_team.values()), default=0
            ),
            redis_round_trips_per_turn=redis.reads / max(len(turns), 1),
            redis_commands_per_turn={
                name: count / max(len(turns), 1) for name, count in sorted(redis.commands.items())
            },
            cpu_s_per_answer=cpu_s / per_answer,
            peak_rss_mb=peak_rss_bytes / 2**20,
            max_concurrent_streams=max_concurrent_streams,
            harness_lag_ms=[lag * 1000 for lag in harness_lag_s],
            others_cores=others_cores,
        )


def _ms(values: list[float]) -> str:
    return f"{percentile(values, 50):.0f} / {percentile(values, 99):.0f}" if values else "-"


def _s2(values: list[float]) -> str:
    return f"{percentile(values, 50):.2f} / {percentile(values, 99):.2f}" if values else "-"


def _seconds(values: list[float]) -> str:
    return f"{percentile(values, 50):.1f} / {min(values):.1f}" if values else "-"


def _edit_rate(result: ScenarioResult) -> str:
    if not result.edit_intervals_s:
        return "-"
    return f"{1 / percentile(result.edit_intervals_s, 50):.2f}"


def _markdown(rows: list[list[str]]) -> str:
    return "\n".join("| " + " | ".join(row) + " |" for row in [rows[0], ["---"] * len(rows[0]), *rows[1:]])


def summary_table(results: list[ScenarioResult]) -> str:
    """Two Markdown tables, one row per scenario: how it felt, then what it cost."""
    feel = [
        [
            "scenario",
            "threads / workspaces / start window s",
            "answered (complete)",
            "streams at once",
            "question ack p50 / p99 ms",
            "1st text minus model's 1st token p50 / p99 ms",
            "complete minus model's time p50 / p99 s",
            "duration s",
        ]
    ]
    cost = [
        [
            "scenario",
            "Web API calls / answer",
            "429s",
            "chat.update / message",
            "edit interval p50 / min s",
            "paced edit interval p50 / min s",
            "chat.update / message / s",
            "busiest workspace chat.update in 60 s",
            "Redis round trips / turn",
            "CPU s / answer",
            "peak RSS MB",
        ]
    ]
    for r in results:
        s = r.scenario
        feel.append(
            [
                s.name,
                f"{s.threads} / {s.workspaces} / {s.ramp_s:g}",
                f"{r.answered}/{r.questions} ({r.complete})",
                str(r.max_concurrent_streams),
                _ms(r.question_ack_ms),
                _ms(r.overhead_ms),
                _s2(r.complete_overhead_s),
                f"{r.duration_s:.0f}",
            ]
        )
        cost.append(
            [
                s.name,
                f"{sum(r.calls_per_answer.values()):.1f}",
                str(sum(r.rate_limited.values())),
                f"{r.updates_per_message:.1f}",
                _seconds(r.edit_intervals_s),
                _seconds(r.paced_intervals_s),
                _edit_rate(r),
                str(r.busiest_workspace_updates_per_min),
                f"{r.redis_round_trips_per_turn:.1f}",
                f"{r.cpu_s_per_answer:.3f}",
                f"{r.peak_rss_mb:.0f}",
            ]
        )
    return _markdown(feel) + "\n\n" + _markdown(cost)


def detail_tables(results: list[ScenarioResult]) -> str:
    """Web API calls per answer by method, Redis commands per turn by name, and the latency details."""
    out = []
    breakdowns: list[tuple[str, str, Callable[[ScenarioResult], dict[str, float]]]] = [
        ("Web API calls per answer, by method", "method", lambda r: r.calls_per_answer),
        ("Redis commands per turn, by command", "command", lambda r: r.redis_commands_per_turn),
    ]
    for title, column, pick in breakdowns:
        names = sorted({name for r in results for name in pick(r)})
        rows = [[column] + [r.scenario.name for r in results]]
        rows += [[name] + [f"{pick(r).get(name, 0):.2f}" for r in results] for name in names]
        out.append(f"**{title}**\n\n" + _markdown(rows))
    limited = sorted({name for r in results for name in r.rate_limited})
    if limited:
        rows = [["method"] + [r.scenario.name for r in results]]
        rows += [[name] + [str(r.rate_limited.get(name, 0)) for r in results] for name in limited]
        out.append("**HTTP 429s, by method**\n\n" + _markdown(rows))
    else:
        out.append("**HTTP 429s, by method**: none in any scenario.")
    latency = [
        [
            "scenario",
            "question acks p50 / p99 / max ms",
            "failed acks",
            "event to 1st text p50 / p99 s",
            "harness loop lag p99 / max ms",
            "other processes' CPU, cores",
        ]
    ]
    for r in results:
        first = r.first_text_s
        latency.append(
            [
                r.scenario.name,
                f"{_ms(r.question_ack_ms)} / {max(r.question_ack_ms, default=math.nan):.0f}",
                str(r.failed_acks),
                f"{percentile(first, 50):.2f} / {percentile(first, 99):.2f}" if first else "-",
                f"{percentile(r.harness_lag_ms, 99):.0f} / {max(r.harness_lag_ms, default=math.nan):.0f}",
                f"{r.others_cores:.2f}",
            ]
        )
    out.append(
        "**Latency details** (the harness measures acks; its own loop lag bounds their error)\n\n" + _markdown(latency)
    )
    return "\n\n".join(out)
