"""Kalshi trading fees, in exact integer arithmetic.

Theory of operation
-------------------
Kalshi's general fee table is quadratic in the price: a fill of ``C`` contracts at ``P``
dollars costs ``coefficient × C × P × (1 − P) × fee_multiplier``. The taker coefficient is
0.07. Makers pay only on series whose ``fee_type`` includes maker fees: 0.0175 (a quarter of
the taker coefficient) for ``quadratic_with_maker_fees`` and 0.035 (half) for
``quadratic_with_combo_maker_fees``; ``quadratic`` and ``flat`` series charge makers nothing.
``fee_multiplier`` is a per-series JSON number from ``GET /series``.

Rounding: per fill, the trade fee is rounded **up** to the next $0.0001 (a "centicent"),
per Kalshi's fee-rounding page (``kalshi-docs/getting_started/fee_rounding.md``: "Round trade
fee up to the nearest $0.0001"). Balance rounding, rounding fees and the per-order rebate
accumulator are applied by the exchange on top of that and are not modelled here. Check: a
taker buying 1 contract at $0.52 owes 0.07 × 0.52 × 0.48 = $0.017472, recorded on the fill as
``fee_cost`` ``"0.017500"``.

Everything is computed on integers: prices in $0.0001, counts in 0.01 contract, the
coefficients and the multiplier as :class:`fractions.Fraction`. The result is in money units
($0.000001), so it is always a multiple of 100. Sources: KALSHI.md §9 and the ``fee_type``
description on ``GET /series``; the fee-schedule PDF itself was not available.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Final

from kmm.errors import FixedPointError, WireError
from kmm.types import ONE_DOLLAR, QTY_SCALE, Money, Price, Qty

__all__ = [
    "FEE_TYPES",
    "MAKER_COEFFICIENTS",
    "TAKER_COEFFICIENT",
    "maker_fee",
    "maker_fee_rate",
    "parse_multiplier",
    "taker_fee",
]

TAKER_COEFFICIENT: Final = Fraction(7, 100)
"""Dollars per contract per unit of ``P × (1 − P)`` for takers (general fee table)."""

MAKER_COEFFICIENTS: Final[dict[str, Fraction]] = {
    "quadratic_with_maker_fees": Fraction(175, 10_000),
    "quadratic_with_combo_maker_fees": Fraction(35, 1_000),
}
"""Maker coefficient per ``fee_type`` that charges makers."""

FEE_TYPES: Final = frozenset({"quadratic", "flat", *MAKER_COEFFICIENTS})
"""Every ``fee_type`` the series endpoint documents."""

# Fee in $0.0001 = coefficient × (qty / QTY_SCALE) × (price / $1) × ((1 − price) / $1) × $1
_CENTICENT_DENOMINATOR: Final = QTY_SCALE * ONE_DOLLAR
_MONEY_PER_CENTICENT: Final = 100


def _quadratic_fee(coefficient: Fraction, price: Price, qty: Qty, multiplier: Fraction) -> Money:
    if not 0 <= price <= ONE_DOLLAR:
        raise ValueError(f"price: must be within [0, {ONE_DOLLAR}] ($0.0001 units), got {price}")
    if qty < 0:
        raise ValueError(f"qty: must not be negative, got {qty}")
    if multiplier < 0:
        raise ValueError(f"multiplier: must not be negative, got {multiplier}")
    numerator = coefficient.numerator * multiplier.numerator * qty * price * (ONE_DOLLAR - price)
    denominator = coefficient.denominator * multiplier.denominator * _CENTICENT_DENOMINATOR
    centicents = -(-numerator // denominator)
    return centicents * _MONEY_PER_CENTICENT


def taker_fee(price: Price, qty: Qty, multiplier: Fraction = Fraction(1)) -> Money:
    """Returns the fee a taker pays for one fill, rounded up to $0.0001.

    Args:
        price: The fill's YES price in $0.0001 units (the fee is symmetric in YES and NO).
        qty: The filled count in 0.01-contract units.
        multiplier: The series' ``fee_multiplier`` (see :func:`parse_multiplier`).

    Returns:
        The fee in money units ($0.000001), a multiple of 100.

    Raises:
        ValueError: if the price is outside $0–$1, or the count or multiplier is negative.
    """
    return _quadratic_fee(TAKER_COEFFICIENT, price, qty, multiplier)


def maker_fee(price: Price, qty: Qty, fee_type: str, multiplier: Fraction = Fraction(1)) -> Money:
    """Returns the fee a maker pays for one fill, rounded up to $0.0001.

    Args:
        price: The fill's YES price in $0.0001 units.
        qty: The filled count in 0.01-contract units.
        fee_type: The series' ``fee_type``; only the two maker-fee types charge makers.
        multiplier: The series' ``fee_multiplier``.

    Returns:
        The fee in money units ($0.000001): 0 for ``quadratic`` and ``flat`` series.

    Raises:
        WireError: if ``fee_type`` is not one the venue documents.
        ValueError: if the price is outside $0–$1, or the count or multiplier is negative.
    """
    coefficient = _maker_coefficient(fee_type)
    if coefficient is None:
        return 0
    return _quadratic_fee(coefficient, price, qty, multiplier)


def maker_fee_rate(fee_type: str, multiplier: Fraction = Fraction(1)) -> float:
    """Returns the maker coefficient times the multiplier, for the strategy maths.

    The maker fee per contract at a price of ``p`` dollars is ``rate × p × (1 − p)`` dollars
    (before rounding). This is the one place a fee becomes a float, and it only feeds the
    quoting maths, never an amount of money.

    Raises:
        WireError: if ``fee_type`` is not one the venue documents.
    """
    coefficient = _maker_coefficient(fee_type)
    if coefficient is None:
        return 0.0
    return float(coefficient * multiplier)


def _maker_coefficient(fee_type: str) -> Fraction | None:
    if fee_type not in FEE_TYPES:
        raise WireError("series", f"fee_type: unknown value {fee_type!r}")
    return MAKER_COEFFICIENTS.get(fee_type)


def parse_multiplier(value: str | int | float) -> Fraction:
    """Converts a series' ``fee_multiplier`` JSON number to an exact fraction.

    The value goes through ``str()``, so a float decoded from JSON such as ``0.1`` becomes
    exactly 1/10 (Python's ``repr`` of a float is the shortest decimal that round-trips).

    Raises:
        FixedPointError: if the value is not a finite, non-negative number.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise FixedPointError("fee_multiplier", value, "expected a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise FixedPointError("fee_multiplier", value, "not a finite number")
    try:
        multiplier = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        raise FixedPointError("fee_multiplier", value, "not a decimal number") from None
    if multiplier < 0:
        raise FixedPointError("fee_multiplier", value, "must not be negative")
    return multiplier
