"""The order lane: keep-alive HTTP/1.1 connections that put an order write on the wire at once.

Why it exists
-------------
A new target is the tick-to-order path. Through aiohttp, an order request spends roughly
0.5–1 ms of (cold) Python in the client's request machinery and a task hop before its first
byte is written (``make bench`` shows the split); the lane renders the request line and
headers into one buffer and writes it to an idle connection's transport *in the call*, so a
write is on the wire when :meth:`OrderLane.send` returns. Everything else (reads, order
groups, any write the lane cannot take) stays on aiohttp.

What it does
------------
* One request at a time per connection (no pipelining). :meth:`OrderLane.send` takes an idle
  connection, writes, and returns a future for the answer; with no idle connection it
  returns None and the caller uses aiohttp.
* Answers are parsed by ``httptools`` (llhttp): ``Content-Length``, chunked and
  close-delimited bodies, ``Connection: close``.
* Outcomes: the future resolves to a :class:`LaneResponse` for every complete answer,
  whatever its status. It fails with :class:`LaneError` when the connection drops, the
  answer is malformed, or it does not come within ``timeout_s``: the request may have
  reached the venue, so the caller treats it as an unknown outcome (never as a rejection).
* Connections are opened by :meth:`OrderLane.start` and kept at the configured number by a
  background task. Opening backs off exponentially (capped) while connections fail or end
  before answering anything, so a venue that refuses or drops them is not hammered. A
  connection idle for ``idle_s`` is retired and replaced, so a write never goes into a
  keep-alive connection the server is about to close.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, cast
from urllib.parse import urlsplit

import httptools

__all__ = ["LaneError", "LaneResponse", "OrderLane"]

log = logging.getLogger("kmm.lane")

_BACKOFF_FIRST_S: Final = 0.05
_BACKOFF_MAX_S: Final = 5.0
_KEEPER_PERIOD_S: Final = 1.0


@dataclass(frozen=True, slots=True)
class LaneResponse:
    """A complete HTTP answer: its status and its body."""

    status: int
    body: bytes


class LaneError(Exception):
    """No usable answer: the connection dropped, the answer was malformed or late."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one request outstanding."""

    def __init__(self, lane: OrderLane) -> None:
        self.lane = lane
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[LaneResponse] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.body = bytearray()
        self.idle_since_ns = 0
        self.closed = False
        self.served = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:
            self._abort("an answer nobody asked for")
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as e:
            self._abort(f"malformed answer: {e}")

    def eof_received(self) -> bool | None:
        if self.waiter is not None:
            try:
                self.parser.feed_data(b"")  # completes a close-delimited body
            except httptools.HttpParserError as e:
                self._abort(f"answer cut short: {e}")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(LaneError(f"connection lost ({exc or 'closed by the venue'})"))
        self.lane._lost(self)

    # httptools callbacks

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        response = LaneResponse(self.parser.get_status_code(), bytes(self.body))
        self.body.clear()
        self.served = True
        self.lane._delay_s = 0.0
        waiter, self.waiter = self.waiter, None
        self._stop_timer()
        if waiter is not None and not waiter.done():
            waiter.set_result(response)
        if self.parser.should_keep_alive() and not self.closed:
            self.lane._release(self)
        else:
            self.close()

    # the lane's side

    def send(self, data: bytes, timeout_s: float) -> asyncio.Future[LaneResponse]:
        assert self.transport is not None and self.waiter is None
        loop = self.lane.loop
        waiter: asyncio.Future[LaneResponse] = loop.create_future()
        self.waiter = waiter
        self.transport.write(data)
        self.timer = loop.call_later(timeout_s, self._abort, f"no answer within {timeout_s} s")
        return waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _abort(self, why: str) -> None:
        self._fail(LaneError(why))
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _fail(self, error: LaneError) -> None:
        self._stop_timer()
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def _stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class OrderLane:
    """A small pool of keep-alive HTTP/1.1 connections for order writes.

    Args:
        base_url: The API root, e.g. ``https://external-api.kalshi.com/trade-api/v2``
            (``http`` or ``https``).
        connections: How many connections to keep open.
        timeout_s: How long to wait for an answer before the outcome is unknown.
        idle_s: A connection idle this long is replaced by a fresh one.
        ssl_context: TLS settings for ``https`` (default: the system's trust store).
        user_agent: The ``User-Agent`` header.

    Raises:
        ValueError: for a URL that is not http(s) or a connection count below 1.
    """

    def __init__(
        self,
        base_url: str,
        *,
        connections: int = 4,
        timeout_s: float = 5.0,
        idle_s: float = 15.0,
        ssl_context: ssl.SSLContext | None = None,
        user_agent: str = "kmm",
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"order lane: not an http(s) URL: {base_url!r}")
        if connections < 1:
            raise ValueError(f"order lane: connections must be at least 1, got {connections}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self.ssl = ssl_context or ssl.create_default_context()
        self.size = connections
        self.timeout_s = timeout_s
        self.idle_ns = int(idle_s * 1e9)
        self._fixed = f"Host: {parts.netloc}\r\nUser-Agent: {user_agent}\r\n"
        self._idle: list[_Connection] = []
        self._open: set[_Connection] = set()
        self._connecting = 0
        self._delay_s = 0.0
        self._keeper: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._ready = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.sent = 0
        self.fallbacks = 0

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the lane runs on (set by :meth:`start`)."""
        assert self._loop is not None, "OrderLane.start() was not called"
        return self._loop

    @property
    def idle(self) -> int:
        """Connections ready to take a request now."""
        return len(self._idle)

    async def start(self, *, wait_s: float = 5.0) -> None:
        """Opens the connections and keeps them open until :meth:`close`.

        Waits up to ``wait_s`` for the first one; if none opens, the lane keeps trying in
        the background and :meth:`send` returns None meanwhile (aiohttp takes the writes).
        """
        self._loop = asyncio.get_running_loop()
        self._keeper = asyncio.create_task(self._keep(), name="kmm-order-lane")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                await self._ready.wait()
        if not self._idle:
            log.warning("order lane: no connection to %s:%d yet", self.host, self.port)

    async def close(self) -> None:
        """Closes every connection; an outstanding request fails with :class:`LaneError`."""
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
            self._keeper = None
        for conn in list(self._open):
            conn.close()
        self._idle.clear()
        await asyncio.sleep(0)

    def send(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> asyncio.Future[LaneResponse] | None:
        """Writes one request now, on an idle connection.

        Args:
            method: The HTTP method.
            target: The request target (path and query), e.g. ``/trade-api/v2/...``.
            headers: Extra headers (auth, content type); ``Host``, ``User-Agent`` and
                ``Content-Length`` are added.
            body: The body (may be empty).

        Returns:
            A future for the answer, or None when no connection is idle (the caller sends
            the request another way).

        Raises:
            ValueError: a header name or value with a line break in it.
        """
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.closed or conn.transport is None or conn.transport.is_closing():
                continue
            data = self._render(method, target, headers, body)
            self.sent += 1
            return conn.send(data, self.timeout_s)
        self.fallbacks += 1
        self._wake.set()
        return None

    def _render(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> bytes:
        lines = [f"{method} {target} HTTP/1.1\r\n", self._fixed]
        for name, value in headers.items():
            if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
                raise ValueError(f"order lane: line break in header {name!r}")
            lines.append(f"{name}: {value}\r\n")
        lines.append(f"Content-Length: {len(body)}\r\n\r\n")
        return "".join(lines).encode("latin-1") + body

    # ----------------------------------------------------------------- the pool

    def _release(self, conn: _Connection) -> None:
        conn.idle_since_ns = time.monotonic_ns()
        self._idle.append(conn)
        self._ready.set()

    def _lost(self, conn: _Connection) -> None:
        if conn in self._open and not conn.served:
            self._back_off()
        self._open.discard(conn)
        with contextlib.suppress(ValueError):
            self._idle.remove(conn)
        self._wake.set()

    def _back_off(self) -> None:
        self._delay_s = min(_BACKOFF_MAX_S, max(_BACKOFF_FIRST_S, 2 * self._delay_s))

    async def _keep(self) -> None:
        """Keeps ``size`` connections open; retires idle ones; backs off while unreachable."""
        while True:
            self._retire_idle()
            while len(self._open) + self._connecting < self.size:
                if self._delay_s:
                    await asyncio.sleep(self._delay_s)
                if not await self._connect():
                    self._back_off()
            self._wake.clear()
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # that coincides with the event being set, and close() would wait forever
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_KEEPER_PERIOD_S):
                    await self._wake.wait()

    def _retire_idle(self) -> None:
        cutoff = time.monotonic_ns() - self.idle_ns
        for conn in [c for c in self._idle if c.idle_since_ns < cutoff]:
            self._idle.remove(conn)
            conn.close()
            self._open.discard(conn)

    async def _connect(self) -> bool:
        self._connecting += 1
        try:
            _, conn = await self.loop.create_connection(
                lambda: _Connection(self),
                self.host,
                self.port,
                ssl=self.ssl,
                server_hostname=self.host if self.ssl is not None else None,
            )
        except (OSError, ssl.SSLError) as e:
            log.warning("order lane: cannot connect to %s:%d: %s", self.host, self.port, e)
            return False
        finally:
            self._connecting -= 1
        self._open.add(conn)
        self._release(conn)
        return True
