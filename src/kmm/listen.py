"""``kmm watch TICKER``: one market's live feed, one readable line per event, never trading.

Theory of operation
-------------------
The shell (:func:`run_listen`) builds the venue's clients from the config as every read-only
command does (:func:`kmm.live.venue_feed`: the local exchange is started in-process for
``env: sim`` without URLs), checks the ticker with :func:`kmm.engine.select_markets` (an
unknown or closed market is a :class:`~kmm.errors.ConfigError`: one line, exit status 2),
and subscribes one :class:`~kmm.kalshi.ws.KalshiWs` to the market's ``orderbook_delta``,
``ticker`` and ``trade`` channels, to ``market_lifecycle_v2`` (which Kalshi does not filter
by market: other markets' messages are dropped here) and, with ``--with-private``, to our
``fill``, ``user_orders`` and ``market_positions`` of that market. It only moves frames and
lines; everything else is pure:

* :class:`MarketListener` decodes each frame with a :class:`~kmm.kalshi.wire.WireDecoder`,
  keeps the market's :class:`~kmm.book.orderbook.OrderBook` from the snapshot and the deltas
  and checks each delta's ``seq`` with a :class:`~kmm.book.sequence.SequenceTracker`, as the
  trading pipeline does: a gap, a delta the book refuses or a malformed book frame makes
  the book untrusted and queues its subscription for a fresh snapshot (the shell calls
  :meth:`KalshiWs.resync`, as the engine does); deltas are printed meanwhile without a top
  of book, until the snapshot arrives. A reconnect does the same. A malformed frame is
  re-raised after that, so the websocket client counts it, logs the first of each kind and
  skips it.
* The ``format_*`` functions turn one event into one line. Prices are Kalshi's dollar
  strings (:func:`~kmm.types.format_price`, ``$0.4500``), counts two-decimal contracts
  (:func:`~kmm.types.format_count`), money six-decimal dollars
  (:func:`~kmm.types.format_money`): every value stays an exact integer until it is text.
  Every line starts with the frame's receive time in UTC; our own account's lines (fills,
  orders, positions) are marked in capitals (``OUR FILL``).

Book lines are in YES terms, as :class:`OrderBook` answers: bids are YES bids, asks are YES
asks (a NO bid at n is a YES ask at $1 − n). A delta names the leg it changed, in that
leg's own price, and for a NO level also the YES ask it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Final, TextIO, TypeAlias

from kmm.book.orderbook import OrderBook
from kmm.book.sequence import SeqGap, SeqStatus, SequenceTracker
from kmm.config import KmmConfig, parse_tickers
from kmm.engine import select_markets
from kmm.errors import BookIntegrityError, ConfigError, WireError
from kmm.kalshi.auth import Signer
from kmm.kalshi.rest import KalshiRest, MarketInfo
from kmm.kalshi.wire import (
    BookDelta,
    BookSnapshot,
    ErrorMsg,
    Event,
    MarketLifecycle,
    MarketPosition,
    Subscribed,
    Ticker,
    Trade,
    UserOrder,
    WireDecoder,
)
from kmm.kalshi.ws import KalshiWs
from kmm.live import venue_feed
from kmm.types import (
    ONE_DOLLAR,
    BookSide,
    Fill,
    Money,
    Outcome,
    Price,
    Qty,
    format_count,
    format_money,
    format_price,
)

__all__ = [
    "LIFECYCLE_CHANNEL",
    "MARKET_CHANNELS",
    "PRIVATE_CHANNELS",
    "MarketListener",
    "format_delta",
    "format_error",
    "format_fill",
    "format_gap",
    "format_lifecycle",
    "format_order",
    "format_position",
    "format_snapshot",
    "format_ticker",
    "format_top",
    "format_trade",
    "market_named",
    "run_listen",
    "utc_stamp",
]

MARKET_CHANNELS: Final = ("orderbook_delta", "ticker", "trade")
"""The public channels subscribed for the market."""
LIFECYCLE_CHANNEL: Final = "market_lifecycle_v2"
"""Subscribed for every market (Kalshi does not filter it); other markets' are dropped."""
PRIVATE_CHANNELS: Final = ("fill", "user_orders", "market_positions")
"""Our account's channels, for the market, with ``--with-private``."""

_BOOK_TYPES: Final = frozenset({"orderbook_delta", "orderbook_snapshot"})
_KIND_WIDTH: Final = 12
_NS_PER_MS: Final = 1_000_000
_NS_PER_S: Final = 1_000_000_000


# --------------------------------------------------------------------------- formatting


def utc_stamp(ts_ns: int) -> str:
    """``2026-12-05T01:04:22.123Z``: a Unix time in nanoseconds, in UTC to the millisecond."""
    seconds, rest = divmod(ts_ns, _NS_PER_S)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest // _NS_PER_MS:03d}Z"


def _utc_second(ts_ns: int) -> str:
    """``2026-12-07T20:00:00Z``: a time to the second, for close times."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts_ns // _NS_PER_S))


def _line(ts_ns: int, kind: str, text: str) -> str:
    return f"{utc_stamp(ts_ns)} {kind:<{_KIND_WIDTH}} {text}"


def _dollars(price: Price | None) -> str:
    return "-" if price is None else f"${format_price(price)}"


def _money(amount: Money) -> str:
    return f"${format_money(amount)}"


def _signed(qty: Qty) -> str:
    return ("+" if qty > 0 else "") + format_count(qty)


def _level(price: Price, qty: Qty) -> str:
    return f"{_dollars(price)} x {format_count(qty)}"


def _levels(levels: Sequence[tuple[Price, Qty]]) -> str:
    return ", ".join(_level(price, qty) for price, qty in levels) or "-"


def format_snapshot(
    ts_ns: int, bids: Sequence[tuple[Price, Qty]], asks: Sequence[tuple[Price, Qty]]
) -> str:
    """The top levels of a fresh book, best first, as ``OrderBook.depth`` gives them.

    Args:
        ts_ns: Receive time, Unix nanoseconds.
        bids: YES bids from the highest price down.
        asks: YES asks from the lowest price up.
    """
    return _line(ts_ns, "snapshot", f"bids {_levels(bids)} | asks {_levels(asks)}")


def format_top(book: OrderBook | None) -> str:
    """Best bid and ask with their sizes and the spread; ``None`` (untrusted) says so."""
    if book is None:
        return "book resyncing: waiting for a snapshot"
    bid = "bid -" if book.best_bid is None else f"bid {_level(book.best_bid, book.best_bid_qty)}"
    ask = "ask -" if book.best_ask is None else f"ask {_level(book.best_ask, book.best_ask_qty)}"
    return f"{bid}  {ask}  spread {_dollars(book.spread())}"


def format_delta(ts_ns: int, delta: BookDelta, book: OrderBook | None) -> str:
    """One delta (leg, its own price, signed size) and the top of book after it.

    ``book`` is ``None`` while the book is untrusted. A NO level is also named as the YES
    ask it is; a delta our own order caused names its client order id.
    """
    text = f"{delta.side.value:<3} {_dollars(delta.price)} {_signed(delta.delta)}"
    if delta.side is Outcome.NO:
        text += f" (yes ask {_dollars(ONE_DOLLAR - delta.price)})"
    if delta.client_order_id is not None:
        text += f" [ours: {delta.client_order_id}]"
    return _line(ts_ns, "delta", f"{text} | {format_top(book)}")


def format_trade(ts_ns: int, trade: Trade) -> str:
    """One public trade: the taker's leg, the YES and NO prices and the count."""
    taker = "yes" if trade.taker_book_side is BookSide.BID else "no"
    text = (
        f"taker {taker:<3}  yes {_dollars(trade.yes_price)}  "
        f"no {_dollars(ONE_DOLLAR - trade.yes_price)}  count {format_count(trade.qty)}"
    )
    return _line(ts_ns, "trade", text + ("  block" if trade.is_block_trade else ""))


def format_ticker(ts_ns: int, ticker: Ticker) -> str:
    """A ``ticker`` message as it came: bid, ask and last with sizes, volume, open interest."""
    text = (
        f"bid {_level(ticker.yes_bid, ticker.yes_bid_qty)}  "
        f"ask {_level(ticker.yes_ask, ticker.yes_ask_qty)}  "
        f"last {_level(ticker.price, ticker.last_trade_qty)}  "
        f"volume {format_count(ticker.volume)}  open interest {format_count(ticker.open_interest)}"
    )
    return _line(ts_ns, "ticker", text)


def format_lifecycle(ts_ns: int, event: MarketLifecycle) -> str:
    """A lifecycle event with the fields it carries (close time, result, pause, bands)."""
    parts = [event.event_type]
    if event.close_ts is not None:
        parts.append(f"closes {_utc_second(event.close_ts * _NS_PER_S)}")
    if event.result is not None:
        parts.append(f"result {event.result or '-'}")
    if event.settlement_value is not None:
        parts.append(f"settlement {_dollars(event.settlement_value)}")
    if event.is_deactivated is not None:
        parts.append("trading paused" if event.is_deactivated else "trading open")
    if event.price_level_structure is not None:
        parts.append(f"price levels {event.price_level_structure}")
    if event.price_ranges is not None:
        bands = ", ".join(
            f"{_dollars(start)}-{_dollars(end)} step {_dollars(step)}"
            for start, end, step in event.price_ranges
        )
        parts.append(f"bands {bands}")
    return _line(ts_ns, "lifecycle", "  ".join(parts))


def format_fill(ts_ns: int, fill: Fill) -> str:
    """One of our fills: bought or sold YES, count, YES price, maker/taker, fee, position."""
    verb = "bought" if fill.side is BookSide.BID else "sold"
    text = (
        f"{verb} yes {format_count(fill.qty)} @ {_dollars(fill.price)}  "
        f"{'taker' if fill.is_taker else 'maker'}  fee {_money(fill.fee)}"
    )
    if fill.post_position is not None:
        text += f"  position {format_count(fill.post_position)}"
    order = fill.client_order_id or fill.order_id
    return _line(ts_ns, "OUR FILL", f"{text}  order {order}")


def format_order(ts_ns: int, order: UserOrder) -> str:
    """One of our orders after an update: status, side, YES price and counts."""
    text = (
        f"{order.status}  {order.side.value} {_dollars(order.price)}  "
        f"filled {format_count(order.fill_count)}  remaining {format_count(order.remaining_count)}"
        f"  of {format_count(order.initial_count)}  order {order.client_order_id or order.order_id}"
    )
    return _line(ts_ns, "OUR ORDER", text)


def format_position(ts_ns: int, position: MarketPosition) -> str:
    """Our position (long YES > 0, long NO < 0) with its cost, realized P&L and fees."""
    held = position.position
    side = "flat" if not held else ("long yes" if held > 0 else "long no")
    text = (
        f"{format_count(held)} ({side})  cost {_money(position.position_cost)}  "
        f"realized {_money(position.realized_pnl)}  fees {_money(position.fees_paid)}"
    )
    return _line(ts_ns, "OUR POSITION", text)


def format_error(ts_ns: int, error: ErrorMsg) -> str:
    """An error the venue answered a command with."""
    return _line(ts_ns, "error", f"code {error.code}: {error.msg}")


def format_gap(ts_ns: int, gap: SeqGap) -> str:
    """A sequence gap: what was due, what came, and that the book is resnapshotted."""
    return _line(
        ts_ns,
        "gap",
        f"sid {gap.sid}: seq {gap.expected} due, {gap.received} arrived "
        f"({gap.missing} lost); asking for a fresh snapshot",
    )


_MarketEvent: TypeAlias = Trade | Ticker | MarketLifecycle | Fill | UserOrder | MarketPosition
"""The events of one market that are printed as they come (filtered by ticker)."""
_FORMATS: Final[dict[type, Callable[[int, Any], str]]] = {
    Trade: format_trade,
    Ticker: format_ticker,
    MarketLifecycle: format_lifecycle,
    Fill: format_fill,
    UserOrder: format_order,
    MarketPosition: format_position,
}


# --------------------------------------------------------------------------- state


class MarketListener:
    """One market's feed turned into lines, with its book and sequence checks (no I/O).

    Feed it every frame with :meth:`on_frame`; take the lines with :meth:`take_lines` and
    the subscriptions to resnapshot with :meth:`take_resync`.

    Args:
        ticker: The market.
        levels: Levels per side printed for a snapshot.
        decoder: The frame decoder (its ``use_yes_price`` must match the subscription).

    Attributes:
        book: The market's book; ``book.trusted`` is False until a snapshot and after a gap.
        tracker: The ``seq`` of the orderbook subscription.
        counts: Events seen, by kind (``snapshot``, ``delta``, ``gap``, ``stale`` ...).
        book_sid: The orderbook subscription's id, once its snapshot arrived.
    """

    def __init__(self, ticker: str, levels: int, decoder: WireDecoder) -> None:
        if levels < 1:
            raise ValueError(f"levels must be >= 1, got {levels}")
        self.ticker = ticker
        self.levels = levels
        self.decoder = decoder
        self.book = OrderBook(ticker)
        self.tracker = SequenceTracker()
        self.counts: Counter[str] = Counter()
        self.book_sid: int | None = None
        self._lines: list[str] = []
        self._resync: set[int] = set()

    def take_lines(self) -> list[str]:
        """The lines made since the last call, oldest first."""
        lines, self._lines = self._lines, []
        return lines

    def take_resync(self) -> list[int]:
        """The orderbook subscriptions that need a fresh snapshot, and forgets them."""
        sids, self._resync = sorted(self._resync), set()
        return sids

    def note(self, ts_ns: int, kind: str, text: str) -> None:
        """Adds a line of the shell's own (connection lost, reconnected ...)."""
        self._lines.append(_line(ts_ns, kind, text))

    def on_frame(self, frame: bytes | str, recv_ns: int) -> Event | None:
        """Decodes one frame and makes its line; returns the event (for the ws client).

        Raises:
            WireError: the frame is malformed (after an orderbook frame, the book is
                untrusted and resnapshotted).
        """
        try:
            event = self.decoder.decode(frame)
        except WireError as e:
            self.counts["malformed"] += 1
            if e.msg_type in _BOOK_TYPES:
                self._distrust(self.book_sid)
            raise
        if event is not None:
            self._on_event(event, recv_ns)
        return event

    def on_reconnect(self, ts_ns: int) -> None:
        """A new connection: the book waits for its fresh snapshot."""
        self.tracker = SequenceTracker()
        self.book.trusted = False
        self.note(ts_ns, "reconnected", "book resyncing: waiting for a snapshot")

    def on_resubscribe(self, ts_ns: int, channel: str) -> None:
        """The venue ended ``channel``; the client subscribes it again."""
        if channel == MARKET_CHANNELS[0]:
            self.book.trusted = False
        self.note(ts_ns, "resubscribe", f"{channel} ended by the venue; subscribing again")

    def _on_event(self, event: Event, ts_ns: int) -> None:
        if isinstance(event, BookDelta):
            self._on_delta(event, ts_ns)
        elif isinstance(event, BookSnapshot):
            self._on_snapshot(event, ts_ns)
        elif isinstance(event, Subscribed):
            self.note(ts_ns, "subscribed", f"{event.channel} (sid {event.sid})")
        elif isinstance(event, ErrorMsg):
            self._lines.append(format_error(ts_ns, event))
        elif isinstance(event, _MarketEvent):
            self._on_market_event(event, ts_ns)

    def _on_market_event(self, event: _MarketEvent, ts_ns: int) -> None:
        """Trades, tickers, lifecycle and our account's events, of this market only."""
        if event.ticker != self.ticker:
            self.counts["other markets"] += 1
            return
        self.counts[type(event).__name__] += 1
        self._lines.append(_FORMATS[type(event)](ts_ns, event))

    def _on_snapshot(self, snap: BookSnapshot, ts_ns: int) -> None:
        self.tracker.reset(snap.sid, snap.seq)
        if snap.ticker != self.ticker:
            return
        self.book_sid = snap.sid
        try:
            self.book.apply_snapshot(snap.yes, snap.no)
        except BookIntegrityError as e:
            self.note(ts_ns, "book error", f"{e}; asking for a fresh snapshot")
            self._distrust(snap.sid)
            return
        self.counts["snapshot"] += 1
        bids, asks = self.book.depth(self.levels)
        self._lines.append(format_snapshot(ts_ns, bids, asks))

    def _on_delta(self, delta: BookDelta, ts_ns: int) -> None:
        status = self.tracker.check(delta.sid, delta.seq)
        if status is SeqStatus.STALE:
            self.counts["stale"] += 1
            return
        if status is SeqStatus.GAP:
            assert self.tracker.last_gap is not None
            self.counts["gap"] += 1
            self._lines.append(format_gap(ts_ns, self.tracker.last_gap))
            self._distrust(delta.sid)
        if delta.ticker != self.ticker:
            return
        self.counts["delta"] += 1
        if self.book.trusted:
            try:
                self.book.apply_delta(delta.side is Outcome.YES, delta.price, delta.delta)
            except BookIntegrityError as e:
                self.note(ts_ns, "book error", f"{e}; asking for a fresh snapshot")
                self._distrust(delta.sid)
        self._lines.append(format_delta(ts_ns, delta, self.book if self.book.trusted else None))

    def _distrust(self, sid: int | None) -> None:
        """Marks the book untrusted and queues its subscription for a fresh snapshot."""
        self.book.trusted = False
        if sid is not None:
            self._resync.add(sid)


# --------------------------------------------------------------------------- shell


async def run_listen(
    config: KmmConfig,
    ticker: str,
    *,
    with_private: bool,
    levels: int,
    duration_s: float | None,
    out: TextIO,
) -> int:
    """Prints one market's live feed on ``out`` until a signal or ``duration_s``.

    Args:
        config: The configuration (its venue, credentials and reconnect bounds).
        ticker: The market; it must be listed and open. A series or event ticker names its
            open market that closes first.
        with_private: Also our fills, order updates and position in the market.
        levels: Levels per side printed for a snapshot.
        duration_s: How long to listen; ``None`` until SIGINT or SIGTERM.
        out: Where the lines go.

    Returns:
        The exit status (0).

    Raises:
        ConfigError: a malformed, unknown or closed ticker, or a key the venue refuses.
    """
    tickers = parse_tickers(ticker, "TICKER")
    if len(tickers) != 1:
        raise ConfigError([f"TICKER: one market, got {len(tickers)}: {', '.join(tickers)}"])
    async with venue_feed(config, out) as (rest, ws_url, signer):
        info = await market_named(rest, config, tickers[0])
        listener = MarketListener(info.ticker, levels, WireDecoder(use_yes_price=True))
        _print(out, _banner(info, ws_url, with_private))
        ws = await _listen(listener, config, ws_url, signer, with_private, duration_s, out)
        _print(out, _summary(listener, ws))
    return 0


async def market_named(rest: KalshiRest, config: KmmConfig, name: str) -> MarketInfo:
    """The open market ``name`` is the ticker of; or, when no market has that ticker, the
    open market of the series (else the event) it names that closes first.

    Raises:
        ConfigError: no open market, series or event of that name (the market's error).
    """
    base = config.markets.model_copy(
        update={"tickers": (), "series": (), "events": (), "max_markets": 1, "mode": "fixed"}
    )
    try:
        (info,) = await select_markets(rest, base.model_copy(update={"tickers": (name,)}))
        return info
    except ConfigError as not_a_market:
        for kind in ("series", "events"):
            wide = base.model_copy(update={kind: (name,), "max_markets": 10_000})
            with contextlib.suppress(ConfigError):
                found = await select_markets(rest, wide)
                return min(found, key=lambda m: (m.close_ns is None, m.close_ns or 0, m.ticker))
        raise not_a_market


def _banner(info: MarketInfo, ws_url: str, with_private: bool) -> str:
    closes = "" if info.close_ns is None else f", closes {_utc_second(info.close_ns)}"
    private = "; our fills, orders and position marked OUR" if with_private else ""
    return (
        f"kmm watch: {info.ticker} ({info.status}{closes}) on {ws_url}{private}; "
        "times are UTC (Ctrl-C stops)"
    )


def _summary(listener: MarketListener, ws: KalshiWs) -> str:
    c = listener.counts
    return (
        f"kmm watch: {ws.stats.frames} frames: {c['snapshot']} snapshots, {c['delta']} deltas, "
        f"{c['Trade']} trades, {c['Ticker']} tickers, {c['MarketLifecycle']} lifecycle, "
        f"{c['Fill']} fills of ours; {c['gap']} gaps, {ws.stats.resyncs} resyncs, "
        f"{ws.stats.reconnects} reconnects, {ws.stats.bad_frames} malformed frames skipped"
    )


def _print(out: TextIO, line: str) -> None:
    print(line, file=out, flush=True)


async def _listen(
    listener: MarketListener,
    config: KmmConfig,
    ws_url: str,
    signer: Signer,
    with_private: bool,
    duration_s: float | None,
    out: TextIO,
) -> KalshiWs:
    """Subscribes, prints until the end, closes; returns the client for its counters."""
    ws: KalshiWs

    def flush() -> None:
        for line in listener.take_lines():
            _print(out, line)
        sids = listener.take_resync()
        if sids:
            ws.resync(sids)

    def on_frame(frame: bytes | str, recv_ns: int) -> Event | None:
        try:
            return listener.on_frame(frame, recv_ns)
        finally:
            flush()

    def on_reconnect() -> None:
        listener.on_reconnect(time.time_ns())
        flush()

    def on_disconnect(reason: str) -> None:
        listener.note(time.time_ns(), "disconnected", f"{reason}; reconnecting")
        flush()

    def on_resubscribe(channel: str, old_sid: int | None) -> None:
        listener.on_resubscribe(time.time_ns(), channel)
        flush()

    venue = config.venue
    ws = KalshiWs(
        ws_url,
        signer,
        on_frame,
        use_yes_price=listener.decoder.use_yes_price,
        on_reconnect=on_reconnect,
        on_disconnect=on_disconnect,
        on_resubscribe=on_resubscribe,
        reconnect_initial_s=venue.reconnect_initial_s,
        reconnect_max_s=venue.reconnect_max_s,
        open_timeout_s=venue.request_timeout_s,
    )
    await _serve(ws, listener.ticker, with_private, duration_s)
    return ws


async def _serve(ws: KalshiWs, ticker: str, with_private: bool, duration_s: float | None) -> None:
    """Runs ``ws`` with the subscriptions until a signal, ``duration_s`` or its failure."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = asyncio.create_task(ws.run(), name="kmm-watch-ws")
    stopper = asyncio.create_task(stop.wait(), name="kmm-watch-stop")
    try:
        await ws.subscribe(MARKET_CHANNELS, [ticker])
        await ws.subscribe([LIFECYCLE_CHANNEL])
        if with_private:
            await ws.subscribe(PRIVATE_CHANNELS, [ticker])
        await asyncio.wait({runner, stopper}, timeout=duration_s, return_when="FIRST_COMPLETED")
    finally:
        await ws.close()
        stopper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopper
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    error = None if runner.cancelled() else runner.exception()
    if error is not None:
        raise error
