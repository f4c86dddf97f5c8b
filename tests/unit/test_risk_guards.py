from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmm.risk.guards import (
    Cause,
    Drift,
    MarketStatus,
    compare_orders,
    compare_positions,
    gate_quote,
    market_mode,
)
from kmm.risk.killswitch import KillSwitch
from kmm.risk.limits import QuoteMode, RiskContext, RiskLimits
from kmm.types import ONE_DOLLAR, Quote

S = 1_000_000_000
T0 = 1_700_000_000 * S
USD = 1_000_000
C = 100
A, B = "KXA-1", "KXB-2"
LIMITS = RiskLimits(
    max_position=50 * C,
    max_total_position=120 * C,
    max_order_qty=20 * C,
    max_order_notional=50 * USD,
    max_open_orders=10,
    stale_book_ns=30 * S,
    no_quote_before_close_ns=60 * S,
    wind_down_before_close_ns=300 * S,
)
FRESH = MarketStatus(book_ns=T0)
EMPTY = Quote(A, None, 0, None, 0)


def _ctx(limits: RiskLimits = LIMITS) -> RiskContext:
    switch = KillSwitch(max_daily_loss=100 * USD, max_drawdown=100 * USD, max_unknown_orders=5)
    return RiskContext(limits, switch)


def _quote(bid_qty: int = 10 * C, ask_qty: int = 10 * C) -> Quote:
    return Quote(A, 4500, bid_qty, 5500, ask_qty)


# Market modes


def test_a_quote_within_every_limit_passes_unchanged() -> None:
    ctx = _ctx()
    quote = _quote()

    gated = gate_quote(quote, FRESH, ctx, T0 + S)

    assert gated is quote
    assert ctx.take_events() == []


def test_a_halted_kill_switch_pulls_every_quote() -> None:
    ctx = _ctx()
    ctx.kill_switch.trip("SIGUSR1", T0)

    gated = gate_quote(_quote(), FRESH, ctx, T0 + S)

    assert gated == EMPTY
    (event,) = ctx.take_events()
    assert str(event) == "KXA-1 quoting off: kill switch halting: SIGUSR1"


def test_a_paused_exchange_pulls_the_quote() -> None:
    ctx = _ctx()
    ctx.exchange_paused = True

    assert gate_quote(_quote(), FRESH, ctx, T0) == EMPTY
    assert market_mode(A, FRESH, ctx, T0) == (QuoteMode.OFF, Cause.EXCHANGE_PAUSED)


def test_a_blocked_market_is_not_quoted_and_the_reason_is_logged() -> None:
    ctx = _ctx()
    ctx.blocked[A] = "position drift of +2.00"

    gated = gate_quote(_quote(), FRESH, ctx, T0)

    assert gated == EMPTY
    assert ctx.take_events()[0].reason == "market blocked: position drift of +2.00"


def test_an_untrusted_book_pulls_the_quote() -> None:
    ctx = _ctx()

    gated = gate_quote(_quote(), FRESH._replace(trusted=False), ctx, T0)

    assert gated == EMPTY
    assert ctx.modes[A] == (QuoteMode.OFF, Cause.UNTRUSTED)


def test_a_book_without_update_for_the_stale_limit_pulls_the_quote() -> None:
    ctx = _ctx()

    gated = gate_quote(_quote(), FRESH, ctx, T0 + 30 * S)

    assert gated == EMPTY
    assert ctx.take_events()[0].reason == "book stale: no update for 30.0 s (stale_book_s 30.0 s)"


def test_a_book_just_younger_than_the_stale_limit_is_quoted() -> None:
    quote = _quote()

    assert gate_quote(quote, FRESH, _ctx(), T0 + 30 * S - 1) is quote


def test_a_market_about_to_close_is_not_quoted() -> None:
    ctx = _ctx()
    status = FRESH._replace(close_ns=T0 + 60 * S)

    gated = gate_quote(_quote(), status, ctx, T0)

    assert gated == EMPTY
    assert str(ctx.take_events()[0]) == (
        "KXA-1 quoting off: market closes in 60.0 s (no_quote_before_close_s 60.0 s)"
    )


def test_a_closed_market_is_not_quoted() -> None:
    assert gate_quote(_quote(), FRESH._replace(close_ns=T0 - S), _ctx(), T0) == EMPTY


def test_winding_down_keeps_only_the_side_that_reduces_a_long_sized_to_the_position() -> None:
    ctx = _ctx()
    ctx.exposures.set_market(A, 4 * C, 0, 0)
    status = FRESH._replace(close_ns=T0 + 300 * S)

    gated = gate_quote(_quote(), status, ctx, T0)

    assert gated == Quote(A, None, 0, 5500, 4 * C)
    (event,) = ctx.take_events()
    assert event.mode is QuoteMode.REDUCE_ONLY
    assert event.reason == (
        "market closes in 300.0 s: winding down (wind_down_before_close_s 300.0 s)"
    )


def test_winding_down_keeps_only_the_bid_for_a_short() -> None:
    ctx = _ctx()
    ctx.exposures.set_market(A, -15 * C, 0, 0)

    gated = gate_quote(_quote(), FRESH._replace(close_ns=T0 + 100 * S), ctx, T0)

    assert gated == Quote(A, 4500, 10 * C, None, 0)


def test_winding_down_a_flat_market_quotes_nothing() -> None:
    gated = gate_quote(_quote(), FRESH._replace(close_ns=T0 + 100 * S), _ctx(), T0)

    assert gated == EMPTY


def test_a_market_set_reduce_only_quotes_only_the_reducing_side() -> None:
    ctx = _ctx()
    ctx.reduce_only.add(A)
    ctx.exposures.set_market(A, 3 * C, 0, 0)

    gated = gate_quote(_quote(), FRESH, ctx, T0)

    assert gated == Quote(A, None, 0, 5500, 3 * C)
    assert ctx.modes[A] == (QuoteMode.REDUCE_ONLY, Cause.REDUCE_ONLY)


def test_the_kill_switch_comes_before_every_other_cause() -> None:
    ctx = _ctx()
    ctx.kill_switch.trip("operator", T0)
    ctx.exchange_paused = True
    status = MarketStatus(book_ns=0, trusted=False, close_ns=T0)

    assert market_mode(A, status, ctx, T0) == (QuoteMode.OFF, Cause.HALTED)


def test_a_mode_change_is_recorded_once_and_the_return_to_normal_too() -> None:
    ctx = _ctx()
    stale = FRESH._replace(book_ns=T0 - 60 * S)

    gate_quote(_quote(), stale, ctx, T0)
    gate_quote(_quote(), stale, ctx, T0 + S)
    gate_quote(_quote(), FRESH._replace(book_ns=T0 + 2 * S), ctx, T0 + 2 * S)

    events = ctx.take_events()
    assert [(e.ts_ns, e.mode) for e in events] == [
        (T0, QuoteMode.OFF),
        (T0 + 2 * S, QuoteMode.NORMAL),
    ]
    assert events[1].reason == "quoting normally"
    assert ctx.take_events() == []


def test_an_empty_quote_in_a_market_that_is_off_is_returned_as_it_is() -> None:
    ctx = _ctx()
    ctx.exchange_paused = True

    assert gate_quote(EMPTY, FRESH, ctx, T0) is EMPTY


# Limits on the sides


def test_a_bid_target_is_held_to_the_cap_less_the_position_whatever_rests() -> None:
    ctx = _ctx()
    ctx.exposures.set_market(A, 42 * C, 10 * C, 0, orders=1)

    gated = gate_quote(_quote(), FRESH, ctx, T0)

    assert gated == Quote(A, 4500, 8 * C, 5500, 10 * C)


def test_a_side_with_no_room_is_dropped() -> None:
    ctx = _ctx()
    ctx.exposures.set_market(A, -50 * C, 0, 0)

    gated = gate_quote(_quote(), FRESH, ctx, T0)

    assert gated == Quote(A, 4500, 10 * C, None, 0)


def test_the_global_cap_holds_a_target_to_what_other_markets_leave() -> None:
    ctx = _ctx()
    ctx.exposures.set_market(B, 45 * C, 0, 70 * C)  # worst 25 + 45 ... max(45, 25) = 45
    ctx.exposures.set_market("KXC-3", 0, 0, 70 * C)  # worst 70

    gated = gate_quote(_quote(), FRESH, ctx, T0)

    assert gated == Quote(A, 4500, 5 * C, 5500, 5 * C)


def test_a_target_is_held_to_the_order_size_and_the_notional_at_its_cost() -> None:
    limits = RiskLimits(100 * C, 500 * C, 30 * C, 10 * USD, 10)

    gated = gate_quote(Quote(A, 5000, 25 * C, 8000, 80 * C), FRESH, _ctx(limits), T0)

    assert gated == Quote(A, 5000, 20 * C, 8000, 30 * C)


def test_a_clipped_target_is_rounded_down_to_a_lot() -> None:
    limits = RiskLimits(50 * C, 500 * C, 20 * C, 50 * USD, 10, lot_qty=5 * C)
    ctx = _ctx(limits)
    ctx.exposures.set_market(A, 38 * C, 0, 0)

    gated = gate_quote(_quote(15 * C, 15 * C), FRESH, ctx, T0)

    assert gated == Quote(A, 4500, 10 * C, 5500, 15 * C)


@pytest.mark.parametrize("price", [0, ONE_DOLLAR, -100])
def test_a_side_priced_outside_the_unit_interval_is_dropped(price: int) -> None:
    gated = gate_quote(Quote(A, price, C, 5500, C), FRESH, _ctx(), T0)

    assert gated == Quote(A, None, 0, 5500, C)


def test_a_side_with_a_size_but_no_price_becomes_an_empty_side() -> None:
    gated = gate_quote(Quote(A, None, C, 5500, C), FRESH, _ctx(), T0)

    assert gated == Quote(A, None, 0, 5500, C)


_POSITIONS = st.integers(-80 * C, 80 * C)


@settings(max_examples=300, deadline=None)
@given(
    pos=_POSITIONS,
    others=st.lists(st.tuples(_POSITIONS, st.integers(0, 30 * C)), max_size=3),
    bid=st.tuples(st.integers(1, ONE_DOLLAR - 1), st.integers(0, 60 * C)),
    ask=st.tuples(st.integers(1, ONE_DOLLAR - 1), st.integers(0, 60 * C)),
    reduce_only=st.booleans(),
    lot=st.sampled_from([1, 50, C]),
)
def test_a_gated_target_never_exceeds_a_cap_if_it_replaced_the_markets_orders(
    pos: int,
    others: list[tuple[int, int]],
    bid: tuple[int, int],
    ask: tuple[int, int],
    reduce_only: bool,
    lot: int,
) -> None:
    limits = RiskLimits(50 * C, 120 * C, 20 * C, 8 * USD, 10, lot_qty=lot)
    ctx = _ctx(limits)
    ctx.exposures.set_market(A, pos, 15 * C, 15 * C)
    for i, (other_pos, other_bids) in enumerate(others):
        ctx.exposures.set_market(f"KXO-{i}", other_pos, other_bids, 0)
    if reduce_only:
        ctx.reduce_only.add(A)
    elsewhere = ctx.exposures.total_worst - ctx.exposures.get(A).worst

    gated = gate_quote(Quote(A, bid[0], bid[1], ask[0], ask[1]), FRESH, ctx, T0)

    for price, qty, signed, cost, wanted in (
        (gated.bid_price, gated.bid_qty, pos, bid[0], bid[1]),
        (gated.ask_price, gated.ask_qty, -pos, ONE_DOLLAR - ask[0], ask[1]),
    ):

        def within(size: int, signed: int = signed, cost: int = cost) -> bool:
            return (
                size <= limits.max_order_qty
                and size * cost <= limits.max_order_notional
                and signed + size <= limits.max_position
                and elsewhere + signed + size <= limits.max_total_position
                and (not reduce_only or signed + size <= 0)
            )

        assert qty == 0 or price is not None  # the diff cancels a side of size 0
        assert 0 <= qty <= wanted
        assert qty == 0 or within(qty)
        assert qty == wanted or qty % lot == 0
        if lot == 1 and qty < wanted:
            assert not within(qty + 1)


# Drift


def test_equal_positions_show_no_drift() -> None:
    assert compare_positions({A: 5 * C, B: -C}, {A: 5 * C, B: -C}, 0) == []


def test_a_position_off_by_more_than_the_tolerance_is_a_drift_naming_the_numbers() -> None:
    drifts = compare_positions({A: 10 * C}, {A: 12 * C}, C)

    assert drifts == [Drift(A, 10 * C, 12 * C, C)]
    assert drifts[0].difference == 2 * C
    assert drifts[0].reason == (
        "KXA-1: position drift: ours 10.00, venue 12.00 (off by +2.00, drift_tolerance 1.00)"
    )


def test_a_position_off_by_the_tolerance_is_not_a_drift() -> None:
    assert compare_positions({A: 10 * C}, {A: 9 * C}, C) == []


def test_a_market_missing_on_one_side_counts_as_flat_there() -> None:
    drifts = compare_positions({A: 3 * C, "KXZ-9": 0}, {B: -2 * C}, 0)

    assert drifts == [Drift(A, 3 * C, 0, 0), Drift(B, 0, -2 * C, 0)]
    assert drifts[1].reason.startswith(
        "KXB-2: position drift: ours 0.00, venue -2.00 (off by -2.00"
    )


def test_a_negative_tolerance_is_refused() -> None:
    with pytest.raises(ValueError, match="drift tolerance must be >= 0, got -1"):
        compare_positions({}, {}, -1)


def test_comparing_orders_lists_ours_the_venue_lacks_and_theirs_we_lack_sorted() -> None:
    missing, extra = compare_orders(["o3", "o1", "o2"], ["o2", "o9", "o4"])

    assert (missing, extra) == (["o1", "o3"], ["o4", "o9"])


def test_matching_order_sets_show_nothing_missing_or_extra() -> None:
    assert compare_orders({"o1", "o2"}, ("o2", "o1")) == ([], [])
