"""The capture-replay exchange: our virtual orders against a recorded Kalshi feed.

Theory of operation
-------------------
:class:`ReplayExchange` is the venue model of a capture backtest. It reads a capture's frames
(``kmm.record.iter_capture``; docs/capture.md) in order and keeps each market's book from
the captured ``orderbook_snapshot`` / ``orderbook_delta`` messages. The driver calls
:meth:`ReplayExchange.advance` to move time forward and receives the frames the trading core
would have received by then: the capture's **public** frames unchanged (books, tickers,
trades, lifecycle, and the ``subscribed`` replies of those channels), with their receive
times, plus **our** private frames (``fill``, ``user_order``, ``market_position``) in
Kalshi's format, built with the local exchange's frame builders. The capture's own private
frames (another run's fills and orders) are dropped.

Orders go through :meth:`create_order`, :meth:`amend_order` and :meth:`batch_cancel`, which
answer with the same types the REST client returns (``CreateAck``, ``BatchItem``) or raise
``Rejected`` with Kalshi's codes, so the driver can answer the core exactly as live.

Matching rules
~~~~~~~~~~~~~~
* **No market impact**: the captured book is never changed by our orders. A resting order
  is virtual; it joins the back of its level behind the captured quantity at that moment
  (:meth:`QueuePos.join <kmm.backtest.queue.QueuePos.join>`).
* A captured ``trade`` hits one side of the book: ``taker_side`` ``yes`` (the taker bought
  YES) hits the YES asks, ``no`` hits the YES bids, at ``yes_price_dollars``. At our price
  it advances / fills us through the queue model; at a price beyond ours (the book traded
  through our level) it fills us up to its ``count_fp``
  (:func:`~kmm.backtest.queue.fill_through`).
* The book's decrease that a trade causes arrives again as an ``orderbook_delta``, before
  or after the print. Each level keeps a "traded, not yet seen in the book" counter and a
  "decreased, no trade yet" counter that pair up; only a decrease left unpaired for
  ``pair_window_ns`` (or followed by another change at its level) reaches the queue model
  as a cancel, so a trade never advances us twice. Until then a decrease does not move us
  (the conservative model would otherwise cap ``ahead`` at the shrunken level, a second
  advance).
* A post-only order that would cross the captured opposite best is refused with Kalshi's
  post-only error (400 ``invalid_order``, "post only cross"). A non-post-only order that
  crosses takes the captured opposite levels up to its limit (taker fee), again without
  changing the book; an immediate-or-cancel remainder is canceled, a good-till-canceled one
  rests.
* Maker fills pay the series' maker fee (``kmm.sim._accounts.FeeModel``). Positions are
  netted YES against NO as Kalshi does: buying YES while holding NO closes pairs that pay
  out $1 each.
* A market closes at its ``close_ns`` or on a ``market_lifecycle_v2`` ``closed`` /
  ``determined`` / ``settled`` / ``deactivated`` event: its resting orders are canceled and
  new orders are refused (409 ``market_closed``).

The class is pure: no I/O (the frames come from an iterable), no clock (every call carries
``now_ns``), no awaiting.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Final

import orjson

from kmm.backtest.queue import QueueModel, QueuePos, fill_through
from kmm.book.grid import PriceGrid
from kmm.errors import MarketClosed, Rejected, VenueError
from kmm.kalshi.rest import BatchItem, CreateAck, OrderRequest, VenueOrder, VenuePosition
from kmm.record._markets import MarketMeta
from kmm.sim import _ws_frames as frames
from kmm.sim._accounts import FeeModel
from kmm.sim._model import OrderStatus, Position, SelfTradePrevention, TimeInForce
from kmm.sim.engine import PositionUpdate, SimFill, SimOrder
from kmm.types import ONE_DOLLAR, BookSide, Fill, Money, Price, Qty, parse_count, parse_price

__all__ = ["PRIVATE_SIDS", "ReplayExchange"]

PUBLIC_TYPES: Final = frozenset(
    {"orderbook_snapshot", "orderbook_delta", "ticker", "trade", "market_lifecycle_v2"}
)
PUBLIC_CHANNELS: Final = frozenset({"orderbook_delta", "ticker", "trade", "market_lifecycle_v2"})
PRIVATE_SIDS: Final[Mapping[str, int]] = {"fill": 901, "user_order": 902, "market_position": 903}
"""The ``sid`` stamped on our private frames, by message type (the driver subscribes them)."""
_CLOSING_EVENTS: Final = frozenset({"closed", "determined", "settled", "deactivated"})
_NS_PER_MS: Final = 1_000_000
_USER_ID: Final = "replay-user"
_HEADS: Final = {name: b'{"type":"%b","sid":' % name.encode() for name in PRIVATE_SIDS}


@dataclass(slots=True)
class _Order:
    order_id: str
    client_order_id: str | None
    ticker: str
    side: BookSide
    price: Price
    initial: Qty
    queue: QueuePos
    created_ns: int
    updated_ns: int
    post_only: bool
    time_in_force: str
    filled: Qty = 0
    status: OrderStatus = OrderStatus.RESTING
    maker_cost: Money = 0
    maker_fees: Money = 0
    taker_cost: Money = 0
    taker_fees: Money = 0


@dataclass(slots=True)
class _Position:
    position: Qty = 0
    exposure: Money = 0
    realized: Money = 0
    fees: Money = 0
    traded: Money = 0
    volume: Qty = 0


@dataclass(slots=True)
class _Pending:
    """A level change not yet paired: a trade not yet seen in the book, or a decrease of the
    book no trade has explained yet (``level_before`` is the level just before it)."""

    qty: Qty
    since_ns: int
    level_before: Qty = 0


@dataclass(slots=True)
class _Market:
    meta: MarketMeta
    grid: PriceGrid
    fees: FeeModel
    levels: dict[BookSide, dict[Price, Qty]] = field(
        default_factory=lambda: {BookSide.BID: {}, BookSide.ASK: {}}
    )
    unseen: dict[tuple[BookSide, Price], _Pending] = field(default_factory=dict)
    pending: dict[tuple[BookSide, Price], _Pending] = field(default_factory=dict)
    closed: bool = False


def _qty(table: Mapping[tuple[BookSide, Price], _Pending], key: tuple[BookSide, Price]) -> Qty:
    item = table.get(key)
    return item.qty if item is not None else 0


def _take(
    table: dict[tuple[BookSide, Price], _Pending], key: tuple[BookSide, Price], qty: Qty
) -> Qty:
    """Pairs up to ``qty`` with the table's entry at ``key``; returns how much it paired."""
    item = table.get(key)
    if item is None:
        return 0
    paired = min(item.qty, qty)
    item.qty -= paired
    if not item.qty:
        del table[key]
    return paired


def _cost(side: BookSide, price: Price, qty: Qty) -> Money:
    """What buying ``qty`` costs: YES at ``price`` for a bid, NO at ``1 - price`` for an ask."""
    return (price if side is BookSide.BID else ONE_DOLLAR - price) * qty


class ReplayExchange:
    """A venue model replaying a capture; see the module docstring for the matching rules.

    Args:
        frames: ``(recv_ns, frame)`` pairs in receive order (e.g. ``iter_capture(path)``).
        markets: The markets' static facts (``load_markets_json``), by ticker; frames of
            other markets are passed through but cannot be traded.
        queue: The queue-position model.
        balance: Our starting cash in money units ($0.000001).
        use_yes_price: Whether the capture's book subscriptions used ``use_yes_price``
            (``kmm capture`` does): NO levels then come at YES prices.
        pair_window_ns: How long a book decrease waits for the trade print that explains
            it (and a trade for its book decrease), in either order, before the decrease
            counts as a cancel (default 100 ms; the local exchange sends the delta first,
            with the trade right behind it).

    Attributes:
        skipped: Captured frames that could not be decoded (counted and skipped).
    """

    def __init__(
        self,
        frames: Iterable[tuple[int, bytes | str]],
        markets: Mapping[str, MarketMeta],
        queue: QueueModel,
        *,
        balance: Money,
        use_yes_price: bool = True,
        pair_window_ns: int = 100_000_000,
    ) -> None:
        self._frames: Iterator[tuple[int, bytes | str]] = iter(frames)
        self._next: tuple[int, bytes | str] | None = next(self._frames, None)
        self._markets = {
            t: _Market(m, m.grid, FeeModel(m.fee_type, Fraction(m.fee_multiplier)))
            for t, m in markets.items()
        }
        self._queue = queue
        self._balance = balance
        self._yes_price = use_yes_price
        self._window = pair_window_ns
        self._orders: dict[str, _Order] = {}
        self._coids: set[str] = set()
        self._positions: dict[str, _Position] = {}
        self._fills: list[Fill] = []
        self._out: list[tuple[int, bytes]] = []
        self._seq = 0
        self._trades = 0
        self.skipped = 0

    # ------------------------------------------------------------------ time

    def next_time_ns(self) -> int | None:
        """The receive time of the next captured frame, or None at the end of the capture."""
        return self._next[0] if self._next is not None else None

    def advance(self, until_ns: int) -> list[tuple[int, bytes]]:
        """Replays every captured frame received at or before ``until_ns``.

        Returns:
            The frames to deliver to the core in time order: the public captured frames
            (unchanged) and our private frames, each with its time.
        """
        while self._next is not None and self._next[0] <= until_ns:
            recv_ns, frame = self._next
            self._next = next(self._frames, None)
            self._close_due(recv_ns)
            self._expire(recv_ns)
            data = frame.encode() if isinstance(frame, str) else frame
            try:
                self._apply(recv_ns, data)
            except (KeyError, TypeError, ValueError, AttributeError, orjson.JSONDecodeError):
                self.skipped += 1
        self._close_due(until_ns)
        self._expire(until_ns)
        ready = [item for item in self._out if item[0] <= until_ns]
        self._out = [item for item in self._out if item[0] > until_ns]
        ready.sort(key=lambda item: item[0])
        return ready

    def _close_due(self, now_ns: int) -> None:
        for ticker, mkt in self._markets.items():
            close_ns = mkt.meta.close_ns
            if not mkt.closed and close_ns is not None and now_ns >= close_ns:
                self._close(ticker, mkt, close_ns)

    def _close(self, ticker: str, mkt: _Market, now_ns: int) -> None:
        mkt.closed = True
        for order in self._resting(ticker):
            self._cancel(order, now_ns)

    # ------------------------------------------------------------------ frames

    def _apply(self, recv_ns: int, data: bytes) -> None:
        """Passes one captured frame through (if public), then applies it.

        Our fills caused by a trade are queued after the trade itself.
        """
        frame = orjson.loads(data)
        kind = frame.get("type")
        if kind == "subscribed":
            if frame["msg"].get("channel") in PUBLIC_CHANNELS:
                self._out.append((recv_ns, data))
            return
        if kind not in PUBLIC_TYPES:
            return
        msg: dict[str, Any] = frame["msg"]
        ticker = msg["market_ticker"]
        self._out.append((recv_ns, data))
        mkt = self._markets.get(ticker)
        if mkt is None:
            return
        if kind == "orderbook_snapshot":
            self._snapshot(ticker, mkt, msg)
        elif kind == "orderbook_delta":
            self._delta(ticker, mkt, msg, recv_ns)
        elif kind == "trade":
            self._trade(ticker, mkt, msg, recv_ns)
        elif (
            kind == "market_lifecycle_v2"
            and msg.get("event_type") in _CLOSING_EVENTS
            and not mkt.closed
        ):
            self._close(ticker, mkt, recv_ns)

    def _yes(self, price: Price, is_yes: bool) -> Price:
        return price if is_yes or self._yes_price else ONE_DOLLAR - price

    def _snapshot(self, ticker: str, mkt: _Market, msg: Mapping[str, Any]) -> None:
        bids = {parse_price(p): parse_count(q) for p, q in msg.get("yes_dollars_fp") or ()}
        asks = {
            self._yes(parse_price(p), False): parse_count(q)
            for p, q in msg.get("no_dollars_fp") or ()
        }
        mkt.levels = {BookSide.BID: bids, BookSide.ASK: asks}
        mkt.unseen.clear()
        mkt.pending.clear()
        for order in self._resting(ticker):
            level = mkt.levels[order.side].get(order.price, 0)
            order.queue.ahead = min(order.queue.ahead, level)

    def _delta(self, ticker: str, mkt: _Market, msg: Mapping[str, Any], recv_ns: int) -> None:
        is_yes = msg["side"] == "yes"
        side = BookSide.BID if is_yes else BookSide.ASK
        price = self._yes(parse_price(msg["price_dollars"]), is_yes)
        delta = parse_count(msg["delta_fp"])
        key = (side, price)
        if key in mkt.pending:  # an earlier decrease at this level no trade explained
            self._cancel_at(ticker, mkt, key, mkt.pending.pop(key))
        levels = mkt.levels[side]
        before = levels.get(price, 0)
        after = max(before + delta, 0)
        if after:
            levels[price] = after
        else:
            levels.pop(price, None)
        if delta >= 0:
            return
        rest = -delta - _take(mkt.unseen, key, -delta)
        if rest:  # maybe the trade print is still to come: decide later
            mkt.pending[key] = _Pending(rest, recv_ns, before + delta + rest)

    def _cancel_at(
        self, ticker: str, mkt: _Market, key: tuple[BookSide, Price], cancel: _Pending
    ) -> None:
        """A decrease no trade explained: a cancel for the queue model."""
        side, price = key
        level = mkt.levels[side].get(price, 0)
        for order in self._resting(ticker):
            if order.side is side and order.price == price:
                self._queue.on_level_decrease(order.queue, cancel.qty, cancel.level_before)
                order.queue.ahead = min(order.queue.ahead, level + _qty(mkt.unseen, key))

    def _expire(self, now_ns: int) -> None:
        """Pairs that did not come within the window: decreases become cancels."""
        cutoff = now_ns - self._window
        for ticker, mkt in self._markets.items():
            for key, item in list(mkt.pending.items()):
                if item.since_ns < cutoff:
                    del mkt.pending[key]
                    self._cancel_at(ticker, mkt, key, item)
            for key, item in list(mkt.unseen.items()):
                if item.since_ns < cutoff:
                    del mkt.unseen[key]

    def _trade(self, ticker: str, mkt: _Market, msg: Mapping[str, Any], recv_ns: int) -> None:
        price = parse_price(msg["yes_price_dollars"])
        count = parse_count(msg["count_fp"])
        hit = BookSide.ASK if msg["taker_side"] == "yes" else BookSide.BID
        key = (hit, price)
        unseen = count - _take(mkt.pending, key, count)
        if unseen:
            item = mkt.unseen.setdefault(key, _Pending(0, recv_ns))
            item.qty += unseen
        for order in self._resting(ticker):
            if order.side is not hit:
                continue
            beyond = price > order.price if hit is BookSide.ASK else price < order.price
            if order.price == price:
                filled = self._queue.on_trade(order.queue, count)
            elif beyond:
                filled = fill_through(order.queue, count)
            else:
                continue
            if filled:
                self._fill(mkt, order, order.price, filled, False, recv_ns)

    # ------------------------------------------------------------------ our fills

    def _fill(
        self, mkt: _Market, order: _Order, price: Price, qty: Qty, taker: bool, now_ns: int
    ) -> None:
        fee = mkt.fees.taker(price, qty) if taker else mkt.fees.maker(price, qty)
        order.filled += qty
        if not taker:
            order.queue.remaining = min(order.queue.remaining, order.initial - order.filled)
        cost = _cost(order.side, price, qty)
        if taker:
            order.taker_cost += cost
            order.taker_fees += fee
        else:
            order.maker_cost += cost
            order.maker_fees += fee
        order.updated_ns = now_ns
        if order.filled >= order.initial:
            order.status = OrderStatus.EXECUTED
            order.queue.remaining = 0
        pos = self._book_position(order.ticker, order.side, price, qty, fee)
        self._trades += 1
        trade_id = f"replay-{self._trades}"
        self._fills.append(
            Fill(
                trade_id,
                order.order_id,
                order.ticker,
                order.side,
                price,
                qty,
                fee,
                taker,
                now_ns // _NS_PER_MS,
                order.client_order_id,
                pos.position,
            )
        )
        sim_fill = SimFill(
            trade_id,
            order.order_id,
            _USER_ID,
            order.client_order_id,
            order.ticker,
            order.side,
            price,
            qty,
            taker,
            fee,
            pos.position,
            now_ns,
        )
        self._emit("fill", now_ns, frames.fill(sim_fill))
        self._emit("user_order", now_ns, frames.user_order(self._sim_order(order)))
        self._emit_position(order.ticker, pos, now_ns)

    def _book_position(
        self, ticker: str, side: BookSide, price: Price, qty: Qty, fee: Money
    ) -> _Position:
        """Nets a fill into the position (YES positive) and the cash balance."""
        pos = self._positions.setdefault(ticker, _Position())
        sign = 1 if side is BookSide.BID else -1
        paid = _cost(side, price, qty)
        opposite = -pos.position * sign  # what we hold of the other leg
        closing = min(qty, max(opposite, 0))
        if closing:
            removed = pos.exposure * closing // opposite
            pos.exposure -= removed
            paid_close = _cost(side, price, closing)
            pos.realized += ONE_DOLLAR * closing - paid_close - removed
            self._balance += ONE_DOLLAR * closing
        pos.exposure += paid - _cost(side, price, closing)
        pos.position += sign * qty
        pos.fees += fee
        pos.traded += paid
        pos.volume += qty
        self._balance -= paid + fee
        return pos

    def _emit(self, kind: str, now_ns: int, body: bytes) -> None:
        self._out.append((now_ns, frames.data_frame(_HEADS[kind], PRIVATE_SIDS[kind], body)))

    def _emit_position(self, ticker: str, pos: _Position, now_ns: int) -> None:
        snapshot = Position(pos.position, pos.exposure, pos.realized, pos.fees, pos.traded, now_ns)
        update = PositionUpdate(_USER_ID, ticker, snapshot, now_ns)
        self._emit("market_position", now_ns, frames.market_position(update, pos.volume))

    def _sim_order(self, order: _Order) -> SimOrder:
        return SimOrder(
            order.order_id,
            _USER_ID,
            order.client_order_id,
            order.ticker,
            order.side,
            order.price,
            order.initial,
            order.filled,
            self._remaining(order),
            order.status,
            TimeInForce(order.time_in_force),
            SelfTradePrevention.TAKER_AT_CROSS,
            order.post_only,
            False,
            False,
            None,
            None,
            order.created_ns,
            order.updated_ns,
            order.taker_cost,
            order.maker_cost,
            order.taker_fees,
            order.maker_fees,
        )

    # ------------------------------------------------------------------ order entry

    def _market(self, ticker: str, now_ns: int) -> _Market:
        mkt = self._markets.get(ticker)
        if mkt is None:
            raise Rejected(404, "not_found", f"market {ticker} not found")
        self._close_due(now_ns)
        if mkt.closed:
            raise MarketClosed(409, "market_closed", f"market {ticker} is closed")
        return mkt

    @staticmethod
    def _crosses(mkt: _Market, side: BookSide, price: Price) -> bool:
        if side is BookSide.BID:
            asks = mkt.levels[BookSide.ASK]
            return bool(asks) and price >= min(asks)
        bids = mkt.levels[BookSide.BID]
        return bool(bids) and price <= max(bids)

    def _check(self, mkt: _Market, side: BookSide, price: Price, count: Qty) -> None:
        if not mkt.grid.is_valid(price):
            raise Rejected(400, "invalid_price", f"invalid price: {price} is not a valid price")
        if count < 1:
            raise Rejected(400, "invalid_order_size", "count must be at least 0.01")
        if _cost(side, price, count) > self.available():
            raise Rejected(400, "insufficient_balance", "available balance too low")

    def available(self) -> Money:
        """Cash not reserved by resting orders (what a new order may spend), in money units."""
        reserved = sum(
            _cost(o.side, o.price, self._remaining(o))
            for o in self._orders.values()
            if self._live(o)
        )
        return self._balance - reserved

    @property
    def balance(self) -> Money:
        """Our cash balance in money units."""
        return self._balance

    def create_order(self, req: OrderRequest, now_ns: int) -> CreateAck:
        """Places a virtual order (``POST /portfolio/events/orders``).

        Raises:
            Rejected: 404 ``not_found`` (market), 400 ``invalid_price``,
                ``invalid_order_size``, ``insufficient_balance``, ``invalid_order`` (post
                only cross), 409 ``order_already_exists``.
            MarketClosed: 409 ``market_closed``.
        """
        mkt = self._market(req.ticker, now_ns)
        self._check(mkt, req.side, req.price, req.count)
        if req.client_order_id in self._coids:
            raise Rejected(409, "order_already_exists", "client_order_id already used")
        crosses = self._crosses(mkt, req.side, req.price)
        if crosses and req.post_only:
            raise Rejected(400, "invalid_order", "post only cross")
        self._seq += 1
        self._coids.add(req.client_order_id)
        order = _Order(
            f"00000002-0000-4000-8000-{self._seq:012x}",
            req.client_order_id,
            req.ticker,
            req.side,
            req.price,
            req.count,
            QueuePos.join(mkt.levels[req.side].get(req.price, 0), req.count),
            now_ns,
            now_ns,
            req.post_only,
            req.time_in_force,
        )
        self._orders[order.order_id] = order
        if crosses:
            self._take(mkt, order, now_ns)
        if order.status is OrderStatus.RESTING and req.time_in_force != TimeInForce.GTC:
            order.status = OrderStatus.CANCELED
        if order.status is OrderStatus.RESTING:
            order.queue = QueuePos.join(
                mkt.levels[req.side].get(req.price, 0), order.initial - order.filled
            )
        self._emit("user_order", now_ns, frames.user_order(self._sim_order(order)))
        return CreateAck(
            order.order_id,
            order.client_order_id,
            order.filled,
            self._remaining(order),
            now_ns // _NS_PER_MS,
        )

    def _take(self, mkt: _Market, order: _Order, now_ns: int) -> None:
        """Fills a crossing order against the captured opposite levels (book unchanged)."""
        opposite = mkt.levels[BookSide.ASK if order.side is BookSide.BID else BookSide.BID]
        prices = sorted(opposite, reverse=order.side is BookSide.ASK)
        for price in prices:
            left = order.initial - order.filled
            if left <= 0 or not self._crosses_at(order, price):
                break
            self._fill(mkt, order, price, min(left, opposite[price]), True, now_ns)

    @staticmethod
    def _crosses_at(order: _Order, price: Price) -> bool:
        return price <= order.price if order.side is BookSide.BID else price >= order.price

    def amend_order(
        self, order_id: str, *, price: Price, count: Qty, side: BookSide, now_ns: int
    ) -> CreateAck:
        """Changes a resting order's price and/or total size (filled plus remaining).

        It keeps its queue place only when the price is unchanged and the remaining size
        decreases; otherwise it rejoins the back of its (new) level.

        Raises:
            Rejected: 404 ``not_found``, 400 ``order_side_mismatch``, ``invalid_price``,
                ``invalid_order_size``, ``invalid_order`` (post only cross).
            MarketClosed: 409 ``market_closed``.
        """
        order = self._own(order_id)
        mkt = self._market(order.ticker, now_ns)
        if side is not order.side:
            raise Rejected(400, "order_side_mismatch", f"order {order_id} is a {order.side}")
        if not self._live(order):
            raise Rejected(404, "not_found", f"order {order_id} is not resting")
        remaining = count - order.filled
        if remaining <= 0:
            raise Rejected(400, "invalid_order_size", "count must exceed the filled count")
        if not mkt.grid.is_valid(price):
            raise Rejected(400, "invalid_price", f"invalid price: {price} is not a valid price")
        if order.post_only and self._crosses(mkt, side, price):
            raise Rejected(400, "invalid_order", "post only cross")
        if price == order.price and remaining < order.queue.remaining:
            order.queue.remaining = remaining
        else:
            order.queue = QueuePos.join(mkt.levels[side].get(price, 0), remaining)
        order.price = price
        order.initial = count
        order.updated_ns = now_ns
        self._emit("user_order", now_ns, frames.user_order(self._sim_order(order)))
        return CreateAck(
            order.order_id, order.client_order_id, order.filled, remaining, now_ns // _NS_PER_MS
        )

    def batch_cancel(self, order_ids: Sequence[str], now_ns: int) -> list[BatchItem]:
        """Cancels orders (``DELETE /portfolio/events/orders/batched``), one item each.

        An item's ``remaining`` is the quantity canceled (Kalshi's ``reduced_by``); an
        unknown or no longer resting order gets a 404 ``not_found`` error item.
        """
        items: list[BatchItem] = []
        for order_id in order_ids:
            order = self._orders.get(order_id)
            if order is None or not self._live(order):
                err: VenueError = Rejected(404, "not_found", f"order {order_id} not found")
                items.append(BatchItem(order_id, None, 0, 0, err))
                continue
            reduced = self._cancel(order, now_ns)
            items.append(BatchItem(order_id, order.client_order_id, 0, reduced, None))
        return items

    def _cancel(self, order: _Order, now_ns: int) -> Qty:
        reduced = self._remaining(order)
        order.status = OrderStatus.CANCELED
        order.queue.remaining = 0
        order.updated_ns = now_ns
        self._emit("user_order", now_ns, frames.user_order(self._sim_order(order)))
        return reduced

    # ------------------------------------------------------------------ reads

    def _own(self, order_id: str) -> _Order:
        order = self._orders.get(order_id)
        if order is None:
            raise Rejected(404, "not_found", f"order {order_id} not found")
        return order

    @staticmethod
    def _live(order: _Order) -> bool:
        return order.status is OrderStatus.RESTING

    @staticmethod
    def _remaining(order: _Order) -> Qty:
        return order.initial - order.filled if order.status is OrderStatus.RESTING else 0

    def _resting(self, ticker: str) -> list[_Order]:
        return [o for o in self._orders.values() if o.ticker == ticker and self._live(o)]

    def best(self, ticker: str, side: BookSide) -> Price | None:
        """The captured best YES bid (``BID``) or YES ask (``ASK``) of a market, if any."""
        mkt = self._markets.get(ticker)
        levels = mkt.levels[side] if mkt is not None else None
        if not levels:
            return None
        return max(levels) if side is BookSide.BID else min(levels)

    def level(self, ticker: str, side: BookSide, price: Price) -> Qty:
        """The captured quantity at one level (0 if none)."""
        mkt = self._markets.get(ticker)
        return mkt.levels[side].get(price, 0) if mkt is not None else 0

    def queue_position(self, order_id: str) -> Qty:
        """The model's quantity ahead of a resting order (0 once it is not resting).

        Raises:
            Rejected: 404 ``not_found``.
        """
        order = self._own(order_id)
        return order.queue.ahead if self._live(order) else 0

    def order(self, order_id: str) -> VenueOrder:
        """One of our orders as ``GET /portfolio/orders/{id}`` reports it.

        Raises:
            Rejected: 404 ``not_found``.
        """
        o = self._own(order_id)
        return VenueOrder(
            o.order_id,
            o.client_order_id,
            o.ticker,
            o.side,
            o.price,
            o.filled,
            self._remaining(o),
            str(o.status),
        )

    def resting_orders(self) -> list[VenueOrder]:
        """Our resting orders, oldest first."""
        return [self.order(o.order_id) for o in self._orders.values() if self._live(o)]

    def fills(self) -> list[Fill]:
        """Every fill of ours so far, in order."""
        return list(self._fills)

    def positions(self) -> list[VenuePosition]:
        """Our position in every market we traded (YES positive, NO negative)."""
        return [
            VenuePosition(t, p.position, p.realized, p.fees, p.exposure)
            for t, p in self._positions.items()
        ]
