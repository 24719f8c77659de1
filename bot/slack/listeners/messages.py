"""Messages: DMs (always answered) and follow-ups in channel threads the bot is already part of."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import incoming
from bot.slack.answering import answer_in_slack
from bot.slack.incoming import MessageKind, Place

if TYPE_CHECKING:
    from bot.slack.deps import SlackDeps


def register(app: AsyncApp, deps: SlackDeps) -> None:
    # Registered for every subtype, so edits, joins and deletions are acked rather than redelivered (slack.md §1.6).
    @app.event("message")
    async def on_message(
        event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
    ) -> None:
        kind = incoming.classify_message(event, context.bot_user_id)
        if kind is MessageKind.IGNORE:
            return
        async with deps.in_progress.track():  # from its first look-up: shutdown waits for an acked question
            await _on_question(deps, client, event, context, kind)


async def _on_question(
    deps: SlackDeps, client: AsyncWebClient, event: dict[str, Any], context: AsyncBoltContext, kind: MessageKind
) -> None:
    workspace = incoming.workspace_of(context)
    if kind is MessageKind.DM:
        key = await deps.replies.dm_conversation(workspace, event["channel"], event["ts"])
        place = Place(channel_id=event["channel"], thread_ts=None)
        thread_id = key.thread_id
    else:
        place = incoming.thread_place(event)
        thread_id = place.thread_ts or event["ts"]
    message = incoming.to_message(event, workspace, context.bot_user_id, thread_id=thread_id)
    if kind is MessageKind.THREAD_REPLY and not await deps.replies.is_following(message.key):
        return
    await answer_in_slack(deps, client, message, place)
