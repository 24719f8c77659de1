"""Inline Markdown (emphasis, code, links, text) -> Slack mrkdwn.

Slack's formatting rules differ from CommonMark's: a mark only counts at a word boundary, never spans a line, and
there is no escape character (only `&`, `<`, `>` are escaped, as entities). So:
- emphasis inside a word gets a zero-width space (U+200B) on each side that touches a word character, the way
  other Markdown -> Slack converters do it, so Slack sees the boundary it needs;
- emphasis over several lines is closed and reopened on every line;
- a literal `*`, `_`, `~` or backtick that Slack could read as a mark (Claude escaped it, or CommonMark did not
  pair it) gets a zero-width space between it and the word it touches, so Slack does not pair it.
How Slack's (undocumented) parser treats U+200B is unverified: converters in use rely on it, nothing more.
Formatting: https://docs.slack.dev/messaging/formatting-message-text
"""

from __future__ import annotations

import re

from markdown_it.rules_inline import StateInline
from markdown_it.tree import SyntaxTreeNode

ZWSP = "\u200b"
GRAVE = "\u02cb"  # MODIFIER LETTER GRAVE ACCENT, stands in for a backtick inside inline code
# Slack's own tokens that Claude may echo (mentions, channels, <url|label>, dates): kept verbatim. Broadcasts
# (<!here>, <!channel>, <!everyone>, <!subteam^…>) are deliberately NOT kept: model output (or text injected into
# it) must not page a whole channel.
SLACK_TOKEN = re.compile(r"<(?:[@#][A-Z0-9]+|!date\^[^<>|\n]*|(?:https?|mailto|tel):[^<>\s|]+)(?:\|[^<>\n]*)?>")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_MARKS = {"strong": "*", "em": "_", "s": "~"}
# A literal mark Slack could read as opening (boundary before, text after) or closing (text before, boundary after).
_OPENS = re.compile(r"(?<!\w)([*_~`])(?=[^\s*_~`])")
_CLOSES = re.compile(r"(?<=[^\s*_~`])([*_~`])(?!\w)")
# Bare URLs (GFM's autolink extension, http/https only): trailing punctuation is not part of the URL.
_BARE_URL = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
_TRAILING = ".,:;!?*~'\""  # GFM also drops "_", but Python anchors end in it (#object.__init__)


def esc(text: str) -> str:
    """Escape the three characters Slack reserves (needed in code too)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _defuse(text: str) -> str:
    """Keep literal formatting characters literal in Slack (see the module docstring)."""
    text = re.sub("``(?=`)", "``" + ZWSP, text)  # three backticks open a code block anywhere in Slack
    text = _OPENS.sub(lambda m: m[1] + ZWSP, text)
    return _CLOSES.sub(lambda m: ZWSP + m[1], text)


def escape_text(text: str) -> str:
    """Escape prose, keep Slack's own <...> tokens working, and keep literal marks literal."""
    out, last = [], 0
    for m in SLACK_TOKEN.finditer(text):
        out += [_defuse(esc(text[last : m.start()])), m[0]]
        last = m.end()
    return "".join([*out, _defuse(esc(text[last:]))])


def bare_url(state: StateInline, silent: bool) -> bool:
    """markdown-it inline rule: a bare http(s) URL is a link, so emphasis rules never apply inside it.

    Replaces markdown-it's linkify (which needs linkify-it-py); runs at the ':' after the scheme, like it.
    """
    pos = state.pos
    if state.linkLevel > 0 or not state.src.startswith("://", pos):
        return False
    scheme = re.search(r"(?:^|[^A-Za-z0-9])(https?)$", state.pending, re.IGNORECASE)
    if scheme is None:
        return False
    if state.pending.endswith("<" + scheme[1]):  # an echoed Slack link <url|label>: kept whole, as text
        echoed = SLACK_TOKEN.match(state.src, pos - len(scheme[1]) - 1)
        if echoed is None:
            return False
        if not silent:
            state.pending = state.pending[: -len(scheme[1]) - 1]
            state.push("text", "", 0).content = echoed[0]
        state.pos = echoed.end()
        return True
    m = _BARE_URL.match(state.src, pos - len(scheme[1]))
    if m is None:
        return False
    url = m[0].rstrip(_TRAILING)
    while url.endswith(")") and url.count(")") > url.count("("):
        url = url[:-1].rstrip(_TRAILING)
    if len(url) <= len(scheme[1]) + 3:
        return False
    if not silent:
        state.pending = state.pending[: -len(scheme[1])]
        token = state.push("link_open", "a", 1)
        token.attrs = {"href": url}
        token.info = "auto"
        state.push("text", "", 0).content = url
        state.push("link_close", "a", -1)
    state.pos += len(url) - len(scheme[1])
    return True


def inline(node: SyntaxTreeNode, mode: str) -> str:
    """Render inline children; mode "plain" gives unescaped text, "heading" drops bold (already bold).

    A mark next to a word character gets a zero-width space on that side (intraword emphasis, CJK).
    """
    parts = [(_span(child, mode), child.type in _MARKS) for child in node.children]
    out: list[str] = []
    for i, (text, marked) in enumerate(parts):
        if not text:
            continue
        before = out[-1][-1] if out and out[-1] else ""
        opens = marked and text[0] in "*_~" and _wordish(before)
        closes = bool(out) and parts[i - 1][1] and before in ("*", "_", "~") and _wordish(text[0])
        if mode != "plain" and (opens or closes):
            out.append(ZWSP)
        out.append(text)
    return "".join(out)


def _wordish(char: str) -> bool:
    return bool(char) and (char.isalnum() or char == "_")


def _span(node: SyntaxTreeNode, mode: str) -> str:
    """Render one inline node."""
    kind = node.type
    if kind in ("text", "text_special"):
        return node.content if mode == "plain" else escape_text(node.content)
    if kind in ("softbreak", "hardbreak"):
        return "\n"
    if kind == "code_inline":
        # Slack's inline code cannot hold a backtick: it would end the span. U+02CB looks the same.
        return node.content if mode == "plain" else f"`{esc(node.content.replace('`', GRAVE))}`"
    if kind == "html_inline":  # a comment is dropped, <br> breaks the line, any other tag is text as written
        if re.fullmatch(r"<br\s*/?>", node.content, re.IGNORECASE):
            return "\n"
        if node.content.startswith("<!--"):
            return ""
        return node.content if mode == "plain" else escape_text(node.content)
    if kind in ("link", "image"):
        return _link(node, mode)
    inner = inline(node, mode)
    if kind in _MARKS and mode != "plain" and not (kind == "strong" and mode == "heading"):
        return wrap(_MARKS[kind], inner)
    return inner


def _link(node: SyntaxTreeNode, mode: str) -> str:
    """A link (or image: Slack cannot show one inline) as <url|label>; a relative URL keeps only its words."""
    url = str(node.attrs.get("href") or node.attrs.get("src") or "")
    title = str(node.attrs.get("title") or "")
    label = " ".join(inline(node, "plain").split())  # Slack formats nothing inside a link label
    if node.type == "image":
        label = label or title or "image"
    if not _SCHEME.match(url):  # relative link: Slack can't open it, keep the words
        return label if mode == "plain" else escape_text(label)
    if mode == "plain":
        return f"{label} ({url})" if label and label != url else url
    if title and title != label:
        label = f"{label} ({title})" if label else title
    if not label or label == url:
        return f"<{url}>"
    return f"<{url}|{esc(label).replace('|', '¦')}>"


def wrap(mark: str, inner: str) -> str:
    """Wrap in a Slack mark, line by line (Slack marks never span lines), whitespace kept outside the marks.

    Unwrapped when empty or already wrapped in the same mark (Slack can't nest the same mark).
    """
    if "\n" in inner:
        return "\n".join(wrap(mark, line) for line in inner.split("\n"))
    body = inner.strip()
    if not body or (body.startswith(mark) and body.endswith(mark) and len(body) > 1):
        return inner
    start = inner.index(body[0])
    return f"{inner[:start]}{mark}{body}{mark}{inner[start + len(body) :]}"
