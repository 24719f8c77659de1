"""/claude-budget: admins see and set the workspace's monthly budget and the per-person daily budget."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.core import texts
from bot.core.i18n import money, tr
from bot.core.metering import MAX_BUDGET_USD
from bot.core.usage import month_key
from bot.slack.admins import may_manage_costs
from bot.slack.command_catalog import BUDGET_COMMAND
from bot.slack.incoming import workspace_of

if TYPE_CHECKING:
    from bot.slack.deps import SlackDeps

_SET = re.compile(r"^(month|user-day)\s+(off|\$?\d{1,9}(?:\.\d+)?)$", re.IGNORECASE)


def register(app: AsyncApp, deps: SlackDeps) -> None:
    @app.command(BUDGET_COMMAND)
    async def budget(
        ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await ack()
        workspace, user = workspace_of(context), command.get("user_id", "")
        await deps.directory.speak_to(client, workspace, user)
        if not await may_manage_costs(deps.directory, deps.cost_admins, client, workspace, user):
            await respond(text=tr(texts.BUDGET_ADMINS_ONLY), response_type="ephemeral")
            return
        text = (command.get("text") or "").strip()
        if text:
            match = _SET.match(text)
            if match is None:
                await respond(text=tr(texts.BUDGET_USAGE), response_type="ephemeral")
                return
            kind = "month" if match.group(1).lower() == "month" else "user_day"
            value = match.group(2).lower().lstrip("$")
            amount = None if value == "off" else float(value)
            if amount is not None and not 0 < amount <= MAX_BUDGET_USD:
                await respond(
                    text=tr(texts.BUDGET_OUT_OF_RANGE, low=money(0), high=money(MAX_BUDGET_USD)),
                    response_type="ephemeral",
                )
                return
            await deps.budgets.set_budget(workspace, kind, amount)
        policy = await deps.metering.policy(workspace)
        spent = await deps.usage.month_spent(workspace, month_key(deps.clock().date()))
        no_limit = tr(texts.BUDGET_NO_LIMIT)
        month = money(policy.month_usd) if policy.month_usd is not None else no_limit
        per_user = money(policy.user_day_usd) if policy.user_day_usd is not None else no_limit
        summary = tr(texts.BUDGET_SUMMARY, month=month, spent=money(spent), per_user=per_user)
        await respond(
            text=f"{summary}\n{tr(texts.BUDGET_USAGE)}",
            response_type="ephemeral",
        )
