"""Slash commands: /claude-persona, /claude-tools, and one /claude-<name> per tool people may call."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.core import texts
from bot.core.channel_personas import UnknownPersona
from bot.core.i18n import tr
from bot.core.tools.registry import Tool, ToolContext, ToolError
from bot.slack.command_answers import stream_prompt
from bot.slack.command_catalog import PERSONA_COMMAND, TOOLS_COMMAND
from bot.slack.incoming import workspace_of
from bot.slack.views import persona_list, tool_list

if TYPE_CHECKING:
    from bot.slack.deps import SlackDeps


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
