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
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Final, TextIO, TypeVar

import aiohttp

from kmm.app import build_pipeline, diff_params
from kmm.book.grid import PriceGrid
from kmm.clock import Clock, LiveClock
from kmm.config import KmmConfig, MarketsConfig
from kmm.core.markets import GridView
from kmm.errors import ConfigError, KmmError, VenueError, WireError
from kmm.execution.executor import ExecEvent, ExecSettings, Executor, WriteRequest
from kmm.execution.inventory import Portfolio
from kmm.execution.marks import Mark, mark_position
from kmm.execution.orders import ClientOrderIds, OrderState, OrderTracker
from kmm.execution.token_bucket import TokenBucket, WriteScheduler
from kmm.fees import maker_fee_rate, parse_multiplier
from kmm.kalshi.auth import Signer
from kmm.kalshi.constants import CANCEL_COST, DEFAULT_COST
from kmm.kalshi.lane import OrderLane
from kmm.kalshi.rest import (
    CLOSED_CODES,
    PAUSE_CODES,
    AccountLimits,
    KalshiRest,
    MarketInfo,
    VenueOrder,
    VenuePosition,
)
from kmm.kalshi.wire import (
    Event,
    MarketLifecycle,
    MarketPosition,
    Subscribed,
    Trade,
    UserOrder,
)
from kmm.kalshi.ws import KalshiWs
from kmm.pipeline import MarketSpec, Pipeline, QuoteMailbox, empty_quote
from kmm.record import Recorder, account_id, last_fill_ns, read_day
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
_RESTING_STATES: Final = frozenset(
    {OrderState.RESTING, OrderState.PENDING_AMEND, OrderState.PENDING_CANCEL}
)
"""States of an order the venue confirmed resting (and has not confirmed gone)."""
_SHUTDOWN_ROUNDS: Final = 5
_START_CANCEL_ROUNDS: Final = 3
_SHUTDOWN_READ_S: Final = 10.0
"""How long shutdown waits for the fills read back after the final cancels."""
_CLOSED_EVENTS: Final = frozenset({"determined", "settled", "closed"})
_PAID_WRITE_POLL_S: Final = 0.01
"""How often a write outside the executor looks again while tokens are held in flight."""
T = TypeVar("T")


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
        self.grids = GridView(self.pipeline.markets)
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
        self._write_bucket: TokenBucket | None = None
        self._ws: KalshiWs | None = None
        self._rest: KalshiRest | None = None
        self._started_ns = start_ns
        self._sent_at_last_summary = 0
        self._background: set[asyncio.Future[None]] = set()
        self._group_id: str | None = None
        self._settled: set[str] = set()
        self._closed: set[str] = set()
        self._last_trade: dict[str, Price] = {}
        self._reference: dict[str, Price] = {}
        self._status_checked_ns = 0
        self._fills_since_s: int | None = None
        self._fill_channel_subscribed = False

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
                subaccount=self.config.venue.subaccount,
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
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_SHUTDOWN_READ_S):
                    await self._backfill_fills("shutdown")  # what filled until the cancels
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
        # Built before the first write: the start-up cancels and the order group pay from it
        self._write_bucket = TokenBucket(
            limits.write_capacity, limits.write_refill_per_s, self.clock.now_ns()
        )
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
        left = await self._cancel_until_gone(resting)
        if left:
            raise KmmError(
                f"could not cancel {len(left)} resting orders at start: {', '.join(left)}"
            )

    async def _cancel_until_gone(self, orders: Sequence[VenueOrder]) -> list[str]:
        """Cancels ``orders`` and reads back which still rest, a few rounds: a cancel answered
        by a timeout or a 5xx may well have been applied, so only the venue's list says.

        Returns:
            The ids still resting (or not confirmed gone) after the last round.
        """
        pending = list(orders)
        for _ in range(_START_CANCEL_ROUNDS):
            await self._cancel_venue_orders(pending)
            try:
                now_resting = {o.order_id for o in await self.rest.resting_orders()}
            except VenueError as e:
                self._say(f"could not read resting orders back: {e}")
                continue
            pending = [o for o in pending if o.order_id in now_resting]
            if not pending:
                return []
        return [o.order_id for o in pending]

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
        self._fills_since_s = self._ledger_fills_since_s()
        await self._read_back_fills("start")
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

    @property
    def account(self) -> str:
        """The ledger's name for the account this engine trades (env, key digest, subaccount)."""
        venue = self.config.venue
        return account_id(venue.env, self.signer.key_id, venue.subaccount or 0)

    def _ledger_fills_since_s(self) -> int | None:
        """Fills are read back from the ledger's newest fill of this account on (a second
        early: ``min_ts`` is in whole seconds); None, the whole history, with no ledger."""
        if self.recorder is None:
            return None
        newest = last_fill_ns(self.config.record.ledger_path, self.account)
        return None if newest is None else newest // 1_000_000_000 - 1

    async def _read_back_fills(self, source: str) -> int:
        """Reads the account's fills since the newest one known and books the missing ones.

        Every fill goes through :meth:`_book_fill`, so one the stream or an earlier run
        already reported is recognised by its trade id and recorded nowhere twice.

        Returns:
            How many fills were new.

        Raises:
            VenueError: if the venue cannot be read.
        """
        new = 0
        for fill in await self.rest.fills(min_ts_s=self._fills_since_s):
            if self._book_fill(fill, source):
                new += 1
        if new:
            self._say(f"{source}: {new} fills read back from the venue and recorded")
        return new

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
        group_id = await self._paid_write(DEFAULT_COST, lambda: self.rest.create_order_group(limit))
        self._say(
            f"  order group {group_id}: venue cancels all if {format_count(limit)} "
            "contracts match within 15 s"
        )
        self._group_id = group_id
        return group_id

    def _build_executor(self, limits: AccountLimits, group_id: str | None = None) -> None:
        execution = self.config.execution
        bucket = self._write_bucket or TokenBucket(
            limits.write_capacity, limits.write_refill_per_s, self.clock.now_ns()
        )
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
        """Handles one websocket frame inline (the hot path, then the account events).

        A frame the pipeline refuses (malformed or out of range) is skipped: the pipeline
        counts it by kind (``pipeline.stats.rejected``), the first of each kind is logged
        as a warning, and whatever the refusal pulled or queued for a resnapshot is acted on.
        """
        recorder = self.recorder
        if recorder is not None and recorder.capturing:
            recorder.capture(recv_ns, frame)
        try:
            event = self.pipeline.on_frame(frame, recv_ns)
        except WireError as e:
            if self.pipeline.stats.rejected[e.kind] <= 1:
                log.warning(
                    "venue frame refused and skipped (%s; later ones only counted): %s", e.kind, e
                )
            event = None
        if self.pipeline.needs_resync:
            self.ws.resync(self.pipeline.take_resync())
        if event is None:
            if self._drain_scheduled and not self.ws.book_frames_ahead:
                # The read holds no later book change: act now, before its other frames
                self._drain_mailbox()
            return None
        handler = self._handlers.get(type(event))
        if handler is not None:
            try:
                handler(self, event)
            except WireError as e:  # it contradicts what we track (an order's exchange id)
                rejected = self.pipeline.stats.rejected
                rejected[e.kind] += 1
                if rejected[e.kind] == 1:
                    log.warning("venue event refused (%s; later ones only counted): %s", e.kind, e)
                return None
        return event

    def _on_fill(self, fill: Fill) -> None:
        """A fill from the websocket stream."""
        now = self.clock.now_ns()
        self._book_fill(fill, "stream")
        if fill.ticker in self.pipeline.markets:
            self.pipeline.decide(fill.ticker, now)
            if self._exec is not None:
                self._exec.touch(fill.ticker)

    def _book_fill(self, fill: Fill, source: str) -> bool:
        """Books one fill of the account, from wherever it was learnt, once by trade id:
        order tracker, portfolio, the run's fills and the ledger. True if it was new."""
        now = self.clock.now_ns()
        try:
            self.tracker.on_fill(fill, now)
        except WireError as e:  # it contradicts the order we track: the fill still counts
            log.warning("%s: fill %s booked; its order is left to reconciliation: %s",
                        fill.ticker, fill.trade_id, e)  # fmt: skip
        if not self.portfolio.on_fill(fill):
            return False
        self.fills.append(fill)
        self.report.fills += 1
        fill_s = fill.ts_ms // 1000 - 1
        if self._fills_since_s is None or fill_s > self._fills_since_s:
            self._fills_since_s = fill_s
        self._record_fill(fill, now, source)
        self.marks.setdefault(fill.ticker, fill.price)
        log.info(
            "%s: fill %s %s @ %s fee $%s (%s, %s), position %s",
            fill.ticker,
            fill.side,
            format_count(fill.qty),
            format_price(fill.price),
            format_money(fill.fee),
            "taker" if fill.is_taker else "maker",
            source,
            format_count(self.portfolio.net_qty(fill.ticker)),
        )
        if source == "stream" and self.out is not None:
            print(
                f"{fill.ticker}: fill {fill.side} {format_count(fill.qty)} @ "
                f"{format_price(fill.price)} fee ${format_money(fill.fee)} "
                f"({'taker' if fill.is_taker else 'maker'}), position "
                f"{format_count(self.portfolio.net_qty(fill.ticker))}",
                file=self.out,
                flush=True,
            )
        return True

    def _record_fill(self, fill: Fill, now: int, source: str) -> None:
        recorder = self.recorder
        if recorder is None:
            return
        position = self.portfolio.position(fill.ticker)
        recorder.fill(fill, position.qty, source)
        recorder.position(now, fill.ticker, position.qty, position.realized, position.fees_paid)
        self._tape(fill.ticker, "fill", now)

    def _on_trade(self, trade: Trade) -> None:
        self._last_trade[trade.ticker] = trade.yes_price

    def _on_subscribed(self, event: Subscribed) -> None:
        """The fill channel is live (at start or again after a reconnect): read back the
        fills that happened before it was, so none falls between the REST read and the stream."""
        if event.channel != "fill":
            return
        source = "reconnect" if self._fill_channel_subscribed else "start"
        self._fill_channel_subscribed = True
        self._spawn_background(self._backfill_fills(source))

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
        ticker = event.ticker
        if ticker not in self.pipeline.markets:
            return
        kind = event.event_type
        if kind == "settled" or (kind == "determined" and event.result):
            self._settle(event)
        if kind in _CLOSED_EVENTS:
            self._closed.add(ticker)
            self._block(ticker, f"market {kind} by the venue")
        elif event.is_deactivated or kind == "deactivated":
            self._block(ticker, "market deactivated (paused) by the venue")
        elif kind == "activated":
            self._reactivate(ticker)
        if kind == "price_level_structure_updated" and event.price_ranges is not None:
            # The pipeline took the bands (it refuses bad ones before we get here); the
            # planner reads the grid through the same market state, so both snap to it
            grid = self.pipeline.markets[ticker].spec.grid
            self._say(f"{ticker}: price grid now {event.price_level_structure or grid}")

    def _block(self, ticker: str, reason: str) -> None:
        """The venue stopped the market: pull its quotes, saying why, until it says otherwise."""
        if self.risk.blocked.get(ticker) != reason:
            self._say(f"{ticker}: {reason}: quotes pulled")
        self.risk.blocked[ticker] = reason
        self.pipeline.pull(ticker)

    def _reactivate(self, ticker: str) -> None:
        """Trading resumed in a market: quote it again once a fresh snapshot is in."""
        if ticker in self._closed or self.risk.blocked.pop(ticker, None) is None:
            return  # a closed market does not reopen; an open one needs nothing
        self._say(f"{ticker}: activated again: quoting after a fresh snapshot")
        sid = self.pipeline.markets[ticker].sid
        if sid is not None and self._ws is not None:
            self._ws.resync([sid])

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
        Subscribed: _on_subscribed,  # type: ignore[dict-item]
        Trade: _on_trade,  # type: ignore[dict-item]
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
        """One tape row for ``ticker``: its book, our resting orders, the model's quote, the
        position, its mark and P&L now."""
        recorder = self.recorder
        market = self.pipeline.markets.get(ticker)
        if recorder is None or market is None:
            return
        book, quote = market.book, market.quote
        bid, ask = book.best_bid, book.best_ask
        mid_x2 = bid + ask if bid is not None and ask is not None else None
        position = self.portfolio.positions().get(ticker)
        qty = position.qty if position is not None else 0
        mark = self._mark(ticker)
        unrealized = position.unrealized(mark.price) if position is not None and mark else 0
        my_bid, my_bid_qty, my_ask, my_ask_qty = self._resting_top(ticker)
        recorder.tape(
            now,
            ticker,
            event,
            mid_x2,
            bid,
            ask,
            my_bid,
            my_bid_qty,
            my_ask,
            my_ask_qty,
            qty,
            unrealized,
            position.realized if position is not None else 0,
            position.fees_paid if position is not None else 0,
            now - market.last_book_ns if latency and market.last_book_ns else None,
            quote_bid=quote.bid_price if quote else None,
            quote_bid_qty=quote.bid_qty if quote else 0,
            quote_ask=quote.ask_price if quote else None,
            quote_ask_qty=quote.ask_qty if quote else 0,
            mark=mark.price if mark else None,
            mark_source=mark.source if mark else "",
        )

    def _resting_top(self, ticker: str) -> tuple[Price | None, Qty, Price | None, Qty]:
        """Our best resting bid and ask in a market (price, remaining), from the tracker:
        orders the venue confirmed, including those with an amend or cancel in flight."""
        bid: tuple[Price, Qty] | None = None
        ask: tuple[Price, Qty] | None = None
        for order in self.tracker.live(ticker):
            if order.state not in _RESTING_STATES:
                continue
            if order.side is BookSide.BID:
                if bid is None or order.price > bid[0]:
                    bid = (order.price, order.remaining)
            elif ask is None or order.price < ask[0]:
                ask = (order.price, order.remaining)
        return (
            bid[0] if bid else None,
            bid[1] if bid else 0,
            ask[0] if ask else None,
            ask[1] if ask else 0,
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
        self.pipeline.pull_all()  # the fills missed meanwhile are read once "fill" is live

    async def _backfill_fills(self, source: str) -> None:
        """Fills the stream may have missed, booked once by trade id."""
        try:
            new = await self._read_back_fills(source)
        except VenueError as e:
            self._say(f"{source}: could not read fills back ({e}); the next read-back will")
            return
        for ticker in {f.ticker for f in self.fills[len(self.fills) - new :]} if new else ():
            if ticker in self.pipeline.markets:
                self.pipeline.decide(ticker, self.clock.now_ns())
                self.executor.touch(ticker)

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
        if event.what == "rejected" and event.code in CLOSED_CODES:
            self._closed.add(event.ticker)
            self._block(event.ticker, f"market closed (the venue answers {event.code})")
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
        """Marks for P&L: each market's conservative mark (:mod:`kmm.execution.marks`), or,
        for a position with none yet, its entry price."""
        marks = dict(self.marks)
        for ticker, position in self.portfolio.positions().items():
            if ticker not in marks and position.qty:
                marks[ticker] = position.open_cost // abs(position.qty)
        return marks

    def _mark(self, ticker: str) -> Mark | None:
        """The mark of our position in ``ticker`` now, from its book, last trade and history."""
        market = self.pipeline.markets.get(ticker)
        book = market.book if market is not None else None
        return mark_position(
            self.portfolio.net_qty(ticker),
            book.best_bid if book is not None else None,
            book.best_ask if book is not None else None,
            self._last_trade.get(ticker),
            self._reference.get(ticker),
            self.config.risk.one_sided_mark_haircut,
        )

    def _update_marks(self) -> None:
        for ticker in self.pipeline.markets:
            mark = self._mark(ticker)
            if mark is None:
                continue
            self.marks[ticker] = mark.price
            if not mark.source.endswith("-haircut"):
                self._reference[ticker] = mark.price  # a haircut never compounds

    def summary_line(self) -> str:
        """One line: markets, quotes, inventory, P&L, orders/s, tokens left."""
        elapsed = (self.clock.now_ns() - self._started_ns) / 1e9
        markets = self.pipeline.markets
        quoting = [t for t in markets if any(self._resting_top(t)[::2])]
        inventory = sum(abs(self.portfolio.net_qty(t)) for t in markets)
        realized = self.portfolio.realized()
        unrealized = self.portfolio.unrealized(self._pnl_marks())
        sent = self.executor.counters.sent
        rate = sent - self._sent_at_last_summary
        self._sent_at_last_summary = sent
        tokens = self.executor.scheduler.bucket.available(self.clock.now_ns())
        first = next(iter(quoting), None)
        sample = f" | {first} {_resting_text(self._resting_top(first))}" if first else ""
        state = "HALTED" if self.halted is not None else f"quoting {len(quoting)}/{len(markets)}"
        return (
            f"t={elapsed:5.0f}s {state} | inv "
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
                await self._backfill_fills("reconcile")
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
        """Cancels through the executor, then reads resting orders back until none of ours.

        Never raises for the venue: if the last read-back is refused too (a 429 or 5xx storm),
        every order that may still rest, by the last venue read and our own tracking, is listed
        in :attr:`EngineReport.left_resting` and the run exits 3.
        """
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.executor.flush(), 5.0)
        seen: dict[str, VenueOrder] = {}
        refused: str | None = None
        for _ in range(_SHUTDOWN_ROUNDS + 1):
            try:
                resting = [o for o in await self.rest.resting_orders() if self._ours(o)]
            except VenueError as e:
                refused = str(e)
                self._say(f"could not read resting orders back: {e}")
                await asyncio.sleep(0.2)
                continue
            refused = None
            seen = {o.order_id: o for o in resting}
            if not resting:
                self.report.left_resting = []
                self._say("shutdown: no order of ours rests")
                return
            await self._cancel_venue_orders(resting)
        self._report_left(seen, refused)

    def _report_left(self, seen: dict[str, VenueOrder], refused: str | None) -> None:
        """Lists every order that may still rest: the venue's last word, plus ours not settled."""
        left = dict(seen) if refused is None else {**self._tracked_live(), **seen}
        self.report.left_resting = sorted(left)
        if refused is not None:
            self._say(
                f"shutdown: the last read-back was refused too ({refused}): "
                f"{len(left)} orders may still rest, from the last read and our own tracking"
            )
        for order_id, order in sorted(left.items()):
            self._say(
                f"shutdown: MAY STILL REST {order.ticker} {order_id} {order.side} "
                f"{format_count(order.remaining)} @ {format_price(order.price)}"
            )

    def _tracked_live(self) -> dict[str, VenueOrder]:
        """Our live orders as the venue would list them (by client id if none known yet)."""
        return {
            o.order_id or f"(client order id {o.client_order_id})": VenueOrder(
                o.order_id or "", o.client_order_id, o.ticker, o.side, o.price, o.filled,
                o.remaining, "resting",
            )
            for ticker in self.pipeline.markets
            for o in self.tracker.live(ticker)
        }  # fmt: skip

    def _ours(self, order: VenueOrder) -> bool:
        cid = order.client_order_id or ""
        return (
            cid.startswith(self.tracker_prefix + "-")
            or self.tracker.get(order.order_id) is not None
        )

    async def _cancel_venue_orders(self, orders: Sequence[VenueOrder]) -> list[str]:
        ids = [o.order_id for o in orders]
        left: list[str] = []
        per_batch = 20
        if self._write_bucket is not None:
            per_batch = max(1, min(per_batch, self._write_bucket.capacity // CANCEL_COST))
        for start in range(0, len(ids), per_batch):
            chunk = ids[start : start + per_batch]
            try:
                items = await self._paid_write(
                    CANCEL_COST * len(chunk), functools.partial(self.rest.batch_cancel, chunk)
                )
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
                rest, group_id = self._rest, self._group_id
                await self._paid_write(DEFAULT_COST, lambda: rest.delete_order_group(group_id))
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._exec is not None:
            self.report.orders_sent = self._exec.counters.sent

    async def _paid_write(self, cost: int, write: Callable[[], Awaitable[T]]) -> T:
        """A write sent outside the executor, paid from the same Write bucket model: waits
        until ``cost`` tokens are free, holds them while the write is in flight, and books
        them when it ends (the venue must never see writes our bucket does not know of)."""
        bucket = self._write_bucket
        if bucket is None:
            return await write()
        while not bucket.try_take(cost, self.clock.now_ns()):
            wait = bucket.wait_ns(cost, self.clock.now_ns())
            await asyncio.sleep(_PAID_WRITE_POLL_S if wait is None else wait / 1e9)
        try:
            return await write()
        finally:
            bucket.settle(cost, self.clock.now_ns())

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


def _resting_text(top: tuple[Price | None, Qty, Price | None, Qty]) -> str:
    bid, _, ask, _ = top
    bid_text = format_price(bid) if bid is not None else "----"
    ask_text = format_price(ask) if ask is not None else "----"
    return f"{bid_text} / {ask_text}"


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
