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

__all__ = [
    "ConservativeQueue",
    "ConstantLatency",
    "EmpiricalLatency",
    "Latencies",
    "LatencyConfig",
    "LatencyModel",
    "LatencySpec",
    "LognormalLatency",
    "ProbabilisticQueue",
    "QueueModel",
    "QueuePos",
    "RunLatencies",
    "fill_through",
    "latencies_from_run",
]
