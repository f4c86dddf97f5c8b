"""Candlesticks of the local exchange, built from what really happened on it.

Theory of operation
-------------------
A candlestick of ``P`` minutes whose ``end_period_ts`` is ``E`` (Unix seconds, a multiple of
``P`` minutes counted from the epoch) covers the moments after ``E - P`` up to and including
``E``: the end is inclusive, as Kalshi documents it. A period gets a candlestick only if
something happened in its market during it (a book change, a trade, a settlement); quiet
periods are left out, and a client that wants continuity asks for
``include_latest_before_start``. A candlestick has three parts:

* **Top of book** (``yes_bid``, ``yes_ask``). A :class:`CandleRecorder` listens to the
  venue's engine events. It mirrors each market's bid levels from the ``BookChange`` events,
  so it knows the best YES bid and the best YES ask ($1 minus the best NO bid) after every
  single event, at that event's own time, even when one published batch spans minutes of
  background flow. Before an event it opens the bucket of the event's period if that period
  is new: the bucket's ``open`` is the quote in force until then, i.e. the quote at the
  start of the period. After the event it widens the bucket's high and low and moves its
  close. An empty side reads as a YES bid of $0 and a YES ask of $1, as the ``Market``
  object and the ``ticker`` channel show it.
* **Open interest**. The recorder follows it event by event from each fill's
  ``post_position`` (the engine's own arithmetic: the change in the holder's YES contracts)
  and from settlement (zero). The bucket keeps the value at the end of the period.
* **Trades** (``price``, ``volume_fp``), computed when asked from the engine's public trades
  (``MatchingEngine.trades``): first, last, lowest and highest trade price, the
  volume-weighted mean price (exact, rounded half up to $0.000001), the volume, and the last
  trade price before the period (``previous``). ``min``/``max`` are the lowest and highest
  *close* among the period's one-minute sub-periods that traded (for a one-minute candle
  both equal the close). The engine's trade list is in the order trades were booked, which
  is not quite time order when background flow catches up behind a REST write, so the
  trades are sorted by time for each request.

**Memory** is bounded per market. Buckets are kept in three tiers, one minute, one hour and
one day, each a deque of finished buckets with a cap (:data:`TIERS`) plus the current one; a
period of ``P`` minutes is aggregated from the coarsest tier whose length divides ``P``.
Periods whose buckets have been dropped get no candlestick.

**Consistency.** An event whose time lies before the market's current bucket (background flow
that catches up behind a REST write) counts in the current bucket. After each batch the
recorder compares its mirror with the engine (best prices, open interest) and, should they
differ because some events never reached it, reloads the mirror and corrects the current
buckets' close.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Final, NamedTuple

from kmm.sim.engine import (
    BookChange,
    EngineEvent,
    FillEvent,
    MarketLifecycle,
    MatchingEngine,
    TradePrint,
)
from kmm.types import ONE_DOLLAR, BookSide, Money, Outcome, Price, Qty

__all__ = [
    "MINUTE_S",
    "TIERS",
    "Bucket",
    "Candle",
    "CandleRecorder",
    "TradeStats",
    "adjusted_end",
    "trade_stats",
]

MINUTE_S: Final = 60
_NS_PER_S: Final = 1_000_000_000
_MONEY_PER_PRICE: Final = 100
"""Money units ($0.000001) per price unit ($0.0001)."""

TIERS: Final[tuple[tuple[int, int], ...]] = (
    (MINUTE_S, 3 * 24 * 60),
    (60 * MINUTE_S, 90 * 24),
    (24 * 60 * MINUTE_S, 3 * 366),
)
"""``(period in seconds, finished buckets kept)``: three days of minutes, ninety days of hours
and three years of days, per market."""


def _period_end(ts_ns: int, period_s: int) -> int:
    """The ``end_period_ts`` of the period of ``period_s`` seconds that holds ``ts_ns``."""
    period_ns = period_s * _NS_PER_S
    return -(-ts_ns // period_ns) * period_s


@dataclass(slots=True)
class Bucket:
    """The top of book and open interest of one market over one period.

    Attributes:
        end_s: The period's inclusive end, Unix seconds.
        bid_open, bid_high, bid_low, bid_close: The best YES bid (0 when there is none).
        ask_open, ask_high, ask_low, ask_close: The best YES ask ($1 when there is none).
        open_interest: Contracts outstanding at the end of the period.
    """

    end_s: int
    bid_open: Price
    bid_high: Price
    bid_low: Price
    bid_close: Price
    ask_open: Price
    ask_high: Price
    ask_low: Price
    ask_close: Price
    open_interest: Qty

    @classmethod
    def flat(cls, end_s: int, bid: Price, ask: Price, open_interest: Qty) -> Bucket:
        """A bucket in which the quote stayed at ``bid``/``ask``."""
        return cls(end_s, bid, bid, bid, bid, ask, ask, ask, ask, open_interest)

    def observe(self, bid: Price, ask: Price, open_interest: Qty) -> None:
        """Takes in the quote and open interest after one event of the period."""
        if bid > self.bid_high:
            self.bid_high = bid
        elif bid < self.bid_low:
            self.bid_low = bid
        if ask > self.ask_high:
            self.ask_high = ask
        elif ask < self.ask_low:
            self.ask_low = ask
        self.bid_close = bid
        self.ask_close = ask
        self.open_interest = open_interest

    def extend(self, later: Bucket) -> None:
        """Merges the next bucket of the same longer period into this one."""
        self.bid_high = max(self.bid_high, later.bid_high)
        self.bid_low = min(self.bid_low, later.bid_low)
        self.ask_high = max(self.ask_high, later.ask_high)
        self.ask_low = min(self.ask_low, later.ask_low)
        self.bid_close = later.bid_close
        self.ask_close = later.ask_close
        self.open_interest = later.open_interest


@dataclass(slots=True)
class TradeStats:
    """The public trades of one market over one period.

    Attributes:
        open, high, low, close: Trade prices, ``None`` without trades.
        mean: The volume-weighted mean price in money units ($0.000001), or ``None``.
        previous: The last trade price before the period, or ``None``.
        min_close, max_close: The lowest and highest one-minute close in the period.
        volume: Contracts traded.
    """

    open: Price | None = None
    high: Price | None = None
    low: Price | None = None
    close: Price | None = None
    mean: Money | None = None
    previous: Price | None = None
    min_close: Price | None = None
    max_close: Price | None = None
    volume: Qty = 0

    @property
    def last_price(self) -> Price | None:
        """The last trade price at or before the end of the period."""
        return self.close if self.close is not None else self.previous


class Candle(NamedTuple):
    """One candlestick: the recorded top of book and the trades of its period."""

    book: Bucket
    trades: TradeStats


class _Tier:
    """The buckets of one market at one period length: finished ones (capped) and the current."""

    __slots__ = ("current", "done", "period_s")

    def __init__(self, period_s: int, keep: int) -> None:
        self.period_s = period_s
        self.done: deque[Bucket] = deque(maxlen=keep)
        self.current: Bucket | None = None

    def enter(self, end_s: int, bid: Price, ask: Price, open_interest: Qty) -> None:
        """Opens the bucket ending at ``end_s`` with the quote in force, if it is a new period."""
        current = self.current
        if current is not None:
            if end_s <= current.end_s:
                return
            self.done.append(current)
        self.current = Bucket.flat(end_s, bid, ask, open_interest)

    def buckets(self) -> list[Bucket]:
        """Every bucket kept, oldest first."""
        current = self.current
        return [*self.done, current] if current is not None else list(self.done)


class _MarketBook:
    """The recorder's mirror of one market: bid levels, best prices, open interest, buckets."""

    __slots__ = ("best", "levels", "open_interest", "tiers")

    def __init__(self, yes: dict[Price, Qty], no: dict[Price, Qty], open_interest: Qty) -> None:
        self.levels = (yes, no)
        self.best: list[Price | None] = [max(yes, default=None), max(no, default=None)]
        self.open_interest = open_interest
        self.tiers = tuple(_Tier(period_s, keep) for period_s, keep in TIERS)

    def quote(self) -> tuple[Price, Price]:
        """The best YES bid (0 if none) and YES ask ($1 if none)."""
        bid, no = self.best
        return (0 if bid is None else bid), (ONE_DOLLAR if no is None else ONE_DOLLAR - no)

    def enter(self, ts_ns: int) -> None:
        """Opens the buckets of the period of ``ts_ns`` (before applying an event at it)."""
        minute = self.tiers[0]
        end_s = _period_end(ts_ns, minute.period_s)
        if minute.current is not None and end_s <= minute.current.end_s:
            return  # periods nest: the same minute means the same hour and day
        bid, ask = self.quote()
        for tier in self.tiers:
            tier.enter(_period_end(ts_ns, tier.period_s), bid, ask, self.open_interest)

    def touch(self) -> None:
        """Records the current quote and open interest in the current buckets."""
        bid, ask = self.quote()
        open_interest = self.open_interest
        for tier in self.tiers:
            if tier.current is not None:
                tier.current.observe(bid, ask, open_interest)

    def change(self, side: int, price: Price, delta: Qty) -> bool:
        """Applies one level change of ``side`` (0: YES bids, 1: NO bids).

        Returns:
            Whether the best price of that side moved.
        """
        levels = self.levels[side]
        size = levels.get(price, 0) + delta
        best = self.best[side]
        if size > 0:
            levels[price] = size
            if best is None or price > best:
                self.best[side] = price
                return True
            return False
        levels.pop(price, None)
        if price != best:
            return False
        self.best[side] = max(levels, default=None)
        return True


class CandleRecorder:
    """Records every market's top of book and open interest from the engine's events.

    Register :meth:`on_events` with ``SimVenue.add_listener``; create the recorder when the
    engine's events so far have been drained, so that its mirror starts from the engine's
    book.

    Args:
        engine: The venue's engine (read for the starting books, the trades and checks).
    """

    def __init__(self, engine: MatchingEngine) -> None:
        self._engine = engine
        self._books: dict[str, _MarketBook] = {t: self._load(t) for t in engine.markets}
        self._handlers: dict[type, Callable[[EngineEvent], str | None]] = {
            BookChange: self._on_book_change,
            FillEvent: self._on_fill,
            TradePrint: self._on_trade,
            MarketLifecycle: self._on_lifecycle,
        }

    def _load(self, ticker: str) -> _MarketBook:
        engine = self._engine
        yes, no = engine.book_levels(ticker)
        return _MarketBook(
            {p: q for p, q in yes.items() if q > 0},
            {p: q for p, q in no.items() if q > 0},
            engine.open_interest(ticker),
        )

    def _book(self, ticker: str) -> _MarketBook:
        book = self._books.get(ticker)
        if book is None:  # a market added after the recorder started: its book was empty
            book = self._books[ticker] = _MarketBook({}, {}, 0)
        return book

    def on_events(self, events: Sequence[EngineEvent]) -> None:
        """Takes in one published batch of engine events, in order."""
        handlers = self._handlers
        touched: set[str] = set()
        for event in events:
            handler = handlers.get(type(event))
            if handler is not None:
                ticker = handler(event)
                if ticker is not None:
                    touched.add(ticker)
        for ticker in touched:
            self._check(ticker)

    def _on_book_change(self, event: EngineEvent) -> str:
        assert isinstance(event, BookChange)
        book = self._book(event.ticker)
        book.enter(event.ts_ns)
        if book.change(0 if event.outcome is Outcome.YES else 1, event.price, event.delta):
            book.touch()
        return event.ticker

    def _on_fill(self, event: EngineEvent) -> str:
        assert isinstance(event, FillEvent)
        fill = event.fill
        book = self._book(fill.ticker)
        book.enter(fill.ts_ns)
        change = _open_interest_change(fill.book_side, fill.count, fill.post_position)
        if change:
            book.open_interest += change
            book.touch()
        return fill.ticker

    def _on_trade(self, event: EngineEvent) -> str:
        assert isinstance(event, TradePrint)
        self._book(event.ticker).enter(event.ts_ns)
        return event.ticker

    def _on_lifecycle(self, event: EngineEvent) -> str | None:
        assert isinstance(event, MarketLifecycle)
        if event.event_type != "settled":
            return None
        book = self._book(event.ticker)
        book.enter(event.ts_ns)
        book.open_interest = 0
        book.touch()
        return event.ticker

    def _check(self, ticker: str) -> None:
        """Reloads the mirror of ``ticker`` if it drifted from the engine's book."""
        engine = self._engine
        book = self._book(ticker)
        bid, no = book.best
        expected_bid, expected_ask = engine.best(ticker)
        ask = None if no is None else ONE_DOLLAR - no
        open_interest = engine.open_interest(ticker)
        if (bid, ask) == (expected_bid, expected_ask) and book.open_interest == open_interest:
            return
        fresh = self._load(ticker)
        book.levels, book.best, book.open_interest = fresh.levels, fresh.best, fresh.open_interest
        book.touch()

    # ------------------------------------------------------------------ queries

    def candles(
        self, ticker: str, period_s: int, start_ts: int, end_ts: int, latest_before: bool = False
    ) -> list[Candle]:
        """The candlesticks of ``ticker`` ending in ``[start_ts, end_ts]`` (Unix seconds).

        Args:
            ticker: A market of the engine.
            period_s: The period, a whole number of minutes, in seconds.
            start_ts: Candlesticks ending on or after this time are included.
            end_ts: Candlesticks ending on or before this time are included.
            latest_before: Prepend a candlestick for the first period boundary at or after
                ``start_ts`` carrying the latest real candlestick before ``start_ts``: its
                quote and open interest, no trade prices, ``previous`` its last trade price.
                It is left out when a real candlestick ends at that boundary or the
                boundary is after ``end_ts``.
        """
        buckets = self.buckets(ticker, period_s)
        wanted = [b for b in buckets if start_ts <= b.end_s <= end_ts]
        trades = self._engine.trades(ticker)
        candles = [
            Candle(b, s) for b, s in zip(wanted, trade_stats(trades, period_s, wanted), strict=True)
        ]
        if latest_before:
            earlier = [b for b in buckets if b.end_s < start_ts]
            first_end = -(-start_ts // period_s) * period_s
            taken = bool(wanted) and wanted[0].end_s == first_end
            if earlier and not taken and first_end <= end_ts:
                candles.insert(0, self._carried(earlier[-1], trades, period_s, first_end))
        return candles

    @staticmethod
    def _carried(real: Bucket, trades: Sequence[TradePrint], period_s: int, end_s: int) -> Candle:
        last = trade_stats(trades, period_s, [real])[0].last_price
        book = Bucket.flat(end_s, real.bid_close, real.ask_close, real.open_interest)
        return Candle(book, TradeStats(previous=last))

    def buckets(self, ticker: str, period_s: int) -> list[Bucket]:
        """Every recorded bucket of ``ticker`` at ``period_s`` seconds, oldest first."""
        tiers = self._book(ticker).tiers
        tier = next(t for t in reversed(tiers) if period_s % t.period_s == 0)
        source = tier.buckets()
        if tier.period_s == period_s:
            return source
        return _aggregate(source, period_s)


def _open_interest_change(side: BookSide, count: Qty, post_position: Qty) -> Qty:
    """How one side of a fill changes open interest: its holder's change in YES contracts."""
    before = post_position - count if side is BookSide.BID else post_position + count
    return max(post_position, 0) - max(before, 0)


def _aggregate(buckets: Iterable[Bucket], period_s: int) -> list[Bucket]:
    """Merges consecutive buckets into buckets of ``period_s`` seconds (a multiple of theirs)."""
    out: list[Bucket] = []
    for bucket in buckets:
        end_s = -(-bucket.end_s // period_s) * period_s
        if out and out[-1].end_s == end_s:
            out[-1].extend(bucket)
        else:
            out.append(replace(bucket, end_s=end_s))
    return out


def trade_stats(
    trades: Sequence[TradePrint], period_s: int, buckets: Sequence[Bucket]
) -> list[TradeStats]:
    """The trade statistics of each of ``buckets``' periods (ascending ends), from ``trades``.

    Args:
        trades: The market's public trades, in any order.
        period_s: The period length in seconds.
        buckets: The periods wanted, by ``end_s``, ascending.
    """
    if not buckets:
        return []
    lo_ns = (buckets[0].end_s - period_s) * _NS_PER_S
    hi_ns = buckets[-1].end_s * _NS_PER_S
    previous: TradePrint | None = None
    window: list[TradePrint] = []
    for trade in trades:
        ts_ns = trade.ts_ns
        if ts_ns <= lo_ns:
            if previous is None or ts_ns >= previous.ts_ns:
                previous = trade
        elif ts_ns <= hi_ns:
            window.append(trade)
    window.sort(key=lambda t: t.ts_ns)
    last = None if previous is None else previous.yes_price
    out: list[TradeStats] = []
    i = 0
    for bucket in buckets:
        start_ns = (bucket.end_s - period_s) * _NS_PER_S
        while i < len(window) and window[i].ts_ns <= start_ns:
            last = window[i].yes_price
            i += 1
        j = i
        end_ns = bucket.end_s * _NS_PER_S
        while j < len(window) and window[j].ts_ns <= end_ns:
            j += 1
        stats = _stats(window[i:j], last)
        out.append(stats)
        last = stats.last_price
        i = j
    return out


def _stats(trades: Sequence[TradePrint], previous: Price | None) -> TradeStats:
    """The statistics of the trades of one period (in time order)."""
    if not trades:
        return TradeStats(previous=previous)
    prices = [t.yes_price for t in trades]
    volume = sum(t.count for t in trades)
    notional = sum(t.yes_price * t.count for t in trades) * _MONEY_PER_PRICE
    closes: dict[int, Price] = {}
    for trade in trades:
        closes[_period_end(trade.ts_ns, MINUTE_S)] = trade.yes_price
    return TradeStats(
        open=prices[0],
        high=max(prices),
        low=min(prices),
        close=prices[-1],
        mean=(2 * notional + volume) // (2 * volume),
        previous=previous,
        min_close=min(closes.values()),
        max_close=max(closes.values()),
        volume=volume,
    )


def adjusted_end(start_ts: int, end_ts: int, period_s: int, markets: int, limit: int) -> int:
    """``end_ts``, or an earlier end that keeps ``markets`` × periods within ``limit``.

    The periods counted are every period boundary in ``[start_ts, end_ts]``, whether or not
    it gets a candlestick (Kalshi's ``adjusted_end_ts``).
    """
    first = -(-start_ts // period_s)
    last = end_ts // period_s
    periods = last - first + 1
    if markets <= 0 or periods * markets <= limit:
        return end_ts
    keep = max(limit // markets, 1)
    return (first + keep - 1) * period_s
