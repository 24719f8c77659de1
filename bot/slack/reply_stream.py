"""Shows a reply stream in Slack: paced edits of its message, continuation messages, and a note on failure.

How an answer shows itself depends on what its workspace can spare (limits: bot/slack/pacing.py):
- "placeholder": a quiet workspace. "Thinking…" at once, the first words as soon as they come, an edit every
  `edit_interval_s` (Slack's AI guidance: about one edit every 3 s), then the final text.
- "words": a busy one. Nothing until the first words, which are posted (chat.postMessage, not Tier 3's chat.update);
  interim edits only while the workspace's edit budget has room beyond the final edits promised to answers already
  on screen; the final edit is promised when the answer starts, so it never waits behind new answers.
- "posts": even the final edit would queue. Each message is posted once its text is complete (the answer's
  Markdown split into messages, https://docs.slack.dev/reference/methods/chat.postMessage), no edits at all.
`msg_too_long` is reported for `text` around 4,000 characters (far below the documented 40,000), so each message
holds at most `max_message_chars` of rendered text and the answer continues in the next message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, assert_never

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core import texts
from bot.core.call_windows import FairCallWindows
from bot.core.errors import BotError
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
from bot.logs import CONTENT_LOGGER
from bot.metrics import Metrics
from bot.slack.incoming import Place
from bot.slack.mrkdwn import markdown_to_mrkdwn, split_markdown
from bot.slack.paced_calls import PacedCalls
from bot.slack.pacing import (
    EDIT_INTERVAL_S,
    EDITS_PER_MINUTE,
    FINAL_SYNC_TIMEOUT_S,
    INTERIM_KEEP,
    POSTS_PER_MINUTE,
    THINKING_TICK_S,
    Pacing,
)
from bot.slack.reply_notes import FAILURE_PREFIX, with_notes
from bot.slack.views import approval_outcome, approval_prompt

log = logging.getLogger(__name__)
content_log = logging.getLogger(CONTENT_LOGGER)

# Added to the system prompt for answers shown in Slack (the core knows nothing of Slack's rendering).
SLACK_FORMATTING = (
    "Your answer is shown in Slack. Write standard Markdown: short paragraphs, bullet lists, **bold** for key "
    "points, fenced code blocks for code. Slack cannot show tables or horizontal rules, so prefer lists. Keep Slack "
    "mentions such as <@U123> and <#C123> exactly as written. Keep answers focused: people read them in a chat."
)
STATUS_TEXT = {"storage": texts.STATUS_STORAGE_RETRYING, "restart": texts.STATUS_RESTARTING}
STREAMING_CURSOR = " ▍"
# Shrink factor when Slack still says msg_too_long (its real threshold is not documented).
_TOO_LONG_SHRINK = 0.8
# Messages are split smaller on each msg_too_long down to this; refused even then, it is not about length.
MIN_MESSAGE_CHARS = 200
# A message with buttons shows its text in a section block, whose text Slack caps at 3,000 characters (Block Kit
# reference); the margin leaves room for the streaming cursor and a tool's status line.
SECTION_TEXT_LIMIT = 3_000
CONTROLS_TEXT_LIMIT = 2_850


Mode = Literal["placeholder", "words", "posts"]


class _NoRoom(Exception):
    """The workspace's edit budget has no room for an optional edit now; the next interval tries again."""


@dataclass(frozen=True, slots=True)
class RenderConfig:
    edit_interval_s: float = EDIT_INTERVAL_S
    edits_per_minute: int = EDITS_PER_MINUTE
    max_message_chars: int = 3500
    posts_per_minute: int = POSTS_PER_MINUTE

    @property
    def pacing(self) -> Pacing:
        return Pacing(self.edit_interval_s, self.edits_per_minute, self.posts_per_minute)


@dataclass(slots=True)
class _Posted:
    ts: str
    shown: str
    controls: str = ""  # the buttons it carries: "", "running" (Stop) or "final"


@dataclass
class ReplyStream:
    """One answer's messages in Slack. Every edit is paced; nothing is cut and nothing is posted twice."""

    client: AsyncWebClient
    budget: FairCallWindows
    config: RenderConfig
    workspace_id: str
    place: Place
    answer_id: str = ""  # names the edits it promises; any unique string
    text: str = ""
    status: str = field(default_factory=lambda: tr(texts.PLACEHOLDER))
    note: str | None = None
    notices: list[str] = field(default_factory=list)
    activity: str | None = None  # what a tool is doing right now, shown under the text
    committed: int = 0  # text of finished tool rounds: a retried model call must not erase it
    approvals: dict[str, tuple[str, str]] = field(default_factory=dict)  # approval id -> (prompt ts, tool)
    messages: list[_Posted] = field(default_factory=list)
    metrics: Metrics | None = None
    _thinking_since: float | None = None  # Claude is thinking and no answer text has come since
    # Buttons under the answer's last message: called with final=False while it streams, True once it is done.
    controls: Callable[[bool], list[dict[str, Any]]] | None = None
    # Called once when the answer will show nothing until it is complete ("posts"): a sign of life for the asker.
    on_held_back: Callable[[], Awaitable[None]] | None = None
    _limit: int = 0
    _started_at: float = 0.0
    _first_text_s: float | None = None  # when the first words of the answer were shown, after the placeholder
    _next_edit_at: float = 0.0
    _mode: Mode = "placeholder"
    _promised: tuple[str, ...] = ()  # edits set aside for this answer and not yet spent
    _spent_promises: tuple[str, ...] = ()  # promised edits made, to be recorded with the final edit
    _spent_at: list[float] = field(default_factory=list)  # when (epoch seconds)
    _calls: PacedCalls = field(init=False)
    _dirty: asyncio.Event = field(default_factory=asyncio.Event)
    _finished: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._limit = self.config.max_message_chars
        if self.controls is not None:
            self._limit = min(self._limit, CONTROLS_TEXT_LIMIT)
        self.answer_id = self.answer_id or uuid.uuid4().hex
        pacing = self.config.pacing
        self._calls = PacedCalls(self.client, self.budget, pacing, self.workspace_id, self.place.channel_id)

    async def show(self, events: AsyncIterator[ReplyEvent]) -> None:
        """Post the placeholder, follow the stream, and always finish with one complete final rendering.

        Messages given at construction (an answer taken over from another renderer) are edited, not re-posted.
        """
        self._started_at = asyncio.get_running_loop().time()
        if not self.messages:
            self._mode = await self._plan()
            if self._mode == "placeholder":  # its post was taken with the promise
                await self._post(self.status, self._controls_on(last=True, final=False), taken=True)
            elif self._mode == "posts" and self.on_held_back is not None:
                await self.on_held_back()
        flusher = asyncio.create_task(self._flush_while_streaming())
        outcome = "ok"
        try:
            await self._consume(events)
        except BotError as error:
            self.note = error.notice()
            outcome = type(error).__name__
        except asyncio.CancelledError:
            # Shutdown or a cancelled task: still leave a finished message behind, never a frozen "Thinking…".
            self.note = tr(texts.INTERRUPTED)
            self._finished.set()
            self._dirty.set()
            await asyncio.shield(self._finish(flusher))
            self._report("interrupted")
            raise
        except Exception:
            log.exception("reply stream failed")
            self.note = tr(texts.GENERIC_FAILURE)
            outcome = "failed"
        await self._finish(flusher)
        self._report(outcome)

    async def _plan(self) -> Mode:
        """Promise the edits this answer will need, as far as the workspace can spare them (module docstring)."""
        answer = self.answer_id
        try:
            placeholder = (f"{answer}#first", f"{answer}#final")
            keep = self.config.pacing.placeholder_keep()
            if await self._calls.promise_edits(placeholder, keep=keep, with_post=True):
                self._promised = placeholder
                return "placeholder"
            if await self._calls.promise_edits((f"{answer}#final",), keep=INTERIM_KEEP):
                self._promised = (f"{answer}#final",)
                return "words"
        except Exception as error:  # the budget's own fallbacks failed too: posting needs no promise
            log.warning("could not plan the answer's edits: %s", type(error).__name__)
        return "posts"

    def _report(self, outcome: str) -> None:
        """One line and one observation per answer: how it ended, how long it took, how soon words appeared."""
        seconds = asyncio.get_running_loop().time() - self._started_at
        if self.metrics is not None:
            self.metrics.answer_finished(outcome, seconds)
        first_text_ms = round(self._first_text_s * 1000) if self._first_text_s is not None else None
        log.info(
            "answer finished: %s",
            outcome,
            extra={
                "duration_ms": round(seconds * 1000),
                "first_text_ms": first_text_ms,
                "messages": len(self.messages),
                "delivery": self._mode,
            },
        )
        content_log.debug("answer: %s", self.text)

    async def _finish(self, flusher: asyncio.Task[None]) -> None:
        """Stop the interim edits, then write the final rendering whatever happened to them."""
        self._finished.set()
        self._dirty.set()
        try:
            await flusher
        except Exception:
            log.exception("interim edits failed; writing the final message anyway")
        try:
            await asyncio.wait_for(self._sync(final=True), timeout=FINAL_SYNC_TIMEOUT_S)
        except Exception:
            log.exception("could not write the final message")
            await self._say_not_shown()
        await asyncio.shield(self._settle_promises())

    async def _say_not_shown(self) -> None:
        """The final text could not be written: say so in a message of its own rather than leave a silent gap."""
        kwargs: dict[str, Any] = {"text": FAILURE_PREFIX + tr(texts.ANSWER_NOT_SHOWN)}
        if self.place.thread_ts:
            kwargs["thread_ts"] = self.place.thread_ts
        try:
            await self._calls.post(**kwargs)
        except Exception as error:  # Slack is unreachable too: the log line above is all that can be done
            log.warning("could not say that the answer is incomplete: %s", type(error).__name__)

    async def _settle_promises(self) -> None:
        """Promises the final edit did not settle (it failed, or nothing needed editing): give back the unused ones,
        record the edits made on the others (counting one more now: erring on the side of fewer calls)."""
        unused, spent, spent_at = self._promised, self._spent_promises, self._spent_at
        self._promised, self._spent_promises, self._spent_at = (), (), []
        with contextlib.suppress(Exception):
            if unused:
                await self._calls.release_edits(unused)
            if spent:
                await self._calls.windows.take(
                    [self.config.pacing.edits(self.workspace_id)], settle=spent, spent=spent_at
                )

    async def _consume(self, events: AsyncIterator[ReplyEvent]) -> None:
        async for event in events:
            if not isinstance(event, ThinkingStarted):
                self._thinking_since = None
            if isinstance(event, TextDelta):
                if self.activity is not None:
                    # The answer resumes after a tool round: start a new paragraph, drop the status line.
                    self.activity = None
                    if self.text and not self.text.endswith("\n\n"):
                        self.text = self.text.rstrip() + "\n\n"
                self.text += event.text
            elif isinstance(event, ToolRunning):
                if event.tool != "web_search":  # server-side search runs inside a model call, not between calls
                    self.committed = len(self.text)
                self.activity = f"_{event.status}_"
                self.status = self.activity
            elif isinstance(event, ApprovalRequested):
                await self._ask_approval(event)
            elif isinstance(event, ApprovalSettled):
                await self._settle_approval(event)
            elif isinstance(event, ThinkingStarted):
                if self._thinking_since is None:
                    self._thinking_since = asyncio.get_running_loop().time()
                    self._tick_thinking()
            elif isinstance(event, Waiting):
                self.status = tr(STATUS_TEXT.get(event.reason, texts.STATUS_STORAGE_RETRYING))
            elif isinstance(event, Notice):
                self.notices.append(event.text)
            elif isinstance(event, AttemptRestarted):
                self.text = self.text[: self.committed]
                self.status = tr(texts.STATUS_RESTARTING)
            elif isinstance(event, ReplyDone):
                if event.text and not self.text.strip():
                    self.text = event.text
                if event.stop_reason == "max_tokens":
                    self.note = tr(texts.LENGTH_LIMIT)
                elif event.stop_reason == "refusal":
                    self.note = tr(texts.REFUSED)
            else:
                assert_never(event)  # a new ReplyEvent must be shown (or knowingly ignored) here
            self._dirty.set()

    async def _flush_while_streaming(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._finished.is_set():
            await self._dirty.wait()
            delay = self._next_edit_at - loop.time()
            if delay > 0:
                # Sleep until the next paced edit, but wake at once when the stream ends.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._finished.wait(), delay)
            if self._finished.is_set():
                return
            self._dirty.clear()
            try:
                await self._sync(final=False)
                if self._mode == "posts" and self.text.strip():
                    # Complete parts are looked for once an interval, not on every delta (each look splits the text).
                    self._next_edit_at = loop.time() + self.config.edit_interval_s
            except _NoRoom:
                self._dirty.set()  # still to show: the next interval tries again
                self._next_edit_at = loop.time() + self.config.edit_interval_s
            except SlackApiError as error:
                log.warning("interim edit failed: %s", error.response.get("error"))
            except Exception as error:  # a dropped connection: the next edit (or the final one) catches up
                log.warning("interim edit failed: %s", type(error).__name__)

    def _tick_thinking(self) -> None:
        """While Claude thinks, show the seconds going by, so a long think never looks like a hang."""
        if self._thinking_since is None or self._finished.is_set():
            return
        self._dirty.set()
        asyncio.get_running_loop().call_later(THINKING_TICK_S, self._tick_thinking)

    def _thinking_status(self) -> str | None:
        if self._thinking_since is None:
            return None
        elapsed = int(asyncio.get_running_loop().time() - self._thinking_since)
        return tr(texts.THINKING_SECONDS, seconds=elapsed)

    def _renderings(self, final: bool) -> list[str]:
        pieces = split_markdown(self.text, self._limit) if self.text.strip() else []
        if not final and self._mode == "posts":
            # Only messages whose text is complete: a posted message is never edited.
            return [markdown_to_mrkdwn(piece) for piece in pieces[:-1]]
        # Only the last piece of an answer still streaming has a half-typed end to tidy; the rest is rendered whole.
        rendered = [markdown_to_mrkdwn(p, live=not final and i == len(pieces) - 1) for i, p in enumerate(pieces)]
        if not final and self._mode == "words" and not rendered:
            return []  # nothing to show before the first words: posting a status would cost an edit later
        if not final:
            thinking = self._thinking_status()
            if not rendered:
                return [thinking or self.status]
            rendered[-1] += STREAMING_CURSOR
            if thinking or self.activity:
                rendered[-1] += "\n\n" + (thinking or self.activity or "")
            return rendered
        return with_notes(rendered, self.notices, self.note, self._limit) or [tr(texts.EMPTY)]

    async def _sync(self, *, final: bool) -> None:
        """Make Slack show the current text: edit what changed, post what is new, remove what is stale. On
        msg_too_long the text is split into smaller (so more) messages, down to MIN_MESSAGE_CHARS; then it raises."""
        while True:
            try:
                await self._apply(self._renderings(final), final)
                if self._first_text_s is None and self.text.strip() and self.messages:
                    self._first_text_s = asyncio.get_running_loop().time() - self._started_at
                    if self.metrics is not None:
                        self.metrics.answer_first_text(self._first_text_s)
                return
            except SlackApiError as error:
                if error.response.get("error") != "msg_too_long" or self._limit <= MIN_MESSAGE_CHARS:
                    raise
                self._limit = max(MIN_MESSAGE_CHARS, int(self._limit * _TOO_LONG_SHRINK))
                log.warning("msg_too_long at %d chars; splitting smaller", self._limit)

    async def _apply(self, rendered: list[str], final: bool) -> None:
        for index, body in enumerate(rendered):
            last = index == len(rendered) - 1 and (final or self._mode != "posts")
            controls = self._controls_on(last=last, final=final)
            if index < len(self.messages):
                if (self.messages[index].shown, self.messages[index].controls) != (body, controls):
                    await self._edit(index, body, controls, final=final)
            else:
                await self._post(body, controls)
        if final:
            for stale in self.messages[len(rendered) :]:
                await self._calls.spend("chat.delete", channel=self.place.channel_id, ts=stale.ts)
            del self.messages[len(rendered) :]

    async def _ask_approval(self, event: ApprovalRequested) -> None:
        text, blocks = approval_prompt(event.approval_id, event.tool, event.summary, event.user_id)
        kwargs: dict[str, Any] = {"text": text, "blocks": blocks}
        if self.place.thread_ts:
            kwargs["thread_ts"] = self.place.thread_ts
        response = await self._calls.post(**kwargs)
        self.approvals[event.approval_id] = (response["ts"], event.tool)
        self.activity = tr(texts.STATUS_WAITING_APPROVAL)

    async def _settle_approval(self, event: ApprovalSettled) -> None:
        """Replace the buttons with the outcome, so nobody clicks a stale prompt."""
        if event.approval_id not in self.approvals:
            return
        ts, tool = self.approvals.pop(event.approval_id)
        text = approval_outcome(tool, event.approved, event.reason)
        await self._calls.edit(ts=ts, text=text, blocks=[])

    def _controls_on(self, *, last: bool, final: bool) -> str:
        if self.controls is None or not last:
            return ""
        return "final" if final else "running"

    def _with_controls(self, body: str, controls: str) -> dict[str, Any]:
        """With buttons, the text is shown in a section block above them and stays in `text` for notifications.

        A text-only edit drops the blocks, which is how a message loses its buttons when it is no longer the last.
        """
        if not controls or self.controls is None:
            return {}
        section = {"type": "section", "text": {"type": "mrkdwn", "text": body[:SECTION_TEXT_LIMIT]}}
        return {"blocks": [section, *self.controls(controls == "final")]}

    async def _post(self, body: str, controls: str = "", *, taken: bool = False) -> None:
        kwargs: dict[str, Any] = {"text": body, **self._with_controls(body, controls)}
        if self.place.thread_ts:
            kwargs["thread_ts"] = self.place.thread_ts
        response = await self._calls.post(taken=taken, **kwargs)
        self.messages.append(_Posted(ts=response["ts"], shown=body, controls=controls))

    async def _edit(self, index: int, body: str, controls: str = "", *, final: bool) -> None:
        """Final and first-words edits were promised, so they only wait their turn; any other interim edit goes only
        if the workspace can spare it now (else _NoRoom: skipped until the next interval)."""
        message = self.messages[index]
        blocks = self._with_controls(body, controls)
        edit = {"ts": message.ts, "text": body, **blocks}
        first_words = bool(self.text.strip()) and self._promised[:1] == (f"{self.answer_id}#first",)
        if final:
            await self._calls.edit(settle=self._promised + self._spent_promises, spent=self._spent_at, **edit)
            self._promised, self._spent_promises, self._spent_at = (), (), []
        elif first_words:
            # Made on its promise without asking (no round trip); recorded with the final edit, the promise
            # meanwhile keeping its place in the window (CallWindows.take `spent`).
            await self._calls.edit_taken(**edit)
            self._spent_promises, self._promised = self._promised[:1], self._promised[1:]
            self._spent_at.append(time.time())
        elif await self._calls.may_edit(INTERIM_KEEP):
            await self._calls.edit_taken(**edit)
        else:
            raise _NoRoom
        message.shown, message.controls = body, controls
        self._next_edit_at = asyncio.get_running_loop().time() + self.config.edit_interval_s
