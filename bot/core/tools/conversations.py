"""read_thread, read_channel and post_message: Claude reaches Slack conversations the asking person can see."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

from bot.core import texts
from bot.core.i18n import tr
from bot.core.tools.registry import ConversationReader, ReadMessage, Tool, ToolContext, ToolError

_CHANNEL_REF = re.compile(r"^(?:<#)?([CGD][A-Z0-9]{2,})(?:\|[^>]*)?>?$")


def channel_id_from(reference: str | None, context: ToolContext) -> str:
    """Accept an id (C123), Slack's <#C123|name> token, or nothing (this conversation's channel)."""
    if not reference:
        return context.channel_id
    match = _CHANNEL_REF.match(reference.strip())
    if match is None:
        raise ToolError(f"{reference!r} is not a channel reference; use the channel id or its <#C…> link")
    return match.group(1)


def _render(messages: list[ReadMessage]) -> str:
    if not messages:
        return "(no messages)"
    lines = []
    for m in messages:
        replies = f" [{m.thread_replies} replies in thread ts={m.ts}]" if m.thread_replies else ""
        lines.append(f"<@{m.author}> (ts {m.ts}): {m.text}{replies}")
    return "\n".join(lines)


def _reader(context: ToolContext) -> ConversationReader:
    if context.reader is None:
        raise ToolError("Slack conversations are not available here")
    return context.reader


class ReadThreadInput(BaseModel):
    channel: str | None = Field(None, description="Channel id or <#C…> link; omit for the current channel")
    thread_ts: str | None = Field(None, description="The thread's root ts; omit for the current thread")
    limit: int = Field(50, ge=1, le=200, description="How many of the most recent replies to read")


async def _read_thread(args: ReadThreadInput, context: ToolContext) -> str:
    channel = channel_id_from(args.channel, context)
    thread = args.thread_ts or context.thread_id
    messages = await _reader(context).read_thread(
        context.workspace_id, channel, thread, as_user=context.user_id, limit=args.limit, shown_in=context.channel_id
    )
    return _render(messages)


class ReadChannelInput(BaseModel):
    channel: str | None = Field(None, description="Channel id or <#C…> link; omit for the current channel")
    limit: int = Field(50, ge=1, le=200, description="How many of the most recent messages to read")


async def _read_channel(args: ReadChannelInput, context: ToolContext) -> str:
    channel = channel_id_from(args.channel, context)
    messages = await _reader(context).read_channel(
        context.workspace_id, channel, as_user=context.user_id, limit=args.limit, shown_in=context.channel_id
    )
    return _render(messages)


class PostMessageInput(BaseModel):
    channel: str = Field(description="Channel id or <#C…> link to post in")
    text: str = Field(min_length=1, max_length=2400, description="The message, in Slack Markdown (at most 2,400 chars)")


async def _post_message(args: PostMessageInput, context: ToolContext) -> str:
    channel = channel_id_from(args.channel, context)
    where = await _reader(context).post_message(context.workspace_id, channel, args.text, as_user=context.user_id)
    return f"Posted in <#{channel}>: {where}"


def _where(channel: str | None) -> str:
    return f"<#{channel.strip('<#>').split('|')[0]}>" if channel else tr(texts.TOOL_THIS_CHANNEL)


READ_THREAD = Tool(
    name="read_thread",
    description=(
        "Read the recent messages of a Slack thread (default: the current one) to summarise it or answer questions "
        "about it. Only threads in channels the asking person can see are readable."
    ),
    input_model=ReadThreadInput,
    run=_read_thread,
    describe=lambda a: tr(texts.TOOL_READING_THREAD, where=_where(a.channel)),
)

READ_CHANNEL = Tool(
    name="read_channel",
    description=(
        "Read the most recent messages of a Slack channel (default: the current one), to summarise it or answer "
        "questions about it. Only channels the asking person can see are readable."
    ),
    input_model=ReadChannelInput,
    run=_read_channel,
    describe=lambda a: tr(texts.TOOL_READING, where=_where(a.channel)),
)

POST_MESSAGE = Tool(
    name="post_message",
    description=(
        "Post a message to a Slack channel on the asking person's behalf (as the bot), e.g. an announcement you "
        "drafted together. The person must approve it before it is posted."
    ),
    input_model=PostMessageInput,
    run=_post_message,
    acts=True,
    describe=lambda a: tr(texts.TOOL_POSTING, where=_where(a.channel)),
)
