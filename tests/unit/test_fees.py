from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmm.errors import FixedPointError, WireError
from kmm.fees import maker_fee, maker_fee_rate, parse_multiplier, taker_fee
from kmm.types import ONE_DOLLAR, format_money, parse_count, parse_price


def test_the_recorded_fill_of_one_contract_at_52_cents_costs_the_recorded_fee() -> None:
    # 0.07 × 1 × 0.52 × 0.48 = 0.017472, rounded up to $0.0001
    fee = taker_fee(parse_price("0.52"), parse_count("1"))

    assert format_money(fee) == "0.017500"


@pytest.mark.parametrize(
    ("price", "count", "expected"),
    [
        ("0.01", "1", "0.000700"),  # 0.000693
        ("0.05", "1", "0.003400"),  # 0.003325
        ("0.10", "1", "0.006300"),  # exactly 0.0063, no rounding
        ("0.25", "1", "0.013200"),  # 0.013125
        ("0.50", "1", "0.017500"),  # exactly 0.0175
        ("0.75", "1", "0.013200"),  # symmetric with 0.25
        ("0.99", "1", "0.000700"),  # symmetric with 0.01
        ("0.52", "10", "0.174800"),  # 0.17472
        ("0.50", "100", "1.750000"),
        ("0.50", "0.30", "0.005300"),  # 0.00525: a fractional count
        ("0.3301", "0.03", "0.000500"),  # 0.000464381: Kalshi's fee-rounding example
        ("0.055", "1", "0.003700"),  # 0.00363825: a sub-cent price
    ],
)
def test_the_taker_fee_table_rounds_up_to_a_centicent(
    price: str, count: str, expected: str
) -> None:
    fee = taker_fee(parse_price(price), parse_count(count))

    assert format_money(fee) == expected


def test_a_fill_at_zero_or_one_dollar_or_of_zero_contracts_costs_nothing() -> None:
    assert taker_fee(0, 100) == 0
    assert taker_fee(ONE_DOLLAR, 100) == 0
    assert taker_fee(5000, 0) == 0


def test_the_multiplier_scales_the_fee_before_rounding() -> None:
    half = taker_fee(5200, 100, Fraction(1, 2))  # 0.008736
    double = taker_fee(5200, 100, Fraction(2))  # 0.034944

    assert format_money(half) == "0.008800"
    assert format_money(double) == "0.035000"


@pytest.mark.parametrize(
    ("fee_type", "expected"),
    [
        ("quadratic_with_maker_fees", "0.004400"),  # 0.0175 × 0.25 = 0.004375
        ("quadratic_with_combo_maker_fees", "0.008800"),  # 0.035 × 0.25 = 0.00875
        ("quadratic", "0.000000"),
        ("flat", "0.000000"),
    ],
)
def test_makers_pay_only_on_series_with_maker_fees(fee_type: str, expected: str) -> None:
    fee = maker_fee(5000, 100, fee_type)

    assert format_money(fee) == expected


def test_the_maker_fee_on_a_hundred_contracts_is_exact() -> None:
    fee = maker_fee(5000, 10_000, "quadratic_with_maker_fees")

    assert format_money(fee) == "0.437500"


def test_the_maker_fee_rate_includes_the_multiplier() -> None:
    assert maker_fee_rate("quadratic_with_maker_fees") == 0.0175
    assert maker_fee_rate("quadratic_with_combo_maker_fees", Fraction(2)) == 0.07
    assert maker_fee_rate("quadratic", Fraction(3)) == 0.0
    assert maker_fee_rate("flat") == 0.0


def test_an_unknown_fee_type_is_refused_rather_than_treated_as_free() -> None:
    with pytest.raises(WireError, match="fee_type"):
        maker_fee(5000, 100, "quadratic_with_surprise_fees")
    with pytest.raises(WireError, match="fee_type"):
        maker_fee_rate("cubic")


@pytest.mark.parametrize(
    ("price", "qty", "multiplier", "field"),
    [
        (-1, 100, Fraction(1), "price"),
        (10_001, 100, Fraction(1), "price"),
        (5000, -1, Fraction(1), "qty"),
        (5000, 100, Fraction(-1), "multiplier"),
    ],
)
def test_impossible_fee_inputs_raise_naming_the_field(
    price: int, qty: int, multiplier: Fraction, field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        taker_fee(price, qty, multiplier)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", Fraction(1)),
        (1, Fraction(1)),
        (0.1, Fraction(1, 10)),
        ("0.25", Fraction(1, 4)),
        (1.5, Fraction(3, 2)),
        ("1e-3", Fraction(1, 1000)),
        (0, Fraction(0)),
    ],
)
def test_a_json_multiplier_becomes_an_exact_fraction(
    value: str | float, expected: Fraction
) -> None:
    assert parse_multiplier(value) == expected


@pytest.mark.parametrize("value", ["abc", "", True, math.nan, math.inf, -1, "-0.5", "1/0"])
def test_a_bad_multiplier_raises_naming_the_field(value: str | float) -> None:
    with pytest.raises(FixedPointError) as info:
        parse_multiplier(value)

    assert info.value.field == "fee_multiplier"


@settings(max_examples=300, deadline=None)
@given(
    price=st.integers(0, ONE_DOLLAR),
    qty=st.integers(0, 10**7),
    multiplier=st.fractions(min_value=0, max_value=5, max_denominator=1000),
)
def test_the_fee_is_the_exact_amount_rounded_up_to_a_centicent(
    price: int, qty: int, multiplier: Fraction
) -> None:
    p = Fraction(price, ONE_DOLLAR)
    exact_dollars = Fraction(7, 100) * Fraction(qty, 100) * p * (1 - p) * multiplier

    fee = taker_fee(price, qty, multiplier)

    assert fee % 100 == 0
    assert fee == math.ceil(exact_dollars * 10_000) * 100
    assert Fraction(fee, 10**6) - exact_dollars < Fraction(1, 10_000)
