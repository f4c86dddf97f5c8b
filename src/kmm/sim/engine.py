"""The local exchange's matching engine: books, orders, accounts, fees and settlement.

Theory of operation
-------------------
One :class:`MatchingEngine` holds every market, account and order. It is pure: time comes in
as ``now_ns`` and nothing is read from a clock, so a seeded run is reproducible; order, trade
and group ids come from counters.

**Book.** Kalshi's book holds only bids (KALSHI.md §7): a ``bid`` at YES price ``p`` rests as
a YES bid at ``p``; an ``ask`` at ``p`` (sell YES, i.e. buy NO) rests as a NO bid at
``$1 - p``. An incoming order trades with the best opposite bids whose own prices sum with its
own to at least ``$1``, best price first, then time; the trade price is the resting order's.
Levels are FIFO queues with lazy removal (``kmm.sim._book``).

**Order entry.** A create is checked in this order: market known (404 ``not_found``), not
closed (409 ``market_closed``), active (400 ``market_inactive``), no trading pause (400
``trading_is_paused``), price on the market's grid (400 ``invalid_price``), count at least
0.01 (400 ``invalid_order_size``), ``client_order_id`` never used by the user (409
``order_already_exists``), expiration (400 ``invalid_order``), order group known and not
triggered, ``reduce_only`` (capped at the position it reduces; 400 ``invalid_order`` if it
would only increase it), post-only (400 ``invalid_order`` / ``post only cross``), then the
collateral (400 ``available_balance_too_low``). Fill-or-kill first checks that the book holds
enough; immediate-or-cancel and fill-or-kill never rest. Self-trade prevention
``taker_at_cross`` stops matching and cancels the incoming remainder; ``maker`` cancels the
user's resting order and goes on.

**Accounts** (``kmm.sim._accounts``): every fill is a purchase of one leg; netting a YES
against a NO pays $1 back; resting orders reserve their worst-case cost plus fees, so the
available balance never goes negative. Fees use ``kmm.fees``' formulas as integer
coefficients, rounded up per fill to $0.0001, with Kalshi's rounding-fee accumulator at
direct-member precision.

**Subaccounts** (``getting_started/subaccounts.md``): each user has the primary subaccount 0
and may create numbered ones, 1–63 in order (``create_subaccount``), each with its own cash,
positions, orders and fills; ``transfer`` moves cash between two of them. An order belongs
to the subaccount its request names; cancels, amends and decreases name the subaccount of
the order (0 if omitted, as Kalshi's ``subaccount`` query defaults) and find only its
orders. Queries take ``subaccount=None`` for every subaccount where Kalshi's reads default
to all of them (orders, fills, settlements, order groups) and 0 where they default to the
primary (positions, balance). Self-trade prevention and ``client_order_id`` uniqueness are
per user, across its subaccounts.

**Lifecycle.** ``initialized`` → ``active`` (at ``open_ns``, by ``apply_schedule``) ⇄
``inactive`` (``set_market_active``; reactivation cancels resting orders, as Kalshi
documents) → ``closed`` (``close_market`` or ``apply_schedule`` at ``close_ns``: resting
orders cancelled; every later order operation, cancels included, 409 ``market_closed``, which
also holds from ``close_ns`` on before the close is applied) → ``determined`` →
``finalized`` (``settle_market``: $1 per winning net contract). A trading pause refuses
places and amends (400 ``trading_is_paused``) but allows cancels and decreases; so does an
inactive market (400 ``market_inactive``). GTC orders with an ``expiration_s`` are cancelled
by ``expire_orders``.

**Events.** Every observable change appends an event (``drain_events``), in the order it
happened: per match a :class:`BookChange` for the consumed level, a :class:`TradePrint`, then
for the taker and the maker a :class:`FillEvent`, an :class:`OrderUpdate` and a
:class:`PositionUpdate`. ``BookChange.user_id``/``client_order_id`` name the user whose own
order action caused the change (for a match: the incoming order's owner), and are ``None``
when the exchange caused it (expiry, pause, close, an automatic order-group trigger).

The public types live in ``kmm.sim._model`` and are re-exported here; the per-order machinery
is ``kmm.sim._core.MatchCore``, which this class extends with the public operations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from heapq import heappop, merge
from types import MappingProxyType
from typing import Final, TypeVar

from kmm.errors import WireError
from kmm.fees import FEE_TYPES
from kmm.sim._accounts import MAX_SUBACCOUNT, Account, FeeModel, MarketAccount
from kmm.sim._admin import VenueAdmin
from kmm.sim._book import OrderEntry
from kmm.sim._core import (
    OPEN,
    OUTCOMES,
    Market,
    balance_too_low,
    position_of,
    snapshot,
)
from kmm.sim._groups import Group
from kmm.sim._model import (
    BookChange,
    CreateResult,
    EngineEvent,
    EventDef,
    FillEvent,
    MarketDef,
    MarketLifecycle,
    MarketStatus,
    OrderGroup,
    OrderGroupUpdate,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    Position,
    PositionUpdate,
    Rejection,
    SelfTradePrevention,
    SeriesDef,
    Settlement,
    SimFill,
    SimOrder,
    SubaccountTransfer,
    TimeInForce,
    TradePrint,
)
from kmm.types import (
    ONE_DOLLAR,
    BookSide,
    Money,
    Price,
    Qty,
    format_count,
    format_money,
    format_price,
)

__all__ = [
    "BookChange",
    "CreateResult",
    "EngineEvent",
    "EventDef",
    "FillEvent",
    "MarketDef",
    "MarketLifecycle",
    "MarketStatus",
    "MatchingEngine",
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

_NS_PER_S: Final = 1_000_000_000
R = TypeVar("R")


def _not_resting(order: SimOrder) -> Rejection:
    return Rejection(
        404, "not_found", f"order {order.order_id} is not resting (status {order.status})"
    )


def _post_only_cross() -> Rejection:
    return Rejection(400, "invalid_order", "invalid order", "post only cross")


class MatchingEngine(VenueAdmin):
    """Every market, account and order of the local exchange.

    Args:
        trade_id_prefix: Prepended to every trade id (ids are otherwise counters, so two
            engines with different prefixes never share a trade id).
        record_events: ``False`` skips the per-order and per-fill events (book changes,
            trades, fills, order and position updates) for a backtest that reads fills
            and positions directly; lifecycle and order-group events are still recorded.
            Keyword-only, additive to Contract 1.
    """

    # ------------------------------------------------------------------ reference data

    @property
    def series(self) -> Mapping[str, SeriesDef]:
        """Every series by ticker (read-only)."""
        return MappingProxyType(self._series)

    @property
    def events(self) -> Mapping[str, EventDef]:
        """Every event by event ticker (read-only)."""
        return MappingProxyType(self._event_defs)

    @property
    def markets(self) -> Mapping[str, MarketDef]:
        """Every market by ticker (read-only; the engine updates their status fields)."""
        return MappingProxyType(self._market_defs)

    def add_series(self, series: SeriesDef) -> None:
        """Registers a series.

        Raises:
            WireError: if its ``fee_type`` is not one Kalshi documents.
        """
        if series.fee_type not in FEE_TYPES:
            raise WireError("series", f"fee_type: unknown value {series.fee_type!r}")
        self._series[series.ticker] = series
        self._fee_models[series.ticker] = FeeModel(series.fee_type, series.fee_multiplier)

    def add_event(self, event: EventDef) -> None:
        """Registers an event.

        Raises:
            ValueError: if its series is unknown.
        """
        if event.series_ticker not in self._series:
            raise ValueError(f"event {event.event_ticker}: unknown series {event.series_ticker}")
        self._event_defs[event.event_ticker] = event

    def add_market(self, market: MarketDef, now_ns: int = 0) -> None:
        """Registers a market and emits its ``created`` lifecycle event.

        Args:
            market: The market; the engine keeps this object and updates its status.
            now_ns: The event's time (defaults to the market's ``open_ns`` when 0).

        Raises:
            ValueError: if its event is unknown, the ticker is taken, or its price ranges
                are malformed.
        """
        event = self._event_defs.get(market.event_ticker)
        if event is None:
            raise ValueError(f"market {market.ticker}: unknown event {market.event_ticker}")
        if market.ticker in self._markets:
            raise ValueError(f"market {market.ticker}: already added")
        self._markets[market.ticker] = Market(market, self._fee_models[event.series_ticker])
        self._market_defs[market.ticker] = market
        self.lifecycle_version += 1
        ts_ns = now_ns or market.open_ns
        self._out.append(MarketLifecycle(market.ticker, "created", ts_ns, close_ns=market.close_ns))

    def open_account(self, user_id: str, balance: Money) -> None:
        """Opens an account holding ``balance`` of cash.

        Raises:
            ValueError: if the account exists or the balance is negative.
        """
        if user_id in self._accounts:
            raise ValueError(f"account {user_id}: already open")
        if balance < 0:
            raise ValueError(f"account {user_id}: balance must not be negative, got {balance}")
        self._accounts[user_id] = Account(user_id, balance)

    def create_subaccount(self, user_id: str) -> int:
        """Opens the user's next numbered subaccount (1, 2, … up to 63) with no cash.

        Returns:
            The new subaccount's number.

        Raises:
            Rejection: 404 ``not_found`` for an unknown user; 400 ``invalid_parameters``
                when the user already has 63 numbered subaccounts.
        """
        primary = self._account(user_id)
        if len(primary.subaccounts) >= MAX_SUBACCOUNT:
            raise Rejection(
                400,
                "invalid_parameters",
                f"a user has at most {MAX_SUBACCOUNT} numbered subaccounts",
            )
        account = Account(user_id, 0, primary)
        primary.subaccounts[account.subaccount] = account
        return account.subaccount

    def subaccount_numbers(self, user_id: str) -> list[int]:
        """The user's subaccounts: 0 and every numbered one created, in order."""
        return [a.subaccount for a in self._account(user_id).family()]

    def netting(self, user_id: str, subaccount: int = 0) -> bool:
        """The subaccount's netting setting (``GET /portfolio/subaccounts/netting``).

        Raises:
            Rejection: 404 for an unknown user or a subaccount never created.
        """
        return self._account(user_id, subaccount).netting

    def set_netting(self, user_id: str, subaccount: int, enabled: bool) -> None:
        """Sets the subaccount's netting setting (``PUT /portfolio/subaccounts/netting``).

        Raises:
            Rejection: 404 for an unknown user or a subaccount never created.
        """
        self._account(user_id, subaccount).netting = enabled

    def check_subaccount(self, user_id: str, subaccount: int) -> None:
        """Raises :class:`Rejection` 404 unless the user's ``subaccount`` exists."""
        self._account(user_id, subaccount)

    def transfer(
        self,
        user_id: str,
        client_transfer_id: str,
        from_subaccount: int,
        to_subaccount: int,
        amount: Money,
        now_ns: int,
    ) -> SubaccountTransfer:
        """Moves ``amount`` of available cash from one of the user's subaccounts to another.

        Raises:
            Rejection: 409 ``conflict`` for a ``client_transfer_id`` used before (the
                transfer is not applied twice); 404 ``not_found`` for a subaccount not
                created; 400 ``invalid_parameters`` for a non-positive amount or the same
                subaccount twice; 400 ``insufficient_balance`` if the source's available
                cash is below ``amount``.
        """
        primary = self._account(user_id)
        if client_transfer_id in primary.transfers:
            raise Rejection(409, "conflict", f"transfer {client_transfer_id} was already applied")
        source = self._account(user_id, from_subaccount)
        target = self._account(user_id, to_subaccount)
        if amount <= 0 or source is target:
            raise Rejection(
                400,
                "invalid_parameters",
                "a transfer needs a positive amount between two different subaccounts",
            )
        if source.available < amount:
            raise Rejection(
                400,
                "insufficient_balance",
                f"subaccount {from_subaccount} has {format_money(source.available)} "
                f"available, below the {format_money(amount)} to transfer",
            )
        source.cash -= amount
        target.cash += amount
        row = SubaccountTransfer(
            f"00000004-0000-4000-8000-{len(primary.transfers) + 1:012x}",
            client_transfer_id,
            from_subaccount,
            to_subaccount,
            amount,
            now_ns,
        )
        primary.transfers[client_transfer_id] = row
        return row

    def transfers_of(self, user_id: str) -> Sequence[SubaccountTransfer]:
        """The user's transfers between subaccounts, oldest first."""
        return list(self._account(user_id).transfers.values())

    # ------------------------------------------------------------------ order entry

    def create_order(self, user_id: str, req: OrderRequest, now_ns: int) -> CreateResult:
        """Places an order: validates it, reserves collateral, matches it, rests or ends it.

        Returns:
            The order (the engine's live record) and its own taker fills.

        Raises:
            Rejection: for anything Kalshi would refuse (see the module docstring).
        """
        account = self._accounts.get(user_id)
        if account is None or req.subaccount:
            account = self._account(user_id, req.subaccount)
        mkt, count, group = self._admit(account, req, now_ns)
        side = 0 if req.book_side is BookSide.BID else 1
        own = req.price if side == 0 else ONE_DOLLAR - req.price
        if req.post_only and mkt.book.crosses(side, own):
            raise _post_only_cross()
        macct = account.markets.get(mkt.ticker) or self._macct(account, mkt)
        self._order_seq += 1
        order = SimOrder(
            f"00000001-0000-4000-8000-{self._order_seq:012x}",
            user_id,
            req.client_order_id,
            req.ticker,
            req.book_side,
            req.price,
            count,
            0,
            count,
            OrderStatus.RESTING,
            req.time_in_force,
            req.self_trade_prevention,
            req.post_only,
            req.reduce_only,
            req.cancel_order_on_pause,
            req.order_group_id,
            req.expiration_s,
            now_ns,
            now_ns,
            0,
            0,
            0,
            0,
            None,
            account.subaccount,
        )
        lot = mkt.lots.get(own)
        if lot is None:
            lot = mkt.lot_reserve(own)
        entry = OrderEntry(order, side, own, lot, account, macct, group)
        self._reserve(entry, count)
        self._entries[order.order_id] = entry
        account.orders.append(order)
        if req.client_order_id is not None:
            account.client_order_ids.add(req.client_order_id)
        if req.time_in_force is TimeInForce.FOK and not self._fok_can_fill(mkt, entry):
            self._end(entry, now_ns)
            return CreateResult(order, (), now_ns)
        return CreateResult(order, self._place(mkt, entry, now_ns), now_ns)

    def cancel_order(
        self, user_id: str, order_id: str, now_ns: int, *, subaccount: int = 0
    ) -> tuple[SimOrder, Qty]:
        """Cancels a resting order of the user's ``subaccount`` (allowed during a pause).

        Returns:
            The order and the quantity cancelled (``reduced_by``).

        Raises:
            Rejection: 404 ``not_found`` for an unknown or no longer resting order (or
                one of another subaccount), 409 ``market_closed`` after the market closed.
        """
        entry = self._own_entry(user_id, order_id, subaccount)
        mkt = self._cancellable(entry.order.ticker, now_ns)
        if not entry.live:
            raise _not_resting(entry.order)
        reduced = self._cancel_resting(mkt, entry, now_ns, user_id, entry.order.client_order_id)
        return entry.order, reduced

    def amend_order(
        self,
        user_id: str,
        order_id: str,
        *,
        ticker: str,
        book_side: BookSide,
        price: Price,
        count: Qty,
        now_ns: int,
        updated_client_order_id: str | None = None,
        subaccount: int = 0,
    ) -> CreateResult:
        """Changes a resting order's price and/or size.

        ``count`` is the new total: already filled plus the desired remaining. The order
        keeps its place in the queue only when the price is unchanged and the remaining
        size strictly decreases; otherwise it leaves the book and re-enters as a new
        arrival, possibly trading at once (those fills are returned).

        Raises:
            Rejection: 400 ``order_ticker_mismatch`` / ``order_side_mismatch``,
                ``invalid_price``, ``invalid_order_size``, ``trading_is_paused``,
                ``invalid_order`` (post only cross), ``available_balance_too_low``;
                404 ``not_found``; 409 ``market_closed`` / ``order_already_exists``.
        """
        entry = self._own_entry(user_id, order_id, subaccount)
        order = entry.order
        if ticker != order.ticker:
            raise Rejection(
                400, "order_ticker_mismatch", f"order {order_id} is in {order.ticker}, not {ticker}"
            )
        if book_side is not order.book_side:
            raise Rejection(
                400,
                "order_side_mismatch",
                f"order {order_id} is a {order.book_side}, not {book_side}",
            )
        mkt = self._tradable(ticker, now_ns)
        if not entry.live:
            raise _not_resting(order)
        self._check_price(mkt, price)
        remaining = count - order.filled
        if remaining <= 0:
            raise Rejection(
                400,
                "invalid_order_size",
                f"count {format_count(count)} must exceed the filled count "
                f"{format_count(order.filled)}",
            )
        coid = self._amended_coid(entry.account, order, updated_client_order_id)
        if price == order.price and remaining < order.remaining:
            self._shrink(mkt, entry, remaining, count, coid, now_ns)
            return CreateResult(order, (), now_ns)
        return self._replace(mkt, entry, price, remaining, count, coid, now_ns)

    def decrease_order(
        self,
        user_id: str,
        order_id: str,
        *,
        reduce_by: Qty | None,
        reduce_to: Qty | None,
        now_ns: int,
        subaccount: int = 0,
    ) -> SimOrder:
        """Reduces a resting order's remaining size, keeping its queue priority.

        Exactly one of ``reduce_by`` and ``reduce_to`` must be given; reducing to zero
        cancels the order. Allowed during a trading pause, like a cancel.

        Raises:
            Rejection: 400 ``invalid_order`` (both or neither given), ``invalid_order_size``;
                404 ``not_found``; 409 ``market_closed``.
        """
        if (reduce_by is None) == (reduce_to is None):
            raise Rejection(
                400, "invalid_order", "exactly one of reduce_by and reduce_to must be given"
            )
        entry = self._own_entry(user_id, order_id, subaccount)
        order = entry.order
        mkt = self._cancellable(order.ticker, now_ns)
        if not entry.live:
            raise _not_resting(order)
        target = self._decrease_target(order, reduce_by, reduce_to)
        if target == 0:
            self._cancel_resting(mkt, entry, now_ns, user_id, order.client_order_id)
        elif target < order.remaining:
            self._shrink(mkt, entry, target, order.initial, order.client_order_id, now_ns)
        return order

    def expire_orders(self, now_ns: int) -> int:
        """Cancels every resting order whose ``expiration_time`` has come.

        Returns:
            How many orders were cancelled.
        """
        heap = self._expiry
        expired = 0
        while heap and heap[0][0] <= now_ns:
            entry = heappop(heap)[2]
            if entry.live:
                self._cancel_resting(self._markets[entry.order.ticker], entry, now_ns, None, None)
                expired += 1
        return expired

    # ------------------------------------------------------------------ queries

    def get_order(self, user_id: str, order_id: str, subaccount: int | None = None) -> SimOrder:
        """The live record of one of the user's orders (of one subaccount, if given).

        Raises:
            Rejection: 404 ``not_found`` if the user has no such order.
        """
        return self._own_entry(user_id, order_id, subaccount).order

    def orders_of(self, user_id: str, subaccount: int | None = None) -> Sequence[SimOrder]:
        """Every order the user placed in ``subaccount`` (``None``: in any), oldest first."""
        return self._merged(user_id, subaccount, lambda a: a.orders, _created_ns)

    def resting_orders(self, ticker: str) -> Sequence[SimOrder]:
        """The market's resting orders: YES bids then NO bids, best price first, then time."""
        return [entry.order for entry in self._market(ticker).book.entries()]

    def fills_of(self, user_id: str, subaccount: int | None = None) -> Sequence[SimFill]:
        """Every fill of the user's orders in ``subaccount`` (``None``: in any), in time order."""
        return self._merged(user_id, subaccount, lambda a: a.fills, _fill_ns)

    def positions_of(self, user_id: str, subaccount: int = 0) -> Mapping[str, Position]:
        """Snapshots of the subaccount's unsettled positions in markets where it traded."""
        return {
            ticker: position_of(macct)
            for ticker, macct in self._account(user_id, subaccount).markets.items()
            if not macct.settled and (macct.position or macct.total_traded)
        }

    def balance(self, user_id: str, subaccount: int = 0) -> Money:
        """The subaccount's available cash (cash not reserved for resting orders)."""
        return self._account(user_id, subaccount).available

    def reserved(self, user_id: str, subaccount: int = 0) -> Money:
        """The cash reserved for the subaccount's resting orders (additive to Contract 1)."""
        return self._account(user_id, subaccount).reserved

    @property
    def fees_collected(self) -> Money:
        """Every fee charged so far, net of rounding rebates (additive to Contract 1)."""
        return self._fees_collected

    def settlements_of(self, user_id: str, subaccount: int | None = None) -> Sequence[Settlement]:
        """The settlement rows of ``subaccount`` (``None``: of every one), in time order."""
        return self._merged(user_id, subaccount, lambda a: a.settlements, _settled_ns)

    def _merged(
        self,
        user_id: str,
        subaccount: int | None,
        rows: Callable[[Account], list[R]],
        key: Callable[[R], int],
    ) -> Sequence[R]:
        """One subaccount's ``rows``, or every subaccount's merged in time order."""
        if subaccount is not None:
            return rows(self._account(user_id, subaccount))
        primary = self._account(user_id)
        if not primary.subaccounts:
            return rows(primary)
        return list(merge(*(rows(a) for a in primary.family()), key=key))

    def book_levels(self, ticker: str) -> tuple[dict[Price, Qty], dict[Price, Qty]]:
        """The aggregate book: (YES bids by YES price, NO bids by NO price)."""
        book = self._market(ticker).book
        return book.sizes(0), book.sizes(1)

    def best(self, ticker: str) -> tuple[Price | None, Price | None]:
        """The best YES bid and the best YES ask (``$1`` minus the best NO bid)."""
        book = self._market(ticker).book
        no = book.best(1)
        return book.best(0), None if no is None else ONE_DOLLAR - no

    def queue_position(self, user_id: str, order_id: str) -> Qty:
        """Contracts ahead of a resting order at its price (additive to Contract 1).

        Raises:
            Rejection: 404 ``not_found`` if the order is unknown or not resting.
        """
        entry = self._own_entry(user_id, order_id, None)
        if not entry.live:
            raise _not_resting(entry.order)
        ahead = 0
        for other in self._market(entry.order.ticker).book.level_of(entry).live_entries():
            if other is entry:
                break
            ahead += other.order.remaining
        return ahead

    def trades(self, ticker: str | None = None) -> Sequence[TradePrint]:
        """Every trade, or every trade in one market, in time order."""
        return self._trades if ticker is None else self._market(ticker).trades

    def last_price(self, ticker: str) -> Price | None:
        """The YES price of the market's last trade."""
        return self._market(ticker).last_price

    def volume(self, ticker: str) -> Qty:
        """Contracts traded in the market."""
        return self._market(ticker).volume

    def open_interest(self, ticker: str) -> Qty:
        """Contracts outstanding in the market (the sum of the YES positions)."""
        return self._market(ticker).open_interest

    # ------------------------------------------------------------------ events

    def drain_events(self) -> list[EngineEvent]:
        """Everything that happened since the last drain, in order."""
        events, self._out = self._out, []
        return events

    # ------------------------------------------------------------------ lookups and checks

    def _cancellable(self, ticker: str, now_ns: int) -> Market:
        mkt = self._market(ticker)
        defn = mkt.defn
        if defn.status not in OPEN or now_ns >= defn.close_ns:
            raise Rejection(409, "market_closed", f"market {ticker} is closed ({defn.status})")
        return mkt

    def _tradable(self, ticker: str, now_ns: int) -> Market:
        mkt = self._cancellable(ticker, now_ns)
        status = mkt.defn.status
        if status is not MarketStatus.ACTIVE:
            raise Rejection(
                400, "market_inactive", f"market {ticker} is not open for trading ({status})"
            )
        if not self._trading_active:
            raise Rejection(
                400,
                "trading_is_paused",
                "trading is paused: orders cannot be placed or amended, only cancelled",
            )
        return mkt

    def _own_entry(self, user_id: str, order_id: str, subaccount: int | None) -> OrderEntry:
        """The user's order (of ``subaccount`` unless it is ``None``), or a 404."""
        entry = self._entries.get(order_id)
        if (
            entry is None
            or entry.order.user_id != user_id
            or (subaccount is not None and entry.order.subaccount != subaccount)
        ):
            raise Rejection(404, "not_found", f"order {order_id} not found")
        return entry

    def _check_price(self, mkt: Market, price: Price) -> None:
        if price not in mkt.valid:
            raise Rejection(
                400,
                "invalid_price",
                f"invalid price: {format_price(price)} is not a valid price in {mkt.defn.ticker}",
            )

    def _admit(
        self, account: Account, req: OrderRequest, now_ns: int
    ) -> tuple[Market, Qty, Group | None]:
        """Checks a create request; returns its market, its (capped) count and its group."""
        mkt = self._markets.get(req.ticker)
        if (
            mkt is None
            or mkt.defn.status is not MarketStatus.ACTIVE
            or now_ns >= mkt.defn.close_ns
            or not self._trading_active
        ):
            mkt = self._tradable(req.ticker, now_ns)  # raises the precise rejection
        if req.price not in mkt.valid:
            self._check_price(mkt, req.price)
        if req.count < 1:
            raise Rejection(
                400,
                "invalid_order_size",
                f"count must be at least 0.01, got {format_count(req.count)}",
            )
        coid = req.client_order_id
        if coid is not None and coid in account.client_order_ids:
            raise Rejection(
                409, "order_already_exists", "Order with this client_order_id already exists"
            )
        if req.expiration_s is not None:
            _check_expiration(req, now_ns)
        group = None if req.order_group_id is None else self._group_for(account, req)
        count = self._capped_count(account, req) if req.reduce_only else req.count
        return mkt, count, group

    def _group_for(self, account: Account, req: OrderRequest) -> Group:
        group_id = req.order_group_id
        assert group_id is not None
        group = self._own_group(account.user_id, group_id, account.subaccount)
        if group.triggered:
            raise Rejection(
                400,
                "invalid_order",
                f"order group {group_id} is triggered; reset it before placing orders in it",
            )
        return group

    def _capped_count(self, account: Account, req: OrderRequest) -> Qty:
        macct = account.markets.get(req.ticker)
        position = macct.position if macct is not None else 0
        held = -position if req.book_side is BookSide.BID else position
        if held <= 0:
            raise Rejection(
                400,
                "invalid_order",
                f"reduce_only {req.book_side} would increase the position in {req.ticker} "
                f"(position {format_count(position)})",
            )
        return min(req.count, held)

    def _amended_coid(self, account: Account, order: SimOrder, updated: str | None) -> str | None:
        if updated is None or updated == order.client_order_id:
            return order.client_order_id
        if updated in account.client_order_ids:
            raise Rejection(
                409, "order_already_exists", "Order with this client_order_id already exists"
            )
        return updated

    # ------------------------------------------------------------------ order bookkeeping

    def _macct(self, account: Account, mkt: Market) -> MarketAccount:
        ticker = mkt.defn.ticker
        macct = account.markets.get(ticker)
        if macct is None:
            macct = account.markets[ticker] = MarketAccount(ticker)
            mkt.holders[account.user_id, account.subaccount] = account
        return macct

    def _shrink(
        self,
        mkt: Market,
        entry: OrderEntry,
        remaining: Qty,
        initial: Qty,
        coid: str | None,
        now_ns: int,
    ) -> None:
        """Reduces a resting order in place, keeping its queue priority."""
        order = entry.order
        cut = order.remaining - remaining
        self._set_coid(entry.account, order, coid)
        mkt.book.reduce(entry.side, entry.own_price, mkt.book.level_of(entry), cut)
        order.remaining = remaining
        order.initial = initial
        order.updated_ns = now_ns
        self._release(entry, cut)
        self._out.append(
            BookChange(
                order.ticker,
                OUTCOMES[entry.side],
                entry.own_price,
                -cut,
                order.user_id,
                coid,
                now_ns,
            )
        )
        self._out.append(OrderUpdate(snapshot(order), now_ns))

    def _replace(
        self,
        mkt: Market,
        entry: OrderEntry,
        price: Price,
        remaining: Qty,
        count: Qty,
        coid: str | None,
        now_ns: int,
    ) -> CreateResult:
        """Moves an amended order to the back of the queue at its new price, matching first."""
        order = entry.order
        side = entry.side
        own = price if side == 0 else ONE_DOLLAR - price
        if order.post_only and mkt.book.crosses(side, own):
            raise _post_only_cross()
        new = OrderEntry(
            order, side, own, mkt.lot_reserve(own), entry.account, entry.macct, entry.group
        )
        new.fee_acc = entry.fee_acc
        self._swap_reservation(entry, new, remaining)
        self._set_coid(entry.account, order, coid)
        removed = order.remaining
        mkt.book.kill(entry)
        self._retire(entry)
        self._out.append(
            BookChange(
                order.ticker,
                OUTCOMES[side],
                entry.own_price,
                -removed,
                order.user_id,
                coid,
                now_ns,
            )
        )
        order.price = price
        order.remaining = remaining
        order.initial = count
        order.updated_ns = now_ns
        self._entries[order.order_id] = new
        return CreateResult(order, self._place(mkt, new, now_ns), now_ns)

    def _swap_reservation(self, old: OrderEntry, new: OrderEntry, remaining: Qty) -> None:
        macct = old.macct
        current = old.order.remaining

        def swap(sign: int) -> None:
            macct.commit(old.side, old.own_price, old.fee_lot, -sign * current)
            macct.commit(new.side, new.own_price, new.fee_lot, sign * remaining)

        swap(1)
        lock = macct.reservation()
        account = old.account
        needed = lock - macct.lock
        if needed > account.available:
            swap(-1)
            raise balance_too_low(account, needed)
        account.reserved += needed
        macct.lock = lock

    def _set_coid(self, account: Account, order: SimOrder, coid: str | None) -> None:
        if coid != order.client_order_id:
            order.client_order_id = coid
            if coid is not None:
                account.client_order_ids.add(coid)

    def _fok_can_fill(self, mkt: Market, entry: OrderEntry) -> bool:
        """Whether a fill-or-kill order fills entirely, or meets its own order first.

        A fill-or-kill order that self-crosses is not rolled back: it proceeds like an
        immediate-or-cancel order (KALSHI.md §11).
        """
        need = entry.order.remaining
        opp = 1 - entry.side
        floor = ONE_DOLLAR - entry.own_price
        levels = mkt.book.levels[opp]
        for price in reversed(mkt.book.prices[opp]):
            if price < floor:
                break
            for maker in levels[price].live_entries():
                if maker.account.owner is entry.account.owner:
                    return True
                need -= maker.order.remaining
                if need <= 0:
                    return True
        return False

    def _decrease_target(
        self, order: SimOrder, reduce_by: Qty | None, reduce_to: Qty | None
    ) -> Qty:
        if reduce_by is not None:
            if reduce_by < 1:
                raise Rejection(
                    400, "invalid_order_size", f"reduce_by must be at least 0.01, got {reduce_by}"
                )
            return max(order.remaining - reduce_by, 0)
        assert reduce_to is not None
        if not 0 <= reduce_to <= order.remaining:
            raise Rejection(
                400,
                "invalid_order_size",
                f"reduce_to {format_count(reduce_to)} must be between 0 and the remaining "
                f"count {format_count(order.remaining)}",
            )
        return reduce_to


def _created_ns(order: SimOrder) -> int:
    return order.created_ns


def _fill_ns(fill: SimFill) -> int:
    return fill.ts_ns


def _settled_ns(row: Settlement) -> int:
    return row.settled_ns


def _check_expiration(req: OrderRequest, now_ns: int) -> None:
    assert req.expiration_s is not None
    if req.time_in_force is not TimeInForce.GTC:
        raise Rejection(
            400,
            "invalid_order",
            f"expiration_time can only be used with good_till_canceled, not {req.time_in_force}",
        )
    if req.expiration_s * _NS_PER_S <= now_ns:
        raise Rejection(400, "invalid_order", "Expiration timestamp must be in the future")
