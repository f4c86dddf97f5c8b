from __future__ import annotations

import pytest

from kmm.clock import LiveClock, ManualClock


def test_a_manual_clock_moves_only_when_advanced() -> None:
    clock = ManualClock(start_ns=1_000)
    assert clock.now_ns() == 1_000
    clock.advance(0.5)
    clock.advance(ns=7)
    assert clock.now_ns() == 500_001_007
    assert clock.monotonic_ns() == clock.now_ns()


def test_a_manual_clock_refuses_to_go_backwards() -> None:
    clock = ManualClock(start_ns=1_000)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(ns=-1)
    with pytest.raises(ValueError, match="backwards"):
        clock.set_ns(999)
    clock.set_ns(2_000)
    assert clock.now_ns() == 2_000


def test_the_live_clock_reads_epoch_nanoseconds() -> None:
    clock = LiveClock()
    assert clock.now_ns() > 1_600_000_000 * 10**9
    first = clock.monotonic_ns()
    assert clock.monotonic_ns() >= first
