from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmm.strategy.avellaneda_stoikov import bounded_sigma, optimal_spread, reservation_price


def test_the_reservation_price_moves_against_a_long_inventory() -> None:
    # q·γ·σ²·τ = 10 × 0.5 × 1e-6 × 3600 = 0.018
    r = reservation_price(0.5, 10.0, 0.5, 0.001, 3600.0)

    assert r == pytest.approx(0.482, abs=1e-12)


def test_the_reservation_price_moves_up_for_a_short_inventory() -> None:
    r = reservation_price(0.3, -4.0, 1.0, 0.002, 100.0)  # + 4 × 1 × 4e-6 × 100 = 0.0016

    assert r == pytest.approx(0.3016, abs=1e-12)


def test_the_reservation_price_is_the_mid_with_no_inventory_or_no_time_left() -> None:
    assert reservation_price(0.42, 0.0, 0.5, 0.001, 3600.0) == 0.42
    assert reservation_price(0.42, 25.0, 0.5, 0.001, 0.0) == 0.42


def test_the_default_spread_is_about_four_cents() -> None:
    # 0.5 × 1e-6 × 3600 + (2 / 0.5) × ln(1 + 0.5 / 50) = 0.0018 + 0.0398013...
    spread = optimal_spread(0.5, 0.001, 3600.0, 50.0)

    assert spread == pytest.approx(0.0018 + 4.0 * math.log(1.01), abs=1e-15)
    assert spread == pytest.approx(0.0416013, abs=1e-7)


def test_with_no_time_left_the_spread_is_the_arrival_term_alone() -> None:
    spread = optimal_spread(0.5, 0.005, 0.0, 50.0)

    assert spread == pytest.approx(4.0 * math.log(1.01), abs=1e-15)


def test_the_spread_widens_with_volatility_and_time_and_narrows_with_kappa() -> None:
    base = optimal_spread(0.5, 0.001, 600.0, 50.0)

    assert optimal_spread(0.5, 0.002, 600.0, 50.0) > base
    assert optimal_spread(0.5, 0.001, 1200.0, 50.0) > base
    assert optimal_spread(0.5, 0.001, 600.0, 100.0) < base


def test_sigma_inside_its_bounds_at_fifty_cents_is_left_alone() -> None:
    assert bounded_sigma(0.001, 0.5, 0.0005, 0.005) == 0.001


def test_sigma_is_floored_then_capped() -> None:
    assert bounded_sigma(0.0001, 0.5, 0.0005, 0.005) == 0.0005
    assert bounded_sigma(0.01, 0.5, 0.0005, 0.005) == 0.005


def test_the_cap_follows_the_binary_shape_away_from_fifty_cents() -> None:
    # 4 × 0.1 × 0.9 = 0.36 of the cap
    assert bounded_sigma(0.01, 0.1, 0.0, 0.005) == pytest.approx(0.0018, abs=1e-15)
    assert bounded_sigma(0.01, 0.9, 0.0, 0.005) == pytest.approx(0.0018, abs=1e-15)


def test_sigma_vanishes_at_zero_and_one_even_below_the_floor() -> None:
    assert bounded_sigma(0.001, 0.0, 0.0005, 0.005) == 0.0
    assert bounded_sigma(0.001, 1.0, 0.0005, 0.005) == 0.0
    assert bounded_sigma(0.001, 0.001, 0.0005, 0.005) == pytest.approx(0.005 * 4 * 0.001 * 0.999)
    assert bounded_sigma(0.001, -0.2, 0.0005, 0.005) == 0.0
    assert bounded_sigma(0.001, 1.3, 0.0005, 0.005) == 0.0


def test_a_missing_sigma_estimate_falls_back_to_the_floor() -> None:
    assert bounded_sigma(math.nan, 0.5, 0.0005, 0.005) == 0.0005


@settings(max_examples=300, deadline=None)
@given(
    sigma=st.floats(0.0, 1.0, allow_subnormal=False),
    p=st.floats(0.0, 1.0, allow_subnormal=False),
    sigma_min=st.floats(0.0, 0.01, allow_subnormal=False),
    extra=st.floats(0.0, 0.05, allow_subnormal=False),
)
def test_bounded_sigma_never_exceeds_the_cap_or_its_shape(
    sigma: float, p: float, sigma_min: float, extra: float
) -> None:
    sigma_max = sigma_min + extra

    bounded = bounded_sigma(sigma, p, sigma_min, sigma_max)

    assert 0.0 <= bounded <= sigma_max
    assert bounded <= sigma_max * 4.0 * p * (1.0 - p) * (1.0 + 1e-12)
