"""The trading-path cost of recording one tape row, next to one ``logging`` call.

Both sides log the same 15 fields per row. The recorder's cost is what the caller pays for
``Recorder.tape(...)`` (a tuple on a queue); the writer thread's formatting and I/O happen off
the trading path and are reported separately. The baseline is ``logger.info`` with a plain
``FileHandler`` (default ``%(message)s`` format, so the cheapest logging can be).

The caller's cost is measured over bursts of rows, like a trading loop that handles frames and
then waits on the socket: between bursts the caller waits for the writer thread to catch up
(not timed), so the figure is the caller's own cost rather than a share of the writer's time
slices under the GIL. The writer's cost is measured once, as the time to record every row in
one go, from the first ``tape`` call until the last row is in the file, less the caller's.
"""

from __future__ import annotations

import gc
import logging
import tempfile
import time
from pathlib import Path
from typing import Final

from kmm.record.recorder import Recorder

__all__ = ["run"]

BURST: Final = 1_000
REPEATS: Final = 2
_T0: Final = 1_795_435_200_000_000_000


def _tape_burst(recorder: Recorder, start: int, count: int) -> float:
    tape = recorder.tape
    begin = time.perf_counter()
    for i in range(start, start + count):
        tape(_T0 + i, "KXBENCH-26NOV23", "quote", 9101, 4550, 4551, 4500, 1000, 4600, 1000,
             i, -12_345, 500_000, 17_500, 1_234_567)  # fmt: skip
    return time.perf_counter() - begin


def _open(directory: Path) -> Recorder:
    return Recorder.open(
        directory / "run",
        directory / "ledger.sqlite",
        run_id="bench",
        env="sim",
        config_yaml="",
        config_json="{}",
        capture=False,
        flush_interval_s=1.0,
    )


def _caller_cost(directory: Path, rows: int) -> float:
    """Caller seconds per row, over bursts with the writer caught up in between."""
    recorder = _open(directory)
    try:
        caller = 0.0
        for start in range(0, rows, BURST):
            caller += _tape_burst(recorder, start, min(BURST, rows - start))
            recorder.flush()
    finally:
        recorder.close()
    return caller / rows


def _total_cost(directory: Path, rows: int) -> float:
    """Seconds per row from the first ``tape`` call until the last row is in the file."""
    recorder = _open(directory)
    try:
        begin = time.perf_counter()
        _tape_burst(recorder, 0, rows)
        recorder.flush()
        return (time.perf_counter() - begin) / rows
    finally:
        recorder.close()


def _logging_cost(directory: Path, rows: int) -> float:
    """Caller seconds per row of ``logger.info`` with a FileHandler."""
    logger = logging.getLogger("kmm.bench.record")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = logging.FileHandler(directory / "plain.log", encoding="utf-8")
    logger.addHandler(handler)
    fmt = ",".join(["%s"] * 15)
    info = logger.info
    try:
        begin = time.perf_counter()
        for i in range(rows):
            info(fmt, _T0 + i, "KXBENCH-26NOV23", "quote", 9101, 4550, 4551, 4500, 1000, 4600,
                 1000, i, -12_345, 500_000, 17_500, 1_234_567)  # fmt: skip
        return (time.perf_counter() - begin) / rows
    finally:
        logger.removeHandler(handler)
        handler.close()


def run(rows: int = 200_000) -> dict[str, float]:
    """Measures both costs (best of 2 each) and the writer's, in µs per row.

    Returns:
        ``tape_us`` (caller's cost of one ``Recorder.tape``), ``logging_us`` (one
        ``logger.info`` with a FileHandler), ``ratio`` (``logging_us / tape_us``) and
        ``writer_us`` (the writer thread's cost per row, off the trading path).
    """
    tape = log = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(REPEATS):
            directory = Path(tmp) / str(repeat)
            directory.mkdir()
            gc.collect()
            tape = min(tape, _caller_cost(directory, rows))
            gc.collect()
            log = min(log, _logging_cost(directory, rows))
        gc.collect()
        total = _total_cost(Path(tmp) / "total", rows)
    tape_us, logging_us = tape * 1e6, log * 1e6
    return {
        "tape_us": tape_us,
        "logging_us": logging_us,
        "ratio": logging_us / tape_us,
        "writer_us": total * 1e6 - tape_us,
    }
