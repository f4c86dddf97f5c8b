"""The live engine: the pure core wired to Kalshi (or the local exchange) over the network.

Theory of operation
-------------------
:class:`LiveEngine` owns one aiohttp session (REST), one websocket client and the pure
pipeline, and runs four tasks on one event loop:

* **receive** (:class:`~kmm.kalshi.ws.KalshiWs`): every frame goes through
  :meth:`LiveEngine.on_frame` inline — the pipeline decodes it, checks ``seq``, updates the
  book and decides; fills, order updates, positions and lifecycle events come back as events
  and are applied here (inventory, order tracker, risk). A ``seq`` gap asks the client for
  ``get_snapshot`` on the same connection.
* **execute** (:class:`~kmm.execution.executor.Executor`): decided quotes reach it through the
  pipeline's latest-value mailbox, drained once per event-loop turn.
* **watch**: once a second, the summary line, the kill switch's checks (loss, drawdown, kill
  file) and the stale-book check; every ``reconcile_interval_s``, the venue's positions and
  resting orders are compared with ours.
* **run until stopped**: SIGINT/SIGTERM, the optional duration, or a halt.

Start: read exchange status, balance, limits, markets (and their series' fees), resting orders
and recent fills *before* quoting; with ``cancel_on_start`` cancel every resting order of the
account first. Stop: stop placing, cancel everything, read resting orders back until none of
ours remain (bounded retries, each leftover reported), exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Final, TextIO

import aiohttp

from kmm.app import build_pipeline, diff_params
from kmm.book.grid import PriceGrid
from kmm.clock import Clock, LiveClock
from kmm.config import KmmConfig, MarketsConfig
from kmm.errors import ConfigError, KmmError, VenueError, WireError
from kmm.execution.executor import ExecEvent, ExecSettings, Executor, WriteRequest
from kmm.execution.inventory import Portfolio
from kmm.execution.orders import ClientOrderIds, OrderState, OrderTracker
from kmm.execution.token_bucket import TokenBucket, WriteScheduler
from kmm.fees import maker_fee_rate, parse_multiplier
from kmm.kalshi.auth import Signer
from kmm.kalshi.lane import OrderLane
from kmm.kalshi.rest import (
    PAUSE_CODES,
    AccountLimits,
    KalshiRest,
    MarketInfo,
    VenueOrder,
    VenuePosition,
)
from kmm.kalshi.wire import Event, MarketLifecycle, MarketPosition, UserOrder
from kmm.kalshi.ws import KalshiWs
from kmm.pipeline import MarketSpec, Pipeline, QuoteMailbox, empty_quote
from kmm.record import Recorder, read_day
from kmm.risk import (
    HaltState,
    KillEvent,
    KillSwitch,
    MarketStatus,
    RiskContext,
    RiskLimits,
    Trigger,
    check_order,
    compare_orders,
    gate_quote,
)
from kmm.types import (
    ONE_DOLLAR,
    QTY_SCALE,
    BookSide,
    Fill,
    Money,
    OrderIntent,
    Price,
    Qty,
    Quote,
    format_count,
    format_money,
    format_price,
)

__all__ = ["CHANNELS", "EngineReport", "LiveEngine", "select_markets"]

log = logging.getLogger("kmm.engine")

CHANNELS: Final = (
    "orderbook_delta",
    "ticker",
    "trade",
    "fill",
    "user_orders",
    "market_positions",
    "market_lifecycle_v2",
)
_MARKET_CHANNELS: Final = ("orderbook_delta", "ticker", "trade", "market_lifecycle_v2")
_ACCOUNT_CHANNELS: Final = ("fill", "user_orders", "market_positions")
_VENUE_STATE: Final = {
    "resting": OrderState.RESTING,
    "canceled": OrderState.CANCELED,
    "executed": OrderState.FILLED,
}
_SHUTDOWN_ROUNDS: Final = 5
_CLOSED_EVENTS: Final = frozenset({"deactivated", "determined", "settled", "closed"})


@dataclass(slots=True)
class EngineReport:
    """What a run did, for the last summary and for tests."""

    markets: list[str] = field(default_factory=list)
    fills: int = 0
    orders_sent: int = 0
    lane_writes: int = 0
    lane_fallbacks: int = 0
    left_resting: list[str] = field(default_factory=list)
    halted: str | None = None


class LiveEngine:
    """The market maker, live against one venue.

    Args:
        config: The run's configuration.
        rest_url: The REST API root.
        ws_url: The websocket URL.
        signer: Signs requests for the account.
        clock: Time (a manual clock in tests).
        out: Where the one-line-per-second summary goes (operations lines go to logging).
        duration_s: Stop after this long (None: until a signal).
        recorder: Writes the run's tape, orders, fills, ledger and capture (None: nothing).
    """

    def __init__(
        self,
        config: KmmConfig,
        *,
        rest_url: str,
        ws_url: str,
        signer: Signer,
        clock: Clock | None = None,
        out: TextIO | None = None,
        duration_s: float | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        self.config = config
        self.recorder = recorder
        self.rest_url = rest_url
        self.ws_url = ws_url
        self.signer = signer
        self.clock = clock or LiveClock()
        self.out = out
        self.duration_s = duration_s
        self.report = EngineReport()
        self.portfolio = Portfolio()
        self.fills: list[Fill] = []
        start_ns = self.clock.now_ns()
        prefix = config.execution.client_order_prefix or "kmm"
        self._ids = ClientOrderIds.for_run(start_ns, prefix)
        self.tracker = OrderTracker(self._ids)
        self.mailbox = QuoteMailbox(self._on_quote)
        self.pipeline: Pipeline = build_pipeline(
            config, self.portfolio.net_qty, self.mailbox, use_yes_price=True
        )
        self.grids: dict[str, PriceGrid] = {}
        self.marks: dict[str, Price] = {}
        self.kill_switch = KillSwitch.from_config(config.risk)
        self.risk = RiskContext(
            RiskLimits.from_config(config.risk, config.strategy), self.kill_switch
        )
        self._refusals: dict[tuple[str, BookSide], str] = {}
        self.stop_event = asyncio.Event()
        self.ready = asyncio.Event()
        self.halted: str | None = None
        self._drain_scheduled = False
        self._exec: Executor | None = None
        self._ws: KalshiWs | None = None
        self._rest: KalshiRest | None = None
        self._started_ns = start_ns
        self._sent_at_last_summary = 0
        self._background: set[asyncio.Future[None]] = set()
        self._group_id: str | None = None
        self._settled: set[str] = set()
        self._status_checked_ns = 0

    # ----------------------------------------------------------------- accessors

    @property
    def executor(self) -> Executor:
        """The executor (after start)."""
        assert self._exec is not None, "the engine has not started"
        return self._exec

    @property
    def rest(self) -> KalshiRest:
        """The REST client (after start)."""
        assert self._rest is not None, "the engine has not started"
        return self._rest

    @property
    def ws(self) -> KalshiWs:
        """The websocket client (after start)."""
        assert self._ws is not None, "the engine has not started"
        return self._ws

    def stop(self) -> None:
        """Asks the engine to shut down cleanly (signal handlers call this)."""
        self.stop_event.set()

    # ----------------------------------------------------------------- run

    async def run(self) -> EngineReport:
        """Starts, quotes until stopped, shuts down; returns what happened.

        Raises:
            AuthError: if the venue refuses the key (the CLI turns it into exit status 2).
            VenueError: if the venue cannot be read at start.
        """
        timeout_s = self.config.venue.request_timeout_s
        lane = self._order_lane()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
            self._rest = KalshiRest(
                session,
                self.rest_url,
                self.signer,
                timeout_s=timeout_s,
                now_ms=lambda: self.clock.now_ns() // 1_000_000,
                lane=lane,
            )
            try:
                if lane is not None:
                    await lane.start()
                await self._start()
                try:
                    await self._serve()
                finally:
                    await self._shutdown()
            finally:
                if lane is not None:
                    await lane.close()
                    self.report.lane_writes = lane.sent
                    self.report.lane_fallbacks = lane.fallbacks
        return self.report

    def _order_lane(self) -> OrderLane | None:
        connections = self.config.execution.order_lane_connections
        if not connections:
            return None
        return OrderLane(
            self.rest_url,
            connections=connections,
            timeout_s=self.config.venue.request_timeout_s,
        )

    async def _serve(self) -> None:
        tasks = [
            asyncio.create_task(self.ws.run(), name="kmm-ws"),
            asyncio.create_task(self.executor.run(), name="kmm-exec"),
            asyncio.create_task(self._watch(), name="kmm-watch"),
            asyncio.create_task(self._reconcile_loop(), name="kmm-reconcile"),
        ]
        if self.signer.reuse_ms:
            presign = self.rest.presign_forever(more=self._amend_paths)
            tasks.append(asyncio.create_task(presign, name="kmm-presign"))
        await self.ws.subscribe(_MARKET_CHANNELS, self.report.markets)
        await self.ws.subscribe(_ACCOUNT_CHANNELS)
        self.ready.set()
        stopper = asyncio.create_task(self._until_stopped(), name="kmm-stop")
        try:
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper and not task.cancelled() and task.exception():
                    raise task.exception()  # type: ignore[misc]
        finally:
            self.executor.stop_placing()
            await self._cancel_everything()
            for task in [*tasks, stopper]:
                task.cancel()
            await asyncio.gather(*tasks, stopper, return_exceptions=True)

    async def _until_stopped(self) -> None:
        if self.duration_s is None:
            await self.stop_event.wait()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop_event.wait(), self.duration_s)

    # ----------------------------------------------------------------- start

    async def _start(self) -> None:
        rest = self.rest
        status = await rest.exchange_status()
        balance = await rest.balance()
        limits = await rest.account_limits()
        markets = await self._select_markets()
        if not markets:
            raise KmmError("no open market matches the markets section of the config")
        await self._add_markets(markets)
        await self._startup_orders()
        await self._startup_fills_and_positions()
        self._restore_day()
        group_id = await self._order_group()
        self._build_executor(limits, group_id)
        self._build_ws()
        self._banner(status.trading_active, balance, limits)

    async def _select_markets(self) -> list[MarketInfo]:
        return await select_markets(self.rest, self.config.markets)

    async def _add_markets(self, markets: Sequence[MarketInfo]) -> None:
        fee_rates: dict[str, float] = {}
        for market in markets:
            series = await self.rest.event_series(market.event_ticker)
            if series not in fee_rates:
                info = await self.rest.series(series)
                multiplier = parse_multiplier(info.fee_multiplier)
                fee_rates[series] = maker_fee_rate(info.fee_type, Fraction(multiplier))
            grid = PriceGrid.from_ranges(market.price_ranges)
            self.grids[market.ticker] = grid
            if market.yes_bid is not None and market.yes_ask is not None:
                self.marks[market.ticker] = (market.yes_bid + market.yes_ask) // 2
            spec = MarketSpec(market.ticker, grid, market.close_ns, fee_rates[series])
            self.pipeline.add_market(spec)
            self.report.markets.append(market.ticker)

    async def _startup_orders(self) -> None:
        resting = await self.rest.resting_orders()
        if not resting:
            return
        if self.config.execution.cancel_on_start == "adopt":
            self._say(f"adopting {len(resting)} resting orders")
            for order in resting:
                self._adopt(order)
            return
        self._say(f"cancelling {len(resting)} resting orders found at start (cancel_on_start)")
        left = await self._cancel_venue_orders(resting)
        if left:
            raise KmmError(f"could not cancel {len(left)} resting orders at start: {left}")

    def _adopt(self, order: VenueOrder) -> None:
        """Tracks an order found resting at start as if we had placed it."""
        if order.ticker not in self.grids:
            return
        intent = _intent_of(order)
        tracked = self.tracker.new(intent, self.clock.now_ns())
        self.tracker.on_ack(
            tracked.client_order_id,
            order.order_id,
            self.clock.now_ns(),
            filled=order.filled,
            remaining=order.remaining,
        )

    async def _startup_fills_and_positions(self) -> None:
        for fill in await self.rest.fills():
            self.portfolio.on_fill(fill)
        for position in await self.rest.positions():
            ours = self.portfolio.net_qty(position.ticker)
            if ours != position.position:
                self._say(
                    f"{position.ticker}: position {format_count(position.position)} at start "
                    f"(fills read back give {format_count(ours)}); the venue's figure is used"
                )
                missing = position.position - ours
                side = BookSide.BID if missing > 0 else BookSide.ASK
                price = _entry_price(position, missing)
                self.portfolio.position(position.ticker).apply(side, price, abs(missing))

    def _day_key(self, now_ns: int) -> str:
        """The ledger's key of today's P&L: per environment, so sim never counts against prod."""
        return f"{self.config.venue.env}:{_utc_day(now_ns)}"

    def _restore_day(self) -> None:
        """The day's P&L and peak from the ledger: a restart cannot reset the kill switch."""
        ledger = self.config.record.ledger_path
        now = self.clock.now_ns()
        saved = read_day(ledger, self._day_key(now)) if self.recorder is not None else None
        if saved is None:
            return
        day_pnl, day_peak = saved
        self._update_marks()
        total = self.portfolio.total_pnl(self._pnl_marks())
        self._on_kill_event(
            self.kill_switch.restore(
                day_pnl=day_pnl, day_peak=day_peak, total_pnl=total, now_ns=now
            )
        )
        self._say(
            f"  today so far (ledger): P&L ${format_money(day_pnl)}, peak ${format_money(day_peak)}"
        )

    async def _order_group(self) -> str | None:
        """The venue-side safety net: an order group with a rolling contracts limit."""
        limit = self.config.risk.order_group_limit
        if limit is None:
            return None
        group_id = await self.rest.create_order_group(limit)
        self._say(
            f"  order group {group_id}: venue cancels all if {format_count(limit)} "
            "contracts match within 15 s"
        )
        self._group_id = group_id
        return group_id

    def _build_executor(self, limits: AccountLimits, group_id: str | None = None) -> None:
        execution = self.config.execution
        now = self.clock.now_ns()
        bucket = TokenBucket(limits.write_capacity, limits.write_refill_per_s, now)
        settings = ExecSettings(
            diff=diff_params(execution),
            freshness_ns=execution.target_freshness_ns,
            post_only=execution.post_only,
            self_trade_prevention=execution.self_trade_prevention,
            cancel_on_pause=execution.cancel_on_pause,
            order_group_id=group_id,
        )
        self._exec = Executor(
            self.rest,
            self.tracker,
            WriteScheduler[WriteRequest](bucket),
            self.clock,
            self.grids,
            settings,
            gate=self._gate,
            approve=self._approve,
            on_event=self._on_exec_event,
        )

    def _build_ws(self) -> None:
        venue = self.config.venue
        self._ws = KalshiWs(
            self.ws_url,
            self.signer,
            self.on_frame,
            use_yes_price=True,
            on_reconnect=self._on_reconnect,
            on_disconnect=self._on_disconnect,
            on_resubscribe=self._on_resubscribe,
            on_stale=lambda: self._say("websocket feed silent: reconnecting"),
            reconnect_initial_s=venue.reconnect_initial_s,
            reconnect_max_s=venue.reconnect_max_s,
            stale_after_s=max(15.0, self.config.risk.stale_book_s),
            open_timeout_s=venue.request_timeout_s,
            now_ns=self.clock.now_ns,
        )

    def _banner(self, trading_active: bool, balance: Money, limits: AccountLimits) -> None:
        env = self.config.venue.env
        markets = self.report.markets
        listed_in = _write_markets(self.recorder, markets)
        lines = [
            f"kmm: env {env} ({self.rest_url}), key {_mask(self.signer.key_id)}",
            f"  balance ${format_money(balance)}, tier {limits.usage_tier} "
            f"(write {limits.write_refill_per_s}/s, bucket {limits.write_capacity}), "
            f"trading {'active' if trading_active else 'PAUSED'}",
            f"  markets {_markets_text(markets, listed_in)}",
            f"  client order ids: {self.tracker_prefix}-N",
            f"  run directory: {self.recorder.run_dir if self.recorder else '(not recording)'}",
        ]
        for line in lines:
            self._say(line)

    @property
    def tracker_prefix(self) -> str:
        """The run's client order id prefix."""
        return self._ids.prefix

    # ----------------------------------------------------------------- the receive path

    def on_frame(self, frame: bytes | str, recv_ns: int) -> Event | None:
        """Handles one websocket frame inline (the hot path, then the account events)."""
        recorder = self.recorder
        if recorder is not None and recorder.capturing:
            recorder.capture(recv_ns, frame)
        try:
            event = self.pipeline.on_frame(frame, recv_ns)
        except WireError as e:
            log.warning("malformed frame skipped: %s", e)
            return None
        if self.pipeline.needs_resync:
            self.ws.resync(self.pipeline.take_resync())
        if event is None:
            if self._drain_scheduled and not self.ws.book_frames_ahead:
                # The read holds no later book change: act now, before its other frames
                self._drain_mailbox()
            return None
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(self, event)
        return event

    def _on_fill(self, fill: Fill) -> None:
        now = self.clock.now_ns()
        self.tracker.on_fill(fill, now)
        if self.portfolio.on_fill(fill):
            self.fills.append(fill)
            self.report.fills += 1
            self._record_fill(fill, now)
            self.marks.setdefault(fill.ticker, fill.price)
            self._say(
                f"{fill.ticker}: fill {fill.side} {format_count(fill.qty)} @ "
                f"{format_price(fill.price)} fee ${format_money(fill.fee)} "
                f"({'taker' if fill.is_taker else 'maker'}), position "
                f"{format_count(self.portfolio.net_qty(fill.ticker))}"
            )
        if fill.ticker in self.pipeline.markets:
            self.pipeline.decide(fill.ticker, now)
            self.executor.touch(fill.ticker)

    def _record_fill(self, fill: Fill, now: int) -> None:
        recorder = self.recorder
        if recorder is None:
            return
        position = self.portfolio.position(fill.ticker)
        recorder.fill(fill, position.qty)
        recorder.position(now, fill.ticker, position.qty, position.realized, position.fees_paid)
        self._tape(fill.ticker, "fill", now)

    def _on_user_order(self, order: UserOrder) -> None:
        found = _VENUE_STATE.get(order.status)
        key = order.client_order_id or order.order_id
        if found is None or self.tracker.get(key) is None:
            return
        tracked = self.tracker.get(key)
        if tracked is not None and tracked.state is OrderState.PENDING_NEW:
            return  # the create reply binds it; the stream may beat the reply
        self.tracker.reconcile(
            key,
            found,
            self.clock.now_ns(),
            order_id=order.order_id,
            filled=order.fill_count,
            remaining=order.remaining_count,
        )
        self.executor.touch(order.ticker)

    def _on_position(self, position: MarketPosition) -> None:
        ours = self.portfolio.net_qty(position.ticker)
        if ours != position.position:
            log.debug(
                "%s: venue position %s, ours %s (fills in flight?)",
                position.ticker,
                position.position,
                ours,
            )

    def _on_lifecycle(self, event: MarketLifecycle) -> None:
        if event.ticker not in self.pipeline.markets:
            return
        if event.event_type == "settled" or (event.event_type == "determined" and event.result):
            self._settle(event)
        if event.event_type in _CLOSED_EVENTS or event.is_deactivated:
            self._say(f"{event.ticker}: {event.event_type}: quotes pulled")
            self.pipeline.pull(event.ticker)
        elif event.event_type == "activated":
            self._say(f"{event.ticker}: activated again")

    def _settle(self, event: MarketLifecycle) -> None:
        """Books the settlement of a market we hold, once, and writes its close row."""
        ticker = event.ticker
        if ticker in self._settled or event.result not in ("yes", "no", "scalar"):
            return
        self._settled.add(ticker)
        value = event.settlement_value
        mark = ONE_DOLLAR if event.result == "yes" else 0 if event.result == "no" else value
        pnl = self.portfolio.settle(ticker, event.result, value)  # type: ignore[arg-type]
        self._say(f"{ticker}: settled {event.result}: P&L ${format_money(pnl)}")
        if mark is not None:
            self.marks[ticker] = mark
        if self.recorder is not None:
            now = self.clock.now_ns()
            position = self.portfolio.position(ticker)
            self.recorder.tape(now, ticker, "close", None if mark is None else 2 * mark,
                               None, None, None, 0, None, 0, 0, 0, position.realized,
                               position.fees_paid, None)  # fmt: skip

    _handlers: Final[dict[type, Callable[[LiveEngine, object], None]]] = {
        Fill: _on_fill,  # type: ignore[dict-item]
        UserOrder: _on_user_order,  # type: ignore[dict-item]
        MarketPosition: _on_position,  # type: ignore[dict-item]
        MarketLifecycle: _on_lifecycle,  # type: ignore[dict-item]
    }

    def _on_quote(self) -> None:
        """The mailbox got a quote: drain it once this event-loop turn is over, or as soon as
        the socket read being handled holds no later book frame (:meth:`on_frame`)."""
        if not self._drain_scheduled and self._exec is not None:
            self._drain_scheduled = True
            asyncio.get_running_loop().call_soon(self._drain_mailbox)

    def _drain_mailbox(self) -> None:
        self._drain_scheduled = False
        quotes = self.mailbox.take()
        if not quotes:
            return
        now = self.clock.now_ns()
        self.executor.submit(quotes)  # first: the orders go out before the tape is written
        if self.recorder is not None:
            for ticker, quote in quotes.items():
                pulled = quote.bid_price is None and quote.ask_price is None
                self._tape(ticker, "pulled" if pulled else "quote", now, latency=True)

    def _tape(self, ticker: str, event: str, now: int, *, latency: bool = False) -> None:
        """One tape row for ``ticker``: its book, our quote, inventory and P&L now."""
        recorder = self.recorder
        market = self.pipeline.markets.get(ticker)
        if recorder is None or market is None:
            return
        book, quote = market.book, market.quote
        bid, ask = book.best_bid, book.best_ask
        mid_x2 = bid + ask if bid is not None and ask is not None else None
        position = self.portfolio.positions().get(ticker)
        qty = position.qty if position is not None else 0
        mark = self.marks.get(ticker) if mid_x2 is None else mid_x2 // 2
        unrealized = position.unrealized(mark) if position is not None and mark else 0
        recorder.tape(
            now,
            ticker,
            event,
            mid_x2,
            bid,
            ask,
            quote.bid_price if quote else None,
            quote.bid_qty if quote else 0,
            quote.ask_price if quote else None,
            quote.ask_qty if quote else 0,
            qty,
            unrealized,
            position.realized if position is not None else 0,
            position.fees_paid if position is not None else 0,
            now - market.last_book_ns if latency and market.last_book_ns else None,
        )

    def _on_disconnect(self, reason: str) -> None:
        self._say(f"websocket lost ({reason}): quotes pulled until the books are fresh")
        self.pipeline.pull_all()

    def _on_resubscribe(self, channel: str, old_sid: int | None) -> None:
        self._say(f"websocket channel {channel} ended by the venue: subscribing again")
        if channel == "orderbook_delta":
            self.pipeline.pull_all()

    def _on_reconnect(self) -> None:
        self._say("websocket reconnected: books untrusted until fresh snapshots")
        self.pipeline.pull_all()
        asyncio.get_running_loop().create_task(self._backfill_fills())

    async def _backfill_fills(self) -> None:
        """Fills missed while disconnected, counted once by trade id."""
        with contextlib.suppress(VenueError):
            since_s = self._started_ns // 1_000_000_000 - 1
            for fill in await self.rest.fills(min_ts_s=since_s):
                self._on_fill(fill)

    # ----------------------------------------------------------------- execution glue

    def _gate(self, quote: Quote, now_ns: int) -> Quote:
        """Risk's view of a target: halts, stale or closing markets, pauses, caps."""
        ticker = quote.ticker
        market = self.pipeline.markets.get(ticker)
        if self.halted is not None or market is None:
            return empty_quote(ticker)
        self.risk.exposures.refresh(ticker, self.portfolio, self.tracker)
        feed_ns = self._ws.stats.last_message_ns if self._ws is not None else 0
        status = MarketStatus(
            book_ns=max(market.last_book_ns, feed_ns),
            trusted=market.book.trusted,
            close_ns=market.spec.close_ns,
        )
        return gate_quote(quote, status, self.risk, now_ns)

    def _approve(self, intent: OrderIntent, replaces: Qty | None) -> OrderIntent | None:
        """The pre-trade check of one create or amend: approve, clip or refuse."""
        verdict = check_order(intent, self.risk, replaces=replaces)
        key = (intent.ticker, intent.side)
        if verdict.allowed and verdict.qty == intent.qty:
            self._refusals.pop(key, None)
            return intent
        reason = verdict.reason
        if self._refusals.get(key) != reason:
            self._refusals[key] = reason
            self._say(f"risk: {reason}")
        return intent._replace(qty=verdict.qty) if verdict.allowed else None

    def _amend_paths(self) -> list[tuple[str, str]]:
        """The amend path of every live order: a quote move then signs nothing on the loop."""
        return [
            self.rest.amend_path(order.order_id)
            for ticker in self.pipeline.markets
            for order in self.tracker.live(ticker)
            if order.order_id is not None
        ]

    def _on_exec_event(self, event: ExecEvent) -> None:
        if self.recorder is not None:
            self.recorder.order(
                self.clock.now_ns(),
                event.ticker,
                event.client_order_id,
                event.order_id,
                event.what,
                event.side,
                event.price,
                event.qty,
                event.code,
                event.detail,
            )
        if event.what == "rejected" and event.code in PAUSE_CODES:
            self._set_paused(True)
            self._status_checked_ns = self.clock.now_ns()
        if event.what == "acked" and self.signer.reuse_ms and event.order_id:
            path = self.rest.amend_path(event.order_id)
            self._spawn_background(self.rest.presign([path]))
        if event.what == "unknown":
            self._on_kill_event(self.kill_switch.on_unknown_order(self.clock.now_ns()))
        if event.what in ("rejected", "unknown", "dropped", "settled"):
            code = f" [{event.code}]" if event.code else ""
            log.info(
                "%s %s %s%s %s", event.ticker, event.client_order_id, event.what, code, event.detail
            )

    # ----------------------------------------------------------------- watch

    async def _watch(self) -> None:
        interval = 1.0
        while True:
            await asyncio.sleep(interval)
            self._update_marks()
            await self._check_risk(self.clock.now_ns())
            self._say(self.summary_line())

    async def _check_exchange(self, now: int) -> None:
        """Every 5 s: is trading paused? Paused means no places (cancels still go)."""
        if now - self._status_checked_ns < 5_000_000_000:
            return
        self._status_checked_ns = now
        try:
            status = await self.rest.exchange_status()
        except VenueError:
            return
        self._set_paused(not (status.trading_active and status.exchange_active))

    def _set_paused(self, paused: bool) -> None:
        if paused != self.risk.exchange_paused:
            self.risk.exchange_paused = paused
            self._say("exchange trading paused: quotes pulled" if paused else "trading resumed")

    async def _check_risk(self, now: int) -> None:
        await self._check_exchange(now)
        kill = self.kill_switch
        self._on_kill_event(kill.on_pnl(self.portfolio.total_pnl(self._pnl_marks()), now))
        if self.recorder is not None and kill.day_pnl is not None:
            self.recorder.daily_pnl(self._day_key(now), kill.day_pnl, kill.day_peak or 0, now)
        kill_file = self.config.risk.kill_file
        if kill.state is HaltState.RUNNING and kill_file.exists():
            self._on_kill_event(kill.trip(f"kill file {kill_file} exists", now))
        if self._ws is not None and self._ws.stats.last_message_ns:
            self._on_kill_event(kill.check_feed(self._ws.stats.last_message_ns, now))
        for change in self.risk.take_events():
            self._say(f"risk: {change}")
        for ticker in self.pipeline.markets:
            self.executor.touch(ticker)  # time alone can make a book stale or a close near
        if kill.state is HaltState.HALTING:
            await self._go_flat(now)

    def _on_kill_event(self, event: KillEvent | None) -> None:
        if event is None:
            return
        self._say(f"kill switch: {event.kind} ({event.state}): {event.reason}")
        if event.state is not HaltState.RUNNING and self.halted is None:
            self.halted = event.reason
            self.report.halted = event.reason
            self.executor.stop_placing()
            now = self.clock.now_ns()
            for ticker in self.pipeline.markets:
                self._tape(ticker, "halt", now)

    async def _go_flat(self, now: int) -> None:
        """HALTING: cancel everything and confirm with the venue that none of ours rests."""
        await self._cancel_everything()
        if not self.report.left_resting:
            self._on_kill_event(self.kill_switch.confirm_flat(self.clock.now_ns()))

    def _pnl_marks(self) -> dict[str, Price]:
        """Marks for P&L: the last mid, or, for a position with none yet, its entry price."""
        marks = dict(self.marks)
        for ticker, position in self.portfolio.positions().items():
            if ticker not in marks and position.qty:
                marks[ticker] = position.open_cost // abs(position.qty)
        return marks

    def _update_marks(self) -> None:
        for ticker, market in self.pipeline.markets.items():
            mid = market.book.mid()
            if mid is not None:
                self.marks[ticker] = int(mid)

    def summary_line(self) -> str:
        """One line: markets, quotes, inventory, P&L, orders/s, tokens left."""
        elapsed = (self.clock.now_ns() - self._started_ns) / 1e9
        markets = self.pipeline.markets
        quoting = [t for t, m in markets.items() if m.quote and _two_sided(m.quote)]
        inventory = sum(abs(self.portfolio.net_qty(t)) for t in markets)
        realized = self.portfolio.realized()
        unrealized = self.portfolio.unrealized(self._pnl_marks())
        sent = self.executor.counters.sent
        rate = sent - self._sent_at_last_summary
        self._sent_at_last_summary = sent
        tokens = self.executor.scheduler.bucket.available(self.clock.now_ns())
        first = next(iter(quoting), None)
        sample = f" | {first} {_quote_text(markets[first].quote)}" if first else ""
        return (
            f"t={elapsed:5.0f}s quoting {len(quoting)}/{len(markets)} | inv "
            f"{format_count(inventory)} | pnl real ${format_money(realized)} unreal "
            f"${format_money(unrealized)} | fills {self.report.fills} | orders/s {rate} | "
            f"live {sum(len(self.tracker.live(t)) for t in markets)} | tokens {tokens}{sample}"
        )

    async def _reconcile_loop(self) -> None:
        interval = self.config.execution.reconcile_interval_s
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(VenueError):
                await self._reconcile_once()

    async def _reconcile_once(self) -> None:
        await self._reconcile_positions()
        await self._reconcile_orders()

    async def _reconcile_orders(self) -> None:
        """Resting orders: strays of ours are cancelled, missing ones are read back."""
        venue = {o.order_id: o for o in await self.rest.resting_orders() if self._ours(o)}
        settled = {
            o.order_id: o
            for ticker in self.pipeline.markets
            for o in self.tracker.live(ticker)
            if o.order_id is not None and o.state is OrderState.RESTING
        }
        missing, extra = compare_orders(settled, venue)
        strays = [venue[oid] for oid in extra if self.tracker.get(oid) is None]
        if strays:
            self._say(f"reconcile: cancelling {len(strays)} resting orders we do not track")
            await self._cancel_venue_orders(strays)
        for order_id in missing:
            tracked = settled[order_id]
            self._say(f"reconcile: {tracked.client_order_id} not resting at the venue: reading it")
            self._spawn_background(self.executor.settle_missing(tracked.client_order_id))

    async def _reconcile_positions(self) -> None:
        tolerance = self.config.risk.drift_tolerance
        for position in await self.rest.positions():
            ours = self.portfolio.net_qty(position.ticker)
            if abs(ours - position.position) > tolerance:
                await self._backfill_fills()
                ours = self.portfolio.net_qty(position.ticker)
            if abs(ours - position.position) > tolerance:
                self.halt(
                    f"{position.ticker}: position drift: ours {format_count(ours)}, venue "
                    f"{format_count(position.position)} (tolerance {format_count(tolerance)})",
                    Trigger.DRIFT,
                )

    def halt(self, reason: str, trigger: Trigger = Trigger.MANUAL) -> None:
        """Trips the kill switch: stop quoting, cancel everything, stay halted."""
        self._on_kill_event(self.kill_switch.trip(reason, self.clock.now_ns(), trigger))

    def resume(self) -> None:
        """An operator resumes after a halt (once the switch has confirmed we are flat)."""
        event = self.kill_switch.resume(self.clock.now_ns())
        if event is None:
            self._say("resume ignored: the kill switch is not halted (or not flat yet)")
            return
        self._say(f"kill switch: {event.kind} ({event.state}): {event.reason}")
        self.halted = None
        self.report.halted = None
        self.executor.resume_placing()
        now = self.clock.now_ns()
        quotes = {t: self.pipeline.decide(t, now) for t in self.pipeline.markets}
        self.executor.submit(quotes)  # the halt emptied the executor's targets
        for ticker in quotes:
            self._tape(ticker, "resume", now)

    # ----------------------------------------------------------------- shutdown

    async def _cancel_everything(self) -> None:
        """Cancels through the executor, then reads resting orders back until none of ours."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.executor.flush(), 5.0)
        for _ in range(_SHUTDOWN_ROUNDS):
            try:
                resting = [o for o in await self.rest.resting_orders() if self._ours(o)]
            except VenueError as e:
                self._say(f"could not read resting orders back: {e}")
                await asyncio.sleep(0.2)
                continue
            if not resting:
                self._say("shutdown: no order of ours rests")
                return
            await self._cancel_venue_orders(resting)
        left = [o for o in await self.rest.resting_orders() if self._ours(o)]
        self.report.left_resting = [o.order_id for o in left]
        for order in left:
            self._say(f"shutdown: STILL RESTING {order.ticker} {order.order_id} {order.side}")

    def _ours(self, order: VenueOrder) -> bool:
        cid = order.client_order_id or ""
        return (
            cid.startswith(self.tracker_prefix + "-")
            or self.tracker.get(order.order_id) is not None
        )

    async def _cancel_venue_orders(self, orders: Sequence[VenueOrder]) -> list[str]:
        ids = [o.order_id for o in orders]
        left: list[str] = []
        for start in range(0, len(ids), 20):
            chunk = ids[start : start + 20]
            try:
                items = await self.rest.batch_cancel(chunk)
            except VenueError as e:
                self._say(f"batch cancel failed: {e}")
                left += chunk
                continue
            left += [oid for oid, item in zip(chunk, items, strict=False) if item.error]
        for order_id in ids:
            tracked = self.tracker.get(order_id)
            if tracked is not None and order_id not in left:
                with contextlib.suppress(KmmError):
                    self.tracker.reconcile(order_id, OrderState.CANCELED, self.clock.now_ns())
        return left

    async def _shutdown(self) -> None:
        if self._group_id is not None and self._rest is not None:
            with contextlib.suppress(VenueError):
                await self._rest.delete_order_group(self._group_id)
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._exec is not None:
            self.report.orders_sent = self._exec.counters.sent

    def _spawn_background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ----------------------------------------------------------------- output

    def _say(self, line: str) -> None:
        log.info(line)
        if self.out is not None:
            print(line, file=self.out, flush=True)


async def select_markets(rest: KalshiRest, chosen: MarketsConfig) -> list[MarketInfo]:
    """The open markets the ``markets`` section names: tickers, series, events, or all.

    Raises:
        ConfigError: naming the tickers the venue does not list (or lists as not open), when
            more tickers are named than ``max_markets``, or when nothing open matches.
    """
    found: list[MarketInfo] = []
    if chosen.tickers:
        if len(chosen.tickers) > chosen.max_markets:
            raise ConfigError(
                [
                    f"markets: {len(chosen.tickers)} tickers named but markets.max_markets is "
                    f"{chosen.max_markets}"
                ]
            )
        listed = await rest.markets(tickers=chosen.tickers, status=None)
        _check_tickers(chosen.tickers, listed)
        found += listed
    for series in chosen.series:
        found += await rest.markets(series_ticker=series)
    for event in chosen.events:
        found += await rest.markets(event_ticker=event)
    if not (chosen.tickers or chosen.series or chosen.events):
        found = await rest.markets()
    unique = {m.ticker: m for m in found if m.status in _OPEN}
    if not unique:
        raise ConfigError([f"markets: no open market {_asked(chosen)} on the venue"])
    return list(unique.values())[: chosen.max_markets]


_OPEN: Final = frozenset({"active", "open"})
_BANNER_TICKERS: Final = 5
MARKETS_FILE: Final = "markets.txt"
"""The run directory's list of the run's markets, one ticker a line."""


def _check_tickers(tickers: Sequence[str], listed: Sequence[MarketInfo]) -> None:
    status = {m.ticker: m.status for m in listed}
    unknown = [t for t in tickers if t not in status]
    closed = [f"{t} ({status[t]})" for t in tickers if t in status and status[t] not in _OPEN]
    problems = []
    if unknown:
        problems.append(
            "markets: unknown tickers (the venue lists no such market): " + ", ".join(unknown)
        )
    if closed:
        problems.append("markets: tickers not open for trading: " + ", ".join(closed))
    if problems:
        raise ConfigError(problems)


def _asked(chosen: MarketsConfig) -> str:
    asked = [
        f"{what} {', '.join(names)}"
        for what, names in (("series", chosen.series), ("events", chosen.events))
        if names
    ]
    return "in " + " or ".join(asked) if asked else "at all"


def _write_markets(recorder: Recorder | None, tickers: Sequence[str]) -> str | None:
    """Writes the run's tickers to ``markets.txt`` in its run directory; returns its path."""
    if recorder is None:
        return None
    path = recorder.run_dir / MARKETS_FILE
    path.write_text("".join(f"{t}\n" for t in tickers), encoding="utf-8")
    return str(path)


def _markets_text(tickers: Sequence[str], listed_in: str | None) -> str:
    """``(1000): A, B, C, D, E and 995 more; list in runs/…/markets.txt`` for the banner."""
    shown = ", ".join(tickers[:_BANNER_TICKERS])
    more = len(tickers) - _BANNER_TICKERS
    text = f"({len(tickers)}): {shown}" + (f" and {more} more" if more > 0 else "")
    return text + (f"; list in {listed_in}" if listed_in else "")


def _utc_day(now_ns: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(now_ns // 1_000_000_000))


def _two_sided(quote: Quote) -> bool:
    return quote.bid_price is not None or quote.ask_price is not None


def _quote_text(quote: Quote | None) -> str:
    if quote is None:
        return "-"
    bid = format_price(quote.bid_price) if quote.bid_price is not None else "----"
    ask = format_price(quote.ask_price) if quote.ask_price is not None else "----"
    return f"{bid} / {ask}"


def _mask(key_id: str) -> str:
    return key_id[:4] + "…" + key_id[-4:] if len(key_id) > 8 else "****"


def _intent_of(order: VenueOrder) -> OrderIntent:
    return OrderIntent(order.ticker, order.side, order.price, order.remaining + order.filled)


def _entry_price(position: VenuePosition, qty: Qty) -> Price:
    """The average YES entry price of a venue position's ``qty`` contracts (long or short)."""
    if not position.position or not position.market_exposure:
        return ONE_DOLLAR // 2
    per_contract = abs(position.market_exposure * QTY_SCALE // position.position) // 100
    price = per_contract if qty > 0 else ONE_DOLLAR - per_contract
    return min(max(price, 1), ONE_DOLLAR - 1)
