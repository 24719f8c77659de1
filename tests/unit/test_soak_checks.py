"""The soak's ledger check: the ledger must equal the bill, except that it may lack whole calls that completed just
before their process was SIGKILLed (bench/soak_checks.py `reconcile`)."""

from __future__ import annotations

from bench.soak_checks import reconcile

CERTAIN = {"input": 0, "output": 300, "cache_read": 2000, "requests": 2}
NEAR_KILL = {"input": 0, "output": 174, "cache_read": 1649, "requests": 1}


def test_a_ledger_with_every_call_equals_the_full_bill() -> None:
    ledger = {"input": 0, "output": 474, "cache_read": 3649, "requests": 3}
    assert reconcile(ledger, CERTAIN, [NEAR_KILL]) == (ledger, 0)


def test_a_call_that_ended_just_before_its_process_was_killed_may_be_missing_whole() -> None:
    billed, unrecorded = reconcile(dict(CERTAIN), CERTAIN, [NEAR_KILL])
    assert billed == CERTAIN and unrecorded == 1


def test_anything_else_missing_is_still_a_mismatch_against_the_full_bill() -> None:
    partly = {"input": 0, "output": 400, "cache_read": 3649, "requests": 3}  # 74 output tokens lost: a real bug
    billed, unrecorded = reconcile(partly, CERTAIN, [NEAR_KILL])
    assert billed == {"input": 0, "output": 474, "cache_read": 3649, "requests": 3} and unrecorded == 0
    short = {"input": 0, "output": 200, "cache_read": 2000, "requests": 2}  # a call far from any kill lost
    assert reconcile(short, CERTAIN, [NEAR_KILL])[0] != short
