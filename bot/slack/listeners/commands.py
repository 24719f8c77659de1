"""Slash commands: /claude-persona shows or sets the channel's persona."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.channel_personas import UnknownPersona
from bot.slack.views import persona_list

if TYPE_CHECKING:
    from bot.slack.app import SlackDeps

PERSONA_COMMAND = "/claude-persona"


def register(app: AsyncApp, deps: SlackDeps) -> None:
    @app.command(PERSONA_COMMAND)
    async def persona(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient) -> None:
        await ack()  # within Slack's 3 s; the answer follows through response_url
        workspace, channel, user = command.get("team_id", ""), command.get("channel_id", ""), command.get("user_id", "")
        choices = deps.channel_personas
        wanted = (command.get("text") or "").strip()
        if wanted.lower() in ("", "list", "help"):
            text, blocks = persona_list(list(choices.catalog), await choices.current(workspace, channel))
            await respond(text=text, blocks=blocks, response_type="ephemeral")
            return
        if deps.persona_change == "admins" and not await deps.directory.is_admin(client, workspace, user):
            await respond(text="Only workspace admins can change this channel's persona.", response_type="ephemeral")
            return
        try:
            chosen = await choices.choose(workspace, channel, wanted)
        except UnknownPersona as error:
            await respond(text=error.user_message, response_type="ephemeral")
            return
        await respond(
            text=(
                f"<@{user}> set this channel's persona to *{chosen.name}* — {chosen.description}\n"
                "New threads use it; threads already running keep the persona they started with."
            ),
            response_type="in_channel",
        )
