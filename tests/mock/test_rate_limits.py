"""The whole bot against the local exchange's own rate limiter: no 429s in a normal session.

The exchange meters requests with :mod:`kmm.sim._limits` (written from Kalshi's documentation)
at their arrival; the bot paces itself with :mod:`kmm.execution.token_bucket`. A 429 in these
sessions means the bot's model let through a request that Kalshi's bucket would refuse.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from kmm.config import KmmConfig
from kmm.engine import LiveEngine
from kmm.kalshi.auth import Signer, load_private_key
from kmm.sim.engine import OrderRequest
from kmm.sim.server import SimOptions, SimServer
from kmm.types import QTY_SCALE, BookSide
from tests.mock.test_engine import wait_until

pytestmark = pytest.mark.asyncio

MARKETS = 8
BURST = 2 * MARKETS
"""The start-up burst: 16 creates, 160 tokens against a Basic Write bucket of 100."""


async def _session(
    sim_state_dir: Path, tmp_path: Path, before: Callable[[SimServer], None] = lambda _s: None
) -> SimServer:
    """Runs the bot on ``jump``/``basic`` through its start-up burst and a clean stop."""
    sim = SimServer(
        SimOptions(state_dir=sim_state_dir, scenario="jump", tier="basic", markets=MARKETS, seed=7)
    )
    await sim.start()
    before(sim)
    config = KmmConfig.model_validate(
        {
            "markets": {"max_markets": MARKETS},
            "execution": {"reconcile_interval_s": 1.0},
            "risk": {"kill_file": str(tmp_path / "KILL")},
        }
    )
    signer = Signer(sim.key_id, load_private_key(sim.private_key_path), reuse_ms=2_000)
    engine = LiveEngine(config, rest_url=sim.rest_url, ws_url=sim.ws_url, signer=signer)
    task = asyncio.create_task(engine.run())
    try:
        await wait_until(lambda: engine.ready.is_set(), "the engine to start", task=task)
        await wait_until(
            lambda: engine.executor.counters.acked >= BURST, "the start-up burst", task=task
        )
        engine.stop()  # the shutdown's cancels are metered too
        await asyncio.wait_for(task, 30)
    finally:
        if not task.done():
            engine.stop()
            await asyncio.gather(task, return_exceptions=True)
        await sim.stop()
    assert engine.executor.counters.rate_limited == 0
    return sim


async def test_a_jump_session_on_the_basic_tier_draws_no_429(
    sim_state_dir: Path, tmp_path: Path
) -> None:
    sim = await _session(sim_state_dir, tmp_path)

    stats = sim.rest.limiter.stats
    assert (stats.refused_write, stats.refused_read) == (0, 0), sim.rate_limit_summary()
    assert stats.served_write >= BURST + 1  # and the shutdown's batch cancel


def _leftovers(sim: SimServer) -> None:
    """40 orders of ours rest from an earlier run: cancelling them at start costs 80 tokens."""
    engine, now = sim.venue.engine, sim.venue.clock.now_ns()
    ticker = next(iter(engine.markets))
    for _ in range(40):
        engine.create_order(sim.user_id, OrderRequest(ticker, BookSide.BID, 100, QTY_SCALE), now)
    sim.venue.publish()


async def test_the_start_up_cancels_are_paid_from_the_same_bucket(
    sim_state_dir: Path, tmp_path: Path
) -> None:
    sim = await _session(sim_state_dir, tmp_path, _leftovers)

    stats = sim.rest.limiter.stats
    assert (stats.refused_write, stats.refused_read) == (0, 0), sim.rate_limit_summary()
    assert stats.served_write >= 2 + BURST + 1  # two batch cancels of 20, the burst, the stop
