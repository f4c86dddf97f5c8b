"""Volatility sessions: entry, terms, every way a session ends, the illiquidity freeze."""

from __future__ import annotations

import pytest

from kmm.config import KmmConfig
from kmm.core.desk import session_manager
from kmm.select.sessions import (
    Profile,
    RegimeOverride,
    SessionEnd,
    SessionFreeze,
    SessionManager,
    SessionParams,
    SessionRetune,
    SessionStart,
    Skipped,
)
from kmm.select.volatility import Features, MarketScan, Regime, VolEvent

S = 1_000_000_000
T0 = 1_700_000_000 * S
CLOSE = T0 + 86_400 * S
MR = Regime.MEAN_REVERTING
PROFILE = Profile(
    "rates",
    sigma_blend=0.5,
    min_spread=200,
    max_spread=400,
    by_regime={Regime.TRENDING: RegimeOverride(exclude=True)},
)
PARAMS = SessionParams(
    ttl_s=300,
    max_concurrent=2,
    max_position=300,
    danger_s=180,
    illiquid_s=15,
    min_sigma=0.0005,
    min_sigma_grace_s=30,
    cooldown_s=60,
    jump_ignore=1000,
    gamma_multipliers={MR: 1.0, Regime.QUIET: 0.8},
    kappa_multipliers={Regime.QUIET: 0.7},
)


def _manager(**profiles: Profile) -> SessionManager:
    return SessionManager(PARAMS, {"Economics": PROFILE, **profiles}, PROFILE)


def _event(
    ticker: str = "M", *, jump: int = 600, strength: float = 0.5, regime: Regime = MR
) -> VolEvent:
    return VolEvent(ticker, T0, "jump", jump, 0.002, strength, "", regime)


def _scan(
    ticker: str = "M",
    *,
    regime: Regime = MR,
    sigma: float = 0.002,
    trade_ns: int | None = T0,
) -> MarketScan:
    f = Features(300, 5000, 200, 1000, sigma, sigma, 600, 0.6, 0.5, True)
    return MarketScan(ticker, f, regime, regime, None, trade_ns)


MARKETS = {"M": ("Economics", CLOSE), "N": ("Economics", CLOSE), "O": ("Economics", CLOSE)}


def _started(manager: SessionManager, ticker: str = "M") -> None:
    (start,) = manager.step(T0, [_scan(ticker)], [_event(ticker)], MARKETS)
    assert isinstance(start, SessionStart)


# entry


def test_an_event_in_an_allowed_regime_starts_a_session_with_its_profiles_terms() -> None:
    manager = _manager()

    (start,) = manager.step(T0, [_scan()], [_event()], MARKETS)

    assert isinstance(start, SessionStart)
    session = start.session
    assert (session.ticker, session.profile, session.regime, session.number) == (
        "M",
        "rates",
        MR,
        1,
    )
    terms = session.terms
    assert (terms.min_spread, terms.max_spread, terms.max_position) == (200, 400, 300)
    assert (terms.sigma_blend, terms.sigma_event) == (0.5, 0.002)
    assert manager.running == {"M": session}


def test_a_jump_beyond_jump_ignore_does_not_blend_the_events_sigma() -> None:
    (start,) = _manager().step(T0, [_scan()], [_event(jump=1200)], MARKETS)

    assert isinstance(start, SessionStart) and start.session.terms.sigma_blend == 0.0


def test_the_regime_multiplies_gamma_and_kappa() -> None:
    terms = _manager().terms("Economics", Regime.QUIET, _event())

    assert (terms.gamma_factor, terms.kappa_factor) == (0.8, 0.7)


@pytest.mark.parametrize(
    ("markets", "event", "reason"),
    [
        ({"M": ("Sports", CLOSE)}, _event(), "category Sports excluded (sports)"),
        (MARKETS, _event(regime=Regime.TRENDING), "regime trending excluded (rates)"),
        ({"M": ("Economics", T0 + 100 * S)}, _event(), "danger_window"),
    ],
)
def test_an_event_a_profile_or_the_close_refuses_starts_nothing_and_says_why(
    markets: dict[str, tuple[str, int]], event: VolEvent, reason: str
) -> None:
    manager = _manager(Sports=Profile("sports", exclude=True))

    (skipped,) = manager.step(T0, [_scan()], [event], markets)

    assert skipped == Skipped(event, reason)
    assert manager.running == {}


def test_no_more_than_max_concurrent_sessions_and_the_strongest_events_first() -> None:
    manager = _manager()
    events = [_event("M", strength=0.2), _event("N", strength=0.9), _event("O", strength=0.5)]

    actions = manager.step(T0, [_scan(t) for t in "MNO"], events, MARKETS)

    assert [type(a) for a in actions] == [SessionStart, SessionStart, Skipped]
    assert sorted(manager.running) == ["N", "O"]
    assert isinstance(actions[2], Skipped) and "max_concurrent 2" in actions[2].reason


def test_a_market_cools_down_after_its_session_before_another() -> None:
    manager = _manager()
    _started(manager)
    manager.stop_all(T0 + 10 * S)

    (skipped,) = manager.step(T0 + 30 * S, [_scan()], [_event()], MARKETS)
    (start,) = manager.step(T0 + 71 * S, [_scan(trade_ns=T0 + 70 * S)], [_event()], MARKETS)

    assert isinstance(skipped, Skipped) and skipped.reason == "cooling down"
    assert isinstance(start, SessionStart) and start.session.number == 2


# ends


def _ends(
    manager: SessionManager, now: int, scan: MarketScan | None, markets: object = MARKETS
) -> str:
    actions = manager.step(now, [] if scan is None else [scan], [], markets)  # type: ignore[arg-type]
    (end,) = [a for a in actions if isinstance(a, SessionEnd)]
    assert manager.running == {}
    return end.session.reason


def test_a_session_ends_at_its_time_limit() -> None:
    manager = _manager()
    _started(manager)

    assert manager.step(T0 + 299 * S, [_scan(trade_ns=T0 + 298 * S)], [], MARKETS) == []
    assert _ends(manager, T0 + 300 * S, _scan(trade_ns=T0 + 299 * S)) == "ttl"


def test_a_bad_regime_kills_a_session() -> None:
    manager = _manager()
    _started(manager)

    assert _ends(manager, T0 + 20 * S, _scan(regime=Regime.TRENDING)) == "regime:trending"


def test_a_session_ends_inside_the_danger_window_before_the_close() -> None:
    manager = _manager()
    _started(manager)
    closing = {"M": ("Economics", T0 + 200 * S)}

    assert _ends(manager, T0 + 20 * S, _scan(trade_ns=T0 + 19 * S), closing) == "danger_window"


def test_volatility_below_the_minimum_ends_a_session_after_its_grace() -> None:
    manager = _manager()
    _started(manager)

    assert manager.step(T0 + 20 * S, [_scan(sigma=0.0001, trade_ns=T0 + 19 * S)], [], MARKETS) == []
    assert (
        _ends(manager, T0 + 31 * S, _scan(sigma=0.0001, trade_ns=T0 + 30 * S)) == "min_volatility"
    )


def test_a_market_no_longer_scanned_ends_its_session() -> None:
    manager = _manager()
    _started(manager)

    assert _ends(manager, T0 + 5 * S, None) == "untracked"


def test_a_regime_change_retunes_the_session() -> None:
    manager = _manager()
    _started(manager)

    (retune,) = manager.step(T0 + 5 * S, [_scan(regime=Regime.QUIET)], [], MARKETS)

    assert isinstance(retune, SessionRetune)
    assert retune.session.regime is Regime.QUIET and retune.session.terms.gamma_factor == 0.8


def test_no_trade_for_illiquid_s_freezes_quoting_and_a_trade_thaws_it() -> None:
    manager = _manager()
    _started(manager)

    assert manager.step(T0 + 14 * S, [_scan()], [], MARKETS) == []
    (freeze,) = manager.step(T0 + 15 * S, [_scan()], [], MARKETS)
    assert isinstance(freeze, SessionFreeze) and freeze.frozen and freeze.session.frozen
    assert manager.step(T0 + 20 * S, [_scan()], [], MARKETS) == []  # still frozen, said once
    (thaw,) = manager.step(T0 + 25 * S, [_scan(trade_ns=T0 + 24 * S)], [], MARKETS)
    assert isinstance(thaw, SessionFreeze) and not thaw.frozen
    assert "M" in manager.running  # a freeze does not end the session


def test_stopping_ends_every_running_session() -> None:
    manager = _manager()
    manager.step(T0, [_scan("M"), _scan("N")], [_event("M"), _event("N")], MARKETS)

    ends = manager.stop_all(T0 + S)

    assert sorted(e.session.ticker for e in ends) == ["M", "N"]
    assert {e.session.reason for e in ends} == {"stopped"} and manager.running == {}


# the config's profiles


def test_the_configs_profiles_map_categories_and_exclude_regimes() -> None:
    manager = session_manager(KmmConfig().volatility)

    assert manager.profile("Economics").name == "mean_reverting"
    assert manager.profile("Crypto").name == "medium_trending"
    assert manager.profile("Something new").name == "mean_reverting"  # default
    assert manager.profile("Sports").exclude
    assert manager.refusal("Economics", Regime.TRENDING, None, T0) is not None
    assert manager.refusal("Crypto", Regime.TRENDING, None, T0) is None
    assert manager.refusal("Economics", MR, None, T0) is None
    assert manager.params.max_position == 300
