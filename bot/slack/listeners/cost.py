"""/claude-cost: workspace usage and cost for admins, anyone's own with `me`, and a CSV export."""

from __future__ import annotations

import logging
from datetime import date
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core import texts
from bot.core.i18n import number, tr, trn
from bot.core.usage import parse_period
from bot.slack.admins import may_manage_costs
from bot.slack.command_catalog import COST_COMMAND
from bot.slack.cost_views import csv_text, usage_report
from bot.slack.incoming import workspace_of

if TYPE_CHECKING:
    from bot.slack.deps import SlackDeps

log = logging.getLogger(__name__)

# The ephemeral fallback for a CSV the bot could not upload: under Slack's 4,000-char message text with room
# for the note around it.
INLINE_CSV_CHARS = 3_400
_UPLOAD_REFUSALS = frozenset({"not_in_channel", "channel_not_found", "is_archived", "restricted_action"})


def register(app: AsyncApp, deps: SlackDeps) -> None:
    @app.command(COST_COMMAND)
    async def cost(
        ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await ack()  # within Slack's 3 s; the report follows through response_url
        # The command's own workspace, never a setting: one workspace must never see another's figures.
        workspace, user = workspace_of(context), command.get("user_id", "")
        await deps.directory.speak_to(client, workspace, user)
        words = (command.get("text") or "").split()
        action = words[0].lower() if words else ""
        if action in ("help", "?"):
            await respond(text=tr(texts.COST_USAGE), response_type="ephemeral")
            return
        personal, export = action == "me", action == "export"
        period_text = " ".join(words[1:] if personal or export else words)
        try:
            start, end, label = parse_period(period_text, deps.clock().date())
        except ValueError as error:
            await respond(text=f"{error}\n{tr(texts.COST_USAGE)}", response_type="ephemeral")
            return
        if not personal and not await may_manage_costs(deps.directory, deps.cost_admins, client, workspace, user):
            await respond(text=tr(texts.COST_REFUSAL), response_type="ephemeral")
            return
        if export:
            await _export(deps, client, respond, command, workspace, start, end, label)
            return
        report = await deps.usage.report(workspace, start, end, user_id=user if personal else None)
        feedback = [] if personal else await deps.answers.feedback(workspace, start, end)
        text, blocks = usage_report(report, label, personal=personal, feedback=feedback)
        await respond(text=text, blocks=blocks, response_type="ephemeral", unfurl_links=False, unfurl_media=False)


async def _export(
    deps: SlackDeps,
    client: AsyncWebClient,
    respond: AsyncRespond,
    command: dict[str, Any],
    workspace: str,
    start: date,
    end: date,
    label: str,
) -> None:
    """Upload the CSV where the command was typed; if the bot may not post there, show it privately instead."""
    channel, user = command.get("channel_id", ""), command.get("user_id", "")
    rows = await deps.usage.export_rows(workspace, start, end)
    if not rows:
        await respond(text=tr(texts.COST_EXPORT_EMPTY, period=label), response_type="ephemeral")
        return
    content = csv_text(rows)
    # From the dates, not the label: the same file name whatever the asker's language.
    filename = f"claude-usage-{start:%Y-%m-%d}" + (f"-to-{end:%Y-%m-%d}.csv" if end != start else ".csv")
    try:
        await client.files_upload_v2(
            channel=channel,
            content=content,
            filename=filename,
            title=tr(texts.COST_EXPORT_TITLE, period=label),
            initial_comment=trn(texts.COST_EXPORT_COMMENT, len(rows), user=user, period=label),
        )
    except SlackApiError as error:
        if error.response.get("error") not in _UPLOAD_REFUSALS:
            raise
        await respond(text=_inline_csv(content, len(rows), filename), response_type="ephemeral")
        return
    await respond(text=trn(texts.COST_EXPORT_UPLOADED, len(rows), filename=filename), response_type="ephemeral")


def _inline_csv(content: str, rows: int, filename: str) -> str:
    """The CSV as a code block, cut at a line boundary when too long for one message."""
    note = tr(texts.COST_EXPORT_INLINE, filename=filename)
    if len(content) <= INLINE_CSV_CHARS:
        return f"{note}\n```{content.rstrip()}```"
    cut = content[:INLINE_CSV_CHARS].rsplit("\n", 1)[0]
    shown = cut.count("\n")  # lines after the header row
    return f"{note}\n```{cut}```\n{trn(texts.COST_EXPORT_INLINE_CUT, shown, total=number(rows))}"
