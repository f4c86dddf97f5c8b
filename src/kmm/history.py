"""``kmm history``: past runs, days and markets, summarised from the SQLite ledger.

Theory of operation
-------------------
The ledger (``record.ledger_path``) is shared by every run: ``runs``, ``orders``, ``fills``
(unique by trade id), ``positions`` (each run's last position, realized P&L net of fees and
fees per market) and ``daily_pnl`` (the kill switch's P&L of each day, marked, per
environment). :func:`load_history` reads them once, read-only; :func:`by_runs`,
:func:`by_days` and :func:`by_markets` are pure summaries with exact integer amounts (prices in
$0.0001, counts in 0.01 contracts, money in $0.000001, as kmm keeps them); :func:`render`
draws them as a rich table with a total row, and :func:`as_json` as exact strings.

What each view means:

* **runs**: one row per run: start (UTC), environment, length, markets traded, orders sent,
  fills, contracts traded, fees, realized P&L net of fees (the sum of the run's ``positions``),
  and the contracts still held when it ended.
* **days**: one row per UTC day: runs that filled, fills, contracts, fees, and the day's P&L as
  the kill switch kept it (``daily_pnl``: realized plus the open lots at their marks, summed
  over the environments kept), since a run's realized P&L is not split by day in the ledger.
* **markets**: one row per ticker over all runs: fills, contracts bought and sold, fees,
  realized P&L net of fees, and the position the newest run left.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, TypeVar

from rich.console import Console
from rich.table import Table

from kmm.errors import KmmError
from kmm.types import Money, Qty, format_count, format_money, parse_count, parse_money

__all__ = [
    "DayRow",
    "History",
    "MarketRow",
    "RunRow",
    "as_json",
    "by_days",
    "by_markets",
    "by_runs",
    "load_history",
    "render",
    "run_history",
]


@dataclass(frozen=True, slots=True)
class Fill:
    """One fill of the ledger."""

    run_id: str
    ts: str
    ticker: str
    bought: bool
    qty: Qty
    fee: Money


@dataclass(frozen=True, slots=True)
class Position:
    """A run's last position in a market."""

    run_id: str
    ticker: str
    position: Qty
    realized: Money
    ts: str


@dataclass(frozen=True, slots=True)
class Run:
    """One run of the ledger."""

    run_id: str
    started: str
    ended: str | None
    env: str


@dataclass(slots=True)
class History:
    """The ledger's rows that the views read."""

    runs: list[Run] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)
    daily: dict[tuple[str, str], Money] = field(default_factory=dict)
    """``(env, day)`` to the kill switch's P&L of the day."""


def load_history(path: Path, *, since: str = "", env: str | None = None) -> History:
    """Reads the ledger read-only; ``since`` (an ISO date or time) and ``env`` keep only the
    runs started from then, in that environment.

    Raises:
        KmmError: there is no ledger at ``path``, or it is not one.
    """
    if not path.is_file():
        raise KmmError(f"history: no ledger at {path} (kmm run writes it)")
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return _read(db, since, env)
    except sqlite3.DatabaseError as exc:
        raise KmmError(f"history: {path} is not a kmm ledger: {exc}") from None


def _read(db: sqlite3.Connection, since: str, env: str | None) -> History:
    history = History()
    for run_id, started, ended, run_env in db.execute(
        "SELECT run_id, started_ts, ended_ts, env FROM runs ORDER BY started_ts"
    ):
        if started >= since and (env is None or run_env == env):
            history.runs.append(Run(run_id, started, ended, run_env))
    kept = {r.run_id for r in history.runs}
    for run_id, ts, ticker, side, qty, fee in db.execute(
        "SELECT run_id, ts, ticker, side, qty, fee FROM fills ORDER BY ts"
    ):
        if run_id in kept:
            bought = side == "bid"
            history.fills.append(Fill(run_id, ts, ticker, bought, parse_count(qty),
                                      parse_money(fee)))  # fmt: skip
    for run_id, ticker, position, realized, ts in db.execute(
        "SELECT run_id, ticker, position, realized_pnl, ts FROM positions"
    ):
        if run_id in kept:
            history.positions.append(
                Position(run_id, ticker, parse_count(position), parse_money(realized), ts or "")
            )
    for run_id, sent in db.execute(
        "SELECT run_id, COUNT(*) FROM orders WHERE event = 'sent' GROUP BY run_id"
    ):
        history.sent[run_id] = sent
    for key, pnl in db.execute("SELECT day, pnl FROM daily_pnl"):
        day_env, _, day = key.rpartition(":")
        if day >= since[:10] and (env is None or day_env == env):
            history.daily[(day_env, day)] = parse_money(pnl)
    return history


# --------------------------------------------------------------------------- the views


@dataclass(frozen=True, slots=True)
class RunRow:
    """One run's summary."""

    run_id: str
    started: str
    env: str
    seconds: float | None
    markets: int
    orders: int
    fills: int
    contracts: Qty
    fees: Money
    realized: Money
    held: Qty


@dataclass(frozen=True, slots=True)
class DayRow:
    """One UTC day's summary."""

    day: str
    runs: int
    fills: int
    contracts: Qty
    fees: Money
    pnl: Money | None


@dataclass(frozen=True, slots=True)
class MarketRow:
    """One market's summary over every run."""

    ticker: str
    runs: int
    fills: int
    bought: Qty
    sold: Qty
    fees: Money
    realized: Money
    position: Qty


def _seconds(run: Run) -> float | None:
    if not run.ended:
        return None
    return (datetime.fromisoformat(run.ended) - datetime.fromisoformat(run.started)).total_seconds()


T = TypeVar("T", Fill, Position)


def _grouped(items: Iterable[T], key: Callable[[T], str]) -> defaultdict[str, list[T]]:
    groups: defaultdict[str, list[T]] = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    return groups


def by_runs(history: History) -> list[RunRow]:
    """One row per run, oldest first."""
    fills = _grouped(history.fills, lambda f: f.run_id)
    positions = _grouped(history.positions, lambda p: p.run_id)
    rows = []
    for run in history.runs:
        own, held = fills[run.run_id], positions[run.run_id]
        rows.append(
            RunRow(
                run.run_id, run.started, run.env, _seconds(run),
                len({f.ticker for f in own} | {p.ticker for p in held}),
                history.sent.get(run.run_id, 0), len(own), sum(f.qty for f in own),
                sum(f.fee for f in own), sum(p.realized for p in held),
                sum(abs(p.position) for p in held),
            )
        )  # fmt: skip
    return rows


def by_days(history: History) -> list[DayRow]:
    """One row per UTC day with fills or a daily P&L, oldest first."""
    days = _grouped(history.fills, lambda f: _utc_day(f.ts))
    pnl: dict[str, Money] = defaultdict(int)
    for (_, day), value in history.daily.items():
        pnl[day] += value
    rows = []
    for day in sorted(set(days) | set(pnl)):
        own = days[day]
        rows.append(DayRow(day, len({f.run_id for f in own}), len(own), sum(f.qty for f in own),
                           sum(f.fee for f in own), pnl.get(day)))  # fmt: skip
    return rows


def by_markets(history: History) -> list[MarketRow]:
    """One row per market, most contracts traded first."""
    fills = _grouped(history.fills, lambda f: f.ticker)
    positions = _grouped(history.positions, lambda p: p.ticker)
    order = {run.run_id: i for i, run in enumerate(history.runs)}
    rows = []
    for ticker in set(fills) | set(positions):
        own, held = fills[ticker], positions[ticker]
        last = max(held, key=lambda p: (order.get(p.run_id, -1), p.ts), default=None)
        rows.append(
            MarketRow(
                ticker, len({f.run_id for f in own} | {p.run_id for p in held}), len(own),
                sum(f.qty for f in own if f.bought), sum(f.qty for f in own if not f.bought),
                sum(f.fee for f in own), sum(p.realized for p in held),
                last.position if last is not None else 0,
            )
        )  # fmt: skip
    return sorted(rows, key=lambda r: (-(r.bought + r.sold), r.ticker))


def _utc_day(ts: str) -> str:
    return datetime.fromisoformat(ts).astimezone(UTC).date().isoformat()


# --------------------------------------------------------------------------- output

_VIEWS: dict[str, Callable[[History], Sequence[RunRow | DayRow | MarketRow]]] = {
    "runs": by_runs,
    "days": by_days,
    "markets": by_markets,
}


def as_json(rows: Sequence[RunRow | DayRow | MarketRow]) -> list[dict[str, Any]]:
    """The rows as JSON objects, counts and money as exact strings."""
    money = {"fees", "realized", "pnl"}
    counts = {"contracts", "held", "bought", "sold", "position"}
    out = []
    for row in rows:
        item: dict[str, Any] = {}
        for name in row.__slots__:
            value = getattr(row, name)
            if name in money and value is not None:
                value = format_money(value)
            elif name in counts:
                value = format_count(value)
            item[name] = value
        out.append(item)
    return out


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "running"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _money(value: Money | None) -> str:
    return "-" if value is None else f"${format_money(value)}"


def _table(title: str, columns: Iterable[str]) -> Table:
    table = Table(title=title, title_justify="left")
    for i, name in enumerate(columns):
        table.add_column(name, justify="left" if i == 0 else "right", no_wrap=True)
    return table


def render(view: str, rows: Sequence[Any]) -> Table:
    """The view's rows as a rich table, with a total row."""
    if view == "runs":
        table = _table(f"runs ({len(rows)})", ["run", "env", "length", "markets", "orders",
                       "fills", "contracts", "fees", "realized P&L", "held at end"])  # fmt: skip
        for r in rows:
            table.add_row(r.run_id, r.env, _duration(r.seconds), str(r.markets), str(r.orders),
                          str(r.fills), format_count(r.contracts), _money(r.fees),
                          _money(r.realized), format_count(r.held))  # fmt: skip
        table.add_row("total", "", "", "", str(sum(r.orders for r in rows)),
                      str(sum(r.fills for r in rows)), format_count(sum(r.contracts for r in rows)),
                      _money(sum(r.fees for r in rows)), _money(sum(r.realized for r in rows)),
                      "", style="bold")  # fmt: skip
    elif view == "days":
        table = _table(f"days ({len(rows)})", ["day (UTC)", "runs", "fills", "contracts", "fees",
                       "day P&L (marked)"])  # fmt: skip
        for r in rows:
            table.add_row(r.day, str(r.runs), str(r.fills), format_count(r.contracts),
                          _money(r.fees), _money(r.pnl))  # fmt: skip
        fees = sum(r.fees for r in rows)
        table.add_row("total", "", str(sum(r.fills for r in rows)),
                      format_count(sum(r.contracts for r in rows)), _money(fees),
                      _money(sum(r.pnl or 0 for r in rows)), style="bold")  # fmt: skip
    else:
        table = _table(f"markets ({len(rows)})", ["market", "runs", "fills", "bought", "sold",
                       "fees", "realized P&L", "position"])  # fmt: skip
        for r in rows:
            table.add_row(r.ticker, str(r.runs), str(r.fills), format_count(r.bought),
                          format_count(r.sold), _money(r.fees), _money(r.realized),
                          format_count(r.position))  # fmt: skip
        table.add_row("total", "", str(sum(r.fills for r in rows)),
                      format_count(sum(r.bought for r in rows)),
                      format_count(sum(r.sold for r in rows)), _money(sum(r.fees for r in rows)),
                      _money(sum(r.realized for r in rows)), "", style="bold")  # fmt: skip
    return table


def run_history(
    ledger: Path,
    view: str,
    *,
    since: str,
    env: str | None,
    limit: int | None,
    json_out: bool,
    out: TextIO,
) -> int:
    """Prints one view of the ledger; returns 0.

    Raises:
        KmmError: no ledger at ``ledger`` (exit status 1).
    """
    import json

    rows = _VIEWS[view](load_history(ledger, since=since, env=env))
    if limit is not None:
        rows = rows[-limit:] if view != "markets" else rows[:limit]
    if json_out:
        print(json.dumps(as_json(rows), indent=2), file=out)
        return 0
    Console(file=out, width=max(Console(file=out).width, 120)).print(render(view, rows))
    return 0
