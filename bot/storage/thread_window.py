"""How both conversation stores lay out a long thread, so they behave the same (the Redis scripts mirror this).

A thread is stored as turn 0 (the first message, always shown) followed by the turns from `base` + 1 on: a fold
trims the folded turns beyond the newest MAX_FOLDED_TURNS_KEPT (bot/storage/keys.py), and `base` counts them. List
position p ≥ 1 holds absolute turn p + base. The core only ever sees absolute indexes: `load` puts NOT_LOADED where
it read nothing (the folded turns, the trimmed ones), so an answer reads what the model sees and not the whole thread.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.core.conversation import NOT_LOADED, Turn


def load_start(upto: int | None, base: int, length: int) -> int:
    """The list position an answer's turns are read from (besides turn 0): the fold's end, never past the last turn
    (closing an interrupted exchange looks at it)."""
    start = max(1, upto - base) if upto else 1
    return min(start, max(1, length - 1))


def absolute(head: Sequence[Turn], rest: Sequence[Turn], first_index: int) -> list[Turn]:
    """Turn 0 (`head`, empty for an empty thread) and `rest` from absolute index `first_index`, gaps NOT_LOADED."""
    if not head:
        return []
    return [*head, *[NOT_LOADED] * (first_index - 1), *rest]


def trimmed_count(upto: int, kept: int, base: int, length: int) -> int:
    """How many list positions after turn 0 a fold ending at `upto` trims: the folded turns older than the newest
    `kept` ones; never the last turn."""
    drop = upto - kept - base - 1
    return drop if drop > 0 and drop + 1 < length else 0
