"""The backtest: the live trading core driven by simulated time against a simulated venue.

Theory of operation
-------------------
:class:`Backtest` is a discrete-event simulation around one :class:`~kmm.core.trading.TradingCore`,
the same object ``kmm run`` drives. Nothing awaits and nothing reads a clock: a heap of
timed events is popped in order, and every one is a call into the core or the venue:

* ``venue``: the venue's background traders act (at the time they are due); the frames the
  venue sends are delivered ``feed`` latency later;
* ``deliver``: frames reach the core (:meth:`~TradingCore.on_frame`); decided quotes are
  planned at once (:meth:`~TradingCore.decide_quotes`), as the live shell does;
* ``arrive``: a write (create, amend, batch cancel) or a read-back reaches the venue half an
  order round trip after it was sent; the venue first catches up to that time, so the order
  meets the book as it is then;
* ``answer``: the venue's answer reaches the core the other half later; the write's tokens
  are settled then, as live;
* ``tick``: the core's once-a-second tick (marks, kill switch), and ``wake``: the planner's
  own next wake-up (token refill, deadlines, backoff).

Latencies come from :mod:`kmm.backtest.latency` models (constant by default; lognormal or
drawn from a live run's recorded delays, seeded),
so a quote acts on a book that has moved. Records go to the same recorder as a live run's, so
``kmm report`` reads a backtest's run directory unchanged.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Protocol

import orjson

from kmm.app import build_core, exec_settings
from kmm.backtest.choice import discovered
from kmm.backtest.latency import ConstantLatency, Latencies
from kmm.backtest.sim_venue import GeneratedVenue
from kmm.config import KmmConfig
from kmm.core.actions import Action, GoFlat, Log, Presign, Print, ReadFills, Resync, Say
from kmm.core.markets import market_spec
from kmm.core.planner import (
    ExecEvent,
    ReadBack,
    StartAmend,
    StartCancels,
    StartCreate,
    WriteRequest,
)
from kmm.core.trading import RecordSink, TradingCore
from kmm.errors import VenueError
from kmm.execution.token_bucket import Backoff, RateBuckets, WriteScheduler
from kmm.kalshi.rest import (
    BatchItem,
    CreateAck,
    MarketInfo,
    OrderRequest,
    SeriesInfo,
    VenueOrder,
    VenuePosition,
)
from kmm.sim.server import SimOptions
from kmm.types import BookSide, Fill, Money, Price, Qty, format_money

__all__ = ["Backtest", "BacktestOptions", "BacktestResult", "BacktestVenue", "default_latencies"]

log = logging.getLogger("kmm.backtest")

NS_PER_S: Final = 1_000_000_000
DEFAULT_START_NS: Final = 1_800_000_000 * NS_PER_S
"""A fixed simulated start (2027-01-15T08:00:00Z): the same seed gives the same run."""
_MARKET_CHANNELS: Final = ("orderbook_delta", "ticker", "trade", "market_lifecycle_v2")
_ACCOUNT_CHANNELS: Final = ("fill", "user_orders", "market_positions")
_TIMERS: Final = frozenset({"tick", "progress"})


def default_latencies() -> Latencies:
    """2 ms feed, 5 ms each way for orders: loopback to a nearby venue."""
    return Latencies(feed=ConstantLatency(2_000_000), order=ConstantLatency(5_000_000))


@dataclass(frozen=True, slots=True)
class BacktestOptions:
    """What to simulate.

    Attributes:
        scenario: The local exchange's scenario (``calm``, ``jump``, ...).
        seed: Seed of the universe, the traders and every draw of the backtest.
        markets: How many markets the venue lists (all are traded unless ``tickers``).
        duration_s: Simulated seconds (None: until the venue has nothing left, the end of
            a capture).
        tier: The account's rate-limit tier.
        latency: The feed and order latency models (:mod:`kmm.backtest.latency`); the order
            delay applies each way.
        start_ns: The simulated start time.
        balance: The account's cash, in $0.000001.
        tickers: Trade only these markets (empty: every open one).
        caps: A position cap (0.01 contracts) of some markets, as discovery gives them.
    """

    scenario: str = "calm"
    seed: int = 7
    markets: int = 8
    duration_s: float | None = 3600.0
    tier: str = "basic"
    latency: Latencies = field(default_factory=default_latencies)
    start_ns: int = DEFAULT_START_NS
    balance: Money = 100_000 * 1_000_000
    tickers: tuple[str, ...] = ()
    caps: tuple[tuple[str, Qty], ...] = ()


@dataclass(slots=True)
class BacktestResult:
    """What a backtest did."""

    sim_seconds: float = 0.0
    wall_seconds: float = 0.0
    events: int = 0
    frames: int = 0
    fills: int = 0
    orders_sent: int = 0
    realized: Money = 0
    unrealized: Money = 0
    halted: str | None = None

    @property
    def net_pnl(self) -> Money:
        """Realized plus unrealized P&L, net of fees."""
        return self.realized + self.unrealized

    @property
    def speed(self) -> float:
        """Simulated seconds per wall second."""
        return self.sim_seconds / self.wall_seconds if self.wall_seconds else 0.0


Progress = Callable[[TradingCore, int, BacktestResult], None]


class BacktestVenue(Protocol):
    """What the driver needs of a simulated venue: the local exchange in process
    (:class:`~kmm.backtest.sim_venue.GeneratedVenue`) or a capture replay. Frames come
    with the time the venue sent them; writes and reads answer as the REST client would."""

    def next_event_ns(self) -> int | None:
        """When the venue next acts on its own (None: never)."""

    def advance(self, now_ns: int) -> list[tuple[int, bytes]]:
        """Runs the venue to ``now_ns``; the frames it sent meanwhile."""

    def sent(self) -> list[tuple[int, bytes]]:
        """The frames a write or command just caused."""

    def command(self, body: dict[str, Any]) -> list[tuple[int, bytes]]:
        """One websocket command (subscribe, update_subscription)."""

    def markets(self) -> list[MarketInfo]:
        """The markets to trade."""

    def series_of(self, market: MarketInfo) -> SeriesInfo:
        """A market's fee terms."""

    def create_order(self, order: OrderRequest, now_ns: int) -> CreateAck | VenueError:
        """A create's answer."""

    def amend_order(
        self, order_id: str, *, ticker: str, side: BookSide, price: Price, count: Qty, now_ns: int
    ) -> CreateAck | VenueError:
        """An amend's answer."""

    def batch_cancel(self, order_ids: Sequence[str], now_ns: int) -> list[BatchItem]:
        """A batch cancel's answers."""

    def order(self, order_id: str) -> VenueOrder | None:
        """One of our orders (None: the venue has no such order)."""

    def resting_orders(self) -> list[VenueOrder]:
        """Our resting orders."""

    def fills(self, min_ts_s: int | None = None) -> list[Fill]:
        """Our fills since ``min_ts_s``."""

    def positions(self) -> list[VenuePosition]:
        """Our positions."""


class Backtest:
    """One backtest run; see the module docstring.

    Args:
        config: The run's configuration (strategy, risk, execution as live).
        options: What to simulate.
        records: Where records go (a :class:`~kmm.record.Recorder`), or None.
        progress: Called about every ``progress_every_s`` simulated seconds.
        progress_every_s: How often ``progress`` is called.
        venue: The venue (default: the local exchange in process, built from ``options``).
    """

    def __init__(
        self,
        config: KmmConfig,
        options: BacktestOptions,
        *,
        records: RecordSink | None = None,
        progress: Progress | None = None,
        progress_every_s: float = 60.0,
        venue: BacktestVenue | None = None,
    ) -> None:
        self.config = config
        self.options = options
        self.rng = random.Random(options.seed)
        self.venue: BacktestVenue = venue or GeneratedVenue(
            SimOptions(
                seed=options.seed,
                markets=options.markets,
                scenario=options.scenario,
                tier=options.tier,
            ),
            options.start_ns,
            options.balance,
        )
        self.core = build_core(config, start_ns=options.start_ns, records=records, env="backtest")
        self.result = BacktestResult()
        self._progress = progress
        self._progress_every_ns = int(progress_every_s * NS_PER_S)
        self._heap: list[tuple[int, int, str, Any]] = []
        self._order = itertools.count()
        self._wake_at: int | None = None
        self._venue_at: int | None = None
        self._book_sid: int | None = None
        self._book_tickers: list[str] = []
        self._handlers: dict[str, Callable[[int, Any], None]] = {
            "venue": self._on_venue,
            "deliver": self._on_deliver,
            "arrive": self._on_arrive,
            "answer": self._on_answer,
            "tick": self._on_tick,
            "wake": self._on_wake,
            "progress": self._on_progress,
        }

    # ----------------------------------------------------------------- running

    def run(self) -> BacktestResult:
        """Runs the whole simulated duration; returns what happened."""
        wall = time.perf_counter()
        start = self.options.start_ns
        duration = self.options.duration_s
        end = None if duration is None else start + int(duration * NS_PER_S)
        self._start(start)
        last = start
        while self._heap and (end is None or self._heap[0][0] <= end):
            at, _, kind, payload = heapq.heappop(self._heap)
            if end is None and kind in _TIMERS and self.venue.next_event_ns() is None:
                continue  # the capture ended: time stops with it
            self._handlers[kind](at, payload)
            self.result.events += 1
            self._schedule_wake(at)
            last = at
        self._finish(last if end is None else end)
        self.result.wall_seconds = time.perf_counter() - wall
        return self.result

    def _push(self, at: int, kind: str, payload: Any = None) -> None:
        heapq.heappush(self._heap, (at, next(self._order), kind, payload))

    def _choice(self, now: int) -> tuple[set[str], dict[str, Qty]]:
        """The markets to trade and their caps: the options', or, in discovery or volatility
        mode on the generated exchange, discovery's choice now (see :mod:`.choice`)."""
        options, config, venue = self.options, self.config, self.venue
        mode = config.markets.mode
        if options.tickers or mode == "fixed" or not isinstance(venue, GeneratedVenue):
            return set(options.tickers), dict(options.caps)
        if mode == "volatility":
            picks = discovered(config, venue, config.volatility.track_n, now)
            return {t for t, _ in picks}, {}
        top = min(config.discovery.top_n, config.markets.max_markets)
        picks = discovered(config, venue, top, now)
        return {t for t, _ in picks}, dict(picks)

    def _start(self, now: int) -> None:
        core, venue = self.core, self.venue
        chosen, caps = self._choice(now)
        for market in venue.markets():
            if market.status in ("active", "open") and (not chosen or market.ticker in chosen):
                spec, mid = market_spec(market, venue.series_of(market))
                cap = caps.get(market.ticker)
                core.add_market(spec if cap is None else replace(spec, max_position=cap), mid)
        tickers = list(core.pipeline.markets)
        self._book_tickers = tickers
        buckets = RateBuckets.from_tier(self.options.tier, now)
        backoff = Backoff(random_fn=self.rng.random)
        core.start_trading(
            WriteScheduler[WriteRequest](buckets.write), exec_settings(self.config.execution),
            backoff,
        )  # fmt: skip
        frames: list[tuple[int, bytes]] = []
        for number, channel in enumerate((*_MARKET_CHANNELS, *_ACCOUNT_CHANNELS), start=1):
            params: dict[str, Any] = {"channels": [channel]}
            if channel in _MARKET_CHANNELS:
                params["market_tickers"] = tickers
            if channel == "orderbook_delta":
                params["use_yes_price"] = True
            frames += venue.command({"id": number, "cmd": "subscribe", "params": params})
        self._deliver_later(frames)
        self._push(now + NS_PER_S, "tick")
        self._push(now + self._progress_every_ns, "progress")
        self._schedule_venue()

    def _finish(self, end: int) -> None:
        core = self.core
        core.tape_end(end)
        portfolio = core.portfolio
        result = self.result
        result.sim_seconds = (end - self.options.start_ns) / NS_PER_S
        result.fills = core.report.fills
        result.realized = portfolio.realized()
        result.unrealized = portfolio.unrealized(core.pnl_marks())
        result.halted = core.halted
        result.orders_sent = core.planner.counters.sent if core.planner is not None else 0

    # ----------------------------------------------------------------- events

    def _schedule_venue(self) -> None:
        due = self.venue.next_event_ns()
        if due is not None and due != self._venue_at:
            self._venue_at = due
            self._push(due, "venue")

    def _on_venue(self, now: int, _: Any) -> None:
        self._venue_at = None
        self._deliver_later(self.venue.advance(now))
        self._schedule_venue()

    def _deliver_later(self, frames: list[tuple[int, bytes]]) -> None:
        """Each group of frames the venue sent at one time reaches the core a feed latency
        later."""
        batch: list[bytes] = []
        for i, (sent, frame) in enumerate(frames):
            batch.append(frame)
            if i + 1 == len(frames) or frames[i + 1][0] != sent:
                delay = self.options.latency.feed.draw()
                self._push(sent + delay, "deliver", batch)
                batch = []

    def _on_deliver(self, now: int, frames: list[bytes]) -> None:
        core = self.core
        for frame in frames:
            core.on_frame(frame, now)
            self._note_subscription(frame)
        self.result.frames += len(frames)
        self._act(now)
        quotes = core.decide_quotes(now)
        if quotes:
            self._act(now)
            core.tape_quotes(quotes, now)

    def _note_subscription(self, frame: bytes) -> None:
        if self._book_sid is None and b'"subscribed"' in frame:
            msg = orjson.loads(frame).get("msg", {})
            if msg.get("channel") == "orderbook_delta":
                self._book_sid = msg.get("sid")

    def _on_tick(self, now: int, _: Any) -> None:
        self.core.on_tick(now)
        self._act(now)
        if self.venue.next_event_ns() is not None:  # a capture that ended stops the clock
            self._push(now + NS_PER_S, "tick")

    def _on_wake(self, now: int, _: Any) -> None:
        self._wake_at = None
        self.core.plan(now)
        self._act(now)

    def _schedule_wake(self, now: int) -> None:
        planner = self.core.planner
        if planner is None:
            return
        wake = now if planner.has_dirty else planner.next_wake_ns(now)
        if wake is not None and (self._wake_at is None or wake < self._wake_at):
            self._wake_at = max(wake, now)
            self._push(self._wake_at, "wake")

    def _on_progress(self, now: int, _: Any) -> None:
        if self._progress is not None:
            self._progress(self.core, now, self.result)
        if self.venue.next_event_ns() is not None:
            self._push(now + self._progress_every_ns, "progress")

    # ----------------------------------------------------------------- the venue's side

    def _on_arrive(
        self, now: int, action: StartCreate | StartAmend | StartCancels | ReadBack
    ) -> None:
        venue = self.venue
        self._deliver_later(venue.advance(now))  # the book as it is when the order lands
        answer: object
        if isinstance(action, StartCreate):
            answer = venue.create_order(action.order, now)
        elif isinstance(action, StartAmend):
            amend = action.req.amend
            assert amend is not None
            answer = venue.amend_order(
                action.order_id, ticker=action.req.ticker, side=amend.side, price=amend.price,
                count=action.req.count, now_ns=now,
            )  # fmt: skip
        elif isinstance(action, StartCancels):
            answer = venue.batch_cancel(action.order_ids, now)
        else:
            answer = self._read_back(action.client_order_id)
        self._deliver_later(venue.sent())
        self._schedule_venue()
        delay = self.options.latency.order.draw()
        self._push(now + delay, "answer", (action, answer))

    def _read_back(self, client_order_id: str) -> VenueOrder | None:
        tracked = self.core.tracker.get(client_order_id)
        if tracked is not None and tracked.order_id is not None:
            return self.venue.order(tracked.order_id)
        for order in self.venue.resting_orders():
            if order.client_order_id == client_order_id:
                return order
        return None

    def _on_answer(self, now: int, payload: tuple[Any, Any]) -> None:
        action, answer = payload
        planner = self.core.planner
        assert planner is not None
        if isinstance(action, ReadBack):
            self._perform(planner.on_venue_view(action.client_order_id, answer, now), now)
        elif isinstance(action, StartCancels):
            planner.settle(action.cost, now)
            items: list[BatchItem] = answer
            self._perform(planner.on_cancels(action, items, now), now)
        else:
            planner.settle(action.req.cost, now)
            if isinstance(answer, VenueError):
                self._perform(planner.on_error(action.req, answer, now), now)
            elif isinstance(action, StartCreate):
                ack: CreateAck = answer
                self._perform(planner.on_created(action.req, ack, now), now)
            else:
                self._perform(planner.on_amended(action.req, answer, now), now)
        self._act(now)

    # ----------------------------------------------------------------- actions

    def _act(self, now: int) -> None:
        actions = self.core.take_actions()
        while actions:
            self._perform(actions, now)
            actions = self.core.take_actions()

    def _perform(self, actions: Iterable[Action], now: int) -> None:
        for action in actions:
            if isinstance(action, StartCreate | StartAmend | StartCancels | ReadBack):
                delay = self.options.latency.order.draw()
                self._push(now + delay, "arrive", action)
            elif isinstance(action, ExecEvent):
                self.core.on_exec_event(action, now)
            elif isinstance(action, Say | Log):
                log.log(logging.INFO if isinstance(action, Say) else action.level, action.line)
            elif isinstance(action, Resync):
                self._resync(now, action.sids)
            elif isinstance(action, ReadFills):
                fills = self.venue.fills(self.core.fills_since_s)
                self.core.on_fills_read(fills, action.source, now)
            elif isinstance(action, GoFlat):
                self._go_flat(now)
            elif not isinstance(action, Print | Presign):
                raise TypeError(f"backtest: no way to perform {action!r}")

    def _resync(self, now: int, sids: tuple[int, ...]) -> None:
        for sid in sids:
            if sid != self._book_sid:
                continue
            body = {
                "id": next(self._order) + 1_000_000,
                "cmd": "update_subscription",
                "params": {
                    "sids": [sid],
                    "action": "get_snapshot",
                    "market_tickers": self._book_tickers,
                },
            }
            self._deliver_later(self.venue.command(body))

    def _go_flat(self, now: int) -> None:
        venue = self.venue
        resting = [o.order_id for o in venue.resting_orders() if self.core.is_ours(o)]
        if resting:
            venue.batch_cancel(resting, now)
            self._deliver_later(venue.sent())
        if not [o for o in venue.resting_orders() if self.core.is_ours(o)]:
            self.core.confirm_flat(now)


def progress_line(core: TradingCore, now: int, result: BacktestResult, start_ns: int) -> str:
    """One progress line: simulated time, events, fills and P&L so far."""
    portfolio = core.portfolio
    pnl = portfolio.total_pnl(core.pnl_marks())
    minutes = (now - start_ns) / NS_PER_S / 60
    return (
        f"t={minutes:6.1f} min | events {result.events:,} | fills {core.report.fills} | "
        f"pnl ${format_money(pnl)}"
    )
