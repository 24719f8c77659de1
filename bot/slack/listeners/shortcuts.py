"""Message shortcuts: "Review with Claude" on any message, code snippet files included."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.core import texts
from bot.core.errors import MediaRefused
from bot.core.i18n import tr
from bot.core.tools.commands import review_prompt
from bot.slack.command_answers import stream_prompt
from bot.slack.files import incoming_files
from bot.slack.incoming import workspace_of

if TYPE_CHECKING:
    from bot.slack.deps import SlackDeps

REVIEW_SHORTCUT = "review_message"
_MAX_SNIPPET_CHARS = 60_000


def register(app: AsyncApp, deps: SlackDeps) -> None:
    @app.shortcut(REVIEW_SHORTCUT)
    async def review_message(
        ack: AsyncAck,
        shortcut: dict[str, Any],
        respond: AsyncRespond,
        client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        await ack()
        workspace = workspace_of(context)
        await deps.directory.speak_to(client, workspace, (shortcut.get("user") or {}).get("id", ""))
        message = shortcut.get("message") or {}
        channel = (shortcut.get("channel") or {}).get("id", "")
        parts = [message.get("text") or ""]
        for file in incoming_files(message):
            # Snippets and text files are the code; images are for mentions, not for a code review.
            if file.mimetype.startswith("text/") or file.mimetype in ("application/json", "application/x-yaml"):
                try:
                    parts.append(
                        (await deps.files.fetch(workspace, file)).decode("utf-8", errors="replace")[:_MAX_SNIPPET_CHARS]
                    )
                except MediaRefused as refused:
                    await respond(
                        text=tr(texts.REVIEW_FILE_REFUSED, name=file.name, reason=refused.user_message),
                        response_type="ephemeral",
                    )
        code = "\n\n".join(part for part in parts if part.strip())
        if not code:
            await respond(text=tr(texts.REVIEW_NOTHING), response_type="ephemeral")
            return
        await stream_prompt(
            deps,
            client,
            respond,
            workspace=workspace,
            channel=channel,
            user=(shortcut.get("user") or {}).get("id", ""),
            prompt=review_prompt(code),
            thread_ts=message.get("thread_ts") or message.get("ts"),
        )
