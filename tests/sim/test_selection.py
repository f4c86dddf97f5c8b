"""The selection scoreboard: each arm trades the markets it should, within its caps; the board
runs end to end and the CLI refuses bad figures in one line."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

from kmm.backtest.driver import BacktestOptions
from kmm.backtest.run import run_backtest
from kmm.backtest.selection import ARMS, choose, format_selection, run_selection
from kmm.config import KmmConfig


def test_the_choice_is_the_listing_order_discoverys_best_and_a_tracked_superset() -> None:
    config = KmmConfig()

    choice = choose(config, seed=2, markets=60, n=4, track=8)
    again = choose(config, seed=2, markets=60, n=4, track=8)

    assert choice == again  # the same seed, the same universe, the same choice
    assert len(choice.first) == 4 and len(choice.chosen) <= 4 and len(choice.tracked) <= 8
    assert {t for t, _ in choice.chosen} <= set(choice.tracked)
    assert all(cap > 0 for _, cap in choice.chosen)
    assert {t for t, _ in choice.chosen} != set(choice.first)  # it chose, not the first four


def test_a_backtest_on_chosen_markets_trades_only_them_within_their_caps() -> None:
    config = KmmConfig()
    choice = choose(config, seed=3, markets=60, n=3, track=6)
    with tempfile.TemporaryDirectory() as scratch:
        run_config = config.model_copy(
            update={"record": config.record.model_copy(update={"runs_dir": Path(scratch)})}
        )
        options = BacktestOptions(
            scenario="mixed", seed=3, markets=60, duration_s=120.0,
            tickers=tuple(t for t, _ in choice.chosen), caps=choice.chosen,
        )  # fmt: skip
        run_backtest(run_config, options, io.StringIO())
        run_dir = next(p for p in Path(scratch).iterdir() if p.is_dir())
        with (run_dir / "tape.csv").open() as f:
            rows = list(csv.DictReader(f))
    caps = {t: Decimal(cap) / 100 for t, cap in choice.chosen}
    assert rows and {r["ticker"] for r in rows} <= set(caps)
    assert all(abs(Decimal(r["inventory"])) <= caps[r["ticker"]] for r in rows)


def test_the_board_runs_every_arm_and_compares_each_pair() -> None:
    board = run_selection(KmmConfig(), seeds=[1], markets=40, duration_s=90.0, n=3, track=5)

    assert sorted(r.model for r in board.runs) == sorted(ARMS)
    text = format_selection(board)
    assert "discovery vs first_n:" in text and "volatility vs always:" in text
    assert all(r.max_inventory <= 3 for r in board.of("always") + board.of("volatility"))


def test_kmm_bench_selection_refuses_more_markets_than_the_universe_in_one_line() -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "kmm", "bench", "selection", "--universe", "20", "--top", "30"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert ran.returncode == 2
    assert ran.stderr.strip().splitlines() == ["kmm: --top and --track: at most --universe (20)"]


def test_discovery_mode_in_the_backtest_trades_discoverys_choice_within_its_budgets() -> None:
    config = KmmConfig.model_validate({"markets": {"mode": "discovery"}, "discovery": {"top_n": 4}})
    choice = choose(config, seed=4, markets=60, n=4, track=4)
    with tempfile.TemporaryDirectory() as scratch:
        run_config = config.model_copy(
            update={"record": config.record.model_copy(update={"runs_dir": Path(scratch)})}
        )
        options = BacktestOptions(scenario="mixed", seed=4, markets=60, duration_s=120.0)
        run_backtest(run_config, options, io.StringIO())
        run_dir = next(p for p in Path(scratch).iterdir() if p.is_dir())
        with (run_dir / "tape.csv").open() as f:
            rows = list(csv.DictReader(f))
    caps = {t: Decimal(cap) / 100 for t, cap in choice.chosen}
    assert {r["ticker"] for r in rows} == set(caps)
    assert all(abs(Decimal(r["inventory"])) <= caps[r["ticker"]] for r in rows)
