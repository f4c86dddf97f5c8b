"""Pre-trade limits on worst-case exposure: every order is approved, clipped or rejected.

Theory of operation
-------------------
**Worst-case exposure.** In a market with signed position ``p`` (YES +, NO −) and orders that
may still fill for ``b`` contracts on the bid and ``a`` on the ask (resting, in flight, being
amended at the larger size, or unknown: :meth:`~kmm.execution.orders.OrderTracker.open_exposure`),
the position reaches ``p + b`` if every bid fills and ``p − a`` if every ask fills. The market's
worst case is ``w = max(p + b, a − p)``, which is at least ``|p|``; the global worst case ``W`` is
``Σ w`` over markets (each market can fill in its own worst direction, so the worst of the sum
is the sum of the worsts). Caps are checked against these, so they hold while cancels and
amends are still in flight.

**Room.** For an order of ``q`` on one side, let ``s`` be the position signed for that side
(``p`` for a bid, ``−p`` for an ask) and ``o`` the side's other open orders (its exposure less
the order being amended, if any). The order may have at most:

======================  =============================================================
limit                   room
======================  =============================================================
``max_order_size``      ``max_order_qty``
``max_order_notional``  ``max_order_notional // cost``: ``cost`` is what one contract
                        costs, the price for a bid and ``1 − price`` for an ask (a YES
                        ask is a NO bid at ``1 − price``)
``max_position``        ``max(max_position, s + o + r) − s − o``
``max_total_position``  ``max(max_total_position − (W − w), w) − s − o``
``reduce_only``         ``−s − o`` (the side must reduce the position)
======================  =============================================================

``max_position`` is the market's own cap where it has one below the global cap
(:attr:`RiskContext.market_caps`, e.g. discovery's budget). ``r`` is the size being amended
(0 for a new order). The ``max(…)`` forms mean that an order
never takes a worst case *beyond* a cap, and never makes worse one that is already beyond it
(a cap lowered at restart, orders adopted at start-up), while still letting an amend shrink
an order there. The smallest room binds: at least ``q`` approves, less is clipped (rounded
down to ``lot_qty``), and a room that clips to 0 rejects. Some refusals do not depend on size:
a size or a price out of range, the kill switch not running, the exchange paused, the market
blocked, and, for new orders, ``max_open_orders`` and ``max_unknown_orders`` reached.

**Dollar exposure.** Next to the contract caps, optional caps hold money at risk: what the
market's contracts cost us and would lose if it settled against us. A market's YES side risks
``y = c⁺ + Σ bid price × size`` (``c⁺`` the cost of a long position's open lots) and its NO
side ``n = c⁻ + Σ (1 − ask price) × size`` (``c⁻`` what a short's NO contracts cost); its
dollar worst case is ``d = max(y, n)``. ``max_market_exposure`` caps ``d``;
``max_event_exposure``, ``max_category_exposure`` and ``max_total_exposure`` cap ``Σ d`` over
the markets of one event, one category (of the event's series) and all markets; markets with
no known event or category are capped only by the others. ``max_resting_value`` caps what
every open order would cost, ``Σ (bid costs + ask costs)``. For an order of unit cost ``k``
whose side already risks ``v`` (less the order amended, counted at the new price), a group of
sum ``S`` leaves room ``(max(cap − (S − d), d) − v) // k``: like the contract caps, it never
takes a group beyond its cap and never blocks an amend from keeping its size there. An order
that reduces a position is checked on its own side, which holds only orders' cost, so it is
clipped only if those orders alone would cost more than the cap.

**Reservation.** :func:`check_order` adds what it approves to the :class:`ExposureBook` at
once (a new order: its size and one open order; an amend: its increase), so orders checked in
a burst before the book is refreshed cannot pass a cap together. The executor refreshes a
market from the portfolio and the order tracker (:meth:`ExposureBook.refresh`) after it learns
of a change there. Between refreshes the book errs on the safe side: a fill moves exposure
from the orders to the position (``p + b`` unchanged on the filled side, the other side's
worst case falls), and cancels, rejects and settlement only lower it. Only an increase nobody
checked (orders adopted at start-up, a position taken outside kmm) must be refreshed before it
counts: :meth:`ExposureBook.refresh_all` after every reconciliation.

The module is pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, KeysView
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Final, NamedTuple, Protocol

from kmm.execution.orders import OrderState
from kmm.risk._text import contracts, usd
from kmm.types import (
    ONE_DOLLAR,
    QTY_SCALE,
    BookSide,
    Money,
    OrderIntent,
    Price,
    Qty,
    format_price,
)

if TYPE_CHECKING:
    from kmm.config import RiskConfig, StrategyConfig
    from kmm.risk.killswitch import KillSwitch

__all__ = [
    "Decision",
    "ExposureBook",
    "Limit",
    "MarketExposure",
    "ModeChange",
    "OrderSource",
    "PositionSource",
    "QuoteMode",
    "RiskContext",
    "RiskLimits",
    "Verdict",
    "check_order",
]

_NS_PER_S: Final = 1_000_000_000
_BID = BookSide.BID
_UNKNOWN = OrderState.UNKNOWN


class Limit(StrEnum):
    """The limit that clipped or rejected an order."""

    SIZE = "size"
    PRICE = "price"
    HALTED = "halted"
    EXCHANGE_PAUSED = "exchange_paused"
    MARKET_BLOCKED = "market_blocked"
    MAX_OPEN_ORDERS = "max_open_orders"
    MAX_UNKNOWN_ORDERS = "max_unknown_orders"
    MAX_ORDER_SIZE = "max_order_size"
    MAX_ORDER_NOTIONAL = "max_order_notional"
    MAX_POSITION = "max_position"
    MAX_TOTAL_POSITION = "max_total_position"
    MAX_MARKET_EXPOSURE = "max_market_exposure"
    MAX_EVENT_EXPOSURE = "max_event_exposure"
    MAX_CATEGORY_EXPOSURE = "max_category_exposure"
    MAX_TOTAL_EXPOSURE = "max_total_exposure"
    MAX_RESTING_VALUE = "max_resting_value"
    REDUCE_ONLY = "reduce_only"


class Decision(StrEnum):
    """What :func:`check_order` decided."""

    APPROVE = "approve"
    CLIP = "clip"
    REJECT = "reject"


_APPROVE = Decision.APPROVE
_REJECT = Decision.REJECT
_MAX_ORDER_SIZE = Limit.MAX_ORDER_SIZE
_MAX_ORDER_NOTIONAL = Limit.MAX_ORDER_NOTIONAL
_MAX_POSITION = Limit.MAX_POSITION
_MAX_TOTAL_POSITION = Limit.MAX_TOTAL_POSITION
_REDUCE_ONLY = Limit.REDUCE_ONLY


class Verdict(NamedTuple):
    """The answer of a pre-trade check.

    Attributes:
        decision: Approve, clip or reject.
        qty: The size that may be sent: the order's, the clipped size, or 0.
        limit: The limit that clipped or rejected the order (``None`` when approved).
        detail: The limit and its numbers (empty when approved).
        intent: The order that was checked.
        replaces: For an amend, the size it replaces; ``None`` for a new order.
    """

    decision: Decision
    qty: Qty
    limit: Limit | None
    detail: str
    intent: OrderIntent
    replaces: Qty | None = None

    @property
    def allowed(self) -> bool:
        """True unless rejected: ``qty`` may be sent."""
        return self.decision is not Decision.REJECT

    @property
    def reason(self) -> str:
        """The log line: the order, the decision, the limit and the numbers.

        For example ``KXA-1 bid 12.00 @ 0.4500 clipped to 8.00: max_position 50.00,
        position 38.00, open bids 4.00``. Built when read, so an approval formats nothing.
        """
        intent = self.intent
        price = format_price(intent.price)
        text = f"{intent.ticker} {intent.side} {contracts(intent.qty)} @ {price}"
        if self.replaces is not None:
            text += f" (amending {contracts(self.replaces)})"
        if self.decision is Decision.APPROVE:
            return f"{text} approved"
        if self.decision is Decision.CLIP:
            return f"{text} clipped to {contracts(self.qty)}: {self.detail}"
        return f"{text} rejected: {self.detail}"


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """The limits, in kmm's integer units.

    Attributes:
        max_position: Largest worst-case absolute position in one market (0.01 contracts).
        max_total_position: Largest sum of worst-case absolute positions (0.01 contracts).
        max_order_qty: Largest size of one order (0.01 contracts).
        max_order_notional: Largest cost of one order (money units).
        max_open_orders: Most orders resting or in flight at once, over all markets.
        max_unknown_orders: Orders of unknown outcome tolerated before new orders stop.
        lot_qty: Clipped sizes are rounded down to a multiple of this (0.01 contracts).
        stale_book_ns: A market whose book is older than this is not quoted.
        no_quote_before_close_ns: A market this close to its close is not quoted.
        wind_down_before_close_ns: A market this close to its close is quoted reduce-only.
        max_market_exposure: Largest dollar worst case of one market (money units), or
            ``None`` for no cap.
        max_event_exposure: Largest sum of dollar worst cases over one event's markets.
        max_category_exposure: Largest sum over the markets of one category.
        max_total_exposure: Largest sum over every market.
        max_resting_value: Largest cost of every open order together.

    Raises:
        ValueError: if a limit is out of range, naming it.
    """

    max_position: Qty
    max_total_position: Qty
    max_order_qty: Qty
    max_order_notional: Money
    max_open_orders: int
    max_unknown_orders: int = 5
    lot_qty: Qty = 1
    stale_book_ns: int = 30 * _NS_PER_S
    no_quote_before_close_ns: int = 60 * _NS_PER_S
    wind_down_before_close_ns: int = 300 * _NS_PER_S
    max_market_exposure: Money | None = None
    max_event_exposure: Money | None = None
    max_category_exposure: Money | None = None
    max_total_exposure: Money | None = None
    max_resting_value: Money | None = None

    @property
    def dollar_capped(self) -> bool:
        """True if any dollar cap is set."""
        return not (
            self.max_market_exposure is None
            and self.max_event_exposure is None
            and self.max_category_exposure is None
            and self.max_total_exposure is None
            and self.max_resting_value is None
        )

    def __post_init__(self) -> None:
        for name in _DOLLAR_CAPS:
            value = getattr(self, name)
            if value is not None:
                _at_least(name, value, 1)
        for name in ("max_position", "max_total_position", "max_order_qty", "lot_qty"):
            _at_least(name, getattr(self, name), 1)
        _at_least("max_order_notional", self.max_order_notional, 1)
        _at_least("max_open_orders", self.max_open_orders, 1)
        _at_least("max_unknown_orders", self.max_unknown_orders, 0)
        _at_least("stale_book_ns", self.stale_book_ns, 1)
        _at_least("no_quote_before_close_ns", self.no_quote_before_close_ns, 0)
        _at_least(
            "wind_down_before_close_ns",
            self.wind_down_before_close_ns,
            self.no_quote_before_close_ns,
        )

    @classmethod
    def from_config(cls, risk: RiskConfig, strategy: StrategyConfig) -> RiskLimits:
        """The limits of the ``risk`` section; order size and lot come from ``strategy``."""
        return cls(
            max_position=risk.max_position,
            max_total_position=risk.max_total_position,
            max_order_qty=strategy.max_order_qty,
            max_order_notional=risk.max_order_notional,
            max_open_orders=risk.max_open_orders,
            max_unknown_orders=risk.max_unknown_orders,
            lot_qty=strategy.lot_qty,
            stale_book_ns=risk.stale_book_ns,
            no_quote_before_close_ns=round(risk.no_quote_before_close_s * _NS_PER_S),
            wind_down_before_close_ns=round(risk.wind_down_before_close_s * _NS_PER_S),
            max_market_exposure=risk.max_market_exposure,
            max_event_exposure=risk.max_event_exposure,
            max_category_exposure=risk.max_category_exposure,
            max_total_exposure=risk.max_total_exposure,
            max_resting_value=risk.max_resting_value,
        )


_DOLLAR_CAPS: Final = (
    "max_market_exposure",
    "max_event_exposure",
    "max_category_exposure",
    "max_total_exposure",
    "max_resting_value",
)


def _at_least(name: str, value: int, least: int) -> None:
    if value < least:
        raise ValueError(f"risk limit {name} must be >= {least}, got {value}")


class MarketExposure(NamedTuple):
    """One market's position and the orders that may still fill there.

    Attributes:
        position: Signed position (YES +, NO −), 0.01 contracts.
        bid_open: Bids that may still fill (resting, in flight, unknown).
        ask_open: Asks that may still fill.
        orders: Live orders (any non-terminal state).
        unknown: Live orders whose outcome is unknown.
        yes_at_risk: Money the YES side risks: a long position's cost plus every bid's
            (money units).
        no_at_risk: Money the NO side risks: a short position's NO cost plus every ask's.
        resting_value: What the open orders cost: bids at their price, asks at 1 − price.
    """

    position: Qty = 0
    bid_open: Qty = 0
    ask_open: Qty = 0
    orders: int = 0
    unknown: int = 0
    yes_at_risk: Money = 0
    no_at_risk: Money = 0
    resting_value: Money = 0

    @property
    def dollars(self) -> Money:
        """The dollar worst case: ``max(yes_at_risk, no_at_risk)``."""
        yes, no = self.yes_at_risk, self.no_at_risk
        return yes if yes > no else no

    @property
    def worst(self) -> Qty:
        """The worst-case absolute position: ``max(position + bids, asks − position)``."""
        long = self.position + self.bid_open
        short = self.ask_open - self.position
        return long if long > short else short


_FLAT: Final = MarketExposure()


class PositionSource(Protocol):
    """Where positions come from (:class:`~kmm.execution.inventory.Portfolio`)."""

    def net_qty(self, ticker: str) -> Qty:
        """Signed position in ``ticker``."""
        ...

    def open_cost(self, ticker: str) -> Money:
        """Σ YES entry price × size over the position's open lots (money units)."""
        ...


class _ExposedOrder(Protocol):
    @property
    def side(self) -> BookSide: ...
    @property
    def exposure(self) -> Qty: ...
    @property
    def state(self) -> OrderState: ...
    @property
    def price(self) -> Price: ...
    @property
    def amend_price(self) -> Price | None: ...


class _UnbookedOrder(Protocol):
    @property
    def side(self) -> BookSide: ...
    @property
    def unbooked(self) -> Qty: ...
    @property
    def price(self) -> Price: ...


class OrderSource(Protocol):
    """Where live orders come from (:class:`~kmm.execution.orders.OrderTracker`)."""

    def live(self, ticker: str) -> Iterable[_ExposedOrder]:
        """The orders in ``ticker`` that rest or may rest."""
        ...

    def unbooked(self, ticker: str) -> Iterable[_UnbookedOrder]:
        """Ended orders in ``ticker`` whose reported fills are not booked yet."""
        ...


class ExposureBook:
    """Per-market worst-case exposure, with the global and group sums kept up to date in O(1).

    Attributes:
        total_worst: Σ of the markets' worst cases (0.01 contracts).
        open_orders: Live orders over every market.
        unknown_orders: Live orders of unknown outcome over every market.
        total_dollars: Σ of the markets' dollar worst cases (money units).
        resting_value: What every open order costs (money units).
    """

    __slots__ = (
        "_category_dollars",
        "_dollars",
        "_event_dollars",
        "_groups",
        "_markets",
        "_worst",
        "open_orders",
        "resting_value",
        "total_dollars",
        "total_worst",
        "unknown_orders",
    )

    def __init__(self) -> None:
        self._markets: dict[str, MarketExposure] = {}
        self._worst: dict[str, Qty] = {}
        self._dollars: dict[str, Money] = {}
        self._groups: dict[str, tuple[str, str]] = {}
        self._event_dollars: dict[str, Money] = {}
        self._category_dollars: dict[str, Money] = {}
        self.total_worst: Qty = 0
        self.open_orders = 0
        self.unknown_orders = 0
        self.total_dollars: Money = 0
        self.resting_value: Money = 0

    def get(self, ticker: str) -> MarketExposure:
        """The market's exposure (flat if never set)."""
        return self._markets.get(ticker, _FLAT)

    def worst(self, ticker: str) -> Qty:
        """The market's worst case (:attr:`MarketExposure.worst`), without recomputing it."""
        return self._worst.get(ticker, 0)

    def tickers(self) -> KeysView[str]:
        """Every market the book holds."""
        return self._markets.keys()

    def set_group(self, ticker: str, event: str, category: str) -> None:
        """Puts a market in its event and category ("" for unknown: not grouped).

        Call it before the market's first figures; a market already held moves its dollar
        worst case to its new groups.
        """
        dollars = self._dollars.get(ticker, 0)
        self._add_to_groups(ticker, -dollars)
        self._groups[ticker] = (event, category)
        self._add_to_groups(ticker, dollars)

    def group_dollars(self, ticker: str) -> tuple[str, Money, str, Money]:
        """``(event, its Σ dollars, category, its Σ dollars)`` of the market's groups."""
        event, category = self._groups.get(ticker, _NO_GROUP)
        return (
            event,
            self._event_dollars.get(event, 0),
            category,
            self._category_dollars.get(category, 0),
        )

    def _add_to_groups(self, ticker: str, dollars: Money) -> None:
        if not dollars:
            return
        event, category = self._groups.get(ticker, _NO_GROUP)
        if event:
            self._event_dollars[event] = self._event_dollars.get(event, 0) + dollars
        if category:
            self._category_dollars[category] = self._category_dollars.get(category, 0) + dollars

    def set_market(
        self,
        ticker: str,
        position: Qty,
        bid_open: Qty = 0,
        ask_open: Qty = 0,
        orders: int = 0,
        unknown: int = 0,
        yes_at_risk: Money = 0,
        no_at_risk: Money = 0,
        resting_value: Money = 0,
    ) -> MarketExposure:
        """Replaces one market's figures and updates the sums.

        Raises:
            ValueError: if an open quantity, a count or an amount of money is negative.
        """
        if min(bid_open, ask_open, orders, unknown, yes_at_risk, no_at_risk, resting_value) < 0:
            raise ValueError(
                f"{ticker}: negative exposure bid_open={bid_open} ask_open={ask_open} "
                f"orders={orders} unknown={unknown} yes_at_risk={yes_at_risk} "
                f"no_at_risk={no_at_risk} resting_value={resting_value}"
            )
        new = MarketExposure(
            position,
            bid_open,
            ask_open,
            orders,
            unknown,
            yes_at_risk,
            no_at_risk,
            resting_value,
        )
        old = self._markets.get(ticker, _FLAT)
        self._markets[ticker] = new
        long, short = position + bid_open, ask_open - position
        worst = long if long > short else short
        self.total_worst += worst - self._worst.get(ticker, 0)
        self._worst[ticker] = worst
        self.open_orders += orders - old.orders
        self.unknown_orders += unknown - old.unknown
        dollars = yes_at_risk if yes_at_risk > no_at_risk else no_at_risk
        change = dollars - self._dollars.get(ticker, 0)
        if change:
            self._dollars[ticker] = dollars
            self.total_dollars += change
            self._add_to_groups(ticker, change)
        self.resting_value += resting_value - old.resting_value
        return new

    def refresh(
        self, ticker: str, positions: PositionSource, orders: OrderSource
    ) -> MarketExposure:
        """Recomputes one market from the portfolio and the order tracker.

        An order being amended counts at the larger size and the costlier price; an ended
        order's fills reported but not booked yet count on their side (not as resting value).
        """
        bid = ask = count = unknown = 0
        bid_cost = ask_cost = 0
        for order in orders.live(ticker):
            count += 1
            exposure = order.exposure
            price, new_price = order.price, order.amend_price
            if order.side is _BID:
                bid += exposure
                if new_price is not None and new_price > price:
                    price = new_price
                bid_cost += price * exposure
            else:
                ask += exposure
                if new_price is not None and new_price < price:
                    price = new_price
                ask_cost += (ONE_DOLLAR - price) * exposure
            if order.state is _UNKNOWN:
                unknown += 1
        resting_value = bid_cost + ask_cost
        for ended in orders.unbooked(ticker):
            # filled at the venue, not booked in the position yet: it moved the position
            qty = ended.unbooked
            if ended.side is _BID:
                bid += qty
                bid_cost += ended.price * qty
            else:
                ask += qty
                ask_cost += (ONE_DOLLAR - ended.price) * qty
        position = positions.net_qty(ticker)
        yes_cost = no_cost = 0
        if position > 0:
            yes_cost = positions.open_cost(ticker)
        elif position < 0:
            no_cost = -position * ONE_DOLLAR - positions.open_cost(ticker)
        return self.set_market(
            ticker,
            position,
            bid,
            ask,
            count,
            unknown,
            yes_at_risk=yes_cost + bid_cost,
            no_at_risk=no_cost + ask_cost,
            resting_value=resting_value,
        )

    def refresh_all(
        self, tickers: Iterable[str], positions: PositionSource, orders: OrderSource
    ) -> None:
        """Recomputes ``tickers`` and every market already held (after a reconciliation)."""
        for ticker in {*tickers, *self._markets}:
            self.refresh(ticker, positions, orders)

    def reserve(
        self, ticker: str, side: BookSide, qty: Qty, orders: int = 0, unit_cost: int = 0
    ) -> None:
        """Counts ``qty`` more open on ``side`` (and ``orders`` more live orders, and
        ``qty × unit_cost`` more money at risk on that side) at once."""
        exp = self._markets.get(ticker, _FLAT)
        bid, ask, yes, no = exp.bid_open, exp.ask_open, exp.yes_at_risk, exp.no_at_risk
        cost = qty * unit_cost
        if side is _BID:
            bid += qty
            yes += cost
        else:
            ask += qty
            no += cost
        self.set_market(
            ticker,
            exp.position,
            bid,
            ask,
            exp.orders + orders,
            exp.unknown,
            yes_at_risk=yes,
            no_at_risk=no,
            resting_value=exp.resting_value + cost,
        )


_NO_GROUP: Final = ("", "")


class QuoteMode(StrEnum):
    """How a market may be quoted (decided by :func:`kmm.risk.guards.gate_quote`)."""

    NORMAL = "normal"
    REDUCE_ONLY = "reduce_only"
    OFF = "off"


@dataclass(frozen=True, slots=True)
class ModeChange:
    """A market's quoting mode changed, for the ops log.

    Attributes:
        ts_ns: When the change was seen.
        ticker: The market.
        mode: The new mode.
        reason: Why, with the numbers.
    """

    ts_ns: int
    ticker: str
    mode: QuoteMode
    reason: str

    def __str__(self) -> str:
        return f"{self.ticker} quoting {self.mode}: {self.reason}"


@dataclass(slots=True)
class RiskContext:
    """Everything the pre-trade checks and the quote gate read, and the gate's memory.

    Attributes:
        limits: The limits.
        kill_switch: The process-wide halt; nothing is placed unless it is running.
        exposures: Positions and open orders per market.
        exchange_paused: The exchange's trading is paused (places refused, cancels go).
        reduce_only: Markets where only orders that reduce the position pass.
        blocked: Markets not quoted at all, with the reason (paused by the exchange,
            position drift found by reconciliation).
        disabled: Markets an operator disabled (``markets.overrides``, the control API):
            not quoted, and no order of ours is placed there.
        modes: The last quoting mode and its cause per market (kept by the quote gate).
        events: Mode changes not yet handed over (see :meth:`take_events`).
        market_caps: Markets with a position cap of their own, below ``limits.max_position``.
    """

    limits: RiskLimits
    kill_switch: KillSwitch
    exposures: ExposureBook = field(default_factory=ExposureBook)
    exchange_paused: bool = False
    reduce_only: set[str] = field(default_factory=set)
    blocked: dict[str, str] = field(default_factory=dict)
    disabled: set[str] = field(default_factory=set)
    modes: dict[str, tuple[QuoteMode, str]] = field(default_factory=dict)
    events: list[ModeChange] = field(default_factory=list)
    market_caps: dict[str, Qty] = field(default_factory=dict)

    def max_position(self, ticker: str) -> Qty:
        """The position cap of ``ticker``: its own (e.g. discovery's budget) when lower than
        :attr:`RiskLimits.max_position`, else that."""
        own = self.market_caps.get(ticker)
        cap = self.limits.max_position
        return cap if own is None or own > cap else own

    def take_events(self) -> list[ModeChange]:
        """Every mode change recorded since the last call, oldest first."""
        events, self.events = self.events, []
        return events


# --------------------------------------------------------------------------- check_order


def check_order(intent: OrderIntent, ctx: RiskContext, *, replaces: Qty | None = None) -> Verdict:
    """Checks one order against every limit, and reserves what it lets through.

    Args:
        intent: The order: market, side, YES price and size (for an amend, the new resting
            size).
        ctx: The limits and the current exposure.
        replaces: For an amend, the exposure of the order being amended
            (:attr:`~kmm.execution.orders.TrackedOrder.exposure`); ``None`` for a new order.

    Returns:
        Approve (``qty`` is the order's), clip (``qty`` is smaller, on a lot) or reject
        (``qty`` is 0), with the limit and its numbers; ``reason`` is the log line.

    Raises:
        ValueError: if ``replaces`` is negative.
    """
    if replaces is not None and replaces < 0:
        raise ValueError(f"{intent.ticker}: an amend cannot replace {replaces} contracts")
    refusal = _order_refusal(intent) or _state_refusal(intent.ticker, ctx, replaces is None)
    if refusal is not None:
        return Verdict(_REJECT, 0, refusal[0], refusal[1], intent, replaces)
    room, limit = _room(intent, ctx, replaces or 0)
    qty = intent.qty
    if room >= qty:
        _reserve(intent, ctx, qty, replaces)
        return Verdict(_APPROVE, qty, None, "", intent, replaces)
    clipped = room - room % ctx.limits.lot_qty if room > 0 else 0
    detail = _room_detail(limit, intent, ctx, replaces or 0)
    if clipped <= 0:
        return Verdict(_REJECT, 0, limit, detail, intent, replaces)
    _reserve(intent, ctx, clipped, replaces)
    return Verdict(Decision.CLIP, clipped, limit, detail, intent, replaces)


def _order_refusal(intent: OrderIntent) -> tuple[Limit, str] | None:
    if intent.qty <= 0:
        return Limit.SIZE, f"size {contracts(intent.qty)} is not positive"
    if not 0 < intent.price < ONE_DOLLAR:
        return Limit.PRICE, f"price {format_price(intent.price)} is outside (0, 1)"
    return None


def _state_refusal(ticker: str, ctx: RiskContext, new: bool) -> tuple[Limit, str] | None:
    switch = ctx.kill_switch
    if not switch.quoting_allowed:
        return Limit.HALTED, f"kill switch {switch.state}: {switch.reason}"
    if ctx.exchange_paused:
        return Limit.EXCHANGE_PAUSED, "exchange trading is paused"
    blocked = ctx.blocked.get(ticker)
    if blocked is not None:
        return Limit.MARKET_BLOCKED, f"market blocked: {blocked}"
    if ticker in ctx.disabled:
        return Limit.MARKET_BLOCKED, "market disabled by the operator"
    if not new:
        return None
    limits, book = ctx.limits, ctx.exposures
    if book.open_orders >= limits.max_open_orders:
        detail = f"max_open_orders {limits.max_open_orders}, open orders {book.open_orders}"
        return Limit.MAX_OPEN_ORDERS, detail
    if book.unknown_orders > limits.max_unknown_orders:
        detail = (
            f"max_unknown_orders {limits.max_unknown_orders}, "
            f"orders of unknown outcome {book.unknown_orders}"
        )
        return Limit.MAX_UNKNOWN_ORDERS, detail
    return None


def _side_figures(exp: MarketExposure, side: BookSide, replaces: Qty) -> tuple[Qty, Qty]:
    """``(s, o)``: the position signed for ``side`` and the side's other open orders."""
    if side is _BID:
        signed, open_ = exp.position, exp.bid_open
    else:
        signed, open_ = -exp.position, exp.ask_open
    other = open_ - replaces
    return signed, other if other > 0 else 0


def _cost(intent: OrderIntent) -> int:
    """What one contract of the order costs, in price units."""
    return intent.price if intent.side is _BID else ONE_DOLLAR - intent.price


def _room(intent: OrderIntent, ctx: RiskContext, replaces: Qty) -> tuple[Qty, Limit]:
    """The largest size the limits allow, and the limit that sets it."""
    limits, book, ticker = ctx.limits, ctx.exposures, intent.ticker
    signed, other = _side_figures(book.get(ticker), intent.side, replaces)
    used = signed + other
    best, limit = limits.max_order_qty, _MAX_ORDER_SIZE
    room = limits.max_order_notional // _cost(intent)
    if room < best:
        best, limit = room, _MAX_ORDER_NOTIONAL
    room = max(ctx.max_position(ticker), used + replaces) - used
    if room < best:
        best, limit = room, _MAX_POSITION
    worst = book.worst(ticker)
    room = max(limits.max_total_position - (book.total_worst - worst), worst) - used
    if room < best:
        best, limit = room, _MAX_TOTAL_POSITION
    if -used < best and ticker in ctx.reduce_only:
        best, limit = -used, _REDUCE_ONLY
    if limits.dollar_capped:
        room, dollar_limit = _dollar_room(intent, ctx, replaces)
        if room < best:
            best, limit = room, dollar_limit
    return best, limit


def _dollar_caps(
    intent: OrderIntent, ctx: RiskContext, replaces: Qty
) -> Iterator[tuple[Limit, Money, Money, Money, Money]]:
    """Each dollar cap set, as ``(limit, cap, group sum, market's part, side's money)``:
    the side's money is what ``intent``'s side risks without the order amended."""
    limits, book, ticker = ctx.limits, ctx.exposures, intent.ticker
    exp = book.get(ticker)
    side = exp.yes_at_risk if intent.side is _BID else exp.no_at_risk
    side -= replaces * _cost(intent)
    side = side if side > 0 else 0
    dollars = exp.dollars
    event, event_sum, category, category_sum = book.group_dollars(ticker)
    if limits.max_market_exposure is not None:
        yield Limit.MAX_MARKET_EXPOSURE, limits.max_market_exposure, dollars, dollars, side
    if limits.max_event_exposure is not None and event:
        yield Limit.MAX_EVENT_EXPOSURE, limits.max_event_exposure, event_sum, dollars, side
    if limits.max_category_exposure is not None and category:
        cap = limits.max_category_exposure
        yield Limit.MAX_CATEGORY_EXPOSURE, cap, category_sum, dollars, side
    if limits.max_total_exposure is not None:
        total = book.total_dollars
        yield Limit.MAX_TOTAL_EXPOSURE, limits.max_total_exposure, total, dollars, side
    if limits.max_resting_value is not None:
        resting = book.resting_value - replaces * _cost(intent)
        resting = resting if resting > 0 else 0
        yield Limit.MAX_RESTING_VALUE, limits.max_resting_value, resting, 0, 0


def _dollar_room(intent: OrderIntent, ctx: RiskContext, replaces: Qty) -> tuple[Qty, Limit]:
    """The largest size the dollar caps allow, and the cap that sets it."""
    unit = _cost(intent)
    best, limit = intent.qty, Limit.MAX_MARKET_EXPOSURE
    for cap_limit, cap, group, part, side in _dollar_caps(intent, ctx, replaces):
        money = max(cap - (group - part), part, replaces * unit) - side
        room = money // unit if money > 0 else 0
        if room < best:
            best, limit = room, cap_limit
    return best, limit


def _room_detail(limit: Limit, intent: OrderIntent, ctx: RiskContext, replaces: Qty) -> str:
    limits, book = ctx.limits, ctx.exposures
    exp = book.get(intent.ticker)
    _, other = _side_figures(exp, intent.side, replaces)
    opens = f"open {intent.side}s {contracts(other)}"
    if replaces:
        opens += " besides the order amended"
    position = f"position {contracts(exp.position)}, {opens}"
    if limit is Limit.MAX_ORDER_SIZE:
        return f"max_order_size {contracts(limits.max_order_qty)}"
    if limit is Limit.MAX_ORDER_NOTIONAL:
        per_contract = usd(_cost(intent) * QTY_SCALE)
        return f"max_order_notional {usd(limits.max_order_notional)}, cost {per_contract} each"
    if limit is Limit.MAX_POSITION:
        return f"max_position {contracts(ctx.max_position(intent.ticker))}, {position}"
    if limit is Limit.MAX_TOTAL_POSITION:
        elsewhere = contracts(book.total_worst - book.worst(intent.ticker))
        return (
            f"max_total_position {contracts(limits.max_total_position)}, worst case in other "
            f"markets {elsewhere}, {position}"
        )
    if limit is Limit.REDUCE_ONLY:
        return f"reduce_only, {position}"
    return _dollar_detail(limit, intent, ctx, replaces)


def _dollar_detail(limit: Limit, intent: OrderIntent, ctx: RiskContext, replaces: Qty) -> str:
    for cap_limit, cap, group, _part, side in _dollar_caps(intent, ctx, replaces):
        if cap_limit is not limit:
            continue
        each = f"cost {usd(_cost(intent) * QTY_SCALE)} each"
        if limit is Limit.MAX_RESTING_VALUE:
            return f"max_resting_value {usd(cap)}, open orders cost {usd(group)}, {each}"
        event, _, category, _ = ctx.exposures.group_dollars(intent.ticker)
        where = {
            Limit.MAX_MARKET_EXPOSURE: "",
            Limit.MAX_EVENT_EXPOSURE: f" in event {event}",
            Limit.MAX_CATEGORY_EXPOSURE: f" in category {category}",
            Limit.MAX_TOTAL_EXPOSURE: " in all markets",
        }[limit]
        return (
            f"{limit} {usd(cap)}, at risk{where} {usd(group)}, {intent.side} side of "
            f"{intent.ticker} {usd(side)}, {each}"
        )
    return str(limit)


def _reserve(intent: OrderIntent, ctx: RiskContext, qty: Qty, replaces: Qty | None) -> None:
    unit = _cost(intent)
    if replaces is None:
        ctx.exposures.reserve(intent.ticker, intent.side, qty, orders=1, unit_cost=unit)
    elif qty > replaces:
        ctx.exposures.reserve(intent.ticker, intent.side, qty - replaces, unit_cost=unit)
