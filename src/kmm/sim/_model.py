"""The matching engine's public data types (Contract 1); import them from ``kmm.sim.engine``.

The classes made once per order or per fill (requests, fills, events, results) are
``slots`` dataclasses that are *not* frozen: a frozen dataclass sets each field through
``object.__setattr__`` and measured 2.2 µs to construct against 0.53 µs unfrozen, which on
the match path (ten such objects per fill) was most of the engine's time. Those whose fields
are all hashable are hashable by value (``unsafe_hash``) as frozen ones would be; treat them
all as immutable.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction

from kmm.errors import VenueError
from kmm.types import BookSide, Money, Outcome, Price, Qty

__all__ = [
    "BookChange",
    "CreateResult",
    "EngineEvent",
    "EventDef",
    "FillEvent",
    "MarketDef",
    "MarketLifecycle",
    "MarketStatus",
    "OrderGroup",
    "OrderGroupUpdate",
    "OrderRequest",
    "OrderStatus",
    "OrderUpdate",
    "Position",
    "PositionUpdate",
    "Rejection",
    "SelfTradePrevention",
    "SeriesDef",
    "Settlement",
    "SimFill",
    "SimOrder",
    "SubaccountTransfer",
    "TimeInForce",
    "TradePrint",
]


class TimeInForce(StrEnum):
    """Kalshi's ``time_in_force`` values."""

    GTC = "good_till_canceled"
    IOC = "immediate_or_cancel"
    FOK = "fill_or_kill"


class SelfTradePrevention(StrEnum):
    """Kalshi's ``self_trade_prevention_type`` values."""

    TAKER_AT_CROSS = "taker_at_cross"
    MAKER = "maker"


class OrderStatus(StrEnum):
    """Kalshi's order ``status`` values."""

    RESTING = "resting"
    CANCELED = "canceled"
    EXECUTED = "executed"


class MarketStatus(StrEnum):
    """Kalshi's ``Market.status`` values."""

    INITIALIZED = "initialized"
    ACTIVE = "active"
    INACTIVE = "inactive"
    CLOSED = "closed"
    DETERMINED = "determined"
    FINALIZED = "finalized"


@dataclass(frozen=True, slots=True)
class SeriesDef:
    """A series: its fee type and multiplier apply to every market in it."""

    ticker: str
    title: str
    fee_type: str
    fee_multiplier: Fraction
    category: str = "Economics"


@dataclass(frozen=True, slots=True)
class EventDef:
    """An event, grouping markets of one series."""

    event_ticker: str
    series_ticker: str
    title: str
    sub_title: str = ""


@dataclass(slots=True)
class MarketDef:
    """A market; the engine updates ``status``, ``result``, ``close_ns`` and ``settlement_ns``.

    Attributes:
        market_type: ``binary`` or ``scalar`` (Kalshi's ``Market.market_type``).
        mve_collection_ticker: The multivariate collection of a combo market, else ``None``.
        mve_legs: A combo market's legs, ``(event_ticker, market_ticker, side)``.
        prior_volume: Contracts traded before the exchange started (added to ``volume_fp``).
        prior_volume_24h: Of those, in the day before it started (added to ``volume_24h_fp``).
        prior_open_interest: Open interest held by traders outside the exchange's accounts.
    """

    ticker: str
    event_ticker: str
    title: str
    yes_sub_title: str
    price_ranges: tuple[tuple[Price, Price, Price], ...]
    price_level_structure: str
    open_ns: int
    close_ns: int
    status: MarketStatus = MarketStatus.ACTIVE
    result: str = ""
    settlement_ns: int | None = None
    market_type: str = "binary"
    mve_collection_ticker: str | None = None
    mve_legs: tuple[tuple[str, str, str], ...] = ()
    prior_volume: Qty = 0
    prior_volume_24h: Qty = 0
    prior_open_interest: Qty = 0


class Rejection(VenueError):
    """An engine operation the venue refuses, with Kalshi's HTTP status and error code.

    Attributes:
        status: The HTTP status Kalshi answers with (400, 404, 409 ...).
        code: Kalshi's error code (``invalid_order``, ``market_closed`` ...).
        message: Kalshi's message, naming what was wrong.
        details: Kalshi's ``details`` (e.g. ``"post only cross"``), or ``None``.
    """

    def __init__(self, status: int, code: str, message: str, details: str | None = None) -> None:
        super().__init__(status, code, message)
        self.details = details


@dataclass(slots=True, unsafe_hash=True)
class OrderRequest:
    """A V2 create-order request, in engine units (YES price, 0.01-contract count)."""

    ticker: str
    book_side: BookSide
    price: Price
    count: Qty
    time_in_force: TimeInForce = TimeInForce.GTC
    self_trade_prevention: SelfTradePrevention = SelfTradePrevention.TAKER_AT_CROSS
    client_order_id: str | None = None
    post_only: bool = False
    reduce_only: bool = False
    cancel_order_on_pause: bool = False
    order_group_id: str | None = None
    expiration_s: int | None = None
    subaccount: int = 0


@dataclass(slots=True)
class SimOrder:
    """The engine's live order record (also what REST and WS serialize).

    ``book_side`` BID buys YES (``outcome_side`` yes); ASK sells YES, i.e. buys NO.
    ``price`` is always the YES price. ``subaccount`` is the user's subaccount that owns the
    order (0 = primary, 1–63).
    """

    order_id: str
    user_id: str
    client_order_id: str | None
    ticker: str
    book_side: BookSide
    price: Price
    initial: Qty
    filled: Qty
    remaining: Qty
    status: OrderStatus
    time_in_force: TimeInForce
    self_trade_prevention: SelfTradePrevention
    post_only: bool
    reduce_only: bool
    cancel_order_on_pause: bool
    order_group_id: str | None
    expiration_s: int | None
    created_ns: int
    updated_ns: int
    taker_fill_cost: Money
    maker_fill_cost: Money
    taker_fees: Money
    maker_fees: Money
    last_update_reason: str | None = None
    subaccount: int = 0


@dataclass(slots=True, unsafe_hash=True)
class SimFill:
    """One side of one match."""

    trade_id: str
    order_id: str
    user_id: str
    client_order_id: str | None
    ticker: str
    book_side: BookSide
    yes_price: Price
    count: Qty
    is_taker: bool
    fee: Money
    post_position: Qty
    ts_ns: int
    subaccount: int = 0


@dataclass(slots=True)
class Position:
    """A user's position in one market (YES positive, NO negative)."""

    position: Qty
    market_exposure: Money
    realized_pnl: Money
    fees_paid: Money
    total_traded: Money
    last_updated_ns: int


@dataclass(slots=True)
class CreateResult:
    """What a create (or a crossing amend) did: the order and its own taker fills."""

    order: SimOrder
    fills: tuple[SimFill, ...]
    ts_ns: int


@dataclass(frozen=True, slots=True)
class Settlement:
    """One ``/portfolio/settlements`` row."""

    ticker: str
    event_ticker: str
    market_result: str
    yes_count: Qty
    yes_total_cost: Money
    no_count: Qty
    no_total_cost: Money
    revenue: Money
    value: Price
    fee_cost: Money
    settled_ns: int


@dataclass(frozen=True, slots=True)
class SubaccountTransfer:
    """One cash transfer between two subaccounts of a user (``amount`` in money units)."""

    transfer_id: str
    client_transfer_id: str
    from_subaccount: int
    to_subaccount: int
    amount: Money
    created_ns: int


@dataclass(frozen=True, slots=True)
class OrderGroup:
    """A snapshot of one order group."""

    id: str
    contracts_limit: Qty
    is_auto_cancel_enabled: bool
    order_ids: tuple[str, ...]


@dataclass(slots=True, unsafe_hash=True)
class BookChange:
    """One level change: ``outcome`` YES at YES price, NO at NO price."""

    ticker: str
    outcome: Outcome
    price: Price
    delta: Qty
    user_id: str | None
    client_order_id: str | None
    ts_ns: int
    subaccount: int | None = None


@dataclass(slots=True, unsafe_hash=True)
class TradePrint:
    """One public trade."""

    trade_id: str
    ticker: str
    yes_price: Price
    count: Qty
    taker_book_side: BookSide
    ts_ns: int


@dataclass(slots=True, unsafe_hash=True)
class FillEvent:
    """One side of one match, for its owner."""

    fill: SimFill

    @property
    def ts_ns(self) -> int:
        """The fill's time."""
        return self.fill.ts_ns


@dataclass(slots=True)
class OrderUpdate:
    """A snapshot of an order after it changed."""

    order: SimOrder
    ts_ns: int


@dataclass(slots=True)
class PositionUpdate:
    """A snapshot of a position after it changed (in the user's ``subaccount``)."""

    user_id: str
    ticker: str
    position: Position
    ts_ns: int
    subaccount: int = 0


@dataclass(frozen=True, slots=True)
class MarketLifecycle:
    """A ``market_lifecycle_v2`` event."""

    ticker: str
    event_type: str
    ts_ns: int
    close_ns: int | None = None
    result: str | None = None
    is_deactivated: bool | None = None


@dataclass(frozen=True, slots=True)
class OrderGroupUpdate:
    """An order-group event.

    ``event_type``: ``created``, ``triggered``, ``reset``, ``deleted`` or ``limit_updated``.
    """

    user_id: str
    group_id: str
    event_type: str
    contracts_limit: Qty
    ts_ns: int


EngineEvent = (
    BookChange
    | TradePrint
    | FillEvent
    | OrderUpdate
    | PositionUpdate
    | MarketLifecycle
    | OrderGroupUpdate
)
