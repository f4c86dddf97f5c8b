"""The SQLite ledger: runs, orders, fills once, positions, the day's P&L read back on restart."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from kmm.errors import FixedPointError
from kmm.record import read_day
from tests.unit.test_recorder import (
    DAY,
    T0,
    a_fill,
    open_recorder,
    record_then_kill,
    rows,
)


def query(ledger: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(ledger)) as conn:
        return conn.execute(sql).fetchall()


def test_the_ledger_is_in_wal_mode(tmp_path: Path) -> None:
    # Act
    open_recorder(tmp_path).close()

    # Assert
    assert query(tmp_path / "ledger.sqlite", "PRAGMA journal_mode") == [("wal",)]


def test_a_run_is_listed_with_its_start_end_env_directory_and_config(tmp_path: Path) -> None:
    # Act
    open_recorder(tmp_path, run_id="r1").close()

    # Assert
    assert query(tmp_path / "ledger.sqlite", "SELECT * FROM runs") == [
        (
            "r1",
            "2026-11-23T12:00:00.000000+00:00",
            "2026-11-23T12:00:00.000000+00:00",
            "sim",
            str(tmp_path / "r1"),
            '{"venue": {"env": "sim"}}',
        )
    ]


def test_a_fill_reported_twice_is_stored_and_written_once(tmp_path: Path) -> None:
    # Arrange
    rec = open_recorder(tmp_path)

    # Act
    rec.fill(a_fill("t-1"), 1050)
    rec.fill(a_fill("t-1"), 1050)
    rec.fill(a_fill("t-2", is_taker=True), 2100)
    rec.close()

    # Assert
    stored = query(tmp_path / "ledger.sqlite", "SELECT * FROM fills ORDER BY trade_id")
    assert stored == [
        ("t-1", "run-1", "2026-11-23T12:00:00.000000+00:00", "o-1", "KXA-26NOV23", "bid",
         "0.4500", "10.50", "0.017500", 0, "10.50"),
        ("t-2", "run-1", "2026-11-23T12:00:00.000000+00:00", "o-1", "KXA-26NOV23", "bid",
         "0.4500", "10.50", "0.017500", 1, "21.00"),
    ]  # fmt: skip
    assert [row[1] for row in rows(rec.run_dir / "fills.csv")[1:]] == ["t-1", "t-2"]


def test_a_fill_recorded_by_an_earlier_run_is_not_written_again_by_the_next(
    tmp_path: Path,
) -> None:
    # Arrange
    first = open_recorder(tmp_path, run_id="first")
    first.fill(a_fill("t-1"), 1050)
    first.close()
    second = open_recorder(tmp_path, run_id="second")

    # Act
    second.fill(a_fill("t-1"), 1050)
    second.fill(a_fill("t-2"), 2100)
    second.close()

    # Assert
    assert [row[1] for row in rows(second.run_dir / "fills.csv")[1:]] == ["t-2"]
    assert query(tmp_path / "ledger.sqlite", "SELECT trade_id, run_id FROM fills") == [
        ("t-1", "first"),
        ("t-2", "second"),
    ]


def test_order_events_are_stored_with_the_run_id_in_csv_column_order(tmp_path: Path) -> None:
    # Arrange
    rec = open_recorder(tmp_path)

    # Act
    rec.order(T0, "KXA-26NOV23", "kmm-1-1", "ord-1", "acked", "bid", 4500, 1000, "", "new")
    rec.order(T0, "KXA-26NOV23", "kmm-1-1", None, "rejected", "bid", None, None, "x", "why")
    rec.close()

    # Assert
    assert query(tmp_path / "ledger.sqlite", "SELECT * FROM orders") == [
        ("run-1", "2026-11-23T12:00:00.000000+00:00", "KXA-26NOV23", "kmm-1-1", "ord-1",
         "acked", "bid", "0.4500", "10.00", "", "new"),
        ("run-1", "2026-11-23T12:00:00.000000+00:00", "KXA-26NOV23", "kmm-1-1", "",
         "rejected", "bid", "", "", "x", "why"),
    ]  # fmt: skip


def test_a_market_keeps_one_position_row_per_run_with_the_latest_values(tmp_path: Path) -> None:
    # Arrange
    rec = open_recorder(tmp_path)

    # Act
    rec.position(T0, "KXA-26NOV23", 1000, 0, 17_500)
    rec.position(T0 + 1_000, "KXA-26NOV23", -250, 1_250_000, 35_000)
    rec.position(T0, "KXB-26NOV23", 100, 0, 0)
    rec.close()

    # Assert
    assert query(tmp_path / "ledger.sqlite", "SELECT * FROM positions ORDER BY ticker") == [
        ("run-1", "KXA-26NOV23", "-2.50", "1.250000", "0.035000",
         "2026-11-23T12:00:00.000001+00:00"),
        ("run-1", "KXB-26NOV23", "1.00", "0.000000", "0.000000",
         "2026-11-23T12:00:00.000000+00:00"),
    ]  # fmt: skip


def test_the_days_pnl_and_peak_read_back_after_the_run_ends(tmp_path: Path) -> None:
    # Arrange
    rec = open_recorder(tmp_path)
    rec.daily_pnl(DAY, 1_000_000, 1_500_000, T0)
    rec.daily_pnl(DAY, -2_345_678, 1_500_000, T0 + 1)
    rec.daily_pnl("2026-11-22", 5, 5, T0)

    # Act
    rec.close()

    # Assert
    assert read_day(tmp_path / "ledger.sqlite", DAY) == (-2_345_678, 1_500_000)
    assert read_day(tmp_path / "ledger.sqlite", "2026-11-22") == (5, 5)


def test_read_day_is_none_without_a_ledger_a_table_or_the_day(tmp_path: Path) -> None:
    # Arrange
    with closing(sqlite3.connect(tmp_path / "empty.sqlite")):
        pass
    open_recorder(tmp_path).close()

    # Act, Assert
    assert read_day(tmp_path / "missing.sqlite", DAY) is None
    assert read_day(tmp_path / "empty.sqlite", DAY) is None
    assert read_day(tmp_path / "ledger.sqlite", DAY) is None
    assert not (tmp_path / "missing.sqlite").exists()


def test_read_day_names_the_field_of_a_stored_amount_that_is_not_a_decimal(
    tmp_path: Path,
) -> None:
    # Arrange
    open_recorder(tmp_path).close()
    with closing(sqlite3.connect(tmp_path / "ledger.sqlite")) as conn:
        conn.execute("INSERT INTO daily_pnl VALUES (?, 'lots', '0.000000', '')", (DAY,))
        conn.commit()

    # Act
    with pytest.raises(FixedPointError) as caught:
        read_day(tmp_path / "ledger.sqlite", DAY)

    # Assert
    assert caught.value.field == "daily_pnl.pnl"


def test_a_restart_after_sigkill_reads_the_days_pnl_and_peak_back(tmp_path: Path) -> None:
    # Arrange
    _, ledger = record_then_kill(tmp_path, rows=200)

    # Act
    day = read_day(ledger, DAY)
    reopened = open_recorder(tmp_path, run_id="restarted")
    reopened.close()

    # Assert
    assert day == (-1_234_567, 2_500_000)
    assert query(ledger, "PRAGMA integrity_check") == [("ok",)]
    assert query(ledger, "SELECT trade_id, is_taker FROM fills ORDER BY trade_id") == [
        ("t-1", 0),
        ("t-2", 1),
    ]
    assert query(ledger, "SELECT run_id, ended_ts IS NULL FROM runs ORDER BY run_id") == [
        ("killed", 1),
        ("restarted", 0),
    ]
