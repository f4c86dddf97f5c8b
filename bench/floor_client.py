"""The floor of the tick-to-order bench: a client that does nothing but answer a trigger.

Run by :mod:`bench.latency` in its own process: ``python -m bench.floor_client HOST CTRL_PORT
REST_PORT``. It holds a connection to the bench's trigger port and a kept-alive HTTP
connection to the local exchange; each time trigger bytes arrive it writes one pre-rendered
order request to the exchange, in the same callback. What that costs (two cross-process
wake-ups over loopback, one socket write) is the part of tick-to-order no bot can avoid on
this machine.
"""

from __future__ import annotations

import asyncio
import sys

import uvloop

_BODY = b'{"ticker":"KXFLOOR-26","side":"bid","price":"0.4500","count":"5.00"}'
REQUEST = (
    b"POST /trade-api/v2/portfolio/events/orders/00000000-0000-0000-0000-000000000000/amend"
    b" HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY
)


class _Sink(asyncio.Protocol):
    """The exchange connection: answers are read and dropped."""

    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        pass


class _Trigger(asyncio.Protocol):
    """The trigger connection: every arrival writes one request to the exchange."""

    def __init__(self, sink: _Sink, closed: asyncio.Future[None]) -> None:
        self.sink = sink
        self.closed = closed

    def data_received(self, data: bytes) -> None:
        self.sink.transport.write(REQUEST)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


async def _main(host: str, ctrl_port: int, rest_port: int) -> None:
    loop = asyncio.get_running_loop()
    _, sink = await loop.create_connection(_Sink, host, rest_port)
    closed: asyncio.Future[None] = loop.create_future()
    await loop.create_connection(lambda: _Trigger(sink, closed), host, ctrl_port)
    await closed


if __name__ == "__main__":
    uvloop.run(_main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
