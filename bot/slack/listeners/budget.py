"""/claude-budget: admins see and set the workspace's monthly budget and the per-person daily budget."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.usage import month_key
from bot.slack.admins import may_manage_costs
from bot.slack.incoming import workspace_of

if TYPE_CHECKING:
    from bot.slack.app import SlackDeps

BUDGET_COMMAND = "/claude-budget"
USAGE = (
    "Usage: `/claude-budget` shows the budgets; `/claude-budget month 200` sets the workspace's monthly budget "
    "(USD); `/claude-budget user-day 10` sets each person's daily budget; `off` instead of a number removes one."
)
MAX_BUDGET_USD = 1_000_000.0  # anything larger is a typo, and an "inf" would break the ledger's arithmetic
_SET = re.compile(r"^(month|user-day)\s+(off|\$?\d{1,9}(?:\.\d+)?)$", re.IGNORECASE)


def register(app: AsyncApp, deps: SlackDeps) -> None:
    @app.command(BUDGET_COMMAND)
    async def budget(
        ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await ack()
        workspace, user = workspace_of(context), command.get("user_id", "")
        if not await may_manage_costs(deps.directory, deps.cost_admins, client, workspace, user):
            await respond(text="Only workspace admins can see or change Claude's budgets.", response_type="ephemeral")
            return
        text = (command.get("text") or "").strip()
        if text:
            match = _SET.match(text)
            if match is None:
                await respond(text=USAGE, response_type="ephemeral")
                return
            kind = "month" if match.group(1).lower() == "month" else "user_day"
            value = match.group(2).lower().lstrip("$")
            amount = None if value == "off" else float(value)
            if amount is not None and not 0 < amount <= MAX_BUDGET_USD:
                await respond(
                    text=f"A budget must be between $0 and ${MAX_BUDGET_USD:,.0f}.", response_type="ephemeral"
                )
                return
            await deps.budgets.set_budget(workspace, kind, amount)
        policy = await deps.metering.policy(workspace)
        spent = await deps.usage.month_spent(workspace, month_key(deps.clock().date()))
        month = f"${policy.month_usd:,.2f}" if policy.month_usd is not None else "no limit"
        per_user = f"${policy.user_day_usd:,.2f}" if policy.user_day_usd is not None else "no limit"
        await respond(
            text=(
                f"*Claude budgets for this workspace*\n• Monthly: {month} (spent so far this month: ${spent:,.2f})\n"
                f"• Per person per day: {per_user}\n{USAGE}"
            ),
            response_type="ephemeral",
        )
