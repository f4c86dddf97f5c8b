"""Tests for kmm.kalshi.ws: the websocket client against the local exchange over loopback.

Each test runs :class:`~kmm.kalshi.ws.KalshiWs` against a real
:class:`~kmm.sim.server.SimServer` (manual clock, no background flow), feeding a real
:class:`~kmm.pipeline.Pipeline` the way the engine does: every frame goes to
``pipeline.on_frame`` and sids that need a resnapshot go to ``ws.resync``. Book changes are
made by placing orders for a second account straight on the venue's engine. Waits are
bounded by a timeout but no test asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio
from aiohttp import WSMsgType, web
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Frame, Opcode

from kmm.book.grid import PriceGrid
from kmm.clock import ManualClock
from kmm.errors import AuthError, Rejected
from kmm.kalshi.auth import Signer, load_private_key
from kmm.kalshi.wire import WireDecoder
from kmm.kalshi.ws import KalshiWs, backoff_delay
from kmm.pipeline import MarketSpec, Pipeline, QuoteMailbox
from kmm.sim.engine import OrderRequest
from kmm.sim.keys import KeyStore
from kmm.sim.server import SimServer
from kmm.strategy.quoter import StrategyParams
from kmm.strategy.volatility import EwmaVolatility, KappaEstimator
from kmm.types import QTY_SCALE, BookSide
from tests.sim.conftest import make_options

TIMEOUT_S = 10.0
BOB = "bob"
BOOK = "orderbook_delta"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def key_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state directory holding the sim's demo key, generated once (RSA keygen is slow)."""
    path = tmp_path_factory.mktemp("ws-keys")
    KeyStore.open(path)
    return path


@pytest.fixture
def state_dir(tmp_path: Path, key_template: Path) -> Path:
    target = tmp_path / "sim"
    shutil.copytree(key_template, target)
    return target


@pytest_asyncio.fixture
async def sim(state_dir: Path) -> AsyncIterator[SimServer]:
    """The local exchange on a free port, pinging every 50 ms, with a second account."""
    server = SimServer(make_options(state_dir, ping_interval_s=0.05))
    server.venue.engine.open_account(BOB, 10**12)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def tickers(sim: SimServer, n: int = 2) -> list[str]:
    """The first ``n`` markets on the ordinary 1¢ grid."""
    found = [
        t for t, m in sim.venue.engine.markets.items() if m.price_level_structure == "linear_cent"
    ]
    return found[:n]


# --------------------------------------------------------------------------- harness


class Feed:
    """A client wired to a pipeline as the engine wires it, with a record of what arrived.

    Attributes:
        pipeline: The real pipeline the frames go to.
        ws: The client under test.
        seqs: The ``seq`` of every book message, per sid, in arrival order.
        events: Every event ``on_frame`` returned.
        calls: The callbacks the client made, in order, as ``(name, args)``.
    """

    def __init__(
        self,
        sim: SimServer,
        markets: list[str],
        signer: Signer | None = None,
        *,
        use_yes_price: bool = True,
        **kwargs: Any,
    ) -> None:
        self.pipeline = _pipeline(sim, markets, use_yes_price)
        self.seqs: dict[int, list[int]] = {}
        self.events: list[object] = []
        self.calls: list[tuple[str, tuple[object, ...]]] = []
        options: dict[str, Any] = {
            "now_ns": sim.venue.clock.now_ns,
            "rng": random.Random(5),
            "reconnect_initial_s": 0.01,
            "reconnect_max_s": 0.05,
            "on_reconnect": self._reconnected,
            "on_disconnect": lambda reason: self.calls.append(("disconnect", (reason,))),
            "on_stale": lambda: self.calls.append(("stale", ())),
            "on_resubscribe": lambda channel, sid: self.calls.append(
                ("resubscribe", (channel, sid))
            ),
        }
        options.update(kwargs)
        if signer is None:
            signer = Signer(sim.key_id, load_private_key(sim.private_key_path))
        self.ws = KalshiWs(
            sim.ws_url, signer, self.on_frame, use_yes_price=use_yes_price, **options
        )

    def on_frame(self, frame: bytes, recv_ns: int) -> object:
        """The engine's dispatcher, reduced to what the client relies on."""
        obj = orjson.loads(frame)
        if obj["type"] in ("orderbook_snapshot", "orderbook_delta"):
            self.seqs.setdefault(obj["sid"], []).append(obj["seq"])
        event = self.pipeline.on_frame(frame, recv_ns)
        if event is not None:
            self.events.append(event)
        sids = self.pipeline.take_resync()
        if sids:
            self.ws.resync(sids)
        return event

    def _reconnected(self) -> None:
        # What the engine does: nothing on the old connection can be trusted any more
        self.calls.append(("reconnect", ()))
        for market in self.pipeline.markets.values():
            market.book.trusted = False

    def trusted(self) -> bool:
        return all(m.book.trusted for m in self.pipeline.markets.values())

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


def _pipeline(sim: SimServer, markets: list[str], use_yes_price: bool = True) -> Pipeline:
    pipeline = Pipeline(
        params=StrategyParams(),
        new_vol=lambda: EwmaVolatility(halflife_s=30.0, sigma_default=0.001, min_samples=5),
        new_kappa=lambda: KappaEstimator(
            halflife_trades=50.0,
            kappa_default=50.0,
            kappa_min=5.0,
            kappa_max=500.0,
            min_trades=10,
            half_tick=0.005,
        ),
        inventory=lambda ticker: 0,
        mailbox=QuoteMailbox(),
        use_yes_price=use_yes_price,
    )
    for ticker in markets:
        grid = PriceGrid.from_ranges(sim.venue.engine.markets[ticker].price_ranges)
        pipeline.add_market(MarketSpec(ticker, grid))
    return pipeline


async def until(condition: Callable[[], bool], what: str) -> None:
    """Waits for ``condition`` (a safety timeout only; durations are never asserted)."""
    try:
        async with asyncio.timeout(TIMEOUT_S):
            # Polled: the conditions are state of the venue and the client, with no event
            while not condition():  # noqa: ASYNC110
                await asyncio.sleep(0.005)
    except TimeoutError:
        pytest.fail(f"timed out waiting until {what}")


@pytest_asyncio.fixture
async def running() -> AsyncIterator[Callable[[Feed], asyncio.Task[None]]]:
    """Starts ``feed.ws.run()`` in a task; closes every started client after the test."""
    started: list[tuple[Feed, asyncio.Task[None]]] = []

    def start(feed: Feed) -> asyncio.Task[None]:
        task = asyncio.create_task(feed.ws.run())
        started.append((feed, task))
        return task

    yield start
    for feed, task in started:
        await feed.ws.close()
        await asyncio.wait_for(task, TIMEOUT_S)


async def subscribed(feed: Feed, markets: list[str], channels: tuple[str, ...] = (BOOK,)) -> None:
    await feed.ws.subscribe(channels, markets)
    await feed.ws.wait_subscribed(channels, TIMEOUT_S)
    await until(feed.trusted, "every book trusted after its snapshot")


def bid_below_best(sim: SimServer, ticker: str, ticks: int) -> int:
    """A YES price ``ticks`` cents below the best bid, where a bid rests without trading."""
    best_bid, _ = sim.venue.engine.best(ticker)
    assert best_bid is not None
    return best_bid - ticks * 100


def place_bid(sim: SimServer, ticker: str, price: int) -> None:
    """Bob bids 1 YES contract at ``price``; its book change is published to the feed."""
    request = OrderRequest(ticker, BookSide.BID, price, QTY_SCALE)
    sim.venue.engine.create_order(BOB, request, sim.venue.clock.now_ns())
    sim.venue.publish()


def venue_book(sim: SimServer, ticker: str) -> tuple[dict[int, int], dict[int, int]]:
    return sim.venue.engine.book_levels(ticker)


def feed_book(feed: Feed, ticker: str) -> tuple[dict[int, int], dict[int, int]]:
    book = feed.pipeline.markets[ticker].book
    return dict(book.yes_levels), dict(book.no_levels)


# --------------------------------------------------------------------------- backoff


def test_the_backoff_step_doubles_from_the_initial_delay_up_to_the_cap() -> None:
    # Arrange
    steps = [backoff_delay(n, 0.5, 4.0, 1.0 - 1e-12) for n in range(6)]

    # Act / Assert: with the largest jitter the delay is (just under) the step itself
    assert steps == pytest.approx([0.5, 1.0, 2.0, 4.0, 4.0, 4.0])


def test_the_jitter_keeps_every_delay_in_the_upper_half_of_its_step() -> None:
    # Arrange
    rng = random.Random(3)

    # Act
    delays = [backoff_delay(2, 1.0, 30.0, rng.random()) for _ in range(200)]

    # Assert
    assert all(2.0 <= d < 4.0 for d in delays)
    assert max(delays) - min(delays) > 1.0


def test_a_huge_attempt_number_stays_at_the_cap() -> None:
    assert backoff_delay(10_000, 0.5, 30.0, 0.0) == 15.0


def test_inverted_backoff_bounds_are_refused(sim_free_signer: Signer) -> None:
    with pytest.raises(ValueError, match="reconnect_max_s"):
        KalshiWs("ws://127.0.0.1:1/x", sim_free_signer, lambda f, t: None, reconnect_max_s=0.1)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    """An RSA key the local exchange has never seen."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def sim_free_signer(other_key: rsa.RSAPrivateKey) -> Signer:
    """A signer for servers that do not check signatures."""
    return Signer("key", other_key)


# --------------------------------------------------------------------------- streaming


@pytest.mark.asyncio
async def test_subscribing_streams_snapshots_then_deltas_with_contiguous_seq(
    sim: SimServer, running: Callable[[Feed], asyncio.Task[None]]
) -> None:
    # Arrange
    markets = tickers(sim)
    feed = Feed(sim, markets)
    running(feed)
    await subscribed(feed, markets)

    # Act
    for ticks in (3, 4, 5):
        for ticker in markets:
            place_bid(sim, ticker, bid_below_best(sim, ticker, ticks))
    await until(lambda: sum(map(len, feed.seqs.values())) == 2 + 6, "two snapshots, six deltas")

    # Assert
    sid = feed.ws.sid(BOOK)
    assert sid is not None
    assert list(feed.seqs) == [sid]
    assert feed.seqs[sid] == list(range(1, 9))
    for ticker in markets:
        assert feed_book(feed, ticker) == venue_book(sim, ticker)
    assert feed.ws.stats.frames >= 8
    assert feed.ws.stats.last_message_ns == sim.venue.clock.now_ns()


@pytest.mark.asyncio
async def test_use_yes_price_is_sent_explicitly_and_the_books_match_either_way(
    sim: SimServer, running: Callable[[Feed], asyncio.Task[None]]
) -> None:
    # Arrange: a venue-default (NO-leg prices) subscription, decoded accordingly
    markets = tickers(sim)
    feed = Feed(sim, markets, use_yes_price=False)
    running(feed)

    # Act
    await subscribed(feed, markets)

    # Assert
    assert feed.ws.subscriptions[BOOK].params()["use_yes_price"] is False
    for ticker in markets:
        assert feed_book(feed, ticker) == venue_book(sim, ticker)


@pytest.mark.asyncio
async def test_a_dropped_delta_is_resynced_with_get_snapshot_without_a_reconnect(
    sim: SimServer, running: Callable[[Feed], asyncio.Task[None]]
) -> None:
    # Arrange
    markets = tickers(sim)
    feed = Feed(sim, markets)
    running(feed)
    await subscribed(feed, markets)
    sid = feed.ws.sid(BOOK)

    # Act: the first change is lost, the second reveals the gap
    sim.venue.faults.drop_ws_messages(1, BOOK)
    place_bid(sim, markets[0], bid_below_best(sim, markets[0], 3))
    place_bid(sim, markets[1], bid_below_best(sim, markets[1], 3))
    await until(lambda: feed.pipeline.stats.gaps == 1, "the pipeline saw the gap")
    await until(lambda: feed.ws.stats.resyncs == 1, "a get_snapshot was sent")
    await until(feed.trusted, "every book trusted again after its fresh snapshot")

    # Assert
    assert feed.ws.stats.reconnects == 0
    assert feed.ws.stats.connects == 1
    assert feed.ws.sid(BOOK) == sid
    for ticker in markets:
        assert feed_book(feed, ticker) == venue_book(sim, ticker)
    # The delta that came after the resync applies on the fresh books
    place_bid(sim, markets[0], bid_below_best(sim, markets[0], 6))
    await until(
        lambda: feed_book(feed, markets[0]) == venue_book(sim, markets[0]), "the next delta applied"
    )


@pytest.mark.asyncio
async def test_a_closed_socket_reconnects_resubscribes_and_resnapshots(
    sim: SimServer, running: Callable[[Feed], asyncio.Task[None]]
) -> None:
    # Arrange
    markets = tickers(sim)
    feed = Feed(sim, markets)
    running(feed)
    await subscribed(feed, markets, (BOOK, "ticker", "fill"))
    snapshots_before = feed.pipeline.stats.snapshots

    # Act
    sim.venue.faults.close_sockets()
    await until(lambda: feed.ws.stats.reconnects == 1, "the client reconnected")
    await feed.ws.wait_subscribed((BOOK, "ticker", "fill"), TIMEOUT_S)
    await until(feed.trusted, "every book trusted again")
    place_bid(sim, markets[1], bid_below_best(sim, markets[1], 4))
    await until(
        lambda: feed_book(feed, markets[1]) == venue_book(sim, markets[1]), "a delta on the new sid"
    )

    # Assert
    assert feed.names()[:2] == ["disconnect", "reconnect"]
    assert feed.pipeline.stats.snapshots == snapshots_before + len(markets)
    assert feed.ws.stats.connects == 2
    new_sid = feed.ws.sid(BOOK)
    assert new_sid is not None
    assert feed.seqs[new_sid][-1] == len(markets) + 1
    assert feed.ws.stats.resyncs == 0


@pytest.mark.asyncio
async def test_markets_added_after_subscribing_are_subscribed_again_after_a_reconnect(
    sim: SimServer, running: Callable[[Feed], asyncio.Task[None]]
) -> None:
    # Arrange
    first, second = tickers(sim)
    feed = Feed(sim, [first, second])
    running(feed)
    await feed.ws.subscribe([BOOK], [first])
    sid = (await feed.ws.wait_subscribed([BOOK], TIMEOUT_S))[BOOK]
    await feed.ws.update_subscription(sid, "add_markets", [second])
    await until(feed.trusted, "both books trusted")

    # Act
    sim.venue.faults.close_sockets()
    await until(lambda: feed.ws.stats.reconnects == 1, "the client reconnected")
    await until(feed.trusted, "both books trusted again")

    # Assert
    assert feed.ws.subscriptions[BOOK].market_tickers == (first, second)
    assert feed_book(feed, second) == venue_book(sim, second)


@pytest.mark.asyncio
async def test_a_stalled_feed_fires_the_watchdog_and_the_client_reconnects(
    sim: SimServer, running: Callable[[Feed], asyncio.Task[None]]
) -> None:
    # Arrange: our own keepalive pings keep getting pongs; they must not count as a live feed
    markets = tickers(sim)
    feed = Feed(sim, markets, stale_after_s=0.5, ping_interval_s=0.1)
    running(feed)
    await subscribed(feed, markets)
    await until(lambda: feed.ws.stats.pings >= 2, "the venue's pings arrive")

    # Act: nothing (not even a ping) is sent until the venue's clock passes the stall
    sim.venue.faults.stall_feed(60.0, sim.venue.clock.now_ns())
    await until(lambda: feed.ws.stats.stale >= 1, "the watchdog fired")
    clock = sim.venue.clock
    assert isinstance(clock, ManualClock)
    clock.advance(61.0)
    await until(lambda: feed.ws.stats.reconnects >= 1 and feed.trusted(), "fresh books")

    # Assert
    assert "stale" in feed.names()
    assert feed.names().index("stale") < feed.names().index("reconnect")
    for ticker in markets:
        assert feed_book(feed, ticker) == venue_book(sim, ticker)


@pytest.mark.asyncio
async def test_close_ends_run_and_the_socket(
    sim: SimServer, running: Callable[[Feed], asyncio.Task[None]]
) -> None:
    # Arrange
    markets = tickers(sim)
    feed = Feed(sim, markets)
    task = running(feed)
    await subscribed(feed, markets)

    # Act
    await feed.ws.close()
    await asyncio.wait_for(task, TIMEOUT_S)

    # Assert
    assert not feed.ws.connected
    assert not feed.ws.stats.connected
    assert "disconnect" not in feed.names()
    assert await feed.ws.subscribe(["ticker"], markets) is None


# --------------------------------------------------------------------------- refusals


@pytest.mark.asyncio
async def test_a_key_the_venue_rejects_fails_the_handshake_with_an_auth_error(
    sim: SimServer, other_key: rsa.RSAPrivateKey
) -> None:
    # Arrange: the demo key's id, signed with some other private key
    signer = Signer(sim.key_id, other_key)
    feed = Feed(sim, tickers(sim), signer)

    # Act
    with pytest.raises(AuthError) as refused:
        await feed.ws.connect()

    # Assert
    assert refused.value.status == 401
    assert "websocket handshake refused" in str(refused.value)
    assert sim.ws_url in str(refused.value)
    assert not feed.ws.connected


@pytest.mark.asyncio
async def test_run_gives_up_at_once_when_the_key_is_refused(
    sim: SimServer, other_key: rsa.RSAPrivateKey
) -> None:
    # Arrange
    signer = Signer(sim.key_id, other_key)
    feed = Feed(sim, tickers(sim), signer)

    # Act / Assert
    with pytest.raises(AuthError):
        await asyncio.wait_for(feed.ws.run(), TIMEOUT_S)
    assert feed.ws.stats.connects == 0


@pytest.mark.asyncio
async def test_a_subscribe_the_venue_refuses_raises_with_its_code(
    sim: SimServer, running: Callable[[Feed], asyncio.Task[None]]
) -> None:
    # Arrange
    feed = Feed(sim, [])
    running(feed)
    await until(lambda: feed.ws.connected, "connected")

    # Act
    await feed.ws.subscribe([BOOK], ["NO-SUCH-MARKET"])

    # Assert
    with pytest.raises(Rejected) as refused:
        await feed.ws.wait_subscribed([BOOK], TIMEOUT_S)
    assert refused.value.code == "16"


def test_an_orderbook_subscription_without_markets_is_refused(sim_free_signer: Signer) -> None:
    ws = KalshiWs("ws://127.0.0.1:1/trade-api/ws/v2", sim_free_signer, lambda f, t: None)
    with pytest.raises(ValueError, match="market tickers"):
        asyncio.run(ws.subscribe([BOOK]))


# --------------------------------------------------------------------------- a scripted venue


class ScriptedVenue:
    """A minimal Kalshi-like websocket server for what the local exchange cannot be made to do
    on demand: it answers each ``subscribe`` with ``subscribed`` (sids 1, 2, ...), and ends the
    first ``ticker`` subscription with terminal error 25 right after a malformed frame.

    Attributes:
        commands: Every command received, parsed.
    """

    def __init__(self) -> None:
        self.commands: list[dict[str, Any]] = []
        self._next_sid = 0
        self._ended = False

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is WSMsgType.TEXT:
                await self._command(ws, orjson.loads(msg.data))
        return ws

    async def _command(self, ws: web.WebSocketResponse, cmd: dict[str, Any]) -> None:
        self.commands.append(cmd)
        if cmd["cmd"] != "subscribe":
            return
        for channel in cmd["params"]["channels"]:
            self._next_sid += 1
            reply = {
                "id": cmd["id"],
                "type": "subscribed",
                "msg": {"channel": channel, "sid": self._next_sid},
            }
            await ws.send_bytes(orjson.dumps(reply))
            if channel == "ticker" and not self._ended:
                self._ended = True
                await ws.send_str("this is not json")
                error = {
                    "sid": self._next_sid,
                    "type": "error",
                    "msg": {"code": 25, "msg": "Subscription buffer overflow"},
                }
                await ws.send_str(orjson.dumps(error).decode())


@pytest_asyncio.fixture
async def scripted() -> AsyncIterator[tuple[ScriptedVenue, str]]:
    venue = ScriptedVenue()
    app = web.Application()
    app.add_routes([web.get("/trade-api/ws/v2", venue.handle)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield venue, f"ws://127.0.0.1:{port}/trade-api/ws/v2"
    finally:
        await runner.cleanup()


@pytest.mark.asyncio
async def test_a_terminal_channel_error_resubscribes_that_channel_only(
    scripted: tuple[ScriptedVenue, str], sim_free_signer: Signer
) -> None:
    # Arrange
    venue, url = scripted
    calls: list[tuple[str, int | None]] = []
    events: list[object] = []
    decoder = WireDecoder(use_yes_price=True)

    def on_frame(frame: bytes, recv_ns: int) -> object:
        event = decoder.decode(frame)
        events.append(event)
        return event

    ws = KalshiWs(url, sim_free_signer, on_frame, on_resubscribe=lambda c, s: calls.append((c, s)))
    await ws.connect()
    task = asyncio.create_task(ws.run())
    try:
        # Act
        await ws.subscribe(["trade", "ticker"])
        await until(lambda: ws.stats.resubscribes == 1, "the ended channel was resubscribed")
        sids = await ws.wait_subscribed(["trade", "ticker"], TIMEOUT_S)
    finally:
        await ws.close()
        await asyncio.wait_for(task, TIMEOUT_S)

    # Assert
    subscribes = [c["params"]["channels"] for c in venue.commands if c["cmd"] == "subscribe"]
    assert subscribes == [["trade", "ticker"], ["ticker"]]
    assert calls == [("ticker", 2)]
    assert sids == {"trade": 1, "ticker": 3}
    assert ws.stats.bad_frames == 1
    assert ws.stats.reconnects == 0


# --------------------------------------------------------------------------- inline dispatch


@contextlib.asynccontextmanager
async def burst_server(frames: list[Frame]) -> AsyncIterator[str]:
    """A websocket server that sends ``frames`` in one TCP write (so that all of them arrive
    in one read) when the client sends its first command; yields its URL."""
    burst = b"".join(f.serialize(mask=False) for f in frames)

    async def handler(connection: ServerConnection) -> None:
        await connection.recv()
        connection.transport.write(burst)
        await connection.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/trade-api/ws/v2"


async def receive_burst(ws: KalshiWs, handled: Callable[[], bool]) -> None:
    """Connects ``ws``, sends a command (the server's cue), runs until ``handled()``, closes."""
    await ws.connect()
    task = asyncio.create_task(ws.run())
    try:
        await ws.list_subscriptions()
        await until(handled, "the burst handled")
    finally:
        await ws.close()
        await asyncio.wait_for(task, TIMEOUT_S)


@pytest_asyncio.fixture
async def sequence_server() -> AsyncIterator[str]:
    """One complete frame, one message in three fragments, then two complete frames."""
    frames = [
        Frame(Opcode.TEXT, b'{"n":1}'),
        Frame(Opcode.TEXT, b'{"n":', fin=False),
        Frame(Opcode.CONT, b"2", fin=False),
        Frame(Opcode.CONT, b"}"),
        Frame(Opcode.TEXT, b'{"n":3}'),
        Frame(Opcode.TEXT, b'{"n":4}'),
    ]
    async with burst_server(frames) as url:
        yield url


@pytest.mark.asyncio
async def test_a_fragmented_message_is_handled_in_order_with_inline_frames(
    sequence_server: str, sim_free_signer: Signer
) -> None:
    # Arrange
    seen: list[int] = []

    def on_frame(frame: bytes, recv_ns: int) -> object:
        seen.append(orjson.loads(frame)["n"])
        return None

    ws = KalshiWs(sequence_server, sim_free_signer, on_frame)

    # Act
    await receive_burst(ws, lambda: len(seen) == 4)

    # Assert
    assert seen == [1, 2, 3, 4]
    assert ws.stats.frames == 4


@pytest.mark.asyncio
async def test_an_error_in_on_frame_other_than_a_wire_error_ends_run_with_it(
    sequence_server: str, sim_free_signer: Signer
) -> None:
    # Arrange
    def on_frame(frame: bytes, recv_ns: int) -> object:
        raise KeyError("a bug in the handler")

    ws = KalshiWs(sequence_server, sim_free_signer, on_frame)
    await ws.connect()
    await ws.list_subscriptions()

    # Act / Assert
    with pytest.raises(KeyError, match="a bug in the handler"):
        await asyncio.wait_for(ws.run(), TIMEOUT_S)


@pytest_asyncio.fixture
async def book_burst_server() -> AsyncIterator[str]:
    """Book, ticker, book, ticker frames in one read."""
    payloads = [
        b'{"type":"orderbook_delta","n":1}',
        b'{"type":"ticker","n":2}',
        b'{"type":"orderbook_delta","n":3}',
        b'{"type":"ticker","n":4}',
    ]
    async with burst_server([Frame(Opcode.TEXT, p) for p in payloads]) as url:
        yield url


@pytest.mark.asyncio
async def test_book_frames_ahead_counts_the_later_book_frames_of_the_same_read(
    book_burst_server: str, sim_free_signer: Signer
) -> None:
    # Arrange
    ahead: list[tuple[int, int]] = []
    ws: KalshiWs

    def on_frame(frame: bytes, recv_ns: int) -> object:
        ahead.append((orjson.loads(frame)["n"], ws.book_frames_ahead))
        return None

    ws = KalshiWs(book_burst_server, sim_free_signer, on_frame)

    # Act
    await receive_burst(ws, lambda: len(ahead) == 4)

    # Assert: the engine acts on the book at frame 3, not before frame 1's sibling
    assert ahead == [(1, 1), (2, 1), (3, 0), (4, 0)]
    assert ws.book_frames_ahead == 0
