"""`python -m bench.scale`: what each added bot process buys, on one Redis and on a three-node Redis Cluster.

The same scenarios as `bench.load` (its `run_scenario`), run three ways one after the other: one process on one
Redis server, one process on the cluster, then N processes (default 3) on the cluster with every delivery going to
the next process in turn, as a round-robin load balancer would — a mention and its duplicate `message` delivery
usually land on different processes. CPU and RSS are the processes' sums. See BENCHMARKS.md for a run's numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.load import bot_environment, describe_source, run_scenario
from bench.processes import REPO_ROOT, BotGroup, BotProcess, ClusterRedis, DedicatedRedis
from bench.report import ScenarioResult, summary_table
from bench.workload import SLACK_PATH, EventPoster, ModelProfile, Scenario
from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.slack_api import FakeSlack


class RoundRobinPoster(EventPoster):
    """EventPoster whose every delivery goes to the next process in turn."""

    def __init__(self, urls: list[str]) -> None:
        super().__init__(urls[0])
        self._next_url = itertools.cycle(urls)

    async def post(self, payload: dict[str, Any], *, kind: str) -> None:
        # EventPoster.post reads the URL before its first await, so setting it here cannot race another post.
        self._url = next(self._next_url)
        await super().post(payload, kind=kind)


def scenarios(threads: int) -> list[Scenario]:
    """Bot-bound work (one thread per workspace, so Slack's per-workspace limit never queues an edit)."""
    return [Scenario(f"{threads} threads", threads=threads, workspaces=threads, turns=2, ramp_s=4.0)]


async def measure(
    setup: str, processes: int, *, cluster: bool, options: argparse.Namespace
) -> tuple[str, list[ScenarioResult]]:
    profile = ModelProfile(ttft_s=0.6, tokens_per_s=80.0, tokens_per_delta=3)
    redis_server = ClusterRedis() if cluster else DedicatedRedis()
    results = []
    async with redis_server as redis, FakeSlack() as slack, FakeAnthropic() as claude:
        slack.latency_s = 0.02
        slack.enforce_tier("chat.update", 3)
        env = bot_environment(slack, claude, redis.url) | {"REDIS_CLUSTER": "true" if cluster else "false"}
        group = BotGroup([BotProcess(env, source=options.bot_source) for _ in range(processes)])
        async with group as bots, RoundRobinPoster([url + SLACK_PATH for url in bots.urls]) as poster:
            common: dict[str, Any] = {"profile": profile, "slack": slack, "claude": claude, "redis": redis}
            warmup = Scenario("warm-up", threads=2 * processes, workspaces=2 * processes, ramp_s=0.0)
            await run_scenario(warmup, "0", bot=bots, poster=poster, **common)  # type: ignore[arg-type]
            for number, scenario in enumerate(scenarios(options.threads), start=1):
                print(f"running: {setup}: {scenario.name}", file=sys.stderr, flush=True)
                result = await run_scenario(scenario, str(number), bot=bots, poster=poster, **common)  # type: ignore[arg-type]
                result.scenario = dataclasses.replace(scenario, name=f"{setup}: {scenario.name}")
                results.append(result)
                print(summary_table([result]), file=sys.stderr, flush=True)
            problems = bots.log_problems()
    return f"{setup}: {len(problems)} WARNING/ERROR log lines", results


async def run(options: argparse.Namespace) -> str:
    started = datetime.now(UTC)
    setups = [
        ("1 process, 1 Redis", 1, False),
        ("1 process, cluster", 1, True),
        (f"{options.processes} processes, cluster", options.processes, True),
    ]
    results: list[ScenarioResult] = []
    notes = []
    for setup, processes, cluster in setups:
        note, measured = await measure(setup, processes, cluster=cluster, options=options)
        results += measured
        notes.append(note)
    return "\n".join(
        [
            f"Bot: {describe_source(options.bot_source)}; started {started:%Y-%m-%d %H:%M} UTC.",
            "Model: time to first token 600 ms, 80 tokens/s, 3 tokens per delta; Slack round trip 20 ms.",
            "",
            summary_table(results),
            "",
            *notes,
            *(f"{r.scenario.name}: other processes on the machine used {r.others_cores:.2f} cores" for r in results),
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=3, help="bot processes in the last setup")
    parser.add_argument("--threads", type=int, default=200, help="conversations, each in its own workspace")
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    parser.add_argument("--bot-source", type=Path, default=REPO_ROOT, help="checkout whose bot package to run")
    options = parser.parse_args(argv)
    if options.processes < 1 or options.threads < 1:
        parser.error("--processes and --threads must be at least 1")
    report = asyncio.run(run(options))
    print(report)
    if options.output is not None:
        options.output.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
