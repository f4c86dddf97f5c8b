"""The trading core: venue events and time in, actions and records out. Sans-I/O.

Theory of operation
-------------------
:class:`TradingCore` is every decision of a run in one object, in the style of h11's
connection or websockets' protocol objects: its methods take what happened (a websocket
frame with its receive time, a fill read back, an execution outcome, a timer tick) and the
time ``now_ns``; they never await, never read a clock and never touch a socket. What the core
decides goes two ways:

* **actions**, appended to an outbox the driver drains with :meth:`TradingCore.take_actions`
  and performs in order: the planner's write requests (:mod:`kmm.core.planner`), read-backs,
  resnapshot requests, operations lines, presigning, going flat (:mod:`kmm.core.actions`);
* **records** (tape rows, order events, fills, positions, the day's P&L), written to a sink
  with the :class:`~kmm.record.Recorder`'s methods, which only enqueue a tuple for the
  recorder's writer thread (or append to a list in a test).

The core owns each fact once: the pipeline's market states (book, spec, price grid, close
time, quote), the order tracker, the portfolio, the kill switch (the only halt state) and the
risk context (limits, exchange pause, the one venue-status map ``risk.blocked``). The
planner reads the pipeline's grids through :class:`~kmm.core.markets.GridView`.

The same core runs live (:class:`kmm.engine.LiveEngine` feeds it from the network) and in a
backtest (:mod:`kmm.backtest` feeds it from a simulated venue on a manual clock).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from kmm.config import KmmConfig, MarketOverride
from kmm.core.actions import Action, GoFlat, Log, Presign, Print, ReadFills, Resync, Say
from kmm.core.controls import MarketControls
from kmm.core.desk import DeskRecords, VolatilityDesk
from kmm.core.histogram import LatencyHistogram
from kmm.core.markets import GridView
from kmm.core.planner import ExecEvent, ExecSettings, OrderPlanner, WriteRequest
from kmm.errors import WireError
from kmm.execution.inventory import Portfolio
from kmm.execution.marks import Mark, mark_position
from kmm.execution.orders import OrderState, OrderTracker
from kmm.execution.token_bucket import Backoff, WriteScheduler
from kmm.kalshi.rest import CLOSED_CODES, PAUSE_CODES, VenueOrder, VenuePosition
from kmm.kalshi.wire import (
    Event,
    MarketLifecycle,
    MarketPosition,
    Subscribed,
    Trade,
    UserOrder,
)
from kmm.pipeline import MarketSpec, Pipeline, QuoteMailbox, empty_quote
from kmm.risk import (
    HaltState,
    KillEvent,
    KillSwitch,
    MarketStatus,
    RiskContext,
    Trigger,
    check_order,
    compare_orders,
    gate_quote,
)
from kmm.strategy.exit import ExitPlan, ExitStyle
from kmm.strategy.quoter import StrategyParams
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

__all__ = ["CoreReport", "RecordSink", "TradingCore"]

_VENUE_STATE: Final = {
    "resting": OrderState.RESTING,
    "canceled": OrderState.CANCELED,
    "executed": OrderState.FILLED,
}
_RESTING_STATES: Final = frozenset(
    {OrderState.RESTING, OrderState.PENDING_AMEND, OrderState.PENDING_CANCEL}
)
"""States of an order the venue confirmed resting (and has not confirmed gone)."""
_OWN_STATES: Final = _RESTING_STATES | {OrderState.PENDING_NEW}
"""States of an order that may be in the book: a create in flight too, since the feed shows it
before its answer comes back."""
_CLOSED_EVENTS: Final = frozenset({"determined", "settled", "closed"})
_LOGGED_EVENTS: Final = frozenset({"rejected", "unknown", "dropped", "settled"})


class RecordSink(DeskRecords, Protocol):
    """Where records go: :class:`~kmm.record.Recorder` (its methods only enqueue)."""

    def tape(
        self,
        ts_ns: int,
        ticker: str,
        event: str,
        mid_x2: int | None,
        best_bid: Price | None,
        best_ask: Price | None,
        my_bid: Price | None,
        my_bid_qty: Qty,
        my_ask: Price | None,
        my_ask_qty: Qty,
        inventory: Qty,
        unrealized: Money,
        realized: Money,
        fees: Money,
        latency_ns: int | None,
        *,
        quote_bid: Price | None = None,
        quote_bid_qty: Qty = 0,
        quote_ask: Price | None = None,
        quote_ask_qty: Qty = 0,
        mark: Price | None = None,
        mark_source: str = "",
        terms: tuple[float, float, float, float, float, str] | None = None,
    ) -> None:
        """One tape row."""

    def order(
        self,
        ts_ns: int,
        ticker: str,
        client_order_id: str,
        order_id: str | None,
        event: str,
        side: str,
        price: Price | None,
        qty: Qty | None,
        code: str,
        reason: str,
    ) -> None:
        """One order event."""

    def fill(self, fill: Fill, position_after: Qty, source: str = "stream") -> None:
        """One fill."""

    def position(
        self, ts_ns: int, ticker: str, position: Qty, realized: Money, fees: Money
    ) -> None:
        """One market's position and P&L."""

    def daily_pnl(self, day: str, pnl: Money, peak: Money, ts_ns: int) -> None:
        """The day's P&L and peak."""


@dataclass(slots=True)
class CoreReport:
    """What the core has done, for the summary and the run's report."""

    markets: list[str] = field(default_factory=list)
    fills: int = 0
    halted: str | None = None


class TradingCore:
    """Every trading decision of a run, driven by events and time; see the module docstring.

    Args:
        config: The run's configuration.
        start_ns: When the run started (client order ids and the summary's elapsed time).
        records: Where records go, or None to keep none.
        env: The venue environment, for the day's P&L key (``sim``, ``demo``, ``prod``).
    """

    def __init__(
        self,
        config: KmmConfig,
        *,
        start_ns: int,
        pipeline: Pipeline,
        mailbox: QuoteMailbox,
        portfolio: Portfolio,
        tracker: OrderTracker,
        kill_switch: KillSwitch,
        risk: RiskContext,
        records: RecordSink | None = None,
        env: str | None = None,
    ) -> None:
        self.config = config
        self.records = records
        self.env = env or config.venue.env
        self.started_ns = start_ns
        self.report = CoreReport()
        self.portfolio = portfolio
        self.fills: list[Fill] = []
        self.tracker = tracker
        self.ids = tracker.ids
        self.mailbox = mailbox
        self.pipeline = pipeline
        self.grids = GridView(self.pipeline.markets)
        self.marks: dict[str, Price] = {}
        self.kill_switch = kill_switch
        self.risk = risk
        self.planner: OrderPlanner | None = None
        self.decision_latency = LatencyHistogram()
        """Frame-to-decision latency: a book frame's arrival to its quote's hand-over."""
        self.feed_last_ns = 0
        """When the venue's feed last sent anything (the driver sets it; 0: never)."""
        self.fills_since_s: int | None = None
        """Fills are read back from this ``min_ts`` on (None: the whole history)."""
        self._out: list[Action] = []
        self._refusals: dict[tuple[str, BookSide], str] = {}
        self._settled: set[str] = set()
        self._closed: set[str] = set()
        self._last_trade: dict[str, Price] = {}
        self._reference: dict[str, Price] = {}
        self._fill_channel_subscribed = False
        self._halt_acted = False
        self._exits: dict[str, ExitStyle] = {}
        self._retiring: set[str] = set()
        self.controls = MarketControls(pipeline.params, config.markets.overrides)
        """The operator's per-market overrides (``markets.overrides``, the control API)."""
        self.risk.disabled = self.controls.disabled()
        self.risk.reduce_only |= self.controls.reduce_only()
        self.desk: VolatilityDesk | None = None
        """Volatility mode's scanner and sessions (``markets.mode: volatility``)."""
        if config.markets.mode == "volatility":
            self.desk = VolatilityDesk(self, config, records)

    @property
    def halted(self) -> str | None:
        """Why the kill switch holds (halting or halted), or None while it runs: the kill
        switch is the only owner of the halt state."""
        kill = self.kill_switch
        return None if kill.state is HaltState.RUNNING else kill.reason or kill.state.value

    # ----------------------------------------------------------------- outbox

    def take_actions(self) -> list[Action]:
        """Everything decided since the last call, in order; the outbox is then empty."""
        out, self._out = self._out, []
        return out

    def _say(self, line: str) -> None:
        self._out.append(Say(line))

    def say(self, line: str) -> None:
        """An operations line for the driver to print and log."""
        self._out.append(Say(line))

    # ----------------------------------------------------------------- set-up

    def add_market(self, spec: MarketSpec, mid: Price | None = None) -> None:
        """Starts trading a market (its book is untrusted until a snapshot arrives)."""
        params = self.controls.params(spec.ticker)
        if params is not None:
            self.pipeline.market_params[spec.ticker] = params
        self.pipeline.add_market(spec)
        self.risk.exposures.set_group(spec.ticker, spec.event_ticker, spec.category)
        self._restore_cap(spec.ticker)
        if mid is not None:
            self.marks[spec.ticker] = mid
        if spec.ticker not in self.report.markets:
            self.report.markets.append(spec.ticker)
        if self.desk is not None:
            self.desk.track(spec.ticker, self.started_ns)

    def adopt(self, order: VenueOrder, now_ns: int) -> None:
        """Tracks an order found resting at start as if we had placed it."""
        if order.ticker not in self.pipeline.markets:
            return
        intent = OrderIntent(order.ticker, order.side, order.price, order.remaining + order.filled)
        tracked = self.tracker.new(intent, now_ns)
        self.tracker.on_ack(
            tracked.client_order_id,
            order.order_id,
            now_ns,
            filled=order.filled,
            remaining=order.remaining,
        )
        self.tracker.count_as_booked(tracked.client_order_id)
        self._refresh_own(order.ticker, now_ns)

    def _refresh_own(self, ticker: str, now_ns: int) -> None:
        """Tells the pipeline which of a market's orders are ours, so its fair price leaves
        them out: every order the venue confirmed resting, and every create in flight (the
        feed shows it before its answer comes), at its price, by remaining size."""
        if ticker not in self.pipeline.markets:
            return
        own_yes: dict[Price, Qty] = {}
        own_no: dict[Price, Qty] = {}
        for order in self.tracker.live(ticker):
            if order.state not in _OWN_STATES or order.remaining <= 0:
                continue
            price, remaining = order.price, order.remaining
            if order.side is BookSide.BID:
                own_yes[price] = own_yes.get(price, 0) + remaining
            else:
                leg = ONE_DOLLAR - price
                own_no[leg] = own_no.get(leg, 0) + remaining
        self.pipeline.set_own_orders(ticker, own_yes, own_no, now_ns)

    def align_position(self, position: VenuePosition) -> None:
        """At start: the venue's position where the fills read back disagree with it."""
        ours = self.portfolio.net_qty(position.ticker)
        if ours == position.position:
            return
        self._say(
            f"{position.ticker}: position {format_count(position.position)} at start "
            f"(fills read back give {format_count(ours)}); the venue's figure is used"
        )
        missing = position.position - ours
        side = BookSide.BID if missing > 0 else BookSide.ASK
        price = _entry_price(position, missing)
        self.portfolio.position(position.ticker).apply(side, price, abs(missing))

    def restore_day(self, day_pnl: Money, day_peak: Money, now_ns: int) -> None:
        """The day's P&L and peak from the ledger: a restart cannot reset the kill switch."""
        self.update_marks()
        total = self.portfolio.total_pnl(self.pnl_marks())
        self._on_kill_event(
            self.kill_switch.restore(
                day_pnl=day_pnl, day_peak=day_peak, total_pnl=total, now_ns=now_ns
            ),
            now_ns,
        )
        self._say(
            f"  today so far (ledger): P&L ${format_money(day_pnl)}, peak ${format_money(day_peak)}"
        )

    def start_trading(
        self,
        scheduler: WriteScheduler[WriteRequest],
        settings: ExecSettings,
        backoff: Backoff | None = None,
    ) -> OrderPlanner:
        """Builds the order planner over the Write bucket: from now on quotes become orders."""
        planner = OrderPlanner(
            self.tracker,
            scheduler,
            self.grids,
            settings,
            gate=self.gate,
            approve=self.approve,
            backoff=backoff,
        )
        if self._halt_acted:
            planner.stop_placing()  # halted before trading began (the day's loss, restored)
        planner.exits.update({t: s is ExitStyle.TAKE for t, s in self._exits.items()})
        self.planner = planner
        return planner

    # ----------------------------------------------------------------- the receive path

    def on_frame(self, frame: bytes | str, recv_ns: int) -> Event | None:
        """Handles one websocket frame: the hot path, then the account and market events.

        A frame the pipeline refuses (malformed or out of range) is skipped: the pipeline
        counts it by kind (``pipeline.stats.rejected``), the first of each kind is logged,
        and whatever the refusal pulled or queued for a resnapshot is acted on. Decided
        quotes wait in the mailbox until :meth:`decide_quotes`.
        """
        pipeline = self.pipeline
        try:
            event = pipeline.on_frame(frame, recv_ns)
        except WireError as e:
            if pipeline.stats.rejected[e.kind] <= 1:
                self._out.append(
                    Log.warning(
                        f"venue frame refused and skipped ({e.kind}; later ones only counted): {e}"
                    )
                )
            event = None
        if pipeline.needs_resync:
            self._out.append(Resync(tuple(pipeline.take_resync())))
        if event is None:
            return None
        handler = self._handlers.get(type(event))
        if handler is not None:
            try:
                handler(self, event, recv_ns)
            except WireError as e:  # it contradicts what we track (an order's exchange id)
                rejected = pipeline.stats.rejected
                rejected[e.kind] += 1
                if rejected[e.kind] == 1:
                    self._out.append(
                        Log.warning(f"venue event refused ({e.kind}; later ones only counted): {e}")
                    )
                return None
        return event

    @property
    def quotes_pending(self) -> bool:
        """Decided quotes wait in the mailbox for :meth:`decide_quotes`."""
        return len(self.mailbox) > 0

    def decide_quotes(self, now_ns: int) -> dict[str, Quote]:
        """Hands the newest decided quotes to the planner and plans their orders at once
        (the tick-to-order path). Call :meth:`tape_quotes` with what it returns once the
        requests are on their way: the orders go out before the tape is written.

        Returns:
            The quotes taken from the mailbox, by market.
        """
        quotes = self.mailbox.take()
        markets = self.pipeline.markets
        observe = self.decision_latency.observe
        for ticker in quotes:
            book_ns = markets[ticker].last_book_ns
            if book_ns:
                observe(now_ns - book_ns)
        if quotes and self.planner is not None:
            self.planner.submit(quotes)
            self._out += self.planner.plan(now_ns)
            for ticker in quotes:  # the creates and amends just planned are ours too
                self._refresh_own(ticker, now_ns)
        return quotes

    def tape_quotes(self, quotes: Mapping[str, Quote], now_ns: int) -> None:
        """A tape row per market whose quote :meth:`decide_quotes` handed on."""
        if self.records is None:
            return
        for ticker, quote in quotes.items():
            pulled = quote.bid_price is None and quote.ask_price is None
            self._tape(ticker, "pulled" if pulled else "quote", now_ns, latency=True)

    def plan(self, now_ns: int) -> None:
        """Lets the planner act on time alone (token refill, deadlines, backoff) and on the
        markets touched since its last plan."""
        if self.planner is not None:
            self._out += self.planner.plan(now_ns)

    def _touch(self, ticker: str) -> None:
        if self.planner is not None:
            self.planner.touch(ticker)

    def _on_fill(self, fill: Fill, now_ns: int) -> None:
        """A fill from the websocket stream."""
        if self.book_fill(fill, "stream", now_ns):
            self.pipeline.on_own_fill(fill.ticker, fill.side is BookSide.BID, fill.price, now_ns)
        if fill.ticker in self.pipeline.markets:
            self.pipeline.decide(fill.ticker, now_ns)
            self._touch(fill.ticker)

    def book_fill(self, fill: Fill, source: str, now_ns: int) -> bool:
        """Books one fill of the account, from wherever it was learnt, once by trade id:
        order tracker, portfolio, the run's fills and the records. True if it was new."""
        try:
            self.tracker.on_fill(fill, now_ns)
        except WireError as e:  # it contradicts the order we track: the fill still counts
            self._out.append(
                Log.warning(
                    f"{fill.ticker}: fill {fill.trade_id} booked; its order is left to "
                    f"reconciliation: {e}"
                )
            )
        self._refresh_own(fill.ticker, now_ns)
        if not self.portfolio.on_fill(fill):
            return False
        self.fills.append(fill)
        self.report.fills += 1
        if self.desk is not None:
            self.desk.on_fill(fill.ticker)
        fill_s = fill.ts_ms // 1000 - 1
        if self.fills_since_s is None or fill_s > self.fills_since_s:
            self.fills_since_s = fill_s
        self._record_fill(fill, now_ns, source)
        self.marks.setdefault(fill.ticker, fill.price)
        position = format_count(self.portfolio.net_qty(fill.ticker))
        maker = "taker" if fill.is_taker else "maker"
        terms = (
            f"{fill.side} {format_count(fill.qty)} @ {format_price(fill.price)} "
            f"fee ${format_money(fill.fee)}"
        )
        self._out.append(
            Log.info(f"{fill.ticker}: fill {terms} ({maker}, {source}), position {position}")
        )
        if source == "stream":
            self._out.append(Print(f"{fill.ticker}: fill {terms} ({maker}), position {position}"))
        return True

    def on_fills_read(self, fills: Iterable[Fill], source: str, now_ns: int) -> int:
        """Fills read back from the venue (``source``: start, reconnect, reconcile, shutdown):
        each new one is booked, and the markets they touched are quoted again.

        Returns:
            How many fills were new.
        """
        new = [f for f in fills if self.book_fill(f, source, now_ns)]
        if new:
            self._say(f"{source}: {len(new)} fills read back from the venue and recorded")
        for ticker in dict.fromkeys(f.ticker for f in new):
            if ticker in self.pipeline.markets:
                self.pipeline.decide(ticker, now_ns)
                self._touch(ticker)
        return len(new)

    def _record_fill(self, fill: Fill, now_ns: int, source: str) -> None:
        records = self.records
        if records is None:
            return
        position = self.portfolio.position(fill.ticker)
        records.fill(fill, position.qty, source)
        records.position(now_ns, fill.ticker, position.qty, position.realized, position.fees_paid)
        self._tape(fill.ticker, "fill", now_ns)

    def _on_trade(self, trade: Trade, now_ns: int) -> None:
        self._last_trade[trade.ticker] = trade.yes_price
        if self.desk is not None:
            self.desk.on_trade(trade.ticker, now_ns)

    def _on_subscribed(self, event: Subscribed, now_ns: int) -> None:
        """The fill channel is live (at start or again after a reconnect): read back the
        fills that happened before it was, so none falls between the REST read and the stream."""
        if event.channel != "fill":
            return
        source = "reconnect" if self._fill_channel_subscribed else "start"
        self._fill_channel_subscribed = True
        self._out.append(ReadFills(source))

    def _on_user_order(self, order: UserOrder, now_ns: int) -> None:
        found = _VENUE_STATE.get(order.status)
        key = order.client_order_id or order.order_id
        tracked = self.tracker.get(key)
        if found is None or tracked is None:
            return
        if tracked.state is OrderState.PENDING_NEW:
            return  # the create reply binds it; the stream may beat the reply
        self.tracker.reconcile(
            key,
            found,
            now_ns,
            order_id=order.order_id,
            filled=order.fill_count,
            remaining=order.remaining_count,
        )
        self._refresh_own(order.ticker, now_ns)
        self._touch(order.ticker)

    def _on_position(self, position: MarketPosition, now_ns: int) -> None:
        return  # fills are the truth; reconciliation compares the venue's positions

    def _on_lifecycle(self, event: MarketLifecycle, now_ns: int) -> None:
        ticker = event.ticker
        if ticker not in self.pipeline.markets:
            return
        kind = event.event_type
        if kind == "settled" or (kind == "determined" and event.result):
            self._settle(event, now_ns)
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

    def block(self, ticker: str, reason: str, *, closed: bool = False) -> None:
        """The venue stopped the market (``closed``: for good): pull its quotes until it
        says otherwise."""
        if closed:
            self._closed.add(ticker)
        self._block(ticker, reason)

    def _block(self, ticker: str, reason: str) -> None:
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
        if sid is not None:
            self._out.append(Resync((sid,)))

    def _settle(self, event: MarketLifecycle, now_ns: int) -> None:
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
        if self.records is not None:
            position = self.portfolio.position(ticker)
            self.records.tape(now_ns, ticker, "close", None if mark is None else 2 * mark,
                              None, None, None, 0, None, 0, 0, 0, position.realized,
                              position.fees_paid, None)  # fmt: skip

    _handlers: Final[dict[type, Callable[[TradingCore, object, int], None]]] = {
        Fill: _on_fill,  # type: ignore[dict-item]
        UserOrder: _on_user_order,  # type: ignore[dict-item]
        MarketPosition: _on_position,  # type: ignore[dict-item]
        MarketLifecycle: _on_lifecycle,  # type: ignore[dict-item]
        Subscribed: _on_subscribed,  # type: ignore[dict-item]
        Trade: _on_trade,  # type: ignore[dict-item]
    }

    def on_disconnect(self, reason: str) -> None:
        """The feed was lost: every quote is pulled until the books are fresh."""
        self._say(f"websocket lost ({reason}): quotes pulled until the books are fresh")
        self.pipeline.pull_all()

    def on_resubscribe(self, channel: str) -> None:
        """The venue ended a channel; the driver subscribes again."""
        self._say(f"websocket channel {channel} ended by the venue: subscribing again")
        if channel == "orderbook_delta":
            self.pipeline.pull_all()

    def on_reconnect(self) -> None:
        """The feed is back: books stay untrusted until their fresh snapshots."""
        self._say("websocket reconnected: books untrusted until fresh snapshots")
        self.pipeline.pull_all()  # the fills missed meanwhile are read once "fill" is live

    # ----------------------------------------------------------------- tape

    def _tape(self, ticker: str, event: str, now: int, *, latency: bool = False) -> None:
        """One tape row for ``ticker``: its book, our resting orders, the model's quote, the
        position, its mark and P&L now."""
        records = self.records
        market = self.pipeline.markets.get(ticker)
        if records is None or market is None:
            return
        book, quote = market.book, market.quote
        bid, ask = book.best_bid, book.best_ask
        mid_x2 = bid + ask if bid is not None and ask is not None else None
        position = self.portfolio.positions().get(ticker)
        qty = position.qty if position is not None else 0
        mark = self.mark(ticker)
        unrealized = position.unrealized(mark.price) if position is not None and mark else 0
        my_bid, my_bid_qty, my_ask, my_ask_qty = self.resting_top(ticker)
        records.tape(
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
            terms=self._quote_terms(ticker),
        )

    def _quote_terms(self, ticker: str) -> tuple[float, float, float, float, float, str] | None:
        """What produced a market's last quote, as the tape records it."""
        found = self.pipeline.terms(ticker)
        if found is None:
            return None
        inputs, terms, held = found
        assert inputs.fair is not None
        return (inputs.fair, terms.reservation, terms.half_spread, terms.sigma, terms.kappa, held)

    def resting_top(self, ticker: str) -> tuple[Price | None, Qty, Price | None, Qty]:
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

    # ----------------------------------------------------------------- risk

    def gate(self, quote: Quote, now_ns: int) -> Quote:
        """Risk's view of a target: halts, stale or closing markets, pauses, caps."""
        ticker = quote.ticker
        market = self.pipeline.markets.get(ticker)
        if self.halted is not None or market is None:
            return empty_quote(ticker)
        self.risk.exposures.refresh(ticker, self.portfolio, self.tracker)
        status = MarketStatus(
            book_ns=max(market.last_book_ns, self.feed_last_ns),
            trusted=market.book.trusted,
            close_ns=market.spec.close_ns,
        )
        return gate_quote(quote, status, self.risk, now_ns)

    def approve(self, intent: OrderIntent, replaces: Qty | None) -> OrderIntent | None:
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

    def on_exec_event(self, event: ExecEvent, now_ns: int, *, presign: bool = False) -> None:
        """Something the executor did or learnt: recorded, and acted on where it says
        something about the venue (paused, market closed, outcome unknown)."""
        if self.records is not None:
            self.records.order(
                now_ns,
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
        self._refresh_own(event.ticker, now_ns)
        if event.what == "rejected" and event.code in PAUSE_CODES:
            self.set_paused(True)
        if event.what == "rejected" and event.code in CLOSED_CODES:
            self.block(event.ticker, f"market closed (the venue answers {event.code})", closed=True)
        if event.what == "acked" and presign and event.order_id:
            self._out.append(Presign(event.order_id))
        if event.what == "unknown":
            self._on_kill_event(self.kill_switch.on_unknown_order(now_ns), now_ns)
        if event.what in _LOGGED_EVENTS:
            code = f" [{event.code}]" if event.code else ""
            self._out.append(
                Log.info(
                    f"{event.ticker} {event.client_order_id} {event.what}{code} {event.detail}"
                )
            )

    @property
    def paused(self) -> bool:
        """Exchange trading is paused: no places (cancels still go)."""
        return self.risk.exchange_paused

    def set_paused(self, paused: bool) -> None:
        """The venue says trading is paused (or active again)."""
        if paused != self.risk.exchange_paused:
            self.risk.exchange_paused = paused
            self._say("exchange trading paused: quotes pulled" if paused else "trading resumed")

    def on_tick(self, now_ns: int, *, kill_file_exists: bool = False) -> None:
        """Once a second: marks, the kill switch's checks (P&L, kill file, feed), the day's
        P&L record, and a fresh diff of every market (time alone can make a book stale or a
        close near). A halting kill switch asks the driver to go flat."""
        self.update_marks()
        for order in self.tracker.expire_unbooked(now_ns):
            self._out.append(
                Log.warning(
                    f"{order.ticker}: order {order.client_order_id} reported "
                    f"{format_count(order.filled_venue)} filled, but only "
                    f"{format_count(order.filled_seen)} arrived as fills; reconciliation "
                    "reads the rest back"
                )
            )
        kill = self.kill_switch
        self._on_kill_event(kill.on_pnl(self.portfolio.total_pnl(self.pnl_marks()), now_ns), now_ns)
        if self.records is not None and kill.day_pnl is not None:
            self.records.daily_pnl(self.day_key(now_ns), kill.day_pnl, kill.day_peak or 0, now_ns)
        if kill.state is HaltState.RUNNING and kill_file_exists:
            self._on_kill_event(
                kill.trip(f"kill file {self.config.risk.kill_file} exists", now_ns), now_ns
            )
        if self.feed_last_ns:
            self._on_kill_event(kill.check_feed(self.feed_last_ns, now_ns), now_ns)
        for change in self.risk.take_events():
            if self.desk is not None and self.desk.idle(change.ticker):
                self._out.append(Log.info(f"risk: {change}"))  # idle between sessions: routine
            else:
                self._say(f"risk: {change}")
        if kill.state is HaltState.RUNNING:
            self._tick_running(now_ns)
        for ticker in self.pipeline.markets:
            self._touch(ticker)
        if kill.state is HaltState.HALTING:
            self._out.append(GoFlat())

    def _tick_running(self, now_ns: int) -> None:
        """The tick's part while the kill switch runs: volatility mode's scans, exits before
        a close, throttles' holds that ended, and the quotes they changed."""
        if self.desk is not None:
            self.desk.on_tick(now_ns)
        self._exit_before_close(now_ns)
        self.pipeline.recheck(now_ns)  # a throttle's hold may have ended with no book event
        if self.quotes_pending:
            self.tape_quotes(self.decide_quotes(now_ns), now_ns)

    # ----------------------------------------------------------------- exits

    def start_exit(
        self, tickers: Iterable[str], style: ExitStyle, reason: str, now_ns: int
    ) -> list[str]:
        """Stops quoting these markets and works their positions out (see
        :mod:`kmm.strategy.exit`): one reduce-only order per market, no worse than
        ``exit.max_slippage_cents`` from the fair price now. A market already exiting keeps
        its exit.

        Returns:
            The markets whose exit started now.
        """
        started = []
        slippage = self.config.exit.max_slippage
        for ticker in tickers:
            if ticker not in self.pipeline.markets or ticker in self._exits:
                continue
            self._exits[ticker] = style
            self.risk.reduce_only.add(ticker)
            if self.planner is not None:
                self.planner.exits[ticker] = style is ExitStyle.TAKE
            qty = self.portfolio.net_qty(ticker)
            if qty:
                self._say(
                    f"{ticker}: exit ({reason}, {style}): position {format_count(qty)}, "
                    f"no worse than {format_price(slippage)} from the fair price"
                )
            self.pipeline.set_exit(ticker, ExitPlan(style, slippage, reason=reason), now_ns)
            self._touch(ticker)
            started.append(ticker)
        if self.quotes_pending:
            self.tape_quotes(self.decide_quotes(now_ns), now_ns)
        return started

    def end_exit(self, ticker: str, now_ns: int) -> None:
        """Ends a market's exit: it is quoted again (no longer reduce-only)."""
        if self._exits.pop(ticker, None) is None:
            return
        if ticker not in self.controls.reduce_only():
            self.risk.reduce_only.discard(ticker)
        if self.planner is not None:
            self.planner.exits.pop(ticker, None)
        self.pipeline.set_exit(ticker, None, now_ns)
        self._touch(ticker)

    def retire(self, ticker: str, now_ns: int) -> None:
        """Stops quoting a market that rescoring dropped: its orders are cancelled and any
        position is worked out passively (an exit), until :meth:`retired` lists it."""
        if ticker in self._retiring or ticker not in self.pipeline.markets:
            return
        self._retiring.add(ticker)
        self.start_exit([ticker], ExitStyle.PASSIVE, "rescored out", now_ns)

    def readmit(self, ticker: str, now_ns: int) -> None:
        """Quotes a retired (or retiring) market again: rescoring chose it once more."""
        if ticker in self._retiring:
            self._retiring.discard(ticker)
            self.end_exit(ticker, now_ns)

    @property
    def retiring(self) -> frozenset[str]:
        """The markets rescoring dropped (done or not)."""
        return frozenset(self._retiring)

    def retired(self) -> list[str]:
        """The dropped markets that hold no position and none of our orders any more."""
        left = set(self.exits_left())
        return [t for t in self._retiring if t not in left]

    def set_session_terms(
        self, ticker: str, params: StrategyParams | None, cap: Qty | None, now_ns: int
    ) -> None:
        """A volatility session's quoting parameters and position cap for a market (None:
        the run's again)."""
        self._restore_cap(ticker)
        if cap is not None:
            self.risk.market_caps[ticker] = min(cap, self.risk.market_caps.get(ticker, cap))
        self.pipeline.set_params(ticker, params, now_ns)
        self._touch(ticker)

    def _restore_cap(self, ticker: str) -> None:
        """The market's own position cap for the checks: the lower of its spec's
        (discovery's budget) and its override's, or none."""
        caps = [
            cap
            for cap in (self.pipeline.markets[ticker].spec.max_position, self.controls.cap(ticker))
            if cap is not None
        ]
        if caps:
            self.risk.market_caps[ticker] = min(caps)
        else:
            self.risk.market_caps.pop(ticker, None)

    def market_pnl(self, ticker: str) -> Money:
        """A market's P&L now, net of fees: realized plus its open lots at the P&L mark."""
        position = self.portfolio.positions().get(ticker)
        if position is None:
            return 0
        mark = self.pnl_marks().get(ticker)
        return position.realized + (position.unrealized(mark) if mark is not None else 0)

    def set_market_cap(self, ticker: str, cap: Qty) -> None:
        """A market's own position cap (discovery's budget), for the quoter and the checks."""
        self.pipeline.set_max_position(ticker, cap)
        self._restore_cap(ticker)

    # ----------------------------------------------------------------- overrides

    def set_overrides(self, overrides: Mapping[str, MarketOverride], now_ns: int) -> list[str]:
        """Puts a new set of per-market overrides in force (a reload of the config file).

        Returns:
            The change, one line per market (each also said).

        Raises:
            ConfigError: if an override gives a market invalid parameters; nothing changed.
        """
        lines, changed = self.controls.replace_all(overrides)
        self._apply_controls(changed, lines, now_ns)
        return lines

    def update_override(self, ticker: str, changes: Mapping[str, Any], now_ns: int) -> list[str]:
        """Changes some fields of one market's override (the control API): ``enabled``,
        ``reduce_only`` or a parameter (``None`` puts it back to the run's).

        Returns:
            The change (also said); empty when nothing changed.

        Raises:
            ConfigError: naming the field that is unknown or out of range; nothing changed.
        """
        lines, changed = self.controls.update(ticker, changes)
        self._apply_controls(changed, lines, now_ns)
        return lines

    def _apply_controls(self, tickers: Iterable[str], lines: Iterable[str], now_ns: int) -> None:
        for line in lines:
            self._say(f"override: {line}")
        controls = self.controls
        self.risk.disabled = controls.disabled()
        operator_reduce = controls.reduce_only()
        for ticker in tickers:
            if ticker in operator_reduce:
                self.risk.reduce_only.add(ticker)
            elif ticker not in self._exits:
                self.risk.reduce_only.discard(ticker)
            if ticker not in self.pipeline.markets:
                continue  # it takes its override when it is added
            params = controls.params(ticker)
            if params is None:
                self.pipeline.market_params.pop(ticker, None)
            else:
                self.pipeline.market_params[ticker] = params
            self._restore_cap(ticker)
            if self.desk is None or self.desk.idle(ticker):  # a session's terms keep
                self.pipeline.set_params(ticker, None, now_ns)
            self._touch(ticker)
        if self.quotes_pending:
            self.tape_quotes(self.decide_quotes(now_ns), now_ns)

    @property
    def exiting(self) -> list[str]:
        """The markets whose position is being worked out."""
        return list(self._exits)

    def exits_left(self) -> list[str]:
        """The exiting markets that still hold a position or one of our orders."""
        return [
            t
            for t in self._exits
            if self.portfolio.net_qty(t) != 0 or any(True for _ in self.tracker.live(t))
        ]

    def _exit_before_close(self, now_ns: int) -> None:
        """Starts the exit of every market within ``exit.before_close_s`` of its close."""
        before_ns = int(self.config.exit.before_close_s * 1e9)
        if not before_ns:
            return
        closing = [
            t
            for t, m in self.pipeline.markets.items()
            if t not in self._exits
            and m.spec.close_ns is not None
            and m.spec.close_ns - now_ns <= before_ns
        ]
        if closing:
            style = ExitStyle(self.config.exit.before_close_style)
            self.start_exit(closing, style, "before_close", now_ns)

    def confirm_flat(self, now_ns: int) -> None:
        """The driver confirmed with the venue that none of our orders rests."""
        self._on_kill_event(self.kill_switch.confirm_flat(now_ns), now_ns)

    def halt(self, reason: str, now_ns: int, trigger: Trigger = Trigger.MANUAL) -> None:
        """Trips the kill switch: stop quoting, cancel everything, stay halted."""
        self._on_kill_event(self.kill_switch.trip(reason, now_ns, trigger), now_ns)

    def resume(self, now_ns: int) -> None:
        """An operator resumes after a halt (once the switch has confirmed we are flat)."""
        event = self.kill_switch.resume(now_ns)
        if event is None:
            self._say("resume ignored: the kill switch is not halted (or not flat yet)")
            return
        self._say(f"kill switch: {event.kind} ({event.state}): {event.reason}")
        self._halt_acted = False
        self.report.halted = None
        quotes = {t: self.pipeline.decide(t, now_ns) for t in self.pipeline.markets}
        self.mailbox.take()
        if self.planner is not None:
            self.planner.resume_placing()
            self.planner.submit(quotes)  # the halt emptied the planner's targets
            self._out += self.planner.plan(now_ns)
        for ticker in quotes:
            self._tape(ticker, "resume", now_ns)

    def _on_kill_event(self, event: KillEvent | None, now_ns: int) -> None:
        if event is None:
            return
        self._say(f"kill switch: {event.kind} ({event.state}): {event.reason}")
        if event.state is not HaltState.RUNNING and not self._halt_acted:
            self._halt_acted = True
            self.report.halted = event.reason
            self.stop_placing(now_ns)
            for ticker in self.pipeline.markets:
                self._tape(ticker, "halt", now_ns)

    def tape_end(self, now_ns: int) -> None:
        """One ``end`` row per market at the end of a run: every position at its final mark,
        so the tape's last P&L is the run's (``kmm report`` reads it from there). Running
        volatility sessions end here (``stopped``) and are recorded."""
        self.update_marks()
        if self.desk is not None:
            self.desk.stop(now_ns)
        for ticker in self.pipeline.markets:
            if ticker not in self._settled:
                self._tape(ticker, "end", now_ns)

    def stop_placing(self, now_ns: int) -> None:
        """From now on only cancels (shutdown, a halt): every order of ours is cancelled."""
        if self.planner is not None:
            self.planner.stop_placing()
            self._out += self.planner.plan(now_ns)

    def position_drift(self, positions: Iterable[VenuePosition]) -> list[VenuePosition]:
        """The venue's positions that differ from ours by more than the tolerance."""
        tolerance = self.config.risk.drift_tolerance
        return [
            p for p in positions if abs(self.portfolio.net_qty(p.ticker) - p.position) > tolerance
        ]

    def halt_on_drift(self, positions: Iterable[VenuePosition], now_ns: int) -> None:
        """Halts on the first position that still drifts after the fills were read back."""
        tolerance = self.config.risk.drift_tolerance
        for position in self.position_drift(positions):
            ours = self.portfolio.net_qty(position.ticker)
            self.halt(
                f"{position.ticker}: position drift: ours {format_count(ours)}, venue "
                f"{format_count(position.position)} (tolerance {format_count(tolerance)})",
                now_ns,
                Trigger.DRIFT,
            )

    # ----------------------------------------------------------------- marks and P&L

    def day_key(self, now_ns: int) -> str:
        """The ledger's key of today's P&L: per environment, so sim never counts against prod."""
        return f"{self.env}:{_utc_day(now_ns)}"

    def pnl_marks(self) -> dict[str, Price]:
        """Marks for P&L: each market's conservative mark (:mod:`kmm.execution.marks`), or,
        for a position with none yet, its entry price."""
        marks = dict(self.marks)
        for ticker, position in self.portfolio.positions().items():
            if ticker not in marks and position.qty:
                marks[ticker] = position.open_cost // abs(position.qty)
        return marks

    def mark(self, ticker: str) -> Mark | None:
        """The mark of our position in ``ticker`` now, from its book, last trade and history."""
        market = self.pipeline.markets.get(ticker)
        bid, _, ask, _ = market.others_top() if market is not None else (None, 0, None, 0)
        return mark_position(
            self.portfolio.net_qty(ticker),
            bid,
            ask,
            self._last_trade.get(ticker),
            self._reference.get(ticker),
            self.config.risk.one_sided_mark_haircut,
        )

    def update_marks(self) -> None:
        """Marks every market now (a haircut never compounds: it applies to the last
        two-sided or exit-side mark)."""
        for ticker in self.pipeline.markets:
            mark = self.mark(ticker)
            if mark is None:
                continue
            self.marks[ticker] = mark.price
            if not mark.source.endswith("-haircut"):
                self._reference[ticker] = mark.price

    def quoting(self) -> list[str]:
        """The markets where an order of ours rests."""
        return [t for t in self.pipeline.markets if any(self.resting_top(t)[::2])]

    def live_orders(self) -> int:
        """Our orders not confirmed ended, over every market."""
        return sum(len(self.tracker.live(t)) for t in self.pipeline.markets)

    def tracked_live(self) -> dict[str, VenueOrder]:
        """Our live orders as the venue would list them (by client id if none known yet)."""
        return {
            o.order_id or f"(client order id {o.client_order_id})": VenueOrder(
                o.order_id or "", o.client_order_id, o.ticker, o.side, o.price, o.filled,
                o.remaining, "resting",
            )
            for ticker in self.pipeline.markets
            for o in self.tracker.live(ticker)
        }  # fmt: skip

    def is_ours(self, order: VenueOrder) -> bool:
        """An order of this run (by client order id prefix) or one it tracks."""
        cid = order.client_order_id or ""
        return cid.startswith(self.ids.prefix + "-") or self.tracker.get(order.order_id) is not None

    def queue_lines(self, ahead: Mapping[str, Qty]) -> list[str]:
        """One ops-log line per tracked resting order the venue gave a queue place for."""
        lines = []
        for ticker in self.pipeline.markets:
            for order in self.tracker.live(ticker):
                if order.order_id is None or order.order_id not in ahead:
                    continue
                lines.append(
                    f"queue: {ticker} {order.side} {format_count(order.remaining)} @ "
                    f"{format_price(order.price)} {order.client_order_id}: "
                    f"{format_count(ahead[order.order_id])} ahead"
                )
        return lines

    def reconcile_orders(self, resting: Iterable[VenueOrder]) -> tuple[list[VenueOrder], list[str]]:
        """Compares the venue's resting orders with ours.

        Returns:
            The venue's orders of ours that we do not track (strays: cancel them), and the
            client order ids of orders we believe rest that the venue does not list (read
            them back).
        """
        venue = {o.order_id: o for o in resting if self.is_ours(o)}
        settled = {
            o.order_id: o
            for ticker in self.pipeline.markets
            for o in self.tracker.live(ticker)
            if o.order_id is not None and o.state is OrderState.RESTING
        }
        missing, extra = compare_orders(settled, venue)
        strays = [venue[oid] for oid in extra if self.tracker.get(oid) is None]
        return strays, [settled[oid].client_order_id for oid in missing]


def _utc_day(now_ns: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(now_ns // 1_000_000_000))


def _entry_price(position: VenuePosition, qty: Qty) -> Price:
    """The average YES entry price of a venue position's ``qty`` contracts (long or short)."""
    if not position.position or not position.market_exposure:
        return ONE_DOLLAR // 2
    per_contract = abs(position.market_exposure * QTY_SCALE // position.position) // 100
    price = per_contract if qty > 0 else ONE_DOLLAR - per_contract
    return min(max(price, 1), ONE_DOLLAR - 1)
