"""``kmm sweep`` end to end on a real ``distributed.LocalCluster`` with 2 workers: a small
walk-forward sweep, interrupted by Ctrl-C and resumed; and ``kmm calibrate`` on the backtests
of a scenario whose markets settle."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from kmm.config import KmmConfig
from kmm.errors import ConfigError
from kmm.research import sweep
from kmm.research.space import load_space

SPACE = (
    "strategy.gamma: {low: 0.1, high: 2.0, log: true}\n"
    "strategy.min_spread_cents: {low: 1, high: 6, step: 0.5}\n"
)
SWEEP = [
    "sweep", "--space", "space.yaml", "--scenarios", "calm", "--seeds", "1-3", "--folds", "2",
    "--trials", "6", "--workers", "2", "--out", "out", "--duration", "2m", "--markets", "3",
]  # fmt: skip


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMM__")}
    env["KMM__RECORD__RUNS_DIR"] = str(tmp_path / "runs")
    return env


def _kmm(tmp_path: Path, *args: str, timeout_s: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kmm", *args], cwd=tmp_path, env=_env(tmp_path),
        capture_output=True, text=True, timeout=timeout_s, check=False,
    )  # fmt: skip


def _trials(out: Path) -> list[dict[str, str]]:
    with (out / "trials.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.timeout(300)
def test_a_sweep_interrupted_resumes_and_writes_its_best_config(tmp_path: Path) -> None:
    (tmp_path / "space.yaml").write_text(SPACE)
    (tmp_path / "base.yaml").write_text("strategy:\n  eta: 0.07\n")
    args = ["--config", "base.yaml", *SWEEP]
    process = subprocess.Popen(
        [sys.executable, "-m", "kmm", *args], cwd=tmp_path, env=_env(tmp_path),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if "trials 3/12" in line:
            break
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert (
        err == "kmm sweep: interrupted; the study in out resumes when the same command runs again\n"
    )
    assert lines[0].startswith("kmm sweep: 2 parameters, 3 sessions, 2 folds x 6 trials, tpe")
    assert "2 workers on a local cluster" in lines[0]

    resumed = _kmm(tmp_path, *args)

    assert resumed.returncode == 0, resumed.stderr
    progress = [line for line in resumed.stdout.splitlines() if line.startswith("sweep: fold")]
    assert progress and not any("trials 1/12 " in line for line in progress), "it resumed"
    rows = _trials(tmp_path / "out")
    for fold in ("1", "2"):
        done = [r for r in rows if r["fold"] == fold and r["state"] == "complete"]
        assert len(done) == 6, rows
    with (tmp_path / "out" / "folds.csv").open(newline="") as handle:
        folds = list(csv.DictReader(handle))
    assert [f["train"] for f in folds] == ["seed 1", "seed 2"]
    assert [f["test"] for f in folds] == ["seed 2", "seed 3"]
    best = yaml.safe_load((tmp_path / "out" / "best.yaml").read_text())
    assert best["strategy"]["eta"] == 0.07, "best.yaml is the base config with the parameters"
    assert 0.1 <= best["strategy"]["gamma"] <= 2.0
    checked = _kmm(tmp_path, "--config", "out/best.yaml", "config")
    assert checked.returncode == 0, checked.stderr
    assert (tmp_path / "out" / "folds.png").stat().st_size > 1000
    assert "walk-forward mean: out of sample " in resumed.stdout
    assert "importance: none (a fold needs 12 complete trials)" in resumed.stdout
    assert (tmp_path / "out" / "importance.csv").read_text() == "fold,parameter,importance\n"
    assert "best (fold" in resumed.stdout


@pytest.mark.timeout(180)
def test_a_sweep_of_enough_trials_ranks_the_parameters_of_each_fold(tmp_path: Path) -> None:
    (tmp_path / "space.yaml").write_text(SPACE)

    ran = _kmm(tmp_path, "sweep", "--space", "space.yaml", "--scenarios", "calm", "--seeds",
               "1-2", "--folds", "1", "--trials", "12", "--workers", "2", "--out", "out",
               "--duration", "1m", "--markets", "2", "--sampler", "random")  # fmt: skip

    assert ran.returncode == 0, ran.stderr
    with (tmp_path / "out" / "importance.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(r["parameter"] for r in rows) == ["strategy.gamma", "strategy.min_spread_cents"]
    assert {r["fold"] for r in rows} == {"1"}
    assert sum(float(r["importance"]) for r in rows) == pytest.approx(1.0)
    shown = next(line for line in ran.stdout.splitlines() if line.startswith("importance, "))
    assert shown.startswith(f"importance, fold 1: {rows[0]['parameter']} "), "largest first"


def test_a_sweep_refuses_a_bad_space_and_too_few_sessions(tmp_path: Path) -> None:
    (tmp_path / "space.yaml").write_text("strategy.gama: {low: 1, high: 2}\n")
    ran = _kmm(tmp_path, *SWEEP)
    assert (ran.returncode, ran.stderr) == (
        2, "kmm: space.yaml: strategy.gama: strategy has no field gama\n"
    )  # fmt: skip
    (tmp_path / "space.yaml").write_text(SPACE)
    ran = _kmm(tmp_path, *[a if a != "1-3" else "1-2" for a in SWEEP])
    assert ran.returncode == 2
    assert ran.stderr == "kmm: --folds 2 needs at least 3 sessions (seeds or captures), got 2\n"


@pytest.mark.timeout(180)
def test_calibrate_compares_the_quoted_fair_value_with_the_settlements(tmp_path: Path) -> None:
    for seed in ("1", "2"):
        ran = _kmm(tmp_path, "backtest", "--scenario", "settlement", "--seed", seed,
                   "--duration", "30m")  # fmt: skip
        assert ran.returncode == 0, ran.stderr

    ran = _kmm(tmp_path, "calibrate", "--every", "10s")

    assert ran.returncode == 0, ran.stderr
    first = ran.stdout.splitlines()[0]
    assert first.startswith("kmm calibrate: ") and first.endswith(" in 2 runs"), first
    assert "Brier" in ran.stdout
    assert (tmp_path / "runs" / "calibration.png").is_file()
    report = yaml.safe_load((tmp_path / "runs" / "calibration.json").read_text())
    assert report["markets"] >= 1 and report["overall"]["count"] == sum(
        b["count"] for b in report["bins"]
    )
    empty = _kmm(tmp_path, "backtest", "--scenario", "calm", "--duration", "2m")
    run_dir = empty.stdout.strip().splitlines()[-1].removeprefix("kmm: run directory ")
    none = _kmm(tmp_path, "calibrate", run_dir)
    assert none.returncode == 1
    assert none.stderr.startswith(f"kmm: calibrate: no market settled in {run_dir}")


@pytest.mark.timeout(180)
def test_a_sweep_over_captures_walks_forward_in_their_order(tmp_path: Path) -> None:
    (tmp_path / "space.yaml").write_text(SPACE)
    for _ in range(3):
        ran = _kmm(tmp_path, "capture", "--duration", "3s")
        assert ran.returncode == 0, ran.stderr
    captures = sorted(p.parent.name for p in (tmp_path / "runs").glob("*/capture.jsonl.gz"))

    ran = _kmm(tmp_path, "sweep", "--space", "space.yaml", "--captures", "runs", "--folds", "2",
               "--trials", "2", "--workers", "2", "--out", "out")  # fmt: skip

    assert ran.returncode == 0, ran.stderr
    with (tmp_path / "out" / "folds.csv").open(newline="") as handle:
        folds = list(csv.DictReader(handle))
    assert [(f["train"], f["test"]) for f in folds] == [
        (captures[0], captures[1]), (captures[1], captures[2])
    ]  # fmt: skip
    assert len([r for r in _trials(tmp_path / "out") if r["state"] == "complete"]) == 4


DASK = str(Path(sys.executable).with_name("dask"))


@contextmanager
def _dask(*args: str) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [DASK, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )  # fmt: skip
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)


def _address(scheduler_file: Path) -> str:
    deadline = time.monotonic() + 60
    while not scheduler_file.exists():
        assert time.monotonic() < deadline, "the dask scheduler did not start"
        time.sleep(0.1)
    return str(json.loads(scheduler_file.read_text())["address"])


def _scheduler(tmp_path: Path) -> tuple[list[str], Path]:
    where = tmp_path / "scheduler.json"
    return ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
            "--scheduler-file", str(where)], where  # fmt: skip


@pytest.mark.timeout(180)
def test_a_sweep_runs_on_an_existing_cluster_by_its_address(tmp_path: Path) -> None:
    (tmp_path / "space.yaml").write_text(SPACE)
    args, where = _scheduler(tmp_path)
    with _dask(*args):
        address = _address(where)
        sweep_args = ["sweep", "--space", "space.yaml", "--scenarios", "calm", "--seeds", "1-2",
                      "--folds", "1", "--trials", "3", "--scheduler", address, "--out", "out",
                      "--duration", "1m", "--markets", "2"]  # fmt: skip
        started = subprocess.Popen(
            [sys.executable, "-m", "kmm", *sweep_args], cwd=tmp_path, env=_env(tmp_path),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        # the worker joins after the sweep has started: the sweep waits for it
        with _dask("worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard"):
            out, err = started.communicate(timeout=150)

    assert started.returncode == 0, err
    assert out.splitlines()[0].startswith(
        "kmm sweep: 2 parameters, 2 sessions, 1 fold x 3 trials, tpe, objective net; "
        f"1 worker on {address}; "
    )
    assert len([r for r in _trials(tmp_path / "out") if r["state"] == "complete"]) == 3
    assert (tmp_path / "out" / "best.yaml").is_file()


@pytest.mark.timeout(120)
def test_a_cluster_with_no_worker_is_one_line_not_a_hang(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "space.yaml").write_text(SPACE)
    monkeypatch.setattr(sweep, "SCHEDULER_WAIT_S", 1.0)
    config = KmmConfig()
    args, where = _scheduler(tmp_path)
    with _dask(*args):
        address = _address(where)
        options = sweep.SweepOptions(
            space=load_space(tmp_path / "space.yaml", config),
            sessions=tuple(sweep.scenario_sessions(["calm"], [1, 2], 2, 60.0)),
            folds=1, trials=2, out=tmp_path / "out", scheduler=address,
        )  # fmt: skip
        with pytest.raises(ConfigError) as refused:
            sweep.run_sweep(config, options, io.StringIO())

    assert refused.value.problems == [
        f"--scheduler: {address} has no worker after 1 s (start one: dask worker {address})"
    ]
