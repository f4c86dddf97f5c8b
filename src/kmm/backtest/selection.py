"""The selection scoreboard (``kmm bench selection``): choosing markets against not choosing.

Theory of operation
-------------------
On the local exchange's ``mixed`` universe (300 markets by default, over dozens of series,
with per-market flow regimes that change over time), over the same seeds and the same
simulated time, four arms run through the backtest:

* ``first_n``: the first ``n`` binary markets the exchange lists (its list is shuffled: a
  random mix), each with the run's position cap: what a bot that does not choose trades;
* ``discovery``: discovery's best ``n`` at the start, scored as ``kmm scan`` scores them
  (the exchange's listing, its series' categories and the real books of the candidates),
  each within its own budget: what ``kmm run --mode discovery`` trades at its start;
* ``always``: discovery's best ``track`` markets, quoted all the time, each capped like a
  volatility session (``volatility.session_max_position_contracts``);
* ``volatility``: volatility mode on the same ``track`` markets: quoted only in sessions.

So ``discovery`` is measured against ``first_n`` and ``volatility`` against ``always``, each
pair on the same markets' universe and seeds. The markets are chosen from the exchange as it
is at the start of the run (the backtest has no REST API: the choice reads the same exchange
in process, through the same parsers as the REST client). Rescoring during the run is not in
the backtest. Each run is scored by :func:`~kmm.backtest.scoreboard.score_options`, as
``kmm report`` reads its run directory.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Final

from kmm.backtest.choice import discovered
from kmm.backtest.driver import DEFAULT_START_NS, BacktestOptions
from kmm.backtest.scoreboard import RunScore, run_tasks, score_options
from kmm.backtest.sim_venue import GeneratedVenue
from kmm.config import KmmConfig
from kmm.sim.server import SimOptions
from kmm.types import Qty

__all__ = ["ARMS", "Choice", "SelectionBoard", "choose", "format_selection", "run_selection"]

ARMS: Final = ("first_n", "discovery", "always", "volatility")
PAIRS: Final = (("discovery", "first_n"), ("volatility", "always"))
"""Each arm that chooses, and the arm it is measured against."""


@dataclass(frozen=True, slots=True)
class Choice:
    """The markets of each arm for one seed."""

    first: tuple[str, ...]
    chosen: tuple[tuple[str, Qty], ...]
    tracked: tuple[str, ...]


def choose(config: KmmConfig, seed: int, markets: int, n: int, track: int) -> Choice:
    """The first ``n`` listed binary markets, discovery's best ``n`` with their budgets, and
    discovery's best ``track``, on the ``mixed`` universe of ``seed`` at the start."""
    start = DEFAULT_START_NS
    venue = GeneratedVenue(
        SimOptions(seed=seed, markets=markets, scenario="mixed"), start, 100_000 * 1_000_000
    )
    first = tuple(
        m.info.ticker
        for m in venue.listings()
        if m.market_type == "binary" and not m.combo and m.info.status in ("active", "open")
    )[:n]
    chosen = tuple(discovered(config, venue, n, start))
    tracked = tuple(t for t, _ in discovered(config, venue, track, start))
    return Choice(first, chosen, tracked)


def _arm_run(
    config: KmmConfig, arm: str, choice: Choice, seed: int, markets: int, duration_s: float
) -> tuple[KmmConfig, BacktestOptions]:
    options = BacktestOptions(scenario="mixed", seed=seed, markets=markets, duration_s=duration_s)
    if arm == "first_n":
        return config, replace(options, tickers=choice.first)
    if arm == "discovery":
        tickers = tuple(t for t, _ in choice.chosen)
        return config, replace(options, tickers=tickers, caps=choice.chosen)
    cap = int(config.volatility.session_max_position_contracts * 100)
    if arm == "always":
        caps = tuple((t, cap) for t in choice.tracked)
        return config, replace(options, tickers=choice.tracked, caps=caps)
    volatile = config.model_copy(
        update={"markets": config.markets.model_copy(update={"mode": "volatility"})}
    )
    return volatile, replace(options, tickers=choice.tracked)


def _task(task: tuple[KmmConfig, str, int, int, float, int, int]) -> RunScore:
    config, arm, seed, markets, duration_s, n, track = task
    choice = choose(config, seed, markets, n, track)
    run_config, options = _arm_run(config, arm, choice, seed, markets, duration_s)
    return score_options(run_config, options, arm)


@dataclass(frozen=True, slots=True)
class SelectionBoard:
    """Every arm's runs."""

    runs: tuple[RunScore, ...]
    n: int
    track: int
    markets: int

    def of(self, arm: str) -> list[RunScore]:
        """One arm's runs, by seed."""
        return sorted((r for r in self.runs if r.model == arm), key=lambda r: r.seed)

    def mean(self, arm: str) -> Decimal:
        """An arm's mean net P&L over seeds, in dollars."""
        return Decimal(statistics.mean(r.net for r in self.of(arm)))


def run_selection(
    config: KmmConfig,
    *,
    seeds: Iterable[int] = range(1, 4),
    markets: int = 300,
    duration_s: float = 900.0,
    n: int = 10,
    track: int = 30,
    jobs: int = 1,
    progress: Callable[[RunScore], None] | None = None,
) -> SelectionBoard:
    """Runs every (arm, seed) backtest, ``jobs`` at a time."""
    tasks = [(config, arm, seed, markets, duration_s, n, track) for seed in seeds for arm in ARMS]
    scores = run_tasks(_task, tasks, jobs, progress)
    return SelectionBoard(tuple(scores), n, track, markets)


def format_selection(board: SelectionBoard) -> str:
    """The board: each arm's mean and sd of net P&L, fills and worst |inventory|, then each
    choosing arm against its baseline, seed by seed."""
    lines = [
        f"selection on the mixed universe ({board.markets} markets; discovery and first_n "
        f"trade {board.n}, always and volatility the best {board.track}):",
        f"  {'arm':<11} {'net mean':>9} {'net sd':>7} {'fills':>6} {'max|q|':>7}  per seed",
    ]
    for arm in ARMS:
        runs = board.of(arm)
        if not runs:
            continue
        nets = [r.net for r in runs]
        sd = statistics.stdev(nets) if len(nets) > 1 else Decimal(0)
        fills = statistics.mean(r.fills for r in runs)
        worst = max(r.max_inventory for r in runs)
        per_seed = " ".join(f"{r.net:.2f}" for r in runs)
        lines.append(
            f"  {arm:<11} {board.mean(arm):>9.2f} {sd:>7.2f} {fills:>6.0f} {worst:>7.0f}  "
            f"{per_seed}"
        )
    for chooser, baseline in PAIRS:
        if not board.of(chooser) or not board.of(baseline):
            continue
        wins = sum(
            a.net > b.net for a, b in zip(board.of(chooser), board.of(baseline), strict=True)
        )
        delta = board.mean(chooser) - board.mean(baseline)
        verdict = "better" if delta > 0 else "NOT better"
        lines.append(
            f"  {chooser} vs {baseline}: {delta:+.2f} $ mean ({wins} of "
            f"{len(board.of(chooser))} seeds better): {verdict}"
        )
    return "\n".join(lines)
