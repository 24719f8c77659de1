"""Small conveniences for end-to-end tests: wait for what a user would see in Slack."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from tests.fakes.slack_api import FakeMessage, FakeSlack
from tests.fakes.slack_requests import slash_command

if TYPE_CHECKING:
    from tests.e2e.conftest import RunningBot

T = TypeVar("T")

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


async def eventually(check: Callable[[], T | None], what: str, *, timeout: float = FINAL_WAIT_S) -> T:  # noqa: ASYNC109
    """Poll fake state until `check` returns something truthy (and return it); fail naming `what` was awaited."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def action_ids(message: FakeMessage) -> list[str]:
    """The buttons a message carries, by action id, in order."""
    return [
        element["action_id"]
        for block in message.blocks or []
        if block.get("type") == "actions"
        for element in block.get("elements", [])
    ]


def answer_id_of(message: FakeMessage) -> str:
    """The answer id every button under an answer carries."""
    values = {
        element["value"]
        for block in message.blocks or []
        if block.get("type") == "actions"
        for element in block.get("elements", [])
    }
    assert len(values) == 1, f"expected one answer's buttons, got {values}"
    return values.pop()


async def slash(running: RunningBot, slack: FakeSlack, name: str, text: str = "", **kwargs: str) -> dict[str, Any]:
    """Run a slash command and return what it answered through its response_url."""
    url = slack.new_response_url()
    status, _ = await running.sender.send_command(slash_command(name, text, response_url=url, **kwargs))
    assert status == 200
    return await response_at(slack, url, f"{name} {text!r}")


async def response_at(slack: FakeSlack, url: str, what: str) -> dict[str, Any]:
    """The last body posted to a response_url (an ephemeral reply to a command or a click)."""
    posts = await eventually(lambda: [p["body"] for p in slack.response_url_posts if p["url"] == url], what)
    return posts[-1]
