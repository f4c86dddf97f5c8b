"""Backtests: the live trading core driven by simulated time against a simulated venue.

* :mod:`~kmm.backtest.driver`: the discrete-event driver (:class:`Backtest`).
* :mod:`~kmm.backtest.sim_venue`: the local exchange in process, as the venue.
"""

from __future__ import annotations

from kmm.backtest.driver import Backtest, BacktestOptions, BacktestResult, Latency
from kmm.backtest.sim_venue import GeneratedVenue

__all__ = ["Backtest", "BacktestOptions", "BacktestResult", "GeneratedVenue", "Latency"]
