"""The adverse-selection guard (kmm.strategy.toxicity): trigger, recovery and its widening."""

from __future__ import annotations

from kmm.strategy.toxicity import ToxicityGuard, ToxicityParams

S = 1_000_000_000
T0 = 1_800_000_000 * S
PARAMS = ToxicityParams(horizon_ns=5 * S, trigger=2, recover=3, calm_ns=60 * S, widen=200)


def _filled(guard: ToxicityGuard, at_s: float, *, bought: bool, price: int, later: float) -> None:
    """A fill at ``at_s``, then the fair price ``later`` once its horizon has come."""
    guard.on_fill(bought, price, T0 + int(at_s * S))
    guard.on_fair(later, T0 + int((at_s + 5) * S))


def test_two_fills_in_a_row_that_the_price_runs_through_make_the_market_toxic() -> None:
    guard = ToxicityGuard(PARAMS)

    _filled(guard, 0, bought=True, price=5000, later=4900.0)  # bought, then it fell
    assert not guard.toxic and guard.widen == 0
    _filled(guard, 10, bought=False, price=4900, later=5000.0)  # sold, then it rose

    assert guard.toxic and guard.widen == 200
    assert guard.bad_share == 1.0


def test_a_good_fill_between_bad_ones_resets_the_run() -> None:
    guard = ToxicityGuard(PARAMS)

    _filled(guard, 0, bought=True, price=5000, later=4900.0)
    _filled(guard, 10, bought=True, price=4900, later=5000.0)  # good: it rose after we bought
    _filled(guard, 20, bought=True, price=5000, later=4950.0)

    assert not guard.toxic
    assert guard.bad_share == 2 / 3


def test_three_good_fills_in_a_row_end_the_toxic_state() -> None:
    guard = ToxicityGuard(PARAMS)
    _filled(guard, 0, bought=True, price=5000, later=4900.0)
    _filled(guard, 10, bought=True, price=4900, later=4800.0)
    assert guard.toxic

    for step in range(3):
        assert guard.toxic
        _filled(guard, 20 + 10 * step, bought=False, price=4900, later=4800.0)

    assert not guard.toxic


def test_a_toxic_market_calms_down_after_a_quiet_minute() -> None:
    guard = ToxicityGuard(PARAMS)
    _filled(guard, 0, bought=True, price=5000, later=4900.0)
    _filled(guard, 10, bought=True, price=4900, later=4800.0)

    guard.on_fair(4800.0, T0 + 74 * S)
    assert guard.toxic
    guard.on_fair(4800.0, T0 + 75 * S)  # 60 s after the last bad check (at 15 s)

    assert not guard.toxic


def test_a_fill_is_checked_only_once_its_horizon_has_come() -> None:
    guard = ToxicityGuard(PARAMS)
    guard.on_fill(True, 5000, T0)

    guard.on_fair(4000.0, T0 + 4 * S)

    assert guard.bad_share is None


def test_a_disabled_guard_never_turns_toxic() -> None:
    guard = ToxicityGuard(ToxicityParams(trigger=0))
    for step in range(5):
        _filled(guard, 10 * step, bought=True, price=5000, later=4000.0)

    assert not guard.toxic and guard.bad_share is None
