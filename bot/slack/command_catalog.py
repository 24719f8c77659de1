"""Every slash command the bot answers, in one place: name, description and usage hint.

Listeners register handlers for these names, `/claude-tools` and the Home tab list them, and manifest.yml's
slash-command block is generated from this catalog (`claude-slack-bot manifest --write`), so a command cannot be
added in one place and forgotten in another. Commands that are tools (`Tool.for_people`) come from the tool
registry and are listed here with the fixed ones. Descriptions stay in English: Slack shows the manifest's text as
written (https://docs.slack.dev/reference/app-manifest#slash_commands).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.tools.builtin import builtin_tools
from bot.core.tools.registry import ToolRegistry

PERSONA_COMMAND = "/claude-persona"
TOOLS_COMMAND = "/claude-tools"
COST_COMMAND = "/claude-cost"
BUDGET_COMMAND = "/claude-budget"
RESET_COMMAND = "/claude-reset"


@dataclass(frozen=True, slots=True)
class SlashCommand:
    name: str
    description: str
    usage_hint: str = ""


FIXED_COMMANDS = (
    SlashCommand(PERSONA_COMMAND, "Show the personas, or set the one Claude uses in this channel", "[persona name]"),
    SlashCommand(TOOLS_COMMAND, "List what Claude can do here: tools, and the commands to use them"),
    SlashCommand(
        COST_COMMAND,
        "Claude usage and cost for this workspace (admins), or your own with `me`",
        "[me | today | 7d | 30d | YYYY-MM | export 30d]",
    ),
    SlashCommand(
        BUDGET_COMMAND,
        "Show or set Claude's monthly and per-person daily budgets (admins)",
        "[month 200 | user-day 10]",
    ),
    SlashCommand(
        RESET_COMMAND, "Start a fresh conversation with Claude in this DM (in channels: how to clear a thread)"
    ),
)


def fixed_commands() -> dict[str, tuple[str, str]]:
    """Commands that are not tools: name -> (description, usage hint)."""
    return {command.name: (command.description, command.usage_hint) for command in FIXED_COMMANDS}


def slash_commands(registry: ToolRegistry | None = None) -> list[tuple[str, str, str]]:
    """(command, description, usage hint) for every command the bot registers, sorted by name."""
    registry = registry or ToolRegistry(builtin_tools())
    commands = [(c.name, c.description, c.usage_hint) for c in FIXED_COMMANDS]
    commands += [(tool.command, tool.description, tool.usage) for tool in registry.commands()]
    return sorted(commands)
