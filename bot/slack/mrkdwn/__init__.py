"""Claude's Markdown -> Slack mrkdwn, and prefix-stable splitting of long answers into Slack-sized pieces.

render.py and inline.py render; tail.py cleans up the half-typed end of an answer still streaming; scan.py and
split.py cut long answers into messages.
"""

from __future__ import annotations

from functools import lru_cache

from bot.slack.mrkdwn.render import render
from bot.slack.mrkdwn.split import split_markdown
from bot.slack.mrkdwn.tail import trim_live_tail

__all__ = ["SLACK_FORMATTING", "markdown_to_mrkdwn", "split_markdown"]

# Added to the system prompt for answers shown in Slack (the core knows nothing of Slack's rendering).
SLACK_FORMATTING = (
    "Your answer is shown in Slack. Write standard Markdown: short paragraphs, bullet lists, **bold** for key "
    "points, fenced code blocks for code. Slack cannot show tables or horizontal rules, so prefer lists. Keep Slack "
    "mentions such as <@U123> and <#C123> exactly as written. Keep answers focused: people read them in a chat."
)


@lru_cache(maxsize=256)
def markdown_to_mrkdwn(markdown: str, *, live: bool = False) -> str:
    """Render Claude's Markdown as Slack mrkdwn. `live`: this is the last piece of an answer still streaming, so
    half-typed markup at its very end is dropped; a finished answer (or a frozen earlier piece) keeps everything.

    Cached: on every edit of a streaming answer the earlier pieces of a long answer never change (split_markdown
    is prefix-stable), so without the cache each edit parsed the whole answer again.
    """
    return render(trim_live_tail(markdown) if live else markdown)
