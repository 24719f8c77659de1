"""Routes for starting over: `/claude-reset` in a DM and the "Forget this thread" message shortcut (bot/slack/resets.py
does the work, also for `@Claude reset` in a thread)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.core import texts
from bot.core.conversation import ConversationKey
from bot.core.i18n import tr
from bot.slack.command_catalog import RESET_COMMAND
from bot.slack.incoming import workspace_of
from bot.slack.resets import forget_thread, start_dm_over

if TYPE_CHECKING:
    from bot.slack.deps import SlackDeps

FORGET_SHORTCUT = "forget_thread"


def register(app: AsyncApp, deps: SlackDeps) -> None:
    @app.command(RESET_COMMAND)
    async def reset_command(
        ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await ack()
        workspace, channel, user = workspace_of(context), command.get("channel_id", ""), command.get("user_id", "")
        await deps.directory.speak_to(client, workspace, user)
        if not deps.access.allows(user, channel, is_dm=channel.startswith("D")):
            await respond(text=tr(texts.NOT_ALLOWED), response_type="ephemeral")
            return
        text = (
            await start_dm_over(deps, workspace, channel) if channel.startswith("D") else tr(texts.RESET_CHANNEL_HINT)
        )
        await respond(text=text, response_type="ephemeral")

    @app.shortcut(FORGET_SHORTCUT)
    async def forget_shortcut(
        ack: AsyncAck,
        shortcut: dict[str, Any],
        respond: AsyncRespond,
        client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        await ack()
        message = shortcut.get("message") or {}
        channel = (shortcut.get("channel") or {}).get("id", "")
        user = (shortcut.get("user") or {}).get("id", "")
        workspace = workspace_of(context)
        await deps.directory.speak_to(client, workspace, user)
        if not deps.access.allows(user, channel, is_dm=channel.startswith("D")):
            await respond(text=tr(texts.NOT_ALLOWED), response_type="ephemeral")
            return
        thread = message.get("thread_ts")
        if channel.startswith("D") and not thread:
            text = await start_dm_over(deps, workspace, channel)  # a DM's top level is one rolling conversation
        else:
            text = await forget_thread(deps, ConversationKey(workspace, channel, thread or message.get("ts", "")))
        await respond(text=text, response_type="ephemeral")
