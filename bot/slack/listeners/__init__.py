"""The whole Slack surface of the app: each module registers its own listeners."""

from __future__ import annotations

from typing import TYPE_CHECKING

from slack_bolt.async_app import AsyncApp

from bot.slack.listeners import (
    actions,
    answer_actions,
    assistant,
    budget,
    commands,
    cost,
    home,
    mentions,
    messages,
    reset,
    shortcuts,
    uninstalls,
)

if TYPE_CHECKING:
    from bot.slack.deps import SlackDeps


def register_all(app: AsyncApp, deps: SlackDeps) -> None:
    mentions.register(app, deps)
    messages.register(app, deps)
    commands.register(app, deps)
    actions.register(app, deps)
    shortcuts.register(app, deps)
    cost.register(app, deps)
    budget.register(app, deps)
    assistant.register(app, deps)
    answer_actions.register(app, deps)
    reset.register(app, deps)
    uninstalls.register(app, deps)
    home.register(app, deps)
