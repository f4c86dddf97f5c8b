"""The executor against the real local exchange over loopback: orders really rest, move, go.

Faults are injected at the venue (the sim's fault plan), never by mocking our own code.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
import pytest_asyncio

from kmm.book.grid import PriceGrid
from kmm.clock import ManualClock
from kmm.execution.executor import ExecEvent, ExecSettings, Executor, WriteRequest
from kmm.execution.orders import ClientOrderIds, OrderState, OrderTracker
from kmm.execution.token_bucket import TokenBucket, WriteScheduler
from kmm.kalshi.auth import Signer, load_private_key
from kmm.kalshi.rest import KalshiRest, VenueOrder
from kmm.sim.server import SimServer
from kmm.types import BookSide, Quote

pytestmark = pytest.mark.asyncio


@dataclass
class Rig:
    sim: SimServer
    rest: KalshiRest
    executor: Executor
    events: list[ExecEvent]
    ticker: str

    async def settle(self) -> None:
        """Waits for the executor to go idle, moving the venue's manual clock meanwhile."""
        flush = asyncio.ensure_future(self.executor.flush())
        clock = self.sim.venue.clock
        assert isinstance(clock, ManualClock)
        for _ in range(2_000):
            if flush.done():
                return
            clock.advance(ns=10_000_000)
            await asyncio.sleep(0.005)
        flush.cancel()
        raise AssertionError("the executor did not go idle")

    async def resting(self) -> list[VenueOrder]:
        return await self.rest.resting_orders(self.ticker)


@pytest_asyncio.fixture
async def rig(sim: SimServer) -> AsyncIterator[Rig]:
    clock = sim.venue.clock
    async with aiohttp.ClientSession() as session:
        signer = Signer(sim.key_id, load_private_key(sim.private_key_path))
        rest = KalshiRest(session, sim.rest_url, signer, now_ms=lambda: clock.now_ns() // 1_000_000)
        ticker = next(t for t, m in sim.venue.engine.markets.items() if m.status == "active")
        grids = {
            t: PriceGrid.from_ranges(m.price_ranges) for t, m in sim.venue.engine.markets.items()
        }
        events: list[ExecEvent] = []
        executor = Executor(
            rest,
            OrderTracker(ClientOrderIds("test")),
            WriteScheduler[WriteRequest](TokenBucket(2000, 1000, clock.now_ns())),
            clock,
            grids,
            ExecSettings(freshness_ns=10**12),
            on_event=events.append,
        )
        task = asyncio.create_task(executor.run())
        try:
            yield Rig(sim, rest, executor, events, ticker)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _quote(rig: Rig, bid: int | None, ask: int | None, qty: int = 300) -> Quote:
    return Quote(rig.ticker, bid, qty if bid else 0, ask, qty if ask else 0)


def _far_prices(rig: Rig) -> tuple[int, int]:
    """A bid and an ask well away from the book, so nothing fills."""
    best_bid, best_ask = rig.sim.venue.engine.best(rig.ticker)
    assert best_bid is not None and best_ask is not None
    return best_bid - 500, best_ask + 500


async def test_a_quote_becomes_two_resting_post_only_orders_at_its_prices(rig: Rig) -> None:
    bid, ask = _far_prices(rig)

    rig.executor.submit({rig.ticker: _quote(rig, bid, ask)})
    await rig.settle()

    resting = sorted(await rig.resting(), key=lambda o: o.side)
    assert [(o.side, o.price, o.remaining) for o in resting] == [
        (BookSide.ASK, ask, 300),
        (BookSide.BID, bid, 300),
    ]
    tracked = list(rig.executor.tracker.live(rig.ticker))
    assert {o.state for o in tracked} == {OrderState.RESTING}
    assert {o.order_id for o in tracked} == {o.order_id for o in resting}


async def test_a_new_price_amends_the_resting_order_in_place(rig: Rig) -> None:
    bid, ask = _far_prices(rig)
    rig.executor.submit({rig.ticker: _quote(rig, bid, ask)})
    await rig.settle()
    before = {o.side: o.order_id for o in await rig.resting()}

    rig.executor.submit({rig.ticker: _quote(rig, bid - 200, ask)})
    await rig.settle()

    after = {o.side: o for o in await rig.resting()}
    assert after[BookSide.BID].price == bid - 200
    assert after[BookSide.BID].order_id == before[BookSide.BID]
    assert any(e.what == "amended" for e in rig.events)


async def test_an_empty_quote_cancels_everything_in_that_market(rig: Rig) -> None:
    bid, ask = _far_prices(rig)
    rig.executor.submit({rig.ticker: _quote(rig, bid, ask)})
    await rig.settle()

    rig.executor.pull_all()
    await rig.settle()

    assert await rig.resting() == []
    assert list(rig.executor.tracker.live(rig.ticker)) == []


async def test_a_post_only_order_that_would_cross_is_rejected_with_kalshis_code(rig: Rig) -> None:
    _, best_ask = rig.sim.venue.engine.best(rig.ticker)
    assert best_ask is not None

    rig.executor.submit({rig.ticker: _quote(rig, best_ask, None)})
    await rig.settle()

    rejected = [e for e in rig.events if e.what == "rejected"]
    assert rejected and rejected[0].code == "invalid_order"
    assert "post only cross" in rejected[0].detail
    assert await rig.resting() == []


async def test_a_5xx_on_an_accepted_create_ends_with_the_order_known_and_resting(rig: Rig) -> None:
    bid, _ = _far_prices(rig)
    rig.sim.venue.faults.fail_next_writes(1, "5xx", accepted=True)

    rig.executor.submit({rig.ticker: _quote(rig, bid, None)})
    await rig.settle()

    assert [e.what for e in rig.events if e.what in ("unknown", "settled")] == [
        "unknown",
        "settled",
    ]
    resting = await rig.resting()
    assert len(resting) == 1
    tracked = rig.executor.tracker.get(resting[0].order_id)
    assert tracked is not None and tracked.state is OrderState.RESTING


async def test_a_5xx_on_a_refused_create_is_settled_as_never_placed_and_replaced(
    rig: Rig,
) -> None:
    bid, _ = _far_prices(rig)
    rig.sim.venue.faults.fail_next_writes(1, "5xx", accepted=False)

    rig.executor.submit({rig.ticker: _quote(rig, bid, None)})
    await rig.settle()

    settled = [e for e in rig.events if e.what == "settled"]
    assert settled and "no such order" in settled[0].detail
    resting = await rig.resting()
    assert [(o.side, o.price) for o in resting] == [(BookSide.BID, bid)]


async def test_a_burst_of_429s_never_stops_a_cancel(rig: Rig) -> None:
    bid, ask = _far_prices(rig)
    rig.executor.submit({rig.ticker: _quote(rig, bid, ask)})
    await rig.settle()
    rig.sim.venue.faults.rate_limit_burst(3)

    rig.executor.pull_all()
    await rig.settle()

    assert await rig.resting() == []
    assert rig.executor.counters.rate_limited >= 1


async def test_every_write_books_its_tokens_when_answered_and_holds_none_after(rig: Rig) -> None:
    bid, ask = _far_prices(rig)
    bucket = rig.executor.scheduler.bucket

    rig.executor.submit({rig.ticker: _quote(rig, bid, ask)})
    held = bucket.in_flight  # the two creates are on the wire, unanswered
    await rig.settle()
    rig.executor.submit({rig.ticker: _quote(rig, bid - 200, ask)})
    await rig.settle()
    rig.executor.submit({rig.ticker: _quote(rig, None, None)})
    await rig.settle()

    assert held == 2 * 10
    assert bucket.in_flight == 0
    assert await rig.resting() == []
