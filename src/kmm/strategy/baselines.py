"""The baselines kmm's quoter is scored against (``kmm bench strategy``).

Theory of operation
-------------------
Each baseline is a quoter with the same signature as :func:`~kmm.strategy.quoter.compute_quote`
and the same sizes and caps (``base_qty`` a side, clipped so that a full fill keeps the position
within ``max_position``, at most ``max_order_qty``, in whole lots), so the scoreboard compares
prices alone:

* **B1, fixed spread** (``fixed``): the bid ``k`` ticks under the fair price and the ask ``k``
  ticks over it (``baseline_ticks``), requoted when the fair price moves. No inventory skew.
* **B2, join the touch** (``join``): the bid at the best bid and the ask at the best ask,
  both moved down one tick per ``skew_contracts`` of long inventory (up, when short): a linear
  skew that buys less eagerly and sells more eagerly the longer it is.
* **B3, hummingbot-style Avellaneda–Stoikov** (``hbot_as``): the textbook formulas on a fixed
  session horizon (``horizon_s``, never the market's close), with the estimated σ and κ but
  no binary bound on σ, no fee floor and no extreme-price bands: what a generic
  Avellaneda–Stoikov market maker quotes on a prediction market.

Prices are snapped onto the market's grid (bids down, asks up) and kept post-only (a bid
below the best ask, an ask above the best bid). Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from typing import Final

from kmm.book.grid import PriceGrid
from kmm.strategy.avellaneda_stoikov import optimal_spread, reservation_price
from kmm.strategy.quoter import QuoteInputs, Quoter, StrategyParams, clip_size, compute_quote
from kmm.types import ONE_DOLLAR, QTY_SCALE, Price, Quote

__all__ = ["QUOTERS", "fixed_spread", "hbot_avellaneda_stoikov", "join_touch"]

_SNAP_EPSILON: Final = 1e-6


def fixed_spread(
    ticker: str, inputs: QuoteInputs, params: StrategyParams, grid: PriceGrid
) -> Quote:
    """B1: ``baseline_ticks`` grid steps either side of the fair price."""
    fair = inputs.fair
    if fair is None:
        return Quote(ticker, None, 0, None, 0)
    ticks = params.baseline_ticks
    below = grid.floor(math.floor(fair + _SNAP_EPSILON))
    above = grid.ceil(math.ceil(fair - _SNAP_EPSILON))
    bid = None if below is None else grid.offset(below, -ticks)
    ask = None if above is None else grid.offset(above, ticks)
    return _quote(ticker, bid, ask, inputs, params, grid)


def join_touch(ticker: str, inputs: QuoteInputs, params: StrategyParams, grid: PriceGrid) -> Quote:
    """B2: the best bid and ask, skewed one tick per ``skew_contracts`` of inventory."""
    if inputs.best_bid is None or inputs.best_ask is None:
        return Quote(ticker, None, 0, None, 0)
    skew = int(inputs.inventory / (params.skew_contracts * QTY_SCALE))
    bid = grid.offset(inputs.best_bid, -skew)
    ask = grid.offset(inputs.best_ask, -skew)
    return _quote(ticker, bid, ask, inputs, params, grid)


def hbot_avellaneda_stoikov(
    ticker: str, inputs: QuoteInputs, params: StrategyParams, grid: PriceGrid
) -> Quote:
    """B3: Avellaneda–Stoikov on a fixed session horizon, σ unbounded, no fee floor."""
    fair = inputs.fair
    if fair is None:
        return Quote(ticker, None, 0, None, 0)
    mid = fair / ONE_DOLLAR
    kappa = inputs.kappa if inputs.kappa > 0.0 else params.kappa_default
    sigma = max(inputs.sigma, params.sigma_min)
    tau = params.horizon_s
    center = reservation_price(mid, inputs.inventory / QTY_SCALE, params.gamma, sigma, tau)
    half = 0.5 * optimal_spread(params.gamma, sigma, tau, kappa)
    low, high = (center - half) * ONE_DOLLAR, (center + half) * ONE_DOLLAR
    if not (math.isfinite(low) and math.isfinite(high)):
        return Quote(ticker, None, 0, None, 0)
    bid = grid.floor(math.floor(low + _SNAP_EPSILON)) if low >= grid.min_price else None
    ask = grid.ceil(math.ceil(high - _SNAP_EPSILON)) if high <= grid.max_price else None
    return _quote(ticker, bid, ask, inputs, params, grid)


def _quote(
    ticker: str,
    bid: Price | None,
    ask: Price | None,
    inputs: QuoteInputs,
    params: StrategyParams,
    grid: PriceGrid,
) -> Quote:
    """Post-only prices and the common sizes and caps."""
    if bid is not None and inputs.best_ask is not None and bid >= inputs.best_ask:
        bid = grid.offset(inputs.best_ask, -1)
    if ask is not None and inputs.best_bid is not None and ask <= inputs.best_bid:
        ask = grid.offset(inputs.best_bid, 1)
    if bid is not None and ask is not None and bid >= ask:
        ask = grid.offset(bid, 1)
    q = inputs.inventory
    bid_qty = clip_size(params.base_qty, params.max_position - q, params) if bid is not None else 0
    ask_qty = clip_size(params.base_qty, params.max_position + q, params) if ask is not None else 0
    return Quote(
        ticker,
        bid if bid_qty else None,
        bid_qty,
        ask if ask_qty else None,
        ask_qty,
    )


QUOTERS: Final[dict[str, Quoter]] = {
    "kmm": compute_quote,
    "fixed": fixed_spread,
    "join": join_touch,
    "hbot_as": hbot_avellaneda_stoikov,
}
"""Every quoter by its ``strategy.model`` name."""
