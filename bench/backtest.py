"""The backtest's speed, and its fidelity to a live run of the same scenario and seed.

Speed: an 8-market ``calm`` flow, simulated seconds per wall second and the cost of one event
(a venue action, a frame batch delivered, an order's arrival or answer, a tick).

Fidelity: ``kmm run`` against the in-process local exchange (real sockets, wall clock) and
``kmm backtest`` with the same scenario, seed and duration (default latencies), both read by
``kmm report``: fill counts and net P&L side by side. Drawing the backtest's latencies from
the live run (``--latency-from``) agreed worse (means over seeds 3-5 in ``jump``: 46 fills
against the live run's 86, where the default latencies gave 80): on loopback with the local
exchange in the bot's own process, the recorded delays are mostly the shared event loop's
queueing, which the backtest then adds on top of its own. The two are not the same sample
path (the live run's timings are the machine's), so they agree only in distribution.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kmm.backtest import Backtest, BacktestOptions
from kmm.config import KmmConfig

__all__ = ["fidelity", "speed"]


def speed(duration_s: float = 1800.0, markets: int = 8) -> dict[str, float]:
    """One calm backtest: simulated s per wall s, events and frames per wall s, and the
    wall time per frame in all and on the trading core's side alone (frames delivered,
    answers, ticks and wake-ups; the rest is the simulated exchange and its traders)."""
    options = BacktestOptions(scenario="calm", seed=7, markets=markets, duration_s=duration_s)
    run = Backtest(KmmConfig(), options)
    core_s = [0.0]

    def timed(handler: Callable[[int, Any], None]) -> Callable[[int, Any], None]:
        def call(at: int, payload: Any) -> None:
            start = time.perf_counter()
            handler(at, payload)
            core_s[0] += time.perf_counter() - start

        return call

    for kind in ("deliver", "answer", "tick", "wake"):
        run._handlers[kind] = timed(run._handlers[kind])
    start = time.perf_counter()
    result = run.run()
    wall = time.perf_counter() - start
    return {
        "speed": duration_s / wall,
        "events_per_s": result.events / wall,
        "us_per_frame": wall / result.frames * 1e6,
        "core_us_per_frame": core_s[0] / result.frames * 1e6,
        "events": float(result.events),
        "frames": float(result.frames),
        "fills": float(result.fills),
        "wall_s": wall,
    }


def _kmm(args: list[str], env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "kmm", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"bench: kmm {' '.join(args)} failed ({done.returncode}): {done.stderr[-500:]}")
    prefix = "kmm: run directory "
    lines = [line for line in done.stdout.splitlines() if line.startswith(prefix)]
    return lines[-1].removeprefix(prefix) if lines else ""


def _reported(run_dir: Path, env: dict[str, str], cwd: Path) -> dict[str, Any]:
    _kmm(["report", str(run_dir)], env, cwd)
    report: dict[str, Any] = json.loads((cwd / run_dir / "report.json").read_text())
    return {"fills": report["fills"]["count"], "net": float(report["pnl"]["net"])}


def fidelity(scenario: str, seed: int, duration_s: float) -> dict[str, dict[str, Any]]:
    """The same scenario, seed and duration live and in the backtest, as ``kmm report`` reads
    them: ``{"live": {"fills", "net"}, "backtest": {...}}``."""
    with tempfile.TemporaryDirectory(prefix="kmm-bench-") as scratch:
        cwd = Path(scratch)
        env = {k: v for k, v in os.environ.items() if not k.startswith("KMM__")}
        env.update({
            "KMM__RECORD__RUNS_DIR": str(cwd / "runs"),
            "KMM__RECORD__LEDGER_PATH": str(cwd / "runs" / "ledger.sqlite"),
            "KMM__SIM__STATE_DIR": str(cwd / "state"),
            "KMM__SIM__SCENARIO": scenario,
            "KMM__SIM__SEED": str(seed),
        })  # fmt: skip
        live = _kmm(["run", "--duration", f"{duration_s:g}"], env, cwd)
        backtest = _kmm(["backtest", "--duration", f"{duration_s:g}"], env, cwd)
        return {
            "live": _reported(Path(live), env, cwd),
            "backtest": _reported(Path(backtest), env, cwd),
        }
