"""`python -m bench.load`: run the bot under load against the fakes and print what it cost and how it felt.

Each scenario is measured on its own, one after the other, against one bot process (or `--processes N` sharing one
Redis), in ONE workspace unless its name says otherwise: question ack latency, time to the first visible text and
to the complete answer (the model's own time taken off), Web API calls and 429s per method against a fake Slack that
enforces every method's limit, Redis round trips per turn, CPU and RSS of the bot. See BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from bench.processes import REPO_ROOT, BotGroup, BotProcess, DedicatedRedis
from bench.report import ScenarioResult, detail_tables, summary_table
from bench.workload import (
    SIGNING_SECRET,
    SLACK_PATH,
    EventPoster,
    LoopLag,
    ModelProfile,
    Scenario,
    Tracker,
    converse,
    populate,
)
from tests.fakes.anthropic_api import FakeAnthropic
from tests.fakes.slack_api import FakeSlack

LONG_ANSWER_CHARS = 20_000
# Slack's per-workspace chat.postMessage ceiling is undocumented ("several hundred a minute"); the fake enforces this
# figure, the bot spends its default WORKSPACE_POSTS_PER_MINUTE (400) of it.
SLACK_POSTS_CEILING = 450
SUSTAINED = "300 a minute for 3 minutes"


def scenarios(quick: bool) -> list[Scenario]:
    """The standard set, in one workspace (5 threads a channel) unless the name says otherwise."""
    chosen = [
        Scenario("1 thread", threads=1, workspaces=1, turns=4, ramp_s=0.0),
        Scenario("50 at once", threads=50, workspaces=1, ramp_s=0.5),
        Scenario("200 at once", threads=200, workspaces=1, ramp_s=1.0),
        Scenario(
            "20k-char answers",
            threads=10,
            workspaces=1,
            answer_chars=LONG_ANSWER_CHARS,
            tokens_per_s=400.0,  # ~12 s of streaming instead of ~60 s: the rendering of long text is what is measured
            tokens_per_delta=5,
        ),
        Scenario("200 at once, 20 workspaces", threads=200, workspaces=20, ramp_s=1.0),
        # 900 questions, one every 0.2 s: a thread each, bounded to 3 minutes of asking.
        Scenario(SUSTAINED, threads=900, workspaces=1, ramp_s=180.0),
    ]
    if quick:
        chosen = [s for s in chosen if s.name != SUSTAINED]
    return chosen


def bot_environment(slack: FakeSlack, claude: FakeAnthropic, redis_url: str) -> dict[str, str]:
    """Production defaults, except where the bot must find the fakes and the dedicated Redis."""
    return {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "ANTHROPIC_API_KEY": claude.api_key,
        "ANTHROPIC_BASE_URL": claude.base_url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": "bench:",
        "LOG_LEVEL": "INFO",
    }


async def run_scenario(
    scenario: Scenario,
    tag: str,
    *,
    profile: ModelProfile,
    slack: FakeSlack,
    claude: FakeAnthropic,
    redis: DedicatedRedis,
    bot: BotGroup,
    poster: EventPoster,
) -> ScenarioResult:
    model = profile.for_scenario(scenario)
    claude.default_reply = model.reply(scenario.answer_chars)
    threads = populate(slack, scenario, tag)
    tracker = Tracker(poster)
    slack.call_listeners[:] = [tracker.on_call]
    poster.deliveries.clear()
    claude.max_active_streams = claude.active_streams
    bot.peak_rss_bytes = 0  # every process's peak starts again from its current RSS
    before = bot.sample()
    redis_before = await redis.counters()
    harness_before_s, redis_cpu_before_s = sum(os.times()[:2]), redis.cpu_s()
    lag = LoopLag()
    lag.start()
    started = time.monotonic()
    spacing = scenario.ramp_s / max(scenario.threads - 1, 1)
    await asyncio.gather(
        *(converse(poster, tracker, scenario, thread, start_s=n * spacing, seed=n) for n, thread in enumerate(threads))
    )
    duration = time.monotonic() - started
    await poster.drain()
    await asyncio.sleep(0.3)  # echoes of the last edits reach the bot and are acked
    await poster.drain()
    await lag.stop()
    after = bot.sample()
    ours_cpu_s = sum(os.times()[:2]) - harness_before_s + redis.cpu_s() - redis_cpu_before_s
    redis_delta = (await redis.counters()).minus(redis_before)
    slack.call_listeners.clear()
    return ScenarioResult.build(
        scenario,
        ttft_s=model.ttft_s,
        duration_s=duration,
        turns=tracker.turns,
        deliveries=list(poster.deliveries),
        calls=tracker.calls,
        redis=redis_delta,
        cpu_s=after.cpu_s - before.cpu_s,
        peak_rss_bytes=bot.peak_rss_bytes,
        max_concurrent_streams=claude.max_active_streams,
        model_s=model.model_s(scenario.answer_chars),
        harness_lag_s=lag.lags_s,
        # What neither the bot, Redis nor the harness used: other processes on this shared machine, in cores.
        others_cores=max(0.0, after.machine_cpu_s - before.machine_cpu_s - (after.cpu_s - before.cpu_s) - ours_cpu_s)
        / duration,
    )


async def run(options: argparse.Namespace) -> str:
    profile = ModelProfile(
        ttft_s=options.ttft_ms / 1000,
        tokens_per_s=options.tokens_per_s,
        tokens_per_delta=options.tokens_per_delta,
    )
    started = datetime.now(UTC)
    chosen = [s for s in scenarios(options.quick) if not options.only or s.name in options.only]
    results: list[ScenarioResult] = []
    async with DedicatedRedis() as redis, FakeSlack() as slack, FakeAnthropic() as claude:
        slack.latency_s = options.slack_rtt_ms / 1000
        slack.enforce_slack_limits(workspace_posts_per_minute=SLACK_POSTS_CEILING)
        env = bot_environment(slack, claude, redis.url)
        bots = [BotProcess(env, source=options.bot_source) for _ in range(options.processes)]
        async with BotGroup(bots) as bot:
            idle_rss_mb = bot.sample().rss_bytes / 2**20
            async with EventPoster(*(url + SLACK_PATH for url in bot.urls)) as poster:
                warmup = Scenario("warm-up", threads=2, workspaces=2, ramp_s=0.0)
                await run_scenario(
                    warmup, "0", profile=profile, slack=slack, claude=claude, redis=redis, bot=bot, poster=poster
                )
                for number, scenario in enumerate(chosen, start=1):
                    print(f"running: {scenario.name}", file=sys.stderr, flush=True)
                    result = await run_scenario(
                        scenario,
                        str(number),
                        profile=profile,
                        slack=slack,
                        claude=claude,
                        redis=redis,
                        bot=bot,
                        poster=poster,
                    )
                    results.append(result)
                    print(summary_table([result]), file=sys.stderr, flush=True)
            peak_mb = max(bot.kernel_peak_rss_bytes(), bot.peak_rss_bytes) / 2**20
            problems = bot.log_problems()
            logs = ", ".join(str(process.log_path) for process in bot.processes)
    lines = [
        f"Bot: {describe_source(options.bot_source)}; started {started:%Y-%m-%d %H:%M} UTC.",
        f"Model: time to first token {profile.ttft_s * 1000:.0f} ms, {profile.tokens_per_s:.0f} tokens/s, "
        f"{profile.tokens_per_delta} tokens per delta; Slack round trip {options.slack_rtt_ms:.0f} ms; "
        "every method limited to its Slack tier per workspace; chat.postMessage to 5 in any 5 s per channel and "
        f"{SLACK_POSTS_CEILING} a minute per workspace.",
        f"Bot processes: {options.processes}, sharing one Redis; deliveries spread round-robin.",
        f"Bot process: {idle_rss_mb:.0f} MB RSS idle after start, {peak_mb:.0f} MB peak (kernel high-water mark).",
        "",
        summary_table(results),
        "",
        detail_tables(results),
        "",
        f"Bot logs ({logs}): {len(problems)} WARNING/ERROR lines" + (":" if problems else "."),
        *(f"    {line}" for line in problems[:20]),
    ]
    return "\n".join(lines)


def describe_source(source: Path) -> str:
    """The checkout measured, with its commit when it is a git work tree ("+changes" if bot/ has uncommitted ones)."""
    git = ["git", "-C", str(source)]
    try:
        found = subprocess.run(
            [*git, "rev-parse", "--show-toplevel", "--short", "HEAD"], capture_output=True, text=True
        )
        top, commit = found.stdout.split()
        dirty = subprocess.run([*git, "status", "--porcelain", "--", "bot"], capture_output=True, text=True).stdout
    except (OSError, ValueError):
        return str(source)
    if Path(top) != source.resolve():
        return str(source)  # an export inside some other repository, e.g. under a temporary folder
    return f"{source} at {commit}" + (" +changes in bot/" if dirty.strip() else "")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.splitlines()[0])
    parser.add_argument("--ttft-ms", type=float, default=600.0, help="fake model's time to first token")
    parser.add_argument("--tokens-per-s", type=float, default=80.0, help="fake model's output token rate")
    parser.add_argument("--tokens-per-delta", type=int, default=3, help="tokens in each streamed text delta")
    parser.add_argument("--slack-rtt-ms", type=float, default=20.0, help="round trip of every Slack Web API call")
    parser.add_argument("--quick", action="store_true", help=f"skip the sustained run ({SUSTAINED})")
    parser.add_argument("--processes", type=int, default=1, help="bot processes sharing one Redis (default 1)")
    parser.add_argument("--only", action="append", metavar="SCENARIO", help="run only this scenario (repeatable)")
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    parser.add_argument(
        "--bot-source",
        type=Path,
        default=REPO_ROOT,
        help="checkout whose bot package to run, e.g. an export of main for before/after numbers",
    )
    options = parser.parse_args(argv)
    for name, value in (("--ttft-ms", options.ttft_ms), ("--tokens-per-s", options.tokens_per_s)):
        if value < 0 or (name == "--tokens-per-s" and value == 0):
            parser.error(f"{name} must be positive")
    if not (options.bot_source / "bot" / "__main__.py").is_file():
        parser.error(f"--bot-source {options.bot_source} has no bot package")
    if options.tokens_per_delta < 1 or options.slack_rtt_ms < 0:
        parser.error("--tokens-per-delta must be at least 1 and --slack-rtt-ms at least 0")
    known = {s.name for s in scenarios(False)}
    for name in options.only or []:
        if name not in known:
            parser.error(f"unknown scenario {name!r}; choose from: {', '.join(sorted(known))}")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    report = asyncio.run(run(options))
    print(report)
    if options.output is not None:
        options.output.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
