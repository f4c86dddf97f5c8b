"""A fixed-bucket latency histogram, cheap enough for the decision path.

The trading core observes each decision's frame-to-decision latency (the time from the book
frame's arrival to the quote's hand-over to the planner); the metrics export it as a Prometheus
histogram. An observation is one ``bisect`` over 13 bounds and two additions; nothing is
allocated. Pure: the caller passes the durations.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Final

__all__ = ["DECISION_BUCKETS_NS", "LatencyHistogram"]

DECISION_BUCKETS_NS: Final = (
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    1_000_000_000,
)
"""Upper bounds in nanoseconds: 50 µs to 1 s (the last bucket, +Inf, takes the rest)."""


class LatencyHistogram:
    """Counts of durations per bucket, their sum and their number.

    Args:
        bounds_ns: The buckets' upper bounds, increasing, in nanoseconds.
    """

    __slots__ = ("bounds_ns", "count", "counts", "sum_ns")

    def __init__(self, bounds_ns: tuple[int, ...] = DECISION_BUCKETS_NS) -> None:
        self.bounds_ns = bounds_ns
        self.counts = [0] * (len(bounds_ns) + 1)
        self.sum_ns = 0
        self.count = 0

    def observe(self, duration_ns: int) -> None:
        """Counts one duration (a bound is inclusive, as Prometheus's ``le``)."""
        self.counts[bisect_left(self.bounds_ns, duration_ns)] += 1
        self.sum_ns += duration_ns
        self.count += 1

    def cumulative(self) -> list[tuple[int | None, int]]:
        """``(bound_ns, observations <= bound)`` per bucket, the last bound None (+Inf)."""
        total = 0
        rows: list[tuple[int | None, int]] = []
        for bound, count in zip((*self.bounds_ns, None), self.counts, strict=True):
            total += count
            rows.append((bound, total))
        return rows
