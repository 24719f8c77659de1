"""The fetch_url tool: its schema for Claude, its status line, and how it hands a page (or a refusal) back."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from bot.core.tools.builtin import builtin_tools
from bot.core.tools.fetch_url import FETCH_URL
from bot.core.tools.registry import ToolContext, ToolError

CTX = ToolContext(workspace_id="T1", channel_id="C1", thread_id="1.0", user_id="U1")


@dataclass
class FakeWeb:
    """A WebFetcher that answers from a dict and records each call; unknown URLs are refused like the real one."""

    pages: dict[str, tuple[str, str]]
    calls: list[tuple[str, int]] = field(default_factory=list)

    async def fetch_text(self, url: str, *, max_chars: int) -> tuple[str, str]:
        self.calls.append((url, max_chars))
        if url not in self.pages:
            raise ToolError("refused: 10.0.0.1 is a private address; only public addresses can be fetched")
        return self.pages[url]


def test_the_schema_asks_claude_for_a_public_url_and_bounds_the_length() -> None:
    schema = FETCH_URL.input_schema()
    assert schema["required"] == ["url"]
    assert "public web page" in schema["properties"]["url"]["description"]
    assert schema["properties"]["max_chars"]["default"] == 20000
    assert (schema["properties"]["max_chars"]["minimum"], schema["properties"]["max_chars"]["maximum"]) == (
        1000,
        100000,
    )
    with pytest.raises(ToolError, match="max_chars"):
        FETCH_URL.parse_input({"url": "https://example.com/", "max_chars": 5})


def test_it_reads_for_claude_only_and_says_page_content_is_not_instructions() -> None:
    assert (FETCH_URL.name, FETCH_URL.for_model, FETCH_URL.for_people, FETCH_URL.acts) == (
        "fetch_url",
        True,
        False,
        False,
    )
    assert FETCH_URL.timeout_s == 20
    assert "not instructions" in FETCH_URL.description
    assert FETCH_URL in builtin_tools(web_fetch=True)
    assert FETCH_URL not in builtin_tools(web_fetch=False)


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("https://docs.python.org/3/library/html.parser.html", "Reading docs.python.org…"),
        ("http://[::1]:8080/x", "Reading ::1…"),
        ("not a url", "Reading not a url…"),
    ],
)
def test_the_status_line_names_the_host(url: str, status: str) -> None:
    assert FETCH_URL.status(FETCH_URL.parse_input({"url": url})) == status


async def test_run_returns_title_url_and_text_from_the_web_port() -> None:
    web = FakeWeb({"https://example.com/a": ("Example", "# Example\n\nSome text.")})
    args = FETCH_URL.parse_input({"url": "https://example.com/a", "max_chars": 5000})
    result = await FETCH_URL.run(args, replace(CTX, web=web))
    assert result == "Title: Example\nURL: https://example.com/a\n\n# Example\n\nSome text."
    assert web.calls == [("https://example.com/a", 5000)]


async def test_an_untitled_empty_page_still_reads_clearly() -> None:
    web = FakeWeb({"https://example.com/empty": ("", "")})
    args = FETCH_URL.parse_input({"url": "https://example.com/empty"})
    result = await FETCH_URL.run(args, replace(CTX, web=web))
    assert result == "Title: (none)\nURL: https://example.com/empty\n\n(the page has no readable text)"
    assert web.calls == [("https://example.com/empty", 20000)]


async def test_a_refusal_from_the_web_port_reaches_claude_as_a_tool_error() -> None:
    web = FakeWeb({})
    with pytest.raises(ToolError, match="private address"):
        await FETCH_URL.run(FETCH_URL.parse_input({"url": "http://10.0.0.1/"}), replace(CTX, web=web))


async def test_without_web_access_the_tool_says_so() -> None:
    with pytest.raises(ToolError, match="web access is not configured"):
        await FETCH_URL.run(FETCH_URL.parse_input({"url": "https://example.com/"}), CTX)
