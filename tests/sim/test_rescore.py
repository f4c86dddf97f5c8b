"""``kmm run --mode discovery`` rescoring while it runs, against a local exchange in this
process: a chosen market that leaves discovery's window is dropped (its orders cancelled
and confirmed, its position only reduced, its feed unsubscribed once nothing is left) and
the next best market is added, without a restart."""

from __future__ import annotations

import asyncio
import csv
import itertools
import re
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest

from kmm.sim.server import SimOptions, SimServer
from kmm.types import BookSide
from tests.sim.conftest import bot_env, make_options

pytestmark = pytest.mark.asyncio
S = 1_000_000_000


@pytest.fixture
def sim_options(sim_state_dir: Path) -> SimOptions:
    """Wall time (the bot runs in its own process) and the mixed universe's flow."""
    return make_options(sim_state_dir, clock=None, flow=True, scenario="mixed", markets=120)


def _env(sim: SimServer, tmp_path: Path) -> dict[str, str]:
    return bot_env(
        sim,
        tmp_path,
        KMM__VENUE__WS_URL=sim.ws_url,
        KMM__DISCOVERY__TOP_N="4",
        KMM__DISCOVERY__RESCORE_S="2",
    )


def _side_adding(position: int) -> BookSide:
    """The side whose fills would grow ``position``."""
    return BookSide.BID if position > 0 else BookSide.ASK


async def _read_until(stream: asyncio.StreamReader, pattern: str, out: list[str]) -> re.Match[str]:
    while True:
        line = (await asyncio.wait_for(stream.readline(), 30)).decode()
        assert line, "".join(out)
        out.append(line)
        found = re.search(pattern, line)
        if found:
            return found


async def test_a_market_leaving_the_window_is_dropped_and_the_next_best_added(
    sim: SimServer, tmp_path: Path
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kmm", "run", "--mode", "discovery", "--duration", "25",
        env=_env(sim, tmp_path), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    out: list[str] = []
    first = await _read_until(process.stdout, r"discovery: (\S+) score", out)
    dropped = first.group(1)
    await _read_until(process.stdout, r"^t=\s+\d+s quoting", out)
    # the exchange moves its close to 10 minutes away: outside the 1 h..60 d window
    sim.venue.engine.update_close_time(dropped, time.time_ns() + 600 * S, time.time_ns())
    pattern = rf"rescore: added (.+); dropping (.*\b{re.escape(dropped)}\b.*)$"
    rescored = await _read_until(process.stdout, pattern, out)
    await asyncio.sleep(2.0)  # the bot still runs: its cancels are in and confirmed
    engine = sim.venue.engine
    held = engine.positions_of("demo").get(dropped)
    resting = [o for o in engine.resting_orders(dropped) if o.user_id == "demo"]
    if held is None or held.position == 0:
        assert resting == [], resting  # flat: nothing of ours rests there any more
    else:
        assert all(o.book_side is not _side_adding(held.position) for o in resting), resting
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    text = "".join(out) + stdout.decode()

    assert process.returncode == 0, text + stderr.decode()
    added = rescored.group(1).split(", ")[0]
    assert added not in ("none", dropped)
    run_dir = next(p for p in (tmp_path / "runs").iterdir() if p.is_dir())
    with (run_dir / "tape.csv").open() as f:
        rows = list(csv.DictReader(f))
    cut = next(i for i, r in enumerate(rows) if r["ticker"] == added)  # first row of the new one
    assert any(r["ticker"] == added and r["quote_bid_qty"] for r in rows[cut:])
    after = [r for r in rows[cut:] if r["ticker"] == dropped]
    for before, row in itertools.pairwise(after):  # reduce-only from then on
        assert abs(Decimal(row["inventory"])) <= abs(Decimal(before["inventory"])), row
    if all(Decimal(r["inventory"]) == 0 for r in after[-1:]):
        unsubscribed = (
            rf"rescore: .*\b{re.escape(dropped)}\b.*: no order of ours rests, unsubscribed"
        )
        assert re.search(unsubscribed, text), text
