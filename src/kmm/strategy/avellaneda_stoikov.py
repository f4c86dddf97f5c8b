"""Avellaneda–Stoikov quoting formulas, adapted to a binary contract.

Theory of operation
-------------------
Avellaneda and Stoikov (2008, "High-frequency trading in a limit order book") give a market
maker with inventory ``q`` and risk aversion ``γ`` quoting around a mid ``S`` that diffuses
with volatility ``σ``, against order arrivals whose intensity falls as ``A·e^(−κδ)`` with the
distance ``δ`` from the mid:

* a reservation price ``r = S − q·γ·σ²·τ``, the mid shifted against the inventory, and
* a total spread ``δ = γ·σ²·τ + (2/γ)·ln(1 + γ/κ)`` quoted around ``r``.

``τ`` is the time left. For a Kalshi contract it is the time to the market's close, capped by
a configured horizon so that markets that close in months are quoted as if the horizon were a
rolling window (the common "infinite horizon" reading). Near the close, ``τ → 0`` and the
spread narrows to the arrival term ``(2/γ)·ln(1 + γ/κ)``.

A binary contract's price is a probability, so its volatility cannot be constant: it must
vanish as the price approaches $0 or $1. :func:`bounded_sigma` caps the estimated ``σ`` by
``σ_max · 4·p·(1 − p)``, the shape of a logit diffusion (``dp = p(1 − p)·σ_L·dW``)
normalised so that the cap equals ``σ_max`` at ``p = ½``.

Units: prices in dollars of YES (``S`` in [0, 1]), ``q`` in contracts, ``σ`` in dollars per
√second, ``τ`` in seconds, ``κ`` in 1/dollar, ``γ`` in 1/(contract·dollar). With ``γ = 0.5``,
``κ = 50``, ``τ = 3600`` and ``σ = 0.001``, the spread is about 4.2¢ (0.18¢ from risk,
3.98¢ from arrivals) and 10 contracts of inventory move ``r`` by 1.8¢.
"""

from __future__ import annotations

import math

__all__ = ["bounded_sigma", "optimal_spread", "reservation_price"]


def reservation_price(
    mid: float, inventory: float, gamma: float, sigma: float, tau_s: float
) -> float:
    """Returns the Avellaneda–Stoikov reservation price ``r = S − q·γ·σ²·τ``.

    Args:
        mid: The fair price ``S`` in dollars of YES.
        inventory: The position ``q`` in contracts, positive when long YES.
        gamma: Risk aversion, in 1/(contract·dollar).
        sigma: Volatility of the price in dollars per √second.
        tau_s: Time left, in seconds.

    Returns:
        The reservation price in dollars (not clamped to [0, 1]).
    """
    return mid - inventory * gamma * sigma * sigma * tau_s


def optimal_spread(gamma: float, sigma: float, tau_s: float, kappa: float) -> float:
    """Returns the total Avellaneda–Stoikov spread ``γ·σ²·τ + (2/γ)·ln(1 + γ/κ)``.

    The bid and the ask sit half of this on either side of the reservation price.

    Args:
        gamma: Risk aversion, in 1/(contract·dollar); must be positive.
        sigma: Volatility in dollars per √second.
        tau_s: Time left, in seconds.
        kappa: Decay of order arrivals with distance, in 1/dollar; must be positive.

    Returns:
        The spread in dollars.
    """
    return gamma * sigma * sigma * tau_s + (2.0 / gamma) * math.log1p(gamma / kappa)


def bounded_sigma(sigma: float, p: float, sigma_min: float, sigma_max: float) -> float:
    """Returns the volatility to use at price ``p``: ``min(max(σ, σ_min), σ_max·4p(1 − p))``.

    The estimate is first floored at ``sigma_min``, then capped by the binary shape
    ``σ_max · 4p(1 − p)``. The result never exceeds ``sigma_max`` (the shape peaks at 1 when
    ``p = ½``) and goes to 0 as ``p`` goes to 0 or 1, even below ``sigma_min``.

    Args:
        sigma: The estimated volatility in dollars per √second.
        p: The price in dollars of YES; values outside [0, 1] are treated as 0 or 1.
        sigma_min: The floor applied to the estimate, in dollars per √second.
        sigma_max: The volatility at ``p = ½`` the cap allows, in dollars per √second.

    Returns:
        The bounded volatility in dollars per √second.
    """
    shape = 4.0 * p * (1.0 - p)
    if shape <= 0.0:
        return 0.0
    cap = sigma_max * shape
    floored = sigma if sigma > sigma_min else sigma_min
    return floored if floored < cap else cap
