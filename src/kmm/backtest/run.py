"""``kmm backtest``: one backtest into a run directory like a live run's.

The run directory (``record.runs_dir``/<UTC wall-clock start>) gets the same files as a live
run's (``tape.csv``, ``orders.csv``, ``fills.csv``, ``config.yaml``, ``ops.log``), so
``kmm report`` reads it unchanged, and its own ledger (``ledger.sqlite`` inside it): a
backtest never writes into the live runs' ledger.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TextIO

import yaml

from kmm.backtest.driver import (
    Backtest,
    BacktestOptions,
    BacktestResult,
    BacktestVenue,
    progress_line,
)
from kmm.config import KmmConfig, masked_dump
from kmm.core.trading import TradingCore
from kmm.record import Recorder, new_run_dir, setup_logging
from kmm.types import format_money

__all__ = ["run_backtest"]


def run_backtest(
    config: KmmConfig,
    options: BacktestOptions,
    out: TextIO,
    *,
    venue: BacktestVenue | None = None,
    source: str | None = None,
) -> int:
    """Runs one backtest, records it and prints its progress and summary; returns 0.

    Args:
        config: The run's configuration (written as the run's ``config.yaml``).
        options: What to simulate.
        out: Where progress and the summary go.
        venue: The venue (default: the local exchange in process, from ``options``).
        source: What the venue is, for the first line and ``backtest.json``.

    Raises:
        OSError: if the run directory cannot be created.
    """
    record = config.record
    run_dir = new_run_dir(record.runs_dir, time.time_ns())
    listener = setup_logging(run_dir, record.log_level, None, record.log_format)
    source = source or (
        f"scenario {options.scenario}, seed {options.seed}, {options.markets} markets"
    )
    simulated = "to its end" if options.duration_s is None else f"{options.duration_s:g} s"
    _write_backtest_json(run_dir, options, source)
    recorder = _open_recorder(config, run_dir)
    print(
        f"kmm backtest: {source}, {simulated} simulated; run directory {run_dir}",
        file=out,
        flush=True,
    )

    def progress(core: TradingCore, now: int, result: BacktestResult) -> None:
        print(progress_line(core, now, result, options.start_ns), file=out, flush=True)

    every = max(60.0, (options.duration_s or 3600.0) / 20)
    try:
        result = Backtest(
            config, options, records=recorder, progress=progress, progress_every_s=every,
            venue=venue,
        ).run()  # fmt: skip
    finally:
        recorder.close()
        listener.stop()
    print(_summary(result), file=out, flush=True)
    print(f"kmm: run directory {run_dir}", file=out, flush=True)
    return 0


def _write_backtest_json(run_dir: Path, options: BacktestOptions, source: str) -> None:
    """``backtest.json``: what was simulated, so the run can be told from a live one."""
    about = {
        "source": source,
        "seed": options.seed,
        "duration_s": options.duration_s,
        "start_ns": options.start_ns,
        "latency": {"feed": repr(options.latency.feed), "order": repr(options.latency.order)},
    }
    (run_dir / "backtest.json").write_text(json.dumps(about, indent=2) + "\n")


def _open_recorder(config: KmmConfig, run_dir: Path) -> Recorder:
    """The run's own tape and ledger, with its masked config."""
    dump = masked_dump(config)
    return Recorder.open(
        run_dir,
        run_dir / "ledger.sqlite",
        run_id=run_dir.name,
        env="backtest",
        config_yaml=yaml.safe_dump(dump, sort_keys=False),
        config_json=json.dumps(dump),
        capture=False,
        flush_interval_s=config.record.flush_interval_s,
    )


def _summary(result: BacktestResult) -> str:
    halted = f" | HALTED: {result.halted}" if result.halted else ""
    rate = result.events / max(result.wall_seconds, 1e-9)
    pnl = (
        f"net P&L ${format_money(result.net_pnl)} (realized ${format_money(result.realized)}, "
        f"unrealized ${format_money(result.unrealized)})"
    )
    return (
        f"kmm backtest: {result.sim_seconds:g} s simulated in {result.wall_seconds:.1f} s "
        f"({result.speed:,.0f}x) | {result.events:,} events ({rate:,.0f}/s) | "
        f"fills {result.fills} | orders {result.orders_sent} | {pnl}{halted}"
    )
