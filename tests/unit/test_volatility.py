from __future__ import annotations

import math
import random

import pytest

from kmm.errors import ConfigError
from kmm.strategy.volatility import EwmaVolatility, KappaEstimator

SECOND = 1_000_000_000


def _walk(vol: EwmaVolatility, moves: list[float], step_s: float, start_mid: float = 0.5) -> None:
    mid = start_mid
    t_ns = 0
    vol.update(mid, t_ns)
    for move in moves:
        mid += move
        t_ns += int(step_s * SECOND)
        vol.update(mid, t_ns)


def test_sigma_is_the_default_until_enough_moves_are_seen() -> None:
    vol = EwmaVolatility(halflife_s=60.0, sigma_default=0.001, min_samples=3)

    _walk(vol, [0.01, -0.01], step_s=1.0)

    assert vol.samples == 2
    assert vol.sigma() == 0.001


def test_one_cent_moves_every_second_give_one_cent_per_root_second() -> None:
    vol = EwmaVolatility(halflife_s=60.0, sigma_default=0.001, min_samples=3)

    _walk(vol, [0.01, -0.01, 0.01, 0.01], step_s=1.0)

    assert vol.sigma() == pytest.approx(0.01, rel=1e-12)


def test_sigma_is_per_unit_time_whatever_the_sampling() -> None:
    # two cents every four seconds is the same variance rate as one cent every second
    vol = EwmaVolatility(halflife_s=60.0, sigma_default=0.001, min_samples=3)

    _walk(vol, [0.02, -0.02, 0.02, -0.02], step_s=4.0)

    assert vol.sigma() == pytest.approx(0.01, rel=1e-12)


def test_after_one_half_life_the_old_regime_weighs_half() -> None:
    vol = EwmaVolatility(halflife_s=30.0, sigma_default=0.001, min_samples=1)
    _walk(vol, [0.02 * (-1) ** i for i in range(600)], step_s=1.0)  # variance rate 4e-4

    for i in range(30):  # variance rate 0 for one half-life
        vol.update(0.5, (601 + i) * SECOND)

    assert vol.sigma() ** 2 == pytest.approx(2e-4, rel=1e-6)


def test_an_observation_that_does_not_move_time_forward_is_ignored() -> None:
    vol = EwmaVolatility(halflife_s=60.0, sigma_default=0.001, min_samples=1)
    vol.update(0.50, 0)

    vol.update(0.60, 0)
    vol.update(0.70, -SECOND)
    vol.update(0.51, SECOND)

    assert vol.samples == 1
    assert vol.sigma() == pytest.approx(0.01, rel=1e-12)


def test_a_missing_mid_is_ignored() -> None:
    vol = EwmaVolatility(halflife_s=60.0, sigma_default=0.001, min_samples=1)
    vol.update(0.50, 0)

    vol.update(math.nan, SECOND)
    vol.update(0.51, SECOND)

    assert vol.sigma() == pytest.approx(0.01, rel=1e-12)


def test_volatility_parameters_out_of_range_are_all_reported() -> None:
    with pytest.raises(ConfigError) as info:
        EwmaVolatility(halflife_s=0.0, sigma_default=-1.0, min_samples=-1)

    assert len(info.value.problems) == 3


def _kappa(min_trades: int = 3, half_tick: float = 0.005) -> KappaEstimator:
    return KappaEstimator(
        halflife_trades=50.0,
        kappa_default=50.0,
        kappa_min=5.0,
        kappa_max=150.0,
        min_trades=min_trades,
        half_tick=half_tick,
    )


def test_kappa_is_the_default_while_trades_are_few() -> None:
    kappa = _kappa(min_trades=3)

    kappa.update(5200, 0.5)
    kappa.update(5200, 0.5)

    assert kappa.trades == 2
    assert kappa.kappa() == 50.0


def test_kappa_is_one_over_the_mean_distance_plus_half_a_tick() -> None:
    kappa = _kappa()

    for _ in range(3):
        kappa.update(5200, 0.5)  # 2¢ from the mid, plus half a cent

    assert kappa.kappa() == pytest.approx(1.0 / 0.025, rel=1e-12)


def test_kappa_uses_the_distance_on_either_side_of_the_mid() -> None:
    kappa = _kappa()

    for price in (4800, 5200, 4800, 5200):
        kappa.update(price, 0.5)

    assert kappa.kappa() == pytest.approx(40.0, rel=1e-12)


def test_trades_at_the_mid_give_a_finite_kappa_clamped_to_the_maximum() -> None:
    with_half_tick = _kappa()
    without = _kappa(half_tick=0.0)

    for _ in range(5):
        with_half_tick.update(5000, 0.5)
        without.update(5000, 0.5)

    assert with_half_tick.kappa() == 150.0  # 1 / 0.005 = 200, clamped
    assert without.kappa() == 150.0


def test_trades_far_from_the_mid_clamp_kappa_to_the_minimum() -> None:
    kappa = _kappa()

    for _ in range(5):
        kappa.update(9900, 0.3)

    assert kappa.kappa() == 5.0


def test_kappa_recovers_the_rate_of_exponential_distances() -> None:
    rng = random.Random(7)
    kappa = KappaEstimator(1e9, 50.0, 1.0, 1000.0, 10, half_tick=0.0)

    for _ in range(20_000):
        distance = rng.expovariate(40.0)
        price = round((0.5 + rng.choice((-1, 1)) * min(distance, 0.49)) * 10_000)
        kappa.update(price, 0.5)

    assert kappa.kappa() == pytest.approx(40.0, rel=0.05)


def test_a_trade_with_no_mid_is_ignored() -> None:
    kappa = _kappa(min_trades=1)

    kappa.update(5200, math.nan)

    assert kappa.trades == 0
    assert kappa.kappa() == 50.0


def test_kappa_parameters_out_of_range_are_all_reported() -> None:
    with pytest.raises(ConfigError) as info:
        KappaEstimator(0.0, -1.0, 10.0, 5.0, -1, half_tick=-0.1)

    assert len(info.value.problems) == 5
