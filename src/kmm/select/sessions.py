"""Volatility mode's sessions: when a market is quoted, with what, and when it stops. Pure.

Theory of operation
-------------------
A session is a short market-making run in one market, spawned by a volatility event
(:class:`~kmm.select.volatility.VolEvent`). :meth:`SessionManager.step` takes one scan's
results and events and returns what to do; the core applies it (quote the market with the
session's terms, or start its passive exit).

**Entry.** An event spawns a session when the market has no session, its cool-down after the
last one is over, fewer than ``max_concurrent`` sessions run, its category's profile does not
exclude the market's stable regime (nor the category altogether), and it is not inside the
danger window before its close. Otherwise the event is recorded with the reason it was not
taken. Events are taken strongest first.

**Terms.** A session quotes with the run's strategy, adjusted by its category's profile in the
market's regime: γ and κ times the regime's multipliers; spread bounds from the profile; σ
blended with the event's σ, ``(1 − w)·σ_estimated + w·σ_event``, with ``w = 0`` after a jump of
``jump_ignore`` or more (a jump's σ must not narrow the quotes); and a position cap of
``max_position × max_position_factor``. A session follows its market's stable regime: the
terms are recomputed when it changes.

**Ends.** A session ends, with the first of these reasons, and its position is worked out by a
passive exit:

* ``ttl``: it ran ``ttl_s``;
* ``regime:<name>``: the stable regime is one the profile excludes (a bad regime kills it);
* ``danger_window``: the market closes within ``danger_s``;
* ``min_volatility``: σ fell below ``min_sigma`` after ``min_sigma_grace_s``;
* ``stopped``: the run stops.

Between entry and end, the **illiquidity** guardrail freezes quoting (the market is pulled,
without ending the session) while no public trade has been seen for ``illiquid_s``; a trade
thaws it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from kmm.select.volatility import MarketScan, Regime, VolEvent
from kmm.types import Price, Qty

__all__ = [
    "DEFAULT_PROFILE",
    "Profile",
    "RegimeOverride",
    "Session",
    "SessionAction",
    "SessionEnd",
    "SessionFreeze",
    "SessionManager",
    "SessionParams",
    "SessionRetune",
    "SessionStart",
    "SessionTerms",
    "Skipped",
]


@dataclass(frozen=True, slots=True)
class RegimeOverride:
    """A profile's settings for one regime (None: the profile's own)."""

    exclude: bool | None = None
    sigma_blend: float | None = None
    min_spread: Price | None = None
    max_spread: Price | None = None
    max_position_factor: float | None = None


@dataclass(frozen=True, slots=True)
class Profile:
    """A behavioural class of categories (seed 000's category profiles).

    Attributes:
        name: The profile's name.
        sigma_blend: The event σ's weight in the blended σ.
        min_spread: The narrowest total spread quoted ($0.0001).
        max_spread: The widest total spread quoted.
        exclude: No session in this profile's categories at all.
        max_position_factor: The session's position cap is multiplied by this.
        by_regime: Overrides per regime.
    """

    name: str
    sigma_blend: float = 0.5
    min_spread: Price = 200
    max_spread: Price = 400
    exclude: bool = False
    max_position_factor: float = 1.0
    by_regime: Mapping[Regime, RegimeOverride] = field(default_factory=dict)

    def resolved(self, regime: Regime) -> Profile:
        """The profile as it applies in ``regime`` (its override folded in)."""
        over = self.by_regime.get(regime)
        if over is None:
            return self
        return replace(
            self,
            exclude=self.exclude if over.exclude is None else over.exclude,
            sigma_blend=self.sigma_blend if over.sigma_blend is None else over.sigma_blend,
            min_spread=self.min_spread if over.min_spread is None else over.min_spread,
            max_spread=self.max_spread if over.max_spread is None else over.max_spread,
            max_position_factor=(
                self.max_position_factor
                if over.max_position_factor is None
                else over.max_position_factor
            ),
            by_regime={},
        )


_BAD: RegimeOverride = RegimeOverride(exclude=True)
DEFAULT_PROFILE: Profile = Profile(
    "mean_reverting",
    by_regime={
        Regime.TRENDING: _BAD,
        Regime.CHAOTIC: _BAD,
        Regime.UNKNOWN: _BAD,
    },
)


@dataclass(frozen=True, slots=True)
class SessionParams:
    """Session limits, guardrails and the per-regime multipliers.

    Attributes:
        ttl_s: A session's time limit.
        max_concurrent: Sessions running at once.
        max_position: A session's position cap (0.01 contracts), before the profile's factor.
        danger_s: No session within this long of a market's close; a running one ends.
        illiquid_s: Quoting freezes while no public trade has been seen for this long.
        min_sigma: A session ends when σ falls below this ...
        min_sigma_grace_s: ... after it has run this long.
        cooldown_s: No new session in a market for this long after its last one ended.
        jump_ignore: A jump of this size or more ignores the event's σ (blend weight 0).
        gamma_multipliers: γ × this in each regime (missing: 1).
        kappa_multipliers: κ × this in each regime (missing: 1).
    """

    ttl_s: float = 900.0
    max_concurrent: int = 15
    max_position: Qty = 300
    danger_s: float = 180.0
    illiquid_s: float = 60.0
    min_sigma: float = 0.0002
    min_sigma_grace_s: float = 30.0
    cooldown_s: float = 60.0
    jump_ignore: Price = 1000
    gamma_multipliers: Mapping[Regime, float] = field(default_factory=dict)
    kappa_multipliers: Mapping[Regime, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SessionTerms:
    """What a session changes in its market's quoting."""

    gamma_factor: float
    kappa_factor: float
    sigma_blend: float
    sigma_event: float
    min_spread: Price
    max_spread: Price
    max_position: Qty


@dataclass(slots=True)
class Session:
    """One running (or ended) session."""

    number: int
    ticker: str
    event: VolEvent
    started_ns: int
    profile: str
    regime: Regime
    terms: SessionTerms
    frozen: bool = False
    ended_ns: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SessionStart:
    """Quote ``session.ticker`` with ``session.terms`` from now on."""

    session: Session


@dataclass(frozen=True, slots=True)
class SessionRetune:
    """The session's regime changed: quote with its new terms."""

    session: Session


@dataclass(frozen=True, slots=True)
class SessionFreeze:
    """Pull (``frozen``) or restore a running session's quotes."""

    session: Session
    frozen: bool


@dataclass(frozen=True, slots=True)
class SessionEnd:
    """The session ended (``session.reason``): work its position out passively."""

    session: Session


@dataclass(frozen=True, slots=True)
class Skipped:
    """An event that spawned no session, and why."""

    event: VolEvent
    reason: str


SessionAction = SessionStart | SessionRetune | SessionFreeze | SessionEnd | Skipped


class SessionManager:
    """Spawns, tunes, freezes and ends sessions (see the module doc).

    Args:
        params: Limits, guardrails and multipliers.
        profiles: Each category's profile (missing: ``default``).
        default: The profile of a category not listed.
    """

    def __init__(
        self,
        params: SessionParams | None = None,
        profiles: Mapping[str, Profile] | None = None,
        default: Profile = DEFAULT_PROFILE,
    ) -> None:
        self.params = params or SessionParams()
        self.profiles = dict(profiles or {})
        self.default = default
        self.running: dict[str, Session] = {}
        self._ended_at: dict[str, int] = {}
        self._count = 0

    def profile(self, category: str | None) -> Profile:
        """The profile of a category."""
        return self.profiles.get(category or "", self.default)

    def terms(self, category: str | None, regime: Regime, event: VolEvent) -> SessionTerms:
        """A session's terms in ``regime`` (see the module doc)."""
        p = self.params
        profile = self.profile(category).resolved(regime)
        blend = 0.0 if event.jump >= p.jump_ignore else profile.sigma_blend
        cap = int(p.max_position * profile.max_position_factor) // 100 * 100
        return SessionTerms(
            gamma_factor=p.gamma_multipliers.get(regime, 1.0),
            kappa_factor=p.kappa_multipliers.get(regime, 1.0),
            sigma_blend=blend,
            sigma_event=event.sigma,
            min_spread=profile.min_spread,
            max_spread=profile.max_spread,
            max_position=max(cap, 0),
        )

    def refusal(
        self, category: str | None, regime: Regime, close_ns: int | None, now_ns: int
    ) -> str | None:
        """Why a market may not run a session now (None: it may)."""
        p = self.params
        profile = self.profile(category)
        if profile.exclude:
            return f"category {category} excluded ({profile.name})"
        if profile.resolved(regime).exclude:
            return f"regime {regime} excluded ({profile.name})"
        if close_ns is not None and close_ns - now_ns <= p.danger_s * 1e9:
            return "danger_window"
        return None

    def step(
        self,
        now_ns: int,
        scans: Iterable[MarketScan],
        events: Iterable[VolEvent],
        markets: Mapping[str, tuple[str | None, int | None]],
    ) -> list[SessionAction]:
        """One scan's decisions.

        Args:
            now_ns: The scan's time.
            scans: Every tracked market's scan.
            events: The events found in this scan.
            markets: Each tracked market's ``(category, close_ns)``.

        Returns:
            Ends, freezes, retunes, starts and skipped events, in that order.
        """
        by_ticker = {s.ticker: s for s in scans}
        actions: list[SessionAction] = []
        for session in list(self.running.values()):
            actions.extend(self._follow(session, by_ticker.get(session.ticker), markets, now_ns))
        for event in sorted(events, key=lambda e: -e.strength):
            actions.append(self._spawn(event, markets, now_ns))
        return actions

    def stop_all(self, now_ns: int) -> list[SessionEnd]:
        """Ends every running session (the run stops)."""
        return [self._end(s, "stopped", now_ns) for s in list(self.running.values())]

    def _spawn(
        self, event: VolEvent, markets: Mapping[str, tuple[str | None, int | None]], now_ns: int
    ) -> SessionStart | Skipped:
        p = self.params
        ticker = event.ticker
        if ticker in self.running:
            return Skipped(event, "session already running")
        ended = self._ended_at.get(ticker)
        if ended is not None and now_ns - ended < p.cooldown_s * 1e9:
            return Skipped(event, "cooling down")
        if len(self.running) >= p.max_concurrent:
            return Skipped(event, f"max_concurrent {p.max_concurrent} sessions running")
        category, close_ns = markets.get(ticker, (None, None))
        refused = self.refusal(category, event.regime, close_ns, now_ns)
        if refused is not None:
            return Skipped(event, refused)
        self._count += 1
        session = Session(
            self._count,
            ticker,
            event,
            now_ns,
            self.profile(category).name,
            event.regime,
            self.terms(category, event.regime, event),
        )
        self.running[ticker] = session
        return SessionStart(session)

    def _follow(
        self,
        session: Session,
        scan: MarketScan | None,
        markets: Mapping[str, tuple[str | None, int | None]],
        now_ns: int,
    ) -> list[SessionAction]:
        reason = self._end_reason(session, scan, markets, now_ns)
        if reason is not None:
            return [self._end(session, reason, now_ns)]
        assert scan is not None
        actions: list[SessionAction] = []
        if scan.regime is not session.regime:
            category, _ = markets.get(session.ticker, (None, None))
            session.regime = scan.regime
            session.terms = self.terms(category, scan.regime, session.event)
            actions.append(SessionRetune(session))
        last_trade = scan.last_trade_ns
        quiet_since = last_trade if last_trade is not None else session.started_ns
        illiquid = now_ns - max(quiet_since, session.started_ns) >= self.params.illiquid_s * 1e9
        if illiquid is not session.frozen:
            session.frozen = illiquid
            actions.append(SessionFreeze(session, illiquid))
        return actions

    def _end_reason(
        self,
        session: Session,
        scan: MarketScan | None,
        markets: Mapping[str, tuple[str | None, int | None]],
        now_ns: int,
    ) -> str | None:
        p = self.params
        if scan is None:
            return "untracked"
        if now_ns - session.started_ns >= p.ttl_s * 1e9:
            return "ttl"
        category, close_ns = markets.get(session.ticker, (None, None))
        profile = self.profile(category)
        if profile.resolved(scan.regime).exclude:
            return f"regime:{scan.regime}"
        if close_ns is not None and close_ns - now_ns <= p.danger_s * 1e9:
            return "danger_window"
        grace_over = now_ns - session.started_ns >= p.min_sigma_grace_s * 1e9
        if grace_over and scan.features.sigma < p.min_sigma:
            return "min_volatility"
        return None

    def _end(self, session: Session, reason: str, now_ns: int) -> SessionEnd:
        session.ended_ns = now_ns
        session.reason = reason
        self.running.pop(session.ticker, None)
        self._ended_at[session.ticker] = now_ns
        return SessionEnd(session)
