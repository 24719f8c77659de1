"""The shared step of every listener that answers: ask the core, show the stream in Slack."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.access import NOT_ALLOWED_MESSAGE
from bot.core.conversation import IncomingMessage
from bot.core.errors import StorageUnavailable
from bot.core.events import ReplyEvent
from bot.slack.incoming import Place
from bot.slack.read_ahead import ReadAhead
from bot.slack.reply_stream import ReplyStream

if TYPE_CHECKING:
    from bot.slack.app import SlackDeps

log = logging.getLogger(__name__)


class AnswersInProgress:
    """Counts answers being shown, so shutdown lets them finish instead of leaving a frozen "Thinking…"."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.asynccontextmanager
    async def track(self) -> AsyncIterator[None]:
        self._count += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._count -= 1
            if self._count == 0:
                self._idle.set()

    async def wait(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            log.warning("shutting down with %d answers still in progress", self._count)


async def answer_in_slack(deps: SlackDeps, client: AsyncWebClient, message: IncomingMessage, place: Place) -> None:
    key = message.key
    if not deps.access.allows(message.user_id, key.channel_id, is_dm=key.channel_id.startswith("D")):
        await _turn_away(deps, client, message, place)
        return
    stream = ReplyStream(
        client=client,
        budget=deps.budget,
        config=deps.render,
        workspace_id=message.key.workspace_id,
        place=place,
    )
    async with deps.in_progress.track():
        # Prepared while the placeholder is being posted: Slack's round trip is then off the time to the first words.
        answer = ReadAhead(_with_context(deps, client, message))
        try:
            await stream.show(answer)
        finally:
            answer.stop()  # done by now, unless the placeholder could not be posted


async def _turn_away(deps: SlackDeps, client: AsyncWebClient, message: IncomingMessage, place: Place) -> None:
    """One polite private line, once per person: a bot in a busy channel must not nag (or run up a bill)."""
    key = message.key
    try:
        first = await deps.usage.claim_once(f"turned-away:{key.workspace_id}:{message.user_id}", ttl_s=30 * 86400)
    except StorageUnavailable:
        first = False
    if first:
        with contextlib.suppress(SlackApiError):
            await client.chat_postEphemeral(
                channel=key.channel_id, user=message.user_id, text=NOT_ALLOWED_MESSAGE, thread_ts=place.thread_ts
            )


async def _with_context(deps: SlackDeps, client: AsyncWebClient, message: IncomingMessage) -> AsyncIterator[ReplyEvent]:
    """Look up who asks and where (while the placeholder is being posted), then answer."""
    key = message.key
    asker, channel = await asyncio.gather(
        deps.directory.asker(client, key.workspace_id, message.user_id),
        deps.directory.channel(client, key.workspace_id, key.channel_id),
    )
    async for event in deps.replies.answer(dataclasses.replace(message, asker=asker, channel=channel)):
        yield event
