"""Volatility mode's scanner: features, triggers, the mean-reversion gate, regimes, stability."""

from __future__ import annotations

import random

import pytest

from kmm.select.volatility import (
    Features,
    Regime,
    RegimeParams,
    ScannerParams,
    VolatilityScanner,
    classify,
    features,
)

S = 1_000_000_000
T0 = 1_700_000_000 * S
CENT = 100
SCANNER = ScannerParams(warmup=20, scan_s=5.0)
REGIMES = RegimeParams(min_observations=20, stability=1)


def _features(**kw: object) -> Features:
    base = dict(
        samples=300, fair=5000, spread=200, depth=1000, sigma=0.002, regime_sigma=0.002,
        jump=300, reversion=0.5, drift=0.5, reverted=True,
    )  # fmt: skip
    base.update(kw)
    return Features(**base)  # type: ignore[arg-type]


def _ou(seed: int, n: int, theta: float, vol: float) -> list[int]:
    """An Ornstein–Uhlenbeck path around 50c, in $0.0001 (vol in dollars per √s)."""
    rng, x, out = random.Random(seed), 0.0, []
    for _ in range(n):
        x += -theta * x + vol * rng.gauss(0.0, 1.0)
        out.append(round(5000 + x * 10_000))
    return out


def _walk(seed: int, n: int, drift: float, vol: float) -> list[int]:
    rng, x, out = random.Random(seed), 0.0, []
    for _ in range(n):
        x += drift + vol * rng.gauss(0.0, 1.0)
        out.append(round(5000 + x * 10_000))
    return out


def _scanner(
    path: list[int], spread: int = 200, depth: int = 1000, regimes: RegimeParams = REGIMES
) -> VolatilityScanner:
    scanner = VolatilityScanner(SCANNER, regimes)
    scanner.track(["M"])
    for fair in path:
        scanner.sample("M", float(fair), spread, depth)
    return scanner


# features


def test_sigma_is_the_spread_of_one_second_changes_in_dollars_per_root_second() -> None:
    path = [5000 + (100 if i % 2 else 0) for i in range(200)]  # ±1c every second

    f = features(path, 200, 1000, SCANNER, REGIMES)

    assert f.sigma == pytest.approx(0.01, rel=1e-6)
    assert f.jump == 100
    assert f.reverted  # it swings around its mean


def test_a_move_that_did_not_come_back_is_not_reverted() -> None:
    path = [5000] * 300 + [5800] * 60  # +8c a minute ago, and it stays

    f = features(path, 200, 1000, SCANNER, REGIMES)

    assert f.jump == 800
    assert not f.reverted


def test_the_reversion_score_tells_reverting_from_persistent_paths() -> None:
    reverting = features(_ou(1, 600, 0.2, 0.002), 200, 1000, SCANNER, REGIMES)
    persistent = features(_walk(1, 600, 0.0004, 0.001), 200, 1000, SCANNER, REGIMES)

    assert reverting.reversion > 0.6
    assert persistent.reversion < 0.3
    assert persistent.drift > REGIMES.drift_threshold > reverting.drift


# classify


@pytest.mark.parametrize(
    ("kw", "regime"),
    [
        ({"samples": 5}, Regime.UNKNOWN),
        ({"spread": 800}, Regime.NOISE),
        ({"spread": None}, Regime.NOISE),
        ({"depth": 0}, Regime.NOISE),
        ({"regime_sigma": 0.01}, Regime.CHAOTIC),
        ({"regime_sigma": 0.0005}, Regime.QUIET),
        ({"drift": 3.0}, Regime.TRENDING),
        ({"reversion": 0.05}, Regime.TRENDING),
        ({"reversion": 0.7}, Regime.MEAN_REVERTING),
        ({"reversion": 0.3}, Regime.NOISE),
    ],
)
def test_each_regime_from_its_features(kw: dict[str, object], regime: Regime) -> None:
    assert classify(_features(**kw), REGIMES) is regime


def test_paths_of_each_kind_are_classified_as_that_kind() -> None:
    assert classify(features(_ou(2, 600, 0.2, 0.002), 200, 1000, SCANNER, REGIMES), REGIMES) is (
        Regime.MEAN_REVERTING
    )
    trend = _walk(2, 600, 0.0004, 0.0015)
    assert classify(features(trend, 200, 1000, SCANNER, REGIMES), REGIMES) is Regime.TRENDING
    flat = _ou(2, 600, 0.2, 0.0002)
    assert classify(features(flat, 200, 1000, SCANNER, REGIMES), REGIMES) is Regime.QUIET
    wild = _ou(2, 600, 0.2, 0.02)
    assert classify(features(wild, 200, 1000, SCANNER, REGIMES), REGIMES) is Regime.CHAOTIC


# triggers and events


def test_a_jump_that_reverted_is_an_event_and_fires_once_while_active() -> None:
    path = [5000] * 100 + [5800] * 10 + [5000] * 40  # up 8c and back
    scanner = _scanner(path)

    _, events = scanner.scan(T0)

    (event,) = events
    assert (event.kind, event.jump) == ("jump", 800)
    assert 0 < event.strength <= 1
    scanner.activate("M")
    assert scanner.scan(T0 + 100 * S)[1] == []  # active: its session runs


def test_a_jump_that_carried_on_is_not_an_event() -> None:
    scanner = _scanner([5000] * 300 + [5800] * 50)

    scans, events = scanner.scan(T0)

    assert events == [] and scans[0].trigger is None


def test_no_trigger_before_the_warmup_or_in_a_wide_book() -> None:
    swinging = [5000 + (300 if i % 2 else 0) for i in range(40)]

    assert _scanner(swinging[:10]).scan(T0)[1] == []
    assert _scanner(swinging, spread=2000).scan(T0)[1] == []
    assert [e.kind for e in _scanner(swinging).scan(T0)[1]] == ["sigma"]


def test_an_event_not_taken_comes_again_after_event_every_s() -> None:
    scanner = _scanner([5000 + (300 if i % 2 else 0) for i in range(40)])

    assert len(scanner.scan(T0)[1]) == 1
    assert scanner.scan(T0 + 30 * S)[1] == []
    assert len(scanner.scan(T0 + 61 * S)[1]) == 1


def test_an_active_market_can_fire_again_once_its_volatility_ended() -> None:
    swinging = [5000 + (300 if i % 2 else 0) for i in range(40)]
    scanner = _scanner(swinging)
    scanner.scan(T0)
    scanner.activate("M")
    for _ in range(400):
        scanner.sample("M", 5000.0, 200, 1000)  # calm for long enough that the range ends

    scanner.scan(T0 + 400 * S)

    assert not scanner.active("M")
    for i in range(40):
        scanner.sample("M", 5000.0 + (300 if i % 2 else 0), 200, 1000)
    assert len(scanner.scan(T0 + 500 * S)[1]) == 1


# stability


def test_the_stable_regime_changes_only_after_enough_agreeing_scans() -> None:
    scanner = _scanner(
        _ou(3, 400, 0.2, 0.002), regimes=RegimeParams(min_observations=20, stability=3)
    )
    for i in range(3):
        assert scanner.regime("M") is Regime.UNKNOWN
        scanner.scan(T0 + i * 5 * S)
    assert scanner.regime("M") is Regime.MEAN_REVERTING

    # one odd scan (a wide book) does not flip it; three do
    for i, spread in enumerate([2000, 200, 2000, 2000]):
        scanner.sample("M", 5000.0, spread, 1000)
        scanner.scan(T0 + (10 + i) * 5 * S)
        if i < 3:
            assert scanner.regime("M") is Regime.MEAN_REVERTING
    scanner.sample("M", 5000.0, 2000, 1000)
    scanner.scan(T0 + 20 * 5 * S)
    assert scanner.regime("M") is Regime.NOISE


def test_no_event_before_the_markets_regime_is_known() -> None:
    swinging = [5000 + (300 if i % 2 else 0) for i in range(40)]
    scanner = _scanner(swinging, regimes=RegimeParams(min_observations=20, stability=2))

    scans, events = scanner.scan(T0)

    assert scans[0].trigger == "sigma" and scans[0].regime is Regime.UNKNOWN
    assert events == []
    assert len(scanner.scan(T0 + 5 * S)[1]) == 1  # two agreeing scans: the regime is known


def test_an_untracked_market_is_forgotten_and_samples_of_others_ignored() -> None:
    scanner = _scanner([5000] * 30)
    scanner.sample("OTHER", 5000.0, 200, 1000)
    scanner.untrack("M")

    assert scanner.scan(T0) == ([], [])
    assert scanner.regime("M") is Regime.UNKNOWN
