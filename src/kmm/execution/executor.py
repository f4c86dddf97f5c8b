"""The executor: the async shell that sends what the order planner asks for.

Theory of operation
-------------------
Every decision lives in :class:`~kmm.core.planner.OrderPlanner` (pure: targets, diff, risk
checks, the cancel-first token bucket, answers). The executor only moves bytes and timers.
One task (:meth:`Executor.run`) loops: ask the planner to plan at the current time, perform
the actions it returns, then sleep until a new target, a reply, or the planner's next
wake-up (:meth:`~kmm.core.planner.OrderPlanner.next_wake_ns`).

Performing an action:

* :class:`~kmm.core.planner.StartCreate`, :class:`~kmm.core.planner.StartAmend`,
  :class:`~kmm.core.planner.StartCancels`: hand the write to
  :class:`~kmm.kalshi.rest.KalshiRest` (on the order lane it is on the wire before the call
  returns) and start a task that only awaits the answer, reports it to the planner and
  performs what comes back. When the task ends the planner books the tokens it held in
  flight (:meth:`~kmm.core.planner.OrderPlanner.settle`).
* :class:`~kmm.core.planner.ReadBack`: read the order from the venue (by exchange id, else by
  client order id; a few attempts) and report what it found.
* :class:`~kmm.core.planner.ExecEvent`: hand it to ``on_event`` (orders tape, ops log).

:meth:`Executor.submit` plans and sends in the same call, not on the loop's next wake-up: a
new target is the tick-to-order path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from kmm.book.grid import PriceGrid
from kmm.clock import Clock
from kmm.core.planner import (
    Approve,
    ExecAction,
    ExecEvent,
    ExecSettings,
    Gate,
    OrderPlanner,
    PlannerCounters,
    ReadBack,
    StartAmend,
    StartCancels,
    StartCreate,
    WriteRequest,
)
from kmm.errors import Rejected, VenueError
from kmm.execution.orders import OrderState, OrderTracker
from kmm.execution.token_bucket import Backoff, WriteScheduler
from kmm.kalshi.rest import BatchItem, CreateAck, KalshiRest, VenueOrder
from kmm.types import Quote

__all__ = ["ExecEvent", "ExecSettings", "Executor", "WriteRequest"]

log = logging.getLogger("kmm.exec")


class Executor:
    """Sends what the :class:`~kmm.core.planner.OrderPlanner` plans; owns every REST write.

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
        planner: The planner to drive (built from the arguments above when None).
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
        gate: Gate | None = None,
        approve: Approve | None = None,
        on_event: Callable[[ExecEvent], None] | None = None,
        planner: OrderPlanner | None = None,
    ) -> None:
        self.rest = rest
        self.clock = clock
        if planner is None:
            planner = OrderPlanner(tracker, scheduler, grids, settings, backoff=Backoff())
            planner.gate = gate or planner.gate
            planner.approve = approve or planner.approve
        self.planner = planner
        self.on_event = on_event or (lambda _e: None)
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._running = False

    # ----------------------------------------------------------------- the planner's state

    @property
    def tracker(self) -> OrderTracker:
        """The order tracker."""
        return self.planner.tracker

    @property
    def scheduler(self) -> WriteScheduler[WriteRequest]:
        """Admission against the Write bucket."""
        return self.planner.scheduler

    @property
    def grids(self) -> Mapping[str, PriceGrid]:
        """Each market's price grid."""
        return self.planner.grids

    @property
    def desired(self) -> dict[str, Quote]:
        """The newest target per market."""
        return self.planner.desired

    @property
    def counters(self) -> PlannerCounters:
        """Requests sent and answers heard."""
        return self.planner.counters

    @property
    def inflight(self) -> int:
        """Requests sent and not answered yet."""
        return len(self._inflight)

    # ----------------------------------------------------------------- inputs

    def submit(self, quotes: Mapping[str, Quote]) -> None:
        """Replaces the targets of these markets and acts on them at once.

        The diff runs and admitted requests are handed to the transport in this call, not on
        the loop's next wake-up: a new target is the tick-to-order path.
        """
        self.planner.submit(quotes)
        if self._running:
            self._perform(self.planner.plan(self.clock.now_ns()))
        self._wake.set()

    def touch(self, ticker: str) -> None:
        """Marks a market for a fresh diff (after a fill, a venue cancel, a reconcile)."""
        self.planner.touch(ticker)
        self._wake.set()

    def pull_all(self) -> None:
        """Sets every market's target to no quote: everything of ours gets cancelled."""
        self.planner.pull_all()
        self.submit({})

    def stop_placing(self) -> None:
        """From now on only cancels are sent (shutdown, kill switch)."""
        self.planner.stop_placing()
        self.submit({})

    def resume_placing(self) -> None:
        """Allows places again after :meth:`stop_placing` (the kill switch was resumed)."""
        self.planner.resume_placing()
        self._wake.set()

    # ----------------------------------------------------------------- the loop

    async def run(self) -> None:
        """Runs until cancelled: timers (token refill, deadlines, backoff) and replies."""
        self._running = True
        try:
            while True:
                now = self.clock.now_ns()
                self._perform(self.planner.plan(now))
                await self._sleep(now)
        finally:
            self._running = False

    async def _sleep(self, now: int) -> None:
        self._wake.clear()
        if self.planner.has_dirty:
            return
        wake = self.planner.next_wake_ns(now)
        timeout = None if wake is None else max(0.0, (wake - now) / 1e9)
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation that
        # coincides with the event being set (a reply arriving during shutdown)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._wake.wait()

    async def flush(self) -> None:
        """Waits until nothing is queued or in flight (tests, shutdown)."""
        while self.planner.has_dirty or self._inflight or self.scheduler.waiting_cancels:
            self._wake.set()
            await asyncio.sleep(0.005)

    # ----------------------------------------------------------------- performing

    def wake(self) -> None:
        """The planner has work (a market was touched): the loop plans again now."""
        self._wake.set()

    def perform(self, actions: list[ExecAction]) -> None:
        """Performs what the planner asked for, in order (see :meth:`_perform`)."""
        self._perform(actions)

    def _perform(self, actions: list[ExecAction]) -> None:
        """Starts every write in this call (on the order lane, each is on the wire when its
        ``rest`` call returns); a task per request only waits for its answer."""
        for action in actions:
            try:
                self._perform_one(action)
            except Exception as e:  # a bug building one request must not stop the others
                log.error("executor could not perform %r: %r", action, e)
                if isinstance(action, StartCreate | StartAmend):
                    self.planner.release(action.req.cost)
                elif isinstance(action, StartCancels):
                    self.planner.release(action.cost)

    def _perform_one(self, action: ExecAction) -> None:
        if isinstance(action, ExecEvent):
            self.on_event(action)
        elif isinstance(action, StartCreate):
            pending = self.rest.create_order(action.order)
            self._spawn(self._created(action, pending), action.req.cost)
        elif isinstance(action, StartAmend):
            req = action.req
            amend = req.amend
            assert amend is not None
            pending = self.rest.amend_order(
                action.order_id, ticker=req.ticker, side=amend.side, price=amend.price,
                count=req.count,
            )  # fmt: skip
            self._spawn(self._amended(action, pending), req.cost)
        elif isinstance(action, StartCancels):
            batch = self.rest.batch_cancel(list(action.order_ids))
            self._spawn(self._canceled(action, batch), action.cost)
        elif isinstance(action, ReadBack):
            self._spawn(self.settle_unknown(action.client_order_id))

    def _spawn(self, coro: Coroutine[Any, Any, None], cost: int = 0) -> None:
        """Runs one request's task; ``cost`` is the Write tokens it holds until it ends."""
        task = asyncio.ensure_future(coro)
        self._inflight.add(task)
        task.add_done_callback(lambda t: self._done(t, cost))

    def _done(self, task: asyncio.Task[None], cost: int) -> None:
        self.planner.settle(cost, self.clock.now_ns())
        self._inflight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("executor request failed: %r", task.exception())
        self._wake.set()

    def _answered(self, actions: list[ExecAction]) -> None:
        self._perform(actions)
        self._wake.set()

    async def _created(self, start: StartCreate, pending: Awaitable[CreateAck]) -> None:
        try:
            ack = await pending
        except VenueError as e:
            self._answered(self.planner.on_error(start.req, e, self.clock.now_ns()))
            return
        self._answered(self.planner.on_created(start.req, ack, self.clock.now_ns()))

    async def _amended(self, start: StartAmend, pending: Awaitable[CreateAck]) -> None:
        try:
            ack = await pending
        except VenueError as e:
            self._answered(self.planner.on_error(start.req, e, self.clock.now_ns()))
            return
        self._answered(self.planner.on_amended(start.req, ack, self.clock.now_ns()))

    async def _canceled(self, start: StartCancels, pending: Awaitable[list[BatchItem]]) -> None:
        try:
            items = await pending
        except VenueError as e:
            self._answered(self.planner.on_batch_error(start, e, self.clock.now_ns()))
            return
        self._answered(self.planner.on_cancels(start, items, self.clock.now_ns()))

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
            self._answered(self.planner.on_venue_view(client_order_id, venue, self.clock.now_ns()))
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
            self._answered(self.planner.on_venue_view(client_order_id, venue, self.clock.now_ns()))

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
