"""Claude wherever it is served: failover along CLAUDE_PROVIDERS, through the real Bolt app and the SDK's clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as redis

from tests.e2e.conftest import BotFactory
from tests.e2e.helpers import STREAMING_CURSOR, slash, wait_for_reply
from tests.fakes.anthropic_api import FakeAnthropic, HttpErrorReply, MidStreamErrorReply, StallReply, TextReply
from tests.fakes.cloud_api import FakeBedrock, FakeVertex
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_requests import app_mention, event_callback


@pytest.fixture
async def bedrock() -> AsyncIterator[FakeBedrock]:
    async with FakeBedrock() as fake:
        yield fake


@pytest.fixture
async def vertex() -> AsyncIterator[FakeVertex]:
    async with FakeVertex() as fake:
        yield fake


def overloaded() -> HttpErrorReply:
    return HttpErrorReply(529, "overloaded_error", retry_after_ms="1")


def with_bedrock(bedrock: FakeBedrock, chain: str = "anthropic,bedrock", **more: Any) -> dict[str, Any]:
    return {
        "claude_providers": chain,
        "aws_region": bedrock.region,
        "aws_bearer_token_bedrock": bedrock.api_key,
        "anthropic_bedrock_base_url": bedrock.base_url,
        **more,
    }


async def ask(running: Any, slack: FakeSlack, ts: str, expected: str) -> str:
    await running.sender.send_event(event_callback(app_mention("hi", ts=ts)))
    [answer] = await wait_for_reply(slack, "C0GENERAL", ts, expected)
    return str(answer.text)


async def test_an_overloaded_first_provider_is_answered_by_the_next(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, bedrock: FakeBedrock
) -> None:
    running = await start_bot(**with_bedrock(bedrock))
    claude.script(overloaded(), overloaded(), overloaded())  # the SDK's own two retries, then failover
    bedrock.script(TextReply("Answered by Bedrock."))
    assert await ask(running, slack, "1700009000.000100", "Answered by Bedrock.") == "Answered by Bedrock."
    assert len(claude.requests) == 3
    [served] = bedrock.requests
    assert served.path == "/model/global.anthropic.claude-sonnet-5-5/invoke-with-response-stream"
    assert served.headers["authorization"] == "Bearer bedrock-api-key"

    slack.add_user("U0ADMIN", name="boss", is_admin=True)
    reply = await slash(running, slack, "/claude-cost", "today", user_id="U0ADMIN")
    texts = [block["text"]["text"] for block in reply["blocks"] if block["type"] == "section" and "text" in block]
    assert any(text.startswith("*By provider*\n1. `bedrock` — $") for text in texts)


async def test_a_provider_that_dies_mid_stream_is_continued_without_repeating_or_losing_text(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, bedrock: FakeBedrock
) -> None:
    running = await start_bot(**with_bedrock(bedrock, edit_interval_s=1.0))
    claude.script(MidStreamErrorReply("The answer begins here and "))
    bedrock.script(TextReply(" carries on to the end."))  # a continuation may start with the space already shown
    ts = "1700009001.000100"
    text = await ask(running, slack, ts, "the end.")
    assert text == "The answer begins here and carries on to the end."
    [message] = [m for m in slack.messages_in("C0GENERAL") if m.thread_ts == ts]
    placeholder, *shown = message.edits
    assert placeholder.startswith("_") and len(shown) >= 2  # the first words were shown before the failover
    for edit in shown:  # every edit only ever grew the text: nothing shown twice, nothing taken back
        assert text.startswith(edit.removesuffix(STREAMING_CURSOR).rstrip())
    [continued] = bedrock.requests
    assert continued.messages[-1] == {
        "role": "assistant",
        "content": [{"type": "text", "text": "The answer begins here and"}],
    }
    stored = await running.bot.core.store.load(_key(ts))
    assert stored.turns[-1].blocks[0].text == text  # type: ignore[union-attr]


def _key(ts: str) -> Any:
    from bot.core.conversation import ConversationKey

    return ConversationKey("T0001", "C0GENERAL", ts)


async def test_the_breaker_opens_skips_the_provider_and_closes_after_a_probe(
    start_bot: BotFactory,
    slack: FakeSlack,
    claude: FakeAnthropic,
    bedrock: FakeBedrock,
    redis_client: redis.Redis,
    key_prefix: str,
) -> None:
    running = await start_bot(**with_bedrock(bedrock, provider_failure_threshold=1, provider_cooldown_s=1.0))
    claude.script(overloaded(), overloaded(), overloaded())
    bedrock.default_reply = TextReply("From Bedrock.")
    await ask(running, slack, "1700009002.000100", "From Bedrock.")
    assert await redis_client.exists(f"{key_prefix}breaker:anthropic")

    await ask(running, slack, "1700009002.000200", "From Bedrock.")  # open: Anthropic is not even tried
    assert len(claude.requests) == 3 and len(bedrock.requests) == 2

    await asyncio.sleep(1.1)  # the cool-down ends: the next call probes Anthropic, which has recovered
    claude.default_reply = TextReply("Anthropic is back.")
    await ask(running, slack, "1700009002.000300", "Anthropic is back.")
    assert len(claude.requests) == 4 and len(bedrock.requests) == 2
    assert not await redis_client.exists(f"{key_prefix}breaker:anthropic")  # closed again


async def test_a_provider_without_web_search_gets_no_web_search_tool(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, bedrock: FakeBedrock
) -> None:
    running = await start_bot(**with_bedrock(bedrock, web_search_enabled=True))
    claude.script(overloaded(), overloaded(), overloaded())
    bedrock.script(TextReply("No search needed."))
    await ask(running, slack, "1700009003.000100", "No search needed.")
    assert claude.requests[0].web_search_tool is not None
    assert bedrock.requests[0].web_search_tool is None
    assert "cache_control" not in bedrock.requests[0].body  # no automatic breakpoint on Bedrock either


async def test_vertex_alone_serves_with_its_model_ids(
    start_bot: BotFactory, slack: FakeSlack, vertex: FakeVertex
) -> None:
    running = await start_bot(
        claude_providers="vertex",
        claude_model="claude-sonnet-4-5",
        anthropic_api_key=None,
        anthropic_vertex_project_id=vertex.project,
        cloud_ml_region=vertex.region,
        vertex_access_token=vertex.access_token,
        anthropic_vertex_base_url=vertex.vertex_url,
    )
    vertex.script(TextReply("Hello from Vertex."))
    await ask(running, slack, "1700009004.000100", "Hello from Vertex.")
    assert vertex.requests[0].path.endswith("/models/claude-sonnet-4-5@20250929:streamRawPredict")


async def test_chat_through_one_provider_checks_its_credentials_from_a_terminal(
    claude: FakeAnthropic, bedrock: FakeBedrock, redis_url: str, key_prefix: str
) -> None:
    from tests.e2e.test_personas import run_chat

    bedrock.script(TextReply("Bedrock hears you."))
    env = {
        "CLAUDE_PROVIDERS": "anthropic,bedrock",  # the chain; --provider picks one link of it
        "ANTHROPIC_API_KEY": "test-key",
        "ANTHROPIC_BASE_URL": claude.base_url,
        "AWS_REGION": bedrock.region,
        "AWS_ACCESS_KEY_ID": bedrock.access_key_id,  # the standard AWS credential chain: SigV4
        "AWS_SECRET_ACCESS_KEY": bedrock.secret_access_key,
        "ANTHROPIC_BEDROCK_BASE_URL": bedrock.base_url,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": key_prefix,
    }
    result = await asyncio.to_thread(run_chat, ["--provider", "bedrock"], "hello\n", env)
    assert result.returncode == 0, result.stderr
    assert "through bedrock" in result.stdout and "Bedrock hears you." in result.stdout
    assert claude.requests == [] and bedrock.signed_requests == 1

    env["AWS_SECRET_ACCESS_KEY"] = "wrong-secret"
    result = await asyncio.to_thread(run_chat, ["--provider", "bedrock"], "hello\n", env)
    assert "AWS credentials" in result.stdout and "wrong-secret" not in result.stdout + result.stderr

    del env["AWS_REGION"]
    result = await asyncio.to_thread(run_chat, ["--provider", "bedrock"], "hello\n", env)
    assert result.returncode == 2 and "AWS_REGION: missing" in result.stderr


async def test_a_silent_provider_is_continued_by_the_next_and_metrics_say_who_served(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, bedrock: FakeBedrock
) -> None:
    from tests.e2e.test_operations import scrape, value

    running = await start_bot(**with_bedrock(bedrock, claude_silence_timeout_s=0.4))
    claude.script(StallReply("Thinking out loud", stall_s=3.0))  # words, then silence past the timeout
    bedrock.script(TextReply(", and done."))
    ts = "1700009005.000100"
    assert await ask(running, slack, ts, "done.") == "Thinking out loud, and done."
    assert bedrock.requests[0].messages[-1]["content"][0]["text"] == "Thinking out loud"
    samples = await scrape(running.metrics_url)
    assert value(samples, "claudebot_claude_failovers_total", provider="anthropic", reason="timeout") == 1
    assert value(samples, "claudebot_claude_provider_calls_total", provider="bedrock") == 1
    assert value(samples, "claudebot_claude_provider_cost_usd_total", provider="bedrock") > 0


async def test_bedrock_alone_retries_an_exception_frame_mid_stream(
    start_bot: BotFactory, slack: FakeSlack, bedrock: FakeBedrock
) -> None:
    running = await start_bot(**with_bedrock(bedrock, chain="bedrock", anthropic_api_key=None))
    bedrock.script(MidStreamErrorReply("Half an ans", "overloaded_error"), TextReply("A whole answer."))
    assert await ask(running, slack, "1700009006.000100", "A whole answer.") == "A whole answer."
    assert len(bedrock.requests) == 2


async def test_a_fallback_model_after_every_provider_failed_is_planned_for_itself(
    start_bot: BotFactory, slack: FakeSlack, claude: FakeAnthropic, bedrock: FakeBedrock
) -> None:
    # Haiku 4.5 takes no adaptive thinking (the chain's Models API says so): re-planned, not sent Sonnet's settings.
    running = await start_bot(**with_bedrock(bedrock, claude_fallback_model="claude-haiku-4-5", thinking="adaptive"))
    claude.script(overloaded(), overloaded(), overloaded(), TextReply("Haiku answers."))
    bedrock.script(overloaded(), overloaded(), overloaded())
    assert await ask(running, slack, "1700009007.000100", "Haiku answers.") == "Haiku answers."
    assert claude.requests[0].body["thinking"] == {"type": "adaptive"}
    assert claude.requests[-1].body["model"] == "claude-haiku-4-5" and claude.requests[-1].status == 200
    assert "thinking" not in claude.requests[-1].body
