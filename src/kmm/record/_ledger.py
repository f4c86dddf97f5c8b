"""The SQLite ledger: what must survive a restart (runs, orders, fills, positions, daily P&L),
what discovery chose and why (``discovery_sessions``, ``discovery_candidates``), and what
volatility mode saw and did (``volatility_events``, ``volatility_sessions``,
``market_snapshots``).

Theory of operation
-------------------
One :class:`Ledger` is opened by the recorder's writer thread, which is the only writer.
The database is in WAL mode with ``synchronous=NORMAL``: a committed transaction survives the
process being killed (the WAL is in the OS's hands at commit), and readers such as
:func:`read_day` or an analyst's ``sqlite3`` shell never block the writer. Statements run inside
one implicit transaction that the writer commits once per flush interval and on close, so a
crash loses at most the rows of the last interval and never leaves a half-written row.

Amounts are stored as the same exact decimal strings as the CSVs (``CAST(pnl AS REAL)`` in SQL
when arithmetic is wanted). A fill is stored once: ``fills.trade_id`` is the primary key and
inserts are ``INSERT OR IGNORE``, so a fill reported twice (websocket and REST, or again after
a restart) is recognised as already recorded.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from datetime import datetime
from pathlib import Path
from typing import Final, TextIO

from kmm.types import Money, parse_money

__all__ = ["SCHEMA", "Ledger", "LedgerLock", "account_id", "last_fill_ns", "read_day"]

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, started_ts TEXT, ended_ts TEXT, env TEXT, run_dir TEXT,
    config_json TEXT, account TEXT
);
CREATE TABLE IF NOT EXISTS orders (
    run_id TEXT, ts TEXT, ticker TEXT, client_order_id TEXT, order_id TEXT, event TEXT,
    side TEXT, price TEXT, qty TEXT, code TEXT, reason TEXT
);
CREATE INDEX IF NOT EXISTS orders_by_client_order_id ON orders (client_order_id);
CREATE TABLE IF NOT EXISTS fills (
    trade_id TEXT PRIMARY KEY, run_id TEXT, ts TEXT, order_id TEXT, ticker TEXT, side TEXT,
    price TEXT, qty TEXT, fee TEXT, is_taker INTEGER, position_after TEXT, source TEXT
);
CREATE TABLE IF NOT EXISTS positions (
    run_id TEXT, ticker TEXT, position TEXT, realized_pnl TEXT, fees TEXT, ts TEXT,
    PRIMARY KEY (run_id, ticker)
);
CREATE TABLE IF NOT EXISTS daily_pnl (
    day TEXT PRIMARY KEY, pnl TEXT, peak TEXT, updated_ts TEXT
);
CREATE TABLE IF NOT EXISTS discovery_sessions (
    run_id TEXT, session INTEGER, ts TEXT, markets INTEGER, candidates INTEGER,
    chosen INTEGER, requests INTEGER, PRIMARY KEY (run_id, session)
);
CREATE TABLE IF NOT EXISTS discovery_candidates (
    run_id TEXT, session INTEGER, ticker TEXT, category TEXT, score REAL, selected INTEGER,
    max_position TEXT, reasons TEXT, PRIMARY KEY (run_id, session, ticker)
);
CREATE TABLE IF NOT EXISTS volatility_events (
    run_id TEXT, ts TEXT, ticker TEXT, kind TEXT, jump TEXT, sigma REAL, strength REAL,
    direction TEXT, regime TEXT, session INTEGER, skipped TEXT
);
CREATE TABLE IF NOT EXISTS volatility_sessions (
    run_id TEXT, session INTEGER, ticker TEXT, started_ts TEXT, ended_ts TEXT, trigger TEXT,
    profile TEXT, regime TEXT, end_reason TEXT, fills INTEGER, pnl TEXT,
    PRIMARY KEY (run_id, session)
);
CREATE TABLE IF NOT EXISTS market_snapshots (
    run_id TEXT, ts TEXT, ticker TEXT, regime TEXT, raw_regime TEXT, scan_sigma REAL,
    reversion REAL, jump TEXT, fair REAL, reservation REAL, half_spread REAL, sigma REAL,
    kappa REAL, session INTEGER
);
"""
_VOLATILITY_INSERTS: Final = {
    "volatility_events": "INSERT INTO volatility_events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "volatility_sessions": (
        "INSERT OR REPLACE INTO volatility_sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ),
    "market_snapshots": (
        "INSERT INTO market_snapshots VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ),
}
"""Volatility mode's tables and their inserts (every row starts with the run id)."""

_INSERT_ORDER: Final = "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_FILL: Final = "INSERT OR IGNORE INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_ADDED_COLUMNS: Final = (("runs", "account"), ("fills", "source"))
"""Columns added after the first ledgers were written: added to an older file when opened."""
_UPSERT_POSITION: Final = "INSERT OR REPLACE INTO positions VALUES (?, ?, ?, ?, ?, ?)"
_UPSERT_DAY: Final = "INSERT OR REPLACE INTO daily_pnl VALUES (?, ?, ?, ?)"


class Ledger:
    """The writer thread's connection to the ledger (not thread-safe; one thread only).

    Args:
        path: The SQLite file; created with its parent directory if missing.
        run_id: The run every row written through this ledger belongs to.
    """

    __slots__ = ("_conn", "run_id")

    def __init__(self, path: Path, run_id: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.run_id = run_id
        self._conn = sqlite3.connect(path)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(SCHEMA)
            _add_missing_columns(self._conn)
        except BaseException:
            self._conn.close()
            raise

    def start_run(
        self, started_ts: str, env: str, run_dir: str, config_json: str, account: str
    ) -> None:
        """Records the run and commits at once, so that even a run killed early is listed.

        ``account`` names the venue account the run trades (see :func:`account_id`), so that
        a later run of the same account knows which fills are already recorded.

        Raises:
            sqlite3.IntegrityError: if the ledger already has a run with this id.
        """
        self._conn.execute(
            "INSERT INTO runs (run_id, started_ts, ended_ts, env, run_dir, config_json, account)"
            " VALUES (?, ?, NULL, ?, ?, ?, ?)",
            (self.run_id, started_ts, env, run_dir, config_json, account),
        )
        self._conn.commit()

    def end_run(self, ended_ts: str) -> None:
        """Marks the run ended (committed with the next :meth:`commit`)."""
        self._conn.execute("UPDATE runs SET ended_ts = ? WHERE run_id = ?", (ended_ts, self.run_id))

    def order(self, row: list[str]) -> None:
        """Adds one order event, ``row`` in orders.csv column order."""
        self._conn.execute(_INSERT_ORDER, (self.run_id, *row))

    def fill(self, row: list[str], is_taker: bool) -> bool:
        """Adds one fill unless its trade id is already recorded; True if it was new.

        ``row`` is in fills.csv column order (``ts, trade_id, ...``).
        """
        ts, trade_id, order_id, ticker, side, price, qty, fee, _, position_after, source = row
        values = (trade_id, self.run_id, ts, order_id, ticker, side, price, qty, fee)
        cursor = self._conn.execute(_INSERT_FILL, (*values, int(is_taker), position_after, source))
        return cursor.rowcount == 1

    def position(self, ticker: str, position: str, realized: str, fees: str, ts: str) -> None:
        """Sets this run's position, realized P&L and fees in one market."""
        self._conn.execute(_UPSERT_POSITION, (self.run_id, ticker, position, realized, fees, ts))

    def daily_pnl(self, day: str, pnl: str, peak: str, ts: str) -> None:
        """Sets a UTC day's P&L and peak (shared by every run of that day)."""
        self._conn.execute(_UPSERT_DAY, (day, pnl, peak, ts))

    def discovery(
        self,
        session: int,
        ts: str,
        counts: tuple[int, int, int, int],
        candidates: Sequence[tuple[str, str, float | None, bool, str, str]],
    ) -> None:
        """One discovery session (``counts``: markets, candidates, chosen, requests) and every
        market it looked at: ``(ticker, category, score, selected, max_position, reasons)``
        (score ``None`` for a refused market, whose reasons say why)."""
        self._conn.execute(
            "INSERT OR REPLACE INTO discovery_sessions VALUES (?, ?, ?, ?, ?, ?, ?)",
            (self.run_id, session, ts, *counts),
        )
        self._conn.executemany(
            "INSERT OR REPLACE INTO discovery_candidates VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (self.run_id, session, t, c, sc, int(sel), cap, r)
                for t, c, sc, sel, cap, r in candidates
            ],
        )

    def volatility(self, table: str, row: Sequence[object]) -> None:
        """One row of a volatility-mode table (``volatility_events``, ``volatility_sessions``
        or ``market_snapshots``; see :data:`SCHEMA` for the columns after ``run_id``)."""
        self._conn.execute(_VOLATILITY_INSERTS[table], (self.run_id, *row))

    def commit(self) -> None:
        """Commits the open transaction, if there is one."""
        if self._conn.in_transaction:
            self._conn.commit()

    def close(self) -> None:
        """Commits and closes the connection."""
        try:
            self.commit()
        finally:
            self._conn.close()


def read_day(ledger_path: Path, day: str) -> tuple[Money, Money] | None:
    """The P&L and peak P&L recorded for a UTC day, so a restart keeps the kill switch's state.

    Args:
        ledger_path: The ledger file (``record.ledger_path``).
        day: The UTC date, ``YYYY-MM-DD``.

    Returns:
        ``(pnl, peak)`` in money units, or None if the ledger, its table or the day is missing.

    Raises:
        FixedPointError: if a stored amount is not a decimal string.
        sqlite3.DatabaseError: if the file is not a readable SQLite database.
    """
    if not ledger_path.is_file():
        return None
    with closing(sqlite3.connect(ledger_path)) as conn:
        found = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'daily_pnl'"
        ).fetchone()
        if found is None:
            return None
        row = conn.execute("SELECT pnl, peak FROM daily_pnl WHERE day = ?", (day,)).fetchone()
    if row is None:
        return None
    return parse_money(row[0], "daily_pnl.pnl"), parse_money(row[1], "daily_pnl.peak")


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    for table, column in _ADDED_COLUMNS:
        names = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in names:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT")
    conn.commit()


def account_id(env: str, key_id: str, subaccount: int = 0) -> str:
    """The ledger's name for one venue account: environment, a digest of the key id, subaccount.

    The key id itself is not stored (only a digest), so the ledger names no credential.
    """
    digest = hashlib.sha256(key_id.encode()).hexdigest()[:12]
    return f"{env}:{digest}:{subaccount}"


def last_fill_ns(ledger_path: Path, account: str) -> int | None:
    """When the newest fill the ledger holds for ``account`` happened (Unix ns), or None.

    A start-up reads the venue's fills from here on (``min_ts``), not the whole history: every
    earlier fill of the account is already recorded.

    Raises:
        sqlite3.DatabaseError: if the file is not a readable SQLite database.
    """
    if not ledger_path.is_file():
        return None
    with closing(sqlite3.connect(ledger_path)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"runs", "fills"} <= tables:
            return None
        columns = {row[1] for row in conn.execute("PRAGMA table_info(runs)")}
        if "account" not in columns:
            return None
        row = conn.execute(
            "SELECT MAX(f.ts) FROM fills f JOIN runs r ON f.run_id = r.run_id WHERE r.account = ?",
            (account,),
        ).fetchone()
    if row is None or row[0] is None:
        return None
    stamp = datetime.fromisoformat(row[0])
    return int(stamp.timestamp()) * 1_000_000_000 + stamp.microsecond * 1_000


class LedgerLock:
    """One trading run per ledger: an exclusive lock on ``<ledger>.lock`` for the run's life.

    Two runs writing one ledger would each keep the day's P&L in memory and overwrite the
    other's (last writer wins), so the second one refuses to start. The lock is the kernel's
    (``flock``): it is released when the process ends, however it ends, so a killed run never
    leaves a stale lock behind. The file says who holds it.

    Args:
        ledger_path: The ledger file.
    """

    __slots__ = ("_file", "path")

    def __init__(self, ledger_path: Path) -> None:
        self.path = ledger_path.with_name(ledger_path.name + ".lock")
        self._file: TextIO | None = None

    def acquire(self, holder: str) -> str | None:
        """Takes the lock, writing ``holder`` (who we are) into the file.

        Returns:
            None once held, else what the holder wrote (the lock is someone else's).
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held for the run)
        try:
            fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            held_by = file.read().strip() or "another process"
            file.close()
            return held_by
        file.seek(0)
        file.truncate()
        file.write(f"pid {os.getpid()}, {holder}\n")
        file.flush()
        self._file = file
        return None

    def release(self) -> None:
        """Gives the lock up (also done by the kernel when the process ends)."""
        if self._file is not None:
            self._file.close()
            self._file = None
