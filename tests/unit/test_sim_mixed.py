"""The ``mixed`` universe: hundreds of markets worth choosing from, each with a flow regime
that changes over time."""

from __future__ import annotations

import math
from collections import Counter
from typing import get_args

import pytest

from kmm.config import Scenario
from kmm.sim.engine import MatchingEngine
from kmm.sim.flow import BackgroundFlow
from kmm.sim.universe import REGIMES, SCENARIOS, Universe, build_universe, install

S = 1_000_000_000
DAY = 86_400 * S
T0 = 1_795_000_000 * S


@pytest.fixture(scope="module")
def universe() -> Universe:
    return build_universe(300, seed=5, scenario="mixed", now_ns=T0)


def test_mixed_is_a_scenario_and_the_same_seed_gives_the_same_universe(universe: Universe) -> None:
    assert "mixed" in SCENARIOS
    assert build_universe(300, seed=5, scenario="mixed", now_ns=T0) == universe
    assert build_universe(300, seed=6, scenario="mixed", now_ns=T0) != universe


def test_hundreds_of_markets_over_dozens_of_series_events_and_categories(
    universe: Universe,
) -> None:
    series = {s.ticker: s for s in universe.series}
    events = {e.event_ticker: e for e in universe.events}
    assert len(universe.markets) == 300
    assert len({m.ticker for m in universe.markets}) == 300
    assert len(series) >= 24
    assert len(events) >= 60
    assert all(m.event_ticker in events for m in universe.markets)
    assert all(e.series_ticker in series for e in events.values())
    assert len({s.category for s in series.values()}) >= 8
    per_event = Counter(m.event_ticker for m in universe.markets)
    assert max(per_event.values()) >= 4  # strike ladders, not one market per event


def test_close_and_creation_times_spread_from_minutes_to_months(universe: Universe) -> None:
    to_close = [(m.close_ns - T0) / S for m in universe.markets]
    ages = [(T0 - m.open_ns) / S for m in universe.markets]
    assert min(to_close) < 3600
    assert max(to_close) > 60 * 86_400
    assert any(age < 120 for age in ages)  # brand-new markets, for an age filter to skip
    assert max(ages) > 30 * 86_400
    assert all(m.open_ns < T0 < m.close_ns for m in universe.markets)


def test_scalar_and_multivariate_markets_are_mixed_in(universe: Universe) -> None:
    tickers = {m.ticker for m in universe.markets}
    scalars = [m for m in universe.markets if m.market_type == "scalar"]
    combos = [m for m in universe.markets if m.mve_collection_ticker is not None]
    assert scalars
    assert all(m.close_ns - T0 >= 60 * DAY for m in scalars)
    assert len(combos) == 15
    for combo in combos:
        assert len(combo.mve_legs) == 2
        assert all(leg in tickers and side in ("yes", "no") for _, leg, side in combo.mve_legs)


def test_every_regime_is_present_and_activity_spreads(universe: Universe) -> None:
    assert set(universe.regimes) == set(REGIMES)
    assert len(universe.activity) == 300
    ranked = sorted(universe.activity, reverse=True)
    assert sum(ranked[:30]) > 0.25 * sum(ranked)  # a tenth of the markets carry much of it


def test_prior_volume_hints_at_activity(universe: Universe) -> None:
    busy = [
        m.prior_volume_24h
        for m, a in zip(universe.markets, universe.activity, strict=True)
        if a > 1.0
    ]
    idle = [
        m.prior_volume_24h
        for m, a in zip(universe.markets, universe.activity, strict=True)
        if a < 0.2
    ]
    assert busy and idle
    assert sum(busy) / len(busy) > 3 * sum(idle) / len(idle)
    assert all(m.prior_open_interest >= 0 and m.prior_volume >= 0 for m in universe.markets)


def test_the_first_markets_listed_are_a_random_mix(universe: Universe) -> None:
    first = universe.regimes[:40]
    assert len(set(first)) >= 4
    assert len({m.event_ticker.split("-")[0] for m in universe.markets[:40]}) >= 10


def test_regimes_change_over_time_and_flow_differs_by_regime() -> None:
    universe = build_universe(60, seed=2, scenario="mixed", now_ns=T0)
    engine = MatchingEngine()
    install(engine, universe)
    flow = BackgroundFlow(engine, universe, "mixed", 2, T0)
    flow.advance(T0 + 1800 * S)
    now = [flow.regime(m.ticker) for m in universe.markets]
    assert flow.stats.regime_switches > 0
    assert now != list(universe.regimes)
    trades = Counter(t.ticker for t in engine.trades())
    by_regime: dict[str, list[int]] = {}
    for market, regime, activity in zip(
        universe.markets, universe.regimes, universe.activity, strict=True
    ):
        by_regime.setdefault(regime, []).append(round(trades[market.ticker] / activity))
    mean = {r: sum(v) / len(v) for r, v in by_regime.items() if v}
    assert mean["thin"] < mean["mean_reverting"]


def test_a_mean_reverting_fair_stays_near_where_it_began_while_a_trend_runs() -> None:
    universe = build_universe(120, seed=4, scenario="mixed", now_ns=T0)
    engine = MatchingEngine()
    install(engine, universe)
    flow = BackgroundFlow(engine, universe, "mixed", 4, T0)
    flow.advance(T0 + 600 * S)
    moves: dict[str, list[float]] = {"mean_reverting": [], "trending": []}
    for market, fair in zip(universe.markets, universe.initial_fairs, strict=True):
        regime = flow.regime(market.ticker)
        if regime in moves and 0.1 < fair < 0.9:
            start = math.log(fair / (1 - fair))
            p = flow.fair(market.ticker)
            moves[regime].append(abs(math.log(p / (1 - p)) - start))
    assert moves["mean_reverting"] and moves["trending"]
    reverting = sorted(moves["mean_reverting"])[len(moves["mean_reverting"]) // 2]
    trending = sorted(moves["trending"])[len(moves["trending"]) // 2]
    assert reverting < trending


def test_the_config_accepts_exactly_the_scenarios_the_exchange_knows() -> None:
    assert get_args(Scenario) == SCENARIOS
