"""Block Markdown -> Slack mrkdwn: markdown-it-py (CommonMark + GFM tables and strikethrough) and a tree walker.

Slack has no headings, tables, rules, task lists or nested block structure, so those are approximated (the
README's "What Slack cannot show" lists each).
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from markdown_it.tree import SyntaxTreeNode

from bot.slack.mrkdwn.inline import ZWSP, bare_url, esc, escape_text, inline, wrap

# Raw HTML is parsed only so that comments can be dropped and <br> become a line break; every other tag is shown
# as the text Claude wrote. Autolinks off so an echoed <url|label> stays a Slack token; bare URLs are links.
MD = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"]).disable(["autolink"])
MD.inline.ruler.before("linkify", "bare_url", bare_url)
RULE = "─" * 10
QUOTE_BLANK = "> " + ZWSP  # an empty line that stays inside the quote (a bare ">" may show as text)
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_TASK = re.compile(r"\[([ xX])\] ")


def render(markdown: str) -> str:
    """Render a whole Markdown text; nothing is dropped (see tail.py for the mid-stream clean-up)."""
    return blocks(SyntaxTreeNode(MD.parse(markdown.rstrip())).children, "\n\n")


def code_block(text: str) -> str:
    """A Slack code block. Slack has no fence nesting: any ``` inside would end the block, so a zero-width space
    goes between the second and third backtick of every run (the code shows the same, one invisible char more)."""
    return "```\n" + re.sub("``(?=`)", "``" + ZWSP, esc(text)) + "\n```"


def blocks(nodes: list[SyntaxTreeNode], sep: str) -> str:
    """Render sibling blocks, dropping empty ones."""
    return sep.join(filter(None, (block(n) for n in nodes)))


def block(node: SyntaxTreeNode) -> str:
    """Render one block node; Slack has no headings, tables or rules, so those are approximated."""
    kind = node.type
    if kind == "paragraph":
        return inline(node.children[0], "") if node.children else ""
    if kind == "heading":
        return wrap("*", inline(node.children[0], "heading")) if node.children else ""
    if kind in ("fence", "code_block"):  # language tag dropped: Slack would print it as code text
        return code_block(node.content.rstrip("\n"))
    if kind == "hr":
        return RULE
    if kind == "html_block":
        return escape_text(_COMMENT.sub("", node.content).strip("\n"))
    if kind == "blockquote":
        return _quote(node)
    if kind in ("bullet_list", "ordered_list"):
        return _list(node)
    if kind == "table":
        return _table(node)
    return blocks(node.children, "\n\n")


def _quote(node: SyntaxTreeNode) -> str:
    """Every line quoted, blank lines between paragraphs kept inside the quote (nested quotes flatten: Slack
    shows one level)."""
    lines = blocks(node.children, "\n\n").split("\n")
    return "\n".join(_quoted(line) for line in lines)


def _quoted(line: str) -> str:
    if line.startswith("> "):
        return line
    return f"> {line}" if line.strip() else QUOTE_BLANK


def _list(node: SyntaxTreeNode) -> str:
    """Render a list as plain lines: "•" or the item number, nested content indented under it.

    Quote lines stay at the start of the line (indented, Slack would not show them as a quote); a loose list
    keeps its blank lines; task boxes show as ☐ / ☑.
    """
    start = int(node.attrs.get("start", 1)) if node.type == "ordered_list" else None
    loose = any(not child.hidden for item in node.children for child in item.children if child.type == "paragraph")
    lines: list[str] = []
    for i, item in enumerate(node.children):
        marker = "•" if start is None else f"{start + i}."
        first, *rest = blocks(item.children, "\n\n" if loose else "\n").split("\n")
        if first.startswith("> "):
            first, rest = "", [first, *rest]
        first = _TASK.sub(lambda m: "☐ " if m[1] == " " else "☑ ", first, count=1) if _TASK.match(first) else first
        pad = " " * max(4, len(marker) + 1)
        if loose and i:
            lines.append("")
        lines += [f"{marker} {first}".rstrip(), *(_indent(pad, line) for line in rest)]
    return "\n".join(lines)


def _indent(pad: str, line: str) -> str:
    if not line or line.startswith(">"):
        return line
    return pad + line


def _table(node: SyntaxTreeNode) -> str:
    """Render a table as a code block with aligned columns (inline formatting is dropped)."""
    rows: list[list[str]] = []
    aligns: list[str] = []
    for section in node.children:
        for tr in section.children:
            rows.append([inline(cell.children[0], "plain") if cell.children else "" for cell in tr.children])
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
    return code_block("\n".join(body))
