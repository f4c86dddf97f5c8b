"""The recorder: CSV rows and their exact values, pandas types, capture, close, crash safety."""

from __future__ import annotations

import csv
import gzip
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest

from kmm.clock import ManualClock
from kmm.record import (
    FILL_COLUMNS,
    ORDER_COLUMNS,
    TAPE_COLUMNS,
    Recorder,
    RecordError,
    iter_capture,
    new_run_dir,
)
from kmm.types import BookSide, Fill

T0 = 1_795_435_200_000_000_000  # 2026-11-23T12:00:00Z
DAY = "2026-11-23"


def open_recorder(
    tmp_path: Path,
    *,
    run_id: str = "run-1",
    run_dir: str | None = None,
    capture: bool = True,
    interval: float = 0.05,
) -> Recorder:
    return Recorder.open(
        tmp_path / (run_dir or run_id),
        tmp_path / "ledger.sqlite",
        run_id=run_id,
        env="sim",
        config_yaml="venue:\n  env: sim\n",
        config_json='{"venue": {"env": "sim"}}',
        capture=capture,
        flush_interval_s=interval,
        clock=ManualClock(T0),
    )


@pytest.fixture
def recorder(tmp_path: Path) -> Iterator[Recorder]:
    rec = open_recorder(tmp_path)
    yield rec
    rec.close()


def rows(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.reader(file))


def a_fill(trade_id: str = "t-1", *, is_taker: bool = False, ts_ms: int = T0 // 10**6) -> Fill:
    return Fill(trade_id, "o-1", "KXA-26NOV23", BookSide.BID, 4500, 1050, 17_500, is_taker, ts_ms)


def quote_row(rec: Recorder, ts_ns: int = T0, inventory: int = -300) -> None:
    rec.tape(ts_ns, "KXA-26NOV23", "quote", 4550 + 4551, 4550, 4551, 4500, 1000, 4600, 1250,
             inventory, -12_345, 500_000, 17_500, 1_234_567)  # fmt: skip


def test_a_tape_row_holds_exact_decimal_strings_in_column_order(recorder: Recorder) -> None:
    # Arrange
    recorder.tape(T0 + 123_456_789, "KXA-26NOV23", "quote", 4550 + 4551, 4550, 4551, 4500, 1000,
                  4600, 1250, -300, -12_345, 500_000, 17_500, 1_234_567,
                  terms=(4550.5, 4540.0, 75.6, 0.001, 150.0, "bid:fill_cooldown"))  # fmt: skip

    # Act
    recorder.close()

    # Assert
    header, row = rows(recorder.run_dir / "tape.csv")
    assert header == list(TAPE_COLUMNS)
    assert row == [
        "2026-11-23T12:00:00.123456+00:00",
        "KXA-26NOV23",
        "quote",
        "0.45505",
        "0.4550",
        "0.4551",
        "0.4500",
        "10.00",
        "0.4600",
        "12.50",
        "-3.00",
        "-0.012345",
        "0.500000",
        "0.017500",
        "1.234",
        "",
        "0.00",
        "",
        "0.00",
        "",
        "",
        "0.45505",
        "0.45400",
        "0.00756",
        "0.001000",
        "150.0",
        "bid:fill_cooldown",
    ]


def test_a_tape_row_leaves_none_fields_empty_and_writes_an_even_mid_with_four_decimals(
    recorder: Recorder,
) -> None:
    # Arrange
    recorder.tape(T0, "KXA-26NOV23", "pulled", None, None, None, None, 0, None, 0, 0, 0, 0, 0, None)
    recorder.tape(T0, "KXA-26NOV23", "quote", 9100, 4500, 4600, None, 0, None, 0, 0, 0, 0, 0, 0)

    # Act
    recorder.close()

    # Assert
    _, pulled, even = rows(recorder.run_dir / "tape.csv")
    assert pulled[:3] == ["2026-11-23T12:00:00.000000+00:00", "KXA-26NOV23", "pulled"]
    assert pulled[3:] == ["", "", "", "", "0.00", "", "0.00", "0.00", "0.000000", "0.000000",
                          "0.000000", "", "", "0.00", "", "0.00", "", "",
                          "", "", "", "", "", ""]  # fmt: skip
    assert even[3:6] == ["0.4550", "0.4500", "0.4600"]
    assert even[TAPE_COLUMNS.index("latency_ms")] == "0.000"


def test_an_order_row_quotes_a_reason_with_a_comma_and_leaves_a_missing_order_id_empty(
    recorder: Recorder,
) -> None:
    # Arrange
    recorder.order(T0, "KXA-26NOV23", "kmm-1-7", None, "rejected", "ask", 5100, 200,
                   "insufficient_balance", 'requote, "wide"')  # fmt: skip
    recorder.order(T0, "KXA-26NOV23", "kmm-1-8", "ord-9", "canceled", "bid", None, None, "", "")

    # Act
    recorder.close()

    # Assert
    text = (recorder.run_dir / "orders.csv").read_text(encoding="utf-8")
    assert text.splitlines()[1].endswith(',insufficient_balance,"requote, ""wide"""')
    header, rejected, canceled = rows(recorder.run_dir / "orders.csv")
    assert header == list(ORDER_COLUMNS)
    assert rejected == ["2026-11-23T12:00:00.000000+00:00", "KXA-26NOV23", "kmm-1-7", "",
                        "rejected", "ask", "0.5100", "2.00", "insufficient_balance",
                        'requote, "wide"']  # fmt: skip
    assert canceled[3] == "ord-9"
    assert canceled[6:] == ["", "", "", ""]


def test_a_fill_row_carries_the_trade_fee_maker_flag_and_position_after(
    recorder: Recorder,
) -> None:
    # Arrange
    recorder.fill(a_fill(ts_ms=T0 // 10**6 + 42), 1050)
    recorder.fill(a_fill("t-2", is_taker=True), -25, "shutdown")

    # Act
    recorder.close()

    # Assert
    header, maker, taker = rows(recorder.run_dir / "fills.csv")
    assert header == list(FILL_COLUMNS)
    assert maker == ["2026-11-23T12:00:00.042000+00:00", "t-1", "o-1", "KXA-26NOV23", "bid",
                     "0.4500", "10.50", "0.017500", "False", "10.50", "stream"]  # fmt: skip
    assert taker[8:] == ["True", "-0.25", "shutdown"]


def test_pandas_reads_every_csv_with_utc_times_float_numbers_and_a_bool_taker_flag(
    recorder: Recorder,
) -> None:
    # Arrange
    quote_row(recorder)
    recorder.tape(T0, "KXA-26NOV23", "pulled", None, None, None, None, 0, None, 0, 0, 0, 0, 0, None)
    recorder.order(T0, "KXA-26NOV23", "kmm-1-7", "ord-1", "acked", "bid", 4500, 1000, "", "new")
    recorder.fill(a_fill(), 1050)
    recorder.fill(a_fill("t-2", is_taker=True), 2100)

    # Act
    recorder.close()
    tape = pd.read_csv(recorder.run_dir / "tape.csv", parse_dates=["ts"])
    orders = pd.read_csv(recorder.run_dir / "orders.csv", parse_dates=["ts"])
    fills = pd.read_csv(recorder.run_dir / "fills.csv", parse_dates=["ts"])

    # Assert
    for frame in (tape, orders, fills):
        assert isinstance(frame["ts"].dtype, pd.DatetimeTZDtype)
        assert str(frame["ts"].dt.tz) == "UTC"
    assert tape["ts"][0] == pd.Timestamp("2026-11-23T12:00:00Z")
    for column in TAPE_COLUMNS[3:]:
        assert tape[column].dtype == "float64", column
    assert tape["mid"][0] == pytest.approx(0.45505)
    assert pd.isna(tape["mid"][1]) and pd.isna(tape["latency_ms"][1])
    assert orders["price"].dtype == "float64" and orders["qty"].dtype == "float64"
    assert fills["is_taker"].dtype == bool
    assert fills["is_taker"].tolist() == [False, True]
    assert fills["fee"].tolist() == [0.0175, 0.0175]


def test_the_run_directory_holds_the_config_yaml_it_was_given(recorder: Recorder) -> None:
    # Act
    recorder.close()

    # Assert
    assert (recorder.run_dir / "config.yaml").read_text(encoding="utf-8") == "venue:\n  env: sim\n"


def test_rows_reach_the_file_within_the_flush_interval_without_being_asked(
    recorder: Recorder,
) -> None:
    # Arrange
    quote_row(recorder)
    path = recorder.run_dir / "tape.csv"

    # Act
    deadline = time.monotonic() + 5.0
    while len(rows(path)) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)

    # Assert
    assert len(rows(path)) == 2


def test_flush_returns_once_everything_recorded_so_far_is_in_the_files(tmp_path: Path) -> None:
    # Arrange
    rec = open_recorder(tmp_path, interval=3600.0)
    for i in range(100):
        quote_row(rec, T0 + i)

    # Act
    flushed = rec.flush(timeout=10.0)

    # Assert
    try:
        assert flushed
        assert len(rows(rec.run_dir / "tape.csv")) == 101
    finally:
        rec.close()


def test_captured_frames_read_back_in_order_with_their_receive_times(recorder: Recorder) -> None:
    # Arrange
    recorder.capture(T0 + 1, '{"type":"orderbook_delta","seq":1}')
    recorder.capture(T0 + 2, b'{"type":"orderbook_delta","seq":2,"msg":{"t":"\xc3\xa9"}}')

    # Act
    recorder.close()

    # Assert
    frames = list(iter_capture(recorder.run_dir / "capture.jsonl.gz"))
    assert [(f.recv_ns, f.frame) for f in frames] == [
        (T0 + 1, '{"type":"orderbook_delta","seq":1}'),
        (T0 + 2, '{"type":"orderbook_delta","seq":2,"msg":{"t":"é"}}'),
    ]
    lines = gzip.decompress((recorder.run_dir / "capture.jsonl.gz").read_bytes()).splitlines()
    assert lines[0].startswith(b'{"recv_ns":1795435200000000001,"frame":"{')
    first = '{"type":"orderbook_delta","seq":1}'
    assert json.loads(lines[0]) == {"recv_ns": T0 + 1, "frame": first}


def test_the_capture_file_is_readable_up_to_the_last_flush_while_the_run_goes_on(
    recorder: Recorder,
) -> None:
    # Arrange
    for i in range(50):
        recorder.capture(T0 + i, f'{{"seq":{i}}}')

    # Act
    recorder.flush(timeout=10.0)
    frames = list(iter_capture(recorder.run_dir / "capture.jsonl.gz"))

    # Assert
    assert [f.recv_ns for f in frames] == [T0 + i for i in range(50)]


def test_a_run_without_capture_writes_no_capture_file(tmp_path: Path) -> None:
    # Arrange
    rec = open_recorder(tmp_path, capture=False)

    # Act
    rec.capture(T0, "{}")
    rec.close()

    # Assert
    assert not rec.capturing
    assert not (rec.run_dir / "capture.jsonl.gz").exists()


def test_close_is_idempotent_and_later_calls_record_nothing(recorder: Recorder) -> None:
    # Arrange
    quote_row(recorder)
    recorder.close()

    # Act
    recorder.close()
    quote_row(recorder)
    flushed = recorder.flush(timeout=1.0)
    recorder.close()

    # Assert
    assert flushed
    assert len(rows(recorder.run_dir / "tape.csv")) == 2


def test_a_row_that_cannot_be_formatted_is_logged_and_skipped_and_later_rows_are_kept(
    recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    # Arrange
    bad_price: int = "0.45"  # type: ignore[assignment]
    recorder.tape(T0, "KXA-26NOV23", "quote", None, bad_price, None, None, 0, None, 0, 0, 0, 0, 0,
                  None)  # fmt: skip
    quote_row(recorder)

    # Act
    with caplog.at_level(logging.ERROR, logger="kmm.record"):
        recorder.close()

    # Assert
    assert recorder.errors == 1
    assert "recording a tape item failed" in caplog.text
    assert len(rows(recorder.run_dir / "tape.csv")) == 2


def test_opening_a_run_id_the_ledger_already_has_raises_a_record_error(tmp_path: Path) -> None:
    # Arrange
    open_recorder(tmp_path, run_id="same", run_dir="first").close()

    # Act
    with pytest.raises(RecordError) as caught:
        open_recorder(tmp_path, run_id="same", run_dir="second")

    # Assert
    assert caught.value.path == str(tmp_path / "second")
    assert "IntegrityError" in caught.value.reason


def test_opening_an_existing_run_directory_is_refused_and_leaves_its_files_alone(
    tmp_path: Path,
) -> None:
    # Arrange
    first = open_recorder(tmp_path, run_id="first", run_dir="run")
    quote_row(first)
    first.close()
    before = (tmp_path / "run" / "tape.csv").read_bytes()

    # Act
    with pytest.raises(RecordError, match="File exists"):
        open_recorder(tmp_path, run_id="second", run_dir="run")

    # Assert
    assert (tmp_path / "run" / "tape.csv").read_bytes() == before


def test_a_non_positive_flush_interval_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="flush_interval_s"):
        open_recorder(tmp_path, interval=0.0)


def test_a_run_directory_is_named_by_its_utc_start_and_never_reused(tmp_path: Path) -> None:
    # Act
    first = new_run_dir(tmp_path / "runs", T0 + 999_999_999)
    second = new_run_dir(tmp_path / "runs", T0)
    third = new_run_dir(tmp_path / "runs", T0)

    # Assert
    assert first == tmp_path / "runs" / "20261123T120000Z"
    assert second.name == "20261123T120000Z-2"
    assert third.name == "20261123T120000Z-3"
    assert all(p.is_dir() for p in (first, second, third))


# A child process that records, says so, keeps recording, and is then killed with SIGKILL.
CHILD = """
import sys, time
from pathlib import Path
from kmm.record import Recorder
from kmm.types import BookSide, Fill

run_dir, ledger, rows = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
T0 = 1_795_435_200_000_000_000
rec = Recorder.open(run_dir, ledger, run_id=run_dir.name, env="sim", config_yaml="",
                    config_json="{}", capture=True, flush_interval_s=0.05)

def row(i):
    rec.tape(T0 + i * 1000, "KXA-26NOV23", "quote", 9101, 4550, 4551, 4500, 100, 4600, 100,
             i, -i, 0, 0, 5000)
    rec.capture(T0 + i, '{"seq": %d}' % i)

for i in range(rows):
    row(i)
fill = Fill("t-1", "o-1", "KXA-26NOV23", BookSide.BID, 4500, 100, 1750, False, T0 // 10**6)
rec.fill(fill, 100)
rec.fill(fill, 100)
rec.fill(Fill("t-2", "o-1", "KXA-26NOV23", BookSide.BID, 4500, 100, 1750, True, T0 // 10**6), 200)
rec.daily_pnl("2026-11-23", -1_234_567, 2_500_000, T0)
print("recorded", flush=True)
i = rows
while True:
    row(i)
    i += 1
    time.sleep(0.0002)
"""


def line_count(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def record_then_kill(tmp_path: Path, rows: int) -> tuple[Path, Path]:
    """Runs CHILD and SIGKILLs it while it records, once the periodic flush has written rows
    queued after its first ``rows`` rows, its fills and its daily P&L (no explicit flush)."""
    run_dir, ledger = tmp_path / "killed", tmp_path / "ledger.sqlite"
    command = [sys.executable, "-c", CHILD, str(run_dir), str(ledger), str(rows)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        assert child.stdout.readline() == "recorded\n"
        deadline = time.monotonic() + 30.0
        while line_count(run_dir / "tape.csv") < rows + 100 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.25)  # five more flush intervals: the ledger commit follows the files'
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    return run_dir, ledger


def test_a_sigkilled_run_leaves_whole_rows_that_csv_pandas_and_the_capture_reader_load(
    tmp_path: Path,
) -> None:
    # Act
    run_dir, ledger = record_then_kill(tmp_path, rows=2_000)

    # Assert
    header, *tape = rows(run_dir / "tape.csv")
    assert header == list(TAPE_COLUMNS)
    assert all(len(row) == len(TAPE_COLUMNS) for row in tape)
    assert len(tape) >= 2_100
    inventory = [row[10] for row in tape]
    assert inventory == [f"{i // 100}.{i % 100:02d}" for i in range(len(tape))]
    frame = pd.read_csv(run_dir / "tape.csv", parse_dates=["ts"])
    assert len(frame) == len(tape)
    assert isinstance(frame["ts"].dtype, pd.DatetimeTZDtype)
    assert frame["inventory"].dtype == "float64"
    fills = pd.read_csv(run_dir / "fills.csv", parse_dates=["ts"])
    assert fills["trade_id"].tolist() == ["t-1", "t-2"]
    captured = [f.recv_ns - T0 for f in iter_capture(run_dir / "capture.jsonl.gz")]
    assert captured[:2_000] == list(range(2_000))
    assert captured == list(range(len(captured)))
    with closing(sqlite3.connect(ledger)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        ended = conn.execute("SELECT ended_ts FROM runs WHERE run_id = 'killed'").fetchone()
    assert ended == (None,)
