"""Background traders for the local exchange, and the market lifecycle they run under.

Theory of operation
-------------------
Each market has a latent **fair probability** ``p = 1 / (1 + exp(-x))`` whose logit ``x``
follows a Brownian motion with a per-market drift (``trending``), Poisson jumps (``jump``)
and a volatility that grows as the close approaches (``sqrt(600 s / time to close)``, at
most 3×). ``x`` is evolved lazily: only when an event touches the market, by the exact
Gaussian increment for the time elapsed, and it is clamped to ``|x| <= 4.6`` (1 % … 99 %).

Background activity is one continuous-time Markov chain simulated event by event
(Gillespie's algorithm). Every open market has constant rates of

* **maker** arrivals: a ``bg-maker`` limit order on a random side, ``half_spread_ticks``
  plus a geometric number of grid steps from the fair (depth thins out with distance, size
  grows with it); an order that would cross the opposite best is not sent (makers do not
  take, and do not pile up behind a stale quote either);
* **noise takers**: a ``bg-taker`` IOC order on a random side at the opposite best (or
  one step through it), whatever the fair;
* **informed takers**: a ``bg-informed`` IOC order that buys every ask below the fair (or
  sells every bid above it) by more than half a tick, sweeping most of that stale size (up
  to a cap), which is what picks off stale quotes after the fair moves (toxicity);
* **jumps** of the fair (``jump`` scenario);

and each resting background order is **cancelled** at rate ``1 / maker_lifetime_s`` (the
farther of two random orders from the fair goes first). The total rate ``R`` is summed
after every event, the time to the next event is exponential with mean ``1 / R``, and the
event is picked in proportion to its rate. The next event time is carried across calls, so
``advance(t1); advance(t2)`` does exactly what ``advance(t2)`` does: the stream depends on
the seed and on what else happened in the engine, never on how often the caller polls.

The **lifecycle** (close, determine, settle) is a schedule read from each market's status
and close time: close at ``close_ns``, determine ``determine_after_s`` later (``yes`` with
probability equal to the fair at that moment, from a separate random stream), settle
``settle_after_s`` after that. :class:`LifecycleDriver` runs it on its own (for a server
without background flow); :class:`BackgroundFlow` interleaves it with its events in time
order. The engine refuses orders it should refuse (closed market, pause, deactivated
market); a refused background order is counted in :attr:`FlowStats.rejected` and skipped.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from kmm.book.grid import PriceGrid
from kmm.errors import ConfigError
from kmm.sim.engine import (
    CreateResult,
    MarketDef,
    MarketStatus,
    MatchingEngine,
    OrderRequest,
    OrderStatus,
    Rejection,
    TimeInForce,
)
from kmm.sim.universe import (
    BG_INFORMED,
    BG_MAKER,
    BG_TAKER,
    REGIME_PARAMS,
    SCENARIO_PARAMS,
    SCENARIOS,
    ScenarioParams,
    Universe,
    maker_price,
    pick_regime,
)
from kmm.types import ONE_DOLLAR, QTY_SCALE, BookSide, Price, Qty

__all__ = ["BackgroundFlow", "FlowStats", "LifecycleDriver"]

_NS_PER_S: Final = 1_000_000_000
_LOGIT_LIMIT: Final = 4.6
_CLOSE_HORIZON_S: Final = 600.0
_MAX_VOL_SCALE: Final = 3.0
_FRACTIONAL_SHARE: Final = 0.1
_SIZE_SPREAD: Final = 0.6
_NEVER: Final = 1 << 126
_INFORMED_CAP: Final = 50.0
"""An informed taker takes at most this many median taker sizes at once."""
_OPEN: Final = frozenset({MarketStatus.INITIALIZED, MarketStatus.ACTIVE, MarketStatus.INACTIVE})


@dataclass(slots=True)
class FlowStats:
    """Counters of what the background traders did.

    Attributes:
        events: Random events simulated (arrivals, cancels, jumps).
        orders_sent: Orders submitted to the engine.
        rejected: Submitted orders (or cancels) the engine refused.
        skipped: Arrivals that sent nothing (no book to hit, no edge, off the grid).
        cancels: Background orders cancelled.
        fills: Fills of background taker orders.
        jumps: Jumps of a fair.
        lifecycle: Close, determine and settle operations performed.
        regime_switches: Markets of the ``mixed`` universe that moved to another regime.
    """

    events: int = 0
    orders_sent: int = 0
    rejected: int = 0
    skipped: int = 0
    cancels: int = 0
    fills: int = 0
    jumps: int = 0
    lifecycle: int = 0
    regime_switches: int = 0


class LifecycleDriver:
    """Closes, determines and settles markets when due, from each market's status.

    Args:
        engine: The engine holding the markets.
        universe: The installed universe (its scenario sets the determination and
            settlement delays).
        seed: Seeds the draw of each result.
        fair: The fair probability of a market at determination; defaults to the
            universe's starting fair.
    """

    def __init__(
        self,
        engine: MatchingEngine,
        universe: Universe,
        seed: int,
        fair: Callable[[str], float] | None = None,
    ) -> None:
        self._engine = engine
        self._defs = tuple(engine.markets[market.ticker] for market in universe.markets)
        self._fair = fair or universe.initial_fair
        self._rng = random.Random(seed * 7_919 + 3)
        params = universe.params
        self._determine_ns = round(params.determine_after_s * _NS_PER_S)
        self._settle_ns = round(params.settle_after_s * _NS_PER_S)
        self._failed: set[str] = set()
        self._seen: int | None = None
        self._next_due: int | None = None
        self.operations = 0

    def next_due_ns(self) -> int | None:
        """When the next lifecycle operation is due, or ``None`` if none is left."""
        # Recomputed only when a status or a close time changed (the engine counts them)
        seen = self._engine.lifecycle_version
        if seen != self._seen:
            self._seen = seen
            due = [self._due_ns(market) for market in self._defs]
            pending = [ns for ns in due if ns is not None]
            self._next_due = min(pending) if pending else None
        return self._next_due

    def advance(self, now_ns: int) -> int:
        """Performs every operation due at or before ``now_ns``, each at its due time.

        Returns:
            How many engine operations were performed.
        """
        done = 0
        while True:
            due_ns = self.next_due_ns()
            if due_ns is None or due_ns > now_ns:
                return done
            market = min(self._defs, key=self._due_or_never)
            self._perform(market, due_ns)
            done += 1

    def _due_or_never(self, market: MarketDef) -> int:
        due_ns = self._due_ns(market)
        return _NEVER if due_ns is None else due_ns

    def _due_ns(self, market: MarketDef) -> int | None:
        if market.ticker in self._failed:
            return None
        if market.status in _OPEN:
            return market.close_ns
        if market.status is MarketStatus.CLOSED:
            return market.close_ns + self._determine_ns
        if market.status is MarketStatus.DETERMINED:
            return market.close_ns + self._determine_ns + self._settle_ns
        return None

    def _perform(self, market: MarketDef, due_ns: int) -> None:
        ticker = market.ticker
        try:
            if market.status in _OPEN:
                self._engine.close_market(ticker, due_ns)
            elif market.status is MarketStatus.CLOSED:
                result = "yes" if self._rng.random() < self._fair(ticker) else "no"
                self._engine.determine_market(ticker, result, due_ns)
            else:
                self._engine.settle_market(ticker, due_ns)
        except Rejection:
            self._failed.add(ticker)
            self._seen = None
            return
        self.operations += 1


@dataclass(slots=True, eq=False)
class _Market:
    """One market's latent fair, how it flows now, and the background orders resting in it.

    ``params`` is the scenario's, or in ``mixed`` the market's current regime's; ``activity``
    scales its maker and taker arrival rates; ``anchor`` is the logit its regime began at (the
    level a mean-reverting regime pulls back to); ``rate`` is its total event rate.
    """

    ticker: str
    grid: PriceGrid
    logit: float
    drift: float
    updated_ns: int
    definition: MarketDef
    params: ScenarioParams
    activity: float = 1.0
    regime: str = ""
    anchor: float = 0.0
    rate: float = 0.0
    resting: list[tuple[str, Price]] = field(default_factory=list)


class BackgroundFlow:
    """Background makers, takers and informed traders over every market of a universe.

    Args:
        engine: The engine the universe was installed into (see
            :func:`kmm.sim.universe.install`).
        universe: The universe.
        scenario: How the traders behave (one of ``SCENARIOS``); the universe's own
            scenario sets close times and lifecycle delays.
        seed: Equal seeds give equal flows (given equal engine activity from others).
        start_ns: The time the simulation starts from.

    Attributes:
        stats: What the traders did so far.
        now_ns: The time of the last event simulated.
    """

    def __init__(
        self,
        engine: MatchingEngine,
        universe: Universe,
        scenario: str,
        seed: int,
        start_ns: int,
    ) -> None:
        if scenario not in SCENARIOS:
            raise ConfigError([f"scenario: unknown {scenario!r}, expected one of {SCENARIOS}"])
        self._engine = engine
        self._params: ScenarioParams = SCENARIO_PARAMS[scenario]
        self._rng = random.Random(seed)
        self._uniform = not universe.regimes
        self._switch_rate = 0.0 if self._uniform else 1.0 / universe.params.regime_dwell_s
        self._markets = {
            market.ticker: self._new_market(universe, index, start_ns)
            for index, market in enumerate(universe.markets)
        }
        self._lifecycle = LifecycleDriver(engine, universe, seed, self.fair)
        self._flowing: list[_Market] = []
        self._cumulative: list[float] = []
        self._statuses = -1
        """The engine's lifecycle version the flowing markets were computed at."""
        self._resting_total = 0
        self._next_ns: int | None = None
        self._rate_per_market = (
            self._params.maker_rate
            + self._params.noise_rate
            + self._params.informed_rate
            + self._params.jump_rate
        )
        self._cancel_rate = 1.0 / self._params.maker_lifetime_s
        self.stats = FlowStats()
        self.now_ns = start_ns
        self._refresh_flowing()

    def regime(self, ticker: str) -> str:
        """The market's current regime (one of ``REGIMES``), or ``""`` without regimes.

        Raises:
            KeyError: if the market is not in the universe.
        """
        return self._markets[ticker].regime

    def fair(self, ticker: str) -> float:
        """The latent fair probability of ``ticker`` as of its last event.

        Raises:
            KeyError: if the market is not in the universe.
        """
        return 1.0 / (1.0 + math.exp(-self._markets[ticker].logit))

    @property
    def resting_orders(self) -> int:
        """How many background orders the flow believes are resting."""
        return self._resting_total

    def advance(self, now_ns: int) -> int:
        """Simulates every background event and lifecycle step up to ``now_ns``.

        Returns:
            How many engine operations were performed (orders, cancels, lifecycle).
        """
        if now_ns <= self.now_ns:
            return 0
        if self._refresh_flowing():
            self._next_ns = None
        operations = 0
        life_ns = self._lifecycle.next_due_ns()
        while True:
            if self._next_ns is None:
                self._next_ns = self._draw_next(self.now_ns)
            if life_ns is not None and life_ns <= min(self._next_ns, now_ns):
                operations += self._run_lifecycle(life_ns)
                life_ns = self._lifecycle.next_due_ns()
                continue
            if self._next_ns > now_ns:
                return operations
            self.now_ns, self._next_ns = self._next_ns, None
            operations += self._event(self.now_ns)

    def next_event_ns(self) -> int:
        """When the next background event or lifecycle step is due (drawn ahead: a later
        :meth:`advance` performs exactly that event, so peeking changes nothing)."""
        if self._refresh_flowing():
            self._next_ns = None
        if self._next_ns is None:
            self._next_ns = self._draw_next(self.now_ns)
        life_ns = self._lifecycle.next_due_ns()
        return self._next_ns if life_ns is None else min(self._next_ns, life_ns)

    # Scheduling

    def _new_market(self, universe: Universe, index: int, start_ns: int) -> _Market:
        ticker = universe.markets[index].ticker
        fair = universe.initial_fairs[index]
        definition = self._engine.markets[ticker]
        params = self._params if self._uniform else universe.market_params(index)
        sign = 1.0 if self._rng.random() < 0.5 else -1.0
        logit = math.log(fair / (1.0 - fair))
        market = _Market(
            ticker=ticker,
            grid=PriceGrid.from_ranges(definition.price_ranges),
            logit=logit,
            drift=sign * params.drift,
            updated_ns=start_ns,
            definition=definition,
            params=params,
            activity=universe.market_activity(index),
            regime=universe.regimes[index] if universe.regimes else "",
            anchor=logit,
        )
        market.rate = self._market_rate(market)
        for order in self._engine.resting_orders(ticker):
            if order.user_id == BG_MAKER:
                market.resting.append((order.order_id, order.price))
        return market

    def _refresh_flowing(self) -> bool:
        """Recomputes which markets trade; returns whether that changed."""
        version = self._engine.lifecycle_version
        if version == self._statuses:
            return False
        self._statuses = version
        flowing = [m for m in self._markets.values() if m.definition.status in _OPEN]
        if flowing == self._flowing:
            return False
        for market in self._markets.values():
            if market not in flowing:
                market.resting.clear()
        self._flowing = flowing
        self._resting_total = sum(len(m.resting) for m in flowing)
        self._sum_rates()
        return True

    def _market_rate(self, market: _Market) -> float:
        params = market.params
        takers = params.maker_rate + params.noise_rate + params.informed_rate
        return takers * market.activity + params.jump_rate + self._switch_rate

    def _sum_rates(self) -> None:
        """The running sums of the flowing markets' rates (with regimes only)."""
        if self._uniform:
            return
        total = 0.0
        self._cumulative = []
        for market in self._flowing:
            total += market.rate
            self._cumulative.append(total)

    def _arrivals_rate(self) -> float:
        if self._uniform:
            return self._rate_per_market * len(self._flowing)
        return self._cumulative[-1] if self._cumulative else 0.0

    def _draw_next(self, from_ns: int) -> int:
        total = self._arrivals_rate() + self._cancel_rate * self._resting_total
        if total <= 0.0:
            return _NEVER
        return from_ns + 1 + int(self._rng.expovariate(total) * _NS_PER_S)

    def _run_lifecycle(self, due_ns: int) -> int:
        operations = self._lifecycle.advance(due_ns)
        self.stats.lifecycle += operations
        self.now_ns = max(self.now_ns, due_ns)
        self._refresh_flowing()
        self._next_ns = None
        return operations

    def _event(self, now_ns: int) -> int:
        """Picks and runs one event in proportion to its rate; returns engine operations."""
        self.stats.events += 1
        arrivals = self._arrivals_rate()
        u = self._rng.random() * (arrivals + self._cancel_rate * self._resting_total)
        if u >= arrivals:
            index = min(int((u - arrivals) / self._cancel_rate), self._resting_total - 1)
            return self._cancel(index, now_ns)
        market, u = self._pick(u)
        self._evolve(market, now_ns)
        return self._arrival(market, u, now_ns)

    def _pick(self, u: float) -> tuple[_Market, float]:
        """The market whose share of the arrival rate ``u`` falls in, and ``u`` within it."""
        if self._uniform:
            position = min(int(u / self._rate_per_market), len(self._flowing) - 1)
            return self._flowing[position], u - position * self._rate_per_market
        position = min(bisect.bisect_right(self._cumulative, u), len(self._flowing) - 1)
        below = self._cumulative[position - 1] if position else 0.0
        return self._flowing[position], u - below

    def _arrival(self, market: _Market, u: float, now_ns: int) -> int:
        params = market.params
        activity = market.activity
        if u < params.maker_rate * activity:
            return self._maker(market, now_ns)
        u -= params.maker_rate * activity
        if u < params.noise_rate * activity:
            return self._noise_taker(market, now_ns)
        u -= params.noise_rate * activity
        if u < params.informed_rate * activity:
            return self._informed_taker(market, now_ns)
        u -= params.informed_rate * activity
        if self._uniform or u < params.jump_rate:
            self._jump(market)
            return 0
        self._switch_regime(market)
        return 0

    def _switch_regime(self, market: _Market) -> None:
        """Moves the market to another regime, drawn by the regimes' weights."""
        regime = pick_regime(self._rng, market.regime)
        market.regime = regime
        market.params = REGIME_PARAMS[regime]
        sign = 1.0 if self._rng.random() < 0.5 else -1.0
        market.drift = sign * market.params.drift
        market.anchor = market.logit
        market.rate = self._market_rate(market)
        self.stats.regime_switches += 1
        self._sum_rates()

    # The fair

    def _evolve(self, market: _Market, now_ns: int) -> None:
        dt = (now_ns - market.updated_ns) / _NS_PER_S
        if dt <= 0.0:
            return
        to_close = (market.definition.close_ns - now_ns) / _NS_PER_S
        scale = 1.0
        if to_close < _CLOSE_HORIZON_S:
            scale = min(_MAX_VOL_SCALE, math.sqrt(_CLOSE_HORIZON_S / max(to_close, 1.0)))
        params = market.params
        if params.revert_rate > 0.0:
            logit = _ornstein_uhlenbeck(market, params.vol * scale, dt, self._rng.gauss())
        else:
            step = market.drift * dt + params.vol * scale * math.sqrt(dt) * self._rng.gauss()
            logit = market.logit + step
        market.logit = min(_LOGIT_LIMIT, max(-_LOGIT_LIMIT, logit))
        market.updated_ns = now_ns

    def _jump(self, market: _Market) -> None:
        size = self._rng.expovariate(1.0 / market.params.jump_size)
        if self._rng.random() < 0.5:
            size = -size
        market.logit = min(_LOGIT_LIMIT, max(-_LOGIT_LIMIT, market.logit + size))
        self.stats.jumps += 1

    # Traders

    def _maker(self, market: _Market, now_ns: int) -> int:
        params = market.params
        side = self._side()
        depth = int(self._rng.expovariate(1.0 / params.depth_ticks)) if params.depth_ticks else 0
        ticks = params.half_spread_ticks + depth
        price = maker_price(market.grid, self.fair(market.ticker), side, ticks)
        price = self._passive(market, side, price)
        if price is None:
            self.stats.skipped += 1
            return 0
        count = self._size(params.maker_size * (1.0 + 0.3 * depth))
        result = self._send(BG_MAKER, OrderRequest(market.ticker, side, price, count), now_ns)
        if result is not None and result.order.status is OrderStatus.RESTING:
            market.resting.append((result.order.order_id, price))
            self._resting_total += 1
        return 1

    def _passive(self, market: _Market, side: BookSide, price: Price | None) -> Price | None:
        """``price``, or ``None`` if it would cross the opposite best (makers never take)."""
        if price is None:
            return None
        bid, ask = self._engine.best(market.ticker)
        if side is BookSide.BID and ask is not None and price >= ask:
            return None
        if side is BookSide.ASK and bid is not None and price <= bid:
            return None
        return price

    def _noise_taker(self, market: _Market, now_ns: int) -> int:
        side = self._side()
        bid, ask = self._engine.best(market.ticker)
        touch = ask if side is BookSide.BID else bid
        if touch is None:
            self.stats.skipped += 1
            return 0
        price: Price = touch
        if self._rng.random() < 0.3:
            price = market.grid.offset(touch, 1 if side is BookSide.BID else -1) or touch
        return self._take(BG_TAKER, market, side, price, now_ns)

    def _informed_taker(self, market: _Market, now_ns: int) -> int:
        fair_price = self.fair(market.ticker) * ONE_DOLLAR
        edge = market.grid.tick_at(market.grid.floor(int(fair_price)) or market.grid.min_price)
        bid, ask = self._engine.best(market.ticker)
        limit: Price | None = None
        side = BookSide.BID
        if ask is not None and ask < fair_price - edge / 2:
            limit = market.grid.floor(math.floor(fair_price - edge / 2))
        elif bid is not None and bid > fair_price + edge / 2:
            side = BookSide.ASK
            limit = market.grid.ceil(math.ceil(fair_price + edge / 2))
        if limit is None:
            self.stats.skipped += 1
            return 0
        return self._take(
            BG_INFORMED, market, side, limit, now_ns, self._sweep(market, side, limit)
        )

    def _sweep(self, market: _Market, side: BookSide, limit: Price) -> Qty:
        """Most of the resting size an informed taker can reach through ``limit``, capped."""
        yes_bids, no_bids = self._engine.book_levels(market.ticker)
        if side is BookSide.BID:
            stale = sum(q for p, q in no_bids.items() if ONE_DOLLAR - p <= limit)
        else:
            stale = sum(q for p, q in yes_bids.items() if p >= limit)
        cap = round(market.params.taker_size * _INFORMED_CAP * QTY_SCALE)
        return max(1, min(cap, round(stale * self._rng.uniform(0.5, 1.0))))

    def _take(
        self,
        user: str,
        market: _Market,
        side: BookSide,
        price: Price,
        now_ns: int,
        count: Qty | None = None,
    ) -> int:
        if count is None:
            count = self._size(market.params.taker_size)
        request = OrderRequest(market.ticker, side, price, count, time_in_force=TimeInForce.IOC)
        result = self._send(user, request, now_ns)
        if result is not None:
            self.stats.fills += len(result.fills)
        return 1

    def _cancel(self, index: int, now_ns: int) -> int:
        market, index = self._locate(index)
        other = self._rng.randrange(len(market.resting))
        fair_price = self.fair(market.ticker) * ONE_DOLLAR
        if abs(market.resting[other][1] - fair_price) > abs(market.resting[index][1] - fair_price):
            index = other
        order_id, _ = market.resting[index]
        market.resting[index] = market.resting[-1]
        market.resting.pop()
        self._resting_total -= 1
        if self._engine.get_order(BG_MAKER, order_id).status is not OrderStatus.RESTING:
            return 0
        try:
            self._engine.cancel_order(BG_MAKER, order_id, now_ns)
        except Rejection:
            self.stats.rejected += 1
            return 1
        self.stats.cancels += 1
        return 1

    def _locate(self, index: int) -> tuple[_Market, int]:
        """The market holding the ``index``-th resting order across flowing markets."""
        for market in self._flowing:
            if index < len(market.resting):
                return market, index
            index -= len(market.resting)
        raise AssertionError(f"resting order index out of range ({self._resting_total} held)")

    # Helpers

    def _send(self, user: str, request: OrderRequest, now_ns: int) -> CreateResult | None:
        self.stats.orders_sent += 1
        try:
            return self._engine.create_order(user, request, now_ns)
        except Rejection:
            self.stats.rejected += 1
            return None

    def _side(self) -> BookSide:
        return BookSide.BID if self._rng.random() < 0.5 else BookSide.ASK

    def _size(self, median: float) -> Qty:
        contracts = median * math.exp(_SIZE_SPREAD * self._rng.gauss())
        if self._rng.random() < _FRACTIONAL_SHARE:
            return max(1, round(contracts * QTY_SCALE))
        return max(1, round(contracts)) * QTY_SCALE


def _ornstein_uhlenbeck(market: _Market, vol: float, dt: float, gauss: float) -> float:
    """The logit after ``dt`` seconds of an exact Ornstein–Uhlenbeck step toward its anchor."""
    theta = market.params.revert_rate
    decay = math.exp(-theta * dt)
    spread = vol * math.sqrt((1.0 - decay * decay) / (2.0 * theta))
    return market.anchor + (market.logit - market.anchor) * decay + spread * gauss
