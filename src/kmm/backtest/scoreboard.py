"""The strategy scoreboard (``kmm bench strategy``): kmm's quoter against three baselines.

Theory of operation
-------------------
Every quoter (``strategy.model``: ``kmm`` and the baselines of :mod:`kmm.strategy.baselines`)
runs through the backtest on every scenario of the local exchange, on the same seeds, for the
same simulated time, with everything else in the configuration equal (sizes, position caps,
risk limits, latencies). Each run is recorded into a scratch run directory and read back by
:func:`kmm.report.summarize`, so a score is exactly what ``kmm report`` would say of it: net
P&L after fees, fills, maker share, the largest |inventory| of any market, the markouts at
1/10/60 s and P&L per simulated hour. Runs are independent, so they go to a pool of worker
processes (one per core by default).

Per scenario the board prints each quoter's mean net P&L and its standard deviation over the
seeds, and ranks kmm among them. The goals (issue 13) are checked and printed: kmm's mean at
least the best baseline's everywhere; positive in ``calm`` and ``thin``; in ``jump`` and
``trending`` a loss at most half the best baseline's; every run within its inventory cap.

Money stays exact: a run's figures are the report's decimal strings, read as
:class:`~decimal.Decimal`, and only the statistics over seeds are rounded.
"""

from __future__ import annotations

import io
import statistics
import tempfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Final, TypeVar

from kmm.backtest.driver import BacktestOptions, BacktestVenue
from kmm.backtest.run import run_backtest
from kmm.config import KmmConfig
from kmm.report import MARKOUT_HORIZONS_S, load_run, summarize
from kmm.sim.universe import BOARD_SCENARIOS, SCENARIOS
from kmm.strategy.baselines import QUOTERS
from kmm.types import QTY_SCALE

__all__ = [
    "MODELS",
    "RunScore",
    "Scoreboard",
    "format_board",
    "goals",
    "run_scoreboard",
    "run_tasks",
    "score_options",
    "score_run",
]

MODELS: Final = tuple(QUOTERS)
"""kmm first, then the baselines B1 (fixed), B2 (join), B3 (hbot_as)."""
_BASELINES: Final = tuple(m for m in MODELS if m != "kmm")
_LOSS_SCENARIOS: Final = ("jump", "trending")
_POSITIVE_SCENARIOS: Final = ("calm", "thin")
_SECONDS_PER_HOUR: Final = Decimal(3600)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RunScore:
    """One backtest's figures, as ``kmm report`` reads its run directory.

    Attributes:
        model: The quoter (``strategy.model``).
        scenario: The local exchange's scenario.
        seed: The seed.
        duration_s: Simulated seconds.
        net: Net P&L after fees, in dollars.
        fills: Our fills.
        maker_share: The share of them that were maker fills (None: no fills).
        max_inventory: The largest |position| of any market at any time, in contracts.
        cap: The position cap (``risk.max_position_contracts``).
        markouts: Mean markout per contract at each horizon (s), in dollars (None: none).
        halted: Why the kill switch halted the run, if it did.
        drawdown: The largest fall of the run's equity from a peak, in dollars.
    """

    model: str
    scenario: str
    seed: int
    duration_s: float
    net: Decimal
    fills: int
    maker_share: Decimal | None
    max_inventory: Decimal
    cap: Decimal
    markouts: tuple[tuple[int, Decimal | None], ...]
    halted: str | None
    drawdown: Decimal = Decimal(0)

    @property
    def pnl_per_hour(self) -> Decimal:
        """Net P&L per simulated hour, in dollars."""
        return self.net * _SECONDS_PER_HOUR / Decimal(str(self.duration_s))

    @property
    def within_cap(self) -> bool:
        """Whether |inventory| stayed within the position cap all run."""
        return self.max_inventory <= self.cap


def score_run(
    config: KmmConfig, model: str, scenario: str, seed: int, duration_s: float
) -> RunScore:
    """Runs one backtest with quoter ``model`` in a scratch directory and scores it.

    Args:
        config: The configuration every quoter shares (its ``strategy.model`` is replaced).
        model: The quoter.
        scenario: The scenario.
        seed: The seed.
        duration_s: Simulated seconds.
    """
    run_config = config.model_copy(
        update={"strategy": config.strategy.model_copy(update={"model": model})}
    )
    options = BacktestOptions(
        scenario=scenario, seed=seed, markets=config.sim.markets, duration_s=duration_s
    )
    return score_options(run_config, options, model)


def score_options(
    config: KmmConfig,
    options: BacktestOptions,
    label: str,
    *,
    venue: BacktestVenue | None = None,
    source: str | None = None,
) -> RunScore:
    """Runs one backtest of ``options`` with ``config`` in a scratch directory and scores it
    as ``kmm report`` reads it, under ``label`` (the board's model column); ``venue`` and
    ``source`` as :func:`~kmm.backtest.run.run_backtest` takes them (a capture's replay)."""
    scenario, seed, duration_s = options.scenario, options.seed, options.duration_s or 0.0
    with tempfile.TemporaryDirectory(prefix="kmm-score-") as scratch:
        runs = Path(scratch)
        run_config = config.model_copy(
            update={"record": config.record.model_copy(update={"runs_dir": runs})}
        )
        out = io.StringIO()
        run_backtest(run_config, options, out, venue=venue, source=source)
        run_dir = next(p for p in runs.iterdir() if p.is_dir())
        report = summarize(load_run(run_dir))
    halted = next(
        (line.split("HALTED: ", 1)[1] for line in out.getvalue().splitlines() if "HALTED" in line),
        None,
    )
    extremes = [
        abs(Decimal(m[key]))
        for m in report["markets"]
        for key in ("inventory_min", "inventory_max")
    ]
    share = report["fills"]["maker_share"]
    return RunScore(
        model=label,
        scenario=scenario,
        seed=seed,
        duration_s=duration_s,
        net=Decimal(report["pnl"]["net"]),
        fills=report["fills"]["count"],
        maker_share=None if share is None else Decimal(share),
        max_inventory=max(extremes, default=Decimal(0)),
        cap=Decimal(config.risk.max_position) / QTY_SCALE,
        markouts=tuple(
            (h, _decimal_or_none(report["markouts"][f"{h}s"]["mean"])) for h in MARKOUT_HORIZONS_S
        ),
        halted=halted,
        drawdown=Decimal(report["pnl"]["max_drawdown"] or 0),
    )


def _decimal_or_none(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _score_task(task: tuple[KmmConfig, str, str, int, float]) -> RunScore:
    return score_run(*task)


@dataclass(frozen=True, slots=True)
class Scoreboard:
    """Every run's score, and the summaries the board prints."""

    runs: tuple[RunScore, ...]

    def of(self, scenario: str, model: str) -> list[RunScore]:
        """The runs of one quoter on one scenario, by seed."""
        return sorted(
            (r for r in self.runs if r.scenario == scenario and r.model == model),
            key=lambda r: r.seed,
        )

    def scenarios(self) -> list[str]:
        """The scenarios on the board, in :data:`~kmm.sim.universe.SCENARIOS` order."""
        present = {r.scenario for r in self.runs}
        return [s for s in SCENARIOS if s in present]

    def models(self) -> list[str]:
        """The quoters on the board, kmm first."""
        present = {r.model for r in self.runs}
        return [m for m in MODELS if m in present]

    def mean_net(self, scenario: str, model: str) -> Decimal:
        """The mean net P&L over seeds, in dollars."""
        return Decimal(statistics.mean(r.net for r in self.of(scenario, model)))

    def rank(self, scenario: str, model: str = "kmm") -> int:
        """``model``'s place by mean net P&L among the quoters on ``scenario`` (1 = best)."""
        mine = self.mean_net(scenario, model)
        return 1 + sum(self.mean_net(scenario, m) > mine for m in self.models() if m != model)


def run_scoreboard(
    config: KmmConfig,
    *,
    scenarios: Sequence[str] = BOARD_SCENARIOS,
    models: Sequence[str] = MODELS,
    seeds: Iterable[int] = range(1, 6),
    duration_s: float = 1800.0,
    jobs: int = 1,
    progress: Callable[[RunScore], None] | None = None,
) -> Scoreboard:
    """Runs every (scenario, quoter, seed) backtest, ``jobs`` at a time.

    Args:
        config: The configuration every run shares.
        scenarios: The scenarios.
        models: The quoters.
        seeds: The seeds (each scenario and quoter runs on every one).
        duration_s: Simulated seconds per run.
        jobs: Worker processes (1: in this process).
        progress: Called with each run's score as it finishes.
    """
    tasks = [
        (config, model, scenario, seed, duration_s)
        for scenario in scenarios
        for seed in seeds
        for model in models
    ]
    return Scoreboard(tuple(run_tasks(_score_task, tasks, jobs, progress)))


def run_tasks(
    run: Callable[[T], RunScore],
    tasks: Sequence[T],
    jobs: int,
    progress: Callable[[RunScore], None] | None = None,
) -> list[RunScore]:
    """Every task's score, in task order, ``jobs`` worker processes at a time (1: in this
    process); ``progress`` is called with each score as it comes."""
    scores: list[RunScore] = []
    if jobs <= 1:
        results: Iterable[RunScore] = map(run, tasks)
        for score in results:
            scores.append(score)
            if progress is not None:
                progress(score)
        return scores
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for score in pool.map(run, tasks):
            scores.append(score)
            if progress is not None:
                progress(score)
    return scores


def goals(board: Scoreboard) -> list[tuple[str, bool, str]]:
    """Issue 13's goals on this board: ``(goal, met, figures)`` per scenario and overall."""
    checks: list[tuple[str, bool, str]] = []
    baselines = [m for m in board.models() if m in _BASELINES]
    for scenario in board.scenarios():
        if "kmm" not in board.models() or not baselines:
            break
        kmm = board.mean_net(scenario, "kmm")
        best_model = max(baselines, key=lambda m: board.mean_net(scenario, m))
        best = board.mean_net(scenario, best_model)
        figures = f"kmm ${kmm:.2f} vs best baseline {best_model} ${best:.2f}"
        checks.append((f"{scenario}: kmm >= the best baseline", kmm >= best, figures))
        if scenario in _POSITIVE_SCENARIOS:
            checks.append((f"{scenario}: kmm positive", kmm > 0, f"kmm ${kmm:.2f}"))
        if scenario in _LOSS_SCENARIOS and best < 0:
            checks.append(
                (
                    f"{scenario}: kmm's loss at most half the best baseline's",
                    kmm >= best / 2,
                    f"kmm ${kmm:.2f}, half of {best_model}'s ${best / 2:.2f}",
                )
            )
    over = [r for r in board.runs if not r.within_cap]
    worst = max((r.max_inventory for r in board.runs), default=Decimal(0))
    checks.append(
        (
            "every run within its inventory cap",
            not over,
            f"largest |inventory| {worst} contracts"
            + (
                f"; over the cap: {', '.join(f'{r.model}/{r.scenario}/{r.seed}' for r in over)}"
                if over
                else ""
            ),
        )
    )
    return checks


def format_board(board: Scoreboard) -> str:
    """The board as text: a table per scenario, then the goals."""
    lines: list[str] = []
    header = (
        "model", "net mean", "net sd", "fills", "maker", "max|q|",
        *(f"mk {h}s" for h in MARKOUT_HORIZONS_S), "$/hour", "halts",
    )  # fmt: skip
    for scenario in board.scenarios():
        rows = [list(header)]
        for model in board.models():
            runs = board.of(scenario, model)
            rows.append(_row(model, runs))
        seeds = len(board.of(scenario, board.models()[0]))
        minutes = board.runs[0].duration_s / 60
        rank = (
            f"; kmm ranks {board.rank(scenario)} of {len(board.models())}"
            if "kmm" in board.models()
            else ""
        )
        lines.append(f"{scenario} ({seeds} seeds x {minutes:g} min{rank}):")
        lines += _aligned(rows)
        lines.append("")
    for goal, met, figures in goals(board):
        lines.append(f"{'met    ' if met else 'NOT met'}  {goal}: {figures}")
    return "\n".join(lines) + "\n"


def _row(model: str, runs: list[RunScore]) -> list[str]:
    nets = [r.net for r in runs]
    sd = statistics.stdev(nets) if len(nets) > 1 else Decimal(0)
    shares = [r.maker_share for r in runs if r.maker_share is not None]
    cells = [
        model,
        f"{statistics.mean(nets):.2f}",
        f"{sd:.2f}",
        f"{statistics.mean(r.fills for r in runs):.0f}",
        f"{statistics.mean(shares):.2f}" if shares else "-",
        f"{max(r.max_inventory for r in runs):.0f}",
    ]
    for index, _ in enumerate(MARKOUT_HORIZONS_S):
        known = [m for r in runs if (m := r.markouts[index][1]) is not None]
        cells.append(f"{statistics.mean(known):.4f}" if known else "-")
    cells.append(f"{statistics.mean(r.pnl_per_hour for r in runs):.2f}")
    cells.append(str(sum(r.halted is not None for r in runs)))
    return cells


def _aligned(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  "
        + "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
