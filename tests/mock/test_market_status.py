"""A market the venue stops and restarts, or closes: quotes pulled with the real cause, and back."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from kmm.types import BookSide
from tests.mock.test_engine import Run, assert_in_sync, start  # noqa: F401 (fixture)

pytestmark = pytest.mark.asyncio


async def test_a_market_deactivated_then_activated_is_quoted_again_from_a_fresh_snapshot(
    start: Callable[..., Any],  # noqa: F811
) -> None:
    run: Run = await start()
    ticker = next(iter(run.engine.pipeline.markets))
    clock = run.sim.venue.clock
    snapshots = run.engine.pipeline.stats.snapshots

    bid, ask = run.venue.best(ticker)
    run.sim.venue.faults.deactivate_market(ticker, clock.now_ns())
    run.sim.venue.publish()
    await run.until(lambda: not any(o.ticker == ticker for o in run.our_resting().values()),
                    "the deactivated market's quotes pulled")  # fmt: skip
    await run.until(lambda: "deactivated" in (run.engine.risk.blocked.get(ticker) or ""),
                    "the bot to see the deactivation")  # fmt: skip

    run.sim.venue.faults.activate_market(ticker, clock.now_ns())
    run.sim.venue.publish()
    # Reactivation cancels every resting order: others rest again, and so should we
    run.trade(ticker, BookSide.BID, bid, 10, rest=True)
    run.trade(ticker, BookSide.ASK, ask, 10, rest=True)

    await run.until(lambda: run.quoting(ticker), "quoting again after activation", 30)
    assert run.engine.pipeline.stats.snapshots > snapshots
    assert ticker not in run.engine.risk.blocked
    await assert_in_sync(run)
    await run.stop()


async def test_a_closed_market_is_reported_closed_not_as_a_sequence_gap(
    start: Callable[..., Any],  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    run: Run = await start()
    ticker = next(iter(run.engine.pipeline.markets))
    caplog.set_level(logging.INFO)

    run.venue.close_market(ticker, run.sim.venue.clock.now_ns())
    run.sim.venue.publish()

    await run.until(lambda: not any(o.ticker == ticker for o in run.our_resting().values()),
                    "the closed market's quotes pulled")  # fmt: skip
    await run.until(lambda: "market closed" in caplog.text, "the close in the log")
    lines = [r.getMessage() for r in caplog.records if ticker in r.getMessage()]
    assert not any("sequence gap" in line for line in lines), lines
    await run.stop()
