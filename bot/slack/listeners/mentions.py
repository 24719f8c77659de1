"""@mentions in channels: answered in the mention's thread (or a new thread under it)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import incoming
from bot.slack.answering import answer_in_slack

if TYPE_CHECKING:
    from bot.slack.deps import SlackDeps


def register(app: AsyncApp, deps: SlackDeps) -> None:
    @app.event("app_mention")
    async def on_mention(
        event: dict[str, Any], body: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
    ) -> None:
        if not incoming.is_answerable(event):
            return
        place = incoming.thread_place(event)
        workspace = incoming.workspace_of(context)
        message = incoming.to_message(event, workspace, context.bot_user_id, thread_id=place.thread_ts or "")
        await answer_in_slack(deps, client, message, place)
