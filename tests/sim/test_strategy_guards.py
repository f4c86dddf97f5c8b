"""kmm's guards against adverse selection, measured through the backtest on the ``jump`` flow.

The loss the fill cooldown and the jump guard exist for is requoting into a sweep: after a
fill, the same side quoted again at a worse level and filled again within half a second as
an informed taker sweeps through. With the guards on, that does not happen; with them off,
the same seeds do it and lose money on it (10-s markouts). The runs' net P&L over a few
short seeds is too noisy to compare (the scoreboard's ``jump`` sd over 5 seeds × 30 min is
$3–14), so the test measures the loss the guards target, not the net.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from kmm.backtest.run import BacktestOptions, run_backtest
from kmm.config import KmmConfig
from kmm.report import fill_marks, load_run

SEEDS = (1, 2, 3)
DURATION_S = 300.0
SWEEP_NS = 500_000_000
"""A fill on the same side within this long of the last one, at a worse level, is a refill."""
QTY_PER_CONTRACT = 100


@dataclass(frozen=True, slots=True)
class Refills:
    """The fills of one run that requoted into a sweep."""

    fills: int
    markout_10s: int
    """Their 10-s markout, in money units ($0.000001), summed over contracts."""
    within_cap: bool


def _config(*, guards: bool, runs: Path) -> KmmConfig:
    config = KmmConfig()
    switches: dict[str, object] = {}
    if not guards:
        switches = {"jump_cents": Decimal(0), "fill_cooldown_ms": 0}
    return config.model_copy(
        update={
            "strategy": config.strategy.model_copy(update=switches),
            "record": config.record.model_copy(update={"runs_dir": runs}),
        }
    )


def _refills(config: KmmConfig, seed: int) -> Refills:
    options = BacktestOptions(
        scenario="jump", seed=seed, markets=config.sim.markets, duration_s=DURATION_S
    )
    run_backtest(config, options, io.StringIO())
    run_dir = max(p for p in config.record.runs_dir.iterdir() if p.is_dir())
    data = load_run(run_dir)
    end_ns = int(max(data.tape["ts_ns"].max(), data.fills["ts_ns"].max()))
    marked = fill_marks(data.fills, data.tape, end_ns)
    last: dict[tuple[str, int], tuple[int, int]] = {}
    fills = markout = 0
    for row in marked.itertuples():
        key = (str(row.ticker), int(row.sign))
        before = last.get(key)
        if before is not None and _worse_soon(before, int(row.ts_ns), int(row.price), row.sign):
            fills += 1
            if row.markout_10s == row.markout_10s:  # not NA
                markout += int(row.markout_10s) * int(row.qty) // QTY_PER_CONTRACT
        last[key] = (int(row.ts_ns), int(row.price))
    cap = config.risk.max_position_contracts
    within = bool((data.tape["inventory"].abs() <= int(cap * QTY_PER_CONTRACT)).all())
    return Refills(fills, markout, within)


def _worse_soon(before: tuple[int, int], ts_ns: int, price: int, sign: int) -> bool:
    """Within :data:`SWEEP_NS` of the last fill, lower for a bid or higher for an ask."""
    return ts_ns - before[0] <= SWEEP_NS and sign * (before[1] - price) > 0


def test_the_guards_stop_requoting_into_a_sweep_and_the_loss_it_costs(tmp_path: Path) -> None:
    on = [_refills(_config(guards=True, runs=tmp_path / f"on{s}"), s) for s in SEEDS]
    off = [_refills(_config(guards=False, runs=tmp_path / f"off{s}"), s) for s in SEEDS]

    assert sum(r.fills for r in off) >= len(SEEDS), off  # the sweeps are there to be caught
    assert sum(r.fills for r in on) * 4 <= sum(r.fills for r in off), (on, off)
    assert sum(r.markout_10s for r in off) < 0, off  # refilling into a sweep loses
    assert sum(r.markout_10s for r in on) > sum(r.markout_10s for r in off), (on, off)
    assert all(r.within_cap for r in (*on, *off))
