"""Composition root: builds kmm's components from a :class:`~kmm.config.KmmConfig`.

Every component is built here and nowhere else, so the wiring of a run can be read in one
place. The builders are plain functions of the configuration; the asyncio shells that run them
(the live engine, the local exchange) live in their own modules and take what is built here.
"""

from __future__ import annotations

from collections.abc import Callable

from kmm.config import ExecutionConfig, KmmConfig, StrategyConfig
from kmm.execution.diff import DiffParams
from kmm.pipeline import Pipeline, QuoteMailbox
from kmm.strategy.quoter import StrategyParams
from kmm.strategy.volatility import EwmaVolatility, KappaEstimator
from kmm.types import Qty

__all__ = [
    "build_pipeline",
    "diff_params",
    "kappa_factory",
    "strategy_params",
    "vol_factory",
]


def strategy_params(config: KmmConfig) -> StrategyParams:
    """The quoter's parameters from the ``strategy`` and ``risk`` sections."""
    strategy = config.strategy
    return StrategyParams(
        gamma=strategy.gamma,
        kappa_default=strategy.kappa_default_per_dollar,
        horizon_s=strategy.horizon_s,
        sigma_min=strategy.sigma_min_per_sqrt_s,
        sigma_max=strategy.sigma_max_per_sqrt_s,
        base_qty=strategy.base_qty,
        lot_qty=strategy.lot_qty,
        eta=strategy.eta,
        max_position=config.risk.max_position,
        max_order_qty=strategy.max_order_qty,
        extreme_low=strategy.extreme_low,
        extreme_high=strategy.extreme_high,
        edge=strategy.edge,
    )


def diff_params(execution: ExecutionConfig) -> DiffParams:
    """The order diff's hysteresis from the ``execution`` section."""
    return DiffParams(
        min_move_ticks=execution.min_move_ticks,
        min_rest_ns=execution.min_rest_ns,
        min_qty_change=execution.min_qty_change,
    )


def vol_factory(strategy: StrategyConfig) -> Callable[[], EwmaVolatility]:
    """Makes a fresh per-market volatility estimator on each call."""

    def new_vol() -> EwmaVolatility:
        return EwmaVolatility(
            halflife_s=strategy.vol_halflife_s,
            sigma_default=strategy.sigma_default_per_sqrt_s,
            min_samples=strategy.vol_min_samples,
        )

    return new_vol


def kappa_factory(strategy: StrategyConfig) -> Callable[[], KappaEstimator]:
    """Makes a fresh per-market κ estimator on each call."""

    def new_kappa() -> KappaEstimator:
        return KappaEstimator(
            halflife_trades=strategy.kappa_halflife_trades,
            kappa_default=strategy.kappa_default_per_dollar,
            kappa_min=strategy.kappa_min_per_dollar,
            kappa_max=strategy.kappa_max_per_dollar,
            min_trades=strategy.kappa_min_trades,
        )

    return new_kappa


def build_pipeline(
    config: KmmConfig,
    inventory: Callable[[str], Qty],
    mailbox: QuoteMailbox,
    *,
    use_yes_price: bool,
) -> Pipeline:
    """The ingest → normalize → decide pipeline with no markets yet.

    Args:
        config: The run's configuration.
        inventory: The signed position the quoter assumes per market.
        mailbox: Where decided quotes go.
        use_yes_price: The orderbook subscription's price convention.
    """
    return Pipeline(
        params=strategy_params(config),
        new_vol=vol_factory(config.strategy),
        new_kappa=kappa_factory(config.strategy),
        inventory=inventory,
        mailbox=mailbox,
        use_yes_price=use_yes_price,
        fair_value=config.strategy.fair_value,
        subaccount=config.venue.subaccount,
    )
