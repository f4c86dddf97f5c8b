"""The ledger's account scoping, its newest fill per account, older files, and the run lock."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

from kmm.clock import ManualClock
from kmm.record import LedgerLock, Recorder, account_id, last_fill_ns
from kmm.types import BookSide, Fill

T0 = 1_795_435_200_000_000_000  # 2026-11-23T12:00:00Z


def _run(tmp_path: Path, run_id: str, account: str, fills: list[tuple[str, int]]) -> None:
    recorder = Recorder.open(
        tmp_path / run_id,
        tmp_path / "ledger.sqlite",
        run_id=run_id,
        env="sim",
        config_yaml="",
        config_json="{}",
        capture=False,
        flush_interval_s=0.05,
        clock=ManualClock(T0),
        account=account,
    )
    for trade_id, ts_ms in fills:
        fill = Fill(trade_id, "o-1", "KXA-26NOV23", BookSide.BID, 4500, 100, 0, False, ts_ms)
        recorder.fill(fill, 100, "start")
    recorder.close()


def test_the_account_id_names_env_and_subaccount_but_not_the_key() -> None:
    key = "a952bcbe-ec3b-4b5b-b8f9-11dae589608c"

    name = account_id("prod", key, 3)

    assert name.startswith("prod:") and name.endswith(":3") and key not in name
    assert name != account_id("demo", key, 3) != account_id("prod", key, 0)


def test_the_newest_fill_is_per_account(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    assert last_fill_ns(ledger, "sim:a:0") is None
    _run(tmp_path, "r1", "sim:a:0", [("t-1", T0 // 10**6 + 1_500), ("t-2", T0 // 10**6 + 250)])
    _run(tmp_path, "r2", "sim:b:0", [("t-3", T0 // 10**6 + 9_000)])

    assert last_fill_ns(ledger, "sim:a:0") == T0 + 1_500_000_000
    assert last_fill_ns(ledger, "sim:b:0") == T0 + 9_000_000_000
    assert last_fill_ns(ledger, "prod:a:0") is None


def test_a_fill_is_stored_with_where_it_came_from(tmp_path: Path) -> None:
    _run(tmp_path, "r1", "sim:a:0", [("t-1", T0 // 10**6)])

    with closing(sqlite3.connect(tmp_path / "ledger.sqlite")) as db:
        assert db.execute("SELECT trade_id, source FROM fills").fetchall() == [("t-1", "start")]


def test_a_ledger_written_before_accounts_and_sources_is_upgraded_in_place(
    tmp_path: Path,
) -> None:
    ledger = tmp_path / "ledger.sqlite"
    with closing(sqlite3.connect(ledger)) as db:
        db.executescript(
            "CREATE TABLE runs (run_id TEXT PRIMARY KEY, started_ts TEXT, ended_ts TEXT,"
            " env TEXT, run_dir TEXT, config_json TEXT);"
            "CREATE TABLE fills (trade_id TEXT PRIMARY KEY, run_id TEXT, ts TEXT, order_id TEXT,"
            " ticker TEXT, side TEXT, price TEXT, qty TEXT, fee TEXT, is_taker INTEGER,"
            " position_after TEXT);"
            "INSERT INTO runs VALUES ('old', '', '', 'sim', '', '{}');"
        )
    assert last_fill_ns(ledger, "sim:a:0") is None

    _run(tmp_path, "r1", "sim:a:0", [("t-1", T0 // 10**6)])

    assert last_fill_ns(ledger, "sim:a:0") == T0


LOCK_CHILD = """
import sys, time
from pathlib import Path
from kmm.record import LedgerLock
lock = LedgerLock(Path(sys.argv[1]))
assert lock.acquire("run A") is None
print("held", flush=True)
time.sleep(60)
"""


def test_a_second_holder_is_refused_and_told_who_holds_the_lock(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite"
    with subprocess.Popen(
        [sys.executable, "-c", LOCK_CHILD, str(ledger)], stdout=subprocess.PIPE, text=True
    ) as child:
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "held"
            holder = LedgerLock(ledger).acquire("run B")
            assert holder is not None and "run A" in holder and f"pid {child.pid}" in holder
        finally:
            child.kill()

    lock = LedgerLock(ledger)  # a killed holder leaves no stale lock
    assert lock.acquire("run B") is None
    lock.release()
