from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmm.errors import FixedPointError
from kmm.types import (
    ONE_CENT,
    ONE_DOLLAR,
    format_count,
    format_money,
    format_price,
    money_from_price_qty,
    parse_count,
    parse_money,
    parse_price,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.9600", 9600),
        ("0.96", 9600),
        ("0.960", 9600),
        ("0.9", 9000),
        ("1", 10000),
        ("0.0001", 1),
        ("0.960000", 9600),
        ("-0.0500", -500),
        ("12", 120000),
    ],
)
def test_every_kalshi_price_shape_converts_exactly(text: str, expected: int) -> None:
    assert parse_price(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("-54.00", -5400), ("12", 1200), ("10.00", 1000), ("0.01", 1), ("1.5", 150), ("0", 0)],
)
def test_every_kalshi_count_shape_converts_exactly(text: str, expected: int) -> None:
    assert parse_count(text) == expected


def test_money_keeps_six_decimals() -> None:
    assert parse_money("0.017500") == 17500
    assert parse_money("-12.3456") == -12345600


@pytest.mark.parametrize(
    "text",
    [
        "",
        "-",
        ".5",
        "5.",
        "0.9x",
        "1e2",
        " 0.5",
        "0.5 ",
        "+0.5",
        "1_000",
        "0..5",
        "٣",
        "0.0.1",
        "--1",
    ],
)
def test_a_malformed_price_raises_a_typed_error_naming_the_field(text: str) -> None:
    with pytest.raises(FixedPointError) as info:
        parse_price(text, "yes_bid_dollars")
    assert info.value.field == "yes_bid_dollars"
    assert "yes_bid_dollars" in str(info.value)


def test_a_price_finer_than_a_hundredth_of_a_cent_is_refused() -> None:
    with pytest.raises(FixedPointError, match="more than 4 decimal places"):
        parse_price("0.12345", "price_dollars")


def test_a_count_finer_than_a_hundredth_of_a_contract_is_refused() -> None:
    with pytest.raises(FixedPointError, match="delta_fp"):
        parse_count("1.001", "delta_fp")


def test_a_non_string_is_refused_rather_than_guessed() -> None:
    with pytest.raises(FixedPointError, match="expected a decimal string"):
        parse_price(0.96, "price")  # type: ignore[arg-type]


def test_formatting_uses_kalshi_decimal_places() -> None:
    assert format_price(9600) == "0.9600"
    assert format_price(-5) == "-0.0005"
    assert format_count(1000) == "10.00"
    assert format_count(-5400) == "-54.00"
    assert format_money(17500) == "0.017500"


def test_price_times_count_is_exact_money() -> None:
    assert money_from_price_qty(5200, 100) == parse_money("0.52")
    assert ONE_DOLLAR == 100 * ONE_CENT


@settings(max_examples=300)
@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_prices_round_trip_through_strings(value: int) -> None:
    assert parse_price(format_price(value)) == value


@settings(max_examples=300)
@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_counts_and_money_round_trip_through_strings(value: int) -> None:
    assert parse_count(format_count(value)) == value
    assert parse_money(format_money(value)) == value


@settings(max_examples=300)
@given(
    st.decimals(
        min_value=Decimal("-1000000"),
        max_value=Decimal("1000000"),
        places=4,
        allow_nan=False,
        allow_infinity=False,
    ),
)
def test_parsing_agrees_with_decimal_arithmetic(value: Decimal) -> None:
    text = format(value, "f")
    assert parse_price(text) == int(value * 10000)
