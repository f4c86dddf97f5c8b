"""What a real ``kmm run`` leaves behind: CSVs pandas loads, a ledger that survives SIGKILL.

The local exchange runs in the test; ``kmm run`` runs as its own process against it, exactly as
a user starts it. Another account sells into the bot's bid so that there are fills to record.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pandas as pd
import pytest
import pytest_asyncio

from kmm.sim.engine import OrderRequest, TimeInForce
from kmm.sim.server import SimOptions, SimServer
from kmm.types import QTY_SCALE, BookSide, format_count, format_money, format_price

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


def _env(sim: SimServer, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMM__")}
    env.update(
        {
            "KMM__VENUE__REST_URL": sim.rest_url,
            "KMM__VENUE__WS_URL": sim.ws_url,
            "KMM__AUTH__KEY_ID": sim.key_id,
            "KMM__AUTH__PRIVATE_KEY_PATH": str(sim.private_key_path),
            "KMM__MARKETS__MAX_MARKETS": "2",
            "KMM__RISK__KILL_FILE": str(tmp_path / "KILL"),
            "KMM__RECORD__RUNS_DIR": str(tmp_path / "runs"),
            "KMM__RECORD__LEDGER_PATH": str(tmp_path / "runs" / "ledger.sqlite"),
        }
    )
    return env


async def _kmm(env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kmm",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


def _ours(sim: SimServer, ticker: str) -> list[object]:
    return [o for o in sim.venue.engine.resting_orders(ticker) if o.user_id == sim.user_id]


async def _wait(what: object, reason: str, timeout_s: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not what():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for: {reason}")
        await asyncio.sleep(0.05)


async def _trade_into_the_bot(sim: SimServer) -> str:
    """Waits for the bot to quote, then sells through its bid; returns the market."""
    engine = sim.venue.engine
    ticker = next(t for t in engine.markets if engine.markets[t].status == "active")
    await _wait(lambda: len(_ours(sim, ticker)) == 2, "the bot to quote")
    best_bid, _ = engine.best(ticker)
    sell = OrderRequest(
        ticker, BookSide.ASK, best_bid - 200, 1_000 * QTY_SCALE, time_in_force=TimeInForce.IOC
    )
    engine.create_order(TRADER, sell, sim.venue.clock.now_ns())
    sim.venue.publish()
    await _wait(lambda: engine.fills_of(sim.user_id), "a fill of ours")
    return ticker


def _run_dir(tmp_path: Path) -> Path:
    runs = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    assert len(runs) == 1, runs
    return runs[0]


async def test_a_run_leaves_csvs_pandas_loads_whose_fills_equal_the_exchanges_and_a_report(
    sim: SimServer, tmp_path: Path
) -> None:
    env = _env(sim, tmp_path)
    bot = await _kmm(env, "run")
    await _trade_into_the_bot(sim)
    await asyncio.sleep(1.5)  # the bot re-quotes after the fill; a summary line goes by
    bot.send_signal(signal.SIGTERM)
    out, _ = await asyncio.wait_for(bot.communicate(), 60)
    assert bot.returncode == 0, out.decode()
    run = _run_dir(tmp_path)

    tape = pd.read_csv(run / "tape.csv", parse_dates=["ts"])
    orders = pd.read_csv(run / "orders.csv", parse_dates=["ts"])
    fills = pd.read_csv(run / "fills.csv", parse_dates=["ts"], dtype={"trade_id": str})
    assert str(tape["ts"].dtype).startswith("datetime64") and tape["ts"].dt.tz is not None
    assert {"quote", "fill"} <= set(tape["event"])
    assert tape["mid"].dtype == float and orders["ts"].dt.tz is not None
    assert fills["is_taker"].dtype == bool
    venue = sorted(
        (f.trade_id, f.ticker, f.book_side.value, format_price(f.yes_price), format_count(f.count),
         format_money(f.fee)) for f in sim.venue.engine.fills_of(sim.user_id)
    )  # fmt: skip
    raw = (run / "fills.csv").read_text().splitlines()[1:]
    ours = sorted(tuple(line.split(",")[i] for i in (1, 3, 4, 5, 6, 7)) for line in raw)
    assert ours == venue

    report = await _kmm(env, "report", str(run))
    printed, _ = await asyncio.wait_for(report.communicate(), 120)
    assert report.returncode == 0, printed.decode()
    assert b"net P&L" in printed and b"markout" in printed
    summary = json.loads((run / "report.json").read_text())
    assert summary["fills"]["count"] == len(venue)
    assert set(summary["markouts"]) == {"1s", "10s", "60s"}
    assert (run / "equity.png").stat().st_size > 0
    assert (run / "fills.png").stat().st_size > 0


async def test_sigkill_leaves_readable_csvs_and_a_ledger_the_next_start_reads_back(
    sim: SimServer, tmp_path: Path
) -> None:
    env = _env(sim, tmp_path)
    bot = await _kmm(env, "run")
    await _trade_into_the_bot(sim)
    ledger = tmp_path / "runs" / "ledger.sqlite"
    await _wait(lambda: _day_row(ledger) is not None, "the day's P&L in the ledger")
    await asyncio.sleep(1.2)  # at least one more flush with the fill in it

    bot.send_signal(signal.SIGKILL)
    await bot.wait()

    run = _run_dir(tmp_path)
    tape = pd.read_csv(run / "tape.csv", parse_dates=["ts"])
    fills = pd.read_csv(run / "fills.csv", dtype={"trade_id": str})
    assert len(tape) > 0 and len(fills) > 0
    with sqlite3.connect(ledger) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = {row[0] for row in db.execute("SELECT trade_id FROM fills")}
    assert set(fills["trade_id"]) <= stored
    day = _day_row(ledger)
    assert day is not None
    _, pnl, peak = day

    again = await _kmm(env, "run", "--duration", "3")
    out, _ = await asyncio.wait_for(again.communicate(), 60)
    assert again.returncode == 0, out.decode()
    assert f"today so far (ledger): P&L ${pnl}, peak ${peak}".encode() in out


def _day_row(ledger: Path) -> tuple[str, str, str] | None:
    if not ledger.exists():
        return None
    try:
        with sqlite3.connect(ledger) as db:
            row = db.execute(
                "SELECT day, pnl, peak FROM daily_pnl WHERE day LIKE 'sim:%'"
            ).fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else (str(row[0]), str(row[1]), str(row[2]))
