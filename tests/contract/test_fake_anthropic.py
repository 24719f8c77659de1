"""Contract tests: the fake Anthropic server against the real ``anthropic`` SDK (strict validation)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import anthropic
import httpx2
import pytest

from tests.fakes.anthropic_api import (
    ClaudeFaults,
    DisconnectReply,
    FakeAnthropic,
    HttpErrorReply,
    MidStreamErrorReply,
    RecordedRequest,
    StallReply,
    TextReply,
    ToolUseReply,
    TruncatedReply,
    WebSearchReply,
    estimate_input_tokens,
)

MODEL = "claude-sonnet-4-6"
HI = [{"role": "user", "content": "hi"}]
WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 3}
WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as server:
        yield server


@pytest.fixture
async def client(fake: FakeAnthropic) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        base_url=fake.base_url, api_key="test-key", max_retries=0, _strict_response_validation=True
    ) as c:
        yield c


async def test_text_stream_chunks_usage_and_recording(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    fake.script(
        TextReply(
            "Hello, world!",
            chunks=["Hello", ", ", "world!"],
            usage={"input_tokens": 40, "output_tokens": 7, "cache_read_input_tokens": 30},
        )
    )
    async with client.messages.stream(
        model=MODEL, max_tokens=100, system=[{"type": "text", "text": "Be nice."}], messages=HI
    ) as stream:
        chunks = [t async for t in stream.text_stream]
        final = await stream.get_final_message()
        assert stream.request_id is not None and stream.request_id.startswith("req_fake_")
    assert chunks == ["Hello", ", ", "world!"]
    assert final.content[0].type == "text" and final.content[0].text == "Hello, world!"
    assert final.stop_reason == "end_turn"
    assert final.model == MODEL
    assert final.usage.input_tokens == 40
    assert final.usage.output_tokens == 7
    assert final.usage.cache_read_input_tokens == 30
    assert final.usage.cache_creation_input_tokens == 0

    (req,) = await fake.wait_for_requests(1)
    assert req.path == "/v1/messages"
    assert req.headers["Authorization"] == "Bearer test-key"
    assert req.headers["anthropic-version"]
    assert req.body["stream"] is True
    assert req.system_text == "Be nice."
    assert req.last_user_text() == "hi"
    assert req.messages == HI
    assert req.status == 200
    assert fake.active_streams == 0


async def test_default_reply_and_default_chunking(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    async with client.messages.stream(model=MODEL, max_tokens=10, messages=HI) as stream:
        assert [t async for t in stream.text_stream] == ["O", "K"]
    fake.default_reply = TextReply("abcdefg")
    async with client.messages.stream(model=MODEL, max_tokens=10, messages=HI) as stream:
        chunks = [t async for t in stream.text_stream]
        final = await stream.get_final_message()
    assert chunks == ["abc", "de", "fg"]
    assert final.usage.input_tokens == 25 and final.usage.output_tokens == 12


async def test_thinking_block_with_signature_round_trips(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    fake.script(TextReply("Hi there!", thinking="The user greets me. I should greet back."))
    async with client.messages.stream(
        model=MODEL,
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "hello"}],
    ) as stream:
        texts = [t async for t in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(texts) == "Hi there!"
    thinking, text = final.content
    assert thinking.type == "thinking"
    assert thinking.thinking == "The user greets me. I should greet back."
    assert thinking.signature
    assert text.type == "text" and text.text == "Hi there!"
    assert final.usage.output_tokens_details is not None
    assert final.usage.output_tokens_details.thinking_tokens <= final.usage.output_tokens

    # Passing the block back unmodified is accepted; a tampered or unsigned one is a 400.
    history = [{"role": "user", "content": "hello"}, final.to_param(), {"role": "user", "content": "again"}]
    msg = await client.messages.create(model=MODEL, max_tokens=100, messages=history)
    assert msg.content[0].type == "text"

    tampered = {
        "role": "assistant",
        "content": [{"type": "thinking", "thinking": "edited", "signature": thinking.signature}],
    }
    with pytest.raises(anthropic.BadRequestError, match="signature"):
        await client.messages.create(
            model=MODEL, max_tokens=100, messages=[history[0], tampered, {"role": "user", "content": "x"}]
        )
    unsigned = {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm"}]}
    with pytest.raises(anthropic.BadRequestError, match="signature: Field required"):
        await client.messages.create(
            model=MODEL, max_tokens=100, messages=[history[0], unsigned, {"role": "user", "content": "x"}]
        )


async def test_tool_use_streamed_then_tool_result_accepted(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.script(
        ToolUseReply(
            "get_weather",
            {"city": "Paris", "unit": "c"},
            text_before="Let me check the weather.",
            tool_use_id="toolu_fake_A",
        ),
        TextReply("It is sunny."),
    )
    tools = [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        }
    ]
    partial_json: list[str] = []
    async with client.messages.stream(model=MODEL, max_tokens=100, tools=tools, messages=HI) as stream:
        async for event in stream:
            if event.type == "input_json":
                partial_json.append(event.partial_json)
        final = await stream.get_final_message()
    assert final.stop_reason == "tool_use"
    text, tool_use = final.content
    assert text.type == "text" and text.text == "Let me check the weather."
    assert tool_use.type == "tool_use"
    assert tool_use.id == "toolu_fake_A"
    assert tool_use.name == "get_weather"
    assert tool_use.input == {"city": "Paris", "unit": "c"}
    assert len([p for p in partial_json if p]) >= 2  # the input really arrived in pieces

    history = [
        *HI,
        final.to_param(),
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_fake_A", "content": "sunny"}],
        },
    ]
    msg = await client.messages.create(model=MODEL, max_tokens=100, tools=tools, messages=history)
    assert msg.content[0].type == "text" and msg.content[0].text == "It is sunny."
    reqs = await fake.wait_for_requests(2)
    assert reqs[1].tool_results()[0]["tool_use_id"] == "toolu_fake_A"
    assert reqs[1].last_user_text() == ""


async def test_parallel_tool_use_non_streaming(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    fake.script(ToolUseReply("a", {"x": 1}, parallel=[("b", {"y": 2})], thinking="plan"))
    msg = await client.messages.create(model=MODEL, max_tokens=100, messages=HI)
    assert msg.stop_reason == "tool_use"
    assert [b.type for b in msg.content] == ["thinking", "tool_use", "tool_use"]
    assert msg.content[1].input == {"x": 1} and msg.content[2].input == {"y": 2}
    assert msg.content[1].id != msg.content[2].id


async def test_http_529_is_retried_by_sdk_then_succeeds(fake: FakeAnthropic) -> None:
    fake.script(
        HttpErrorReply(529, "overloaded_error", retry_after_ms="1"),
        HttpErrorReply(529, "overloaded_error", retry_after_ms="1"),
        TextReply("finally"),
    )
    async with (
        anthropic.AsyncAnthropic(
            base_url=fake.base_url, api_key="test-key", max_retries=2, _strict_response_validation=True
        ) as client,
        client.messages.stream(model=MODEL, max_tokens=100, messages=HI) as stream,
    ):
        text = await stream.get_final_text()
    assert text == "finally"
    assert [r.headers["x-stainless-retry-count"] for r in fake.requests] == ["0", "1", "2"]
    assert [r.status for r in fake.requests] == [529, 529, 200]
    assert fake.queued_replies == 0


async def test_http_error_body_headers_and_no_retry(fake: FakeAnthropic) -> None:
    fake.script(HttpErrorReply(429, "rate_limit_error", "slow down", should_retry="false"))
    async with anthropic.AsyncAnthropic(
        base_url=fake.base_url, api_key="test-key", max_retries=2, _strict_response_validation=True
    ) as client:
        with pytest.raises(anthropic.RateLimitError) as info:
            await client.messages.create(model=MODEL, max_tokens=100, messages=HI)
    err = info.value
    assert err.status_code == 429
    assert err.type == "rate_limit_error"
    assert err.api_message == "slow down"
    assert err.request_id is not None and err.request_id.startswith("req_fake_")
    assert isinstance(err.body, dict) and err.body["request_id"] == err.request_id
    assert len(fake.requests) == 1


async def test_mid_stream_error_raises_status_200_overloaded(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.script(MidStreamErrorReply("Partial answer"))
    seen: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as info:
        async with client.messages.stream(model=MODEL, max_tokens=100, messages=HI) as stream:
            async for t in stream.text_stream:
                seen.append(t)
    err = info.value
    assert not isinstance(err, anthropic.OverloadedError)
    assert err.status_code == 200
    assert err.type == "overloaded_error"
    assert err.request_id is not None and err.request_id.startswith("req_fake_")
    assert "".join(seen) == "Partial answer"
    assert stream.current_message_snapshot.content[0].text == "Partial answer"
    assert len(fake.requests) == 1


async def test_truncated_stream_ends_quietly_with_stop_reason_none(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.script(TruncatedReply("Cut off mid"))
    async with client.messages.stream(model=MODEL, max_tokens=100, messages=HI) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "Cut off mid"
    assert final.stop_reason is None


async def test_disconnect_raises_remote_protocol_error(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    fake.script(DisconnectReply("Hello there"))
    seen: list[str] = []
    with pytest.raises(httpx2.RemoteProtocolError):  # raw httpx2 error, NOT wrapped in APIConnectionError
        async with client.messages.stream(model=MODEL, max_tokens=100, messages=HI) as stream:
            async for t in stream.text_stream:
                seen.append(t)
    assert "".join(seen) == "Hello there"


async def test_stall_hits_client_read_timeout_mid_stream(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    fake.script(StallReply("Hello", stall_s=0.6))
    seen: list[str] = []
    with pytest.raises(httpx2.ReadTimeout):  # raw httpx2 error, NOT anthropic.APITimeoutError
        async with client.messages.stream(
            model=MODEL, max_tokens=100, messages=HI, timeout=httpx2.Timeout(5.0, read=0.15)
        ) as stream:
            async for t in stream.text_stream:
                seen.append(t)
    assert seen == ["Hello"]


async def test_stall_shorter_than_timeout_finishes_with_late_text(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.script(StallReply("Hello ", stall_s=0.05))
    async with client.messages.stream(model=MODEL, max_tokens=100, messages=HI, timeout=2.0) as stream:
        seen = [t async for t in stream.text_stream]
        final = await stream.get_final_message()
    assert seen == ["Hello ", "(late)"]
    assert final.stop_reason == "end_turn"


async def test_gate_holds_stream_after_first_delta(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    gate = asyncio.Event()
    fake.script(TextReply("one two three", chunks=["one", " two", " three"], gate=gate))
    seen: list[str] = []
    first = asyncio.Event()

    async def consume() -> str:
        async with client.messages.stream(model=MODEL, max_tokens=100, messages=HI) as stream:
            async for t in stream.text_stream:
                seen.append(t)
                first.set()
            return await stream.get_final_text()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 2)
    await asyncio.sleep(0.05)
    assert seen == ["one"]
    assert fake.active_streams == 1
    gate.set()
    assert await asyncio.wait_for(task, 2) == "one two three"
    assert seen == ["one", " two", " three"]
    assert fake.active_streams == 0


async def test_concurrent_streams_are_counted(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    gate = asyncio.Event()
    fake.script(TextReply("a b", gate=gate), TextReply("c d", gate=gate))

    async def one() -> str:
        async with client.messages.stream(model=MODEL, max_tokens=10, messages=HI) as stream:
            return await stream.get_final_text()

    tasks = [asyncio.create_task(one()) for _ in range(2)]
    await fake.wait_for_requests(2)
    for _ in range(100):
        if fake.active_streams == 2:
            break
        await asyncio.sleep(0.01)
    assert fake.active_streams == 2
    gate.set()
    assert sorted(await asyncio.gather(*tasks)) == ["a b", "c d"]
    assert fake.active_streams == 0
    assert fake.max_active_streams == 2


async def test_chunk_and_first_byte_delays(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    fake.script(TextReply("abc", chunk_delay_s=0.02, first_byte_delay_s=0.02, model="claude-haiku-4-5"))
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    async with client.messages.stream(model=MODEL, max_tokens=10, messages=HI) as stream:
        assert [t async for t in stream.text_stream] == ["a", "b", "c"]
        final = await stream.get_final_message()
    assert loop.time() - t0 >= 0.06
    assert final.model == "claude-haiku-4-5"


async def test_non_streaming_json_and_callable_reply(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    def echo(req: RecordedRequest) -> TextReply:
        return TextReply(f"you said {req.last_user_text()}", stop_reason="max_tokens")

    async def async_echo(req: RecordedRequest) -> TextReply:
        return TextReply(req.system_text)

    fake.script(echo, async_echo)
    msg = await client.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=[{"role": "user", "content": [{"type": "text", "text": "ping"}]}],
    )
    assert msg.content[0].text == "you said ping"
    assert msg.stop_reason == "max_tokens"
    assert msg.usage.input_tokens == 25 and msg.usage.output_tokens == 12
    assert msg._request_id is not None and msg._request_id.startswith("req_fake_")
    msg = await client.messages.create(model=MODEL, max_tokens=100, system="sys prompt", messages=HI)
    assert msg.content[0].text == "sys prompt"
    assert fake.requests[0].body.get("stream") is None


async def test_temperature_rejected(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.messages.create(model=MODEL, max_tokens=100, messages=HI, extra_body={"temperature": 0.2})
    assert info.value.type == "invalid_request_error"
    assert info.value.api_message == "temperature: Extra inputs are not permitted"
    assert fake.requests[0].error == "temperature: Extra inputs are not permitted"
    assert fake.requests[0].reply is None


async def test_unpaired_tool_use_rejected(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    tool_use = {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}
    bad_histories = [
        [*HI, {"role": "assistant", "content": [tool_use]}, {"role": "user", "content": "no result"}],
        [*HI, {"role": "assistant", "content": [tool_use]}],
        [
            *HI,
            {"role": "assistant", "content": [tool_use]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "text first"},
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "r"},
                ],
            },
        ],
    ]
    for history in bad_histories:
        with pytest.raises(anthropic.BadRequestError, match="tool_use ids were found without tool_result blocks"):
            await client.messages.create(model=MODEL, max_tokens=100, messages=history)
    stray = [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_x", "content": "r"}]}]
    with pytest.raises(anthropic.BadRequestError, match="unexpected `tool_use_id`"):
        await client.messages.create(model=MODEL, max_tokens=100, messages=stray)
    assert fake.queued_replies == 0 and all(r.reply is None for r in fake.requests)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"messages": []}, "at least one message"),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, 'first message must use the "user" role'),
        ({"messages": [{"role": "user", "content": ""}]}, "non-empty content"),
        ({"messages": [{"role": "user", "content": [{"text": "no type"}]}]}, "type: Field required"),
        ({"thinking": {"type": "enabled", "budget_tokens": 500}}, "greater than or equal to 1024"),
        ({"thinking": {"type": "enabled", "budget_tokens": 2000}}, "`max_tokens` must be greater"),
        (
            {"system": [{"type": "text", "text": f"s{i}", "cache_control": {"type": "ephemeral"}} for i in range(5)]},
            "A maximum of 4 blocks with cache_control may be provided. Found 5.",
        ),
    ],
)
async def test_body_validation(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic, kwargs: dict[str, object], message: str
) -> None:
    params: dict[str, object] = {"model": MODEL, "max_tokens": 1500, "messages": HI, **kwargs}
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.messages.create(**params)  # type: ignore[call-overload]
    assert message in str(info.value.api_message)


async def test_system_role_message_and_cache_control_within_limit(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    cc = {"type": "ephemeral"}
    msg = await client.messages.create(
        model=MODEL,
        max_tokens=0,
        system=[{"type": "text", "text": "s", "cache_control": cc}],
        cache_control=cc,
        messages=[
            {"role": "system", "content": "mid-conversation note"},
            {"role": "user", "content": [{"type": "text", "text": "a", "cache_control": cc}]},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": [{"type": "text", "text": "c", "cache_control": cc}]},
        ],
    )
    assert msg.content[0].text == "OK"


async def test_auth_and_version_header_required(fake: FakeAnthropic) -> None:
    async with anthropic.AsyncAnthropic(
        base_url=fake.base_url, api_key="wrong", max_retries=0, _strict_response_validation=True
    ) as client:
        with pytest.raises(anthropic.AuthenticationError):
            await client.messages.create(model=MODEL, max_tokens=10, messages=HI)
    async with httpx2.AsyncClient(base_url=fake.base_url) as http:
        body = {"model": MODEL, "max_tokens": 10, "messages": HI}
        resp = await http.post("/v1/messages", json=body, headers={"authorization": "Bearer test-key"})
        assert resp.status_code == 400
        assert "anthropic-version" in resp.json()["error"]["message"]
        resp = await http.post(
            "/v1/messages",
            content=b"{not json",
            headers={"authorization": "Bearer test-key", "anthropic-version": "2026-10-21"},
        )
        assert resp.status_code == 400
        assert resp.headers["request-id"].startswith("req_fake_")
    assert len(fake.requests) == 3
    assert len({r.headers.get("x-unused", "") for r in fake.requests}) == 1


async def test_count_tokens(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    messages = [{"role": "user", "content": "x" * 400}]
    result = await client.messages.count_tokens(model=MODEL, system="y" * 40, messages=messages)
    assert result.input_tokens == 110
    assert result.input_tokens == estimate_input_tokens({"system": "y" * 40, "messages": messages})
    small = await client.messages.count_tokens(model=MODEL, messages=HI)
    assert small.input_tokens == 1
    assert fake.other_requests[0].path == "/v1/messages/count_tokens"
    assert fake.requests == []


async def test_models_list_pagination_and_retrieve(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    ids = [m.id async for m in client.models.list(limit=2)]
    assert ids == [
        "claude-sonnet-5-5",
        "claude-haiku-5-5",
        "claude-opus-5-5",
        "claude-sonnet-4-6",
        "claude-haiku-4-5",
    ]
    assert [r.query.get("after_id") for r in fake.other_requests] == [
        None,
        "claude-haiku-5-5",
        "claude-sonnet-4-6",
    ]
    page = await client.models.list(limit=2, after_id="claude-haiku-5-5")
    assert [m.id for m in page.data] == ["claude-opus-5-5", "claude-sonnet-4-6"]
    assert page.has_more is True and page.first_id == "claude-opus-5-5" and page.last_id == "claude-sonnet-4-6"

    info = await client.models.retrieve("claude-haiku-4-5")
    assert info.max_input_tokens == 200_000 and info.max_tokens == 64_000 and info.lifecycle == "active"
    with pytest.raises(anthropic.NotFoundError):
        await client.models.retrieve("claude-nope")

    fake.models = [fake.models[0]]
    only = [m.id async for m in client.models.list()]
    assert only == ["claude-sonnet-5-5"]


async def test_wait_for_requests_times_out(fake: FakeAnthropic) -> None:
    with pytest.raises(TimeoutError, match="expected 1"):
        await fake.wait_for_requests(1, timeout=0.05)


async def test_stop_releases_a_held_stream(client: anthropic.AsyncAnthropic, fake: FakeAnthropic) -> None:
    fake.script(TextReply("never finished", gate=asyncio.Event()))
    with pytest.raises(httpx2.RemoteProtocolError):
        async with client.messages.stream(model=MODEL, max_tokens=10, messages=HI) as stream:
            async for _ in stream.text_stream:
                await fake.stop()
    assert fake.active_streams == 0


async def test_timeout_before_response_headers_is_api_timeout_error(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    # Unlike a mid-stream stall, a read timeout while waiting for the status line is wrapped (and retried).
    fake.script(TextReply("slow", first_byte_delay_s=0.5))
    with pytest.raises(anthropic.APITimeoutError):
        async with client.messages.stream(
            model=MODEL, max_tokens=10, messages=HI, timeout=httpx2.Timeout(5.0, read=0.1)
        ) as stream:
            await stream.get_final_text()


async def test_non_streaming_disconnect_and_stall(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    fake.script(DisconnectReply("x"), StallReply("a", stall_s=0.02), MidStreamErrorReply("p"))
    with pytest.raises(anthropic.APIConnectionError):
        await client.messages.create(model=MODEL, max_tokens=10, messages=HI)
    msg = await client.messages.create(model=MODEL, max_tokens=10, messages=HI)
    assert msg.content[0].text == "a(late)"
    with pytest.raises(anthropic.OverloadedError):
        await client.messages.create(model=MODEL, max_tokens=10, messages=HI)


async def test_web_search_reply_streams_server_blocks_and_usage(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.script(WebSearchReply("claude slack bot"), TextReply("Follow-up."))
    tools = [WEATHER_TOOL, WEB_SEARCH]
    started: list[str] = []
    partial_json: list[str] = []
    async with client.messages.stream(model=MODEL, max_tokens=100, tools=tools, messages=HI) as stream:
        async for event in stream:
            if event.type == "content_block_start":
                started.append(event.content_block.type)
            elif event.type == "input_json":
                partial_json.append(event.partial_json)
        final = await stream.get_final_message()
    assert started == ["server_tool_use", "web_search_tool_result", "text"]
    assert len([p for p in partial_json if p]) >= 2
    use, result, text = final.content
    assert use.type == "server_tool_use" and use.name == "web_search"
    assert use.id.startswith("srvtoolu_") and use.input == {"query": "claude slack bot"}
    assert result.type == "web_search_tool_result" and result.tool_use_id == use.id
    assert isinstance(result.content, list) and len(result.content) == 2
    assert [r.type for r in result.content] == ["web_search_result"] * 2
    assert result.content[0].encrypted_content == "ZmFrZQ==" and result.content[0].page_age is None
    assert result.content[0].url.startswith("https://")
    assert text.type == "text" and text.text == "Here is what I found."
    assert final.stop_reason == "end_turn"
    assert final.usage.server_tool_use is not None
    assert final.usage.server_tool_use.web_search_requests == 1
    assert final.usage.server_tool_use.web_fetch_requests == 0
    (req,) = await fake.wait_for_requests(1)
    assert req.web_search_tool == WEB_SEARCH and req.server_tools == [WEB_SEARCH]

    # Passing the server blocks back (no tool_result needed) validates.
    history = [*HI, final.to_param(), {"role": "user", "content": "thanks"}]
    msg = await client.messages.create(model=MODEL, max_tokens=100, tools=tools, messages=history)
    assert msg.content[0].type == "text" and msg.content[0].text == "Follow-up."
    # ... also without tools in the follow-up, and as plain dicts
    as_dicts = [*HI, {"role": "assistant", "content": [b.to_dict() for b in final.content]}, history[2]]
    await client.messages.create(model=MODEL, max_tokens=100, messages=as_dicts)


async def test_web_search_reply_non_streaming_custom_results(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    results = [{"title": "Only", "url": "https://example.net/", "page_age": "2 days ago"}]
    fake.script(WebSearchReply("q", results, "Done.", usage={"output_tokens": 30}, tool_use_id="srvtoolu_X"))
    tool = {"type": "web_search_20260318", "name": "web_search", "allowed_domains": ["example.net"]}
    msg = await client.messages.create(model=MODEL, max_tokens=100, tools=[tool], messages=HI)
    assert [b.type for b in msg.content] == ["server_tool_use", "web_search_tool_result", "text"]
    assert msg.content[0].id == "srvtoolu_X" and msg.content[1].tool_use_id == "srvtoolu_X"
    assert msg.content[1].content[0].page_age == "2 days ago"
    assert msg.usage.output_tokens == 30
    assert msg.usage.server_tool_use is not None and msg.usage.server_tool_use.web_search_requests == 1


async def test_web_search_reply_without_web_search_tool_is_400(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.script(WebSearchReply("q"))
    with pytest.raises(anthropic.BadRequestError) as info:
        async with client.messages.stream(model=MODEL, max_tokens=100, tools=[WEATHER_TOOL], messages=HI) as stream:
            await stream.get_final_message()
    assert info.value.api_message == "web_search tool not enabled in this request"
    assert fake.requests[0].reply is None and fake.requests[0].status == 400
    assert fake.queued_replies == 1  # the rejection did not consume the scripted reply
    msg = await client.messages.create(model=MODEL, max_tokens=100, tools=[WEB_SEARCH], messages=HI)
    assert msg.content[0].type == "server_tool_use"
    assert fake.queued_replies == 0


@pytest.mark.parametrize(
    ("tool", "message"),
    [
        ({"type": "web_search_20990101", "name": "web_search"}, "Input tag 'web_search_20990101'"),
        ({"type": "web_search_20250305", "name": "search"}, "tools.0.web_search_20250305.name: Input should be"),
        ({"type": "web_search_20250305"}, "tools.0.web_search_20250305.name: Input should be 'web_search'"),
        ({"type": "web_search_20250305", "name": "web_search", "max_uses": 0}, "max_uses"),
        ({"type": "web_search_20250305", "name": "web_search", "bogus": 1}, "bogus: Extra inputs"),
        (
            {"type": "web_search_20250305", "name": "web_search", "allowed_domains": ["a"], "blocked_domains": ["b"]},
            "cannot specify both",
        ),
        ({"type": "web_search_20250305", "name": "web_search", "user_location": {"city": "X"}}, "approximate"),
        ({"type": "custom", "name": "f"}, "input_schema: Field required"),
    ],
)
async def test_server_tool_validation(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic, tool: dict[str, object], message: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.messages.create(model=MODEL, max_tokens=100, tools=[tool], messages=HI)  # type: ignore[list-item]
    assert info.value.type == "invalid_request_error"
    assert message in str(info.value.api_message)


async def test_valid_server_tool_variants_accepted(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    tools = [
        WEATHER_TOOL,
        {
            "type": "web_search_20260209",
            "name": "web_search",
            "max_uses": 5,
            "blocked_domains": ["example.com"],
            "user_location": {"type": "approximate", "city": "Paris", "country": "FR"},
            "cache_control": {"type": "ephemeral"},
        },
        {"type": "web_fetch_20250910", "name": "web_fetch"},
    ]
    msg = await client.messages.create(model=MODEL, max_tokens=100, tools=tools, messages=HI)  # type: ignore[arg-type]
    assert msg.content[0].type == "text"
    with pytest.raises(anthropic.BadRequestError, match="Tool names must be unique"):
        await client.messages.create(
            model=MODEL,
            max_tokens=100,
            tools=[WEB_SEARCH, {"name": "web_search", "input_schema": {"type": "object"}}],  # type: ignore[list-item]
            messages=HI,
        )


async def test_server_block_history_validation(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    use = {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "q"}}
    result = {
        "type": "web_search_tool_result",
        "tool_use_id": "srvtoolu_1",
        "content": [{"type": "web_search_result", "title": "t", "url": "https://e.x", "encrypted_content": "e"}],
    }
    error_result = {**result, "content": {"type": "web_search_tool_result_error", "error_code": "unavailable"}}
    ok = [
        [*HI, {"role": "assistant", "content": [use, result, {"type": "text", "text": "a"}]}, *HI],
        [*HI, {"role": "assistant", "content": [use, error_result]}, *HI],
        [*HI, {"role": "assistant", "content": [use]}],  # paused turn, continued as-is
    ]
    for history in ok:
        await client.messages.create(model=MODEL, max_tokens=100, messages=history)  # type: ignore[arg-type]
    orphan = {**result, "tool_use_id": "srvtoolu_other"}
    with pytest.raises(anthropic.BadRequestError, match="no preceding `server_tool_use`"):
        await client.messages.create(
            model=MODEL,
            max_tokens=100,
            messages=[*HI, {"role": "assistant", "content": [use, orphan]}, *HI],  # type: ignore[list-item]
        )
    with pytest.raises(anthropic.BadRequestError, match="only allowed in assistant messages"):
        await client.messages.create(model=MODEL, max_tokens=100, messages=[{"role": "user", "content": [use]}])  # type: ignore[list-item]
    stray = {"type": "tool_result", "tool_use_id": "srvtoolu_1", "content": "r"}
    with pytest.raises(anthropic.BadRequestError, match="unexpected `tool_use_id`"):
        await client.messages.create(
            model=MODEL,
            max_tokens=100,
            messages=[*HI, {"role": "assistant", "content": [use, result]}, {"role": "user", "content": [stray]}],  # type: ignore[list-item]
        )


async def test_thinking_must_precede_tool_use_in_tool_loop(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake.script(
        ToolUseReply(
            "get_weather",
            {"city": "Paris"},
            thinking="I need the weather for Paris and Rome.",
            parallel=[("get_weather", {"city": "Rome"})],
        ),
        TextReply("Both sunny."),
    )
    thinking = {"type": "enabled", "budget_tokens": 1024}
    async with client.messages.stream(
        model=MODEL, max_tokens=2048, thinking=thinking, tools=[WEATHER_TOOL], messages=HI
    ) as stream:
        final = await stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "tool_use", "tool_use"]
    uses = [b for b in final.content if b.type == "tool_use"]
    results = [{"type": "tool_result", "tool_use_id": u.id, "content": "sunny"} for u in uses]
    tool_turn = {"role": "user", "content": results}

    # Passed back unmodified (thinking first, with its signature): accepted.
    history = [*HI, final.to_param(), tool_turn]
    msg = await client.messages.create(
        model=MODEL, max_tokens=2048, thinking=thinking, tools=[WEATHER_TOOL], messages=history
    )
    assert msg.content[0].text == "Both sunny."
    # adaptive thinking too, and redacted_thinking counts as a thinking block
    redacted = {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "RU5D"}, *uses]}
    await client.messages.create(
        model=MODEL,
        max_tokens=2048,
        thinking={"type": "adaptive"},
        tools=[WEATHER_TOOL],
        messages=[*HI, redacted, tool_turn],
    )

    # The thinking block dropped: 400 like the real API.
    dropped = {"role": "assistant", "content": uses}
    for mode in (thinking, {"type": "adaptive"}):
        with pytest.raises(anthropic.BadRequestError) as info:
            await client.messages.create(
                model=MODEL, max_tokens=2048, thinking=mode, tools=[WEATHER_TOOL], messages=[*HI, dropped, tool_turn]
            )
        assert "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found `tool_use`" in str(
            info.value.api_message
        )
    # ... but fine with thinking off or disabled
    await client.messages.create(model=MODEL, max_tokens=100, tools=[WEATHER_TOOL], messages=[*HI, dropped, tool_turn])
    await client.messages.create(
        model=MODEL,
        max_tokens=100,
        thinking={"type": "disabled"},
        tools=[WEATHER_TOOL],
        messages=[*HI, dropped, tool_turn],
    )
    # Only the last assistant turn of the loop is checked: an older tool turn without thinking is fine.
    later = [
        *HI,
        dropped,
        tool_turn,
        {"role": "assistant", "content": "Both sunny."},
        {"role": "user", "content": "ok"},
    ]
    await client.messages.create(model=MODEL, max_tokens=2048, thinking=thinking, messages=later)


@pytest.mark.parametrize(
    ("share", "outcome"),
    [
        ({"http_429": 1.0}, anthropic.RateLimitError),
        ({"http_529": 1.0}, anthropic.InternalServerError),
        ({"error_event": 1.0}, anthropic.APIStatusError),
        ({"cut_stream": 1.0}, None),  # truncated (ends quietly) or disconnected (raises), by a seeded coin
    ],
)
async def test_faults_replace_replies_at_their_share(
    fake: FakeAnthropic, client: anthropic.AsyncAnthropic, share: dict[str, float], outcome: type[Exception] | None
) -> None:
    fake.faults = ClaudeFaults(**share, retry_after_s="0")  # type: ignore[arg-type]
    fake.default_reply = TextReply("The whole answer, never seen.")
    try:
        async with client.messages.stream(model=MODEL, max_tokens=100, messages=HI) as stream:
            text = "".join([t async for t in stream.text_stream])
        raised: type[Exception] | None = None
    except anthropic.APIError as error:
        raised, text = type(error), ""
    if outcome is not None:
        assert raised is not None and issubclass(raised, outcome)
    assert "never seen" not in text
    assert sum(fake.injected.values()) == 1 and next(iter(fake.injected)) == next(iter(share))


async def test_each_stream_says_how_it_ended(fake: FakeAnthropic, client: anthropic.AsyncAnthropic) -> None:
    fake.script(
        TextReply("Complete."),
        HttpErrorReply(529, "overloaded_error"),  # never streamed
        MidStreamErrorReply("Sixteen chars..."),
        TruncatedReply("Cut off"),
        DisconnectReply("Nine char"),
    )
    for _ in range(5):
        with contextlib.suppress(anthropic.APIError, httpx2.HTTPError):
            async with client.messages.stream(model=MODEL, max_tokens=100, messages=HI) as stream:
                async for _event in stream:
                    pass
    assert [r.ended for r in fake.requests] == ["complete", None, "error_event", "truncated", "disconnected"]


async def test_a_client_that_goes_away_mid_stream_is_told_apart(fake: FakeAnthropic) -> None:
    words = [f"w{n:02d} " for n in range(20)]
    fake.script(TextReply("".join(words), chunks=words, chunk_delay_s=0.05))
    async with (
        anthropic.AsyncAnthropic(base_url=fake.base_url, api_key="test-key", max_retries=0) as client,
        client.messages.stream(model=MODEL, max_tokens=100, messages=HI) as stream,
    ):
        async for event in stream:
            if event.type == "text" and event.snapshot.count("w") >= 3:
                break  # the client closes the stream mid-way, as a process does when it dies
    await asyncio.sleep(0.3)  # the fake notices at its next write
    [request] = fake.requests
    assert request.ended == "client_gone"
    assert request.reported_usage is not None and request.reported_usage["output_tokens"] == 1  # message_start's
