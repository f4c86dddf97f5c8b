"""``kmm run --mode discovery`` end to end: the real bot against the local exchange's
``mixed`` universe over loopback, choosing its markets and holding each to its own cap."""

from __future__ import annotations

import csv
import os
import re
import sqlite3
import subprocess
import sys
from contextlib import closing
from decimal import Decimal
from pathlib import Path

MARKETS = 300


def run_kmm(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KMM__SIM__SCENARIO": "mixed",
        "KMM__SIM__MARKETS": str(MARKETS),
        "KMM__SIM__STATE_DIR": str(tmp_path / "state"),
        "KMM__RECORD__RUNS_DIR": str(tmp_path / "runs"),
        "KMM__RECORD__LEDGER_PATH": str(tmp_path / "ledger.sqlite"),
        # small caps, so that the caps bind within a short run
        "KMM__DISCOVERY__ALPHA": "0.5",
        "KMM__DISCOVERY__TOP_N": "6",
    }
    return subprocess.run(
        [sys.executable, "-m", "kmm", "run", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
        check=False,
        cwd=tmp_path,
    )


def test_discovery_chooses_the_best_markets_and_holds_each_to_its_cap(tmp_path: Path) -> None:
    ran = run_kmm(tmp_path, "--mode", "discovery", "--duration", "15")

    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr
    summary = re.search(
        r"discovery: (\d+) open markets, (\d+) candidates, (\d+) chosen", ran.stdout
    )
    assert summary is not None, ran.stdout
    listed, candidates, chosen = map(int, summary.groups())
    assert listed == MARKETS - MARKETS // 20  # combos left out
    assert chosen == 6 < candidates < listed
    caps = {
        m.group(1): Decimal(m.group(3))
        for m in re.finditer(r"discovery: (\S+) score (\S+) cap (\S+)", ran.stdout)
    }
    assert len(caps) == 6 and all(Decimal(1) <= cap <= Decimal(50) for cap in caps.values())
    run_dir = next((tmp_path / "runs").iterdir())
    assert set((run_dir / "markets.txt").read_text().split()) == set(caps)
    with (run_dir / "tape.csv").open() as tape:
        rows = list(csv.DictReader(tape))
    assert rows
    for row in rows:
        cap, position = caps[row["ticker"]], Decimal(row["inventory"])
        assert abs(position) <= cap, row
        if row["event"] != "quote":  # a fill row shows the quote from before the fill
            continue
        assert Decimal(row["quote_bid_qty"] or 0) <= cap - position, row  # a full fill stays
        assert Decimal(row["quote_ask_qty"] or 0) <= cap + position, row  # within the cap
    assert "no order of ours rests" in ran.stdout
    with closing(sqlite3.connect(tmp_path / "ledger.sqlite")) as ledger:
        sessions = ledger.execute(
            "SELECT session, markets, candidates, chosen FROM discovery_sessions"
        ).fetchall()
        rows = ledger.execute(
            "SELECT ticker, score, selected, max_position, reasons FROM discovery_candidates"
        ).fetchall()
    assert sessions == [(1, listed, candidates, chosen)]
    assert len(rows) == candidates
    picked = {t: Decimal(cap) for t, _, selected, cap, _ in rows if selected}
    assert picked == caps
    assert all(reasons for *_, reasons in rows)


def test_discovery_with_named_markets_is_one_line_and_exit_2(tmp_path: Path) -> None:
    ran = run_kmm(tmp_path, "--mode", "discovery", "--markets", "KXA-1", "--duration", "5")

    assert ran.returncode == 2
    assert ran.stderr.strip().count("\n") == 0
    assert "--mode discovery" in ran.stderr
