"""The order lane: order writes over kept-alive connections, against the real local exchange.

Faults the local exchange cannot produce on demand (a dropped connection, a chunked or
``Connection: close`` answer, garbage) come from a small raw HTTP server at the transport edge.
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import orjson
import pytest
import pytest_asyncio
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kmm.errors import Rejected, UnknownOutcome
from kmm.kalshi.auth import Signer, load_private_key
from kmm.kalshi.lane import LaneError, LaneResponse, OrderLane
from kmm.kalshi.rest import KalshiRest, OrderRequest
from kmm.sim.server import SimServer
from kmm.types import ONE_CENT, QTY_SCALE, BookSide

TIMEOUT_S = 10.0


def _ticker(sim: SimServer) -> str:
    return next(t for t, m in sim.venue.engine.markets.items() if m.status == "active")


def _bid_below_best(sim: SimServer, ticker: str) -> int:
    best_bid, _ = sim.venue.engine.best(ticker)
    assert best_bid is not None
    return best_bid - 3 * ONE_CENT


@pytest_asyncio.fixture
async def lane(sim: SimServer) -> AsyncIterator[OrderLane]:
    order_lane = OrderLane(sim.rest_url, connections=2, timeout_s=2.0)
    await order_lane.start()
    try:
        yield order_lane
    finally:
        await order_lane.close()


@pytest_asyncio.fixture
async def rest(sim: SimServer, lane: OrderLane) -> AsyncIterator[KalshiRest]:
    clock = sim.venue.clock
    async with aiohttp.ClientSession() as session:
        signer = Signer(sim.key_id, load_private_key(sim.private_key_path))
        yield KalshiRest(
            session,
            sim.rest_url,
            signer,
            now_ms=lambda: clock.now_ns() // 1_000_000,
            lane=lane,
        )


# --------------------------------------------------------------------------- the local exchange


@pytest.mark.asyncio
async def test_order_writes_go_over_the_lane_and_the_venue_applies_them(
    sim: SimServer, lane: OrderLane, rest: KalshiRest
) -> None:
    # Arrange
    ticker = _ticker(sim)
    price = _bid_below_best(sim, ticker)
    order = OrderRequest(ticker, BookSide.BID, price, 2 * QTY_SCALE, "lane-1", post_only=True)

    # Act
    ack = await rest.create_order(order)
    amended = await rest.amend_order(
        ack.order_id, ticker=ticker, side=BookSide.BID, price=price - ONE_CENT, count=QTY_SCALE
    )
    resting = await rest.resting_orders(ticker)
    canceled = await rest.batch_cancel([ack.order_id])

    # Assert
    assert [(o.order_id, o.price, o.remaining) for o in resting] == [
        (ack.order_id, price - ONE_CENT, QTY_SCALE)
    ]
    assert amended.order_id == ack.order_id
    assert canceled[0].error is None
    assert await rest.resting_orders(ticker) == []
    assert (lane.sent, lane.fallbacks) == (3, 0)


@pytest.mark.asyncio
async def test_a_write_is_written_before_the_call_returns(
    sim: SimServer, lane: OrderLane, rest: KalshiRest
) -> None:
    # Arrange
    ticker = _ticker(sim)
    arrived: list[str] = []
    sim.request_observers.append(lambda request: arrived.append(request.path))
    order = OrderRequest(ticker, BookSide.BID, _bid_below_best(sim, ticker), QTY_SCALE, "lane-2")

    # Act: start the write, then let only the exchange's side run
    pending = rest.create_order(order)
    sent = lane.sent
    await asyncio.wait_for(_until(lambda: bool(arrived)), TIMEOUT_S)
    ack = await pending

    # Assert
    assert sent == 1
    assert arrived == ["/trade-api/v2/portfolio/events/orders"]
    assert ack.client_order_id == "lane-2"


@pytest.mark.asyncio
async def test_a_refused_write_raises_kalshis_typed_error(sim: SimServer, rest: KalshiRest) -> None:
    # Arrange: a post-only bid at the best ask would take
    ticker = _ticker(sim)
    _, best_ask = sim.venue.engine.best(ticker)
    assert best_ask is not None
    order = OrderRequest(ticker, BookSide.BID, best_ask, QTY_SCALE, "lane-3", post_only=True)

    # Act / Assert
    with pytest.raises(Rejected) as refused:
        await rest.create_order(order)
    assert refused.value.status == 400
    assert refused.value.code


@pytest.mark.asyncio
async def test_a_5xx_is_an_unknown_outcome_and_the_connection_is_reused(
    sim: SimServer, lane: OrderLane, rest: KalshiRest
) -> None:
    # Arrange
    ticker = _ticker(sim)
    price = _bid_below_best(sim, ticker)
    sim.venue.faults.fail_next_writes(1, "5xx", accepted=True)

    # Act
    with pytest.raises(UnknownOutcome):
        await rest.create_order(OrderRequest(ticker, BookSide.BID, price, QTY_SCALE, "lane-4"))
    second = await rest.create_order(OrderRequest(ticker, BookSide.BID, price, QTY_SCALE, "lane-5"))

    # Assert: the first one was accepted by the venue although the answer was a 500
    ids = {o.client_order_id for o in await rest.resting_orders(ticker)}
    assert ids == {"lane-4", "lane-5"}
    assert second.client_order_id == "lane-5"
    assert lane.fallbacks == 0


@pytest.mark.asyncio
async def test_no_answer_in_time_is_an_unknown_outcome(
    sim: SimServer, lane: OrderLane, rest: KalshiRest
) -> None:
    # Arrange
    lane.timeout_s = 0.2
    ticker = _ticker(sim)
    sim.venue.faults.fail_next_writes(1, "timeout", accepted=False)
    order = OrderRequest(ticker, BookSide.BID, _bid_below_best(sim, ticker), QTY_SCALE, "lane-6")

    # Act / Assert
    with pytest.raises(UnknownOutcome, match="no answer within"):
        await rest.create_order(order)


@pytest.mark.asyncio
async def test_with_no_idle_connection_the_write_goes_through_aiohttp(
    sim: SimServer, lane: OrderLane, rest: KalshiRest
) -> None:
    # Arrange: three writes at once on a two-connection lane
    ticker = _ticker(sim)
    price = _bid_below_best(sim, ticker)
    orders = [OrderRequest(ticker, BookSide.BID, price, QTY_SCALE, f"lane-f{i}") for i in range(3)]

    # Act
    acks = await asyncio.gather(*(rest.create_order(o) for o in orders))

    # Assert
    assert sorted(a.client_order_id or "" for a in acks) == ["lane-f0", "lane-f1", "lane-f2"]
    assert (lane.sent, lane.fallbacks) == (2, 1)


# --------------------------------------------------------------------------- transport faults


class RawServer:
    """Answers each request on a connection with the next scripted reply (bytes), or closes
    the connection when the script says None."""

    def __init__(self, replies: list[bytes | None], *, close_after: bool = False) -> None:
        self.replies = replies
        self.close_after = close_after
        self.requests: list[bytes] = []
        self.connections = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.replies:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                self.requests.append(head + await reader.readexactly(length))
                reply = self.replies.pop(0)
                if reply is None:
                    break
                writer.write(reply)
                await writer.drain()
                if self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


StartRaw = Callable[..., Awaitable[tuple[RawServer, OrderLane]]]


@pytest_asyncio.fixture
async def raw() -> AsyncIterator[StartRaw]:
    servers: list[asyncio.Server] = []
    lanes: list[OrderLane] = []

    async def start(
        replies: list[bytes | None], *, close_after: bool = False
    ) -> tuple[RawServer, OrderLane]:
        script = RawServer(replies, close_after=close_after)
        server = await asyncio.start_server(script.handle, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        order_lane = OrderLane(f"http://127.0.0.1:{port}/trade-api/v2", connections=1)
        await order_lane.start()
        lanes.append(order_lane)
        return script, order_lane

    yield start
    for order_lane in lanes:
        await order_lane.close()
    for server in servers:
        server.close()


OK_JSON = (
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'
)
CHUNKED = (
    b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
    b'6\r\n{"ok":\r\n5\r\ntrue}\r\n0\r\n\r\n'
)
CLOSING = b'HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 11\r\n\r\n{"ok":true}'


def _send(order_lane: OrderLane) -> asyncio.Future[LaneResponse]:
    sent = order_lane.send("POST", "/trade-api/v2/portfolio/events/orders", {"A": "b"}, b"{}")
    assert sent is not None
    return sent


async def _until(condition: Callable[[], bool]) -> None:
    while not condition():  # noqa: ASYNC110 - polled state, bounded by the caller's timeout
        await asyncio.sleep(0.005)


@pytest.mark.asyncio
async def test_the_request_carries_host_length_and_the_given_headers(raw: StartRaw) -> None:
    # Arrange
    script, order_lane = await raw([OK_JSON])

    # Act
    answer = await asyncio.wait_for(_send(order_lane), TIMEOUT_S)

    # Assert
    head, _, body = script.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /trade-api/v2/portfolio/events/orders HTTP/1.1"
    assert b"Content-Length: 2" in lines
    assert b"A: b" in lines
    assert any(line.startswith(b"Host: 127.0.0.1:") for line in lines)
    assert body == b"{}"
    assert (answer.status, answer.body) == (200, b'{"ok":true}')


@pytest.mark.asyncio
async def test_a_chunked_answer_is_read_whole_and_the_connection_kept(raw: StartRaw) -> None:
    # Arrange
    script, order_lane = await raw([CHUNKED, OK_JSON])

    # Act
    first = await asyncio.wait_for(_send(order_lane), TIMEOUT_S)
    second = await asyncio.wait_for(_send(order_lane), TIMEOUT_S)

    # Assert
    assert (first.status, first.body) == (201, b'{"ok":true}')
    assert second.status == 200
    assert script.connections == 1


@pytest.mark.asyncio
async def test_connection_close_is_honoured_and_a_fresh_connection_replaces_it(
    raw: StartRaw,
) -> None:
    # Arrange
    script, order_lane = await raw([CLOSING, OK_JSON])

    # Act
    first = await asyncio.wait_for(_send(order_lane), TIMEOUT_S)
    await asyncio.wait_for(_until(lambda: script.connections == 2 and order_lane.idle == 1), 10)
    second = await asyncio.wait_for(_send(order_lane), TIMEOUT_S)

    # Assert
    assert first.status == second.status == 200


@pytest.mark.asyncio
async def test_a_connection_dropped_before_the_answer_fails_the_write(raw: StartRaw) -> None:
    # Arrange
    _, order_lane = await raw([None])

    # Act / Assert
    with pytest.raises(LaneError, match="connection lost"):
        await asyncio.wait_for(_send(order_lane), TIMEOUT_S)


@pytest.mark.asyncio
async def test_a_malformed_answer_fails_the_write(raw: StartRaw) -> None:
    # Arrange
    _, order_lane = await raw([b"this is not http\r\n\r\n"])

    # Act / Assert
    with pytest.raises(LaneError, match="malformed answer"):
        await asyncio.wait_for(_send(order_lane), TIMEOUT_S)


@pytest.mark.asyncio
async def test_a_dropped_connection_through_kalshi_rest_is_an_unknown_outcome(
    raw: StartRaw,
) -> None:
    # Arrange
    _, order_lane = await raw([None])
    async with aiohttp.ClientSession() as session:
        rest = KalshiRest(
            session,
            f"http://{order_lane.host}:{order_lane.port}/trade-api/v2",
            None,
            lane=order_lane,
        )
        order = OrderRequest("T", BookSide.BID, 10 * ONE_CENT, QTY_SCALE, "x")

        # Act / Assert
        with pytest.raises(UnknownOutcome, match="connection lost"):
            await rest.create_order(order)


@pytest.mark.asyncio
async def test_an_answer_cut_short_by_the_server_closing_fails_the_write(raw: StartRaw) -> None:
    # Arrange: the server promises 20 bytes of body, sends 5, and closes
    cut = b'HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n{"ok"'
    _, order_lane = await raw([cut], close_after=True)

    # Act / Assert
    with pytest.raises(LaneError):
        await asyncio.wait_for(_send(order_lane), TIMEOUT_S)


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="not an http"):
        OrderLane("ws://127.0.0.1:1/trade-api/v2")


def test_a_header_with_a_line_break_is_refused() -> None:
    order_lane = OrderLane("http://127.0.0.1:1/trade-api/v2")
    with pytest.raises(ValueError, match="line break"):
        order_lane._render("POST", "/x", {"A": "b\r\nEvil: 1"}, b"")


# --------------------------------------------------------------------------- TLS


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.mark.asyncio
async def test_the_lane_speaks_https_with_certificate_checks(tmp_path: Path) -> None:
    # Arrange: an HTTPS server with a certificate for "localhost" that the client trusts
    cert_path, key_path = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_path, key_path)
    client_tls = ssl.create_default_context(cafile=str(cert_path))

    async def orders(request: web.Request) -> web.Response:
        return web.json_response({"echo": orjson.loads(await request.read())["n"]}, status=201)

    app = web.Application()
    app.router.add_post("/trade-api/v2/portfolio/events/orders", orders)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls)
    await site.start()
    port = runner.addresses[0][1]
    order_lane = OrderLane(
        f"https://localhost:{port}/trade-api/v2", connections=1, ssl_context=client_tls
    )
    try:
        await order_lane.start()

        # Act
        sent = order_lane.send("POST", "/trade-api/v2/portfolio/events/orders", {}, b'{"n":7}')
        assert sent is not None
        answer = await asyncio.wait_for(sent, TIMEOUT_S)
    finally:
        await order_lane.close()
        await runner.cleanup()

    # Assert
    assert (answer.status, orjson.loads(answer.body)) == (201, {"echo": 7})


@pytest.mark.asyncio
async def test_a_write_that_cannot_be_built_fails_when_awaited_not_when_started(
    lane: OrderLane, rest: KalshiRest
) -> None:
    # Arrange: a body orjson cannot serialize
    body = {"ticker": object()}

    # Act: starting it does not raise (the executor's planning loop goes on)
    pending = rest.write("POST", "/portfolio/events/orders", body)

    # Assert
    with pytest.raises(TypeError):
        await pending
    assert lane.sent == 0
