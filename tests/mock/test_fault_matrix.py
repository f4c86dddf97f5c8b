"""Faults in combination, each ending with the bot's fills, orders and positions equal to the
exchange's: the whole bot against the real local exchange over loopback sockets.

Each case scripts a few faults at the venue while another account trades through the bot's
quotes, then lets the venue heal and audits (:func:`tests.mock.test_engine.assert_in_sync`),
and finally stops the bot and checks nothing of ours rests. The process-level faults (SIGKILL
and restart with each start-up policy, a stall across shutdown) are in ``test_nothing_lost``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from kmm.types import BookSide
from tests.mock.test_engine import Run, assert_in_sync, start  # noqa: F401 (fixture)

pytestmark = pytest.mark.asyncio


def _sweep_bids(run: Run, ticker: str) -> None:
    best_bid, _ = run.venue.best(ticker)
    run.trade(ticker, BookSide.ASK, best_bid - 200, 1_000)


def _sweep_asks(run: Run, ticker: str) -> None:
    _, best_ask = run.venue.best(ticker)
    run.trade(ticker, BookSide.BID, best_ask + 200, 1_000)


async def _storm_with_accepted_5xx(run: Run, ticker: str) -> None:
    """A 5xx whose write the venue applied, inside a 429 storm, while quotes must move."""
    faults = run.sim.venue.faults
    faults.rate_limit_burst(40)
    faults.fail_next_writes(2, "5xx", accepted=True)
    _sweep_bids(run, ticker)
    await asyncio.sleep(1.0)
    faults.fail_next_writes(1, "timeout", accepted=True)
    _sweep_asks(run, ticker)


async def _deactivate_trade_activate(run: Run, ticker: str) -> None:
    """A fill, the market deactivated and activated again, then quoted again."""
    clock = run.sim.venue.clock
    bid, ask = run.venue.best(ticker)
    _sweep_bids(run, ticker)
    await asyncio.sleep(0.3)
    run.sim.venue.faults.deactivate_market(ticker, clock.now_ns())
    run.sim.venue.publish()
    await asyncio.sleep(0.5)
    run.sim.venue.faults.activate_market(ticker, clock.now_ns())
    run.sim.venue.publish()
    run.trade(ticker, BookSide.BID, bid - 300, 10, rest=True)
    run.trade(ticker, BookSide.ASK, ask + 300, 10, rest=True)
    await run.until(lambda: run.quoting(ticker), "quoting again after activation", 30)


async def _stall_gap_and_drop(run: Run, ticker: str) -> None:
    """Fills while the feed is stalled, then a sequence gap and a dropped socket."""
    faults = run.sim.venue.faults
    faults.stall_feed(2.0, run.sim.venue.clock.now_ns())
    _sweep_bids(run, ticker)
    await asyncio.sleep(2.5)
    faults.drop_ws_messages(2)
    _sweep_asks(run, ticker)
    await asyncio.sleep(0.5)
    faults.close_sockets()
    run.sim.venue.publish()


async def _pause_with_refused_writes(run: Run, ticker: str) -> None:
    """A trading pause with writes refused by 5xx (not applied) around it."""
    faults, clock = run.sim.venue.faults, run.sim.venue.clock
    faults.fail_next_writes(3, "5xx", accepted=False)
    _sweep_bids(run, ticker)
    await asyncio.sleep(0.5)
    faults.pause_trading(None, clock.now_ns())
    run.sim.venue.publish()
    await asyncio.sleep(1.0)
    faults.resume_trading(clock.now_ns())
    run.sim.venue.publish()
    await run.until(lambda: run.quoting(ticker), "quoting again after the pause", 30)


CASES: dict[str, Callable[[Run, str], Any]] = {
    "5xx-accepted inside a 429 storm": _storm_with_accepted_5xx,
    "deactivate, fill, activate": _deactivate_trade_activate,
    "stall, gap and dropped socket": _stall_gap_and_drop,
    "pause with refused writes": _pause_with_refused_writes,
}


@pytest.mark.parametrize("case", list(CASES))
async def test_after_combined_faults_fills_orders_and_positions_equal_the_exchanges(
    start: Callable[..., Any],  # noqa: F811
    case: str,
) -> None:
    run: Run = await start()
    ticker = next(iter(run.engine.core.pipeline.markets))

    await CASES[case](run, ticker)

    assert run.venue.fills_of(run.sim.user_id), "the case made no fill"
    await assert_in_sync(run)
    await run.stop()
    assert run.our_resting() == {}
    assert run.engine.report.left_resting == []
