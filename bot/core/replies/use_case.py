"""The "answer this message" use case: history in, a stream of reply events out, both turns saved.

`Replies` owns the conversation: it locks the thread, stores the question, picks the persona and hands the answer to
the pipeline (`rounds.AnswerPipeline`: fit → plan → call → save → tools). Regenerate and Stop are handled here too.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

from bot.core import texts
from bot.core.answers import AnswerRecord, Answers, AnswerState, CannotRegenerate, Interrupt, is_latest_question
from bot.core.attachments import DEFAULT_FILE_PROMPT, Attachments, ResolvedHistory
from bot.core.context_window import ContextWindow
from bot.core.conversation import (
    Block,
    ConversationKey,
    IncomingMessage,
    MediaBlock,
    StoredConversation,
    TextBlock,
    Turn,
)
from bot.core.errors import StorageUnavailable
from bot.core.events import Notice, ReplyDone, ReplyEvent, Waiting
from bot.core.i18n import tr, trn
from bot.core.leases import AnswerNotSaved, Lease, LeaseLost
from bot.core.metering import Metering
from bot.core.personas import Persona, PersonaCatalog
from bot.core.ports import ChannelSettingsStore, ConversationStore, LanguageModel
from bot.core.prompts import ReplyConfig, message_header
from bot.core.replies.history_writer import HistoryWriter
from bot.core.replies.model_calls import ModelCalls
from bot.core.replies.rounds import AnswerPipeline, PipelineParts
from bot.core.thinking import ThinkingPlanner
from bot.core.tools.registry import ConversationReader, WebFetcher
from bot.core.tools.runner import ToolRunner

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
        self._conversations = conversations
        self._personas = personas
        self._channel_settings = channel_settings
        self._attachments = attachments
        self._storage_wait_s = storage_wait_s
        self._clock = clock
        self._answers = answers
        self._interrupts: dict[str, Interrupt] = {}  # answer id -> its Stop, for answers running in this process
        self._calls = calls = ModelCalls(
            model, config, metering=metering, context=context, thinking=thinking, interrupts=self._interrupts
        )
        self._writer = HistoryWriter(conversations, save_wait_s=storage_wait_s)
        self._pipeline = AnswerPipeline(
            PipelineParts(
                model_calls=calls,
                writer=self._writer,
                config=config,
                clock=clock,
                interrupts=self._interrupts,
                conversations=conversations,
                tools=tools,
                reader=reader,
                web=web,
                context=context,
                max_tool_rounds=max_tool_rounds,
            )
        )

    async def is_following(self, key: ConversationKey) -> bool:
        """A thread the bot has answered in before; plain follow-ups there continue the conversation."""
        return await self._patiently(lambda: self._conversations.exists(key))

    async def dm_conversation(self, workspace_id: str, channel_id: str, message_id: str) -> ConversationKey:
        session = await self._patiently(lambda: self._conversations.dm_session(workspace_id, channel_id, message_id))
        # Namespaced: a DM thread hanging off the session's first message must not share its history.
        return ConversationKey(workspace_id, channel_id, f"dm-session-{session}")

    async def forget(self, key: ConversationKey) -> bool:
        """Start the thread over: its history and summary go (usage records stay); waits for a running answer."""
        async with self._conversations.lock(key) as lease:
            return await self._conversations.forget(key, lease=lease)

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
        """Answer the question of answer `message.regenerates` again; its old answer leaves the history.

        The answer's record is read under the thread's lock: a second click waiting for the first one's answer then
        finds it replaced, instead of answering (and rewinding) again."""
        assert self._answers is not None and message.regenerates is not None
        async with self._conversations.lock(message.key) as lease:
            old = await self._answers.record(message.key.workspace_id, message.regenerates)
            loaded = lease.preloaded or await self._conversations.load(message.key)
            stored = await self._writer.take_over(message.key, lease, loaded)
            index = old.question_index if old is not None else None
            if old is None or old.state == "replaced" or index is None or not is_latest_question(stored.turns, index):
                yield Notice(tr(texts.REGENERATE_MOVED_ON))
                yield ReplyDone(text="")
                return
            await self._conversations.rewind(message.key, index + 1, lease=lease, exchange="open")
            await self._answers.replaced(old)
            persona = self._personas.resolve(stored.persona or old.persona)
            await self._answers.asked(message, persona.name, index)
            resolved = await self._resolve(message, stored.turns[: index + 1])
            # A fold never reaches the question (the exchange in progress is never folded), so it stays valid.
            kept = dataclasses.replace(stored, turns=stored.turns[: index + 1], measured=None)
            async for event in self._answered(message, persona, resolved, kept, lease):
                yield event

    async def _answer(self, message: IncomingMessage) -> AsyncIterator[ReplyEvent]:
        """Stream the answer; the user's turn is saved before the model is called so a failure never loses it.

        Under the thread's lease: an answer another holder left unfinished is closed first, then the question is
        stored with its exchange opened (the answer's last save closes it)."""
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
                async with self._conversations.lock(message.key, order=_asked_at(message)) as lease:
                    stored = lease.preloaded or await self._conversations.load(message.key)
                    stored = await self._writer.take_over(message.key, lease, stored)
                    persona = await self._persona_for(message, stored.persona)
                    new_thread = stored.persona != persona.name
                    await self._conversations.append(
                        message.key,
                        user_turn,
                        persona=persona.name if new_thread else None,
                        lease=lease,
                        exchange="open",
                    )
                    started = True
                    if self._answers is not None and message.answer_id is not None:
                        await self._answers.asked(message, persona.name, len(stored.turns))
                    resolved = await self._resolve(message, [*stored.turns, user_turn])
                    if resolved.dropped and media:
                        yield Notice(trn(texts.MEDIA_LEFT_OUT, resolved.dropped))
                    async for event in self._answered(message, persona, resolved, stored, lease):
                        yield event
                return
            except StorageUnavailable:
                if started or asyncio.get_running_loop().time() >= deadline:
                    raise
                if not waited:
                    waited = True
                    yield Waiting("storage")
                await asyncio.sleep(0.5)

    async def _answered(
        self,
        message: IncomingMessage,
        persona: Persona,
        resolved: ResolvedHistory,
        stored: StoredConversation,
        lease: Lease,
    ) -> AsyncIterator[ReplyEvent]:
        """The pipeline's answer; one that fails still leaves its exchange closed and the history valid."""
        try:
            async for event in self._pipeline.run(message, persona, resolved, stored, lease):
                yield event
        except (LeaseLost, AnswerNotSaved):
            raise  # not ours to write any more / storage is away: the thread's next holder closes the exchange
        except Exception:
            await self._writer.close_after_failure(message.key, lease)
            raise

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

    async def drain(self, timeout_s: float | None = None) -> None:
        """Called on shutdown: usage refused by a storage blip still gets its chance to be recorded (within
        `timeout_s`); answers no longer leave saves behind them (see HistoryWriter)."""
        await self._calls.late.drain(timeout_s)
        await self._writer.drain(timeout_s)


def _asked_at(message: IncomingMessage) -> float | None:
    """When the question was asked, for its place among the thread's waiting questions: a chat surface's message id
    is its time where it can be read so (Slack's ts: epoch seconds); otherwise None, i.e. when it is handled."""
    try:
        asked_at = float(message.message_id)
    except ValueError:
        return None
    return asked_at if math.isfinite(asked_at) else None  # "nan"/"inf" parse too, and no queue can order them
