"""Bad input never costs more than it sends: a few hundred junk and forged requests against the running bot get
4xx answers, leave /metrics and memory flat, and the bot answers a real mention afterwards."""

from __future__ import annotations

import gc
import io
import json
import time

import aiohttp
import psutil
import pytest

from bot.server import SLACK_PATH
from tests.e2e.conftest import RunningBot
from tests.e2e.helpers import wait_for_reply
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import app_mention, event_callback, sign

MIB = 1024 * 1024
RSS_GROWTH_LIMIT = 25 * MIB  # on main, 40 unsigned 1 MB requests took RSS from 148 MB to 1.35 GB
METRICS_GROWTH_LIMIT = 512  # bytes: counters gain digits, never new series


def _junk(secret: str, i: int) -> tuple[bytes, dict[str, str]]:
    """Request number i of the flood: unsigned, wrongly signed, replayed, signed-but-malformed, or huge."""
    now = int(time.time())
    body = json.dumps({"type": f"junk-{i}", "event": {"type": f"evil-{i}", "text": "x" * 2000}}).encode()
    kind = i % 6
    headers = {"Content-Type": "application/json"}
    if kind == 1:
        headers |= {"X-Slack-Request-Timestamp": str(now), "X-Slack-Signature": "v0=" + f"{i:064x}"}
    elif kind == 2:  # a genuine signature from seven minutes ago: a replay
        headers |= {"X-Slack-Request-Timestamp": str(now - 420), "X-Slack-Signature": sign(secret, now - 420, body)}
    elif kind == 3:  # signed, but not something Slack sends
        body = b'[{"type": "event_callback"}, ' + str(i).encode() + b"]"
        headers |= {"X-Slack-Request-Timestamp": str(now), "X-Slack-Signature": sign(secret, now, body)}
    elif kind == 4:
        body = b"payload=%7B" + b"\xff" * 100
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
    elif kind == 5 and i % 4 == 1:  # every 12th request: 1.5 MiB, over the cap
        body = b'{"type": "event_callback", "pad": "' + b"x" * (3 * MIB // 2) + b'"}'
    return body, headers


@pytest.mark.slow
async def test_a_flood_of_junk_and_forged_requests_costs_nothing_and_the_bot_still_answers(
    running: RunningBot, slack: FakeSlack
) -> None:
    url, secret = running.url + SLACK_PATH, running.sender.signing_secret
    process = psutil.Process()
    statuses: list[int] = []
    async with aiohttp.ClientSession() as http:

        async def send(i: int) -> None:
            body, headers = _junk(secret, i)
            async with http.post(url, data=io.BytesIO(body), headers=headers) as response:
                statuses.append(response.status)
                await response.read()

        async def metrics_size() -> int:
            async with http.get(running.metrics_url + "/metrics") as response:
                return len(await response.read())

        for i in range(24):  # warm up: every kind of refusal has been counted once, buffers allocated
            await send(i)
        gc.collect()
        rss_before, metrics_before = process.memory_info().rss, await metrics_size()
        for i in range(24, 324):
            await send(i)
        gc.collect()
        rss_after, metrics_after = process.memory_info().rss, await metrics_size()

    print(  # the figures, for the record (pytest -s)
        f"\nflood: {len(statuses)} requests, statuses {sorted(set(statuses))}, RSS {rss_before / MIB:.1f} -> "
        f"{rss_after / MIB:.1f} MiB, /metrics {metrics_before} -> {metrics_after} bytes"
    )
    assert set(statuses) <= {400, 401, 413}, sorted(set(statuses))
    assert metrics_after - metrics_before < METRICS_GROWTH_LIMIT
    assert rss_after - rss_before < RSS_GROWTH_LIMIT
    ts = "1700000950.000100"
    assert (await running.sender.send_event(event_callback(app_mention("still there?", ts=ts))))[0] == 200
    await wait_for_reply(slack, "C0GENERAL", ts, "OK")
