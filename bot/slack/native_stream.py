"""Shows a reply stream with Slack's native streaming: chat.startStream, chat.appendStream, chat.stopStream.

Whatever it cannot do, it hands to the edit-in-place ReplyStream, which then owns the rest of the answer:
- Slack refuses streaming (a workspace without the feature, a missing scope, an unknown method...). Before anything
  was shown the whole answer goes to ReplyStream. Mid-answer the stream is stopped and ReplyStream takes over its
  message with chat.update, rewriting it from the full text, so nothing is lost or shown twice (slack_sdk names
  chat.update as the fallback for a stream that can no longer be appended to).
- An approval prompt, a failed model call whose shown text must be taken back, an error, or an answer longer than
  one streamed message should hold.

Limits (bot/slack/pacing.py): appendStream is Tier 4 (~100/min per workspace), startStream and stopStream Tier 2
(https://docs.slack.dev/reference/methods/chat.startStream): an answer streams natively only when the workspace can
spare a start now and a stop promised for its end, else the fallback shows it from the start. markdown_text is at
most 12,000 characters per call. Streams must be thread replies, and in
channels they need the recipient's user and team ids. Blocks (our buttons) are only accepted by stopStream, so while
the answer streams its Stop is Slack's own stop control, which later appends see as `stopped_by_user`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, assert_never

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_chat_stream import AsyncChatStream
from slack_sdk.web.async_client import AsyncWebClient

from bot.core import texts
from bot.core.call_windows import FairCallWindows
from bot.core.events import (
    ApprovalRequested,
    ApprovalSettled,
    AttemptRestarted,
    Notice,
    ReplyDone,
    ReplyEvent,
    TextDelta,
    ThinkingStarted,
    ToolRunning,
    Waiting,
)
from bot.core.i18n import tr
from bot.slack.incoming import Place
from bot.slack.pacing import NATIVE_FLUSH_INTERVAL_S, PROMISE_TTL_S, allowance
from bot.slack.reply_notes import FAILURE_PREFIX, NOTICE_PREFIX
from bot.slack.reply_stream import ReplyStream, _Posted

log = logging.getLogger(__name__)

# Per call, markdown_text is capped at 12,000 characters. How much one streamed message may hold in total is not
# documented (UNVERIFIED); past this the edit-in-place path takes over and continues in further messages.
MAX_STREAMED_CHARS = 12_000
# Refusals that will not go away on the next answer: native streaming is skipped in that workspace for a while.
LASTING_REFUSALS = frozenset(
    {
        "unknown_method",
        "not_allowed",
        "not_allowed_token_type",
        "missing_scope",
        "invalid_auth",
        "not_authed",
        "access_denied",
        "feature_not_enabled",
        "method_deprecated",
        "team_access_not_granted",
    }
)
REFUSAL_MEMORY_S = 3600.0


class NativeRefusals:
    """Workspaces whose Slack recently refused native streaming, so their answers skip straight to the fallback.

    Per process: each process learns it with one refused call, which is cheap and never visible to the user.
    """

    def __init__(self, clock: Callable[[], float] | None = None, *, capacity: int = 10_000) -> None:
        # Oldest first (all kept equally long): the lapsed ones are dropped from the front, so a bot in many
        # workspaces does not keep one entry per workspace that ever refused.
        self._until: OrderedDict[str, float] = OrderedDict()
        self._clock = clock or (lambda: asyncio.get_running_loop().time())
        self._capacity = capacity

    def refused(self, workspace_id: str) -> bool:
        return self._until.get(workspace_id, 0.0) > self._clock()

    def remember(self, workspace_id: str, error: str) -> None:
        if error in LASTING_REFUSALS:
            log.warning("Slack refused native streaming (%s); using message edits for an hour", error)
            now = self._clock()
            while self._until and (next(iter(self._until.values())) <= now or len(self._until) >= self._capacity):
                self._until.popitem(last=False)
            self._until[workspace_id] = now + REFUSAL_MEMORY_S
            self._until.move_to_end(workspace_id)

    def __len__(self) -> int:
        return len(self._until)


async def show_thinking(client: AsyncWebClient, place: Place, budget: FairCallWindows, workspace_id: str) -> None:
    """Slack's "is thinking…" status under the thread; it clears itself when the bot posts (best effort: skipped
    when the workspace's allowance for it is spent)."""
    if place.thread_ts is None:
        return
    if not await budget.try_take([allowance("assistant.threads.setStatus", workspace_id)], keep=0):
        return
    try:
        await client.assistant_threads_setStatus(
            channel_id=place.channel_id, thread_ts=place.thread_ts, status=tr(texts.PANE_THINKING_STATUS)
        )
    except SlackApiError as error:
        log.info("could not set the thinking status: %s", error.response.get("error"))


@dataclass
class NativeReplyStream:
    """One answer streamed natively into one message; `fallback` builds the ReplyStream that takes over if needed."""

    client: AsyncWebClient
    budget: FairCallWindows
    workspace_id: str
    place: Place
    recipient_user_id: str
    fallback: Callable[..., ReplyStream]  # keyword arguments: the ReplyStream fields holding the answer so far
    refusals: NativeRefusals
    controls: Callable[[bool], list[dict[str, Any]]] | None = None
    on_user_stop: Callable[[], Awaitable[None]] | None = None
    # Told the streamed message's ts once Slack gave it (chat.startStream), so another process can finish the
    # stream should this one die (bot/slack/recovery.py).
    on_started: Callable[[str], Awaitable[None]] | None = None
    text: str = ""
    committed: int = 0  # text of finished tool rounds, which a retried model call keeps
    activity: str | None = None
    notices: list[str] = field(default_factory=list)
    note: str | None = None
    sent: int = 0  # how much of `text` Slack has
    _tasks: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (position in text, task chunk)
    _task_count: int = 0
    _open_task: tuple[str, str] | None = None  # (id, title) of the step shown as running
    _stream: AsyncChatStream | None = None
    _broken: str | None = None  # why Slack stopped taking appends
    _next_flush_at: float = 0.0
    _stop_promise: tuple[str, ...] = ()  # the chat.stopStream set aside for this answer's end
    _io: asyncio.Lock = field(default_factory=asyncio.Lock)
    _dirty: asyncio.Event = field(default_factory=asyncio.Event)
    _finished: asyncio.Event = field(default_factory=asyncio.Event)

    async def show(self, events: AsyncIterator[ReplyEvent]) -> None:
        """Stream the answer; on anything native streaming cannot show, hand the rest to the fallback."""
        assert self.place.thread_ts is not None  # streams are always thread replies
        await show_thinking(self.client, self.place, self.budget, self.workspace_id)  # costs no Tier 3 call
        if not await self._can_stream():
            await self.fallback().show(events)  # in a busy workspace it may show nothing until the first words
            return
        self._stream = await self.client.chat_stream(
            channel=self.place.channel_id,
            thread_ts=self.place.thread_ts,
            recipient_user_id=self.recipient_user_id,
            recipient_team_id=self.workspace_id,
        )
        flusher = asyncio.create_task(self._flush_while_streaming())
        pending: ReplyEvent | None = None
        failure: BaseException | None = None
        try:
            async for event in events:
                if await self._cannot_show(event):
                    pending = event
                    break
                self._take(event)
                self._dirty.set()
                if self._broken:
                    break
        except (Exception, asyncio.CancelledError) as error:
            failure = error
        self._finished.set()
        self._dirty.set()
        await flusher
        if pending is None and failure is None and not self._broken:
            await self._finish()
        if self._stop_promise:  # the stream ended without its stop (the fallback took over): give it back
            with contextlib.suppress(Exception):
                await self.budget.release(allowance("chat.stopStream", self.workspace_id), self._stop_promise)
            self._stop_promise = ()
        if pending is not None or failure is not None or self._broken:
            await self._hand_over(_rest(pending, failure, events, user_stopped=self._broken == "stopped_by_user"))

    async def _can_stream(self) -> bool:
        """A start now and a stop promised for the end, or not at all (Tier 2: 20 a minute per workspace)."""
        stop = allowance("chat.stopStream", self.workspace_id)
        promise = (f"{uuid.uuid4().hex}#stop",)
        if not await self.budget.promise(stop, promise, keep=0, ttl_s=PROMISE_TTL_S):
            return False
        if await self.budget.try_take([allowance("chat.startStream", self.workspace_id)], keep=0):
            self._stop_promise = promise
            return True
        await self.budget.release(stop, promise)
        return False

    async def _stop_turn(self) -> None:
        """Wait for the promised chat.stopStream's turn (or an ordinary one, should the promise have lapsed)."""
        promise, self._stop_promise = self._stop_promise, ()
        await self.budget.take([allowance("chat.stopStream", self.workspace_id)], settle=promise)

    async def _cannot_show(self, event: ReplyEvent) -> bool:
        if isinstance(event, ApprovalRequested):
            return True  # approval prompts and their outcome live in the fallback
        if isinstance(event, TextDelta):
            return len(self.text) + len(event.text) > MAX_STREAMED_CHARS
        if isinstance(event, AttemptRestarted):
            async with self._io:  # an append in flight may be sending the text about to be taken back
                return self.sent > self.committed
        return False

    def _take(self, event: ReplyEvent) -> None:
        """Assemble the text as ReplyStream would, so a takeover shows the same answer."""
        if isinstance(event, TextDelta):
            if self.activity is not None:
                self.activity = None
                self._close_task()
                if self.text and not self.text.endswith("\n\n"):
                    # Append only: part of the text may be on its way to Slack, so nothing before is trimmed.
                    self.text += "\n" if self.text.endswith("\n") else "\n\n"
            self.text += event.text
        elif isinstance(event, ToolRunning):
            if event.tool != "web_search":  # server-side search runs inside a model call, not between calls
                self.committed = len(self.text)
            self._close_task()
            self.activity = f"_{event.status}_"
            self._start_task(event.status)
        elif isinstance(event, Notice):
            self.notices.append(event.text)
        elif isinstance(event, AttemptRestarted):
            self.text = self.text[: self.committed]
            self._tasks = [(at, chunk) for at, chunk in self._tasks if at <= self.committed]
        elif isinstance(event, ReplyDone):
            self._close_task()
            if event.text and not self.text.strip():
                self.text = event.text
            if event.stop_reason == "max_tokens":
                self.note = tr(texts.LENGTH_LIMIT)
            elif event.stop_reason == "refusal":
                self.note = tr(texts.REFUSED)
        elif isinstance(event, ThinkingStarted | Waiting | ApprovalRequested | ApprovalSettled):
            pass  # Slack shows its own "thinking" state; approvals hand the answer to the fallback (_cannot_show)
        else:
            assert_never(event)  # a new ReplyEvent must be shown (or knowingly ignored) here

    def _start_task(self, title: str) -> None:
        """A tool at work shows as a task card in the message ("Reading #general…"), marked complete after."""
        self._task_count += 1
        self._open_task = (f"step-{self._task_count}", title)
        self._tasks.append((len(self.text), _task_chunk(*self._open_task, "in_progress")))

    def _close_task(self) -> None:
        if self._open_task is not None:
            self._tasks.append((len(self.text), _task_chunk(*self._open_task, "complete")))
            self._open_task = None

    def _outbox(self, tail: str = "") -> tuple[list[dict[str, Any]], int]:
        """Chunks for everything Slack does not have yet (text and task cards in order), and the text's end."""
        end = len(self.text)
        chunks: list[dict[str, Any]] = []
        position = self.sent
        for at, chunk in self._tasks:
            if at > position:
                chunks.append({"type": "markdown_text", "text": self.text[position:at]})
                position = at
            chunks.append(chunk)
        if end > position or tail:
            chunks.append({"type": "markdown_text", "text": self.text[position:end] + tail})
        return [c for c in chunks if c["type"] != "markdown_text" or c["text"]], end

    async def _flush_while_streaming(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._finished.is_set() and not self._broken:
            await self._dirty.wait()
            delay = self._next_flush_at - loop.time()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._finished.wait(), delay)
            if self._finished.is_set():
                return
            self._dirty.clear()
            await self._flush()

    async def _flush(self) -> None:
        async with self._io:
            chunks, end = self._outbox()
            if not chunks:
                return
            taken = len(self._tasks)  # task cards added while this append is on its way go with the next one
            await self._wait_for_budget()
            if await self._send(lambda: self._append(chunks)):
                self.sent = end
                del self._tasks[:taken]
                self._next_flush_at = asyncio.get_running_loop().time() + NATIVE_FLUSH_INTERVAL_S

    async def _append(self, chunks: list[dict[str, Any]]) -> None:
        """The first append starts the stream (chat.startStream), later ones add to it (chat.appendStream)."""
        assert self._stream is not None
        started = self._stream.ts is not None
        await self._stream.append(chunks=chunks)
        if not started and self._stream.ts is not None and self.on_started is not None:
            try:
                await self.on_started(self._stream.ts)
            except Exception:  # the answer streams on; only its recovery after a crash would miss the ts
                log.exception("could not note where the answer streams")

    async def _finish(self) -> None:
        """The rest of the text, the notes and the buttons, in one stopStream (after a startStream if need be)."""
        stream = self._stream
        assert stream is not None
        async with self._io:
            chunks, end = self._outbox(self._tail())
            if stream.ts is None:
                if not await self._send(lambda: self._append(chunks)):
                    return
                self.sent, self._tasks, chunks = end, [], []
            blocks = self.controls(True) if self.controls is not None else None
            await self._stop_turn()
            if await self._send(lambda: stream.stop(chunks=chunks or None, blocks=blocks)):
                self.sent, self._tasks = end, []

    def _tail(self) -> str:
        notes = [NOTICE_PREFIX + notice for notice in self.notices]
        if self.note:
            notes.append(FAILURE_PREFIX + self.note)
        if not notes:
            return "" if self.text.strip() else tr(texts.EMPTY)
        return ("\n\n" if self.text.strip() else "") + "\n\n".join(notes)

    async def _send(self, make_call: Callable[[], Awaitable[Any]]) -> bool:
        """One streaming call, repeated after a 429; any other failure marks the stream broken (the fallback takes
        over from there)."""
        while True:
            try:
                await make_call()
                return True
            except SlackApiError as error:
                if error.response.status_code != 429:
                    self._broken = str(error.response.get("error") or "error")
                    break
                retry_after = float(error.response.headers.get("Retry-After", "1") or 1)
                log.warning("Slack streaming rate limited; holding off %.0f s", retry_after)
                await self.budget.hold_off(allowance("chat.appendStream", self.workspace_id), retry_after)
                await asyncio.sleep(retry_after)
            except Exception as error:  # a dropped connection: whether it landed is unknown; chat.update rewrites it
                self._broken = type(error).__name__
                break
        log.warning("native streaming stopped (%s); continuing with message edits", self._broken)
        if self._stream is None or self._stream.ts is None:
            self.refusals.remember(self.workspace_id, self._broken or "")
        if self._broken == "stopped_by_user":
            # Slack's own stop control: keep what the person saw when they pressed it, and stop the answer too.
            self.text = self.text[: self.sent]
            self.notices.append(tr(texts.STOPPED))
            if self.on_user_stop is not None:
                await self.on_user_stop()
        return False

    async def _hand_over(self, events: AsyncIterator[ReplyEvent]) -> None:
        """Close the stream (best effort) and let ReplyStream rewrite its message and carry on from here."""
        messages = []
        if self._stream is not None and self._stream.ts is not None:
            ts = self._stream.ts
            if self._broken != "stopped_by_user":
                with contextlib.suppress(Exception):
                    await self._stop_turn()
                    await self.client.chat_stopStream(channel=self.place.channel_id, ts=ts)
            messages = [_Posted(ts=ts, shown="")]  # shown "" : the first sync rewrites it from the text
        fallback = self.fallback(
            text=self.text,
            committed=self.committed,
            activity=self.activity,
            notices=self.notices,
            note=self.note,
            messages=messages,
        )
        await fallback.show(events)

    async def _wait_for_budget(self) -> None:
        await self.budget.take([allowance("chat.appendStream", self.workspace_id)])


def _task_chunk(task_id: str, title: str, status: str) -> dict[str, Any]:
    return {"type": "task_update", "id": task_id, "title": title, "status": status}


async def _rest(
    pending: ReplyEvent | None,
    failure: BaseException | None,
    events: AsyncIterator[ReplyEvent],
    *,
    user_stopped: bool,
) -> AsyncIterator[ReplyEvent]:
    """What the fallback still has to show: the event that needed it, the rest of the stream, or the failure.

    After the person pressed Slack's stop, text written meanwhile is not shown and "Stopped" is already noted.
    """
    if failure is not None:
        raise failure
    if pending is not None:
        yield pending
    async for event in events:
        if user_stopped and (isinstance(event, TextDelta) or event == Notice(tr(texts.STOPPED))):
            continue
        yield event
