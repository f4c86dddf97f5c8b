"""Volatility mode end to end: the backtest against the ``mixed`` universe's known regimes, and
the real ``kmm run --mode volatility`` and ``kmm scan --watch`` against the local exchange over
loopback."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

from kmm.backtest.driver import Backtest, BacktestOptions
from kmm.config import KmmConfig
from kmm.core.planner import StartCreate
from kmm.select.volatility import Regime

MARKETS = 300
TRUTH = {
    "quiet": Regime.QUIET,
    "mean_reverting": Regime.MEAN_REVERTING,
    "trending": Regime.TRENDING,
    "chaotic": Regime.CHAOTIC,
    "thin": Regime.NOISE,
}


def test_the_classifier_finds_the_exchanges_regimes_and_sessions_quote_only_while_they_run() -> (
    None
):
    config = KmmConfig.model_validate({"markets": {"mode": "volatility"}})
    backtest = Backtest(
        config, BacktestOptions(scenario="mixed", seed=1, markets=40, duration_s=1200.0)
    )
    flow = backtest.venue.venue.flow  # type: ignore[attr-defined]
    desk = backtest.core.desk
    assert desk is not None
    confusion: Counter[tuple[str, Regime]] = Counter()
    outside: list[str] = []
    tick = backtest._handlers["tick"]  # the test watches every tick
    take = backtest.core.take_actions

    def watched_tick(now: int, payload: Any) -> None:
        tick(now, payload)
        for ticker, scan in desk.scanner.last_scan.items():
            if scan.features.samples >= 120:
                confusion[(flow.regime(ticker), scan.regime)] += 1

    def watched_take() -> list[Any]:
        actions = take()
        for action in actions:
            # a quote (post-only) only in a running session; exits are reduce-only
            order = action.order if isinstance(action, StartCreate) else None
            if (
                order is not None
                and not order.reduce_only
                and order.ticker not in desk.manager.running
            ):
                outside.append(order.ticker)
        return actions

    backtest._handlers["tick"] = watched_tick
    backtest.core.take_actions = watched_take  # type: ignore[method-assign]
    backtest.run()

    assert outside == []
    assert desk.stats.sessions >= 5
    assert sum(desk.stats.ended.values()) == desk.stats.sessions
    for truth, regime in TRUTH.items():
        labelled = {r: n for (t, r), n in confusion.items() if t == truth}
        share = labelled.get(regime, 0) / sum(labelled.values())
        others = max(n for r, n in labelled.items() if r is not regime) / sum(labelled.values())
        assert share > 0.3 and share >= others * 0.9, (truth, labelled)


def _env(tmp_path: Path, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMM__")}
    env.update(
        KMM__SIM__SCENARIO="mixed",
        KMM__SIM__MARKETS=str(MARKETS),
        KMM__SIM__STATE_DIR=str(tmp_path / "state"),
        KMM__RECORD__RUNS_DIR=str(tmp_path / "runs"),
        KMM__RECORD__LEDGER_PATH=str(tmp_path / "ledger.sqlite"),
        # a short warm-up and permissive triggers, so that sessions start within a short run
        KMM__VOLATILITY__WARMUP="10",
        KMM__VOLATILITY__MIN_OBSERVATIONS="10",
        KMM__VOLATILITY__STABILITY="1",
        KMM__VOLATILITY__SCAN_S="2",
        KMM__VOLATILITY__SIGMA_TRIGGER_PER_SQRT_S="0.0005",
        KMM__VOLATILITY__TTL_S="8",
        KMM__VOLATILITY__TRACK_N="60",
        KMM__VOLATILITY__PROFILES="[[mean_reverting, 0.5, 2, 4, 1.0, []]]",
        KMM__VOLATILITY__CATEGORY_PROFILES="{default: mean_reverting}",
        **more,
    )
    return env


def _kmm(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kmm", *args],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=120,
        check=False,
        cwd=tmp_path,
    )


def test_kmm_run_in_volatility_mode_runs_sessions_records_them_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    ran = _kmm(tmp_path, "run", "--mode", "volatility", "--duration", "35")

    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr
    assert re.search(r"discovery: \d+ open markets, \d+ candidates, 60 chosen", ran.stdout)
    started = re.findall(r"volatility: session (\d+) (\S+): \w+ event", ran.stdout)
    assert started, ran.stdout[-3000:]
    assert re.search(
        r"volatility: session \d+ \S+: ended \((ttl|regime:\w+|min_volatility)", ran.stdout
    )
    assert "no order of ours rests" in ran.stdout
    with closing(sqlite3.connect(tmp_path / "ledger.sqlite")) as ledger:
        sessions = ledger.execute(
            "SELECT session, ticker, end_reason, pnl FROM volatility_sessions ORDER BY session"
        ).fetchall()
        taken = ledger.execute(
            "SELECT ticker, session FROM volatility_events WHERE session IS NOT NULL"
        ).fetchall()
        snapshots = ledger.execute(
            "SELECT COUNT(*), COUNT(DISTINCT ticker) FROM market_snapshots"
        ).fetchone()
    assert [(n, t) for n, t, _, _ in sessions] == [(int(n), t) for n, t in started]
    assert all(reason for _, _, reason, _ in sessions)
    assert sorted(taken) == sorted((t, int(n)) for n, t in started)
    assert snapshots[1] == 60 and snapshots[0] >= 60


def test_kmm_scan_watch_prints_the_scanners_events_without_trading(tmp_path: Path) -> None:
    ran = _kmm(tmp_path, "scan", "--top", "3", "--watch", "--duration", "20")

    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr
    assert "kmm scan --watch: 60 markets tracked" in ran.stdout
    events = re.findall(r"^\d\d:\d\d:\d\d (\S+) +(jump|sigma) +range .* -> (.*)$", ran.stdout, re.M)
    assert events, ran.stdout[-3000:]
    assert any(outcome.startswith("session ") for _, _, outcome in events)
    assert not (tmp_path / "runs").exists()  # it records nothing and never trades


def test_a_bad_regime_name_in_the_profiles_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = _env(tmp_path, KMM__VOLATILITY__GAMMA_MULTIPLIERS="{trendy: 1.5}")
    ran = subprocess.run(
        [sys.executable, "-m", "kmm", "run", "--mode", "volatility", "--duration", "1"],
        capture_output=True, text=True, env=env, timeout=60, check=False, cwd=tmp_path,
    )  # fmt: skip

    assert ran.returncode == 2
    assert len(ran.stderr.strip().splitlines()) == 1
    assert "unknown regime trendy" in ran.stderr
