"""Unit tests for Markdown -> Slack mrkdwn rendering and prefix-stable splitting."""

from __future__ import annotations

import random
import re

import pytest

from bot.slack.mrkdwn import markdown_to_mrkdwn, split_markdown

FENCE_LINE = re.compile(r"^[ \t]*(?:`{3,}|~{3,})[^\n]*$", re.MULTILINE)


# --- rendering ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("", ""),
        ("## Setup & install", "*Setup &amp; install*"),
        ("# The **big** deal", "*The big deal*"),  # Slack can't nest bold in bold
        ("Use **pip**, *venv*, ~~easy_install~~ and `a<b`.", "Use *pip*, _venv_, ~easy_install~ and `a&lt;b`."),
        ("a < b && c > d", "a &lt; b &amp;&amp; c &gt; d"),
        ("See [the docs](https://ex.com/a?x=1&y=2).", "See <https://ex.com/a?x=1&y=2|the docs>."),
        ("[https://ex.com](https://ex.com)", "<https://ex.com>"),
        ("[relative](docs/setup.md)", "relative"),
        ("---", "─" * 10),
        ("line one  \nline two", "line one\nline two"),
    ],
)
def test_inline_and_simple_blocks(markdown: str, expected: str) -> None:
    assert markdown_to_mrkdwn(markdown) == expected


def test_slack_tokens_echoed_by_claude_pass_through_except_broadcasts() -> None:
    md = "Hi <@U123ABC>, see <#C042|general> & <!here>: <https://slack.com/x?a=1|Slack docs> < 5"
    assert markdown_to_mrkdwn(md) == (
        "Hi <@U123ABC>, see <#C042|general> &amp; &lt;!here&gt;: <https://slack.com/x?a=1|Slack docs> &lt; 5"
    )


def test_fenced_code_drops_language_escapes_and_keeps_markup_literal() -> None:
    md = "Here:\n\n```python\nif a < b and c > d:\n    print('**not bold** & <@U1>')\n```\nDone."
    assert markdown_to_mrkdwn(md) == (
        "Here:\n\n```\nif a &lt; b and c &gt; d:\n    print('**not bold** &amp; &lt;@U1&gt;')\n```\n\nDone."
    )


def test_nested_lists_keep_numbers_bullets_and_inline_formatting() -> None:
    md = "3. First **step**\n   - sub *a*\n     - deeper `x`\n4. Second\n\n* star item"
    assert markdown_to_mrkdwn(md) == ("3. First *step*\n    • sub _a_\n        • deeper `x`\n4. Second\n\n• star item")


def test_blockquote_prefixes_every_line_including_lazy_ones() -> None:
    # The blank line between the quote's paragraphs stays inside the quote (it used to collapse: issue 21).
    assert markdown_to_mrkdwn("> quoted **text**\nlazy line\n>\n> more") == (
        "> quoted *text*\n> lazy line\n> \u200b\n> more"
    )


def test_table_becomes_aligned_code_block() -> None:
    md = "| Name | Count |\n|------|------:|\n| a & b | 1 |\n| **c** | 22 |"
    assert markdown_to_mrkdwn(md) == ("```\nName  | Count\n------+------\na &amp; b |     1\nc     |    22\n```")


@pytest.mark.parametrize(
    ("partial", "expected"),
    [
        ("Text\n\n```python\ndef f():\n    return 1 < 2", "Text\n\n```\ndef f():\n    return 1 &lt; 2\n```"),
        ("```python\nx = 1\n``", "```\nx = 1\n```"),  # half-typed closing fence
        ("Some text **", "Some text"),
        ("Some text `", "Some text"),
        ("See [the docs](", "See the docs"),
        ("See [the docs](https://ex.com/pa", "See the docs"),
        ("- item\n- ", "• item"),
        ("1. one\n2.", "1. one"),
    ],
)
def test_partial_stream_text_renders_harmlessly(partial: str, expected: str) -> None:
    assert markdown_to_mrkdwn(partial, live=True) == expected


# --- splitting helpers -------------------------------------------------------------------------------------


def _strip_fences(text: str) -> str:
    """Drop fence lines (split points may add or absorb them)."""
    return FENCE_LINE.sub("", text)


def _find_body(original: str, body: str, pos: int) -> int:
    """Where `body` continues the original from `pos`. A body that starts with ``` (an inner fence shown as code) must
    stand as whole lines, or it would be found inside the longer ```` fence line that opens its block."""
    found = original.find(body, pos)
    if not body.startswith("```"):
        return found

    def whole_lines(at: int) -> bool:
        end = at + len(body)
        return (at == 0 or original[at - 1] == "\n") and (end == len(original) or original[end] == "\n")

    while found >= 0 and not whole_lines(found):
        found = original.find(body, found + 1)
    return found if found >= 0 else original.find(body, pos)


def _assert_nothing_lost(original: str, pieces: list[str]) -> list[str]:
    """Each piece's body (minus a leading/trailing fence line, a repeated table header or "> ") appears in
    order; only whitespace and fence lines lie between them. Returns the bodies."""
    pos, bodies = 0, []
    for piece in pieces:
        lines = piece.split("\n")
        if FENCE_LINE.fullmatch(lines[0]):
            lines = lines[1:]
        if lines and FENCE_LINE.fullmatch(lines[-1]):
            lines = lines[:-1]
        body = "\n".join(lines).strip()
        if not body:
            continue
        found = _find_body(original, body, pos)
        continued = body.lstrip("> ")
        if body.startswith(">") and original[pos:].lstrip(" \n").startswith(continued):
            # A quote continued mid-line: its "> " was repeated. Checked first, or a later line of the same quote
            # with the same words would match and seem to skip the rest of this one.
            body, found = continued, original.find(continued, pos)
        elif found < 0 and body.startswith(">"):
            body = continued
            found = original.find(body, pos)
        if found < 0 and len(lines) > 2 and set(lines[1]) <= set("|-: >"):  # a table continued: header repeated
            body = "\n".join(lines[2:]).strip()
            found = original.find(body, pos)
        assert found >= 0, f"piece body not found in order: {body!r}"
        assert not _strip_fences(original[pos:found]).strip(), original[pos:found]
        pos = found + len(body)
        bodies.append(body)
    assert not _strip_fences(original[pos:]).strip()
    return bodies


def _open_fence_at_end(text: str) -> bool:
    """Whether text ends inside a ``` block (the generator only writes ``` fences at column 0)."""
    return sum(1 for line in text.split("\n") if line.startswith("```")) % 2 == 1


def _check_split(original: str, limit: int) -> list[str]:
    """Split and assert the invariants every split must satisfy."""
    pieces = split_markdown(original, limit)
    assert all(len(markdown_to_mrkdwn(p)) <= limit for p in pieces)
    assert all(p.strip() for p in pieces)
    for piece in pieces[:-1]:
        assert not _open_fence_at_end(piece), piece
    bodies = _assert_nothing_lost(original, pieces)
    assert "".join(_strip_fences(original).split()) == "".join(_strip_fences("\n".join(bodies)).split())
    return pieces


# Plain words plus the constructs that change length when rendered (escapes, links, entities, mentions).
WORDS = ["the", "a", "of", "to", "and", "is", "in", "that", "it", "for", "end.", "Why?", "Yes!", "A&B"]
WORDS += ["**bold**", "*it*", "`x<y`", "[doc](https://ex.com/a?q=1&r=2)", "<@U123>", "~~old~~"]
WORDS += ["&amp;", "&lt;tag&gt;"]


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _document(rng: random.Random) -> str:
    """A random mix of the shapes Claude writes: paragraphs, code, lists, tables, quotes, long runs."""
    parts = []
    for _ in range(rng.randint(2, 8)):
        kind = rng.randrange(8)
        if kind < 2:
            parts.append(_words(rng, rng.randint(3, 70)))
        elif kind == 2:
            lines = ["  " * rng.randint(0, 2) + _words(rng, rng.randint(0, 8)) for _ in range(rng.randint(1, 14))]
            parts.append(f"```{rng.choice(['', 'python'])}\n" + "\n".join(lines) + "\n```")
        elif kind == 3:
            items = [f"{'  ' * rng.randint(0, 1)}{rng.choice(['- ', '1. '])}{_words(rng, 6)}" for _ in range(5)]
            parts.append("\n".join(items[: rng.randint(1, 5)]))
        elif kind == 4:
            rows = ["| " + " | ".join(_words(rng, rng.randint(0, 2)) for _ in range(2)) + " |" for _ in range(3)]
            parts.append("| h | i |\n|---|--:|\n" + "\n".join(rows))
        elif kind == 5:
            parts.append("\n".join("> " + _words(rng, rng.randint(1, 9)) for _ in range(rng.randint(1, 3))))
        elif kind == 6:
            parts.append(rng.choice(["## " + _words(rng, 3), "---", "z" * rng.randint(60, 260)]))
        else:
            parts.append(_words(rng, 6) + "\n" + _words(rng, 6))
    return "\n\n".join(parts)


# --- splitting ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   \n\n\t "])
def test_split_empty_gives_no_pieces(text: str) -> None:
    assert split_markdown(text, 100) == []


def test_split_short_text_is_one_piece() -> None:
    assert split_markdown("\n# Title\n\nShort answer.\n\n", 100) == ["# Title\n\nShort answer."]


def test_split_rejects_tiny_limit() -> None:
    with pytest.raises(ValueError):
        split_markdown("hello", 10)


def test_split_prefers_paragraph_boundary() -> None:
    first = "First paragraph. " * 3
    second = "Second paragraph line one.\nSecond line two. More words here to fill."
    pieces = _check_split(f"{first.strip()}\n\n{second}", 80)
    assert pieces[0] == first.strip()


def test_split_prefers_line_break_then_sentence_then_space() -> None:
    lines = _check_split("alpha beta gamma delta\nepsilon zeta eta theta iota kappa lambda mu nu xi omicron", 60)
    assert lines[0] == "alpha beta gamma delta"
    sentence = _check_split("One two three four five. Six seven eight nine ten eleven twelve thirteen", 60)
    assert sentence[0] == "One two three four five."
    spaces = _check_split("word " * 30, 60)
    assert len(spaces) > 1 and all(p.replace("word", "").strip() == "" for p in spaces)


def test_split_hard_cuts_only_an_unbroken_run() -> None:
    run = "x" * 150
    pieces = _check_split(f"Intro.\n\n{run}", 60)
    assert pieces[0] == "Intro."
    assert "".join(pieces[1:]) == run


def test_split_inside_code_closes_and_reopens_fence_with_language() -> None:
    code = "\n".join(f"    value_{i} = compute({i})" for i in range(12))
    pieces = _check_split(f"Code:\n\n```python\n{code}\n```\n\nAfter.", 150)
    assert len(pieces) >= 3
    assert pieces[0].endswith("\n```") and "```python" in pieces[0]
    assert pieces[1].startswith("```python\n")
    assert markdown_to_mrkdwn(pieces[1]).startswith("```\n")
    assert not any(p.startswith("```python\n```") for p in pieces)  # no empty reopened block


def test_split_property_over_random_documents() -> None:
    rng = random.Random(20240601)
    for _ in range(16):
        _check_split(_document(rng), rng.choice([60, 120, 300]))


@pytest.mark.parametrize("seed", [3, 11])
def test_split_is_prefix_stable_at_every_length(seed: int) -> None:
    text = _document(random.Random(seed))[:320]
    previous = split_markdown("", 90)
    for end in range(1, len(text) + 1):
        pieces = split_markdown(text[:end], 90)
        assert pieces[: len(previous) - 1] == previous[:-1], f"earlier piece changed at length {end}"
        previous = pieces
    _check_split(text, 90)


def test_broadcast_mentions_from_the_model_are_defused() -> None:
    rendered = markdown_to_mrkdwn("Hey <!channel> and <!here|here>, see <@U123> in <#C123|general>")
    assert "<!channel>" not in rendered and "<!here" not in rendered
    assert "&lt;!channel&gt;" in rendered
    assert "<@U123>" in rendered and "<#C123|general>" in rendered
