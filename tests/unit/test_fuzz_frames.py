"""Hostile venue frames never stop the bot.

Tens of thousands of frames built from the recorded frames in ``tests/data/ws`` go through
the decoder (both price conventions) and through the engine's own frame handler,
:meth:`kmm.engine.LiveEngine.on_frame` (pipeline, books, decisions, fills, orders,
lifecycle), built from the default configuration with four markets added the way
``_add_markets`` adds them. Most frames are first made valid for the state the bot is in
(in-sequence ``seq``, prices that do not cross its books, fills and order updates for
orders it tracks), then one field is mutated at a time, so that a mutation passes the type
dispatch and reaches the value checks behind it; the rest are cut short, corrupted byte by
byte, or given a junk envelope.

The test fails on any exception other than ``WireError`` out of the decoder, on any
exception at all out of ``on_frame`` (it logs and skips refused frames itself), and on any
broken invariant: a book with a level at zero or below, a price outside [1, 9999], a best
price that is not the highest level, a crossed book; a quote on an untrusted book or off the
market's grid; an engine grid that is not the pipeline's. Everything is seeded: the same
frames every run.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import logging
import random
import traceback
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import rsa

from kmm.book.grid import PriceGrid
from kmm.clock import ManualClock
from kmm.config import KmmConfig
from kmm.engine import LiveEngine
from kmm.errors import WireError
from kmm.kalshi.auth import Signer
from kmm.kalshi.rest import AccountLimits, KalshiRest
from kmm.kalshi.wire import WireDecoder
from kmm.kalshi.ws import KalshiWs
from kmm.pipeline import MarketSpec
from kmm.types import (
    ONE_CENT,
    ONE_DOLLAR,
    BookSide,
    OrderIntent,
    Quote,
    format_count,
    format_price,
)

DATA = Path(__file__).parent.parent / "data" / "ws"
SAMPLES: dict[str, dict[str, Any]] = {
    path.stem: orjson.loads(path.read_bytes()) for path in sorted(DATA.glob("*.json"))
}
MARKETS = ("FED-23DEC-T3.00", "HIGHNY-22DEC23-B53.5", "INXD-23SEP14-B4487", "KXGDPNOM-RUS26")
STRANGER = "KXNOTOURS-26DEC01-T5"
SIDS = (2, 9)
FRAMES = 24_000
SEED = 20_261_203
START_NS = 1_790_000_000_000_000_000
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)

# Valid price structures a band update may switch to (Kalshi: price_level_structure)
BANDS = {
    "linear_cent": [("0.0000", "1.0000", "0.0100")],
    "deci_cent": [("0.0000", "1.0000", "0.0010")],
    "tapered_deci_cent": [
        ("0.0000", "0.1000", "0.0010"),
        ("0.1000", "0.9000", "0.0100"),
        ("0.9000", "1.0000", "0.0010"),
    ],
}

DECIMAL_JUNK = [
    "0", "0.0000", "1", "1.0000", "1.5", "1.5000", "-0.0100", "-1", "-1.00", "0.00001",
    "0.99995", "1e-2", "NaN", "inf", "-inf", " 0.50", "0.50 ", "0,50", "\u0660.\u0665", "0x10",
    "+0.5", ".5", "5.", "-", ".", "", "--1", "0.5.0", "5e", "\u00bd", "9" * 30 + ".00",
    "-" + "9" * 30, "1" + "0" * 400, "0." + "0" * 50 + "1", "00000.5000", "-0.0000",
    "99999999999999999999.99", "0.000001", "12.345", "-0.000000",
]  # fmt: skip
SCALAR_JUNK: list[Any] = [
    None, True, False, 0, -1, 1, 2**31, 2**53 + 1, 2**63 - 1, -(2**63), 2**64 - 1, 0.5, -0.0,
    1e300, 1.0, "", "x", "yes", "no", "bid", "ask", "scalar", "resting", "executed",
    "price_level_structure_updated", "determined", "settled", "\u0000", "\ud7ff" * 3,
]  # fmt: skip


def _deep(depth: int) -> Any:
    value: Any = "0.5000"
    for i in range(depth):
        value = [value] if i % 2 else {"a": value}
    return value


NESTED_JUNK: list[Any] = [
    [], [[]], {}, {"a": {}}, [1, [2, [3]]], _deep(40), [["0.5000"]], [["0.5000", "1.00", "x"]],
    [{"start": "0", "end": "1"}], {"0.5000": "1.00"}, [None], ["0.5000", "1.00"],
]  # fmt: skip


# --------------------------------------------------------------------------- valid frames


class Feed:
    """Builds frames the venue could send next, given what the engine holds now."""

    def __init__(self, rng: random.Random, engine: LiveEngine) -> None:
        self.rng = rng
        self.engine = engine
        self.seq = dict.fromkeys(SIDS, 0)
        self.sid_of = {ticker: SIDS[i % len(SIDS)] for i, ticker in enumerate(MARKETS)}
        self.trade_ids = itertools.count(1)
        self.ours: list[tuple[str, str]] = []  # (client order id, exchange order id)

    def frame(self) -> dict[str, Any]:
        rng = self.rng
        untrusted = [t for t in MARKETS if not self.engine.core.pipeline.markets[t].book.trusted]
        roll = rng.random()
        if untrusted and roll < 0.25:
            return self.snapshot(rng.choice(untrusted))
        if roll < 0.55:
            return self.delta()
        if roll < 0.6:
            return self.snapshot(self.ticker())
        return self.other()

    def ticker(self) -> str:
        return STRANGER if self.rng.random() < 0.05 else self.rng.choice(MARKETS)

    def _next_seq(self, sid: int) -> int:
        self.seq[sid] += 1
        return self.seq[sid]

    def _levels(self, low_cents: int, high_cents: int) -> list[list[str]]:
        prices = self.rng.sample(range(low_cents, high_cents + 1), self.rng.randint(0, 6))
        return [
            [format_price(p * ONE_CENT), format_count(self.rng.randint(1, 5_000) * 100)]
            for p in sorted(prices)
        ]

    def snapshot(self, ticker: str) -> dict[str, Any]:
        """A book below 50¢ on YES bids and above 50¢ on YES asks (YES-price convention)."""
        frame = copy.deepcopy(SAMPLES["orderbook_snapshot.yes_price"])
        sid = self.sid_of.get(ticker, SIDS[0])
        frame["sid"], frame["seq"] = sid, self._next_seq(sid)
        msg = frame["msg"]
        msg["market_ticker"] = ticker
        msg["yes_dollars_fp"] = self._levels(1, 49)
        msg["no_dollars_fp"] = self._levels(51, 99)
        return frame

    def delta(self) -> dict[str, Any]:
        rng = self.rng
        ticker = self.ticker()
        is_yes = rng.random() < 0.5
        market = self.engine.core.pipeline.markets.get(ticker)
        levels = {} if market is None else (
            market.book.yes_levels if is_yes else market.book.no_levels
        )  # fmt: skip
        if levels and rng.random() < 0.5:
            price = rng.choice(sorted(levels))  # own-leg price
            size = -levels[price] if rng.random() < 0.5 else rng.randint(-levels[price], 5_000)
        else:
            price = rng.randint(1, 49) * ONE_CENT
            size = rng.randint(1, 5_000) * 100
        frame = copy.deepcopy(SAMPLES["orderbook_delta.no.yes_price"])
        sid = self.sid_of.get(ticker, SIDS[0])
        frame["sid"], frame["seq"] = sid, self._next_seq(sid)
        msg = frame["msg"]
        msg["market_ticker"] = ticker
        msg["side"] = "yes" if is_yes else "no"
        msg["price_dollars"] = format_price(price if is_yes else ONE_DOLLAR - price)
        msg["delta_fp"] = format_count(size or 100)
        return frame

    def other(self) -> dict[str, Any]:
        rng = self.rng
        name = rng.choice(OTHERS)
        frame = copy.deepcopy(SAMPLES[name])
        msg = frame.get("msg")
        if isinstance(msg, dict):
            for key in ("market_ticker", "ticker"):
                if key in msg and name.split(".")[0] not in ("error", "ok"):
                    msg[key] = self.ticker()
            tweak = TWEAKS.get(name.split(".")[0])
            if tweak is not None:
                tweak(self, msg)
        return frame

    def order_ids(self) -> tuple[str, str] | None:
        """The ids of one of our orders (live, or ended a while ago), or None for a stranger's."""
        if not self.ours or self.rng.random() < 0.3:
            return None
        return self.rng.choice(self.ours)


def _tweak_fill(feed: Feed, msg: dict[str, Any]) -> None:
    rng = feed.rng
    msg["trade_id"] = f"fuzz-{next(feed.trade_ids)}"
    msg["yes_price_dollars"] = format_price(rng.randint(1, 99) * ONE_CENT)
    msg["count_fp"] = format_count(rng.randint(1, 2_000))
    ids = feed.order_ids()
    if ids is not None:
        msg["client_order_id"], msg["order_id"] = ids


def _tweak_trade(feed: Feed, msg: dict[str, Any]) -> None:
    msg["trade_id"] = f"fuzz-{next(feed.trade_ids)}"
    msg["yes_price_dollars"] = format_price(feed.rng.randint(1, 99) * ONE_CENT)


def _tweak_user_order(feed: Feed, msg: dict[str, Any]) -> None:
    rng = feed.rng
    ids = feed.order_ids()
    if ids is not None:
        msg["client_order_id"], msg["order_id"] = ids
    msg["status"] = rng.choice(["resting", "canceled", "executed"])
    initial = rng.randint(1, 50) * 100
    filled = rng.randint(0, initial)
    msg["initial_count_fp"] = format_count(initial)
    msg["fill_count_fp"] = format_count(filled)
    msg["remaining_count_fp"] = format_count(0 if msg["status"] != "resting" else initial - filled)


def _tweak_lifecycle(feed: Feed, msg: dict[str, Any]) -> None:
    if msg.get("event_type") == "price_level_structure_updated":
        name = feed.rng.choice(sorted(BANDS))
        msg["price_level_structure"] = name
        msg["price_ranges"] = [{"start": a, "end": b, "step": c} for a, b, c in BANDS[name]]
    if msg.get("event_type") == "close_date_updated":
        msg["close_ts"] = START_NS // 10**9 + feed.rng.randint(-600, 86_400)


TWEAKS: dict[str, Callable[[Feed, dict[str, Any]], None]] = {
    "fill": _tweak_fill,
    "trade": _tweak_trade,
    "user_order": _tweak_user_order,
    "market_lifecycle_v2": _tweak_lifecycle,
}
_WEIGHTS = {
    "fill": 6, "fill.example": 2, "user_order": 5, "user_order.example": 2, "trade": 3,
    "market_lifecycle_v2.price_level_structure_updated": 4, "market_lifecycle_v2.tapered": 2,
    "market_lifecycle_v2.close_date_updated": 2,
}  # fmt: skip
OTHERS = [
    name
    for name in SAMPLES
    if not name.startswith("orderbook_")
    # Settling or closing a market for good would leave little to fuzz; their frames still
    # come through mutated (an event_type mutation can say "settled")
    and name not in ("market_lifecycle_v2.determined", "market_lifecycle_v2.deactivated")
    for _ in range(_WEIGHTS.get(name, 1))
]


# --------------------------------------------------------------------------- mutations


def _paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside ``node`` (dict keys and list indexes)."""
    if isinstance(node, dict):
        items: Iterator[tuple[Any, Any]] = iter(node.items())
    elif isinstance(node, list):
        items = iter(enumerate(node))
    else:
        return
    for key, value in items:
        yield (*path, key)
        yield from _paths(value, (*path, key))


def _decimal_variant(rng: random.Random, text: str) -> str:
    """A near miss of a decimal string: sign flipped, shifted, over-precise, or junk."""
    choice = rng.randrange(7)
    if choice == 0:
        return text[1:] if text.startswith("-") else "-" + text
    if choice == 5:  # well formed, but anywhere: crosses books, fills at odd prices
        return rng.choice([format_price(rng.randint(1, ONE_DOLLAR - 1)), format_count(-100)])
    if choice == 1:
        whole, _, frac = text.partition(".")
        return f"{whole}{rng.choice(['0', '00', '0000'])}.{frac}"
    if choice == 2:
        return text + "1"
    if choice == 3:
        return text.replace(".", "")
    return rng.choice(DECIMAL_JUNK)


def _replacement(rng: random.Random, value: Any) -> Any:
    roll = rng.random()
    if isinstance(value, str) and roll < 0.5:
        return _decimal_variant(rng, value)
    if isinstance(value, bool | int) and roll < 0.4:
        return rng.choice([-value, value + 1, value - 1, value * 1000, str(value), float(value)])
    if roll < 0.8:
        return rng.choice(SCALAR_JUNK + DECIMAL_JUNK)
    if roll < 0.9:
        return [value]
    return copy.deepcopy(rng.choice(NESTED_JUNK))


def mutate_field(rng: random.Random, frame: dict[str, Any]) -> None:
    """Deletes or replaces one value anywhere in the frame (mostly inside ``msg``)."""
    paths = list(_paths(frame))
    inner = [p for p in paths if p[0] == "msg" and len(p) > 1]
    path = rng.choice(inner if inner and rng.random() < 0.85 else paths)
    parent: Any = frame
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if isinstance(parent, dict) and rng.random() < 0.2:
        del parent[key]
    else:
        parent[key] = _replacement(rng, parent[key])


def mutate_envelope(rng: random.Random, frame: dict[str, Any]) -> Any:
    choice = rng.randrange(6)
    if choice == 0:
        frame["type"] = rng.choice([*KNOWN_TYPES, "orderbook_delta_v3", "", 7, None, ["fill"]])
    elif choice == 1:
        frame["msg"] = copy.deepcopy(rng.choice([*NESTED_JUNK, *SCALAR_JUNK]))
    elif choice == 2:
        frame.pop(rng.choice(["type", "msg", "sid", "seq"]), None)
    elif choice == 3:
        frame["msg"] = {"msg": frame.get("msg")}
    elif choice == 4:
        return [frame]
    else:
        return rng.choice(SCALAR_JUNK)
    return frame


def mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    choice = rng.randrange(6)
    if choice == 0 or not data:
        return data[: rng.randrange(len(data) + 1)]
    at = rng.randrange(len(data))
    if choice == 1:
        return data[:at] + bytes([rng.randrange(256)]) + data[at + 1 :]
    if choice == 2:
        return data[:at] + rng.choice([b"\xff", b"\x00", b"{", b"]", b'"', b"\\u0000"]) + data[at:]
    if choice == 3:
        return data + data
    if choice == 4:
        return data.replace(b'"0.', b'"9' * rng.randint(1, 3) + b"0.", 1)
    return data.replace(b":2,", b":" + b"9" * 400 + b",", 1)


KNOWN_TYPES = sorted({sample["type"] for sample in SAMPLES.values()})


def _dumps(obj: Any) -> bytes:
    """JSON text of ``obj``; integers beyond 64 bits (orjson refuses them) through ``json``."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        return json.dumps(obj).encode()


def hostile(rng: random.Random, frame: dict[str, Any]) -> bytes:
    """The frame, usually with one thing wrong with it."""
    roll = rng.random()
    if roll < 0.1:
        return _dumps(frame)
    if roll < 0.78:
        for _ in range(1 if rng.random() < 0.85 else 2):
            mutate_field(rng, frame)
        return _dumps(frame)
    if roll < 0.88:
        return _dumps(mutate_envelope(rng, frame))
    return mutate_bytes(rng, _dumps(frame))


# --------------------------------------------------------------------------- the engine


def _engine(clock: ManualClock, session: aiohttp.ClientSession) -> LiveEngine:
    """A LiveEngine from the default config, its markets added as ``_add_markets`` does.

    Its executor is built but not running (targets are recorded, nothing is sent) and its
    websocket client is real but never connected: nothing leaves the process.
    """
    signer = Signer("fuzz-key", KEY)
    rest_url = "http://127.0.0.1:9/trade-api/v2"
    engine = LiveEngine(
        KmmConfig(),
        rest_url=rest_url,
        ws_url="ws://127.0.0.1:9/trade-api/ws/v2",
        signer=signer,
        clock=clock,
    )
    for ticker in MARKETS:
        grid = PriceGrid.linear_cent()
        engine.core.pipeline.add_market(MarketSpec(ticker, grid, START_NS + 86_400 * 10**9, 0.0175))
        engine.report.markets.append(ticker)
    engine._rest = KalshiRest(session, rest_url, signer)
    engine._build_executor(AccountLimits("basic", 20, 200, 10, 100))
    engine._build_ws()
    return engine


def _track_orders(engine: LiveEngine, now: int) -> list[tuple[str, str]]:
    """Resting orders of ours on both sides of every market, for fills and updates to hit.

    Returns:
        Their client and exchange order ids.
    """
    ids = []
    for ticker in MARKETS:
        for side, price in ((BookSide.BID, 4000), (BookSide.ASK, 6000)):
            order = engine.core.tracker.new(OrderIntent(ticker, side, price, 1_000), now)
            order_id = f"oid-{order.client_order_id}"
            engine.core.tracker.on_ack(order.client_order_id, order_id, now)
            ids.append((order.client_order_id, order_id))
    return ids


def broken_invariants(engine: LiveEngine) -> list[str]:
    problems = []
    for ticker, market in engine.core.pipeline.markets.items():
        book = market.book
        problems += [f"{ticker}: {p}" for p in book.invariant_violations()]
        quote = market.quote
        sides = [] if quote is None else [p for p in (quote.bid_price, quote.ask_price) if p]
        if sides and not book.trusted:
            problems.append(f"{ticker}: quoting {quote} on an untrusted book")
        grid = market.spec.grid
        problems += [
            f"{ticker}: quote price {p} is off {grid}" for p in sides if not grid.is_valid(p)
        ]
        if len(sides) == 2 and sides[0] >= sides[1]:
            problems.append(f"{ticker}: quote {quote} is crossed")
        if engine.core.grids[ticker] is not grid:
            problems.append(f"{ticker}: the executor's grid is not the pipeline's")
    return problems


class Failures:
    """The first failure of each kind, with the frame that caused it."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    def add(self, where: str, frame: bytes, detail: str) -> None:
        key = f"{where}: {detail.splitlines()[-1] if detail else ''}"[:200]
        self.seen.setdefault(key, f"{where} on {frame[:300]!r}:\n{detail}")

    def report(self) -> str:
        return "\n\n".join(list(self.seen.values())[:8])


def _decode_everywhere(decoders: list[WireDecoder], frame: bytes, failures: Failures) -> None:
    for decoder in decoders:
        try:
            decoder.decode(frame)
        except WireError:
            pass
        except Exception:  # what the test is looking for
            failures.add("decoder", frame, traceback.format_exc())


@pytest_asyncio.fixture
async def engine() -> AsyncIterator[LiveEngine]:
    async with aiohttp.ClientSession() as session:
        engine = _engine(ManualClock(START_NS), session)
        yield engine
        await asyncio.sleep(0)  # let the resync and drain callbacks the frames scheduled run
        await engine.ws.close()


@pytest.mark.asyncio
async def test_mutated_frames_never_escape_the_receive_path_nor_break_a_book(
    engine: LiveEngine,
) -> None:
    rng = random.Random(SEED)
    clock = engine.clock
    assert isinstance(clock, ManualClock)
    failures = Failures()
    decoders = [WireDecoder(use_yes_price=False), WireDecoder(use_yes_price=True)]
    feed = Feed(rng, engine)
    feed.ours += _track_orders(engine, clock.now_ns())

    for _ in range(FRAMES):
        frame = hostile(rng, feed.frame())
        clock.advance(ns=1_000_000)
        _decode_everywhere(decoders, frame, failures)
        try:
            engine.on_frame(frame, clock.now_ns())
        except Exception:  # what the test is looking for
            failures.add("LiveEngine.on_frame", frame, traceback.format_exc())
        for problem in broken_invariants(engine):
            failures.add("invariant", frame, problem)
        if rng.random() < 0.002:
            feed.ours += _track_orders(engine, clock.now_ns())  # fills and cancels end orders

    assert not failures.seen, failures.report()
    # The mutations reached the value checks and the valid frames reached the strategy
    stats = engine.core.pipeline.stats
    assert stats.decisions > 1_000 and stats.snapshots > 1_000
    assert engine.report.fills > 100
    assert len(stats.rejected) > 60
    assert {
        "fill.yes_price_dollars",
        "fill.count_fp",
        "fill.market_ticker",
        "orderbook_delta.market_ticker",
        "orderbook_delta.delta_fp",
        "orderbook_snapshot.crossed",
        "orderbook_snapshot.yes_dollars_fp",
        "market_lifecycle_v2.price_ranges",
        "user_order.yes_price_dollars",
        "frame.json",
    } <= set(stats.rejected)


# --------------------------------------------------------------------------- explicit cases


def _sample(name: str, **msg: Any) -> bytes:
    frame = copy.deepcopy(SAMPLES[name])
    frame["msg"].update(msg)
    return orjson.dumps(frame)


def _book(engine: LiveEngine, ticker: str = MARKETS[0]) -> None:
    """A trusted book 45¢ @ 55¢ for ``ticker``, quoted."""
    engine.on_frame(
        _sample(
            "orderbook_snapshot.yes_price",
            market_ticker=ticker,
            yes_dollars_fp=[["0.4500", "10.00"]],
            no_dollars_fp=[["0.5500", "10.00"]],
        ),
        START_NS,
    )
    assert engine.core.pipeline.markets[ticker].book.trusted


@pytest.mark.asyncio
async def test_a_refused_frame_is_logged_once_per_kind_and_counted_every_time(
    engine: LiveEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="kmm.engine")
    frames = [
        _sample("fill", yes_price_dollars="1.0000"),
        _sample("fill", yes_price_dollars="0"),
        _sample("fill", yes_price_dollars="1.5"),
        _sample("fill", count_fp="-1.00"),
        b'{"type":"fill"',
    ]

    for frame in frames:
        assert engine.on_frame(frame, START_NS) is None

    assert engine.core.pipeline.stats.rejected == {
        "fill.yes_price_dollars": 3,
        "fill.count_fp": 1,
        "frame.json": 1,
    }
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert "fill.yes_price_dollars" in warnings[0] and "1.0000" in warnings[0]
    assert engine.core.fills == []


@pytest.mark.asyncio
async def test_a_valid_band_update_replaces_the_grid_the_executor_reads(
    engine: LiveEngine,
) -> None:
    ticker = MARKETS[2]
    _book(engine, ticker)

    engine.on_frame(_sample("market_lifecycle_v2.price_level_structure_updated"), START_NS)

    grid = engine.core.pipeline.markets[ticker].spec.grid
    assert grid == PriceGrid.from_ranges([(0, ONE_DOLLAR, 10)])
    assert engine.executor.grids[ticker] is grid
    assert engine.core.grids[ticker] is grid


@pytest.mark.asyncio
async def test_a_bad_band_update_keeps_the_grid_and_pulls_the_markets_quotes(
    engine: LiveEngine,
) -> None:
    ticker = MARKETS[2]
    _book(engine, ticker)
    old = engine.core.grids[ticker]
    bad = [{"start": "0.0000", "end": "1.0000", "step": "0.0000"}]

    engine.on_frame(
        _sample("market_lifecycle_v2.price_level_structure_updated", price_ranges=bad), START_NS
    )

    assert engine.core.grids[ticker] is old
    assert engine.core.pipeline.markets[ticker].spec.grid is old
    assert engine.executor.desired[ticker] == Quote(ticker, None, 0, None, 0)
    assert engine.core.pipeline.stats.rejected == {"market_lifecycle_v2.price_ranges": 1}


@pytest.mark.asyncio
async def test_a_scalar_settlement_without_a_value_is_refused_and_books_nothing(
    engine: LiveEngine,
) -> None:
    ticker = MARKETS[2]  # the lifecycle samples' market
    engine.on_frame(_sample("fill", market_ticker=ticker), START_NS)
    held = engine.core.portfolio.net_qty(ticker)

    engine.on_frame(
        _sample("market_lifecycle_v2.determined", result="scalar", settlement_value=None),
        START_NS,
    )

    assert engine.core.pipeline.stats.rejected == {"market_lifecycle_v2.settlement_value": 1}
    assert held != 0
    assert engine.core.portfolio.net_qty(ticker) == held


@pytest.mark.asyncio
async def test_an_order_update_that_contradicts_a_tracked_order_is_counted_not_raised(
    engine: LiveEngine,
) -> None:
    _track_orders(engine, START_NS)
    order = next(iter(engine.core.tracker.live(MARKETS[0])))

    event = engine.on_frame(
        _sample(
            "user_order", ticker=MARKETS[0], client_order_id=order.client_order_id, order_id="x"
        ),
        START_NS,
    )

    assert event is None
    assert engine.core.pipeline.stats.rejected == {"order.order_id": 1}
    assert engine.core.tracker.get(order.client_order_id) is order


@pytest.mark.asyncio
async def test_the_websocket_client_logs_each_kind_of_refused_frame_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="kmm.kalshi.ws")
    decoder = WireDecoder(use_yes_price=True)
    url = "ws://127.0.0.1:9/trade-api/ws/v2"
    ws = KalshiWs(url, Signer("fuzz-key", KEY), lambda frame, _ns: decoder.decode(frame))
    frames = [_sample("trade", count_fp="-1.00"), _sample("trade", count_fp="0"), b"{"]

    for frame in frames:
        ws._dispatch(frame)  # what the connection calls with each complete frame

    assert ws.stats.bad_frames == 3
    assert ws.stats.rejected == {"trade.count_fp": 2, "frame.json": 1}
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2
