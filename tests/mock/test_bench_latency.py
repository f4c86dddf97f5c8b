"""The tick-to-order bench runs end to end: the real bot, the floor client, the stamps.

Only that every measurement produces samples is checked; no time is asserted.
"""

from __future__ import annotations

import math

from bench import latency


def test_the_latency_bench_measures_the_bot_both_ways_and_the_floor() -> None:
    figures = latency.run(samples=6)

    assert set(figures) == {"presigned", "on_loop", "floor", "decode"}
    for name in ("presigned", "on_loop", "floor"):
        row = figures[name]
        assert row["n"] >= 4, name
        assert math.isfinite(row["p50_us"]) and row["p50_us"] > 0, name
        assert row["p99_us"] >= row["p50_us"], name
    assert figures["decode"]["warm_us"] > 0 and figures["decode"]["cold_us"] > 0
