"""The executor never hammers the venue with what it refused, and never sends what risk refused.

Against the real local exchange over loopback, on the venue's manual clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from kmm.book.grid import PriceGrid
from kmm.clock import ManualClock
from kmm.execution.executor import ExecEvent, ExecSettings, Executor, WriteRequest
from kmm.execution.orders import ClientOrderIds, OrderState, OrderTracker
from kmm.execution.token_bucket import TokenBucket, WriteScheduler
from kmm.kalshi.auth import Signer, load_private_key
from kmm.kalshi.rest import KalshiRest
from kmm.sim.server import SimServer
from kmm.types import OrderIntent, Quote
from tests.sim.test_executor import Rig

pytestmark = pytest.mark.asyncio

_STEP_NS = 10_000_000


def _refuse_bids(intent: OrderIntent, replaces: int | None) -> OrderIntent | None:
    return None if intent.side.value == "bid" else intent


async def _rig(sim: SimServer, session: aiohttp.ClientSession, approve: object = None) -> Rig:
    clock = sim.venue.clock
    signer = Signer(sim.key_id, load_private_key(sim.private_key_path))
    rest = KalshiRest(session, sim.rest_url, signer, now_ms=lambda: clock.now_ns() // 1_000_000)
    ticker = next(t for t, m in sim.venue.engine.markets.items() if m.status == "active")
    grids = {t: PriceGrid.from_ranges(m.price_ranges) for t, m in sim.venue.engine.markets.items()}
    events: list[ExecEvent] = []
    extra = {} if approve is None else {"approve": approve}
    executor = Executor(
        rest,
        OrderTracker(ClientOrderIds("test")),
        WriteScheduler[WriteRequest](TokenBucket(2000, 1000, clock.now_ns())),
        clock,
        grids,
        ExecSettings(freshness_ns=10**12),
        on_event=events.append,
        **extra,  # type: ignore[arg-type]
    )
    return Rig(sim, rest, executor, events, ticker)


@pytest_asyncio.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def _run_for(rig: Rig, seconds: float) -> None:
    """Moves the manual clock ``seconds`` in 10 ms steps, asking for a fresh diff each step."""
    clock = rig.sim.venue.clock
    assert isinstance(clock, ManualClock)
    for _ in range(int(seconds * 1e9) // _STEP_NS):
        clock.advance(ns=_STEP_NS)
        rig.executor.touch(rig.ticker)
        await asyncio.sleep(0.004)


async def _running(rig: Rig) -> asyncio.Task[None]:
    return asyncio.create_task(rig.executor.run())


async def test_a_post_only_create_the_venue_refuses_is_sent_at_most_twice_a_second(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    rig = await _rig(sim, session)
    task = await _running(rig)
    try:
        _, best_ask = sim.venue.engine.best(rig.ticker)
        assert best_ask is not None
        rig.executor.submit({rig.ticker: Quote(rig.ticker, best_ask, 300, None, 0)})

        await _run_for(rig, 1.0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    sent = [e for e in rig.events if e.what == "sent"]
    rejected = [e for e in rig.events if e.what == "rejected"]
    assert 1 <= len(sent) <= 2, [e.what for e in rig.events]
    assert len(rejected) == len(sent)
    assert await rig.resting() == []


async def test_a_refused_price_is_tried_again_after_its_hold_and_a_new_price_at_once(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    rig = await _rig(sim, session)
    task = await _running(rig)
    try:
        best_bid, best_ask = sim.venue.engine.best(rig.ticker)
        assert best_ask is not None and best_bid is not None
        rig.executor.submit({rig.ticker: Quote(rig.ticker, best_ask, 300, None, 0)})
        await _run_for(rig, 0.1)
        rig.executor.submit({rig.ticker: Quote(rig.ticker, best_bid - 300, 300, None, 0)})
        await _run_for(rig, 0.1)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    resting = await rig.resting()
    assert [o.price for o in resting] == [best_bid - 300]


async def test_an_amend_the_venue_refuses_is_read_back_and_not_resent_in_a_loop(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    rig = await _rig(sim, session)
    task = await _running(rig)
    try:
        best_bid, best_ask = sim.venue.engine.best(rig.ticker)
        assert best_bid is not None and best_ask is not None
        rig.executor.submit({rig.ticker: Quote(rig.ticker, best_bid - 500, 300, None, 0)})
        await _run_for(rig, 0.1)
        order_id = (await rig.resting())[0].order_id

        # A post-only amend onto the ask: refused, the order stands where it was
        rig.executor.submit({rig.ticker: Quote(rig.ticker, best_ask, 300, None, 0)})
        await _run_for(rig, 1.0)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    amends = [e for e in rig.events if e.what == "sent" and e.detail == "amend"]
    assert 1 <= len(amends) <= 2, [(e.what, e.detail) for e in rig.events]
    assert any(e.what == "settled" and "resting" in e.detail for e in rig.events)
    tracked = rig.executor.tracker.get(order_id)
    assert tracked is not None and tracked.state is OrderState.RESTING
    assert tracked.price == best_bid - 500


async def test_a_create_risk_refuses_is_never_sent(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    rig = await _rig(sim, session, approve=_refuse_bids)
    task = await _running(rig)
    requests: list[bytes] = []
    sim.arrival_observers.append(requests.append)
    try:
        best_bid, best_ask = sim.venue.engine.best(rig.ticker)
        assert best_bid is not None and best_ask is not None
        quote = Quote(rig.ticker, best_bid - 500, 300, best_ask + 500, 300)
        rig.executor.submit({rig.ticker: quote})
        await _run_for(rig, 0.3)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    resting = await rig.resting()
    assert [o.side.value for o in resting] == ["ask"]
    assert [e.what for e in rig.events if e.what == "sent"] == ["sent"]
    bodies = b"".join(requests)
    assert bodies.count(b'"side":"bid"') == 0 and bodies.count(b'"side":"ask"') == 1
