"""What the bench asks of the bot: people in workspaces asking questions in threads, and what they then see.

Every question is delivered the way Slack delivers a channel mention: twice (`app_mention` and `message`, same
`ts`, different `event_id`), signed, to the bot's HTTP endpoint. Every message the bot posts or edits comes back
to it as an event too (`message` from a bot, `message_changed`), since the app subscribes to `message.channels`;
Bolt acks those early, but they are still requests the bot must take.
The fake Slack tells the `Tracker` of every Web API call as it lands, which is when a person would see it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.fakes.anthropic_api import TextReply
from tests.fakes.slack_api import ApiCall, FakeSlack
from tests.fakes.slack_requests import app_mention, event_callback, message, message_changed, new_ts, sign

SLACK_PATH = "/slack/events"
SIGNING_SECRET = "bench-signing-secret"
BOT_USER_ID = "UBOT"
BOT_ID = "BBOT"
ANSWER_PREFIX = "Sure"  # every fake answer starts with this word: the first visible text is the first call showing it
END_MARK = "That is the whole answer."
STREAMING_CURSOR = "▍"  # the bot ends a message that is still streaming with it


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """How the fake Claude streams: time to first token, token rate, and how many tokens each delta carries.

    Published SSE transcripts show text deltas of one to a few tokens; 3 is the default (an assumption, and the
    bot's CPU per answer grows with the number of deltas).
    """

    ttft_s: float = 0.6
    tokens_per_s: float = 80.0
    tokens_per_delta: int = 3
    chars_per_token: int = 4  # a rough average for English prose

    def for_scenario(self, scenario: Scenario) -> ModelProfile:
        return dataclasses.replace(
            self,
            tokens_per_s=scenario.tokens_per_s or self.tokens_per_s,
            tokens_per_delta=scenario.tokens_per_delta or self.tokens_per_delta,
        )

    def model_s(self, answer_chars: int) -> float:
        """The model's own time for one answer: time to first token plus streaming every delta."""
        step = self.tokens_per_delta * self.chars_per_token
        deltas = -(-len(answer_text(answer_chars)) // step)
        return self.ttft_s + deltas * self.tokens_per_delta / self.tokens_per_s

    def reply(self, answer_chars: int) -> TextReply:
        text = answer_text(answer_chars)
        step = self.tokens_per_delta * self.chars_per_token
        chunks = [text[i : i + step] for i in range(0, len(text), step)]
        return TextReply(
            text,
            chunks=chunks,
            chunk_delay_s=self.tokens_per_delta / self.tokens_per_s,
            first_byte_delay_s=self.ttft_s,
        )


def answer_text(chars: int) -> str:
    """A Markdown answer of about `chars` characters with what Claude writes: bold, inline code, lists, code."""
    parts = [f"{ANSWER_PREFIX}, here is how that works."]
    point = 0
    while sum(len(p) + 2 for p in parts) < chars:
        point += 1
        if point % 6 == 0:
            lines = "\n".join(f"    total += item_{point}_{n}  # step {n}" for n in range(8))
            parts.append(
                f"Point {point}: in code,\n\n```python\ndef step_{point}(total):\n{lines}\n    return total\n```"
            )
        elif point % 3 == 0:
            parts.append(
                f"Point {point}: a few things to check:\n"
                + "\n".join(f"- **item {n}** uses `value_{n}` and stays within its limit" for n in range(4))
            )
        else:
            parts.append(
                f"Point {point}: the **{point}th** consideration is that the `config_{point}` setting controls "
                "how often the service retries, and it should stay below the limit the upstream API documents."
            )
    parts.append(END_MARK)
    return "\n\n".join(parts)


def expected_points(chars: int) -> int:
    return answer_text(chars).count("Point ")


@dataclass(frozen=True, slots=True)
class Scenario:
    """One measured run: `threads` conversations over `workspaces`, each asking `turns` questions in turn."""

    name: str
    threads: int
    workspaces: int
    turns: int = 1
    ramp_s: float = 2.0  # thread starts are spread evenly over this window
    think_s: tuple[float, float] = (0.3, 1.0)  # pause between seeing an answer and asking the next question
    answer_chars: int = 1200
    tokens_per_s: float | None = None  # None: the run's model profile
    tokens_per_delta: int | None = None
    timeout_s: float = 120.0  # per turn
    threads_per_channel: int = 5  # as in a busy workspace: several threads going on in each channel
    users_per_workspace: int = 8

    @property
    def channels_per_workspace(self) -> int:
        return max(1, -(-self.threads // (self.workspaces * self.threads_per_channel)))


@dataclass(frozen=True, slots=True)
class ThreadSpec:
    team_id: str
    channel_id: str
    user_id: str
    root_ts: str


@dataclass
class MessageLog:
    """One bot message as Slack shows it: when it was posted and every successful edit."""

    ts: str
    posted_at: float
    text: str
    updates: list[tuple[float, bool]] = field(default_factory=list)  # (when, still streaming?) per edit


@dataclass
class TurnLog:
    """One question and its answer, as the asker saw them."""

    thread: ThreadSpec
    index: int
    sent_at: float = 0.0
    first_text_at: float | None = None
    done_at: float | None = None
    messages: list[MessageLog] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def shown_text(self) -> str:
        return "\n".join(m.text for m in self.messages)


@dataclass(slots=True)
class Delivery:
    """One signed POST to the bot and how long its ack took."""

    kind: str  # "question" or "echo"
    latency_s: float
    status: int
    sent_at: float = 0.0  # time.monotonic()


class Tracker:
    """Maps the fake Slack's calls to the turns they belong to; echoes each bot post and edit back to the bot."""

    def __init__(self, poster: EventPoster) -> None:
        self._poster = poster
        self._by_thread: dict[tuple[str, str], TurnLog] = {}
        self._by_message: dict[tuple[str, str], tuple[TurnLog, MessageLog]] = {}
        self._team_of: dict[str, str] = {}
        self.turns: list[TurnLog] = []
        self.calls: list[ApiCall] = []

    def begin(self, thread: ThreadSpec, index: int) -> TurnLog:
        turn = TurnLog(thread, index)
        self._by_thread[(thread.channel_id, thread.root_ts)] = turn
        self._team_of[thread.channel_id] = thread.team_id
        self.turns.append(turn)
        return turn

    def on_call(self, call: ApiCall) -> None:
        self.calls.append(call)
        if not call.ok or call.method not in ("chat.postMessage", "chat.update"):
            return
        channel = str(call.params.get("channel", ""))
        text = str(call.params.get("text", ""))
        if call.method == "chat.postMessage":
            turn = self._by_thread.get((channel, str(call.params.get("thread_ts", ""))))
            if turn is None:
                return
            log = MessageLog(ts=str(call.response["ts"]), posted_at=call.at, text=text)
            turn.messages.append(log)
            self._by_message[(channel, log.ts)] = (turn, log)
            self._echo(channel, message(text, user=BOT_USER_ID, channel=channel, ts=log.ts, bot_id=BOT_ID), turn)
        else:
            found = self._by_message.get((channel, str(call.params.get("ts", ""))))
            if found is None:
                return
            turn, log = found
            previous, log.text = log.text, text
            log.updates.append((call.at, STREAMING_CURSOR in text))
            edited = message_changed(channel, log.ts, text, previous_text=previous, user=BOT_USER_ID)
            self._echo(channel, edited, turn)
        if turn.first_text_at is None and text.startswith(ANSWER_PREFIX):
            turn.first_text_at = call.at
        last = turn.messages[-1].text
        if END_MARK in last and not last.endswith(STREAMING_CURSOR) and not turn.done.is_set():
            turn.done_at = call.at
            turn.done.set()

    def _echo(self, channel: str, event: dict[str, Any], turn: TurnLog) -> None:
        event["team"] = turn.thread.team_id
        event["thread_ts"] = turn.thread.root_ts
        self._poster.post_soon(event_callback(event, team_id=turn.thread.team_id), kind="echo")


class LoopLag:
    """How late the harness's own event loop runs a 10 ms timer: if it is busy, every latency it measures is late."""

    def __init__(self, every_s: float = 0.01) -> None:
        self._every_s = every_s
        self._task: asyncio.Task[None] | None = None
        self.lags_s: list[float] = []

    def start(self) -> None:
        self.lags_s.clear()
        self._task = asyncio.create_task(self._watch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _watch(self) -> None:
        while True:
            expected = time.monotonic() + self._every_s
            await asyncio.sleep(self._every_s)
            self.lags_s.append(max(0.0, time.monotonic() - expected))


class EventPoster:
    """Signs and posts Events API payloads to the bot, timing each ack as Slack would."""

    def __init__(self, *urls: str) -> None:
        self._urls = urls  # several bot processes: deliveries go round-robin, as a load balancer would spread them
        self._next = 0
        self._session: aiohttp.ClientSession | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self.deliveries: list[Delivery] = []

    async def __aenter__(self) -> EventPoster:
        # No connection cap: Slack opens as many concurrent connections as it has deliveries.
        connector = aiohttp.TCPConnector(limit=0)
        self._session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.drain()
        if self._session is not None:
            await self._session.close()

    async def post(self, payload: dict[str, Any], *, kind: str) -> None:
        assert self._session is not None
        body = json.dumps(payload).encode()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": str(timestamp),
            "X-Slack-Signature": sign(SIGNING_SECRET, timestamp, body),
        }
        started = time.monotonic()
        status = 0
        url, self._next = self._urls[self._next % len(self._urls)], self._next + 1
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with self._session.post(url, data=body, headers=headers) as response:
                await response.read()
                status = response.status
        self.deliveries.append(Delivery(kind, time.monotonic() - started, status, started))

    def post_soon(self, payload: dict[str, Any], *, kind: str) -> None:
        task = asyncio.create_task(self.post(payload, kind=kind))
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)

    async def drain(self) -> None:
        while self._in_flight:
            await asyncio.gather(*list(self._in_flight))


def populate(slack: FakeSlack, scenario: Scenario, tag: str) -> list[ThreadSpec]:
    """Create the scenario's workspaces (channels the bot is in, people with profiles) and one thread per slot."""
    threads = []
    for n in range(scenario.threads):
        ws = n % scenario.workspaces
        team = f"T{tag}{ws:03d}"
        channel = f"C{tag}{ws:03d}{(n // scenario.workspaces) % scenario.channels_per_workspace:02d}"
        user = f"U{tag}{ws:03d}{n % scenario.users_per_workspace:02d}"
        # Adding again is harmless: the fake overwrites a person or channel with the same data.
        slack.add_user(user, name=f"person.{user.lower()}", title="Engineer", team_id=team, tz="Europe/Berlin")
        slack.add_channel(channel, name=f"team-{channel.lower()}", topic="Benchmarks", purpose="Load")
        threads.append(ThreadSpec(team, channel, user, root_ts=""))
    return threads


async def ask(poster: EventPoster, tracker: Tracker, thread: ThreadSpec, index: int) -> TurnLog:
    """Deliver one question as Slack does for a channel mention: app_mention and message, concurrently."""
    ts = new_ts()
    if index == 0:
        thread = ThreadSpec(thread.team_id, thread.channel_id, thread.user_id, root_ts=ts)
    thread_ts = None if index == 0 else thread.root_ts
    turn = tracker.begin(thread, index)
    text = f"<@{BOT_USER_ID}> question {index + 1}: how should I tune the retry settings?"
    mention = app_mention(text, user=thread.user_id, channel=thread.channel_id, ts=ts, thread_ts=thread_ts)
    plain = message(text, user=thread.user_id, channel=thread.channel_id, ts=ts, thread_ts=thread_ts)
    for event in (mention, plain):
        event["team"] = thread.team_id
    turn.sent_at = time.monotonic()
    await asyncio.gather(
        poster.post(event_callback(mention, team_id=thread.team_id), kind="question"),
        poster.post(event_callback(plain, team_id=thread.team_id), kind="question"),
    )
    return turn


async def converse(
    poster: EventPoster, tracker: Tracker, scenario: Scenario, thread: ThreadSpec, start_s: float, seed: int
) -> None:
    """One person: wait for their start, then ask `turns` questions, each after seeing the previous answer."""
    pause = random.Random(seed)
    await asyncio.sleep(start_s)
    for index in range(scenario.turns):
        turn = await ask(poster, tracker, thread, index)
        thread = turn.thread
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(turn.done.wait(), scenario.timeout_s)
        if not turn.done.is_set():
            return  # reported as unanswered; asking again in a stuck thread would measure nothing new
        if index + 1 < scenario.turns:
            await asyncio.sleep(pause.uniform(*scenario.think_s))
