"""``kmm bench strategy`` end to end: real backtests, scored as ``kmm report`` reads them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kmm.backtest.scoreboard import score_run
from kmm.config import KmmConfig


def test_a_score_is_what_kmm_report_says_of_the_backtest(tmp_path: Path) -> None:
    config = KmmConfig()

    score = score_run(config, "join", "calm", 1, 120.0)
    again = score_run(config, "join", "calm", 1, 120.0)

    assert score == again  # deterministic for a seed
    assert score.model == "join" and score.fills > 0
    assert score.maker_share is not None and 0 <= score.maker_share <= 1
    assert score.within_cap
    assert score.pnl_per_hour == score.net * 30


def test_kmm_bench_strategy_prints_the_board_and_its_goals(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kmm", "bench", "strategy", "--scenarios", "calm,jump",
         "--models", "kmm,fixed", "--seeds", "1", "--duration", "60", "--jobs", "2"],
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert "calm (1 seeds x 1 min; kmm ranks" in done.stdout
    assert "jump (1 seeds x 1 min; kmm ranks" in done.stdout
    assert "calm: kmm >= the best baseline" in done.stdout
    assert "every run within its inventory cap" in done.stdout


def test_an_unknown_model_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kmm", "bench", "strategy", "--models", "kmm,magic"],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
    )  # fmt: skip

    assert done.returncode == 2
    assert "magic: expected some of kmm, fixed, join, hbot_as" in done.stderr
    assert "Traceback" not in done.stderr
