"""``kmm flatten`` against the local exchange: positions worked out within the slippage cap,
nothing left resting, and positions it cannot close named with exit status 5.

The positions are made by the test itself, as the bot's account, with the exchange's own REST
API (a taking order), and checked afterwards the same way: the bot's client plays no part in
setting up or judging the outcome.
"""

from __future__ import annotations

import asyncio
import csv
import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from kmm.sim.server import SimOptions, SimServer
from tests.sim.conftest import SignedClient, bot_env, make_options

pytestmark = pytest.mark.asyncio


@pytest.fixture
def sim_options(sim_state_dir: Path) -> SimOptions:
    """Wall time (the bot runs in its own process), no background flow, three markets."""
    return make_options(sim_state_dir, clock=None, markets=3)


def _env(sim: SimServer, tmp_path: Path) -> dict[str, str]:
    return bot_env(sim, tmp_path)


async def _kmm(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kmm",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def _top(client: SignedClient, ticker: str) -> tuple[Decimal, Decimal]:
    """The best YES bid and ask, from the exchange's order book."""
    status, body = await client.get(f"/markets/{ticker}/orderbook")
    assert status == 200, body
    book = body["orderbook_fp"]
    bid = Decimal(book["yes_dollars"][-1][0])
    ask = 1 - Decimal(book["no_dollars"][-1][0])
    return bid, ask


async def _take(client: SignedClient, ticker: str, side: str, count: int) -> None:
    """Buys (``bid``) or sells (``ask``) YES at the touch, taking: a position of ours."""
    bid, ask = await _top(client, ticker)
    order = {
        "ticker": ticker,
        "side": side,
        "price": str(ask if side == "bid" else bid),
        "count": f"{count}.00",
        "time_in_force": "immediate_or_cancel",
        "self_trade_prevention_type": "taker_at_cross",
        "client_order_id": f"setup-{ticker}-{side}",
    }
    status, body = await client.post("/portfolio/events/orders", json=order)
    assert status in (200, 201), body


async def _positions(client: SignedClient) -> dict[str, Decimal]:
    status, body = await client.get("/portfolio/positions")
    assert status == 200, body
    return {
        p["ticker"]: Decimal(p["position_fp"])
        for p in body["market_positions"]
        if Decimal(p["position_fp"])
    }


async def _resting(client: SignedClient) -> list[Any]:
    status, body = await client.get("/portfolio/orders", params={"status": "resting"})
    assert status == 200, body
    return list(body["orders"])


def _fills(tmp_path: Path) -> list[dict[str, str]]:
    runs = sorted(p for p in (tmp_path / "runs").iterdir() if p.is_dir())
    with (runs[-1] / "fills.csv").open() as f:
        return list(csv.DictReader(f))


async def test_flatten_takes_every_position_out_and_leaves_nothing_resting(
    sim: SimServer, client: SignedClient, tmp_path: Path
) -> None:
    long_ticker, short_ticker, _ = sorted(sim.venue.engine.markets)
    await _take(client, long_ticker, "bid", 6)
    await _take(client, short_ticker, "ask", 4)
    assert await _positions(client) == {long_ticker: 6, short_ticker: -4}
    long_top = await _top(client, long_ticker)

    status, out, err = await _kmm("flatten", "--max-slippage-cents", "10", env=_env(sim, tmp_path))

    assert status == 0, out + err
    assert await _positions(client) == {}
    assert await _resting(client) == []
    assert f"exit: {long_ticker} flat" in out
    assert "shutdown: no order of ours rests" in out
    fills = [f for f in _fills(tmp_path) if f["source"] != "start"]  # the run's own
    assert {(f["ticker"], f["side"], f["is_taker"]) for f in fills} == {
        (long_ticker, "ask", "True"),
        (short_ticker, "bid", "True"),
    }
    sold = [f for f in fills if f["ticker"] == long_ticker]
    assert sum(Decimal(f["qty"]) for f in sold) == 6
    mid = (long_top[0] + long_top[1]) / 2
    # never below the fair price at the start less the 10c cap
    assert all(Decimal(f["price"]) >= mid - Decimal("0.10") for f in sold)


async def test_flatten_takes_even_when_the_config_runs_volatility_mode(
    sim: SimServer, client: SignedClient, tmp_path: Path
) -> None:
    ticker = sorted(sim.venue.engine.markets)[0]
    await _take(client, ticker, "bid", 3)
    env = _env(sim, tmp_path) | {"KMM__MARKETS__MODE": "volatility"}

    status, out, err = await _kmm("flatten", "--max-slippage-cents", "10", env=env)

    assert status == 0, out + err
    assert await _positions(client) == {}
    assert "volatility:" not in out  # no session, no idle exit in the way of the take
    fills = [f for f in _fills(tmp_path) if f["source"] != "start"]
    assert fills and all(f["is_taker"] == "True" for f in fills)


async def test_flatten_of_named_markets_leaves_the_others_alone(
    sim: SimServer, client: SignedClient, tmp_path: Path
) -> None:
    first, second, _ = sorted(sim.venue.engine.markets)
    await _take(client, first, "bid", 3)
    await _take(client, second, "bid", 2)

    status, out, err = await _kmm("flatten", "--markets", first, env=_env(sim, tmp_path))

    assert status == 0, out + err
    assert await _positions(client) == {second: 2}
    assert await _resting(client) == []


async def test_a_position_that_cannot_be_worked_out_is_named_with_exit_5(
    sim: SimServer, client: SignedClient, tmp_path: Path
) -> None:
    ticker = sorted(sim.venue.engine.markets)[0]
    await _take(client, ticker, "bid", 5)

    # passive, and no one else trades on this exchange: the order rests until the timeout
    status, out, err = await _kmm("flatten", "--passive", "--timeout", "3", env=_env(sim, tmp_path))

    assert status == 5, out + err
    assert err.strip().splitlines() == [f"kmm flatten: positions left: {ticker} 5.00"]
    assert await _positions(client) == {ticker: 5}
    assert await _resting(client) == []  # cancelled and checked at the end


async def test_nothing_to_flatten_is_a_clean_exit(
    sim: SimServer, client: SignedClient, tmp_path: Path
) -> None:
    status, out, err = await _kmm("flatten", env=_env(sim, tmp_path))

    assert status == 0, out + err
    assert "flatten: no position to work out" in out


async def test_flatten_on_a_fresh_local_exchange_is_refused_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMM__")}
    env["KMM__RECORD__RUNS_DIR"] = str(tmp_path / "runs")

    status, _, err = await _kmm("flatten", env=env)

    assert status == 2
    assert len(err.strip().splitlines()) == 1
    assert "venue.rest_url" in err


async def test_a_run_with_exit_on_stop_works_its_positions_out_before_it_cancels(
    sim: SimServer, client: SignedClient, tmp_path: Path
) -> None:
    ticker = sorted(sim.venue.engine.markets)[1]
    await _take(client, ticker, "ask", 3)  # short 3 YES when the run starts
    env = _env(sim, tmp_path) | {"KMM__EXIT__ON_STOP": "take"}

    status, out, err = await _kmm("run", "--duration", "3", env=env)

    assert status == 0, out + err
    assert "exit at stop: working 1 positions out" in out
    assert await _positions(client) == {}
    assert await _resting(client) == []
    # the quotes' post-only orders were replaced, not amended across the spread (refused)
    runs = sorted(p for p in (tmp_path / "runs").iterdir() if p.is_dir())
    with (runs[-1] / "orders.csv").open() as f:
        events = list(csv.DictReader(f))
    rejected = [e for e in events if e["event"] == "rejected"]
    # nothing refused: no amend across the spread (post only), and no taking exit order sent
    # again because its answer reported it filled before its fill message moved the position
    assert rejected == [], rejected
    taker = [e for e in events if e["ticker"] == ticker and e["event"] == "sent"][-1]
    assert taker["side"] == "bid"
