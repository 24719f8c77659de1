"""Folding, searching and trimming long threads; choosing how hard to think: pure rules, no servers."""

from __future__ import annotations

from bot.core.context_window import (
    FoldedTurns,
    apply_fold,
    choose_fold_end,
    estimate_request_tokens,
    extended,
    spliced,
    split_transcript,
    trim_to_fit,
)
from bot.core.conversation import NOT_LOADED, Fold, TextBlock, ThinkingBlock, ToolCallBlock, ToolResultBlock, Turn
from bot.core.errors import ModelUnavailable
from bot.core.ports import ModelLimits, ModelRequest, ToolSpec
from bot.core.thinking import ThinkingPlanner, ThinkingPolicy, fit_thinking
from bot.llm.claude import ClaudeModel


def said(text: str, who: str = "U1") -> Turn:
    return Turn(role="user", blocks=(TextBlock(text=text),), author_id=who)


def answered(text: str) -> Turn:
    return Turn(role="assistant", blocks=(TextBlock(text=text),))


def tool_exchange() -> list[Turn]:
    call = Turn(role="assistant", blocks=(ToolCallBlock(id="t1", name="read_channel", input={}),))
    return [call, Turn(role="user", blocks=(ToolResultBlock(tool_call_id="t1", text="x" * 4000),))]


def test_a_fold_ends_only_where_someone_spoke_so_tool_calls_keep_their_results() -> None:
    turns = [said("first"), answered("a"), said("q2"), *tool_exchange(), answered("b"), said("q3"), answered("c")]
    turns.append(said("now"))
    end = choose_fold_end(turns, start=1, protected_from=len(turns) - 1, keep_recent=2, tokens_to_drop=500)
    assert end is not None and turns[end].role == "user" and not isinstance(turns[end].blocks[0], ToolResultBlock)
    assert end == 6  # past the tool exchange (it is big enough), before q3


def test_the_current_exchange_and_the_first_message_are_never_folded() -> None:
    turns = [said("first"), answered("a"), said("now")]
    assert choose_fold_end(turns, start=1, protected_from=2, keep_recent=6, tokens_to_drop=10**6) == 2
    assert choose_fold_end(turns[:1], start=1, protected_from=0, keep_recent=6, tokens_to_drop=10) is None


def test_the_request_shows_the_first_message_a_fold_note_and_what_follows() -> None:
    turns = [said("first"), answered("a"), said("q2"), answered("b"), said("now")]
    shown = apply_fold(turns, Fold(summary="s", upto=4))
    assert [t.text for t in shown][1:] == ["now"]
    assert shown[0].text.startswith("first") and "search_history" in shown[0].text


async def test_search_finds_a_quoted_phrase_or_the_most_query_words_in_folded_turns_only() -> None:
    turns = [said("kickoff"), said("The budget we agreed is 4,217 euros."), answered("Budget noted."), said("late")]
    history = FoldedTurns.of(turns, Fold(summary="s", upto=3))
    assert history is not None
    [hit] = await history.search('"budget we agreed"', limit=5)
    assert hit.turn_index == 1 and "4,217 euros" in hit.excerpt
    assert [h.turn_index for h in await history.search("budget noted", limit=5)] == [1, 2]
    assert await history.search("kickoff", limit=5) == []  # the first message is not folded: it is still in view
    assert FoldedTurns.of(turns, None) is None


def test_a_transcript_too_long_for_one_summary_call_is_cut_between_messages() -> None:
    text = "\n\n".join(f"U: message {i} " + "x" * 80 for i in range(50))
    pieces = split_transcript(text, 1_000)
    assert all(len(p) <= 1_000 for p in pieces) and all(p.startswith("U: message") for p in pieces)
    assert "".join(pieces).replace("\n", "") == text.replace("\n", "")


def test_trimming_shortens_tool_results_before_what_people_wrote() -> None:
    request = ModelRequest(
        model="m",
        max_tokens=10,
        system=("s",),
        turns=(said("q " * 3000), *tool_exchange()),
    )
    trimmed = trim_to_fit(request, excess_tokens=200)
    result = trimmed.turns[2].blocks[0]
    assert isinstance(result, ToolResultBlock) and "trimmed" in result.text and len(result.text) < 4000
    assert trimmed.turns[0].text == request.turns[0].text
    assert estimate_request_tokens(trimmed) < estimate_request_tokens(request)


def test_a_manual_budget_stays_below_max_tokens_and_within_the_models_output_limit() -> None:
    assert fit_thinking(16_384, 4_096, None, 4_096) == (16_384, 20_480)
    assert fit_thinking(16_384, 4_096, ModelLimits(max_output_tokens=8_192), 4_096) == (4_096, 8_192)
    assert fit_thinking(16_384, 4_096, ModelLimits(max_output_tokens=4_500), 4_096) == (None, 4_500)
    assert fit_thinking("adaptive", 4_096, None, 4_096) == ("adaptive", 4_096)


async def test_thinking_follows_what_the_model_accepts_and_a_failed_triage_means_no_thinking() -> None:
    planner = ThinkingPlanner(ThinkingPolicy(default="off"))

    async def never(_: ModelRequest) -> str:
        raise ModelUnavailable("down")

    adaptive_only = ModelLimits(adaptive_thinking=True, manual_thinking=False)
    assert await planner.plan(None, "q", adaptive_only, never) is None  # the default is off
    assert await planner.plan(8_000, "q", adaptive_only, never) == "adaptive"
    assert await planner.plan("adaptive", "q", adaptive_only, never) == "adaptive"
    assert await planner.plan("adaptive", "q", ModelLimits(adaptive_thinking=False), never) is None


def test_at_most_four_breakpoints_and_none_on_thinking_blocks() -> None:
    thinking_then_call = Turn(
        role="assistant",
        blocks=(ThinkingBlock(thinking="t", signature="s"), ToolCallBlock(id="t1", name="x", input={})),
    )
    request = ModelRequest(
        model="m",
        max_tokens=100,
        system=("persona", "summary", "today"),
        cache_system_parts=(0, 1),
        turns=(
            said("q"),
            thinking_then_call,
            Turn(role="user", blocks=(ToolResultBlock(tool_call_id="t1", text="r"),)),
        ),
        tools=(ToolSpec("x", "d", {"type": "object"}),),
    )
    params = ClaudeModel.request_params(request, "m")
    marks = str(params).count("cache_control")
    assert marks == 4  # persona, summary, the previous turn, and the automatic one
    assert "cache_control" not in params["messages"][1]["content"][0]  # thinking blocks cannot carry it
    assert "cache_control" in params["messages"][1]["content"][1]


def test_a_fold_keeps_the_channels_its_turns_read_and_the_links_people_wrote_in_them() -> None:
    call = ToolCallBlock(id="t1", name="read_channel", input={"channel": "<#C9|secret>"})
    turns = [
        said("kickoff"),
        said("see https://Example.com/a#top"),
        Turn(role="assistant", blocks=(call,)),
        Turn(role="user", blocks=(ToolResultBlock(tool_call_id="t1", text="https://evil.example/x"),)),
        said("then https://b.example"),
        said("late"),
    ]
    first = extended(None, "s1", turns, 1, 4)
    assert first == Fold("s1", 4, reads=("C9",), urls=("https://example.com/a",))
    second = extended(first, "s2", turns, 4, 5)  # only the newly folded turns are read; the rest comes from `first`
    assert second.reads == ("C9",) and second.urls == ("https://b.example/", "https://example.com/a")


def test_folded_turns_read_back_skip_a_tool_result_whose_call_was_trimmed_away() -> None:
    call = ToolCallBlock(id="t1", name="read_channel", input={"channel": "C9"})
    result = Turn(role="user", blocks=(ToolResultBlock(tool_call_id="t1", text="secret"),))
    turns = [said("kickoff"), *[NOT_LOADED] * 5, said("now")]
    whole = [(3, said("q3")), (4, Turn(role="assistant", blocks=(call,))), (5, result)]
    assert spliced(turns, whole)[1:7] == [NOT_LOADED, NOT_LOADED, *(turn for _, turn in whole), said("now")]
    cut = [(4, result), (5, said("q"))]  # its call was trimmed away: it could not be screened
    assert spliced(turns, cut)[1:6] == [NOT_LOADED, NOT_LOADED, NOT_LOADED, NOT_LOADED, said("q")]
