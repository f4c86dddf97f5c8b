"""The backtest: the live trading core on simulated time against the local exchange's traders,
in process. No socket, no event loop; the same seed gives the same run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kmm.backtest import (
    Backtest,
    BacktestOptions,
    ConstantLatency,
    Latencies,
    LognormalLatency,
    default_latencies,
)
from kmm.config import KmmConfig
from kmm.core.trading import TradingCore


def _run(
    scenario: str = "jump",
    seed: int = 3,
    duration_s: float = 90.0,
    latency: Latencies | None = None,
) -> Backtest:
    options = BacktestOptions(
        scenario=scenario, seed=seed, markets=4, duration_s=duration_s,
        latency=latency or default_latencies(),
    )  # fmt: skip
    backtest = Backtest(KmmConfig(), options)
    backtest.run()
    return backtest


def _fills(backtest: Backtest) -> list[tuple[str, str, int, int, int]]:
    return [(f.trade_id, f.ticker, f.price, f.qty, f.fee) for f in backtest.core.fills]


def test_the_same_seed_gives_the_same_run_and_another_seed_another() -> None:
    first, again, other = (_run(seed=s, duration_s=240.0) for s in (3, 3, 4))

    assert first.result.fills > 10
    assert _fills(first) == _fills(again)
    assert first.result.net_pnl == again.result.net_pnl
    assert _fills(first) != _fills(other)


def test_the_cores_fills_and_positions_equal_the_venues() -> None:
    backtest = _run()

    venue = backtest.venue
    assert {f.trade_id for f in backtest.core.fills} == {f.trade_id for f in venue.fills()}
    positions = {p.ticker: p.position for p in venue.positions() if p.position}
    ours = {
        t: q for t in backtest.core.pipeline.markets if (q := backtest.core.portfolio.net_qty(t))
    }
    assert ours == positions


def test_every_order_we_rest_is_tracked_as_live() -> None:
    backtest = _run()

    core: TradingCore = backtest.core
    resting = {o.order_id for o in backtest.venue.resting_orders()}
    tracked = {
        o.order_id for t in core.pipeline.markets for o in core.tracker.live(t) if o.order_id
    }
    assert resting <= tracked


def test_order_latency_changes_what_the_orders_meet() -> None:
    fast = _run(latency=Latencies(ConstantLatency(0), ConstantLatency(0)))
    slow = _run(latency=Latencies(ConstantLatency(20_000_000), ConstantLatency(80_000_000)))

    assert _fills(fast) != _fills(slow)


def test_drawn_latencies_are_drawn_from_the_seed() -> None:
    def drawn() -> Latencies:
        return Latencies(LognormalLatency(2_000_000, 0.5, 1), LognormalLatency(10_000_000, 0.5, 2))

    assert _fills(_run(latency=drawn())) == _fills(_run(latency=drawn()))


@pytest.mark.parametrize("scenario", ["calm", "thin", "settlement"])
def test_every_scenario_runs_and_keeps_inventory_within_the_cap(scenario: str) -> None:
    backtest = _run(scenario=scenario, duration_s=150.0)

    cap = KmmConfig().risk.max_position
    for ticker in backtest.core.pipeline.markets:
        assert abs(backtest.core.portfolio.net_qty(ticker)) <= cap


def test_kmm_backtest_writes_a_run_directory_that_kmm_report_reads(tmp_path: Path) -> None:
    env = {"KMM__RECORD__RUNS_DIR": str(tmp_path / "runs"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "kmm", "backtest", "--scenario", "jump", "--seed", "3",
         "--markets", "4", "--duration", "2m"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("kmm: run directory ")
    run_dir = Path(last.removeprefix("kmm: run directory "))
    assert {"tape.csv", "orders.csv", "fills.csv", "config.yaml", "ops.log"} <= {
        p.name for p in run_dir.iterdir()
    }
    report = subprocess.run(
        [sys.executable, "-m", "kmm", "report", str(run_dir)],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert "net P&L after fees" in report.stdout
    written = json.loads((run_dir / "report.json").read_text())
    parts = written["attribution"]
    assert written["fills"]["count"] > 0
    assert parts["net"] == written["pnl"]["net"]
    assert parts["carried_in"] == "0.000000"  # a backtest starts flat: fills explain it all
    assert parts["maker"]["fills"] + parts["taker"]["fills"] == written["fills"]["count"]
    assert written["warnings"] == []


def test_a_live_run_and_the_backtest_of_the_same_scenario_agree_loosely(tmp_path: Path) -> None:
    """``kmm run`` over loopback against the local exchange and ``kmm backtest`` with the same
    scenario, seed and duration: not the same sample path (live timings are the machine's),
    so only a loose bound here; ``make bench`` prints both over a longer run."""
    env = {
        "PATH": "/usr/bin:/bin",
        "KMM__RECORD__RUNS_DIR": str(tmp_path / "runs"),
        "KMM__RECORD__LEDGER_PATH": str(tmp_path / "runs" / "ledger.sqlite"),
        "KMM__SIM__STATE_DIR": str(tmp_path / "state"),
        "KMM__SIM__SCENARIO": "jump",
        "KMM__SIM__SEED": "3",
    }
    fills = {}
    for command in ("run", "backtest"):
        done = subprocess.run(
            [sys.executable, "-m", "kmm", command, "--duration", "30s"],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        run_dir = next(
            line.removeprefix("kmm: run directory ")
            for line in reversed(done.stdout.splitlines())
            if line.startswith("kmm: run directory ")
        )
        fills[command] = len((Path(run_dir) / "fills.csv").read_text().splitlines()) - 1

    # A loaded machine slows the live run's reactions (fewer fills): the bound is loose
    assert fills["run"] >= 5, fills
    assert 1 / 3 <= fills["backtest"] / fills["run"] <= 3.0, fills


def _kmm(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kmm", *args],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip


def _run_dir(done: subprocess.CompletedProcess[str]) -> Path:
    return Path(
        next(
            line.removeprefix("kmm: run directory ")
            for line in reversed(done.stdout.splitlines())
            if line.startswith("kmm: run directory ")
        )
    )


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A capture of the local exchange's ``jump`` flow, recorded by ``kmm capture``."""
    home = tmp_path_factory.mktemp("capture")
    env = {
        "PATH": "/usr/bin:/bin",
        "KMM__RECORD__RUNS_DIR": str(home / "runs"),
        "KMM__RECORD__LEDGER_PATH": str(home / "runs" / "ledger.sqlite"),
        "KMM__SIM__STATE_DIR": str(home / "state"),
        "KMM__SIM__SCENARIO": "jump",
    }
    done = _kmm(["capture", "--duration", "20s"], env)
    assert done.returncode == 0, done.stderr
    (path,) = (home / "runs").glob("*/capture.jsonl.gz")
    return path, env


@pytest.mark.parametrize("queue", ["conservative", "probabilistic"])
def test_kmm_backtest_replays_a_capture_with_either_queue_model(
    capture: tuple[Path, dict[str, str]], queue: str
) -> None:
    path, env = capture

    first = _kmm(["backtest", "--capture", str(path), "--queue", queue], env)
    again = _kmm(["backtest", "--capture", str(path), "--queue", queue], env)

    assert first.returncode == 0, first.stderr
    assert f"{queue} queue" in first.stdout.splitlines()[0]
    fills = [(_run_dir(r) / "fills.csv").read_text().splitlines()[1:] for r in (first, again)]
    assert fills[0] and [f.split(",")[1:] for f in fills[0]] == [
        f.split(",")[1:] for f in fills[1]
    ]  # the same replay, fill for fill (trade ids, prices, counts)
    report = _kmm(["report", str(_run_dir(first))], env)
    assert report.returncode == 0, report.stderr


def test_a_backtest_can_draw_its_latencies_from_a_live_run(
    capture: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    _, env = capture
    live = _kmm(["run", "--duration", "5s"], env)
    assert live.returncode == 0, live.stderr
    run_dir = _run_dir(live)

    done = _kmm(["backtest", "--duration", "30s", "--latency-from", str(run_dir)], env)

    assert done.returncode == 0, done.stderr
    described = json.loads((_run_dir(done) / "backtest.json").read_text())["latency"]
    assert described["order"].startswith("empirical") and described["feed"].startswith("empirical")
    empty = tmp_path / "empty-run"
    empty.mkdir()
    refused = _kmm(["backtest", "--latency-from", str(empty)], env)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1


def test_a_capture_that_is_missing_or_lacks_its_markets_file_is_one_line_and_exit_2(
    capture: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    path, env = capture
    lonely = tmp_path / "capture.jsonl.gz"
    lonely.write_bytes(path.read_bytes())

    for target, says in ((tmp_path / "nope.jsonl.gz", "no such capture"), (lonely, "markets.json")):
        done = _kmm(["backtest", "--capture", str(target)], env)
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and says in done.stderr


def test_a_reader_that_closes_stdout_early_ends_kmm_without_a_traceback(tmp_path: Path) -> None:
    env = {"KMM__RECORD__RUNS_DIR": str(tmp_path / "runs"), "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "kmm", "backtest", "--scenario", "jump", "--duration", "10m"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True
    ) as kmm:
        assert kmm.stdout is not None and kmm.stderr is not None
        first = kmm.stdout.readline()
        kmm.stdout.close()  # like `| head -1`
        status = kmm.wait(timeout=120)
        err = kmm.stderr.read()

    assert first.startswith("kmm backtest: scenario jump")
    assert status == 141
    assert "Traceback" not in err


def test_a_backtest_does_not_depend_on_string_hashing(tmp_path: Path) -> None:
    """Two processes with different ``PYTHONHASHSEED``: the same orders and fills (markets
    competing for the token bucket must be planned in an order no hash decides)."""
    outputs = []
    for hash_seed in ("1", "2"):
        env = {
            "KMM__RECORD__RUNS_DIR": str(tmp_path / hash_seed),
            "PATH": "/usr/bin:/bin",
            "PYTHONHASHSEED": hash_seed,
        }
        done = subprocess.run(
            [sys.executable, "-m", "kmm", "backtest", "--scenario", "jump", "--seed", "3",
             "--duration", "5m"],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        run_dir = Path(done.stdout.strip().splitlines()[-1].removeprefix("kmm: run directory "))
        outputs.append(((run_dir / "orders.csv").read_text(), (run_dir / "fills.csv").read_text()))

    assert outputs[0] == outputs[1]
