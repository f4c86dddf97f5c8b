"""The executor: targets in, post-only V2 orders out, behind the cancel-first token bucket.

Theory of operation
-------------------
The executor keeps the newest target :class:`~kmm.types.Quote` per market (``submit`` replaces
it) and a set of *dirty* markets whose orders must be compared with their target. One task
(:meth:`Executor.run`) loops:

1. For every dirty market: gate the target through risk (``gate``), diff it against the
   tracked live orders (:func:`~kmm.execution.diff.diff`), register what the diff asks for
   with the :class:`~kmm.execution.orders.OrderTracker` (a create becomes ``PENDING_NEW``
   with a fresh client order id, an amend ``PENDING_AMEND``, a cancel ``PENDING_CANCEL``)
   and queue it in the :class:`~kmm.execution.token_bucket.WriteScheduler`.
2. Admit what the Write bucket can pay for: cancels first, always; places only while no cancel
   waits and only before their deadline (a place that waited past its quote's freshness is
   dropped, and its order is marked rejected: it was never sent).
3. Start the admitted requests in the same call (several cancels go as one batch cancel, cut
   into batches the bucket's capacity can pay for): each write is handed to
   :meth:`~kmm.kalshi.rest.KalshiRest.write`, which on the order lane has it on the wire
   before returning; a task per request only awaits the answer. The bucket holds each
   request's tokens as *in flight* until its task ends, when they are settled at that time
   (the venue charged them at the latest then); tokens of an admitted request that was not
   started are released. Then sleep until a new target, a reply, or the scheduler's next
   wake-up.

Replies update the tracker and mark their market dirty, so a rejected place is retried from
the newest target. Writes are never retried blindly: a timeout, 5xx or disconnect makes the
order ``UNKNOWN`` and it is settled by :meth:`settle_unknown` (a REST read) or by the stream.
A 429 drains our bucket model (the venue's is empty), and pauses places with exponential
backoff while cancels keep going.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from kmm.book.grid import PriceGrid
from kmm.clock import Clock
from kmm.errors import RateLimited, Rejected, UnknownOutcome, VenueError
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
from kmm.kalshi.rest import BatchItem, CreateAck, KalshiRest, OrderRequest, VenueOrder
from kmm.types import BookSide, OrderIntent, Price, Qty, Quote

__all__ = ["ExecEvent", "ExecSettings", "Executor", "WriteRequest"]

log = logging.getLogger("kmm.exec")

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
    """How the executor places orders.

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


Gate = Callable[[Quote, int], Quote]
Approve = Callable[[OrderIntent, int | None], OrderIntent | None]
"""Pre-trade check of one order: the intent to send (possibly clipped), or None to refuse.
The second argument is the exposure of the order an amend replaces (None for a create)."""


def _pass_through(quote: Quote, now_ns: int) -> Quote:
    return quote


def _approve_all(intent: OrderIntent, replaces: int | None) -> OrderIntent | None:
    return intent


@dataclass(slots=True)
class _Counters:
    sent: int = 0
    acked: int = 0
    rejected: int = 0
    unknown: int = 0
    dropped: int = 0
    rate_limited: int = 0


class Executor:
    """Turns target quotes into orders; owns every REST write.

    Args:
        rest: The REST client.
        tracker: The order tracker (shared with the stream handlers).
        scheduler: Admission against the Write bucket.
        clock: The clock.
        grids: Each market's price grid (for the diff's tick size).
        settings: How orders are placed.
        gate: Risk's view of a target (caps, stale books, halts); identity by default.
        approve: Risk's pre-trade check of every create and amend; approves all by default.
        on_event: Receives every :class:`ExecEvent` (logging, tape).
    """

    def __init__(
        self,
        rest: KalshiRest,
        tracker: OrderTracker,
        scheduler: WriteScheduler[WriteRequest],
        clock: Clock,
        grids: Mapping[str, PriceGrid],
        settings: ExecSettings,
        *,
        gate: Gate = _pass_through,
        approve: Approve = _approve_all,
        on_event: Callable[[ExecEvent], None] | None = None,
    ) -> None:
        self.rest = rest
        self.tracker = tracker
        self.scheduler = scheduler
        self.clock = clock
        self.grids = grids
        self.settings = settings
        self.gate = gate
        self.approve = approve
        self.on_event = on_event or (lambda _e: None)
        self.desired: dict[str, Quote] = {}
        self.counters = _Counters()
        self._dirty: set[str] = set()
        self._deferred: set[str] = set()
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._started_cost = 0
        self._backoff = Backoff()
        self._places_paused_until = 0
        self._holds = RefusalCooldown()
        self._held_until: dict[str, int] = {}
        self._stopped = False
        self._running = False

    # ----------------------------------------------------------------- inputs

    def submit(self, quotes: Mapping[str, Quote]) -> None:
        """Replaces the targets of these markets and acts on them at once.

        The diff runs and admitted requests are handed to the transport in this call, not on
        the loop's next wake-up: a new target is the tick-to-order path.
        """
        self.desired.update(quotes)
        self._dirty.update(quotes)
        if self._running:
            now = self.clock.now_ns()
            self._plan(now)
            self._send(now)
        self._wake.set()

    def touch(self, ticker: str) -> None:
        """Marks a market for a fresh diff (after a fill, a venue cancel, a reconcile)."""
        self._dirty.add(ticker)
        self._wake.set()

    def pull_all(self) -> None:
        """Sets every market's target to no quote: everything of ours gets cancelled."""
        self.submit({t: Quote(t, None, 0, None, 0) for t in self._known_tickers()})

    def stop_placing(self) -> None:
        """From now on only cancels are sent (shutdown, kill switch)."""
        self._stopped = True
        self.pull_all()

    def resume_placing(self) -> None:
        """Allows places again after :meth:`stop_placing` (the kill switch was resumed)."""
        self._stopped = False
        self._wake.set()

    @property
    def inflight(self) -> int:
        """Requests sent and not answered yet."""
        return len(self._inflight)

    # ----------------------------------------------------------------- the loop

    async def run(self) -> None:
        """Runs until cancelled: timers (token refill, deadlines, backoff) and replies."""
        self._running = True
        try:
            while True:
                now = self.clock.now_ns()
                self._plan(now)
                self._send(now)
                await self._sleep(now)
        finally:
            self._running = False

    async def _sleep(self, now: int) -> None:
        self._wake.clear()
        if self._dirty:
            return
        wake = self.scheduler.next_wake_ns(now)
        if self._deferred and not self._stopped:
            resume = self._places_paused_until
            wake = resume if wake is None else min(wake, resume)
        if self._held_until:
            held = min(self._held_until.values())
            wake = held if wake is None else min(wake, held)
        timeout = None if wake is None else max(0.0, (wake - now) / 1e9)
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
        # coincides with the event being set (a reply arriving during shutdown)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()

    async def flush(self) -> None:
        """Waits until nothing is queued or in flight (tests, shutdown)."""
        while self._dirty or self._inflight or self.scheduler.waiting_cancels:
            self._wake.set()
            await asyncio.sleep(0.005)

    # ----------------------------------------------------------------- planning

    def _known_tickers(self) -> set[str]:
        return set(self.desired) | set(self.grids)

    def _plan(self, now: int) -> None:
        if self._deferred and self._places_allowed(now):
            self._dirty |= self._deferred
            self._deferred.clear()
        if self._held_until:
            for ticker in [t for t, until in self._held_until.items() if until <= now]:
                del self._held_until[ticker]
                self._dirty.add(ticker)
        dirty, self._dirty = self._dirty, set()
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
                self._deferred.add(quote.ticker)  # revisit when places resume
            return
        deadline = now + self.settings.freshness_ns
        for amend in result.amend:
            order = self.tracker.get(amend.client_order_id)
            wanted = OrderIntent(quote.ticker, amend.side, amend.price, amend.qty)
            checked = self._checked(wanted, order.exposure if order else 0, now)
            if checked is None:
                continue
            count = self.tracker.request_amend(
                amend.client_order_id, checked.price, checked.qty, now
            )
            terms = dataclasses.replace(amend, qty=checked.qty)
            req = WriteRequest(
                "amend", amend.client_order_id, quote.ticker, amend_cost(), None, terms
            )
            req.count = count
            self.scheduler.submit_place(req, deadline)
        for intent in result.place:
            checked = self._checked(intent, None, now)
            if checked is None:
                continue
            order = self.tracker.new(checked, now)
            req = WriteRequest(
                "create", order.client_order_id, intent.ticker, create_cost(), checked
            )
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

    # ----------------------------------------------------------------- sending

    def _send(self, now: int) -> None:
        """Starts every admitted request in this call (on the order lane, each is on the wire
        when its ``rest`` call returns); a task per request only waits for its answer."""
        admitted = self.scheduler.admit(now)
        for req in admitted.dropped:
            self._drop(req, now)
        self._started_cost = 0
        cancels = [r for r in admitted.send if r.kind == "cancel"]
        if cancels:
            # Always the batch endpoint: the same 2 tokens per order, and a fixed path whose
            # signature is prepared ahead (an order id in the path cannot be)
            for batch in split_by_cost(cancels, cancel_cost(), self.scheduler.bucket.capacity):
                self._start_batch_cancel(batch)
        for req in admitted.send:
            try:
                if req.kind == "create":
                    self._start_create(req)
                elif req.kind == "amend":
                    self._start_amend(req)
            except Exception as e:  # a bug building one request must not stop the others
                log.error("executor could not start %s %s: %r", req.kind, req.client_order_id, e)
        unsent = sum(r.cost for r in admitted.send) - self._started_cost
        if unsent:
            self.scheduler.bucket.release(unsent)

    def _spawn(self, coro: Coroutine[Any, Any, None], cost: int = 0) -> None:
        """Runs one request's task; ``cost`` is the Write tokens it holds until it ends."""
        task = asyncio.ensure_future(coro)
        self._inflight.add(task)
        self.counters.sent += 1
        self._started_cost += cost
        task.add_done_callback(self._done if not cost else lambda t: self._done(t, cost))

    def _done(self, task: asyncio.Task[None], cost: int = 0) -> None:
        if cost:
            self.scheduler.bucket.settle(cost, self.clock.now_ns())
        self._inflight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("executor request failed: %r", task.exception())
        self._wake.set()

    def _drop(self, req: WriteRequest, now: int) -> None:
        self.counters.dropped += 1
        if req.kind == "create":
            self.tracker.on_reject(req.client_order_id, now)
        elif req.kind == "amend":
            self.tracker.on_amend_reject(req.client_order_id, now)
        self._emit("dropped", req, "target went stale before the bucket could pay for it")
        self._dirty.add(req.ticker)

    def _emit(self, what: str, req: WriteRequest, detail: str = "", code: str = "") -> None:
        order = self.tracker.get(req.client_order_id)
        side, price, qty = _request_terms(req)
        if not side and order is not None:
            side, price, qty = order.side.value, order.price, order.remaining
        self.on_event(
            ExecEvent(
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
        )

    # ----------------------------------------------------------------- requests

    def _order_request(self, req: WriteRequest) -> OrderRequest:
        intent = req.intent
        assert intent is not None
        settings = self.settings
        return OrderRequest(
            intent.ticker,
            intent.side,
            intent.price,
            intent.qty,
            req.client_order_id,
            post_only=settings.post_only,
            self_trade_prevention=settings.self_trade_prevention,
            cancel_order_on_pause=settings.cancel_on_pause,
            order_group_id=settings.order_group_id,
        )

    def _start_create(self, req: WriteRequest) -> None:
        pending = self.rest.create_order(self._order_request(req))
        self._spawn(self._create(req, pending), req.cost)  # on the wire: its tokens are held
        self._emit("sent", req)

    async def _create(self, req: WriteRequest, pending: Awaitable[CreateAck]) -> None:
        try:
            ack = await pending
        except VenueError as e:
            self._on_write_error(req, e)
            return
        now = self.clock.now_ns()
        self.tracker.on_ack(
            req.client_order_id, ack.order_id, now, filled=ack.filled, remaining=ack.remaining
        )
        self.counters.acked += 1
        self._backoff.reset()
        if req.intent is not None:
            self._holds.accepted(req.ticker, req.intent.side)
        self._emit("acked", req)
        self.touch(req.ticker)

    def _start_amend(self, req: WriteRequest) -> None:
        amend = req.amend
        order = self.tracker.get(req.client_order_id)
        assert amend is not None
        if order is None or order.order_id is None:
            return
        pending = self.rest.amend_order(
            order.order_id, ticker=req.ticker, side=amend.side, price=amend.price, count=req.count
        )
        self._spawn(self._amend(req, amend, pending), req.cost)
        self._emit("sent", req, "amend")

    async def _amend(self, req: WriteRequest, amend: Amend, pending: Awaitable[CreateAck]) -> None:
        try:
            ack = await pending
        except VenueError as e:
            self._on_write_error(req, e)
            return
        now = self.clock.now_ns()
        self.tracker.on_amend_ack(
            req.client_order_id, now, filled=ack.filled, remaining=ack.remaining
        )
        self._holds.accepted(req.ticker, amend.side)
        self._emit("amended", req, f"{amend.price} x {amend.qty}")
        self.touch(req.ticker)

    def _start_batch_cancel(self, reqs: list[WriteRequest]) -> None:
        ids: list[str] = []
        by_id: dict[str, WriteRequest] = {}
        for req in reqs:
            order = self.tracker.get(req.client_order_id)
            if order is not None and order.order_id is not None:
                ids.append(order.order_id)
                by_id[order.order_id] = req
        if ids:
            pending = self.rest.batch_cancel(ids)
            self._spawn(self._batch_cancel(ids, by_id, pending), cancel_cost(len(ids)))

    async def _batch_cancel(
        self,
        ids: list[str],
        by_id: dict[str, WriteRequest],
        pending: Awaitable[list[BatchItem]],
    ) -> None:
        try:
            items = await pending
        except VenueError as e:
            for req in by_id.values():
                self._on_write_error(req, e)
            return
        for order_id, item in zip(ids, items, strict=False):
            req = by_id[order_id]
            if item.error is None:
                self.tracker.on_cancel_ack(req.client_order_id, self.clock.now_ns())
                self._emit("canceled", req)
            else:
                self._on_write_error(req, item.error)
            self.touch(req.ticker)

    # ----------------------------------------------------------------- errors

    def _on_write_error(self, req: WriteRequest, error: VenueError) -> None:
        now = self.clock.now_ns()
        if isinstance(error, RateLimited):
            self._on_rate_limited(req, now)
        elif isinstance(error, UnknownOutcome):
            self._on_unknown(req, error, now)
        else:
            self._on_rejected(req, error, now)
        self.touch(req.ticker)

    def _on_rate_limited(self, req: WriteRequest, now: int) -> None:
        self.counters.rate_limited += 1
        self.scheduler.bucket.drain(now)
        delay_ns = int(self._backoff.next_delay_s() * 1e9)
        self._places_paused_until = max(self._places_paused_until, now + delay_ns)
        if req.kind == "cancel":
            # A cancel is never given up: back in the queue, ahead of every place
            self.scheduler.submit_cancel(req)
            return
        self._settle_refused(req, now)
        self._emit("rejected", req, "429 too many requests", "too_many_requests")

    def _on_rejected(self, req: WriteRequest, error: VenueError, now: int) -> None:
        """A definitive refusal: never asked again in a loop. The refused price is held off
        for a while, and an order the refusal was about is read back and settled (it may
        have executed, or be gone) before the diff touches it again."""
        self.counters.rejected += 1
        side, price, _ = _request_terms(req)
        if side and price is not None:
            self._holds.refused(req.ticker, BookSide(side), price, now)
        if req.kind == "cancel":
            # Usually: the order already ended. Ask the venue what it is now
            self.tracker.on_cancel_reject(req.client_order_id, now)
            self._spawn(self.settle_unknown(req.client_order_id))
        elif req.kind == "amend":
            self.tracker.on_amend_reject(req.client_order_id, now)
            order = self.tracker.get(req.client_order_id)
            if order is not None and order.state is OrderState.RESTING:
                self.tracker.on_unknown(req.client_order_id, now)
                self._spawn(self.settle_unknown(req.client_order_id))
        else:
            self._settle_refused(req, now)
        self._emit("rejected", req, error.message, error.code)

    def _settle_refused(self, req: WriteRequest, now: int) -> None:
        if req.kind == "create":
            self.tracker.on_reject(req.client_order_id, now)
        elif req.kind == "amend":
            self.tracker.on_amend_reject(req.client_order_id, now)

    def _on_unknown(self, req: WriteRequest, error: VenueError, now: int) -> None:
        self.counters.unknown += 1
        order = self.tracker.get(req.client_order_id)
        if order is not None and order.state not in (OrderState.CANCELED, OrderState.FILLED):
            self.tracker.on_unknown(req.client_order_id, now)
        self._emit("unknown", req, f"{error.code}: {error.message}", error.code)
        self._spawn(self.settle_unknown(req.client_order_id))

    # ----------------------------------------------------------------- settling

    async def settle_unknown(self, client_order_id: str, *, attempts: int = 5) -> None:
        """Finds out what became of an order whose outcome is unknown, by REST reads.

        Reads the order by exchange id when known, else looks for its client order id among
        the account's orders. An order the venue does not have is settled as canceled.
        """
        for attempt in range(attempts):
            order = self.tracker.get(client_order_id)
            if order is None or order.state is not OrderState.UNKNOWN:
                return
            try:
                venue = await self._find_venue_order(order.order_id, client_order_id)
            except VenueError:
                await asyncio.sleep(0.05 * 2**attempt)
                continue
            self._apply_venue_view(client_order_id, order.ticker, venue)
            return

    async def settle_missing(self, client_order_id: str) -> None:
        """Reads back an order we believe rests but the venue does not list, and applies it."""
        order = self.tracker.get(client_order_id)
        if order is None or order.state is not OrderState.RESTING:
            return
        try:
            venue = await self._find_venue_order(order.order_id, client_order_id)
        except VenueError:
            return
        order = self.tracker.get(client_order_id)
        if order is not None and order.state is OrderState.RESTING:
            self._apply_venue_view(client_order_id, order.ticker, venue)

    async def _find_venue_order(
        self, order_id: str | None, client_order_id: str
    ) -> VenueOrder | None:
        if order_id is not None:
            try:
                return await self.rest.order(order_id)
            except Rejected as e:
                if e.status == 404:
                    return None
                raise
        for candidate in await self.rest.orders_by_client_id(client_order_id):
            return candidate
        return None

    def _apply_venue_view(self, cid: str, ticker: str, venue: VenueOrder | None) -> None:
        now = self.clock.now_ns()
        if venue is None:
            self.tracker.reconcile(cid, OrderState.CANCELED, now)
            detail = "the venue has no such order"
        else:
            found = _VENUE_STATES.get(venue.status, OrderState.CANCELED)
            self.tracker.reconcile(
                cid,
                found,
                now,
                order_id=venue.order_id,
                price=venue.price,
                filled=venue.filled,
                remaining=venue.remaining,
            )
            detail = f"venue says {venue.status}"
        tracked = self.tracker.get(cid)
        self.on_event(
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
        )
        self.touch(ticker)


def _request_terms(req: WriteRequest) -> tuple[str, Price | None, Qty | None]:
    """Side, price and size a request asks for (an amend's new terms; a cancel's none)."""
    if req.intent is not None:
        return req.intent.side.value, req.intent.price, req.intent.qty
    if req.amend is not None:
        return req.amend.side.value, req.amend.price, req.amend.qty
    return "", None, None
