"""Which URLs people wrote in a conversation: fetch_url reads those without asking, any other needs Approve.

Why: a URL Claude composes can carry the thread's content to any host in its path or query (prompt injection in a
page or a message could ask for exactly that), so only a link a person wrote is fetched on Claude's say-so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from yarl import URL

from bot.core.conversation import TextBlock, ToolResultBlock, Turn

# Slack sends links as <https://…> or <https://…|label>; plain text keeps them bare. Stop at whitespace, <>|"`.
_URL = re.compile(r"""https?://[^\s<>|"'`]+""", re.IGNORECASE)
_TRAILING = ".,;:!?)]}*_~"


def urls_written_by_people(turns: Iterable[Turn]) -> frozenset[str]:
    """Normalised URLs found in the text of people's messages (never in tool results or Claude's turns)."""
    found: set[str] = set()
    for turn in turns:
        if turn.role != "user" or any(isinstance(b, ToolResultBlock) for b in turn.blocks):
            continue
        for block in turn.blocks:
            if isinstance(block, TextBlock):
                for match in _URL.finditer(block.text):
                    normal = normal_url(match.group(0).rstrip(_TRAILING))
                    if normal is not None:
                        found.add(normal)
    return frozenset(found)


def normal_url(raw: str) -> str | None:
    """One spelling per URL: scheme and host lower case, default port and fragment dropped, "/" for an empty path."""
    try:
        url = URL(raw.strip().replace("&amp;", "&"))  # Slack escapes & in message text
        if url.scheme.lower() not in ("http", "https") or not url.raw_host:
            return None
        return str(url.with_fragment(None)).removesuffix("/") + ("/" if url.raw_path in ("", "/") else "")
    except (ValueError, TypeError):
        return None
