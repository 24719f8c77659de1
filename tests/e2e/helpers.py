"""Small conveniences for end-to-end tests: wait for what a user would see in Slack."""

from __future__ import annotations

import asyncio

from tests.fakes.slack_api import FakeMessage, FakeSlack

FINAL_WAIT_S = 10.0
# While an answer streams its last message ends with this cursor; the final edit removes it.
STREAMING_CURSOR = "▍"


async def wait_for_reply(
    slack: FakeSlack,
    channel: str,
    thread_ts: str | None,
    contains: str,
    *,
    timeout: float = FINAL_WAIT_S,  # noqa: ASYNC109 - a deadline polled against fake state, not a cancel scope
) -> list[FakeMessage]:
    """Poll the fake's message state until the bot's messages in the thread show `contains`, no longer streaming."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        messages = bot_messages(slack, channel, thread_ts)
        settled = not any(m.text.endswith(STREAMING_CURSOR) for m in messages)
        if settled and contains in "\n".join(m.text for m in messages):
            return messages
        if loop.time() > deadline:
            shown = [m.text for m in messages]
            raise AssertionError(f"no bot message in {channel}/{thread_ts} contains {contains!r}; saw {shown}")
        await asyncio.sleep(0.02)


def bot_messages(slack: FakeSlack, channel: str, thread_ts: str | None) -> list[FakeMessage]:
    messages = [m for m in slack.messages_in(channel) if not m.deleted]
    if thread_ts is None:
        return [m for m in messages if m.thread_ts is None]
    return [m for m in messages if m.thread_ts == thread_ts]


async def settle(seconds: float = 0.3) -> None:
    """Give a wrongly-behaving bot the chance to do something it should not (a second answer, a stray post)."""
    await asyncio.sleep(seconds)
