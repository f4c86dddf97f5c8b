"""Volatility mode's scanner and regime classifier: pure, fed the websocket's books and trades.

Theory of operation
-------------------
The scanner keeps, for every tracked market, one sample a second of the fair price of the book
without our orders (the websocket keeps the book; the core samples it on its one-second tick),
the spread and top-of-book depth of the last sample, and when it last saw a public trade. It
never reads REST. Every ``scan_s`` it computes, per market, over rolling windows of samples:

* ``sigma``: the standard deviation of one-second changes of the fair price, in dollars per
  √second (the unit of the quoter's σ), over ``sigma_window_s``;
* ``jump``: the range (highest − lowest) of the fair price over ``jump_window_s``;
* ``reversion``: a mean-reversion score from the variance ratio VR of
  ``vr_base_s × vr_lag``-second changes to ``vr_base_s``-second changes, ``1 − VR/2`` clamped
  to [0, 1]: 0.5 for a random walk, above it when moves undo themselves, below when they
  continue. The base is several seconds, not one: a book's mid follows the price in steps
  over a few seconds, which makes one-second changes look persistent whatever the regime;
* ``drift``: the net move over the regime window in units of ``σ·√T``;
* ``reverted``: the gate of both triggers, as seed 000 has it: the price now is within
  ``revert_tolerance`` of its mean over ``revert_window_s``, so the move came back rather than
  carried on (a one-way move is toxic to a market maker).

A **jump** trigger fires when ``jump >= jump`` and a **sigma** trigger when
``sigma >= sigma_trigger``, each only when reverted, the spread is at most ``max_spread`` and
at least ``warmup`` samples are in. A trigger is emitted as an event at most once per
``event_every_s`` in a market, and not while the market is *active*: from the moment an event
of it was taken (:meth:`VolatilityScanner.activate`, a session started) until the volatility
ends (``sigma < end_sigma`` and the range below the jump threshold). So an event that found
no session (the regime was not allowed yet, too many sessions ran) can come again later.
No event is emitted before the market's stable regime is known.

The **regime classifier** labels each market from the same features, in this order:
``unknown`` (fewer than ``min_observations`` samples), ``noise`` (others' spread at or above
``noise_spread``, no two-sided book, or top depth below ``min_depth``: a thin book's mid
bounces without telling anything), ``chaotic`` (``sigma >= chaotic_sigma``), ``quiet``
(``sigma < quiet_sigma``), ``trending`` (``drift >= drift_threshold`` or
``reversion <= revert_bad``), ``mean_reverting`` (``reversion >= revert_good``), else ``noise``
(moves without structure). The thresholds were set on the local exchange's ``mixed`` universe,
whose markets switch between known regimes; ``tests/sim/test_volatility_mode.py`` measures the
classifier against them. A market's *stable*
regime changes only after ``stability`` consecutive scans agree on the new label, so one odd
window does not flip a session.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from kmm.types import ONE_DOLLAR, Price, Qty

__all__ = [
    "MarketScan",
    "Regime",
    "RegimeParams",
    "ScannerParams",
    "VolEvent",
    "VolatilityScanner",
    "classify",
    "features",
]


class Regime(StrEnum):
    """A market's flow regime, as the classifier labels it."""

    UNKNOWN = "unknown"
    QUIET = "quiet"
    MEAN_REVERTING = "mean_reverting"
    TRENDING = "trending"
    CHAOTIC = "chaotic"
    NOISE = "noise"


@dataclass(frozen=True, slots=True)
class ScannerParams:
    """The scanner's windows and triggers (prices in $0.0001, σ in dollars per √s).

    Attributes:
        window_s: Samples kept per market (one a second).
        scan_s: Seconds between scans.
        warmup: Samples needed before a trigger can fire.
        jump: The range over ``jump_window_s`` that is a jump.
        jump_window_s: The jump trigger's window.
        sigma_trigger: The σ that triggers.
        sigma_window_s: The σ window.
        revert_window_s: The window of the mean the price must have come back to.
        revert_tolerance: How close to that mean the price must be.
        max_spread: The widest spread (book without our orders) an event may start in.
        end_sigma: Volatility has ended below this σ (with no jump in the window).
        event_every_s: The least time between two events of one market.
    """

    window_s: int = 900
    scan_s: float = 5.0
    warmup: int = 60
    jump: Price = 600
    jump_window_s: int = 300
    sigma_trigger: float = 0.0015
    sigma_window_s: int = 120
    revert_window_s: int = 180
    revert_tolerance: Price = 300
    max_spread: Price = 1000
    end_sigma: float = 0.0005
    event_every_s: float = 60.0


@dataclass(frozen=True, slots=True)
class RegimeParams:
    """The regime classifier's thresholds (see the module doc for the order they apply in).

    Attributes:
        window_s: The window the regime features are computed over.
        min_observations: Samples needed before any regime but ``unknown``.
        quiet_sigma: Below this σ a market is quiet.
        chaotic_sigma: At or above this σ a market is chaotic.
        min_depth: Top-of-book depth (the thinner side) below which a market is noise.
        revert_good: A reversion score at or above this is mean-reverting.
        revert_bad: A reversion score at or below this is trending.
        drift_threshold: A net move of this many σ·√T is trending.
        noise_spread: Others' spread at or above this is noise.
        vr_base_s: The variance ratio's base interval in seconds.
        vr_lag: The variance ratio's lag, in base intervals.
        stability: Consecutive scans that must agree before the stable regime changes.
    """

    window_s: int = 300
    min_observations: int = 60
    quiet_sigma: float = 0.001
    chaotic_sigma: float = 0.004
    min_depth: Qty = 100
    revert_good: float = 0.5
    revert_bad: float = 0.1
    drift_threshold: float = 2.0
    noise_spread: Price = 700
    vr_base_s: int = 15
    vr_lag: int = 8
    stability: int = 6


@dataclass(frozen=True, slots=True)
class Features:
    """What one scan measured in one market."""

    samples: int
    fair: Price | None
    spread: Price | None
    depth: Qty
    sigma: float
    regime_sigma: float
    jump: Price
    reversion: float
    drift: float
    reverted: bool


@dataclass(frozen=True, slots=True)
class MarketScan:
    """One market in one scan: its features, the raw and stable regime, and its trigger."""

    ticker: str
    features: Features
    raw: Regime
    regime: Regime
    trigger: str | None
    last_trade_ns: int | None


@dataclass(frozen=True, slots=True)
class VolEvent:
    """A volatility event: a trigger fired in a market that was not active.

    Attributes:
        ticker: The market.
        ts_ns: When the scan found it.
        kind: ``jump`` or ``sigma`` (``jump`` when both fire).
        jump: The range over the jump window ($0.0001).
        sigma: The σ over the σ window (dollars per √s).
        strength: ``0.5·min(1, jump/(2·threshold)) + 0.5·min(1, σ/(2·threshold))``.
        direction: ``up``, ``down`` or ``""`` (moved less than half the jump threshold).
        regime: The market's stable regime at the event.
    """

    ticker: str
    ts_ns: int
    kind: str
    jump: Price
    sigma: float
    strength: float
    direction: str
    regime: Regime


class _Window:
    """One market's samples and state."""

    __slots__ = (
        "active",
        "candidate",
        "candidate_runs",
        "depth",
        "fairs",
        "last_event_ns",
        "last_trade_ns",
        "regime",
        "spread",
    )

    def __init__(self, size: int) -> None:
        self.fairs: deque[Price] = deque(maxlen=size)
        self.spread: Price | None = None
        self.depth: Qty = 0
        self.last_trade_ns: int | None = None
        self.last_event_ns: int | None = None
        self.regime = Regime.UNKNOWN
        self.candidate = Regime.UNKNOWN
        self.candidate_runs = 0
        self.active = False


def _sigma(values: Sequence[Price]) -> float:
    """σ of one-step changes in dollars per √step (0 with fewer than three samples)."""
    n = len(values) - 1
    if n < 2:
        return 0.0
    total = square = 0.0
    for i in range(n):
        d = values[i + 1] - values[i]
        total += d
        square += d * d
    mean = total / n
    var = square / n - mean * mean
    return math.sqrt(var) / ONE_DOLLAR if var > 0.0 else 0.0


def _reversion(values: Sequence[Price], base: int, lag: int) -> float:
    """``1 − VR/2`` clamped to [0, 1], VR the variance ratio of ``base × lag``-step to
    ``base``-step changes (overlapping), 0.5 when there are too few samples or no moves."""
    n, span = len(values), base * lag
    if n < span + base + 2:
        return 0.5
    short = sum((values[i + base] - values[i]) ** 2 for i in range(n - base)) / (n - base)
    if short == 0:
        return 0.5
    long = sum((values[i + span] - values[i]) ** 2 for i in range(n - span)) / (n - span)
    score = 1.0 - long / (lag * short) / 2.0
    return 0.0 if score < 0.0 else 1.0 if score > 1.0 else score


def features(
    fairs: Sequence[Price],
    spread: Price | None,
    depth: Qty,
    scanner: ScannerParams,
    regime: RegimeParams,
) -> Features:
    """The features of one market's samples (oldest first) for one scan."""
    n = len(fairs)
    if n == 0:
        return Features(0, None, spread, depth, 0.0, 0.0, 0, 0.5, 0.0, False)
    last = fairs[-1]
    recent = fairs[-(scanner.sigma_window_s + 1) :]
    sigma = _sigma(recent)
    jumped = fairs[-scanner.jump_window_s :]
    jump = max(jumped) - min(jumped)
    around = fairs[-scanner.revert_window_s :]
    mean = sum(around) / len(around)
    reverted = abs(last - mean) <= scanner.revert_tolerance
    window = fairs[-(regime.window_s + 1) :]
    regime_sigma = _sigma(window)
    reversion = _reversion(window, regime.vr_base_s, regime.vr_lag)
    spread_of_moves = regime_sigma * ONE_DOLLAR * math.sqrt(max(len(window) - 1, 1))
    drift = abs(window[-1] - window[0]) / spread_of_moves if spread_of_moves > 0 else 0.0
    return Features(n, last, spread, depth, sigma, regime_sigma, jump, reversion, drift, reverted)


def classify(f: Features, params: RegimeParams) -> Regime:
    """The raw regime of one scan's features (see the module doc)."""
    if f.samples < params.min_observations:
        return Regime.UNKNOWN
    if f.spread is None or f.spread >= params.noise_spread or f.depth < params.min_depth:
        return Regime.NOISE
    sigma = f.regime_sigma
    if sigma >= params.chaotic_sigma:
        return Regime.CHAOTIC
    if sigma < params.quiet_sigma:
        return Regime.QUIET
    if f.drift >= params.drift_threshold or f.reversion <= params.revert_bad:
        return Regime.TRENDING
    if f.reversion >= params.revert_good:
        return Regime.MEAN_REVERTING
    return Regime.NOISE


def _trigger(f: Features, params: ScannerParams) -> str | None:
    if f.samples < params.warmup or not f.reverted:
        return None
    if f.spread is None or f.spread > params.max_spread:
        return None
    if f.jump >= params.jump:
        return "jump"
    if f.sigma >= params.sigma_trigger:
        return "sigma"
    return None


def _strength(f: Features, params: ScannerParams) -> float:
    jump_score = min(1.0, f.jump / (2 * params.jump)) if params.jump > 0 else 0.0
    sigma_score = min(1.0, f.sigma / (2 * params.sigma_trigger)) if params.sigma_trigger else 0.0
    return 0.5 * jump_score + 0.5 * sigma_score


class VolatilityScanner:
    """Rolling windows, triggers and stable regimes over the tracked markets.

    Args:
        params: Windows and triggers.
        regimes: The classifier's thresholds.
    """

    def __init__(
        self, params: ScannerParams | None = None, regimes: RegimeParams | None = None
    ) -> None:
        self.params = params or ScannerParams()
        self.regimes = regimes or RegimeParams()
        self._markets: dict[str, _Window] = {}
        self._next_scan_ns: int | None = None
        self.last_scan: dict[str, MarketScan] = {}

    @property
    def tracked(self) -> list[str]:
        """The markets the scanner watches."""
        return list(self._markets)

    def tracks(self, ticker: str) -> bool:
        """Whether the scanner watches ``ticker``."""
        return ticker in self._markets

    def track(self, tickers: Iterable[str]) -> None:
        """Starts watching markets (a known one keeps its samples)."""
        size = max(self.params.window_s, self.regimes.window_s + 1)
        for ticker in tickers:
            if ticker not in self._markets:
                self._markets[ticker] = _Window(size)

    def untrack(self, ticker: str) -> None:
        """Stops watching a market and forgets its samples."""
        self._markets.pop(ticker, None)
        self.last_scan.pop(ticker, None)

    def sample(self, ticker: str, fair: float | None, spread: Price | None, depth: Qty) -> None:
        """One second's sample of a market: its fair price without our orders ($0.0001,
        None when the book has no price), others' spread and the thinner side's top size."""
        window = self._markets.get(ticker)
        if window is None:
            return
        window.spread = spread
        window.depth = depth
        if fair is not None:
            window.fairs.append(round(fair))

    def on_trade(self, ticker: str, now_ns: int) -> None:
        """A public trade in a tracked market (the illiquidity guardrail reads it)."""
        window = self._markets.get(ticker)
        if window is not None:
            window.last_trade_ns = now_ns

    def last_trade_ns(self, ticker: str) -> int | None:
        """When a public trade was last seen in ``ticker`` (None: none yet)."""
        window = self._markets.get(ticker)
        return window.last_trade_ns if window is not None else None

    def regime(self, ticker: str) -> Regime:
        """A market's stable regime."""
        window = self._markets.get(ticker)
        return window.regime if window is not None else Regime.UNKNOWN

    def due(self, now_ns: int) -> bool:
        """Whether a scan is due (the first call starts the clock)."""
        if self._next_scan_ns is None:
            self._next_scan_ns = now_ns + int(self.params.scan_s * 1e9)
            return False
        return now_ns >= self._next_scan_ns

    def scan(self, now_ns: int) -> tuple[list[MarketScan], list[VolEvent]]:
        """Scans every market: features, regimes, triggers; the events of markets not active.

        Returns:
            Every market's scan, and the events found now.
        """
        self._next_scan_ns = now_ns + int(self.params.scan_s * 1e9)
        scans: list[MarketScan] = []
        events: list[VolEvent] = []
        for ticker, window in self._markets.items():
            f = features(list(window.fairs), window.spread, window.depth, self.params, self.regimes)
            raw = classify(f, self.regimes)
            self._settle(window, raw)
            trigger = _trigger(f, self.params)
            if window.active and self._ended(f):
                window.active = False
            if trigger is not None and self._may_fire(window, now_ns):  # and regime known
                window.last_event_ns = now_ns
                events.append(self._event(ticker, now_ns, trigger, f, window))
            scan = MarketScan(ticker, f, raw, window.regime, trigger, window.last_trade_ns)
            self.last_scan[ticker] = scan
            scans.append(scan)
        return scans, events

    def activate(self, ticker: str) -> None:
        """An event of ``ticker`` was taken: no more events until its volatility ends."""
        window = self._markets.get(ticker)
        if window is not None:
            window.active = True

    def _may_fire(self, window: _Window, now_ns: int) -> bool:
        if window.active or window.regime is Regime.UNKNOWN:
            return False
        last = window.last_event_ns
        return last is None or now_ns - last >= self.params.event_every_s * 1e9

    def active(self, ticker: str) -> bool:
        """Whether a market's volatility episode is still on (its event fired, not ended)."""
        window = self._markets.get(ticker)
        return window is not None and window.active

    def _settle(self, window: _Window, raw: Regime) -> None:
        """The stable regime follows ``raw`` after ``stability`` agreeing scans."""
        if raw is window.regime:
            window.candidate, window.candidate_runs = raw, 0
            return
        if raw is window.candidate:
            window.candidate_runs += 1
        else:
            window.candidate, window.candidate_runs = raw, 1
        if window.candidate_runs >= self.regimes.stability:
            window.regime, window.candidate_runs = raw, 0

    def _ended(self, f: Features) -> bool:
        return f.sigma < self.params.end_sigma and f.jump < self.params.jump

    def _event(self, ticker: str, now_ns: int, kind: str, f: Features, window: _Window) -> VolEvent:
        fairs = window.fairs
        moved = fairs[-1] - fairs[-min(len(fairs), self.params.jump_window_s)]
        half = self.params.jump // 2
        direction = "up" if moved >= half else "down" if moved <= -half else ""
        strength = _strength(f, self.params)
        return VolEvent(ticker, now_ns, kind, f.jump, f.sigma, strength, direction, window.regime)
