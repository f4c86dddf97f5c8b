"""``kmm history``'s views over a ledger's rows: exact sums per run, day and market, the JSON,
the filters, and the errors."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from kmm.cli import main
from kmm.history import by_days, by_markets, by_runs, load_history

RUNS = [
    ("r1", "2026-12-01T10:00:00+00:00", "2026-12-01T10:30:00+00:00", "sim"),
    ("r2", "2026-12-02T23:50:00+00:00", "2026-12-03T00:20:00+00:00", "demo"),
]
FILLS = [  # trade_id, run, ts, ticker, side, price, qty, fee
    ("t1", "r1", "2026-12-01T10:01:00+00:00", "KXA-1", "bid", "0.4500", "5.00", "0.015000"),
    ("t2", "r1", "2026-12-01T10:02:00+00:00", "KXA-1", "ask", "0.4700", "3.00", "0.009000"),
    ("t3", "r1", "2026-12-01T10:03:00+00:00", "KXB-1", "ask", "0.6000", "2.00", "0.000000"),
    ("t4", "r2", "2026-12-02T23:55:00+00:00", "KXA-1", "bid", "0.4400", "1.50", "0.004000"),
    ("t5", "r2", "2026-12-03T00:05:00+00:00", "KXA-1", "ask", "0.4600", "3.50", "0.010000"),
]
POSITIONS = [  # run, ticker, position, realized, fees, ts
    ("r1", "KXA-1", "2.00", "0.036000", "0.024000", "2026-12-01T10:02:00+00:00"),
    ("r1", "KXB-1", "-2.00", "0.000000", "0.000000", "2026-12-01T10:03:00+00:00"),
    ("r2", "KXA-1", "0.00", "0.051000", "0.014000", "2026-12-03T00:05:00+00:00"),
]


def _ledger(tmp_path: Path) -> Path:
    """A ledger with kmm's schema (as the recorder creates it) and known rows."""
    from kmm.record._ledger import SCHEMA

    path = tmp_path / "ledger.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA)
        db.executemany("INSERT INTO runs VALUES (?, ?, ?, ?, '', '{}', '')", RUNS)
        db.executemany("INSERT INTO fills VALUES (?, ?, ?, '', ?, ?, ?, ?, ?, 0, '0', 'stream')",
                       FILLS)  # fmt: skip
        db.executemany("INSERT INTO positions VALUES (?, ?, ?, ?, ?, ?)", POSITIONS)
        db.executemany(
            "INSERT INTO orders VALUES (?, '', '', '', '', ?, '', '', '', '', '')",
            [("r1", "sent")] * 4 + [("r1", "acked")] * 4 + [("r2", "sent")] * 2,
        )
        db.execute("INSERT INTO daily_pnl VALUES ('sim:2026-12-01', '0.040000', '0.05', '')")
        db.execute("INSERT INTO daily_pnl VALUES ('demo:2026-12-03', '-0.010000', '0', '')")
    return path


def test_runs_sum_fills_fees_and_realized_pnl_exactly(tmp_path: Path) -> None:
    r1, r2 = by_runs(load_history(_ledger(tmp_path)))

    assert (r1.markets, r1.orders, r1.fills, r1.contracts, r1.fees) == (2, 4, 3, 1000, 24_000)
    assert (r1.realized, r1.held, r1.seconds) == (36_000, 400, 1800.0)
    assert (r2.env, r2.fills, r2.contracts, r2.realized, r2.held) == ("demo", 2, 500, 51_000, 0)


def test_days_split_fills_at_midnight_utc_and_show_the_kill_switchs_pnl(tmp_path: Path) -> None:
    days = by_days(load_history(_ledger(tmp_path)))

    assert [(d.day, d.runs, d.fills, d.contracts, d.fees, d.pnl) for d in days] == [
        ("2026-12-01", 1, 3, 1000, 24_000, 40_000),
        ("2026-12-02", 1, 1, 150, 4_000, None),
        ("2026-12-03", 1, 1, 350, 10_000, -10_000),
    ]


def test_markets_add_up_over_runs_and_keep_the_newest_position(tmp_path: Path) -> None:
    a, b = by_markets(load_history(_ledger(tmp_path)))

    assert (a.ticker, a.runs, a.fills, a.bought, a.sold) == ("KXA-1", 2, 4, 650, 650)
    assert (a.fees, a.realized, a.position) == (38_000, 87_000, 0)
    assert (b.ticker, b.sold, b.position) == ("KXB-1", 200, -200)


def test_filters_keep_runs_from_a_date_and_of_an_environment(tmp_path: Path) -> None:
    ledger = _ledger(tmp_path)

    assert [r.run_id for r in by_runs(load_history(ledger, since="2026-12-02"))] == ["r2"]
    assert [r.run_id for r in by_runs(load_history(ledger, env="sim"))] == ["r1"]
    assert [d.day for d in by_days(load_history(ledger, env="sim"))] == ["2026-12-01"]


def test_the_command_prints_json_with_exact_strings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = _ledger(tmp_path)

    assert main(["history", "--by", "markets", "--json", "--ledger", str(ledger)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0] == {"ticker": "KXA-1", "runs": 2, "fills": 4, "bought": "6.50",
                       "sold": "6.50", "fees": "0.038000", "realized": "0.087000",
                       "position": "0.00"}  # fmt: skip
    assert main(["history", "--ledger", str(ledger), "--limit", "1"]) == 0
    table = capsys.readouterr().out
    assert "r2" in table and "r1 " not in table and "total" in table


def test_a_missing_ledger_and_a_bad_since_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", "--ledger", str(tmp_path / "none.sqlite")]) == 1
    assert capsys.readouterr().err == (
        f"kmm: history: no ledger at {tmp_path / 'none.sqlite'} (kmm run writes it)\n"
    )
    assert main(["history", "--since", "soon"]) == 2
    assert "--since: not a date like 2026-12-01 or a duration like 7d: 'soon'" in (
        capsys.readouterr().err
    )
