"""Failover across providers (CLAUDE_PROVIDERS): the same request goes to the next provider when one fails.

Mid-stream, the next provider *continues* the answer: the text already shown is sent as an assistant prefill and
only what comes after it is shown. Restarting and hiding the already-shown prefix was the alternative, but another
provider (or the same model, sampled again) does not write the same words, so there would be no prefix to hide: the
answer would either repeat itself or change under the reader's eyes. A prefill keeps every shown word and adds none
twice. Its cost: the continuing call runs without extended thinking (a prefilled answer cannot start with thinking
the continuing call never did). The failed call is billed at what its provider reported before it failed.

Each call is planned for the model that takes it (thinking, effort, max_tokens: thinking.fit_to_model), from the
chain's Models API: a provider without one still gets settings that model accepts.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import anthropic
import httpx2

from bot.core import texts
from bot.core.conversation import Block, TextBlock
from bot.core.errors import ModelUnavailable
from bot.core.events import ModelEvent, ModelTurnComplete, TextDelta
from bot.core.i18n import tr
from bot.core.ports import CircuitBreaker, ModelLimits, ModelRequest
from bot.core.thinking import refit
from bot.llm.claude import TRANSIENT_STREAM_ERRORS, ClaudeModel, StreamCutShort, credential_settings, describe_status
from bot.llm.providers import build_providers
from bot.settings import Settings

log = logging.getLogger(__name__)

# Statuses worth another provider once the SDK's own retries are spent: overloaded, rate-limited, failing.
FAILOVER_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 529})
# Credentials that cannot be resolved on this host (the AWS chain, Google ADC) come from outside the SDK's errors.
_CREDENTIAL_ERROR_MODULES = ("botocore", "google.auth")


class _Failed(Exception):
    """One provider's call failed in a way the next provider may not share."""

    def __init__(self, unavailable: ModelUnavailable, kind: str) -> None:
        super().__init__(unavailable.user_message)
        self.unavailable = unavailable
        self.kind = kind


def classify(error: BaseException, provider: str = "anthropic") -> _Failed | None:
    """A failure worth the next provider, or None when every provider would fail the same way (a bad request)."""
    if isinstance(error, anthropic.APIStatusError):
        unavailable = ModelUnavailable(describe_status(error, provider), request_id=error.request_id)
        if error.status_code == 200:  # an error event inside the stream
            return _Failed(unavailable, error.type or "stream_error") if error.type in TRANSIENT_STREAM_ERRORS else None
        if error.status_code in FAILOVER_STATUSES or error.status_code in (401, 403):
            # A provider refusing our credentials is that provider's problem; the next one has its own.
            return _Failed(unavailable, error.type or f"http_{error.status_code}")
        return None
    if isinstance(error, anthropic.APITimeoutError | httpx2.TimeoutException):
        return _Failed(ModelUnavailable(tr(texts.MODEL_SILENT)), "timeout")
    if isinstance(error, anthropic.APIConnectionError | httpx2.TransportError):
        return _Failed(ModelUnavailable(tr(texts.MODEL_CONNECTION_DROPS)), "connection")
    if isinstance(error, StreamCutShort):
        return _Failed(ModelUnavailable(tr(texts.MODEL_CUT_OFF)), "stream_cut_short")
    if type(error).__module__.startswith(_CREDENTIAL_ERROR_MODULES) or isinstance(error, RuntimeError):
        unavailable = ModelUnavailable(tr(texts.MODEL_BAD_CREDENTIALS, settings=credential_settings(provider)))
        return _Failed(unavailable, "credentials")
    return None


@dataclass
class _Progress:
    """One answer across providers: the text the user has seen (never repeated, never lost), and how it went."""

    shown: str = ""
    done: bool = False
    last: _Failed | None = None


class FailoverModel:
    """Implements core.ports.LanguageModel, ModelCatalog and TokenCounter over an ordered chain of providers."""

    def __init__(
        self,
        providers: Sequence[ClaudeModel],
        breaker: CircuitBreaker,
        *,
        on_failover: Callable[[str, str], None] | None = None,
    ) -> None:
        if not providers:
            raise ValueError("a failover chain needs at least one provider")
        self._providers = list(providers)
        self._breaker = breaker
        self._on_failover = on_failover or (lambda provider, kind: None)  # e.g. metrics

    async def close(self) -> None:
        for provider in self._providers:
            await provider.close()

    async def limits(self, model: str) -> ModelLimits | None:
        for provider in self._providers:
            if provider.capabilities.models_api:
                return await provider.limits(model)
        return None

    async def count_tokens(self, request: ModelRequest) -> int:
        last = ModelUnavailable(tr(texts.MODEL_NO_TOKEN_COUNT))
        for provider in self._providers:
            if provider.capabilities.count_tokens:
                try:
                    return await provider.count_tokens(request)
                except ModelUnavailable as error:
                    last = error
        raise last

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        progress = _Progress()
        for model in (request.model, *request.fallback_models):
            tried = False
            for provider in self._providers:
                # Asked one at a time, so a half-open provider's single probe is only taken when it is really called.
                if not await self._allowed(provider.provider):
                    continue
                tried = True
                async for event in self._attempt(provider, request, model, progress):
                    yield event
                if progress.done:
                    return
            if not tried:  # every breaker is open: trying a provider that may have recovered beats refusing
                for provider in self._providers:
                    async for event in self._attempt(provider, request, model, progress):
                        yield event
                    if progress.done:
                        return
        assert progress.last is not None
        raise progress.last.unavailable

    async def _attempt(
        self, provider: ClaudeModel, request: ModelRequest, model: str, progress: _Progress
    ) -> AsyncIterator[ModelEvent]:
        """One provider's call; a failure the next provider may not share is noted in `progress`, not raised."""
        try:
            async for event in self._continue(provider, request, model, progress.shown):
                if isinstance(event, TextDelta):
                    progress.shown += event.text
                yield event
        except Exception as error:
            failed = classify(error, provider.provider)
            if failed is None:
                if isinstance(error, anthropic.APIStatusError):
                    unavailable = describe_status(error, provider.provider)
                    raise ModelUnavailable(unavailable, request_id=error.request_id) from error
                raise
            progress.last = failed
            await self._note(provider.provider, success=False)
            self._on_failover(provider.provider, failed.kind)
            log.warning("claude provider %s failed (%s); trying the next", provider.provider, failed.kind)
            return
        await self._note(provider.provider, success=True)
        progress.done = True

    async def _allowed(self, provider: str) -> bool:
        try:
            return await self._breaker.allow(provider)
        except Exception as error:  # the breaker is advice: unreadable, it lets calls through
            log.warning("circuit breaker unreadable (%s); trying %s", type(error).__name__, provider)
            return True

    async def _note(self, provider: str, *, success: bool) -> None:
        try:
            if success:
                await self._breaker.record_success(provider)
            else:
                await self._breaker.record_failure(provider)
        except Exception as error:
            log.warning("circuit breaker not updated (%s)", type(error).__name__)

    async def _continue(
        self, provider: ClaudeModel, request: ModelRequest, model: str, shown: str
    ) -> AsyncIterator[ModelEvent]:
        """One provider's call, continuing after `shown`: its deltas, and a complete turn holding the whole text."""
        prefill = shown.rstrip()
        skip_space = len(prefill) < len(shown)  # the shown text ended in whitespace the prefill could not carry
        fitted = refit(request, model, await self.limits(model))
        async for event in provider.attempt(fitted, model, prefill):
            if isinstance(event, TextDelta) and skip_space:
                text = event.text.lstrip()
                skip_space = not text
                if not text:
                    continue
                event = TextDelta(text)
            if isinstance(event, ModelTurnComplete) and shown:
                event = ModelTurnComplete(
                    blocks=_after(shown, event.blocks, trim=len(prefill) < len(shown)),
                    usage=event.usage,
                    stop_reason=event.stop_reason,
                    model=event.model,
                    provider=event.provider,
                )
            yield event


def build_model(
    settings: Settings,
    breaker: CircuitBreaker,
    *,
    on_error: Callable[[str], None],
    on_failover: Callable[[str, str], None],
    only: str | None = None,
) -> ClaudeModel | FailoverModel:
    """One provider: its client, with the SDK's retries and ours (as before failover existed). Several
    (CLAUDE_PROVIDERS): a failover chain, skipping providers whose shared circuit breaker is open."""
    settings.check_providers(only=only)
    models = [
        ClaudeModel.for_provider(
            provider,
            max_attempts=settings.claude_max_attempts,
            backoff_base_s=settings.claude_retry_base_delay_s,
            on_error=on_error,
        )
        for provider in build_providers(settings, only=only)
    ]
    if len(models) == 1:
        return models[0]
    return FailoverModel(models, breaker, on_failover=on_failover)


def _after(shown: str, blocks: tuple[Block, ...], *, trim: bool) -> tuple[Block, ...]:
    """The continuing call's content with the shown text in front, as one text block: what the thread stores."""
    if blocks and isinstance(blocks[0], TextBlock):
        rest = blocks[0].text.lstrip() if trim else blocks[0].text
        return (TextBlock(text=shown + rest), *blocks[1:])
    return (TextBlock(text=shown), *blocks)
