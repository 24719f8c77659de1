"""Several bot processes: real `python -m bot run` subprocesses on one Redis and on a Redis Cluster, behind a load
balancer with Slack's deliveries alternating between them (no sticky sessions), or each holding its own Socket Mode
connection while Slack delivers each envelope to one of them."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest
import redis.asyncio as redis

from bench.processes import BotGroup, BotProcess
from bot.core.conversation import ConversationKey
from bot.server import SLACK_PATH
from bot.storage.usage_ledger import RedisUsageLedger
from tests.cluster import RedisClusterProcesses
from tests.conftest import RedisTarget
from tests.e2e.conftest import SIGNING_SECRET
from tests.e2e.helpers import (
    STREAMING_CURSOR,
    action_ids,
    answer_id_of,
    bot_messages,
    eventually,
    settle,
    wait_for_reply,
)
from tests.fakes.anthropic_api import FakeAnthropic, TextReply
from tests.fakes.slack_api import FakeMessage, FakeSlack
from tests.fakes.slack_requests import SlackRequestSender, app_mention, block_action, event_callback, message

pytestmark = pytest.mark.timeout(180)


def process_environment(slack: FakeSlack, claude: FakeAnthropic, target: RedisTarget, prefix: str) -> dict[str, str]:
    """Production settings, aimed at the fakes and the test's Redis; only the environment, as in a container."""
    return {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "ANTHROPIC_API_KEY": claude.api_key,
        "ANTHROPIC_BASE_URL": claude.base_url,
        "REDIS_KEY_PREFIX": prefix,
        "EDIT_INTERVAL_S": "1",
        "CLAUDE_RETRY_BASE_DELAY_S": "0.01",
        **target.env,
    }


@pytest.fixture
async def senders(
    slack: FakeSlack, claude: FakeAnthropic, redis_target: RedisTarget, key_prefix: str, redis_client: object
) -> AsyncIterator[list[tuple[BotProcess, SlackRequestSender]]]:
    """Two bot processes on the same Redis, each with a sender signing requests as Slack does."""
    env = process_environment(slack, claude, redis_target, key_prefix)
    async with BotGroup([BotProcess(env), BotProcess(env)]) as group:
        pairs = [(process, SlackRequestSender(process.url + SLACK_PATH, SIGNING_SECRET)) for process in group.processes]
        try:
            yield pairs
        finally:
            for _, sender in pairs:
                await sender.close()


async def click_stop(sender: SlackRequestSender, slack: FakeSlack, answer: FakeMessage) -> None:
    payload = block_action(
        "answer_stop",
        value=answer_id_of(answer),
        user_id="U0USER",
        channel_id=answer.channel,
        message_ts=answer.ts,
        thread_ts=answer.thread_ts,
        response_url=slack.new_response_url(),
    )
    status, _ = await sender.send_interaction(payload)
    assert status == 200


async def test_two_processes_answer_once_keep_history_stop_each_other_and_count_costs_once(
    senders: list[tuple[BotProcess, SlackRequestSender]],
    slack: FakeSlack,
    claude: FakeAnthropic,
    redis_target: RedisTarget,
    redis_client: object,
    key_prefix: str,
) -> None:
    (first, a), (second, b) = senders
    gate = asyncio.Event()
    claude.script(
        TextReply("Paris is the capital."),
        TextReply("About two million people."),
        TextReply(
            "Counting the arrondissements. Never finished.",
            chunks=["Counting the arrondissements. ", "Never finished."],
            gate=gate,
        ),
    )
    root = "1700009000.000100"

    # A mention reaches process A; Slack's retry of the same delivery lands on process B.
    mention = event_callback(app_mention("capital of France?", ts=root))
    status, _ = await a.send_event(mention)
    assert status == 200
    status, _ = await b.send_event(mention, retry_num=1, retry_reason="http_timeout")
    assert status == 200
    await wait_for_reply(slack, "C0GENERAL", root, "Paris is the capital.")
    await settle(0.5)
    assert len(claude.requests) == 1 and len(bot_messages(slack, "C0GENERAL", root)) == 1

    # A follow-up in the thread goes to B, which sees the history A wrote.
    status, _ = await b.send_event(
        event_callback(message("how many live there?", ts="1700009000.000200", thread_ts=root))
    )
    assert status == 200
    await wait_for_reply(slack, "C0GENERAL", root, "About two million people.")
    history = json.dumps(claude.requests[-1].body["messages"])
    assert "capital of France?" in history and "Paris is the capital." in history

    # A third question runs on A; Stop is clicked on B and still reaches it.
    await stop_on_the_other_process(a, b, slack, root, gate)
    assert len(bot_messages(slack, "C0GENERAL", root)) == 3  # one message per answer, none twice
    assert len(claude.requests) == 3

    # Every model call is billed once, whichever process made it.
    ledger = RedisUsageLedger(redis_client, redis_target.usage_keys(key_prefix))  # type: ignore[arg-type]
    assert await billed_requests(ledger, at_least=3) == 3

    # Both report healthy, with the cluster's state when there is one.
    for process in (first, second):
        status, body = await healthz(process)
        assert status == 200 and body["redis"] == "ok"
        assert body.get("redis_cluster_state") == ("ok" if redis_target.cluster else None)


async def stop_on_the_other_process(
    writer: SlackRequestSender, other: SlackRequestSender, slack: FakeSlack, root: str, gate: asyncio.Event
) -> None:
    """A follow-up reaches `writer`; while its answer runs, Stop is clicked through `other`."""
    follow_up = event_callback(message("and the districts?", ts="1700009000.000300", thread_ts=root))
    status, _ = await writer.send_event(follow_up)
    assert status == 200

    def running() -> FakeMessage | None:
        last = bot_messages(slack, "C0GENERAL", root)[-1]
        return last if "Counting" in last.text and action_ids(last) == ["answer_stop"] else None

    await click_stop(other, slack, await eventually(running, "the third answer running"))
    stopped = (await wait_for_reply(slack, "C0GENERAL", root, "Stopped"))[-1]
    assert "Never finished" not in stopped.text
    gate.set()
    await settle(0.5)


async def billed_requests(ledger: RedisUsageLedger, *, at_least: int) -> int:
    """Today's billed model calls in the test workspace, once at least `at_least` are in (a stopped answer's usage
    is recorded as it winds down), after a moment for any double count to show."""
    today = datetime.now(UTC).date()
    for _ in range(100):
        if (await ledger.report("T0001", today, today)).requests >= at_least:
            break
        await settle(0.1)
    await settle(0.3)
    return (await ledger.report("T0001", today, today)).requests


async def healthz(process: BotProcess) -> tuple[int, dict[str, str]]:
    async with aiohttp.ClientSession() as session, session.get(process.url + "/healthz") as response:
        return response.status, await response.json()


@pytest.fixture
async def socket_processes(
    slack: FakeSlack, claude: FakeAnthropic, redis_cluster: RedisClusterProcesses, key_prefix: str
) -> AsyncIterator[RedisTarget]:
    """Two Socket Mode processes on the Redis Cluster, each with its own connection to Slack (no HTTP intake)."""
    target = RedisTarget(redis_cluster.url, cluster=True)
    env = process_environment(slack, claude, target, key_prefix)
    env.pop("SLACK_SIGNING_SECRET")
    env["SLACK_APP_TOKEN"] = slack.app_token
    try:
        async with BotGroup([BotProcess(env), BotProcess(env)]):
            await slack.wait_socket_connected(30, count=2)
            yield target
    finally:
        client = target.connect()
        async for name in client.scan_iter(match=f"{key_prefix}*"):
            await client.delete(name)
        await client.aclose()


async def test_socket_mode_processes_each_hold_a_connection_and_answer_each_envelope_once(
    socket_processes: RedisTarget, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.script(TextReply("Over the first socket."), TextReply("Over the second socket."))
    root = "1700009100.000100"
    acks: list[float] = []

    async def deliver(payload: dict[str, object], connection: int, **retry: object) -> None:
        started = time.perf_counter()
        ack = await slack.send_socket_envelope("events_api", payload, connection=connection, **retry)  # type: ignore[arg-type]
        acks.append(time.perf_counter() - started)
        assert ack["envelope_id"]

    mention = event_callback(app_mention("hello sockets", ts=root))
    await deliver(mention, 0)
    await deliver(mention, 1, retry_attempt=1, retry_reason="timeout")  # Slack's retry, on the other connection
    await wait_for_reply(slack, "C0GENERAL", root, "Over the first socket.")
    await settle(0.5)
    assert len(claude.requests) == 1 and len(bot_messages(slack, "C0GENERAL", root)) == 1

    await deliver(event_callback(message("and again?", ts="1700009100.000200", thread_ts=root)), 1)
    await wait_for_reply(slack, "C0GENERAL", root, "Over the second socket.")
    assert "Over the first socket." in json.dumps(claude.requests[-1].body["messages"])  # history from the other
    await settle(0.3)
    assert len(claude.requests) == 2 and len(bot_messages(slack, "C0GENERAL", root)) == 2
    assert max(acks) < 1.5, acks  # Slack wants an ack within 3 s; the answer runs after it


async def test_a_killed_process_s_answer_is_finished_by_another_and_its_waiting_question_is_asked_again(
    slack: FakeSlack,
    claude: FakeAnthropic,
    redis_target: RedisTarget,
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    """SIGKILL mid-stream, with a follow-up acked and waiting behind the running answer: no graceful shutdown closes
    the answer, and Slack will not deliver the follow-up again. A process started afterwards finds the answer lapsed
    and finishes its message (the text shown stays, a note says it was interrupted, Stop gives way to Regenerate),
    answers the follow-up from its record (stored once, answered once), and the thread goes on."""
    env = process_environment(slack, claude, redis_target, key_prefix)
    gate = asyncio.Event()
    claude.script(
        TextReply("Half of the answer, then silence.", chunks=["Half of the answer, ", "then silence."], gate=gate),
        TextReply("The follow-up, answered after all."),
        TextReply("A new question, answered as usual."),
    )
    loop = asyncio.get_running_loop()
    try:
        async with BotProcess(env) as doomed:
            cut = await kill_with_a_question_waiting(doomed, slack)
            killed_at = loop.time()
        async with BotProcess(env) as survivor:
            finished = await eventually(
                lambda: next((m for m in bot_messages(slack, "C0GENERAL", ROOT) if "interrupted" in m.text), None),
                "the interrupted answer finished by another process",
                timeout=45,
            )
            assert loop.time() - killed_at < 30  # the new process's start-up included
            assert finished.ts == cut.ts and finished.text.startswith("Half of the answer,")
            assert STREAMING_CURSOR not in finished.text
            assert action_ids(finished) == ["answer_good", "answer_bad", "answer_regenerate"]
            await wait_for_reply(slack, "C0GENERAL", ROOT, "The follow-up, answered after all.", timeout=75)
            await the_thread_goes_on(survivor, slack)
    finally:
        gate.set()
    shown = [m.text for m in bot_messages(slack, "C0GENERAL", ROOT)]
    assert sum("The follow-up, answered after all." in text for text in shown) == 1, shown
    stored = [str(turn) for turn in await redis_client.lrange(keys_of(redis_target, key_prefix), 0, -1)]  # type: ignore[misc]
    assert sum("tell me everything" in turn for turn in stored) == 1
    assert sum("and the follow-up?" in turn for turn in stored) == 1
    assert len(claude.requests) == 3
    assert "and the follow-up?" in json.dumps(claude.requests[1].body["messages"])


ROOT = "1700009300.000100"


async def kill_with_a_question_waiting(doomed: BotProcess, slack: FakeSlack) -> FakeMessage:
    """Ask, wait for the answer to stream, ask a follow-up (acked; it waits for the thread), then SIGKILL."""
    sender = SlackRequestSender(doomed.url + SLACK_PATH, SIGNING_SECRET)
    await sender.send_event(event_callback(app_mention("tell me everything", ts=ROOT)))

    def streaming() -> FakeMessage | None:
        shown = bot_messages(slack, "C0GENERAL", ROOT)
        return next((m for m in shown if "Half" in m.text and action_ids(m) == ["answer_stop"]), None)

    cut = await eventually(streaming, "the first answer streaming", timeout=30)
    follow_up = event_callback(message("and the follow-up?", ts="1700009300.000200", thread_ts=ROOT))
    status, _ = await sender.send_event(follow_up)
    assert status == 200  # acked: Slack will not send it again
    await asyncio.sleep(1.0)  # its answer has begun and waits for the thread
    await sender.close()
    await doomed.kill()
    return cut


async def the_thread_goes_on(survivor: BotProcess, slack: FakeSlack) -> None:
    sender = SlackRequestSender(survivor.url + SLACK_PATH, SIGNING_SECRET)
    try:
        await sender.send_event(event_callback(message("and now?", ts="1700009300.000300", thread_ts=ROOT)))
        await wait_for_reply(slack, "C0GENERAL", ROOT, "A new question, answered as usual.", timeout=45)
    finally:
        await sender.close()


def keys_of(target: RedisTarget, prefix: str) -> str:
    return target.keys(prefix).conversation(ConversationKey("T0001", "C0GENERAL", ROOT))
