"""The recorder: the run's CSV tape, order and fill logs, ledger and raw capture.

Theory of operation
-------------------
The trading side calls :class:`Recorder` methods, each of which only puts one tuple of the
integers it already holds on a :class:`queue.SimpleQueue` (no formatting, no I/O, no lock held
beyond the queue's own). One writer thread (:mod:`kmm.record._writer`) owns every file of the
run directory and the SQLite ledger: it turns the integers into exact decimal strings, writes
whole CSV rows, and flushes the files and commits the ledger at least every
``flush_interval_s`` and on close. A crash therefore loses at most the last interval and never
a row written before it.

A run directory holds ``tape.csv`` (one row per change of a market's quote or state),
``orders.csv`` (every order event), ``fills.csv`` (every fill once), ``config.yaml`` (the
resolved config, secrets masked), ``ops.log`` (see :mod:`kmm.record.logs`) and, with capture
on, ``capture.jsonl.gz``. Each CSV loads with ``pandas.read_csv(path, parse_dates=["ts"])``:
``ts`` is ISO 8601 UTC with microseconds, prices are dollars with 4 decimals (a mid may have
5), counts contracts with 2, money dollars with 6, an empty field is None.
"""

from __future__ import annotations

import atexit
import itertools
import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from queue import SimpleQueue
from typing import Final

from kmm.clock import Clock, LiveClock
from kmm.errors import KmmError
from kmm.record._capture import CapturedFrame, iter_capture
from kmm.record._ledger import LedgerLock, account_id, last_fill_ns, read_day
from kmm.record._rows import FILL_COLUMNS, ORDER_COLUMNS, TAPE_COLUMNS
from kmm.record._writer import (
    CAPTURE,
    CLOSE,
    DAILY,
    DISCOVERY,
    FILL,
    ORDER,
    POSITION,
    SYNC,
    TAPE,
    VOLATILITY,
    Item,
    RunInfo,
    Writer,
)
from kmm.select.sessions import Session
from kmm.select.volatility import MarketScan, VolEvent
from kmm.types import Fill, Money, Price, Qty, format_money, format_price

__all__ = [
    "FILL_COLUMNS",
    "FILL_SOURCES",
    "ORDER_COLUMNS",
    "TAPE_COLUMNS",
    "CapturedFrame",
    "LedgerLock",
    "RecordError",
    "Recorder",
    "account_id",
    "iter_capture",
    "last_fill_ns",
    "new_run_dir",
    "read_day",
]

_NS_PER_S: Final = 1_000_000_000

FILL_SOURCES: Final = ("stream", "start", "reconnect", "reconcile", "shutdown")
"""Where a fill was learnt, as written in the ``source`` column of fills.csv and the ledger."""


class RecordError(KmmError):
    """The run's record could not be opened (a file or the ledger).

    Attributes:
        path: The run directory or ledger involved.
        reason: What went wrong.
    """

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"cannot record the run in {path}: {reason}")


def _discard(_item: Item) -> None:
    """The queue's ``put`` once the recorder is closed."""


class Recorder:
    """The trading side's handle on a run's record. Build it with :meth:`open`.

    Every recording method only enqueues (well under 1 µs); it never blocks and never raises
    for a bad value (the writer thread logs it and carries on, see :attr:`errors`). After
    :meth:`close` the methods do nothing.
    """

    __slots__ = ("_capturing", "_clock", "_closed", "_put", "_writer", "run_dir", "run_id")

    def __init__(
        self,
        queue: SimpleQueue[Item],
        writer: Writer,
        clock: Clock,
        info: RunInfo,
    ) -> None:
        self._put: Callable[[Item], None] = queue.put
        self._writer = writer
        self._clock = clock
        self._capturing = info.capture
        self._closed = False
        self.run_dir = info.run_dir
        self.run_id = info.run_id

    @classmethod
    def open(
        cls,
        run_dir: Path,
        ledger_path: Path,
        *,
        run_id: str,
        env: str,
        config_yaml: str,
        config_json: str,
        capture: bool,
        flush_interval_s: float,
        clock: Clock | None = None,
        account: str = "",
    ) -> Recorder:
        """Opens the run's files and ledger row, and starts the writer thread.

        Args:
            run_dir: The run directory (created if missing; see :func:`new_run_dir`).
            ledger_path: The SQLite ledger shared by runs (created if missing).
            run_id: The run's id in the ledger (unique; the run directory's name will do).
            env: The venue environment (``sim``, ``demo``, ``prod``).
            config_yaml: The resolved config, secrets masked, written as ``config.yaml``.
            config_json: The same as JSON, stored in the ledger's ``runs`` row.
            capture: Also write ``capture.jsonl.gz`` (see :meth:`capture`).
            flush_interval_s: Longest time a row waits in memory before reaching its file.
            clock: Source of the run's start and end times (the system clock by default).
            account: The venue account traded (:func:`account_id`), stored on the run's row.

        Returns:
            The open recorder; call :meth:`close` at the end of the run (it is also called at
            interpreter exit if forgotten).

        Raises:
            ValueError: if ``flush_interval_s`` is not positive.
            RecordError: if a file or the ledger cannot be opened, or the ledger already has
                a run ``run_id``.
        """
        if not flush_interval_s > 0:
            raise ValueError(f"flush_interval_s must be positive, not {flush_interval_s!r}")
        clock = clock or LiveClock()
        info = RunInfo(
            run_dir, ledger_path, run_id, env, config_yaml, config_json, capture, account
        )
        queue: SimpleQueue[Item] = SimpleQueue()
        writer = Writer(queue, info, clock.now_ns(), flush_interval_s)
        try:
            writer.start()
        except (OSError, sqlite3.Error) as e:
            raise RecordError(str(run_dir), f"{type(e).__name__}: {e}") from e
        recorder = cls(queue, writer, clock, info)
        atexit.register(recorder.close)
        return recorder

    @property
    def errors(self) -> int:
        """How many items or flushes the writer thread failed to record (each one is logged)."""
        return self._writer.errors

    @property
    def capturing(self) -> bool:
        """Whether :meth:`capture` records frames (the run was opened with ``capture``)."""
        return self._capturing

    def tape(
        self,
        ts_ns: int,
        ticker: str,
        event: str,
        mid_x2: int | None,
        best_bid: Price | None,
        best_ask: Price | None,
        my_bid: Price | None,
        my_bid_qty: Qty,
        my_ask: Price | None,
        my_ask_qty: Qty,
        inventory: Qty,
        unrealized: Money,
        realized: Money,
        fees: Money,
        latency_ns: int | None,
        *,
        quote_bid: Price | None = None,
        quote_bid_qty: Qty = 0,
        quote_ask: Price | None = None,
        quote_ask_qty: Qty = 0,
        mark: Price | None = None,
        mark_source: str = "",
        terms: tuple[float, float, float, float, float, str] | None = None,
    ) -> None:
        """Records one tape.csv row: a change of a market's quote or state.

        Args:
            ts_ns: When, ns since the epoch.
            ticker: The market.
            event: ``quote``, ``pulled``, ``fill``, ``halt``, ``resume`` or ``close``.
            mid_x2: ``best_bid + best_ask`` (twice the mid, so that it stays exact), or None.
            best_bid: The book's best YES bid, or None.
            best_ask: The book's best YES ask, or None.
            my_bid: The price of our resting (or in-flight) bid, or None when none rests.
            my_bid_qty: Its remaining size.
            my_ask: The price of our resting ask, or None.
            my_ask_qty: Its remaining size.
            inventory: Our YES position after the change.
            unrealized: Unrealized P&L, money units.
            realized: Realized P&L, money units.
            fees: Fees paid so far, money units.
            latency_ns: Frame received → decision, or None when no frame caused the row.
            quote_bid: The model's bid (what the quoter wants), or None.
            quote_bid_qty: The model's bid size.
            quote_ask: The model's ask, or None.
            quote_ask_qty: The model's ask size.
            mark: The price the position is marked at for ``unrealized``, or None.
            mark_source: Where the mark came from (:func:`kmm.execution.marks.mark_position`).
            terms: What produced the model's quote: the fair price, the reservation price and
                the half-spread ($0.0001 units), σ, κ, and the bands and throttles that held a side.
        """
        self._put(
            (TAPE, ts_ns, ticker, event, mid_x2, best_bid, best_ask, my_bid, my_bid_qty,
             my_ask, my_ask_qty, inventory, unrealized, realized, fees, latency_ns, quote_bid,
             quote_bid_qty, quote_ask, quote_ask_qty, mark, mark_source, terms)
        )  # fmt: skip

    def order(
        self,
        ts_ns: int,
        ticker: str,
        client_order_id: str,
        order_id: str | None,
        event: str,
        side: str,
        price: Price | None,
        qty: Qty | None,
        code: str,
        reason: str,
    ) -> None:
        """Records one order event in orders.csv and the ledger.

        Args:
            ts_ns: When, ns since the epoch.
            ticker: The market.
            client_order_id: Our id for the order.
            order_id: The venue's id, once known.
            event: ``sent``, ``acked``, ``amended``, ``canceled``, ``rejected``, ``unknown``,
                ``settled`` or ``dropped``.
            side: ``bid`` or ``ask`` (YES leg).
            price: The order's price, when it has one.
            qty: The order's count, when it has one.
            code: Kalshi's error code for a rejection, else ``""``.
            reason: Why (free text, e.g. ``"requote"``).
        """
        self._put(
            (ORDER, ts_ns, ticker, client_order_id, order_id, event, side, price, qty, code,
             reason)
        )  # fmt: skip

    def fill(self, fill: Fill, position_after: Qty, source: str = "stream") -> None:
        """Records a fill, once per ``trade_id`` (a repeat, even from an earlier run, is dropped).

        Args:
            fill: The fill as the venue reported it (``ts_ms`` gives its time).
            position_after: Our YES position in the market after it.
            source: Where it was learnt (:data:`FILL_SOURCES`): ``stream`` (the websocket),
                ``start`` (read back at start-up), ``reconnect`` (read back after the feed
                was lost), ``reconcile`` (read back when positions drifted) or ``shutdown``
                (read back after the final cancels).
        """
        self._put((FILL, fill, position_after, source))

    def position(
        self, ts_ns: int, ticker: str, position: Qty, realized: Money, fees: Money
    ) -> None:
        """Records this run's position, realized P&L and fees in one market (ledger)."""
        self._put((POSITION, ts_ns, ticker, position, realized, fees))

    def daily_pnl(self, day: str, pnl: Money, peak: Money, ts_ns: int) -> None:
        """Records a UTC day's P&L and its peak (ledger), for :func:`read_day` after a restart.

        Args:
            day: The UTC date, ``YYYY-MM-DD``.
            pnl: The day's P&L, money units.
            peak: The day's highest P&L so far, money units.
            ts_ns: When, ns since the epoch.
        """
        self._put((DAILY, day, pnl, peak, ts_ns))

    def discovery(
        self,
        ts_ns: int,
        session: int,
        counts: tuple[int, int, int, int],
        candidates: Sequence[tuple[str, str, float | None, bool, str, str]],
    ) -> None:
        """Records one discovery session and its candidates (ledger; see
        :meth:`kmm.record._ledger.Ledger.discovery`)."""
        self._put((DISCOVERY, ts_ns, session, counts, candidates))

    def volatility_event(
        self, ts_ns: int, event: VolEvent, session: int | None, skipped: str
    ) -> None:
        """Records one volatility event (``volatility_events``): the session it spawned, or
        why it spawned none."""
        row = (
            ts_ns, event.ticker, event.kind, format_price(event.jump), event.sigma,
            event.strength, event.direction, str(event.regime), session, skipped,
        )  # fmt: skip
        self._put((VOLATILITY, "volatility_events", row, (0,)))

    def volatility_session(self, session: Session, fills: int, pnl: Money) -> None:
        """Records one ended volatility session (``volatility_sessions``), P&L net of fees
        and marked at its end."""
        row = (
            session.number, session.ticker, session.started_ns, session.ended_ns,
            session.event.kind, session.profile, str(session.regime), session.reason, fills,
            format_money(pnl),
        )  # fmt: skip
        self._put((VOLATILITY, "volatility_sessions", row, (2, 3)))

    def market_snapshot(
        self,
        ts_ns: int,
        scan: MarketScan,
        terms: tuple[float, float, float, float, float] | None,
        session: int | None,
    ) -> None:
        """Records one market's regime and quoting terms (``market_snapshots``): fair,
        reservation price and half-spread in dollars, σ per √s and κ per dollar."""
        f = scan.features
        fair, reservation, half, sigma, kappa = terms or (None, None, None, None, None)
        scale = 1 / 10_000
        row = (
            ts_ns, scan.ticker, str(scan.regime), str(scan.raw), f.sigma, f.reversion,
            format_price(f.jump),
            fair * scale if fair is not None else None,
            reservation * scale if reservation is not None else None,
            half * scale if half is not None else None,
            sigma, kappa, session,
        )  # fmt: skip
        self._put((VOLATILITY, "market_snapshots", row, (0,)))

    def capture(self, recv_ns: int, frame: bytes | str) -> None:
        """Records one websocket frame and its receive time, if the run captures."""
        if self._capturing:
            self._put((CAPTURE, recv_ns, frame))

    def flush(self, timeout: float | None = None) -> bool:
        """Waits until everything recorded so far is in the files and committed.

        Blocks the caller: for tests, tools and shutdown, never the trading path.

        Returns:
            False if ``timeout`` seconds passed first.
        """
        if self._closed:
            return True
        done = threading.Event()
        self._put((SYNC, done))
        return done.wait(timeout)

    def close(self) -> None:
        """Records what is queued, closes the files, marks the run ended. Idempotent."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        self._put((CLOSE, self._clock.now_ns()))
        self._put = _discard
        self._writer.join()


def new_run_dir(runs_dir: Path, start_ns: int) -> Path:
    """Creates and returns ``runs_dir/<UTC start>``, e.g. ``runs/20261123T120000Z``.

    A second run started in the same second gets ``20261123T120000Z-2``, and so on.

    Raises:
        OSError: if the directory cannot be created.
    """
    start = datetime.fromtimestamp(start_ns // _NS_PER_S, UTC)
    stamp = start.strftime("%Y%m%dT%H%M%SZ")
    for n in itertools.count(1):
        path = runs_dir / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            path.mkdir(parents=True)
        except FileExistsError:
            continue
        return path
    raise AssertionError("unreachable")  # pragma: no cover
