"""From a book and an inventory to the two quotes kmm wants resting in one market.

Theory of operation
-------------------
:func:`compute_quote` is one pure pass, in dollars of YES until the last step:

1. **Model prices.** ``τ`` is the time to close capped at ``horizon_s``; ``σ`` is bounded by
   the binary shape (:func:`~kmm.strategy.avellaneda_stoikov.bounded_sigma`); the
   reservation price ``r`` is the Avellaneda–Stoikov one plus the alpha skew (with
   ``gamma_inventory``, γ grows with the position's share of ``max_position``, so a large
   position is skewed away harder); the half-spread
   is half the Avellaneda–Stoikov spread, raised to the maker fee at the fair price
   (``maker_fee_rate·p·(1 − p)``) when that is larger, plus ``edge``; so a fill on a series
   that charges makers earns at least ``edge`` per contract over the fee. The bid is
   ``r − half``, the ask ``r + half``. The total spread ``2·half`` is then held between
   ``min_spread`` and ``max_spread``; the maximum never cuts it inside the maker fee.
2. **Sides and sizes.** Each side starts at ``base_qty``; the side that adds to the position
   shrinks as ``base·exp(−η·|q|)``. Sizes are then clipped so that a full fill keeps the
   position within ``±max_position``, capped at ``max_order_qty`` and rounded down to
   ``lot_qty``. In the extreme bands (fair below ``extreme_low`` or above ``extreme_high``)
   only one side is quoted: the bid when YES is cheap, the ask when it is dear, or, with an
   inventory, only the side that reduces it. In the soft bands inside them (fair below
   ``soft_low`` or above ``soft_high``) both sides are quoted, but the side that risks the most
   (the ask when YES is cheap, the bid when it is dear) keeps only ``soft_size_factor`` of its
   size, unless it reduces the position.
3. **Grid.** The bid is rounded down and the ask up onto the market's price grid, once. The
   rounding never makes a quote more aggressive than the model: a bid whose model price is
   below the grid's lowest price (or an ask above its highest) is not quoted, rather than
   clamped. Orders are post-only, so the bid is pulled below the best ask and the ask above
   the best bid; if rounding ever leaves bid ≥ ask, the ask moves up a tick.
4. **Placement.** A quote never improves on others' best price (the book without our orders)
   by more than ``improve_ticks`` grid ticks: a model bid above the touch is lowered to the
   touch plus that many ticks, an ask likewise (while it stays post-only). The model's price
   still wins when it is behind the touch; in a wide book the edge the model would give away
   is kept.

A market whose book without our orders is narrower than ``min_market_spread`` is not quoted:
there is no spread there to earn. A side that cannot be quoted comes back with price ``None``
and qty 0. No fair price, or a book empty on both sides, gives an empty quote; so does a
non-finite model price.

Defaults (``γ = 0.5``, ``κ = 50``, ``horizon = 3600 s``, ``σ = 0.001 $/√s``) give a spread
of about 4.2¢ at mid and a reservation-price skew of 1.8¢ at 10 contracts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from kmm.book.grid import PriceGrid
from kmm.errors import ConfigError
from kmm.strategy.avellaneda_stoikov import bounded_sigma, optimal_spread, reservation_price
from kmm.types import ONE_DOLLAR, QTY_SCALE, Price, Qty, Quote

__all__ = [
    "QuoteInputs",
    "QuoteTerms",
    "Quoter",
    "StrategyParams",
    "clip_size",
    "compute_quote",
    "quote_bands",
    "quote_terms",
]

# Model prices are floats in $0.0001 units; a value within this of a grid price is taken to
# be on it, so that float noise (0.52 × 10 000 = 5200.000000000001) cannot cost a tick
_SNAP_EPSILON = 1e-6


@dataclass(frozen=True, slots=True)
class StrategyParams:
    """The quoting parameters of one market (usually one set for all).

    Attributes:
        gamma: Risk aversion γ, in 1/(contract·dollar).
        kappa_default: Arrival decay κ used when the input's κ is unusable, in 1/dollar.
        horizon_s: Cap on τ (time to close), in seconds.
        sigma_min: Floor on the estimated σ, in dollars/√s (the binary shape still wins
            near $0 and $1).
        sigma_max: Cap on σ at a price of 50¢, in dollars/√s; scaled by ``4p(1 − p)``.
        base_qty: Size of each quote with no inventory, in 0.01 contracts.
        lot_qty: Sizes are rounded down to a multiple of this, in 0.01 contracts.
        eta: Size decay η per contract of inventory, on the side that adds to it.
        max_position: Largest absolute position a full fill may leave, in 0.01 contracts.
        max_order_qty: Largest size of one quote, in 0.01 contracts.
        extreme_low: Below this fair price only the bid is quoted ($0.0001 units; 0 disables).
        extreme_high: Above this fair price only the ask is quoted ($0.0001 units;
            ``ONE_DOLLAR`` disables).
        soft_low: Below this fair price (and above ``extreme_low``) the ask, the side that
            risks the most, is sized by ``soft_size_factor`` unless it reduces a long.
        soft_high: Above this fair price (and below ``extreme_high``) the bid is sized by
            ``soft_size_factor`` unless it reduces a short.
        soft_size_factor: The share of its size the risky side keeps in a soft band (1: off).
        gamma_inventory: Risk aversion grows with the position: ``γ·(1 + this·|q|/max)``,
            ``max`` being ``max_position`` (0: a constant γ).
        edge: Extra half-spread in $0.0001 units, added on top of the model's half-spread
            (or of the maker fee, when that is larger).
        min_spread: Smallest total spread quoted, in $0.0001 units (0: the model's).
        max_spread: Largest total spread quoted, in $0.0001 units (``ONE_DOLLAR``: the
            model's); never inside the maker fee.
        min_market_spread: Others' touch narrower than this ($0.0001 units) is not quoted
            (0 disables it).
        improve_ticks: How far a quote may improve on others' best price, in grid ticks:
            a model bid above the touch is lowered to the touch plus this many ticks (and an
            ask likewise), so a wide book is not given away. 0 only joins; a large value
            leaves the model's price alone.
        baseline_ticks: The fixed-spread baseline's distance from the fair price, in ticks.
        skew_contracts: The join-the-touch baseline's skew: a tick per this many contracts.
        kappa_factor: κ (estimated or default) is multiplied by this (a volatility session's
            regime multiplier; 1 otherwise).
        sigma_blend: The weight ``w`` of ``sigma_event`` in the σ used,
            ``(1 − w)·σ_estimated + w·σ_event``, before the bounds (0: the estimate alone).
        sigma_event: The σ of the volatility event a session was spawned by, in dollars/√s.

    Raises:
        ConfigError: listing every parameter out of range.
    """

    gamma: float = 0.5
    kappa_default: float = 50.0
    horizon_s: float = 3600.0
    sigma_min: float = 0.0001
    sigma_max: float = 0.01
    base_qty: Qty = 500
    lot_qty: Qty = 100
    eta: float = 0.05
    max_position: Qty = 5000
    max_order_qty: Qty = 1000
    extreme_low: Price = 500
    extreme_high: Price = 9500
    soft_low: Price = 2000
    soft_high: Price = 8000
    soft_size_factor: float = 0.25
    gamma_inventory: float = 0.0
    edge: Price = 0
    min_spread: Price = 0
    max_spread: Price = ONE_DOLLAR
    min_market_spread: Price = 0
    improve_ticks: int = 1
    baseline_ticks: int = 2
    skew_contracts: float = 5.0
    kappa_factor: float = 1.0
    sigma_blend: float = 0.0
    sigma_event: float = 0.0

    def __post_init__(self) -> None:
        problems = _positive_problems(self) + _range_problems(self)
        if problems:
            raise ConfigError(problems)


def _positive_problems(params: StrategyParams) -> list[str]:
    positive = {
        "gamma": params.gamma,
        "kappa_default": params.kappa_default,
        "horizon_s": params.horizon_s,
        "lot_qty": params.lot_qty,
        "baseline_ticks": params.baseline_ticks,
        "skew_contracts": params.skew_contracts,
        "kappa_factor": params.kappa_factor,
    }
    non_negative = {
        "sigma_event": params.sigma_event,
        "sigma_min": params.sigma_min,
        "base_qty": params.base_qty,
        "eta": params.eta,
        "max_position": params.max_position,
        "max_order_qty": params.max_order_qty,
        "edge": params.edge,
        "improve_ticks": params.improve_ticks,
        "gamma_inventory": params.gamma_inventory,
    }
    return [
        f"{k}: must be positive and finite, got {v}"
        for k, v in positive.items()
        if not 0 < v < math.inf
    ] + [
        f"{k}: must be non-negative and finite, got {v}"
        for k, v in non_negative.items()
        if not 0 <= v < math.inf
    ]


def _range_problems(params: StrategyParams) -> list[str]:
    problems = []
    if not params.sigma_min <= params.sigma_max < math.inf:
        problems.append(f"sigma_max: must be finite and at least sigma_min, got {params.sigma_max}")
    if not 0 <= params.min_spread <= params.max_spread <= ONE_DOLLAR:
        problems.append(
            "min_spread, max_spread: need 0 <= min <= max <= "
            f"{ONE_DOLLAR}, got {params.min_spread}, {params.max_spread}"
        )
    if not 0 <= params.min_market_spread <= ONE_DOLLAR:
        problems.append(
            f"min_market_spread: must be within [0, {ONE_DOLLAR}], got {params.min_market_spread}"
        )
    hard_ok = 0 <= params.extreme_low <= params.extreme_high <= ONE_DOLLAR
    if hard_ok and not (
        params.extreme_low <= params.soft_low <= params.soft_high <= params.extreme_high
    ):
        problems.append(
            "soft_low, soft_high: need extreme_low <= soft_low <= soft_high <= extreme_high, got "
            f"{params.soft_low}, {params.soft_high}"
        )
    if not 0 <= params.sigma_blend <= 1:
        problems.append(f"sigma_blend: must be within [0, 1], got {params.sigma_blend}")
    if not 0 <= params.soft_size_factor <= 1:
        problems.append(f"soft_size_factor: must be within [0, 1], got {params.soft_size_factor}")
    if not hard_ok:
        problems.append(
            "extreme_low, extreme_high: need 0 <= low <= high <= "
            f"{ONE_DOLLAR}, got {params.extreme_low}, {params.extreme_high}"
        )
    return problems


class QuoteInputs(NamedTuple):
    """What the quoter needs to know about one market at one moment.

    A NamedTuple: one is built per decision on the hot path, where a frozen dataclass costs
    several times more to construct.

    Attributes:
        fair: The fair YES price in $0.0001 units (a float: usually the mid or the
            microprice), or ``None`` when there is none.
        best_bid: The best YES bid on the book, or ``None``.
        best_ask: The best YES ask on the book (``ONE_DOLLAR`` minus the best NO bid), or
            ``None``.
        inventory: Our signed position in 0.01 contracts: positive long YES, negative long NO.
        tau_s: Time to the market's close in seconds (capped by ``horizon_s`` here).
        sigma: Estimated volatility in dollars/√s (bounded here).
        kappa: Estimated arrival decay in 1/dollar; a non-positive value means "use
            ``kappa_default``".
        maker_fee_rate: Maker fee coefficient times the series multiplier (see
            :func:`kmm.fees.maker_fee_rate`); 0.0 when makers pay nothing.
        alpha_skew: External skew in $0.0001 units, added to the reservation price.
        touch_bid: The best bid of others (the book without our orders), which a bid may
            improve on by at most ``improve_ticks``; ``None``: no one else bids (no cap).
        touch_ask: The best ask of others, likewise; ``None``: no one else offers.
        widen: Extra half-spread in $0.0001 units (the toxicity guard's, while the flow is
            toxic).
    """

    fair: float | None
    best_bid: Price | None
    best_ask: Price | None
    inventory: Qty
    tau_s: float
    sigma: float
    kappa: float
    maker_fee_rate: float = 0.0
    alpha_skew: float = 0.0
    touch_bid: Price | None = None
    touch_ask: Price | None = None
    widen: float = 0.0


def compute_quote(
    ticker: str, inputs: QuoteInputs, params: StrategyParams, grid: PriceGrid
) -> Quote:
    """Computes the quote kmm wants resting in one market.

    Args:
        ticker: The market, copied into the quote.
        inputs: The book, inventory and estimates at this moment.
        params: The quoting parameters.
        grid: The market's valid prices.

    Returns:
        The quote; a side that cannot be quoted has price ``None`` and qty 0. Prices lie on
        ``grid``, bid < ask, bid < best ask and ask > best bid; sizes respect every cap.
    """
    fair = inputs.fair
    best_bid = inputs.best_bid
    best_ask = inputs.best_ask
    if fair is None or (best_bid is None and best_ask is None):
        return Quote(ticker, None, 0, None, 0)
    touch_bid, touch_ask = inputs.touch_bid, inputs.touch_ask
    if (
        params.min_market_spread
        and touch_bid is not None
        and touch_ask is not None
        and touch_ask - touch_bid < params.min_market_spread
    ):
        return Quote(ticker, None, 0, None, 0)
    low, high = _model_prices(fair, inputs, params)
    if not (math.isfinite(low) and math.isfinite(high)):
        return Quote(ticker, None, 0, None, 0)
    bid_qty, ask_qty = _sizes(fair, inputs.inventory, params)
    bid = _snap_bid(low, best_ask, grid) if bid_qty else None
    ask = _snap_ask(high, best_bid, grid) if ask_qty else None
    if bid is not None and touch_bid is not None and bid > touch_bid:
        cap = grid.offset(touch_bid, params.improve_ticks)
        if cap is not None and bid > cap:
            bid = cap if best_ask is None or cap < best_ask else bid
    if ask is not None and touch_ask is not None and ask < touch_ask:
        floor = grid.offset(touch_ask, -params.improve_ticks)
        if floor is not None and ask < floor:
            ask = floor if best_bid is None or floor > best_bid else ask
    if bid is not None and ask is not None and bid >= ask:
        ask = grid.ceil(bid + 1) if bid < grid.max_price else None
    return Quote(
        ticker,
        bid,
        bid_qty if bid is not None else 0,
        ask,
        ask_qty if ask is not None else 0,
    )


Quoter = Callable[[str, QuoteInputs, StrategyParams, PriceGrid], Quote]
"""A quoter: the market, its inputs now, the parameters and its grid → the quote
(:func:`compute_quote`, or a baseline of :mod:`kmm.strategy.baselines`)."""


class QuoteTerms(NamedTuple):
    """What produced a quote, for the tape: the model's terms in $0.0001 units.

    Attributes:
        reservation: The reservation price (the mid skewed by inventory and alpha).
        half_spread: The half-spread quoted around it (model, fee floor, edge, widening).
        sigma: The σ used, bounded, in dollars/√s.
        kappa: The κ used, in 1/dollar.
    """

    reservation: float
    half_spread: float
    sigma: float
    kappa: float


def quote_terms(inputs: QuoteInputs, params: StrategyParams) -> QuoteTerms | None:
    """The model terms :func:`compute_quote` used for ``inputs`` (None: no fair price)."""
    if inputs.fair is None:
        return None
    return _terms(inputs.fair, inputs, params)


def _terms(fair: float, inputs: QuoteInputs, params: StrategyParams) -> QuoteTerms:
    mid = fair / ONE_DOLLAR
    mid = 0.0 if mid < 0.0 else 1.0 if mid > 1.0 else mid
    tau_s = inputs.tau_s
    tau_s = params.horizon_s if tau_s > params.horizon_s else 0.0 if tau_s < 0.0 else tau_s
    kappa = (inputs.kappa if inputs.kappa > 0.0 else params.kappa_default) * params.kappa_factor
    gamma = params.gamma
    if params.gamma_inventory and params.max_position:
        used = abs(inputs.inventory) / params.max_position
        gamma *= 1.0 + params.gamma_inventory * (used if used < 1.0 else 1.0)
    sigma = inputs.sigma
    if params.sigma_blend:
        sigma += params.sigma_blend * (params.sigma_event - sigma)
    sigma = bounded_sigma(sigma, mid, params.sigma_min, params.sigma_max)
    center = reservation_price(mid, inputs.inventory / QTY_SCALE, gamma, sigma, tau_s)
    center += inputs.alpha_skew / ONE_DOLLAR
    half = 0.5 * optimal_spread(gamma, sigma, tau_s, kappa)
    maker_fee = inputs.maker_fee_rate * mid * (1.0 - mid)
    if half < maker_fee:
        half = maker_fee
    half += (params.edge + inputs.widen) / ONE_DOLLAR
    floor = params.min_spread / (2 * ONE_DOLLAR)
    if half < floor:
        half = floor
    cap = params.max_spread / (2 * ONE_DOLLAR)
    if half > cap:
        half = cap if cap > maker_fee else maker_fee
    return QuoteTerms(center * ONE_DOLLAR, half * ONE_DOLLAR, sigma, kappa)


def _model_prices(fair: float, inputs: QuoteInputs, params: StrategyParams) -> tuple[float, float]:
    """Returns the model bid and ask as floats in $0.0001 units."""
    center, half, _, _ = _terms(fair, inputs, params)
    return center - half, center + half


def quote_bands(inputs: QuoteInputs, params: StrategyParams) -> str:
    """Which of :func:`compute_quote`'s bands acted on ``inputs``, for the tape: ``narrow``
    (others' book is inside ``min_market_spread``: not quoted), ``band_low`` or
    ``band_high`` (an extreme-price band: one side only); ``""`` when none did."""
    fair, touch_bid, touch_ask = inputs.fair, inputs.touch_bid, inputs.touch_ask
    if fair is None:
        return ""
    if (
        params.min_market_spread
        and touch_bid is not None
        and touch_ask is not None
        and touch_ask - touch_bid < params.min_market_spread
    ):
        return "narrow"
    if fair < params.extreme_low:
        return "band_low"
    if fair > params.extreme_high:
        return "band_high"
    if fair < params.soft_low:
        return "soft_low"
    if fair > params.soft_high:
        return "soft_high"
    return ""


def _sizes(fair: float, inventory: Qty, params: StrategyParams) -> tuple[Qty, Qty]:
    """Returns (bid qty, ask qty), 0 for a side not to quote."""
    if fair < params.extreme_low:
        bid_on, ask_on = inventory <= 0, inventory > 0
    elif fair > params.extreme_high:
        bid_on, ask_on = inventory < 0, inventory >= 0
    else:
        bid_on = ask_on = True
    base = params.base_qty
    bid = ask = base
    if inventory > 0:
        bid = int(base * math.exp(-params.eta * inventory / QTY_SCALE))
    elif inventory < 0:
        ask = int(base * math.exp(params.eta * inventory / QTY_SCALE))
    factor = params.soft_size_factor
    if factor < 1.0:
        if fair < params.soft_low and inventory <= 0:
            ask = int(ask * factor)
        elif fair > params.soft_high and inventory >= 0:
            bid = int(bid * factor)
    bid = clip_size(bid, params.max_position - inventory, params) if bid_on else 0
    ask = clip_size(ask, params.max_position + inventory, params) if ask_on else 0
    return bid, ask


def clip_size(size: Qty, room: Qty, params: StrategyParams) -> Qty:
    """Caps a size by the room left under the position cap and by the order cap, to a lot."""
    if size > room:
        size = room
    if size > params.max_order_qty:
        size = params.max_order_qty
    if size <= 0:
        return 0
    return size - size % params.lot_qty


def _snap_bid(target: float, best_ask: Price | None, grid: PriceGrid) -> Price | None:
    """Rounds a model bid down onto the grid, strictly below the best ask."""
    price = math.floor(target + _SNAP_EPSILON)
    if best_ask is not None and price >= best_ask:
        price = best_ask - 1
    return grid.floor(price)


def _snap_ask(target: float, best_bid: Price | None, grid: PriceGrid) -> Price | None:
    """Rounds a model ask up onto the grid, strictly above the best bid."""
    price = math.ceil(target - _SNAP_EPSILON)
    if best_bid is not None and price <= best_bid:
        price = best_bid + 1
    return grid.ceil(price)
