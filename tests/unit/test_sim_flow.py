from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from kmm.book.grid import PriceGrid
from kmm.sim.engine import MarketStatus, MatchingEngine, OrderStatus
from kmm.sim.flow import BackgroundFlow, LifecycleDriver
from kmm.sim.universe import BACKGROUND_USERS, SCENARIOS, Universe, build_universe, install
from kmm.types import ONE_DOLLAR

S = 1_000_000_000
T0 = 1_795_000_000 * S


def start(
    scenario: str = "calm", seed: int = 7, markets: int = 6
) -> tuple[MatchingEngine, Universe, BackgroundFlow]:
    universe = build_universe(markets, seed=seed, scenario=scenario, now_ns=T0)
    engine = MatchingEngine()
    install(engine, universe)
    return engine, universe, BackgroundFlow(engine, universe, scenario, seed, T0)


def state(engine: MatchingEngine) -> object:
    return (
        {t: engine.book_levels(t) for t in engine.markets},
        [(t.ticker, t.yes_price, t.count, t.taker_book_side, t.ts_ns) for t in engine.trades()],
        {u: engine.balance(u) for u in BACKGROUND_USERS},
        {t: m.status for t, m in engine.markets.items()},
    )


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def run(flow: BackgroundFlow, seconds: float, step_s: float = 1.0) -> None:
    steps = round(seconds / step_s)
    for i in range(1, steps + 1):
        flow.advance(T0 + round(i * step_s * S))


def test_the_same_seed_gives_the_same_engine_state() -> None:
    engine_a, _, flow_a = start(seed=3)
    engine_b, _, flow_b = start(seed=3)
    engine_c, _, flow_c = start(seed=4)

    for flow in (flow_a, flow_b, flow_c):
        run(flow, 60)

    assert state(engine_a) == state(engine_b)
    assert flow_a.stats == flow_b.stats
    assert state(engine_a) != state(engine_c)


def test_how_often_advance_is_called_does_not_change_the_outcome() -> None:
    engine_a, _, flow_a = start("settlement", seed=2)
    engine_b, _, flow_b = start("settlement", seed=2)

    run(flow_a, 150, step_s=0.05)
    flow_b.advance(T0 + 150 * S)

    assert state(engine_a) == state(engine_b)
    assert flow_a.stats == flow_b.stats


def test_the_traders_place_take_and_cancel() -> None:
    engine, _, flow = start()

    operations = sum(flow.advance(T0 + i * S) for i in range(1, 121))

    stats = flow.stats
    assert operations == stats.orders_sent + stats.cancels
    assert stats.orders_sent > 1000
    assert stats.cancels > 100
    assert stats.fills > 50
    assert stats.rejected == 0
    assert engine.trades()


def test_advance_to_the_past_or_present_does_nothing() -> None:
    _, _, flow = start()
    flow.advance(T0 + 5 * S)
    before = flow.stats.events

    assert flow.advance(T0 + 5 * S) == 0
    assert flow.advance(T0 + S) == 0
    assert flow.stats.events == before


def assert_books_are_sane(engine: MatchingEngine, universe: Universe) -> None:
    for market in universe.markets:
        grid = PriceGrid.from_ranges(market.price_ranges)
        for order in engine.resting_orders(market.ticker):
            assert grid.is_valid(order.price), order
            assert order.remaining > 0
        bid, ask = engine.best(market.ticker)
        if bid is not None and ask is not None:
            assert bid < ask
    for trade in engine.trades():
        grid = PriceGrid.from_ranges(engine.markets[trade.ticker].price_ranges)
        assert grid.is_valid(trade.yes_price), trade


@settings(max_examples=12, deadline=None)
@given(st.sampled_from(SCENARIOS), st.integers(0, 10_000))
def test_the_flow_never_sends_an_invalid_price_nor_leaves_a_crossed_book(
    scenario: str, seed: int
) -> None:
    engine, universe, flow = start(scenario, seed=seed, markets=4)

    run(flow, 30, step_s=0.5)

    assert_books_are_sane(engine, universe)
    assert flow.stats.rejected == 0


def test_trending_fairs_drift_far_while_calm_fairs_stay_near() -> None:
    _, calm_universe, calm = start("calm", seed=9)
    _, trend_universe, trending = start("trending", seed=9)

    run(calm, 400, step_s=5)
    run(trending, 400, step_s=5)

    for market, fair in zip(calm_universe.markets, calm_universe.initial_fairs, strict=True):
        assert abs(logit(calm.fair(market.ticker)) - logit(fair)) < 0.3
    for market, fair in zip(trend_universe.markets, trend_universe.initial_fairs, strict=True):
        assert abs(logit(trending.fair(market.ticker)) - logit(fair)) > 0.6


def largest_one_second_move(flow: BackgroundFlow, ticker: str, seconds: int) -> float:
    largest = 0.0
    previous = logit(flow.fair(ticker))
    for i in range(1, seconds + 1):
        flow.advance(T0 + i * S)
        current = logit(flow.fair(ticker))
        largest = max(largest, abs(current - previous))
        previous = current
    return largest


def test_jump_fairs_jump_and_calm_fairs_do_not() -> None:
    _, universe, calm = start("calm", seed=4)
    _, _, jumpy = start("jump", seed=4)
    ticker = universe.markets[0].ticker

    calm_move = largest_one_second_move(calm, ticker, 300)
    jump_move = largest_one_second_move(jumpy, ticker, 300)

    assert jumpy.stats.jumps > 10
    assert calm.stats.jumps == 0
    assert calm_move < 0.1
    assert jump_move > 0.5


def test_informed_takers_pick_off_a_stale_quote() -> None:
    engine, universe, flow = start("jump", seed=4, markets=2)
    ticker = universe.markets[0].ticker
    run(flow, 120)
    fair = flow.fair(ticker)

    bid, ask = engine.best(ticker)

    assert bid is not None
    assert ask is not None
    assert bid - ONE_DOLLAR // 50 < fair * ONE_DOLLAR < ask + ONE_DOLLAR // 50


def average_spread(engine: MatchingEngine) -> float:
    spreads = []
    for ticker in engine.markets:
        bid, ask = engine.best(ticker)
        if bid is not None and ask is not None:
            spreads.append(ask - bid)
    return sum(spreads) / len(spreads)


def test_thin_markets_trade_less_with_wider_spreads() -> None:
    calm_engine, _, calm = start("calm", seed=6)
    thin_engine, _, thin = start("thin", seed=6)

    run(calm, 120)
    run(thin, 120)

    assert thin.stats.orders_sent * 5 < calm.stats.orders_sent
    assert average_spread(thin_engine) > average_spread(calm_engine)


def test_settlement_markets_close_determine_and_settle_during_a_short_run() -> None:
    engine, universe, flow = start("settlement", seed=1)
    early = [m.ticker for m in universe.markets if m.close_ns - T0 <= 120 * S]

    run(flow, 180)

    for ticker in early:
        market = engine.markets[ticker]
        assert market.status is MarketStatus.FINALIZED
        assert market.result in ("yes", "no")
        assert not engine.resting_orders(ticker)
    assert flow.stats.lifecycle == 3 * len(early)
    late = [m.ticker for m in universe.markets if m.ticker not in early]
    assert all(engine.markets[t].status is MarketStatus.ACTIVE for t in late)
    assert flow.stats.rejected == 0


def test_near_close_markets_all_close_within_minutes() -> None:
    engine, _, flow = start("near_close", seed=1)

    run(flow, 600, step_s=5)

    assert all(m.status is MarketStatus.FINALIZED for m in engine.markets.values())
    assert flow.advance(T0 + 700 * S) == 0


def test_rejected_background_orders_are_counted_not_raised() -> None:
    engine, _, flow = start(seed=5)
    flow.advance(T0 + S)
    engine.set_trading_active(False, T0 + S)

    flow.advance(T0 + 10 * S)

    assert flow.stats.rejected > 0


def test_orders_the_flow_cancels_belong_to_the_background_maker() -> None:
    engine, _, flow = start(seed=8, markets=2)

    run(flow, 60)

    canceled = [o for o in engine.orders_of("bg-maker") if o.status is OrderStatus.CANCELED]
    assert len(canceled) == flow.stats.cancels
    assert not [o for o in engine.orders_of("bg-taker") if o.status is OrderStatus.RESTING]


def test_the_lifecycle_runs_without_background_flow() -> None:
    universe = build_universe(4, seed=1, scenario="settlement", now_ns=T0)
    engine = MatchingEngine()
    install(engine, universe)
    driver = LifecycleDriver(engine, universe, seed=1)
    first = universe.markets[0].ticker

    performed = driver.advance(T0 + 89 * S), driver.advance(T0 + 200 * S)

    assert performed == (0, 6)
    assert engine.markets[first].status is MarketStatus.FINALIZED
    assert driver.next_due_ns() == universe.markets[2].close_ns
