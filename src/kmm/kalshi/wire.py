"""Kalshi websocket frames → kmm events, and the level/price-range parsers REST shares.

Theory of operation
-------------------
A :class:`WireDecoder` turns one text frame into one event. It parses the frame once with
``orjson``, looks the message ``type`` up in a dict of bound handler methods and lets the handler
index the payload directly, converting every dollar string with :func:`~kmm.types.parse_price`,
every count with :func:`~kmm.types.parse_count` and every fee, cost or P&L with
:func:`~kmm.types.parse_money` (exact, cached, never through ``float``).

* **Unknown types** (``event_lifecycle``, ``order_group_updates``, anything Kalshi adds) are
  counted in :attr:`WireDecoder.unknown_counts` and answered with ``None``; they are never fatal.
* **Malformed frames** (not JSON, a required field missing, a number that is not an exact
  decimal, a side that is neither ``yes`` nor ``no`` …) raise :class:`~kmm.errors.WireError`
  whose message names the message type and the field. Handlers index the payload without
  checking first; the decoder translates the ``KeyError``/``TypeError``/``FixedPointError`` that
  results into a ``WireError`` on the way out, so the valid path pays for no checks it does
  not need. The receive loop decides to log and skip.
* **Subaccounts.** A decoder built with ``subaccount=N`` decodes account messages (``fill``,
  ``user_order``, ``market_position``) of subaccount ``N`` only: one of another subaccount
  (``subaccount`` / ``subaccount_number`` in the payload; absent means the primary, 0, as
  Kalshi sends it only for subaccounts) is counted in :attr:`WireDecoder.foreign_counts` and
  answered with ``None``. A full-account key's connection carries every subaccount's.
* **Out-of-range values** are malformed too: a fill, trade, order or book price outside
  (0, $1) (a ticker's prices and a settlement value may be $0 or $1), a count that is
  negative (a delta or a position may be negative, a fill or trade count must be positive),
  a fee below zero, a count, amount or timestamp beyond :data:`MAX_QTY`, :data:`MAX_MONEY`
  or :data:`MAX_TS_MS`, a price twice on one side of a snapshot, a crossed snapshot (best
  YES bid + best NO bid ≥ $1, which a bids-only book cannot hold), a scalar result without
  a settlement value. Bands are parsed here but judged by the price grid, which needs the
  market (the pipeline keeps the old grid and pulls the market's quotes).
* **Kinds.** Every :class:`~kmm.errors.WireError` carries the ``field`` that was wrong, so
  ``WireError.kind`` (``"fill.yes_price_dollars"``, ``"orderbook_snapshot.crossed"``,
  ``"frame.json"``) lets the receive loop count refusals by kind and log each kind once.
  Nothing but ``WireError`` leaves :meth:`WireDecoder.decode` and
  :meth:`WireDecoder.decode_into` (bar what ``on_delta`` itself raises).
* **Book prices.** Events always carry YES bids in YES prices and NO bids in NO prices, which
  is Kalshi's default convention. A decoder built with ``use_yes_price=True`` (the
  subscription asked for YES-leg prices on both sides) converts NO levels and deltas back
  with ``ONE_DOLLAR - p`` and keeps snapshot levels ascending, so both conventions give the
  same events for the same book.
* **Direction.** Fills, orders and trades carry a YES-leg :class:`~kmm.types.BookSide`:
  ``bid`` bought YES, ``ask`` sold YES (bought NO). It comes from ``book_side`` (``bid`` ≡
  ``outcome_side`` ``yes``, ``ask`` ≡ ``no``, always; a frame where the two disagree is
  malformed), else ``outcome_side``, else the deprecated fields: ``purchased_side`` (the same
  vocabulary as ``outcome_side``), then ``side`` with ``action`` (buy yes / sell no → bid,
  buy no / sell yes → ask). See ``kalshi-docs/getting_started/order_direction.md``.

Events that arrive once per market-data message (:class:`BookDelta`, :class:`Ticker`,
:class:`Trade`) are ``NamedTuple``\\ s built with ``tuple.__new__``: immutable and the cheapest
object to build (≈0.18 µs for the delta against ≈0.29 µs for a ``__slots__`` class with a
hand-written ``__init__`` and ≈1.6 µs for a frozen slots dataclass on the dev VM). The others
are frozen slots dataclasses; fills are :class:`kmm.types.Fill` itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, TypeAlias

import orjson

from kmm.errors import FixedPointError, WireError
from kmm.kalshi.constants import TERMINAL_WS_ERRORS
from kmm.types import (
    ONE_DOLLAR,
    BookSide,
    Fill,
    Money,
    Outcome,
    Price,
    Qty,
    parse_count,
    parse_money,
    parse_price,
)

__all__ = [
    "MAX_MONEY",
    "MAX_QTY",
    "MAX_TS_MS",
    "BookDelta",
    "BookSnapshot",
    "DeltaSink",
    "ErrorMsg",
    "Event",
    "MarketLifecycle",
    "MarketPosition",
    "Ok",
    "Subscribed",
    "Ticker",
    "Trade",
    "Unsubscribed",
    "UserOrder",
    "WireDecoder",
    "parse_levels",
    "parse_price_ranges",
]

Level: TypeAlias = tuple[Price, Qty]
PriceRange: TypeAlias = tuple[Price, Price, Price]
Payload: TypeAlias = dict[str, Any]
DeltaSink: TypeAlias = Callable[[int, int, str, bool, Price, Qty], None]
"""Receives a delta as ``(sid, seq, ticker, is_yes, price, delta)``; see ``decode_into``."""

_loads: Final = orjson.loads
_new_tuple: Final = tuple.__new__
_CACHE_LIMIT: Final = 50_000
_YES: Final = Outcome.YES
_NO: Final = Outcome.NO
_BID: Final = BookSide.BID
_ASK: Final = BookSide.ASK

_BOOK_SIDES: Final[dict[str, BookSide]] = {"bid": _BID, "ask": _ASK}
_OUTCOME_SIDES: Final[dict[str, BookSide]] = {"yes": _BID, "no": _ASK}
MAX_QTY: Final = 10**15
"""The largest count accepted, in 0.01 contract (10^13 contracts): beyond it, not a size."""
MAX_MONEY: Final = 10**21
"""The largest amount accepted either way, in $0.000001 ($10^15)."""
MAX_TS_MS: Final = 10**14
"""The latest timestamp accepted, in Unix milliseconds (about the year 5100)."""
_MAX_TS_S: Final = MAX_TS_MS // 1000
_SCALAR: Final = "scalar"

_LEGACY_SIDES: Final[dict[tuple[str, str], BookSide]] = {
    ("buy", "yes"): _BID,
    ("sell", "no"): _BID,
    ("buy", "no"): _ASK,
    ("sell", "yes"): _ASK,
}


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """The whole book of one market, as bids in each leg's own price, ascending (best last).

    Attributes:
        sid: Subscription id.
        seq: Sequence number within the subscription.
        ticker: Market ticker.
        yes: YES bids as ``(price, qty)`` in YES prices; empty when the side is empty.
        no: NO bids as ``(price, qty)`` in NO prices (a NO bid at n is a YES ask at 1 − n).
    """

    sid: int
    seq: int
    ticker: str
    yes: list[Level]
    no: list[Level]


class BookDelta(NamedTuple):
    """A signed change to the aggregate size at one level of one leg.

    ``price`` is in the leg's own price (NO levels in NO prices). ``client_order_id`` is set
    only when one of our own orders caused the change. ``ts_ms`` is optional on the wire.
    """

    sid: int
    seq: int
    ticker: str
    side: Outcome
    price: Price
    delta: Qty
    client_order_id: str | None
    ts_ms: int | None


class Ticker(NamedTuple):
    """Top of book, last trade and totals of one market (``ticker`` channel).

    ``price`` is the last traded YES price. Sizes and totals are counts (0.01 contract).
    """

    ticker: str
    price: Price
    yes_bid: Price
    yes_ask: Price
    yes_bid_qty: Qty
    yes_ask_qty: Qty
    last_trade_qty: Qty
    volume: Qty
    open_interest: Qty
    ts_ms: int


class Trade(NamedTuple):
    """One public trade. ``taker_book_side`` is the taker's YES-leg side (bid bought YES)."""

    trade_id: str
    ticker: str
    yes_price: Price
    qty: Qty
    taker_book_side: BookSide
    is_block_trade: bool
    ts_ms: int


@dataclass(frozen=True, slots=True)
class UserOrder:
    """The state of one of our orders after a create, fill, cancel or other update.

    ``side`` is the YES-leg side and ``price`` the YES price. ``ts_ms`` is the last update
    time, or the creation time when the update time is absent.
    """

    order_id: str
    client_order_id: str | None
    ticker: str
    status: str
    side: BookSide
    price: Price
    fill_count: Qty
    remaining_count: Qty
    initial_count: Qty
    ts_ms: int


@dataclass(frozen=True, slots=True)
class MarketPosition:
    """Our position in one market: ``position`` > 0 is long YES, < 0 long NO; money in $1e-6."""

    ticker: str
    position: Qty
    position_cost: Money
    realized_pnl: Money
    fees_paid: Money


@dataclass(frozen=True, slots=True)
class MarketLifecycle:
    """A lifecycle event of one market; the optional fields come with some event types only.

    Attributes:
        ticker: Market ticker.
        event_type: ``created``, ``activated``, ``deactivated``, ``close_date_updated``,
            ``determined``, ``settled``, ``price_level_structure_updated`` or
            ``metadata_updated``.
        close_ts: Scheduled close, Unix seconds (created, close_date_updated).
        result: The result (determined).
        is_deactivated: True when trading is paused (activated/deactivated).
        price_ranges: ``(start, end, step)`` price bands (created, price structure updates).
        settlement_value: The YES settlement value (determined).
        price_level_structure: The structure's name, for logs only; use ``price_ranges``.
    """

    ticker: str
    event_type: str
    close_ts: int | None = None
    result: str | None = None
    is_deactivated: bool | None = None
    price_ranges: tuple[PriceRange, ...] | None = None
    settlement_value: Price | None = None
    price_level_structure: str | None = None


@dataclass(frozen=True, slots=True)
class Subscribed:
    """A ``subscribe`` command succeeded: ``channel`` now streams under ``sid``."""

    id: int | None
    channel: str
    sid: int


@dataclass(frozen=True, slots=True)
class Ok:
    """A command succeeded.

    ``market_tickers`` is the full ticker list after an ``update_subscription`` (absent with
    ``skip_ticker_ack``); ``subscriptions`` is the ``(channel, sid)`` list answering
    ``list_subscriptions``.
    """

    id: int | None
    sid: int | None
    seq: int | None
    market_tickers: tuple[str, ...] | None
    subscriptions: tuple[tuple[str, int], ...] | None


@dataclass(frozen=True, slots=True)
class Unsubscribed:
    """A subscription ended."""

    id: int | None
    sid: int
    seq: int | None


@dataclass(frozen=True, slots=True)
class ErrorMsg:
    """A command failed; ``code`` is Kalshi's websocket error number (``WS_ERRORS``)."""

    id: int | None
    code: int
    msg: str
    market_ticker: str | None

    @property
    def terminal(self) -> bool:
        """True for channel errors after which the subscription must be made again."""
        return self.code in TERMINAL_WS_ERRORS


Event: TypeAlias = (
    BookSnapshot
    | BookDelta
    | Ticker
    | Trade
    | Fill
    | UserOrder
    | MarketPosition
    | MarketLifecycle
    | Subscribed
    | Ok
    | Unsubscribed
    | ErrorMsg
)
"""Everything :meth:`WireDecoder.decode` can return (besides ``None``)."""


# --------------------------------------------------------------------------- shared parsers


def parse_levels(pairs: Iterable[Sequence[str]], field: str) -> list[Level]:
    """Parses ``[["0.4200", "13.00"], ...]`` book levels into ``(Price, Qty)`` pairs.

    Used for websocket snapshots and REST ``orderbook_fp``. Order is kept as given.

    Args:
        pairs: The level array from the wire.
        field: The field name reported on error (e.g. ``"yes_dollars_fp"``).

    Returns:
        The levels as integer pairs.

    Raises:
        WireError: if ``pairs`` is not a list of ``[price, count]`` lists of exact decimal
            strings, a price is not strictly between $0 and $1, a count is negative or
            absurdly large, or a price appears twice (``msg_type`` is None; the decoder
            fills it in).
    """
    if not isinstance(pairs, list | tuple) or not all(
        isinstance(pair, list | tuple) and len(pair) == 2 for pair in pairs
    ):
        raise WireError(None, f"{field}: expected a list of [price, count] pairs", field=field)
    try:
        levels = [(_price(p, field), _count(q, field)) for p, q in pairs]
    except FixedPointError as e:
        raise WireError(None, str(e), field=field) from e
    if len({price for price, _ in levels}) != len(levels):
        raise WireError(None, f"{field}: a price appears twice", field=field)
    return levels


def parse_price_ranges(ranges: Iterable[Mapping[str, str]]) -> tuple[PriceRange, ...]:
    """Parses ``[{"start": "0.0000", "end": "1.0000", "step": "0.0100"}, ...]`` price bands.

    Args:
        ranges: The ``price_ranges`` array of a market (REST) or lifecycle message.

    Returns:
        ``(start, end, step)`` triples in Price units, in the order given. Bands are not
        validated here (the price grid does that).

    Raises:
        WireError: naming the band and key that is missing or malformed.
    """
    if not isinstance(ranges, list | tuple):
        raise WireError(None, "price_ranges: expected a list of bands", field="price_ranges")
    bands: list[PriceRange] = []
    for i, band in enumerate(ranges):
        field = f"price_ranges[{i}]"
        try:
            bands.append(
                (
                    parse_price(band["start"], f"{field}.start"),
                    parse_price(band["end"], f"{field}.end"),
                    parse_price(band["step"], f"{field}.step"),
                ),
            )
        except KeyError as e:
            raise WireError(None, f"{field}: missing field {e.args[0]!r}", field=field) from e
        except FixedPointError as e:
            raise WireError(None, str(e), field=field) from e
        except TypeError as e:
            raise WireError(
                None, f"{field}: expected an object with start, end, step", field=field
            ) from e
    return tuple(bands)


# --------------------------------------------------------------------------- small helpers


def _int(value: Any, field: str) -> int:
    if type(value) is not int:
        raise WireError(None, f"{field}: expected an integer, got {value!r}", field=field)
    return value


def _in_range(value: int, low: int, high: int, field: str, text: object) -> int:
    """``value`` if ``low <= value <= high``, else a WireError naming the field."""
    if not low <= value <= high:
        raise WireError(None, f"{field}: {text!r} is outside [{low}, {high}]", field=field)
    return value


def _price(text: Any, field: str) -> Price:
    """A price strictly between $0 and $1: an order's, a fill's, a trade's, a level's."""
    price = parse_price(text, field)
    if not 0 < price < ONE_DOLLAR:
        raise WireError(None, f"{field}: {text!r} is outside (0, 1)", field=field)
    return price


def _price_or_bound(text: Any, field: str) -> Price:
    """A price on ``[0, 1]``: a ticker's (0 or 1 for an empty side) or a settlement value."""
    return _in_range(parse_price(text, field), 0, ONE_DOLLAR, field, text)


def _count(text: Any, field: str, low: Qty = 0) -> Qty:
    """A count on ``[low, MAX_QTY]`` (sizes, volumes: never negative)."""
    return _in_range(parse_count(text, field), low, MAX_QTY, field, text)


def _signed_count(text: Any, field: str) -> Qty:
    """A signed count of at most ``MAX_QTY`` either way (deltas, positions)."""
    return _in_range(parse_count(text, field), -MAX_QTY, MAX_QTY, field, text)


def _money(text: Any, field: str, low: Money = -MAX_MONEY) -> Money:
    """An amount on ``[low, MAX_MONEY]``."""
    return _in_range(parse_money(text, field), low, MAX_MONEY, field, text)


def _timestamp(value: Any, field: str, high: int) -> int:
    """A non-negative integer time of at most ``high``."""
    return _in_range(_int(value, field), 0, high, field, value)


def _opt_int(value: Any, field: str) -> int | None:
    return None if value is None else _int(value, field)


def _str(value: Any, field: str) -> str:
    if type(value) is not str:
        raise WireError(None, f"{field}: expected a string, got {value!r}", field=field)
    return value


def _opt_str(value: Any, field: str) -> str | None:
    return None if value is None else _str(value, field)


def _bool(value: Any, field: str) -> bool:
    if type(value) is not bool:
        raise WireError(None, f"{field}: expected true or false, got {value!r}", field=field)
    return value


def _ts_ms(m: Payload) -> int:
    """``ts_ms``, or the deprecated ``ts`` in seconds when ``ts_ms`` is absent."""
    ts_ms = m.get("ts_ms")
    if ts_ms is None and type(m.get("ts")) is int:
        return _timestamp(m["ts"], "ts", MAX_TS_MS // 1000) * 1000
    if ts_ms is None:
        raise KeyError("ts_ms")
    return _timestamp(ts_ms, "ts_ms", MAX_TS_MS)


def _side_of(table: Mapping[str, BookSide], m: Payload, field: str) -> BookSide | None:
    """Looks ``m[field]`` up in ``table``; None when absent, WireError when unknown."""
    value = m.get(field)
    if value is None:
        return None
    side = table.get(value) if type(value) is str else None
    if side is None:
        raise WireError(None, f"{field}: unexpected value {value!r}", field=field)
    return side


def _canonical_side(m: Payload, book_key: str, outcome_key: str) -> BookSide | None:
    """The side from ``book_side``/``outcome_side`` (or the ``taker_*`` pair), if present."""
    book = _side_of(_BOOK_SIDES, m, book_key)
    outcome = _side_of(_OUTCOME_SIDES, m, outcome_key)
    if book is not None and outcome is not None and book is not outcome:
        raise WireError(
            None,
            f"{book_key} {m[book_key]!r} contradicts {outcome_key} {m[outcome_key]!r}",
            field=book_key,
        )
    return book if book is not None else outcome


def _action_side(m: Payload) -> BookSide | None:
    """The side from the deprecated ``action`` + ``side`` pair, if both are present."""
    action, leg = m.get("action"), m.get("side")
    if action is None or leg is None:
        return None
    side = _LEGACY_SIDES.get((action, leg)) if type(action) is type(leg) is str else None
    if side is None:
        raise WireError(None, f"action/side: unexpected pair {action!r}/{leg!r}", field="action")
    return side


def _fill_side(m: Payload) -> BookSide:
    side = (
        _canonical_side(m, "book_side", "outcome_side")
        or _side_of(_OUTCOME_SIDES, m, "purchased_side")
        or _action_side(m)
    )
    if side is None:
        raise WireError(
            None,
            "missing field 'book_side' (and every deprecated direction field)",
            field="book_side",
        )
    return side


def _order_side(m: Payload) -> BookSide:
    # The legacy user_order shape has side/is_yes but no action: side is the outcome side
    side = (
        _canonical_side(m, "book_side", "outcome_side")
        or _action_side(m)
        or _side_of(_OUTCOME_SIDES, m, "side")
    )
    if side is None and type(m.get("is_yes")) is bool:
        side = _BID if m["is_yes"] else _ASK
    if side is None:
        raise WireError(
            None,
            "missing field 'book_side' (and every deprecated direction field)",
            field="book_side",
        )
    return side


def _trade_side(m: Payload) -> BookSide:
    side = _canonical_side(m, "taker_book_side", "taker_outcome_side") or _side_of(
        _OUTCOME_SIDES, m, "taker_side"
    )
    if side is None:
        raise WireError(
            None, "missing field 'taker_book_side' (and 'taker_side')", field="taker_book_side"
        )
    return side


def _yes_to_no_levels(levels: list[Level]) -> list[Level]:
    """Converts NO levels given in YES prices to NO prices, keeping them ascending."""
    converted = [(ONE_DOLLAR - p, q) for p, q in reversed(levels)]
    # Ascending YES prices reverse into ascending NO prices; if Kalshi ever sends them in
    # the other order, the reversal above undid it, so undo the reversal
    if len(converted) > 1 and converted[0][0] > converted[-1][0]:
        converted.reverse()
    return converted


def _check_uncrossed(yes: list[Level], no: list[Level]) -> None:
    """Refuses a snapshot whose best YES bid reaches its best YES ask (1 − best NO bid).

    A Kalshi book holds only bids, and a YES bid at p and a NO bid at q with p + q ≥ $1
    would have matched: such a book cannot exist at the venue.
    """
    if yes and no:
        best_yes = max(price for price, _ in yes)
        best_no = max(price for price, _ in no)
        if best_yes + best_no >= ONE_DOLLAR:
            raise WireError(
                None,
                f"crossed book: best YES bid {best_yes} + best NO bid {best_no} >= {ONE_DOLLAR}",
                field="crossed",
            )


def _delta_envelope_error(sid: object, seq: object, ticker: object) -> WireError:
    if type(ticker) is not str:
        return WireError(
            None, f"market_ticker: expected a string, got {ticker!r}", field="market_ticker"
        )
    field = "sid" if type(sid) is not int else "seq"
    return WireError(None, f"sid/seq: expected integers, got {sid!r}/{seq!r}", field=field)


def _envelope_error(e: Exception) -> WireError:
    if isinstance(e, orjson.JSONDecodeError):
        return WireError(None, f"not valid JSON ({e})", field="json")
    if isinstance(e, KeyError):
        return WireError(None, "missing field 'type'", field="type")
    return WireError(None, "expected a JSON object with a string 'type'", field="type")


def _as_wire_error(msg_type: str, obj: Payload, e: Exception) -> WireError:
    """Translates what a handler raised into a WireError naming the type and the field."""
    if isinstance(e, WireError):
        return WireError(msg_type, e.reason, field=e.field)
    if isinstance(e, FixedPointError):
        return WireError(msg_type, str(e), field=e.field)
    if isinstance(e, KeyError):
        key = e.args[0] if e.args and type(e.args[0]) is str else None
        return WireError(msg_type, f"missing field {e.args[0]!r}", field=key)
    msg = obj.get("msg")
    if type(msg) is not dict and not (msg_type == "ok" and type(msg) is list):
        return WireError(msg_type, f"msg: expected an object, got {msg!r}", field="msg")
    return WireError(msg_type, f"unexpected shape ({type(e).__name__}: {e})")


# --------------------------------------------------------------------------- decoder


class WireDecoder:
    """Decodes websocket frames of one connection into events.

    Args:
        use_yes_price: The ``use_yes_price`` the orderbook subscriptions asked for. When
            true, NO-side book levels arrive in YES prices and are converted back.
        subaccount: Decode account messages of this subaccount only (0 = primary); ``None``
            decodes every subaccount's.

    Attributes:
        use_yes_price: As given.
        subaccount: As given.
        unknown_counts: How many frames of each unknown ``type`` were skipped.
        foreign_counts: How many account messages of each ``type`` were skipped because
            they belong to another subaccount.
    """

    __slots__ = (
        "_counts",
        "_handlers",
        "_no_prices",
        "_yes_prices",
        "foreign_counts",
        "subaccount",
        "unknown_counts",
        "use_yes_price",
    )

    def __init__(self, use_yes_price: bool, subaccount: int | None = None) -> None:
        self.use_yes_price = use_yes_price
        self.subaccount = subaccount
        self.unknown_counts: dict[str, int] = {}
        self.foreign_counts: dict[str, int] = {}
        # Wire text -> checked value, per decoder, so the delta path is a dict lookup rather
        # than a call; NO prices are stored already converted to NO-leg prices
        self._yes_prices: dict[str, Price] = {}
        self._no_prices: dict[str, Price] = {}
        self._counts: dict[str, Qty] = {}
        self._handlers: dict[str, Callable[[Payload], Event | None]] = {
            "orderbook_delta": self._orderbook_delta,
            "orderbook_snapshot": self._orderbook_snapshot,
            "ticker": self._ticker,
            "trade": self._trade,
            "fill": self._fill,
            "user_order": self._user_order,
            "market_position": self._market_position,
            "market_lifecycle_v2": self._market_lifecycle,
            "subscribed": self._subscribed,
            "ok": self._ok,
            "unsubscribed": self._unsubscribed,
            "error": self._error,
        }

    def decode(self, frame: bytes | bytearray | memoryview | str) -> Event | None:
        """Decodes one frame.

        Args:
            frame: The frame's payload as received.

        Returns:
            The event, or None for a message type kmm does not handle (it is counted in
            :attr:`unknown_counts`).

        Raises:
            WireError: if the frame is not JSON or does not have the shape its type promises;
                the message names the type and the field.
        """
        try:
            obj = _loads(frame)
            msg_type = obj["type"]
        except (ValueError, TypeError, KeyError) as e:
            raise _envelope_error(e) from e
        return self._dispatch(obj, msg_type)

    def _dispatch(self, obj: Payload, msg_type: Any) -> Event | None:
        """Runs the handler of ``msg_type``, or counts the type as unknown."""
        try:
            handler = self._handlers.get(msg_type)
        except TypeError as e:
            raise _envelope_error(e) from e
        if handler is None:
            self._count_unknown(msg_type)
            return None
        try:
            return handler(obj)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            raise _as_wire_error(msg_type, obj, e) from e

    def _foreign(self, m: Payload, key: str, msg_type: str) -> bool:
        """Whether account message ``m`` is another subaccount's (and so counted, skipped)."""
        wanted = self.subaccount
        if wanted is None:
            return False
        found = m.get(key)
        if found is None:
            found = 0
        elif type(found) is not int:
            raise WireError(msg_type, f"{key}: expected an integer, got {found!r}")
        if found == wanted:
            return False
        self.foreign_counts[msg_type] = self.foreign_counts.get(msg_type, 0) + 1
        return True

    def _count_unknown(self, msg_type: object) -> None:
        if type(msg_type) is not str:
            raise WireError(None, f"type: expected a string, got {msg_type!r}", field="type")
        self.unknown_counts[msg_type] = self.unknown_counts.get(msg_type, 0) + 1

    def decode_into(
        self, frame: bytes | bytearray | memoryview | str, on_delta: DeltaSink
    ) -> Event | None:
        """Decodes one frame, handing an ``orderbook_delta`` to ``on_delta`` without an event.

        The hot path: a delta's fields go straight into ``on_delta(sid, seq, ticker, is_yes,
        price, delta)`` as positional arguments, so no event object is built for the most
        frequent message. ``price`` is in the side's own leg, as in :class:`BookDelta`. Every
        other message is decoded as by :meth:`decode`.

        Returns:
            ``None`` for a delta (already handed over) and for an unknown type; otherwise
            the event.

        Raises:
            WireError: as :meth:`decode`. An exception raised by ``on_delta`` propagates
                unchanged.
        """
        try:
            obj = _loads(frame)
            msg_type = obj["type"]
        except (ValueError, TypeError, KeyError) as e:
            raise _envelope_error(e) from e
        if msg_type != "orderbook_delta":
            return self._dispatch(obj, msg_type)
        try:
            m = obj["msg"]
            is_yes, price, delta = self._delta_values(m)
            sid = obj["sid"]
            seq = obj["seq"]
            ticker = m["market_ticker"]
            if type(sid) is not int or type(seq) is not int or type(ticker) is not str:
                raise _delta_envelope_error(sid, seq, ticker)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            raise _as_wire_error(msg_type, obj, e) from e
        on_delta(sid, seq, ticker, is_yes, price, delta)
        return None

    def _delta_values(self, m: Payload) -> tuple[bool, Price, Qty]:
        """A delta's side, price (own leg) and signed size, through the caches."""
        text = m["price_dollars"]
        side = m["side"]
        if side == "yes":
            is_yes = True
            price = self._yes_prices.get(text)
        elif side == "no":
            is_yes = False
            price = self._no_prices.get(text)
        else:
            raise WireError(None, f"side: expected 'yes' or 'no', got {side!r}", field="side")
        if price is None:
            price = self._learn_price(text, _YES if is_yes else _NO)
        delta = self._counts.get(m["delta_fp"])
        if delta is None:
            delta = self._learn_count(m["delta_fp"])
        return is_yes, price, delta

    def _orderbook_delta(self, obj: Payload) -> BookDelta:
        """``{"type":"orderbook_delta","sid":2,"seq":3,"msg":{"market_ticker":"FED-23DEC-T3.00",
        "price_dollars":"0.960","delta_fp":"-54.00","side":"yes","ts_ms":1669149841000,
        "client_order_id":"only-on-our-own"}}``
        """
        m = obj["msg"]
        is_yes, price, delta = self._delta_values(m)
        sid = obj["sid"]
        seq = obj["seq"]
        ticker = m["market_ticker"]
        if type(sid) is not int or type(seq) is not int or type(ticker) is not str:
            raise _delta_envelope_error(sid, seq, ticker)
        ts_ms = m.get("ts_ms")
        return _new_tuple(
            BookDelta,
            (
                sid,
                seq,
                ticker,
                _YES if is_yes else _NO,
                price,
                delta,
                _opt_str(m.get("client_order_id"), "client_order_id"),
                None if ts_ms is None else _timestamp(ts_ms, "ts_ms", MAX_TS_MS),
            ),
        )

    def _learn_price(self, text: str, side: Outcome) -> Price:
        """Parses and range-checks a delta price missing from the cache, then caches it."""
        price = _price(text, "price_dollars")
        cache = self._yes_prices if side is _YES else self._no_prices
        if side is _NO and self.use_yes_price:
            price = ONE_DOLLAR - price
        if len(cache) >= _CACHE_LIMIT:
            cache.clear()
        cache[text] = price
        return price

    def _learn_count(self, text: str) -> Qty:
        """Parses a delta size missing from the cache, then caches it."""
        delta = _signed_count(text, "delta_fp")
        if len(self._counts) >= _CACHE_LIMIT:
            self._counts.clear()
        self._counts[text] = delta
        return delta

    def _orderbook_snapshot(self, obj: Payload) -> BookSnapshot:
        """``{"type":"orderbook_snapshot","sid":2,"seq":2,"msg":{"market_ticker":"FED-23DEC-T3.00",
        "yes_dollars_fp":[["0.0800","300.00"],["0.2200","333.00"]],
        "no_dollars_fp":[["0.5400","20.00"],["0.5600","146.00"]]}}`` (either side may be absent)
        """
        m = obj["msg"]
        yes_pairs = m.get("yes_dollars_fp")
        no_pairs = m.get("no_dollars_fp")
        yes = parse_levels(yes_pairs, "yes_dollars_fp") if yes_pairs is not None else []
        no = parse_levels(no_pairs, "no_dollars_fp") if no_pairs is not None else []
        if self.use_yes_price:
            no = _yes_to_no_levels(no)
        _check_uncrossed(yes, no)
        return BookSnapshot(
            _int(obj["sid"], "sid"),
            _int(obj["seq"], "seq"),
            _str(m["market_ticker"], "market_ticker"),
            yes,
            no,
        )

    def _ticker(self, obj: Payload) -> Ticker:
        """``{"type":"ticker","sid":11,"msg":{"market_ticker":"FED-23DEC-T3.00",
        "price_dollars":"0.480","yes_bid_dollars":"0.450","yes_ask_dollars":"0.530",
        "yes_bid_size_fp":"300.00","yes_ask_size_fp":"150.00","last_trade_size_fp":"25.00",
        "volume_fp":"33896.00","open_interest_fp":"20422.00","ts_ms":1669149841000}}``
        """
        m = obj["msg"]
        return _new_tuple(
            Ticker,
            (
                _str(m["market_ticker"], "market_ticker"),
                _price_or_bound(m["price_dollars"], "price_dollars"),
                _price_or_bound(m["yes_bid_dollars"], "yes_bid_dollars"),
                _price_or_bound(m["yes_ask_dollars"], "yes_ask_dollars"),
                _count(m["yes_bid_size_fp"], "yes_bid_size_fp"),
                _count(m["yes_ask_size_fp"], "yes_ask_size_fp"),
                _count(m["last_trade_size_fp"], "last_trade_size_fp"),
                _count(m["volume_fp"], "volume_fp"),
                _count(m["open_interest_fp"], "open_interest_fp"),
                _ts_ms(m),
            ),
        )

    def _trade(self, obj: Payload) -> Trade:
        """``{"type":"trade","sid":11,"msg":{"trade_id":"d91bc706-…","market_ticker":
        "HIGHNY-22DEC23-B53.5","yes_price_dollars":"0.3600","no_price_dollars":"0.6400",
        "count_fp":"136.00","taker_outcome_side":"no","taker_book_side":"ask",
        "taker_side":"no","is_block_trade":false,"ts_ms":1669149841000}}``
        """
        m = obj["msg"]
        return _new_tuple(
            Trade,
            (
                _str(m["trade_id"], "trade_id"),
                _str(m["market_ticker"], "market_ticker"),
                _price(m["yes_price_dollars"], "yes_price_dollars"),
                _count(m["count_fp"], "count_fp", low=1),
                _trade_side(m),
                m.get("is_block_trade") is True,
                _ts_ms(m),
            ),
        )

    def _fill(self, obj: Payload) -> Fill | None:
        """``{"type":"fill","sid":13,"msg":{"trade_id":"d91bc706-…","order_id":"ee587a1c-…",
        "market_ticker":"HIGHNY-22DEC23-B53.5","is_taker":false,"outcome_side":"no",
        "book_side":"ask","side":"yes","action":"sell","purchased_side":"no",
        "yes_price_dollars":"0.5200","count_fp":"1.00","fee_cost":"0.017500",
        "post_position_fp":"-4.00","client_order_id":"kmm-1","ts_ms":1671899397123}}``
        """
        m = obj["msg"]
        if self._foreign(m, "subaccount", "fill"):
            return None
        fee = m.get("fee_cost")
        post = m.get("post_position_fp")
        return Fill(
            trade_id=_str(m["trade_id"], "trade_id"),
            order_id=_str(m["order_id"], "order_id"),
            ticker=_str(m["market_ticker"], "market_ticker"),
            side=_fill_side(m),
            price=_price(m["yes_price_dollars"], "yes_price_dollars"),
            qty=_count(m["count_fp"], "count_fp", low=1),
            fee=_money(fee, "fee_cost", low=0) if fee is not None else 0,
            is_taker=_bool(m["is_taker"], "is_taker"),
            ts_ms=_ts_ms(m),
            client_order_id=_opt_str(m.get("client_order_id"), "client_order_id"),
            post_position=_signed_count(post, "post_position_fp") if post is not None else None,
        )

    def _user_order(self, obj: Payload) -> UserOrder | None:
        """``{"type":"user_order","sid":22,"msg":{"order_id":"ee587a1c-…","ticker":
        "FED-23DEC-T3.00","status":"resting","outcome_side":"no","book_side":"ask",
        "yes_price_dollars":"0.6500","fill_count_fp":"2.00","remaining_count_fp":"8.00",
        "initial_count_fp":"10.00","client_order_id":"kmm-2","created_ts_ms":1787220000000,
        "last_updated_ts_ms":1787220001250}}``
        """
        m = obj["msg"]
        if self._foreign(m, "subaccount_number", "user_order"):
            return None
        ts = m.get("last_updated_ts_ms")
        return UserOrder(
            order_id=_str(m["order_id"], "order_id"),
            client_order_id=_opt_str(m.get("client_order_id"), "client_order_id"),
            ticker=_str(m["ticker"], "ticker"),
            status=_str(m["status"], "status"),
            side=_order_side(m),
            price=_price(m["yes_price_dollars"], "yes_price_dollars"),
            fill_count=_count(m["fill_count_fp"], "fill_count_fp"),
            remaining_count=_count(m["remaining_count_fp"], "remaining_count_fp"),
            initial_count=_count(m["initial_count_fp"], "initial_count_fp"),
            ts_ms=_timestamp(
                ts if ts is not None else m["created_ts_ms"], "last_updated_ts_ms", MAX_TS_MS
            ),
        )

    def _market_position(self, obj: Payload) -> MarketPosition | None:
        """``{"type":"market_position","sid":14,"msg":{"market_ticker":"FED-23DEC-T3.00",
        "position_fp":"100.00","position_cost_dollars":"50.0000","realized_pnl_dollars":
        "10.0000","fees_paid_dollars":"1.0000","volume_fp":"15.00"}}``
        """
        m = obj["msg"]
        if self._foreign(m, "subaccount", "market_position"):
            return None
        return MarketPosition(
            ticker=_str(m["market_ticker"], "market_ticker"),
            position=_signed_count(m["position_fp"], "position_fp"),
            position_cost=_money(m["position_cost_dollars"], "position_cost_dollars"),
            realized_pnl=_money(m["realized_pnl_dollars"], "realized_pnl_dollars"),
            fees_paid=_money(m["fees_paid_dollars"], "fees_paid_dollars"),
        )

    def _market_lifecycle(self, obj: Payload) -> MarketLifecycle:
        """``{"type":"market_lifecycle_v2","sid":13,"msg":{"market_ticker":"INXD-23SEP14-B4487",
        "event_type":"price_level_structure_updated","price_level_structure":"deci_cent",
        "price_ranges":[{"start":"0.0000","end":"1.0000","step":"0.0010"}]}}``
        """
        m = obj["msg"]
        ranges = m.get("price_ranges")
        settlement = m.get("settlement_value")
        deactivated = m.get("is_deactivated")
        close_ts = m.get("close_ts")
        result = _opt_str(m.get("result"), "result")
        if result == _SCALAR and settlement is None:
            raise WireError(
                None, "a scalar result needs a settlement_value", field="settlement_value"
            )
        return MarketLifecycle(
            ticker=_str(m["market_ticker"], "market_ticker"),
            event_type=_str(m["event_type"], "event_type"),
            close_ts=None if close_ts is None else _timestamp(close_ts, "close_ts", _MAX_TS_S),
            result=result,
            is_deactivated=(
                _bool(deactivated, "is_deactivated") if deactivated is not None else None
            ),
            price_ranges=parse_price_ranges(ranges) if ranges is not None else None,
            settlement_value=(
                _price_or_bound(settlement, "settlement_value") if settlement is not None else None
            ),
            price_level_structure=_opt_str(m.get("price_level_structure"), "price_level_structure"),
        )

    def _subscribed(self, obj: Payload) -> Subscribed:
        """``{"id":1,"type":"subscribed","msg":{"channel":"orderbook_delta","sid":1}}``"""
        m = obj["msg"]
        return Subscribed(
            _opt_int(obj.get("id"), "id"),
            _str(m["channel"], "channel"),
            _int(m["sid"], "sid"),
        )

    def _ok(self, obj: Payload) -> Ok:
        """``{"id":123,"sid":456,"seq":222,"type":"ok","msg":{"market_tickers":["M-1","M-2"]}}``
        or, answering ``list_subscriptions``,
        ``{"id":3,"type":"ok","msg":[{"channel":"orderbook_delta","sid":1}]}``
        """
        m = obj.get("msg")
        tickers: tuple[str, ...] | None = None
        subscriptions: tuple[tuple[str, int], ...] | None = None
        if type(m) is list:
            subscriptions = tuple((_str(s["channel"], "channel"), _int(s["sid"], "sid")) for s in m)
        elif m is not None and m.get("market_tickers") is not None:
            listed = m["market_tickers"]
            if type(listed) is not list:
                raise WireError(None, "market_tickers: expected a list", field="market_tickers")
            tickers = tuple(_str(t, "market_tickers") for t in listed)
        return Ok(
            _opt_int(obj.get("id"), "id"),
            _opt_int(obj.get("sid"), "sid"),
            _opt_int(obj.get("seq"), "seq"),
            tickers,
            subscriptions,
        )

    def _unsubscribed(self, obj: Payload) -> Unsubscribed:
        """``{"id":102,"sid":2,"seq":7,"type":"unsubscribed"}``"""
        return Unsubscribed(
            _opt_int(obj.get("id"), "id"),
            _int(obj["sid"], "sid"),
            _opt_int(obj.get("seq"), "seq"),
        )

    def _error(self, obj: Payload) -> ErrorMsg:
        """``{"id":127,"type":"error","msg":{"code":16,"msg":"Market not found",
        "market_ticker":"INVALID-MARKET"}}``
        """
        m = obj["msg"]
        return ErrorMsg(
            _opt_int(obj.get("id"), "id"),
            _int(m["code"], "code"),
            _str(m["msg"], "msg"),
            _opt_str(m.get("market_ticker"), "market_ticker"),
        )
