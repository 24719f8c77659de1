"""The cloud fakes speak each provider's wire dialect as the SDK's own clients expect it (paths, auth, framing)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest

from tests.fakes.anthropic_api import HttpErrorReply, MidStreamErrorReply, TextReply
from tests.fakes.cloud_api import (
    BEDROCK_VERSION,
    VERTEX_VERSION,
    FakeBedrock,
    FakeFoundry,
    FakeVertex,
    event_stream_frame,
)

HELLO = [{"role": "user", "content": "hi"}]
_OPEN: list[anthropic.AsyncAnthropic | anthropic.AsyncAnthropicBedrock | anthropic.AsyncAnthropicVertex] = []


@pytest.fixture(autouse=True)
async def close_clients() -> AsyncIterator[None]:
    yield
    while _OPEN:
        await _OPEN.pop().close()


def opened(client: anthropic.AsyncAnthropic | anthropic.AsyncAnthropicBedrock | anthropic.AsyncAnthropicVertex) -> Any:
    _OPEN.append(client)
    return client


@pytest.fixture
async def vertex() -> AsyncIterator[FakeVertex]:
    async with FakeVertex() as fake:
        yield fake


@pytest.fixture
async def bedrock() -> AsyncIterator[FakeBedrock]:
    async with FakeBedrock() as fake:
        yield fake


def vertex_client(fake: FakeVertex, token: str = "vertex-token") -> anthropic.AsyncAnthropicVertex:
    return opened(
        anthropic.AsyncAnthropicVertex(
            region=fake.region, project_id=fake.project, access_token=token, base_url=fake.vertex_url, max_retries=0
        )
    )


def bedrock_client(fake: FakeBedrock, **auth: str) -> anthropic.AsyncAnthropicBedrock:
    return opened(
        anthropic.AsyncAnthropicBedrock(aws_region=fake.region, base_url=fake.base_url, max_retries=0, **auth)
    )


async def test_vertex_streams_with_the_model_in_the_path_and_the_version_in_the_body(vertex: FakeVertex) -> None:
    vertex.script(TextReply("Hello from Vertex"))
    client = vertex_client(vertex)
    async with client.messages.stream(model="claude-sonnet-4-5@20250929", max_tokens=50, messages=HELLO) as stream:
        text = "".join([t async for t in stream.text_stream])
    assert text == "Hello from Vertex"
    request = vertex.requests[0]
    assert request.path == (
        "/v1/projects/test-project/locations/us-east5/publishers/anthropic/models/"
        "claude-sonnet-4-5@20250929:streamRawPredict"
    )
    assert request.headers["authorization"] == "Bearer vertex-token" and request.error is None
    assert request.model == "claude-sonnet-4-5@20250929"


async def test_vertex_raw_predict_and_count_tokens(vertex: FakeVertex) -> None:
    vertex.script(TextReply("whole"))
    client = vertex_client(vertex)
    message = await client.messages.create(model="claude-sonnet-4-6", max_tokens=50, messages=HELLO)
    assert message.content[0].type == "text" and message.content[0].text == "whole"
    assert vertex.requests[0].path.endswith("/models/claude-sonnet-4-6:rawPredict")
    counted = await client.messages.count_tokens(model="claude-sonnet-4-6", messages=HELLO)
    assert counted.input_tokens > 0
    assert vertex.other_requests[-1].path.endswith("/models/count-tokens:rawPredict")


async def test_vertex_refuses_a_wrong_token_and_a_body_without_its_version(vertex: FakeVertex) -> None:
    with pytest.raises(anthropic.AuthenticationError):
        await vertex_client(vertex, token="stolen").messages.create(model="m", max_tokens=5, messages=HELLO)
    plain = opened(anthropic.AsyncAnthropic(api_key="vertex-token", base_url=vertex.vertex_url, max_retries=0))
    path = "/projects/test-project/locations/us-east5/publishers/anthropic/models/m:rawPredict"
    with pytest.raises(anthropic.BadRequestError, match=VERTEX_VERSION):
        await plain.post(
            path,
            body={"max_tokens": 5, "messages": HELLO},
            cast_to=object,
            options={"headers": {"Authorization": "Bearer vertex-token"}},
        )


async def test_bedrock_streams_event_stream_frames_with_an_api_key(bedrock: FakeBedrock) -> None:
    bedrock.script(TextReply("Hello from Bedrock"))
    client = bedrock_client(bedrock, api_key="bedrock-api-key")
    model = "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
    async with client.messages.stream(model=model, max_tokens=50, messages=HELLO) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "Hello from Bedrock" and final.stop_reason == "end_turn"
    request = bedrock.requests[0]
    assert request.path == f"/model/{model}/invoke-with-response-stream" and request.error is None
    assert request.headers["authorization"] == "Bearer bedrock-api-key" and bedrock.signed_requests == 0


async def test_bedrock_checks_sigv4_signatures(bedrock: FakeBedrock) -> None:
    bedrock.script(TextReply("signed"))
    signed = bedrock_client(bedrock, aws_access_key="AKIDFAKEBEDROCK", aws_secret_key="fake-secret-access-key")
    message = await signed.messages.create(model="anthropic.claude-haiku-4-5", max_tokens=5, messages=HELLO)
    assert message.content[0].type == "text" and bedrock.signed_requests == 1
    assert bedrock.requests[0].path == "/model/anthropic.claude-haiku-4-5/invoke"
    assert bedrock.requests[0].headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDFAKEBEDROCK/")
    forged = bedrock_client(bedrock, aws_access_key="AKIDFAKEBEDROCK", aws_secret_key="guessed")
    with pytest.raises(anthropic.PermissionDeniedError):
        await forged.messages.create(model="anthropic.claude-haiku-4-5", max_tokens=5, messages=HELLO)


async def test_bedrock_errors_are_aws_shaped_and_stream_errors_are_exception_frames(bedrock: FakeBedrock) -> None:
    client = bedrock_client(bedrock, api_key="bedrock-api-key")
    bedrock.script(HttpErrorReply(429, "rate_limit_error"))
    with pytest.raises(anthropic.RateLimitError):
        await client.messages.create(model="anthropic.claude-haiku-4-5", max_tokens=5, messages=HELLO)
    assert bedrock.requests[0].status == 429
    bedrock.script(MidStreamErrorReply(TextReply("partial answer that dies").text, "overloaded_error"))
    with pytest.raises(anthropic.APIStatusError) as caught:
        async with client.messages.stream(model="anthropic.claude-haiku-4-5", max_tokens=5, messages=HELLO) as stream:
            async for _ in stream:
                pass
    assert caught.value.type == "serviceUnavailableException"


async def test_bedrock_wants_its_version_in_the_body(bedrock: FakeBedrock) -> None:
    plain = opened(anthropic.AsyncAnthropic(api_key="bedrock-api-key", base_url=bedrock.base_url, max_retries=0))
    with pytest.raises(anthropic.BadRequestError, match=BEDROCK_VERSION):
        await plain.post("/model/m/invoke", body={"max_tokens": 5, "messages": HELLO}, cast_to=object)


def test_event_stream_frames_decode_with_botocore() -> None:
    from botocore.eventstream import EventStreamBuffer

    buffer = EventStreamBuffer()
    frame = event_stream_frame({":event-type": "chunk", ":message-type": "event"}, b'{"bytes":"e30="}')
    buffer.add_data(frame[:7])
    assert list(buffer) == []
    buffer.add_data(frame[7:])
    (message,) = list(buffer)
    assert message.headers[":event-type"] == "chunk" and message.payload == b'{"bytes":"e30="}'


async def test_foundry_takes_its_key_under_the_anthropic_path() -> None:
    async with FakeFoundry(api_key="foundry-key") as fake:
        fake.script(TextReply("Hello from Foundry"))
        client = opened(
            anthropic.AsyncAnthropicFoundry(api_key="foundry-key", base_url=fake.foundry_url, max_retries=0)
        )
        async with client.messages.stream(model="claude-sonnet-4-6", max_tokens=50, messages=HELLO) as stream:
            text = "".join([t async for t in stream.text_stream])
        assert text == "Hello from Foundry"
        assert fake.requests[0].path == "/anthropic/v1/messages"
        assert fake.requests[0].headers["api-key"] == "foundry-key"
        wrong = opened(anthropic.AsyncAnthropicFoundry(api_key="nope", base_url=fake.foundry_url, max_retries=0))
        with pytest.raises(anthropic.AuthenticationError):
            await wrong.messages.create(model="claude-sonnet-4-6", max_tokens=5, messages=HELLO)
