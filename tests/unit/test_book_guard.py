"""The spread-shock and thin-book guards: trigger after N bad checks, recover after M good."""

from __future__ import annotations

from kmm.strategy.book_guard import BookGuard, BookGuardParams
from kmm.strategy.hysteresis import Hysteresis
from kmm.types import Quote

S = 1_000_000_000
QUOTE = Quote("KX", 4800, 500, 5200, 500)
SHOCK = BookGuardParams(shock_ratio=3.0, shock_min=200, trigger=2, recover=3)
THIN = BookGuardParams(thin_depth=1000, thin_size_factor=0.5, trigger=2, recover=2)


def test_hysteresis_needs_runs_both_ways() -> None:
    state = Hysteresis(trigger=2, recover=3)
    assert [state.check(b) for b in (True, False, True, True, False, False, True)] == [
        False, False, False, True, True, True, True,
    ]  # fmt: skip
    assert [state.check(False) for _ in range(3)] == [True, True, False]


def _book(spread: int, qty: int = 5000) -> tuple[int, int, int, int]:
    return 5000 - spread // 2, qty, 5000 + spread - spread // 2, qty


def test_a_spread_shock_pulls_both_sides_after_two_checks_and_recovers_after_three() -> None:
    guard = BookGuard(SHOCK)
    for i in range(10):  # a 2c spread for 10 s sets the average
        guard.on_book(_book(200), i * S)
    assert guard.apply(QUOTE, 100) == (QUOTE, "")

    guard.on_book(_book(1000), 11 * S)  # 10c: a shock, once
    assert guard.apply(QUOTE, 100) == (QUOTE, "")
    guard.on_book(_book(1000), 11 * S + 1)
    assert guard.apply(QUOTE, 100) == (Quote("KX", None, 0, None, 0), "spread_shock")

    for k in range(3):
        guard.on_book(_book(200), 12 * S + k)
        pulled = guard.apply(QUOTE, 100)[1] == "spread_shock"
        assert pulled == (k < 2)


def test_a_spread_only_a_tick_wider_than_a_one_tick_book_is_no_shock() -> None:
    guard = BookGuard(SHOCK)
    guard.on_book(_book(100), 0)
    for i in range(1, 5):
        guard.on_book(_book(200 if i % 2 else 100), i * S)  # 3x? no: 2c is only 1c wider
    assert not guard.shock.on


def test_a_one_sided_book_counts_as_a_shock() -> None:
    guard = BookGuard(SHOCK)
    guard.on_book(_book(200), 0)
    guard.on_book((None, 0, 5100, 5000), S)
    guard.on_book((4900, 5000, None, 0), 2 * S)
    assert guard.shock.on


def test_a_thin_touch_halves_the_sizes_to_a_lot_and_recovers() -> None:
    guard = BookGuard(THIN)
    guard.on_book(_book(200, qty=300), 0)
    guard.on_book(_book(200, qty=300), 1)
    assert guard.apply(Quote("KX", 4800, 700, 5200, 500), 100) == (
        Quote("KX", 4800, 300, 5200, 200),
        "thin",
    )
    guard.on_book(_book(200, qty=5000), 2)
    guard.on_book(_book(200, qty=5000), 3)
    assert guard.apply(QUOTE, 100) == (QUOTE, "")


def test_a_thin_size_factor_of_zero_pulls_the_quote() -> None:
    guard = BookGuard(BookGuardParams(thin_depth=1000, thin_size_factor=0.0, trigger=1))
    guard.on_book(_book(200, qty=100), 0)
    assert guard.apply(QUOTE, 100) == (Quote("KX", None, 0, None, 0), "thin")
