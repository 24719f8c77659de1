"""The "answer this message" use case: history in, a stream of reply events out, both turns saved."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

from bot.core import texts
from bot.core.answers import (
    AnswerRecord,
    Answers,
    AnswerState,
    CannotRegenerate,
    Interrupt,
    ShownModelEvent,
    is_latest_question,
    shown_events,
    stoppable_call,
    stopped_results,
)
from bot.core.attachments import DEFAULT_FILE_PROMPT, Attachments, ResolvedHistory
from bot.core.context_window import ContextWindow, FoldedTurns
from bot.core.conversation import (
    Block,
    ConversationKey,
    Fold,
    IncomingMessage,
    MeasuredSize,
    MediaBlock,
    StoredConversation,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
    Turn,
)
from bot.core.errors import StorageUnavailable
from bot.core.events import ModelTurnComplete, Notice, ReplyDone, ReplyEvent, Usage, Waiting
from bot.core.history_access import screen_foreign_reads
from bot.core.i18n import tr, trn
from bot.core.metering import Admission, CallContext, Metering
from bot.core.personas import Persona, PersonaCatalog
from bot.core.ports import ChannelSettingsStore, ConversationStore, LanguageModel, ModelRequest
from bot.core.prompts import ReplyConfig, build_request, message_header, persona_thinking
from bot.core.thinking import Plan, ThinkingPlanner, fit_thinking
from bot.core.tools.history import SEARCH_HISTORY_NAME
from bot.core.tools.registry import ConversationReader, Tool, ToolContext, WebFetcher
from bot.core.tools.runner import ToolRound, ToolRunner
from bot.core.tools.written_urls import urls_written_by_people

log = logging.getLogger(__name__)
T = TypeVar("T")


class Replies:
    """Answers one message at a time per conversation; the only writer of conversation history."""

    def __init__(
        self,
        model: LanguageModel,
        conversations: ConversationStore,
        config: ReplyConfig,
        personas: PersonaCatalog,
        channel_settings: ChannelSettingsStore,
        *,
        attachments: Attachments | None = None,
        tools: ToolRunner | None = None,
        reader: ConversationReader | None = None,
        web: WebFetcher | None = None,
        max_tool_rounds: int = 8,
        metering: Metering | None = None,
        context: ContextWindow | None = None,
        thinking: ThinkingPlanner | None = None,
        storage_wait_s: float = 30.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        answers: Answers | None = None,
    ) -> None:
        self._model = model
        self._conversations = conversations
        self._config = config
        self._personas = personas
        self._channel_settings = channel_settings
        self._attachments = attachments
        self._tools = tools
        self._reader = reader
        self._web = web
        self._max_tool_rounds = max_tool_rounds
        self._metering = metering
        self._context = context
        self._thinking = thinking
        self._storage_wait_s = storage_wait_s
        self._clock = clock
        self._pending_saves: set[asyncio.Task[None]] = set()
        self._unsaved: dict[ConversationKey, list[Turn]] = {}
        self._answers = answers
        self._interrupts: dict[str, Interrupt] = {}  # answer id -> its Stop, for answers running in this process

    async def is_following(self, key: ConversationKey) -> bool:
        """A thread the bot has answered in before; plain follow-ups there continue the conversation."""
        return await self._patiently(lambda: self._conversations.exists(key))

    async def dm_conversation(self, workspace_id: str, channel_id: str, message_id: str) -> ConversationKey:
        session = await self._patiently(lambda: self._conversations.dm_session(workspace_id, channel_id, message_id))
        # Namespaced: a DM thread hanging off the session's first message must not share its history.
        return ConversationKey(workspace_id, channel_id, f"dm-session-{session}")

    async def forget(self, key: ConversationKey) -> bool:
        """Start the thread over: its history and summary go (usage records stay); waits for a running answer."""
        async with self._conversations.lock(key):
            return await self._conversations.forget(key)

    async def end_dm_session(self, workspace_id: str, channel_id: str) -> None:
        await self._conversations.end_dm_session(workspace_id, channel_id)

    async def _patiently(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Ride out a short storage outage before giving up (the caller then tells the user)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._storage_wait_s
        while True:
            try:
                return await operation()
            except StorageUnavailable:
                if loop.time() >= deadline:
                    raise
                await asyncio.sleep(0.5)

    async def answer(self, message: IncomingMessage) -> AsyncIterator[ReplyEvent]:
        """Stream the answer (or, for Regenerate, answer an earlier question again).

        An answer with an id can be stopped from any process: it then ends early, keeping what was written.
        """
        source = self._regenerate(message) if message.regenerates else self._answer(message)
        if self._answers is None or message.answer_id is None:
            async for event in source:
                yield event
            return
        state: AnswerState = "failed"
        async with self._answers.watch(message) as interrupt:
            self._interrupts[message.answer_id] = interrupt
            try:
                async for event in source:
                    if isinstance(event, ReplyDone):
                        state = "stopped" if event.stop_reason == "stopped" else "done"
                        if state == "stopped":
                            yield Notice(tr(texts.STOPPED))
                    yield event
            finally:
                del self._interrupts[message.answer_id]
                await self._answers.finish(message, state)

    async def regenerable(self, workspace_id: str, answer_id: str, user_id: str) -> AnswerRecord:
        """The answer `user_id` asks to regenerate, or CannotRegenerate saying why not (checked again later)."""
        record = await self._answers.record(workspace_id, answer_id) if self._answers is not None else None
        if record is None:
            raise CannotRegenerate(tr(texts.REGENERATE_TOO_OLD))
        if record.asker_id != user_id:
            raise CannotRegenerate(tr(texts.REGENERATE_NOT_YOURS))
        if record.state == "running":
            raise CannotRegenerate(tr(texts.REGENERATE_STILL_WRITING))
        if record.state == "replaced":
            raise CannotRegenerate(tr(texts.REGENERATE_ALREADY))
        stored = await self._conversations.load(record.key)
        if record.question_index is None or not is_latest_question(stored.turns, record.question_index):
            raise CannotRegenerate(tr(texts.REGENERATE_NOT_LATEST))
        return record

    async def _regenerate(self, message: IncomingMessage) -> AsyncIterator[ReplyEvent]:
        """Answer the question of answer `message.regenerates` again; its old answer leaves the history."""
        assert self._answers is not None and message.regenerates is not None
        old = await self._answers.record(message.key.workspace_id, message.regenerates)
        async with self._conversations.lock(message.key):
            stored = await self._conversations.load(message.key)
            index = old.question_index if old is not None else None
            if old is None or old.state == "replaced" or index is None or not is_latest_question(stored.turns, index):
                yield Notice(tr(texts.REGENERATE_MOVED_ON))
                yield ReplyDone(text="")
                return
            await self._conversations.rewind(message.key, index + 1)
            await self._answers.replaced(old)
            persona = self._personas.resolve(stored.persona or old.persona)
            await self._answers.asked(message, persona.name, index)
            resolved = await self._resolve(message, stored.turns[: index + 1])
            # A fold never reaches the question (the exchange in progress is never folded), so it stays valid.
            kept = dataclasses.replace(stored, turns=stored.turns[: index + 1], measured=None)
            async for event in self._stream(message, persona, resolved, kept):
                yield event

    async def _answer(self, message: IncomingMessage) -> AsyncIterator[ReplyEvent]:
        """Stream the answer; the user's turn is saved before the model is called so a failure never loses it."""
        waited = started = False
        media: list[MediaBlock] | None = None
        deadline = asyncio.get_running_loop().time() + self._storage_wait_s
        while True:
            try:
                if media is None:
                    media, notices = await self._ingest(message)
                    for notice in notices:
                        yield Notice(notice)
                user_turn = self._user_turn(message, media, self._clock())
                if user_turn is None:  # only files that could not be used, and no words: the notices say it all
                    yield ReplyDone(text="")
                    return
                async with self._conversations.lock(message.key):
                    stored = await self._conversations.load(message.key)
                    persona = await self._persona_for(message, stored.persona)
                    new_thread = stored.persona != persona.name
                    await self._conversations.append(
                        message.key, user_turn, persona=persona.name if new_thread else None
                    )
                    started = True
                    if self._answers is not None and message.answer_id is not None:
                        await self._answers.asked(message, persona.name, len(stored.turns))
                    resolved = await self._resolve(message, [*stored.turns, user_turn])
                    if resolved.dropped and media:
                        yield Notice(trn(texts.MEDIA_LEFT_OUT, resolved.dropped))
                    async for event in self._stream(message, persona, resolved, stored):
                        yield event
                return
            except StorageUnavailable:
                if started or asyncio.get_running_loop().time() >= deadline:
                    raise
                if not waited:
                    waited = True
                    yield Waiting("storage")
                await asyncio.sleep(0.5)

    async def _ingest(self, message: IncomingMessage) -> tuple[list[MediaBlock], list[str]]:
        if not message.files:
            return [], []
        if self._attachments is None:
            return [], [tr(texts.FILES_NOT_READ)]
        return await self._attachments.ingest(message)

    @staticmethod
    def _user_turn(message: IncomingMessage, media: list[MediaBlock], now: datetime) -> Turn | None:
        text = message.text.strip()
        if not text and message.files and not media:
            return None
        blocks: list[Block] = [*media, TextBlock(text=text or (DEFAULT_FILE_PROMPT if media else "(no message)"))]
        header = message_header(message.user_id, message.asker, now)
        return Turn(role="user", blocks=tuple(blocks), author_id=message.user_id, header=header)

    async def _resolve(self, message: IncomingMessage, history: list[Turn]) -> ResolvedHistory:
        if self._attachments is None:
            return ResolvedHistory(tuple(history), {}, 0)
        return await self._attachments.resolve(message.key.workspace_id, history)

    async def _persona_for(self, message: IncomingMessage, remembered: str | None) -> Persona:
        """A thread keeps the persona it started with; a new thread takes its channel's current one."""
        if remembered is not None and self._personas.get(remembered) is not None:
            return self._personas.resolve(remembered)
        if message.persona is not None and self._personas.get(message.persona) is not None:
            return self._personas.resolve(message.persona)
        key = message.key
        return self._personas.resolve(await self._channel_settings.channel_persona(key.workspace_id, key.channel_id))

    async def _stream(
        self, message: IncomingMessage, persona: Persona, history: ResolvedHistory, stored: StoredConversation
    ) -> AsyncIterator[ReplyEvent]:
        """Call the model; while it asks for tools, run them and call it again, all in one streamed answer."""
        turns, fold, measured = await self._screen_reads(message, history.turns, stored)
        current = len(turns) - 1  # this message's turn: it and everything after it are never folded
        call = CallContext(message.key.workspace_id, message.user_id, message.key.channel_id, persona.name)
        thinking, max_tokens = await self._plan_thinking(call, persona, message)
        usage = Usage()
        text = ""
        for round_number in range(self._max_tool_rounds + 1):
            last_round = round_number == self._max_tool_rounds

            def build(candidate: Fold | None, last_round: bool = last_round) -> ModelRequest:
                tools = self._tools.specs(_tool_filter(persona, folded=candidate is not None)) if self._tools else ()
                request = build_request(
                    persona, self._config, turns, message, self._clock(), tools=tools, fold=candidate, thinking=thinking
                )
                return dataclasses.replace(
                    request,
                    max_tokens=max(request.max_tokens, max_tokens),
                    attachments=history.attachments,
                    tools_disabled=last_round,
                )

            if self._context is None:
                request = build(fold)
            else:
                fitted = await self._context.fit(
                    build=build,
                    turns=turns,
                    fold=fold,
                    measured=measured,
                    protected_from=current,
                    summarise=functools.partial(self._side_call, call),
                    names=lambda author: f"<@{author}>" if author else "Someone",
                )
                if fitted.new_fold and fitted.fold is not None:
                    await self._save_fold(message.key, fitted.fold)
                if fitted.trimmed:
                    yield Notice(tr(texts.CONTEXT_SHORTENED))
                request, fold = fitted.request, fitted.fold
            allowed = _tool_filter(persona, folded=fold is not None)
            complete: ModelTurnComplete | None = None
            async for event in self._metered(call, request, message):
                if isinstance(event, ModelTurnComplete):
                    complete = event
                else:
                    yield event
            assert complete is not None  # the model port always ends with it or raises
            self._log_thinking(message, complete)
            usage = usage + complete.usage
            sent = complete.usage
            measured = MeasuredSize(
                tokens=sent.input_tokens + sent.cache_write_tokens + sent.cache_read_tokens,
                turns=len(turns),
                folded_upto=fold.upto if fold is not None else 0,
            )
            answer = Turn(role="assistant", blocks=complete.blocks)
            await self._save_eventually(message.key, answer, measured)
            turns.append(answer)
            text += "".join(b.text for b in complete.blocks if isinstance(b, TextBlock))
            calls = [b for b in complete.blocks if isinstance(b, ToolCallBlock)]
            if complete.stop_reason == "pause_turn":
                continue  # a long server-side tool turn paused: sending it back as-is lets Claude carry on
            if complete.stop_reason != "tool_use" or not calls or self._tools is None:
                _log_usage(message, complete.model, usage, round_number + 1)
                yield ReplyDone(text=text, usage=usage, stop_reason=complete.stop_reason)
                return
            outcome = ToolRound(results=[])
            interrupt = self._interrupts.get(message.answer_id or "")
            context = self._tool_context(message, FoldedTurns.of(turns, fold), urls_written_by_people(turns))
            tool_events = self._tools.run(calls, context, allowed, outcome)
            async for tool_event in interrupt.until_stopped(tool_events) if interrupt else tool_events:
                yield tool_event
            if interrupt is not None and interrupt.stopped:
                outcome.results = stopped_results(calls, outcome.results)
            results = Turn(role="user", blocks=tuple(outcome.results))
            await self._save_eventually(message.key, results)
            turns.append(results)
            if interrupt is not None and interrupt.stopped:
                yield ReplyDone(text=text, usage=usage, stop_reason="stopped")
                return
        yield ReplyDone(text=text, usage=usage, stop_reason="tool_rounds_exhausted")

    async def _plan_thinking(self, call: CallContext, persona: Persona, message: IncomingMessage) -> tuple[Plan, int]:
        """Decided once per answer: thinking must stay the same across the answer's tool rounds."""
        max_tokens = persona.max_tokens or self._config.max_tokens
        mode = persona.thinking
        if self._thinking is None:
            return persona_thinking(persona), max_tokens
        if (mode if mode is not None else self._thinking.policy.default) == "off":
            return None, max_tokens  # no need to ask the Models API what the model supports
        model = persona.model or self._config.model
        limits = await self._context.limits(model) if self._context is not None else None
        plan = await self._thinking.plan(mode, message.text, limits, functools.partial(self._side_call, call))
        return fit_thinking(plan, max_tokens, limits, self._config.max_tokens)

    async def _metered(
        self, call: CallContext, request: ModelRequest, message: IncomingMessage | None = None
    ) -> AsyncIterator[ShownModelEvent]:
        """One model call within the budget: reserved before, settled after, released if it fails.

        For an answer that can be stopped (`message` has an id), a Stop ends the call, billed for what it used.
        """
        admission = await self._admit(call, request)
        if admission is not None and admission.model != request.model:
            request = dataclasses.replace(request, model=admission.model)
        complete: ModelTurnComplete | None = None
        try:
            async for event in self._model_events(message, request):
                if isinstance(event, ModelTurnComplete):
                    complete = event
                yield event
        finally:
            if complete is None and self._metering is not None:
                # Never let a storage blip here hide the model error that brought us here.
                with contextlib.suppress(StorageUnavailable):
                    await self._metering.release(call, admission)
        assert complete is not None  # the model port always ends with it or raises
        await self._settle(call, admission, complete)

    async def _side_call(self, call: CallContext, request: ModelRequest) -> str:
        """A small helper call (summary, triage) on a cheap model: metered like any other, text returned whole."""
        text = ""
        async for event in self._metered(call, request):
            if isinstance(event, ModelTurnComplete):
                text = "".join(b.text for b in event.blocks if isinstance(b, TextBlock))
        return text

    async def _save_fold(self, key: ConversationKey, fold: Fold) -> None:
        """A fold that cannot be stored is made again next time; the answer goes on either way."""
        try:
            await self._conversations.save_fold(key, fold)
        except StorageUnavailable:
            log.warning("could not store a thread's new summary; it will be made again")

    def _log_thinking(self, message: IncomingMessage, complete: ModelTurnComplete) -> None:
        if self._thinking is None or not self._thinking.policy.log_thinking:
            return
        for block in complete.blocks:
            if isinstance(block, ThinkingBlock):
                log.info("thinking in %s/%s: %s", message.key.workspace_id, message.key.channel_id, block.thinking)

    def _model_events(self, message: IncomingMessage | None, request: ModelRequest) -> AsyncIterator[ShownModelEvent]:
        """The model call's events; for an answer that can be stopped, a Stop ends the call (billed so far)."""
        interrupt = self._interrupts.get(message.answer_id or "") if message is not None else None
        if interrupt is None:
            return shown_events(self._model.stream(request))
        return stoppable_call(interrupt, self._model.stream(request), request)

    async def _settle(self, call: CallContext, admission: Admission | None, complete: ModelTurnComplete) -> None:
        """Recording must never cost the user their answer: a storage blip is logged, not raised."""
        if self._metering is None:
            return
        try:
            await self._metering.settle(call, admission, complete.model, complete.usage, complete.provider)
        except StorageUnavailable:
            log.error("could not record usage for %s (%s); the answer goes on", call.workspace_id, complete.model)

    async def _admit(self, call: CallContext, request: ModelRequest) -> Admission | None:
        return await self._metering.admit(call, request) if self._metering is not None else None

    async def _screen_reads(
        self, message: IncomingMessage, turns: Sequence[Turn], stored: StoredConversation
    ) -> tuple[list[Turn], Fold | None, MeasuredSize | None]:
        """The thread's reads of other conversations, each kept only if the current asker may see it here; the
        stored fold too, unless its summary may repeat a hidden read (then the thread is folded anew)."""
        reader, key = self._reader, message.key

        async def can_read(channel: str) -> bool:
            return reader is not None and await reader.can_read(
                key.workspace_id, channel, as_user=message.user_id, shown_in=key.channel_id
            )

        screened, hidden = await screen_foreign_reads(turns, here=key.channel_id, can_read=can_read)
        if stored.fold is not None and hidden and hidden[0] < stored.fold.upto:
            return screened, None, None
        return screened, stored.fold, stored.measured

    def _tool_context(
        self, message: IncomingMessage, history: FoldedTurns | None = None, human_urls: frozenset[str] = frozenset()
    ) -> ToolContext:
        key = message.key
        return ToolContext(
            workspace_id=key.workspace_id,
            channel_id=key.channel_id,
            thread_id=key.thread_id,
            user_id=message.user_id,
            channel=message.channel,
            reader=self._reader,
            web=self._web,
            history=history,
            human_urls=human_urls,
        )

    async def _save_eventually(self, key: ConversationKey, turn: Turn, measured: MeasuredSize | None = None) -> None:
        """An answer the user has seen must reach history even if Redis blips: retry in the background, in order.

        One queue per conversation: a later turn never overtakes an earlier one still waiting to be saved (a tool
        result stored before its tool call would make the thread unusable).
        """
        queue = self._unsaved.get(key)
        if queue is not None:
            queue.append(turn)
            return
        try:
            await self._conversations.append(key, turn, measured=measured)
        except StorageUnavailable:
            log.warning("storage unavailable while saving an answer; retrying in the background")
            self._unsaved[key] = [turn]
            task = asyncio.create_task(self._flush_unsaved(key))
            self._pending_saves.add(task)
            task.add_done_callback(self._pending_saves.discard)

    async def _flush_unsaved(self, key: ConversationKey, attempts: int = 120) -> None:
        queue = self._unsaved[key]
        try:
            for attempt in range(attempts):
                try:
                    while queue:
                        await self._conversations.append(key, queue[0])
                        queue.pop(0)
                    return
                except StorageUnavailable:
                    await asyncio.sleep(min(0.25 * 2**attempt, 5.0))
            log.error("gave up saving %d turns to history after %d attempts", len(queue), attempts)
        finally:
            del self._unsaved[key]

    async def drain(self, timeout_s: float | None = None) -> None:
        """Let background saves finish on shutdown (within `timeout_s`: a Redis that stays away must not hang it)."""
        if not self._pending_saves:
            return
        _, unfinished = await asyncio.wait(set(self._pending_saves), timeout=timeout_s)
        if unfinished:
            waiting = sum(len(turns) for turns in self._unsaved.values())
            log.error("shutting down with %d turns not saved to history: storage stayed unreachable", waiting)
            for task in unfinished:
                task.cancel()


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
