"""The App Home tab and the modals its admin buttons open: pure Block Kit builders in the reader's language.

Everything is built through `bot.slack.blocks`, so a workspace with hundreds of personas or people still gets a
valid view (at most 100 blocks, every text within its limit), summarising what does not fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from bot.core import texts
from bot.core.i18n import MONTH_YEAR, fmt_date, language_name, money, number, percent, tr, trn
from bot.core.personas import Persona
from bot.core.usage import Breakdown, UsageReport
from bot.slack.blocks import (
    INPUT_LABEL_LIMIT,
    MODAL_TITLE_LIMIT,
    PLACEHOLDER_LIMIT,
    Blocks,
    button,
    plain,
)

HOME_COST_ACTION = "home_cost_report"
HOME_BUDGET_ACTION = "home_budget"
BUDGET_MODAL_CALLBACK = "home_budget_modal"
BUDGET_MONTH_BLOCK = "budget_month"
BUDGET_USER_DAY_BLOCK = "budget_user_day"
BUDGET_INPUT_ACTION = "amount"
TOP_ROWS = 5  # per top list on the Home tab: the full lists are one click away (Cost report)
_ADMIN_BLOCKS = 8  # kept free while personas are listed, so the admin part always fits
_TAIL_BLOCKS = 5  # your usage, language, updated


@dataclass(frozen=True, slots=True)
class AdminFacts:
    spent_usd: float
    budget_usd: float | None
    month: UsageReport | None  # None when the figures could not be read


@dataclass(frozen=True, slots=True)
class HomeFacts:
    bot_user_id: str
    personas: Sequence[Persona]
    commands: Sequence[tuple[str, str]]  # (how to type it, what it does), already in the reader's language
    today: date
    now: datetime
    mine: UsageReport | None  # the reader's usage this month; None when unavailable
    admin: AdminFacts | None  # only for workspace admins


def home_view(facts: HomeFacts) -> dict[str, Any]:
    blocks = Blocks()
    blocks.header(tr(texts.HOME_HEADER))
    blocks.section(tr(texts.HOME_INTRO))
    how = [
        tr(texts.HOME_HOW_HEADING),
        tr(texts.HOME_HOW_MENTION, bot=facts.bot_user_id),
        tr(texts.HOME_HOW_DM),
        tr(texts.HOME_HOW_FILES),
    ]
    blocks.section("\n".join(how))
    commands = [f"• `{usage}` — {description}" for usage, description in facts.commands]
    blocks.sections_of_lines([tr(texts.HOME_COMMANDS_HEADING), *commands], keep_free=_ADMIN_BLOCKS + _TAIL_BLOCKS)
    blocks.divider()
    _personas(blocks, facts.personas)
    blocks.divider()
    _mine(blocks, facts)
    blocks.context(tr(texts.HOME_LANGUAGE, language=language_name()))
    if facts.admin is not None:
        _admin(blocks, facts.admin)
    blocks.context(tr(texts.HOME_UPDATED, when=f"{fmt_date(facts.now.date())} {facts.now:%H:%M}"))
    return {"type": "home", "blocks": blocks.blocks}


def _personas(blocks: Blocks, personas: Sequence[Persona]) -> None:
    lines = [tr(texts.HOME_PERSONAS_HEADING)]
    for persona in personas:
        emoji = f"{persona.emoji} " if persona.emoji else ""
        lines.append(f"• {emoji}*{persona.name}* — {persona.description}")
    shown = blocks.sections_of_lines(lines, keep_free=_ADMIN_BLOCKS + _TAIL_BLOCKS + 1)
    hidden = len(lines) - max(shown, 1)
    if hidden > 0:
        blocks.context(trn(texts.HOME_PERSONAS_MORE, hidden))


def _mine(blocks: Blocks, facts: HomeFacts) -> None:
    heading = tr(texts.HOME_YOUR_USAGE_HEADING, month=fmt_date(facts.today, MONTH_YEAR))
    mine = facts.mine
    if mine is None:
        line = tr(texts.HOME_YOUR_USAGE_UNAVAILABLE)
    elif mine.requests == 0:
        line = tr(texts.HOME_YOUR_USAGE_NONE)
    else:
        tokens = number(mine.input_tokens + mine.output_tokens + mine.cache_write_tokens + mine.cache_read_tokens)
        line = trn(texts.HOME_YOUR_USAGE, mine.requests, cost=money(mine.cost_usd), tokens=tokens)
    blocks.section(f"{heading}\n{line}")


def _admin(blocks: Blocks, admin: AdminFacts) -> None:
    blocks.divider()
    blocks.header(tr(texts.HOME_ADMIN_HEADING))
    if admin.budget_usd:
        spent = tr(
            texts.HOME_ADMIN_SPENT_BUDGET,
            spent=money(admin.spent_usd),
            budget=money(admin.budget_usd),
            share=percent(admin.spent_usd / admin.budget_usd),
        )
    else:
        spent = tr(texts.HOME_ADMIN_SPENT_NO_BUDGET, spent=money(admin.spent_usd))
    blocks.section(spent)
    month = admin.month
    if month is None:
        blocks.section(tr(texts.HOME_YOUR_USAGE_UNAVAILABLE))
    elif month.requests == 0:
        blocks.section(tr(texts.HOME_ADMIN_NOTHING))
    else:
        blocks.section(_top(tr(texts.HOME_ADMIN_TOP_USERS), month.top_users, "user"))
        blocks.section(_top(tr(texts.HOME_ADMIN_TOP_CHANNELS), month.top_channels, "channel"))
    blocks.actions(
        button(HOME_COST_ACTION, tr(texts.HOME_BUTTON_COST), value="month", style="primary"),
        button(HOME_BUDGET_ACTION, tr(texts.HOME_BUTTON_BUDGET), value="budget"),
        block_id="home_admin",
    )


def _top(heading: str, rows: Sequence[Breakdown], kind: str) -> str:
    lines = [heading]
    for rank, row in enumerate(rows[:TOP_ROWS], start=1):
        if kind == "user":
            name = f"<@{row.key}>" if row.key else tr(texts.REPORT_UNKNOWN)
        else:
            name = tr(texts.REPORT_DIRECT_MESSAGE) if row.key.startswith("D") else f"<#{row.key}>"
        lines.append(tr(texts.HOME_ADMIN_TOP_ROW, rank=rank, name=name, cost=money(row.cost_usd)))
    return "\n".join(lines)


def cost_modal(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """The month's /claude-cost report in a modal (its blocks are already within a message's 50)."""
    return {
        "type": "modal",
        "title": plain(tr(texts.MODAL_COST_TITLE), MODAL_TITLE_LIMIT),
        "close": plain(tr(texts.MODAL_CLOSE), MODAL_TITLE_LIMIT),
        "blocks": blocks,
    }


def budget_modal(month_usd: float | None, user_day_usd: float | None) -> dict[str, Any]:
    """Two amounts, prefilled with today's budgets; empty means no limit."""
    return {
        "type": "modal",
        "callback_id": BUDGET_MODAL_CALLBACK,
        "title": plain(tr(texts.MODAL_BUDGET_TITLE), MODAL_TITLE_LIMIT),
        "submit": plain(tr(texts.MODAL_BUDGET_SAVE), MODAL_TITLE_LIMIT),
        "close": plain(tr(texts.MODAL_BUDGET_CANCEL), MODAL_TITLE_LIMIT),
        "blocks": [
            _amount_input(BUDGET_MONTH_BLOCK, tr(texts.MODAL_BUDGET_MONTH), month_usd),
            _amount_input(BUDGET_USER_DAY_BLOCK, tr(texts.MODAL_BUDGET_USER_DAY), user_day_usd),
        ],
    }


def _amount_input(block_id: str, label: str, current: float | None) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": BUDGET_INPUT_ACTION,
        "placeholder": plain(tr(texts.MODAL_BUDGET_HINT), PLACEHOLDER_LIMIT),
    }
    if current is not None:
        element["initial_value"] = f"{current:g}"
    return {
        "type": "input",
        "block_id": block_id,
        "optional": True,
        "label": plain(label, INPUT_LABEL_LIMIT),
        "element": element,
    }
