"""FailoverModel over real SDK clients and the cloud fakes: what goes to the next provider, and what does not."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anthropic
import pytest

from bot.core.breaker import BreakerPolicy, MemoryCircuitBreaker
from bot.core.conversation import TextBlock, Turn
from bot.core.errors import ModelUnavailable
from bot.core.events import ModelEvent, ModelTurnComplete, TextDelta
from bot.core.ports import ModelRequest
from bot.llm.claude import ClaudeModel
from bot.llm.failover import FailoverModel
from tests.fakes.anthropic_api import FakeAnthropic, HttpErrorReply, MidStreamErrorReply, TextReply
from tests.fakes.cloud_api import FakeBedrock

REQUEST = ModelRequest(
    model="claude-sonnet-4-5",
    max_tokens=100,
    system=("Be brief.",),
    turns=(Turn(role="user", blocks=(TextBlock(text="hi"),)),),
)


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeAnthropic, FakeBedrock]]:
    async with FakeAnthropic() as first, FakeBedrock() as second:
        yield first, second


def chain(fakes: tuple[FakeAnthropic, FakeBedrock], breaker: object | None = None) -> FailoverModel:
    first, second = fakes
    direct = ClaudeModel(anthropic.AsyncAnthropic(api_key="test-key", base_url=first.base_url, max_retries=0))
    cloud = ClaudeModel(
        anthropic.AsyncAnthropicBedrock(
            aws_region=second.region, api_key=second.api_key, base_url=second.base_url, max_retries=0
        ),  # type: ignore[arg-type]
        provider="bedrock",
    )
    policy = BreakerPolicy(failure_threshold=1, cooldown_s=60)
    return FailoverModel([direct, cloud], breaker or MemoryCircuitBreaker(policy))  # type: ignore[arg-type]


async def collect(model: FailoverModel) -> tuple[str, ModelTurnComplete]:
    text, complete = "", None
    events: AsyncIterator[ModelEvent] = model.stream(REQUEST)
    async for event in events:
        if isinstance(event, TextDelta):
            text += event.text
        elif isinstance(event, ModelTurnComplete):
            complete = event
    assert complete is not None
    return text, complete


async def test_when_every_provider_fails_the_last_reason_is_given(fakes: tuple[FakeAnthropic, FakeBedrock]) -> None:
    first, second = fakes
    first.script(HttpErrorReply(529, "overloaded_error"))
    second.script(HttpErrorReply(429, "rate_limit_error"))
    model = chain(fakes)
    with pytest.raises(ModelUnavailable, match="rate limit"):
        await collect(model)
    await model.close()


async def test_a_bad_request_is_not_sent_on_to_fail_again(fakes: tuple[FakeAnthropic, FakeBedrock]) -> None:
    first, second = fakes
    first.script(HttpErrorReply(400, "invalid_request_error", message="messages: bad"))
    model = chain(fakes)
    with pytest.raises(ModelUnavailable, match="could not process"):
        await collect(model)
    assert second.requests == []
    await model.close()


async def test_whitespace_at_the_cut_is_shown_once_and_the_turn_holds_the_whole_answer(
    fakes: tuple[FakeAnthropic, FakeBedrock],
) -> None:
    first, second = fakes
    first.script(MidStreamErrorReply("Line one.\n\n"))
    second.script(TextReply("\n\nLine two."))
    model = chain(fakes)
    text, complete = await collect(model)
    assert text == "Line one.\n\nLine two."
    assert complete.blocks == (TextBlock(text="Line one.\n\nLine two."),) and complete.provider == "bedrock"
    assert second.requests[0].messages[-1]["content"][0]["text"] == "Line one."  # no trailing whitespace prefill
    await model.close()


async def test_an_unreadable_breaker_lets_calls_through(fakes: tuple[FakeAnthropic, FakeBedrock]) -> None:
    class Broken:
        async def allow(self, provider: str) -> bool:
            raise ConnectionError("redis down")

        async def record_success(self, provider: str) -> None:
            raise ConnectionError("redis down")

        async def record_failure(self, provider: str) -> None:
            raise ConnectionError("redis down")

    first, _ = fakes
    first.script(TextReply("Still here."))
    model = chain(fakes, Broken())
    assert (await collect(model))[0] == "Still here."
    await model.close()


async def test_token_counts_and_limits_come_from_a_provider_that_offers_them(
    fakes: tuple[FakeAnthropic, FakeBedrock],
) -> None:
    first, second = fakes
    model = chain(fakes)
    model._providers.reverse()  # Bedrock first: it has neither count_tokens nor a Models API
    assert await model.count_tokens(REQUEST) > 0
    assert await model.limits(first.models[0]["id"]) is not None
    assert second.other_requests == []
    # count_tokens counts the request as its model takes it, so it reads that model's limits first.
    paths = ["/v1/models/claude-sonnet-4-5", "/v1/messages/count_tokens", f"/v1/models/{first.models[0]['id']}"]
    assert [r.path for r in first.other_requests] == paths
    await model.close()


async def test_a_half_open_provider_keeps_its_probe_for_a_call_that_reaches_it(
    fakes: tuple[FakeAnthropic, FakeBedrock],
) -> None:
    first, second = fakes
    clock = [0.0]
    breaker = MemoryCircuitBreaker(BreakerPolicy(failure_threshold=1, cooldown_s=10), lambda: clock[0])
    await breaker.record_failure("bedrock")
    clock[0] = 11.0  # half-open: one probe may go to Bedrock
    model = chain(fakes, breaker)
    first.script(TextReply("Anthropic answers."))
    assert (await collect(model))[0] == "Anthropic answers."
    first.script(HttpErrorReply(529, "overloaded_error"))
    second.script(TextReply("Bedrock probed."))
    assert (await collect(model))[0] == "Bedrock probed."  # the probe was still there to take
    assert await breaker.allow("bedrock")  # and it closed the breaker
    await model.close()
