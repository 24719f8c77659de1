"""Starting over: `/claude-reset` in a DM, "Forget this thread" on a message, or `@Claude reset` in a thread.

Only the conversation goes; the usage ledger keeps what was spent. Every confirmation is private to the person.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core import texts
from bot.core.conversation import ConversationKey, IncomingMessage
from bot.core.errors import StorageUnavailable
from bot.core.i18n import tr
from bot.slack.command_catalog import RESET_COMMAND
from bot.slack.incoming import Place, workspace_of

if TYPE_CHECKING:
    from bot.slack.app import SlackDeps

FORGET_SHORTCUT = "forget_thread"
RESET_WORDS = frozenset({"reset", "start over", "forget this thread"})


def is_reset_request(text: str) -> bool:
    return text.strip().strip(".!").lower() in RESET_WORDS


async def forget_thread(deps: SlackDeps, key: ConversationKey) -> str:
    try:
        return tr(texts.RESET_THREAD_FORGOTTEN if await deps.replies.forget(key) else texts.RESET_NOTHING_STORED)
    except StorageUnavailable:
        return tr(texts.RESET_STORE_DOWN)


async def start_dm_over(deps: SlackDeps, workspace_id: str, channel_id: str) -> str:
    try:
        await deps.replies.end_dm_session(workspace_id, channel_id)
    except StorageUnavailable:
        return tr(texts.RESET_STORE_DOWN)
    return tr(texts.RESET_DM)


async def reset_from_message(deps: SlackDeps, client: AsyncWebClient, message: IncomingMessage, place: Place) -> None:
    """`reset` said to the bot: the DM session or this thread starts over."""
    key = message.key
    if key.channel_id.startswith("D") and place.thread_ts is None:
        text = await start_dm_over(deps, key.workspace_id, key.channel_id)
    else:
        text = await forget_thread(deps, key)
    with contextlib.suppress(SlackApiError):
        await client.chat_postEphemeral(
            channel=key.channel_id, user=message.user_id, text=text, thread_ts=place.thread_ts
        )


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
