"""The short soak (`python -m bench.soak --quick`): two real bot processes on one Redis, people asking in threads,
a process SIGKILLed twice (and started again), Redis killed and started again, Claude answering 429 / 529 and
cutting streams, Slack answering 429 — and then every invariant checked on what people saw, what was stored and
what was billed. Bounded: at most 18 questions, about a minute (the judge waits up to 45 s after the last fault for
answers to be recovered), and everything it started is stopped even when it fails."""

from __future__ import annotations

import json

import psutil  # type: ignore[import-untyped]  # no stubs shipped
import pytest

from bench.soak import quick_plan, run_soak, table, without_faults
from bench.soak_checks import ANSWER, END_MARK, QUESTION, Question, ShownMessage, history_problem, judge

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]  # above run_soak's own bound for the quick plan


async def test_a_short_soak_under_faults_keeps_every_invariant() -> None:
    result = await run_soak(quick_plan())
    report = table(result)
    print(report)
    assert len(result.pids) >= 5 and not _left_running(result.pids), report  # 2 bots, 2 replacements, 2 redis-servers
    # The faults really happened, and people really asked.
    assert result.faults["bot processes SIGKILLed"] == 2, report
    assert result.faults["Redis restarts"] == 1, report
    claude_faults = sum(n for kind, n in result.faults.items() if kind.startswith("Claude "))
    assert claude_faults >= 1, report
    assert result.verdict.questions >= 12, report
    # Every invariant, all reported at once.
    verdict = result.verdict
    assert verdict.duplicate_answers == 0, report
    assert verdict.user_turns_lost == 0, report
    assert verdict.answers_left_live == 0, report
    assert verdict.invalid_histories == 0, report
    assert verdict.ledger_mismatch == {}, report


async def test_without_faults_the_same_soak_keeps_every_invariant() -> None:
    """The harness's control: if this fails, the judge or the harness is wrong, not the bot's fault handling."""
    result = await run_soak(without_faults(quick_plan()))
    report = table(result)
    assert result.verdict.questions == 18 and result.verdict.answered == 18, report
    assert result.verdict.failures() == {}, report
    assert result.verdict.ledger["requests"] == result.verdict.billed["requests"], report  # one record a call


def _left_running(pids: list[int]) -> list[int]:
    running = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                running.append(pid)
        except psutil.NoSuchProcess:
            pass
    return running


def _turn(role: str, text: str = "", **block: object) -> str:
    blocks = [{"type": "text", "text": text}] if text else []
    if block:
        blocks.append(dict(block))
    return json.dumps({"role": role, "blocks": blocks})


def test_the_judge_counts_each_kind_of_failure() -> None:
    """The judge itself: a run with one of each failure is counted as such (and a clean thread passes)."""
    q = [
        Question("C1", "1.0", 1, "1.0", acked=True, attempts=1),
        Question("C1", "1.0", 2, "2.0", acked=True, attempts=1),
        Question("C2", "5.0", 1, "5.0", acked=False, attempts=4),
    ]
    answer = f"Sure, {ANSWER.format(number=1)} {END_MARK}"
    shown = [
        ShownMessage("C1", "1.0", "1.1", answer),
        ShownMessage("C1", "1.0", "1.2", answer),  # answered twice
        ShownMessage("C1", "1.0", "2.1", "Sure, this a ▍"),  # left live
        ShownMessage("C2", "5.0", "5.1", "…", blocks=({"elements": [{"action_id": "answer_stop"}]},)),
    ]
    histories = {
        ("C1", "1.0"): [
            _turn("user", QUESTION.format(number=1)),
            _turn("assistant", answer),
            _turn("user", QUESTION.format(number=2)),
        ],
        ("C2", "5.0"): [_turn("assistant", answer)],  # an answer stored before (without) its question
    }
    billed = {"input": 10, "output": 5, "cache_write": 0, "cache_read": 0}
    verdict = judge(q, shown, histories, billed, {**billed, "output": 3})
    assert verdict.duplicate_answers == 1
    assert verdict.user_turns_lost == 1  # C2's question is not stored
    assert verdict.answers_left_live == 2
    assert verdict.invalid_histories == 1
    assert verdict.ledger_mismatch == {"output": -2}
    assert verdict.not_acked == 1


@pytest.mark.parametrize(
    ("turns", "problem"),
    [
        ([("user", "soak question 1:"), ("assistant", "answers soak question 1.")], None),
        ([("user", "soak question 1:"), ("user", "soak question 2:")], None),  # a failed answer: allowed
        ([("user", "soak question 1:"), ("assistant", "a"), ("assistant", "b")], "after an assistant turn"),
        ([("user", "soak question 2:"), ("user", "soak question 1:")], "question 1 stored after question 2"),
        (
            [("user", "soak question 1:"), ("user", "soak question 2:"), ("assistant", "answers soak question 1.")],
            "the answer to question 1 stored after question 2",
        ),
    ],
)
def test_history_rules(turns: list[tuple[str, str]], problem: str | None) -> None:
    parsed = [{"role": role, "blocks": [{"type": "text", "text": text}]} for role, text in turns]
    found = history_problem(parsed)
    assert (found is None) if problem is None else (found is not None and problem in found), found


def test_a_tool_call_needs_its_result_right_after() -> None:
    call = {"role": "assistant", "blocks": [{"type": "tool_call", "id": "t1", "name": "read_thread", "input": {}}]}
    result = {"role": "user", "blocks": [{"type": "tool_result", "tool_call_id": "t1", "text": "ok"}]}
    question = {"role": "user", "blocks": [{"type": "text", "text": "soak question 1:"}]}
    assert history_problem([question, call, result]) is None
    assert "without their result" in str(history_problem([question, call, question]))
    assert "have no result" in str(history_problem([question, call]))
    assert "without their call" in str(history_problem([question, result]))
