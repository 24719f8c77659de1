"""Slash commands: /claude-persona, /claude-tools, and one /claude-<name> per tool people may call."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core import texts
from bot.core.channel_personas import UnknownPersona
from bot.core.conversation import ConversationKey, IncomingMessage
from bot.core.events import ReplyEvent
from bot.core.i18n import tr
from bot.core.tools.registry import CommandPrompt, Tool, ToolContext, ToolError
from bot.slack.command_catalog import PERSONA_COMMAND, TOOLS_COMMAND
from bot.slack.incoming import Place, workspace_of
from bot.slack.listeners.answering import new_answer_id
from bot.slack.reply_stream import ReplyStream
from bot.slack.views import answer_controls, persona_list, tool_list

if TYPE_CHECKING:
    from bot.slack.app import SlackDeps


def register(app: AsyncApp, deps: SlackDeps) -> None:
    @app.command(PERSONA_COMMAND)
    async def persona(
        ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await ack()  # within Slack's 3 s; the answer follows through response_url
        workspace, channel, user = workspace_of(context), command.get("channel_id", ""), command.get("user_id", "")
        await deps.directory.speak_to(client, workspace, user)
        choices = deps.channel_personas
        wanted = (command.get("text") or "").strip()
        if wanted.lower() in ("", "list", "help"):
            text, blocks = persona_list(list(choices.catalog), await choices.current(workspace, channel))
            await respond(text=text, blocks=blocks, response_type="ephemeral")
            return
        if deps.persona_change == "admins" and not await deps.directory.is_admin(client, workspace, user):
            await respond(text=tr(texts.PERSONA_ADMINS_ONLY), response_type="ephemeral")
            return
        try:
            chosen = await choices.choose(workspace, channel, wanted)
        except UnknownPersona as error:
            await respond(text=error.user_message, response_type="ephemeral")
            return
        await respond(
            text=tr(texts.PERSONA_SET, user=user, persona=chosen.name, description=chosen.description),
            response_type="in_channel",
        )

    @app.command(TOOLS_COMMAND)
    async def tools(
        ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await ack()
        await deps.directory.speak_to(client, workspace_of(context), command.get("user_id", ""))
        text, blocks = tool_list(list(deps.tools))
        await respond(text=text, blocks=blocks, response_type="ephemeral")

    for tool in deps.tools.commands():
        app.command(tool.command)(_tool_command(deps, tool))


def _tool_command(deps: SlackDeps, tool: Tool) -> Any:
    async def handle(
        ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await ack()  # always within 3 s; the work follows
        await deps.directory.speak_to(client, workspace_of(context), command.get("user_id", ""))
        text = (command.get("text") or "").strip()
        if not text and tool.usage.startswith("<"):
            usage = tr(texts.COMMAND_USAGE, command=tool.command, usage=tool.usage, description=tool.description)
            await respond(text=usage, response_type="ephemeral")
            return
        if tool.as_prompt is not None:
            await _answer_command(deps, client, respond, command, workspace_of(context), tool, text)
            return
        if not deps.access.allows(command.get("user_id", ""), command.get("channel_id", ""), is_dm=False):
            await respond(text=tr(texts.NOT_ALLOWED), response_type="ephemeral")
            return
        tool_context = ToolContext(
            workspace_id=workspace_of(context),
            channel_id=command.get("channel_id", ""),
            thread_id="",
            user_id=command.get("user_id", ""),
        )
        try:
            result = await tool.run(tool.parse_input({"text": text}), tool_context)
        except ToolError as error:
            await respond(
                text=tr(texts.COMMAND_TOOL_ERROR, command=tool.command, error=error), response_type="ephemeral"
            )
            return
        await respond(text=result[:3000], response_type="ephemeral")

    return handle


async def _answer_command(
    deps: SlackDeps,
    client: AsyncWebClient,
    respond: AsyncRespond,
    command: dict[str, Any],
    workspace: str,
    tool: Tool,
    text: str,
) -> None:
    assert tool.as_prompt is not None
    await stream_prompt(
        deps,
        client,
        respond,
        workspace=workspace,
        channel=command.get("channel_id", ""),
        user=command.get("user_id", ""),
        prompt=tool.as_prompt(text),
    )


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
        async with deps.in_progress.track():
            await stream.show(events())
    except SlackApiError as error:
        if error.response.get("error") in ("not_in_channel", "channel_not_found"):
            await respond(text=tr(texts.NOT_IN_CHANNEL), response_type="ephemeral")
            return
        raise
