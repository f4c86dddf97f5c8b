"""Nothing lost across runs: every fill of the account recorded once, whatever the sequence.

The local exchange runs in the test and outlives the bot; ``kmm run`` runs as its own process
against it and is killed, restarted with each start-up policy, stalled and stopped. After each
sequence, the union of the runs' ``fills.csv`` and the ledger's fills equal the exchange's own
fills of the account (trade ids, prices, counts, fees, taker flags), and the positions they add
up to equal the exchange's.
"""

from __future__ import annotations

import asyncio
import csv
import signal
import sqlite3
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pytest
import pytest_asyncio

from kmm.sim.engine import OrderRequest, TimeInForce
from kmm.sim.server import SimOptions, SimServer
from kmm.types import QTY_SCALE, BookSide, format_count, format_money, format_price
from tests.mock.test_record_run import _env, _kmm, _ours, _wait

pytestmark = pytest.mark.asyncio

TRADER = "seller"


@pytest_asyncio.fixture
async def sim(sim_state_dir: Path) -> AsyncIterator[SimServer]:
    server = SimServer(SimOptions(state_dir=sim_state_dir, flow=False, tier="premier"))
    await server.start()
    server.venue.engine.open_account(TRADER, 10**15)
    try:
        yield server
    finally:
        await server.stop()


def _ticker(sim: SimServer) -> str:
    engine = sim.venue.engine
    return next(t for t in engine.markets if engine.markets[t].status == "active")


def _sell_into_our_bid(sim: SimServer, ticker: str) -> None:
    """Another account sells through the bot's resting bid (IOC, enough for the queue)."""
    engine = sim.venue.engine
    ours = [o for o in _ours(sim, ticker) if o.book_side is BookSide.BID]  # type: ignore[attr-defined]
    assert ours, "the bot has no resting bid"
    price = ours[0].price  # type: ignore[attr-defined]
    size = 2_000 * QTY_SCALE
    sell = OrderRequest(ticker, BookSide.ASK, price, size, time_in_force=TimeInForce.IOC)
    engine.create_order(TRADER, sell, sim.venue.clock.now_ns())
    sim.venue.publish()


def _venue_fills(sim: SimServer) -> list[tuple[str, str, str, str, str, str, bool]]:
    return sorted(
        (f.trade_id, f.ticker, f.book_side.value, format_price(f.yes_price), format_count(f.count),
         format_money(f.fee), f.is_taker) for f in sim.venue.engine.fills_of(sim.user_id)
    )  # fmt: skip


def _csv_fills(runs: Path) -> list[tuple[str, str, str, str, str, str, bool]]:
    rows = []
    for path in sorted(runs.glob("*/fills.csv")):
        with path.open(newline="") as file:
            for row in csv.DictReader(file):
                rows.append(
                    (row["trade_id"], row["ticker"], row["side"], row["price"], row["qty"],
                     row["fee"], row["is_taker"] == "True")
                )  # fmt: skip
    return sorted(rows)


def _ledger_fills(ledger: Path) -> list[tuple[str, str, str, str, str, str, bool]]:
    with closing(sqlite3.connect(ledger)) as db:
        rows = db.execute("SELECT trade_id, ticker, side, price, qty, fee, is_taker FROM fills")
        return sorted((*row[:6], bool(row[6])) for row in rows)


def _sources(runs: Path) -> set[str]:
    found = set()
    for path in runs.glob("*/fills.csv"):
        with path.open(newline="") as file:
            found |= {row["source"] for row in csv.DictReader(file)}
    return found


def _positions_from(fills: list[tuple[str, str, str, str, str, str, bool]]) -> dict[str, str]:
    net: dict[str, int] = defaultdict(int)
    for _, ticker, side, _, qty, _, _ in fills:
        contracts = round(float(qty) * QTY_SCALE)
        net[ticker] += contracts if side == "bid" else -contracts
    return {t: format_count(q) for t, q in net.items() if q}


def _venue_positions(sim: SimServer) -> dict[str, str]:
    held = sim.venue.engine.positions_of(sim.user_id)
    return {t: format_count(p.position) for t, p in held.items() if p.position}


async def _stop(bot: asyncio.subprocess.Process, how: int = signal.SIGTERM) -> str:
    bot.send_signal(how)
    out, _ = await asyncio.wait_for(bot.communicate(), 60)
    return out.decode()


def assert_nothing_lost(sim: SimServer, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    venue = _venue_fills(sim)
    assert venue, "the scenario made no fill"
    assert _csv_fills(runs) == venue
    assert _ledger_fills(runs / "ledger.sqlite") == venue
    assert _positions_from(venue) == _venue_positions(sim)


async def test_fills_across_a_kill_a_fill_while_down_restarts_and_a_stalled_stop_are_all_recorded(
    sim: SimServer, tmp_path: Path
) -> None:
    env = _env(sim, tmp_path)
    ticker = _ticker(sim)

    # Run 1: a fill on the stream, then SIGKILL (its orders stay resting)
    bot = await _kmm(env, "run")
    await _wait(lambda: len(_ours(sim, ticker)) == 2, "the bot to quote")
    _sell_into_our_bid(sim, ticker)
    await _wait(lambda: len(_venue_fills(sim)) >= 1, "a fill of ours")
    ledger = tmp_path / "runs" / "ledger.sqlite"
    await _wait(lambda: ledger.is_file() and _ledger_fills(ledger), "the fill recorded")
    await _stop(bot, signal.SIGKILL)  # after the stream's fill is committed, never before

    # Down: a fill nobody streams
    await _wait(lambda: len(_ours(sim, ticker)) >= 1, "the first run's requote to rest")
    if any(o.book_side is BookSide.BID for o in _ours(sim, ticker)):  # type: ignore[attr-defined]
        _sell_into_our_bid(sim, ticker)
    down_fills = len(_venue_fills(sim))

    # Run 2 adopts what rests; a stall across its shutdown hides a fill from the stream
    bot = await _kmm({**env, "KMM__EXECUTION__CANCEL_ON_START": "adopt"}, "run")
    await _wait(lambda: len(_ours(sim, ticker)) == 2 and _has_our_bid(sim, ticker), "quotes")
    await asyncio.sleep(1.0)
    sim.venue.faults.stall_feed(30, sim.venue.clock.now_ns())
    _sell_into_our_bid(sim, ticker)
    out = await _stop(bot)
    assert "Traceback" not in out, out

    # Run 3 cancels what rests at start and stops after a few seconds
    bot = await _kmm({**env, "KMM__EXECUTION__CANCEL_ON_START": "cancel"}, "run", "--duration", "3")
    out, _ = await asyncio.wait_for(bot.communicate(), 60)
    assert bot.returncode == 0, out.decode()

    assert len(_venue_fills(sim)) > down_fills
    assert_nothing_lost(sim, tmp_path)
    assert {"stream", "shutdown"} <= _sources(tmp_path / "runs")


def _has_our_bid(sim: SimServer, ticker: str) -> bool:
    return any(o.book_side is BookSide.BID for o in _ours(sim, ticker))  # type: ignore[attr-defined]


async def test_a_second_run_on_the_same_ledger_refuses_to_start_naming_the_first(
    sim: SimServer, tmp_path: Path
) -> None:
    env = _env(sim, tmp_path)
    first = await _kmm(env, "run")
    ticker = _ticker(sim)
    await _wait(lambda: len(_ours(sim, ticker)) == 2, "the first bot to quote")

    second = await _kmm(env, "run", "--duration", "2")
    out, _ = await asyncio.wait_for(second.communicate(), 60)
    await _stop(first)

    lines = out.decode().strip().splitlines()
    assert second.returncode == 2, out.decode()
    assert len(lines) == 1 and "in use by another kmm run" in lines[0]
    assert f"pid {first.pid}" in lines[0]


async def test_sigterm_in_a_429_storm_exits_3_listing_every_order_that_may_still_rest(
    sim: SimServer, tmp_path: Path
) -> None:
    env = _env(sim, tmp_path)
    bot = await _kmm(env, "run")
    ticker = _ticker(sim)
    await _wait(lambda: len(_ours(sim, ticker)) == 2, "the bot to quote")
    await asyncio.sleep(0.5)
    sim.venue.faults.rate_limit_burst(10**7)

    out = await _stop(bot)

    assert bot.returncode == 3, out
    assert "Traceback" not in out, out
    assert "the last read-back was refused too" in out
    resting = {o.order_id for t in sim.venue.engine.markets for o in _ours(sim, t)}  # type: ignore[attr-defined]
    assert resting
    for order_id in resting:
        assert f"MAY STILL REST {ticker}" in out or order_id in out
        assert order_id in out, out
    assert f"{len(resting)} orders may still rest" in out


async def test_sigterm_in_a_5xx_storm_exits_3_or_0_never_a_traceback(
    sim: SimServer, tmp_path: Path
) -> None:
    env = _env(sim, tmp_path)
    bot = await _kmm(env, "run")
    ticker = _ticker(sim)
    await _wait(lambda: len(_ours(sim, ticker)) == 2, "the bot to quote")
    sim.venue.faults.fail_next_writes(10**6, "5xx", accepted=False)

    out = await _stop(bot)

    resting = {o.order_id for t in sim.venue.engine.markets for o in _ours(sim, t)}  # type: ignore[attr-defined]
    assert "Traceback" not in out, out
    assert bot.returncode == 3, out
    assert resting and all(order_id in out for order_id in resting), out


async def test_a_start_up_cancel_answered_by_a_5xx_the_venue_applied_is_read_back_not_failed(
    sim: SimServer, tmp_path: Path
) -> None:
    engine = sim.venue.engine
    ticker = _ticker(sim)
    best_bid, _ = engine.best(ticker)
    assert best_bid is not None
    left_over = OrderRequest(ticker, BookSide.BID, best_bid - 500, 5 * QTY_SCALE)
    placed = engine.create_order(sim.user_id, left_over, sim.venue.clock.now_ns())
    sim.venue.faults.fail_next_writes(1, "5xx", accepted=True)

    bot = await _kmm(_env(sim, tmp_path), "run", "--duration", "2")
    out, _ = await asyncio.wait_for(bot.communicate(), 60)

    assert bot.returncode == 0, out.decode()
    assert b"cancelling 1 resting orders found at start" in out
    assert placed.order.order_id not in {o.order_id for o in _ours(sim, ticker)}  # type: ignore[attr-defined]
