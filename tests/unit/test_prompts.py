"""Request building: roles alternate, the stable system text comes first, the date last."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.core.conversation import TextBlock, Turn
from bot.core.prompts import ReplyConfig, build_request, merge_consecutive_turns
from bot.llm.claude import ClaudeModel


def test_a_failed_answer_leaves_two_user_turns_that_are_merged() -> None:
    turns = [Turn.user("first"), Turn.user("second"), Turn(role="assistant", blocks=(TextBlock(text="a"),))]
    merged = merge_consecutive_turns(turns)
    assert [t.role for t in merged] == ["user", "assistant"]
    assert [b.text for b in merged[0].blocks if isinstance(b, TextBlock)] == ["first", "second"]


def test_system_prompt_ends_with_the_date() -> None:
    now = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
    request = build_request(ReplyConfig(model="m", max_tokens=100), [Turn.user("hi")], now, "U1")
    assert "Wednesday, 25 November 2026" in request.system[-1]
    assert "Slack" in request.system[0]


def test_wire_request_hides_the_slack_user_and_drops_empty_text() -> None:
    history = [Turn.user("hi"), Turn(role="assistant", blocks=(TextBlock(text=""),)), Turn.user("again")]
    request = build_request(ReplyConfig(model="m", max_tokens=100), history, datetime.now(UTC), "U123")
    params = ClaudeModel.request_params(request, "claude-x")
    assert params["model"] == "claude-x"
    assert "U123" not in str(params["metadata"])
    assert all(message["content"] for message in params["messages"])
