"""Contract tests of the local exchange's websocket (``kmm.sim.ws``) with real clients.

Every frame a test receives is checked by :class:`Client` with ``kmm.kalshi.wire.WireDecoder``
(the bot's own parser): it must be a text frame, decode without error and be of a type the
decoder knows. The venue runs on a manual clock with no background flow, so the books hold
only the universe's seed orders and what each test places.
"""

from __future__ import annotations

import asyncio
from functools import cache
from pathlib import Path
from typing import Any, Self

import aiohttp
import orjson
import pytest
import websockets
import yaml
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from kmm.book.grid import PriceGrid
from kmm.book.sequence import SeqStatus, SequenceTracker
from kmm.clock import ManualClock
from kmm.kalshi.auth import Signer, load_private_key
from kmm.kalshi.constants import WS_ERRORS, WS_PATH
from kmm.kalshi.wire import (
    BookDelta,
    BookSnapshot,
    ErrorMsg,
    Event,
    MarketLifecycle,
    MarketPosition,
    Ok,
    Subscribed,
    Ticker,
    Trade,
    Unsubscribed,
    UserOrder,
    WireDecoder,
)
from kmm.sim._ws_frames import market_id
from kmm.sim.engine import CreateResult, OrderRequest, TimeInForce
from kmm.sim.server import SimServer
from kmm.sim.ws import WsHub
from kmm.types import ONE_DOLLAR, QTY_SCALE, BookSide, Fill, Outcome, Price, format_price
from tests.sim.conftest import START_NS, make_options
from tests.sim.schema import problems

TIMEOUT_S = 2.0
QUIET_S = 0.15
BOB = "bob"
ASYNCAPI = Path(__file__).resolve().parent.parent / "data" / "asyncapi.yaml"
"""Kalshi's AsyncAPI spec (``shared/kalshi-docs/asyncapi.yaml``); frames are checked against
its schemas when the file is present."""
PAYLOAD_SCHEMAS = {
    "orderbook_snapshot": "orderbookSnapshotPayload",
    "orderbook_delta": "orderbookDeltaPayload",
    "ticker": "tickerPayload",
    "trade": "tradePayload",
    "fill": "fillPayload",
    "user_order": "userOrderPayload",
    "market_position": "marketPositionPayload",
    "market_lifecycle_v2": "marketLifecycleV2Payload",
    "order_group_updates": "orderGroupUpdatesPayload",
    "subscribed": "subscribedResponsePayload",
    "unsubscribed": "unsubscribedResponsePayload",
    "ok": "okResponsePayload",
    "error": "errorResponsePayload",
}
ALL_DECODED_CHANNELS = [
    "orderbook_delta",
    "ticker",
    "trade",
    "fill",
    "user_orders",
    "market_positions",
    "market_lifecycle_v2",
]


# --------------------------------------------------------------------------- helpers


@cache
def asyncapi() -> dict[str, Any] | None:
    """The parsed AsyncAPI spec, or None when ``tests/data/asyncapi.yaml`` is absent."""
    if not ASYNCAPI.exists():
        return None
    doc: dict[str, Any] = yaml.safe_load(ASYNCAPI.read_text(encoding="utf-8"))
    return doc


def schema_problems(obj: dict[str, Any]) -> list[str]:
    """How a received message departs from its AsyncAPI payload schema (empty: it conforms)."""
    doc = asyncapi()
    if doc is None:
        return []
    name = PAYLOAD_SCHEMAS[obj["type"]]
    if obj["type"] == "ok" and isinstance(obj.get("msg"), list):
        name = "listSubscriptionsResponsePayload"
    return problems(doc, {"$ref": f"#/components/schemas/{name}"}, obj)


class Client:
    """A signed websocket connection whose every received frame is decoded by the bot's parser.

    Attributes:
        decoder: The bot's decoder, for this connection's ``use_yes_price`` convention.
        allowed_unknown: Message types the decoder does not know but the test expects.
        received: Every raw message received, parsed, in order.
    """

    def __init__(self, ws: ClientConnection, use_yes_price: bool) -> None:
        self.ws = ws
        self.decoder = WireDecoder(use_yes_price)
        self.allowed_unknown: set[str] = set()
        self.received: list[dict[str, Any]] = []
        self._next_id = 0

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()

    async def send(self, cmd: str, params: dict[str, Any] | None = None) -> int:
        """Sends a command with the next id and returns the id."""
        self._next_id += 1
        frame: dict[str, Any] = {"id": self._next_id, "cmd": cmd}
        if params is not None:
            frame["params"] = params
        await self.ws.send(orjson.dumps(frame).decode())
        return self._next_id

    async def recv(self) -> tuple[dict[str, Any], Event | None]:
        """The next message, raw and as the bot decodes it (which must not fail)."""
        raw = await asyncio.wait_for(self.ws.recv(), TIMEOUT_S)
        assert isinstance(raw, str), "Kalshi sends text frames"
        event = self.decoder.decode(raw)
        obj: dict[str, Any] = orjson.loads(raw)
        if event is None:
            assert obj["type"] in self.allowed_unknown, f"the bot cannot parse {raw}"
        found = schema_problems(obj)
        assert not found, f"{raw} does not match its AsyncAPI schema:\n" + "\n".join(found)
        self.received.append(obj)
        return obj, event

    async def recv_msg(self) -> dict[str, Any]:
        """The next message, raw."""
        return (await self.recv())[0]

    async def expect(self, msg_type: str) -> tuple[dict[str, Any], Any]:
        """The next message, which must be of ``msg_type``."""
        obj, event = await self.recv()
        assert obj["type"] == msg_type, f"expected {msg_type}, got {obj}"
        return obj, event

    async def subscribe(self, channels: list[str], **params: Any) -> list[int]:
        """Subscribes and returns the sids from the ``subscribed`` replies, in channel order."""
        await self.send("subscribe", {"channels": channels, **params})
        sids = []
        for channel in channels:
            _obj, event = await self.expect("subscribed")
            assert isinstance(event, Subscribed)
            assert event.channel == channel
            sids.append(event.sid)
        return sids

    async def assert_silent(self, seconds: float = QUIET_S) -> None:
        """Nothing arrives for ``seconds``."""
        with pytest.raises(TimeoutError):
            raw = await asyncio.wait_for(self.ws.recv(), seconds)
            pytest.fail(f"unexpected message {raw}")


async def connect(
    sim: SimServer,
    key: tuple[str, Path] | None = None,
    *,
    use_yes_price: bool = False,
) -> Client:
    """Opens a websocket signed with ``key`` (default: the demo key)."""
    key_id, path = key if key is not None else (sim.key_id, sim.private_key_path)
    signer = Signer(key_id, load_private_key(path))
    headers = signer.headers("GET", WS_PATH, sim.venue.clock.now_ns() // 1_000_000)
    ws = await websockets.connect(sim.ws_url, additional_headers=headers)
    return Client(ws, use_yes_price)


def hub_of(sim: SimServer) -> WsHub:
    hub = getattr(sim, "hub", None) or sim._hub
    assert isinstance(hub, WsHub)
    return hub


def market(sim: SimServer, structure: str = "linear_cent", index: int = 0) -> str:
    tickers = [
        ticker
        for ticker, m in sim.venue.engine.markets.items()
        if m.price_level_structure == structure
    ]
    return tickers[index]


def grid(sim: SimServer, ticker: str) -> PriceGrid:
    return PriceGrid.from_ranges(sim.venue.engine.markets[ticker].price_ranges)


def passive_bid(sim: SimServer, ticker: str, ticks: int = 3) -> Price:
    """A valid YES price ``ticks`` below the best bid, where a bid rests without trading."""
    best_bid, _ = sim.venue.engine.best(ticker)
    g = grid(sim, ticker)
    price = g.offset(best_bid, -ticks) if best_bid is not None else g.ceil(ONE_DOLLAR // 10)
    assert price is not None
    return price


def passive_ask(sim: SimServer, ticker: str, ticks: int = 3) -> Price:
    """A valid YES price ``ticks`` above the best ask, where an ask rests without trading."""
    _, best_ask = sim.venue.engine.best(ticker)
    g = grid(sim, ticker)
    price = g.offset(best_ask, ticks) if best_ask is not None else g.floor(ONE_DOLLAR * 9 // 10)
    assert price is not None
    return price


def place(
    sim: SimServer,
    user: str,
    ticker: str,
    side: BookSide,
    price: Price,
    contracts: int = 1,
    *,
    client_order_id: str | None = None,
    tif: TimeInForce = TimeInForce.GTC,
    publish: bool = True,
) -> CreateResult:
    """Places an order straight on the engine and publishes its events, as REST does."""
    request = OrderRequest(
        ticker,
        side,
        price,
        contracts * QTY_SCALE,
        time_in_force=tif,
        client_order_id=client_order_id,
    )
    result = sim.venue.engine.create_order(user, request, sim.venue.clock.now_ns())
    if publish:
        sim.venue.publish()
    return result


def clock(sim: SimServer) -> ManualClock:
    assert isinstance(sim.venue.clock, ManualClock)
    return sim.venue.clock


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def bob_key(sim: SimServer) -> tuple[str, Path]:
    return sim.register_key(BOB)


# --------------------------------------------------------------------------- handshake


@pytest.mark.asyncio
async def test_a_handshake_without_signed_headers_is_rejected_with_401(sim: SimServer) -> None:
    with pytest.raises(InvalidStatus) as raised:
        await websockets.connect(sim.ws_url)

    assert raised.value.response.status_code == 401


@pytest.mark.asyncio
async def test_a_handshake_signed_for_another_path_is_rejected_with_401(sim: SimServer) -> None:
    signer = Signer(sim.key_id, load_private_key(sim.private_key_path))
    headers = signer.headers("GET", "/trade-api/v2/portfolio/balance", START_NS // 1_000_000)

    with pytest.raises(InvalidStatus) as raised:
        await websockets.connect(sim.ws_url, additional_headers=headers)

    assert raised.value.response.status_code == 401


# --------------------------------------------------------------------------- orderbook_delta


@pytest.mark.asyncio
async def test_a_book_subscription_starts_with_a_snapshot_equal_to_the_engines_book(
    sim: SimServer,
) -> None:
    ticker = market(sim)
    yes, no = sim.venue.engine.book_levels(ticker)

    async with await connect(sim) as client:
        [sid] = await client.subscribe(["orderbook_delta"], market_ticker=ticker)
        obj, snap = await client.expect("orderbook_snapshot")

    assert isinstance(snap, BookSnapshot)
    assert (snap.sid, snap.seq, snap.ticker) == (sid, 1, ticker)
    assert snap.yes == sorted(yes.items())
    assert snap.no == sorted(no.items())
    assert obj["msg"]["market_id"]


@pytest.mark.asyncio
async def test_deltas_follow_the_snapshot_with_seq_rising_by_one(
    sim: SimServer, bob_key: tuple[str, Path]
) -> None:
    ticker = market(sim)
    bid, ask = passive_bid(sim, ticker), passive_ask(sim, ticker)

    async with await connect(sim) as client:
        [sid] = await client.subscribe(["orderbook_delta"], market_ticker=ticker)
        await client.expect("orderbook_snapshot")
        place(sim, BOB, ticker, BookSide.BID, bid, 5)
        place(sim, BOB, ticker, BookSide.ASK, ask, 2)
        order = place(sim, BOB, ticker, BookSide.BID, bid, 1).order
        sim.venue.engine.cancel_order(BOB, order.order_id, START_NS)
        sim.venue.publish()
        deltas = [(await client.expect("orderbook_delta"))[1] for _ in range(4)]

    assert [(d.sid, d.seq) for d in deltas] == [(sid, 2), (sid, 3), (sid, 4), (sid, 5)]
    assert [(d.side, d.price, d.delta) for d in deltas] == [
        (Outcome.YES, bid, 500),
        (Outcome.NO, ONE_DOLLAR - ask, 200),
        (Outcome.YES, bid, 100),
        (Outcome.YES, bid, -100),
    ]
    assert all(d.client_order_id is None for d in deltas)


@pytest.mark.asyncio
async def test_a_delta_caused_by_your_own_order_carries_its_client_order_id_for_you_only(
    sim: SimServer, bob_key: tuple[str, Path]
) -> None:
    ticker = market(sim)
    price = passive_bid(sim, ticker)

    async with await connect(sim) as mine, await connect(sim, bob_key) as theirs:
        await mine.subscribe(["orderbook_delta"], market_ticker=ticker)
        await theirs.subscribe(["orderbook_delta"], market_ticker=ticker)
        await mine.expect("orderbook_snapshot")
        await theirs.expect("orderbook_snapshot")
        place(sim, sim.user_id, ticker, BookSide.BID, price, 3, client_order_id="kmm-1")
        _, my_delta = await mine.expect("orderbook_delta")
        _, their_delta = await theirs.expect("orderbook_delta")

    assert isinstance(my_delta, BookDelta)
    assert my_delta.client_order_id == "kmm-1"
    assert isinstance(their_delta, BookDelta)
    assert their_delta.client_order_id is None
    assert (my_delta.price, my_delta.delta) == (their_delta.price, their_delta.delta)


@pytest.mark.asyncio
@pytest.mark.parametrize("use_yes_price", [False, True])
async def test_both_price_conventions_decode_to_the_same_book(
    sim: SimServer, bob_key: tuple[str, Path], use_yes_price: bool
) -> None:
    ticker = market(sim)
    ask = passive_ask(sim, ticker)
    _, no = sim.venue.engine.book_levels(ticker)

    async with await connect(sim, use_yes_price=use_yes_price) as client:
        await client.subscribe(
            ["orderbook_delta"], market_ticker=ticker, use_yes_price=use_yes_price
        )
        snap_obj, snap = await client.expect("orderbook_snapshot")
        place(sim, BOB, ticker, BookSide.ASK, ask, 2)
        delta_obj, delta = await client.expect("orderbook_delta")

    wire_no = [price for price, _ in snap_obj["msg"]["no_dollars_fp"]]
    on_wire = sorted(ONE_DOLLAR - p for p in no) if use_yes_price else sorted(no)
    assert wire_no == [format_price(p) for p in on_wire]
    assert snap.no == sorted(no.items())
    wire_delta_price = ask if use_yes_price else ONE_DOLLAR - ask
    assert delta_obj["msg"]["price_dollars"] == format_price(wire_delta_price)
    assert delta_obj["msg"]["side"] == "no"
    assert (delta.side, delta.price, delta.delta) == (Outcome.NO, ONE_DOLLAR - ask, 200)


@pytest.mark.asyncio
async def test_add_markets_snapshots_only_the_new_market_then_streams_its_deltas(
    sim: SimServer, bob_key: tuple[str, Path]
) -> None:
    first, second = market(sim, index=0), market(sim, index=1)
    price = passive_bid(sim, second)

    async with await connect(sim) as client:
        [sid] = await client.subscribe(["orderbook_delta"], market_ticker=first)
        await client.expect("orderbook_snapshot")
        cmd_id = await client.send(
            "update_subscription",
            {"sid": sid, "action": "add_markets", "market_tickers": [first, second]},
        )
        _, ok = await client.expect("ok")
        _, snap = await client.expect("orderbook_snapshot")
        place(sim, BOB, second, BookSide.BID, price)
        _, delta = await client.expect("orderbook_delta")

    assert isinstance(ok, Ok)
    assert (ok.id, ok.sid, ok.seq) == (cmd_id, sid, 1)
    assert ok.market_tickers == tuple(sorted([first, second]))
    assert (snap.ticker, snap.seq) == (second, 2)
    assert (delta.ticker, delta.seq) == (second, 3)


@pytest.mark.asyncio
async def test_delete_markets_stops_that_markets_deltas(
    sim: SimServer, bob_key: tuple[str, Path]
) -> None:
    first, second = market(sim, index=0), market(sim, index=1)

    async with await connect(sim) as client:
        [sid] = await client.subscribe(["orderbook_delta"], market_tickers=[first, second])
        await client.expect("orderbook_snapshot")
        await client.expect("orderbook_snapshot")
        await client.send(
            "update_subscription",
            {"sids": [sid], "action": "delete_markets", "market_tickers": [first]},
        )
        _, ok = await client.expect("ok")
        place(sim, BOB, first, BookSide.BID, passive_bid(sim, first))
        place(sim, BOB, second, BookSide.BID, passive_bid(sim, second))
        _, delta = await client.expect("orderbook_delta")
        await client.assert_silent()

    assert ok.market_tickers == (second,)
    assert (delta.ticker, delta.seq) == (second, 3)


@pytest.mark.asyncio
async def test_get_snapshot_sends_a_fresh_snapshot_without_changing_the_subscription(
    sim: SimServer, bob_key: tuple[str, Path]
) -> None:
    ticker = market(sim)
    price = passive_bid(sim, ticker)
    before = sim.venue.engine.book_levels(ticker)[0].get(price, 0)

    async with await connect(sim) as client:
        [sid] = await client.subscribe(["orderbook_delta"], market_ticker=ticker)
        await client.expect("orderbook_snapshot")
        place(sim, BOB, ticker, BookSide.BID, price, 4, publish=False)
        await client.send(
            "update_subscription",
            {"sids": [sid], "action": "get_snapshot", "market_tickers": [ticker]},
        )
        # The pending change is published before the snapshot is taken
        _, delta = await client.expect("orderbook_delta")
        _, ok = await client.expect("ok")
        _, snap = await client.expect("orderbook_snapshot")
        await client.send("list_subscriptions")
        _, listed = await client.expect("ok")

    assert (delta.seq, ok.seq, snap.seq) == (2, 2, 3)
    yes_after, _ = sim.venue.engine.book_levels(ticker)
    assert snap.yes == sorted(yes_after.items())
    assert dict(snap.yes)[price] == before + 400
    assert listed.subscriptions == (("orderbook_delta", sid),)


@pytest.mark.asyncio
async def test_subscribing_a_channel_again_adds_its_new_markets_to_the_same_sid(
    sim: SimServer,
) -> None:
    first, second = market(sim, index=0), market(sim, index=1)

    async with await connect(sim) as client:
        [sid] = await client.subscribe(["orderbook_delta"], market_ticker=first)
        await client.expect("orderbook_snapshot")
        [again] = await client.subscribe(["orderbook_delta"], market_tickers=[first, second])
        _, snap = await client.expect("orderbook_snapshot")
        await client.assert_silent()

    assert again == sid
    assert (snap.ticker, snap.seq) == (second, 2)


# --------------------------------------------------------------------------- private channels


@pytest.mark.asyncio
async def test_a_fill_of_your_resting_order_sends_user_order_fill_and_market_position(
    sim: SimServer, bob_key: tuple[str, Path]
) -> None:
    ticker = market(sim)
    best_bid, best_ask = sim.venue.engine.best(ticker)
    assert best_bid is not None and best_ask is not None
    price = grid(sim, ticker).offset(best_bid, 1)
    assert price is not None and price < best_ask, "the seed book leaves room to improve"

    async with await connect(sim) as client:
        await client.subscribe(["user_orders", "fill", "market_positions"])
        created = place(sim, sim.user_id, ticker, BookSide.BID, price, 5, client_order_id="c-1")
        _, resting = await client.expect("user_order")
        place(sim, BOB, ticker, BookSide.ASK, price, 2, tif=TimeInForce.IOC)
        types = []
        events: dict[str, Any] = {}
        raw: dict[str, Any] = {}
        for _ in range(3):
            obj, event = await client.recv()
            types.append(obj["type"])
            events[obj["type"]] = event
            raw[obj["type"]] = obj["msg"]
        await client.assert_silent()

    assert isinstance(resting, UserOrder)
    assert (resting.order_id, resting.status, resting.client_order_id) == (
        created.order.order_id,
        "resting",
        "c-1",
    )
    assert (resting.side, resting.price, resting.remaining_count) == (BookSide.BID, price, 500)
    assert sorted(types) == ["fill", "market_position", "user_order"]
    fill, updated, position = events["fill"], events["user_order"], events["market_position"]
    assert isinstance(fill, Fill)
    assert (fill.order_id, fill.side, fill.price, fill.qty) == (
        created.order.order_id,
        BookSide.BID,
        price,
        200,
    )
    assert (fill.is_taker, fill.client_order_id, fill.post_position) == (False, "c-1", 200)
    assert isinstance(updated, UserOrder)
    assert (updated.fill_count, updated.remaining_count) == (200, 300)
    assert isinstance(position, MarketPosition)
    assert (position.ticker, position.position) == (ticker, 200)
    assert raw["market_position"]["volume_fp"] == "2.00"


@pytest.mark.asyncio
async def test_private_channels_carry_only_your_own_orders(
    sim: SimServer, bob_key: tuple[str, Path]
) -> None:
    ticker = market(sim)

    async with await connect(sim) as client:
        await client.subscribe(["user_orders", "fill", "market_positions"])
        place(sim, BOB, ticker, BookSide.BID, passive_bid(sim, ticker), 1)
        await client.assert_silent()


@pytest.mark.asyncio
async def test_a_market_filter_on_user_orders_keeps_other_markets_out(sim: SimServer) -> None:
    first, second = market(sim, index=0), market(sim, index=1)

    async with await connect(sim) as client:
        await client.subscribe(["user_orders"], market_tickers=[second])
        place(sim, sim.user_id, first, BookSide.BID, passive_bid(sim, first))
        place(sim, sim.user_id, second, BookSide.BID, passive_bid(sim, second))
        _, order = await client.expect("user_order")
        await client.assert_silent()

    assert order.ticker == second


@pytest.mark.asyncio
async def test_order_group_updates_carry_a_rising_seq(sim: SimServer) -> None:
    engine = sim.venue.engine

    async with await connect(sim) as client:
        client.allowed_unknown.add("order_group_updates")
        [sid] = await client.subscribe(["order_group_updates"])
        group = engine.create_order_group(sim.user_id, 10 * QTY_SCALE, START_NS)
        engine.set_order_group_limit(sim.user_id, group, 20 * QTY_SCALE, START_NS)
        sim.venue.publish()
        created = await client.recv_msg()
        updated = await client.recv_msg()

    assert (created["sid"], created["seq"], created["msg"]["event_type"]) == (sid, 1, "created")
    assert created["msg"]["contracts_limit_fp"] == "10.00"
    assert (updated["seq"], updated["msg"]["event_type"]) == (2, "limit_updated")
    assert updated["msg"]["order_group_id"] == group


# --------------------------------------------------------------------------- public channels


@pytest.mark.asyncio
async def test_a_trade_sends_a_trade_and_a_ticker_with_the_new_top_of_book(
    sim: SimServer, bob_key: tuple[str, Path]
) -> None:
    ticker = market(sim)
    engine = sim.venue.engine
    _, best_ask = engine.best(ticker)
    assert best_ask is not None

    async with await connect(sim) as client:
        await client.subscribe(["trade", "ticker"], market_ticker=ticker)
        place(sim, BOB, ticker, BookSide.BID, best_ask, 1, tif=TimeInForce.IOC)
        _, trade = await client.expect("trade")
        _, tick = await client.expect("ticker")

    assert isinstance(trade, Trade)
    assert (trade.ticker, trade.yes_price, trade.qty, trade.taker_book_side) == (
        ticker,
        best_ask,
        100,
        BookSide.BID,
    )
    assert isinstance(tick, Ticker)
    bid, ask = engine.best(ticker)
    assert (tick.price, tick.yes_bid, tick.yes_ask) == (best_ask, bid, ask)
    assert (tick.last_trade_qty, tick.volume) == (100, engine.volume(ticker))


@pytest.mark.asyncio
async def test_ticker_sends_an_initial_snapshot_when_asked_and_then_only_changes(
    sim: SimServer, bob_key: tuple[str, Path]
) -> None:
    ticker = market(sim)
    best_bid, _ = sim.venue.engine.best(ticker)

    async with await connect(sim) as client:
        await client.subscribe(["ticker"], market_ticker=ticker, send_initial_snapshot=True)
        _, initial = await client.expect("ticker")
        place(sim, BOB, ticker, BookSide.BID, passive_bid(sim, ticker))  # below the top
        await client.assert_silent()
        assert best_bid is not None
        place(sim, BOB, ticker, BookSide.BID, best_bid, 3)  # top size changes
        _, changed = await client.expect("ticker")

    assert initial.yes_bid == best_bid
    assert changed.yes_bid_qty == initial.yes_bid_qty + 300


@pytest.mark.asyncio
async def test_the_ticker_channel_accepts_market_ids(sim: SimServer) -> None:
    ticker = market(sim)

    async with await connect(sim) as client:
        await client.subscribe(
            ["ticker"], market_ids=[market_id(ticker)], send_initial_snapshot=True
        )
        _, initial = await client.expect("ticker")
        await client.send("subscribe", {"channels": ["trade"], "market_id": market_id(ticker)})
        _, error = await client.expect("error")

    assert initial.ticker == ticker
    assert error.code == 11


@pytest.mark.asyncio
async def test_market_lifecycle_v2_reports_deactivation_and_close(sim: SimServer) -> None:
    ticker = market(sim)
    engine = sim.venue.engine

    async with await connect(sim) as client:
        await client.subscribe(["market_lifecycle_v2"])
        engine.set_market_active(ticker, False, START_NS)
        sim.venue.publish()
        _, deactivated = await client.expect("market_lifecycle_v2")
        engine.update_close_time(ticker, START_NS + 3_600_000_000_000, START_NS)
        sim.venue.publish()
        _, moved = await client.expect("market_lifecycle_v2")

    assert isinstance(deactivated, MarketLifecycle)
    assert (deactivated.ticker, deactivated.event_type) == (ticker, "deactivated")
    assert deactivated.is_deactivated is True
    assert (moved.event_type, moved.close_ts) == ("close_date_updated", START_NS // 10**9 + 3600)


# --------------------------------------------------------------------------- commands


@pytest.mark.asyncio
async def test_list_subscriptions_lists_every_channel_with_its_sid(sim: SimServer) -> None:
    ticker = market(sim)

    async with await connect(sim) as client:
        sids = await client.subscribe(["ticker", "trade", "fill"], market_ticker=ticker)
        cmd_id = await client.send("list_subscriptions")
        _obj, listed = await client.expect("ok")

    assert isinstance(listed, Ok)
    assert listed.id == cmd_id
    assert listed.subscriptions == (("ticker", sids[0]), ("trade", sids[1]), ("fill", sids[2]))
    assert sorted(sids) == sids and len(set(sids)) == 3


@pytest.mark.asyncio
async def test_unsubscribe_replies_unsubscribed_and_ends_the_stream(
    sim: SimServer, bob_key: tuple[str, Path]
) -> None:
    ticker = market(sim)

    async with await connect(sim) as client:
        [book, trades] = await client.subscribe(["orderbook_delta", "trade"], market_ticker=ticker)
        await client.expect("orderbook_snapshot")
        cmd_id = await client.send("unsubscribe", {"sids": [book, trades]})
        _, first = await client.expect("unsubscribed")
        _, second = await client.expect("unsubscribed")
        place(sim, BOB, ticker, BookSide.BID, passive_bid(sim, ticker))
        await client.assert_silent()

    assert isinstance(first, Unsubscribed)
    assert (first.id, first.sid, first.seq) == (cmd_id, book, 2)
    assert (second.id, second.sid) == (cmd_id, trades)


BAD_COMMANDS: list[tuple[str, Any, int]] = [
    ("not json", "{oops", 1),
    ("not an object", [1, 2], 1),
    ("id not an integer", {"id": "x", "cmd": "list_subscriptions"}, 1),
    ("unknown command", {"id": 9, "cmd": "subscribe_all"}, 5),
    ("params missing", {"id": 9, "cmd": "subscribe"}, 2),
    ("channels missing", {"id": 9, "cmd": "subscribe", "params": {}}, 3),
    ("channels empty", {"id": 9, "cmd": "subscribe", "params": {"channels": []}}, 3),
    ("unknown channel", {"id": 9, "cmd": "subscribe", "params": {"channels": ["nope"]}}, 8),
    (
        "book without market",
        {"id": 9, "cmd": "subscribe", "params": {"channels": ["orderbook_delta"]}},
        14,
    ),
    (
        "two market filters",
        {
            "id": 9,
            "cmd": "subscribe",
            "params": {"channels": ["trade"], "market_ticker": "A", "market_tickers": ["B"]},
        },
        11,
    ),
    (
        "flag not a boolean",
        {
            "id": 9,
            "cmd": "subscribe",
            "params": {"channels": ["trade"], "use_yes_price": "yes"},
        },
        1,
    ),
    ("sids missing", {"id": 9, "cmd": "unsubscribe", "params": {}}, 4),
    ("unknown sid", {"id": 9, "cmd": "unsubscribe", "params": {"sids": [77]}}, 7),
    ("action missing", {"id": 9, "cmd": "update_subscription", "params": {"sid": 1}}, 15),
    (
        "unknown action",
        {"id": 9, "cmd": "update_subscription", "params": {"sid": 1, "action": "grow"}},
        13,
    ),
    (
        "two sids",
        {
            "id": 9,
            "cmd": "update_subscription",
            "params": {"sids": [1, 2], "action": "add_markets", "market_tickers": []},
        },
        12,
    ),
    (
        "update without markets",
        {"id": 9, "cmd": "update_subscription", "params": {"sid": 1, "action": "add_markets"}},
        14,
    ),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("case", "command", "code"), BAD_COMMANDS, ids=[c[0] for c in BAD_COMMANDS]
)
async def test_a_bad_command_gets_kalshis_error_code_and_echoes_its_id(
    sim: SimServer, case: str, command: Any, code: int
) -> None:
    raw = command if isinstance(command, str) else orjson.dumps(command).decode()

    async with await connect(sim) as client:
        await client.ws.send(raw)
        _obj, error = await client.expect("error")

    assert isinstance(error, ErrorMsg)
    assert (error.code, error.msg) == (code, WS_ERRORS[code])
    expected_id = command.get("id") if isinstance(command, dict) else None
    assert error.id == (expected_id if isinstance(expected_id, int) else None)


@pytest.mark.asyncio
async def test_an_unknown_market_is_error_16_naming_it(sim: SimServer) -> None:
    async with await connect(sim) as client:
        cmd_id = await client.send(
            "subscribe", {"channels": ["orderbook_delta"], "market_tickers": ["NO-SUCH-MKT"]}
        )
        _, error = await client.expect("error")

    assert (error.id, error.code, error.market_ticker) == (cmd_id, 16, "NO-SUCH-MKT")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("channel", "action", "code"),
    [("trade", "get_snapshot", 13), ("market_lifecycle_v2", "add_markets", 13)],
)
async def test_an_action_the_channel_does_not_support_is_error_13(
    sim: SimServer, channel: str, action: str, code: int
) -> None:
    ticker = market(sim)

    async with await connect(sim) as client:
        [sid] = await client.subscribe([channel])
        cmd_id = await client.send(
            "update_subscription", {"sid": sid, "action": action, "market_tickers": [ticker]}
        )
        _, error = await client.expect("error")

    assert (error.id, error.code) == (cmd_id, code)


# --------------------------------------------------------------------------- faults


@pytest.mark.asyncio
async def test_a_drop_fault_skips_a_delta_but_not_its_seq_so_the_client_sees_a_gap(
    sim: SimServer, bob_key: tuple[str, Path]
) -> None:
    ticker = market(sim)
    price = passive_bid(sim, ticker)
    tracker = SequenceTracker()

    async with await connect(sim) as client:
        [sid] = await client.subscribe(["orderbook_delta"], market_ticker=ticker)
        _, snap = await client.expect("orderbook_snapshot")
        tracker.reset(sid, snap.seq)
        sim.venue.faults.drop_ws_messages(1)
        for _ in range(3):
            place(sim, BOB, ticker, BookSide.BID, price)
        _, after_gap = await client.expect("orderbook_delta")
        _, next_one = await client.expect("orderbook_delta")

    assert after_gap.seq == 3
    assert tracker.check(sid, after_gap.seq) is SeqStatus.GAP
    assert tracker.check(sid, next_one.seq) is SeqStatus.OK
    assert sim.venue.faults.stats.dropped_messages == 1


@pytest.mark.asyncio
async def test_a_close_fault_closes_every_socket(sim: SimServer, bob_key: tuple[str, Path]) -> None:
    async with await connect(sim) as first, await connect(sim, bob_key) as second:
        sim.venue.faults.close_sockets()
        for client in (first, second):
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(client.ws.recv(), TIMEOUT_S)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        for _ in range(100):
            if hub_of(sim).connections == 0:
                break
            await asyncio.sleep(0.01)

    assert hub_of(sim).connections == 0


@pytest.mark.asyncio
async def test_a_stall_holds_every_message_until_it_ends_then_delivers_them_in_order(
    sim: SimServer, bob_key: tuple[str, Path]
) -> None:
    ticker = market(sim)
    price = passive_bid(sim, ticker)

    async with await connect(sim) as client:
        await client.subscribe(["orderbook_delta"], market_ticker=ticker)
        await client.expect("orderbook_snapshot")
        sim.venue.faults.stall_feed(5.0, clock(sim).now_ns())
        place(sim, BOB, ticker, BookSide.BID, price, 1)
        place(sim, BOB, ticker, BookSide.BID, price, 2)
        await client.assert_silent()
        clock(sim).advance(5.0)
        _, first = await client.expect("orderbook_delta")
        _, second = await client.expect("orderbook_delta")

    assert [(first.seq, first.delta), (second.seq, second.delta)] == [(2, 100), (3, 200)]


@pytest.mark.asyncio
async def test_the_hub_pings_with_heartbeat_every_interval(tmp_path: Path) -> None:
    server = SimServer(make_options(tmp_path / "sim", ping_interval_s=0.05))
    await server.start()
    signer = Signer(server.key_id, load_private_key(server.private_key_path))
    headers = signer.headers("GET", WS_PATH, START_NS // 1_000_000)
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(server.ws_url, headers=headers, autoping=False) as ws,
        ):
            pings = [await ws.receive(timeout=TIMEOUT_S) for _ in range(2)]
            await ws.pong(pings[-1].data)
    finally:
        await server.stop()

    assert [(msg.type, msg.data) for msg in pings] == [(aiohttp.WSMsgType.PING, b"heartbeat")] * 2


@pytest.mark.asyncio
async def test_a_subscription_whose_buffer_overflows_gets_error_25_and_ends(
    sim: SimServer, bob_key: tuple[str, Path]
) -> None:
    ticker = market(sim)
    price = passive_bid(sim, ticker)
    hub_of(sim).max_queued_frames = 3

    async with await connect(sim) as client:
        [sid] = await client.subscribe(["orderbook_delta"], market_ticker=ticker)
        await client.expect("orderbook_snapshot")
        for _ in range(10):  # one burst: the writer cannot run before the batch is fanned out
            place(sim, BOB, ticker, BookSide.BID, price, publish=False)
        sim.venue.publish()
        deltas = [(await client.expect("orderbook_delta"))[1] for _ in range(3)]
        error_obj, error = await client.expect("error")
        place(sim, BOB, ticker, BookSide.BID, price)
        await client.send("list_subscriptions")
        _, listed = await client.expect("ok")

    assert [d.seq for d in deltas] == [2, 3, 4]
    assert (error.code, error.msg, error.terminal) == (25, WS_ERRORS[25], True)
    assert error_obj["sid"] == sid
    assert listed.subscriptions == ()


@pytest.mark.asyncio
async def test_a_reader_that_stops_reading_gets_error_25_after_its_backlog(
    sim: SimServer, bob_key: tuple[str, Path]
) -> None:
    ticker = market(sim)
    price = passive_bid(sim, ticker)
    hub = hub_of(sim)
    hub.max_queued_frames = 200
    key_id, path = sim.key_id, sim.private_key_path
    headers = Signer(key_id, load_private_key(path)).headers("GET", WS_PATH, START_NS // 10**6)
    ws = await websockets.connect(sim.ws_url, additional_headers=headers, max_queue=1)
    client = Client(ws, use_yes_price=False)

    async with client:
        [sid] = await client.subscribe(["orderbook_delta"], market_ticker=ticker)
        await client.expect("orderbook_snapshot")
        for _ in range(400):  # the kernel's socket buffers fill first, then the hub's queue
            for _ in range(200):
                place(sim, BOB, ticker, BookSide.BID, price, publish=False)
            sim.venue.publish()
            await asyncio.sleep(0.002)
            if hub.subscriptions == 0:
                break
        seqs = []
        while True:
            obj, event = await client.recv()
            if obj["type"] == "error":
                break
            seqs.append(event.seq)

    assert (event.code, obj["sid"]) == (25, sid)
    assert seqs == list(range(2, 2 + len(seqs)))
    assert len(seqs) > hub.max_queued_frames


# --------------------------------------------------------------------------- the bot's parser


def test_kalshis_asyncapi_spec_is_there_to_check_every_frame() -> None:
    doc = asyncapi()
    if doc is None:
        pytest.skip("copy shared/kalshi-docs/asyncapi.yaml to tests/data/ to check frames")

    assert set(PAYLOAD_SCHEMAS.values()) <= set(doc["components"]["schemas"])


@pytest.mark.asyncio
@pytest.mark.parametrize("use_yes_price", [False, True])
async def test_every_frame_of_a_busy_session_decodes_with_the_bots_parser(
    sim: SimServer, bob_key: tuple[str, Path], use_yes_price: bool
) -> None:
    engine = sim.venue.engine
    linear, tapered = market(sim), market(sim, "tapered_deci_cent")
    tickers = [linear, tapered]

    async with await connect(sim, use_yes_price=use_yes_price) as client:
        sids = await client.subscribe(
            ALL_DECODED_CHANNELS, market_tickers=tickers, use_yes_price=use_yes_price
        )
        for ticker in tickers:
            bid, ask = engine.best(ticker)
            assert bid is not None and ask is not None
            mine = place(sim, sim.user_id, ticker, BookSide.BID, passive_bid(sim, ticker), 2)
            place(sim, sim.user_id, ticker, BookSide.BID, ask, 1, tif=TimeInForce.IOC)
            place(sim, BOB, ticker, BookSide.ASK, bid, 1, tif=TimeInForce.IOC)
            engine.cancel_order(sim.user_id, mine.order.order_id, START_NS)
        engine.set_market_active(linear, False, START_NS)
        engine.set_market_active(linear, True, START_NS)
        sim.venue.publish()
        await client.send("list_subscriptions")
        await client.send("unsubscribe", {"sids": sids})
        while True:
            obj, _ = await client.recv()
            if obj["type"] == "unsubscribed" and obj["sid"] == sids[-1]:
                break

    seen = {obj["type"] for obj in client.received}
    assert {
        "subscribed",
        "orderbook_snapshot",
        "orderbook_delta",
        "ticker",
        "trade",
        "fill",
        "user_order",
        "market_position",
        "market_lifecycle_v2",
        "ok",
        "unsubscribed",
    } <= seen
    assert client.decoder.unknown_counts == {}
