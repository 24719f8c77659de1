"""Prefix-stable splitting of a long answer into pieces that each render within Slack's message size.

A piece that starts inside a code block, a table or a quote reopens it (fence line, header rows, "> "), so each
piece is Markdown that renders on its own the way the whole would have.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from functools import lru_cache

from bot.slack.mrkdwn.render import render
from bot.slack.mrkdwn.scan import State, line_states, open_flags, quote_prefix, scan, step

_BLOCK = re.compile(r"[ \t]{0,3}(?:#{1,6}(?:[ \t]|$)|`{3,}|~{3,})")


@lru_cache(maxsize=1024)
def _rendered_len(markdown: str) -> int:
    """Length of the rendering (cached: the split search re-measures the same prefixes while streaming)."""
    return len(render(markdown))


def _first_fail(cands: list[int], size: Callable[[int], int], limit: int, slack: int, guess: int) -> int:
    """Index of the first candidate whose piece renders over `limit` (len(cands) if none).

    Exact on the assumption that appending text shrinks a rendering by at most `slack` chars: a candidate
    rendering <= limit - slack then vouches for every earlier one, so we can anchor near `guess` (where
    the limit is likely reached) instead of rendering every candidate. The guess only affects speed.
    """
    lo, back, i = 0, 1, min(guess, len(cands)) - 1
    while i >= 0:  # walk back from the guess to a candidate that vouches for all before it
        if size(cands[i]) <= limit - slack:
            lo = i + 1
            break
        i, back = i - back, back * 2
    step_ = 1
    while lo < len(cands):  # then forward: gallop while safely short, one by one near the limit
        i = min(lo + step_, len(cands)) - 1
        n = size(cands[i])
        if n <= limit - slack:
            lo, step_ = i + 1, step_ * 2
        elif i > lo:
            step_ = (i - lo + 1) // 2
        elif n > limit:
            return lo
        else:
            lo, step_ = lo + 1, 1
    return len(cands)


class _Doc:
    """One piece's Markdown (reopening head + window) with the block state at every line start."""

    def __init__(self, head: str, window: str) -> None:
        self.head, self.window, self.text = head, window, head + window
        self.states = line_states(self.text)
        self._flags: dict[int, list[bool]] = {}
        self._ranks: dict[int, int] = {}

    def _inline_open(self, start: int, at: int) -> bool:
        """Whether a cut at `at` leaves a link, code span or bold run open on the line starting at `start`."""
        if start not in self._flags:
            end = self.text.find("\n", start)
            self._flags[start] = open_flags(self.text[start : end if end >= 0 else len(self.text)])
        flags = self._flags[start]
        return flags[min(at - start, len(flags) - 1)]

    def state_at(self, c: int) -> State:
        """State at window offset c (the line it is in read as if it ended there)."""
        at = len(self.head) + c
        start = self.text.rfind("\n", 0, at) + 1
        return scan(self.states[start], self.text[start:at]) if at > start else self.states[start]

    def rank(self, c: int) -> int:
        """Score a cut at c (cached)."""
        if c not in self._ranks:
            self._ranks[c] = self._rank(c)
        return self._ranks[c]

    def _rank(self, c: int) -> int:
        """Score a cut at c: blank line > line break > sentence end > whitespace; outside code is better;
        0 for a cut that would break a link, code span, bold run or table row."""
        window, at = self.window, len(self.head) + c
        start = self.text.rfind("\n", 0, at - 1) + 1
        line_state = self.states[start]
        fence = self.state_at(c).fence
        if window.endswith("\n", 0, c):
            if fence and line_state.fence is None:
                return 0  # right after an opening fence: would leave an empty code block behind
            if fence is None and self.state_at(c).table and not line_state.table:
                return 0  # right after a table's header: the next piece repeats it anyway
            rank = 4 if not self.text[start : at - 1].strip() else 3
            if fence is None and not line_state.table and "|" in self.text[start : at - 1]:
                return 0  # after a possible table header, whose delimiter row may be next
        else:
            if fence is None and (line_state.table or "|" in self.text[start:at] or self._inline_open(start, at)):
                return 0
            rank = 2 if re.search(r"[.!?][)\"'*_]*\s\Z", window[max(0, c - 8) : c]) else 1
        return 2 * rank - (fence is not None)

    def closing(self, c: int) -> str:
        """The fence line a piece cut at c must add to close its open code block."""
        fence = self.state_at(c).fence if c else None
        return f"\n{fence.close}" if fence else ""


def _choose(doc: _Doc, ok: list[int]) -> int:
    """The best cut among those that fit: a good one in the second half, else the latest good one, else the
    best of the rest (a link or row longer than a message has to be cut somewhere)."""
    late = [c for c in ok if 2 * c >= ok[-1]]
    best = max(late, key=lambda c: (doc.rank(c), c))
    if doc.rank(best) > 0:
        return best
    good = [c for c in ok if doc.rank(c) > 0]
    return good[-1] if good else best


@lru_cache(maxsize=256)
def _decide(window: str, head: str, more: bool, limit: int) -> tuple[int, str] | None:
    """Pick the cut (offset into window) for one piece and the fence line closing it, or None if the rest is the
    last piece.

    Depends only on the window, the head reopening what is open at its start, and whether text follows it —
    which is what makes splitting prefix-stable. Non-final pieces stop `slack` short of `limit`, so that text
    appended later (which can shrink an earlier rendering by a few chars, e.g. "&amp" + ";") never moves a cut.
    """
    slack = max(16, min(48, limit // 8))
    doc = _Doc(head, window)
    sizes: dict[int, int] = {}

    def size(c: int) -> int:
        """Rendered length of the piece cut at c, with its added closing fence."""
        body = window[:c].rstrip()
        if len(body) not in sizes:  # every cut in one run of whitespace gives the same piece
            sizes[len(body)] = _rendered_len(head + body + doc.closing(c))
        return sizes[len(body)]

    rest = window.rstrip()
    total = len(render(head + rest)) if not more else limit + 1  # the last piece: shown next
    if total <= limit - 2 * slack:
        return None
    first = len(window) - len(window.lstrip())
    cands = [i + 1 for i, ch in enumerate(window) if ch.isspace() and i > first]
    budget = limit - 2 * slack - len(head)  # text renders about as long as it is, plus escapes
    guess = bisect.bisect(cands, budget - 4 * sum(map(window[:budget].count, "&<>")))
    fail = _first_fail(cands, size, limit - slack, slack, guess)
    if fail == len(cands) and total <= limit:
        # Last piece only if every prefix of the trailing word fits too: keeps "last" monotone as it grows.
        tail = list(range(cands[-1] + 1 if cands else first + 1, len(rest) + 1))
        if _first_fail(tail, size, limit, slack, 0) == len(tail):
            return None
    if fail:
        cut = _choose(doc, cands[:fail])
        return cut, doc.closing(cut)
    # A single unbroken run longer than the limit: hard cut, as late as fits.
    hard = list(range(first + 1, cands[0] - 1 if cands else len(window) + 1))
    fail = _first_fail(hard, size, limit - slack, slack, limit - 2 * slack - len(head) - first)
    cut = hard[fail - 1] if fail else first + 1
    return cut, doc.closing(cut)


@lru_cache(maxsize=256)
def _next(text: str, head: str, cut: int) -> tuple[int, str, bool]:
    """Where the next piece starts after a cut (offset into text, the Markdown from this piece's start), the head
    that reopens what is open there, and whether text held all that was needed to tell (a line ended after it).

    Whitespace at the cut is dropped (only blank lines inside code), and an original closing fence right there,
    since the piece before already got one.
    """
    text = head + text
    at = len(head) + cut
    start = text.rfind("\n", 0, at) + 1
    fence = scan(line_states(text[:start])[start] if start else State(), text[start:at]).fence
    if fence is not None:
        q = at
        while (eol := text.find("\n", q)) >= 0 and not text[q:eol].strip():
            q = eol + 1
        eol = len(text) if eol < 0 else eol
        if step(State(fence), text[q:eol]).fence is None:  # the original closing fence: skip it too
            q = len(text) - len(text[eol:].lstrip())
            return q - len(head), "", "\n" in text[q:]
        return q - len(head), fence.reopen + "\n", "\n" in text[q:]
    q = len(text) - len(text[at:].lstrip())
    q_start = text.rfind("\n", 0, q) + 1
    state = line_states(text[:q_start])[q_start] if q_start else State()
    line = text[q_start:].split("\n", 1)[0]
    quote, rest = quote_prefix(line)
    known = "\n" in text[q:]
    if at > q_start:  # the line itself was cut: the rest of a quoted line stays quoted
        return q - len(head), "" if state.table else quote or state.quote, known
    if _BLOCK.match(rest):
        return q - len(head), "", known
    if state.table and quote == quote_prefix(state.table)[0]:
        return q - len(head), state.table, known
    return q - len(head), state.quote if not quote else "", known


def _plan(markdown: str, limit: int) -> list[tuple[int, int, str, str]]:
    """Cut markdown into (start, end, reopening head, added closing fence) pieces."""
    if limit < 40:
        raise ValueError("max_rendered_chars must be at least 40")
    span, stop = 2 * limit, len(markdown.rstrip())
    pieces: list[tuple[int, int, str, str]] = []
    p, head = len(markdown) - len(markdown.lstrip()), ""
    while p < stop:
        window = markdown[p : p + span]
        decided = _decide(window, head, stop > p + span, limit)
        if decided is None:
            pieces.append((p, stop, head, ""))
            break
        cut, closing = decided
        pieces.append((p, p + len(window[:cut].rstrip()), head, closing))
        skip, after, known = _next(window, head, cut)
        if not known and p + span < len(markdown):  # the window ended too soon to tell: read on
            skip, after, _ = _next.__wrapped__(markdown[p:], head, cut)
        p, head = p + skip, after
    return pieces


def split_markdown(markdown: str, max_rendered_chars: int) -> list[str]:
    """Split Markdown into pieces that each render within the limit; earlier pieces never change as
    text is appended, so the caller can freeze every message but the last.

    Greedy from the start; prefers a blank line, then a line break, sentence end, whitespace, and only
    then a hard cut; never inside a link, code span or table row while another cut fits. A piece ending
    inside a code block gets a closing fence and the next one reopens it with the same fence line (language
    included); a piece starting inside a table repeats its header rows, inside a quote its "> ".
    """
    return [head + markdown[s:e] + tail for s, e, head, tail in _plan(markdown, max_rendered_chars)]
