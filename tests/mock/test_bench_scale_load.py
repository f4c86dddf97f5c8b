"""The load figures of ``make bench`` run end to end in a reduced form: ``kmm run``'s memory
read from ``/proc``, and the frame-to-decision lag through kmm's websocket client and core.

Only that every measurement produces samples and finite figures is checked; no time or size
is asserted.
"""

from __future__ import annotations

import math
import sys

import orjson
import pytest
from bench import load

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_the_memory_bench_reads_the_bots_resident_memory() -> None:
    figures = load.memory(50, settle_s=1.0)

    assert figures["markets"] == 50
    assert math.isfinite(figures["first_s"]) and figures["first_s"] > 0
    assert 0 < figures["rss_mb"] <= figures["hwm_mb"]


def test_the_lag_bench_stamps_every_frame_through_kmm_and_the_floor() -> None:
    figures = load.lag(50, rate=2_000, seconds=1.0, warmup_s=0.5, burst=10, floor_s=0.5)

    kmm, floor = figures["kmm"], figures["floor"]
    assert kmm["n"] == 2_000 and kmm["missing"] == 0
    assert floor["n"] == 1_000 and floor["missing"] == 0
    for row in (kmm, floor):
        for name in ("p50_us", "p99_us", "max_us", "first_p50_us", "rate"):
            assert math.isfinite(row[name]) and row[name] > 0, name
        assert row["p50_us"] <= row["p99_us"] <= row["max_us"]
    assert kmm["decisions"] > 0
    assert kmm["cpu_us"] > 0 and kmm["core_us"] > 0


def test_the_feeds_frames_are_kalshi_shaped_and_keep_the_books_uncrossed() -> None:
    snapshots, deltas = load.build_frames(3, 2_000)

    books = {}
    for seq, frame in enumerate(snapshots, start=1):
        snap = orjson.loads(frame)
        assert snap["type"] == "orderbook_snapshot" and snap["seq"] == seq
        msg = snap["msg"]
        books[msg["market_ticker"]] = (
            {p: float(q) for p, q in msg["yes_dollars_fp"]},
            {p: float(q) for p, q in msg["no_dollars_fp"]},
        )
    for seq, frame in enumerate(deltas, start=len(snapshots) + 1):
        delta = orjson.loads(frame)
        assert delta["type"] == "orderbook_delta" and delta["seq"] == seq
        msg = delta["msg"]
        bids, asks = books[msg["market_ticker"]]
        levels = bids if msg["side"] == "yes" else asks
        size = levels.get(msg["price_dollars"], 0.0) + float(msg["delta_fp"])
        assert size >= 0
        if size:
            levels[msg["price_dollars"]] = size
        else:
            del levels[msg["price_dollars"]]
        assert max(map(float, bids)) < min(map(float, asks))
