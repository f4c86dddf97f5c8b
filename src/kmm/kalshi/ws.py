"""Kalshi's websocket on ``websockets``: signed handshake, commands, reconnect and a watchdog.

Theory of operation
-------------------
One :class:`KalshiWs` holds at most one connection to ``/trade-api/ws/v2``, opened with the
three ``KALSHI-ACCESS-*`` headers signed over ``GET`` and the URL's path (KALSHI.md §3.2).

**Receiving.** Each complete frame goes, with its receive time, to ``on_frame(frame,
recv_ns)`` inside the connection's ``data_received``: no queue and no task wake-up between the
socket and the pipeline (PERF.md §5); :meth:`KalshiWs.run` handles the rare fragmented
message and the end of the connection. ``on_frame`` returns the decoded event, as
:meth:`kmm.pipeline.Pipeline.on_frame` does; the client looks only at command replies
(``subscribed``, ``unsubscribed``, ``ok``, ``error``) to learn each channel's ``sid`` and to
act on errors. A :class:`~kmm.errors.WireError` from ``on_frame`` is counted and logged and
the frame skipped (the first of each kind logged, later ones only counted); any other
exception ends :meth:`~KalshiWs.run`.

**Subscriptions.** The client remembers what was asked for, per channel (the union of the
markets of every ``subscribe`` and ``add_markets``), so that it can ask again after a
reconnect or a terminal channel error (10, 17, 25: the venue ended the subscription). A
``seq`` gap is not the client's to detect: the pipeline finds it and the engine calls
:meth:`~KalshiWs.resync`, which sends ``update_subscription``/``get_snapshot`` for the
markets of those sids on the same connection.

**Connection states.** ::

    idle ──connect()──▶ open ──socket closed / feed stale──▶ backoff ──open ok──▶ open
      │                  │                                    │  ▲        │
      │                  └───────────── close() ──────────┐   │  └─fails──┘
      └──run(): first attempt without delay──▶ open       ▼   ▼
                                                        closed (also after a refused key)

In ``backoff`` the client waits ``backoff_delay(n)`` (capped exponential, with jitter; ``n``
counts failed attempts and connections that ended before delivering a frame), then opens a
new connection, calls ``on_reconnect()`` (the engine marks its books untrusted and backfills
fills over REST), and subscribes again; the fresh snapshots reset the books. A handshake the
venue refuses with 401/403 (or any other 4xx but 429) is fatal: :meth:`~KalshiWs.run`
raises it. Timeouts, refused TCP connections, 429 and 5xx are retried.

**Watchdog.** Kalshi pings every 10 s. The connection stamps the arrival of every data frame
and every ping (pongs to our own pings do not count: a stalled feed on a live socket still
answers them). When nothing has arrived for ``stale_after_s`` the feed is stale: the client
calls ``on_stale()``, aborts the socket and reconnects. The watchdog wakes once per
``stale_after_s`` at most, so it costs nothing per message. It runs on the event loop's
monotonic time, not on the injected ``now_ns`` (which may be a manual clock in tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeAlias
from urllib.parse import urlsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.protocol import Event as WsEvent

from kmm.config import VenueConfig
from kmm.errors import RateLimited, Rejected, UnknownOutcome, VenueError, WireError
from kmm.kalshi.auth import Signer
from kmm.kalshi.rest import error_from_response
from kmm.kalshi.wire import ErrorMsg, Ok, Subscribed, Unsubscribed

__all__ = [
    "BOOK_CHANNEL",
    "UPDATE_ACTIONS",
    "FrameHandler",
    "KalshiWs",
    "Subscription",
    "WsStats",
    "backoff_delay",
]

log = logging.getLogger(__name__)

BOOK_CHANNEL: Final = "orderbook_delta"
UPDATE_ACTIONS: Final = frozenset({"add_markets", "delete_markets", "get_snapshot"})

FrameHandler: TypeAlias = Callable[[bytes, int], object]
"""``on_frame(frame, recv_ns)``: handles one frame, returns its decoded event (or None)."""

_PING: Final = Opcode.PING
_PONG: Final = Opcode.PONG
_CONT: Final = Opcode.CONT
_BOOK_MARK: Final = b"orderbook_"
_DATA: Final = frozenset({Opcode.TEXT, Opcode.BINARY, Opcode.CONT})
_MAX_FRAME_BYTES: Final = 1 << 22
_ERROR_PREVIEW: Final = 200
_ALREADY_SUBSCRIBED: Final = 6


def backoff_delay(attempt: int, initial_s: float, max_s: float, rand: float) -> float:
    """The wait before reconnect attempt ``attempt`` (0-based): capped exponential, jittered.

    The step doubles from ``initial_s`` up to ``max_s``; the delay is half the step plus a
    random part of the other half ("equal jitter"), so clients that lost the venue together
    do not come back together, and no delay is shorter than half its step.

    Args:
        attempt: How many attempts failed before this one.
        initial_s: The first step, in seconds.
        max_s: The largest step, in seconds.
        rand: A uniform random number in [0, 1).

    Returns:
        The delay in seconds, in ``[step / 2, step)``.
    """
    step = min(max_s, initial_s * 2.0 ** min(attempt, 64))
    return step / 2 + step / 2 * rand


@dataclass(slots=True)
class WsStats:
    """Counters of one :class:`KalshiWs`, for the summary line and the ops log.

    Attributes:
        frames: Frames handed to ``on_frame``.
        bad_frames: Frames ``on_frame`` refused as malformed (skipped).
        rejected: The same, by :attr:`~kmm.errors.WireError.kind`; the first of each kind
            is logged as a warning, later ones are only counted.
        pings: Pings received from the venue.
        commands: Commands sent.
        connects: Connections opened (the first one and every reconnect).
        reconnects: Connections opened after a lost one.
        resyncs: ``get_snapshot`` requests sent.
        resubscribes: Channels subscribed again after a terminal channel error.
        stale: Times the watchdog found the feed silent.
        last_message_ns: Receive time (``now_ns``) of the latest frame; 0 before the first.
        connected: Whether a connection is open now.
    """

    frames: int = 0
    bad_frames: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    pings: int = 0
    commands: int = 0
    connects: int = 0
    reconnects: int = 0
    resyncs: int = 0
    resubscribes: int = 0
    stale: int = 0
    last_message_ns: int = 0
    connected: bool = False


@dataclass(slots=True)
class Subscription:
    """What the client asked for on one channel, and its ``sid`` on the current connection.

    Attributes:
        channel: The channel name.
        tickers: The markets, in the order first asked for (a dict used as an ordered
            set); ``None`` for every market.
        use_yes_price: The price convention of an ``orderbook_delta`` subscription.
        sid: The subscription id on the open connection, once ``subscribed`` arrived.
        failures: Terminal errors since the channel was last subscribed successfully.
    """

    channel: str
    tickers: dict[str, None] | None
    use_yes_price: bool | None = None
    sid: int | None = None
    failures: int = 0

    @property
    def market_tickers(self) -> tuple[str, ...] | None:
        """The markets as a tuple, or ``None`` for every market."""
        return None if self.tickers is None else tuple(self.tickers)

    def params(self) -> dict[str, Any]:
        """The ``params`` of a ``subscribe`` command asking for this subscription."""
        params: dict[str, Any] = {"channels": [self.channel]}
        if self.tickers is not None:
            params["market_tickers"] = list(self.tickers)
        if self.use_yes_price is not None:
            params["use_yes_price"] = self.use_yes_price
        return params


class _Connection(ClientConnection):
    """A websockets client connection that hands complete data frames to ``dispatch`` inline.

    ``dispatch`` runs inside the protocol's ``data_received``: no assembler queue and no
    task wake-up between the socket and the pipeline. A fragmented message goes through
    websockets' assembler to :meth:`recv` as usual, and while one is pending (``queued``
    or ``assembling``) later frames follow it there, so frames are handled in order.
    ``dispatch`` must not raise (:class:`KalshiWs` stores the error and aborts the socket).
    Arrivals of data frames and pings are stamped for the watchdog.
    """

    last_rx_ns: int = 0
    stale: bool = False
    stats: WsStats | None = None
    dispatch: Callable[[bytes], None] | None = None
    error: Exception | None = None
    queued: int = 0
    assembling: bool = False
    book_frames_ahead: int = 0

    def data_received(self, data: bytes) -> None:
        # An estimate (a frame split across reads is counted in the read that has its
        # start); it only decides whether the engine acts before the rest of the read
        self.book_frames_ahead = data.count(_BOOK_MARK)
        super().data_received(data)
        self.book_frames_ahead = 0

    def process_event(self, event: WsEvent) -> None:
        if type(event) is Frame:
            opcode = event.opcode
            if opcode is not _PONG:
                self.last_rx_ns = time.monotonic_ns()
                if opcode is _PING and self.stats is not None:
                    self.stats.pings += 1
            if opcode in _DATA:
                dispatch = self.dispatch
                if (
                    dispatch is not None
                    and event.fin
                    and opcode is not _CONT
                    and not self.queued
                    and not self.assembling
                ):
                    data = event.data
                    frame = data if type(data) is bytes else bytes(data)
                    if self.book_frames_ahead and _BOOK_MARK in frame:
                        self.book_frames_ahead -= 1
                    dispatch(frame)
                    return
                self.assembling = not event.fin
                if event.fin:
                    self.queued += 1
        super().process_event(event)


@dataclass(slots=True)
class _Handlers:
    """The engine's callbacks; each may be None."""

    on_reconnect: Callable[[], None] | None = None
    on_disconnect: Callable[[str], None] | None = None
    on_stale: Callable[[], None] | None = None
    on_resubscribe: Callable[[str, int | None], None] | None = None


@dataclass(slots=True)
class _Commands:
    """Command ids and what they asked, for attributing replies."""

    next_id: int = 0
    subscribe: dict[int, tuple[str, ...]] = field(default_factory=dict)
    last_subscribe: dict[str, int] = field(default_factory=dict)
    errors: dict[int, ErrorMsg] = field(default_factory=dict)


class KalshiWs:
    """A Kalshi websocket client that keeps its subscriptions through every disconnect.

    Args:
        url: The websocket URL, e.g. ``wss://external-api-ws.kalshi.com/trade-api/ws/v2``.
        signer: Signs the handshake.
        on_frame: Receives every frame with its receive time, inline, and returns its decoded
            event (:meth:`kmm.pipeline.Pipeline.on_frame`, or the engine's wrapper of it):
            the client reads ``subscribed``/``error`` replies from that return value.
        use_yes_price: The ``use_yes_price`` sent with every ``orderbook_delta`` subscription
            unless a call says otherwise; it must match the pipeline's decoder.
        on_reconnect: Called after a new connection opened in place of a lost one, before
            the subscriptions are sent again.
        on_disconnect: Called with a reason when a connection is lost (not on ``close()``).
        on_stale: Called when the watchdog finds the feed silent, before reconnecting.
        on_resubscribe: Called with ``(channel, old sid)`` when a terminal channel error
            ended a subscription and the client subscribes that channel again.
        reconnect_initial_s: The first backoff step, in seconds.
        reconnect_max_s: The largest backoff step, in seconds.
        stale_after_s: Silence (no data frame and no ping) after which the feed is stale.
        open_timeout_s: Timeout of the TCP connect plus the handshake.
        ping_interval_s: Interval of our own keepalive pings (None: none); a ping that gets
            no pong within the same time closes the connection.
        close_timeout_s: How long a clean close waits for the venue's close frame.
        now_ns: Wall-clock time in Unix nanoseconds: frame receive times and handshake
            signature timestamps.
        rng: The jitter source (seed it in tests).

    Raises:
        ValueError: if a duration is not positive or the backoff bounds are inverted.
    """

    def __init__(
        self,
        url: str,
        signer: Signer,
        on_frame: FrameHandler,
        *,
        use_yes_price: bool = True,
        on_reconnect: Callable[[], None] | None = None,
        on_disconnect: Callable[[str], None] | None = None,
        on_stale: Callable[[], None] | None = None,
        on_resubscribe: Callable[[str, int | None], None] | None = None,
        reconnect_initial_s: float = 0.5,
        reconnect_max_s: float = 30.0,
        stale_after_s: float = 30.0,
        open_timeout_s: float = 10.0,
        ping_interval_s: float | None = 20.0,
        close_timeout_s: float = 2.0,
        now_ns: Callable[[], int] = time.time_ns,
        rng: random.Random | None = None,
    ) -> None:
        _check_durations(reconnect_initial_s, reconnect_max_s, stale_after_s, open_timeout_s)
        self.url = url
        self.use_yes_price = use_yes_price
        self.stats = WsStats()
        self._path = urlsplit(url).path
        self._signer = signer
        self._on_frame = on_frame
        self._handlers = _Handlers(on_reconnect, on_disconnect, on_stale, on_resubscribe)
        self._backoff = (reconnect_initial_s, reconnect_max_s)
        self._stale_after_ns = round(stale_after_s * 1e9)
        self._open_timeout_s = open_timeout_s
        self._ping_interval_s = ping_interval_s
        self._close_timeout_s = close_timeout_s
        self._now_ns = now_ns
        self._rng = rng or random.Random()
        self._ws: _Connection | None = None
        self._failures = 0
        self._closing = False
        self._wake = asyncio.Event()
        self._wanted: dict[str, Subscription] = {}
        self._channels: dict[int, str] = {}
        self._commands = _Commands()
        self._pending_resync: set[int] = set()
        self._resync_scheduled = False
        self._waiters: list[asyncio.Future[None]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._replies: dict[type, Callable[[Any, bytes], None]] = {
            Subscribed: self._on_subscribed,
            Unsubscribed: self._on_unsubscribed,
            ErrorMsg: self._on_error,
            Ok: self._on_ok,
        }

    @classmethod
    def from_config(
        cls,
        venue: VenueConfig,
        signer: Signer,
        on_frame: FrameHandler,
        *,
        use_yes_price: bool = True,
        on_reconnect: Callable[[], None] | None = None,
        on_disconnect: Callable[[str], None] | None = None,
        on_stale: Callable[[], None] | None = None,
        on_resubscribe: Callable[[str, int | None], None] | None = None,
        stale_after_s: float = 30.0,
    ) -> KalshiWs:
        """A client for ``venue``: its websocket URL, reconnect bounds and request timeout."""
        return cls(
            venue.ws_base(),
            signer,
            on_frame,
            use_yes_price=use_yes_price,
            on_reconnect=on_reconnect,
            on_disconnect=on_disconnect,
            on_stale=on_stale,
            on_resubscribe=on_resubscribe,
            reconnect_initial_s=venue.reconnect_initial_s,
            reconnect_max_s=venue.reconnect_max_s,
            stale_after_s=stale_after_s,
            open_timeout_s=venue.request_timeout_s,
        )

    # ----------------------------------------------------------------- state

    @property
    def connected(self) -> bool:
        """Whether a connection is open."""
        return self._ws is not None

    @property
    def subscriptions(self) -> Mapping[str, Subscription]:
        """What was asked for, per channel (read-only view)."""
        return self._wanted

    def sid(self, channel: str) -> int | None:
        """The channel's subscription id on the open connection, if known."""
        sub = self._wanted.get(channel)
        return sub.sid if sub is not None else None

    def channel_of(self, sid: int) -> str | None:
        """The channel subscribed as ``sid`` on the open connection, if known."""
        return self._channels.get(sid)

    # ----------------------------------------------------------------- lifecycle

    async def connect(self) -> None:
        """Opens the connection once (no retry) and sends the subscriptions asked for so far.

        Raises:
            AuthError: the venue refused the key (401), e.g. a wrong key or a bad signature.
            Rejected: the venue refused the handshake with another 4xx.
            RateLimited: 429 on the handshake.
            UnknownOutcome: the connection or handshake failed or timed out, or a 5xx.
        """
        if self._ws is not None:
            return
        ws = await self._open()
        await self._established(ws, reconnect=False)

    async def run(self) -> None:
        """Receives until :meth:`close`, reconnecting whenever the connection is lost.

        Opens the connection first if :meth:`connect` was not called (retrying transient
        failures with backoff). Returns after :meth:`close`; closes the socket when
        cancelled.

        Raises:
            AuthError: the venue refused the key on a (re)connect.
            Rejected: the venue refused a handshake with another 4xx (not 429).
            Exception: whatever ``on_frame`` or a callback raised, other than ``WireError``.
        """
        try:
            while not self._closing:
                ws = self._ws or await self._reopen()
                if ws is None:
                    return
                frames = self.stats.frames
                reason = await self._serve(ws)
                # A connection that delivered nothing counts as a failed attempt
                self._failures = 0 if self.stats.frames > frames else self._failures + 1
                self._lost(ws, reason)
        finally:
            await self._shutdown()

    @property
    def book_frames_ahead(self) -> int:
        """Order-book frames still to come in the socket read being handled (0 between reads).

        Lets the engine act on a new quote as soon as the read holds no later book change,
        instead of after every other frame of the read.
        """
        ws = self._ws
        return ws.book_frames_ahead if ws is not None else 0

    async def close(self) -> None:
        """Closes the connection cleanly and stops :meth:`run`; the client is not reusable."""
        self._closing = True
        self._wake.set()
        await self._shutdown()

    # ----------------------------------------------------------------- commands

    async def subscribe(
        self,
        channels: Iterable[str],
        market_tickers: Iterable[str] | None = None,
        *,
        use_yes_price: bool | None = None,
    ) -> int | None:
        """Subscribes ``channels`` for ``market_tickers`` (None: every market).

        The request is remembered per channel (markets are added to what the channel
        already has) and sent again after a reconnect. ``use_yes_price`` is sent explicitly
        whenever ``orderbook_delta`` is among the channels.

        Args:
            channels: Channel names (``kmm.kalshi.constants``).
            market_tickers: The markets; required for ``orderbook_delta``.
            use_yes_price: The book's price convention; None takes the client's.

        Returns:
            The command id, or None when not connected (it is sent on connecting).

        Raises:
            ValueError: ``orderbook_delta`` without markets, or with a price convention
                other than the one it already has.
        """
        names = tuple(channels)
        tickers = None if market_tickers is None else tuple(market_tickers)
        yes = self.use_yes_price if use_yes_price is None else use_yes_price
        if BOOK_CHANNEL in names:
            _check_book_request(self._wanted.get(BOOK_CHANNEL), tickers, yes)
        for name in names:
            self._want(name, tickers, yes if name == BOOK_CHANNEL else None)
        params: dict[str, Any] = {"channels": list(names)}
        if tickers is not None:
            params["market_tickers"] = list(tickers)
        if BOOK_CHANNEL in names:
            params["use_yes_price"] = yes
        return await self._send_subscribe(names, params)

    async def update_subscription(
        self, sid: int, action: str, market_tickers: Iterable[str]
    ) -> int | None:
        """Sends ``update_subscription`` for ``sid``: ``add_markets``, ``delete_markets`` or
        ``get_snapshot`` (orderbook only: fresh snapshots, the subscription unchanged).

        Added and deleted markets are remembered for the next reconnect.

        Returns:
            The command id, or None when not connected.

        Raises:
            ValueError: for an unknown action.
        """
        if action not in UPDATE_ACTIONS:
            raise ValueError(f"update_subscription: unknown action {action!r}")
        tickers = list(market_tickers)
        channel = self._channels.get(sid)
        sub = self._wanted.get(channel) if channel is not None else None
        if sub is not None and sub.tickers is not None:
            if action == "add_markets":
                sub.tickers.update(dict.fromkeys(tickers))
            elif action == "delete_markets":
                for ticker in tickers:
                    sub.tickers.pop(ticker, None)
        params = {"sids": [sid], "action": action, "market_tickers": tickers}
        cmd_id = await self._command("update_subscription", params)
        if cmd_id is not None and action == "get_snapshot":
            self.stats.resyncs += 1
        return cmd_id

    async def update_markets(
        self, channels: Iterable[str], action: str, market_tickers: Iterable[str]
    ) -> None:
        """``add_markets`` or ``delete_markets`` on the subscription of each of ``channels``
        (those subscribed for some markets): sent now where the channel has a ``sid``, else
        remembered for when it is subscribed again."""
        if action not in ("add_markets", "delete_markets"):
            raise ValueError(f"update_markets: unknown action {action!r}")
        tickers = list(market_tickers)
        for name in channels:
            sub = self._wanted.get(name)
            if sub is None or sub.tickers is None:
                continue
            if sub.sid is not None:
                await self.update_subscription(sub.sid, action, tickers)
            elif action == "add_markets":
                sub.tickers.update(dict.fromkeys(tickers))
            else:
                for ticker in tickers:
                    sub.tickers.pop(ticker, None)

    async def get_snapshot(self, sid: int, market_tickers: Iterable[str]) -> int | None:
        """Asks for fresh ``orderbook_snapshot``\\ s of ``market_tickers`` on ``sid``."""
        return await self.update_subscription(sid, "get_snapshot", market_tickers)

    def resync(self, sids: Iterable[int]) -> None:
        """Asks for fresh snapshots of every market on each of ``sids``, without reconnecting.

        For the engine's frame dispatcher, which cannot await: the requests are sent by a
        task on the next turn of the loop. A sid of a connection that is gone is skipped
        (the reconnect brings fresh snapshots anyway).
        """
        self._pending_resync.update(sids)
        if self._pending_resync and not self._resync_scheduled:
            self._resync_scheduled = True
            self._spawn(self._flush_resync())

    async def unsubscribe(self, sids: Iterable[int]) -> int | None:
        """Ends subscriptions; their channels are no longer subscribed after a reconnect."""
        ids = list(sids)
        for sid in ids:
            channel = self._channels.get(sid)
            if channel is not None:
                self._wanted.pop(channel, None)
        return await self._command("unsubscribe", {"sids": ids})

    async def list_subscriptions(self) -> int | None:
        """Asks the venue for this connection's subscriptions (the reply is an ``ok``)."""
        return await self._command("list_subscriptions", None)

    async def wait_subscribed(
        self, channels: Iterable[str], timeout_s: float = 10.0
    ) -> dict[str, int]:
        """Waits until each of ``channels`` has a ``sid`` on the open connection.

        Needs :meth:`run` to be receiving.

        Returns:
            The sid of each channel.

        Raises:
            Rejected: the venue answered a ``subscribe`` of one of the channels with an
                error (other than "already subscribed"); ``code`` is the websocket code.
            TimeoutError: not all channels were subscribed within ``timeout_s``.
            KeyError: a channel that was never asked for.
        """
        names = tuple(channels)
        subs = [self._wanted[name] for name in names]
        async with asyncio.timeout(timeout_s):
            while any(sub.sid is None for sub in subs):
                self._raise_subscribe_error(names)
                waiter = asyncio.get_running_loop().create_future()
                self._waiters.append(waiter)
                await waiter
        return {sub.channel: sub.sid for sub in subs if sub.sid is not None}

    # ----------------------------------------------------------------- receiving

    async def _serve(self, ws: _Connection) -> str:
        """Receives on ``ws`` until it closes, with the watchdog; returns why it ended."""
        watchdog = asyncio.create_task(self._watch(ws), name="kalshi-ws-watchdog")
        try:
            return await self._receive(ws)
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog

    async def _receive(self, ws: _Connection) -> str:
        """Waits for the end of ``ws``; meanwhile handles what websockets assembled.

        Complete frames are handled inline as they arrive (:meth:`_inline`); what comes
        here is fragmented messages (and frames that queued up behind one).
        """
        recv = ws.recv
        dispatch = self._dispatch
        try:
            while True:
                frame = await recv(False)
                ws.queued -= 1
                dispatch(frame)
        except ConnectionClosed as e:
            if ws.error is not None:
                raise ws.error from e
            return "feed stale" if ws.stale else f"connection closed ({e})"

    def _inline(self, ws: _Connection) -> Callable[[bytes], None]:
        """The hot path: ``ws`` calls this with each complete frame, in ``data_received``."""
        dispatch = self._dispatch

        def inline(frame: bytes) -> None:
            try:
                dispatch(frame)
            except Exception as e:
                # Raised from run(): stop dispatching, end the connection
                ws.error = e
                ws.dispatch = None
                ws.transport.abort()

        return inline

    def _dispatch(self, frame: bytes) -> None:
        """One frame to ``on_frame``; command replies looked at; malformed frames skipped."""
        recv_ns = self._now_ns()
        stats = self.stats
        stats.frames += 1
        stats.last_message_ns = recv_ns
        try:
            event = self._on_frame(frame, recv_ns)
        except WireError as e:
            stats.bad_frames += 1
            stats.rejected[e.kind] += 1
            if stats.rejected[e.kind] == 1:
                log.warning(
                    "ws: skipped a malformed frame (%s; later ones of this kind only counted): "
                    "%s: %.200r",
                    e.kind,
                    e,
                    frame,
                )
            return
        if event is not None:
            reply = self._replies.get(type(event))
            if reply is not None:
                reply(event, frame)

    async def _watch(self, ws: _Connection) -> None:
        """Sleeps until the feed has been silent for ``stale_after_s``, then aborts ``ws``."""
        limit = self._stale_after_ns
        while True:
            idle = time.monotonic_ns() - ws.last_rx_ns
            if idle >= limit:
                break
            await asyncio.sleep((limit - idle) / 1e9)
        self.stats.stale += 1
        log.warning("ws: no message or ping for %.1f s: the feed is stale", idle / 1e9)
        ws.stale = True
        if self._handlers.on_stale is not None:
            self._handlers.on_stale()
        ws.transport.abort()

    # ----------------------------------------------------------------- replies

    def _on_subscribed(self, event: Subscribed, frame: bytes) -> None:
        self._channels[event.sid] = event.channel
        sub = self._wanted.get(event.channel)
        if sub is not None:
            sub.sid = event.sid
            sub.failures = 0
        log.debug("ws: %s subscribed as sid %d", event.channel, event.sid)
        self._notify()

    def _on_unsubscribed(self, event: Unsubscribed, frame: bytes) -> None:
        channel = self._channels.pop(event.sid, None)
        sub = self._wanted.get(channel) if channel is not None else None
        if sub is not None and sub.sid == event.sid:
            sub.sid = None
        self._notify()

    def _on_ok(self, event: Ok, frame: bytes) -> None:
        log.debug("ws: command %s ok (sid %s)", event.id, event.sid)

    def _on_error(self, event: ErrorMsg, frame: bytes) -> None:
        log.warning("ws: command %s failed: %d %s", event.id, event.code, event.msg)
        if event.id is not None and event.id in self._commands.subscribe:
            self._commands.errors[event.id] = event
        if event.terminal:
            for channel in self._terminal_channels(event, frame):
                self._resubscribe(channel)
        self._notify()

    def _terminal_channels(self, event: ErrorMsg, frame: bytes) -> list[str]:
        """The channels a terminal error ended: by its ``sid``, else its command, else all."""
        sid = _frame_sid(frame)
        channel = self._channels.get(sid) if sid is not None else None
        if channel is not None:
            return [channel]
        asked = self._commands.subscribe.get(event.id) if event.id is not None else None
        return list(asked) if asked is not None else list(self._wanted)

    def _resubscribe(self, channel: str) -> None:
        sub = self._wanted.get(channel)
        if sub is None:
            return
        old_sid, sub.sid = sub.sid, None
        if old_sid is not None:
            self._channels.pop(old_sid, None)
        sub.failures += 1
        self.stats.resubscribes += 1
        delay = 0.0 if sub.failures == 1 else self._delay(sub.failures - 2)
        log.warning("ws: %s ended by the venue; subscribing again in %.2f s", channel, delay)
        if self._handlers.on_resubscribe is not None:
            self._handlers.on_resubscribe(channel, old_sid)
        self._spawn(self._subscribe_later(sub, delay))

    async def _subscribe_later(self, sub: Subscription, delay_s: float) -> None:
        if delay_s > 0 and await self._sleep(delay_s):
            return
        if self._wanted.get(sub.channel) is sub:
            await self._send_subscribe((sub.channel,), sub.params())

    def _raise_subscribe_error(self, channels: tuple[str, ...]) -> None:
        for channel in channels:
            cmd_id = self._commands.last_subscribe.get(channel)
            error = self._commands.errors.get(cmd_id) if cmd_id is not None else None
            if error is not None and not error.terminal and error.code != _ALREADY_SUBSCRIBED:
                raise Rejected(0, str(error.code), f"subscribe {channel}: {error.msg}")

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # ----------------------------------------------------------------- sending

    async def _command(self, cmd: str, params: dict[str, Any] | None) -> int | None:
        """Sends one command with the next id; None if there is no open connection."""
        ws = self._ws
        if ws is None:
            return None
        self._commands.next_id += 1
        cmd_id = self._commands.next_id
        body: dict[str, Any] = {"id": cmd_id, "cmd": cmd}
        if params is not None:
            body["params"] = params
        try:
            await ws.send(orjson.dumps(body), text=True)
        except ConnectionClosed:
            return None
        self.stats.commands += 1
        return cmd_id

    async def _send_subscribe(self, names: tuple[str, ...], params: dict[str, Any]) -> int | None:
        cmd_id = await self._command("subscribe", params)
        if cmd_id is not None:
            self._commands.subscribe[cmd_id] = names
            for name in names:
                self._commands.last_subscribe[name] = cmd_id
        return cmd_id

    def _want(self, channel: str, tickers: tuple[str, ...] | None, yes: bool | None) -> None:
        """Adds a request to the remembered subscription of ``channel``."""
        sub = self._wanted.get(channel)
        if sub is None:
            wanted = None if tickers is None else dict.fromkeys(tickers)
            self._wanted[channel] = Subscription(channel, wanted, yes)
        elif tickers is None:
            sub.tickers = None
        elif sub.tickers is not None:
            sub.tickers.update(dict.fromkeys(tickers))

    async def _replay(self) -> None:
        """Subscribes every remembered channel on a new connection, one command each."""
        for sub in tuple(self._wanted.values()):
            await self._send_subscribe((sub.channel,), sub.params())

    async def _flush_resync(self) -> None:
        self._resync_scheduled = False
        sids, self._pending_resync = sorted(self._pending_resync), set()
        for sid in sids:
            sub = self._wanted.get(self._channels.get(sid, ""))
            if sub is None or sub.channel != BOOK_CHANNEL or not sub.tickers:
                log.info("ws: sid %d is not a live orderbook subscription; no resync", sid)
                continue
            log.info("ws: resnapshotting %d markets of sid %d", len(sub.tickers), sid)
            await self.get_snapshot(sid, sub.tickers)

    # ----------------------------------------------------------------- connecting

    async def _open(self) -> _Connection:
        """Opens and authenticates one connection; maps a refusal to the error tree."""
        headers = self._signer.headers("GET", self._path, self._now_ns() // 1_000_000)
        try:
            ws = await connect(
                self.url,
                additional_headers=headers,
                compression=None,
                open_timeout=self._open_timeout_s,
                ping_interval=self._ping_interval_s,
                ping_timeout=self._ping_interval_s,
                close_timeout=self._close_timeout_s,
                max_size=_MAX_FRAME_BYTES,
                create_connection=_Connection,
            )
        except InvalidStatus as e:
            raise _handshake_error(self.url, e) from e
        except (OSError, TimeoutError, InvalidHandshake) as e:
            detail = str(e) or type(e).__name__
            raise UnknownOutcome(0, type(e).__name__, f"websocket {self.url}: {detail}") from e
        assert isinstance(ws, _Connection)
        ws.last_rx_ns = time.monotonic_ns()
        ws.stats = self.stats
        ws.dispatch = self._inline(ws)
        return ws

    async def _established(self, ws: _Connection, *, reconnect: bool) -> None:
        self._ws = ws
        self.stats.connects += 1
        self.stats.connected = True
        self._commands.subscribe.clear()
        self._commands.errors.clear()
        log.info("ws: connected to %s", self.url)
        if reconnect:
            self.stats.reconnects += 1
            if self._handlers.on_reconnect is not None:
                self._handlers.on_reconnect()
        await self._replay()

    async def _reopen(self) -> _Connection | None:
        """Opens a new connection with backoff; None if :meth:`close` was called meanwhile."""
        reconnect = self.stats.connects > 0
        while not self._closing:
            if (reconnect or self._failures) and await self._sleep(self._delay(self._failures)):
                return None
            try:
                ws = await self._open()
            except (UnknownOutcome, RateLimited) as e:
                self._failures += 1
                log.warning("ws: connecting failed (%s); attempt %d", e, self._failures + 1)
                continue
            if self._closed():  # close() was called during the handshake
                await ws.close()
                return None
            await self._established(ws, reconnect=reconnect)
            return ws
        return None

    def _lost(self, ws: _Connection, reason: str) -> None:
        """Forgets a connection that ended and its sids; tells the engine."""
        if self._ws is ws:
            self._ws = None
        self.stats.connected = False
        self._channels.clear()
        for sub in self._wanted.values():
            sub.sid = None
        if self._closing:
            return
        log.warning("ws: %s; reconnecting", reason)
        if self._handlers.on_disconnect is not None:
            self._handlers.on_disconnect(reason)

    async def _shutdown(self) -> None:
        """Closes the socket (if any) and cancels the client's helper tasks."""
        ws, self._ws = self._ws, None
        self.stats.connected = False
        for task in tuple(self._tasks):
            task.cancel()
        if ws is not None:
            await ws.close()
        self._notify()

    # ----------------------------------------------------------------- helpers

    def _closed(self) -> bool:
        return self._closing

    def _delay(self, attempt: int) -> float:
        initial_s, max_s = self._backoff
        return backoff_delay(attempt, initial_s, max_s, self._rng.random())

    async def _sleep(self, delay_s: float) -> bool:
        """Waits ``delay_s`` or until :meth:`close`; returns whether the client is closing."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay_s):  # not wait_for: see OrderLane._keep
                await self._wake.wait()
        return self._closing

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("ws: background command failed", exc_info=task.exception())


def _check_durations(initial_s: float, max_s: float, stale_s: float, open_s: float) -> None:
    for name, value in (
        ("reconnect_initial_s", initial_s),
        ("reconnect_max_s", max_s),
        ("stale_after_s", stale_s),
        ("open_timeout_s", open_s),
    ):
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")
    if max_s < initial_s:
        raise ValueError(f"reconnect_max_s ({max_s}) must be >= reconnect_initial_s ({initial_s})")


def _check_book_request(
    current: Subscription | None, tickers: tuple[str, ...] | None, yes: bool
) -> None:
    if tickers is None:
        raise ValueError(f"{BOOK_CHANNEL} needs market tickers")
    if current is not None and current.use_yes_price != yes:
        raise ValueError(
            f"{BOOK_CHANNEL} is already subscribed with use_yes_price={current.use_yes_price}"
        )


def _frame_sid(frame: bytes) -> int | None:
    """The top-level ``sid`` of a frame, if it has one (read again: error frames are rare)."""
    try:
        sid = orjson.loads(frame).get("sid")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return sid if type(sid) is int else None


def _handshake_error(url: str, e: InvalidStatus) -> VenueError:
    """The typed error for a refused handshake, naming the URL and the venue's reason."""
    response = e.response
    error = error_from_response(response.status_code, bytes(response.body or b""))
    reason = error.message or response.reason_phrase or "no reason given"
    return type(error)(error.status, error.code, f"websocket handshake refused by {url}: {reason}")
