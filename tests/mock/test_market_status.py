"""A market the venue stops and restarts, or closes: quotes pulled with the real cause, and back."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kmm.types import BookSide
from tests.mock.test_engine import Run, _config, assert_in_sync, start  # noqa: F401 (fixture)

pytestmark = pytest.mark.asyncio


async def test_a_market_deactivated_then_activated_is_quoted_again_from_a_fresh_snapshot(
    start: Callable[..., Any],  # noqa: F811
) -> None:
    run: Run = await start()
    ticker = next(iter(run.engine.core.pipeline.markets))
    clock = run.sim.venue.clock
    snapshots = run.engine.core.pipeline.stats.snapshots

    bid, ask = run.venue.best(ticker)
    run.sim.venue.faults.deactivate_market(ticker, clock.now_ns())
    run.sim.venue.publish()
    await run.until(lambda: not any(o.ticker == ticker for o in run.our_resting().values()),
                    "the deactivated market's quotes pulled")  # fmt: skip
    await run.until(lambda: "deactivated" in (run.engine.core.risk.blocked.get(ticker) or ""),
                    "the bot to see the deactivation")  # fmt: skip

    run.sim.venue.faults.activate_market(ticker, clock.now_ns())
    run.sim.venue.publish()
    # Reactivation cancels every resting order: others rest again, and so should we
    run.trade(ticker, BookSide.BID, bid, 10, rest=True)
    run.trade(ticker, BookSide.ASK, ask, 10, rest=True)

    await run.until(lambda: run.quoting(ticker), "quoting again after activation", 30)
    assert run.engine.core.pipeline.stats.snapshots > snapshots
    assert ticker not in run.engine.core.risk.blocked
    await assert_in_sync(run)
    await run.stop()


async def test_a_closed_market_is_reported_closed_not_as_a_sequence_gap(
    start: Callable[..., Any],  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    run: Run = await start()
    ticker = next(iter(run.engine.core.pipeline.markets))
    caplog.set_level(logging.INFO)

    run.venue.close_market(ticker, run.sim.venue.clock.now_ns())
    run.sim.venue.publish()

    await run.until(lambda: not any(o.ticker == ticker for o in run.our_resting().values()),
                    "the closed market's quotes pulled")  # fmt: skip
    await run.until(lambda: "market closed" in caplog.text, "the close in the log")
    lines = [r.getMessage() for r in caplog.records if ticker in r.getMessage()]
    assert not any("sequence gap" in line for line in lines), lines
    await run.stop()


async def test_a_long_whose_bids_are_all_gone_is_marked_below_the_last_trade_not_at_the_old_mid(
    start: Callable[..., Any],  # noqa: F811
    tmp_path: Path,
) -> None:
    config = _config(tmp_path, risk={"max_position_contracts": 5})
    run: Run = await start(config)
    ticker = next(iter(run.engine.core.pipeline.markets))
    bid, ask = run.venue.best(ticker)
    old_mid = (bid + ask) // 2

    run.trade(ticker, BookSide.ASK, 100, 100_000)  # sells into every bid there is
    await run.until(lambda: run.engine.core.portfolio.net_qty(ticker) >= 500, "a long at its cap")
    await run.until(lambda: run.venue.best(ticker)[0] is None, "no bid left at the venue")
    mark = run.engine.core.mark(ticker)
    await run.until(lambda: run.engine.core.marks.get(ticker) == mark.price if mark else False,
                    "the P&L mark to follow")  # fmt: skip

    haircut = config.risk.one_sided_mark_haircut
    last_trade = run.engine.core._last_trade[ticker]
    assert mark is not None and mark.source.endswith("-haircut"), mark
    assert mark.price <= last_trade - haircut < old_mid
    position = run.engine.core.portfolio.position(ticker)
    assert run.engine.core.portfolio.unrealized(run.engine.core.pnl_marks()) == position.unrealized(
        mark.price
    )
    await run.stop()


async def test_the_summary_counts_markets_with_resting_orders_and_shows_a_halt(
    start: Callable[..., Any],  # noqa: F811
) -> None:
    run: Run = await start()
    markets = len(run.engine.core.pipeline.markets)
    assert f"quoting {markets}/{markets}" in run.engine.summary_line()

    ticker = next(iter(run.engine.core.pipeline.markets))
    run.sim.venue.faults.deactivate_market(ticker, run.sim.venue.clock.now_ns())
    run.sim.venue.publish()
    await run.until(lambda: not any(o.ticker == ticker for o in run.our_resting().values()),
                    "the market's orders gone")  # fmt: skip
    await run.until(lambda: f"quoting {markets - 1}/{markets}" in run.engine.summary_line(),
                    "the summary to count only markets with resting orders")  # fmt: skip

    run.engine.halt("test")
    await run.until(lambda: run.our_resting() == {}, "everything cancelled")
    assert " HALTED " in run.engine.summary_line()
    await run.stop()
