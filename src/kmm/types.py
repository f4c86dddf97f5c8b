"""Number types and the small value objects every stage shares.

Theory of operation
-------------------
Kalshi sends money and sizes as fixed-point decimal strings (``"0.9600"``, ``"-54.00"``).
kmm keeps them as integers so that arithmetic is exact and cheap:

* a **price** is an ``int`` in units of $0.0001 (``PRICE_SCALE`` = 10 000, so 1¢ = 100);
* a **count** (``Qty``) is an ``int`` in units of 0.01 contract (``QTY_SCALE`` = 100);
* **money** is an ``int`` in units of $0.000001 (``MONEY_SCALE`` = 1 000 000), so that
  price × count is exact: ``price * qty`` is already in money units, and fee strings with
  six decimals (``"0.017500"``) convert without loss.

Strings are converted by splitting on the decimal point and calling ``int`` on ASCII digits;
no value ever passes through ``float``. A string that is malformed, or that carries more
precision than the unit can hold, raises :class:`~kmm.errors.FixedPointError` naming the field.
Valid strings are cached (there are only so many distinct prices), which keeps the
per-message cost of conversion near a dict lookup.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final, NamedTuple

from kmm.errors import FixedPointError

__all__ = [
    "MONEY_SCALE",
    "ONE_CENT",
    "ONE_DOLLAR",
    "PRICE_SCALE",
    "QTY_SCALE",
    "BookSide",
    "Fill",
    "Money",
    "OrderIntent",
    "Outcome",
    "Price",
    "Qty",
    "Quote",
    "format_count",
    "format_money",
    "format_price",
    "money_from_price_qty",
    "parse_count",
    "parse_money",
    "parse_price",
]

Price = int
"""A price in units of $0.0001 (1¢ = 100, $1 = 10 000)."""
Qty = int
"""A count in units of 0.01 contract (1 contract = 100)."""
Money = int
"""An amount of money in units of $0.000001 (price × qty is exactly this unit)."""

PRICE_DIGITS: Final = 4
QTY_DIGITS: Final = 2
MONEY_DIGITS: Final = 6
PRICE_SCALE: Final = 10**PRICE_DIGITS
QTY_SCALE: Final = 10**QTY_DIGITS
MONEY_SCALE: Final = 10**MONEY_DIGITS
ONE_DOLLAR: Final = PRICE_SCALE
ONE_CENT: Final = PRICE_SCALE // 100

_POW10: Final[tuple[int, ...]] = tuple(10**i for i in range(MONEY_DIGITS + 1))
_CACHE_LIMIT: Final = 200_000


class BookSide(StrEnum):
    """Side of an order on the YES-quoted V2 book: ``bid`` buys YES, ``ask`` sells YES."""

    BID = "bid"
    ASK = "ask"


class Outcome(StrEnum):
    """The contract leg: YES or NO."""

    YES = "yes"
    NO = "no"


def _parse_fixed(text: str, digits: int, field: str) -> int:
    """Converts a decimal string to an integer number of ``10**-digits`` units, exactly.

    Raises:
        FixedPointError: if ``text`` is not ``[-]digits[.digits]`` in ASCII, or if it has
            non-zero digits beyond ``digits`` decimals.
    """
    if type(text) is not str:
        raise FixedPointError(field, text, "expected a decimal string")
    negative = text.startswith("-")
    body = text[1:] if negative else text
    whole, dot, frac = body.partition(".")
    if not (whole.isascii() and whole.isdigit()):
        raise FixedPointError(field, text, "not a decimal number")
    if dot and not (frac.isascii() and frac.isdigit()):
        raise FixedPointError(field, text, "not a decimal number")
    if len(frac) > digits:
        if frac[digits:].strip("0"):
            raise FixedPointError(field, text, f"more than {digits} decimal places")
        frac = frac[:digits]
    value = int(whole) * _POW10[digits]
    if frac:
        value += int(frac) * _POW10[digits - len(frac)]
    return -value if negative else value


_PRICE_CACHE: dict[str, int] = {}
_QTY_CACHE: dict[str, int] = {}


def parse_price(text: str, field: str = "price") -> Price:
    """Parses a dollar string such as ``"0.9600"`` or ``"0.96"`` into $0.0001 units.

    Args:
        text: The dollar string from the wire.
        field: The field name reported if the string is malformed.

    Returns:
        The price as an integer number of $0.0001.

    Raises:
        FixedPointError: if the string is malformed or finer than $0.0001.
    """
    value = _PRICE_CACHE.get(text) if type(text) is str else None
    if value is None:
        value = _parse_fixed(text, PRICE_DIGITS, field)
        if len(_PRICE_CACHE) >= _CACHE_LIMIT:
            _PRICE_CACHE.clear()
        _PRICE_CACHE[text] = value
    return value


def parse_count(text: str, field: str = "count") -> Qty:
    """Parses a fixed-point count such as ``"-54.00"`` or ``"12"`` into 0.01-contract units.

    Args:
        text: The count string from the wire.
        field: The field name reported if the string is malformed.

    Returns:
        The count as an integer number of 0.01 contracts.

    Raises:
        FixedPointError: if the string is malformed or finer than 0.01.
    """
    value = _QTY_CACHE.get(text) if type(text) is str else None
    if value is None:
        value = _parse_fixed(text, QTY_DIGITS, field)
        if len(_QTY_CACHE) >= _CACHE_LIMIT:
            _QTY_CACHE.clear()
        _QTY_CACHE[text] = value
    return value


def parse_money(text: str, field: str = "amount") -> Money:
    """Parses a dollar amount with up to six decimals (fees, costs, P&L) into $0.000001 units.

    Raises:
        FixedPointError: if the string is malformed or finer than $0.000001.
    """
    return _parse_fixed(text, MONEY_DIGITS, field)


def _format_fixed(value: int, digits: int) -> str:
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), _POW10[digits])
    return f"{sign}{whole}.{frac:0{digits}d}"


def format_price(price: Price) -> str:
    """Formats $0.0001 units as Kalshi's four-decimal dollar string, e.g. ``"0.9600"``."""
    return _format_fixed(price, PRICE_DIGITS)


def format_count(qty: Qty) -> str:
    """Formats 0.01-contract units as Kalshi's two-decimal count string, e.g. ``"10.00"``."""
    return _format_fixed(qty, QTY_DIGITS)


def format_money(amount: Money) -> str:
    """Formats $0.000001 units as a six-decimal dollar string, e.g. ``"0.017500"``."""
    return _format_fixed(amount, MONEY_DIGITS)


def money_from_price_qty(price: Price, qty: Qty) -> Money:
    """Returns the exact value of ``qty`` contracts at ``price``, in money units."""
    return price * qty


class Quote(NamedTuple):
    """The prices and sizes the strategy wants to rest in one market.

    ``None`` on a side means "do not quote that side". Prices are YES-leg prices: the bid
    buys YES, the ask sells YES (which Kalshi books as a NO bid at ``ONE_DOLLAR - ask``).
    A NamedTuple rather than a frozen dataclass: one is built per decision on the hot path,
    and a frozen dataclass costs several times more to construct.
    """

    ticker: str
    bid_price: Price | None
    bid_qty: Qty
    ask_price: Price | None
    ask_qty: Qty


class OrderIntent(NamedTuple):
    """One order the executor should have resting: a YES-leg side, price and count."""

    ticker: str
    side: BookSide
    price: Price
    qty: Qty


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of one of our orders, as the exchange reported it.

    ``price`` is the YES price; ``side`` is the YES-leg side of our order (``bid`` bought YES,
    ``ask`` sold YES, i.e. bought NO). ``fee`` is in money units ($0.000001).
    """

    trade_id: str
    order_id: str
    ticker: str
    side: BookSide
    price: Price
    qty: Qty
    fee: Money
    is_taker: bool
    ts_ms: int
    client_order_id: str | None = None
    post_position: Qty | None = None
