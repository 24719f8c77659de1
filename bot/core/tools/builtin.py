"""The tools the bot ships with; adding one is a module and a line here."""

from __future__ import annotations

from bot.core.tools.commands import REVIEW, SUMMARIZE
from bot.core.tools.conversations import POST_MESSAGE, READ_CHANNEL, READ_THREAD
from bot.core.tools.history import SEARCH_HISTORY
from bot.core.tools.registry import Tool


def builtin_tools(*, web_fetch: bool = True) -> list[Tool]:
    tools = [REVIEW, SUMMARIZE, READ_THREAD, READ_CHANNEL, POST_MESSAGE, SEARCH_HISTORY]
    if web_fetch:
        from bot.core.tools.fetch_url import FETCH_URL

        tools.append(FETCH_URL)
    return tools
