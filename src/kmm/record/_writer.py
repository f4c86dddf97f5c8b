"""The recorder's writer thread: the only owner of the run's files and the ledger connection.

Theory of operation
-------------------
The trading side puts plain tuples on a :class:`queue.SimpleQueue`; the first element is a tag
(``TAPE``, ``ORDER``, ...) that selects the handler here. The thread wakes every 20 ms (or a
quarter of the flush interval if shorter), drains the queue in batches and formats each item
into CSV rows and ledger statements. It polls rather than blocking in ``get``: with no thread
waiting on the queue, a ``put`` on the trading side never has to wake one (a futex call of a
few µs), and the writer takes the GIL in batches, handing it back every few items.

Rows are kept in memory as whole lines and written to their files, and the ledger committed,
once per flush interval (and on sync and close). So the files on disk always end with a
complete row: a process killed at any moment loses at most the rows of the last interval and
never leaves a torn row in the middle of a file. The interval is checked between batches, so
a steady stream of rows cannot postpone a flush.

A failure to handle one item or to write a file is logged (the first few in full) and counted;
the thread carries on, so that one bad row or a transient disk error never stops the record
of the rest of the run. ``CLOSE`` drains what is before it, marks the run ended in the ledger,
and closes everything.
"""

from __future__ import annotations

import csv
import logging
import os
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any, Final

from kmm.record._capture import CaptureWriter
from kmm.record._ledger import Ledger
from kmm.record._rows import (
    FILL_COLUMNS,
    ORDER_COLUMNS,
    TAPE_COLUMNS,
    Timestamps,
    count_text,
    fill_row,
    money_text,
    order_row,
    tape_row,
)

__all__ = [
    "CAPTURE",
    "CLOSE",
    "DAILY",
    "DISCOVERY",
    "FILL",
    "ORDER",
    "POSITION",
    "SYNC",
    "TAPE",
    "VOLATILITY",
    "RunInfo",
    "Writer",
]

TAPE: Final = 0
ORDER: Final = 1
FILL: Final = 2
POSITION: Final = 3
DAILY: Final = 4
CAPTURE: Final = 5
SYNC: Final = 6
DISCOVERY: Final = 7
VOLATILITY: Final = 8
CLOSE: Final = 9

_LOGGED_ERRORS: Final = 10
# The writer polls rather than blocking on the queue: a put never has to wake a waiting thread
# (a futex call, microseconds on the trading path), and the writer takes the GIL in batches.
_POLL_S: Final = 0.02
_BATCH: Final = 4096
_YIELD_EVERY: Final = 32
log = logging.getLogger("kmm.record")

Item = tuple[Any, ...]


class _Lines(list[str]):
    """The csv writer's target: each formatted row becomes one whole line in memory."""

    def write(self, line: str) -> int:
        self.append(line)
        return len(line)


class CsvFile:
    """A CSV file written whole lines at a time: rows wait in memory until :meth:`flush`."""

    __slots__ = ("_file", "_lines", "writerow")

    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        self._file = path.open("xb", buffering=0)
        self._lines = _Lines()
        self.writerow = csv.writer(self._lines, lineterminator="\n").writerow
        self.writerow(columns)
        self.flush()

    def flush(self) -> None:
        """Writes the buffered rows to the file (one write, no partial row left behind)."""
        if self._lines:
            data = memoryview("".join(self._lines).encode("utf-8"))
            self._lines.clear()
            while data:
                written = self._file.write(data)
                data = data[written or 0 :]

    def close(self) -> None:
        """Flushes, syncs to disk and closes."""
        try:
            self.flush()
            os.fsync(self._file.fileno())
        finally:
            self._file.close()


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What the writer needs to open a run (see :meth:`kmm.record.recorder.Recorder.open`)."""

    run_dir: Path
    ledger_path: Path
    run_id: str
    env: str
    config_yaml: str
    config_json: str
    capture: bool
    account: str = ""


class _Run:
    """The run's open files and ledger, and the handler of each kind of item."""

    __slots__ = ("capture_file", "fills", "ledger", "orders", "tape", "ts")

    def __init__(self, info: RunInfo, started_ns: int) -> None:
        run_dir = info.run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        self.ts = Timestamps()
        self.capture_file: CaptureWriter | None = None
        with ExitStack() as undo:
            with (run_dir / "config.yaml").open("x", encoding="utf-8") as config:
                config.write(info.config_yaml)
            self.tape = CsvFile(run_dir / "tape.csv", TAPE_COLUMNS)
            undo.callback(self.tape.close)
            self.orders = CsvFile(run_dir / "orders.csv", ORDER_COLUMNS)
            undo.callback(self.orders.close)
            self.fills = CsvFile(run_dir / "fills.csv", FILL_COLUMNS)
            undo.callback(self.fills.close)
            if info.capture:
                self.capture_file = CaptureWriter(run_dir / "capture.jsonl.gz")
                undo.callback(self.capture_file.close)
            self.ledger = Ledger(info.ledger_path, info.run_id)
            undo.callback(self.ledger.close)
            started_ts = self.ts.text(started_ns)
            self.ledger.start_run(
                started_ts, info.env, str(run_dir), info.config_json, info.account
            )
            undo.pop_all()

    def flushers(self) -> list[tuple[str, Callable[[], None]]]:
        """Each sink's flush, named for error reports."""
        out = [("tape.csv", self.tape.flush), ("orders.csv", self.orders.flush)]
        out.append(("fills.csv", self.fills.flush))
        if self.capture_file is not None:
            out.append(("capture.jsonl.gz", self.capture_file.flush))
        out.append(("ledger", self.ledger.commit))
        return out

    def close(self, ended_ns: int | None) -> None:
        """Marks the run ended (when ``ended_ns`` is known) and closes every sink.

        Each sink is closed even if another fails; the first failure is re-raised.
        """
        with ExitStack() as closing:
            closing.callback(self.ledger.close)
            for sink in (self.capture_file, self.fills, self.orders, self.tape):
                if sink is not None:
                    closing.callback(sink.close)
            if ended_ns is not None:
                self.ledger.end_run(self.ts.text(ended_ns))

    def tape_item(self, item: Item) -> None:
        """A ``TAPE`` item: one tape.csv row."""
        self.tape.writerow(tape_row(item, self.ts))

    def order_item(self, item: Item) -> None:
        """An ``ORDER`` item: one orders.csv row and one ledger row."""
        row = order_row(item, self.ts)
        self.orders.writerow(row)
        self.ledger.order(row)

    def fill_item(self, item: Item) -> None:
        """A ``FILL`` item: the ledger row, and the fills.csv row if the trade id is new."""
        _, fill, position_after, source = item
        row = fill_row(fill, position_after, source, self.ts)
        if self.ledger.fill(row, fill.is_taker):
            self.fills.writerow(row)

    def position_item(self, item: Item) -> None:
        """A ``POSITION`` item: the run's position row in the ledger."""
        _, ts_ns, ticker, position, realized, fees = item
        self.ledger.position(
            ticker,
            count_text(position),
            money_text(realized),
            money_text(fees),
            self.ts.text(ts_ns),
        )

    def daily_item(self, item: Item) -> None:
        """A ``DAILY`` item: the day's P&L and peak in the ledger."""
        _, day, pnl, peak, ts_ns = item
        self.ledger.daily_pnl(day, money_text(pnl), money_text(peak), self.ts.text(ts_ns))

    def discovery_item(self, item: Item) -> None:
        """A ``DISCOVERY`` item: one discovery session and its candidates in the ledger."""
        _, ts_ns, session, counts, candidates = item
        self.ledger.discovery(session, self.ts.text(ts_ns), counts, candidates)

    def volatility_item(self, item: Item) -> None:
        """A ``VOLATILITY`` item: one row of a volatility-mode table (its times in ns, turned
        into the ledger's text here, off the trading thread)."""
        _, table, row, ts_at = item
        cells = list(row)
        for i in ts_at:
            cells[i] = self.ts.text(cells[i]) if cells[i] is not None else ""
        self.ledger.volatility(table, cells)

    def capture_item(self, item: Item) -> None:
        """A ``CAPTURE`` item: one frame, if this run captures."""
        if self.capture_file is not None:
            self.capture_file.add(item[1], item[2])


class Writer:
    """The writer thread (see the module docstring). Started by :meth:`start`.

    Args:
        queue: The queue the trading side puts tagged tuples on.
        info: The run to open.
        started_ns: The run's start, ns since the epoch.
        flush_interval_s: The most time between a row being queued and it reaching its file.
    """

    def __init__(
        self, queue: SimpleQueue[Item], info: RunInfo, started_ns: int, flush_interval_s: float
    ) -> None:
        self._queue = queue
        self._info = info
        self._started_ns = started_ns
        self._interval = flush_interval_s
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self.errors = 0
        self._thread = threading.Thread(target=self._main, name="kmm-recorder", daemon=True)

    def start(self) -> None:
        """Starts the thread and waits until the run's files and ledger are open.

        Raises:
            OSError: if a file cannot be created.
            sqlite3.Error: if the ledger cannot be opened or already has this run.
        """
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            self._thread.join()
            raise self._startup_error

    def join(self) -> None:
        """Waits for the thread to finish (after ``CLOSE`` was queued)."""
        self._thread.join()

    def _main(self) -> None:
        try:
            run = _Run(self._info, self._started_ns)
        except BaseException as e:
            self._startup_error = e
            self._ready.set()
            return
        self._ready.set()
        ended_ns = None
        try:
            ended_ns = self._loop(run)
        finally:
            try:
                run.close(ended_ns)
            except Exception as e:
                self._fail("closing the run's files", e)

    def _loop(self, run: _Run) -> int:
        """Handles items until ``CLOSE``; returns the close time it carried."""
        handlers = self._handlers(run)
        poll = min(_POLL_S, self._interval / 4)
        deadline = time.monotonic() + self._interval - poll
        while True:
            closed_ns, empty = self._drain(handlers)
            if closed_ns is not None:
                return closed_ns
            now = time.monotonic()
            if now >= deadline:
                self._flush(run)
                deadline = now + self._interval - poll
            if empty:
                time.sleep(poll)

    def _drain(self, handlers: tuple[Callable[[Item], None], ...]) -> tuple[int | None, bool]:
        """Handles up to a batch of queued items.

        Returns:
            The time ``CLOSE`` carried if it was reached, and whether the queue ran empty.
        """
        get = self._queue.get_nowait
        for count in range(1, _BATCH + 1):
            try:
                item = get()
            except Empty:
                return None, True
            if item[0] == CLOSE:
                return int(item[1]), True
            try:
                handlers[item[0]](item)
            except Exception as e:
                self._fail(f"recording a {_TAG_NAMES[item[0]]} item", e)
            if count % _YIELD_EVERY == 0:
                time.sleep(0)  # let the trading thread take the GIL between small slices
        return None, False

    def _handlers(self, run: _Run) -> tuple[Callable[[Item], None], ...]:
        def sync(item: Item) -> None:
            self._flush(run)
            item[1].set()

        return (
            run.tape_item,
            run.order_item,
            run.fill_item,
            run.position_item,
            run.daily_item,
            run.capture_item,
            sync,
            run.discovery_item,
            run.volatility_item,
        )

    def _flush(self, run: _Run) -> None:
        for name, flush in run.flushers():
            try:
                flush()
            except Exception as e:
                self._fail(f"writing {name}", e)

    def _fail(self, what: str, error: Exception) -> None:
        self.errors += 1
        if self.errors <= _LOGGED_ERRORS:
            log.error("recorder: %s failed: %s", what, error, exc_info=error)
            if self.errors == _LOGGED_ERRORS:
                log.error("recorder: further errors are counted, not logged")


_TAG_NAMES: Final = (
    "tape",
    "order",
    "fill",
    "position",
    "daily_pnl",
    "capture",
    "sync",
    "discovery",
    "volatility",
)
