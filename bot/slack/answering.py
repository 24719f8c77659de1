"""The shared step of every listener that answers: may this person be answered here, is it a reset, then deliver."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core import texts
from bot.core.conversation import IncomingMessage
from bot.core.errors import StorageUnavailable
from bot.core.i18n import tr
from bot.core.usage import Claim
from bot.slack.delivery import deliver
from bot.slack.incoming import Place
from bot.slack.middleware import first_sighting
from bot.slack.paced_calls import PacedCalls
from bot.slack.resets import is_reset_request, reset_from_message

if TYPE_CHECKING:
    from bot.slack.deps import SlackDeps


async def answer_in_slack(deps: SlackDeps, client: AsyncWebClient, message: IncomingMessage, place: Place) -> None:
    """Tracked as in progress from here: shutdown waits for a question that is still being checked."""
    async with deps.in_progress.track():
        await _answer(deps, client, message, place)


async def _answer(deps: SlackDeps, client: AsyncWebClient, message: IncomingMessage, place: Place) -> None:
    if not await first_sighting(on_wait=lambda: _say_waiting(deps, client, message, place)):
        return  # a redelivery, or the mention's second copy: the first one is being answered
    key = message.key
    # Before the placeholder: "Thinking…" is already in the asker's language (a cached profile after the first time).
    await deps.directory.speak_to(client, key.workspace_id, message.user_id)
    if not deps.access.allows(message.user_id, key.channel_id, is_dm=key.channel_id.startswith("D")):
        await _turn_away(deps, client, message, place)
        return
    if is_reset_request(message.text) and not message.files:
        await reset_from_message(deps, client, message, place)
        return
    await deliver(deps, client, message, place)


async def _turn_away(deps: SlackDeps, client: AsyncWebClient, message: IncomingMessage, place: Place) -> None:
    """One polite private line, once per person: a bot in a busy channel must not nag (or run up a bill)."""
    key = message.key
    try:
        first = await deps.usage.claim_once(Claim("turned_away", key.workspace_id, message.user_id))
    except StorageUnavailable:
        first = False
    if first:
        await _tell_privately(deps, client, message, place, tr(texts.NOT_ALLOWED))


async def _say_waiting(deps: SlackDeps, client: AsyncWebClient, message: IncomingMessage, place: Place) -> None:
    """Redis is away, so the question waits (it cannot be told from a retry without it): say so, privately."""
    await deps.directory.speak_to(client, message.key.workspace_id, message.user_id)  # needs no Redis
    await _tell_privately(deps, client, message, place, tr(texts.WAITING_FOR_STORAGE))


async def _tell_privately(
    deps: SlackDeps, client: AsyncWebClient, message: IncomingMessage, place: Place, text: str
) -> None:
    """An ephemeral line to the asker in the thread (best effort, paced like every call)."""
    key = message.key
    calls = PacedCalls(client, deps.budget, deps.render.pacing, key.workspace_id, key.channel_id)
    with contextlib.suppress(SlackApiError):
        await calls.spend(
            "chat.postEphemeral", channel=key.channel_id, user=message.user_id, text=text, thread_ts=place.thread_ts
        )
