"""The local exchange's markets: Kalshi-shaped series, events and markets for a seed and scenario.

Theory of operation
-------------------
:func:`build_universe` makes one series per event and two strike markets per event, named
the way Kalshi names them: series ``KXSIMA``, event ``KXSIMA-26NOV23`` (the event's close
date as ``YYMONDD``), markets ``KXSIMA-26NOV23-T45`` and ``KXSIMA-26NOV23-T55``. Series
alternate between ``quadratic_with_maker_fees`` (the first series, so at least one series
charges makers) and ``quadratic``, with fee multipliers cycling 1, 1, 1/2. Every fourth
market (and the last one, if none else is) has the sub-cent ``tapered_deci_cent`` grid and a
starting fair price in its fine lower band; the others are ``linear_cent``.

Close times depend on the scenario: normally each event closes some days after the start;
``near_close`` closes every event within a few minutes; ``settlement`` closes the first
event about a minute and a half after the start (the rest days away). Determination and
settlement follow each close after the scenario's delays; the flow module drives them.

:func:`install` registers the universe with a matching engine, opens the background
traders' accounts and seeds every book with resting ``bg-maker`` orders around the starting
fair price, so that the first snapshot already shows a two-sided book.

The background-flow parameters of each scenario live here too (:data:`SCENARIO_PARAMS`),
next to the scenario names, so that the book seeding and the flow agree.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Final

from kmm.book.grid import PriceGrid
from kmm.errors import ConfigError
from kmm.sim.engine import (
    EventDef,
    MarketDef,
    MatchingEngine,
    OrderRequest,
    Rejection,
    SeriesDef,
)
from kmm.types import ONE_DOLLAR, QTY_SCALE, BookSide, Money, Price, Qty

__all__ = [
    "BACKGROUND_BALANCE",
    "BACKGROUND_USERS",
    "BG_INFORMED",
    "BG_MAKER",
    "BG_TAKER",
    "LINEAR_CENT_RANGES",
    "SCENARIOS",
    "SCENARIO_PARAMS",
    "TAPERED_DECI_CENT_RANGES",
    "ScenarioParams",
    "Universe",
    "build_universe",
    "install",
    "maker_price",
]

SCENARIOS: Final = ("calm", "trending", "jump", "thin", "near_close", "settlement")
"""Every scenario :func:`build_universe` and the background flow understand."""

BG_MAKER: Final = "bg-maker"
BG_TAKER: Final = "bg-taker"
BG_INFORMED: Final = "bg-informed"
BACKGROUND_USERS: Final = (BG_MAKER, BG_TAKER, BG_INFORMED)
"""The engine users the background traders trade as."""
BACKGROUND_BALANCE: Final[Money] = 10**9 * 1_000_000
"""Each background trader's starting cash: $1 billion."""

LINEAR_CENT_RANGES: Final[tuple[tuple[Price, Price, Price], ...]] = ((0, ONE_DOLLAR, 100),)
TAPERED_DECI_CENT_RANGES: Final[tuple[tuple[Price, Price, Price], ...]] = (
    (0, 1000, 10),
    (1000, 9000, 100),
    (9000, ONE_DOLLAR, 10),
)

_NS_PER_S: Final = 1_000_000_000
_DAY_NS: Final = 86_400 * _NS_PER_S
_MONTHS: Final = (
    "JAN",
    "FEB",
    "MAR",
    "APR",
    "MAY",
    "JUN",
    "JUL",
    "AUG",
    "SEP",
    "OCT",
    "NOV",
    "DEC",
)
_FEE_TYPES: Final = ("quadratic_with_maker_fees", "quadratic")
_MULTIPLIERS: Final = (Fraction(1), Fraction(1), Fraction(1, 2))
_CATEGORIES: Final = ("Economics", "Financials", "Climate and Weather")
_MARKETS_PER_EVENT: Final = 2
_CLOSE_HOUR_UTC: Final = 20


@dataclass(frozen=True, slots=True)
class ScenarioParams:
    """How the background traders behave in one scenario (rates are per market per second).

    Attributes:
        vol: Standard deviation of the fair's logit per square-root second.
        drift: Size of the fair's logit drift per second (the sign is drawn per market).
        jump_rate: Poisson rate of jumps of the fair.
        jump_size: Mean absolute size of a jump, in logit units.
        maker_rate: Arrivals of resting limit orders.
        maker_lifetime_s: Mean life of a resting background order before it is cancelled.
        half_spread_ticks: Least distance, in grid steps, of a new resting order from the fair.
        depth_ticks: Mean extra distance beyond ``half_spread_ticks`` (geometric).
        maker_size: Median size of a resting order, in contracts.
        noise_rate: Arrivals of uninformed marketable (IOC) orders.
        informed_rate: Arrivals of informed takers, who trade toward the fair.
        taker_size: Median size of a marketable order, in contracts.
        seed_levels: Resting levels per side placed by :func:`install`.
        close_in_s: Seconds from the start to each event's close, or ``None`` for days away;
            the n-th event closes at the n-th entry (the last entry repeats).
        determine_after_s: Seconds from a close to the market's determination.
        settle_after_s: Seconds from determination to settlement.
    """

    vol: float = 0.005
    drift: float = 0.0
    jump_rate: float = 0.0
    jump_size: float = 0.0
    maker_rate: float = 4.0
    maker_lifetime_s: float = 30.0
    half_spread_ticks: int = 1
    depth_ticks: float = 2.0
    maker_size: float = 10.0
    noise_rate: float = 0.5
    informed_rate: float = 0.3
    taker_size: float = 4.0
    seed_levels: int = 6
    close_in_s: tuple[float | None, ...] = (None,)
    determine_after_s: float = 3600.0
    settle_after_s: float = 3600.0


SCENARIO_PARAMS: Final[dict[str, ScenarioParams]] = {
    "calm": ScenarioParams(),
    "trending": ScenarioParams(vol=0.008, drift=0.003, informed_rate=0.6),
    "jump": ScenarioParams(jump_rate=1 / 40, jump_size=1.0, informed_rate=1.0),
    "thin": ScenarioParams(
        maker_rate=0.4,
        maker_lifetime_s=60.0,
        half_spread_ticks=3,
        depth_ticks=6.0,
        maker_size=3.0,
        noise_rate=0.05,
        informed_rate=0.05,
        taker_size=2.0,
        seed_levels=2,
    ),
    "near_close": ScenarioParams(
        close_in_s=(240.0, 360.0, 480.0),
        determine_after_s=30.0,
        settle_after_s=30.0,
    ),
    "settlement": ScenarioParams(
        close_in_s=(90.0, None),
        determine_after_s=10.0,
        settle_after_s=10.0,
    ),
}
"""The parameters of every scenario in :data:`SCENARIOS`."""


@dataclass(frozen=True, slots=True)
class Universe:
    """Everything :func:`install` registers, plus what the background flow starts from.

    Attributes:
        series: One series per event.
        events: The events, in order.
        markets: The markets, in order (two per event).
        initial_fairs: The starting fair probability of each market, aligned with ``markets``.
        scenario: The scenario the universe was built for.
        seed: The seed it was built from.
        start_ns: The time it was built for (markets open before, books seeded at).
    """

    series: tuple[SeriesDef, ...]
    events: tuple[EventDef, ...]
    markets: tuple[MarketDef, ...]
    initial_fairs: tuple[float, ...]
    scenario: str
    seed: int
    start_ns: int

    @property
    def params(self) -> ScenarioParams:
        """The scenario's parameters."""
        return SCENARIO_PARAMS[self.scenario]

    def initial_fair(self, ticker: str) -> float:
        """The starting fair probability of ``ticker``.

        Raises:
            KeyError: if no market has that ticker.
        """
        for market, fair in zip(self.markets, self.initial_fairs, strict=True):
            if market.ticker == ticker:
                return fair
        raise KeyError(ticker)


def build_universe(n_markets: int, seed: int, scenario: str, now_ns: int) -> Universe:
    """Builds a deterministic universe of ``n_markets`` markets.

    Args:
        n_markets: How many markets (at least 1); two per event, one event per series.
        seed: Equal seeds (with equal other arguments) give equal universes.
        scenario: One of :data:`SCENARIOS`.
        now_ns: The start of the run, Unix nanoseconds.

    Raises:
        ConfigError: if ``scenario`` is unknown or ``n_markets`` is below 1.
    """
    params = _check(n_markets, scenario)
    rng = random.Random(seed)
    n_events = -(-n_markets // _MARKETS_PER_EVENT)
    series: list[SeriesDef] = []
    events: list[EventDef] = []
    markets: list[MarketDef] = []
    fairs: list[float] = []
    for index in range(n_events):
        close_ns = _close_ns(params, index, now_ns)
        s, e = _series_and_event(index, close_ns)
        series.append(s)
        events.append(e)
        first = index * _MARKETS_PER_EVENT
        count = min(_MARKETS_PER_EVENT, n_markets - first)
        indices = range(first, first + count)
        new_markets, new_fairs = _markets(rng, e, indices, n_markets, (now_ns, close_ns))
        markets.extend(new_markets)
        fairs.extend(new_fairs)
    return Universe(
        tuple(series), tuple(events), tuple(markets), tuple(fairs), scenario, seed, now_ns
    )


def install(engine: MatchingEngine, universe: Universe) -> None:
    """Registers the universe with ``engine`` and seeds every book with background liquidity.

    Opens the accounts of :data:`BACKGROUND_USERS` with :data:`BACKGROUND_BALANCE` each, then
    rests ``seed_levels`` ``bg-maker`` orders per side around each market's starting fair.
    The markets are copied, so one universe can be installed into several engines.
    """
    for series in universe.series:
        engine.add_series(series)
    for event in universe.events:
        engine.add_event(event)
    for market in universe.markets:
        engine.add_market(replace(market), universe.start_ns)
    for user in BACKGROUND_USERS:
        engine.open_account(user, BACKGROUND_BALANCE)
    rng = random.Random(universe.seed * 1_000_003 + 17)
    for market, fair in zip(universe.markets, universe.initial_fairs, strict=True):
        _seed_book(engine, universe, market, fair, rng)


def maker_price(grid: PriceGrid, fair: float, side: BookSide, ticks: int) -> Price | None:
    """The price ``ticks`` grid steps on ``side``'s passive side of ``fair``.

    A bid is ``ticks`` steps below the highest valid price at or below the fair; an ask is
    ``ticks`` steps above the lowest valid price at or above it.

    Returns:
        The price, or ``None`` when it would fall off the grid.
    """
    fair_price = fair * ONE_DOLLAR
    if side is BookSide.BID:
        base = grid.floor(math.floor(fair_price))
        return None if base is None else grid.offset(base, -ticks)
    base = grid.ceil(math.ceil(fair_price))
    return None if base is None else grid.offset(base, ticks)


def _check(n_markets: int, scenario: str) -> ScenarioParams:
    params = SCENARIO_PARAMS.get(scenario)
    if params is None:
        raise ConfigError([f"scenario: unknown {scenario!r}, expected one of {SCENARIOS}"])
    if n_markets < 1:
        raise ConfigError([f"markets: must be at least 1, got {n_markets}"])
    return params


def _close_ns(params: ScenarioParams, event_index: int, now_ns: int) -> int:
    entries = params.close_in_s
    close_in = entries[min(event_index, len(entries) - 1)]
    if close_in is not None:
        return now_ns + round(close_in * _NS_PER_S)
    midnight = now_ns - now_ns % _DAY_NS
    return midnight + (2 + event_index) * _DAY_NS + _CLOSE_HOUR_UTC * 3600 * _NS_PER_S


def _letters(index: int) -> str:
    """A, B, ..., Z, AA, AB, ... (bijective base 26)."""
    text = ""
    index += 1
    while index:
        index, digit = divmod(index - 1, 26)
        text = chr(ord("A") + digit) + text
    return text


def _date_code(ns: int) -> tuple[str, str]:
    """``("26NOV23", "Nov 23, 2026")`` for a time on 2026-11-23 UTC."""
    day = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)
    code = f"{day.year % 100:02d}{_MONTHS[day.month - 1]}{day.day:02d}"
    return code, f"{_MONTHS[day.month - 1].title()} {day.day}, {day.year}"


def _series_and_event(index: int, close_ns: int) -> tuple[SeriesDef, EventDef]:
    letters = _letters(index)
    series_ticker = f"KXSIM{letters}"
    code, spoken = _date_code(close_ns)
    series = SeriesDef(
        ticker=series_ticker,
        title=f"Simulated index {letters}",
        fee_type=_FEE_TYPES[index % len(_FEE_TYPES)],
        fee_multiplier=_MULTIPLIERS[index % len(_MULTIPLIERS)],
        category=_CATEGORIES[index % len(_CATEGORIES)],
    )
    event = EventDef(
        event_ticker=f"{series_ticker}-{code}",
        series_ticker=series_ticker,
        title=f"Simulated index {letters} on {spoken}",
        sub_title=f"On {spoken}",
    )
    return series, event


def _is_sub_cent(index: int, n_markets: int) -> bool:
    return index % 4 == 3 or (n_markets < 4 and index == n_markets - 1)


def _markets(
    rng: random.Random,
    event: EventDef,
    indices: range,
    n_markets: int,
    times: tuple[int, int],
) -> tuple[list[MarketDef], list[float]]:
    """The strike markets of one event, lower strike (higher fair) first."""
    now_ns, close_ns = times
    base = rng.randrange(20, 80, 5)
    letters = event.series_ticker.removeprefix("KXSIM")
    _, spoken = _date_code(close_ns)
    markets: list[MarketDef] = []
    fairs: list[float] = []
    for offset, index in enumerate(indices):
        strike = base - 5 + 10 * offset
        sub_cent = _is_sub_cent(index, n_markets)
        markets.append(
            MarketDef(
                ticker=f"{event.event_ticker}-T{strike}",
                event_ticker=event.event_ticker,
                title=f"Will simulated index {letters} be above {strike} on {spoken}?",
                yes_sub_title=f"Above {strike}",
                price_ranges=TAPERED_DECI_CENT_RANGES if sub_cent else LINEAR_CENT_RANGES,
                price_level_structure="tapered_deci_cent" if sub_cent else "linear_cent",
                open_ns=now_ns - _DAY_NS,
                close_ns=close_ns,
            )
        )
        low, high = (0.04, 0.08) if sub_cent else (0.3, 0.7) if offset == 0 else (0.2, 0.5)
        fairs.append(round(rng.uniform(low, high), 4))
    return markets, fairs


def _seed_book(
    engine: MatchingEngine,
    universe: Universe,
    market: MarketDef,
    fair: float,
    rng: random.Random,
) -> None:
    params = universe.params
    grid = PriceGrid.from_ranges(market.price_ranges)
    for level in range(params.seed_levels):
        ticks = params.half_spread_ticks + level
        for side in (BookSide.BID, BookSide.ASK):
            price = maker_price(grid, fair, side, ticks)
            if price is None:
                continue
            count = _seed_count(rng, params.maker_size, level)
            request = OrderRequest(market.ticker, side, price, count)
            try:
                engine.create_order(BG_MAKER, request, universe.start_ns)
            except Rejection:
                continue


def _seed_count(rng: random.Random, median: float, level: int) -> Qty:
    contracts = median * (1.0 + 0.5 * level) * rng.uniform(0.5, 1.5)
    return max(1, round(contracts)) * QTY_SCALE
