"""The SQLite ledger: what must survive a restart (runs, orders, fills, positions, daily P&L).

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

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Final

from kmm.types import Money, parse_money

__all__ = ["SCHEMA", "Ledger", "read_day"]

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, started_ts TEXT, ended_ts TEXT, env TEXT, run_dir TEXT,
    config_json TEXT
);
CREATE TABLE IF NOT EXISTS orders (
    run_id TEXT, ts TEXT, ticker TEXT, client_order_id TEXT, order_id TEXT, event TEXT,
    side TEXT, price TEXT, qty TEXT, code TEXT, reason TEXT
);
CREATE INDEX IF NOT EXISTS orders_by_client_order_id ON orders (client_order_id);
CREATE TABLE IF NOT EXISTS fills (
    trade_id TEXT PRIMARY KEY, run_id TEXT, ts TEXT, order_id TEXT, ticker TEXT, side TEXT,
    price TEXT, qty TEXT, fee TEXT, is_taker INTEGER, position_after TEXT
);
CREATE TABLE IF NOT EXISTS positions (
    run_id TEXT, ticker TEXT, position TEXT, realized_pnl TEXT, fees TEXT, ts TEXT,
    PRIMARY KEY (run_id, ticker)
);
CREATE TABLE IF NOT EXISTS daily_pnl (
    day TEXT PRIMARY KEY, pnl TEXT, peak TEXT, updated_ts TEXT
);
"""

_INSERT_ORDER: Final = "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_FILL: Final = "INSERT OR IGNORE INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
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
        except BaseException:
            self._conn.close()
            raise

    def start_run(self, started_ts: str, env: str, run_dir: str, config_json: str) -> None:
        """Records the run and commits at once, so that even a run killed early is listed.

        Raises:
            sqlite3.IntegrityError: if the ledger already has a run with this id.
        """
        self._conn.execute(
            "INSERT INTO runs VALUES (?, ?, NULL, ?, ?, ?)",
            (self.run_id, started_ts, env, run_dir, config_json),
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
        ts, trade_id, order_id, ticker, side, price, qty, fee, _, position_after = row
        values = (trade_id, self.run_id, ts, order_id, ticker, side, price, qty, fee)
        cursor = self._conn.execute(_INSERT_FILL, (*values, int(is_taker), position_after))
        return cursor.rowcount == 1

    def position(self, ticker: str, position: str, realized: str, fees: str, ts: str) -> None:
        """Sets this run's position, realized P&L and fees in one market."""
        self._conn.execute(_UPSERT_POSITION, (self.run_id, ticker, position, realized, fees, ts))

    def daily_pnl(self, day: str, pnl: str, peak: str, ts: str) -> None:
        """Sets a UTC day's P&L and peak (shared by every run of that day)."""
        self._conn.execute(_UPSERT_DAY, (day, pnl, peak, ts))

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
