"""Usage and cost: what /claude-cost reports equals what Claude billed; budgets and allow-lists hold."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta

from tests.e2e.conftest import BotFactory, RunningBot
from tests.e2e.helpers import settle, wait_for_reply
from tests.fakes.anthropic_api import FakeAnthropic, TextReply
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import app_mention, event_callback, slash_command

BILLED = {
    "input_tokens": 1200,
    "output_tokens": 300,
    "cache_creation_input_tokens": 400,
    "cache_read_input_tokens": 5000,
}


async def command(running: RunningBot, slack: FakeSlack, name: str, text: str = "", **kwargs: str) -> dict:
    url = slack.new_response_url()
    status, _ = await running.sender.send_command(slash_command(name, text, response_url=url, **kwargs))
    assert status == 200
    for _ in range(200):
        posts = [p["body"] for p in slack.response_url_posts if p["url"] == url]
        if posts:
            return posts[-1]
        await asyncio.sleep(0.02)
    raise AssertionError(f"{name} {text!r} got no response")


def figures(reply: dict) -> dict[str, str]:
    """The report's figure fields, e.g. {"Requests": "2", "Cache read tokens": "10,000"}."""
    found = {}
    for block in reply.get("blocks") or []:
        for field in block.get("fields") or []:
            name, _, value = field["text"].partition("\n")
            found[name.strip("*")] = value
    return found


async def answer(running: RunningBot, slack: FakeSlack, ts: str, *, team: str = "T0001", user: str = "U0USER") -> None:
    await running.sender.send_event(event_callback(app_mention("question", ts=ts, user=user), team_id=team))
    await wait_for_reply(slack, "C0GENERAL", ts, "Answer.")


async def test_cost_report_equals_what_claude_billed_and_workspaces_stay_apart(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    slack.add_user("U0ADMIN", name="boss", is_admin=True)
    claude.default_reply = TextReply("Answer.", usage=BILLED)
    await answer(running, slack, "1700000700.000100")
    await answer(running, slack, "1700000700.000200")
    await answer(running, slack, "1700000700.000300", team="T0002")  # another workspace

    reply = await command(running, slack, "/claude-cost", "today", user_id="U0ADMIN")
    shown = figures(reply)
    assert shown["Requests"] == "2"
    assert shown["Input tokens"] == "2,400" and shown["Output tokens"] == "600"
    assert shown["Cache write tokens"] == "800" and shown["Cache read tokens"] == "10,000"
    assert reply["response_type"] == "ephemeral"
    assert "<@U0USER>" in str(reply["blocks"])  # top users


async def test_non_admins_are_refused_but_see_their_own_usage(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    claude.default_reply = TextReply("Answer.", usage=BILLED)
    await answer(running, slack, "1700000701.000100")
    refused = await command(running, slack, "/claude-cost", "7d")
    assert refused["response_type"] == "ephemeral" and "/claude-cost me" in refused["text"]
    mine = await command(running, slack, "/claude-cost", "me")
    assert figures(mine)["Requests"] == "1"


async def test_admins_get_a_csv_export_that_parses(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    slack.add_user("U0ADMIN", name="boss", is_admin=True)
    claude.default_reply = TextReply("Answer.", usage=BILLED)
    await answer(running, slack, "1700000702.000100")
    await running.sender.send_command(
        slash_command("/claude-cost", "export 30d", user_id="U0ADMIN", response_url=slack.new_response_url())
    )
    for _ in range(100):
        if slack.uploaded_files:
            break
        await asyncio.sleep(0.05)
    upload = slack.uploaded_files[-1]
    content = upload["content"] if isinstance(upload.get("content"), str) else upload["content"].decode()
    rows = list(csv.DictReader(io.StringIO(content)))
    assert sum(int(r["input_tokens"]) for r in rows) == 1200
    assert {r["user"] for r in rows} == {"U0USER"}


async def test_a_spent_budget_stops_calls_and_says_when_it_resets(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await start_bot(budget_month_usd=0.001)  # less than one answer's estimate
    root = "1700000703.000100"
    await running.sender.send_event(event_callback(app_mention("hi", ts=root)))
    [reply] = await wait_for_reply(slack, "C0GENERAL", root, "budget")
    now = datetime.now(UTC)
    first_of_next = (now.replace(day=28) + timedelta(days=4)).replace(day=1)
    assert "is spent" in reply.text and f"resets on {first_of_next:%B} 1;" in reply.text
    assert claude.requests == []


async def test_near_the_limit_the_fallback_model_is_used_and_admins_are_warned_once(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await start_bot(
        claude_model="claude-sonnet-4-6",  # $3 / $15 per million tokens
        claude_max_tokens=1000,
        budget_month_usd=0.10,
        budget_fallback_model="claude-haiku-4-5",
        cost_admins="U0ADMIN",
    )
    claude.default_reply = TextReply("Answer.", usage={"input_tokens": 1000, "output_tokens": 5500})  # $0.0855
    await answer(running, slack, "1700000704.000100")
    assert claude.requests[0].body["model"] == "claude-sonnet-4-6"
    warnings = await slack.wait_for("chat.postMessage", where=lambda c: c.params.get("channel") == "U0ADMIN")
    assert "budget" in warnings[0].params["text"]
    assert warnings[0].params["unfurl_links"] is False and warnings[0].params["unfurl_media"] is False

    claude.default_reply = TextReply("Answer.", usage={"input_tokens": 10, "output_tokens": 10})
    await answer(running, slack, "1700000704.000200")
    assert claude.requests[1].body["model"] == "claude-haiku-4-5"  # cheaper, instead of refusing
    await settle(0.3)
    assert (
        len(
            slack.calls_to(
                "chat.postMessage",
            )
        )
        and len([c for c in slack.calls_to("chat.postMessage") if c.params.get("channel") == "U0ADMIN"]) == 1
    )  # warned once


async def test_concurrent_requests_cannot_overshoot_the_budget(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    # Each answer reserves its estimate (~$0.015 with 1,000 max tokens at $15/MTok); $0.05 admits at most 3.
    running = await start_bot(claude_model="claude-sonnet-4-6", claude_max_tokens=1000, budget_month_usd=0.05)
    gate = asyncio.Event()
    claude.default_reply = TextReply("Answer.", gate=gate)
    roots = [f"1700000705.00{i:04d}" for i in range(8)]
    for root in roots:
        await running.sender.send_event(event_callback(app_mention("go", ts=root)))

    def refused() -> list[str]:
        return [r for r in roots if "is spent" in "".join(m.text for m in slack.messages_in("C0GENERAL", r))]

    for _ in range(200):  # every mention is either admitted (held at the gate) or refused at once
        if len(claude.requests) + len(refused()) == len(roots):
            break
        await asyncio.sleep(0.05)
    admitted = len(claude.requests)
    # Each reservation is an estimate of ~$0.02 (prompt, tools, 1,000 output tokens at $15/MTok): $0.05 fits two.
    assert 1 <= admitted <= 3 and len(refused()) == len(roots) - admitted
    await settle(0.5)
    assert len(claude.requests) == admitted  # nobody else got in while those reservations were held
    gate.set()
    for root in set(roots) - set(refused()):
        await wait_for_reply(slack, "C0GENERAL", root, "Answer.")


async def test_allow_lists_hold_and_the_refusal_is_said_once(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await start_bot(allowed_channels="C0ENGINEERING")
    for ts in ("1700000706.000100", "1700000706.000200"):
        await running.sender.send_event(event_callback(app_mention("hi", ts=ts)))
    await settle(0.5)
    assert claude.requests == []
    assert len(slack.ephemerals) == 1 and "isn't enabled" in slack.ephemerals[0].params["text"]
    assert slack.calls_to("chat.postMessage") == []


async def test_admins_set_budgets_with_a_command_and_others_cannot(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    slack.add_user("U0ADMIN", name="boss", is_admin=True)
    refused = await command(running, slack, "/claude-budget", "month 1")
    assert "Only workspace admins" in refused["text"]
    shown = await command(running, slack, "/claude-budget", "month 0.001", user_id="U0ADMIN")
    assert "$0.00" in shown["text"] or "0.001" in shown["text"]
    root = "1700000707.000100"
    await running.sender.send_event(event_callback(app_mention("hi", ts=root)))
    await wait_for_reply(slack, "C0GENERAL", root, "is spent")
    assert claude.requests == []
    await command(running, slack, "/claude-budget", "month off", user_id="U0ADMIN")
    await running.sender.send_event(event_callback(app_mention("hi again", ts="1700000707.000200")))
    await wait_for_reply(slack, "C0GENERAL", "1700000707.000200", "OK")


async def test_allow_lists_also_hold_for_commands(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    running = await start_bot(denied_users="U0USER")
    reply = await command(running, slack, "/claude-review", "x = 1")
    assert reply["response_type"] == "ephemeral" and "isn't enabled" in reply["text"]
    await settle(0.3)
    assert claude.requests == []


async def test_the_weekly_summary_is_posted_once_per_week_even_from_two_processes(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    from datetime import UTC, datetime, timedelta

    from bot.slack.weekly_summary import post_weekly_summary

    first, second = await start_bot(), await start_bot()
    claude.default_reply = TextReply("Answer.", usage=BILLED)
    await answer(first, slack, "1700000708.000100")
    next_week = datetime.now(UTC).date() + timedelta(days=7)  # the week with today's usage is then "last week"
    posted = [
        await post_weekly_summary(bot.bot.slack_deps.usage, bot.bot.app.client, "C0GENERAL", "T0001", next_week)
        for bot in (first, second)
    ]
    assert posted == [True, False]
    [summary] = [c for c in slack.calls_to("chat.postMessage") if "usage" in c.params.get("text", "").lower()]
    assert "week" in summary.params["text"].lower()
