"""``kmm bench sweep``: the sweep's throughput with 1 and 2 local workers, and the scaling.

The same small random-search sweep (one fold, 2 seeds of the ``calm`` scenario, 3 markets, 5
simulated minutes a backtest) runs on a LocalCluster of 1 worker, then of 2, each into a fresh
directory; trials per minute are counted from the first trial asked to the last told, so the
cluster's start is left out. The ratio of the two is the scaling: 2.0 would be perfect, and on
a machine with 2 cores the scheduler, the study's SQLite and the printing share them with the
workers.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Final, TextIO

from kmm.config import KmmConfig
from kmm.research.space import load_space
from kmm.research.sweep import SweepOptions, SweepRun, run_sweep, scenario_sessions

__all__ = ["BENCH_TRIALS", "bench_sweep", "format_bench", "print_bench"]

BENCH_TRIALS: Final = 12
_SPACE: Final = (
    "strategy.gamma: {low: 0.1, high: 2.0, log: true}\n"
    "strategy.min_spread_cents: {low: 1, high: 6, step: 0.5}\n"
)


def bench_sweep(
    config: KmmConfig, workers: Sequence[int] = (1, 2), trials: int = BENCH_TRIALS
) -> list[tuple[int, SweepRun]]:
    """The bench sweep on a LocalCluster of each size in ``workers``."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="kmm-bench-sweep-") as scratch:
        root = Path(scratch)
        (root / "space.yaml").write_text(_SPACE, encoding="utf-8")
        space = load_space(root / "space.yaml", config)
        sessions = tuple(scenario_sessions(["calm"], [1, 2], 3, 300.0))
        for count in workers:
            options = SweepOptions(
                space=space,
                sessions=sessions,
                folds=1,
                trials=trials,
                out=root / f"workers-{count}",
                sampler="random",
                workers=count,
            )
            runs.append((count, run_sweep(config, options, io.StringIO())))
    return runs


def format_bench(runs: Sequence[tuple[int, SweepRun]]) -> str:
    """Trials per minute per cluster size, and the scaling against 1 worker."""
    lines = [f"sweep ({BENCH_TRIALS} trials of 1 backtest, calm, 3 markets, 5 min simulated):"]
    base = runs[0][1].trials_per_minute if runs else 0.0
    for workers, run in runs:
        ratio = run.trials_per_minute / base if base else 0.0
        lines.append(
            f"  {workers} worker{'s' if workers > 1 else ' '}: {run.trials_per_minute:6.1f} "
            f"trials/min ({run.trials_run} trials in {run.search_s:.1f} s), {ratio:.2f}x "
            "1 worker"
        )
    return "\n".join(lines)


def print_bench(config: KmmConfig, out: TextIO) -> int:
    """Runs and prints the bench; returns 0."""
    print(format_bench(bench_sweep(config)), file=out, flush=True)
    return 0
