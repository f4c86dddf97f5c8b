from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmm.errors import IllegalTransition, WireError
from kmm.execution.orders import (
    LIVE_STATES,
    TERMINAL_STATES,
    TRANSITIONS,
    ClientOrderIds,
    FillOutcome,
    OrderEvent,
    OrderState,
    OrderTracker,
    TrackedOrder,
    UnknownOrder,
    next_state,
)
from kmm.types import BookSide, Fill, OrderIntent

T0 = 1_700_000_000_000_000_000
TICKER = "KXHIGHNY-26AUG22-T85"
S = OrderState
E = OrderEvent


def _tracker(**kwargs: int) -> OrderTracker:
    return OrderTracker(ClientOrderIds("run1"), **kwargs)


def _bid(price: int = 4500, qty: int = 1000) -> OrderIntent:
    return OrderIntent(TICKER, BookSide.BID, price, qty)


def _fill(trade_id: str, order_id: str, qty: int, cid: str | None = None) -> Fill:
    return Fill(
        trade_id=trade_id,
        order_id=order_id,
        ticker=TICKER,
        side=BookSide.BID,
        price=4500,
        qty=qty,
        fee=0,
        is_taker=False,
        ts_ms=1,
        client_order_id=cid,
    )


def _resting(tracker: OrderTracker, order_id: str = "ex-1", qty: int = 1000) -> TrackedOrder:
    order = tracker.new(_bid(qty=qty), T0)
    tracker.on_ack(order.client_order_id, order_id, T0 + 1, remaining=qty)
    return order


# Client order ids


def test_client_order_ids_count_up_under_the_run_prefix() -> None:
    ids = ClientOrderIds("run1")

    assert [ids.next_id() for _ in range(3)] == ["run1-1", "run1-2", "run1-3"]


def test_client_order_ids_stay_within_kalshis_alphabet_and_length() -> None:
    ids = ClientOrderIds("a" * 43, start=10**19)

    cid = ids.next_id()

    assert len(cid) <= 64
    assert re.fullmatch(r"[A-Za-z0-9_-]+", cid)


@pytest.mark.parametrize("prefix", ["", "run 1", "run.1", "ü", "a" * 44])
def test_a_bad_client_order_id_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        ClientOrderIds(prefix)


def test_a_run_prefix_from_the_start_time_is_valid_and_distinct() -> None:
    first = ClientOrderIds.for_run(T0).next_id()
    second = ClientOrderIds.for_run(T0 + 1_000_000).next_id()

    assert first != second
    assert first.startswith("kmm")


# The table


def test_every_transition_leads_to_a_state() -> None:
    assert all(target in set(OrderState) for target in TRANSITIONS.values())


def test_an_ended_order_never_comes_back_to_life() -> None:
    for (state, _event), target in TRANSITIONS.items():
        if state in TERMINAL_STATES:
            assert target in TERMINAL_STATES


def test_only_a_resting_order_may_be_amended() -> None:
    sources = {s for (s, e) in TRANSITIONS if e is E.AMEND_REQUEST}

    assert sources == {S.RESTING}


def test_only_resting_or_amending_orders_may_be_cancelled() -> None:
    sources = {s for (s, e) in TRANSITIONS if e is E.CANCEL_REQUEST}

    assert sources == {S.RESTING, S.PENDING_AMEND}


def test_a_timeout_makes_every_live_order_unknown() -> None:
    for state in LIVE_STATES:
        assert TRANSITIONS[(state, E.TIMEOUT)] is S.UNKNOWN


def test_an_illegal_transition_names_both_states_and_the_event() -> None:
    with pytest.raises(IllegalTransition) as info:
        next_state("run1-7", S.FILLED, E.CANCEL_REQUEST)

    assert info.value.from_state == "filled"
    assert info.value.to_state.startswith("pending_cancel")
    assert "cancel_request" in str(info.value)
    assert "run1-7" in str(info.value)


@settings(max_examples=200, deadline=None)
@given(events=st.lists(st.sampled_from(list(OrderEvent)), max_size=30))
def test_any_sequence_of_events_either_follows_the_table_or_raises(
    events: list[OrderEvent],
) -> None:
    state = S.PENDING_NEW
    for event in events:
        expected = TRANSITIONS.get((state, event))
        if expected is None:
            with pytest.raises(IllegalTransition):
                next_state("k", state, event)
            continue
        state = next_state("k", state, event)
        assert state is expected


# The tracker: creates


def test_a_new_order_is_pending_and_counts_as_exposure() -> None:
    tracker = _tracker()

    order = tracker.new(_bid(qty=1000), T0)

    assert order.state is S.PENDING_NEW
    assert order.client_order_id == "run1-1"
    assert list(tracker.live(TICKER)) == [order]
    assert tracker.open_exposure(TICKER) == (1000, 0)


def test_an_ack_makes_the_order_rest_and_findable_by_exchange_id() -> None:
    tracker = _tracker()
    order = tracker.new(_bid(), T0)

    state = tracker.on_ack(order.client_order_id, "ex-1", T0 + 1, remaining=1000)

    assert state is S.RESTING
    assert tracker.get("ex-1") is order


def test_a_rejected_create_ends_canceled_and_says_why() -> None:
    tracker = _tracker()
    order = tracker.new(_bid(), T0)

    state = tracker.on_reject(order.client_order_id, T0 + 1)

    assert state is S.CANCELED
    assert order.last_event is E.REJECT
    assert list(tracker.live(TICKER)) == []
    assert tracker.open_exposure(TICKER) == (0, 0)


def test_an_ack_that_filled_everything_ends_the_order_filled() -> None:
    tracker = _tracker()
    order = tracker.new(_bid(qty=500), T0)

    state = tracker.on_ack(order.client_order_id, "ex-1", T0 + 1, filled=500, remaining=0)

    assert state is S.FILLED


def test_an_ack_with_nothing_left_and_a_partial_fill_ends_canceled() -> None:
    tracker = _tracker()
    order = tracker.new(_bid(qty=500), T0)

    state = tracker.on_ack(order.client_order_id, "ex-1", T0 + 1, filled=200, remaining=0)

    assert state is S.CANCELED
    assert order.filled == 200


def test_an_ack_naming_a_different_exchange_id_is_a_wire_error() -> None:
    tracker = _tracker()
    order = _resting(tracker, "ex-1")

    with pytest.raises(WireError, match="ex-2"):
        tracker.on_ack(order.client_order_id, "ex-2", T0 + 2)


def test_a_reply_for_an_order_never_tracked_raises_naming_it() -> None:
    tracker = _tracker()

    with pytest.raises(UnknownOrder, match="nope"):
        tracker.on_ack("nope", "ex-1", T0)


def test_a_zero_size_order_is_refused() -> None:
    with pytest.raises(ValueError, match="size"):
        _tracker().new(_bid(qty=0), T0)


# Fills


def test_a_partial_fill_leaves_the_order_resting_with_less_remaining() -> None:
    tracker = _tracker()
    order = _resting(tracker)

    outcome = tracker.on_fill(_fill("t1", "ex-1", 300), T0 + 2)

    assert outcome is FillOutcome.APPLIED
    assert order.state is S.RESTING
    assert order.remaining == 700
    assert tracker.open_exposure(TICKER) == (700, 0)


def test_fills_that_reach_the_size_end_the_order_and_leave_the_live_set() -> None:
    tracker = _tracker()
    order = _resting(tracker)

    tracker.on_fill(_fill("t1", "ex-1", 300), T0 + 2)
    tracker.on_fill(_fill("t2", "ex-1", 700), T0 + 3)

    assert order.state is S.FILLED
    assert list(tracker.live(TICKER)) == []
    assert order.remaining == 0


def test_the_same_trade_is_counted_once() -> None:
    tracker = _tracker()
    order = _resting(tracker)
    tracker.on_fill(_fill("t1", "ex-1", 300), T0 + 2)

    outcome = tracker.on_fill(_fill("t1", "ex-1", 300), T0 + 3)

    assert outcome is FillOutcome.DUPLICATE
    assert order.filled == 300


def test_a_fill_that_beats_the_ack_is_applied_when_the_ack_arrives() -> None:
    tracker = _tracker()
    order = tracker.new(_bid(qty=1000), T0)

    outcome = tracker.on_fill(_fill("t1", "ex-1", 400), T0 + 1)
    tracker.on_ack(order.client_order_id, "ex-1", T0 + 2, remaining=1000)

    assert outcome is FillOutcome.UNMATCHED
    assert order.filled == 400
    assert order.remaining == 600


def test_a_fill_already_counted_in_the_ack_is_not_counted_again() -> None:
    tracker = _tracker()
    order = tracker.new(_bid(qty=1000), T0)
    tracker.on_ack(order.client_order_id, "ex-1", T0 + 1, filled=400, remaining=600)

    tracker.on_fill(_fill("t1", "ex-1", 400), T0 + 2)

    assert order.filled == 400
    assert order.state is S.RESTING


def test_a_fill_carrying_our_client_id_binds_the_exchange_id_before_the_ack() -> None:
    tracker = _tracker()
    order = tracker.new(_bid(qty=1000), T0)

    outcome = tracker.on_fill(_fill("t1", "ex-1", 400, cid=order.client_order_id), T0 + 1)

    assert outcome is FillOutcome.APPLIED
    assert order.state is S.PENDING_NEW
    assert tracker.get("ex-1") is order


def test_a_late_fill_that_completes_a_canceled_order_marks_it_filled() -> None:
    tracker = _tracker()
    order = _resting(tracker)
    tracker.request_cancel(order.client_order_id, T0 + 2)
    tracker.on_cancel_ack(order.client_order_id, T0 + 3)

    tracker.on_fill(_fill("t1", "ex-1", 1000), T0 + 4)

    assert order.state is S.FILLED


def test_a_late_partial_fill_on_a_canceled_order_keeps_it_canceled() -> None:
    tracker = _tracker()
    order = _resting(tracker)
    tracker.request_cancel(order.client_order_id, T0 + 2)
    tracker.on_cancel_ack(order.client_order_id, T0 + 3)

    tracker.on_fill(_fill("t1", "ex-1", 100), T0 + 4)

    assert order.state is S.CANCELED
    assert order.filled == 100


# Amends


def test_an_amend_sends_the_total_count_filled_plus_the_new_remainder() -> None:
    tracker = _tracker()
    order = _resting(tracker)
    tracker.on_fill(_fill("t1", "ex-1", 300), T0 + 2)

    count = tracker.request_amend(order.client_order_id, 4600, 500, T0 + 3)

    assert count == 800
    assert order.state is S.PENDING_AMEND


def test_exposure_counts_the_larger_size_while_an_amend_is_in_flight() -> None:
    tracker = _tracker()
    order = _resting(tracker, qty=1000)

    tracker.request_amend(order.client_order_id, 4600, 1500, T0 + 2)

    assert tracker.open_exposure(TICKER) == (1500, 0)


def test_an_amend_ack_moves_the_order_and_restarts_its_rest_time() -> None:
    tracker = _tracker()
    order = _resting(tracker)
    tracker.request_amend(order.client_order_id, 4600, 500, T0 + 2)

    state = tracker.on_amend_ack(order.client_order_id, T0 + 3, filled=0, remaining=500)

    assert state is S.RESTING
    assert (order.price, order.qty, order.remaining) == (4600, 500, 500)
    assert order.last_change_ns == T0 + 3


def test_an_amend_ack_after_partial_fills_keeps_the_filled_part_in_the_size() -> None:
    # Kalshi's amend answer counts only the fills the amend caused (here none) and what
    # rests after it: the order's size is what the amend asked for, filled included
    tracker = _tracker()
    order = _resting(tracker, qty=500)
    tracker.on_fill(_fill("t1", "ex-1", 300), T0 + 2)
    tracker.request_amend(order.client_order_id, 4600, 400, T0 + 3)

    tracker.on_amend_ack(order.client_order_id, T0 + 4, filled=0, remaining=400)
    state = tracker.on_fill(_fill("t2", "ex-1", 231), T0 + 5)

    assert (order.qty, order.filled, order.remaining) == (700, 531, 169)
    assert state is FillOutcome.APPLIED and order.state is S.RESTING


def test_an_amend_reject_leaves_the_order_as_it_was() -> None:
    tracker = _tracker()
    order = _resting(tracker)
    tracker.request_amend(order.client_order_id, 4600, 500, T0 + 2)

    state = tracker.on_amend_reject(order.client_order_id, T0 + 3)

    assert state is S.RESTING
    assert (order.price, order.qty, order.last_change_ns) == (4500, 1000, T0)


def test_an_amend_reject_after_the_order_filled_ends_it_filled() -> None:
    tracker = _tracker()
    order = _resting(tracker, qty=1000)
    tracker.request_amend(order.client_order_id, 4600, 1500, T0 + 2)
    tracker.on_fill(_fill("t1", "ex-1", 1000), T0 + 3)

    state = tracker.on_amend_reject(order.client_order_id, T0 + 4)

    assert state is S.FILLED


def test_a_pending_order_cannot_be_amended() -> None:
    tracker = _tracker()
    order = tracker.new(_bid(), T0)

    with pytest.raises(IllegalTransition, match="pending_new"):
        tracker.request_amend(order.client_order_id, 4600, 500, T0 + 1)


def test_a_second_amend_while_one_is_in_flight_is_illegal() -> None:
    tracker = _tracker()
    order = _resting(tracker)
    tracker.request_amend(order.client_order_id, 4600, 500, T0 + 2)

    with pytest.raises(IllegalTransition, match="pending_amend"):
        tracker.request_amend(order.client_order_id, 4700, 500, T0 + 3)


# Cancels, unknowns and reconcile


def test_a_cancel_returns_the_exchange_id_and_its_ack_ends_the_order() -> None:
    tracker = _tracker()
    order = _resting(tracker, "ex-9")

    order_id = tracker.request_cancel(order.client_order_id, T0 + 2)
    state = tracker.on_cancel_ack(order.client_order_id, T0 + 3)

    assert order_id == "ex-9"
    assert state is S.CANCELED
    assert list(tracker.live(TICKER)) == []


def test_an_order_without_an_exchange_id_cannot_be_cancelled() -> None:
    tracker = _tracker()
    order = tracker.new(_bid(), T0)

    with pytest.raises(ValueError, match="exchange id"):
        tracker.request_cancel(order.client_order_id, T0 + 1)


def test_a_refused_cancel_makes_the_order_unknown_but_still_exposed() -> None:
    tracker = _tracker()
    order = _resting(tracker)
    tracker.request_cancel(order.client_order_id, T0 + 2)

    state = tracker.on_cancel_reject(order.client_order_id, T0 + 3)

    assert state is S.UNKNOWN
    assert tracker.open_exposure(TICKER) == (1000, 0)


def test_a_timed_out_create_is_unknown_and_the_late_ack_settles_it() -> None:
    tracker = _tracker()
    order = tracker.new(_bid(), T0)

    assert tracker.on_unknown(order.client_order_id, T0 + 1) is S.UNKNOWN
    assert tracker.on_ack(order.client_order_id, "ex-1", T0 + 2) is S.RESTING


@pytest.mark.parametrize("found", [S.RESTING, S.CANCELED, S.FILLED])
def test_reconcile_settles_an_unknown_order_as_found(found: OrderState) -> None:
    tracker = _tracker()
    order = _resting(tracker)
    tracker.on_unknown(order.client_order_id, T0 + 2)

    state = tracker.reconcile("ex-1", found, T0 + 3, filled=0, remaining=1000)

    assert state is found


def test_reconcile_adopts_the_venues_price_and_size_after_a_lost_amend() -> None:
    tracker = _tracker()
    order = _resting(tracker)
    tracker.request_amend(order.client_order_id, 4600, 500, T0 + 2)
    tracker.on_unknown(order.client_order_id, T0 + 3)

    tracker.reconcile("ex-1", S.RESTING, T0 + 4, price=4600, filled=100, remaining=400)

    assert (order.price, order.qty, order.remaining) == (4600, 500, 400)
    assert order.amend_price is None
    # 400 may fill, and the 100 the venue reports filled are not booked until they arrive
    assert tracker.open_exposure(TICKER) == (500, 0)
    tracker.on_fill(_fill("t1", "ex-1", 100), T0 + 5)
    assert tracker.open_exposure(TICKER) == (400, 0)


def test_reconcile_leaves_an_amend_in_flight_alone() -> None:
    tracker = _tracker()
    order = _resting(tracker)
    tracker.request_amend(order.client_order_id, 4600, 500, T0 + 2)

    state = tracker.reconcile("ex-1", S.RESTING, T0 + 3, price=4500, filled=0, remaining=1000)

    assert state is S.PENDING_AMEND
    assert order.amend_price == 4600


def test_reconcile_of_an_order_we_do_not_track_returns_none() -> None:
    assert _tracker().reconcile("someone-else", S.RESTING, T0) is None


def test_reconcile_refuses_a_state_the_venue_cannot_report() -> None:
    with pytest.raises(ValueError, match="pending_cancel"):
        _tracker().reconcile("x", S.PENDING_CANCEL, T0)


def test_a_venue_cancel_ends_a_resting_order() -> None:
    tracker = _tracker()
    order = _resting(tracker)

    assert tracker.on_venue_cancel(order.client_order_id, T0 + 2) is S.CANCELED


def test_ended_orders_are_forgotten_after_the_history_limit() -> None:
    tracker = _tracker(history=2)
    orders = [tracker.new(_bid(), T0) for _ in range(3)]

    for order in orders:
        tracker.on_reject(order.client_order_id, T0 + 1)

    assert tracker.get(orders[0].client_order_id) is None
    assert tracker.get(orders[2].client_order_id) is orders[2]


def test_exposure_splits_bids_and_asks_and_ignores_other_markets() -> None:
    tracker = _tracker()
    tracker.new(_bid(qty=1000), T0)
    tracker.new(OrderIntent(TICKER, BookSide.ASK, 5500, 300), T0)
    tracker.new(OrderIntent("OTHER", BookSide.ASK, 5500, 900), T0)

    assert tracker.open_exposure(TICKER) == (1000, 300)


@settings(max_examples=100, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 5), min_size=1, max_size=20),
    duplicate_every=st.integers(1, 4),
)
def test_fills_in_any_order_with_duplicates_never_overcount(
    sizes: list[int], duplicate_every: int
) -> None:
    tracker = _tracker()
    total = sum(sizes)
    order = _resting(tracker, qty=total + 1)

    for i, qty in enumerate(sizes):
        tracker.on_fill(_fill(f"t{i}", "ex-1", qty), T0 + i)
        if i % duplicate_every == 0:
            tracker.on_fill(_fill(f"t{i}", "ex-1", qty), T0 + i)

    assert order.filled == total
    assert order.remaining == 1
    assert order.state is S.RESTING


# Fills reported before their fill messages (unbooked)


def test_a_create_reported_filled_counts_its_fills_on_its_side_until_they_arrive() -> None:
    tracker = _tracker()
    order = tracker.new(_bid(qty=500), T0)

    tracker.on_ack(order.client_order_id, "ex-1", T0 + 1, filled=500, remaining=0)

    assert order.state is S.FILLED
    assert list(tracker.live(TICKER)) == []
    assert tracker.open_exposure(TICKER) == (500, 0)
    assert tracker.unbooked_net(TICKER) == 500
    tracker.on_fill(_fill("t1", "ex-1", 300), T0 + 2)
    assert tracker.open_exposure(TICKER) == (200, 0)
    tracker.on_fill(_fill("t2", "ex-1", 200), T0 + 3)
    assert tracker.open_exposure(TICKER) == (0, 0)
    assert tracker.unbooked(TICKER) == []
    assert tracker.unbooked_net(TICKER) == 0


def test_a_partly_filled_reply_counts_the_rest_as_exposure_and_the_fills_as_unbooked() -> None:
    tracker = _tracker()
    order = tracker.new(_bid(qty=1000), T0)

    tracker.on_ack(order.client_order_id, "ex-1", T0 + 1, filled=400, remaining=600)

    # 600 may still fill, 400 already did: the worst case is the whole order
    assert tracker.open_exposure(TICKER) == (1000, 0)
    tracker.on_fill(_fill("t1", "ex-1", 400), T0 + 2)
    assert tracker.open_exposure(TICKER) == (600, 0)
    assert tracker.unbooked_net(TICKER) == 0


def test_an_ask_reported_filled_moves_the_expected_position_down() -> None:
    tracker = _tracker()
    order = tracker.new(OrderIntent(TICKER, BookSide.ASK, 5500, 300), T0)

    tracker.on_ack(order.client_order_id, "ex-1", T0 + 1, filled=300, remaining=0)

    assert tracker.unbooked_net(TICKER) == -300
    assert tracker.open_exposure(TICKER) == (0, 300)


def test_fills_that_never_arrive_stop_counting_after_the_ttl() -> None:
    tracker = _tracker(unbooked_ttl_ns=1_000)
    order = tracker.new(_bid(qty=500), T0)
    tracker.on_ack(order.client_order_id, "ex-1", T0 + 1, filled=500, remaining=0)

    assert tracker.expire_unbooked(T0 + 500) == []
    assert tracker.expire_unbooked(T0 + 1_001) == [order]
    assert tracker.open_exposure(TICKER) == (0, 0)
    # the fill read back later is still booked against its order, once
    assert tracker.on_fill(_fill("t1", "ex-1", 500), T0 + 2_000) is FillOutcome.APPLIED
    assert tracker.unbooked_net(TICKER) == 0


def test_a_poll_reporting_an_order_executed_counts_its_fills_until_they_arrive() -> None:
    tracker = _tracker()
    order = _resting(tracker, qty=500)

    tracker.reconcile(order.client_order_id, S.FILLED, T0 + 5, filled=500, remaining=0)

    assert order.state is S.FILLED
    assert tracker.unbooked_net(TICKER) == 500


def test_an_adopted_orders_earlier_fills_are_booked_already() -> None:
    tracker = _tracker()
    order = tracker.new(_bid(qty=1000), T0)
    tracker.on_ack(order.client_order_id, "ex-1", T0 + 1, filled=400, remaining=600)

    tracker.count_as_booked(order.client_order_id)

    assert tracker.unbooked_net(TICKER) == 0
    assert tracker.open_exposure(TICKER) == (600, 0)
    # the fill read back later is not counted twice
    tracker.on_fill(_fill("t1", "ex-1", 400), T0 + 2)
    assert order.filled == 400
    assert order.remaining == 600


def test_an_ended_order_leaving_the_history_stops_counting_its_unbooked_fills() -> None:
    tracker = _tracker(history=1)
    first = tracker.new(_bid(qty=100), T0)
    tracker.on_ack(first.client_order_id, "ex-1", T0 + 1, filled=100, remaining=0)
    second = tracker.new(_bid(qty=100), T0)
    tracker.on_ack(second.client_order_id, "ex-2", T0 + 1, filled=0, remaining=0)

    assert tracker.get(first.client_order_id) is None
    assert tracker.unbooked(TICKER) == []
