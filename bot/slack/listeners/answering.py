"""The shared step of every listener that answers: ask the core, show the stream in Slack."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slack_sdk.web.async_client import AsyncWebClient

from bot.core.conversation import IncomingMessage
from bot.slack.incoming import Place
from bot.slack.reply_stream import ReplyStream

if TYPE_CHECKING:
    from bot.slack.app import SlackDeps


async def answer_in_slack(deps: SlackDeps, client: AsyncWebClient, message: IncomingMessage, place: Place) -> None:
    stream = ReplyStream(
        client=client,
        budget=deps.budget,
        config=deps.render,
        workspace_id=message.key.workspace_id,
        place=place,
    )
    await stream.show(deps.replies.answer(message))
