"""Ingest → normalize → decide, inline, one websocket frame at a time.

Theory of operation
-------------------
The receive loop hands every frame to :meth:`Pipeline.on_frame` with its receive time. The
frame is decoded once (orjson), its ``seq`` is checked against its subscription, and an
order-book message is applied to that market's :class:`~kmm.book.orderbook.OrderBook`. Only
when the top of the book changes does the market go to :meth:`Pipeline.decide`, which updates
the volatility estimate and computes an Avellaneda–Stoikov quote. A quote that differs from
the market's previous one is put in the :class:`QuoteMailbox`, which keeps only the newest
quote per market: the executor always works on the latest target and a backlog of stale
targets cannot build up. There is no queue hop anywhere on this path (see PERF.md).

A sequence gap makes every market on that subscription untrusted: their quotes are pulled
(an empty quote goes to the mailbox) and the subscription id is queued for a resnapshot, which
the websocket shell requests with ``update_subscription``/``get_snapshot``. A market is
trusted again when its fresh snapshot arrives. A book integrity error (a level would go
negative) does the same for the subscription of that market. A crossed book is not quoted.

The fair price leaves our own orders out. Each market keeps our resting orders (the
trading core sets them from its order tracker), and the mid or microprice is taken from the
book without them, level by level (:meth:`~kmm.book.orderbook.OrderBook.top_without`): a
quoter that centred on a book holding its own quotes would chase them. When our orders are
all one side has, the whole book's fair price is used. A size change at a level where we rest
is decided again even with the mid as fair price, since it can uncover or hide others there.
The post-only guards still use the whole book (our own bid is as much in the way of an ask as
anyone's).

Everything that is not order-book traffic (fills, order updates, positions, lifecycle,
command replies) is returned to the caller; trades also feed the κ estimator and lifecycle
messages update a market's close time and price grid.

A frame the decoder refuses (malformed, or a value out of range) is counted by kind in
``stats.rejected`` and the :class:`~kmm.errors.WireError` goes on to the caller, which logs
the first of each kind and carries on. A refused order-book frame may have carried a change,
so its subscription is treated like a gap: its ``seq`` is taken as consumed, its markets are
pulled and a resnapshot is queued. A price band update that the grid refuses (a step of 0,
overlapping bands, a gap, not reaching $0 or $1) keeps the market's old grid, pulls its
quotes until its next snapshot, and is refused the same way (kind
``market_lifecycle_v2.price_ranges``).

The module is pure: no I/O, no clock reads (``now_ns`` is passed in).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Final, Literal

import orjson

from kmm.book.grid import PriceGrid
from kmm.book.orderbook import OrderBook
from kmm.book.sequence import SeqStatus, SequenceTracker
from kmm.errors import BookIntegrityError, WireError
from kmm.kalshi.wire import (
    BookDelta,
    BookSnapshot,
    DeltaSink,
    Event,
    MarketLifecycle,
    Trade,
    WireDecoder,
)
from kmm.strategy.alpha import AlphaFn, zero_alpha
from kmm.strategy.book_guard import BookGuard, BookGuardParams
from kmm.strategy.exit import ExitPlan, exit_quote
from kmm.strategy.flow import TakerFlow
from kmm.strategy.quoter import (
    QuoteInputs,
    Quoter,
    QuoteTerms,
    StrategyParams,
    compute_quote,
    quote_bands,
    quote_terms,
)
from kmm.strategy.throttles import MarketThrottle, ThrottleParams, throttle_quote
from kmm.strategy.toxicity import ToxicityGuard, ToxicityParams
from kmm.strategy.volatility import EwmaVolatility, KappaEstimator
from kmm.types import ONE_DOLLAR, QTY_SCALE, BookSide, Outcome, Price, Qty, Quote

__all__ = ["MarketSpec", "MarketState", "Pipeline", "PipelineStats", "QuoteMailbox"]

FairValue = Literal["mid", "microprice"]
_YES = Outcome.YES
_OK = SeqStatus.OK
_GAP = SeqStatus.GAP
_BOOK_TYPES: Final = frozenset({"orderbook_delta", "orderbook_snapshot"})
_LIFECYCLE: Final = "market_lifecycle_v2"


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """What the pipeline needs to know about a market besides its book.

    Attributes:
        ticker: The market ticker.
        grid: The market's valid prices (from its ``price_ranges``).
        close_ns: The market's close time in Unix nanoseconds, or ``None`` if unknown
            (τ is then the strategy's horizon).
        maker_fee_rate: The maker fee coefficient of the market's series times its
            multiplier (``kmm.fees.maker_fee_rate``); 0.0 when makers pay nothing.
        event_ticker: The market's event ("" if unknown): its markets move together, and
            risk caps their dollar exposure together.
        category: The category of the event's series ("" if unknown), capped together too.
        max_position: This market's own position cap (0.01 contracts), below the global
            one (discovery's budget), or ``None``: the global cap.
    """

    ticker: str
    grid: PriceGrid
    close_ns: int | None = None
    maker_fee_rate: float = 0.0
    event_ticker: str = ""
    category: str = ""
    max_position: Qty | None = None


@dataclass(slots=True)
class MarketState:
    """The pipeline's mutable state for one market."""

    spec: MarketSpec
    book: OrderBook
    vol: EwmaVolatility
    kappa: KappaEstimator
    params: StrategyParams
    """The quoting parameters of this market (the pipeline's, with its own position cap)."""
    sid: int | None = None
    quote: Quote | None = None
    last_book_ns: int = 0
    decided_bid: Price | None = None
    decided_ask: Price | None = None
    own_yes: dict[Price, Qty] = field(default_factory=dict)
    """Our resting YES bids, price to remaining (kept by the trading core)."""
    own_no: dict[Price, Qty] = field(default_factory=dict)
    """Our resting YES asks as NO bids (NO-leg prices), price to remaining."""
    throttle: MarketThrottle | None = None
    """The quote's throttles (None: none), and when one of its holds may end."""
    flow: TakerFlow | None = None
    """The net taker flow that skews the quote (None: no skew)."""
    toxicity: ToxicityGuard | None = None
    """The adverse-selection guard that widens the quote (None: none)."""
    book_guard: BookGuard | None = None
    """The spread-shock and thin-book guards (None: none)."""
    inputs: QuoteInputs | None = None
    """What the last decision's quote was computed from (for the tape)."""
    held: str = ""
    """Which throttle held which side at the last decision (``""``: none)."""
    recheck_ns: int | None = None
    exit: ExitPlan | None = None
    """The market's exit, which replaces its quotes (None: quoted as usual)."""

    def others_top(self) -> tuple[Price | None, Qty, Price | None, Qty]:
        """The best bid and ask of the book without our own orders, with their sizes."""
        book = self.book
        if not self.own_yes and not self.own_no:
            return book.best_bid, book.best_bid_qty, book.best_ask, book.best_ask_qty
        return book.top_without(self.own_yes, self.own_no)

    def others_fair(
        self,
        fair_value: FairValue,
        top: tuple[Price | None, Qty, Price | None, Qty] | None = None,
    ) -> float | None:
        """The fair price of the book without our own orders (the mid or the microprice);
        the whole book's when our orders are all one side has. ``top``: :meth:`others_top`,
        if already read."""
        bid, bid_qty, ask, ask_qty = self.others_top() if top is None else top
        if bid is None or ask is None:
            book = self.book
            return book.microprice() if fair_value == "microprice" else book.mid()
        if fair_value == "microprice":
            return (bid * ask_qty + ask * bid_qty) / (bid_qty + ask_qty)
        return (bid + ask) / 2


@dataclass(slots=True)
class PipelineStats:
    """Counters for the summary line and the ops log.

    ``rejected`` counts refused frames by :attr:`~kmm.errors.WireError.kind`
    (``"fill.yes_price_dollars"``, ``"frame.json"``, ...).
    """

    frames: int = 0
    snapshots: int = 0
    decisions: int = 0
    stale: int = 0
    gaps: int = 0
    integrity_errors: int = 0
    unknown_market: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


class QuoteMailbox:
    """The newest target quote per market; ``put`` overwrites, ``take`` empties.

    Args:
        on_put: Called after every ``put`` (the async shell sets an event here to wake the
            executor); ``None`` for no callback.
    """

    __slots__ = ("_on_put", "_slots")

    def __init__(self, on_put: Callable[[], None] | None = None) -> None:
        self._slots: dict[str, Quote] = {}
        self._on_put = on_put

    def put(self, quote: Quote) -> None:
        """Replaces the pending quote of ``quote.ticker``."""
        self._slots[quote.ticker] = quote
        if self._on_put is not None:
            self._on_put()

    def take(self) -> dict[str, Quote]:
        """Returns every pending quote and empties the mailbox."""
        pending, self._slots = self._slots, {}
        return pending

    def __len__(self) -> int:
        return len(self._slots)


def empty_quote(ticker: str) -> Quote:
    """A quote with neither side: the executor cancels everything in that market."""
    return Quote(ticker, None, 0, None, 0)


@dataclass(slots=True)
class Pipeline:
    """Decodes frames, keeps the books, and decides quotes for a set of markets.

    Args:
        params: The quoting parameters.
        new_vol: Makes a volatility estimator for a new market.
        new_kappa: Makes a κ estimator for a new market.
        inventory: Returns the signed position (YES +, NO −) the quoter should assume for a
            market; the live engine passes its worst-case exposure.
        mailbox: Where decided quotes go.
        use_yes_price: The ``use_yes_price`` convention of the orderbook subscription.
        alpha: External skew in price units, added to the reservation price.
        fair_value: ``"mid"`` or ``"microprice"`` as the quoter's fair price.
        subaccount: The account messages to decode (the bot's subaccount; ``None``: all).
        quoter: What turns a market's inputs into its quote (:func:`compute_quote`, or a
            baseline of :mod:`kmm.strategy.baselines`).
        throttle: When to hold a side after a fill or in a jump
            (:mod:`kmm.strategy.throttles`); ``None``: never.
        new_flow: Makes a market's taker-flow skew (:mod:`kmm.strategy.flow`); ``None``:
            no skew.
        toxicity: When our fills count as picked off and how much wider to quote then
            (:mod:`kmm.strategy.toxicity`); ``None``: never.
        book_guard: When others' book counts as shocked or thin
            (:mod:`kmm.strategy.book_guard`); ``None``: never.
        own_orders_out: Quote off the book without our own orders (kmm); ``False`` quotes
            off the whole book, as the scoreboard's baselines do. Marks leave them out either
            way, so every quoter's P&L is measured alike.
    """

    params: StrategyParams
    new_vol: Callable[[], EwmaVolatility]
    new_kappa: Callable[[], KappaEstimator]
    inventory: Callable[[str], Qty]
    mailbox: QuoteMailbox
    use_yes_price: bool = True
    alpha: AlphaFn = zero_alpha
    fair_value: FairValue = "mid"
    subaccount: int | None = None
    quoter: Quoter = compute_quote
    throttle: ThrottleParams | None = None
    new_flow: Callable[[], TakerFlow] | None = None
    toxicity: ToxicityParams | None = None
    book_guard: BookGuardParams | None = None
    own_orders_out: bool = True
    markets: dict[str, MarketState] = field(default_factory=dict)
    market_params: dict[str, StrategyParams] = field(default_factory=dict)
    """Markets quoted with parameters of their own (an operator's override), by ticker."""
    stats: PipelineStats = field(default_factory=PipelineStats)
    decoder: WireDecoder = field(init=False)
    tracker: SequenceTracker = field(default_factory=SequenceTracker)
    _resync: set[int] = field(default_factory=set)
    _now_ns: int = 0
    _size_sensitive: bool = False
    _decode_into: Callable[[bytes | str, DeltaSink], Event | None] = field(init=False)
    _seq_last: dict[int, int] = field(init=False)

    def __post_init__(self) -> None:
        self.decoder = WireDecoder(self.use_yes_price, self.subaccount)
        self._decode_into = self.decoder.decode_into
        self._seq_last = self.tracker.last_by_sid
        # With the mid as fair value, a change of size alone at the top cannot move a quote
        self._size_sensitive = self.fair_value == "microprice"

    def set_own_orders(
        self, ticker: str, own_yes: dict[Price, Qty], own_no: dict[Price, Qty], now_ns: int
    ) -> None:
        """Our resting orders in a market changed: the fair price leaves them out, so the
        market is decided again when they differ from what it last knew."""
        market = self.markets.get(ticker)
        if market is None or (own_yes == market.own_yes and own_no == market.own_no):
            return
        market.own_yes, market.own_no = own_yes, own_no
        if market.book.trusted:
            self.decide(ticker, now_ns)

    def on_own_fill(self, ticker: str, is_bid: bool, price: Price, now_ns: int) -> None:
        """One of our orders filled (``is_bid``: our bid) at ``price``: its side's throttle
        starts, and the toxicity guard will check its markout."""
        market = self.markets.get(ticker)
        if market is None:
            return
        if market.throttle is not None:
            market.throttle.on_fill(is_bid, now_ns)
        if market.toxicity is not None:
            market.toxicity.on_fill(is_bid, price, now_ns)

    def recheck(self, now_ns: int) -> None:
        """Decides again every market whose throttle hold may have ended by ``now_ns``."""
        for ticker, market in self.markets.items():
            if market.recheck_ns is not None and market.recheck_ns <= now_ns:
                market.recheck_ns = None
                if market.book.trusted:
                    self.decide(ticker, now_ns)

    def base_params(self, ticker: str) -> StrategyParams:
        """A market's own parameters (:attr:`market_params`), or the pipeline's."""
        return self.market_params.get(ticker, self.params)

    def add_market(self, spec: MarketSpec) -> MarketState:
        """Starts tracking a market; its book is untrusted until a snapshot arrives."""
        params = self.base_params(spec.ticker)
        if spec.max_position is not None and spec.max_position < params.max_position:
            params = replace(params, max_position=spec.max_position)
        state = MarketState(spec, OrderBook(spec.ticker), self.new_vol(), self.new_kappa(), params)
        if self.throttle is not None:
            state.throttle = MarketThrottle(self.throttle)
        if self.new_flow is not None:
            state.flow = self.new_flow()
        if self.toxicity is not None:
            state.toxicity = ToxicityGuard(self.toxicity)
        if self.book_guard is not None:
            state.book_guard = BookGuard(self.book_guard)
        self.markets[spec.ticker] = state
        return state

    def set_max_position(self, ticker: str, cap: Qty) -> None:
        """A market's own position cap from now on (never above its base parameters')."""
        market = self.markets[ticker]
        base = self.base_params(ticker)
        market.params = replace(market.params, max_position=min(cap, base.max_position))
        market.spec = replace(market.spec, max_position=cap)

    def set_params(self, ticker: str, params: StrategyParams | None, now_ns: int) -> None:
        """A market's quoting parameters from now on (``None``: its base parameters, within
        the market's own cap), and a fresh decision."""
        market = self.markets[ticker]
        base = params if params is not None else self.base_params(ticker)
        cap = market.spec.max_position
        if cap is not None and cap < base.max_position:
            base = replace(base, max_position=cap)
        market.params = base
        if market.book.trusted:
            self.decide(ticker, now_ns)

    def sample(self, ticker: str) -> tuple[float | None, Price | None, Qty]:
        """A market's fair price without our orders, others' spread and the thinner side's
        top size, from its book (``(None, None, 0)`` while the book is untrusted)."""
        market = self.markets.get(ticker)
        if market is None or not market.book.trusted:
            return None, None, 0
        top = market.others_top()
        bid, bid_qty, ask, ask_qty = top
        if bid is None or ask is None:
            return None, None, 0
        fair = market.others_fair(self.fair_value, top)
        return fair, ask - bid, bid_qty if bid_qty < ask_qty else ask_qty

    def on_frame(self, frame: bytes | str, now_ns: int) -> Event | None:
        """Handles one websocket frame received at ``now_ns``.

        Returns:
            The decoded event when it is something the caller must handle (fills, orders,
            positions, lifecycle, command replies); ``None`` for order-book traffic, which
            the pipeline consumed, and for unknown message types.

        Raises:
            WireError: for a malformed or out-of-range frame, already counted in
                ``stats.rejected`` (the caller logs it and carries on).
        """
        self.stats.frames += 1
        self._now_ns = now_ns
        try:
            event = self._decode_into(frame, self._on_delta)
            if event is None:
                return None
            if type(event) is BookSnapshot:
                self._on_snapshot(event, now_ns)
                return None
            if type(event) is BookDelta:  # from decode(); decode_into hands deltas over
                self._on_delta(
                    event.sid, event.seq, event.ticker, event.side is _YES, event.price, event.delta
                )
                return None
            if type(event) is Trade:
                self._on_trade(event)
            elif type(event) is MarketLifecycle:
                self._on_lifecycle(event)
            return event
        except WireError as e:
            self._refused(e, frame)
            raise

    def _refused(self, error: WireError, frame: bytes | str) -> None:
        """Counts a refused frame; a refused book frame is handled like a gap on its sid."""
        self.stats.rejected[error.kind] += 1
        if error.msg_type not in _BOOK_TYPES:
            return
        sid, seq = _sid_and_seq(frame)
        if sid is None:
            return
        last = self.tracker.last(sid)
        if seq is not None and (last is None or seq > last):
            self.tracker.reset(sid, seq)
        self._distrust(sid)

    @property
    def needs_resync(self) -> bool:
        """Whether some subscription is waiting for a fresh snapshot (see take_resync)."""
        return bool(self._resync)

    def take_resync(self) -> list[int]:
        """Returns the subscription ids that need a fresh snapshot, and forgets them."""
        sids = sorted(self._resync)
        self._resync.clear()
        return sids

    def tickers_on(self, sid: int) -> list[str]:
        """The tickers whose books arrive on subscription ``sid``."""
        return [t for t, m in self.markets.items() if m.sid == sid]

    def decide(self, ticker: str, now_ns: int) -> Quote:
        """Computes the market's quote now and posts it if it changed.

        Called when the best bid or ask price changes (or the size at either, when the fair
        value is the microprice), and by the engine when inventory changes.
        """
        market = self.markets[ticker]
        quote = self._quote(market, now_ns)
        self.stats.decisions += 1
        if quote != market.quote:
            market.quote = quote
            self.mailbox.put(quote)
        return quote

    def _on_delta(
        self, sid: int, seq: int, ticker: str, is_yes: bool, price: Price, delta: Qty
    ) -> None:
        """Sequence check, book update and, if the top moved, a decision (the hot path)."""
        last = self._seq_last.get(sid)
        if last is not None and seq == last + 1:
            self._seq_last[sid] = seq
        elif not self._accept_out_of_order(sid, seq):
            return
        market = self.markets.get(ticker)
        if market is None:
            self.stats.unknown_market += 1
            return
        book = market.book
        if not book.trusted:
            return
        try:
            moved = book.apply_delta(is_yes, price, delta)
        except BookIntegrityError:
            self.stats.integrity_errors += 1
            self._distrust(sid)
            return
        now_ns = self._now_ns
        market.last_book_ns = now_ns
        if moved and (
            self._size_sensitive
            or book.best_bid != market.decided_bid
            or book.best_ask != market.decided_ask
            or price in (market.own_yes if is_yes else market.own_no)
        ):
            self.decide(ticker, now_ns)

    def _accept_out_of_order(self, sid: int, seq: int) -> bool:
        """The tracker's verdict on a ``seq`` that is not the next one (or a first one)."""
        status = self.tracker.check(sid, seq)
        if status is _OK:
            return True
        if status is _GAP:
            self.stats.gaps += 1
            self._distrust(sid)
        else:
            self.stats.stale += 1
        return False

    def _on_snapshot(self, snap: BookSnapshot, now_ns: int) -> None:
        self.stats.snapshots += 1
        self.tracker.reset(snap.sid, snap.seq)
        market = self.markets.get(snap.ticker)
        if market is None:
            self.stats.unknown_market += 1
            return
        market.sid = snap.sid
        try:
            market.book.apply_snapshot(snap.yes, snap.no)
        except BookIntegrityError:
            self.stats.integrity_errors += 1
            self._distrust(snap.sid)
            return
        market.book.trusted = True
        market.last_book_ns = now_ns
        self.decide(snap.ticker, now_ns)

    def _on_trade(self, trade: Trade) -> None:
        market = self.markets.get(trade.ticker)
        if market is None:
            return
        if market.flow is not None:
            bought = trade.taker_book_side is BookSide.BID
            market.flow.on_trade(bought, trade.qty / QTY_SCALE, self._now_ns)
        fair = market.book.mid()
        if fair is not None:
            market.kappa.update(trade.yes_price, fair / ONE_DOLLAR)

    def _on_lifecycle(self, event: MarketLifecycle) -> None:
        market = self.markets.get(event.ticker)
        if market is None:
            return
        spec = market.spec
        regrid = event.price_ranges is not None and event.price_ranges != spec.grid.ranges
        if regrid:
            spec = replace(spec, grid=self._new_grid(event))
        if event.close_ts is not None:
            spec = replace(spec, close_ns=event.close_ts * 1_000_000_000)
        market.spec = spec
        if regrid and market.book.trusted:
            self.decide(event.ticker, self._now_ns)  # the quote snaps onto the new grid

    def _new_grid(self, event: MarketLifecycle) -> PriceGrid:
        """The grid of a band update; a band the grid refuses pulls the market, keeps its
        grid and refuses the frame."""
        assert event.price_ranges is not None
        try:
            return PriceGrid.from_ranges(event.price_ranges, whole=True)
        except ValueError as e:
            self.pull(event.ticker)
            raise WireError(
                _LIFECYCLE,
                f"{event.ticker}: price_ranges refused, the old grid stays: {e}",
                field="price_ranges",
            ) from e

    def pull(self, ticker: str) -> None:
        """Marks one market untrusted and posts an empty quote (closed, deactivated ...).

        Quoting resumes on the market's next snapshot.
        """
        market = self.markets[ticker]
        market.book.trusted = False
        market.quote = empty_quote(ticker)
        self.mailbox.put(market.quote)

    def pull_all(self) -> None:
        """:meth:`pull` for every market (the connection was lost: resnapshots follow)."""
        for ticker in self.markets:
            self.pull(ticker)

    def _distrust(self, sid: int) -> None:
        """Marks every market on ``sid`` untrusted, pulls its quotes, queues a resnapshot."""
        self._resync.add(sid)
        for ticker, market in self.markets.items():
            if market.sid == sid and market.book.trusted:
                market.book.trusted = False
                market.quote = empty_quote(ticker)
                self.mailbox.put(market.quote)

    def _quote(self, market: MarketState, now_ns: int) -> Quote:
        book = market.book
        spec = market.spec
        ticker = spec.ticker
        best_bid = market.decided_bid = book.best_bid
        best_ask = market.decided_ask = book.best_ask
        if self.own_orders_out:
            others = market.others_top()
            fair = market.others_fair(self.fair_value, others)
        else:  # a scoreboard baseline quotes off the whole book, its own orders in it
            others = (best_bid, book.best_bid_qty, best_ask, book.best_ask_qty)
            fair = book.microprice() if self.fair_value == "microprice" else book.mid()
        if not book.trusted or fair is None or book.is_crossed():
            return empty_quote(ticker)
        vol = market.vol
        vol.update(fair / ONE_DOLLAR, now_ns)
        toxicity = market.toxicity
        if toxicity is not None:
            toxicity.on_fair(fair, now_ns)
        inputs = QuoteInputs(
            fair,
            best_bid,
            best_ask,
            self.inventory(ticker),
            self._tau_s(spec, now_ns),
            vol.sigma(),
            market.kappa.kappa(),
            spec.maker_fee_rate,
            self.alpha(ticker, now_ns) + (market.flow.skew(now_ns) if market.flow else 0.0),
            others[0],
            others[2],
            toxicity.widen if toxicity is not None else 0.0,
        )
        market.inputs = inputs
        if market.exit is not None:
            return self._exit_quote(market, fair, others)
        params = market.params
        quote = self.quoter(ticker, inputs, params, spec.grid)
        market.held = _joined(
            quote_bands(inputs, params) if self.quoter is compute_quote else "",
            "toxic" if inputs.widen else "",
        )
        guard = market.book_guard
        if guard is not None:
            guard.on_book(others, now_ns)
            quote, acted = guard.apply(quote, self.params.lot_qty)
            market.held = _joined(market.held, acted)
        throttle = market.throttle
        if throttle is None:
            return quote
        throttle.on_fair(fair, now_ns)
        if throttle.idle(now_ns):
            market.recheck_ns = None
            return quote
        market.recheck_ns = throttle.next_change_ns(now_ns)
        held = throttle.held(now_ns)
        if held != (None, None):
            market.held = _held_text(held, market.held)
        return throttle_quote(quote, held)

    def set_exit(self, ticker: str, plan: ExitPlan | None, now_ns: int) -> None:
        """Starts (or, with ``None``, ends) a market's exit and decides the market again.

        A plan without an anchor takes the fair price of the next decision as its anchor.
        """
        market = self.markets[ticker]
        market.exit = plan
        market.recheck_ns = None
        if market.book.trusted:
            self.decide(ticker, now_ns)

    def _exit_quote(
        self,
        market: MarketState,
        fair: float,
        others: tuple[Price | None, Qty, Price | None, Qty],
    ) -> Quote:
        plan = market.exit
        assert plan is not None
        if plan.anchor is None:
            plan = market.exit = replace(plan, anchor=fair)
        market.held = f"exit:{plan.style}"
        ticker = market.spec.ticker
        book = market.book
        return exit_quote(
            ticker,
            self.inventory(ticker),
            (book.best_bid, book.best_ask, others[0], others[2]),
            plan,
            market.spec.grid,
            self.params.max_order_qty,
        )

    def terms(self, ticker: str) -> tuple[QuoteInputs, QuoteTerms, str] | None:
        """What produced a market's last quote (None: it had no fair price): its inputs, the
        model's terms and which throttle held a side."""
        market = self.markets.get(ticker)
        inputs = market.inputs if market is not None else None
        if market is None or inputs is None or not market.book.trusted:
            return None
        terms = quote_terms(inputs, market.params)
        return None if terms is None else (inputs, terms, market.held)

    def _tau_s(self, spec: MarketSpec, now_ns: int) -> float:
        if spec.close_ns is None:
            return self.params.horizon_s
        return max(0.0, (spec.close_ns - now_ns) / 1e9)


def _joined(first: str, second: str) -> str:
    return f"{first} {second}" if first and second else first or second


def _held_text(held: tuple[str | None, str | None], also: str) -> str:
    """``("jump", "jump")`` as ``"jump"``, ``("fill_cooldown", None)`` as
    ``"bid:fill_cooldown"``; ``also`` (a band, ``"toxic"``) is kept in front."""
    bid, ask = held
    parts = [also] if also else []
    if bid is not None and bid == ask:
        parts.append(bid)
    else:
        parts += [f"{side}:{why}" for side, why in (("bid", bid), ("ask", ask)) if why]
    return " ".join(parts)


def _sid_and_seq(frame: bytes | str) -> tuple[int | None, int | None]:
    """The top-level integer ``sid`` and ``seq`` of a refused frame, where it has them."""
    try:
        obj = orjson.loads(frame)
    except orjson.JSONDecodeError:
        return None, None
    if type(obj) is not dict:
        return None, None
    sid, seq = obj.get("sid"), obj.get("seq")
    return (sid if type(sid) is int else None), (seq if type(seq) is int else None)
