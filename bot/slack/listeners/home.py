"""The App Home tab: published for each person when they open it, in their language; admins get the month's
figures and buttons that open the cost report and a budget form.

`app_home_opened` (https://docs.slack.dev/reference/events/app_home_opened) is acknowledged by Bolt before this
listener runs (process_before_response=False, and Socket Mode acks first), so building the view never delays the
ack. `views.publish` replaces the whole tab each time (https://docs.slack.dev/reference/methods/views.publish).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core import texts
from bot.core.errors import StorageUnavailable
from bot.core.i18n import MONTH_YEAR, fmt_date, money, tr
from bot.core.metering import MAX_BUDGET_USD
from bot.core.usage import month_key
from bot.slack.admins import may_manage_costs
from bot.slack.command_catalog import BUDGET_COMMAND, COST_COMMAND, PERSONA_COMMAND, RESET_COMMAND, TOOLS_COMMAND
from bot.slack.cost_views import usage_report
from bot.slack.home import (
    BUDGET_INPUT_ACTION,
    BUDGET_MODAL_CALLBACK,
    BUDGET_MONTH_BLOCK,
    BUDGET_USER_DAY_BLOCK,
    HOME_BUDGET_ACTION,
    HOME_COST_ACTION,
    AdminFacts,
    HomeFacts,
    budget_modal,
    cost_modal,
    home_view,
)
from bot.slack.incoming import workspace_of

if TYPE_CHECKING:
    from bot.slack.deps import SlackDeps

log = logging.getLogger(__name__)
T = TypeVar("T")


def register(app: AsyncApp, deps: SlackDeps) -> None:
    @app.event("app_home_opened")
    async def opened(event: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext) -> None:
        user = str(event.get("user") or "")
        if not user or event.get("tab") == "messages":
            return  # the Messages tab opening needs nothing from us
        await publish_home(deps, client, workspace_of(context), user, context.bot_user_id or "")

    @app.action(HOME_COST_ACTION)
    async def cost_report(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await ack()
        workspace, user = workspace_of(context), str((body.get("user") or {}).get("id", ""))
        await deps.directory.speak_to(client, workspace, user)
        if not await _is_admin(deps, client, workspace, user):
            return  # the button is only shown to admins; a forged click gets nothing
        today = deps.clock().date()
        start = today.replace(day=1)
        report = await deps.usage.report(workspace, start, today)
        feedback = await deps.answers.feedback(workspace, start, today)
        label = tr(texts.PERIOD_MONTH_SO_FAR, month=fmt_date(start, MONTH_YEAR))
        _, blocks = usage_report(report, label, feedback=feedback)
        await client.views_open(trigger_id=str(body.get("trigger_id", "")), view=cost_modal(blocks))

    @app.action(HOME_BUDGET_ACTION)
    async def budget_form(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await ack()
        workspace, user = workspace_of(context), str((body.get("user") or {}).get("id", ""))
        await deps.directory.speak_to(client, workspace, user)
        if not await _is_admin(deps, client, workspace, user):
            return
        policy = await deps.metering.policy(workspace)
        view = budget_modal(policy.month_usd, policy.user_day_usd)
        await client.views_open(trigger_id=str(body.get("trigger_id", "")), view=view)

    @app.view(BUDGET_MODAL_CALLBACK)
    async def save_budgets(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        workspace, user = workspace_of(context), str((body.get("user") or {}).get("id", ""))
        await deps.directory.speak_to(client, workspace, user)
        if not await _is_admin(deps, client, workspace, user):
            await ack(response_action="errors", errors={BUDGET_MONTH_BLOCK: tr(texts.MODAL_ADMINS_ONLY)})
            return
        amounts, errors = _budget_amounts(body)
        if errors:
            await ack(response_action="errors", errors=errors)
            return
        await ack()
        for kind, amount in amounts.items():
            await deps.budgets.set_budget(workspace, kind, amount)
        await publish_home(deps, client, workspace, user, context.bot_user_id or "")


def _budget_amounts(body: dict[str, Any]) -> tuple[dict[str, float | None], dict[str, str]]:
    """The modal's amounts by budget kind, and an error per input block that does not hold a valid amount."""
    values = ((body.get("view") or {}).get("state") or {}).get("values") or {}
    amounts: dict[str, float | None] = {}
    errors: dict[str, str] = {}
    for block_id, kind in ((BUDGET_MONTH_BLOCK, "month"), (BUDGET_USER_DAY_BLOCK, "user_day")):
        raw = str(((values.get(block_id) or {}).get(BUDGET_INPUT_ACTION) or {}).get("value") or "")
        try:
            amounts[kind] = parse_amount(raw)
        except ValueError:
            errors[block_id] = tr(texts.MODAL_BUDGET_INVALID, low=money(0), high=money(MAX_BUDGET_USD))
    return amounts, errors


def parse_amount(raw: str) -> float | None:
    """ "" -> no limit; "200", "$200", "1,000.50" -> dollars; ValueError outside (0, MAX_BUDGET_USD] or not a number."""
    text = raw.strip().lstrip("$").replace(",", "").strip()
    if not text:
        return None
    amount = float(text)  # ValueError for words; "nan" and "inf" fail the range check below
    if not 0 < amount <= MAX_BUDGET_USD:
        raise ValueError(raw)
    return amount


async def publish_home(deps: SlackDeps, client: AsyncWebClient, workspace: str, user: str, bot_user_id: str) -> None:
    """Build the tab from fresh figures and publish it; a Redis outage shows as "unavailable", never as no tab."""
    await deps.directory.speak_to(client, workspace, user)
    now = deps.clock()
    today = now.date()
    start = today.replace(day=1)
    admin = await _is_admin(deps, client, workspace, user)
    mine = await _maybe(deps.usage.report(workspace, start, today, user_id=user))
    admin_facts = None
    if admin:
        month = await _maybe(deps.usage.report(workspace, start, today))
        spent = await _maybe(deps.usage.month_spent(workspace, month_key(today)))
        policy = await deps.metering.policy(workspace)
        admin_facts = AdminFacts(spent_usd=spent or 0.0, budget_usd=policy.month_usd, month=month)
    facts = HomeFacts(
        bot_user_id=bot_user_id,
        personas=list(deps.channel_personas.catalog),
        commands=_commands(deps, admin=admin),
        today=today,
        now=now,
        mine=mine,
        admin=admin_facts,
    )
    try:
        await client.views_publish(user_id=user, view=home_view(facts))
    except SlackApiError as error:  # the tab keeps its previous content
        log.warning("home tab not published: %s", error.response.get("error"))


def _commands(deps: SlackDeps, *, admin: bool) -> list[tuple[str, str]]:
    commands = [
        (f"{PERSONA_COMMAND} [name]", tr(texts.HOME_CMD_PERSONA)),
        (TOOLS_COMMAND, tr(texts.HOME_CMD_TOOLS)),
        (RESET_COMMAND, tr(texts.HOME_CMD_RESET)),
    ]
    for tool in deps.tools.commands():
        described = texts.COMMAND_DESCRIPTIONS.get(tool.command)
        commands.append((f"{tool.command} {tool.usage}".strip(), tr(described) if described else tool.description))
    commands.append((f"{COST_COMMAND} me", tr(texts.HOME_CMD_COST_ME)))
    if admin:
        commands.append((f"{COST_COMMAND} [today | 7d | 30d | YYYY-MM]", tr(texts.HOME_CMD_COST)))
        commands.append((BUDGET_COMMAND, tr(texts.HOME_CMD_BUDGET)))
    return commands


async def _is_admin(deps: SlackDeps, client: AsyncWebClient, workspace: str, user: str) -> bool:
    """The same rule as /claude-cost and /claude-budget (asked afresh, never from a cache)."""
    return await may_manage_costs(deps.directory, deps.cost_admins, client, workspace, user)


async def _maybe(call: Awaitable[T]) -> T | None:
    try:
        return await call
    except StorageUnavailable:
        log.info("home tab: usage figures unavailable (Redis)")
        return None
