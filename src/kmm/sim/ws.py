"""The local exchange's websocket: Kalshi's commands and channels over aiohttp.

Theory of operation
-------------------
One :class:`WsHub` serves every connection. It listens to the venue
(``venue.add_listener``): each time the server publishes, the hub receives the engine events
of that batch, in order, and fans them out. Per event it builds the ``msg`` bytes once per
variant that a subscriber needs (for ``orderbook_delta``: per ``use_yes_price`` convention,
plus a copy with ``client_order_id`` for the owner of the order that caused the change), then
per subscription only splices ``sid`` and ``seq`` around them (:mod:`kmm.sim._ws_frames`).
``ticker`` messages are computed once per batch for each market the batch touched, and only
sent when a field changed.

Nothing in the fan-out awaits, so publishing never blocks the engine: each connection has an
outgoing deque drained by its own writer task. When a deque already holds
``max_queued_frames`` frames, the subscription that wanted to add one is ended with error 25
("Subscription buffer overflow", terminal: the client must subscribe again), which bounds
the memory a slow or stuck reader can pin. Command replies and errors bypass the bound.

Commands are parsed by :mod:`kmm.sim._ws_commands` and applied synchronously in the reader
task; before taking a snapshot the hub publishes pending engine events, so a snapshot always
equals the book the deltas already sent describe, and the first delta after it is the next
change. ``seq`` counts the messages of one ``sid`` (snapshots and deltas on
``orderbook_delta``, updates on ``order_group_updates``) strictly +1 from 1. An ``ok`` reply
reports the current ``seq`` without consuming one, so ``update_subscription`` never looks like
a gap; ``unsubscribed`` (whose schema requires ``seq``) is the last message of its sid and
takes the next number (Kalshi does not document either; KALSHI.md §13.10).

Faults come from ``venue.faults`` (:class:`kmm.sim.faults.FaultPlan`): an update picked for
dropping still consumes its ``seq`` (the client sees a gap); a stall holds every frame and
ping until it ends (then delivers them in order); a close request closes every socket with
1001 (going away). A watcher task polls the plan every ``fault_poll_s`` while any socket is
open, since a test may request a close while nothing is being published. A peer that does not
complete the close handshake within two seconds has its transport aborted.

Pings are websocket ping frames with the payload ``heartbeat`` every ``ping_interval_s``, as
Kalshi sends them; aiohttp answers the client's pings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Protocol

from aiohttp import WSCloseCode, WSMsgType, web

from kmm.clock import Clock
from kmm.errors import KmmError
from kmm.sim import _ws_frames as frames
from kmm.sim._ws_commands import (
    CHANNELS,
    MARKET_CHANNELS,
    SEQUENCED_CHANNELS,
    Command,
    ListSubscriptions,
    Subscribe,
    Unsubscribe,
    UpdateSubscription,
    WsCommandError,
    parse_command,
)
from kmm.sim.engine import (
    BookChange,
    EngineEvent,
    FillEvent,
    MarketLifecycle,
    MatchingEngine,
    OrderGroupUpdate,
    OrderUpdate,
    PositionUpdate,
    TradePrint,
)
from kmm.sim.faults import FaultPlan
from kmm.types import MONEY_SCALE, ONE_DOLLAR, Money, Qty

__all__ = ["VenueLike", "WsHub"]

log = logging.getLogger(__name__)

_BOOK: Final = "orderbook_delta"
_HEADS: Final[dict[str, bytes]] = {
    name: b'{"type":"%b","sid":' % name.encode()
    for name in (
        "orderbook_snapshot",
        "orderbook_delta",
        "ticker",
        "trade",
        "fill",
        "user_order",
        "market_position",
        "market_lifecycle_v2",
        "order_group_updates",
    )
}
_PING_PAYLOAD: Final = b"heartbeat"
_CLOSE_TIMEOUT_S: Final = 2.0
_YIELD_EVERY: Final = 256


class VenueLike(Protocol):
    """What the hub needs from the venue (:class:`kmm.sim.server.SimVenue` is one)."""

    @property
    def engine(self) -> MatchingEngine:
        """The matching engine (books, markets, orders)."""
        ...

    @property
    def faults(self) -> FaultPlan:
        """The fault plan the hub consults."""
        ...

    @property
    def clock(self) -> Clock:
        """The venue's clock (fault stalls are in its time)."""
        ...

    def publish(self) -> None:
        """Drains the engine's events and hands them to every listener."""
        ...

    def add_listener(self, fn: Callable[[list[EngineEvent]], None]) -> None:
        """Registers ``fn`` to receive every published batch of events."""
        ...


class _Conn:
    """One websocket connection: its user, subscriptions and outgoing frames."""

    __slots__ = ("next_sid", "queue", "subs", "transport", "user_id", "wake", "ws")

    def __init__(
        self,
        user_id: str,
        ws: web.WebSocketResponse | None,
        transport: asyncio.Transport | None,
    ) -> None:
        self.user_id = user_id
        self.ws = ws
        self.transport = transport
        self.queue: deque[bytes] = deque()
        self.wake = asyncio.Event()
        self.subs: dict[int, _Sub] = {}
        self.next_sid = 1

    def push(self, frame: bytes) -> None:
        self.queue.append(frame)
        if not self.wake.is_set():
            self.wake.set()


class _Sub:
    """One subscription (``sid``) of one connection to one channel."""

    __slots__ = (
        "channel",
        "conn",
        "seq",
        "sequenced",
        "sid",
        "skip_ticker_ack",
        "tickers",
        "use_yes_price",
    )

    def __init__(
        self, conn: _Conn, sid: int, channel: str, tickers: set[str] | None, cmd: Subscribe
    ) -> None:
        self.conn = conn
        self.sid = sid
        self.channel = channel
        self.tickers = tickers
        self.use_yes_price = cmd.use_yes_price
        self.skip_ticker_ack = cmd.skip_ticker_ack
        self.sequenced = channel in SEQUENCED_CHANNELS
        self.seq = 0

    def wants(self, ticker: str) -> bool:
        tickers = self.tickers
        return tickers is None or ticker in tickers


class LocalConnection:
    r"""One in-process websocket connection of a :class:`WsHub` (see
    :meth:`WsHub.connect_local`): the same commands, fan-out, ``sid``\ s and ``seq``\ s as
    a socket's, without the socket."""

    __slots__ = ("_conn", "_hub")

    def __init__(self, hub: WsHub, conn: _Conn) -> None:
        self._hub = hub
        self._conn = conn

    def send(self, command: str | bytes) -> None:
        """Handles one command frame (``subscribe``, ``update_subscription``, ...) now."""
        self._hub._on_frame(self._conn, command)

    def take(self) -> list[bytes]:
        """Every frame sent to this connection since the last call, in order."""
        queue = self._conn.queue
        frames_out = list(queue)
        queue.clear()
        return frames_out

    def close(self) -> None:
        """Ends the connection and its subscriptions."""
        self._hub._forget(self._conn)


class WsHub:
    """Kalshi's websocket API for every connection to the local exchange.

    Args:
        venue: The venue; the hub registers itself with ``venue.add_listener``.
        ping_interval_s: Seconds between ``heartbeat`` pings (Kalshi: 10).
        max_queued_frames: Outgoing frames a connection may hold before the subscription
            adding one more is ended with error 25.
        fault_poll_s: How often the fault plan is polled while sockets are open.

    Attributes:
        ping_interval_s: As given.
        max_queued_frames: As given; may be changed at any time (tests make it small).
        fault_poll_s: As given.
    """

    def __init__(
        self,
        venue: VenueLike,
        *,
        ping_interval_s: float,
        max_queued_frames: int = 10_000,
        fault_poll_s: float = 0.02,
    ) -> None:
        if ping_interval_s <= 0:
            raise ValueError(f"ping_interval_s must be positive, got {ping_interval_s}")
        self.ping_interval_s = ping_interval_s
        self.max_queued_frames = max_queued_frames
        self.fault_poll_s = fault_poll_s
        self._venue = venue
        self.write_observers: list[Callable[[bytes], None]] = []
        """Called with each frame just before it is written to a socket (benchmarks)."""
        self._engine = venue.engine
        self._faults = venue.faults
        self._clock = venue.clock
        self._conns: set[_Conn] = set()
        # Copy-on-write: replaced, never mutated, so a fan-out loop may end a subscription
        self._subs: dict[str, list[_Sub]] = {channel: [] for channel in CHANNELS}
        self._touched: dict[str, int] = {}
        self._sent_tickers: dict[str, frames.TickerState] = {}
        self._dollar_volume: dict[str, Money] = {}
        self._last_trade_size: dict[str, Qty] = {}
        self._user_volume: dict[tuple[str, int, str], Qty] = {}
        self._market_ids: dict[str, str] = {}
        self._watcher: asyncio.Task[None] | None = None
        self._handlers: dict[type, Callable[[Any], None]] = {
            BookChange: self._on_book_change,
            TradePrint: self._on_trade,
            FillEvent: self._on_fill,
            OrderUpdate: self._on_order,
            PositionUpdate: self._on_position,
            MarketLifecycle: self._on_lifecycle,
            OrderGroupUpdate: self._on_order_group,
        }
        self._commands: dict[type, Callable[[_Conn, Any], None]] = {
            Subscribe: self._subscribe,
            Unsubscribe: self._unsubscribe,
            UpdateSubscription: self._update,
            ListSubscriptions: self._list,
        }
        venue.add_listener(self._on_events)

    def connect_local(self, user_id: str) -> LocalConnection:
        """A connection of ``user_id`` inside the process, with no socket: commands go in
        and frames come out synchronously (the backtest's feed). Faults still apply."""
        conn = _Conn(user_id, None, None)
        self._conns.add(conn)
        return LocalConnection(self, conn)

    @property
    def connections(self) -> int:
        """How many websockets are open."""
        return len(self._conns)

    @property
    def subscriptions(self) -> int:
        """How many subscriptions are active, over every connection."""
        return sum(len(conn.subs) for conn in self._conns)

    # ----------------------------------------------------------------------- connections

    async def handle(self, request: web.Request, user_id: str) -> web.WebSocketResponse:
        """Runs one websocket connection whose handshake was already authenticated.

        Args:
            request: The ``GET /trade-api/ws/v2`` upgrade request.
            user_id: The account the handshake's key belongs to.

        Returns:
            The (closed) websocket response, for aiohttp.
        """
        ws = web.WebSocketResponse(
            timeout=_CLOSE_TIMEOUT_S, autoping=True, compress=False, max_msg_size=1 << 20
        )
        await ws.prepare(request)
        if not self._conns:
            # A close requested while no socket was open has nothing left to close
            self._faults.take_close_sockets()
        conn = _Conn(user_id, ws, request.transport)
        self._conns.add(conn)
        self._start_watcher()
        log.debug("ws %s: connected (%d open)", user_id, len(self._conns))
        tasks = (
            asyncio.create_task(self._write_loop(conn)),
            asyncio.create_task(self._ping_loop(conn)),
        )
        try:
            await self._read_loop(conn)
        finally:
            self._forget(conn)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await _close(conn)
            log.debug("ws %s: closed (%d open)", user_id, len(self._conns))
        return ws

    async def close_all(self) -> None:
        """Closes every websocket (1001, going away) and stops the fault watcher."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await self._close_conns()

    async def _close_conns(self) -> None:
        await asyncio.gather(*(_close(conn) for conn in tuple(self._conns)))

    def _forget(self, conn: _Conn) -> None:
        self._conns.discard(conn)
        for sub in tuple(conn.subs.values()):
            self._remove(sub)
        conn.queue.clear()

    async def _read_loop(self, conn: _Conn) -> None:
        assert conn.ws is not None  # a socket's connection
        async for msg in conn.ws:
            if msg.type is WSMsgType.TEXT or msg.type is WSMsgType.BINARY:
                self._on_frame(conn, msg.data)

    async def _write_loop(self, conn: _Conn) -> None:
        queue, wake, ws = conn.queue, conn.wake, conn.ws
        assert ws is not None  # a socket's connection
        sent = 0
        while True:
            if not queue:
                wake.clear()
                await wake.wait()
                continue
            if self._stalled():
                await self._wait_out_stall()
                continue
            frame = queue.popleft()
            for observe in self.write_observers:
                observe(frame)
            try:
                await ws.send_frame(frame, WSMsgType.TEXT)
            except ConnectionError:
                return
            sent += 1
            if sent % _YIELD_EVERY == 0:
                await asyncio.sleep(0)

    async def _ping_loop(self, conn: _Conn) -> None:
        while True:
            await asyncio.sleep(self.ping_interval_s)
            if self._stalled():
                continue
            try:
                assert conn.ws is not None  # a socket's connection
                await conn.ws.ping(_PING_PAYLOAD)
            except ConnectionError:
                return

    def _stalled(self) -> bool:
        return self._faults.stalled(self._clock.now_ns())

    async def _wait_out_stall(self) -> None:
        # Polled: the stall ends in venue-clock time, which may be a manual clock
        while self._stalled():  # noqa: ASYNC110
            await asyncio.sleep(self.fault_poll_s)

    def _start_watcher(self) -> None:
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.create_task(self._watch_faults())

    async def _watch_faults(self) -> None:
        while self._conns:
            if self._faults.take_close_sockets():
                log.info("ws: closing %d sockets (fault)", len(self._conns))
                await self._close_conns()
            await asyncio.sleep(self.fault_poll_s)

    # ----------------------------------------------------------------------- commands

    def _on_frame(self, conn: _Conn, data: str | bytes) -> None:
        try:
            cmd: Command = parse_command(data, self._engine.markets, self._ids())
            self._commands[type(cmd)](conn, cmd)
        except WsCommandError as e:
            conn.push(frames.error_frame(e.cmd_id, e.ws_code, e.market_ticker))
        except KmmError:
            # The venue refused something the command needed: Kalshi's "Internal error"
            log.exception("ws %s: command failed: %r", conn.user_id, data)
            conn.push(frames.error_frame(None, 17))

    def _ids(self) -> Mapping[str, str]:
        """Market UUID → ticker, rebuilt when the set of markets grows."""
        markets = self._engine.markets
        if len(self._market_ids) != len(markets):
            self._market_ids = {frames.market_id(ticker): ticker for ticker in markets}
        return self._market_ids

    def _subscribe(self, conn: _Conn, cmd: Subscribe) -> None:
        """Subscribes each channel; subscribing a channel again adds its new markets.

        Every ``subscribed`` reply goes out before the first snapshot.
        """
        self._venue.publish()
        initial: list[tuple[_Sub, Iterable[str]]] = []
        for channel in cmd.channels:
            sub = self._existing(conn, channel, cmd.use_yes_price)
            if sub is None:
                sub = _Sub(conn, conn.next_sid, channel, _set_of(cmd.tickers), cmd)
                conn.next_sid += 1
                conn.subs[sub.sid] = sub
                self._subs[channel] = [*self._subs[channel], sub]
                added: Iterable[str] = cmd.tickers or ()
            else:
                added = _add_markets(sub, cmd.tickers)
            conn.push(frames.subscribed_frame(cmd.id, channel, sub.sid))
            initial.append((sub, added))
        for sub, added in initial:
            self._initial(sub, added, cmd.send_initial_snapshot)

    def _existing(self, conn: _Conn, channel: str, use_yes_price: bool) -> _Sub | None:
        for sub in conn.subs.values():
            if sub.channel == channel and (channel != _BOOK or sub.use_yes_price == use_yes_price):
                return sub
        return None

    def _initial(self, sub: _Sub, tickers: Iterable[str], ticker_snapshot: bool) -> None:
        """Snapshots of newly added markets: the book, or the ticker when asked for."""
        if sub.channel == _BOOK:
            for ticker in tickers:
                self._send_snapshot(sub, ticker)
        elif sub.channel == "ticker" and ticker_snapshot:
            now_ns = self._clock.now_ns()
            for ticker in tickers:
                state = self._sent_tickers[ticker] = self._ticker_state(ticker)
                self._send(sub, _HEADS["ticker"], frames.ticker(state, now_ns))

    def _unsubscribe(self, conn: _Conn, cmd: Unsubscribe) -> None:
        """Ends every listed subscription, or none if one of them is unknown (error 7)."""
        if any(sid not in conn.subs for sid in cmd.sids):
            raise WsCommandError(cmd.id, 7)
        for sid in cmd.sids:
            sub = conn.subs[sid]
            self._remove(sub)
            sub.seq += 1
            conn.push(frames.unsubscribed_frame(cmd.id, sid, sub.seq))

    def _update(self, conn: _Conn, cmd: UpdateSubscription) -> None:
        """``add_markets``, ``delete_markets`` or ``get_snapshot`` on one subscription."""
        sub = conn.subs.get(cmd.sid)
        if sub is None:
            raise WsCommandError(cmd.id, 7)
        if sub.channel not in MARKET_CHANNELS or (
            cmd.action == "get_snapshot" and sub.channel != _BOOK
        ):
            raise WsCommandError(cmd.id, 13)
        self._venue.publish()
        if cmd.action == "add_markets":
            added = _add_markets(sub, cmd.tickers)
        elif cmd.action == "delete_markets":
            added = []
            if sub.tickers is not None:
                sub.tickers.difference_update(cmd.tickers)
        else:
            added = list(cmd.tickers)
        acked = None if sub.skip_ticker_ack else sub.tickers
        conn.push(frames.ok_frame(cmd.id, sub.sid, sub.seq, acked))
        self._initial(sub, added, cmd.send_initial_snapshot)

    def _list(self, conn: _Conn, cmd: ListSubscriptions) -> None:
        listed = sorted((sub.sid, sub.channel) for sub in conn.subs.values())
        conn.push(frames.list_frame(cmd.id, ((channel, sid) for sid, channel in listed)))

    def _remove(self, sub: _Sub) -> None:
        sub.conn.subs.pop(sub.sid, None)
        self._subs[sub.channel] = [other for other in self._subs[sub.channel] if other is not sub]

    # ----------------------------------------------------------------------- sending

    def _send_snapshot(self, sub: _Sub, ticker: str) -> None:
        yes, no = self._engine.book_levels(ticker)
        sub.seq += 1
        body = frames.book_snapshot(ticker, yes, no, sub.use_yes_price)
        self._push(sub, frames.seq_frame(_HEADS["orderbook_snapshot"], sub.sid, sub.seq, body))

    def _send(self, sub: _Sub, head: bytes, body: bytes) -> None:
        """Sends one update; a drop fault skips it after its ``seq`` was assigned."""
        if sub.sequenced:
            sub.seq += 1
            if self._faults.should_drop(sub.channel):
                return
            self._push(sub, frames.seq_frame(head, sub.sid, sub.seq, body))
        elif not self._faults.should_drop(sub.channel):
            self._push(sub, frames.data_frame(head, sub.sid, body))

    def _push(self, sub: _Sub, frame: bytes) -> None:
        conn = sub.conn
        if len(conn.queue) < self.max_queued_frames:
            conn.push(frame)
            return
        log.info("ws %s: sid %d overflowed its buffer, ended (25)", conn.user_id, sub.sid)
        self._remove(sub)
        conn.push(frames.error_frame(None, 25, sid=sub.sid))

    # ----------------------------------------------------------------------- fan-out

    def _on_events(self, events: list[EngineEvent]) -> None:
        """Fans one published batch out to the subscriptions (never awaits)."""
        handlers = self._handlers
        for ev in events:
            handler = handlers.get(type(ev))
            if handler is not None:
                handler(ev)
        if self._touched:
            self._flush_tickers()

    def _on_book_change(self, ev: BookChange) -> None:
        self._touched[ev.ticker] = ev.ts_ns
        subs = self._subs[_BOOK]
        if not subs:
            return
        ticker = ev.ticker
        bodies: dict[bool, bytes] = {}
        head = _HEADS[_BOOK]
        for sub in subs:
            tickers = sub.tickers
            if tickers is not None and ticker not in tickers:
                continue
            if ev.client_order_id is not None and ev.user_id == sub.conn.user_id:
                body = frames.book_delta(ev, sub.use_yes_price, ev.client_order_id)
            else:
                found = bodies.get(sub.use_yes_price)
                if found is None:
                    found = bodies[sub.use_yes_price] = frames.book_delta(
                        ev, sub.use_yes_price, None
                    )
                body = found
            self._send(sub, head, body)

    def _on_trade(self, ev: TradePrint) -> None:
        ticker = ev.ticker
        self._touched[ticker] = ev.ts_ns
        self._dollar_volume[ticker] = self._dollar_volume.get(ticker, 0) + ev.yes_price * ev.count
        self._last_trade_size[ticker] = ev.count
        self._fan_out("trade", ticker, None, lambda: frames.trade(ev))

    def _on_fill(self, ev: FillEvent) -> None:
        fill = ev.fill
        key = (fill.user_id, fill.subaccount, fill.ticker)
        self._user_volume[key] = self._user_volume.get(key, 0) + fill.count
        self._fan_out("fill", fill.ticker, fill.user_id, lambda: frames.fill(fill))

    def _on_order(self, ev: OrderUpdate) -> None:
        order = ev.order
        self._fan_out("user_orders", order.ticker, order.user_id, lambda: frames.user_order(order))

    def _on_position(self, ev: PositionUpdate) -> None:
        volume = self._user_volume.get((ev.user_id, ev.subaccount, ev.ticker), 0)
        self._fan_out(
            "market_positions", ev.ticker, ev.user_id, lambda: frames.market_position(ev, volume)
        )

    def _on_lifecycle(self, ev: MarketLifecycle) -> None:
        subs = self._subs["market_lifecycle_v2"]
        if not subs:
            return
        market = self._engine.markets.get(ev.ticker)
        event = self._engine.events.get(market.event_ticker) if market is not None else None
        body = frames.lifecycle(ev, market, event)
        head = _HEADS["market_lifecycle_v2"]
        for sub in subs:
            self._send(sub, head, body)

    def _on_order_group(self, ev: OrderGroupUpdate) -> None:
        subs = self._subs["order_group_updates"]
        head = _HEADS["order_group_updates"]
        body: bytes | None = None
        for sub in subs:
            if sub.conn.user_id == ev.user_id:
                body = body or frames.order_group(ev)
                self._send(sub, head, body)

    def _fan_out(
        self, channel: str, ticker: str, user_id: str | None, build: Callable[[], bytes]
    ) -> None:
        """Sends one message to the channel's subscriptions that want ``ticker`` (and are
        ``user_id``'s, for private channels); the body is built once, on first need."""
        subs = self._subs[channel]
        if not subs:
            return
        head = _HEADS[_MESSAGE_TYPE[channel]]
        body: bytes | None = None
        for sub in subs:
            if (user_id is None or sub.conn.user_id == user_id) and sub.wants(ticker):
                body = body or build()
                self._send(sub, head, body)

    def _flush_tickers(self) -> None:
        """One ``ticker`` message per touched market whose fields changed."""
        touched, self._touched = self._touched, {}
        subs = self._subs["ticker"]
        if not subs:
            return
        head = _HEADS["ticker"]
        for ticker, ts_ns in touched.items():
            wanting = [sub for sub in subs if sub.wants(ticker)]
            if not wanting:
                continue
            state = self._ticker_state(ticker)
            if self._sent_tickers.get(ticker) == state:
                continue
            self._sent_tickers[ticker] = state
            body = frames.ticker(state, ts_ns)
            for sub in wanting:
                self._send(sub, head, body)

    def _ticker_state(self, ticker: str) -> frames.TickerState:
        engine = self._engine
        bid, ask = engine.best(ticker)
        yes, no = engine.book_levels(ticker)
        last = engine.last_price(ticker) or 0
        open_interest = engine.open_interest(ticker)
        return frames.TickerState(
            ticker=ticker,
            price=last,
            yes_bid=bid or 0,
            yes_ask=ask if ask is not None else ONE_DOLLAR,
            yes_bid_size=yes.get(bid, 0) if bid is not None else 0,
            yes_ask_size=no.get(ONE_DOLLAR - ask, 0) if ask is not None else 0,
            last_trade_size=self._last_trade_size.get(ticker, 0),
            volume=engine.volume(ticker),
            open_interest=open_interest,
            dollar_volume=self._dollar_volume.get(ticker, 0) // MONEY_SCALE,
            dollar_open_interest=open_interest * last // MONEY_SCALE,
        )


_MESSAGE_TYPE: Final[dict[str, str]] = {
    "trade": "trade",
    "fill": "fill",
    "user_orders": "user_order",
    "market_positions": "market_position",
}


async def _close(conn: _Conn) -> None:
    """Closes with 1001 (going away); a peer that neither reads nor answers is cut off."""
    if conn.ws is None:  # an in-process connection has no socket to close
        return
    try:
        await asyncio.wait_for(
            conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"going away"), _CLOSE_TIMEOUT_S
        )
    except TimeoutError:
        # A graceful transport close would wait for a flush the peer never reads
        if conn.transport is not None:
            conn.transport.abort()


def _set_of(tickers: tuple[str, ...] | None) -> set[str] | None:
    return None if tickers is None else set(tickers)


def _add_markets(sub: _Sub, tickers: tuple[str, ...] | None) -> list[str]:
    """Adds ``tickers`` to ``sub`` (None: all markets) and returns the newly added ones."""
    if sub.tickers is None:
        return []
    if tickers is None:
        sub.tickers = None
        return []
    added = [ticker for ticker in tickers if ticker not in sub.tickers]
    sub.tickers.update(added)
    return added
