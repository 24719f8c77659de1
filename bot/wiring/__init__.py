"""Composition root: turns Settings into clients, stores, services and the Bolt app. The one place that knows all.

`core` builds the Slack-free part (what the terminal chat runs too); `slack_bot` adds Slack and runs the bot.
"""

from bot.wiring.core import Core, build_core, load_persona_catalog
from bot.wiring.slack_bot import Bot, build_bot, oauth_config, slack_web_session

__all__ = ["Bot", "Core", "build_bot", "build_core", "load_persona_catalog", "oauth_config", "slack_web_session"]
