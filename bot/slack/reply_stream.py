"""Shows a reply stream in Slack: a placeholder, paced edits, continuation messages, and a note on failure.

Limits (https://docs.slack.dev/apis/web-api/rate-limits and https://docs.slack.dev/reference/methods/chat.update):
- `chat.update` is Tier 3: about 50 calls a minute per workspace, shared by every answer in progress there.
  We spend from a shared budget in Redis (45/min by default, with a burst of 3) so processes agree.
- Slack's AI guidance: edit a message about once every 3 s; we pace each answer at `edit_interval_s`.
- `msg_too_long` is reported for `text` around 4,000 characters (far below the documented 40,000), so each
  message holds at most `max_message_chars` of rendered text and the answer continues in the next message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core import texts
from bot.core.errors import BotError, StorageUnavailable
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
from bot.core.ports import RateBucket, RateBudget
from bot.logs import CONTENT_LOGGER
from bot.metrics import Metrics
from bot.slack.incoming import Place
from bot.slack.mrkdwn import markdown_to_mrkdwn, split_markdown
from bot.slack.views import approval_outcome, approval_prompt

log = logging.getLogger(__name__)
content_log = logging.getLogger(CONTENT_LOGGER)

# Added to the system prompt for answers shown in Slack (the core knows nothing of Slack's rendering).
SLACK_FORMATTING = (
    "Your answer is shown in Slack. Write standard Markdown: short paragraphs, bullet lists, **bold** for key "
    "points, fenced code blocks for code. Slack cannot show tables or horizontal rules, so prefer lists. Keep Slack "
    "mentions such as <@U123> and <#C123> exactly as written. Keep answers focused: people read them in a chat."
)
THINKING_TICK_S = 3.0  # how often the "Thinking… 12s" status moves on (each tick is one paced edit)
STATUS_TEXT = {"storage": texts.STATUS_STORAGE_RETRYING, "restart": texts.STATUS_RESTARTING}
STREAMING_CURSOR = " ▍"
FAILURE_PREFIX = ":warning: "
NOTICE_PREFIX = ":information_source: "
# Generous: the final edit waits its turn for the workspace's edit budget, and with 200 answers in progress in one
# workspace the line is ~4.5 minutes long at 45 edits a minute (bench/load.py). Timing out leaves a half answer.
_FINAL_SYNC_TIMEOUT_S = 900.0
# Shrink factor when Slack still says msg_too_long (its real threshold is not documented).
_TOO_LONG_SHRINK = 0.8
# A message with buttons shows its text in a section block, whose text Slack caps at 3,000 characters (Block Kit
# reference); the margin leaves room for the streaming cursor and a tool's status line.
SECTION_TEXT_LIMIT = 3_000
CONTROLS_TEXT_LIMIT = 2_850


class _Overtaken(Exception):
    """An interim edit got its turn after the stream ended; the final rendering uses the turn instead."""


@dataclass(frozen=True, slots=True)
class RenderConfig:
    edit_interval_s: float = 2.0
    edits_per_minute: int = 45
    max_message_chars: int = 3500


@dataclass(slots=True)
class _Posted:
    ts: str
    shown: str
    controls: str = ""  # the buttons it carries: "", "running" (Stop) or "final"


@dataclass
class ReplyStream:
    """One answer's messages in Slack. Every edit is paced; nothing is cut and nothing is posted twice."""

    client: AsyncWebClient
    budget: RateBudget
    config: RenderConfig
    workspace_id: str
    place: Place
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
    _limit: int = 0
    _started_at: float = 0.0
    _first_text_s: float | None = None  # when the first words of the answer were shown, after the placeholder
    _next_edit_at: float = 0.0
    _spare_edit: bool = False  # an edit taken from the budget for an interim rendering the end of the stream overtook
    _dirty: asyncio.Event = field(default_factory=asyncio.Event)
    _finished: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._limit = self.config.max_message_chars
        if self.controls is not None:
            self._limit = min(self._limit, CONTROLS_TEXT_LIMIT)

    async def show(self, events: AsyncIterator[ReplyEvent]) -> None:
        """Post the placeholder, follow the stream, and always finish with one complete final rendering.

        Messages given at construction (an answer taken over from another renderer) are edited, not re-posted.
        """
        self._started_at = asyncio.get_running_loop().time()
        if not self.messages:
            await self._post(self.status, self._controls_on(last=True, final=False))
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
            await asyncio.wait_for(self._sync(final=True), timeout=_FINAL_SYNC_TIMEOUT_S)
        except Exception:
            log.exception("could not write the final message")

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
            except _Overtaken:
                return
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
        # Only the last piece of an answer still streaming has a half-typed end to tidy; the rest is rendered whole.
        rendered = [markdown_to_mrkdwn(p, live=not final and i == len(pieces) - 1) for i, p in enumerate(pieces)]
        if not final:
            thinking = self._thinking_status()
            if not rendered:
                return [thinking or self.status]
            rendered[-1] += STREAMING_CURSOR
            if thinking or self.activity:
                rendered[-1] += "\n\n" + (thinking or self.activity or "")
            return rendered
        notes = [NOTICE_PREFIX + markdown_to_mrkdwn(n) for n in self.notices]
        if self.note:
            notes.append(FAILURE_PREFIX + self.note)
        for note in notes:
            if rendered and len(rendered[-1]) + len(note) + 2 <= self._limit:
                rendered[-1] += "\n\n" + note
            else:
                rendered.append(note[: self._limit])
        return rendered or [tr(texts.EMPTY)]

    async def _sync(self, *, final: bool) -> None:
        """Make Slack show the current text: edit what changed, post what is new, remove what is stale."""
        for _ in range(5):
            try:
                await self._apply(self._renderings(final), final)
                if self._first_text_s is None and self.text.strip():
                    self._first_text_s = asyncio.get_running_loop().time() - self._started_at
                    if self.metrics is not None:
                        self.metrics.answer_first_text(self._first_text_s)
                return
            except SlackApiError as error:
                if error.response.get("error") != "msg_too_long":
                    raise
                self._limit = int(self._limit * _TOO_LONG_SHRINK)
                log.warning("msg_too_long at %d chars; splitting smaller", self._limit)

    async def _apply(self, rendered: list[str], final: bool) -> None:
        for index, body in enumerate(rendered):
            controls = self._controls_on(last=index == len(rendered) - 1, final=final)
            if index < len(self.messages):
                if (self.messages[index].shown, self.messages[index].controls) != (body, controls):
                    await self._edit(index, body, controls, final=final)
            else:
                await self._post(body, controls)
        if final:
            for stale in self.messages[len(rendered) :]:
                await self._call("chat_delete", channel=self.place.channel_id, ts=stale.ts)
            del self.messages[len(rendered) :]

    async def _ask_approval(self, event: ApprovalRequested) -> None:
        text, blocks = approval_prompt(event.approval_id, event.tool, event.summary, event.user_id)
        kwargs: dict[str, Any] = {"channel": self.place.channel_id, "text": text, "blocks": blocks}
        if self.place.thread_ts:
            kwargs["thread_ts"] = self.place.thread_ts
        response = await self._call("chat_postMessage", **kwargs)
        self.approvals[event.approval_id] = (response["ts"], event.tool)
        self.activity = tr(texts.STATUS_WAITING_APPROVAL)

    async def _settle_approval(self, event: ApprovalSettled) -> None:
        """Replace the buttons with the outcome, so nobody clicks a stale prompt."""
        if event.approval_id not in self.approvals:
            return
        ts, tool = self.approvals.pop(event.approval_id)
        text = approval_outcome(tool, event.approved, event.reason)
        await self._call("chat_update", channel=self.place.channel_id, ts=ts, text=text, blocks=[])

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

    async def _post(self, body: str, controls: str = "") -> None:
        kwargs: dict[str, Any] = {"channel": self.place.channel_id, "text": body, **self._with_controls(body, controls)}
        if self.place.thread_ts:
            kwargs["thread_ts"] = self.place.thread_ts
        response = await self._call("chat_postMessage", **kwargs)
        self.messages.append(_Posted(ts=response["ts"], shown=body, controls=controls))

    async def _edit(self, index: int, body: str, controls: str = "", *, final: bool) -> None:
        if self._spare_edit:
            self._spare_edit = False
        else:
            await self._wait_for_budget()
        if not final and self._finished.is_set():
            # The answer ended while this edit waited its turn: the final rendering takes the turn, rather than
            # spend it on a stale rendering and then queue again behind every other answer in the workspace.
            self._spare_edit = True
            raise _Overtaken
        message = self.messages[index]
        blocks = self._with_controls(body, controls)
        await self._call("chat_update", channel=self.place.channel_id, ts=message.ts, text=body, **blocks)
        message.shown, message.controls = body, controls
        self._next_edit_at = asyncio.get_running_loop().time() + self.config.edit_interval_s

    async def _wait_for_budget(self) -> None:
        bucket = RateBucket("chat.update", self.workspace_id)
        while True:
            try:
                wait_s = await self.budget.reserve(bucket, self.config.edits_per_minute)
            except StorageUnavailable:
                # Without the shared budget, fall back to this process's own pace rather than stall the answer.
                wait_s = 0.0
                await asyncio.sleep(60 / self.config.edits_per_minute)
            if wait_s <= 0:
                return
            await asyncio.sleep(wait_s)

    async def _call(self, method: str, **kwargs: Any) -> Any:
        """Call the Web API; a 429 slows every answer in the workspace by its Retry-After instead of failing."""
        while True:
            try:
                return await getattr(self.client, method)(**kwargs)
            except SlackApiError as error:
                if error.response.status_code != 429:
                    raise
                retry_after = float(error.response.headers.get("Retry-After", "1") or 1)
                log.warning("%s rate limited; holding off %.0f s", method, retry_after)
                with contextlib.suppress(StorageUnavailable):
                    await self.budget.hold_off(RateBucket("chat.update", self.workspace_id), retry_after)
                await asyncio.sleep(retry_after)
