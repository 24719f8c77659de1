"""The live tail of a streaming answer: half-typed Markdown at its very end, rewritten so it shows harmlessly.

Only for the last message while the answer is still streaming: in a finished answer (or a frozen earlier piece)
the same text is what Claude meant (`The count is\\n3.`, a glob `*`, a `***` rule), and is rendered as written.
"""

from __future__ import annotations

import re

_TAIL_FIXES = (
    (re.compile(r"\n[ \t]*(?:`{1,2}|~{1,2})[ \t]*\Z"), ""),  # half-typed fence line
    (re.compile(r"\[([^\[\]\n]*)\]\([^()\s]*\Z"), r"\1"),  # "[label](partial-url" -> "label"
    (re.compile(r"(^|\s)[*_~`]+\Z"), r"\1"),  # an opening "**" / "`" with nothing after it yet
    (re.compile(r"\n[ \t]*(?:[-+*]|\d{1,9}[.)])\Z"), ""),  # a list marker whose item hasn't arrived
)


def trim_live_tail(markdown: str) -> str:
    """Drop the half-typed markup at the end of a text still being written."""
    src = markdown.rstrip()
    for pattern, repl in _TAIL_FIXES:
        src = pattern.sub(repl, src)
    return src
