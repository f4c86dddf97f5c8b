"""The sans-I/O trading core: decisions with no sockets, no awaits and no clock.

Everything here is driven by its callers, which pass the time in and perform the actions
that come back: the live shell (:mod:`kmm.engine`, :mod:`kmm.execution.executor`) over the
network, and the backtest over a simulated venue.
"""

from __future__ import annotations

from kmm.core.planner import (
    Approve,
    ExecAction,
    ExecEvent,
    ExecSettings,
    Gate,
    OrderPlanner,
    PlannerCounters,
    ReadBack,
    StartAmend,
    StartCancels,
    StartCreate,
    WriteRequest,
)

__all__ = [
    "Approve",
    "ExecAction",
    "ExecEvent",
    "ExecSettings",
    "Gate",
    "OrderPlanner",
    "PlannerCounters",
    "ReadBack",
    "StartAmend",
    "StartCancels",
    "StartCreate",
    "WriteRequest",
]
