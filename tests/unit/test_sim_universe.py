from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from kmm.book.grid import PriceGrid
from kmm.errors import ConfigError
from kmm.fees import FEE_TYPES, MAKER_COEFFICIENTS
from kmm.sim.engine import MatchingEngine
from kmm.sim.universe import (
    BACKGROUND_BALANCE,
    BACKGROUND_USERS,
    SCENARIOS,
    TAPERED_DECI_CENT_RANGES,
    Universe,
    build_universe,
    install,
    maker_price,
)
from kmm.types import ONE_DOLLAR, BookSide

S = 1_000_000_000
T0 = 1_795_000_000 * S  # 2026-11-18 UTC


def installed(universe: Universe) -> MatchingEngine:
    engine = MatchingEngine()
    install(engine, universe)
    return engine


def test_equal_arguments_build_equal_universes_and_another_seed_differs() -> None:
    first = build_universe(6, seed=7, scenario="calm", now_ns=T0)
    again = build_universe(6, seed=7, scenario="calm", now_ns=T0)
    other = build_universe(6, seed=8, scenario="calm", now_ns=T0)

    assert first == again
    assert first.initial_fairs != other.initial_fairs


def test_tickers_are_shaped_like_kalshi_tickers() -> None:
    universe = build_universe(6, seed=7, scenario="calm", now_ns=T0)

    for series in universe.series:
        assert re.fullmatch(r"KXSIM[A-Z]+", series.ticker)
    for event in universe.events:
        assert re.fullmatch(r"KXSIM[A-Z]+-\d{2}[A-Z]{3}\d{2}", event.event_ticker)
        assert event.event_ticker.startswith(event.series_ticker + "-")
    for market in universe.markets:
        assert re.fullmatch(r"KXSIM[A-Z]+-\d{2}[A-Z]{3}\d{2}-T\d+", market.ticker)
        assert market.ticker.startswith(market.event_ticker + "-T")
    assert len({m.ticker for m in universe.markets}) == 6


def test_an_event_ticker_carries_its_close_date() -> None:
    universe = build_universe(2, seed=7, scenario="calm", now_ns=T0)
    market = universe.markets[0]
    close = datetime.fromtimestamp(market.close_ns / S, tz=UTC)

    assert market.event_ticker.endswith(close.strftime("%y%b%d").upper())


@pytest.mark.parametrize("n_markets", [1, 2, 3, 4, 6, 9, 13])
def test_every_universe_has_a_sub_cent_market_and_the_rest_are_whole_cent(n_markets: int) -> None:
    universe = build_universe(n_markets, seed=3, scenario="calm", now_ns=T0)
    structures = [m.price_level_structure for m in universe.markets]

    assert len(universe.markets) == n_markets
    assert "tapered_deci_cent" in structures
    assert set(structures) <= {"tapered_deci_cent", "linear_cent"}
    if n_markets >= 2:
        assert "linear_cent" in structures


def test_the_sub_cent_market_has_kalshis_tapered_bands_and_starts_in_the_fine_band() -> None:
    universe = build_universe(6, seed=3, scenario="calm", now_ns=T0)
    tapered = [
        (m, fair)
        for m, fair in zip(universe.markets, universe.initial_fairs, strict=True)
        if m.price_level_structure == "tapered_deci_cent"
    ]

    for market, fair in tapered:
        assert market.price_ranges == ((0, 1000, 10), (1000, 9000, 100), (9000, 10000, 10))
        assert market.price_ranges == TAPERED_DECI_CENT_RANGES
        assert 0.0 < fair < 0.1


def test_fee_types_mix_and_one_series_charges_makers() -> None:
    for n_markets in (1, 6):
        universe = build_universe(n_markets, seed=1, scenario="calm", now_ns=T0)
        fee_types = {s.fee_type for s in universe.series}

        assert fee_types <= FEE_TYPES
        assert fee_types & set(MAKER_COEFFICIENTS)
    six = build_universe(6, seed=1, scenario="calm", now_ns=T0)
    assert {s.fee_type for s in six.series} == {"quadratic", "quadratic_with_maker_fees"}
    assert len({s.fee_multiplier for s in six.series}) > 1


def test_markets_close_days_away_by_default() -> None:
    universe = build_universe(6, seed=1, scenario="calm", now_ns=T0)

    for market in universe.markets:
        assert market.close_ns - T0 > 86_400 * S
        assert market.open_ns < T0


def test_near_close_markets_close_within_minutes() -> None:
    universe = build_universe(6, seed=1, scenario="near_close", now_ns=T0)

    for market in universe.markets:
        assert 60 * S < market.close_ns - T0 <= 10 * 60 * S


def test_the_settlement_scenario_closes_some_markets_within_two_minutes() -> None:
    universe = build_universe(6, seed=1, scenario="settlement", now_ns=T0)
    soon = [m for m in universe.markets if m.close_ns - T0 <= 120 * S]

    assert soon
    assert all(m.close_ns - T0 >= 60 * S for m in soon)
    assert len(soon) < len(universe.markets)


def test_an_unknown_scenario_or_no_markets_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="scenario"):
        build_universe(6, seed=1, scenario="stormy", now_ns=T0)
    with pytest.raises(ConfigError, match="markets"):
        build_universe(0, seed=1, scenario="calm", now_ns=T0)


def test_install_registers_everything_and_funds_the_background_traders() -> None:
    universe = build_universe(6, seed=7, scenario="calm", now_ns=T0)

    engine = installed(universe)

    assert set(engine.series) == {s.ticker for s in universe.series}
    assert set(engine.events) == {e.event_ticker for e in universe.events}
    assert set(engine.markets) == {m.ticker for m in universe.markets}
    for user in BACKGROUND_USERS:
        assert engine.balance(user) <= BACKGROUND_BALANCE
        assert engine.balance(user) > BACKGROUND_BALANCE // 2


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_book_starts_two_sided_on_its_grid_around_the_fair(scenario: str) -> None:
    universe = build_universe(6, seed=11, scenario=scenario, now_ns=T0)

    engine = installed(universe)

    for market, fair in zip(universe.markets, universe.initial_fairs, strict=True):
        grid = PriceGrid.from_ranges(market.price_ranges)
        yes_bids, no_bids = engine.book_levels(market.ticker)
        assert yes_bids
        assert no_bids
        assert all(grid.is_valid(p) for p in yes_bids)
        assert all(grid.is_valid(ONE_DOLLAR - p) for p in no_bids)
        bid, ask = engine.best(market.ticker)
        assert bid is not None
        assert ask is not None
        assert bid < fair * ONE_DOLLAR < ask


def test_thin_books_hold_fewer_levels_than_calm_books() -> None:
    calm = installed(build_universe(6, seed=5, scenario="calm", now_ns=T0))
    thin = installed(build_universe(6, seed=5, scenario="thin", now_ns=T0))

    def levels(engine: MatchingEngine) -> int:
        return sum(len(y) + len(n) for y, n in map(engine.book_levels, engine.markets))

    assert levels(thin) < levels(calm)


def test_one_universe_can_be_installed_into_two_engines_independently() -> None:
    universe = build_universe(2, seed=5, scenario="calm", now_ns=T0)
    first = installed(universe)
    second = installed(universe)
    ticker = universe.markets[0].ticker

    first.close_market(ticker, T0 + S)

    assert second.markets[ticker].status != first.markets[ticker].status
    assert universe.markets[0].status == second.markets[ticker].status


def test_maker_prices_sit_on_the_passive_side_of_the_fair_on_the_grid() -> None:
    grid = PriceGrid.from_ranges(TAPERED_DECI_CENT_RANGES)

    assert maker_price(grid, 0.0555, BookSide.BID, 0) == 550
    assert maker_price(grid, 0.0555, BookSide.BID, 2) == 530
    assert maker_price(grid, 0.0555, BookSide.ASK, 1) == 570
    assert maker_price(grid, 0.5, BookSide.ASK, 1) == 5100
    assert maker_price(grid, 0.0015, BookSide.BID, 1) is None
    assert maker_price(grid, 0.9985, BookSide.ASK, 1) is None
