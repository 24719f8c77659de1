"""Pure rules for text others wrote: which URLs people wrote, and reads screened for the current asker."""

from __future__ import annotations

from bot.core.conversation import TextBlock, ToolCallBlock, ToolResultBlock, Turn
from bot.core.history_access import screen_foreign_reads
from bot.core.tools.fetch_url import FETCH_URL, FetchUrlInput
from bot.core.tools.registry import ToolContext
from bot.core.tools.written_urls import normal_url, urls_written_by_people


def test_only_urls_in_peoples_messages_count() -> None:
    turns = [
        Turn.user("see <https://Example.com/Docs?a=1&amp;b=2|the docs> and https://x.org/page.", author_id="U1"),
        Turn(role="assistant", blocks=(TextBlock(text="also https://claude-wrote.example/"),)),
        Turn(role="user", blocks=(ToolResultBlock(tool_call_id="t", text="a page says https://evil.example/"),)),
    ]
    assert urls_written_by_people(turns) == {"https://example.com/Docs?a=1&b=2", "https://x.org/page"}


def test_fetch_url_asks_first_for_any_url_nobody_wrote() -> None:
    context = ToolContext("T1", "C1", "1.0", "U1", human_urls=frozenset({"https://example.com/"}))
    assert not FETCH_URL.needs_approval(FetchUrlInput(url="https://EXAMPLE.com"), context)
    assert not FETCH_URL.needs_approval(FetchUrlInput(url="https://example.com/#top"), context)
    assert FETCH_URL.needs_approval(FetchUrlInput(url="https://example.com/?q=thread+secrets"), context)
    assert FETCH_URL.needs_approval(FetchUrlInput(url="http://example.com/"), context)  # another scheme
    assert not FETCH_URL.needs_approval(FetchUrlInput(url="file:///etc/passwd"), context)  # refused anyway
    assert normal_url("ftp://x") is None


async def test_reads_of_conversations_the_asker_cannot_see_are_replaced_by_a_note() -> None:
    def read(call_id: str, channel: str | None) -> Turn:
        args = {"channel": channel} if channel else {}
        return Turn(role="assistant", blocks=(ToolCallBlock(id=call_id, name="read_channel", input=args),))

    def result(call_id: str, text: str) -> Turn:
        return Turn(role="user", blocks=(ToolResultBlock(tool_call_id=call_id, text=text),))

    turns = [
        Turn.user("q"),
        read("a", "<#C0SECRET|secret>"),
        result("a", "secret text"),
        read("b", None),
        result("b", "this channel's text"),
        read("c", "C0OPEN"),
        result("c", "open text"),
        read("d", "C0SECRET"),
        result("d", "more secret text"),
    ]
    asked: list[str] = []

    async def can_read(channel: str) -> bool:
        asked.append(channel)
        return channel == "C0OPEN"

    screened, changed = await screen_foreign_reads(turns, here="C0HERE", can_read=can_read)
    texts = [b.text for t in screened for b in t.blocks if isinstance(b, ToolResultBlock)]
    assert "secret" not in " ".join(t for t in texts if "not shown" not in t)
    assert texts[1:3] == ["this channel's text", "open text"]
    assert changed == [2, 8]
    assert asked == ["C0SECRET", "C0OPEN"]  # once per channel; this conversation is never asked about
