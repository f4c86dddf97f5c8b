"""Throughput of the local exchange's matching engine, in process.

The flow is generated here with ``random.Random(seed)`` (not with ``kmm.sim.flow``), and the
requests are built, before the clock starts: 8 markets whose fair price takes small random
steps, 16 traders, and a market-making mix: 85 % of creates are limit orders resting 1-8¢
behind the fair price, 15 % are marketable (0-3¢ through it, half immediate-or-cancel,
half good-till-cancelled) and take one or a few levels; after each create, with
probability 0.8, a random resting order is cancelled (a quote being replaced). The engine's
events are drained every 64 operations, as the server does after each write, so building
them is included.
"""

from __future__ import annotations

import gc
import random
import time
from fractions import Fraction

from kmm.sim.engine import (
    EventDef,
    MarketDef,
    MatchingEngine,
    OrderRequest,
    OrderStatus,
    SeriesDef,
    SimOrder,
    TimeInForce,
)
from kmm.types import ONE_CENT, ONE_DOLLAR, BookSide

__all__ = ["run"]

_MARKETS = 8
_USERS = 16
_RESTING_SHARE = 0.85
_CANCEL_PER_CREATE = 0.8
_DRAIN_EVERY = 64
_FAR_FUTURE_NS = 2**62

# One operation: a create (user, request), or a cancel (a uniform draw that picks which
# resting order goes).
_Op = tuple[str, OrderRequest] | float


def _engine() -> tuple[MatchingEngine, list[str], list[str]]:
    engine = MatchingEngine()
    engine.add_series(SeriesDef("KXBENCH", "Bench", "quadratic_with_maker_fees", Fraction(1)))
    engine.add_event(EventDef("KXBENCH-1", "KXBENCH", "Bench event"))
    tickers = [f"KXBENCH-1-M{i}" for i in range(_MARKETS)]
    for ticker in tickers:
        engine.add_market(
            MarketDef(
                ticker,
                "KXBENCH-1",
                ticker,
                ticker,
                ((0, ONE_DOLLAR, ONE_CENT),),
                "linear_cent",
                0,
                _FAR_FUTURE_NS,
            )
        )
    users = [f"user-{i}" for i in range(_USERS)]
    for user in users:
        engine.open_account(user, 10**15)
    return engine, tickers, users


def _flow(n_orders: int, seed: int, tickers: list[str], users: list[str]) -> list[_Op]:
    rng = random.Random(seed)
    fair = [rng.randint(20, 80) for _ in tickers]
    ops: list[_Op] = []
    for _ in range(n_orders):
        m = rng.randrange(len(tickers))
        fair[m] = min(95, max(5, fair[m] + rng.choice((-1, 0, 0, 0, 1))))
        side = BookSide.BID if rng.random() < 0.5 else BookSide.ASK
        sign = 1 if side is BookSide.BID else -1
        if rng.random() < _RESTING_SHARE:
            cents = fair[m] - sign * rng.randint(1, 8)
            tif = TimeInForce.GTC
        else:
            cents = fair[m] + sign * rng.randint(0, 3)
            tif = TimeInForce.IOC if rng.random() < 0.5 else TimeInForce.GTC
        cents = min(99, max(1, cents))
        count = rng.randint(1, 20) * 100
        request = OrderRequest(tickers[m], side, cents * ONE_CENT, count, time_in_force=tif)
        ops.append((rng.choice(users), request))
        if rng.random() < _CANCEL_PER_CREATE:
            ops.append(rng.random())
    return ops


def _replay(engine: MatchingEngine, ops: list[_Op]) -> tuple[int, int]:
    """Runs the operations; returns (fills, cancels).

    A cancel draw picks among the orders that rested; one that has filled since is
    skipped (the server would answer 404 without touching the book).
    """
    resting: list[SimOrder] = []
    fills = cancels = 0
    for step, op in enumerate(ops, 1):
        if isinstance(op, tuple):
            user, request = op
            result = engine.create_order(user, request, step)
            fills += len(result.fills)
            if result.order.status is OrderStatus.RESTING:
                resting.append(result.order)
        elif resting:
            index = int(op * len(resting))
            resting[index], resting[-1] = resting[-1], resting[index]
            order = resting.pop()
            if order.status is OrderStatus.RESTING:
                engine.cancel_order(order.user_id, order.order_id, step)
                cancels += 1
        if step % _DRAIN_EVERY == 0:
            engine.drain_events()
    return fills, cancels


def run(n_orders: int = 200_000, seed: int = 1) -> dict[str, float]:
    """Measures the engine on a generated flow of ``n_orders`` creates (plus cancels).

    Returns:
        ``orders`` (creates), ``seconds`` (wall time of the whole flow, cancels and event
        draining included), ``orders_per_s``, ``fills`` (taker fills) and ``cancels``.
    """
    engine, tickers, users = _engine()
    ops = _flow(n_orders, seed, tickers, users)
    gc.collect()
    start = time.perf_counter()
    fills, cancels = _replay(engine, ops)
    engine.drain_events()
    seconds = time.perf_counter() - start
    return {
        "orders": float(n_orders),
        "seconds": seconds,
        "orders_per_s": n_orders / seconds,
        "fills": float(fills),
        "cancels": float(cancels),
    }
