"""Discovery against the local exchange's ``mixed`` universe over real loopback sockets:
the reader's requests and books, and ``kmm scan`` / ``kmm markets`` end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from kmm.kalshi.auth import Signer, load_private_key
from kmm.kalshi.rest import KalshiRest
from kmm.select.discovery import DiscoveryParams, discover
from kmm.select.reader import read_views
from kmm.sim.server import SimOptions, SimServer
from kmm.types import ONE_DOLLAR
from tests.sim.conftest import START_NS, make_options

pytestmark = pytest.mark.asyncio
MARKETS = 300


@pytest.fixture
def sim_options(sim_state_dir: Path) -> SimOptions:
    return make_options(sim_state_dir, scenario="mixed", markets=MARKETS)


@pytest_asyncio.fixture
async def rest(sim: SimServer) -> AsyncIterator[KalshiRest]:
    clock = sim.venue.clock
    async with aiohttp.ClientSession() as session:
        signer = Signer(sim.key_id, load_private_key(sim.private_key_path))
        yield KalshiRest(session, sim.rest_url, signer, now_ms=lambda: clock.now_ns() // 1_000_000)


async def test_the_reader_reads_every_market_in_a_few_requests_and_books_only_candidates(
    sim: SimServer, rest: KalshiRest
) -> None:
    universe = sim.venue.universe
    combos = {m.ticker for m in universe.markets if m.mve_collection_ticker}

    views, listings, stats = await read_views(rest, DiscoveryParams(), START_NS)

    assert {v.ticker for v in views} == {m.ticker for m in universe.markets} - combos
    assert stats.markets == MARKETS - len(combos)
    assert 0 < stats.books < stats.markets  # scalars, newborns, far closes: no book read
    assert stats.requests <= 8  # series, events, markets, trades, 3 batches of books
    assert set(listings) == {v.ticker for v in views}
    engine = sim.venue.engine
    series = {s.ticker: s.category for s in universe.series}
    for v in views:
        assert v.category == series[v.series_ticker]
        if v.depth:  # a book was read: it is the exchange's
            bid, ask = engine.best(v.ticker)
            assert (v.yes_bid, v.yes_ask) == (bid, ask)


async def test_discovery_refuses_what_it_should_and_budgets_what_it_chooses(
    sim: SimServer, rest: KalshiRest
) -> None:
    params = DiscoveryParams(top_n=12)
    views, _, _ = await read_views(rest, params, START_NS)

    ranked, budget = discover(views, params, START_NS)

    chosen = [s for s in ranked if s.selected]
    assert len(chosen) == 12 and set(budget) == {s.ticker for s in chosen}
    by_ticker = {m.ticker: m for m in sim.venue.universe.markets}
    for s in chosen:
        market = by_ticker[s.ticker]
        assert market.market_type == "binary" and market.mve_collection_ticker is None
        assert 3600 * 10**9 <= market.close_ns - START_NS <= 60 * 86_400 * 10**9
        assert s.view.spread is not None and 0 < s.view.spread <= params.max_spread
        assert 0 < budget[s.ticker].max_position <= params.per_market_cap * 100
    reasons = {s.reasons[0].split()[0] for s in ranked if s.score is None}
    assert {"scalar", "closes"} <= reasons
    assert all(s.view.yes_ask is None or s.view.yes_ask < ONE_DOLLAR for s in ranked)


def kmm(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KMM__SIM__SCENARIO": "mixed",
        "KMM__SIM__MARKETS": str(MARKETS),
        "KMM__SIM__STATE_DIR": str(state),
    }
    return subprocess.run(
        [sys.executable, "-m", "kmm", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


async def test_kmm_scan_prints_the_cost_and_the_scored_table(tmp_path: Path) -> None:
    ran = kmm("scan", "--top", "5", "--refused", state=tmp_path)

    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    cost = next(line for line in lines if line.startswith("kmm scan:"))
    assert "open markets" in cost and "read tokens" in cost
    assert any(line.strip().startswith("rank") for line in lines)
    rows = [line for line in lines if line.strip()[:2] in {f"{i} " for i in range(1, 6)}]
    assert len(rows) == 5
    assert any(line.strip().endswith("scalar market") for line in lines)


async def test_kmm_markets_filters_by_category_and_time_to_close(tmp_path: Path) -> None:
    ran = kmm("markets", "--category", "economics", "--closes-within", "7d", state=tmp_path)

    assert ran.returncode == 0, ran.stderr
    rows = [line for line in ran.stdout.splitlines() if line.startswith("  KX")]
    assert rows
    for row in rows:
        assert "Economics" in row
        close_in = row.split()[3]
        assert close_in[-1] in "mhd" and (close_in[-1] != "d" or int(close_in[:-1]) <= 7)


async def test_a_bad_flag_is_one_line_and_exit_2(tmp_path: Path) -> None:
    ran = kmm("markets", "--min-volume", "lots", state=tmp_path)

    assert ran.returncode == 2
    assert ran.stderr.strip().count("\n") == 0
    assert "--min-volume" in ran.stderr
