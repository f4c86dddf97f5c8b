"""The matching engine's state and its hot path: match, fill, rest, cancel.

:class:`MatchCore` holds every market, account and order and does the work that runs per
order and per fill; :class:`kmm.sim.engine.MatchingEngine` adds the public operations on
top. The code here is written for speed: local variables for attribute chains, few calls per
fill, and no ``Fraction`` or ``Decimal`` (see ``kmm.sim._accounts`` for the money rules and
``kmm.sim._book`` for the book).

Events are appended to ``_out`` in the order things happen. Per match: a :class:`BookChange`
for the consumed level, a :class:`TradePrint`, then for the taker and for the maker a
:class:`FillEvent`, an :class:`OrderUpdate` and a :class:`PositionUpdate`. With
``record_events`` off (a backtest that reads fills and positions directly) these per-order
events are skipped, which saves about a third of the engine's time; lifecycle and
order-group events are always recorded.
"""

from __future__ import annotations

from heapq import heappush
from typing import Final

from kmm.book.grid import PriceGrid
from kmm.sim._accounts import BALANCE_PRECISION, Account, FeeModel, MarketAccount
from kmm.sim._book import Book, Level, OrderEntry
from kmm.sim._groups import Group
from kmm.sim._model import (
    BookChange,
    EngineEvent,
    EventDef,
    FillEvent,
    MarketDef,
    MarketStatus,
    OrderGroupUpdate,
    OrderStatus,
    OrderUpdate,
    Position,
    PositionUpdate,
    Rejection,
    SelfTradePrevention,
    SeriesDef,
    SimFill,
    SimOrder,
    TimeInForce,
    TradePrint,
)
from kmm.types import ONE_CENT, ONE_DOLLAR, Money, Outcome, Price, Qty, format_money

__all__ = [
    "OPEN",
    "OUTCOMES",
    "Market",
    "MatchCore",
    "balance_too_low",
    "position_of",
    "snapshot",
]

OUTCOMES: Final = (Outcome.YES, Outcome.NO)
_NS_PER_S: Final = 1_000_000_000
_GTC: Final = TimeInForce.GTC
_EXECUTED: Final = OrderStatus.EXECUTED
_CANCELED: Final = OrderStatus.CANCELED
_TAKER_AT_CROSS: Final = SelfTradePrevention.TAKER_AT_CROSS
OPEN: Final = frozenset({MarketStatus.ACTIVE, MarketStatus.INACTIVE, MarketStatus.INITIALIZED})
"""The statuses in which a market takes order operations (``initialized``/``inactive``: cancels)."""


def snapshot(o: SimOrder) -> SimOrder:
    """A copy of an order (positional construction is the fastest copy of a slots class)."""
    return SimOrder(
        o.order_id,
        o.user_id,
        o.client_order_id,
        o.ticker,
        o.book_side,
        o.price,
        o.initial,
        o.filled,
        o.remaining,
        o.status,
        o.time_in_force,
        o.self_trade_prevention,
        o.post_only,
        o.reduce_only,
        o.cancel_order_on_pause,
        o.order_group_id,
        o.expiration_s,
        o.created_ns,
        o.updated_ns,
        o.taker_fill_cost,
        o.maker_fill_cost,
        o.taker_fees,
        o.maker_fees,
        o.last_update_reason,
        o.subaccount,
    )


def position_of(m: MarketAccount) -> Position:
    """A snapshot of one market account's position."""
    return Position(m.position, m.cost, m.realized, m.fees_paid, m.total_traded, m.updated_ns)


def _valid_prices(ranges: tuple[tuple[Price, Price, Price], ...]) -> frozenset[Price]:
    """Every valid price: a whole number of steps from a band's start, inside the band."""
    PriceGrid.from_ranges(ranges)  # refuses malformed bands, naming the band
    return frozenset(
        price
        for start, end, step in ranges
        for price in range(start, end + 1, step)
        if 0 < price < ONE_DOLLAR
    )


class Market:
    """A market's definition with its book, fee model and statistics."""

    __slots__ = (
        "_rounding_lot",
        "book",
        "defn",
        "fees",
        "holders",
        "last_price",
        "lots",
        "open_interest",
        "ticker",
        "trades",
        "valid",
        "volume",
    )

    def __init__(self, defn: MarketDef, fees: FeeModel) -> None:
        self.defn = defn
        self.ticker = defn.ticker
        self.fees = fees
        self.book = Book(defn.ticker)
        self.valid = _valid_prices(defn.price_ranges)
        sub_cent = any(price % ONE_CENT for price in self.valid)
        self._rounding_lot: Money = BALANCE_PRECISION - 1 if sub_cent else 0
        self.lots: dict[Price, Money] = {}
        self.holders: dict[tuple[str, int], Account] = {}
        self.trades: list[TradePrint] = []
        self.last_price: Price | None = None
        self.volume: Qty = 0
        self.open_interest: Qty = 0

    def lot_reserve(self, own_price: Price) -> Money:
        """What an order buying at ``own_price`` reserves per 0.01 contract for fees."""
        reserve = self.lots.get(own_price)
        if reserve is None:
            reserve = self.fees.lot_reserve(own_price) + self._rounding_lot
            self.lots[own_price] = reserve
        return reserve


class MatchCore:
    """The engine's state and per-order machinery (see the module docstring)."""

    def __init__(self, trade_id_prefix: str = "", *, record_events: bool = True) -> None:
        self._trade_prefix = trade_id_prefix
        self._record = record_events
        self._series: dict[str, SeriesDef] = {}
        self._event_defs: dict[str, EventDef] = {}
        self._market_defs: dict[str, MarketDef] = {}
        self._markets: dict[str, Market] = {}
        self._fee_models: dict[str, FeeModel] = {}
        self._accounts: dict[str, Account] = {}
        self._entries: dict[str, OrderEntry] = {}
        self._on_pause: dict[str, OrderEntry] = {}
        self._expiry: list[tuple[int, int, OrderEntry]] = []
        self._groups: dict[str, Group] = {}
        self._trades: list[TradePrint] = []
        self._out: list[EngineEvent] = []
        self._order_seq = 0
        self.lifecycle_version = 0
        """Counts every change of a market's status or close time (and every market added):
        what is derived from all markets' lifecycle is recomputed only when it moved."""
        self._schedule_due: tuple[int, int | None] = (-1, None)
        self._trade_seq = 0
        self._group_seq = 0
        self._expiry_seq = 0
        self._trading_active = True
        self._fees_collected: Money = 0

    # ------------------------------------------------------------------ lookups

    def _account(self, user_id: str, subaccount: int = 0) -> Account:
        """The user's primary account, or its numbered ``subaccount``.

        Raises:
            Rejection: 404 ``not_found`` for an unknown user or a subaccount not created.
        """
        account = self._accounts.get(user_id)
        if account is None:
            raise Rejection(404, "not_found", f"account {user_id} not found")
        if subaccount:
            found = account.subaccounts.get(subaccount)
            if found is None:
                raise Rejection(
                    404,
                    "not_found",
                    f"subaccount {subaccount} not found (create it with POST "
                    "/portfolio/subaccounts)",
                )
            return found
        return account

    def _market(self, ticker: str) -> Market:
        mkt = self._markets.get(ticker)
        if mkt is None:
            raise Rejection(404, "not_found", f"market {ticker} not found")
        return mkt

    # ------------------------------------------------------------------ reservations

    def _reserve(self, entry: OrderEntry, qty: Qty) -> None:
        """Adds ``qty`` of ``entry`` to its reservation, refusing what the user cannot afford."""
        macct = entry.macct
        side = entry.side
        macct.spend[side] += entry.own_price * qty
        macct.qty[side] += qty
        macct.fees[side] += entry.fee_lot * qty
        lock = macct.reservation()
        account = entry.account
        needed = lock - macct.lock
        if needed > account.cash - account.reserved:
            macct.spend[side] -= entry.own_price * qty
            macct.qty[side] -= qty
            macct.fees[side] -= entry.fee_lot * qty
            raise balance_too_low(account, needed)
        account.reserved += needed
        macct.lock = lock

    def _release(self, entry: OrderEntry, qty: Qty) -> None:
        """Takes ``qty`` of ``entry`` off its reservation."""
        macct = entry.macct
        side = entry.side
        macct.spend[side] -= entry.own_price * qty
        macct.qty[side] -= qty
        macct.fees[side] -= entry.fee_lot * qty
        lock = macct.reservation()
        entry.account.reserved += lock - macct.lock
        macct.lock = lock

    # ------------------------------------------------------------------ placing

    def _place(self, mkt: Market, entry: OrderEntry, now_ns: int) -> tuple[SimFill, ...]:
        """Matches an arriving order, then rests (GTC) or ends what is left; returns its fills."""
        order = entry.order
        prices = mkt.book.prices[1 - entry.side]
        if not prices or prices[-1] < ONE_DOLLAR - entry.own_price:
            if order.time_in_force is _GTC:
                self._rest(mkt, entry, now_ns)
            else:
                self._end(entry, now_ns)
            return ()
        fills: list[SimFill] = []
        stopped = self._take(mkt, entry, now_ns, fills)
        if order.remaining:
            if stopped or order.time_in_force is not _GTC:
                self._end(entry, now_ns)
            else:
                self._rest(mkt, entry, now_ns)
        return tuple(fills)

    def _rest(self, mkt: Market, entry: OrderEntry, now_ns: int) -> None:
        order = entry.order
        mkt.book.add(entry)
        if self._record:
            self._out.append(
                BookChange(
                    mkt.ticker,
                    OUTCOMES[entry.side],
                    entry.own_price,
                    order.remaining,
                    order.user_id,
                    order.client_order_id,
                    now_ns,
                    order.subaccount,
                )
            )
        if order.cancel_order_on_pause:
            self._on_pause[order.order_id] = entry
        if order.expiration_s is not None:
            self._expiry_seq += 1
            heappush(self._expiry, (order.expiration_s * _NS_PER_S, self._expiry_seq, entry))
        if entry.group is not None:
            entry.group.resting[order.order_id] = entry
        if self._record:
            self._out.append(OrderUpdate(snapshot(order), now_ns))

    def _end(self, entry: OrderEntry, now_ns: int) -> None:
        """Cancels what is left of an order that is not (or no longer) in the book."""
        order = entry.order
        self._release(entry, order.remaining)
        order.remaining = 0
        order.status = _CANCELED
        order.updated_ns = now_ns
        if self._record:
            self._out.append(OrderUpdate(snapshot(order), now_ns))

    def _cancel_resting(
        self, mkt: Market, entry: OrderEntry, now_ns: int, by_user: str | None, by_coid: str | None
    ) -> Qty:
        """Cancels a resting order; ``by_*`` name who caused it (``None``: the exchange)."""
        order = entry.order
        qty = order.remaining
        mkt.book.kill(entry)
        if self._record:
            self._out.append(
                BookChange(
                    mkt.ticker,
                    OUTCOMES[entry.side],
                    entry.own_price,
                    -qty,
                    by_user,
                    by_coid,
                    now_ns,
                    None if by_user is None else order.subaccount,
                )
            )
        if order.cancel_order_on_pause or entry.group is not None:
            self._retire(entry)
        self._end(entry, now_ns)
        return qty

    def _retire(self, entry: OrderEntry) -> None:
        """Forgets an order that no longer rests in the pause and group registries."""
        order_id = entry.order.order_id
        self._on_pause.pop(order_id, None)
        if entry.group is not None:
            entry.group.resting.pop(order_id, None)

    # ------------------------------------------------------------------ matching

    def _take(self, mkt: Market, taker: OrderEntry, now_ns: int, fills: list[SimFill]) -> bool:
        """Matches against the other side, best price then time; returns whether stopped.

        Matching stops early on a self-cross under ``taker_at_cross`` or when the taker's
        order group triggers; the caller then cancels the remainder.
        """
        book = mkt.book
        opp = 1 - taker.side
        prices = book.prices[opp]
        levels = book.levels[opp]
        floor = ONE_DOLLAR - taker.own_price
        order = taker.order
        while order.remaining and prices and prices[-1] >= floor:
            price = prices[-1]
            level = levels[price]
            while order.remaining and level.total:
                maker = level.queue[0]
                if not maker.live:
                    level.queue.popleft()
                    level.dead -= 1
                elif maker.account.owner is taker.account.owner:
                    if self._self_cross(mkt, taker, maker, now_ns):
                        return True
                else:
                    qty = order.remaining
                    if maker.order.remaining < qty:
                        qty = maker.order.remaining
                    fills.append(self._execute(mkt, taker, maker, level, price, qty, now_ns))
                    if taker.group is not None and taker.group.triggered:
                        return True
        return False

    def _self_cross(self, mkt: Market, taker: OrderEntry, maker: OrderEntry, now_ns: int) -> bool:
        """Applies self-trade prevention; returns whether matching must stop."""
        order = taker.order
        if order.self_trade_prevention is _TAKER_AT_CROSS:
            return True
        self._cancel_resting(mkt, maker, now_ns, order.user_id, order.client_order_id)
        return False

    def _execute(
        self,
        mkt: Market,
        taker: OrderEntry,
        maker: OrderEntry,
        level: Level,
        price: Price,
        qty: Qty,
        now_ns: int,
    ) -> SimFill:
        """One match of ``qty`` at the maker's own ``price``; returns the taker's fill."""
        maker_side = maker.side
        yes_price = price if maker_side == 0 else ONE_DOLLAR - price
        torder = taker.order
        ticker = mkt.ticker
        mkt.book.reduce(maker_side, price, level, qty)
        if maker.order.remaining == qty:
            maker.live = False
            level.queue.popleft()
        self._trade_seq += 1
        trade_id = f"{self._trade_prefix}00000002-0000-4000-8000-{self._trade_seq:012x}"
        trade = TradePrint(trade_id, ticker, yes_price, qty, torder.book_side, now_ns)
        if self._record:
            self._out.append(
                BookChange(
                    ticker,
                    OUTCOMES[maker_side],
                    price,
                    -qty,
                    torder.user_id,
                    torder.client_order_id,
                    now_ns,
                    torder.subaccount,
                )
            )
            self._out.append(trade)
        self._trades.append(trade)
        mkt.trades.append(trade)
        mkt.last_price = yes_price
        mkt.volume += qty
        fees = mkt.fees
        taker_fee = fees.taker(yes_price, qty)
        fill = self._fill(
            mkt, taker, ONE_DOLLAR - price, yes_price, qty, taker_fee, trade_id, now_ns, True
        )
        maker_fee = fees.maker(yes_price, qty)
        self._fill(mkt, maker, price, yes_price, qty, maker_fee, trade_id, now_ns, False)
        if taker.group is not None:
            self._count_for_group(taker.group, qty, now_ns)
        if maker.group is not None:
            self._count_for_group(maker.group, qty, now_ns)
        return fill

    def _fill(
        self,
        mkt: Market,
        entry: OrderEntry,
        cost_price: Price,
        yes_price: Price,
        qty: Qty,
        trade_fee: Money,
        trade_id: str,
        now_ns: int,
        is_taker: bool,
    ) -> SimFill:
        """Books one side of a match: order, reservation, position, cash and events."""
        order = entry.order
        cost = cost_price * qty
        _book_order_fill(order, cost, trade_fee, qty, is_taker, now_ns)
        if not order.remaining and (order.cancel_order_on_pause or entry.group is not None):
            self._retire(entry)
        macct = entry.macct
        side = entry.side
        macct.spend[side] -= entry.own_price * qty
        macct.qty[side] -= qty
        macct.fees[side] -= entry.fee_lot * qty
        rounding = -(cost + trade_fee) % BALANCE_PRECISION
        charged = _rounding_fee(entry, rounding, trade_fee) if rounding else trade_fee
        before = macct.position
        released = macct.buy(side, cost_price, qty)
        after = macct.position
        mkt.open_interest += (after if after > 0 else 0) - (before if before > 0 else 0)
        macct.fees_paid += trade_fee
        macct.updated_ns = now_ns
        account = entry.account
        account.cash += released - cost - charged
        self._fees_collected += charged
        lock = macct.reservation()
        account.reserved += lock - macct.lock
        macct.lock = lock
        fill = SimFill(
            trade_id,
            order.order_id,
            order.user_id,
            order.client_order_id,
            mkt.ticker,
            order.book_side,
            yes_price,
            qty,
            is_taker,
            trade_fee,
            after,
            now_ns,
            order.subaccount,
        )
        account.fills.append(fill)
        if self._record:
            out = self._out
            out.append(FillEvent(fill))
            out.append(OrderUpdate(snapshot(order), now_ns))
            out.append(
                PositionUpdate(
                    order.user_id, mkt.ticker, position_of(macct), now_ns, order.subaccount
                )
            )
        return fill

    def _count_for_group(self, group: Group, qty: Qty, now_ns: int) -> None:
        if not group.triggered and group.record(qty, now_ns):
            self._trigger(group, now_ns, None)

    def _trigger(self, group: Group, now_ns: int, by_user: str | None) -> None:
        group.triggered = True
        self._cancel_group_orders(group, now_ns, by_user)
        self._out.append(
            OrderGroupUpdate(group.user_id, group.group_id, "triggered", group.limit, now_ns)
        )

    def _cancel_group_orders(self, group: Group, now_ns: int, by_user: str | None) -> None:
        for entry in list(group.resting.values()):
            coid = entry.order.client_order_id if by_user is not None else None
            self._cancel_resting(self._markets[entry.order.ticker], entry, now_ns, by_user, coid)


def balance_too_low(account: Account, needed: Money) -> Rejection:
    return Rejection(
        400,
        "available_balance_too_low",
        f"available balance {format_money(account.cash - account.reserved)} is below the "
        f"{format_money(needed)} this order needs",
    )


def _book_order_fill(
    order: SimOrder, cost: Money, fee: Money, qty: Qty, is_taker: bool, now_ns: int
) -> None:
    order.remaining -= qty
    order.filled += qty
    order.updated_ns = now_ns
    if is_taker:
        order.taker_fill_cost += cost
        order.taker_fees += fee
    else:
        order.maker_fill_cost += cost
        order.maker_fees += fee
    if not order.remaining:
        order.status = _EXECUTED


def _rounding_fee(entry: OrderEntry, rounding: Money, trade_fee: Money) -> Money:
    """The fee charged when a fill's balance change is finer than $0.0001."""
    accumulator = entry.fee_acc + rounding
    charged = trade_fee + rounding
    if accumulator > BALANCE_PRECISION and charged >= BALANCE_PRECISION:
        accumulator -= BALANCE_PRECISION
        charged -= BALANCE_PRECISION
    entry.fee_acc = accumulator
    return charged
