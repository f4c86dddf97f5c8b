"""Backtests: the live trading core driven by simulated time against a simulated venue.

* :mod:`~kmm.backtest.driver`: the discrete-event driver (:class:`Backtest`).
* :mod:`~kmm.backtest.sim_venue`: the local exchange in process, as the venue.
* :mod:`~kmm.backtest.replay`: a recorded capture as the venue, with queue models
  (:mod:`~kmm.backtest.queue`) for our virtual orders.
* :mod:`~kmm.backtest.latency`: feed and order latency models.

The venue-side pieces are pure and independent of the bot's decision code.
"""

from __future__ import annotations

from kmm.backtest.driver import (
    Backtest,
    BacktestOptions,
    BacktestResult,
    BacktestVenue,
    default_latencies,
)
from kmm.backtest.latency import (
    ConstantLatency,
    EmpiricalLatency,
    Latencies,
    LatencyConfig,
    LatencyModel,
    LatencySpec,
    LognormalLatency,
    RunLatencies,
    latencies_from_run,
)
from kmm.backtest.queue import (
    ConservativeQueue,
    ProbabilisticQueue,
    QueueModel,
    QueuePos,
    fill_through,
)
from kmm.backtest.replay import PRIVATE_SIDS, ReplayExchange
from kmm.backtest.sim_venue import GeneratedVenue
from kmm.record._markets import MarketMeta, load_markets_json

__all__ = [
    "PRIVATE_SIDS",
    "Backtest",
    "BacktestOptions",
    "BacktestResult",
    "BacktestVenue",
    "ConservativeQueue",
    "ConstantLatency",
    "EmpiricalLatency",
    "GeneratedVenue",
    "Latencies",
    "LatencyConfig",
    "LatencyModel",
    "LatencySpec",
    "LognormalLatency",
    "MarketMeta",
    "ProbabilisticQueue",
    "QueueModel",
    "QueuePos",
    "ReplayExchange",
    "RunLatencies",
    "default_latencies",
    "fill_through",
    "latencies_from_run",
    "load_markets_json",
]
