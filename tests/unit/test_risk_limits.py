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


def _counts(exposure: MarketExposure) -> MarketExposure:
    """The contract figures alone (what the contract caps read)."""
    return exposure._replace(yes_at_risk=0, no_at_risk=0, resting_value=0)


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
    yes_at_risk = 4 * C * 4500 + 6 * C * 4500  # the long's cost and the resting bid's
    no_at_risk = 5 * C * (ONE_DOLLAR - 5500)  # the asks cost 1 - their price each
    assert exposure == MarketExposure(
        4 * C,
        6 * C,
        5 * C,
        orders=3,
        unknown=1,
        yes_at_risk=yes_at_risk,
        no_at_risk=no_at_risk,
        resting_value=6 * C * 4500 + no_at_risk,
    )
    assert (book.total_dollars, book.resting_value) == (yes_at_risk, exposure.resting_value)
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

    assert _counts(book.get(A)) == MarketExposure(10 * C, 0, 25 * C, orders=1)
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
    assert _counts(ctx.exposures.get(A)) == MarketExposure(0, 10 * C, 0, orders=1)


def test_a_bid_is_clipped_to_the_room_left_by_the_position_and_open_bids() -> None:
    ctx = _ctx(KXA_1=MarketExposure(38 * C, 4 * C, 0, orders=1))

    verdict = check_order(_bid(12 * C), ctx)

    assert verdict.decision is Decision.CLIP
    assert (verdict.qty, verdict.limit) == (8 * C, Limit.MAX_POSITION)
    assert verdict.reason == (
        "KXA-1 bid 12.00 @ 0.4500 clipped to 8.00: max_position 50.00, position 38.00, "
        "open bids 4.00"
    )


def test_a_market_with_its_own_lower_cap_is_clipped_to_it_and_a_higher_one_is_ignored() -> None:
    ctx = _ctx(KXA_1=MarketExposure(8 * C, 0, 0, orders=0))
    ctx.market_caps["KXA-1"] = 10 * C
    ctx.market_caps["KXB-1"] = 500 * C  # above the global 50: the global cap holds

    verdict = check_order(_bid(12 * C), ctx)
    other = check_order(_bid(60 * C, ticker="KXB-1"), ctx)

    assert (verdict.decision, verdict.qty) == (Decision.CLIP, 2 * C)
    assert verdict.reason.endswith("max_position 10.00, position 8.00, open bids 0.00")
    assert (ctx.max_position("KXA-1"), ctx.max_position("KXB-1")) == (10 * C, 50 * C)
    assert other.qty <= 50 * C


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
    assert _counts(ctx.exposures.get(A)) == MarketExposure(40 * C, 10 * C, 0, orders=1)


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
    assert _counts(ctx.exposures.get(A)) == MarketExposure(30 * C, 20 * C, 0, orders=2)


def test_an_amend_down_passes_on_a_side_already_beyond_the_cap() -> None:
    ctx = _ctx(KXA_1=MarketExposure(45 * C, 20 * C, 0, orders=1))

    verdict = check_order(_bid(5 * C), ctx, replaces=20 * C)

    assert verdict.decision is Decision.APPROVE
    assert _counts(ctx.exposures.get(A)) == MarketExposure(45 * C, 20 * C, 0, orders=1)


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
    assert _counts(ctx.exposures.get(A)) == expected
    if verdict.allowed:
        assert 0 < verdict.qty <= qty
        assert check.within(verdict.qty)
    if limits.lot_qty == 1 and verdict.qty < qty:
        # Nothing larger would have kept every cap
        assert not check.within(verdict.qty + 1)


# Dollar exposure

DOLLARS = RiskLimits(
    max_position=500 * C,
    max_total_position=5000 * C,
    max_order_qty=200 * C,
    max_order_notional=500 * USD,
    max_open_orders=100,
    max_market_exposure=10 * USD,
    max_event_exposure=15 * USD,
    max_category_exposure=25 * USD,
    max_total_exposure=40 * USD,
)
E1, E2 = "KXE-1", "KXE-2"  # one event; K is in another event of the same category


def _grouped(limits: RiskLimits = DOLLARS) -> RiskContext:
    ctx = RiskContext(limits, _switch())
    for ticker in (E1, E2):
        ctx.exposures.set_group(ticker, "EV-1", "Weather")
    ctx.exposures.set_group(K, "EV-2", "Weather")
    ctx.exposures.set_group(A, "", "")
    return ctx


def test_a_bid_is_clipped_to_the_money_left_in_its_market() -> None:
    ctx = _grouped()

    verdict = check_order(_bid(30 * C, 5000, E1), ctx)

    assert (verdict.decision, verdict.qty, verdict.limit) == (
        Decision.CLIP,
        20 * C,
        Limit.MAX_MARKET_EXPOSURE,
    )
    assert "max_market_exposure $10.00" in verdict.reason
    assert ctx.exposures.get(E1).yes_at_risk == 10 * USD
    assert ctx.exposures.total_dollars == 10 * USD


def test_an_ask_risks_one_minus_its_price() -> None:
    ctx = _grouped()

    verdict = check_order(_ask(100 * C, 8000, E1), ctx)  # 20 cents each: $10 buys 50

    assert verdict.qty == 50 * C
    assert ctx.exposures.get(E1).no_at_risk == 10 * USD


def test_a_markets_money_at_risk_is_its_worse_side_not_both() -> None:
    ctx = _grouped()
    check_order(_bid(20 * C, 5000, E1), ctx)

    verdict = check_order(_ask(20 * C, 5000, E1), ctx)

    assert verdict.decision is Decision.APPROVE
    assert ctx.exposures.get(E1).dollars == 10 * USD


def test_the_event_cap_counts_every_market_of_the_event() -> None:
    ctx = _grouped()
    check_order(_bid(20 * C, 5000, E1), ctx)  # $10 in EV-1

    verdict = check_order(_bid(20 * C, 5000, E2), ctx)

    assert (verdict.qty, verdict.limit) == (10 * C, Limit.MAX_EVENT_EXPOSURE)
    assert "in event EV-1 $10.00" in verdict.reason


def test_the_category_cap_counts_the_events_of_the_category() -> None:
    ctx = _grouped(DOLLARS.__class__(**{**_fields(DOLLARS), "max_market_exposure": None}))
    check_order(_bid(20 * C, 5000, E1), ctx)
    check_order(_bid(10 * C, 5000, E2), ctx)  # $15 in Weather

    verdict = check_order(_bid(30 * C, 5000, K), ctx)

    assert (verdict.qty, verdict.limit) == (20 * C, Limit.MAX_CATEGORY_EXPOSURE)
    assert "in category Weather $15.00" in verdict.reason


def test_a_market_with_no_known_event_is_held_by_the_total_cap() -> None:
    ctx = _grouped(DOLLARS.__class__(**{**_fields(DOLLARS), "max_market_exposure": None}))
    check_order(_bid(30 * C, 5000, E1), ctx)
    check_order(_bid(40 * C, 5000, K), ctx)  # $15 + $20: Weather's $25 cap binds at $10 here

    verdict = check_order(_bid(100 * C, 5000, A), ctx)

    assert ctx.exposures.total_dollars - ctx.exposures.get(A).dollars == 25 * USD
    assert (verdict.qty, verdict.limit) == (30 * C, Limit.MAX_TOTAL_EXPOSURE)


def test_an_order_that_reduces_a_position_is_not_blocked_by_the_dollar_caps() -> None:
    ctx = _grouped()
    ctx.exposures.set_market(E1, 40 * C, yes_at_risk=20 * USD)  # long beyond the $10 cap

    assert check_order(_bid(1 * C, 5000, E1), ctx).decision is Decision.REJECT
    verdict = check_order(_ask(20 * C, 5000, E1), ctx)

    assert verdict.decision is Decision.APPROVE


def test_an_amend_keeps_its_size_on_a_market_at_its_dollar_cap() -> None:
    ctx = _grouped()
    check_order(_bid(20 * C, 5000, E1), ctx)

    same = check_order(_bid(20 * C, 5000, E1), ctx, replaces=20 * C)
    larger = check_order(_bid(30 * C, 5000, E1), ctx, replaces=20 * C)

    assert same.decision is Decision.APPROVE
    assert (larger.qty, larger.limit) == (20 * C, Limit.MAX_MARKET_EXPOSURE)


def test_the_resting_value_cap_counts_every_open_order() -> None:
    limits = RiskLimits(
        max_position=500 * C,
        max_total_position=5000 * C,
        max_order_qty=200 * C,
        max_order_notional=500 * USD,
        max_open_orders=100,
        max_resting_value=12 * USD,
    )
    ctx = RiskContext(limits, _switch())
    ctx.exposures.set_market(B, 50 * C, yes_at_risk=25 * USD)  # a position is not resting
    check_order(_bid(10 * C, 5000, A), ctx)
    check_order(_ask(10 * C, 5000, A), ctx)  # $10 resting

    verdict = check_order(_bid(10 * C, 4000, K), ctx)

    assert (verdict.qty, verdict.limit) == (5 * C, Limit.MAX_RESTING_VALUE)
    assert "open orders cost $10.00" in verdict.reason


def test_refresh_counts_an_order_being_amended_at_its_costlier_price() -> None:
    portfolio = Portfolio()
    tracker = OrderTracker(ClientOrderIds("run1"))
    order = tracker.new(_bid(10 * C, 4000), T0)
    tracker.on_ack(order.client_order_id, "ex-1", T0, remaining=10 * C)
    tracker.request_amend(order.client_order_id, 4500, 10 * C, T0)
    ask = tracker.new(_ask(10 * C, 6000), T0)
    tracker.on_ack(ask.client_order_id, "ex-2", T0, remaining=10 * C)
    tracker.request_amend(ask.client_order_id, 6500, 10 * C, T0)

    exposure = ExposureBook().refresh(A, portfolio, tracker)

    assert exposure.yes_at_risk == 10 * C * 4500
    assert exposure.no_at_risk == 10 * C * (ONE_DOLLAR - 6000)


def test_refresh_counts_fills_a_reply_reported_before_they_are_booked() -> None:
    portfolio = Portfolio()
    tracker = OrderTracker(ClientOrderIds("run1"))
    order = tracker.new(_ask(3 * C, 6000), T0)
    tracker.on_ack(order.client_order_id, "ex-1", T0, filled=3 * C, remaining=0)

    exposure = ExposureBook().refresh(A, portfolio, tracker)

    assert (exposure.position, exposure.ask_open, exposure.orders) == (0, 3 * C, 0)
    assert exposure.no_at_risk == 3 * C * (ONE_DOLLAR - 6000)
    assert exposure.resting_value == 0  # it filled: nothing rests
    fill = Fill("t1", "ex-1", A, ASK, 6000, 3 * C, 0, True, 1)
    portfolio.on_fill(fill)
    tracker.on_fill(fill, T0)
    booked = ExposureBook().refresh(A, portfolio, tracker)
    assert (booked.position, booked.ask_open) == (-3 * C, 0)
    assert booked.no_at_risk == exposure.no_at_risk  # the same money, now as the short


def test_a_reduce_only_order_is_refused_when_a_reported_fill_already_reduced_the_position() -> None:
    portfolio = Portfolio()
    portfolio.on_fill(Fill("t0", "ex-0", A, BID, 4000, 3 * C, 0, False, 1))  # long 3
    tracker = OrderTracker(ClientOrderIds("run1"))
    sale = tracker.new(_ask(3 * C, 4000), T0)
    tracker.on_ack(sale.client_order_id, "ex-1", T0, filled=3 * C, remaining=0)
    ctx = RiskContext(LIMITS, _switch())
    ctx.reduce_only.add(A)
    ctx.exposures.refresh(A, portfolio, tracker)

    verdict = check_order(_ask(3 * C, 4000), ctx)

    assert not verdict.allowed and "reduce_only" in verdict.reason


def test_a_short_risks_what_its_no_contracts_cost() -> None:
    portfolio = Portfolio()
    portfolio.on_fill(Fill("t1", "ex-1", A, ASK, 7000, 10 * C, 0, False, 1))  # NO at 0.30

    exposure = ExposureBook().refresh(A, portfolio, OrderTracker(ClientOrderIds("run1")))

    assert (exposure.no_at_risk, exposure.yes_at_risk) == (3 * USD, 0)


def test_dollar_caps_come_from_the_config_and_must_be_positive() -> None:
    risk = RiskConfig(
        max_market_exposure_dollars=Decimal("12.5"),
        max_event_exposure_dollars=Decimal(20),
        max_category_exposure_dollars=Decimal(30),
        max_total_exposure_dollars=Decimal(40),
        max_resting_value_dollars=Decimal(50),
    )
    limits = RiskLimits.from_config(risk, StrategyConfig())

    assert (
        limits.max_market_exposure,
        limits.max_event_exposure,
        limits.max_category_exposure,
        limits.max_total_exposure,
        limits.max_resting_value,
    ) == (12_500_000, 20 * USD, 30 * USD, 40 * USD, 50 * USD)
    assert RiskLimits.from_config(RiskConfig(), StrategyConfig()).dollar_capped is False
    with pytest.raises(ValueError, match="max_total_exposure must be >= 1"):
        RiskLimits(**{**_fields(LIMITS), "max_total_exposure": 0})


def _fields(limits: RiskLimits) -> dict[str, object]:
    return {name: getattr(limits, name) for name in limits.__dataclass_fields__}


_DOLLAR_TICKERS = (E1, E2, K, A)


@dataclass
class _Money:
    """What the exchange holds: per market the open orders as (side, price, qty)."""

    orders: dict[str, list[tuple[BookSide, int, int]]]

    def side(self, ticker: str, side: BookSide) -> int:
        return sum(
            q * (p if s is BID else ONE_DOLLAR - p) for s, p, q in self.orders[ticker] if s is side
        )

    def dollars(self, ticker: str) -> int:
        return max(self.side(ticker, BID), self.side(ticker, ASK))


_MONEY_CAPS = st.builds(
    lambda m, e, c, t, r: RiskLimits(
        max_position=10_000 * C,
        max_total_position=100_000 * C,
        max_order_qty=1000 * C,
        max_order_notional=10_000 * USD,
        max_open_orders=1000,
        max_market_exposure=m,
        max_event_exposure=e,
        max_category_exposure=c,
        max_total_exposure=t,
        max_resting_value=r,
    ),
    *[st.none() | st.integers(1, 100 * USD) for _ in range(5)],
)


@settings(max_examples=300, deadline=None)
@given(
    limits=_MONEY_CAPS,
    orders=st.lists(
        st.tuples(
            st.sampled_from(_DOLLAR_TICKERS),
            _SIDES,
            st.integers(1, 99).map(lambda cents: cents * 100),
            st.integers(1, 300 * C),
            st.booleans(),
        ),
        max_size=30,
    ),
)
def test_no_sequence_of_checked_orders_puts_more_money_at_risk_than_the_caps(
    limits: RiskLimits, orders: list[tuple[str, BookSide, int, int, bool]]
) -> None:
    ctx = _grouped(limits)
    truth = _Money({t: [] for t in _DOLLAR_TICKERS})

    for ticker, side, price, qty, refresh in orders:
        verdict = check_order(OrderIntent(ticker, side, price, qty), ctx)
        if verdict.allowed:
            truth.orders[ticker].append((side, price, verdict.qty))
        if refresh:
            bids, asks = truth.side(ticker, BID), truth.side(ticker, ASK)
            ctx.exposures.set_market(
                ticker, 0, yes_at_risk=bids, no_at_risk=asks, resting_value=bids + asks
            )

        by_market = {t: truth.dollars(t) for t in _DOLLAR_TICKERS}
        caps = (
            (limits.max_market_exposure, [[t] for t in _DOLLAR_TICKERS]),
            (limits.max_event_exposure, [[E1, E2], [K]]),
            (limits.max_category_exposure, [[E1, E2, K]]),
            (limits.max_total_exposure, [list(_DOLLAR_TICKERS)]),
        )
        for cap, groups in caps:
            for group in groups:
                assert cap is None or sum(by_market[t] for t in group) <= cap
        resting = sum(truth.side(t, s) for t in _DOLLAR_TICKERS for s in (BID, ASK))
        assert limits.max_resting_value is None or resting <= limits.max_resting_value
