"""Execution: pure order tracking, diff, rate limiting and inventory; the async executor.

The pure parts (no I/O, time passed in):

* :mod:`~kmm.execution.token_bucket`: Kalshi's Read/Write token buckets, the write admission
  queue (cancels first, stale places dropped) and 429 backoff.
* :mod:`~kmm.execution.diff`: desired quote vs live orders → keep / cancel / place / amend.
* :mod:`~kmm.execution.orders`: the order lifecycle table, the tracker, client order ids.
* :mod:`~kmm.execution.inventory`: netted YES/NO positions and exact P&L.
"""

from __future__ import annotations

from kmm.execution.diff import Amend, DiffParams, DiffResult, LiveOrder, diff
from kmm.execution.inventory import Portfolio, Position, SeenIds, settlement_mark
from kmm.execution.orders import (
    LIVE_STATES,
    TERMINAL_STATES,
    TRANSITIONS,
    ClientOrderIds,
    FillOutcome,
    OrderEvent,
    OrderState,
    OrderTracker,
    TrackedOrder,
    UnknownOrder,
    next_state,
)
from kmm.execution.token_bucket import (
    Admitted,
    Backoff,
    Costed,
    RateBuckets,
    TokenBucket,
    WriteScheduler,
    amend_cost,
    cancel_cost,
    create_cost,
)

__all__ = [
    "LIVE_STATES",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "Admitted",
    "Amend",
    "Backoff",
    "ClientOrderIds",
    "Costed",
    "DiffParams",
    "DiffResult",
    "FillOutcome",
    "LiveOrder",
    "OrderEvent",
    "OrderState",
    "OrderTracker",
    "Portfolio",
    "Position",
    "RateBuckets",
    "SeenIds",
    "TokenBucket",
    "TrackedOrder",
    "UnknownOrder",
    "WriteScheduler",
    "amend_cost",
    "cancel_cost",
    "create_cost",
    "diff",
    "next_state",
    "settlement_mark",
]
