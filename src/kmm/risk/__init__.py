"""Risk: pure pre-trade limits, quote gating, drift checks and the kill switch.

* :mod:`~kmm.risk.limits`: worst-case exposure per market and overall, and
  :func:`~kmm.risk.limits.check_order` (approve / clip / reject with a reason).
* :mod:`~kmm.risk.guards`: :func:`~kmm.risk.guards.gate_quote` (stale books, closing markets,
  pauses, reduce-only, limits on a desired quote) and the reconciliation drift checks.
* :mod:`~kmm.risk.killswitch`: the process-wide halt on loss, drawdown, unknown outcomes, a
  silent feed or by hand.

Everything here is pure: time is passed in as ``now_ns``; the kill file and signals are
watched by the async shell, which calls :meth:`~kmm.risk.killswitch.KillSwitch.trip`.
"""

from __future__ import annotations

from kmm.risk.guards import (
    Cause,
    Drift,
    MarketStatus,
    compare_orders,
    compare_positions,
    gate_quote,
    market_mode,
)
from kmm.risk.killswitch import EventKind, HaltState, KillEvent, KillSwitch, Trigger
from kmm.risk.limits import (
    Decision,
    ExposureBook,
    Limit,
    MarketExposure,
    ModeChange,
    OrderSource,
    PositionSource,
    QuoteMode,
    RiskContext,
    RiskLimits,
    Verdict,
    check_order,
)

__all__ = [
    "Cause",
    "Decision",
    "Drift",
    "EventKind",
    "ExposureBook",
    "HaltState",
    "KillEvent",
    "KillSwitch",
    "Limit",
    "MarketExposure",
    "MarketStatus",
    "ModeChange",
    "OrderSource",
    "PositionSource",
    "QuoteMode",
    "RiskContext",
    "RiskLimits",
    "Trigger",
    "Verdict",
    "check_order",
    "compare_orders",
    "compare_positions",
    "gate_quote",
    "market_mode",
]
