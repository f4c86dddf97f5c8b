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
    "BOARD_SCENARIOS",
    "LINEAR_CENT_RANGES",
    "REGIMES",
    "REGIME_PARAMS",
    "SCENARIOS",
    "SCENARIO_PARAMS",
    "TAPERED_DECI_CENT_RANGES",
    "ScenarioParams",
    "Universe",
    "build_universe",
    "install",
    "maker_price",
    "pick_regime",
]

SCENARIOS: Final = ("calm", "trending", "jump", "thin", "near_close", "settlement", "mixed")
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
        revert_rate: Mean reversion of the fair's logit toward where its regime began, per
            second (an Ornstein–Uhlenbeck pull; 0: a random walk).
        regime_dwell_s: In ``mixed``, the mean time a market stays in one regime of
            :data:`REGIMES` before it switches (0: no regimes, every market flows alike).
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
    revert_rate: float = 0.0
    regime_dwell_s: float = 0.0


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
    "mixed": ScenarioParams(determine_after_s=60.0, settle_after_s=60.0, regime_dwell_s=1200.0),
}
"""The parameters of every scenario in :data:`SCENARIOS`."""

REGIMES: Final = ("quiet", "mean_reverting", "trending", "chaotic", "thin")
"""The flow regimes a market of the ``mixed`` universe moves between."""

REGIME_PARAMS: Final[dict[str, ScenarioParams]] = {
    "quiet": ScenarioParams(
        vol=0.002, maker_rate=1.5, noise_rate=0.15, informed_rate=0.05, seed_levels=4
    ),
    "mean_reverting": ScenarioParams(
        vol=0.02, revert_rate=1 / 60, maker_rate=4.0, noise_rate=0.6, informed_rate=0.2
    ),
    "trending": ScenarioParams(vol=0.008, drift=0.003, informed_rate=0.6),
    "chaotic": ScenarioParams(
        vol=0.02,
        jump_rate=1 / 60,
        jump_size=0.8,
        maker_rate=3.0,
        half_spread_ticks=2,
        noise_rate=0.5,
        informed_rate=1.0,
        taker_size=6.0,
    ),
    "thin": replace(SCENARIO_PARAMS["thin"], maker_lifetime_s=ScenarioParams().maker_lifetime_s),
}
"""Each regime's flow (``thin`` is the ``thin`` scenario's). Every regime keeps the default
``maker_lifetime_s`` so that a resting background order is cancelled at one rate whatever its
market's regime."""

_REGIME_WEIGHTS: Final = (0.3, 0.25, 0.15, 0.1, 0.2)
"""How often each of :data:`REGIMES` is drawn, for a market's first regime and at a switch."""

BOARD_SCENARIOS: Final = SCENARIOS[:6]
"""The scenarios whose markets all flow alike: the strategy scoreboard's."""


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
        regimes: In ``mixed``, each market's first regime (one of :data:`REGIMES`), aligned
            with ``markets``; empty otherwise.
        activity: In ``mixed``, each market's factor on its arrival rates; empty otherwise.
    """

    series: tuple[SeriesDef, ...]
    events: tuple[EventDef, ...]
    markets: tuple[MarketDef, ...]
    initial_fairs: tuple[float, ...]
    scenario: str
    seed: int
    start_ns: int
    regimes: tuple[str, ...] = ()
    activity: tuple[float, ...] = ()

    @property
    def params(self) -> ScenarioParams:
        """The scenario's parameters."""
        return SCENARIO_PARAMS[self.scenario]

    def market_params(self, index: int) -> ScenarioParams:
        """How the ``index``-th market flows at the start: its regime's, else the scenario's."""
        return REGIME_PARAMS[self.regimes[index]] if self.regimes else self.params

    def market_activity(self, index: int) -> float:
        """The ``index``-th market's activity: a factor on its arrival rates (1 without
        regimes)."""
        return self.activity[index] if self.activity else 1.0

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
    if params.regime_dwell_s > 0:
        return _build_mixed(n_markets, seed, scenario, now_ns)
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
    for index, (market, fair) in enumerate(
        zip(universe.markets, universe.initial_fairs, strict=True)
    ):
        _seed_book(engine, universe.market_params(index), universe.start_ns, (market, fair), rng)


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
    params: ScenarioParams,
    start_ns: int,
    market_fair: tuple[MarketDef, float],
    rng: random.Random,
) -> None:
    market, fair = market_fair
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
                engine.create_order(BG_MAKER, request, start_ns)
            except Rejection:
                continue


def _seed_count(rng: random.Random, median: float, level: int) -> Qty:
    contracts = median * (1.0 + 0.5 * level) * rng.uniform(0.5, 1.5)
    return max(1, round(contracts)) * QTY_SCALE


# --------------------------------------------------------------------------- the mixed universe

_MIXED_CATEGORIES: Final = (
    "Economics",
    "Financials",
    "Climate and Weather",
    "Politics",
    "Sports",
    "Crypto",
    "Entertainment",
    "Science and Technology",
    "Companies",
    "World",
)
_MARKETS_PER_SERIES: Final = 10
_MAX_STRIKES: Final = 6
_MIN_CLOSE_S: Final = 600.0
_MAX_CLOSE_S: Final = 180 * 86_400.0
_SCALAR_SHARE: Final = 0.04
_SCALAR_MIN_CLOSE_S: Final = 60 * 86_400.0
_SUB_CENT_SHARE: Final = 0.2
_NEWBORN_SHARE: Final = 0.05
_NEWBORN_S: Final = 120.0
_MIN_AGE_S: Final = 3600.0
_MAX_AGE_S: Final = 120 * 86_400.0
_COMBO_EVERY: Final = 20
_COMBO_SERIES: Final = "KXMVESIM"
_COMBO_COLLECTION: Final = "KXMVESIM-R"
_BUSY_HOUR_S: Final = 3600.0


@dataclass(slots=True)
class _MixedDraft:
    """The mixed universe while it is drawn: markets and their per-market flow, aligned."""

    rng: random.Random
    now_ns: int
    series: list[SeriesDef]
    events: list[EventDef]
    markets: list[MarketDef]
    fairs: list[float]
    regimes: list[str]
    activity: list[float]

    def add(self, market: MarketDef, fair: float, regime: str) -> None:
        activity = min(3.0, max(0.05, self.rng.lognormvariate(-0.7, 0.8)))
        _set_priors(self.rng, market, REGIME_PARAMS[regime], activity, self.now_ns)
        self.markets.append(market)
        self.fairs.append(fair)
        self.regimes.append(regime)
        self.activity.append(activity)


def _build_mixed(n_markets: int, seed: int, scenario: str, now_ns: int) -> Universe:
    """Hundreds of markets over dozens of series and events, each with its own flow regime.

    A market in twenty is a multivariate combo over two others; about one event in 25 is a
    scalar market. Close times spread log-uniformly from 10 minutes to 6 months, creation
    times from a minute to 4 months before the start (one market in 20 is brand new), and
    each market's activity (a factor on its arrival rates) is lognormal, so that a few
    markets carry most of the flow. The market list is shuffled: the first markets the API
    returns are no better than any others.
    """
    rng = random.Random(seed)
    draft = _MixedDraft(rng, now_ns, [], [], [], [], [], [])
    n_combos = n_markets // _COMBO_EVERY
    n_plain = n_markets - n_combos
    n_series = max(1, round(n_plain / _MARKETS_PER_SERIES))
    draft.series.extend(_mixed_series(index) for index in range(n_series))
    while len(draft.markets) < n_plain:
        series = draft.series[len(draft.events) % n_series]
        _mixed_event(draft, series, n_plain - len(draft.markets))
    if n_combos:
        _combos(draft, n_combos)
    order = list(range(len(draft.markets)))
    rng.shuffle(order)
    return Universe(
        tuple(draft.series),
        tuple(draft.events),
        tuple(draft.markets[i] for i in order),
        tuple(draft.fairs[i] for i in order),
        scenario,
        seed,
        now_ns,
        tuple(draft.regimes[i] for i in order),
        tuple(draft.activity[i] for i in order),
    )


def _mixed_series(index: int) -> SeriesDef:
    letters = _letters(index)
    return SeriesDef(
        ticker=f"KXSIM{letters}",
        title=f"Simulated index {letters}",
        fee_type=_FEE_TYPES[index % len(_FEE_TYPES)],
        fee_multiplier=_MULTIPLIERS[index % len(_MULTIPLIERS)],
        category=_MIXED_CATEGORIES[index % len(_MIXED_CATEGORIES)],
    )


def pick_regime(rng: random.Random, other_than: str | None = None) -> str:
    """A regime drawn by :data:`_REGIME_WEIGHTS`, never ``other_than``."""
    choices = [(r, w) for r, w in zip(REGIMES, _REGIME_WEIGHTS, strict=True) if r != other_than]
    return rng.choices([r for r, _ in choices], weights=[w for _, w in choices])[0]


def _mixed_event(draft: _MixedDraft, series: SeriesDef, room: int) -> None:
    """One event of ``series``: a strike ladder of binary markets, or one scalar market."""
    rng = draft.rng
    scalar = rng.random() < _SCALAR_SHARE
    close_s = math.exp(rng.uniform(math.log(_MIN_CLOSE_S), math.log(_MAX_CLOSE_S)))
    if scalar:
        close_s = max(close_s, _SCALAR_MIN_CLOSE_S)
    close_ns = draft.now_ns + round(close_s) * _NS_PER_S
    code, spoken = _date_code(close_ns)
    taken = {e.event_ticker for e in draft.events}
    event_ticker = f"{series.ticker}-{code}"
    suffix = 0
    while event_ticker in taken:
        suffix += 1
        event_ticker = f"{series.ticker}-{code}{_letters(suffix)}"
    event = EventDef(event_ticker, series.ticker, f"{series.title} on {spoken}", f"On {spoken}")
    draft.events.append(event)
    if scalar:
        market = _mixed_market(draft, event, f"{event_ticker}-S", "What level?", close_ns)
        market.market_type = "scalar"
        draft.add(market, round(rng.uniform(0.3, 0.7), 4), pick_regime(rng))
        return
    fair = rng.uniform(0.55, 0.97)
    base = rng.randrange(10, 60, 5)
    for step in range(min(rng.randint(1, _MAX_STRIKES), room)):
        strike = base + 5 * step
        market = _mixed_market(
            draft, event, f"{event_ticker}-T{strike}", f"Above {strike}", close_ns
        )
        draft.add(market, round(min(0.99, max(0.01, fair)), 4), pick_regime(rng))
        fair *= rng.uniform(0.45, 0.85)


def _mixed_market(
    draft: _MixedDraft, event: EventDef, ticker: str, subtitle: str, close_ns: int
) -> MarketDef:
    rng = draft.rng
    sub_cent = rng.random() < _SUB_CENT_SHARE
    if rng.random() < _NEWBORN_SHARE:
        age_s = rng.uniform(1.0, _NEWBORN_S)
    else:
        age_s = math.exp(rng.uniform(math.log(_MIN_AGE_S), math.log(_MAX_AGE_S)))
    return MarketDef(
        ticker=ticker,
        event_ticker=event.event_ticker,
        title=f"{event.title}: {subtitle}?",
        yes_sub_title=subtitle,
        price_ranges=TAPERED_DECI_CENT_RANGES if sub_cent else LINEAR_CENT_RANGES,
        price_level_structure="tapered_deci_cent" if sub_cent else "linear_cent",
        open_ns=draft.now_ns - round(age_s * _NS_PER_S),
        close_ns=close_ns,
    )


def _set_priors(
    rng: random.Random, market: MarketDef, params: ScenarioParams, activity: float, now_ns: int
) -> None:
    """Volume and open interest from before the start: about one busy hour a day of the
    market's own taker flow, with noise, so that they hint at its activity but not its
    regime's toxicity."""
    taker_per_s = activity * (params.noise_rate + params.informed_rate) * params.taker_size
    day = taker_per_s * _BUSY_HOUR_S * rng.uniform(0.3, 1.7)
    days_open = max(1.0, (now_ns - market.open_ns) / _DAY_NS)
    age_share = min(1.0, (now_ns - market.open_ns) / _DAY_NS)
    market.prior_volume_24h = round(day * age_share) * QTY_SCALE
    market.prior_volume = round(day * age_share * rng.uniform(1.0, days_open)) * QTY_SCALE
    market.prior_open_interest = round(day * age_share * rng.uniform(0.5, 3.0)) * QTY_SCALE


def _combos(draft: _MixedDraft, count: int) -> None:
    """``count`` multivariate combos, each over two of the binary markets drawn so far."""
    rng = draft.rng
    series = SeriesDef(
        ticker=_COMBO_SERIES,
        title="Simulated combos",
        fee_type=_FEE_TYPES[0],
        fee_multiplier=_MULTIPLIERS[0],
        category="Sports",
    )
    draft.series.append(series)
    binaries = [m for m in draft.markets if m.market_type == "binary"]
    for index in range(count):
        legs = rng.sample(binaries, 2) if len(binaries) >= 2 else binaries * 2
        close_ns = max(leg.close_ns for leg in legs)
        event_ticker = f"{_COMBO_SERIES}-S{index + 1:04d}"
        event = EventDef(event_ticker, _COMBO_SERIES, f"Simulated combo {index + 1}")
        draft.events.append(event)
        market = _mixed_market(draft, event, f"{event_ticker}-C1", "Both legs", close_ns)
        market.mve_collection_ticker = _COMBO_COLLECTION
        market.mve_legs = tuple(
            (leg.event_ticker, leg.ticker, "yes" if rng.random() < 0.5 else "no") for leg in legs
        )
        draft.add(market, round(rng.uniform(0.05, 0.4), 4), rng.choice(("quiet", "thin")))
