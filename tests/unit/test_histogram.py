"""The decision-latency histogram: bounds inclusive, cumulative counts, sum and count."""

from __future__ import annotations

from kmm.core.histogram import LatencyHistogram


def test_each_duration_lands_in_the_first_bucket_whose_bound_holds_it() -> None:
    histogram = LatencyHistogram((100, 1_000))

    for duration in (50, 100, 101, 1_000, 5_000):
        histogram.observe(duration)

    assert histogram.counts == [2, 2, 1]
    assert histogram.cumulative() == [(100, 2), (1_000, 4), (None, 5)]
    assert (histogram.count, histogram.sum_ns) == (5, 6_251)
