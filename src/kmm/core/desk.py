"""Volatility mode inside the trading core: scanner, regimes and sessions. Pure (no I/O).

The :class:`VolatilityDesk` is owned by the :class:`~kmm.core.trading.TradingCore` when
``markets.mode`` is ``volatility``, so ``kmm run`` and ``kmm backtest`` run it alike. Every
tracked market is added to the core as usual (its book kept by the websocket) but starts
*idle*: in a passive exit, which quotes nothing while the market holds no position. On the
core's one-second tick the desk samples each tracked book into the
:class:`~kmm.select.volatility.VolatilityScanner`; every ``volatility.scan_s`` it scans and
hands the scan to the :class:`~kmm.select.sessions.SessionManager`, then applies its
decisions:

* a session **start** ends the market's idle exit and quotes it with the session's terms
  (γ, κ, σ blend, spread bounds, position cap);
* a **retune** applies the terms of the market's new stable regime;
* a **freeze** (no public trade for ``illiquid_s``) pulls the quotes by a passive exit, and a
  thaw quotes again;
* an **end** restores the run's parameters and starts the market's passive exit, which works
  any position out and leaves the market idle again.

Records: every event (taken or skipped, and why), every session (its trigger, profile,
regime, end reason, fills and P&L marked at its end), and market snapshots (regime, the
scanner's σ and reversion, the quoter's fair, reservation, half-spread, σ and κ): each scan
for the markets in a session, every ``volatility.snapshot_s`` for all tracked ones.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from kmm.config import KmmConfig, VolatilityConfig
from kmm.select.sessions import (
    Profile,
    RegimeOverride,
    Session,
    SessionAction,
    SessionEnd,
    SessionFreeze,
    SessionManager,
    SessionParams,
    SessionRetune,
    SessionStart,
    Skipped,
)
from kmm.select.volatility import (
    MarketScan,
    Regime,
    RegimeParams,
    ScannerParams,
    VolatilityScanner,
    VolEvent,
)
from kmm.strategy.exit import ExitStyle
from kmm.types import ONE_CENT, Money, Price

if TYPE_CHECKING:
    from kmm.core.trading import TradingCore

__all__ = [
    "DeskRecords",
    "DeskStats",
    "VolatilityDesk",
    "scanner_params",
    "session_manager",
]

IDLE_REASON = "volatility: no session"
FROZEN_REASON = "volatility: illiquid"


def _cents(value: Decimal) -> Price:
    return int(value * ONE_CENT)


def scanner_params(v: VolatilityConfig) -> tuple[ScannerParams, RegimeParams]:
    """The scanner's and the classifier's parameters from the config section."""
    scanner = ScannerParams(
        window_s=v.window_s,
        scan_s=v.scan_s,
        warmup=v.warmup,
        jump=_cents(v.jump_cents),
        jump_window_s=v.jump_window_s,
        sigma_trigger=v.sigma_trigger_per_sqrt_s,
        sigma_window_s=v.sigma_window_s,
        revert_window_s=v.revert_window_s,
        revert_tolerance=_cents(v.revert_tolerance_cents),
        max_spread=_cents(v.max_spread_cents),
        end_sigma=v.end_sigma_per_sqrt_s,
        event_every_s=v.event_every_s,
    )
    regimes = RegimeParams(
        window_s=v.regime_window_s,
        min_observations=v.min_observations,
        quiet_sigma=v.quiet_sigma_per_sqrt_s,
        chaotic_sigma=v.chaotic_sigma_per_sqrt_s,
        min_depth=int(v.min_depth_contracts * 100),
        revert_good=v.revert_good,
        revert_bad=v.revert_bad,
        drift_threshold=v.drift_threshold,
        noise_spread=_cents(v.noise_spread_cents),
        vr_base_s=v.vr_base_s,
        vr_lag=v.vr_lag,
        stability=v.stability,
    )
    return scanner, regimes


def _profile(row: tuple[str, float, Decimal, Decimal, float, tuple[str, ...]]) -> Profile:
    name, blend, low, high, factor, excluded = row
    return Profile(
        name,
        sigma_blend=blend,
        min_spread=_cents(low),
        max_spread=_cents(high),
        exclude="all" in excluded,
        max_position_factor=factor,
        by_regime={Regime(r): RegimeOverride(exclude=True) for r in excluded if r != "all"},
    )


def session_manager(v: VolatilityConfig) -> SessionManager:
    """The session manager of the config section, with its category profiles."""
    profiles = {row[0]: _profile(row) for row in v.profiles}
    by_category = {cat: profiles[name] for cat, name in v.category_profiles}
    default = by_category.pop("default", profiles[v.profiles[0][0]])
    params = SessionParams(
        ttl_s=v.ttl_s,
        max_concurrent=v.max_concurrent,
        max_position=int(v.session_max_position_contracts * 100),
        danger_s=v.danger_s,
        illiquid_s=v.illiquid_s,
        min_sigma=v.min_sigma_per_sqrt_s,
        min_sigma_grace_s=v.min_sigma_grace_s,
        cooldown_s=v.cooldown_s,
        jump_ignore=_cents(v.jump_ignore_cents),
        gamma_multipliers={Regime(r): f for r, f in v.gamma_multipliers},
        kappa_multipliers={Regime(r): f for r, f in v.kappa_multipliers},
    )
    return SessionManager(params, by_category, default)


class DeskRecords(Protocol):
    """Where the desk's records go (:class:`~kmm.record.Recorder`)."""

    def volatility_event(
        self, ts_ns: int, event: VolEvent, session: int | None, skipped: str
    ) -> None:
        """One volatility event: the session it spawned, or why it spawned none."""

    def volatility_session(self, session: Session, fills: int, pnl: Money) -> None:
        """One ended session."""

    def market_snapshot(
        self,
        ts_ns: int,
        scan: MarketScan,
        terms: tuple[float, float, float, float, float] | None,
        session: int | None,
    ) -> None:
        """One market's regime and quoting terms (fair, reservation, half-spread, σ, κ)."""


@dataclass(slots=True)
class DeskStats:
    """What the desk has done, for the summary and the scoreboard."""

    scans: int = 0
    events: int = 0
    sessions: int = 0
    ended: Counter[str] = field(default_factory=Counter)
    """Ended sessions by reason (``regime`` for every ``regime:<name>``)."""


@dataclass(slots=True)
class _Open:
    """A session's baseline for its P&L and fill count."""

    pnl: Money
    fills: int


class VolatilityDesk:
    """Volatility mode's scanner and sessions applied to a core (see the module doc).

    Args:
        core: The core it trades through.
        config: The run's configuration (``volatility`` section).
        records: Where events, sessions and snapshots go (None: nowhere).
    """

    def __init__(
        self, core: TradingCore, config: KmmConfig, records: DeskRecords | None = None
    ) -> None:
        self.core = core
        v = config.volatility
        scanner, regimes = scanner_params(v)
        self.scanner = VolatilityScanner(scanner, regimes)
        self.manager = session_manager(v)
        self.records = records
        self.snapshot_ns = int(v.snapshot_s * 1e9)
        self.stats = DeskStats()
        self._open: dict[str, _Open] = {}
        self._fills: Counter[str] = Counter()
        self._next_snapshot_ns: int | None = None
        self.events: list[VolEvent] = []
        """Every event found (kept for ``kmm scan --watch`` and the tests; bounded by scans)."""

    # ------------------------------------------------------------- core hooks

    def track(self, ticker: str, now_ns: int) -> None:
        """A market added to the core: scanned from now on, idle until a session."""
        self.scanner.track([ticker])
        if ticker not in self.manager.running:
            self.core.start_exit([ticker], ExitStyle.PASSIVE, IDLE_REASON, now_ns)

    def idle(self, ticker: str) -> bool:
        """Whether a tracked market is between sessions (or frozen)."""
        session = self.manager.running.get(ticker)
        return self.scanner.tracks(ticker) and (session is None or session.frozen)

    def on_trade(self, ticker: str, now_ns: int) -> None:
        """A public trade (the illiquidity guardrail)."""
        self.scanner.on_trade(ticker, now_ns)

    def on_fill(self, ticker: str) -> None:
        """One of our fills (counted per session)."""
        self._fills[ticker] += 1

    def on_tick(self, now_ns: int) -> None:
        """Samples every tracked book; scans and applies the sessions' decisions when due."""
        pipeline = self.core.pipeline
        for ticker in self.scanner.tracked:
            fair, spread, depth = pipeline.sample(ticker)
            self.scanner.sample(ticker, fair, spread, depth)
        if not self.scanner.due(now_ns):
            return
        scans, events = self.scanner.scan(now_ns)
        self.stats.scans += 1
        self.stats.events += len(events)
        self.events.extend(events)
        del self.events[:-1000]
        markets = {
            t: (m.spec.category, m.spec.close_ns)
            for t, m in pipeline.markets.items()
            if t in self.scanner.last_scan
        }
        for action in self.manager.step(now_ns, scans, events, markets):
            self._apply(action, now_ns)
        self._snapshots(scans, now_ns)

    def stop(self, now_ns: int) -> None:
        """Ends every running session (the run stops)."""
        for end in self.manager.stop_all(now_ns):
            self._apply(end, now_ns)

    # ------------------------------------------------------------- actions

    def _apply(self, action: SessionAction, now_ns: int) -> None:
        if isinstance(action, SessionStart):
            self._start(action.session, now_ns)
        elif isinstance(action, SessionRetune):
            self._tune(action.session, now_ns)
            self.core.say(
                f"volatility: session {action.session.number} {action.session.ticker}: "
                f"regime {action.session.regime}, terms retuned"
            )
        elif isinstance(action, SessionFreeze):
            self._freeze(action.session, action.frozen, now_ns)
        elif isinstance(action, SessionEnd):
            self._end(action.session, now_ns)
        else:
            assert isinstance(action, Skipped)
            if self.records is not None:
                self.records.volatility_event(action.event.ts_ns, action.event, None, action.reason)

    def _start(self, session: Session, now_ns: int) -> None:
        core, ticker, event = self.core, session.ticker, session.event
        self.stats.sessions += 1
        self.scanner.activate(ticker)
        self._open[ticker] = _Open(core.market_pnl(ticker), self._fills[ticker])
        core.end_exit(ticker, now_ns)
        self._tune(session, now_ns)
        jump = event.jump / ONE_CENT
        core.say(
            f"volatility: session {session.number} {ticker}: {event.kind} event "
            f"(range {jump:.1f}c, sigma {event.sigma:.5f}, {event.regime}, "
            f"{session.profile}), quoting for up to {self.manager.params.ttl_s:.0f} s, "
            f"cap {session.terms.max_position / 100:.2f}"
        )
        if self.records is not None:
            self.records.volatility_event(event.ts_ns, event, session.number, "")

    def _tune(self, session: Session, now_ns: int) -> None:
        core, t = self.core, session.terms
        base = core.pipeline.base_params(session.ticker)
        params = replace(
            base,
            gamma=base.gamma * t.gamma_factor,
            kappa_factor=t.kappa_factor,
            sigma_blend=t.sigma_blend,
            sigma_event=t.sigma_event,
            min_spread=t.min_spread,
            max_spread=max(t.max_spread, t.min_spread),
            max_position=min(base.max_position, t.max_position),
        )
        core.set_session_terms(session.ticker, params, t.max_position, now_ns)

    def _freeze(self, session: Session, frozen: bool, now_ns: int) -> None:
        core, ticker = self.core, session.ticker
        if frozen:
            core.start_exit([ticker], ExitStyle.PASSIVE, FROZEN_REASON, now_ns)
            core.say(f"volatility: session {session.number} {ticker}: no trade, quotes frozen")
        else:
            core.end_exit(ticker, now_ns)
            core.say(f"volatility: session {session.number} {ticker}: trading again, quoting")

    def _end(self, session: Session, now_ns: int) -> None:
        core, ticker = self.core, session.ticker
        self.stats.ended[session.reason.split(":")[0]] += 1
        opened = self._open.pop(ticker, _Open(core.market_pnl(ticker), self._fills[ticker]))
        pnl = core.market_pnl(ticker) - opened.pnl
        fills = self._fills[ticker] - opened.fills
        core.set_session_terms(ticker, None, None, now_ns)
        core.end_exit(ticker, now_ns)  # a frozen session's exit gives way to the end's
        core.start_exit(
            [ticker], ExitStyle.PASSIVE, f"volatility: session ended, {session.reason}", now_ns
        )
        core.say(
            f"volatility: session {session.number} {ticker}: ended ({session.reason}), "
            f"{fills} fills, P&L ${pnl / 1_000_000:.2f}"
        )
        if self.records is not None:
            self.records.volatility_session(session, fills, pnl)

    # ------------------------------------------------------------- records

    def _snapshots(self, scans: list[MarketScan], now_ns: int) -> None:
        if self.records is None:
            return
        everyone = self._next_snapshot_ns is None or now_ns >= self._next_snapshot_ns
        if everyone:
            self._next_snapshot_ns = now_ns + self.snapshot_ns
        running = self.manager.running
        for scan in scans:
            session = running.get(scan.ticker)
            if session is None and not everyone:
                continue
            terms = self.core.pipeline.terms(scan.ticker)
            figures = None
            if terms is not None:
                inputs, model, _ = terms
                fair = inputs.fair or 0.0
                figures = (fair, model.reservation, model.half_spread, model.sigma, model.kappa)
            number = session.number if session is not None else None
            self.records.market_snapshot(now_ns, scan, figures, number)
