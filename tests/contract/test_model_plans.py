"""The Claude adapter plans what it sends for the model that takes it, from the Models API (over the real SDK client
and the fake, which refuses what a model lacks as the API does)."""

from __future__ import annotations

import dataclasses

import anthropic

from bot.core.conversation import Turn
from bot.core.ports import CallIntent, ModelRequest
from bot.llm.claude import ClaudeModel
from tests.fakes.anthropic_api import FakeAnthropic, TextReply

WANTS_ADAPTIVE = ModelRequest(
    model="claude-haiku-4-5",  # no adaptive thinking, 64K output tokens at most
    max_tokens=100_000,
    system=("Be brief.",),
    turns=(Turn.user("hi"),),
    thinking="adaptive",
    intent=CallIntent(answer_tokens=100_000, thinking="adaptive"),
)


async def test_a_request_not_yet_planned_is_counted_and_sent_as_its_model_takes_it() -> None:
    async with FakeAnthropic() as fake:
        model = ClaudeModel(anthropic.AsyncAnthropic(api_key="test-key", base_url=fake.base_url, max_retries=0))
        try:
            assert await model.count_tokens(WANTS_ADAPTIVE) > 0  # the context window measures unplanned requests
            fake.script(TextReply("Hi."))
            events = [event async for event in model.stream(WANTS_ADAPTIVE)]
        finally:
            await model.close()
    assert events and [r.status for r in fake.requests] == [200]
    assert "thinking" not in fake.requests[0].body and fake.requests[0].body["max_tokens"] == 64_000
    counted = fake.other_requests[-1]
    assert counted.path == "/v1/messages/count_tokens" and "thinking" not in counted.body


async def test_without_an_intent_a_request_is_sent_as_built() -> None:
    async with FakeAnthropic() as fake:
        model = ClaudeModel(anthropic.AsyncAnthropic(api_key="test-key", base_url=fake.base_url, max_retries=0))
        try:
            plain = dataclasses.replace(WANTS_ADAPTIVE, model="claude-sonnet-5-5", intent=None, max_tokens=2_000)
            _ = [event async for event in model.stream(plain)]
        finally:
            await model.close()
    assert fake.requests[0].body["thinking"] == {"type": "adaptive"} and fake.requests[0].body["max_tokens"] == 2_000
