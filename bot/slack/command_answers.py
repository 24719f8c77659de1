"""A slash command or shortcut whose answer is a streamed Claude answer (/claude-review, /claude-summarize, "Review
with Claude"): posted in the channel, or in a thread, and continued there like any conversation."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from slack_bolt.async_app import AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core import texts
from bot.core.conversation import ConversationKey, IncomingMessage
from bot.core.events import ReplyEvent
from bot.core.i18n import tr
from bot.core.tools.registry import CommandPrompt
from bot.slack.delivery import new_answer_id
from bot.slack.incoming import Place
from bot.slack.reply_stream import ReplyStream
from bot.slack.views import answer_controls

if TYPE_CHECKING:
    from bot.slack.deps import SlackDeps


async def stream_prompt(
    deps: SlackDeps,
    client: AsyncWebClient,
    respond: AsyncRespond,
    *,
    workspace: str,
    channel: str,
    user: str,
    prompt: CommandPrompt,
    thread_ts: str | None = None,
) -> None:
    """Post a streamed answer (in the channel, or in `thread_ts`); its thread then continues like any conversation."""
    if not deps.access.allows(user, channel, is_dm=channel.startswith("D")):
        await respond(text=tr(texts.NOT_ALLOWED), response_type="ephemeral")
        return
    answer_id = new_answer_id()
    stream = ReplyStream(
        client=client,
        budget=deps.budget,
        config=deps.render,
        workspace_id=workspace,
        place=Place(channel_id=channel, thread_ts=thread_ts),
        metrics=deps.metrics,
        controls=functools.partial(answer_controls, answer_id),
    )

    async def events() -> AsyncIterator[ReplyEvent]:
        # The placeholder is posted by now: without a thread, its ts roots the conversation.
        root = thread_ts or stream.messages[0].ts
        stream.place = Place(channel_id=channel, thread_ts=root)
        message = IncomingMessage(
            key=ConversationKey(workspace, channel, root),
            message_id=root,
            user_id=user,
            text=prompt.text,
            persona=prompt.persona,
            answer_id=answer_id,
        )
        await deps.answers.begin(message, shown_in=root)
        asker = await deps.directory.asker(client, workspace, user)
        where = await deps.directory.channel(client, workspace, channel)
        async for event in deps.replies.answer(dataclasses.replace(message, asker=asker, channel=where)):
            yield event

    try:
        async with deps.in_progress.track(), deps.answers.shown(workspace, answer_id):
            await stream.show(events())
    except SlackApiError as error:
        if error.response.get("error") in ("not_in_channel", "channel_not_found"):
            await respond(text=tr(texts.NOT_IN_CHANNEL), response_type="ephemeral")
            return
        raise
