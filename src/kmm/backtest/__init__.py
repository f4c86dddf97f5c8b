"""The backtest's venue-side pieces: queue-position models, latency models, capture replay.

These are pure and independent of the bot's decision code; the backtest driver plugs them
into the trading core.
"""

from __future__ import annotations

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
from kmm.record._markets import MarketMeta, load_markets_json

__all__ = [
    "PRIVATE_SIDS",
    "ConservativeQueue",
    "ConstantLatency",
    "EmpiricalLatency",
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
    "fill_through",
    "latencies_from_run",
    "load_markets_json",
]
