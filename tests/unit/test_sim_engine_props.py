"""Matching properties, checked after every operation of random order flow."""

from __future__ import annotations

import contextlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from kmm.sim.engine import (
    BookChange,
    EventDef,
    MarketDef,
    MatchingEngine,
    OrderRequest,
    OrderStatus,
    Rejection,
    SelfTradePrevention,
    SeriesDef,
    SimOrder,
    TimeInForce,
)
from kmm.types import ONE_DOLLAR, BookSide, Money, Outcome, Price, Qty

NOW = 1_700_000_000 * 1_000_000_000
CENT = "KXCENT-26-A"  # 1¢ grid, maker fees
FINE = "KXFINE-26-A"  # $0.0001 grid, taker fees only: sub-centicent cash and rounding fees
MARKETS = {CENT: (4700, 5300, 100), FINE: (4990, 5010, 1)}  # (low, high, step) of quoted prices
USERS = {"ann": 10**9, "ben": 10**9, "cat": 3 * 10**6}  # cat has only $3


def make_engine() -> MatchingEngine:
    engine = MatchingEngine()
    engine.add_series(SeriesDef("KXCENT", "c", "quadratic_with_maker_fees", Fraction(1)))
    engine.add_series(SeriesDef("KXFINE", "f", "quadratic", Fraction(1, 2)))
    for ticker, step in ((CENT, 100), (FINE, 1)):
        series = ticker.split("-")[0]
        engine.add_event(EventDef(f"{series}-26", series, series))
        ranges = ((0, ONE_DOLLAR, step),)
        engine.add_market(MarketDef(ticker, f"{series}-26", ticker, "Yes", ranges, "x", 0, NOW * 2))
    for user, balance in USERS.items():
        engine.open_account(user, balance)
    return engine


@dataclass(frozen=True)
class Create:
    user: str
    ticker: str
    side: BookSide
    price: Price
    count: Qty
    tif: TimeInForce
    stp: SelfTradePrevention
    post_only: bool


@dataclass(frozen=True)
class Cancel:
    user: str
    pick: int


@dataclass(frozen=True)
class Amend:
    user: str
    pick: int
    price_step: int
    count: Qty


@dataclass(frozen=True)
class Decrease:
    user: str
    pick: int
    by: Qty


users = st.sampled_from(sorted(USERS))


@st.composite
def creates(draw: st.DrawFn) -> Create:
    ticker = draw(st.sampled_from(sorted(MARKETS)))
    low, high, step = MARKETS[ticker]
    return Create(
        draw(users),
        ticker,
        draw(st.sampled_from([BookSide.BID, BookSide.ASK])),
        draw(st.integers(low // step, high // step)) * step,
        draw(st.integers(1, 600)),
        draw(st.sampled_from([TimeInForce.GTC] * 4 + [TimeInForce.IOC, TimeInForce.FOK])),
        draw(st.sampled_from(list(SelfTradePrevention))),
        draw(st.integers(0, 4)) == 0,  # post-only one time in five
    )


operations = st.one_of(
    creates(),
    creates(),
    creates(),
    creates(),
    st.builds(Cancel, users, st.integers(0, 50)),
    st.builds(Amend, users, st.integers(0, 50), st.integers(-3, 3), st.integers(1, 800)),
    st.builds(Decrease, users, st.integers(0, 50), st.integers(1, 300)),
)


def resting_of(engine: MatchingEngine, user: str, pick: int) -> SimOrder | None:
    resting = [o for o in engine.orders_of(user) if o.status is OrderStatus.RESTING]
    return resting[pick % len(resting)] if resting else None


def apply(engine: MatchingEngine, op: object, now_ns: int) -> None:
    if isinstance(op, Create):
        request = OrderRequest(
            op.ticker, op.side, op.price, op.count, op.tif, op.stp, post_only=op.post_only
        )
        engine.create_order(op.user, request, now_ns)
        return
    assert isinstance(op, Cancel | Amend | Decrease)
    order = resting_of(engine, op.user, op.pick)
    if order is None:
        return
    if isinstance(op, Cancel):
        engine.cancel_order(op.user, order.order_id, now_ns)
    elif isinstance(op, Decrease):
        engine.decrease_order(
            op.user, order.order_id, reduce_by=op.by, reduce_to=None, now_ns=now_ns
        )
    else:
        step = MARKETS[order.ticker][2]
        price = min(max(order.price + op.price_step * step, step), ONE_DOLLAR - step)
        engine.amend_order(
            op.user,
            order.order_id,
            ticker=order.ticker,
            book_side=order.book_side,
            price=price,
            count=order.filled + op.count,
            now_ns=now_ns,
        )


def total_money(engine: MatchingEngine) -> Money:
    cash = sum(engine.balance(u) + engine.reserved(u) for u in USERS)
    escrow = sum(engine.open_interest(t) * ONE_DOLLAR for t in MARKETS)
    return cash + engine.fees_collected + escrow


def check_book(engine: MatchingEngine, ticker: str) -> None:
    yes, no = engine.book_levels(ticker)
    assert all(size > 0 for size in (*yes.values(), *no.values())), "a level is not positive"
    if yes and no:
        assert max(yes) + max(no) < ONE_DOLLAR, "the book is crossed after matching"
    rested: dict[tuple[BookSide, Price], Qty] = defaultdict(int)
    for order in engine.resting_orders(ticker):
        assert order.status is OrderStatus.RESTING and order.remaining > 0
        rested[order.book_side, order.price] += order.remaining
    levels = {(BookSide.BID, p): q for p, q in yes.items()}
    levels |= {(BookSide.ASK, ONE_DOLLAR - p): q for p, q in no.items()}
    assert levels == dict(rested), "levels differ from the resting orders' remaining"


def check_invariants(engine: MatchingEngine, start: Money) -> None:
    for ticker in MARKETS:
        check_book(engine, ticker)
        positions = [engine.positions_of(u).get(ticker) for u in USERS]
        assert sum(p.position for p in positions if p is not None) == 0
    assert all(engine.balance(u) >= 0 for u in USERS), "an available balance went negative"
    assert total_money(engine) == start, "cash + collateral + fees changed"


def check_counterparties(engine: MatchingEngine) -> None:
    by_trade = defaultdict(list)
    for user in USERS:
        for fill in engine.fills_of(user):
            by_trade[fill.trade_id].append(fill)
    for fills in by_trade.values():
        assert len(fills) == 2, "a fill has no single counterparty"
        a, b = fills
        assert (a.count, a.yes_price, a.ticker) == (b.count, b.yes_price, b.ticker)
        assert {a.book_side, b.book_side} == {BookSide.BID, BookSide.ASK}
        assert {a.is_taker, b.is_taker} == {True, False}
        assert a.user_id != b.user_id
    trades = Counter(t.trade_id for t in engine.trades())
    assert set(trades) == set(by_trade) and set(trades.values()) <= {1}


@settings(max_examples=120, deadline=None)
@given(st.lists(operations, min_size=15, max_size=60), st.sampled_from(["yes", "no"]))
def test_random_flow_keeps_the_book_and_the_money_consistent(
    ops: list[object], result: str
) -> None:
    engine = make_engine()
    start = total_money(engine)

    for step, op in enumerate(ops):
        with contextlib.suppress(Rejection):
            apply(engine, op, NOW + step)
        check_invariants(engine, start)
    check_counterparties(engine)

    for ticker in MARKETS:
        engine.determine_market(ticker, result, NOW + len(ops))
        engine.settle_market(ticker, NOW + len(ops))
    assert total_money(engine) == start
    assert all(engine.reserved(u) == 0 for u in USERS)
    assert all(engine.positions_of(u) == {} for u in USERS)


@settings(max_examples=60, deadline=None)
@given(st.lists(creates(), min_size=5, max_size=40))
def test_recorded_book_changes_replay_to_the_book(ops: list[Create]) -> None:
    engine = make_engine()
    levels: dict[tuple[str, Outcome, Price], Qty] = defaultdict(int)

    for step, op in enumerate(ops):
        with contextlib.suppress(Rejection):
            apply(engine, op, NOW + step)
    for event in engine.drain_events():
        if isinstance(event, BookChange):
            key = (event.ticker, event.outcome, event.price)
            levels[key] += event.delta
            assert levels[key] >= 0, "a book change took a level below zero"

    for ticker in MARKETS:
        yes, no = engine.book_levels(ticker)
        replayed = {(o.value, p): q for (t, o, p), q in levels.items() if t == ticker and q}
        assert replayed == {("yes", p): q for p, q in yes.items()} | {
            ("no", p): q for p, q in no.items()
        }
