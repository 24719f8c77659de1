"""In-process maps keyed by workspace or channel stay bounded however many workspaces and channels the bot sees."""

from __future__ import annotations

import asyncio

from bot.core.call_windows import LEASES_KEPT, FairCallWindows, LocalCallWindows
from bot.core.ports import Allowance
from bot.slack.native_stream import REFUSAL_MEMORY_S, NativeRefusals


async def test_pacing_lines_are_gone_once_nobody_waits_in_them() -> None:
    windows = FairCallWindows(LocalCallWindows())
    for channel in range(2_000):  # one line per channel ever paced, unless the last to leave removes it
        await windows.take([Allowance("chat.postMessage", "T1", 5, 5.0, f"C{channel}")])
    assert len(windows._lines) == 0


async def test_callers_in_one_line_still_go_in_arrival_order() -> None:
    windows = FairCallWindows(LocalCallWindows())
    allowance = Allowance("chat.update", "T1", 2, 0.3)
    order: list[int] = []

    async def take(n: int) -> None:
        await windows.take([allowance])
        order.append(n)

    await asyncio.gather(*(take(n) for n in range(6)))  # two a window: most of them wait in the line
    assert order == list(range(6))
    assert len(windows._lines) == 0


async def test_calls_granted_ahead_are_remembered_for_a_bounded_number_of_workspaces() -> None:
    windows = FairCallWindows(LocalCallWindows())
    for workspace in range(LEASES_KEPT + 500):
        assert await windows.try_take([Allowance("chat.update", f"T{workspace}", 45)], keep=0)
    assert 0 < len(windows._leased) <= LEASES_KEPT
    assert await windows.try_take([Allowance("chat.update", f"T{LEASES_KEPT + 499}", 45)], keep=0)


def test_native_streaming_refusals_are_forgotten_when_they_lapse_and_capped() -> None:
    now = [0.0]
    refusals = NativeRefusals(lambda: now[0], capacity=50)
    for n in range(30):
        refusals.remember(f"T{n}", "unknown_method")
    assert refusals.refused("T0") and len(refusals) == 30
    now[0] = REFUSAL_MEMORY_S + 1  # all lapsed: the next one clears them out
    refusals.remember("T999", "unknown_method")
    assert len(refusals) == 1 and not refusals.refused("T0") and refusals.refused("T999")
    for n in range(200):
        refusals.remember(f"U{n}", "unknown_method")
    assert len(refusals) == 50 and refusals.refused("U199")
