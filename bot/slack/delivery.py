"""Delivery of an answer to Slack: which renderer shows it, its preparation read ahead, and the answers in progress.

Listeners decide *whether* to answer (bot/slack/listeners/answering.py); this module decides *how* the answer reaches
the screen. The renderers pace themselves against the workspace's shared Slack budgets (bot/slack/pacing.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Protocol

from slack_sdk.web.async_client import AsyncWebClient

from bot.core import texts
from bot.core.conversation import IncomingMessage
from bot.core.events import ReplyEvent
from bot.core.i18n import tr
from bot.logs import CONTENT_LOGGER
from bot.slack.incoming import Place
from bot.slack.native_stream import NativeReplyStream
from bot.slack.pacing import allowance
from bot.slack.read_ahead import ReadAhead
from bot.slack.reply_stream import ReplyStream
from bot.slack.views import answer_controls

if TYPE_CHECKING:
    from bot.slack.deps import SlackDeps

log = logging.getLogger(__name__)
content_log = logging.getLogger(CONTENT_LOGGER)


class AnswersInProgress:
    """The answers being shown, so shutdown can turn new work away, let these finish, and close the rest cleanly."""

    def __init__(self) -> None:
        self._tasks: dict[asyncio.Task[Any], int] = {}  # how many `track`s each task is inside
        self._idle = asyncio.Event()
        self._idle.set()
        self.accepting = True

    def __len__(self) -> int:
        return len(self._tasks)

    @contextlib.asynccontextmanager
    async def track(self) -> AsyncIterator[None]:
        """The current task is in progress until the outermost `track` it entered ends: a listener enters it at its
        first line (an event acked before shutdown must not be dropped while it is still looking things up), and
        the answer it delivers enters it again."""
        task = asyncio.current_task()
        assert task is not None  # listeners always run in a task
        self._tasks[task] = self._tasks.get(task, 0) + 1
        self._idle.clear()
        try:
            yield
        finally:
            self._tasks[task] -= 1
            if not self._tasks[task]:
                del self._tasks[task]
            if not self._tasks:
                self._idle.set()

    def stop_accepting(self) -> None:
        self.accepting = False

    async def finish(self, grace_s: float, *, close_timeout_s: float = 10.0) -> int:
        """Wait up to `grace_s` for answers to end; cancel the rest, which then end with a note in their message
        (ReplyStream's cancellation path), and give those notes `close_timeout_s`. Returns how many were cut short."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), grace_s)
        late = [task for task in self._tasks if not task.done()]
        if not late:
            return 0
        log.warning("%d answers still running after %g s; closing them with a note", len(late), grace_s)
        for task in late:
            task.cancel()
        _, stuck = await asyncio.wait(late, timeout=close_timeout_s)
        if stuck:
            log.error("%d answers did not close within %g s", len(stuck), close_timeout_s)
        return len(late)


class Renderer(Protocol):
    async def show(self, events: AsyncIterator[ReplyEvent]) -> None: ...


def new_answer_id() -> str:
    return uuid.uuid4().hex


def in_assistant_pane(place: Place) -> bool:
    """A thread in a DM with the bot: what Slack's assistant pane shows (Bolt's Assistant claims these too)."""
    return place.channel_id.startswith("D") and place.thread_ts is not None


def streams_natively(deps: SlackDeps, place: Place) -> bool:
    """SLACK_NATIVE_STREAMING: "true" wherever a thread allows it, "auto" in the assistant pane, "false" never."""
    if place.thread_ts is None or deps.native_streaming == "false":
        return False
    return deps.native_streaming == "true" or in_assistant_pane(place)


async def deliver(deps: SlackDeps, client: AsyncWebClient, message: IncomingMessage, place: Place) -> None:
    """Show the core's answer to `message` in Slack, tracked as in progress until it is on screen in full."""
    message = dataclasses.replace(message, answer_id=new_answer_id())
    renderer = renderer_for(deps, client, message, place)
    content_log.debug("question: %s", message.text)
    # The answer ends (its record closed, no longer live) once shown in full: the core finishes it before that.
    async with deps.in_progress.track(), deps.answers.shown(message.key.workspace_id, message.answer_id or ""):
        # Prepared while the placeholder is being posted: Slack's round trip is then off the time to the first words.
        answer = ReadAhead(_with_context(deps, client, message, place))
        try:
            await renderer.show(answer)
        finally:
            await answer.stop()  # done by now, unless the placeholder could not be posted


async def tell_the_asker_it_is_coming(
    deps: SlackDeps, client: AsyncWebClient, message: IncomingMessage, place: Place
) -> None:
    """A saturated workspace posts answers only when complete: meanwhile the asker alone sees that it is coming.

    chat.postEphemeral is Tier 4, not the Tier 3 that is exhausted (https://docs.slack.dev/reference/methods/
    chat.postEphemeral); taken only if its own budget has room now, and never worth failing the answer over.
    """
    workspace = message.key.workspace_id
    try:
        if not await deps.budget.try_take([allowance("chat.postEphemeral", workspace)], keep=0):
            return
        await client.chat_postEphemeral(
            channel=place.channel_id,
            user=message.user_id,
            thread_ts=place.thread_ts,
            text=tr(texts.COMING_WHEN_READY),
        )
    except Exception as error:  # a sign of life is a courtesy: the answer goes on without it
        log.info("could not tell the asker the answer is coming: %s", type(error).__name__)


def renderer_for(deps: SlackDeps, client: AsyncWebClient, message: IncomingMessage, place: Place) -> Renderer:
    """Native streaming where chosen and not refused lately, else (and as its fallback) edits of a posted message."""
    workspace, answer_id = message.key.workspace_id, message.answer_id or ""
    controls = functools.partial(answer_controls, answer_id) if answer_id else None
    edits = functools.partial(
        ReplyStream,
        client=client,
        budget=deps.budget,
        config=deps.render,
        workspace_id=workspace,
        place=place,
        metrics=deps.metrics,
        answer_id=answer_id,
        on_held_back=functools.partial(tell_the_asker_it_is_coming, deps, client, message, place),
    )
    if not streams_natively(deps, place) or deps.native_refusals.refused(workspace):
        return edits(controls=controls)  # its "Thinking…" placeholder stands in for the pane's status

    async def stop_for_user() -> None:
        await deps.answers.stop(workspace, answer_id, message.user_id)

    return NativeReplyStream(
        client=client,
        budget=deps.budget,
        workspace_id=workspace,
        place=place,
        recipient_user_id=message.user_id,
        fallback=functools.partial(edits, controls=controls),
        refusals=deps.native_refusals,
        controls=controls,
        on_user_stop=stop_for_user,
        on_started=functools.partial(deps.answers.streamed, workspace, answer_id),
    )


async def _with_context(
    deps: SlackDeps, client: AsyncWebClient, message: IncomingMessage, place: Place
) -> AsyncIterator[ReplyEvent]:
    """Record the answer and look up who asks and where only once the placeholder is up, so the first thing the
    user sees is not delayed (by a slow directory, or by Redis being down)."""
    await deps.answers.begin(message, shown_in=place.thread_ts or "")
    key = message.key
    asker, channel = await asyncio.gather(
        deps.directory.asker(client, key.workspace_id, message.user_id),
        deps.directory.channel(client, key.workspace_id, key.channel_id),
    )
    async for event in deps.replies.answer(dataclasses.replace(message, asker=asker, channel=channel)):
        yield event
