from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmm.config import RiskConfig, StrategyConfig
from kmm.execution.inventory import Portfolio
from kmm.execution.orders import ClientOrderIds, OrderTracker
from kmm.risk.killswitch import KillSwitch
from kmm.risk.limits import (
    Decision,
    ExposureBook,
    Limit,
    MarketExposure,
    RiskContext,
    RiskLimits,
    check_order,
)
from kmm.types import ONE_DOLLAR, BookSide, Fill, OrderIntent

T0 = 1_700_000_000_000_000_000
USD = 1_000_000
C = 100  # one contract in 0.01-contract units
A, B, K = "KXA-1", "KXB-2", "KXC-3"
BID, ASK = BookSide.BID, BookSide.ASK
LIMITS = RiskLimits(
    max_position=50 * C,
    max_total_position=120 * C,
    max_order_qty=20 * C,
    max_order_notional=50 * USD,
    max_open_orders=10,
    max_unknown_orders=1,
)


def _switch() -> KillSwitch:
    return KillSwitch(max_daily_loss=100 * USD, max_drawdown=100 * USD, max_unknown_orders=5)


def _ctx(limits: RiskLimits = LIMITS, **markets: MarketExposure) -> RiskContext:
    ctx = RiskContext(limits, _switch())
    for ticker, exp in markets.items():
        ctx.exposures.set_market(ticker.replace("_", "-"), *exp)
    return ctx


def _bid(qty: int, price: int = 4500, ticker: str = A) -> OrderIntent:
    return OrderIntent(ticker, BID, price, qty)


def _ask(qty: int, price: int = 5500, ticker: str = A) -> OrderIntent:
    return OrderIntent(ticker, ASK, price, qty)


def _fill(order_id: str, side: BookSide, qty: int, trade_id: str = "t1") -> Fill:
    return Fill(trade_id, order_id, A, side, 4500, qty, 0, False, 1)


# Worst-case exposure


@pytest.mark.parametrize(
    ("exposure", "worst"),
    [
        (MarketExposure(0, 0, 0), 0),
        (MarketExposure(10 * C, 5 * C, 0), 15 * C),
        (MarketExposure(10 * C, 0, 30 * C), 20 * C),
        (MarketExposure(-10 * C, 0, 5 * C), 15 * C),
        (MarketExposure(-10 * C, 30 * C, 0), 20 * C),
    ],
)
def test_a_markets_worst_case_is_the_larger_of_all_bids_or_all_asks_filling(
    exposure: MarketExposure, worst: int
) -> None:
    assert exposure.worst == worst


def test_setting_a_market_replaces_its_figures_in_the_global_sums() -> None:
    book = ExposureBook()
    book.set_market(A, 10 * C, 5 * C, 0, orders=1)
    book.set_market(B, -20 * C, 0, 0, orders=2, unknown=1)

    book.set_market(A, 0, 0, 0)

    assert (book.total_worst, book.open_orders, book.unknown_orders) == (20 * C, 2, 1)
    assert book.get(A) == MarketExposure()
    assert set(book.tickers()) == {A, B}


def test_a_market_never_set_is_flat() -> None:
    assert ExposureBook().get(A) == MarketExposure()


def test_negative_open_quantities_are_refused() -> None:
    with pytest.raises(ValueError, match="KXA-1: negative exposure"):
        ExposureBook().set_market(A, 0, -1)


def test_refresh_counts_the_position_and_every_live_order_including_unknown_ones() -> None:
    portfolio = Portfolio()
    tracker = OrderTracker(ClientOrderIds("run1"))
    resting = tracker.new(_bid(10 * C), T0)
    tracker.on_ack(resting.client_order_id, "ex-1", T0, remaining=10 * C)
    portfolio.on_fill(_fill("ex-1", BID, 4 * C))
    tracker.on_fill(_fill("ex-1", BID, 4 * C), T0)
    in_flight = tracker.new(_ask(3 * C), T0)
    unknown = tracker.new(_ask(2 * C), T0)
    tracker.on_unknown(unknown.client_order_id, T0)
    book = ExposureBook()

    exposure = book.refresh(A, portfolio, tracker)

    assert in_flight.state == "pending_new"
    assert exposure == MarketExposure(4 * C, 6 * C, 5 * C, orders=3, unknown=1)
    assert (book.total_worst, book.open_orders, book.unknown_orders) == (10 * C, 3, 1)


def test_refresh_all_also_clears_markets_whose_orders_have_ended() -> None:
    portfolio = Portfolio()
    tracker = OrderTracker(ClientOrderIds("run1"))
    book = ExposureBook()
    book.set_market(B, 0, 5 * C, 0, orders=1)

    book.refresh_all([A], portfolio, tracker)

    assert (book.get(A), book.get(B)) == (MarketExposure(), MarketExposure())
    assert (book.total_worst, book.open_orders) == (0, 0)


def test_reserving_adds_to_one_side_and_to_the_order_count() -> None:
    book = ExposureBook()
    book.set_market(A, 10 * C, 0, 0)

    book.reserve(A, ASK, 25 * C, orders=1)

    assert book.get(A) == MarketExposure(10 * C, 0, 25 * C, orders=1)
    assert book.total_worst == 15 * C


# Limits


def test_limits_from_config_take_size_and_lot_from_the_strategy() -> None:
    risk = RiskConfig(max_position_contracts=Decimal(40), no_quote_before_close_s=30)
    strategy = StrategyConfig(max_order_contracts=Decimal(7), lot_size_contracts=Decimal("0.5"))

    limits = RiskLimits.from_config(risk, strategy)

    assert (limits.max_position, limits.max_order_qty, limits.lot_qty) == (4000, 700, 50)
    assert limits.max_order_notional == 50 * USD
    assert limits.no_quote_before_close_ns == 30 * 1_000_000_000
    assert limits.stale_book_ns == risk.stale_book_ns


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_position", 0), ("max_open_orders", 0), ("max_unknown_orders", -1), ("lot_qty", 0)],
)
def test_a_limit_out_of_range_is_refused_naming_it(field: str, value: int) -> None:
    kwargs = {
        "max_position": C,
        "max_total_position": C,
        "max_order_qty": C,
        "max_order_notional": USD,
        "max_open_orders": 1,
        field: value,
    }

    with pytest.raises(ValueError, match=f"risk limit {field} must be"):
        RiskLimits(**kwargs)


def test_winding_down_must_start_no_later_than_quoting_stops() -> None:
    with pytest.raises(ValueError, match="wind_down_before_close_ns must be >= 60"):
        RiskLimits(C, C, C, USD, 1, no_quote_before_close_ns=60, wind_down_before_close_ns=59)


# check_order: approve and clip


def test_an_order_within_every_limit_is_approved_and_reserved() -> None:
    ctx = _ctx()

    verdict = check_order(_bid(10 * C), ctx)

    assert verdict.allowed
    assert (verdict.decision, verdict.qty, verdict.limit) == (Decision.APPROVE, 10 * C, None)
    assert verdict.reason == "KXA-1 bid 10.00 @ 0.4500 approved"
    assert ctx.exposures.get(A) == MarketExposure(0, 10 * C, 0, orders=1)


def test_a_bid_is_clipped_to_the_room_left_by_the_position_and_open_bids() -> None:
    ctx = _ctx(KXA_1=MarketExposure(38 * C, 4 * C, 0, orders=1))

    verdict = check_order(_bid(12 * C), ctx)

    assert verdict.decision is Decision.CLIP
    assert (verdict.qty, verdict.limit) == (8 * C, Limit.MAX_POSITION)
    assert verdict.reason == (
        "KXA-1 bid 12.00 @ 0.4500 clipped to 8.00: max_position 50.00, position 38.00, "
        "open bids 4.00"
    )


def test_an_ask_is_clipped_by_the_short_side() -> None:
    ctx = _ctx(KXA_1=MarketExposure(-38 * C, 0, 10 * C, orders=1))

    verdict = check_order(_ask(12 * C), ctx)

    assert (verdict.decision, verdict.qty) == (Decision.CLIP, 2 * C)
    assert verdict.reason.endswith("max_position 50.00, position -38.00, open asks 10.00")


def test_a_bid_against_a_short_position_may_reach_the_cap_on_the_long_side() -> None:
    ctx = _ctx(KXA_1=MarketExposure(-45 * C, 0, 0))

    verdict = check_order(_bid(20 * C), ctx)

    assert verdict.decision is Decision.APPROVE


def test_bids_with_a_cancel_in_flight_still_count_against_the_cap() -> None:
    portfolio = Portfolio()
    tracker = OrderTracker(ClientOrderIds("run1"))
    order = tracker.new(_bid(20 * C), T0)
    tracker.on_ack(order.client_order_id, "ex-1", T0, remaining=20 * C)
    tracker.request_cancel(order.client_order_id, T0)
    ctx = _ctx(RiskLimits(50 * C, 500 * C, 100 * C, 100 * USD, 10))
    ctx.exposures.refresh(A, portfolio, tracker)

    verdict = check_order(_bid(40 * C), ctx)

    assert order.state == "pending_cancel"
    assert (verdict.decision, verdict.qty, verdict.limit) == (
        Decision.CLIP,
        30 * C,
        Limit.MAX_POSITION,
    )
    assert verdict.reason.endswith("position 0.00, open bids 20.00")


def test_the_global_cap_clips_and_names_the_other_markets() -> None:
    ctx = _ctx(
        KXB_2=MarketExposure(40 * C, 10 * C, 0),  # worst 50
        KXC_3=MarketExposure(-40 * C, 0, 20 * C),  # worst 60
    )

    verdict = check_order(_bid(15 * C), ctx)

    assert (verdict.decision, verdict.qty, verdict.limit) == (
        Decision.CLIP,
        10 * C,
        Limit.MAX_TOTAL_POSITION,
    )
    assert verdict.reason.endswith(
        "max_total_position 120.00, worst case in other markets 110.00, position 0.00, "
        "open bids 0.00"
    )


def test_the_global_cap_passes_an_order_that_does_not_worsen_its_market() -> None:
    # Other markets already exceed the global cap; closing half a short adds no risk
    ctx = _ctx(
        KXA_1=MarketExposure(-30 * C, 0, 0),
        KXB_2=MarketExposure(50 * C, 0, 0),
        KXC_3=MarketExposure(50 * C, 0, 0),
    )

    closing = check_order(_bid(15 * C), ctx)
    adding = check_order(_ask(5 * C), ctx)

    assert closing.decision is Decision.APPROVE
    assert (adding.decision, adding.limit) == (Decision.REJECT, Limit.MAX_TOTAL_POSITION)


def test_an_order_larger_than_the_size_limit_is_clipped_to_it() -> None:
    verdict = check_order(_bid(25 * C), _ctx())

    assert (verdict.decision, verdict.qty, verdict.limit) == (
        Decision.CLIP,
        20 * C,
        Limit.MAX_ORDER_SIZE,
    )
    assert verdict.reason == "KXA-1 bid 25.00 @ 0.4500 clipped to 20.00: max_order_size 20.00"


def test_a_bid_is_held_to_the_notional_cap_at_its_price() -> None:
    limits = RiskLimits(100 * C, 100 * C, 100 * C, 10 * USD, 10)

    verdict = check_order(_bid(30 * C, price=5000), _ctx(limits))

    assert (verdict.qty, verdict.limit) == (20 * C, Limit.MAX_ORDER_NOTIONAL)
    assert verdict.reason.endswith("max_order_notional $10.00, cost $0.50 each")


def test_an_ask_costs_one_minus_its_price_against_the_notional_cap() -> None:
    limits = RiskLimits(100 * C, 100 * C, 100 * C, 10 * USD, 10)

    verdict = check_order(_ask(60 * C, price=8000), _ctx(limits))

    assert (verdict.qty, verdict.limit) == (50 * C, Limit.MAX_ORDER_NOTIONAL)
    assert verdict.reason.endswith("cost $0.20 each")


def test_a_clipped_size_is_rounded_down_to_a_lot() -> None:
    limits = RiskLimits(50 * C, 500 * C, 20 * C, 50 * USD, 10, lot_qty=5 * C)
    ctx = _ctx(limits, KXA_1=MarketExposure(38 * C, 0, 0))

    verdict = check_order(_bid(15 * C), ctx)

    assert (verdict.decision, verdict.qty) == (Decision.CLIP, 10 * C)


def test_a_room_smaller_than_a_lot_rejects_the_order() -> None:
    limits = RiskLimits(50 * C, 500 * C, 20 * C, 50 * USD, 10, lot_qty=5 * C)
    ctx = _ctx(limits, KXA_1=MarketExposure(47 * C, 0, 0))

    verdict = check_order(_bid(15 * C), ctx)

    assert (verdict.decision, verdict.qty, verdict.limit) == (
        Decision.REJECT,
        0,
        Limit.MAX_POSITION,
    )
    assert not verdict.allowed


def test_an_order_on_a_full_side_is_rejected_and_reserves_nothing() -> None:
    ctx = _ctx(KXA_1=MarketExposure(40 * C, 10 * C, 0, orders=1))

    verdict = check_order(_bid(C), ctx)

    assert verdict.reason == (
        "KXA-1 bid 1.00 @ 0.4500 rejected: max_position 50.00, position 40.00, open bids 10.00"
    )
    assert ctx.exposures.get(A) == MarketExposure(40 * C, 10 * C, 0, orders=1)


# check_order: reduce-only and refusals


def test_reduce_only_rejects_an_order_that_adds_to_the_position() -> None:
    ctx = _ctx(KXA_1=MarketExposure(10 * C, 0, 0))
    ctx.reduce_only.add(A)

    verdict = check_order(_bid(C), ctx)

    assert (verdict.decision, verdict.limit) == (Decision.REJECT, Limit.REDUCE_ONLY)
    assert verdict.reason.endswith("reduce_only, position 10.00, open bids 0.00")


def test_reduce_only_clips_a_reducing_order_to_the_position_less_open_orders() -> None:
    ctx = _ctx(KXA_1=MarketExposure(10 * C, 0, 3 * C))
    ctx.reduce_only.add(A)

    verdict = check_order(_ask(10 * C), ctx)

    assert (verdict.decision, verdict.qty, verdict.limit) == (
        Decision.CLIP,
        7 * C,
        Limit.REDUCE_ONLY,
    )


def test_reduce_only_applies_only_to_its_markets() -> None:
    ctx = _ctx()
    ctx.reduce_only.add(B)

    assert check_order(_bid(C), ctx).decision is Decision.APPROVE


@pytest.mark.parametrize(
    ("intent", "limit", "detail"),
    [
        (_bid(0), Limit.SIZE, "size 0.00 is not positive"),
        (_bid(-C), Limit.SIZE, "size -1.00 is not positive"),
        (_bid(C, price=0), Limit.PRICE, "price 0.0000 is outside (0, 1)"),
        (_ask(C, price=ONE_DOLLAR), Limit.PRICE, "price 1.0000 is outside (0, 1)"),
    ],
)
def test_a_size_or_price_out_of_range_is_rejected(
    intent: OrderIntent, limit: Limit, detail: str
) -> None:
    verdict = check_order(intent, _ctx())

    assert (verdict.decision, verdict.limit) == (Decision.REJECT, limit)
    assert verdict.reason.endswith(f"rejected: {detail}")


def test_nothing_is_placed_while_the_kill_switch_is_halting() -> None:
    ctx = _ctx()
    ctx.kill_switch.trip("kill file KILL exists", T0)

    verdict = check_order(_bid(C), ctx)

    assert (verdict.decision, verdict.limit) == (Decision.REJECT, Limit.HALTED)
    assert verdict.reason.endswith("kill switch halting: kill file KILL exists")


def test_nothing_is_placed_while_exchange_trading_is_paused() -> None:
    ctx = _ctx()
    ctx.exchange_paused = True

    verdict = check_order(_bid(C), ctx)

    assert (verdict.decision, verdict.limit) == (Decision.REJECT, Limit.EXCHANGE_PAUSED)


def test_nothing_is_placed_in_a_blocked_market() -> None:
    ctx = _ctx()
    ctx.blocked[A] = "position drift"

    verdict = check_order(_bid(C), ctx)

    assert (verdict.decision, verdict.limit) == (Decision.REJECT, Limit.MARKET_BLOCKED)
    assert verdict.reason.endswith("market blocked: position drift")


def test_a_new_order_beyond_the_open_order_limit_is_rejected_but_an_amend_is_not() -> None:
    ctx = _ctx(KXB_2=MarketExposure(0, 5 * C, 5 * C, orders=10))
    ctx.exposures.set_market(A, 0, 2 * C, 0, orders=1)

    new = check_order(_bid(C), ctx)
    amend = check_order(_bid(3 * C), ctx, replaces=2 * C)

    assert (new.decision, new.limit) == (Decision.REJECT, Limit.MAX_OPEN_ORDERS)
    assert new.reason.endswith("max_open_orders 10, open orders 11")
    assert amend.decision is Decision.APPROVE


def test_new_orders_stop_while_too_many_outcomes_are_unknown() -> None:
    ctx = _ctx(KXB_2=MarketExposure(0, 2 * C, 0, orders=2, unknown=2))

    verdict = check_order(_bid(C), ctx)

    assert (verdict.decision, verdict.limit) == (Decision.REJECT, Limit.MAX_UNKNOWN_ORDERS)
    assert verdict.reason.endswith("max_unknown_orders 1, orders of unknown outcome 2")


# check_order: amends


def test_an_amend_up_is_held_to_the_cap_counting_only_its_increase() -> None:
    ctx = _ctx(KXA_1=MarketExposure(30 * C, 15 * C, 0, orders=2))  # one order of 10, one of 5

    verdict = check_order(_bid(20 * C), ctx, replaces=10 * C)

    assert (verdict.decision, verdict.qty) == (Decision.CLIP, 15 * C)
    assert verdict.reason == (
        "KXA-1 bid 20.00 @ 0.4500 (amending 10.00) clipped to 15.00: max_position 50.00, "
        "position 30.00, open bids 5.00 besides the order amended"
    )
    assert ctx.exposures.get(A) == MarketExposure(30 * C, 20 * C, 0, orders=2)


def test_an_amend_down_passes_on_a_side_already_beyond_the_cap() -> None:
    ctx = _ctx(KXA_1=MarketExposure(45 * C, 20 * C, 0, orders=1))

    verdict = check_order(_bid(5 * C), ctx, replaces=20 * C)

    assert verdict.decision is Decision.APPROVE
    assert ctx.exposures.get(A) == MarketExposure(45 * C, 20 * C, 0, orders=1)


def test_an_amend_cannot_replace_a_negative_size() -> None:
    with pytest.raises(ValueError, match="cannot replace -1 contracts"):
        check_order(_bid(C), _ctx(), replaces=-1)


def test_a_burst_of_orders_checked_before_any_refresh_cannot_pass_a_cap_together() -> None:
    ctx = _ctx()

    verdicts = [check_order(_bid(20 * C), ctx) for _ in range(4)]

    assert [v.qty for v in verdicts] == [20 * C, 20 * C, 10 * C, 0]
    assert ctx.exposures.get(A).bid_open == 50 * C


# The caps hold whatever the orders, fills, cancels and refreshes


_TICKERS = (A, B, K)
_LIMITS = st.builds(
    lambda pos, extra, size, notional, lot: RiskLimits(
        max_position=pos,
        max_total_position=pos + extra,
        max_order_qty=size,
        max_order_notional=notional,
        max_open_orders=1_000,
        max_unknown_orders=1_000,
        lot_qty=lot,
    ),
    st.integers(C, 60 * C),
    st.integers(0, 80 * C),
    st.integers(C, 40 * C),
    st.integers(5 * USD, 60 * USD),
    st.sampled_from([1, 1, 50, C]),
)
_SIDES = st.sampled_from([BID, ASK])
_PRICES = st.integers(1, ONE_DOLLAR - 1)
_SIZES = st.integers(1, 50 * C)  # sizes out of range are covered above


@dataclass
class _Truth:
    """What the exchange holds: per market [position, bid exposure, ask exposure]."""

    markets: dict[str, list[int]]

    def worst(self, ticker: str) -> int:
        pos, bid, ask = self.markets[ticker]
        return max(pos + bid, ask - pos)

    def total(self) -> int:
        return sum(self.worst(t) for t in self.markets)


def _open(truth: _Truth, ticker: str, side: BookSide) -> int:
    return truth.markets[ticker][1 if side is BID else 2]


def _add(truth: _Truth, ticker: str, side: BookSide, qty: int) -> None:
    truth.markets[ticker][1 if side is BID else 2] += qty


def _apply(action: tuple[object, ...], truth: _Truth, ctx: RiskContext) -> None:
    kind, ticker, side, a, b, c = action
    assert isinstance(ticker, str) and isinstance(side, BookSide)
    assert isinstance(a, int) and isinstance(b, int) and isinstance(c, int)
    open_ = _open(truth, ticker, side)
    if kind == "new":
        verdict = check_order(OrderIntent(ticker, side, a, b), ctx)
        _add(truth, ticker, side, verdict.qty)
    elif kind == "amend" and open_ > 0:
        replaces = 1 + c % open_
        verdict = check_order(OrderIntent(ticker, side, a, b), ctx, replaces=replaces)
        if verdict.allowed:
            _add(truth, ticker, side, max(verdict.qty, replaces) - replaces)
    elif kind == "fill" and open_ > 0:
        qty = 1 + c % open_
        _add(truth, ticker, side, -qty)
        truth.markets[ticker][0] += qty if side is BID else -qty
    elif kind == "cancel" and open_ > 0:
        _add(truth, ticker, side, -(1 + c % open_))
    elif kind == "refresh":
        pos, bid, ask = truth.markets[ticker]
        ctx.exposures.set_market(ticker, pos, bid, ask)


_ACTIONS = st.tuples(
    st.sampled_from(["new", "new", "amend", "fill", "cancel", "refresh"]),
    st.sampled_from(_TICKERS),
    _SIDES,
    _PRICES,
    _SIZES,
    st.integers(0, 10**6),
)


@settings(max_examples=300, deadline=None)
@given(limits=_LIMITS, actions=st.lists(_ACTIONS, max_size=40))
def test_no_sequence_of_checked_orders_takes_worst_case_exposure_beyond_the_caps(
    limits: RiskLimits, actions: list[tuple[object, ...]]
) -> None:
    truth = _Truth({t: [0, 0, 0] for t in _TICKERS})
    ctx = RiskContext(limits, _switch())

    for action in actions:
        _apply(action, truth, ctx)

        for ticker in _TICKERS:
            assert truth.worst(ticker) <= limits.max_position
        assert truth.total() <= limits.max_total_position


_EXPOSURES = st.builds(
    lambda pos, bid, ask: MarketExposure(pos, bid, ask),
    st.integers(-80 * C, 80 * C),
    st.integers(0, 30 * C),
    st.integers(0, 30 * C),
)


@dataclass
class _Check:
    """One order against one market's figures, and the caps it must keep."""

    limits: RiskLimits
    signed: int  # position signed for the order's side
    side_open: int
    replaces: int
    others: int  # worst case of the other markets
    worst: int  # this market's worst case before the order
    other_side: int  # the worst case on the opposite side of this market
    cost: int
    reduce_only: bool

    def within(self, qty: int) -> bool:
        limits = self.limits
        side_after = self.signed + self.side_open - self.replaces + max(qty, self.replaces)
        worst_after = max(side_after, self.other_side)
        return (
            qty <= limits.max_order_qty
            and qty * self.cost <= limits.max_order_notional
            and side_after <= max(limits.max_position, self.signed + self.side_open)
            and self.others + worst_after
            <= max(limits.max_total_position, self.others + self.worst)
            and (not self.reduce_only or self.signed + self.side_open - self.replaces + qty <= 0)
        )


@settings(max_examples=400, deadline=None)
@given(
    limits=_LIMITS,
    exposures=st.tuples(_EXPOSURES, _EXPOSURES, _EXPOSURES),
    side=_SIDES,
    price=_PRICES,
    qty=_SIZES,
    amend=st.integers(-1, 30 * C),
    reduce_only=st.booleans(),
)
def test_one_check_lets_through_the_most_that_keeps_every_cap_and_reserves_it(
    limits: RiskLimits,
    exposures: tuple[MarketExposure, MarketExposure, MarketExposure],
    side: BookSide,
    price: int,
    qty: int,
    amend: int,
    reduce_only: bool,
) -> None:
    ctx = RiskContext(limits, _switch())
    for ticker, exp in zip(_TICKERS, exposures, strict=True):
        ctx.exposures.set_market(ticker, *exp)
    if reduce_only:
        ctx.reduce_only.add(A)
    before = ctx.exposures.get(A)
    is_bid = side is BID
    side_open = before.bid_open if is_bid else before.ask_open
    replaces = None if amend < 0 or side_open == 0 else min(amend, side_open)
    signed = before.position if is_bid else -before.position
    check = _Check(
        limits,
        signed,
        side_open,
        replaces or 0,
        ctx.exposures.total_worst - before.worst,
        before.worst,
        (before.ask_open if is_bid else before.bid_open) - signed,
        price if is_bid else ONE_DOLLAR - price,
        reduce_only,
    )

    verdict = check_order(OrderIntent(A, side, price, qty), ctx, replaces=replaces)

    added = max(verdict.qty - (replaces or 0), 0) if verdict.allowed else 0
    expected = before._replace(**{"bid_open" if is_bid else "ask_open": side_open + added})
    if verdict.allowed and replaces is None:
        expected = expected._replace(orders=before.orders + 1)
    assert ctx.exposures.get(A) == expected
    if verdict.allowed:
        assert 0 < verdict.qty <= qty
        assert check.within(verdict.qty)
    if limits.lot_qty == 1 and verdict.qty < qty:
        # Nothing larger would have kept every cap
        assert not check.within(verdict.qty + 1)
