"""The order planner: target quotes in, write requests out, outcomes in. Pure.

Theory of operation
-------------------
:class:`OrderPlanner` holds everything the executor decides with and none of its I/O: the
newest target :class:`~kmm.types.Quote` per market, the set of *dirty* markets whose orders
must be compared with their target, the order tracker, the cancel-first
:class:`~kmm.execution.token_bucket.WriteScheduler`, the 429 backoff and the refusal holds.
It never awaits, never reads a clock (every call takes ``now_ns``) and never touches a
socket, so the live executor and the backtest drive the same code.

:meth:`OrderPlanner.plan` runs, for every dirty market: risk's gate on the target
(``gate``), the diff against the tracked live orders (:func:`~kmm.execution.diff.diff`),
risk's pre-trade check of every create and amend (``approve``), the tracker's
registration of each request (a create becomes ``PENDING_NEW`` with a fresh client order id,
an amend ``PENDING_AMEND``, a cancel ``PENDING_CANCEL``) and the scheduler's admission
against the Write bucket (cancels first, always; places only while no cancel waits and only
before their deadline). What it admits comes back as actions for the shell to perform, in
order: :class:`StartCreate`, :class:`StartAmend`, :class:`StartCancels` (cut into batches
the bucket's capacity can pay for), :class:`ReadBack` (an order whose state only a REST
read can tell) and :class:`~kmm.execution.executor.ExecEvent` records.

The shell reports every answer back (:meth:`OrderPlanner.on_created`,
:meth:`~OrderPlanner.on_amended`, :meth:`~OrderPlanner.on_cancels`,
:meth:`~OrderPlanner.on_error`, :meth:`~OrderPlanner.on_venue_view`) and gets actions back
again; when a request ends it calls :meth:`~OrderPlanner.settle` so the bucket books the
tokens the request held in flight. A started request's tokens are reserved when it is
planned; tokens of an admitted request that could not be started are released at once.

Writes are never retried blindly: a timeout, 5xx or disconnect makes the order ``UNKNOWN``
and asks for a read-back. A definitive refusal holds that price off for a while
(:class:`~kmm.execution.refusals.RefusalCooldown`) and reads the order back when the refusal
was about it. A 429 drains our bucket model (the venue's is empty) and pauses places with
exponential backoff while cancels keep going.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from kmm.book.grid import PriceGrid
from kmm.errors import RateLimited, UnknownOutcome, VenueError
from kmm.execution.diff import Amend, DiffParams, diff
from kmm.execution.orders import OrderState, OrderTracker
from kmm.execution.refusals import RefusalCooldown
from kmm.execution.token_bucket import (
    Backoff,
    WriteScheduler,
    amend_cost,
    cancel_cost,
    create_cost,
    split_by_cost,
)
from kmm.kalshi.rest import BatchItem, CreateAck, OrderRequest, VenueOrder
from kmm.types import BookSide, OrderIntent, Price, Qty, Quote

__all__ = [
    "Approve",
    "ExecAction",
    "ExecEvent",
    "ExecSettings",
    "Gate",
    "OrderPlanner",
    "PlannerCounters",
    "ReadBack",
    "StartAmend",
    "StartCancels",
    "StartCreate",
    "WriteRequest",
]

Kind = Literal["create", "amend", "cancel"]
_VENUE_STATES: Final = {
    "resting": OrderState.RESTING,
    "canceled": OrderState.CANCELED,
    "executed": OrderState.FILLED,
}
_DEFAULT_DIFF: Final = DiffParams()


@dataclass(slots=True)
class WriteRequest:
    """One queued write. ``cost`` is what the Write bucket charges for it."""

    kind: Kind
    client_order_id: str
    ticker: str
    cost: int
    intent: OrderIntent | None = None
    amend: Amend | None = None
    count: int = 0


@dataclass(frozen=True, slots=True)
class ExecSettings:
    """How orders are placed.

    Attributes:
        diff: Hysteresis of the diff.
        freshness_ns: How long a place stays worth sending after its target was decided.
        post_only: Send creates post-only (the market maker never takes).
        self_trade_prevention: ``taker_at_cross`` or ``maker``.
        cancel_on_pause: Ask the venue to cancel our orders if trading pauses.
        order_group_id: The venue-side order group to put orders in, if any.
    """

    diff: DiffParams = _DEFAULT_DIFF
    freshness_ns: int = 1_000_000_000
    post_only: bool = True
    self_trade_prevention: str = "taker_at_cross"
    cancel_on_pause: bool = True
    order_group_id: str | None = None


@dataclass(frozen=True, slots=True)
class ExecEvent:
    """Something the executor did or learnt, for the ops log and the orders tape.

    ``what`` is one of: sent, acked, amended, canceled, rejected, unknown, dropped, settled.
    """

    what: str
    ticker: str
    client_order_id: str
    detail: str = ""
    code: str = ""
    order_id: str | None = None
    side: str = ""
    price: Price | None = None
    qty: Qty | None = None


@dataclass(frozen=True, slots=True)
class StartCreate:
    """Send this create; its tokens (``req.cost``) are held until its answer."""

    req: WriteRequest
    order: OrderRequest


@dataclass(frozen=True, slots=True)
class StartAmend:
    """Send this amend of the venue's order ``order_id``."""

    req: WriteRequest
    order_id: str


@dataclass(frozen=True, slots=True)
class StartCancels:
    """Send one batch cancel of ``order_ids`` (``reqs[i]`` is the request for
    ``order_ids[i]``); it holds ``cost`` tokens until its answer."""

    reqs: tuple[WriteRequest, ...]
    order_ids: tuple[str, ...]
    cost: int


@dataclass(frozen=True, slots=True)
class ReadBack:
    """Read this order back from the venue and report it with
    :meth:`OrderPlanner.on_venue_view`: only the venue can say what became of it."""

    client_order_id: str


ExecAction = StartCreate | StartAmend | StartCancels | ReadBack | ExecEvent
"""What the planner asks its shell to do, in order."""

Gate = Callable[[Quote, int], Quote]
"""Risk's view of a target (caps, stale books, halts) at a time."""
Approve = Callable[[OrderIntent, int | None], OrderIntent | None]
"""Pre-trade check of one order: the intent to send (possibly clipped), or None to refuse.
The second argument is the exposure of the order an amend replaces (None for a create)."""


def _pass_through(quote: Quote, now_ns: int) -> Quote:
    return quote


def _approve_all(intent: OrderIntent, replaces: int | None) -> OrderIntent | None:
    return intent


@dataclass(slots=True)
class PlannerCounters:
    """What the planner has asked for and heard back, since it was built."""

    sent: int = 0
    acked: int = 0
    rejected: int = 0
    unknown: int = 0
    dropped: int = 0
    rate_limited: int = 0


class OrderPlanner:
    """Turns target quotes into write requests and answers into tracker updates.

    Args:
        tracker: The order tracker (shared with the stream handlers).
        scheduler: Admission against the Write bucket.
        grids: Each market's price grid (for the diff's tick size).
        settings: How orders are placed.
        gate: Risk's view of a target; identity by default.
        approve: Risk's pre-trade check of every create and amend; approves all by default.
        backoff: The 429 backoff (seed its ``random_fn`` for a deterministic run).
    """

    def __init__(
        self,
        tracker: OrderTracker,
        scheduler: WriteScheduler[WriteRequest],
        grids: Mapping[str, PriceGrid],
        settings: ExecSettings,
        *,
        gate: Gate = _pass_through,
        approve: Approve = _approve_all,
        backoff: Backoff | None = None,
    ) -> None:
        self.tracker = tracker
        self.scheduler = scheduler
        self.grids = grids
        self.settings = settings
        self.gate = gate
        self.approve = approve
        self.desired: dict[str, Quote] = {}
        self.counters = PlannerCounters()
        # insertion-ordered (dicts, not sets): markets are planned in the order they were
        # touched, so a run does not depend on string hashing (PYTHONHASHSEED)
        self._dirty: dict[str, None] = {}
        self._deferred: dict[str, None] = {}
        self._backoff = backoff or Backoff()
        self._places_paused_until = 0
        self._holds = RefusalCooldown()
        self._held_until: dict[str, int] = {}
        self._stopped = False
        self.exits: dict[str, bool] = {}
        """Markets whose orders work a position out, reduce-only; ``True``: they may take
        liquidity (not post-only). Set by the trading core's exits."""
        self._taking: set[str] = set()
        """Orders created without post-only (by a taking exit): those may be amended
        across the spread; any other order in a taking exit is replaced instead."""

    # ----------------------------------------------------------------- inputs

    def submit(self, quotes: Mapping[str, Quote]) -> None:
        """Replaces the targets of these markets (acted on at the next :meth:`plan`)."""
        self.desired.update(quotes)
        self._dirty.update(dict.fromkeys(quotes))

    def touch(self, ticker: str) -> None:
        """Marks a market for a fresh diff (after a fill, a venue cancel, a reconcile)."""
        self._dirty[ticker] = None

    def pull_all(self) -> None:
        """Sets every market's target to no quote: everything of ours gets cancelled."""
        self.submit({t: Quote(t, None, 0, None, 0) for t in self._known_tickers()})

    def stop_placing(self) -> None:
        """From now on only cancels are planned (shutdown, kill switch)."""
        self._stopped = True
        self.pull_all()

    def resume_placing(self) -> None:
        """Allows places again after :meth:`stop_placing` (the kill switch was resumed)."""
        self._stopped = False

    @property
    def has_dirty(self) -> bool:
        """Some market waits for a diff: :meth:`plan` has work now."""
        return bool(self._dirty)

    @property
    def placing(self) -> bool:
        """False once :meth:`stop_placing` was called (until :meth:`resume_placing`)."""
        return not self._stopped

    def next_wake_ns(self, now_ns: int) -> int | None:
        """When :meth:`plan` has something to do without a new input: a token refill for a
        waiting request, a place deadline, the end of a 429 pause or of a refusal hold."""
        wake = self.scheduler.next_wake_ns(now_ns)
        if self._deferred and not self._stopped:
            resume = self._places_paused_until
            wake = resume if wake is None else min(wake, resume)
        if self._held_until:
            held = min(self._held_until.values())
            wake = held if wake is None else min(wake, held)
        return wake

    def settle(self, cost: int, now_ns: int) -> None:
        """A started request ended (answered or failed): the bucket books its ``cost``."""
        if cost:
            self.scheduler.bucket.settle(cost, now_ns)

    def release(self, cost: int) -> None:
        """A planned request could not be started: its reserved tokens go back."""
        if cost:
            self.scheduler.bucket.release(cost)

    # ----------------------------------------------------------------- planning

    def plan(self, now_ns: int) -> list[ExecAction]:
        """Diffs every dirty market and returns the requests admitted now, in sending order."""
        self._plan(now_ns)
        return self._admit(now_ns)

    def _known_tickers(self) -> dict[str, None]:
        return dict.fromkeys([*self.desired, *self.grids])

    def _plan(self, now: int) -> None:
        if self._deferred and self._places_allowed(now):
            self._dirty.update(self._deferred)
            self._deferred.clear()
        if self._held_until:
            for ticker in [t for t, until in self._held_until.items() if until <= now]:
                del self._held_until[ticker]
                self._dirty[ticker] = None
        dirty, self._dirty = self._dirty, {}
        for ticker in dirty:
            quote = self.desired.get(ticker)
            if quote is not None:
                self._plan_market(self.gate(quote, now), now)

    def _places_allowed(self, now: int) -> bool:
        return not self._stopped and now >= self._places_paused_until

    def _plan_market(self, quote: Quote, now: int) -> None:
        grid = self.grids.get(quote.ticker)
        if grid is None:
            return
        live = list(self.tracker.live(quote.ticker))
        result = diff(quote, live, now, self.settings.diff, grid.tick_at)
        for cid in result.cancel:
            self._queue_cancel(quote.ticker, cid, now)
        if not self._places_allowed(now):
            if result.place or result.amend:
                self._deferred[quote.ticker] = None  # revisit when places resume
            return
        deadline = now + self.settings.freshness_ns
        taking = self.exits.get(quote.ticker, False)
        places = list(result.place)
        for amend in result.amend:
            if taking and amend.client_order_id not in self._taking:
                # an amend keeps post-only: a quote's order cannot cross, so it is replaced
                self._queue_cancel(quote.ticker, amend.client_order_id, now)
                places.append(OrderIntent(quote.ticker, amend.side, amend.price, amend.qty))
            else:
                self._queue_amend(quote.ticker, amend, deadline, now)
        for intent in places:
            checked = self._checked(intent, None, now)
            if checked is None:
                continue
            order = self.tracker.new(checked, now)
            if taking:
                self._taking.add(order.client_order_id)
            req = WriteRequest(
                "create", order.client_order_id, intent.ticker, create_cost(), checked
            )
            self.scheduler.submit_place(req, deadline)

    def _queue_amend(self, ticker: str, amend: Amend, deadline: int, now: int) -> None:
        order = self.tracker.get(amend.client_order_id)
        wanted = OrderIntent(ticker, amend.side, amend.price, amend.qty)
        checked = self._checked(wanted, order.exposure if order else 0, now)
        if checked is None:
            return
        count = self.tracker.request_amend(amend.client_order_id, checked.price, checked.qty, now)
        terms = dataclasses.replace(amend, qty=checked.qty)
        req = WriteRequest("amend", amend.client_order_id, ticker, amend_cost(), None, terms)
        req.count = count
        self.scheduler.submit_place(req, deadline)

    def _checked(self, intent: OrderIntent, replaces: Qty | None, now: int) -> OrderIntent | None:
        """A create or amend as it may go out: not a refused price again too soon, and
        through risk's pre-trade check (``approve``: approved, clipped, or None to refuse)."""
        ticker = intent.ticker
        if self._holds.holds(ticker, intent.side, intent.price, now):
            until = self._holds.next_expiry_ns(now) or now
            self._held_until[ticker] = min(self._held_until.get(ticker, until), until)
            return None
        return self.approve(intent, replaces)

    def _queue_cancel(self, ticker: str, cid: str, now: int) -> None:
        order = self.tracker.get(cid)
        if order is None or order.order_id is None:
            return
        self.tracker.request_cancel(cid, now)
        self.scheduler.submit_cancel(WriteRequest("cancel", cid, ticker, cancel_cost()))

    # ----------------------------------------------------------------- admission

    def _admit(self, now: int) -> list[ExecAction]:
        admitted = self.scheduler.admit(now)
        actions: list[ExecAction] = []
        for req in admitted.dropped:
            actions.append(self._drop(req, now))
        unstarted = 0
        cancels = [r for r in admitted.send if r.kind == "cancel"]
        if cancels:
            # Always the batch endpoint: the same 2 tokens per order, and a fixed path whose
            # signature is prepared ahead (an order id in the path cannot be)
            for batch in split_by_cost(cancels, cancel_cost(), self.scheduler.bucket.capacity):
                unstarted += self._cancel_batch(batch, actions)
        for req in admitted.send:
            if req.kind == "create":
                actions.append(StartCreate(req, self._order_request(req)))
                actions.append(self._event("sent", req))
                self.counters.sent += 1
            elif req.kind == "amend":
                order = self.tracker.get(req.client_order_id)
                if order is None or order.order_id is None:
                    unstarted += req.cost
                    continue
                actions.append(StartAmend(req, order.order_id))
                actions.append(self._event("sent", req, "amend"))
                self.counters.sent += 1
        self.release(unstarted)
        return actions

    def _cancel_batch(self, reqs: list[WriteRequest], actions: list[ExecAction]) -> int:
        """Appends one batch cancel of the requests whose orders the venue knows; returns
        the cost of those it could not include."""
        chosen: list[WriteRequest] = []
        ids: list[str] = []
        for req in reqs:
            order = self.tracker.get(req.client_order_id)
            if order is not None and order.order_id is not None:
                chosen.append(req)
                ids.append(order.order_id)
        if ids:
            actions.append(StartCancels(tuple(chosen), tuple(ids), cancel_cost(len(ids))))
            self.counters.sent += 1
        return sum(r.cost for r in reqs) - (cancel_cost(len(ids)) if ids else 0)

    def _order_request(self, req: WriteRequest) -> OrderRequest:
        intent = req.intent
        assert intent is not None
        settings = self.settings
        taking = self.exits.get(intent.ticker)
        return OrderRequest(
            intent.ticker,
            intent.side,
            intent.price,
            intent.qty,
            req.client_order_id,
            post_only=settings.post_only and not taking,
            self_trade_prevention=settings.self_trade_prevention,
            cancel_order_on_pause=settings.cancel_on_pause,
            reduce_only=taking is not None,
            order_group_id=settings.order_group_id,
        )

    def _drop(self, req: WriteRequest, now: int) -> ExecEvent:
        self.counters.dropped += 1
        if req.kind == "create":
            self.tracker.on_reject(req.client_order_id, now)
        elif req.kind == "amend":
            self.tracker.on_amend_reject(req.client_order_id, now)
        self._dirty[req.ticker] = None
        return self._event("dropped", req, "target went stale before the bucket could pay for it")

    def _event(self, what: str, req: WriteRequest, detail: str = "", code: str = "") -> ExecEvent:
        order = self.tracker.get(req.client_order_id)
        side, price, qty = _request_terms(req)
        if not side and order is not None:
            side, price, qty = order.side.value, order.price, order.remaining
        return ExecEvent(
            what,
            req.ticker,
            req.client_order_id,
            detail,
            code,
            order.order_id if order is not None else None,
            side,
            price,
            qty,
        )

    # ----------------------------------------------------------------- answers

    def on_created(self, req: WriteRequest, ack: CreateAck, now_ns: int) -> list[ExecAction]:
        """The venue accepted a create."""
        self.tracker.on_ack(
            req.client_order_id, ack.order_id, now_ns, filled=ack.filled, remaining=ack.remaining
        )
        self.counters.acked += 1
        self._backoff.reset()
        if req.intent is not None:
            self._holds.accepted(req.ticker, req.intent.side)
        self._dirty[req.ticker] = None
        return [self._event("acked", req)]

    def on_amended(self, req: WriteRequest, ack: CreateAck, now_ns: int) -> list[ExecAction]:
        """The venue accepted an amend."""
        amend = req.amend
        assert amend is not None
        self.tracker.on_amend_ack(
            req.client_order_id, now_ns, filled=ack.filled, remaining=ack.remaining
        )
        self._holds.accepted(req.ticker, amend.side)
        self._dirty[req.ticker] = None
        return [self._event("amended", req, f"{amend.price} x {amend.qty}")]

    def on_cancels(
        self, start: StartCancels, items: Iterable[BatchItem], now_ns: int
    ) -> list[ExecAction]:
        """The venue answered a batch cancel, item by item."""
        actions: list[ExecAction] = []
        for req, item in zip(start.reqs, items, strict=False):
            if item.error is None:
                self.tracker.on_cancel_ack(req.client_order_id, now_ns)
                actions.append(self._event("canceled", req))
            else:
                actions += self.on_error(req, item.error, now_ns)
            self._dirty[req.ticker] = None
        return actions

    def on_error(self, req: WriteRequest, error: VenueError, now_ns: int) -> list[ExecAction]:
        """A write failed: rate limited, outcome unknown, or definitively refused."""
        if isinstance(error, RateLimited):
            actions = self._on_rate_limited(req, now_ns)
        elif isinstance(error, UnknownOutcome):
            actions = self._on_unknown(req, error, now_ns)
        else:
            actions = self._on_rejected(req, error, now_ns)
        self._dirty[req.ticker] = None
        return actions

    def on_batch_error(
        self, start: StartCancels, error: VenueError, now_ns: int
    ) -> list[ExecAction]:
        """A whole batch cancel failed (no per-item answer)."""
        actions: list[ExecAction] = []
        for req in start.reqs:
            actions += self.on_error(req, error, now_ns)
        return actions

    def _on_rate_limited(self, req: WriteRequest, now: int) -> list[ExecAction]:
        self.counters.rate_limited += 1
        self.scheduler.bucket.drain(now)
        delay_ns = int(self._backoff.next_delay_s() * 1e9)
        self._places_paused_until = max(self._places_paused_until, now + delay_ns)
        if req.kind == "cancel":
            # A cancel is never given up: back in the queue, ahead of every place
            self.scheduler.submit_cancel(req)
            return []
        self._settle_refused(req, now)
        return [self._event("rejected", req, "429 too many requests", "too_many_requests")]

    def _on_rejected(self, req: WriteRequest, error: VenueError, now: int) -> list[ExecAction]:
        """A definitive refusal: never asked again in a loop. The refused price is held off
        for a while, and an order the refusal was about is read back and settled (it may
        have executed, or be gone) before the diff touches it again."""
        self.counters.rejected += 1
        side, price, _ = _request_terms(req)
        if side and price is not None:
            self._holds.refused(req.ticker, BookSide(side), price, now)
        actions: list[ExecAction] = []
        if req.kind == "cancel":
            # Usually: the order already ended. Ask the venue what it is now
            self.tracker.on_cancel_reject(req.client_order_id, now)
            actions.append(ReadBack(req.client_order_id))
        elif req.kind == "amend":
            self.tracker.on_amend_reject(req.client_order_id, now)
            order = self.tracker.get(req.client_order_id)
            if order is not None and order.state is OrderState.RESTING:
                self.tracker.on_unknown(req.client_order_id, now)
                actions.append(ReadBack(req.client_order_id))
        else:
            self._settle_refused(req, now)
        actions.insert(0, self._event("rejected", req, error.message, error.code))
        return actions

    def _settle_refused(self, req: WriteRequest, now: int) -> None:
        if req.kind == "create":
            self.tracker.on_reject(req.client_order_id, now)
        elif req.kind == "amend":
            self.tracker.on_amend_reject(req.client_order_id, now)

    def _on_unknown(self, req: WriteRequest, error: VenueError, now: int) -> list[ExecAction]:
        self.counters.unknown += 1
        order = self.tracker.get(req.client_order_id)
        if order is not None and order.state not in (OrderState.CANCELED, OrderState.FILLED):
            self.tracker.on_unknown(req.client_order_id, now)
        event = self._event("unknown", req, f"{error.code}: {error.message}", error.code)
        return [event, ReadBack(req.client_order_id)]

    # ----------------------------------------------------------------- read-backs

    def on_venue_view(self, cid: str, venue: VenueOrder | None, now_ns: int) -> list[ExecAction]:
        """What a read-back found for order ``cid``: the venue's order, or None (it has no
        such order: settled as canceled)."""
        tracked = self.tracker.get(cid)
        if tracked is None:
            return []
        ticker = tracked.ticker
        if venue is None:
            self.tracker.reconcile(cid, OrderState.CANCELED, now_ns)
            detail = "the venue has no such order"
        else:
            found = _VENUE_STATES.get(venue.status, OrderState.CANCELED)
            self.tracker.reconcile(
                cid,
                found,
                now_ns,
                order_id=venue.order_id,
                price=venue.price,
                filled=venue.filled,
                remaining=venue.remaining,
            )
            detail = f"venue says {venue.status}"
        tracked = self.tracker.get(cid)
        self._dirty[ticker] = None
        return [
            ExecEvent(
                "settled",
                ticker,
                cid,
                detail,
                "",
                tracked.order_id if tracked is not None else None,
                tracked.side.value if tracked is not None else "",
                tracked.price if tracked is not None else None,
                tracked.remaining if tracked is not None else None,
            )
        ]


def _request_terms(req: WriteRequest) -> tuple[str, Price | None, Qty | None]:
    """Side, price and size a request asks for (an amend's new terms; a cancel's none)."""
    if req.intent is not None:
        return req.intent.side.value, req.intent.price, req.intent.qty
    if req.amend is not None:
        return req.amend.side.value, req.amend.price, req.amend.qty
    return "", None, None
