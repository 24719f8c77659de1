"""A line-by-line reading of Markdown's block structure, just enough for the splitter to cut safely.

The state at a line depends only on the lines before it, which is what keeps splitting prefix-stable. It knows
the code fence that is open (also inside list items and quotes), the table whose rows are running, and the quote a
(lazy) line belongs to, so a piece that starts inside one of them can reopen it. It approximates CommonMark: a
fence is closed by a line of the same character at least as long with no info string, whatever its indentation.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_QUOTE = re.compile(r"(?: {0,3}>[ \t]?)+")
_ITEM = re.compile(r"(?:[ \t]*(?:[-+*]|\d{1,9}[.)])(?:[ \t]+|$))*[ \t]*")
_FENCE = re.compile(r"(`{3,}|~{3,})([^\n]*)")
_DELIMITER = re.compile(r"\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?")
_BLOCK_START = re.compile(r"[ \t]{0,3}(?:#{1,6}(?:[ \t]|$)|`{3,}|~{3,}|>)")


class Fence(NamedTuple):
    reopen: str  # the line that reopens it in the next piece, e.g. "```python" or "> ```"
    close: str  # the line that closes it where it was opened, e.g. "   ```"
    ticks: str  # the fence characters, e.g. "````"
    depth: int  # how many quote levels it sits in


class State(NamedTuple):
    """What is open at the start of a line."""

    fence: Fence | None = None
    table: str = ""  # header and delimiter lines of the table running here (with their newline)
    quote: str = ""  # quote prefix ("> ", "> > ") of the paragraph running here, for lazy continuation lines
    previous: str = ""  # the line before, a possible table header


def quote_prefix(line: str) -> tuple[str, str]:
    """Split a line into its quote markers (normalised to "> " per level) and the rest."""
    m = _QUOTE.match(line)
    if m is None:
        return "", line
    return "> " * m[0].count(">"), line[m.end() :]


def _cells(row: str) -> int:
    row = row.strip()
    row = row[1:] if row.startswith("|") else row
    row = row[:-1] if row.endswith("|") and not row.endswith("\\|") else row
    return len(re.split(r"(?<!\\)\|", row))


def step(state: State, line: str) -> State:
    """The state at the start of the line after `line`."""
    quote, rest = quote_prefix(line)
    if state.fence is not None:
        fence = state.fence
        body = rest if quote.count(">") >= fence.depth else line
        m = _FENCE.fullmatch(body.strip())
        closes = m is not None and m[1][0] == fence.ticks[0] and len(m[1]) >= len(fence.ticks) and not m[2].strip()
        return State(None if closes else fence, "", "", "")
    if not rest.strip():
        return State()
    item = _ITEM.match(rest)
    width = item.end() if item else 0
    m = _FENCE.fullmatch(rest[width:].rstrip())
    if m is not None and not (m[1][0] == "`" and "`" in m[2]):
        pad = " " * width
        reopen = quote + (pad if width <= 3 else "") + m[0].strip()
        return State(Fence(reopen, quote + pad + m[1], m[1], quote.count(">")), "", "", "")
    lazy = state.quote if not quote and state.quote and not _BLOCK_START.match(rest) else ""
    if state.table and not _BLOCK_START.match(rest):
        return State(None, state.table, quote or lazy, line)
    header = state.previous
    delimiter = "|" in line and "-" in rest and _DELIMITER.fullmatch(rest.strip()) and "|" in header
    if delimiter and quote_prefix(header)[0] == quote and _cells(quote_prefix(header)[1]) == _cells(rest):
        return State(None, f"{header}\n{line}\n", quote, line)
    return State(None, "", quote or lazy, line)


def scan(state: State, text: str) -> State:
    """The state after `text` (its last line may be partial; a partial line is read as if complete)."""
    for line in text.split("\n"):
        state = step(state, line)
    return state


def line_states(text: str) -> dict[int, State]:
    """The state at the start of every line of `text` read from scratch, by the line's offset."""
    states = {0: State()}
    start = 0
    for m in re.finditer("\n", text):
        states[m.end()] = step(states[start], text[start : m.start()])
        start = m.end()
    return states


def open_flags(line: str) -> list[bool]:
    """For each cut point i of a line, whether line[:i] leaves a code span, a link, a Slack link, an HTML tag or
    bold text open: conservative, since the text that closes it may not have arrived yet."""
    flags = [False]
    code = bracket = bold = 0
    in_url = in_angle = pair = False
    for i, ch in enumerate(line):
        if pair:
            pair = False
        elif ch == "`":
            code ^= 1
        elif code:
            pass
        elif ch in "*_" and line.startswith(ch * 2, i):
            bold, pair = bold ^ 1, True
        elif ch == "[":
            bracket += 1
        elif ch == "]" and bracket:
            bracket -= 1
            in_url = line.startswith("(", i + 1)
        elif ch == ")" and in_url:
            in_url = False
        elif ch == "<" and re.match(r"<[@#!/?A-Za-z]", line[i : i + 2]):  # a Slack link or an HTML tag
            in_angle = True
        elif ch == ">":
            in_angle = False
        flags.append(bool(code or bracket or bold or in_url or in_angle))
    return flags
