"""Claude's Markdown -> Slack mrkdwn, and prefix-stable splitting of long answers into Slack-sized pieces.

Parsing is markdown-it-py (CommonMark + GFM tables and strikethrough); a small tree walker emits mrkdwn.
Tables become a code block with aligned columns (Slack has no tables).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

# Raw HTML off (Claude's "<" is text); autolinks off so an echoed <url|label> stays text we pass through;
# reference definitions off so "[1]: url" lines stay visible.
_MD = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"]).disable(["autolink", "reference"])
# Slack's own tokens that Claude may echo (mentions, channels, <!here>, <url|label>): kept verbatim.
# Broadcasts (<!here>, <!channel>, <!everyone>, <!subteam^…>) are deliberately NOT kept: model output (or text
# injected into it) must not page a whole channel; only date tokens pass.
_SLACK_TOKEN = re.compile(r"<(?:[@#][A-Z0-9]+|!date\^[^<>|\n]*|(?:https?|mailto|tel):[^<>\s|]+)(?:\|[^<>\n]*)?>")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_MARKS = {"strong": "*", "em": "_", "s": "~"}
_RULE = "─" * 10
# Mid-stream leftovers at the very end of the text, rewritten so they render harmlessly.
_TAIL_FIXES = (
    (re.compile(r"\n[ \t]*(?:`{1,2}|~{1,2})[ \t]*\Z"), ""),  # half-typed fence line
    (re.compile(r"\[([^\[\]\n]*)\]\([^()\s]*\Z"), r"\1"),  # "[label](partial-url" -> "label"
    (re.compile(r"(^|\s)[*_~`]+\Z"), r"\1"),  # an opening "**" / "`" with nothing after it yet
    (re.compile(r"\n[ \t]*(?:[-+]|\d{1,9}[.)])\Z"), ""),  # a list marker whose item hasn't arrived
)


@lru_cache(maxsize=256)
def markdown_to_mrkdwn(markdown: str) -> str:
    """Render Claude's Markdown as Slack mrkdwn; partial (mid-stream) text renders without broken markup.

    Cached: on every edit of a streaming answer the splitter renders the last piece to measure it and the message
    then shows that same rendering, and the earlier pieces of a long answer never change (split_markdown is
    prefix-stable), so without the cache each edit parsed the whole answer again, and its last piece twice.
    """
    return _render(markdown)


def _render(markdown: str) -> str:
    src = markdown.rstrip()
    for pattern, repl in _TAIL_FIXES:
        src = pattern.sub(repl, src)
    return _blocks(SyntaxTreeNode(_MD.parse(src)).children, "\n\n")


def _esc(text: str) -> str:
    """Escape the three characters Slack reserves (needed in code too)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _escape(text: str) -> str:
    """Escape prose but keep Slack's own <...> tokens working."""
    out, last = [], 0
    for m in _SLACK_TOKEN.finditer(text):
        out += [_esc(text[last : m.start()]), m[0]]
        last = m.end()
    return "".join([*out, _esc(text[last:])])


def _blocks(nodes: list[SyntaxTreeNode], sep: str) -> str:
    """Render sibling blocks, dropping empty ones."""
    return sep.join(filter(None, (_block(n) for n in nodes)))


def _block(node: SyntaxTreeNode) -> str:
    """Render one block node; Slack has no headings, tables or rules, so those are approximated."""
    kind = node.type
    if kind == "paragraph":
        return _inline(node.children[0], "") if node.children else ""
    if kind == "heading":
        return _wrap("*", _inline(node.children[0], "heading")) if node.children else ""
    if kind in ("fence", "code_block"):  # language tag dropped: Slack would print it as code text
        return f"```\n{_esc(node.content.rstrip(chr(10)))}\n```"
    if kind == "hr":
        return _RULE
    if kind == "blockquote":
        lines = _blocks(node.children, "\n").split("\n")
        return "\n".join(line if line.startswith("> ") else f"> {line}" for line in lines)
    if kind in ("bullet_list", "ordered_list"):
        return _list(node)
    if kind == "table":
        return _table(node)
    return _blocks(node.children, "\n\n")


def _list(node: SyntaxTreeNode) -> str:
    """Render a list as plain lines: "•" or the item number, nested content indented under it."""
    start = int(node.attrs.get("start", 1)) if node.type == "ordered_list" else None
    lines = []
    for i, item in enumerate(node.children):
        marker = "•" if start is None else f"{start + i}."
        first, *rest = _blocks(item.children, "\n").split("\n")
        pad = " " * max(4, len(marker) + 1)
        lines += [f"{marker} {first}".rstrip(), *(pad + line if line else "" for line in rest)]
    return "\n".join(lines)


def _table(node: SyntaxTreeNode) -> str:
    """Render a table as a code block with aligned columns (inline formatting is dropped)."""
    rows: list[list[str]] = []
    aligns: list[str] = []
    for section in node.children:
        for tr in section.children:
            rows.append([_inline(cell.children[0], "plain") if cell.children else "" for cell in tr.children])
            aligns = aligns or [str(cell.attrs.get("style", "")) for cell in tr.children]
    width = len(aligns)
    rows = [(row + [""] * width)[:width] for row in rows]
    widths = [max(1, *(len(row[i]) for row in rows)) for i in range(width)]

    def line(cells: list[str]) -> str:
        """Pad each cell to its column width, honouring the column's alignment."""
        padded = (
            c.rjust(w) if "right" in a else c.center(w) if "center" in a else c.ljust(w)
            for c, w, a in zip(cells, widths, aligns, strict=True)
        )
        return " | ".join(padded).rstrip()

    body = [line(rows[0]), "-+-".join("-" * w for w in widths), *(line(r) for r in rows[1:])]
    return "```\n" + _esc("\n".join(body)) + "\n```"


def _wrap(mark: str, inner: str) -> str:
    """Wrap in a Slack emphasis mark unless empty or already wrapped (Slack can't nest the same mark)."""
    if not inner.strip() or (inner.startswith(mark) and inner.endswith(mark) and len(inner) > 1):
        return inner
    return f"{mark}{inner}{mark}"


def _inline(node: SyntaxTreeNode, mode: str) -> str:
    """Render inline children; mode "plain" gives unescaped text, "heading" drops bold (already bold)."""
    return "".join(_span(child, mode) for child in node.children)


def _span(node: SyntaxTreeNode, mode: str) -> str:
    """Render one inline node."""
    kind = node.type
    if kind == "text":
        return node.content if mode == "plain" else _escape(node.content)
    if kind in ("softbreak", "hardbreak"):
        return "\n"
    if kind == "code_inline":
        return node.content if mode == "plain" else f"`{_esc(node.content)}`"
    if kind in ("link", "image"):
        url = str(node.attrs.get("href") or node.attrs.get("src") or "")
        label = _inline(node, "plain").strip()
        if not _SCHEME.match(url):  # relative link: Slack can't open it, keep the words
            return label if mode == "plain" else _esc(label)
        if mode == "plain":
            return f"{label} ({url})" if label and label != url else url
        return f"<{url}|{_esc(label)}>" if label and label != url else f"<{url}>"
    inner = _inline(node, mode)
    if kind in _MARKS and mode != "plain" and not (kind == "strong" and mode == "heading"):
        return _wrap(_MARKS[kind], inner)
    return inner


# --- splitting -------------------------------------------------------------------------------------------

_FENCE = re.compile(r"([ \t]*)(`{3,}|~{3,})([^\n]*)")
Fence = tuple[str, str]  # (opening line as reopened, e.g. "```python"; its closing line, e.g. "   ```")


def _scan(fence: Fence | None, text: str) -> Fence | None:
    """Return the open code fence after `text`, given the one open before it."""
    for raw in text.split("\n"):
        m = _FENCE.fullmatch(raw.rstrip())
        if m is None:
            continue
        indent, ticks, info = m.groups()
        if fence is None:
            if not (ticks[0] == "`" and "`" in info):
                fence = (m[0].strip(), indent + ticks)
        elif ticks[0] == fence[1].strip()[0] and len(ticks) >= len(fence[1].strip()) and not info.strip():
            fence = None
    return fence


@lru_cache(maxsize=1024)
def _rendered_len(markdown: str) -> int:
    """Length of the rendering (cached: the split search re-measures the same prefixes while streaming).

    Renders uncached: the many candidate cuts measured here would push the pieces actually shown out of
    markdown_to_mrkdwn's cache.
    """
    return len(_render(markdown))


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
    step = 1
    while lo < len(cands):  # then forward: gallop while safely short, one by one near the limit
        i = min(lo + step, len(cands)) - 1
        n = size(cands[i])
        if n <= limit - slack:
            lo, step = i + 1, step * 2
        elif i > lo:
            step = (i - lo + 1) // 2
        elif n > limit:
            return lo
        else:
            lo, step = lo + 1, 1
    return len(cands)


def _rank(window: str, c: int, fence: Fence | None) -> int:
    """Score a cut at `c`: blank line > line break > sentence end > whitespace; outside code is better."""
    if window.endswith("\n", 0, c):
        body = window[:c].rstrip()
        if fence and body[body.rfind("\n") + 1 :].strip() == fence[0]:
            return 0  # right after an opening fence: would leave an empty code block behind
        prev = window[window.rfind("\n", 0, c - 1) + 1 : c - 1]
        rank = 4 if not prev.strip() else 3
    else:
        rank = 2 if re.search(r"[.!?][)\"'*_]*\s\Z", window[max(0, c - 8) : c]) else 1
    return 2 * rank - (fence is not None)


@lru_cache(maxsize=256)
def _decide(window: str, fence: Fence | None, more: bool, limit: int) -> int | None:
    """Pick the cut (offset into window) for one piece, or None if the rest is the last piece.

    Depends only on the window, the fence open at its start, and whether text follows it — which is what
    makes splitting prefix-stable. Non-final pieces stop `slack` short of `limit`, so that text appended
    later (which can shrink an earlier rendering by a few chars, e.g. "&amp" + ";") never moves a cut.
    """
    slack = max(16, min(48, limit // 8))
    head = f"{fence[0]}\n" if fence else ""
    line_fence: dict[int, Fence | None] = {0: fence}
    for m in re.finditer("\n", window):
        start = window.rfind("\n", 0, m.start()) + 1
        line_fence[m.end()] = _scan(line_fence[start], window[start : m.start()])

    def fence_at(c: int) -> Fence | None:
        """Fence open at offset c of the window."""
        start = window.rfind("\n", 0, c) + 1
        return _scan(line_fence[start], window[start:c])

    sizes: dict[int, int] = {}

    def size(c: int) -> int:
        """Rendered length of the piece cut at c, with its added closing fence."""
        body = window[:c].rstrip()
        if len(body) not in sizes:  # every cut in one run of whitespace gives the same piece
            after = fence_at(c)
            sizes[len(body)] = _rendered_len(head + body + (f"\n{after[1]}" if after else ""))
        return sizes[len(body)]

    rest = window.rstrip()
    total = len(markdown_to_mrkdwn(head + rest)) if not more else limit + 1  # the last piece: shown next
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
        ok = cands[:fail]
        return max((c for c in ok if 2 * c >= ok[-1]), key=lambda c: (_rank(window, c, fence_at(c)), c))
    # A single unbroken run longer than the limit: hard cut, as late as fits.
    hard = list(range(first + 1, cands[0] - 1 if cands else len(window) + 1))
    fail = _first_fail(hard, size, limit - slack, slack, limit - 2 * slack - len(head) - first)
    return hard[fail - 1] if fail else first + 1


def _skip(markdown: str, q: int, fence: Fence | None) -> tuple[int, Fence | None]:
    """Skip whitespace at a split point (only blank lines inside code), and an original closing fence
    right there, since the piece before already got one."""
    if fence is None:
        return len(markdown) - len(markdown[q:].lstrip()), None
    while (eol := markdown.find("\n", q)) >= 0 and not markdown[q:eol].strip():
        q = eol + 1
    eol = len(markdown) if eol < 0 else eol
    if _scan(fence, markdown[q:eol]) is None:
        return _skip(markdown, eol, None)
    return q, fence


def _plan(markdown: str, limit: int) -> list[tuple[int, int, str, str]]:
    """Cut markdown into (start, end, reopening fence line, added closing fence) pieces."""
    if limit < 40:
        raise ValueError("max_rendered_chars must be at least 40")
    span, stop = 2 * limit, len(markdown.rstrip())
    pieces: list[tuple[int, int, str, str]] = []
    p, fence = _skip(markdown, 0, None)
    while p < stop:
        window = markdown[p : p + span]
        head = f"{fence[0]}\n" if fence else ""
        cut = _decide(window, fence, stop > p + span, limit)
        if cut is None:
            pieces.append((p, stop, head, ""))
            break
        after = _scan(fence, window[:cut])
        pieces.append((p, p + len(window[:cut].rstrip()), head, f"\n{after[1]}" if after else ""))
        p, fence = _skip(markdown, p + cut, after)
    return pieces


def split_markdown(markdown: str, max_rendered_chars: int) -> list[str]:
    """Split Markdown into pieces that each render within the limit; earlier pieces never change as
    text is appended, so the caller can freeze every message but the last.

    Greedy from the start; prefers a blank line, then a line break, sentence end, whitespace, and only
    then a hard cut. A piece ending inside a code block gets a closing fence and the next one reopens
    it with the same fence line (language included). Whitespace at split points is dropped.
    """
    return [head + markdown[s:e] + tail for s, e, head, tail in _plan(markdown, max_rendered_chars)]
