"""The quote throttles: the fill cooldown and the jump guard (kmm.strategy.throttles)."""

from __future__ import annotations

from kmm.strategy.throttles import MarketThrottle, ThrottleParams, throttle_quote
from kmm.types import Quote

MS = 1_000_000
T0 = 1_800_000_000_000_000_000
PARAMS = ThrottleParams(
    fill_cooldown_ns=500 * MS,
    settle_ns=500 * MS,
    max_hold_ns=5_000 * MS,
    jump_ticks=300,
    jump_window_ns=1_000 * MS,
)


def test_a_fill_holds_its_side_for_the_cooldown_and_leaves_the_other_side() -> None:
    throttle = MarketThrottle(PARAMS)
    throttle.on_fair(5000.0, T0)

    throttle.on_fill(True, T0 + 2_000 * MS)

    assert throttle.held(T0 + 2_100 * MS) == ("fill_cooldown", None)
    assert throttle.held(T0 + 2_500 * MS) == (None, None)  # the price stood still meanwhile
    assert throttle.next_change_ns(T0 + 2_100 * MS) == T0 + 2_500 * MS


def test_after_the_cooldown_a_side_waits_until_the_price_settles() -> None:
    throttle = MarketThrottle(PARAMS)
    throttle.on_fair(5000.0, T0)
    throttle.on_fill(False, T0 + 1_000 * MS)

    throttle.on_fair(5050.0, T0 + 1_400 * MS)  # the price keeps moving: the sweep goes on
    throttle.on_fair(5100.0, T0 + 1_800 * MS)

    assert throttle.held(T0 + 2_000 * MS) == (None, "fill_cooldown")
    assert throttle.next_change_ns(T0 + 2_000 * MS) == T0 + 2_300 * MS
    assert throttle.held(T0 + 2_300 * MS) == (None, None)


def test_no_hold_outlasts_its_maximum_in_a_market_that_never_settles() -> None:
    throttle = MarketThrottle(PARAMS)
    throttle.on_fill(True, T0)
    for step in range(1, 60):
        throttle.on_fair(5000.0 + (step % 2) * 100, T0 + step * 100 * MS)

    assert throttle.held(T0 + 4_900 * MS)[0] == "fill_cooldown"
    assert throttle.held(T0 + 5_000 * MS) == (None, None)


def test_a_jump_pulls_both_sides_until_the_price_settles() -> None:
    throttle = MarketThrottle(PARAMS)
    throttle.on_fair(5000.0, T0)
    throttle.on_fair(5150.0, T0 + 300 * MS)

    assert throttle.held(T0 + 400 * MS) == (None, None)  # 1.5¢ is no jump

    throttle.on_fair(5350.0, T0 + 600 * MS)  # 3.5¢ within a second

    assert throttle.held(T0 + 700 * MS) == ("jump", "jump")
    assert throttle.next_change_ns(T0 + 700 * MS) == T0 + 1_100 * MS
    assert throttle.held(T0 + 1_100 * MS) == (None, None)


def test_a_slow_drift_of_the_same_size_is_no_jump() -> None:
    throttle = MarketThrottle(PARAMS)
    for step in range(8):  # 0.5¢ every 0.4 s: 3.5¢ in 2.8 s, never 3¢ within one
        throttle.on_fair(5000.0 + 50 * step, T0 + step * 400 * MS)

    assert throttle.held(T0 + 2_900 * MS) == (None, None)


def test_a_disabled_guard_never_holds() -> None:
    throttle = MarketThrottle(ThrottleParams(fill_cooldown_ns=0, jump_ticks=0))
    throttle.on_fair(5000.0, T0)
    throttle.on_fill(True, T0)
    throttle.on_fair(9000.0, T0 + MS)

    assert throttle.held(T0 + 2 * MS) == (None, None)
    assert throttle.next_change_ns(T0 + 2 * MS) is None


def test_a_held_side_is_taken_out_of_the_quote() -> None:
    quote = Quote("KX", 4900, 500, 5100, 500)

    assert throttle_quote(quote, (None, None)) is quote
    assert throttle_quote(quote, ("fill_cooldown", None)) == Quote("KX", None, 0, 5100, 500)
    assert throttle_quote(quote, ("jump", "jump")) == Quote("KX", None, 0, None, 0)


def test_a_decision_at_an_unchanged_fair_price_is_no_move() -> None:
    throttle = MarketThrottle(PARAMS)
    throttle.on_fair(5000.0, T0)
    throttle.on_fill(True, T0)

    for step in range(1, 10):  # decided again and again, the price never moving
        throttle.on_fair(5000.0, T0 + step * 100 * MS)

    assert throttle.last_move_ns == T0
    assert throttle.held(T0 + 500 * MS) == (None, None)
