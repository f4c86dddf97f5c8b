"""Queue truth check: the replay's queue models against the local exchange's own queue.

The local exchange's matching engine runs its background traders in process on a manual
clock. A real order of a test user rests at the best bid; its public frames (book deltas and
trades, built with the exchange's frame builders) feed a :class:`ReplayExchange` holding a
virtual order at the same price placed at the same moment. The engine's
``queue_position`` is the truth: the conservative model must never be ahead of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from kmm.backtest import (
    ConservativeQueue,
    MarketMeta,
    ProbabilisticQueue,
    QueueModel,
    ReplayExchange,
)
from kmm.kalshi.rest import OrderRequest
from kmm.sim import _ws_frames as frames
from kmm.sim._model import OrderRequest as SimRequest
from kmm.sim.engine import BookChange, EngineEvent, MatchingEngine, TradePrint
from kmm.sim.flow import BackgroundFlow
from kmm.sim.universe import Universe, build_universe, install
from kmm.types import BookSide

T0 = 1_800_000_000_000_000_000
S = 1_000_000_000
USER = "queue-tester"
_DELTA = b'{"type":"orderbook_delta","sid":1,"msg":'
_TRADE = b'{"type":"trade","sid":2,"msg":'
_SNAP = b'{"type":"orderbook_snapshot","sid":1,"msg":'


def _frames_of(events: list[EngineEvent], ticker: str) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    for ev in events:
        if isinstance(ev, BookChange) and ev.ticker == ticker:
            out.append((ev.ts_ns, _DELTA + frames.book_delta(ev, True, None) + b"}"))
        elif isinstance(ev, TradePrint) and ev.ticker == ticker:
            out.append((ev.ts_ns, _TRADE + frames.trade(ev) + b"}"))
    return out


@dataclass
class Run:
    """One simulated run: the public frames, when and where we joined, the truth over time."""

    meta: MarketMeta
    frames: list[tuple[int, bytes]]
    placed_ns: int
    price: int
    truth: list[tuple[int, int | None]]  # (time, contracts ahead; None once filled)
    filled_ns: int | None


def _meta(universe: Universe, index: int) -> MarketMeta:
    market = universe.markets[index]
    event = next(e for e in universe.events if e.event_ticker == market.event_ticker)
    series = next(s for s in universe.series if s.ticker == event.series_ticker)
    return MarketMeta(
        market.ticker, market.price_ranges, market.close_ns, series.fee_type, series.fee_multiplier
    )


def simulate(seed: int, minutes: int, scenario: str = "calm") -> Run:
    engine = MatchingEngine(trade_id_prefix="q-")
    universe = build_universe(2, seed, scenario, T0)
    install(engine, universe)
    flow = BackgroundFlow(engine, universe, scenario, seed, T0)
    engine.open_account(USER, 10**12)
    engine.drain_events()
    meta = _meta(universe, 0)
    ticker = meta.ticker
    yes, no = engine.book_levels(ticker)
    captured = [(T0, _SNAP + frames.book_snapshot(ticker, yes, no, True) + b"}")]
    now = T0
    for _ in range(30):  # warm up
        now += S
        flow.advance(now)
        captured += _frames_of(engine.drain_events(), ticker)
    yes, _ = engine.book_levels(ticker)
    price = max(yes)
    placed = now
    order = engine.create_order(
        USER, SimRequest(ticker, BookSide.BID, price, 100, post_only=True), now
    ).order
    captured += _frames_of(engine.drain_events(), ticker)
    truth: list[tuple[int, int | None]] = [(now, engine.queue_position(USER, order.order_id))]
    filled_ns = None
    for _ in range(minutes * 60):
        now += S
        flow.advance(now)
        captured += _frames_of(engine.drain_events(), ticker)
        if order.filled and filled_ns is None:
            filled_ns = now
        if order.remaining and str(order.status) == "resting":
            truth.append((now, engine.queue_position(USER, order.order_id)))
        else:
            truth.append((now, None))
    captured.sort(key=lambda item: item[0])
    return Run(meta, captured, placed, price, truth, filled_ns)


@dataclass
class Score:
    mean_abs_error: float
    samples: int
    filled_ns: int | None
    never_below_truth: bool


def score(run: Run, queue: QueueModel) -> Score:
    ex = ReplayExchange(run.frames, {run.meta.ticker: run.meta}, queue, balance=10**12)
    ex.advance(run.placed_ns - 1)
    ack = ex.create_order(
        OrderRequest(run.meta.ticker, BookSide.BID, run.price, 100, "virtual"), run.placed_ns
    )
    errors: list[int] = []
    never_below = True
    filled_ns = None
    for at, truth in run.truth:
        ex.advance(at)
        if filled_ns is None and ex.fills():
            filled_ns = at
        if truth is None:
            continue
        model = ex.queue_position(ack.order_id) if ex.order(ack.order_id).remaining else 0
        errors.append(abs(model - truth))
        never_below = never_below and (model >= truth or filled_ns is not None)
    mean = sum(errors) / len(errors) if errors else 0.0
    return Score(mean / 100, len(errors), filled_ns, never_below)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_conservative_queue_is_never_ahead_of_the_exchange(seed: int) -> None:
    run = simulate(seed, minutes=3)
    cons = score(run, ConservativeQueue())
    prob = score(run, ProbabilisticQueue())
    print(
        f"seed {seed}: truth fill at {_secs(run.filled_ns, run.placed_ns)}; "
        f"conservative MAE {cons.mean_abs_error:.2f} contracts over {cons.samples} s, "
        f"fill at {_secs(cons.filled_ns, run.placed_ns)}; probabilistic MAE "
        f"{prob.mean_abs_error:.2f}, fill at {_secs(prob.filled_ns, run.placed_ns)}"
    )
    assert cons.samples > 0
    assert cons.never_below_truth
    # The probabilistic model is never behind the conservative one.
    if cons.filled_ns is not None:
        assert prob.filled_ns is not None and prob.filled_ns <= cons.filled_ns


def _secs(at: int | None, since: int) -> str:
    return "never" if at is None else f"+{(at - since) / S:.0f} s"
