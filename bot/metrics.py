"""Prometheus metrics, served at GET /metrics: what an operator graphs and alerts on.

The seam: the core never sees this module. Each adapter reports what it alone observes: the Slack middleware counts
requests, the HTTP and Socket Mode entry points time the ack, the reply stream times answers and their first visible
text, the Claude adapter counts failed attempts, the Slack client's retry hook counts 429s, and the usage ledger
reports each billed call as it records it. One `Metrics` per bot, each with its own registry, so several bots in one
process (tests) never mix figures.

Labels stay bounded: workspaces (one per install), models, Slack request kinds from a fixed set (SLACK_KINDS),
Slack methods, error types. Nothing an unsigned request says becomes a label.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from bot.core.usage import UsageRecord

NAMESPACE = "claudebot"
# The 0.0.4 text format: what every Prometheus version scrapes.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

# Every `kind` label the Slack metrics may carry: what the bot listens for, plus "other" for the rest of what a
# signed request may name and "rejected" for requests that failed verification (never labelled by their content).
SLACK_KINDS = frozenset(
    {
        "app_mention",
        "message",
        "app_home_opened",
        "app_uninstalled",
        "tokens_revoked",
        "assistant_thread_started",
        "assistant_thread_context_changed",
        "url_verification",
        "slash_command",
        "block_actions",
        "message_action",
        "shortcut",
        "view_submission",
        "view_closed",
        "other",
        "rejected",
    }
)
REJECTED = "rejected"


def slack_kind(kind: str) -> str:
    """The label for a request kind: one of SLACK_KINDS, so no request can add a label value of its own."""
    return kind if kind in SLACK_KINDS else "other"


_ACK_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)  # Slack gives up at 3 s
_FIRST_TEXT_BUCKETS_S = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0)
_ANSWER_BUCKETS_S = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        counter, histogram = self._counter, self._histogram
        self._events = counter(
            "slack_events", "Slack requests by kind and what the bot did with them", "kind", "outcome"
        )
        self._ack = histogram("slack_ack_seconds", "Time to acknowledge a Slack request", _ACK_BUCKETS_S, "kind")
        self._rate_limited = counter("slack_rate_limited", "Slack Web API 429 answers, by method", "method")
        self._answers = counter("answers", "Answers shown in Slack, by how they ended", "outcome")
        self._answer_s = histogram("answer_seconds", "From placeholder to final message", _ANSWER_BUCKETS_S)
        self._first_text_s = histogram(
            "answer_first_text_seconds",
            "From placeholder to the first words of the answer shown in Slack",
            _FIRST_TEXT_BUCKETS_S,
        )
        self._in_progress = Gauge(
            "answers_in_progress", "Answers being written right now", namespace=NAMESPACE, registry=self.registry
        )
        self._claude_errors = counter("claude_errors", "Failed Claude attempts, by error type (retried or not)", "type")
        self._claude_calls = counter("claude_calls", "Billed Claude calls", "workspace", "model")
        self._tokens = counter(
            "claude_tokens",
            "Billed tokens by kind: input, output, cache_write, cache_read",
            "workspace",
            "model",
            "kind",
        )
        self._cost = counter("claude_cost_usd", "Cost in USD from the price table", "workspace", "model")
        self._provider_calls = counter(
            "claude_provider_calls",
            "Billed Claude calls by the provider that served them (CLAUDE_PROVIDERS)",
            "provider",
        )
        self._provider_cost = counter(
            "claude_provider_cost_usd", "Cost in USD by the provider that served the call", "provider"
        )
        self._failovers = counter(
            "claude_failovers",
            "Calls a provider failed that went on to the next provider, by provider and reason",
            "provider",
            "reason",
        )
        ProcessCollector(namespace=NAMESPACE, registry=self.registry)

    def _counter(self, name: str, documentation: str, *labels: str) -> Counter:
        return Counter(name, documentation, list(labels), namespace=NAMESPACE, registry=self.registry)

    def _histogram(self, name: str, documentation: str, buckets: tuple[float, ...], *labels: str) -> Histogram:
        return Histogram(
            name, documentation, list(labels), buckets=buckets, namespace=NAMESPACE, registry=self.registry
        )

    # --- Slack -------------------------------------------------------------------------------------------
    def slack_event(self, kind: str, outcome: str) -> None:
        """outcome: accepted, duplicate (a retry, a double delivery), ignored (another bot), refused (shutting down);
        kind "rejected" has the reasons of bot.intake.REJECTION_REASONS instead."""
        self._events.labels(slack_kind(kind), outcome).inc()

    def slack_acked(self, kind: str, seconds: float) -> None:
        self._ack.labels(slack_kind(kind)).observe(seconds)

    def slack_rejected(self, reason: str, seconds: float) -> None:
        """A request that failed verification or was unreadable: counted by a fixed reason, never by its content."""
        self._events.labels(REJECTED, reason).inc()
        self._ack.labels(REJECTED).observe(seconds)

    def slack_rate_limited(self, method: str) -> None:
        self._rate_limited.labels(method).inc()

    # --- Answers -----------------------------------------------------------------------------------------
    def answer_finished(self, outcome: str, seconds: float) -> None:
        self._answers.labels(outcome).inc()
        self._answer_s.observe(seconds)

    def answer_first_text(self, seconds: float) -> None:
        self._first_text_s.observe(seconds)

    def watch_answers_in_progress(self, count: Callable[[], int]) -> None:
        self._in_progress.set_function(lambda: float(count()))

    # --- Claude ------------------------------------------------------------------------------------------
    def claude_error(self, error_type: str) -> None:
        self._claude_errors.labels(error_type).inc()

    def usage_recorded(self, record: UsageRecord) -> None:
        """One billed call, as the usage ledger records it (answers, tool rounds, reviews, summaries)."""
        workspace, model, usage = record.workspace_id, record.model, record.usage
        self._claude_calls.labels(workspace, model).inc()
        for kind, tokens in (
            ("input", usage.input_tokens),
            ("output", usage.output_tokens),
            ("cache_write", usage.cache_write_tokens),
            ("cache_read", usage.cache_read_tokens),
        ):
            self._tokens.labels(workspace, model, kind).inc(tokens)
        self._cost.labels(workspace, model).inc(record.cost_usd)
        self._provider_calls.labels(record.provider).inc()
        self._provider_cost.labels(record.provider).inc(record.cost_usd)

    def claude_failover(self, provider: str, reason: str) -> None:
        self._failovers.labels(provider, reason).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
