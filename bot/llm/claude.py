"""The language-model port over the Anthropic SDK's streaming API: retries, fallbacks, plain-language failures."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, cast

import anthropic
import httpx2

from bot import logs
from bot.core import texts
from bot.core.conversation import (
    Block,
    MediaBlock,
    RedactedThinkingBlock,
    ServerToolBlock,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
    ToolResultBlock,
    Turn,
)
from bot.core.errors import ModelUnavailable
from bot.core.estimates import WEB_SEARCH_MAX_USES
from bot.core.events import (
    AttemptFailed,
    AttemptRestarted,
    ModelEvent,
    ModelTurnComplete,
    TextDelta,
    ThinkingStarted,
    ToolRunning,
    Usage,
    UsageSoFar,
)
from bot.core.i18n import tr
from bot.core.ports import Attachment, ModelLimits, ModelRequest
from bot.core.thinking import fit_to_model, refit
from bot.llm.providers import CAPABILITIES, Capabilities, ModelMap, Provider, shape_for

log = logging.getLogger(__name__)

WEB_SEARCH_TOOL_TYPE = "web_search_20250305"
_LIMITS_TTL_S = 3600.0
_LIMITS_RETRY_S = 60.0
# The API reports output tokens only when a call ends; a stopped call's output is estimated from what it wrote.
_CHARS_PER_TOKEN = 4
# Statuses the SDK has already retried (max_retries) before we see them: worth a fallback model, not a 4th try.
_OVERLOADED_STATUSES = {429, 500, 502, 503, 504, 529}
# Error types that arrive as an `event: error` inside a 200 stream; the SDK raises them and never retries.
# Bedrock's event stream names them after its exception frames (botocore's bedrock-runtime ResponseStream shape).
TRANSIENT_STREAM_ERRORS = frozenset({"overloaded_error", "api_error", "rate_limit_error", "timeout_error",
    "throttlingException", "serviceUnavailableException", "internalServerException", "modelStreamErrorException",
    "modelTimeoutException"})  # fmt: skip
_EFFORT_LEVELS = ("low", "medium", "high", "xhigh", "max")


# Thinking blocks cannot carry cache_control [reference §5: the list of markable blocks leaves them out].
_UNCACHEABLE_BLOCKS = {"thinking", "redacted_thinking"}


class StreamCutShort(Exception):
    """The stream ended without message_stop: the SDK returns quietly, but the answer is incomplete."""


@dataclasses.dataclass
class _Progress:
    """One attempt so far: its first usage report (message_start), and what it has written (text, thinking, tool
    input) for an estimate of its output until the API reports it."""

    started: UsageSoFar | None = None
    written_chars: int = 0


# The settings an admin checks when a provider refuses the bot's credentials.
_CREDENTIAL_SETTINGS = {
    "anthropic": "ANTHROPIC_API_KEY",
    "bedrock": "AWS_BEARER_TOKEN_BEDROCK or the AWS credentials",
    "vertex": "VERTEX_ACCESS_TOKEN or the Google application-default credentials",
    "foundry": "ANTHROPIC_FOUNDRY_API_KEY",
}


def credential_settings(provider: str) -> str:
    """What an admin checks when `provider` refuses the bot's credentials (setting names are not translated)."""
    return _CREDENTIAL_SETTINGS.get(provider, "ANTHROPIC_API_KEY")


def describe_status(error: anthropic.APIStatusError, provider: str = "anthropic") -> str:
    kind = error.type or ""
    if error.status_code == 529 or kind == "overloaded_error":
        return tr(texts.MODEL_OVERLOADED)
    if error.status_code == 429 or kind == "rate_limit_error":
        return tr(texts.MODEL_RATE_LIMITED)
    if error.status_code in (401, 403):
        return tr(texts.MODEL_BAD_CREDENTIALS, settings=credential_settings(provider))
    if error.status_code == 404:
        return tr(texts.MODEL_NOT_FOUND)
    if error.status_code in (400, 413, 422):
        return tr(texts.MODEL_BAD_REQUEST)
    return tr(texts.MODEL_INTERNAL_ERROR)


class ClaudeModel:
    """Implements core.ports.LanguageModel; SDK objects never leave this module."""

    def __init__(
        self,
        client: anthropic.AsyncAnthropic,
        *,
        provider: str = "anthropic",
        capabilities: Capabilities | None = None,
        models: ModelMap | None = None,
        max_attempts: int = 3,
        backoff_base_s: float = 0.5,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self._client = client
        self.provider = provider
        self.capabilities = capabilities or CAPABILITIES[provider]
        self._models = models or ModelMap()
        self._max_attempts = max_attempts
        self._backoff_base_s = backoff_base_s
        self._limits: dict[str, tuple[ModelLimits | None, float]] = {}
        self._on_error = on_error or (lambda error_type: None)  # told of every failed attempt, e.g. for metrics

    @classmethod
    def for_provider(
        cls, provider: Provider, *, max_attempts: int, backoff_base_s: float, on_error: Callable[[str], None]
    ) -> ClaudeModel:
        # Bedrock's and Vertex's clients are not AsyncAnthropic subclasses, but offer the same `messages` resource.
        return cls(
            cast(anthropic.AsyncAnthropic, provider.client),
            provider=provider.name,
            capabilities=provider.capabilities,
            models=provider.models,
            max_attempts=max_attempts,
            backoff_base_s=backoff_base_s,
            on_error=on_error,
        )

    async def close(self) -> None:
        await self._client.close()

    async def limits(self, model: str) -> ModelLimits | None:
        """The Models API's facts about `model`, cached for an hour (a failure is remembered for a minute)."""
        if not self.capabilities.models_api:
            return None  # the provider has no Models API: the core keeps its defaults
        now = time.monotonic()
        cached = self._limits.get(model)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            info = await self._client.models.retrieve(model)
        except (anthropic.APIError, httpx2.HTTPError) as error:
            log.warning("could not read the limits of %s from the Models API: %s", model, type(error).__name__)
            self._limits[model] = (None, now + _LIMITS_RETRY_S)
            return None
        limits = _limits_of(info)
        self._limits[model] = (limits, now + _LIMITS_TTL_S)
        return limits

    async def count_tokens(self, request: ModelRequest) -> int:
        """The provider's exact count for the request as it would be sent (count_tokens is free of charge)."""
        if not self.capabilities.count_tokens:
            raise ModelUnavailable(tr(texts.MODEL_NO_TOKEN_COUNT))
        # As it would be sent: the context window measures requests not yet planned for their model.
        request = fit_to_model(request, request.model, await self.limits(request.model))
        params = self.provider_params(request, request.model)
        params.pop("max_tokens", None)
        params.pop("metadata", None)
        try:
            counted = await self._client.messages.count_tokens(**params)
        except anthropic.APIStatusError as error:
            raise ModelUnavailable(describe_status(error, self.provider), request_id=error.request_id) from error
        except (anthropic.APIConnectionError, httpx2.HTTPError) as error:
            raise ModelUnavailable(tr(texts.MODEL_CONNECTION_DROPS)) from error
        return counted.input_tokens

    async def fitted(self, request: ModelRequest, model: str) -> ModelRequest:
        """The request re-planned for `model` (thinking, effort, max_tokens), from what the Models API says of it."""
        return refit(request, model, await self.limits(model))

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        models = [request.model, *request.fallback_models]
        model_index = 0
        last_error: ModelUnavailable | None = None
        for attempt in range(self._max_attempts):
            model = models[model_index]
            shown_text = False
            try:
                # Planned for the model that takes this attempt: an overload fallback gets its own settings.
                async for event in self._one_attempt(await self.fitted(request, model), model):
                    if isinstance(event, TextDelta):
                        shown_text = True
                    yield event
                return
            except anthropic.APIStatusError as error:
                self._on_error(error.type or f"http_{error.status_code}")
                last_error = ModelUnavailable(describe_status(error, self.provider), request_id=error.request_id)
                mid_stream = error.status_code == 200
                if mid_stream and error.type not in TRANSIENT_STREAM_ERRORS:
                    raise last_error from error
                if not mid_stream:
                    # The SDK already retried this status; only a fallback model is worth another call.
                    if error.status_code not in _OVERLOADED_STATUSES or model_index + 1 >= len(models):
                        raise last_error from error
                    model_index += 1
                log.warning(
                    "claude attempt %d failed: %s %s",
                    attempt + 1,
                    error.status_code,
                    error.type,
                    extra={"anthropic_request_id": error.request_id},
                )
            except (anthropic.APITimeoutError, httpx2.TimeoutException) as error:
                self._on_error("timeout")
                last_error = ModelUnavailable(tr(texts.MODEL_SILENT))
                log.warning("claude attempt %d: silence timeout (%s)", attempt + 1, type(error).__name__)
            except (anthropic.APIConnectionError, httpx2.TransportError) as error:
                self._on_error("connection")
                last_error = ModelUnavailable(tr(texts.MODEL_CONNECTION_DROPS))
                log.warning("claude attempt %d: connection failed (%s)", attempt + 1, type(error).__name__)
            except StreamCutShort:
                self._on_error("stream_cut_short")
                last_error = ModelUnavailable(tr(texts.MODEL_CUT_OFF))
                log.warning("claude attempt %d: stream ended before message_stop", attempt + 1)
            if attempt + 1 < self._max_attempts:
                if shown_text:
                    yield AttemptRestarted(reason=last_error.user_message)
                delay = self._backoff_base_s * 2**attempt
                await asyncio.sleep(delay * (0.75 + 0.25 * random.random()))
        assert last_error is not None
        raise last_error

    def provider_params(self, request: ModelRequest, model: str, prefill: str = "") -> dict[str, Any]:
        """The wire request for this provider: its model id, and only the features it offers."""
        model_id = self._models.provider_id(self.provider, model)
        return shape_for(self.capabilities, self.request_params(request, model), model_id=model_id, prefill=prefill)

    async def attempt(self, request: ModelRequest, model: str, prefill: str = "") -> AsyncIterator[ModelEvent]:
        """One call, no retries of our own (the SDK's are done): raises the SDK's errors for a failover to judge.
        `request` is already planned for `model` (the failover knows the model's limits, this provider may not)."""
        async for event in self._one_attempt(request, model, prefill):
            yield event

    def _reported_model(self, model: str, reported: str) -> str:
        """Anthropic names the model it ran; a cloud's name is its own id, so the bill keeps the id personas use."""
        return reported if self.provider == "anthropic" else model

    async def _one_attempt(self, request: ModelRequest, model: str, prefill: str = "") -> AsyncIterator[ModelEvent]:
        """One call's events. Once the API has reported usage (message_start), a failure is billed: an
        AttemptFailed with what it reported comes before the error (an error event, a dropped or cut stream)."""
        params = self.provider_params(request, model, prefill)
        progress = _Progress()
        async with self._client.messages.stream(**params) as stream:
            # Every later line of this answer names the Claude request, for Anthropic support and for tracing.
            logs.bind(anthropic_request_id=stream.request_id)
            try:
                async for event in stream:
                    for translated in self._translate(event, model, progress):
                        yield translated
                if progress.started is None:
                    raise StreamCutShort()  # not even a message_start: nothing was reported, nothing to bill
                final = await stream.get_final_message()
            except Exception:
                if progress.started is not None:
                    reported = _usage(stream.current_message_snapshot.usage)
                    yield AttemptFailed(reported, progress.started.model, self.provider)
                raise
        if final.stop_reason is None:
            assert progress.started is not None
            yield AttemptFailed(_usage(final.usage), progress.started.model, self.provider)
            raise StreamCutShort()
        yield ModelTurnComplete(
            blocks=tuple(_from_sdk_blocks(final.content)),
            usage=_usage(final.usage),
            stop_reason=final.stop_reason,
            model=self._reported_model(model, final.model),
            provider=self.provider,
        )

    def _translate(self, event: Any, model: str, progress: _Progress) -> list[ModelEvent]:
        """One SDK stream event as ModelEvents (text, thinking and tool input also count toward a Stop's bill)."""
        if event.type == "text":
            progress.written_chars += len(event.text)
            return [TextDelta(event.text)] if event.text else []
        if event.type == "thinking":
            progress.written_chars += len(event.thinking)
        elif event.type == "input_json":
            progress.written_chars += len(event.partial_json)
        elif event.type == "message_start":
            reported = self._reported_model(model, event.message.model)
            progress.started = UsageSoFar(_usage(event.message.usage), reported, self.provider)
            return [progress.started]
        elif event.type == "content_block_stop" and progress.started is not None:
            started = progress.started
            estimate = max(started.usage.output_tokens, math.ceil(progress.written_chars / _CHARS_PER_TOKEN))
            return [dataclasses.replace(started, usage=dataclasses.replace(started.usage, output_tokens=estimate))]
        elif event.type == "content_block_start":
            block_type = event.content_block.type
            if block_type in ("thinking", "redacted_thinking"):
                return [ThinkingStarted()]
            if block_type == "server_tool_use" and getattr(event.content_block, "name", "") == "web_search":
                return [ToolRunning(tool="web_search", status=tr(texts.TOOL_SEARCHING_WEB))]
        return []

    @staticmethod
    def request_params(request: ModelRequest, model: str) -> dict[str, Any]:
        """The wire request, with at most four cache breakpoints: stable system text, summary, previous turn, newest."""
        system: list[dict[str, Any]] = [{"type": "text", "text": part} for part in request.system]
        for index in request.cache_system_parts:
            if 0 <= index < len(system):
                system[index]["cache_control"] = {"type": "ephemeral"}
        system = [part for part in system if part["text"]]
        messages = [m for m in (_to_sdk_message(turn, request.attachments) for turn in request.turns) if m["content"]]
        if len(messages) >= 2:
            # The newest turn changes every request; the one before it ends what the previous request sent, so a
            # breakpoint there is read from cache even when the automatic one below misses by more than 20 blocks.
            markable = [b for b in messages[-2]["content"] if b["type"] not in _UNCACHEABLE_BLOCKS]
            if markable:
                markable[-1]["cache_control"] = {"type": "ephemeral"}
        params: dict[str, Any] = {
            "model": model,
            "max_tokens": request.max_tokens,
            "system": system,
            "messages": messages,
            "cache_control": {"type": "ephemeral"},  # automatic breakpoint on the newest block
        }
        tools: list[dict[str, Any]] = [
            {"name": t.name, "description": t.description, "input_schema": t.input_schema} for t in request.tools
        ]
        if request.web_search:
            tools.append({"type": WEB_SEARCH_TOOL_TYPE, "name": "web_search", "max_uses": WEB_SEARCH_MAX_USES})
        if tools:
            # Tools come first in the cached prefix, so the system breakpoint covers them (the API allows 4).
            params["tools"] = tools
            if request.tools_disabled:
                params["tool_choice"] = {"type": "none"}
        if request.thinking == "adaptive":
            params["thinking"] = {"type": "adaptive"}
        elif isinstance(request.thinking, int):
            params["thinking"] = {"type": "enabled", "budget_tokens": request.thinking}
        if request.effort:
            params["output_config"] = {"effort": request.effort}
        if request.end_user_id:
            # Anthropic asks for an opaque id, never personal data: a hash of the Slack user id.
            digest = hashlib.sha256(request.end_user_id.encode()).hexdigest()[:32]
            params["metadata"] = {"user_id": digest}
        return params


def _to_sdk_message(turn: Turn, attachments: Mapping[str, Attachment]) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for block in turn.blocks:
        if isinstance(block, MediaBlock):
            attachment = attachments.get(block.ref)
            if attachment is None:
                content.append({"type": "text", "text": f"[{block.kind} “{block.name}” not available]"})
                continue
            source = {"type": "base64", "media_type": attachment.media_type, "data": attachment.data_b64}
            content.append({"type": "image" if attachment.kind == "image" else "document", "source": source})
            continue
        if isinstance(block, TextBlock):
            if block.text.strip():  # the API rejects empty text blocks
                content.append({"type": "text", "text": block.text})
        elif isinstance(block, ThinkingBlock):
            content.append({"type": "thinking", "thinking": block.thinking, "signature": block.signature})
        elif isinstance(block, RedactedThinkingBlock):
            content.append({"type": "redacted_thinking", "data": block.data})
        elif isinstance(block, ToolCallBlock):
            content.append({"type": "tool_use", "id": block.id, "name": block.name, "input": block.input})
        elif isinstance(block, ServerToolBlock):
            content.append(dict(block.data))
        elif isinstance(block, ToolResultBlock):
            content.append(
                {
                    "type": "tool_result",
                    "tool_use_id": block.tool_call_id,
                    "content": block.text,
                    "is_error": block.is_error,
                }
            )
    return {"role": turn.role, "content": content}


def _from_sdk_blocks(content: list[Any]) -> list[Block]:
    blocks: list[Block] = []
    for item in content:
        if item.type == "text":
            blocks.append(TextBlock(text=item.text))
        elif item.type == "thinking":
            blocks.append(ThinkingBlock(thinking=item.thinking, signature=item.signature))
        elif item.type == "redacted_thinking":
            blocks.append(RedactedThinkingBlock(data=item.data))
        elif item.type == "tool_use":
            blocks.append(ToolCallBlock(id=item.id, name=item.name, input=dict(item.input)))
        elif item.type in ("server_tool_use", "web_search_tool_result"):
            blocks.append(ServerToolBlock(data=item.model_dump(mode="json", exclude_none=True)))
    return blocks


def _limits_of(info: Any) -> ModelLimits:
    """The Models API's ModelInfo as the core reads it: window, output limit, thinking types, effort levels."""
    capabilities = info.capabilities
    thinking = capabilities.thinking if capabilities is not None else None
    effort = capabilities.effort if capabilities is not None else None
    efforts = None
    if effort is not None:  # each level is {"supported": bool}; xhigh is newer and may be absent
        efforts = frozenset(x for x in _EFFORT_LEVELS if effort.supported and getattr(effort, x, None) is not None
                            and getattr(effort, x).supported)  # fmt: skip
    return ModelLimits(
        context_window=info.max_input_tokens,
        max_output_tokens=info.max_tokens,
        adaptive_thinking=thinking.types.adaptive.supported if thinking is not None else None,
        manual_thinking=thinking.types.enabled.supported if thinking is not None else None,
        efforts=efforts,
    )


def _usage(usage: Any) -> Usage:
    return Usage(
        input_tokens=usage.input_tokens or 0,
        output_tokens=usage.output_tokens or 0,
        cache_write_tokens=usage.cache_creation_input_tokens or 0,
        cache_read_tokens=usage.cache_read_input_tokens or 0,
        web_search_requests=getattr(getattr(usage, "server_tool_use", None), "web_search_requests", 0) or 0,
    )
