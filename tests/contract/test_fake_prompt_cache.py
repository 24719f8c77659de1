"""Contract tests: the fake's opt-in token accounting and prompt-cache simulation, through the real SDK."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest
from anthropic.types import Usage

from tests.fakes.anthropic_api import (
    CACHE_LOOKBACK_BLOCKS,
    DOCUMENT_PAGE_TOKENS,
    IMAGE_TOKENS,
    FakeAnthropic,
    TextReply,
    ToolUseReply,
    estimate_input_tokens,
)

MODEL = "claude-sonnet-4-6"
EPHEMERAL: Any = {"type": "ephemeral"}
BIG = "s" * 8_000  # 2,000 tokens: above the default 1,024 minimum
BIG_TOKENS = 2_000
QUESTION = "What is in the document?"  # 24 chars -> 6 tokens
QUESTION_TOKENS = 6
WEATHER_TOOL: dict[str, Any] = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
PNG_1PX = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 60).decode()
PDF_SMALL = base64.b64encode(b"%PDF-1.4 fake" + b"\x00" * 1_000).decode()


class _Clock:
    """A settable clock for the fake's prompt-cache TTLs."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _cached_system(text: str = BIG) -> list[dict[str, Any]]:
    return [{"type": "text", "text": text, "cache_control": EPHEMERAL}]


def _user(content: list[dict[str, Any]]) -> list[Any]:
    return [{"role": "user", "content": content}]


def _total(usage: Usage) -> int:
    return usage.input_tokens + (usage.cache_read_input_tokens or 0) + (usage.cache_creation_input_tokens or 0)


def _cache(usage: Usage) -> tuple[int, int, int]:
    """``(cache_read, cache_creation, input)`` of a usage."""
    return usage.cache_read_input_tokens or 0, usage.cache_creation_input_tokens or 0, usage.input_tokens


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic(token_accounting=True) as server:
        server.clock = _Clock()
        yield server


def _client(server: FakeAnthropic) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=server.base_url, api_key="test-key", max_retries=0, _strict_response_validation=True
    )


@pytest.fixture
async def client(fake: FakeAnthropic) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with _client(fake) as c:
        yield c


async def test_no_cache_control_everything_is_input(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    fake.script(TextReply("x" * 40))
    msg = await client.messages.create(
        model=MODEL, max_tokens=100, system=BIG, messages=[{"role": "user", "content": QUESTION}]
    )
    assert _cache(msg.usage) == (0, 0, BIG_TOKENS + QUESTION_TOKENS)
    assert msg.usage.output_tokens == 10
    assert msg.usage.cache_creation is not None and msg.usage.cache_creation.ephemeral_5m_input_tokens == 0
    assert fake.cache_entries == 0


async def test_identical_request_reads_system_breakpoint(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    kwargs: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 100,
        "system": _cached_system(),
        "messages": [{"role": "user", "content": QUESTION}],
    }
    first = await client.messages.create(**kwargs)
    assert _cache(first.usage) == (0, BIG_TOKENS, QUESTION_TOKENS)
    assert first.usage.cache_creation is not None
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == BIG_TOKENS
    assert first.usage.cache_creation.ephemeral_1h_input_tokens == 0
    assert fake.cache_entries == 1

    second = await client.messages.create(**kwargs)
    assert _cache(second.usage) == (BIG_TOKENS, 0, QUESTION_TOKENS)
    assert second.usage.cache_creation is not None and second.usage.cache_creation.ephemeral_5m_input_tokens == 0
    assert fake.cache_entries == 1


async def test_growing_conversation_with_automatic_caching(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    """Top-level cache_control: each turn reads the previous turn's prefix and writes only the new part."""
    answer = "The answer is forty-two."  # 24 chars -> 6 tokens
    fake.script(TextReply(answer), TextReply("Because."))
    turn1: list[Any] = [{"role": "user", "content": QUESTION}]
    first = await client.messages.create(
        model=MODEL, max_tokens=100, system=BIG, messages=turn1, cache_control=EPHEMERAL
    )
    assert _cache(first.usage) == (0, BIG_TOKENS + QUESTION_TOKENS, 0)
    assert first.usage.output_tokens == 6

    follow_up = "Why exactly forty-two, though?"  # 30 chars -> 7 tokens
    turn2: list[Any] = [*turn1, {"role": "assistant", "content": answer}, {"role": "user", "content": follow_up}]
    async with client.messages.stream(
        model=MODEL, max_tokens=100, system=BIG, messages=turn2, cache_control=EPHEMERAL
    ) as stream:
        second = await stream.get_final_message()
    # streamed: cache/input counts come from message_start, output_tokens from message_delta
    assert _cache(second.usage) == (BIG_TOKENS + QUESTION_TOKENS, 6 + 7, 0)
    assert second.usage.output_tokens == 2
    assert second.usage.cache_creation is not None and second.usage.cache_creation.ephemeral_5m_input_tokens == 13
    assert fake.cache_entries == 2


async def test_prefix_below_minimum_is_not_cached(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    small = "s" * 400  # 100 tokens < 1,024
    kwargs: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 100,
        "system": _cached_system(small),
        "messages": [{"role": "user", "content": QUESTION}],
    }
    for _ in range(2):
        msg = await client.messages.create(**kwargs)
        assert _cache(msg.usage) == (0, 0, 100 + QUESTION_TOKENS)
    assert fake.cache_entries == 0

    async with FakeAnthropic(token_accounting=True, min_cacheable_tokens=50) as low, _client(low) as low_client:
        await low_client.messages.create(**kwargs)
        again = await low_client.messages.create(**kwargs)
        assert _cache(again.usage) == (100, 0, QUESTION_TOKENS)


async def test_changing_an_early_block_invalidates(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    def request(tool: dict[str, Any], question: str) -> dict[str, Any]:
        return {
            "model": MODEL,
            "max_tokens": 100,
            "tools": [tool],
            "system": _cached_system(),
            "messages": [{"role": "user", "content": question}],
        }

    prefix = estimate_input_tokens({"tools": [WEATHER_TOOL], "system": BIG, "messages": []})
    first = await client.messages.create(**request(WEATHER_TOOL, QUESTION))
    assert _cache(first.usage) == (0, prefix, QUESTION_TOKENS)

    # a later block may change: the prefix up to the breakpoint is still read
    other_question = await client.messages.create(**request(WEATHER_TOOL, "And what else is in there?"))
    assert _cache(other_question.usage)[:2] == (prefix, 0)

    # the tool definition comes first: changing it invalidates the system breakpoint's prefix
    changed = {**WEATHER_TOOL, "description": "Current weather for a city"}
    second = await client.messages.create(**request(changed, QUESTION))
    changed_prefix = estimate_input_tokens({"tools": [changed], "system": BIG, "messages": []})
    assert _cache(second.usage) == (0, changed_prefix, QUESTION_TOKENS)

    # so does a different model
    third = await client.messages.create(**{**request(WEATHER_TOOL, QUESTION), "model": "claude-opus-5-5"})
    assert _cache(third.usage) == (0, prefix, QUESTION_TOKENS)


async def test_lookback_finds_entries_at_most_20_blocks_back(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    """An entry is found up to 20 block boundaries before a breakpoint; moving the marker keeps identity."""
    note = "a short note"  # 12 chars -> 3 tokens

    def content(notes: int) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = [{"type": "text", "text": BIG}]
        blocks += [{"type": "text", "text": note} for _ in range(notes)]
        blocks[-1]["cache_control"] = EPHEMERAL
        return blocks

    seed = await client.messages.create(model=MODEL, max_tokens=100, messages=_user(content(0)))
    assert _cache(seed.usage) == (0, BIG_TOKENS, 0)

    too_far = CACHE_LOOKBACK_BLOCKS + 1
    missed = await client.messages.create(model=MODEL, max_tokens=100, messages=_user(content(too_far)))
    assert _cache(missed.usage) == (0, BIG_TOKENS + 3 * too_far, 0)

    in_reach = CACHE_LOOKBACK_BLOCKS
    hit = await client.messages.create(model=MODEL, max_tokens=100, messages=_user(content(in_reach)))
    assert _cache(hit.usage) == (BIG_TOKENS, 3 * in_reach, 0)


async def test_count_tokens_agrees_with_usage_total(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    fake.script(ToolUseReply("get_weather", {"city": "Paris"}, text_before="Let me check."))
    params: dict[str, Any] = {
        "model": MODEL,
        "tools": [{**WEATHER_TOOL, "cache_control": EPHEMERAL}],
        "system": [{"type": "text", "text": BIG, "cache_control": EPHEMERAL}, {"type": "text", "text": "Be brief."}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look at these."},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG_1PX}},
                    {
                        "type": "document",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_SMALL},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking the weather."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [
                            {"type": "text", "text": "Sunny, 21 degrees."},
                            {
                                "type": "image",
                                "source": {"type": "base64", "media_type": "image/png", "data": PNG_1PX},
                            },
                        ],
                    }
                ],
            },
        ],
        "cache_control": EPHEMERAL,
    }
    counted = (await client.messages.count_tokens(**params)).input_tokens
    assert counted == estimate_input_tokens(params)
    tool = len(json.dumps(WEATHER_TOOL)) // 4
    system = BIG_TOKENS + len("Be brief.") // 4
    user = len("Look at these.") // 4 + IMAGE_TOKENS + DOCUMENT_PAGE_TOKENS  # a one-page document
    assistant = len("Checking the weather.") // 4 + len(json.dumps({"city": "Oslo"})) // 4
    tool_result = len("Sunny, 21 degrees.") // 4 + IMAGE_TOKENS
    assert counted == tool + system + user + assistant + tool_result

    first = await client.messages.create(max_tokens=100, **params)
    assert _total(first.usage) == counted
    assert _cache(first.usage) == (0, counted, 0)  # the automatic breakpoint is on the last block
    assert first.usage.output_tokens == len("Let me check." + json.dumps({"city": "Paris"})) // 4

    second = await client.messages.create(max_tokens=100, **params)
    assert _total(second.usage) == counted
    assert _cache(second.usage) == (counted, 0, 0)


async def test_entries_expire_after_ttl_and_hits_refresh(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    clock = _Clock(1_000.0)
    fake.clock = clock
    kwargs: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 100,
        "system": _cached_system(),
        "messages": [{"role": "user", "content": QUESTION}],
    }
    assert _cache((await client.messages.create(**kwargs)).usage)[:2] == (0, BIG_TOKENS)
    clock.now += 299.0
    assert _cache((await client.messages.create(**kwargs)).usage)[:2] == (BIG_TOKENS, 0)
    clock.now += 299.0  # 598 s after the write, but only 299 s after the refreshing hit
    assert _cache((await client.messages.create(**kwargs)).usage)[:2] == (BIG_TOKENS, 0)
    clock.now += 300.5
    assert fake.cache_entries == 0
    assert _cache((await client.messages.create(**kwargs)).usage)[:2] == (0, BIG_TOKENS)


async def test_custom_ttl_and_thinking_output() -> None:
    async with FakeAnthropic(token_accounting=True, cache_ttl_s=10.0) as server, _client(server) as c:
        clock = _Clock()
        server.clock = clock
        server.script(TextReply("x" * 40, thinking="t" * 80), TextReply("ok"))
        kwargs: dict[str, Any] = {
            "model": MODEL,
            "max_tokens": 2_000,
            "system": _cached_system(),
            "messages": [{"role": "user", "content": QUESTION}],
        }
        async with c.messages.stream(**kwargs, thinking={"type": "enabled", "budget_tokens": 1_024}) as stream:
            msg = await stream.get_final_message()
        assert msg.usage.output_tokens == 30  # (80 + 40) / 4
        assert msg.usage.output_tokens_details is not None and msg.usage.output_tokens_details.thinking_tokens == 20
        clock.now += 11.0
        assert _cache((await c.messages.create(**kwargs)).usage)[:2] == (0, BIG_TOKENS)


async def test_accounting_off_or_explicit_usage_keeps_fixed_numbers() -> None:
    kwargs: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 100,
        "system": _cached_system(),
        "messages": [{"role": "user", "content": QUESTION}],
    }
    async with FakeAnthropic() as plain, _client(plain) as c:
        for _ in range(2):
            msg = await c.messages.create(**kwargs)
            assert (msg.usage.input_tokens, msg.usage.output_tokens) == (25, 12)
            assert _cache(msg.usage)[:2] == (0, 0)
        assert plain.cache_entries == 0
    async with FakeAnthropic(token_accounting=True) as accounting, _client(accounting) as c:
        accounting.script(TextReply("hi", usage={"input_tokens": 7, "output_tokens": 3}))
        msg = await c.messages.create(**kwargs)
        assert _cache(msg.usage) == (0, 0, 7) and msg.usage.output_tokens == 3
        assert accounting.cache_entries == 0  # an explicit usage bypasses the cache simulation
