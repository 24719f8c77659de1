"""The load harness's arithmetic: percentiles and the busiest-minute count behind its Tier 3 column."""

from __future__ import annotations

import math

from bench.report import busiest_window, percentile


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([0.0, 10.0], 99) == 9.9
    assert percentile([5.0], 99) == 5.0
    assert math.isnan(percentile([], 50))


def test_busiest_window_counts_the_most_events_in_any_sliding_window() -> None:
    assert busiest_window([0.0, 1.0, 59.0, 61.0, 62.0], 60.0) == 3  # 0, 1 and 59; later 59, 61 and 62
    assert busiest_window([], 60.0) == 0
