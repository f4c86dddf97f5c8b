"""``kmm watch`` against the local exchange over real sockets: the snapshot as the exchange's
book has it, the deltas and trades our own orders cause, our fill with ``--with-private``, and
an unknown ticker refused in one line.

The exchange runs in this process on wall time with no background traders, so its book only
moves when the test sends an order (as the watcher's own account, through the exchange's REST
API): every line the command prints is known in advance.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

from kmm.sim.server import SimOptions, SimServer
from kmm.types import ONE_DOLLAR, Price, format_count, format_price, parse_count, parse_price
from tests.sim.conftest import SignedClient, bot_env, make_options

pytestmark = [pytest.mark.asyncio, pytest.mark.timeout(120)]
ORDERS = "/portfolio/events/orders"
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


@pytest.fixture
def sim_options(sim_state_dir: Path) -> SimOptions:
    """Wall time (the watcher runs in its own process), no background flow, three markets."""
    return make_options(sim_state_dir, clock=None, markets=3)


def _ticker(sim: SimServer) -> str:
    return next(
        m.ticker for m in sim.venue.universe.markets if m.price_level_structure == "linear_cent"
    )


async def _watch(sim: SimServer, tmp_path: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kmm", "watch", *args,
        env=bot_env(sim, tmp_path), cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _read_until(process: asyncio.subprocess.Process, pattern: str, seen: list[str]) -> None:
    assert process.stdout is not None
    while True:
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        assert line, "".join(seen)
        seen.append(line)
        if re.search(pattern, line):
            return


async def _finish(process: asyncio.subprocess.Process, seen: list[str]) -> list[str]:
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return [line.rstrip("\n") for line in [*seen, *out.decode().splitlines(keepends=True)]]


async def _order(
    client: SignedClient, ticker: str, price: Price, count: str, coid: str, *, take: bool
) -> None:
    body = {
        "ticker": ticker,
        "side": "bid",
        "price": format_price(price),
        "count": count,
        "time_in_force": "immediate_or_cancel" if take else "good_till_canceled",
        "self_trade_prevention_type": "taker_at_cross",
        "client_order_id": coid,
    }
    status, answer = await client.post(ORDERS, body)
    assert status in (200, 201), answer


async def _rest_book(
    client: SignedClient, ticker: str
) -> tuple[list[tuple[Price, int]], list[tuple[Price, int]]]:
    """The YES bids and asks, best first, as the exchange's REST order book has them."""
    status, body = await client.get(f"/markets/{ticker}/orderbook")
    assert status == 200, body
    book = body["orderbook_fp"]
    bids = [(parse_price(p), parse_count(q)) for p, q in reversed(book["yes_dollars"])]
    asks = [(ONE_DOLLAR - parse_price(p), parse_count(q)) for p, q in reversed(book["no_dollars"])]
    assert bids and asks
    return bids, asks


def _levels(pairs: list[tuple[Price, int]]) -> str:
    return ", ".join(f"${format_price(p)} x {format_count(q)}" for p, q in pairs)


def _only(lines: list[str], kind: str) -> list[str]:
    """The text of the lines of one kind (after the stamp and the kind column)."""
    found = []
    for line in lines:
        match = re.fullmatch(rf"{STAMP} {kind:<12} (.*)", line)
        if match:
            found.append(match.group(1))
    return found


async def test_watch_prints_the_snapshot_then_the_deltas_and_trades_orders_cause(
    sim: SimServer, client: SignedClient, tmp_path: Path
) -> None:
    ticker = _ticker(sim)
    bids, asks = await _rest_book(client, ticker)
    (bid, bid_qty), (ask, ask_qty) = bids[0], asks[0]
    process = await _watch(sim, tmp_path, ticker, "--levels", "3", "--duration", "5")
    seen: list[str] = []
    await _read_until(process, r"subscribed +market_lifecycle_v2", seen)

    await _order(client, ticker, bid - 700, "3.00", "watch-rest", take=False)
    await _order(client, ticker, ask, "1.00", "watch-take", take=True)
    lines = await _finish(process, seen)

    assert lines[0].startswith(f"kmm watch: {ticker} (active, closes ")
    assert _only(lines, "snapshot") == [f"bids {_levels(bids[:3])} | asks {_levels(asks[:3])}"]
    spread = format_price(ask - bid)
    assert _only(lines, "delta") == [
        f"yes ${format_price(bid - 700)} +3.00 [ours: watch-rest] | bid ${format_price(bid)} x "
        f"{format_count(bid_qty)}  ask ${format_price(ask)} x {format_count(ask_qty)}  "
        f"spread ${spread}",
        f"no  ${format_price(ONE_DOLLAR - ask)} -1.00 (yes ask ${format_price(ask)}) "
        f"[ours: watch-take] | bid ${format_price(bid)} x {format_count(bid_qty)}  "
        f"ask ${format_price(ask)} x {format_count(ask_qty - 100)}  spread ${spread}",
    ]
    assert _only(lines, "trade") == [
        f"taker yes  yes ${format_price(ask)}  no ${format_price(ONE_DOLLAR - ask)}  count 1.00"
    ]
    assert any(t.startswith(f"bid ${format_price(bid)} x ") for t in _only(lines, "ticker"))
    assert not [line for line in lines if "OUR " in line]  # no private channel asked for
    summary = next(line for line in lines if line.startswith("kmm watch: ") and "frames" in line)
    assert "1 snapshots" in summary and "1 trades" in summary and "0 gaps" in summary


async def test_a_lost_delta_is_a_gap_and_the_book_comes_back_from_a_fresh_snapshot(
    sim: SimServer, client: SignedClient, tmp_path: Path
) -> None:
    ticker = _ticker(sim)
    bids, asks = await _rest_book(client, ticker)
    bid, ask = bids[0][0], asks[0][0]
    assert ask - bid >= 300  # room for two new best bids that do not cross
    process = await _watch(sim, tmp_path, ticker, "--levels", "2", "--duration", "5")
    seen: list[str] = []
    await _read_until(process, r"subscribed +market_lifecycle_v2", seen)

    sim.venue.faults.drop_ws_messages(1, "orderbook_delta")
    await _order(client, ticker, bid + 100, "2.00", "watch-lost", take=False)  # dropped
    await _order(client, ticker, bid + 200, "3.00", "watch-gap", take=False)
    lines = await _finish(process, seen)

    assert len(_only(lines, "gap")) == 1
    assert _only(lines, "delta")[0].endswith("| book resyncing: waiting for a snapshot")
    new_bids = f"${format_price(bid + 200)} x 3.00, ${format_price(bid + 100)} x 2.00"
    assert _only(lines, "snapshot") == [
        f"bids {_levels(bids[:2])} | asks {_levels(asks[:2])}",
        f"bids {new_bids} | asks {_levels(asks[:2])}",  # the resync has the lost level too
    ]
    summary = lines[-1]
    assert "2 snapshots" in summary and "1 gaps, 1 resyncs" in summary, summary


async def test_with_private_our_fill_order_and_position_are_marked(
    sim: SimServer, client: SignedClient, tmp_path: Path
) -> None:
    ticker = _ticker(sim)
    _, ask = sim.venue.engine.best(ticker)
    assert ask is not None
    process = await _watch(sim, tmp_path, ticker, "--with-private", "--duration", "5")
    seen: list[str] = []
    await _read_until(process, r"subscribed +market_positions", seen)

    await _order(client, ticker, ask, "2.00", "watch-fill", take=True)
    lines = await _finish(process, seen)

    fills = _only(lines, "OUR FILL")
    assert len(fills) == 1
    assert re.fullmatch(
        rf"bought yes 2\.00 @ \${format_price(ask)}  taker  fee \$0\.\d{{6}}  position 2\.00  "
        r"order watch-fill",
        fills[0],
    ), fills
    assert any(
        o.startswith("executed  bid ") and "order watch-fill" in o
        for o in _only(lines, "OUR ORDER")
    )
    assert any(p.startswith("2.00 (long yes)  cost $") for p in _only(lines, "OUR POSITION"))
    assert _only(lines, "trade") == [
        f"taker yes  yes ${format_price(ask)}  no ${format_price(ONE_DOLLAR - ask)}  count 2.00"
    ]


async def test_an_unknown_ticker_is_one_line_and_exit_2(sim: SimServer, tmp_path: Path) -> None:
    process = await _watch(sim, tmp_path, "KXSIMA-26JAN01-T99", "--duration", "5")
    out, err = await asyncio.wait_for(process.communicate(), 60)

    assert process.returncode == 2, out.decode() + err.decode()
    assert err.decode().splitlines() == [
        "kmm: markets: unknown tickers (the venue lists no such market): KXSIMA-26JAN01-T99"
    ]
    assert "snapshot" not in out.decode()


async def test_a_series_ticker_watches_its_market_that_closes_first(
    sim: SimServer, tmp_path: Path
) -> None:
    markets = sim.venue.universe.markets
    series = markets[0].ticker.split("-")[0]
    first = min((m for m in markets if m.ticker.startswith(series + "-")),
                key=lambda m: (m.close_ns, m.ticker))  # fmt: skip
    process = await _watch(sim, tmp_path, series, "--duration", "2")

    lines = await _finish(process, [])

    assert lines[0].startswith(f"kmm watch: {first.ticker} (active"), lines[0]
