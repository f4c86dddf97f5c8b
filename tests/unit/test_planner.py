"""The order planner: targets and answers in, write requests and records out; no I/O."""

from __future__ import annotations

from typing import TypeVar

from kmm.book.grid import PriceGrid
from kmm.core.planner import (
    ExecAction,
    ExecEvent,
    ExecSettings,
    OrderPlanner,
    ReadBack,
    StartAmend,
    StartCancels,
    StartCreate,
)
from kmm.errors import RateLimited, Rejected, UnknownOutcome
from kmm.execution.diff import DiffParams
from kmm.execution.orders import ClientOrderIds, OrderState, OrderTracker
from kmm.execution.token_bucket import Backoff, TokenBucket, WriteScheduler
from kmm.kalshi.rest import BatchItem, CreateAck, VenueOrder
from kmm.types import BookSide, OrderIntent, Quote

T0 = 1_800_000_000_000_000_000
MS = 1_000_000
TICKER = "KXTEST-26DEC31-T50"
OTHER = "KXTEST-26DEC31-T60"
A = TypeVar("A")
GRID = PriceGrid.from_ranges([(0, 10_000, 100)])


def _planner(
    capacity: int = 100, refill: int = 10, freshness_ms: int = 1_000, **kwargs: object
) -> OrderPlanner:
    settings = ExecSettings(diff=DiffParams(), freshness_ns=freshness_ms * MS)
    return OrderPlanner(
        OrderTracker(ClientOrderIds("t")),
        WriteScheduler(TokenBucket(capacity, refill, T0)),
        {TICKER: GRID, OTHER: GRID},
        settings,
        backoff=Backoff(jitter=0.0),
        **kwargs,
    )


def _quote(
    bid: int | None = 4500, ask: int | None = 5500, qty: int = 500, t: str = TICKER
) -> Quote:
    return Quote(t, bid, qty if bid else 0, ask, qty if ask else 0)


def _of(kind: type[A], actions: list[ExecAction]) -> list[A]:
    return [a for a in actions if isinstance(a, kind)]


def _events(actions: list[ExecAction]) -> list[str]:
    return [a.what for a in actions if isinstance(a, ExecEvent)]


def _ack_all(planner: OrderPlanner, actions: list[ExecAction], now: int) -> None:
    for i, start in enumerate(_of(StartCreate, actions)):
        assert isinstance(start, StartCreate)
        ack = CreateAck(f"venue-{start.req.client_order_id}-{i}", None, 0, start.order.count, None)
        planner.on_created(start.req, ack, now)
        planner.settle(start.req.cost, now)


def test_a_target_becomes_one_create_per_side_and_nothing_else_happens() -> None:
    planner = _planner()
    planner.submit({TICKER: _quote()})

    actions = planner.plan(T0)

    creates = _of(StartCreate, actions)
    assert [(c.order.side, c.order.price, c.order.count) for c in creates] == [
        (BookSide.BID, 4500, 500),
        (BookSide.ASK, 5500, 500),
    ]
    assert all(c.order.post_only for c in creates)
    assert _events(actions) == ["sent", "sent"]
    assert {o.state for o in planner.tracker.live(TICKER)} == {OrderState.PENDING_NEW}
    assert planner.plan(T0) == []  # nothing dirty: nothing planned twice


def test_a_move_of_the_target_amends_the_resting_order() -> None:
    planner = _planner()
    planner.submit({TICKER: _quote()})
    _ack_all(planner, planner.plan(T0), T0 + MS)
    planner.plan(T0 + MS)  # the acks mark the market dirty; nothing changes

    planner.submit({TICKER: _quote(bid=4600)})
    actions = planner.plan(T0 + 2 * MS)

    amends = _of(StartAmend, actions)
    assert len(amends) == 1
    assert amends[0].req.amend.price == 4600
    assert amends[0].order_id.startswith("venue-")
    assert _of(StartCreate, actions) == []


def test_pulling_sends_one_batch_cancel_for_every_resting_order() -> None:
    planner = _planner()
    planner.submit({TICKER: _quote(), OTHER: _quote(t=OTHER)})
    _ack_all(planner, planner.plan(T0), T0 + MS)

    planner.stop_placing()
    actions = planner.plan(T0 + 2 * MS)

    batches = _of(StartCancels, actions)
    assert len(batches) == 1
    assert len(batches[0].order_ids) == 4
    assert batches[0].cost == 4 * 2
    items = [BatchItem(i, None, 0, 0, None) for i in batches[0].order_ids]
    answered = planner.on_cancels(batches[0], items, T0 + 3 * MS)
    assert _events(answered) == ["canceled"] * 4
    assert list(planner.tracker.live(TICKER)) == []
    planner.submit({TICKER: _quote()})
    assert _of(StartCreate, planner.plan(T0 + 4 * MS)) == []  # stopped: no place again


def test_a_place_the_bucket_cannot_pay_for_waits_and_the_planner_says_until_when() -> None:
    planner = _planner(capacity=10, refill=10, freshness_ms=5_000)  # one create's worth
    planner.submit({TICKER: _quote()})

    first = planner.plan(T0)

    assert len(_of(StartCreate, first)) == 1
    planner.settle(10, T0 + MS)  # the first create's answer
    wake = planner.next_wake_ns(T0 + MS)
    assert wake is not None and T0 + MS < wake < T0 + 5_000 * MS  # a refill, not the deadline
    assert _of(StartCreate, planner.plan(wake - MS)) == []
    second = planner.plan(wake)
    assert len(_of(StartCreate, second)) == 1


def test_a_place_that_waited_past_its_freshness_is_dropped_not_sent_late() -> None:
    planner = _planner(capacity=10, refill=1, freshness_ms=100)
    planner.submit({TICKER: _quote()})
    planner.plan(T0)

    late = planner.plan(T0 + 500 * MS)

    assert _events(late) == ["dropped"]
    assert _of(StartCreate, late) == []
    assert [o.side for o in planner.tracker.live(TICKER)] == [BookSide.BID]  # the ask is gone


def test_a_429_pauses_places_with_backoff_while_cancels_still_go() -> None:
    planner = _planner()
    planner.submit({TICKER: _quote()})
    actions = planner.plan(T0)
    bid, ask = _of(StartCreate, actions)
    planner.on_created(bid.req, CreateAck("v-bid", None, 0, 500, None), T0 + MS)

    refused = planner.on_error(ask.req, RateLimited(429, "too_many_requests"), T0 + MS)

    planner.settle(20, T0 + MS)  # both answers are in
    assert _events(refused) == ["rejected"]
    assert planner.counters.rate_limited == 1
    assert planner.scheduler.bucket.available(T0 + MS) == 0  # our model drained
    planner.submit({TICKER: _quote(bid=None, ask=5500)})
    paused = planner.plan(T0 + 2 * MS)
    assert _of(StartCreate, paused) == []
    wake = planner.next_wake_ns(T0 + 2 * MS)
    assert wake is not None
    # The 429'd create's tokens were settled after the drain: the model pays for the refused
    # request too (conservative), so the refill takes 2 s longer than the venue's would
    later = planner.plan(wake + 5_000 * MS)  # the bucket refilled, the pause is over
    assert [c.order.side for c in _of(StartCreate, later)] == [BookSide.ASK]
    assert len(_of(StartCancels, later)) == 1  # the bid is cancelled too


def test_an_unknown_outcome_is_read_back_and_settled_by_what_the_venue_says() -> None:
    planner = _planner()
    planner.submit({TICKER: _quote(ask=None)})
    (start,) = _of(StartCreate, planner.plan(T0))

    actions = planner.on_error(start.req, UnknownOutcome(504, "timeout"), T0 + MS)

    assert _events(actions) == ["unknown"]
    cid = start.req.client_order_id
    assert ReadBack(cid) in actions
    assert planner.tracker.get(cid).state is OrderState.UNKNOWN
    venue = VenueOrder("v-1", cid, TICKER, BookSide.BID, 4500, 0, 500, "resting")
    settled = planner.on_venue_view(cid, venue, T0 + 2 * MS)
    assert _events(settled) == ["settled"]
    assert planner.tracker.get(cid).state is OrderState.RESTING
    assert planner.tracker.get(cid).order_id == "v-1"


def test_an_order_the_venue_does_not_have_is_settled_as_canceled() -> None:
    planner = _planner()
    planner.submit({TICKER: _quote(ask=None)})
    (start,) = _of(StartCreate, planner.plan(T0))
    cid = start.req.client_order_id
    planner.on_error(start.req, UnknownOutcome(503, "unavailable"), T0 + MS)

    planner.on_venue_view(cid, None, T0 + 2 * MS)

    assert planner.tracker.get(cid).state is OrderState.CANCELED


def test_a_refused_amend_reads_the_order_back_instead_of_sending_it_again() -> None:
    planner = _planner()
    planner.submit({TICKER: _quote(ask=None)})
    _ack_all(planner, planner.plan(T0), T0 + MS)
    planner.submit({TICKER: _quote(bid=4600, ask=None)})
    (amend,) = _of(StartAmend, planner.plan(T0 + 2 * MS))

    refused = planner.on_error(
        amend.req, Rejected(400, "invalid_order", "order executed"), T0 + 3 * MS
    )

    assert _events(refused) == ["rejected"]
    assert ReadBack(amend.req.client_order_id) in refused
    again = planner.plan(T0 + 4 * MS)
    assert _of(StartAmend, again) == [] and _of(StartCreate, again) == []


def test_a_refused_create_price_is_held_off_and_tried_again_after_its_hold() -> None:
    planner = _planner()
    planner.submit({TICKER: _quote(ask=None)})
    (start,) = _of(StartCreate, planner.plan(T0))
    planner.on_error(start.req, Rejected(400, "post_only_cross"), T0 + MS)

    assert _of(StartCreate, planner.plan(T0 + 2 * MS)) == []
    wake = planner.next_wake_ns(T0 + 2 * MS)
    assert wake is not None
    assert len(_of(StartCreate, planner.plan(wake))) == 1


def test_risk_refusing_an_order_means_it_is_never_planned() -> None:
    refused: list[OrderIntent] = []

    def approve(intent: OrderIntent, replaces: int | None) -> OrderIntent | None:
        if intent.side is BookSide.ASK:
            refused.append(intent)
            return None
        return intent._replace(qty=100)  # clipped

    planner = _planner(approve=approve)
    planner.submit({TICKER: _quote()})

    creates = _of(StartCreate, planner.plan(T0))

    assert [(c.order.side, c.order.count) for c in creates] == [(BookSide.BID, 100)]
    assert [r.side for r in refused] == [BookSide.ASK]


def test_the_gate_pulling_a_target_cancels_what_rests() -> None:
    pulled = {"on": False}

    def gate(quote: Quote, now_ns: int) -> Quote:
        return Quote(quote.ticker, None, 0, None, 0) if pulled["on"] else quote

    planner = _planner(gate=gate)
    planner.submit({TICKER: _quote()})
    _ack_all(planner, planner.plan(T0), T0 + MS)
    pulled["on"] = True

    planner.touch(TICKER)
    actions = planner.plan(T0 + 2 * MS)

    assert len(_of(StartCancels, actions)) == 1
    assert _of(StartCreate, actions) == []


def test_an_admitted_request_that_cannot_start_gives_its_tokens_back() -> None:
    planner = _planner(capacity=100, refill=10)
    planner.submit({TICKER: _quote()})
    actions = planner.plan(T0)
    before = planner.scheduler.bucket.available(T0)

    for start in _of(StartCreate, actions):
        planner.release(start.req.cost)

    assert planner.scheduler.bucket.available(T0) == before + 20
