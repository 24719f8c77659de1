"""Personas per channel: /claude-persona, the system prompt Claude receives, and threads keeping theirs."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import BotFactory, RunningBot
from tests.e2e.helpers import wait_for_reply
from tests.fakes.anthropic_api import FakeAnthropic, TextReply
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import app_mention, event_callback, message, slash_command

REVIEWER_OPENING = "You are a senior software engineer reviewing code"
DEFAULT_OPENING = "You are the team's assistant"
SQL_OPENING = "You are a senior database engineer and SQL expert"


async def persona_command(running: RunningBot, slack: FakeSlack, text: str, *, user: str = "U0USER") -> dict:
    response_url = slack.new_response_url()
    status, _ = await running.sender.send_command(
        slash_command("/claude-persona", text, user_id=user, response_url=response_url)
    )
    assert status == 200
    for _ in range(200):
        posts = [p for p in slack.response_url_posts if p["url"] == response_url]
        if posts:
            return posts[-1]["body"]
        await __import__("asyncio").sleep(0.02)
    raise AssertionError(f"/claude-persona {text!r} got no response")


async def test_the_system_prompt_carries_the_channel_persona_and_who_is_asking(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    reply = await persona_command(running, slack, "sql_expert")
    assert reply["response_type"] == "in_channel" and "sql_expert" in reply["text"]

    await running.sender.send_event(event_callback(app_mention("slow query help", ts="1700000400.000100")))
    await wait_for_reply(slack, "C0GENERAL", "1700000400.000100", "OK")
    system = claude.requests[0].system_text
    assert system.startswith(SQL_OPENING)
    assert "Slack" in system  # formatting guidance for Slack
    assert "#general" in system
    # The topic and purpose are written by channel members: data at the start of the conversation, not the prompt.
    assert "Anything goes" not in system and "Company-wide chatter" not in system
    opening = claude.requests[0].messages[0]["content"][0]["text"]
    assert opening.startswith("<channel_context>") and "<topic>Anything goes</topic>" in opening
    assert "<purpose>Company-wide chatter</purpose>" in opening
    assert "(Europe/Paris)" in system  # the date in the asker's time zone
    # Who asks (users.info: display name and title) heads their message, so the system prompt stays the same for
    # everyone in the thread and its cached prefix survives a change of speaker.
    assert "Ada" not in system
    assert claude.requests[0].messages[0]["content"][1]["text"].startswith("[Ada (Staff Engineer), <@U0USER>,")
    assert claude.requests[0].body["output_config"] == {"effort": "high"}  # the persona's own settings


async def test_lookups_are_cached_not_repeated_every_turn(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    root = "1700000401.000100"
    await running.sender.send_event(event_callback(app_mention("one", ts=root)))
    await wait_for_reply(slack, "C0GENERAL", root, "OK")
    claude.script(TextReply("Two."))
    await running.sender.send_event(event_callback(message("two", thread_ts=root)))
    await wait_for_reply(slack, "C0GENERAL", root, "Two.")
    assert len(slack.calls_to("users.info")) == 1
    assert len(slack.calls_to("conversations.info")) == 1


async def test_listing_shows_every_persona_and_the_active_one(running: RunningBot, slack: FakeSlack) -> None:
    reply = await persona_command(running, slack, "")
    assert reply["response_type"] == "ephemeral"
    for name in ("default", "code_reviewer", "technical_writer", "sql_expert"):
        assert f"*{name}*" in reply["text"]
    assert "uses *default*" in reply["text"]
    assert "Reviews code and diffs" in reply["text"]  # with descriptions


async def test_an_unknown_persona_is_refused_privately_with_the_valid_names(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    reply = await persona_command(running, slack, "pirate")
    assert reply["response_type"] == "ephemeral"
    assert "pirate" in reply["text"] and "code_reviewer" in reply["text"] and "sql_expert" in reply["text"]
    await running.sender.send_event(event_callback(app_mention("hi", ts="1700000402.000100")))
    await wait_for_reply(slack, "C0GENERAL", "1700000402.000100", "OK")
    assert claude.requests[0].system_text.startswith(DEFAULT_OPENING)


async def test_switching_persona_changes_new_threads_only(
    running: RunningBot, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    old_thread, new_thread = "1700000403.000100", "1700000403.000900"
    await running.sender.send_event(event_callback(app_mention("start", ts=old_thread)))
    await wait_for_reply(slack, "C0GENERAL", old_thread, "OK")

    await persona_command(running, slack, "code-reviewer")  # dash or underscore both work
    claude.script(TextReply("Old thread, old persona."), TextReply("New thread, new persona."))
    await running.sender.send_event(event_callback(message("follow-up", thread_ts=old_thread)))
    await wait_for_reply(slack, "C0GENERAL", old_thread, "old persona")
    await running.sender.send_event(event_callback(app_mention("review this", ts=new_thread)))
    await wait_for_reply(slack, "C0GENERAL", new_thread, "new persona")

    assert claude.requests[1].system_text.startswith(DEFAULT_OPENING)
    assert claude.requests[2].system_text.startswith(REVIEWER_OPENING)
    assert claude.requests[2].body["thinking"] == {"type": "adaptive"}


async def test_admins_only_policy(start_bot: BotFactory, slack: FakeSlack) -> None:
    running = await start_bot(persona_change="admins")
    slack.add_user("U0ADMIN", name="boss", display_name="Boss", is_admin=True)
    refused = await persona_command(running, slack, "sql_expert")
    assert refused["response_type"] == "ephemeral" and "admins" in refused["text"]
    accepted = await persona_command(running, slack, "sql_expert", user="U0ADMIN")
    assert "sql_expert" in accepted["text"] and accepted["response_type"] == "in_channel"


async def test_a_malformed_persona_file_is_reported_and_the_others_still_work(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "broken.md").write_text("---\nname: broken\ndescription: x\nthinking: 500\n---\nHi.\n")
    (tmp_path / "pirate.md").write_text(
        "---\nname: pirate\ndescription: Talks like a pirate.\n---\nYe be a helpful pirate. Answer like one.\n"
    )
    with caplog.at_level(logging.WARNING):
        running = await start_bot(personas_dir=tmp_path)
    problem = next(r.getMessage() for r in caplog.records if "broken.md" in r.getMessage())
    assert "thinking" in problem

    await persona_command(running, slack, "pirate")
    await running.sender.send_event(event_callback(app_mention("ahoy", ts="1700000404.000100")))
    await wait_for_reply(slack, "C0GENERAL", "1700000404.000100", "OK")
    assert claude.requests[0].system_text.startswith("Ye be a helpful pirate.")


def run_chat(args: list[str], stdin: str, env_overrides: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ANTHROPIC_", "CLAUDE_", "REDIS_"))}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, "-m", "bot", "chat", *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )


async def test_chat_in_the_terminal_runs_the_same_core_without_slack(
    claude: FakeAnthropic, redis_url: str, key_prefix: str, redis_client: object
) -> None:
    import asyncio

    claude.script(TextReply("Summary: looks fine."), TextReply("Rating: 8/10."))
    env = {
        "ANTHROPIC_API_KEY": "test-key",
        "ANTHROPIC_BASE_URL": claude.base_url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": key_prefix,
    }
    result = await asyncio.to_thread(run_chat, ["--persona", "code_reviewer"], "review x = 1\nand the rating?\n", env)
    assert result.returncode == 0, result.stderr
    assert "Summary: looks fine." in result.stdout and "Rating: 8/10." in result.stdout
    assert claude.requests[0].system_text.startswith(REVIEWER_OPENING)
    assert "terminal" in claude.requests[0].system_text
    assert "review x = 1" in str(claude.requests[1].messages)  # history kept in Redis between turns


async def test_chat_with_an_unknown_persona_lists_the_valid_ones(
    claude: FakeAnthropic, redis_url: str, key_prefix: str
) -> None:
    import asyncio

    env = {"ANTHROPIC_API_KEY": "k", "ANTHROPIC_BASE_URL": claude.base_url, "REDIS_URL": redis_url}
    result = await asyncio.to_thread(run_chat, ["--persona", "nope"], "", env)
    assert result.returncode == 2
    assert "nope" in result.stderr and "sql_expert" in result.stderr


async def test_a_persona_set_through_one_process_is_used_by_another_at_once(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic
) -> None:
    here, there = await start_bot(), await start_bot()  # two processes sharing Redis, as behind a load balancer
    claude.script(TextReply("First."), TextReply("Second."))
    await there.sender.send_event(event_callback(app_mention("before", ts="1700000409.000100")))
    await wait_for_reply(slack, "C0GENERAL", "1700000409.000100", "First.")  # `there` has read #general's persona
    assert claude.requests[0].system_text.startswith(DEFAULT_OPENING)

    reply = await persona_command(here, slack, "sql_expert")
    assert "sql_expert" in reply["text"]
    await __import__("asyncio").sleep(0.2)  # the person who reads the confirmation asks a moment later
    await there.sender.send_event(event_callback(app_mention("after", ts="1700000409.000200")))
    await wait_for_reply(slack, "C0GENERAL", "1700000409.000200", "Second.")
    assert claude.requests[1].system_text.startswith(SQL_OPENING)  # not the copy `there` read before the change
