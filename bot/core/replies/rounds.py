"""The answer pipeline: fit the context → plan the call → call the model → save → run tools, round after round.

Each round is one model call. While Claude asks for tools the pipeline runs them and calls it again, all in one
streamed answer; every turn is saved as soon as it exists, so history holds what the user has seen.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from bot.core import texts
from bot.core.answers import Interrupt, stopped_results
from bot.core.attachments import ResolvedHistory
from bot.core.context_window import ContextWindow, FoldedTurns
from bot.core.conversation import (
    Fold,
    IncomingMessage,
    MeasuredSize,
    StoredConversation,
    TextBlock,
    ToolCallBlock,
    Turn,
)
from bot.core.events import ModelTurnComplete, Notice, ReplyDone, ReplyEvent, Usage
from bot.core.history_access import screen_foreign_reads
from bot.core.i18n import tr
from bot.core.leases import Lease
from bot.core.metering import CallContext
from bot.core.personas import Persona
from bot.core.ports import Attachment, ModelRequest
from bot.core.prompts import ReplyConfig, build_request
from bot.core.replies.history_writer import HistoryWriter
from bot.core.replies.model_calls import ModelCalls
from bot.core.thinking import Plan
from bot.core.tools.history import SEARCH_HISTORY_NAME
from bot.core.tools.registry import ConversationReader, Tool, ToolContext, WebFetcher
from bot.core.tools.runner import ToolRound, ToolRunner
from bot.core.tools.written_urls import urls_written_by_people

log = logging.getLogger(__name__)


@dataclass
class Exchange:
    """One answer in progress: what the model is shown, and what it has written so far."""

    message: IncomingMessage
    persona: Persona
    call: CallContext
    attachments: Mapping[str, Attachment]
    turns: list[Turn]
    fold: Fold | None
    measured: MeasuredSize | None
    current: int  # this message's turn: it and everything after it are never folded
    lease: Lease  # the thread's: every save is fenced by it
    thinking: Plan = None  # wanted; each call fits it to its model
    manual_budget: int | None = None  # the triage's, for a model without adaptive thinking
    usage: Usage = field(default_factory=Usage)
    text: str = ""


@dataclass(frozen=True)
class PipelineParts:
    """What the pipeline works with; `tools`, `reader`, `web` and `context` are None where the feature is off."""

    model_calls: ModelCalls
    writer: HistoryWriter
    config: ReplyConfig
    clock: Callable[[], datetime]
    interrupts: Mapping[str, Interrupt]
    tools: ToolRunner | None = None
    reader: ConversationReader | None = None
    web: WebFetcher | None = None
    context: ContextWindow | None = None
    max_tool_rounds: int = 8


class AnswerPipeline:
    """Runs one answer's rounds; the use case (Replies) has already locked the thread and stored the question."""

    def __init__(self, parts: PipelineParts) -> None:
        self._parts = parts

    async def run(
        self,
        message: IncomingMessage,
        persona: Persona,
        history: ResolvedHistory,
        stored: StoredConversation,
        lease: Lease,
    ) -> AsyncIterator[ReplyEvent]:
        """The answer's rounds; its last save closes the exchange the question opened (see HistoryWriter)."""
        parts = self._parts
        exchange = await self._begin(message, persona, history, stored, lease)
        for round_number in range(parts.max_tool_rounds + 1):
            lease.check()  # a thread taken over meanwhile: no model call whose answer could not be kept
            request, notices = await self._fit(exchange, last_round=round_number == parts.max_tool_rounds)
            for notice in notices:
                yield notice
            complete: ModelTurnComplete | None = None
            async for event in parts.model_calls.metered(exchange.call, request, message):
                if isinstance(event, ModelTurnComplete):
                    complete = event
                else:
                    yield event
            assert complete is not None  # the model port always ends with it or raises
            calls = [b for b in complete.blocks if isinstance(b, ToolCallBlock)]
            last = complete.stop_reason != "pause_turn" and (
                complete.stop_reason != "tool_use" or not calls or parts.tools is None
            )
            await self._save_answer(exchange, complete, last=last)
            if complete.stop_reason == "pause_turn":
                continue  # a long server-side tool turn paused: sending it back as-is lets Claude carry on
            if last or parts.tools is None:
                _log_usage(message, complete.model, exchange.usage, round_number + 1)
                yield ReplyDone(text=exchange.text, usage=exchange.usage, stop_reason=complete.stop_reason)
                return
            stopped = False
            async for tool_event in self._run_tools(exchange, parts.tools, calls):
                if tool_event is None:
                    stopped = True
                else:
                    yield tool_event
            if stopped:
                yield ReplyDone(text=exchange.text, usage=exchange.usage, stop_reason="stopped")
                return
        await parts.writer.save(message.key, lease=lease, close=True)
        yield ReplyDone(text=exchange.text, usage=exchange.usage, stop_reason="tool_rounds_exhausted")

    async def _begin(
        self,
        message: IncomingMessage,
        persona: Persona,
        history: ResolvedHistory,
        stored: StoredConversation,
        lease: Lease,
    ) -> Exchange:
        """Screen the history for this asker and plan thinking: both hold for every round of the answer."""
        turns, fold, measured = await self._screen_reads(message, history.turns, stored)
        call = CallContext(message.key.workspace_id, message.user_id, message.key.channel_id, persona.name)
        exchange = Exchange(message, persona, call, history.attachments, turns, fold, measured, len(turns) - 1, lease)
        exchange.thinking, exchange.manual_budget = await self._parts.model_calls.plan_thinking(call, persona, message)
        return exchange

    async def _fit(self, exchange: Exchange, *, last_round: bool) -> tuple[ModelRequest, list[Notice]]:
        """The round's request, with older turns folded into a summary when the thread outgrows the window."""
        parts = self._parts
        build = functools.partial(self._build, exchange, last_round=last_round)
        if parts.context is None:
            return build(exchange.fold), []
        fitted = await parts.context.fit(
            build=build,
            turns=exchange.turns,
            fold=exchange.fold,
            measured=exchange.measured,
            protected_from=exchange.current,
            summarise=functools.partial(parts.model_calls.side_call, exchange.call),
            names=lambda author: f"<@{author}>" if author else "Someone",
        )
        if fitted.new_fold and fitted.fold is not None:
            await parts.writer.save_fold(exchange.message.key, fitted.fold, exchange.lease)
        exchange.fold = fitted.fold
        return fitted.request, [Notice(tr(texts.CONTEXT_SHORTENED))] if fitted.trimmed else []

    def _build(self, exchange: Exchange, candidate: Fold | None, *, last_round: bool) -> ModelRequest:
        parts = self._parts
        allowed = _tool_filter(exchange.persona, folded=candidate is not None)
        tools = parts.tools.specs(allowed) if parts.tools is not None else ()
        request = build_request(
            exchange.persona,
            parts.config,
            exchange.turns,
            exchange.message,
            parts.clock(),
            tools=tools,
            fold=candidate,
            thinking=exchange.thinking,
            manual_budget=exchange.manual_budget,
        )
        return dataclasses.replace(
            request,
            attachments=exchange.attachments,
            tools_disabled=last_round,
        )

    async def _save_answer(self, exchange: Exchange, complete: ModelTurnComplete, *, last: bool) -> None:
        """The model's turn joins history with the size the API measured, so the next fit need not count; the
        answer's `last` turn closes its exchange in the same write."""
        self._parts.model_calls.log_thinking(exchange.message, complete)
        exchange.usage = exchange.usage + complete.usage
        sent = complete.usage
        exchange.measured = MeasuredSize(
            tokens=sent.input_tokens + sent.cache_write_tokens + sent.cache_read_tokens,
            turns=len(exchange.turns),
            folded_upto=exchange.fold.upto if exchange.fold is not None else 0,
        )
        answer = Turn(role="assistant", blocks=complete.blocks)
        key, lease = exchange.message.key, exchange.lease
        await self._parts.writer.save(key, answer, lease=lease, measured=exchange.measured, close=last)
        exchange.turns.append(answer)
        exchange.text += "".join(b.text for b in complete.blocks if isinstance(b, TextBlock))

    async def _run_tools(
        self, exchange: Exchange, tools: ToolRunner, calls: list[ToolCallBlock]
    ) -> AsyncIterator[ReplyEvent | None]:
        """Run the tools Claude asked for and save their results; yields None last when a Stop ended the round."""
        message = exchange.message
        outcome = ToolRound(results=[])
        interrupt = self._parts.interrupts.get(message.answer_id or "")
        turns = exchange.turns
        context = self._tool_context(message, FoldedTurns.of(turns, exchange.fold), urls_written_by_people(turns))
        allowed = _tool_filter(exchange.persona, folded=exchange.fold is not None)
        tool_events = tools.run(calls, context, allowed, outcome)
        async for tool_event in interrupt.until_stopped(tool_events) if interrupt else tool_events:
            yield tool_event
        stopped = interrupt is not None and interrupt.stopped
        if stopped:
            outcome.results = stopped_results(calls, outcome.results)
        results = Turn(role="user", blocks=tuple(outcome.results))
        await self._parts.writer.save(message.key, results, lease=exchange.lease, close=stopped)
        turns.append(results)
        if stopped:
            yield None

    async def _screen_reads(
        self, message: IncomingMessage, turns: Sequence[Turn], stored: StoredConversation
    ) -> tuple[list[Turn], Fold | None, MeasuredSize | None]:
        """The thread's reads of other conversations, each kept only if the current asker may see it here; the
        stored fold too, unless its summary may repeat a hidden read (then the thread is folded anew)."""
        reader, key = self._parts.reader, message.key

        async def can_read(channel: str) -> bool:
            return reader is not None and await reader.can_read(
                key.workspace_id, channel, as_user=message.user_id, shown_in=key.channel_id
            )

        screened, hidden = await screen_foreign_reads(turns, here=key.channel_id, can_read=can_read)
        if stored.fold is not None and hidden and hidden[0] < stored.fold.upto:
            return screened, None, None
        return screened, stored.fold, stored.measured

    def _tool_context(
        self, message: IncomingMessage, history: FoldedTurns | None, human_urls: frozenset[str]
    ) -> ToolContext:
        key = message.key
        return ToolContext(
            workspace_id=key.workspace_id,
            channel_id=key.channel_id,
            thread_id=key.thread_id,
            user_id=message.user_id,
            channel=message.channel,
            reader=self._parts.reader,
            web=self._parts.web,
            history=history,
            human_urls=human_urls,
        )


def _tool_filter(persona: Persona, *, folded: bool) -> Callable[[Tool], bool]:
    """A persona's list names the tools it may use; without one, every tool that only reads.

    search_history belongs to the conversation, not the persona: offered whenever the thread has a fold, never before.
    """

    def allowed(tool: Tool) -> bool:
        if tool.name == SEARCH_HISTORY_NAME:
            return folded
        return persona.allows_tool(tool.name) if persona.tools is not None else not tool.acts

    return allowed


def _log_usage(message: IncomingMessage, model: str, usage: Usage, calls: int) -> None:
    """One line per answer with everything that bills, until the usage ledger records it."""
    log.info(
        "answer usage workspace=%s channel=%s model=%s calls=%d input=%d output=%d cache_write=%d cache_read=%d "
        "web_searches=%d",
        message.key.workspace_id,
        message.key.channel_id,
        model,
        calls,
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_write_tokens,
        usage.cache_read_tokens,
        usage.web_search_requests,
    )
