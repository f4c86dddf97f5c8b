"""The quoting maths: pure functions and small estimators, no I/O and no clock.

* :mod:`~kmm.strategy.avellaneda_stoikov`: reservation price, spread, binary σ bound.
* :mod:`~kmm.strategy.volatility`: EWMA σ of the mid and the κ estimator from trades.
* :mod:`~kmm.strategy.alpha`: the alpha slot (an external skew).
* :mod:`~kmm.strategy.quoter`: parameters, inputs and :func:`compute_quote`.
"""

from __future__ import annotations

from kmm.strategy.alpha import AlphaFn, zero_alpha
from kmm.strategy.avellaneda_stoikov import bounded_sigma, optimal_spread, reservation_price
from kmm.strategy.quoter import QuoteInputs, StrategyParams, compute_quote
from kmm.strategy.volatility import EwmaVolatility, KappaEstimator

__all__ = [
    "AlphaFn",
    "EwmaVolatility",
    "KappaEstimator",
    "QuoteInputs",
    "StrategyParams",
    "bounded_sigma",
    "compute_quote",
    "optimal_spread",
    "reservation_price",
    "zero_alpha",
]
