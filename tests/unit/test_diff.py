from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmm.execution.diff import Amend, DiffParams, DiffResult, diff
from kmm.execution.orders import OrderState, TrackedOrder
from kmm.types import BookSide, OrderIntent, Quote

T0 = 1_700_000_000_000_000_000
MS = 1_000_000
TICKER = "KXHIGHNY-26AUG22-T85"
BID, ASK = BookSide.BID, BookSide.ASK
S = OrderState
PARAMS = DiffParams(min_move_ticks=2, min_rest_ns=500 * MS, min_qty_change=100)


def cent_grid(price: int) -> int:
    return 100


def tenth_cent_in_the_tails(price: int) -> int:
    return 10 if price < 1000 or price > 9000 else 100


def _order(
    cid: str,
    side: BookSide,
    price: int,
    qty: int = 1000,
    state: OrderState = S.RESTING,
    changed_ns: int = T0,
) -> TrackedOrder:
    return TrackedOrder(cid, TICKER, side, price, qty, changed_ns, changed_ns, state=state)


def _quote(
    bid: int | None = 4500, ask: int | None = 5500, bid_qty: int = 1000, ask_qty: int = 1000
) -> Quote:
    return Quote(TICKER, bid, bid_qty, ask, ask_qty)


def _run(
    quote: Quote,
    live: list[TrackedOrder],
    now_ns: int = T0 + 10 * MS,
    params: DiffParams = PARAMS,
) -> DiffResult:
    return diff(quote, live, now_ns, params, cent_grid)


def test_with_no_orders_both_sides_are_placed() -> None:
    result = _run(_quote(), [])

    assert result.place == [
        OrderIntent(TICKER, BID, 4500, 1000),
        OrderIntent(TICKER, ASK, 5500, 1000),
    ]
    assert (result.keep, result.cancel, result.amend) == ([], [], [])


def test_an_unchanged_quote_keeps_both_orders_and_sends_nothing() -> None:
    live = [_order("b", BID, 4500), _order("a", ASK, 5500)]

    result = _run(_quote(), live)

    assert result.keep == ["b", "a"]
    assert result.is_noop


def test_a_side_with_no_price_is_cancelled_at_once_even_when_young() -> None:
    live = [_order("b", BID, 4500, changed_ns=T0), _order("a", ASK, 5500)]

    result = _run(_quote(bid=None), live, now_ns=T0 + 1)

    assert result.cancel == ["b"]
    assert result.keep == ["a"]


def test_a_side_with_zero_size_is_cancelled() -> None:
    result = _run(_quote(ask_qty=0), [_order("a", ASK, 5500)])

    assert result.cancel == ["a"]
    assert result.place == [OrderIntent(TICKER, BID, 4500, 1000)]


def test_a_move_smaller_than_the_minimum_is_ignored() -> None:
    live = [_order("b", BID, 4500), _order("a", ASK, 5500)]

    result = _run(_quote(bid=4600, ask=5400), live, now_ns=T0 + 10_000 * MS)

    assert result.is_noop


def test_a_bid_that_is_now_too_high_moves_at_once_even_when_young() -> None:
    live = [_order("b", BID, 4500, changed_ns=T0)]

    result = _run(_quote(bid=4300, ask=None), live, now_ns=T0 + 1)

    assert result.amend == [Amend("b", BID, 4300, 1000, keeps_priority=False)]


def test_an_ask_that_is_now_too_low_moves_at_once_even_when_young() -> None:
    live = [_order("a", ASK, 5500, changed_ns=T0)]

    result = _run(_quote(bid=None, ask=5700), live, now_ns=T0 + 1)

    assert result.amend == [Amend("a", ASK, 5700, 1000, keeps_priority=False)]


def test_a_bid_that_should_go_up_waits_for_the_minimum_rest() -> None:
    live = [_order("b", BID, 4500, changed_ns=T0)]

    young = _run(_quote(bid=4700, ask=None), live, now_ns=T0 + 499 * MS)
    rested = _run(_quote(bid=4700, ask=None), live, now_ns=T0 + 500 * MS)

    assert young.keep == ["b"]
    assert young.is_noop
    assert rested.amend == [Amend("b", BID, 4700, 1000, keeps_priority=False)]


def test_an_ask_that_should_come_down_waits_for_the_minimum_rest() -> None:
    live = [_order("a", ASK, 5500, changed_ns=T0)]

    young = _run(_quote(bid=None, ask=5300), live, now_ns=T0 + 1)
    rested = _run(_quote(bid=None, ask=5300), live, now_ns=T0 + 500 * MS)

    assert young.is_noop
    assert rested.amend == [Amend("a", ASK, 5300, 1000, keeps_priority=False)]


def test_a_size_too_large_shrinks_at_once_at_the_same_price_keeping_priority() -> None:
    live = [_order("b", BID, 4500, qty=1000, changed_ns=T0)]

    result = _run(_quote(bid=4600, bid_qty=400, ask=None), live, now_ns=T0 + 1)

    assert result.amend == [Amend("b", BID, 4500, 400, keeps_priority=True)]


def test_a_size_that_should_grow_waits_for_the_minimum_rest() -> None:
    live = [_order("b", BID, 4500, qty=1000, changed_ns=T0)]

    young = _run(_quote(bid_qty=1500, ask=None), live, now_ns=T0 + 1)
    rested = _run(_quote(bid_qty=1500, ask=None), live, now_ns=T0 + 500 * MS)

    assert young.is_noop
    assert rested.amend == [Amend("b", BID, 4500, 1500, keeps_priority=False)]


def test_a_size_change_below_the_minimum_is_ignored() -> None:
    live = [_order("b", BID, 4500, qty=1000)]

    result = _run(_quote(bid_qty=1050, ask=None), live, now_ns=T0 + 10_000 * MS)

    assert result.is_noop


def test_the_threshold_uses_the_tick_at_the_live_price() -> None:
    live = [_order("b", BID, 500, changed_ns=T0)]
    quote = _quote(bid=480, ask=None)

    on_cents = diff(quote, live, T0 + 1, PARAMS, cent_grid)
    on_tenths = diff(quote, live, T0 + 1, PARAMS, tenth_cent_in_the_tails)

    assert on_cents.is_noop
    assert on_tenths.amend == [Amend("b", BID, 480, 1000, keeps_priority=False)]


def test_extra_orders_on_a_side_are_cancelled_keeping_the_nearest() -> None:
    live = [
        _order("far", BID, 4000),
        _order("near", BID, 4500),
        _order("other", BID, 4200),
    ]

    result = _run(_quote(ask=None), live)

    assert result.keep == ["near"]
    assert sorted(result.cancel) == ["far", "other"]


def test_between_equally_near_orders_the_older_is_kept() -> None:
    live = [
        _order("young", BID, 4500, changed_ns=T0 + 5),
        _order("old", BID, 4500, changed_ns=T0),
    ]

    result = _run(_quote(ask=None), live)

    assert result.keep == ["old"]
    assert result.cancel == ["young"]


@pytest.mark.parametrize("state", [S.PENDING_NEW, S.PENDING_CANCEL, S.UNKNOWN])
def test_nothing_is_placed_on_a_side_with_an_order_in_flight(state: OrderState) -> None:
    live = [_order("x", BID, 4000, state=state)]

    result = _run(_quote(ask=None), live)

    assert result.place == []
    assert (result.keep, result.cancel, result.amend) == ([], [], [])


@pytest.mark.parametrize("state", [S.PENDING_NEW, S.UNKNOWN])
def test_an_order_in_flight_is_never_cancelled_or_amended(state: OrderState) -> None:
    live = [_order("x", BID, 4000, state=state)]

    result = _run(_quote(bid=None, ask=None), live)

    assert result.is_noop


def test_a_resting_order_beside_an_unknown_one_is_still_managed() -> None:
    live = [
        _order("unknown", BID, 4000, state=S.UNKNOWN),
        _order("resting", BID, 4500, changed_ns=T0),
    ]

    result = _run(_quote(bid=4200, ask=None), live, now_ns=T0 + 1)

    assert result.amend == [Amend("resting", BID, 4200, 1000, keeps_priority=False)]
    assert result.place == []


def test_an_order_with_an_amend_in_flight_is_kept_not_amended_again() -> None:
    live = [_order("b", BID, 4500, state=S.PENDING_AMEND)]

    result = _run(_quote(bid=4000, ask=None), live, now_ns=T0 + 10_000 * MS)

    assert result.keep == ["b"]
    assert result.amend == []


def test_an_order_with_an_amend_in_flight_is_cancelled_when_the_side_goes() -> None:
    live = [_order("b", BID, 4500, state=S.PENDING_AMEND)]

    result = _run(_quote(bid=None, ask=None), live)

    assert result.cancel == ["b"]


def test_the_order_with_an_amend_in_flight_is_the_one_kept_on_a_crowded_side() -> None:
    live = [
        _order("near", BID, 4500),
        _order("amending", BID, 4000, state=S.PENDING_AMEND),
    ]

    result = _run(_quote(ask=None), live)

    assert result.keep == ["amending"]
    assert result.cancel == ["near"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("min_move_ticks", 0), ("min_rest_ns", -1), ("min_qty_change", 0)],
)
def test_params_out_of_range_are_refused_naming_the_field(field: str, value: int) -> None:
    with pytest.raises(ValueError, match=field):
        DiffParams(**{field: value})


_STATES = st.sampled_from(
    [S.RESTING, S.RESTING, S.PENDING_AMEND, S.PENDING_NEW, S.PENDING_CANCEL, S.UNKNOWN]
)
_ORDERS = st.lists(
    st.tuples(
        st.sampled_from([BID, ASK]),
        st.integers(100, 9900),
        st.integers(1, 3000),
        _STATES,
        st.integers(0, 1000 * MS),
    ),
    max_size=6,
)
_PRICES = st.one_of(st.none(), st.integers(100, 9900))


@settings(max_examples=200, deadline=None)
@given(
    rows=_ORDERS,
    bid=_PRICES,
    ask=_PRICES,
    bid_qty=st.integers(0, 3000),
    ask_qty=st.integers(0, 3000),
)
def test_the_diff_never_doubles_a_side_and_accounts_for_every_settled_order(
    rows: list[tuple[BookSide, int, int, OrderState, int]],
    bid: int | None,
    ask: int | None,
    bid_qty: int,
    ask_qty: int,
) -> None:
    live = [
        _order(f"o{i}", side, price, qty, state, T0 + age)
        for i, (side, price, qty, state, age) in enumerate(rows)
    ]

    result = _run(_quote(bid, ask, bid_qty, ask_qty), live, now_ns=T0 + 1000 * MS)

    settled = {o.client_order_id for o in live if o.state in (S.RESTING, S.PENDING_AMEND)}
    amended = [a.client_order_id for a in result.amend]
    touched = result.keep + result.cancel + amended
    assert sorted(touched) == sorted(settled)
    for side in (BID, ASK):
        on_side = [o for o in live if o.side is side]
        staying = [o for o in on_side if o.client_order_id in result.keep + amended]
        placed = [p for p in result.place if p.side is side]
        assert len(staying) + len(placed) <= 1
        in_flight = any(o.state not in (S.RESTING, S.PENDING_AMEND) for o in on_side)
        assert not (in_flight and placed)
