"""Composition root: builds kmm's components from a :class:`~kmm.config.KmmConfig`.

Every component is built here and nowhere else, so the wiring of a run can be read in one
place. The builders are plain functions of the configuration; the asyncio shells that run them
(the live engine, the local exchange) live in their own modules and take what is built here.
"""

from __future__ import annotations

from collections.abc import Callable

from kmm.config import ExecutionConfig, KmmConfig, StrategyConfig
from kmm.core.planner import ExecSettings
from kmm.core.trading import RecordSink, TradingCore
from kmm.execution.diff import DiffParams
from kmm.execution.inventory import Portfolio
from kmm.execution.orders import ClientOrderIds, OrderTracker
from kmm.pipeline import Pipeline, QuoteMailbox
from kmm.risk import KillSwitch, RiskContext, RiskLimits
from kmm.select.discovery import DiscoveryParams, ScoreWeights
from kmm.strategy.baselines import QUOTERS
from kmm.strategy.book_guard import BookGuardParams
from kmm.strategy.flow import TakerFlow
from kmm.strategy.quoter import StrategyParams
from kmm.strategy.throttles import ThrottleParams
from kmm.strategy.toxicity import ToxicityParams
from kmm.strategy.volatility import EwmaVolatility, KappaEstimator
from kmm.types import Qty

__all__ = [
    "build_core",
    "build_pipeline",
    "diff_params",
    "exec_settings",
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
        soft_low=strategy.soft_low,
        soft_high=strategy.soft_high,
        soft_size_factor=strategy.soft_size_factor,
        gamma_inventory=strategy.gamma_inventory,
        edge=strategy.edge,
        min_spread=strategy.min_spread,
        max_spread=strategy.max_spread,
        min_market_spread=strategy.min_market_spread,
        improve_ticks=strategy.improve_ticks,
        baseline_ticks=strategy.baseline_ticks,
        skew_contracts=strategy.baseline_skew_contracts,
    )


def diff_params(execution: ExecutionConfig) -> DiffParams:
    """The order diff's hysteresis from the ``execution`` section."""
    return DiffParams(
        min_move_ticks=execution.min_move_ticks,
        min_rest_ns=execution.min_rest_ns,
        min_qty_change=execution.min_qty_change,
    )


def exec_settings(execution: ExecutionConfig, order_group_id: str | None = None) -> ExecSettings:
    """How the planner places orders, from the ``execution`` section."""
    return ExecSettings(
        diff=diff_params(execution),
        freshness_ns=execution.target_freshness_ns,
        post_only=execution.post_only,
        self_trade_prevention=execution.self_trade_prevention,
        cancel_on_pause=execution.cancel_on_pause,
        order_group_id=order_group_id,
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
        quoter=QUOTERS[config.strategy.model],
        throttle=throttle_params(config) if config.strategy.model == "kmm" else None,
        new_flow=flow_factory(config.strategy) if config.strategy.model == "kmm" else None,
        toxicity=toxicity_params(config.strategy) if config.strategy.model == "kmm" else None,
        book_guard=book_guard_params(config.strategy) if config.strategy.model == "kmm" else None,
        own_orders_out=config.strategy.model == "kmm",
    )


def book_guard_params(strategy: StrategyConfig) -> BookGuardParams | None:
    """kmm's spread-shock and thin-book guards from the ``strategy`` section (None: both
    disabled)."""
    params = BookGuardParams(
        shock_ratio=strategy.spread_shock_ratio,
        shock_min=strategy.spread_shock_min,
        spread_halflife_ns=int(strategy.spread_halflife_s * 1e9),
        thin_depth=strategy.thin_depth,
        thin_size_factor=strategy.thin_size_factor,
        trigger=strategy.book_guard_trigger,
        recover=strategy.book_guard_recover,
    )
    return params if params.enabled else None


def toxicity_params(strategy: StrategyConfig) -> ToxicityParams | None:
    """kmm's adverse-selection guard from the ``strategy`` section (None: disabled)."""
    if not strategy.toxic_trigger:
        return None
    return ToxicityParams(
        horizon_ns=int(strategy.toxic_horizon_s * 1e9),
        trigger=strategy.toxic_trigger,
        recover=strategy.toxic_recover,
        calm_ns=int(strategy.toxic_calm_s * 1e9),
        widen=strategy.toxic_widen,
    )


def flow_factory(strategy: StrategyConfig) -> Callable[[], TakerFlow] | None:
    """Makes kmm's taker-flow skew per market (None: the skew is disabled)."""
    per_contract = strategy.flow_skew_cents_per_contract * 100  # cents -> $0.0001
    if not per_contract:
        return None
    cap = strategy.flow_skew_max_cents * 100
    return lambda: TakerFlow(strategy.flow_halflife_s, per_contract, cap)


def throttle_params(config: KmmConfig) -> ThrottleParams | None:
    """kmm's quote throttles from the ``strategy`` section (None: both disabled); the
    scoreboard's baselines run without them."""
    strategy = config.strategy
    if not strategy.fill_cooldown_ms and not strategy.jump_cents:
        return None
    ms = 1_000_000
    return ThrottleParams(
        fill_cooldown_ns=strategy.fill_cooldown_ms * ms,
        settle_ns=strategy.settle_ms * ms,
        max_hold_ns=strategy.max_hold_ms * ms,
        jump_ticks=strategy.jump,
        jump_window_ns=strategy.jump_window_ms * ms,
        settle_move=strategy.settle_move,
    )


def position_with_unbooked(portfolio: Portfolio, tracker: OrderTracker) -> Callable[[str], Qty]:
    """The position the quoter assumes: the booked one, moved by the fills the venue reported
    in a reply whose fill messages have not arrived yet."""
    net_qty, unbooked_net = portfolio.net_qty, tracker.unbooked_net

    def position(ticker: str) -> Qty:
        return net_qty(ticker) + unbooked_net(ticker)

    return position


def build_core(
    config: KmmConfig,
    *,
    start_ns: int,
    records: RecordSink | None = None,
    env: str | None = None,
) -> TradingCore:
    """The trading core of a run started at ``start_ns`` (live or backtest), with its parts:
    portfolio, order tracker (client order ids named after the run), pipeline and mailbox,
    kill switch and risk context."""
    portfolio = Portfolio()
    prefix = config.execution.client_order_prefix or "kmm"
    tracker = OrderTracker(ClientOrderIds.for_run(start_ns, prefix))
    mailbox = QuoteMailbox()
    pipeline = build_pipeline(
        config, position_with_unbooked(portfolio, tracker), mailbox, use_yes_price=True
    )
    kill_switch = KillSwitch.from_config(config.risk)
    risk = RiskContext(RiskLimits.from_config(config.risk, config.strategy), kill_switch)
    return TradingCore(
        config,
        start_ns=start_ns,
        pipeline=pipeline,
        mailbox=mailbox,
        portfolio=portfolio,
        tracker=tracker,
        kill_switch=kill_switch,
        risk=risk,
        records=records,
        env=env,
    )


def discovery_params(config: KmmConfig) -> DiscoveryParams:
    """Discovery's filters, weights and caps (the extreme-price bands are the strategy's)."""
    d = config.discovery
    strategy = config.strategy
    return DiscoveryParams(
        min_age_s=d.min_age_s,
        close_windows={category: (least, most) for category, least, most in d.close_windows},
        exclude_categories=d.exclude_categories,
        min_volume_24h=d.min_volume_24h,
        min_recent_trades=d.min_recent_trades,
        max_spread=d.max_spread,
        min_depth=d.min_depth,
        hard_low=strategy.extreme_low,
        hard_high=strategy.extreme_high,
        soft_low=strategy.soft_low,
        soft_high=strategy.soft_high,
        weights=ScoreWeights(
            volume_24h=d.weight_volume_24h,
            recent_volume=d.weight_recent_volume,
            depth=d.weight_depth,
            spread=d.weight_spread,
            time_penalty=d.weight_time_penalty,
        ),
        penalty_days=(d.penalty_full_days, d.penalty_none_days),
        top_n=d.top_n,
        alpha=d.alpha,
        per_market_cap=d.per_market_cap_contracts,
        category_cap=d.category_cap_contracts,
        global_cap=d.global_cap_contracts,
        min_cap=d.min_cap_contracts,
        soft_haircut=d.soft_haircut,
        long_dated_days=d.long_dated_days,
        long_dated_haircut=d.long_dated_haircut,
        incumbent_margin=d.incumbent_margin,
    )
