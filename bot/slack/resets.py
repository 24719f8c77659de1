"""Starting over: the DM session or a thread forgotten, for `/claude-reset`, "Forget this thread" and `@Claude reset`.

Only the conversation goes; the usage ledger keeps what was spent. Every confirmation is private to the person.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core import texts
from bot.core.conversation import ConversationKey, IncomingMessage
from bot.core.errors import StorageUnavailable
from bot.core.i18n import tr
from bot.slack.incoming import Place

if TYPE_CHECKING:
    from bot.slack.deps import SlackDeps

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
