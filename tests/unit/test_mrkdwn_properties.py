"""Properties of rendering and splitting that hold for any Markdown: Hypothesis-generated documents for the
splitter, and a robustness run over examples shaped like the CommonMark spec's (generated here, one per spec
construct and their pairings; the spec's own example text is not copied)."""

from __future__ import annotations

import html
import itertools
import re
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.slack.mrkdwn import markdown_to_mrkdwn, split_markdown
from bot.slack.mrkdwn.render import MD
from tests.unit.test_mrkdwn import _assert_nothing_lost

_OUT_TOKEN = re.compile(r"<(?:[@#][A-Z0-9]+|!date\^[^<>\n]*|[A-Za-z][A-Za-z0-9+.-]*:[^<>\s|]*)(?:\|[^<>\n]*)?>")
_CLOSING = re.compile(r"(?:[ \t]*>)*[ \t]*(`{3,}|~{3,})[ \t]*")


def _visible(text: str) -> str:
    return html.unescape(text.replace("\u200b", "").replace("\u02cb", "`"))


def _alnum(text: str) -> Counter[str]:
    """The letters shown (digits left out: a list split across messages numbers "1. 1." items afresh)."""
    return Counter(ch for ch in _visible(text) if ch.isalpha())


def _assert_escaped(out: str) -> None:
    """Outside Slack's own tokens and quote markers, & < > only appear as entities."""
    rest = re.sub(r"^(?:> ?)+", "", _OUT_TOKEN.sub("", out), flags=re.MULTILINE)
    assert "<" not in rest and ">" not in rest, out
    assert not re.search(r"&(?!amp;|lt;|gt;)", rest), out


def _parsed_words_and_urls(markdown: str) -> tuple[list[str], list[str]]:
    """The words markdown-it reads as content (text, code, labels) and the absolute URLs of its links."""
    words, urls = [], []
    for token in MD.parse(markdown):
        if token.type in ("fence", "code_block", "html_block"):
            words += re.findall(r"\w+", re.sub(r"<!--.*?(?:-->|\Z)", "", token.content, flags=re.DOTALL))
        for child in token.children or []:
            if child.type in ("text", "code_inline"):
                words += re.findall(r"\w+", child.content)
            href = str(child.attrs.get("href") or child.attrs.get("src") or "")
            if re.match(r"https?://", href):
                urls.append(href)
    return words, urls


def _unclosed_fence(piece: str) -> bool:
    """Whether markdown-it runs a code block of this piece to its end without a closing fence line."""
    lines = piece.split("\n")
    for token in MD.parse(piece):
        if token.type == "fence" and token.map and token.map[1] >= len(lines):
            last = _CLOSING.fullmatch(lines[-1])
            if token.map[1] - token.map[0] < 2 or last is None or last[1][0] != token.markup[0]:
                return True
    return False


def _check_robust(markdown: str) -> None:
    out = markdown_to_mrkdwn(markdown)
    unboxed = re.sub(r"^([ \t]*(?:[-+*]|\d+[.)])[ \t]+)\[[xX ]\]", r"\1", markdown, flags=re.MULTILINE)  # ☐ / ☑
    words, urls = _parsed_words_and_urls(unboxed)
    visible = _visible(out)
    assert all(word in visible for word in words), (markdown, out)
    assert all(url in out for url in urls), (markdown, out)
    _assert_escaped(out)
    assert out.count("```") % 2 == 0
    if "]:" in markdown:  # a reference definition resolves only within its own piece (see the README)
        return
    for limit in (60, 120, 300):
        pieces = [markdown_to_mrkdwn(p) for p in split_markdown(markdown, limit)]
        assert all(len(p) <= limit and p.count("```") % 2 == 0 for p in pieces), (markdown, limit, pieces)
        for piece in pieces:
            _assert_escaped(piece)
        assert not _alnum(out) - _alnum("".join(pieces)), (markdown, limit, pieces)


# One or more snippets per CommonMark / GFM construct (tabs, blocks, inlines, Slack tokens), written for this suite.
SNIPPETS = [
    "\tfoo\tbaz\t\tbim",
    "  - foo\n\n\tbar",
    "- `one\n- two`",
    "***\n---\n___",
    "+++",
    "--\n**\n__",
    " ***\n  ***",
    "Foo\n***\nbar",
    "- foo\n***\n- bar",
    "# foo\n## foo\n### foo",
    "####### foo",
    "#5 bolt",
    "\\## foo",
    "# foo *bar* \\*baz\\*",
    "### foo ###",
    "## foo #\\##",
    "Foo *bar*\n=========",
    "Foo\n---\n\nBar\n---",
    "    a simple\n      indented code block",
    "  - foo\n\n    bar",
    "1.  a\n\n    2. b",
    "```\n<\n >\n```",
    "~~~\naaa\n```\n~~~",
    "````\naaa\n```\n``````",
    "```\n\n  \n```",
    "```ruby\ndef foo(x)\n  return 3\nend\n```",
    "``` aa ```\nfoo",
    "~~~ aa ``` ~~~\nfoo\n~~~",
    "<table><tr><td>\n<pre>\n**Hello**,\n</pre>\n</td></tr></table>",
    "<div>\n*hello*\n         <foo><a>",
    "<!-- foo -->*bar*\n*baz*",
    "<?php\n\necho '>';\n\n?>",
    "<!DECLARATION>",
    '[foo]: /url "title"\n\n[foo]',
    "[foo]: https://ex.com/a\n\n[foo]",
    "[Foo bar]:\n<https://ex.com/my url>\n'title'\n\n[Foo bar]",
    "aaa\n\nbbb",
    "aaa\n  bbb\n                                         ccc",
    "  \n\naaa\n  \n\n# aaa",
    "> # Foo\n> bar\n> baz",
    "># Foo\n>bar\n> baz",
    "> bar\nbaz\n> foo",
    "> - foo\n- bar",
    ">     foo\n    bar",
    "> ```\nfoo\n```",
    "> foo\n    - bar",
    ">",
    ">\n>  \n> ",
    "> foo\n\n> bar",
    "> aaa\n***\n> bbb",
    "> > > foo\nbar",
    ">>> foo\n> bar\n>>baz",
    "A paragraph\nwith two lines.\n\n    indented code\n\n> A block quote.",
    "1.  A paragraph\n    with two lines.",
    "- one\n\n two",
    "- one\n\n  two",
    " -    one\n\n     two",
    "-one\n\n2.two",
    "- foo\n\n\n  bar",
    "1.  foo\n\n    ```\n    bar\n    ```\n\n    baz\n\n    > bam",
    "123456789. ok",
    "1234567890. not ok",
    "0. ok",
    "-1. not ok",
    "- foo\n\n      bar",
    "-\n  foo\n-\n  ```\n  bar\n  ```",
    "- a\n - b\n  - c\n   - d\n    - e",
    "1. a\n\n  2. b\n\n    3. c",
    "- a\n- b\n\n- c",
    "* a\n*\n\n* c",
    "- a\n  - b\n\n    c\n- d",
    "1. ```\n   foo\n   ```\n\n   bar",
    "* foo\n  * bar\n\n  baz",
    "- a\n  > b\n  ```\n  c\n  ```\n- d",
    "`hi`lo`",
    "\\!\\\"\\#\\$\\%\\&\\'\\(\\)\\*\\+\\,\\-\\.\\/\\:\\;\\<\\=\\>\\?\\@\\[\\\\\\]\\^\\_\\`\\{\\|\\}\\~",
    "\\\t\\A\\a\\ \\3\\φ\\«",
    "\\*not emphasized*\n\\<br/> not a tag\n\\[not a link](/foo)\n\\`not code`",
    "foo\\\nbar",
    "`` \\[\\` ``",
    "&nbsp; &amp; &copy; &AElig; &Dcaron;\n&frac34; &HilbertSpace;",
    "&#35; &#1234; &#992; &#0;",
    "&#X22; &#XD06; &#xcab;",
    "&nbsp &x; &#; &#x;\n&#87654321;\n&#abcdef0;\n&ThisIsNotDefined; &hi?;",
    "&MadeUpEntity;",
    "`foo`",
    "`` foo ` bar ``",
    "` `` `",
    "`  ``  `",
    "``\nfoo\nbar  \nbaz\n``",
    "`foo   bar \nbaz`",
    "`foo\\`bar`",
    "*foo`*`",
    "[not a `link](/foo`)",
    '`<a href="`">`',
    "<https://foo.bar.`baz>`",
    "```foo``",
    "`foo",
    "`foo``bar``",
    "*foo bar*",
    "a * foo bar*",
    'a*"foo"*',
    "* a *",
    "foo*bar*",
    "5*6*78",
    "_foo bar_",
    "_ foo bar_",
    'a_"foo"_',
    "foo_bar_",
    "5_6_78",
    "пристаням_стремятся_",
    'aa_"bb"_cc',
    "foo-_(bar)_",
    "_foo*",
    "*foo bar *",
    "*foo bar\n*",
    "*(*foo)",
    "*(*foo*)*",
    "*foo*bar",
    "_foo bar _",
    "_(_foo)",
    "_(_foo_)_",
    "_foo_bar",
    "_пристаням_стремятся",
    "_foo_bar_baz_",
    "_(bar)_.",
    "**foo bar**",
    "** foo bar**",
    'a**"foo"**',
    "foo**bar**",
    "__foo bar__",
    "__ foo bar__",
    "__\nfoo bar__",
    'a__"foo"__',
    "foo__bar__",
    "5__6__78",
    "пристаням__стремятся__",
    "__foo, __bar__, baz__",
    "foo-__(bar)__",
    "**foo bar **",
    "**(**foo)",
    "*(**foo**)*",
    "**Gomphocarpus (*Gomphocarpus physocarpus*, syn.\n*Asclepias physocarpa*)**",
    '**foo "*bar*" foo**',
    "**foo**bar",
    "__foo bar __",
    "__(__foo)",
    "_(__foo__)_",
    "__foo__bar",
    "__пристаням__стремятся",
    "__foo__bar__baz__",
    "__(bar)__.",
    "*foo [bar](/url)*",
    "*foo\nbar*",
    "_foo __bar__ baz_",
    "_foo _bar_ baz_",
    "__foo_ bar_",
    "*foo *bar**",
    "*foo **bar** baz*",
    "*foo**bar**baz*",
    "*foo**bar*",
    "***foo** bar*",
    "*foo **bar***",
    "*foo**bar***",
    "foo***bar***baz",
    "foo******bar*********baz",
    "*foo **bar *baz* bim** bop*",
    "*foo [*bar*](/url)*",
    "** is not an empty emphasis",
    "**** is not an empty strong emphasis",
    "**foo [bar](/url)**",
    "**foo\nbar**",
    "__foo _bar_ baz__",
    "__foo __bar__ baz__",
    "____foo__ bar__",
    "**foo **bar****",
    "**foo *bar* baz**",
    "**foo*bar*baz**",
    "***foo* bar**",
    "**foo *bar***",
    "**foo *bar **baz**\nbim* bop**",
    "**foo [*bar*](/url)**",
    "__ is not an empty emphasis",
    "foo ***",
    "foo *\\**",
    "foo *_*",
    "foo *****",
    "foo **\\***",
    "foo **_**",
    "**foo*",
    "*foo**",
    "***foo**",
    "****foo*",
    "**foo***",
    "*foo****",
    "foo ___",
    "foo _\\__",
    "foo _*_",
    "foo _____",
    "foo __\\___",
    "foo __*__",
    "__foo_",
    "_foo__",
    "___foo__",
    "____foo_",
    "__foo___",
    "_foo____",
    "**foo**",
    "*_foo_*",
    "__foo__",
    "_*foo*_",
    "****foo****",
    "____foo____",
    "******foo******",
    "***foo***",
    "_____foo_____",
    "*foo _bar* baz_",
    "*foo __bar *baz bim__ bam*",
    "**foo **bar baz**",
    "*foo *bar baz*",
    "*[bar*](/url)",
    "_foo [bar_](/url)",
    '*<img src="foo" title="*"/>',
    '**<a href="**">',
    '__<a href="__">',
    "*a `*`*",
    "_a `_`_",
    "**a<https://foo.bar/?q=**>",
    "__a<https://foo.bar/?q=__>",
    "~~Hi~~ Hello, ~there~ world!",
    "This ~~has a\n\nnew paragraph~~.",
    "This will ~~~not~~~ strike.",
    '[link](/uri "title")',
    "[link](/uri)",
    "[](./target.md)",
    "[link]()",
    "[link](<>)",
    "[]()",
    "[link](/my uri)",
    "[link](</my uri>)",
    "[link](foo\nbar)",
    "[a](<b)c>)",
    "[link](\\(foo\\))",
    "[link](foo(and(bar)))",
    "[link](foo\\(and\\(bar\\))",
    "[link](<foo(and(bar)>)",
    "[link](foo\\)\\:)",
    "[link](#fragment)\n\n[link](https://example.com#fragment)\n\n[link](https://example.com?foo=3#frag)",
    "[link](foo\\bar)",
    "[link](foo%20b&auml;)",
    '[link]("title")',
    "[link](/url \"title\")\n[link](/url 'title')\n[link](/url (title))",
    '[link](/url "title \\"&quot;")',
    '[link](/url "title")',
    '[link](/url "title "and" title")',
    '[link](   /uri\n  "title"  )',
    "[link] (/uri)",
    "[link [foo [bar]]](/uri)",
    "[link] bar](/uri)",
    "[link [bar](/uri)",
    "[link \\[bar](/uri)",
    "[link *foo **bar** `#`*](/uri)",
    "[![moon](moon.jpg)](/uri)",
    "[foo [bar](/uri)](/uri)",
    "[foo *[bar [baz](/uri)](/uri)*](/uri)",
    "![[[foo](uri1)](uri2)](uri3)",
    "*[foo*](/uri)",
    "[foo *bar](baz*)",
    "*foo [bar* baz]",
    '[foo <bar attr="](baz)">',
    "[foo`](/uri)`",
    "[foo<https://example.com/?search=](uri)>",
    '[foo][bar]\n\n[bar]: /url "title"',
    "[link [foo [bar]]][ref]\n\n[ref]: /uri",
    "[link \\[bar][ref]\n\n[ref]: /uri",
    "[link *foo **bar** `#`*][ref]\n\n[ref]: https://ex.com/uri",
    '![foo](/url "title")',
    '![foo *bar*]\n\n[foo *bar*]: train.jpg "train & tracks"',
    "![foo ![bar](/url)](/url2)",
    "![foo](train.jpg)",
    'My ![foo bar](/path/to/train.jpg  "title"   )',
    "![foo](<url>)",
    "![](/url)",
    "<https://foo.bar.baz>",
    "<https://foo.bar.baz/test?q=hello&id=22&boolean>",
    "<irc://foo.bar:2233/baz>",
    "<MAILTO:FOO@BAR.BAZ>",
    "<a+b+c:d>",
    "<made-up-scheme://foo,bar>",
    "<https://../>",
    "<localhost:5001/foo>",
    "<https://foo.bar/baz bim>",
    "<https://example.com/\\[\\>",
    "<foo@bar.example.com>",
    "<foo+special@Bar.baz-bar0.com>",
    "<foo\\+@bar.example.com>",
    "<>",
    "< https://foo.bar >",
    "<m:abc>",
    "<foo.bar.baz>",
    "https://example.com",
    "foo@bar.example.com",
    "www.commonmark.org",
    "Visit www.commonmark.org/help for more information.",
    "Visit www.commonmark.org.\n\nVisit www.commonmark.org/a.b.",
    "www.google.com/search?q=Markup+(business)",
    "https://www.google.com/search?q=Markup+(business)))",
    "(www.google.com/search?q=Markup+(business))",
    "www.google.com/search?q=(business))+ok",
    "www.google.com/search?q=commonmark&hl=en\n\nwww.google.com/search?q=commonmark&hl;",
    "www.commonmark.org/he<lp",
    "http://commonmark.org\n\n(Visit https://encrypted.google.com/search?q=Markup+(business))",
    "foo@bar.baz",
    "hello@mail+xyz.example isn't valid",
    "<a><bab><c2c>",
    "<a/><b2/>",
    '<a  /><b2\ndata="foo" >',
    '<a foo="bar" bam = \'baz <em>"</em>\'\n_boolean zoop:33=zoop:33 />',
    'Foo <responsive-image src="foo.jpg" />',
    "<33> <__>",
    '<a h*#ref="hi">',
    "<a href=\"hi'> <a href=hi'>",
    "< a><\nfoo><bar/ >\n<foo bar=baz\nbim!bop />",
    "<a href='bar'title=title>",
    "</a></foo >",
    '</a href="foo">',
    "foo <!-- this is a --\ncomment - with hyphens -->",
    "foo <!--> foo -->\n\nfoo <!---> foo -->",
    "foo <?php echo $a; ?>",
    "foo <!ELEMENT br EMPTY>",
    "foo <![CDATA[>&<]]>",
    'foo <a href="&ouml;">',
    'foo <a href="\\*">',
    '<a href="\\"">',
    "<strong> <title> <style> <em>\n\n<blockquote>\n  <xmp> is disallowed.  <XMP> is also disallowed.\n</blockquote>",
    "foo  \nbaz",
    "foo\\\nbaz",
    "foo       \nbaz",
    "foo  \n     bar",
    "*foo  \nbar*",
    "*foo\\\nbar*",
    "`code  \nspan`",
    "`code\\\nspan`",
    '<a href="foo  \nbar">',
    "foo\\",
    "foo  ",
    "### foo\\",
    "### foo  ",
    "foo \nbaz",
    "foo \n baz",
    "hello $.;'there",
    "Foo χρῆν",
    "Multiple     spaces",
    "- [ ] foo\n- [x] bar",
    "- [x] foo\n  - [ ] bar\n  - [x] baz\n- [ ] bim",
    "| foo | bar |\n| --- | --- |\n| baz | bim |",
    "| abc | defghi |\n:-: | -----------:\nbar | baz",
    "| f\\|oo  |\n| ------ |\n| b `\\|` az |\n| b **\\|** im |",
    "| abc | def |\n| --- | --- |\n| bar | baz |\n> bar",
    "| abc | def |\n| --- | --- |\n| bar | baz |\nbar\n\nbar",
    "| abc | def |\n| --- |\n| bar |",
    "| abc | def |\n| --- | --- |\n| bar |\n| bar | baz | boo |",
    "| abc | def |\n| --- | --- |",
    "Hi <@U0123ABC>, see <#C0123|general> and <https://ex.com/a_b|the *docs*>",
    "<!channel> <!here|here> <!everyone> <!subteam^S1|@t>",
    "<!date^1392734382^Posted {date_num}|Posted 2014-02-18>",
    "Price: 5 < 6 & 7 > 3",
    "A & B <tag> &",
    "https://ex.com/a?b=1&c=<2>",
]


@pytest.mark.parametrize("pair", [0, 1, 2, 3])
def test_robust_over_commonmark_shaped_examples(pair: int) -> None:
    """Every snippet alone and joined with its neighbours (by a newline and by a blank line)."""
    joint = "\n" if pair % 2 else "\n\n"
    examples = SNIPPETS if pair == 0 else [a + joint + b for a, b in itertools.pairwise(SNIPPETS)]
    if pair == 3:
        examples = ["\n\n".join(SNIPPETS[i : i + 12]) for i in range(0, len(SNIPPETS), 6)]
    for markdown in examples:
        _check_robust(markdown)


# --- Hypothesis: the splitter ---------------------------------------------------------------------------

_WORD = st.sampled_from(
    [
        "alpha",
        "beta",
        "gamma",
        "x<y",
        "A&B",
        "**bold**",
        "*it*",
        "`code`",
        "[doc](https://ex.com/d)",
        "<@U123>",
        "end.",
        "Why?",
        "snake_case",
        "re**use**",
        "\\*esc\\*",
        "https://ex.com/a_b_",
    ]
)
_TEXT = st.lists(_WORD, min_size=1, max_size=40).map(" ".join)
_QWORDS = st.lists(st.sampled_from(["qa", "qb", "qc"]), min_size=1, max_size=30).map(" ".join)


@st.composite
def _block(draw: st.DrawFn) -> str:
    kind = draw(st.integers(0, 7))
    if kind == 0:
        return draw(_TEXT)
    if kind == 1:
        lines = draw(st.lists(_TEXT, min_size=1, max_size=8))
        ticks = draw(st.sampled_from(["```", "~~~", "````"]))
        inner = ["```", *lines, "```"] if ticks == "````" and draw(st.booleans()) else lines
        return f"{ticks}{draw(st.sampled_from(['', 'python']))}\n" + "\n".join(inner) + f"\n{ticks}"
    if kind == 2:
        rows = draw(st.lists(st.tuples(st.sampled_from(["r1", "r2", "x&y"]), _WORD), min_size=1, max_size=20))
        return "| key | value |\n|---|--:|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows)
    if kind == 3:
        lines = draw(st.lists(_QWORDS, min_size=1, max_size=4))
        return "\n".join(f"> {line}" for line in lines)
    if kind == 4:
        code = "\n".join(f"   {line}" for line in draw(st.lists(_TEXT, min_size=1, max_size=6)))
        return f"1. ```\n{code}\n   ```\n\n   {draw(_TEXT)}"
    if kind == 5:
        return "\n".join(f"- {item}" for item in draw(st.lists(_TEXT, min_size=1, max_size=5)))
    if kind == 6:
        return f"## {draw(_TEXT)}"
    return "x" * draw(st.integers(1, 300))


_DOC = st.lists(_block(), min_size=1, max_size=6).map("\n\n".join)
_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(_DOC, st.integers(40, 400))
def test_split_keeps_text_size_fences_tables_and_quotes(markdown: str, limit: int) -> None:
    pieces = split_markdown(markdown, limit)
    rendered = [markdown_to_mrkdwn(piece) for piece in pieces]
    assert all(len(r) <= limit for r in rendered)
    _assert_nothing_lost(markdown, pieces)
    assert not _alnum(markdown_to_mrkdwn(markdown)) - _alnum("".join(rendered))
    for piece, out in zip(pieces, rendered, strict=True):
        assert not _unclosed_fence(piece) or piece is pieces[-1], piece
        assert out.count("```") % 2 == 0
        for line in out.split("\n") if limit >= 150 else []:  # a header and one row fit in 150
            assert not line.lstrip("> ").startswith("|"), (piece, out)  # a table row outside its code block
            if re.search(r"\bq[abc]\b", line) and "```" not in out:
                assert line.startswith(">"), (piece, out)  # quoted words stay in the quote


@_SETTINGS
@given(_DOC, st.integers(40, 200))
def test_split_is_prefix_stable(markdown: str, limit: int) -> None:
    """Earlier pieces never change as the answer grows, so frozen messages stay right."""
    whole = split_markdown(markdown, limit)
    for end in range(0, len(markdown), max(1, len(markdown) // 12)):
        partial = split_markdown(markdown[:end], limit)
        assert partial[:-1] == whole[: max(0, len(partial) - 1)]
