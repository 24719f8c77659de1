"""Readable text of a fetched page, extracted in a separate, killable process.

Why a process: no HTML parser is linear on every input. The stdlib parser is quadratic on `"<a" * N`, and
Lexbor (selectolax), fast on almost everything, still spends quadratic time on deeply nested markup such as
`"<div>" * N` (HTML's tree-building rules scan the stack of open elements). A page of up to the byte cap must not
keep a CPU busy after the tool has answered, and a thread cannot be stopped; a child process can. The parent gives
the child the time left of the tool's limit and kills it when that runs out (the child also stops walking at that
deadline, and RLIMIT_CPU / RLIMIT_AS bound it should the parent die first).

Protocol (stdin -> stdout): one JSON line {"charset": str | null, "seconds": float}, then the raw body bytes;
the answer is one JSON object {"title": str, "text": str}.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import re
import sys
import time
from typing import Literal

from selectolax.lexbor import LexborHTMLParser, LexborNode

_SNIFF_BYTES = 4096  # browsers look for <meta charset> in the first 1024 bytes; be a little more forgiving
_CHECK_EVERY = 2048  # nodes walked between two looks at the clock
_MEMORY_CAP_BYTES = 1 << 30  # address space of the child; a 2 MB page parses in a few tens of MB
_ANSWER_CAP_BYTES = 64 * 1024 * 1024


class PageUnreadable(Exception):
    """The page could not be reduced to text within the limits (time, memory, a crash of the parser)."""


async def readable(
    kind: Literal["html", "text"], body: bytes, charset: str | None, *, seconds: float
) -> tuple[str, str]:
    """(title, text) of a page body: HTML reduced to its readable parts in a child process, text decoded here."""
    if kind == "text":
        return "", _decode(body, charset, None).replace("\r\n", "\n").strip()
    header = json.dumps({"charset": charset, "seconds": seconds}).encode() + b"\n"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.web.readable",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        limit=_ANSWER_CAP_BYTES,
    )
    try:
        async with asyncio.timeout(seconds):
            out, _ = await proc.communicate(header + body)
    except TimeoutError:
        raise PageUnreadable(f"reading the page took longer than {seconds:.3g} s") from None
    finally:
        if proc.returncode is None:  # timed out or cancelled: stop the parser now, not when it finishes
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise PageUnreadable("the page could not be parsed")
    answer = json.loads(out)
    return str(answer["title"]), str(answer["text"])


def extract(body: bytes, charset: str | None, *, deadline: float) -> tuple[str, str]:
    """(title, text) of an HTML body; TimeoutError once time.monotonic() passes deadline."""
    tree = LexborHTMLParser(_decode(body, charset, _meta_charset(body)))
    sink = _ReadableText()
    root = tree.root
    if root is not None:
        _walk(root, sink, deadline)
    return sink.title(), sink.text()


def _walk(root: LexborNode, sink: _ReadableText, deadline: float) -> None:
    """Depth-first over the tree without recursion (pages nest deeper than Python's stack), skipping dropped parts."""
    node = root.child
    steps = 0
    while node is not None:
        steps += 1
        if steps % _CHECK_EVERY == 0 and time.monotonic() > deadline:
            raise TimeoutError
        if node.is_element_node:
            tag = node.tag or ""
            sink.handle_starttag(tag)
            child = node.child
            if tag not in _SKIPPED and child is not None:
                node = child
                continue
            sink.handle_endtag(tag)
        elif node.is_text_node:
            sink.handle_data(node.text_content or "")
        while node is not None and node.next is None:
            node = node.parent
            if node is None or node.mem_id == root.mem_id:
                return
            sink.handle_endtag(node.tag or "")
        node = node.next if node is not None else None


def _child_main() -> int:
    """Entry of the child process: limits first, then parse stdin and answer on stdout."""
    header = json.loads(sys.stdin.buffer.readline())
    seconds = float(header["seconds"])
    _limit_self(seconds)
    body = sys.stdin.buffer.read()
    title, text = extract(body, header["charset"], deadline=time.monotonic() + seconds)
    sys.stdout.write(json.dumps({"title": title, "text": text}))
    return 0


def _limit_self(seconds: float) -> None:
    """Backstops should the parent be gone: CPU seconds and address space. Not available everywhere (Windows)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Linux
        return
    cpu = int(seconds) + 2
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
    resource.setrlimit(resource.RLIMIT_AS, (_MEMORY_CAP_BYTES, _MEMORY_CAP_BYTES))


_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([a-z0-9_.:-]+)""", re.IGNORECASE)
# WHATWG: these labels mean windows-1252, and a <meta> claiming UTF-16 is wrong (it could not have been read).
_CHARSET_ALIASES = {"iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "us-ascii": "cp1252"}


def _meta_charset(body: bytes) -> str | None:
    match = _META_CHARSET.search(body[:_SNIFF_BYTES])
    if match is None:
        return None
    label = match.group(1).decode("ascii").lower()
    return "utf-8" if label.startswith("utf-16") else label


def _decode(body: bytes, declared: str | None, sniffed: str | None) -> str:
    """A byte-order mark wins, then the header's charset, then <meta>, then UTF-8; bad bytes become U+FFFD."""
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if body.startswith(bom):
            return body.decode(codec, "replace")
    for label in (declared, sniffed):
        if not label:
            continue
        name = _CHARSET_ALIASES.get(label.strip().lower(), label.strip())
        try:
            return body.decode(name, "replace")
        except LookupError:
            continue
    return body.decode("utf-8", "replace")


_SKIPPED = frozenset(
    {"script", "style", "nav", "footer", "header", "aside", "noscript", "svg", "template", "iframe", "canvas"}
)
_BLOCKS = frozenset(
    {
        "address", "article", "blockquote", "body", "caption", "details", "div", "dl", "fieldset", "figcaption",
        "figure", "form", "hr", "html", "main", "ol", "p", "section", "summary", "table", "tbody", "tfoot",
        "thead", "ul",
    }
)  # fmt: skip
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_ROWS = frozenset({"tr", "dt", "dd"})
_CELLS = frozenset({"td", "th"})
_INLINE_CODE = frozenset({"code", "kbd", "samp"})


class _ReadableText:
    """Keeps what a reader would read: headings, paragraphs, list items, code and table cells, as Markdown-ish text."""

    def __init__(self) -> None:
        self._skipping: list[str] = []
        self._in_title = False
        self._title: list[str] = []
        self._first_h1: str | None = None
        self._pre_depth = 0
        self._pre: list[str] = []
        self._parts: list[str] = []
        self._prefix = ""
        self._prefix_tag = ""
        # Consecutive lines of one group (a list, a table, a paragraph split by <br>) sit on adjacent lines.
        self._group: str | None = None
        self._cells = 0
        self._blocks: list[tuple[str, str | None]] = []

    def title(self) -> str:
        return _collapse("".join(self._title)) or self._first_h1 or ""

    def text(self) -> str:
        self._flush()
        out: list[str] = []
        previous: str | None = None
        for text, group in self._blocks:
            if out:
                out.append("\n" if group is not None and group == previous else "\n\n")
            out.append(text)
            previous = group
        return "".join(out)

    def handle_starttag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self._skipping.append(tag)
        elif self._skipping:
            return
        elif tag == "title":
            self._in_title = True
        elif tag == "pre":
            self._flush()
            self._pre_depth += 1
        elif self._pre_depth:
            return  # markup inside <pre> (spans, <code>) is presentation only
        elif tag in _HEADINGS:
            self._start(tag, "#" * _HEADINGS[tag] + " ", group=None)
        elif tag == "li":
            self._start(tag, "- ", group="list")
        elif tag in _ROWS:
            self._start(tag, "", group="table" if tag == "tr" else "list")
            self._cells = 0
        elif tag in _CELLS:
            if self._cells:
                self._parts.append(" | ")
            self._cells += 1
        elif tag == "br":
            if self._group is None:
                self._group = f"lines{len(self._blocks)}"
            self._flush()
        elif tag in _BLOCKS:
            self._end_block()
        elif tag in _INLINE_CODE:
            self._parts.append("`")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            if tag in self._skipping:
                # Close the innermost open element of this name, and any unclosed ones inside it.
                del self._skipping[len(self._skipping) - 1 - self._skipping[::-1].index(tag) :]
            return
        if self._skipping:
            return
        if tag == "title":
            self._in_title = False
        elif tag == "pre" and self._pre_depth:
            self._pre_depth -= 1
            if not self._pre_depth:
                code = "\n".join(line.rstrip() for line in "".join(self._pre).strip("\n").splitlines())
                self._pre.clear()
                if code.strip():
                    self._blocks.append((f"```\n{code}\n```", None))
        elif self._pre_depth:
            return
        elif tag in _HEADINGS or tag == "li" or tag in _ROWS:
            self._flush()
            self._prefix, self._prefix_tag, self._group = "", "", None
        elif tag in _BLOCKS:
            self._end_block()
        elif tag in _INLINE_CODE:
            self._parts.append("`")

    def handle_data(self, data: str) -> None:
        if self._skipping:
            return
        if self._in_title:
            self._title.append(data)
        elif self._pre_depth:
            self._pre.append(data)
        else:
            self._parts.append(data)

    def _start(self, tag: str, prefix: str, *, group: str | None) -> None:
        self._flush()
        self._prefix, self._prefix_tag, self._group = prefix, tag, group

    def _end_block(self) -> None:
        self._flush()
        if not self._prefix_tag:  # a <p> opening a list item still belongs to the list's group
            self._group = None

    def _flush(self) -> None:
        """End the current line; a pending prefix ("- ", "## ") waits for text, so <li><p>x</p></li> stays "- x"."""
        text = _collapse("".join(self._parts))
        self._parts.clear()
        if not text or text == "``":
            return
        self._blocks.append((self._prefix + text, self._group))
        if self._prefix_tag == "h1" and self._first_h1 is None:
            self._first_h1 = text
        self._prefix, self._prefix_tag = "", ""


def _collapse(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(_child_main())
