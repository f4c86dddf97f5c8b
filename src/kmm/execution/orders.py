"""Order lifecycle: the state table, the order tracker and client order ids.

Theory of operation
-------------------
Every order kmm sends is tracked from the moment it is handed to the transport until the
venue says it is gone. Its state is our best knowledge of what the exchange holds:

* ``PENDING_NEW``: a create is in flight; the exchange order id is not known yet.
* ``RESTING``: the exchange confirmed the order rests (possibly partly filled).
* ``PENDING_AMEND``: an amend is in flight. The order rests at the old *or* the new
  price/size, so the diff must not amend it again (that is how a bot loses track of its size)
  and exposure counts the larger of the two sizes. This is why the state exists.
* ``PENDING_CANCEL``: a cancel is in flight.
* ``UNKNOWN``: a request timed out, failed with a 5xx or a 429, or the stream that reports on
  the order was lost. The order may or may not rest (STYLE rule 7). It counts as exposure and
  blocks a new order on its side until :meth:`OrderTracker.reconcile` settles it.
* ``CANCELED`` and ``FILLED`` are terminal. A rejected create ends ``CANCELED`` (it never
  rested), with ``last_event`` saying ``reject``.

``TRANSITIONS`` maps ``(state, event)`` to the next state; a pair that is not in it raises
:class:`~kmm.errors.IllegalTransition` naming both states and the event. REST replies and
stream messages race, so the table accepts venue facts in every state where they can arrive
late: a cancel ack or a fill after the order already ended is an echo that leaves it where it
is, a fill that completes the size moves even a ``CANCELED`` order to ``FILLED`` (the cancel
removed nothing), and a venue cancel or a confirmed fill ends an order whatever was in
flight. Our own requests are strict: only a ``RESTING`` order may be amended, and only a
``RESTING`` or ``PENDING_AMEND`` order may be cancelled (cancels need the exchange order id).

Fill accounting: ``filled`` is the larger of the sum of distinct fills seen (by ``trade_id``)
and the latest fill count the venue reported in a reply or an update. Both only grow, so taking
the larger never counts a fill twice when the fill message and the reply that already includes
it arrive in either order. A fill whose order is not known yet (it can beat the create reply)
is kept aside by exchange order id and applied when the ack binds that id.

Unbooked fills: a reply or an order update can report fills before their fill messages
arrive (a taking order, or a quote crossed while the request flew). A fully filled order ends
at once, but the position it moved is not booked yet, so whoever plans the next order would
see neither the order nor its effect and send it again (a reduce-only exit then reduces a
position that is already flat, and the venue refuses it). Until its fills are seen, an order's
``filled_venue - filled_seen``, live or ended, counts on its side (:meth:`OrderTracker.unbooked`,
:meth:`OrderTracker.unbooked_net`) for at most ``unbooked_ttl_ns``
(:meth:`OrderTracker.expire_unbooked`): a fill that never arrives is read back by
reconciliation, which books it by trade id.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from kmm.errors import IllegalTransition, KmmError, WireError
from kmm.execution.inventory import SeenIds
from kmm.types import BookSide, Fill, OrderIntent, Price, Qty

__all__ = [
    "LIVE_STATES",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "ClientOrderIds",
    "FillOutcome",
    "OrderEvent",
    "OrderState",
    "OrderTracker",
    "TrackedOrder",
    "UnknownOrder",
    "next_state",
]


class OrderState(StrEnum):
    """Where an order is in its lifecycle (see the module docstring)."""

    PENDING_NEW = "pending_new"
    RESTING = "resting"
    PENDING_AMEND = "pending_amend"
    PENDING_CANCEL = "pending_cancel"
    CANCELED = "canceled"
    FILLED = "filled"
    UNKNOWN = "unknown"


class OrderEvent(StrEnum):
    """What can happen to an order: our requests, the venue's answers and stream facts."""

    ACK = "ack"
    REJECT = "reject"
    PARTIAL_FILL = "partial_fill"
    FULL_FILL = "full_fill"
    AMEND_REQUEST = "amend_request"
    AMEND_ACK = "amend_ack"
    AMEND_REJECT = "amend_reject"
    CANCEL_REQUEST = "cancel_request"
    CANCEL_ACK = "cancel_ack"
    CANCEL_REJECT = "cancel_reject"
    VENUE_CANCEL = "venue_cancel"
    TIMEOUT = "timeout"
    RECONCILED_RESTING = "reconciled_resting"
    RECONCILED_CANCELED = "reconciled_canceled"
    RECONCILED_FILLED = "reconciled_filled"


TERMINAL_STATES: Final = frozenset({OrderState.CANCELED, OrderState.FILLED})
LIVE_STATES: Final = frozenset(OrderState) - TERMINAL_STATES
"""States of orders that rest or may rest: they count as exposure."""

_S = OrderState
_E = OrderEvent

# Late replies and stream messages about an order that has already ended leave it as it is
_ECHOES: Final = (
    _E.ACK,
    _E.PARTIAL_FILL,
    _E.AMEND_ACK,
    _E.AMEND_REJECT,
    _E.CANCEL_ACK,
    _E.CANCEL_REJECT,
    _E.VENUE_CANCEL,
    _E.TIMEOUT,
    _E.RECONCILED_RESTING,
    _E.RECONCILED_CANCELED,
)

_BY_STATE: Final[dict[OrderState, dict[OrderEvent, OrderState]]] = {
    _S.PENDING_NEW: {
        _E.ACK: _S.RESTING,
        _E.REJECT: _S.CANCELED,
        _E.PARTIAL_FILL: _S.PENDING_NEW,  # a fill can beat the create reply
        _E.FULL_FILL: _S.FILLED,
        _E.VENUE_CANCEL: _S.CANCELED,
        _E.TIMEOUT: _S.UNKNOWN,
        _E.RECONCILED_RESTING: _S.RESTING,
        _E.RECONCILED_CANCELED: _S.CANCELED,
        _E.RECONCILED_FILLED: _S.FILLED,
    },
    _S.RESTING: {
        _E.ACK: _S.RESTING,
        _E.PARTIAL_FILL: _S.RESTING,
        _E.FULL_FILL: _S.FILLED,
        _E.AMEND_REQUEST: _S.PENDING_AMEND,
        _E.CANCEL_REQUEST: _S.PENDING_CANCEL,
        # Replies to a request that timed out after reconcile already found the order resting
        _E.AMEND_ACK: _S.RESTING,
        _E.AMEND_REJECT: _S.RESTING,
        _E.CANCEL_ACK: _S.CANCELED,
        _E.CANCEL_REJECT: _S.RESTING,
        _E.VENUE_CANCEL: _S.CANCELED,
        _E.TIMEOUT: _S.UNKNOWN,  # the stream reporting on it was lost
        _E.RECONCILED_RESTING: _S.RESTING,
        _E.RECONCILED_CANCELED: _S.CANCELED,
        _E.RECONCILED_FILLED: _S.FILLED,
    },
    _S.PENDING_AMEND: {
        _E.ACK: _S.PENDING_AMEND,
        _E.PARTIAL_FILL: _S.PENDING_AMEND,
        _E.FULL_FILL: _S.FILLED,
        _E.AMEND_ACK: _S.RESTING,
        _E.AMEND_REJECT: _S.RESTING,  # the order stands as it was
        _E.CANCEL_REQUEST: _S.PENDING_CANCEL,  # safety does not wait for the amend
        _E.CANCEL_ACK: _S.CANCELED,
        _E.CANCEL_REJECT: _S.PENDING_AMEND,
        _E.VENUE_CANCEL: _S.CANCELED,
        _E.TIMEOUT: _S.UNKNOWN,
        _E.RECONCILED_RESTING: _S.PENDING_AMEND,  # the amend reply settles price and size
        _E.RECONCILED_CANCELED: _S.CANCELED,
        _E.RECONCILED_FILLED: _S.FILLED,
    },
    _S.PENDING_CANCEL: {
        _E.ACK: _S.PENDING_CANCEL,
        _E.PARTIAL_FILL: _S.PENDING_CANCEL,
        _E.FULL_FILL: _S.FILLED,
        _E.AMEND_ACK: _S.PENDING_CANCEL,
        _E.AMEND_REJECT: _S.PENDING_CANCEL,
        _E.CANCEL_ACK: _S.CANCELED,
        # Refused: already filled, already cancelled, or the exchange is paused. Only the
        # venue's state can tell which, so ask it
        _E.CANCEL_REJECT: _S.UNKNOWN,
        _E.VENUE_CANCEL: _S.CANCELED,
        _E.TIMEOUT: _S.UNKNOWN,
        _E.RECONCILED_RESTING: _S.PENDING_CANCEL,
        _E.RECONCILED_CANCELED: _S.CANCELED,
        _E.RECONCILED_FILLED: _S.FILLED,
    },
    _S.UNKNOWN: {
        _E.ACK: _S.RESTING,  # the create reply came after all
        _E.REJECT: _S.CANCELED,
        _E.PARTIAL_FILL: _S.UNKNOWN,
        _E.FULL_FILL: _S.FILLED,
        _E.AMEND_ACK: _S.RESTING,
        _E.AMEND_REJECT: _S.RESTING,
        _E.CANCEL_ACK: _S.CANCELED,
        _E.CANCEL_REJECT: _S.UNKNOWN,
        _E.VENUE_CANCEL: _S.CANCELED,
        _E.TIMEOUT: _S.UNKNOWN,
        _E.RECONCILED_RESTING: _S.RESTING,
        _E.RECONCILED_CANCELED: _S.CANCELED,
        _E.RECONCILED_FILLED: _S.FILLED,
    },
    _S.CANCELED: {
        **dict.fromkeys(_ECHOES, _S.CANCELED),
        _E.REJECT: _S.CANCELED,
        # A fill that completes the size: the cancel removed nothing
        _E.FULL_FILL: _S.FILLED,
        _E.RECONCILED_FILLED: _S.FILLED,
    },
    _S.FILLED: {
        **dict.fromkeys(_ECHOES, _S.FILLED),
        _E.FULL_FILL: _S.FILLED,
        _E.RECONCILED_FILLED: _S.FILLED,
    },
}

TRANSITIONS: Final[Mapping[tuple[OrderState, OrderEvent], OrderState]] = {
    (state, event): target for state, row in _BY_STATE.items() for event, target in row.items()
}
"""The lifecycle: ``{(state, event): next_state}``. Pairs not listed are illegal."""

# The state an event normally leads to, named in the error for an illegal pair
_EVENT_TARGET: Final[dict[OrderEvent, OrderState]] = {
    _E.ACK: _S.RESTING,
    _E.REJECT: _S.CANCELED,
    _E.PARTIAL_FILL: _S.RESTING,
    _E.FULL_FILL: _S.FILLED,
    _E.AMEND_REQUEST: _S.PENDING_AMEND,
    _E.AMEND_ACK: _S.RESTING,
    _E.AMEND_REJECT: _S.RESTING,
    _E.CANCEL_REQUEST: _S.PENDING_CANCEL,
    _E.CANCEL_ACK: _S.CANCELED,
    _E.CANCEL_REJECT: _S.UNKNOWN,
    _E.VENUE_CANCEL: _S.CANCELED,
    _E.TIMEOUT: _S.UNKNOWN,
    _E.RECONCILED_RESTING: _S.RESTING,
    _E.RECONCILED_CANCELED: _S.CANCELED,
    _E.RECONCILED_FILLED: _S.FILLED,
}

_RECONCILE_EVENT: Final = {
    _S.RESTING: _E.RECONCILED_RESTING,
    _S.CANCELED: _E.RECONCILED_CANCELED,
    _S.FILLED: _E.RECONCILED_FILLED,
}


def next_state(order_key: str, state: OrderState, event: OrderEvent) -> OrderState:
    """Looks up the lifecycle table.

    Raises:
        IllegalTransition: if ``event`` cannot happen in ``state``; the error names the
            current state and the state the event would normally lead to.
    """
    target = TRANSITIONS.get((state, event))
    if target is None:
        intended = f"{_EVENT_TARGET[event]} (on {event})"
        raise IllegalTransition(order_key, str(state), intended)
    return target


class UnknownOrder(KmmError, KeyError):
    """A reply or command named an order the tracker does not hold.

    Attributes:
        key: The client order id or exchange order id that was not found.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"no tracked order with client or exchange id {key!r}")

    def __str__(self) -> str:
        return str(self.args[0])


class FillOutcome(StrEnum):
    """What :meth:`OrderTracker.on_fill` did with a fill."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    UNMATCHED = "unmatched"
    """The order is not known (yet); the fill is kept until an ack binds its order id."""


_CLIENT_ID_CHARS: Final = re.compile(r"[A-Za-z0-9_-]+")
_MAX_CLIENT_ID: Final = 64
_COUNTER_DIGITS: Final = 20


class ClientOrderIds:
    """Client order ids from a per-run prefix and a counter: ``"{prefix}-{n}"``.

    A counter costs ~0.1 µs where ``uuid4()`` costs 2.5 µs (PERF.md §7). The prefix must be
    unique per run (a duplicate id is answered 409), e.g. :meth:`for_run` from the start time.

    Args:
        run_prefix: Letters, digits, ``-`` and ``_``, at most 43 characters so that any
            counter value keeps the id within Kalshi's 64.
        start: The first counter value.

    Raises:
        ValueError: if the prefix is empty, too long or has other characters.
    """

    __slots__ = ("_n", "prefix")

    def __init__(self, run_prefix: str, start: int = 1) -> None:
        limit = _MAX_CLIENT_ID - 1 - _COUNTER_DIGITS
        if not _CLIENT_ID_CHARS.fullmatch(run_prefix) or len(run_prefix) > limit:
            raise ValueError(
                f"client order id prefix {run_prefix!r} must be 1-{limit} letters, digits, "
                f"'-' or '_'"
            )
        self.prefix = run_prefix
        self._n = start

    @classmethod
    def for_run(cls, start_ns: int, tag: str = "kmm") -> ClientOrderIds:
        """Ids prefixed with ``tag`` and the run's start time in hex milliseconds."""
        return cls(f"{tag}{start_ns // 1_000_000:x}")

    def next_id(self) -> str:
        """The next id; never repeats within this object."""
        n = self._n
        self._n = n + 1
        return f"{self.prefix}-{n}"


@dataclass(slots=True, eq=False)
class TrackedOrder:
    """One order as the tracker knows it. Mutated only by :class:`OrderTracker`.

    Attributes:
        client_order_id: Our id for the order.
        ticker: The market.
        side: YES-leg side (``bid`` buys YES, ``ask`` sells YES).
        price: The YES price it rests at (the old price while an amend is in flight).
        qty: Total fillable count: the initial count, or the count of the last amend.
        placed_ns: When the create was handed to the transport.
        last_change_ns: When the price or size last changed (create or amend).
        state: The lifecycle state.
        order_id: The exchange order id, once known.
        filled_seen: Sum of the distinct fills received.
        filled_venue: The latest fill count the venue reported.
        amend_price: The price of an amend in flight.
        amend_qty: The total count of an amend in flight.
        last_event: The last event applied (``reject`` tells a refused create).
        booked_floor: Fills booked without being seen (an adopted order's earlier fills).
    """

    client_order_id: str
    ticker: str
    side: BookSide
    price: Price
    qty: Qty
    placed_ns: int
    last_change_ns: int
    state: OrderState = OrderState.PENDING_NEW
    order_id: str | None = None
    filled_seen: Qty = 0
    filled_venue: Qty = 0
    amend_price: Price | None = None
    amend_qty: Qty | None = None
    last_event: OrderEvent | None = None
    booked_floor: Qty = 0

    @property
    def filled(self) -> Qty:
        """Contracts filled so far (0.01 units)."""
        seen, venue = self.filled_seen, self.filled_venue
        return seen if seen > venue else venue

    @property
    def remaining(self) -> Qty:
        """Contracts still resting at ``price`` (0 once the order has ended)."""
        # Read by the diff on every quote: no nested property, no set lookup
        state = self.state
        if state is _S.CANCELED or state is _S.FILLED:
            return 0
        seen, venue = self.filled_seen, self.filled_venue
        left = self.qty - (seen if seen > venue else venue)
        return left if left > 0 else 0

    @property
    def unbooked(self) -> Qty:
        """Contracts the venue reported filled whose fills have not been seen yet."""
        seen, floor = self.filled_seen, self.booked_floor
        left = self.filled_venue - (seen if seen > floor else floor)
        return left if left > 0 else 0

    @property
    def exposure(self) -> Qty:
        """Worst-case contracts that may still fill: the larger size while an amend flies."""
        if self.state in TERMINAL_STATES:
            return 0
        total = self.qty
        if self.amend_qty is not None and self.amend_qty > total:
            total = self.amend_qty
        left = total - self.filled
        return left if left > 0 else 0


_NO_ORDERS: Final[dict[str, TrackedOrder]] = {}


class OrderTracker:
    """Tracks every order by client order id and exchange order id, through the table.

    Each ``on_*`` method applies one event and returns the order's new state. Orders that
    end leave the live set at once, and stay reachable (for late replies and fills) until
    ``history`` newer orders have ended.

    Args:
        ids: Where client order ids come from.
        history: How many ended orders to remember.
        seen_trades: How many trade ids to remember for de-duplication.
        orphan_orders: How many unknown exchange order ids to keep early fills for.
        unbooked_ttl_ns: How long an ended order's fills not seen yet count as exposure.
    """

    def __init__(
        self,
        ids: ClientOrderIds,
        *,
        history: int = 10_000,
        seen_trades: int = 100_000,
        orphan_orders: int = 1_000,
        unbooked_ttl_ns: int = 10_000_000_000,
    ) -> None:
        self._ids = ids
        self._history = history
        self._orphan_limit = orphan_orders
        self._by_cid: dict[str, TrackedOrder] = {}
        self._by_oid: dict[str, TrackedOrder] = {}
        self._live: dict[str, dict[str, TrackedOrder]] = {}
        self._ended: deque[TrackedOrder] = deque()
        self._seen = SeenIds(seen_trades)
        self._orphans: dict[str, dict[str, Qty]] = {}
        self._unbooked_ttl_ns = unbooked_ttl_ns
        # ended orders whose reported fills are not all seen: ticker -> cid -> (order, ended)
        self._unbooked: dict[str, dict[str, tuple[TrackedOrder, int]]] = {}

    # Lookup

    def get(self, key: str) -> TrackedOrder | None:
        """The order with this client order id or exchange order id, if tracked."""
        order = self._by_cid.get(key)
        return order if order is not None else self._by_oid.get(key)

    def order(self, key: str) -> TrackedOrder:
        """Like :meth:`get`, but raises :class:`UnknownOrder` when not tracked."""
        order = self.get(key)
        if order is None:
            raise UnknownOrder(key)
        return order

    def live(self, ticker: str) -> Collection[TrackedOrder]:
        """Orders in ``ticker`` that rest or may rest (every non-terminal state).

        The collection is a live view: read it, do not hold it across tracker calls.
        """
        return self._live.get(ticker, _NO_ORDERS).values()

    def unbooked(self, ticker: str) -> list[TrackedOrder]:
        """Orders in ``ticker`` (live or ended) the venue reported filled beyond the fills
        seen: their :attr:`TrackedOrder.unbooked` contracts moved the position already."""
        found = self._unbooked.get(ticker)
        return [order for order, _ in found.values()] if found else []

    def unbooked_net(self, ticker: str) -> Qty:
        """The signed position change (YES +) of ``ticker``'s unbooked fills."""
        found = self._unbooked.get(ticker)
        if not found:
            return 0
        net = 0
        for order, _ in found.values():
            net += order.unbooked if order.side is BookSide.BID else -order.unbooked
        return net

    def open_exposure(self, ticker: str) -> tuple[Qty, Qty]:
        """Worst-case ``(bid_qty, ask_qty)`` that may still fill in ``ticker``, counting
        resting, in-flight and unknown orders, and fills reported but not booked yet.
        """
        bid = ask = 0
        for order in self._live.get(ticker, _NO_ORDERS).values():
            if order.side is BookSide.BID:
                bid += order.exposure
            else:
                ask += order.exposure
        for order in self.unbooked(ticker):
            if order.side is BookSide.BID:
                bid += order.unbooked
            else:
                ask += order.unbooked
        return bid, ask

    def expire_unbooked(self, now_ns: int) -> list[TrackedOrder]:
        """Stops counting the unbooked fills of orders that ended ``unbooked_ttl_ns`` ago.

        Returns:
            The orders whose fills never arrived in time (reconciliation reads them back).
        """
        if not self._unbooked:
            return []
        cutoff = now_ns - self._unbooked_ttl_ns
        expired: list[TrackedOrder] = []
        for ticker in list(self._unbooked):
            orders = self._unbooked[ticker]
            for cid in [c for c, (_, ended) in orders.items() if ended <= cutoff]:
                expired.append(orders.pop(cid)[0])
            if not orders:
                del self._unbooked[ticker]
        return expired

    # Our requests

    @property
    def ids(self) -> ClientOrderIds:
        """Where this tracker's client order ids come from (their prefix names the run)."""
        return self._ids

    def new(self, intent: OrderIntent, now_ns: int) -> TrackedOrder:
        """Registers a create about to be sent, in ``PENDING_NEW``, with a fresh client id.

        Raises:
            ValueError: if the intent's size is not positive.
        """
        if intent.qty <= 0:
            raise ValueError(f"{intent.ticker} {intent.side}: order size {intent.qty} <= 0")
        cid = self._ids.next_id()
        order = TrackedOrder(
            cid, intent.ticker, intent.side, intent.price, intent.qty, now_ns, now_ns
        )
        self._by_cid[cid] = order
        self._live.setdefault(intent.ticker, {})[cid] = order
        return order

    def request_amend(self, key: str, price: Price, remaining: Qty, now_ns: int) -> Qty:
        """Moves a resting order to ``PENDING_AMEND`` towards ``price`` and ``remaining``.

        Returns:
            The ``count`` to send: Kalshi's amend takes the new total fillable count, i.e.
            the contracts already filled plus the desired resting remainder.

        Raises:
            UnknownOrder: if the order is not tracked.
            IllegalTransition: if the order is not ``RESTING``.
            ValueError: if ``remaining`` is not positive.
        """
        order = self.order(key)
        if remaining <= 0:
            raise ValueError(f"{order.client_order_id}: amend to size {remaining} <= 0")
        self._apply(order, _E.AMEND_REQUEST, now_ns)
        count = order.filled + remaining
        order.amend_price = price
        order.amend_qty = count
        return count

    def request_cancel(self, key: str, now_ns: int) -> str:
        """Moves an order to ``PENDING_CANCEL``.

        Returns:
            The exchange order id to cancel.

        Raises:
            UnknownOrder: if the order is not tracked.
            IllegalTransition: if the order is not ``RESTING`` or ``PENDING_AMEND``.
            ValueError: if the exchange order id is not known.
        """
        order = self.order(key)
        if order.order_id is None:
            raise ValueError(f"{order.client_order_id}: cannot cancel without an exchange id")
        self._apply(order, _E.CANCEL_REQUEST, now_ns)
        return order.order_id

    # The venue's answers

    def on_ack(
        self,
        key: str,
        order_id: str,
        now_ns: int,
        *,
        filled: Qty = 0,
        remaining: Qty | None = None,
    ) -> OrderState:
        """The create was accepted (``fill_count`` and ``remaining_count`` of the reply).

        A reply with nothing remaining ends the order: ``FILLED`` if it filled completely,
        ``CANCELED`` otherwise (an IOC remainder or a self-trade cancel).
        """
        order = self.order(key)
        self._bind(order, order_id)
        if filled > order.filled_venue:
            order.filled_venue = filled
        event = _E.ACK
        if remaining == 0:
            event = _E.FULL_FILL if order.filled >= order.qty else _E.VENUE_CANCEL
        self._apply(order, event, now_ns)
        self._apply_orphans(order, now_ns)
        self._note_unbooked(order, now_ns)
        return order.state

    def count_as_booked(self, key: str) -> None:
        """Takes the fills the venue reported for an order as booked already (an order
        adopted at start: the venue's position, which the run starts from, holds them)."""
        order = self.order(key)
        order.booked_floor = order.filled_venue
        self._forget_unbooked(order)

    def on_reject(self, key: str, now_ns: int) -> OrderState:
        """The create was refused (4xx): the order never rested."""
        return self._apply(self.order(key), _E.REJECT, now_ns)

    def on_amend_ack(
        self,
        key: str,
        now_ns: int,
        *,
        filled: Qty | None = None,
        remaining: Qty | None = None,
    ) -> OrderState:
        """The amend was accepted; the order now rests at the amended price and size.

        Its size is the ``count`` the amend asked for (Kalshi: the new total max-fillable,
        filled plus resting). The answer's ``fill_count`` counts only the fills the amend
        itself caused (they arrive as fills too) and its ``remaining_count`` what rests after
        it, so neither says how much filled before: they are not used for the size.
        """
        order = self.order(key)
        self._apply(order, _E.AMEND_ACK, now_ns)
        if order.amend_price is not None and order.amend_qty is not None:
            order.price, order.qty = order.amend_price, order.amend_qty
            order.amend_price = order.amend_qty = None
            order.last_change_ns = now_ns
        return self._complete_if_filled(order, now_ns)

    def on_amend_reject(self, key: str, now_ns: int) -> OrderState:
        """The amend was refused; the order stands as it was."""
        order = self.order(key)
        self._apply(order, _E.AMEND_REJECT, now_ns)
        order.amend_price = order.amend_qty = None
        return self._complete_if_filled(order, now_ns)

    def on_cancel_ack(self, key: str, now_ns: int) -> OrderState:
        """The cancel was accepted."""
        return self._apply(self.order(key), _E.CANCEL_ACK, now_ns)

    def on_cancel_reject(self, key: str, now_ns: int) -> OrderState:
        """The cancel was refused; the order goes ``UNKNOWN`` until reconciled."""
        return self._apply(self.order(key), _E.CANCEL_REJECT, now_ns)

    def on_venue_cancel(self, key: str, now_ns: int) -> OrderState:
        """The venue cancelled the order on its own (close, pause, post-only, STP, group)."""
        return self._apply(self.order(key), _E.VENUE_CANCEL, now_ns)

    def on_unknown(self, key: str, now_ns: int) -> OrderState:
        """A request about the order timed out, failed with a 5xx/429, or its stream was lost."""
        return self._apply(self.order(key), _E.TIMEOUT, now_ns)

    def on_fill(self, fill: Fill, now_ns: int) -> FillOutcome:
        """Counts one fill against its order, once per ``trade_id``.

        The order moves to ``FILLED`` when the fills reach its size, else it records a
        partial fill. A fill for an order not known yet is kept until its ack arrives.
        """
        if fill.trade_id in self._seen:
            return FillOutcome.DUPLICATE
        order = self._by_oid.get(fill.order_id)
        if order is None and fill.client_order_id is not None:
            order = self._by_cid.get(fill.client_order_id)
        if order is None:
            self._keep_orphan(fill)
            return FillOutcome.UNMATCHED
        self._seen.add(fill.trade_id)
        if order.order_id is None:
            self._bind(order, fill.order_id)
        order.filled_seen += fill.qty
        self._fill_event(order, now_ns)
        self._book_unbooked(order)
        return FillOutcome.APPLIED

    def reconcile(
        self,
        key: str,
        found: OrderState,
        now_ns: int,
        *,
        order_id: str | None = None,
        price: Price | None = None,
        filled: Qty | None = None,
        remaining: Qty | None = None,
    ) -> OrderState | None:
        """Applies the venue's view of one order (a ``user_order`` update or a poll).

        Args:
            key: Client order id or exchange order id.
            found: ``RESTING``, ``CANCELED`` or ``FILLED`` (Kalshi's resting, canceled,
                executed).
            now_ns: The current time.
            order_id: The exchange order id, bound if not known yet.
            price: The YES price the venue holds the order at.
            filled: The venue's fill count.
            remaining: The venue's remaining count.

        Returns:
            The order's new state, or ``None`` if the order is not tracked (a stray: the
            caller decides whether to cancel it).

        Raises:
            ValueError: if ``found`` is not one of the three venue states.
        """
        event = _RECONCILE_EVENT.get(found)
        if event is None:
            raise ValueError(f"{key}: the venue cannot report an order as {found}")
        order = self.get(key)
        if order is None:
            return None
        if order_id is not None:
            self._bind(order, order_id)
        self._apply(order, event, now_ns)
        if order.state is _S.RESTING:
            # Only a settled order lands here (an amend in flight stays PENDING_AMEND), so
            # the venue's price and size are the truth
            self._adopt_venue_order(order, price, now_ns)
        self._adopt_counts(order, filled, remaining)
        self._apply_orphans(order, now_ns)
        state = self._complete_if_filled(order, now_ns)
        self._note_unbooked(order, now_ns)
        return state

    # Internals

    def _apply(self, order: TrackedOrder, event: OrderEvent, now_ns: int) -> OrderState:
        old = order.state
        new = next_state(order.client_order_id, old, event)
        order.state = new
        order.last_event = event
        if new in TERMINAL_STATES and old not in TERMINAL_STATES:
            self._retire(order)
            self._note_unbooked(order, now_ns)
        return new

    def _note_unbooked(self, order: TrackedOrder, now_ns: int) -> None:
        """Keeps an order whose reported fills are not all seen (see the module doc)."""
        if order.unbooked:
            by_cid = self._unbooked.setdefault(order.ticker, {})
            by_cid.setdefault(order.client_order_id, (order, now_ns))

    def _book_unbooked(self, order: TrackedOrder) -> None:
        """Forgets an ended order's unbooked fills once they have all been seen."""
        if not order.unbooked:
            self._forget_unbooked(order)

    def _forget_unbooked(self, order: TrackedOrder) -> None:
        orders = self._unbooked.get(order.ticker)
        if orders is None:
            return
        orders.pop(order.client_order_id, None)
        if not orders:
            del self._unbooked[order.ticker]

    def _bind(self, order: TrackedOrder, order_id: str) -> None:
        if order.order_id is None:
            order.order_id = order_id
            self._by_oid[order_id] = order
        elif order.order_id != order_id:
            raise WireError(
                "order",
                f"{order.client_order_id}: exchange id {order_id!r} does not match "
                f"{order.order_id!r}",
                field="order_id",
            )

    def _fill_event(self, order: TrackedOrder, now_ns: int) -> None:
        size = order.qty
        if order.amend_qty is not None and order.amend_qty > size:
            size = order.amend_qty
        full = order.filled >= size
        self._apply(order, _E.FULL_FILL if full else _E.PARTIAL_FILL, now_ns)

    def _complete_if_filled(self, order: TrackedOrder, now_ns: int) -> OrderState:
        if order.state is _S.RESTING and order.filled >= order.qty:
            self._apply(order, _E.FULL_FILL, now_ns)
        return order.state

    def _adopt_counts(self, order: TrackedOrder, filled: Qty | None, remaining: Qty | None) -> None:
        if filled is None:
            return
        if filled > order.filled_venue:
            order.filled_venue = filled
        if remaining is not None and order.state is _S.RESTING:
            order.qty = filled + remaining

    def _adopt_venue_order(self, order: TrackedOrder, price: Price | None, now_ns: int) -> None:
        order.amend_price = order.amend_qty = None
        if price is not None and price != order.price:
            order.price = price
            order.last_change_ns = now_ns

    def _retire(self, order: TrackedOrder) -> None:
        book = self._live.get(order.ticker)
        if book is not None:
            book.pop(order.client_order_id, None)
            if not book:
                del self._live[order.ticker]
        ended = self._ended
        ended.append(order)
        while len(ended) > self._history:
            old = ended.popleft()
            self._by_cid.pop(old.client_order_id, None)
            self._forget_unbooked(old)
            if old.order_id is not None:
                self._by_oid.pop(old.order_id, None)

    def _keep_orphan(self, fill: Fill) -> None:
        orphans = self._orphans
        trades = orphans.get(fill.order_id)
        if trades is None:
            if len(orphans) >= self._orphan_limit:
                del orphans[next(iter(orphans))]
            trades = orphans[fill.order_id] = {}
        trades[fill.trade_id] = fill.qty

    def _apply_orphans(self, order: TrackedOrder, now_ns: int) -> None:
        if not self._orphans or order.order_id is None:
            return
        trades = self._orphans.pop(order.order_id, None)
        if not trades:
            return
        for trade_id, qty in trades.items():
            if self._seen.add(trade_id):
                order.filled_seen += qty
        self._fill_event(order, now_ns)
        self._book_unbooked(order)
