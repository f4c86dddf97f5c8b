"""The live engine: the shell that feeds the trading core from the network and acts on it.

Theory of operation
-------------------
Every decision lives in :class:`~kmm.core.trading.TradingCore` (sans-I/O). :class:`LiveEngine`
owns the sockets and timers around it: one aiohttp session (REST), one websocket client, the
executor that sends the planner's writes, and four tasks on one event loop:

* **receive** (:class:`~kmm.kalshi.ws.KalshiWs`): every frame goes to
  :meth:`LiveEngine.on_frame` inline, which hands it to the core and performs what the core
  returns (:meth:`LiveEngine.act`): write requests, resnapshot requests, read-backs,
  operations lines. Decided quotes are planned and sent in the same call when the socket read
  holds no later book frame, else at the end of the event-loop turn.
* **execute** (:class:`~kmm.execution.executor.Executor`): sends writes and awaits their
  answers, which go back to the core's planner; it wakes for token refills and deadlines.
* **watch**: once a second, the exchange status (every 5 s), the core's tick (marks, kill
  switch, stale feed) and the summary line; every ``reconcile_interval_s``, the venue's
  positions and resting orders are compared with ours.
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
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, TextIO, TypeVar

import aiohttp

from kmm.app import build_core, exec_settings
from kmm.clock import Clock, LiveClock
from kmm.config import KmmConfig, MarketsConfig
from kmm.core.actions import Action, GoFlat, Log, Presign, Print, ReadFills, Resync, Say
from kmm.core.markets import market_spec
from kmm.core.trading import CoreReport
from kmm.errors import ConfigError, KmmError, VenueError
from kmm.execution.executor import ExecEvent, Executor, WriteRequest
from kmm.execution.orders import OrderState
from kmm.execution.token_bucket import Backoff, TokenBucket, WriteScheduler
from kmm.kalshi.auth import Signer
from kmm.kalshi.constants import CANCEL_COST, DEFAULT_COST
from kmm.kalshi.lane import OrderLane
from kmm.kalshi.rest import (
    PAUSE_CODES,
    AccountLimits,
    KalshiRest,
    MarketInfo,
    SeriesInfo,
    VenueOrder,
    VenuePosition,
)
from kmm.kalshi.wire import (
    Event,
)
from kmm.kalshi.ws import KalshiWs, WsStats
from kmm.ops.control import TOKEN_FILE as CONTROL_TOKEN_FILE
from kmm.ops.shell import EngineOps
from kmm.record import Recorder, account_id, last_fill_ns, read_day, write_markets_json
from kmm.risk import (
    Trigger,
)
from kmm.select.chooser import MARKET_CHANNELS, MarketChooser
from kmm.strategy.exit import ExitStyle
from kmm.types import (
    ONE_DOLLAR,
    QTY_SCALE,
    Money,
    OrderIntent,
    Price,
    Qty,
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

    core: CoreReport = field(default_factory=CoreReport)
    orders_sent: int = 0
    lane_writes: int = 0
    lane_fallbacks: int = 0
    order_events: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Order events (sent, acked, rejected, ...) by kind and venue code, for the metrics."""
    metrics_url: str = ""
    control_url: str = ""
    left_resting: list[str] = field(default_factory=list)
    not_flat: dict[str, Qty] = field(default_factory=dict)
    """Markets an exit (``kmm flatten``, ``exit.on_stop``) left with a position: the
    position, or, for a market that could not be traded, its position at start."""

    @property
    def markets(self) -> list[str]:
        """The run's markets."""
        return self.core.markets

    @property
    def fills(self) -> int:
        """Fills booked."""
        return self.core.fills

    @property
    def halted(self) -> str | None:
        """Why the kill switch halted the run, if it did."""
        return self.core.halted


async def read_series(rest: KalshiRest, markets: Sequence[MarketInfo]) -> dict[str, SeriesInfo]:
    """Each market's series (fees, category), by event ticker: read in bulk (``GET /events``,
    ``GET /series``: a few requests whatever the number of markets), one event at a time
    only when the bulk read does not list it."""
    events = await rest.event_series_map() if len(markets) > 1 else {}
    series_of = await rest.all_series() if len(markets) > 1 else {}
    by_event: dict[str, SeriesInfo] = {}
    for market in markets:
        ticker = events.get(market.event_ticker)
        if ticker is None:
            ticker = await rest.event_series(market.event_ticker)
        if ticker not in series_of:
            series_of[ticker] = await rest.series(ticker)
        by_event[market.event_ticker] = series_of[ticker]
    return by_event


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
        flatten: ``kmm flatten``: trade only the markets where the account holds a position
            (those of ``markets.tickers``, if named), never quote, and work each position out
            in this style; the run ends once nothing is held or rests, or at ``duration_s``.
        config_path: The config file a reload (SIGHUP, the control API) reads again.
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
        flatten: ExitStyle | None = None,
        config_path: Path | None = None,
    ) -> None:
        self.config = config
        self.flatten = flatten
        self._exit_abort = asyncio.Event()
        self._flat = asyncio.Event()
        """Set once every exiting market is flat with nothing of ours resting."""
        self._exiting = False
        self.recorder = recorder
        self.rest_url = rest_url
        self.ws_url = ws_url
        self.signer = signer
        self.clock = clock or LiveClock()
        self.out = out
        self.duration_s = duration_s
        start_ns = self.clock.now_ns()
        self.core = build_core(config, start_ns=start_ns, records=recorder)
        self.report = EngineReport(self.core.report)
        self.stop_event = asyncio.Event()
        self.ready = asyncio.Event()
        self._drain_scheduled = False
        self._exec: Executor | None = None
        self._write_bucket: TokenBucket | None = None
        self._ws: KalshiWs | None = None
        self._rest: KalshiRest | None = None
        self._sent_at_last_summary = 0
        self._background: set[asyncio.Future[None]] = set()
        self._group_id: str | None = None
        self._status_checked_ns = 0
        self._flat_requested = False
        self.chooser = MarketChooser(config, self.core, self.clock, self._say, recorder)
        """Discovery's scorings (``markets.mode: discovery`` or ``volatility``)."""
        self.ops = EngineOps(self, config_path)
        """Metrics, the control API, alerts and reloads: the operator's side of the run."""

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
    def write_bucket(self) -> TokenBucket | None:
        """The Write token bucket (after start)."""
        return self._write_bucket

    @property
    def ws_stats(self) -> WsStats | None:
        """The websocket's counters (after start)."""
        return self._ws.stats if self._ws is not None else None

    @property
    def ws(self) -> KalshiWs:
        """The websocket client (after start)."""
        assert self._ws is not None, "the engine has not started"
        return self._ws

    def stop(self) -> None:
        """Asks the engine to shut down cleanly (signal handlers call this); a second call
        cuts short the exit of ``exit.on_stop`` (or ``kmm flatten``'s)."""
        if self.stop_event.is_set():
            self._exit_abort.set()
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
                if await self._start():
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
        if self.config.record.queue_positions_s:
            tasks.append(asyncio.create_task(self._queue_loop(), name="kmm-queue"))
        if self.config.markets.mode == "discovery" and self.flatten is None:
            rescore = self.chooser.rescore_forever(self.rest, self.ws, self._add_markets, self.act)
            tasks.append(asyncio.create_task(rescore, name="kmm-rescore"))
        if self.signer.reuse_ms:
            presign = self.rest.presign_forever(more=self._amend_paths)
            tasks.append(asyncio.create_task(presign, name="kmm-presign"))
        await self.ws.subscribe(MARKET_CHANNELS, self.report.markets)
        await self.ws.subscribe(_ACCOUNT_CHANNELS)
        self.ready.set()
        if self.flatten is not None:
            self._start_exit(self.report.markets, self.flatten, "flatten")
        stopper = asyncio.create_task(self._until_stopped(), name="kmm-stop")
        try:
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper and not task.cancelled() and task.exception():
                    raise task.exception()  # type: ignore[misc]
            await self._exit_on_stop(tasks)
        finally:
            self.core.stop_placing(self.clock.now_ns())
            self.act()
            await self._cancel_everything()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_SHUTDOWN_READ_S):
                    await self._backfill_fills("shutdown")  # what filled until the cancels
            self.core.tape_end(self.clock.now_ns())
            self._report_not_flat()
            for task in [*tasks, stopper]:
                task.cancel()
            await asyncio.gather(*tasks, stopper, return_exceptions=True)

    async def _until_stopped(self) -> None:
        stop = self.stop_event.wait() if self.flatten is None else self._until_flat()
        if self.duration_s is None:
            await stop
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop, self.duration_s)

    async def _until_flat(self) -> None:
        """Returns once every exiting market is flat with nothing resting, or on a signal."""
        await _first_of(self._flat.wait(), self.stop_event.wait())

    # ----------------------------------------------------------------- exits

    def _start_exit(self, tickers: Sequence[str], style: ExitStyle, reason: str) -> list[str]:
        started = self.core.start_exit(tickers, style, reason, self.clock.now_ns())
        self._exiting = self._exiting or bool(started)
        self.act()
        return started

    async def _exit_on_stop(self, tasks: Sequence[asyncio.Task[None]]) -> None:
        """``exit.on_stop``: before the final cancels, work every position out, for up to
        ``exit.stop_timeout_s`` (a second signal cuts it short)."""
        style = self.config.exit.on_stop
        if self.flatten is not None or style == "none" or self.core.halted is not None:
            return
        core = self.core
        held = [t for t in self.report.markets if core.portfolio.net_qty(t)]
        if not held:
            return
        # every market stops quoting; those without a position are done once cancelled
        self._start_exit(self.report.markets, ExitStyle(style), "stop")
        self._exit_abort.clear()
        timeout = self.config.exit.stop_timeout_s
        self._say(f"exit at stop: working {len(held)} positions out (up to {timeout:g} s)")
        try:
            async with asyncio.timeout(timeout):
                # a task that dies (the feed, the executor) ends the exit: shut down now
                await _first_of(self._flat.wait(), self._exit_abort.wait(), *tasks)
        except TimeoutError:
            left = len(core.exits_left())
            self._say(f"exit at stop: {left} markets not flat after {timeout:g} s")

    def _report_not_flat(self) -> None:
        portfolio = self.core.portfolio
        for ticker in self.core.exiting:
            qty = portfolio.net_qty(ticker)
            if qty:
                self.report.not_flat[ticker] = qty
                self._say(f"exit: {ticker} still holds {format_count(qty)}")
            elif self.flatten is not None:
                self._say(f"exit: {ticker} flat")

    # ----------------------------------------------------------------- start

    async def _start(self) -> bool:
        """Reads the venue and sets everything up; False when ``kmm flatten`` finds nothing
        to work out (then nothing is started)."""
        rest = self.rest
        status = await rest.exchange_status()
        balance = await rest.balance()
        limits = await rest.account_limits()
        # Built before the first write: the start-up cancels and the order group pay from it
        self._write_bucket = TokenBucket(
            limits.write_capacity, limits.write_refill_per_s, self.clock.now_ns()
        )
        markets = await self._select_markets()
        if not markets and self.flatten is not None:
            self._say("flatten: no position to work out")
            return False
        if not markets:
            raise KmmError("no open market matches the markets section of the config")
        await self._add_markets(markets)
        await self._startup_orders()
        await self._startup_fills_and_positions()
        self._restore_day()
        group_id = await self._order_group()
        self._build_executor(limits, group_id)
        self._build_ws()
        if self.flatten is None:
            await self.ops.start()
        self._banner(status.trading_active, balance, limits)
        return True

    async def _select_markets(self) -> list[MarketInfo]:
        if self.flatten is not None:
            return await self._held_markets()
        if self.config.markets.mode != "fixed":
            return await self.chooser.discover(self.rest)
        return await select_markets(self.rest, self.config.markets)

    async def _held_markets(self) -> list[MarketInfo]:
        """``kmm flatten``'s markets: the open ones where the account holds a position
        (of ``markets.tickers``, when it names some). A position in a market that is not open
        cannot be traded: it is named and reported as not flat."""
        named = self.config.markets.tickers
        held = {
            p.ticker: p.position
            for p in await self.rest.positions()
            if p.position and (not named or p.ticker in named)
        }
        for ticker in named:
            if ticker not in held:
                self._say(f"flatten: {ticker}: no position")
        if not held:
            return []
        listed = {m.ticker: m for m in await self.rest.markets(tickers=tuple(held), status=None)}
        markets = []
        for ticker, qty in held.items():
            market = listed.get(ticker)
            if market is not None and market.status in _OPEN:
                markets.append(market)
                continue
            status = market.status if market is not None else "not listed"
            self._say(f"flatten: {ticker}: position {format_count(qty)} but the market is {status}")
            self.report.not_flat[ticker] = qty
        return markets

    async def _add_markets(self, markets: Sequence[MarketInfo]) -> None:
        """Adds ``markets`` to the core with their series' fees and category: read in bulk
        (``GET /events``, ``GET /series``: a few requests whatever the number of markets),
        one market's event at a time only when the bulk read does not list it."""
        by_event = await read_series(self.rest, markets)
        for market in markets:
            spec, mid = market_spec(market, by_event[market.event_ticker])
            budget = self.chooser.budgets.get(market.ticker)
            if budget is not None:
                spec = replace(spec, max_position=budget)
            self.core.add_market(spec, mid)
        if self.recorder is not None and self.recorder.capturing:
            write_markets_json(self.recorder.run_dir, markets, by_event)  # a replay needs it

    async def _startup_orders(self) -> None:
        resting = await self.rest.resting_orders()
        if not resting:
            return
        if self.config.execution.cancel_on_start == "adopt":
            self._say(f"adopting {len(resting)} resting orders")
            for order in resting:
                self.core.adopt(order, self.clock.now_ns())
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

    async def _startup_fills_and_positions(self) -> None:
        self.core.fills_since_s = self._ledger_fills_since_s()
        await self._read_back_fills("start")
        for position in await self.rest.positions():
            self.core.align_position(position)
        self.act()

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

        Every fill goes through the core's ``book_fill``, so one the stream or an earlier run
        already reported is recognised by its trade id and recorded nowhere twice.

        Returns:
            How many fills were new.

        Raises:
            VenueError: if the venue cannot be read.
        """
        fills = await self.rest.fills(min_ts_s=self.core.fills_since_s)
        new = self.core.on_fills_read(fills, source, self.clock.now_ns())
        self.act()
        return new

    def _restore_day(self) -> None:
        """The day's P&L and peak from the ledger: a restart cannot reset the kill switch."""
        ledger = self.config.record.ledger_path
        now = self.clock.now_ns()
        saved = read_day(ledger, self.core.day_key(now)) if self.recorder is not None else None
        if saved is not None:
            self.core.restore_day(*saved, now)
            self.act()

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
        settings = exec_settings(execution, group_id)
        planner = self.core.start_trading(WriteScheduler[WriteRequest](bucket), settings, Backoff())
        self._exec = Executor(
            self.rest,
            self.core.tracker,
            planner.scheduler,
            self.clock,
            self.core.grids,
            settings,
            on_event=self._on_exec_event,
            planner=planner,
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
        if self.report.metrics_url:
            lines.append(f"  metrics: {self.report.metrics_url}")
        if self.report.control_url and self.recorder is not None:
            token = self.recorder.run_dir / CONTROL_TOKEN_FILE
            lines.append(f"  control: {self.report.control_url} (token in {token})")
        for line in lines:
            self._say(line)

    @property
    def tracker_prefix(self) -> str:
        """The run's client order id prefix."""
        return self.core.ids.prefix

    # ----------------------------------------------------------------- the receive path

    def on_frame(self, frame: bytes | str, recv_ns: int) -> Event | None:
        """Handles one websocket frame inline: the core decides, the shell acts.

        Decided quotes are planned and sent at once when the socket read being handled holds
        no later book frame, else once this event-loop turn is over (the newest quote wins).
        """
        recorder = self.recorder
        if recorder is not None and recorder.capturing:
            recorder.capture(recv_ns, frame)
        core = self.core
        core.feed_last_ns = recv_ns
        event = core.on_frame(frame, recv_ns)
        if core.quotes_pending and self._exec is not None:
            if self._ws is None or not self._ws.book_frames_ahead:
                self._drain_mailbox()
            elif not self._drain_scheduled:
                self._drain_scheduled = True
                asyncio.get_running_loop().call_soon(self._drain_mailbox)
        self.act()
        return event

    def _drain_mailbox(self) -> None:
        self._drain_scheduled = False
        now = self.clock.now_ns()
        quotes = self.core.decide_quotes(now)
        if quotes:
            self.act()  # first: the orders go out before the tape is written
            self.core.tape_quotes(quotes, now)

    def act(self) -> None:
        """Performs everything the core decided, in order."""
        core = self.core
        actions = core.take_actions()
        while actions:
            for action in actions:
                self._perform(action)
            actions = core.take_actions()
        if self._exiting and not core.exits_left():
            self._flat.set()
        if self._exec is None:
            return
        if self._exec.planner.has_dirty:
            self._exec.wake()
        if core.quotes_pending and not self._drain_scheduled:  # decided off the feed
            self._drain_scheduled = True
            asyncio.get_running_loop().call_soon(self._drain_mailbox)

    def _perform(self, action: Action) -> None:
        perform = self._performers.get(type(action))
        if perform is not None:
            perform(self, action)
        elif self._exec is not None:  # the planner's writes, read-backs and records
            self._exec.perform([action])  # type: ignore[list-item]

    def _print(self, action: Print) -> None:
        if self.out is not None:
            print(action.line, file=self.out, flush=True)

    def _resync(self, action: Resync) -> None:
        if self._ws is not None:
            self._ws.resync(list(action.sids))

    def _presign(self, action: Presign) -> None:
        self.spawn_background(self.rest.presign([self.rest.amend_path(action.order_id)]))

    def _request_flat(self, action: GoFlat) -> None:
        self._flat_requested = True

    _performers: Final[dict[type, Callable[[LiveEngine, Any], None]]] = {
        Say: lambda self, a: self._say(a.line),
        Log: lambda self, a: log.log(a.level, a.line),
        Print: _print,
        Resync: _resync,
        ReadFills: lambda self, a: self.spawn_background(self._backfill_fills(a.source)),
        Presign: _presign,
        GoFlat: _request_flat,
    }

    def _on_disconnect(self, reason: str) -> None:
        self.core.on_disconnect(reason)
        self.act()

    def _on_resubscribe(self, channel: str, old_sid: int | None) -> None:
        self.core.on_resubscribe(channel)
        self.act()

    def _on_reconnect(self) -> None:
        self.core.on_reconnect()
        self.act()

    async def _backfill_fills(self, source: str) -> None:
        """Fills the stream may have missed, booked once by trade id."""
        try:
            await self._read_back_fills(source)
        except VenueError as e:
            self._say(f"{source}: could not read fills back ({e}); the next read-back will")

    # ----------------------------------------------------------------- execution glue

    def _amend_paths(self) -> list[tuple[str, str]]:
        """The amend path of every live order: a quote move then signs nothing on the loop."""
        return [
            self.rest.amend_path(order.order_id)
            for ticker in self.core.pipeline.markets
            for order in self.core.tracker.live(ticker)
            if order.order_id is not None
        ]

    def _on_exec_event(self, event: ExecEvent) -> None:
        now = self.clock.now_ns()
        self.report.order_events[(event.what, event.code or "")] += 1
        if event.what == "rejected" and event.code in PAUSE_CODES:
            self._status_checked_ns = now
        self.core.on_exec_event(event, now, presign=bool(self.signer.reuse_ms))
        self.act()

    # ----------------------------------------------------------------- watch

    async def _watch(self) -> None:
        interval = 1.0
        while True:
            await asyncio.sleep(interval)
            await self._check_risk(self.clock.now_ns())
            self.ops.on_tick(self.clock.now_ns())
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
        self.core.set_paused(not (status.trading_active and status.exchange_active))
        self.act()

    async def _check_risk(self, now: int) -> None:
        await self._check_exchange(now)
        core = self.core
        if self._ws is not None and self._ws.stats.last_message_ns:
            core.feed_last_ns = max(core.feed_last_ns, self._ws.stats.last_message_ns)
        self._flat_requested = False
        core.on_tick(now, kill_file_exists=self.config.risk.kill_file.exists())
        self.act()
        if self._flat_requested:
            await self._go_flat()

    async def _go_flat(self) -> None:
        """HALTING: cancel everything and confirm with the venue that none of ours rests."""
        await self._cancel_everything()
        if not self.report.left_resting:
            self.core.confirm_flat(self.clock.now_ns())
            self.act()

    def summary_line(self) -> str:
        """One line: markets, quotes, inventory, P&L, orders/s, tokens left."""
        core = self.core
        elapsed = (self.clock.now_ns() - core.started_ns) / 1e9
        markets = self.core.pipeline.markets
        quoting = core.quoting()
        inventory = sum(abs(self.core.portfolio.net_qty(t)) for t in markets)
        realized = self.core.portfolio.realized()
        unrealized = self.core.portfolio.unrealized(core.pnl_marks())
        sent = self.executor.counters.sent
        rate = sent - self._sent_at_last_summary
        self._sent_at_last_summary = sent
        tokens = self.executor.scheduler.bucket.available(self.clock.now_ns())
        first = next(iter(quoting), None)
        sample = f" | {first} {_resting_text(core.resting_top(first))}" if first else ""
        if self.core.halted is not None:
            state = "HALTED"
        elif self._exiting:
            state = f"exiting {len(core.exits_left())}/{len(core.exiting)}"
        else:
            state = f"quoting {len(quoting)}/{len(markets)}"
        desk = core.desk
        if desk is not None:
            state += f" | sessions {len(desk.manager.running)} ({desk.stats.sessions} so far)"
        return (
            f"t={elapsed:5.0f}s {state} | inv "
            f"{format_count(inventory)} | pnl real ${format_money(realized)} unreal "
            f"${format_money(unrealized)} | fills {self.report.fills} | orders/s {rate} | "
            f"live {core.live_orders()} | tokens {tokens}{sample}"
        )

    async def _queue_loop(self) -> None:
        """Logs each resting order's place in its queue (contracts ahead), every
        ``record.queue_positions_s``."""
        while True:
            await asyncio.sleep(self.config.record.queue_positions_s)
            try:
                ahead = await self.rest.queue_positions(market_tickers=self.report.markets)
            except VenueError as e:
                log.info("queue: could not read queue positions: %s", e)
                continue
            for line in self.core.queue_lines(ahead):
                log.info(line)

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
        strays, missing = self.core.reconcile_orders(await self.rest.resting_orders())
        if strays:
            self._say(f"reconcile: cancelling {len(strays)} resting orders we do not track")
            await self._cancel_venue_orders(strays)
        for cid in missing:
            self._say(f"reconcile: {cid} not resting at the venue: reading it")
            self.spawn_background(self.executor.settle_missing(cid))

    async def _reconcile_positions(self) -> None:
        positions = await self.rest.positions()
        if self.core.position_drift(positions):
            await self._backfill_fills("reconcile")
            self.core.halt_on_drift(positions, self.clock.now_ns())
            self.act()

    def halt(self, reason: str, trigger: Trigger = Trigger.MANUAL) -> None:
        """Trips the kill switch: stop quoting, cancel everything, stay halted."""
        self.core.halt(reason, self.clock.now_ns(), trigger)
        self.act()

    def resume(self) -> None:
        """An operator resumes after a halt (once the switch has confirmed we are flat)."""
        self.core.resume(self.clock.now_ns())
        self.act()

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
        left = dict(seen) if refused is None else {**self.core.tracked_live(), **seen}
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

    def _ours(self, order: VenueOrder) -> bool:
        return self.core.is_ours(order)

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
            tracked = self.core.tracker.get(order_id)
            if tracked is not None and order_id not in left:
                with contextlib.suppress(KmmError):
                    self.core.tracker.reconcile(order_id, OrderState.CANCELED, self.clock.now_ns())
        return left

    async def _shutdown(self) -> None:
        await self.ops.stop()
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

    def spawn_background(self, coro: Coroutine[Any, Any, None]) -> None:
        """Runs ``coro`` beside the trading loop, referenced until it ends."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ----------------------------------------------------------------- output

    def _say(self, line: str) -> None:
        log.info(line)
        if self.out is not None:
            print(line, file=self.out, flush=True)


async def _first_of(*waits: Awaitable[object]) -> None:
    """Returns when the first of ``waits`` is done; the coroutines among them that are
    still pending are cancelled (tasks are left running)."""
    futures = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait, future in zip(waits, futures, strict=True):
            if not isinstance(wait, asyncio.Future):
                future.cancel()


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
