"""`python -m bench.soak [--quick]`: the bot under faults, bounded in time and questions, judged on invariants.

Two or three real bot processes (`python -m bot run`, HTTP mode) share one private Redis; people ask questions in
threads (each delivered twice, as Slack delivers a mention, and redelivered with Slack's retry headers when no 2xx
comes back within 3 s); meanwhile bot processes are SIGKILLed and started again, Redis is killed and started again
(with its append-only file, as a production Redis keeps its data), the fake Claude answers a share of calls 429 or
529 or cuts their streams or ends them with an error event, and the fake Slack answers a share of Web API calls 429.
Then, after giving the system up to RECOVERY_S after the last fault, it judges (bench/soak_checks.py): duplicate
answers, user turns lost, answers left live, invalid stored histories, and the bot's usage ledger against what the
fake Claude billed. Everything it started is stopped, even on failure. See bench/README.md and BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import random
import re
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import redis.asyncio as redis

from bench.load import SLACK_POSTS_CEILING, bot_environment, describe_source
from bench.processes import REPO_ROOT, BotProcess, _redis_server_binary, free_port
from bench.soak_checks import (
    ANSWER,
    END_MARK,
    KILL_SHADOW_S,
    QUESTION,
    TOKEN_FIELDS,
    Question,
    ShownMessage,
    Verdict,
    bill_totals,
    is_live,
    judge,
    ledger_totals,
    question_numbers,
    reconcile,
    unanswered,
)
from bench.workload import SIGNING_SECRET, SLACK_PATH
from tests.fakes.anthropic_api import ClaudeFaults, FakeAnthropic, RecordedRequest, Reply, TextReply, ToolUseReply
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import app_mention, event_callback, message, new_ts, sign

KEY_PREFIX = "soak:"
RECOVERY_S = 45.0  # what the system gets after the last fault before it is judged (answers recovered within 30 s)
SLACK_ACK_TIMEOUT_S = 3.0  # Slack counts a delivery failed without a 2xx in 3 s
# Slack retries a failed delivery 3 times: nearly at once, after 1 minute and after 5 minutes; compressed here, to
# still outlast a process restart on a busy machine.
SLACK_RETRY_DELAYS_S = (1.0, 5.0, 15.0)
SETTLE_POLL_S = 0.25


def _claude_faults(share: float, seed: int) -> ClaudeFaults:
    return ClaudeFaults(http_429=share, http_529=share, error_event=share, cut_stream=share, seed=seed)


@dataclass(frozen=True, slots=True)
class SoakPlan:
    """What a run does: its people, its faults and its bounds. The defaults are the full soak."""

    name: str = "full"
    processes: int = 3
    threads: int = 40
    turns: int = 4
    start_spread_s: float = 30.0  # thread starts spread over this window
    ask_window_s: float = 100.0  # no new question after this (from the first one)
    turn_timeout_s: float = 30.0  # an asker waits this long for an answer before asking the next question anyway
    kills_at_s: tuple[float, ...] = (15.0, 40.0, 65.0, 90.0)  # SIGKILL a bot process then (and start a new one)
    redis_restarts_at_s: tuple[float, ...] = (28.0, 78.0)
    redis_down_s: float = 3.0
    claude_faults: ClaudeFaults = field(default_factory=lambda: _claude_faults(0.05, seed=16))
    slack_429_share: float = 0.05
    tool_share: float = 0.25  # first calls of a turn that ask for a tool (read_thread) before answering
    answer_chars: int = 700
    chunk_delay_s: float = 0.05  # ~12 chars a delta: a 700-char answer streams for about 3 s
    ttft_s: float = 0.5
    recovery_s: float = RECOVERY_S
    seed: int = 16


def quick_plan() -> SoakPlan:
    """The short version tests/e2e/test_soak.py runs: 2 processes, at most 18 questions, every fault early."""
    return SoakPlan(
        name="quick",
        processes=2,
        threads=6,
        turns=3,
        start_spread_s=1.5,
        ask_window_s=22.0,
        turn_timeout_s=8.0,
        kills_at_s=(2.5, 9.0),
        redis_restarts_at_s=(5.5,),
        redis_down_s=1.5,
        # seed 7 puts a 529, a 429 and a cut among the first six calls, while the first answers are written
        claude_faults=_claude_faults(0.06, seed=7),
    )


def without_faults(plan: SoakPlan) -> SoakPlan:
    """The same people and questions with no fault at all: the harness's control (every invariant must hold)."""
    return dataclasses.replace(
        plan,
        name=f"{plan.name}, no faults",
        kills_at_s=(),
        redis_restarts_at_s=(),
        claude_faults=ClaudeFaults(),
        slack_429_share=0.0,
    )


def full_plan() -> SoakPlan:
    """The soak: 3 processes, at most 160 questions over about two minutes, 4 kills and 2 Redis restarts."""
    return SoakPlan()


class RestartableRedis:
    """A private redis-server on a free port that can be SIGKILLed and started again on the same port and data.

    It keeps an append-only file fsynced on every write, as a production Redis that must not lose acknowledged
    writes is configured: what a restart loses is then the bot's to handle (connections dropped, commands refused
    while it is away), not data thrown away by the harness.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._folder = tempfile.TemporaryDirectory(prefix="soak-redis-")
        self._process: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self.pids: list[int] = []

    async def __aenter__(self) -> RestartableRedis:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self.kill()
        self._folder.cleanup()

    async def start(self) -> None:
        args = [_redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self._folder.name]
        args += ["--appendonly", "yes", "--appendfsync", "always", "--save", "", "--loglevel", "warning"]
        self._process = await asyncio.create_subprocess_exec(
            *args, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        self.pids.append(self._process.pid)
        client = redis.Redis(port=self.port)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    await client.ping()
                    return
                except (redis.ConnectionError, redis.BusyLoadingError):
                    if time.monotonic() > deadline or self._process.returncode is not None:
                        raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                    await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    async def kill(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await self._process.wait()

    async def restart(self, down_s: float) -> None:
        await self.kill()
        await asyncio.sleep(down_s)
        await self.start()
        self.restarts += 1


class Fleet:
    """The bot processes behind the "load balancer": each can be SIGKILLed and replaced by a new one."""

    def __init__(self, env: dict[str, str], count: int, source: Path = REPO_ROOT) -> None:
        self._env = env
        self._count = count
        self._source = source  # the checkout whose `bot` package runs
        self.processes: list[BotProcess] = []
        self.logs: list[Path] = []
        self.kills = 0
        self.pids: list[int] = []  # every bot process started, to check none is left behind
        self.slow_starts = 0  # starts that were not healthy in time and were tried again
        self.replacing: set[int] = set()  # processes killed and not yet started again
        self.fault_times: list[float] = []  # time.monotonic() of each kill and of Redis coming back
        self.kill_times: list[float] = []  # time.monotonic() of each SIGKILL
        self._next = 0

    async def __aenter__(self) -> Fleet:
        try:
            for _ in range(self._count):
                self.processes.append(await self._started())
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await asyncio.gather(*(_stop(process) for process in self.processes))

    async def _started(self, attempts: int = 3) -> BotProcess:
        """A new healthy process; on a busy machine a start can outlast its 30 s, so it is tried again."""
        for attempt in range(1, attempts + 1):
            process = BotProcess(self._env, source=self._source)
            self.logs.append(process.log_path)
            try:
                await process.__aenter__()
                pid = _pid(process)
                if pid is not None:
                    self.pids.append(pid)
                return process
            except RuntimeError:
                await _stop(process)  # it may still be running, unhealthy: never leave it behind
                if attempt == attempts:
                    raise
                self.slow_starts += 1
        raise AssertionError("unreachable")

    def next_url(self) -> str:
        """Round-robin, dead or alive: a load balancer only notices a dead backend some time after it died."""
        url = self.processes[self._next % len(self.processes)].url
        self._next += 1
        return url + SLACK_PATH

    async def kill_and_replace(self, index: int) -> None:
        victim = self.processes[index]
        pid = _pid(victim)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
        self.kills += 1
        self.replacing.add(index)
        try:
            await _stop(victim)
            self.processes[index] = await self._started()
        finally:
            self.replacing.discard(index)

    def log_messages(self, levels: tuple[str, ...] = ("WARNING", "ERROR", "CRITICAL")) -> dict[str, int]:
        """How often each WARNING-or-worse message was logged, over every process (JSON log lines), most first."""
        seen: dict[str, int] = {}
        for path in self.logs:
            with contextlib.suppress(OSError):
                for line in path.read_text(errors="replace").splitlines():
                    with contextlib.suppress(ValueError, AttributeError):
                        entry = json.loads(line)
                        if entry.get("level") in levels:
                            text = f"{entry['level']}: {entry.get('message', '')}"
                            seen[text] = seen.get(text, 0) + 1
        return dict(sorted(seen.items(), key=lambda item: -item[1]))

    def log_problems(self) -> list[str]:
        found = []
        for path in self.logs:
            with contextlib.suppress(OSError):
                found += [line for line in path.read_text(errors="replace").splitlines() if _PROBLEM.search(line)]
        return found


_PROBLEM = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback")


def _pid(process: BotProcess) -> int | None:
    running = process._process  # the harness owns the process and must be able to kill it hard
    return running.pid if running is not None and running.returncode is None else None


async def _stop(process: BotProcess) -> None:
    """SIGTERM (the bot's shutdown grace is short here), then SIGKILL: the harness never leaves a bot running."""
    try:
        await asyncio.wait_for(process.__aexit__(None, None, None), 15)
    except (TimeoutError, ProcessLookupError):
        pid = _pid(process)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


class Deliveries:
    """Slack's side of the Events API: signed POSTs, a 3 s ack deadline, and retries with Slack's headers."""

    def __init__(self, fleet: Fleet) -> None:
        self._fleet = fleet
        self._session: aiohttp.ClientSession | None = None
        self.posts = 0
        self.failed_posts = 0

    async def __aenter__(self) -> Deliveries:
        timeout = aiohttp.ClientTimeout(total=SLACK_ACK_TIMEOUT_S)
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def deliver(self, payload: dict[str, Any]) -> tuple[bool, int]:
        """(acked, attempts): the first delivery, then Slack's retries while no 2xx came back."""
        body = json.dumps(payload).encode()
        for attempt in range(len(SLACK_RETRY_DELAYS_S) + 1):
            if await self._post(body, attempt):
                return True, attempt + 1
            if attempt < len(SLACK_RETRY_DELAYS_S):
                await asyncio.sleep(SLACK_RETRY_DELAYS_S[attempt])
        return False, len(SLACK_RETRY_DELAYS_S) + 1

    async def _post(self, body: bytes, attempt: int) -> bool:
        assert self._session is not None
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": str(stamp),
            "X-Slack-Signature": sign(SIGNING_SECRET, stamp, body),
        }
        if attempt:
            headers["X-Slack-Retry-Num"] = str(attempt)
            headers["X-Slack-Retry-Reason"] = "http_error"
        self.posts += 1
        try:
            async with self._session.post(self._fleet.next_url(), data=body, headers=headers) as response:
                await response.read()
                ok = 200 <= response.status < 300
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        self.failed_posts += 0 if ok else 1
        return ok


def shown_messages(slack: FakeSlack, channel: str, root: str) -> list[ShownMessage]:
    return [
        ShownMessage(m.channel, m.thread_ts or m.ts, m.ts, m.text, tuple(m.blocks or ()), m.stream_state)
        for m in slack.messages_in(channel, root)
    ]


@dataclass
class Asking:
    """Everyone's questions, as they are asked."""

    slack: FakeSlack
    deliveries: Deliveries
    plan: SoakPlan
    team: str
    started: float = 0.0
    questions: list[Question] = field(default_factory=list)
    threads: list[tuple[str, str]] = field(default_factory=list)  # (channel, root ts)

    async def person(self, index: int) -> None:
        """One thread: ask, wait until the answer settles (or the turn times out), think, ask again."""
        pause = random.Random(self.plan.seed * 1000 + index)
        await asyncio.sleep(index * self.plan.start_spread_s / max(1, self.plan.threads - 1))
        channel, user = f"CSOAK{index % 3:02d}", f"USOAK{index:03d}"
        self.slack.add_user(user, name=f"person.{index}", title="Engineer", team_id=self.team, tz="Europe/Berlin")
        self.slack.add_channel(channel, name=f"soak-{index % 3}", topic="Soak", purpose="Faults")
        root = ""
        for number in range(1, self.plan.turns + 1):
            if time.monotonic() - self.started > self.plan.ask_window_s:
                return
            ts = new_ts()
            if not root:
                root = ts
                self.threads.append((channel, root))
            before = {m.ts for m in shown_messages(self.slack, channel, root)}
            acked, attempts = await self._ask(channel, user, root, ts, number)
            self.questions.append(Question(channel, root, number, ts, acked, attempts))
            await self._settled(channel, root, before)
            await asyncio.sleep(pause.uniform(0.3, 1.0))

    async def _ask(self, channel: str, user: str, root: str, ts: str, number: int) -> tuple[bool, int]:
        text = f"<@UBOT> {QUESTION.format(number=number)} how should I tune the retry settings?"
        thread_ts = None if root == ts else root
        mention = app_mention(text, user=user, channel=channel, ts=ts, thread_ts=thread_ts, team=self.team)
        plain = message(text, user=user, channel=channel, ts=ts, thread_ts=thread_ts)
        plain["team"] = self.team
        outcomes = await asyncio.gather(
            *(self.deliveries.deliver(event_callback(event, team_id=self.team)) for event in (mention, plain))
        )
        return any(acked for acked, _ in outcomes), sum(attempts for _, attempts in outcomes)

    async def _settled(self, channel: str, root: str, before: set[str]) -> None:
        deadline = time.monotonic() + self.plan.turn_timeout_s
        while time.monotonic() < deadline:
            now = shown_messages(self.slack, channel, root)
            if any(m.ts not in before for m in now) and not any(is_live(m) for m in now):
                return
            await asyncio.sleep(SETTLE_POLL_S)


def claude_replies(plan: SoakPlan) -> Any:
    """The fake Claude's answer to whatever question a request ends with: it names that question, so the judge can
    tell which question each stored or shown answer belongs to; a share of first calls ask for read_thread first."""
    rng = random.Random(plan.seed)
    filler = " The retry settings should stay below the limit the upstream API documents." * 40

    def reply(request: RecordedRequest) -> Reply:
        numbers = [n for text in _user_texts(request) for n in question_numbers(text)]
        if not numbers:
            return TextReply("A summary of the thread so far.")  # a side call (e.g. a summary)
        last = request.messages[-1].get("content") if request.messages else None
        after_tool = isinstance(last, list) and any(
            isinstance(b, dict) and b.get("type") == "tool_result" for b in last
        )
        tools = {t.get("name") for t in request.tools}
        if not after_tool and "read_thread" in tools and rng.random() < plan.tool_share:
            return ToolUseReply("read_thread", {}, text_before="Let me read the thread first. ")
        head = f"Sure, {ANSWER.format(number=numbers[-1])}"
        body = filler[: max(0, plan.answer_chars - len(head) - len(END_MARK) - 2)]
        text = f"{head}{body} {END_MARK}"
        step = 12
        return TextReply(
            text,
            chunks=[text[i : i + step] for i in range(0, len(text), step)],
            chunk_delay_s=plan.chunk_delay_s,
            first_byte_delay_s=plan.ttft_s,
        )

    return reply


def _user_texts(request: RecordedRequest) -> list[str]:
    texts = []
    for entry in request.messages:
        if not isinstance(entry, dict) or entry.get("role") != "user":
            continue
        content = entry.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text"]
    return texts


async def inject_faults(plan: SoakPlan, fleet: Fleet, store: RestartableRedis, log: list[str]) -> None:
    """The schedule, each fault at its time whatever the others are doing: a kill picks (seeded) one of the
    processes that is up, and a new process replaces it; Redis is killed and started again after `redis_down_s`."""
    started = time.monotonic()
    rng = random.Random(plan.seed)
    last = [-1]  # the process killed last

    def stamp() -> str:
        return f"{time.monotonic() - started:5.1f}s"

    async def at(when_s: float) -> None:
        await asyncio.sleep(max(0.0, when_s - (time.monotonic() - started)))

    async def kill(when_s: float) -> None:
        await at(when_s)
        while True:  # never the last one up: a whole outage would only measure Slack's retries
            up = [n for n in range(len(fleet.processes)) if n not in fleet.replacing]
            if len(up) >= 2:
                break
            await asyncio.sleep(0.2)
        index = rng.choice([n for n in up if n != last[0]] or up)  # seeded, but never the same one twice running
        last[0] = index
        fleet.fault_times.append(time.monotonic())
        fleet.kill_times.append(time.monotonic())
        log.append(f"{stamp()} SIGKILL bot process {index}")
        await fleet.kill_and_replace(index)
        log.append(f"{stamp()} bot process {index} started again")

    async def restart_redis(when_s: float) -> None:
        await at(when_s)
        log.append(f"{stamp()} Redis killed")
        await store.restart(plan.redis_down_s)
        fleet.fault_times.append(time.monotonic())
        log.append(f"{stamp()} Redis started again")

    await asyncio.gather(*(kill(t) for t in plan.kills_at_s), *(restart_redis(t) for t in plan.redis_restarts_at_s))


@dataclass
class SoakResult:
    plan: SoakPlan
    verdict: Verdict
    started: datetime
    wall_s: float
    ready_s: float  # of wall_s, starting the fakes, Redis and the bot processes
    faults: dict[str, int]
    fault_log: list[str]
    slack_calls: int
    claude_calls: int
    billed_by_outcome: dict[str, dict[str, int]]  # complete / error_event / truncated / disconnected / client_gone
    deliveries: int
    failed_deliveries: int
    recovery_wait_s: float
    log_problems: list[str]
    log_messages: dict[str, int]  # WARNING-or-worse log messages by count
    logs: list[str]
    source: str  # the bot package that ran
    pids: list[int]  # every process it started (bots, redis-server): all stopped once run_soak returns

    def figures(self) -> dict[str, Any]:
        verdict = self.verdict
        return {
            "plan": {
                **{
                    f.name: getattr(self.plan, f.name)
                    for f in dataclasses.fields(self.plan)
                    if f.name != "claude_faults"
                },
                "claude_faults": {
                    name: getattr(self.plan.claude_faults, name)
                    for name in ("http_429", "http_529", "error_event", "cut_stream")
                },
            },
            "started": self.started.isoformat(timespec="seconds"),
            "bot": self.source,
            "wall_s": round(self.wall_s, 1),
            "ready_s": round(self.ready_s, 1),
            "questions": verdict.questions,
            "answered": verdict.answered,
            "not_acked": verdict.not_acked,
            "duplicate_answers": verdict.duplicate_answers,
            "user_turns_lost": verdict.user_turns_lost,
            "answers_left_live": verdict.answers_left_live,
            "invalid_histories": verdict.invalid_histories,
            "ledger": verdict.ledger,
            "billed": verdict.billed,
            "ledger_mismatch": verdict.ledger_mismatch,
            "failures": verdict.failures(),
            "examples": verdict.examples,
            "faults": self.faults,
            "fault_log": self.fault_log,
            "slack_calls": self.slack_calls,
            "claude_calls": self.claude_calls,
            "billed_by_outcome": self.billed_by_outcome,
            "deliveries": self.deliveries,
            "failed_deliveries": self.failed_deliveries,
            "recovery_wait_s": round(self.recovery_wait_s, 1),
            "bot_log_errors": len(self.log_problems),
            "bot_log_warnings": self.log_messages,
            "bot_logs": self.logs,
        }


async def run_soak(plan: SoakPlan, source: Path = REPO_ROOT) -> SoakResult:
    """One bounded run: everything started here is stopped before this returns or raises."""
    started_at, started = datetime.now(UTC), time.monotonic()
    bound_s = 120 + plan.ask_window_s + plan.turn_timeout_s + plan.recovery_s + 60 * plan.processes
    async with asyncio.timeout(bound_s), contextlib.AsyncExitStack() as stack:
        store = await stack.enter_async_context(RestartableRedis())
        slack = await stack.enter_async_context(FakeSlack())
        claude = await stack.enter_async_context(FakeAnthropic(token_accounting=True))
        slack.enforce_slack_limits(workspace_posts_per_minute=SLACK_POSTS_CEILING)
        slack.random_429s(plan.slack_429_share, seed=plan.seed)
        claude.default_reply = claude_replies(plan)
        env = {
            **bot_environment(slack, claude, store.url),
            "REDIS_KEY_PREFIX": KEY_PREFIX,
            "EDIT_INTERVAL_S": "1",
            "CLAUDE_RETRY_BASE_DELAY_S": "0.2",
            "SHUTDOWN_GRACE_S": "2",
        }
        fleet = await stack.enter_async_context(Fleet(env, plan.processes, source))
        ready_s = time.monotonic() - started  # fakes, Redis and every bot process up
        deliveries = await stack.enter_async_context(Deliveries(fleet))
        claude.faults = dataclasses.replace(plan.claude_faults)  # faults start once every process is up
        asking = Asking(slack, deliveries, plan, slack.team_id, started=time.monotonic())
        fault_log: list[str] = []
        faults = asyncio.create_task(inject_faults(plan, fleet, store, fault_log))
        try:
            await asyncio.gather(*(asking.person(n) for n in range(plan.threads)))
            await faults
        finally:
            faults.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await faults
        claude.faults = ClaudeFaults()  # recovery is judged without new faults
        slack.random_429s(0)
        waited = await _recovery(plan, max(fleet.fault_times, default=asking.started), asking, slack, claude)
        verdict = await _judge(asking, slack, claude, store, fleet.kill_times)
        injected = {
            "bot processes SIGKILLed": fleet.kills,
            "bot starts retried": fleet.slow_starts,
            "Redis restarts": store.restarts,
            **{f"Claude {kind}": count for kind, count in sorted(claude.injected.items())},
            "Slack 429s injected": sum(slack.random_429_count.values()),
            "Slack 429s (limits)": sum(slack.rate_limited.values()),
        }
        by_outcome: dict[str, dict[str, int]] = {}  # how each billed call ended -> calls and tokens reported
        for request in claude.requests:
            if request.reported_usage is None:
                continue  # an HTTP error or a refusal: nothing reported, nothing billed
            row = by_outcome.setdefault(request.ended or "complete", dict.fromkeys(("calls", *TOKEN_FIELDS), 0))
            row["calls"] += 1
            for name, amount in bill_totals(request.reported_usage, 0).items():
                if name in row:
                    row[name] += amount
        return SoakResult(
            plan=plan,
            verdict=verdict,
            started=started_at,
            wall_s=time.monotonic() - started,
            ready_s=ready_s,
            faults=injected,
            fault_log=fault_log,
            slack_calls=len(slack.calls),
            claude_calls=len(claude.requests),
            billed_by_outcome=by_outcome,
            deliveries=deliveries.posts,
            failed_deliveries=deliveries.failed_posts,
            recovery_wait_s=waited,
            log_problems=fleet.log_problems(),
            log_messages=fleet.log_messages(),
            logs=[str(path) for path in fleet.logs],
            source=describe_source(source),
            pids=[*fleet.pids, *store.pids],
        )
    raise AssertionError("unreachable")  # pragma: no cover - the timeout raises; mypy wants a return


async def _recovery(
    plan: SoakPlan, last_fault: float, asking: Asking, slack: FakeSlack, claude: FakeAnthropic
) -> float:
    """Wait until nothing is live, no stream runs and every acked question is answered, for at most `recovery_s`
    after the last kill or Redis restart (or 15 s after the random faults end with the asking, if that is later).
    A question a killed process had acked is answered by another only once the dead one's thread lease lapses."""
    begun = time.monotonic()
    deadline = max(last_fault + plan.recovery_s, begun + 15.0)
    while time.monotonic() < deadline:
        messages = [m for channel, root in asking.threads for m in shown_messages(slack, channel, root)]
        live = any(is_live(m) for m in messages)
        if not live and claude.active_streams == 0 and not unanswered(asking.questions, messages):
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(1.5)  # saves and ledger records that follow an answer's last edit
    return time.monotonic() - begun


async def _judge(
    asking: Asking, slack: FakeSlack, claude: FakeAnthropic, store: RestartableRedis, kill_times: list[float]
) -> Verdict:
    client = redis.Redis(port=store.port, decode_responses=True)
    try:
        histories: dict[tuple[str, str], list[str]] = {}
        for channel, root in asking.threads:
            # bot/storage/keys.py Keys.conversation on one server (no hash tags): the list of the thread's turns
            name = f"{KEY_PREFIX}conv:{asking.team}:{channel}:{root}"
            histories[(channel, root)] = [str(turn) for turn in await client.lrange(name, 0, -1)]
        day_hashes = [
            {str(k): str(v) for k, v in (await client.hgetall(name)).items()} async for name in _day_totals(client)
        ]
    finally:
        await client.aclose()
    messages = [m for channel, root in asking.threads for m in shown_messages(slack, channel, root)]
    # A call whose client went away mid-stream was in flight in a SIGKILLed process (the soak clicks no Stop): what
    # the API reported for it lived only in that process's memory, so no process can record it. Those calls are
    # reported apart (`billed_by_outcome`, "client_gone") and the ledger must equal the bill of every other call.
    # A call that completed just before its process's SIGKILL may not have been recorded either (the window between
    # message_stop and the usage record): the ledger may lack such calls, whole (`reconcile`).
    recordable = [r for r in claude.requests if r.reported_usage is not None and r.ended != "client_gone"]
    shadowed = [r for r in recordable if _just_before_a_kill(r.ended_at, kill_times)]
    certain = [r for r in recordable if r not in shadowed]
    ledger = ledger_totals(day_hashes)
    billed, unrecorded = reconcile(ledger, _bill_of(certain), [_bill_of([r]) for r in shadowed])
    verdict = judge(asking.questions, messages, histories, billed, ledger)
    verdict.unrecorded_at_kills = unrecorded
    return verdict


def _just_before_a_kill(ended_at: float | None, kill_times: list[float]) -> bool:
    return ended_at is not None and any(0.0 <= kill - ended_at <= KILL_SHADOW_S for kill in kill_times)


def _bill_of(requests: list[RecordedRequest]) -> dict[str, int]:
    reported: Counter[str] = Counter()
    for request in requests:
        reported.update(request.reported_usage or {})
    return bill_totals(reported, len(requests))


async def _day_totals(client: redis.Redis) -> AsyncIterator[str]:
    """The ledger's per-workspace day-total hashes (bot/storage/keys.py UsageKeys.day_totals)."""
    today = datetime.now(UTC).date()
    days = {(today + timedelta(days=d)).isoformat() for d in (-1, 0)}
    async for name in client.scan_iter(match=f"{KEY_PREFIX}usage:*:day:*"):
        if name.rsplit(":", 1)[-1] in days:
            yield name


def table(result: SoakResult) -> str:
    """The report: the invariants first, then what was thrown at the bot."""
    v, plan = result.verdict, result.plan
    mismatch = v.ledger_mismatch
    ledger_text = "equal" if not mismatch else ", ".join(f"{k} {d:+d}" for k, d in mismatch.items())
    rows = [
        ("duplicate answers", str(v.duplicate_answers), "0"),
        ("user turns lost", str(v.user_turns_lost), "0"),
        ("answers left live", str(v.answers_left_live), "0"),
        ("invalid histories", str(v.invalid_histories), "0"),
        ("ledger vs Claude's bill (tokens)", ledger_text, "equal"),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [
        f"Soak ({plan.name}): {plan.processes} bot processes on one Redis, {v.questions} questions in "
        f"{plan.threads} threads; started {result.started:%Y-%m-%d %H:%M} UTC, {result.wall_s:.0f} s "
        f"({result.ready_s:.0f} s of them starting the processes).",
        f"Bot: {result.source}.",
        "",
        f"| {'invariant':<{width}} | got | must be |",
        f"|{'-' * (width + 2)}|-----|---------|",
        *(f"| {name:<{width}} | {got} | {want} |" for name, got, want in rows),
        "",
        f"Answered completely: {v.answered} of {v.questions}; never acked: {v.not_acked}; "
        f"deliveries {result.deliveries} ({result.failed_deliveries} failed, then retried as Slack does).",
        "Faults: " + ", ".join(f"{k} {n}" for k, n in result.faults.items()) + ".",
        f"Claude calls {result.claude_calls}; ledger {json.dumps(v.ledger)}; bill {json.dumps(v.billed)} "
        f"(calls that completed within {KILL_SHADOW_S:g} s before their process's SIGKILL and were not recorded: "
        f"{v.unrecorded_at_kills}); "
        "the bill by how calls ended:",
        *(f"  {outcome}: {json.dumps(row)}" for outcome, row in sorted(result.billed_by_outcome.items())),
        f"Slack Web API calls {result.slack_calls}; waited {result.recovery_wait_s:.1f} s for recovery; "
        f"{len(result.log_problems)} ERROR lines in the bots' logs.",
        *(f"  {line}" for line in result.fault_log),
        "Bots' warnings and errors, most frequent first:",
        *(f"  {count:4d}  {text[:150]}" for text, count in list(result.log_messages.items())[:12]),
    ]
    for kind, examples in v.examples.items():
        lines.append(f"{kind}, e.g.:")
        lines += [f"  {example}" for example in examples]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the short version the tests run (about a minute)")
    parser.add_argument(
        "--no-faults", action="store_true", help="the control: the same run without any fault (all must hold)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path(tempfile.gettempdir()) / "soak-figures.json",
        help="where the figures go, as JSON (default: %(default)s)",
    )
    parser.add_argument(
        "--bot-source",
        type=Path,
        default=REPO_ROOT,
        help="checkout whose bot package to run, e.g. an export of another branch (default: this one)",
    )
    options = parser.parse_args(argv)
    if not (options.bot_source / "bot" / "__main__.py").is_file():
        parser.error(f"--bot-source {options.bot_source} has no bot package")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    plan = quick_plan() if options.quick else full_plan()
    result = asyncio.run(run_soak(without_faults(plan) if options.no_faults else plan, options.bot_source))
    print(table(result))
    options.output.write_text(json.dumps(result.figures(), indent=2) + "\n")
    print(f"\nFigures: {options.output}")
    return 1 if result.verdict.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
