"""The run report (``kmm report RUN_DIR``): what a run earned, how it traded, how its fills aged.

Theory of operation
-------------------
A run directory holds ``tape.csv`` (one row per change of a market's quote or state, each
carrying that market's running P&L), ``fills.csv`` and ``orders.csv``. The report reads them
as strings and converts every amount exactly to integers with :mod:`kmm.types` (prices in
$0.0001, counts in 0.01 contract, money in $0.000001; a mid may have five decimals, so mids
are read in money units per contract). Sums and P&L are therefore exact; only means (rounded
once, half to even) and the plots leave the integers.

* **P&L** is the engine's own bookkeeping as the tape carries it. Per market, the last row's
  ``realized_pnl`` (net of fees, as :class:`kmm.execution.inventory.Position` keeps it) plus
  its ``unrealized_pnl`` (marked at the row's mid, or at the last mid before it). A market
  that settled has a ``close`` row whose ``mid`` is the settlement value; its P&L is read from
  its last such row. Net P&L after fees = realized + unrealized; gross = net + fees.
* **Equity curve**: after each tape timestamp, the sum over markets of the latest
  realized + unrealized. It is the running sum of each row's change from the same market's
  previous row, so it costs O(rows) however many markets there are. **Max drawdown** is the
  largest fall of that curve from its running peak.
* **Inventory** is time-weighted: a row's inventory holds until the market's next row, or the
  end of the run (the last time in the tape or the fills). The run total is Σ |inventory|.
* **Spread captured** by a fill is ``mid - price`` for a bid fill and ``price - mid`` for an ask
  fill, in dollars per contract, with the mid of the market's last tape row at or before the
  fill's time. A **markout** at Δ is the same with the mid at fill time + Δ
  (``pandas.merge_asof`` by ticker), so a negative markout is adverse selection. A fill whose
  time + Δ is past the end of the run has no markout at Δ. Both are averaged over fills.
  Where the book was one-sided (no mid), the row's ``mark`` stands in for the mid.
* **P&L attribution** splits each market's net P&L exactly into parts that add up, with
  ``ref`` the mid (or mark) at the fill, ``M`` the market's last mark (the one its last
  unrealized P&L used; before its settlement, if it settled) and ``S`` the settlement value,
  each fill signed ``s`` (+1 buy, −1 sell):

  - *spread captured* Σ s·q·(ref − price): the edge over the mid when the fill happened;
  - *inventory* Σ s·q·(M − ref): how the mark moved on what the fills left us holding;
  - *settlement* Σ s·q·(S − M): what settlement paid over the last mark;
  - *fees*, maker and taker;
  - *carried in*: net − (spread + inventory + settlement − fees), the P&L of what the run
    started with (an adopted position, a restored day's P&L and fees). It is 0 for a run that
    starts flat, and a market that starts flat yet has a carried-in amount is warned about
    (its fills are not all in ``fills.csv``).

  The parts are exact in $0.00000001 and printed to $0.000001; ``rounding`` is what that
  printing leaves between the parts and the net. *Adverse selection* at Δ is the part of the
  spread captured that the mid gave back by then, Σ s·q·(ref − ref at fill + Δ), over the
  fills that have a markout at Δ. The same split is made for maker and for taker fills.

``report.json``: amounts are exact decimal strings (dollars with 6 decimals, prices with 4 or
5, contracts with 2, time-weighted means with 4, shares with 4), counts of things are JSON
integers, and an unknown (no fills, no mid) is ``null``. pandas and matplotlib are the
optional ``[analysis]`` extra: they are imported only when a report is made, so ``import
kmm.report`` works without them.
"""

from __future__ import annotations

import importlib
import io
import json
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO

from kmm.errors import KmmError
from kmm.types import (
    MONEY_SCALE,
    PRICE_SCALE,
    format_count,
    format_money,
    format_price,
    parse_count,
    parse_money,
    parse_price,
)

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "EQUITY_PLOT",
    "FILLS_PLOT",
    "MARKOUT_HORIZONS_S",
    "REPORT_FILE",
    "MarketResult",
    "RunData",
    "RunDataError",
    "equity_curve",
    "fill_marks",
    "fills_frame",
    "format_report",
    "is_run_dir",
    "latest_run_dir",
    "load_run",
    "market_results",
    "max_drawdown",
    "plot_equity",
    "plot_fills",
    "run_dirs",
    "run_report",
    "summarize",
    "tape_frame",
    "write_report",
]

MARKOUT_HORIZONS_S: Final = (1, 10, 60)
REPORT_FILE: Final = "report.json"
EQUITY_PLOT: Final = "equity.png"
FILLS_PLOT: Final = "fills.png"
EXIT_OK: Final = 0
EXIT_DATA: Final = 1
EXIT_USAGE: Final = 2

_TAPE_COLUMNS: Final = (
    "ts",
    "ticker",
    "event",
    "mid",
    "inventory",
    "unrealized_pnl",
    "realized_pnl",
    "fees",
)
_FILLS_COLUMNS: Final = ("ts", "trade_id", "ticker", "side", "price", "qty", "fee", "is_taker")
_ORDERS_COLUMNS: Final = ("ts", "ticker", "event")
_SIDE_SIGN: Final[Mapping[str, int]] = {"bid": 1, "ask": -1}
_BOOL: Final[Mapping[str, bool]] = {"True": True, "False": False}
_MONEY_PER_PRICE: Final = MONEY_SCALE // PRICE_SCALE
_SUB_PER_MONEY: Final = 100
"""Attribution amounts are ``qty × money per contract``: $0.00000001, 100 per money unit."""
_NS_PER_S: Final = 1_000_000_000
_NS_PER_US: Final = 1_000
_PLOTTED_MARKETS: Final = 6
_UNITS: Final[Mapping[str, str]] = {
    "amounts": "exact decimal strings: dollars (6 decimals), prices (4 or 5), contracts (2)",
    "means": "time-weighted inventory in contracts (4 decimals); per-fill means in dollars",
    "spread_and_markouts": "dollars per contract, mean over fills; negative = adverse selection",
    "counts": "JSON integers",
    "attribution": "dollars (6 decimals); spread + inventory + settlement + carried_in - fees"
    " + rounding == net",
}


class RunDataError(KmmError, ValueError):
    """A run directory's file is missing or does not have the documented shape.

    Attributes:
        where: The file (and column) that was wrong, e.g. ``"fills.csv side"``.
        reason: What was wrong with it.
    """

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True, slots=True)
class RunData:
    """A run's files, typed. Times are ``int`` ns since the epoch; amounts exact integers.

    Attributes:
        tape: ``ts_ns, ticker, event, mid`` (money per contract, NA if none), ``mark``
            (the P&L's mark, money per contract, NA if none; the mid on a tape that predates
            the column), ``ref`` (the mid, else the mark), ``inventory`` (Qty),
            ``realized, unrealized, fees`` (Money); sorted by time.
        fills: ``ts_ns, trade_id, ticker, sign`` (+1 bid, -1 ask), ``price`` (Price),
            ``qty`` (Qty), ``fee`` (Money), ``is_taker`` (bool); sorted by time.
        orders: ``orders.csv`` as strings (empty if the file is absent).
        warnings: What loading noticed, e.g. an incomplete last line that was dropped.
    """

    tape: pd.DataFrame
    fills: pd.DataFrame
    orders: pd.DataFrame
    warnings: tuple[str, ...] = ()

    def span_ns(self) -> tuple[int, int] | None:
        """The first and last time in the tape and the fills, or ``None`` if both are empty."""
        frames = [f["ts_ns"] for f in (self.tape, self.fills) if len(f)]
        times = [int(t) for ts in frames for t in (ts.min(), ts.max())]
        return (min(times), max(times)) if times else None


@dataclass(frozen=True, slots=True)
class MarketResult:
    """One market's outcome. Money in $0.000001, counts in 0.01 contract, ``mark`` in money
    per contract; ``inventory_mean`` in 0.01 contract, time-weighted.
    """

    ticker: str
    fills: int
    maker_fills: int
    contracts: int
    position: int
    realized: int
    unrealized: int
    fees: int
    mark: int | None
    settled: bool
    inventory_mean: Fraction
    inventory_min: int
    inventory_max: int
    spread_captured: Fraction | None

    @property
    def mark_source(self) -> str | None:
        """``"settlement"``, ``"last_mid"``, or ``None`` if the market never had a mid."""
        if self.settled:
            return "settlement"
        return None if self.mark is None else "last_mid"

    @property
    def net(self) -> int:
        """Realized plus unrealized P&L, after fees (money units)."""
        return self.realized + self.unrealized

    def to_json(self) -> dict[str, Any]:
        """The market's row of ``report.json`` (see the module docstring for the units)."""
        return {
            "ticker": self.ticker,
            "fills": self.fills,
            "maker_fills": self.maker_fills,
            "contracts": format_count(self.contracts),
            "position": format_count(self.position),
            "realized": format_money(self.realized),
            "unrealized": format_money(self.unrealized),
            "fees": format_money(self.fees),
            "net": format_money(self.net),
            "mark": _mark_text(self.mark),
            "mark_source": self.mark_source,
            "inventory_mean": _decimal(self.inventory_mean, 2, 4),
            "inventory_min": format_count(self.inventory_min),
            "inventory_max": format_count(self.inventory_max),
            "spread_captured_per_fill": _decimal(self.spread_captured, 6, 6),
        }


# --- loading ------------------------------------------------------------------------------


def _pandas() -> Any:
    """pandas, imported on first use: it belongs to the optional ``[analysis]`` extra."""
    return importlib.import_module("pandas")


def load_run(run_dir: Path) -> RunData:
    """Reads and types a run directory's ``tape.csv``, ``fills.csv`` and ``orders.csv``.

    An incomplete last line (a run killed mid-write) is dropped with a warning; a file with
    no complete line is an empty table.

    Raises:
        RunDataError: if ``tape.csv`` or ``fills.csv`` is missing, or a column is missing or
            holds a value of the wrong kind.
        FixedPointError: if an amount is malformed (the field names the file and column).
    """
    warnings: list[str] = []
    tape = tape_frame(_read_csv(run_dir / "tape.csv", _TAPE_COLUMNS, warnings))
    fills = fills_frame(_read_csv(run_dir / "fills.csv", _FILLS_COLUMNS, warnings))
    orders_path = run_dir / "orders.csv"
    if orders_path.is_file():
        orders = _read_csv(orders_path, _ORDERS_COLUMNS, warnings)
    else:
        orders = _empty(_ORDERS_COLUMNS)
    return RunData(tape, fills, orders, tuple(warnings))


def _empty(columns: tuple[str, ...]) -> pd.DataFrame:
    pd = _pandas()
    return pd.DataFrame({name: pd.Series([], dtype=str) for name in columns})


def _read_csv(path: Path, columns: tuple[str, ...], warnings: list[str]) -> pd.DataFrame:
    if not path.is_file():
        raise RunDataError(path.name, "missing from the run directory")
    pd = _pandas()
    source: Path | io.StringIO = path
    if not _ends_cleanly(path):
        text = path.read_text(encoding="utf-8")
        source = io.StringIO(text[: text.rfind("\n") + 1])
        warnings.append(f"{path.name}: dropped an incomplete last line (killed mid-write?)")
    try:
        frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        return _empty(columns)
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise RunDataError(path.name, f"missing column(s) {', '.join(missing)}")
    return frame


def _ends_cleanly(path: Path) -> bool:
    """Whether the file is empty or ends with a newline (its last line is complete)."""
    with path.open("rb") as f:
        if f.seek(0, io.SEEK_END) == 0:
            return True
        f.seek(-1, io.SEEK_END)
        return f.read(1) == b"\n"


def tape_frame(raw: pd.DataFrame) -> pd.DataFrame:
    """Types ``tape.csv`` read as strings (columns as in :class:`RunData`)."""
    mid = _exact(raw["mid"], parse_money, "tape.csv mid", required=False)
    if "mark" in raw.columns:
        mark = _exact(raw["mark"], parse_price, "tape.csv mark", required=False)
        mark = mark * _MONEY_PER_PRICE
    else:
        mark = mid
    frame = _pandas().DataFrame(
        {
            "ts_ns": _times(raw["ts"], "tape.csv ts"),
            "ticker": raw["ticker"],
            "event": raw["event"],
            "mid": mid,
            "mark": mark,
            "ref": mid.fillna(mark),
            "inventory": _exact(raw["inventory"], parse_count, "tape.csv inventory"),
            "realized": _exact(raw["realized_pnl"], parse_money, "tape.csv realized_pnl"),
            "unrealized": _exact(raw["unrealized_pnl"], parse_money, "tape.csv unrealized_pnl"),
            "fees": _exact(raw["fees"], parse_money, "tape.csv fees"),
        }
    )
    return frame.sort_values("ts_ns", kind="stable", ignore_index=True)


def fills_frame(raw: pd.DataFrame) -> pd.DataFrame:
    """Types ``fills.csv`` read as strings (columns as in :class:`RunData`)."""
    frame = _pandas().DataFrame(
        {
            "ts_ns": _times(raw["ts"], "fills.csv ts"),
            "trade_id": raw["trade_id"],
            "ticker": raw["ticker"],
            "sign": _coded(raw["side"], _SIDE_SIGN, "fills.csv side", "int64"),
            "price": _exact(raw["price"], parse_price, "fills.csv price"),
            "qty": _exact(raw["qty"], parse_count, "fills.csv qty"),
            "fee": _exact(raw["fee"], parse_money, "fills.csv fee"),
            "is_taker": _coded(raw["is_taker"], _BOOL, "fills.csv is_taker", "bool"),
        }
    )
    return frame.sort_values("ts_ns", kind="stable", ignore_index=True)


def _times(column: pd.Series, where: str) -> pd.Series:
    try:
        stamps = _pandas().to_datetime(column, utc=True, format="ISO8601")
    except (ValueError, TypeError) as e:
        raise RunDataError(where, f"not an ISO 8601 time ({e})") from e
    return stamps.dt.as_unit("ns").astype("int64")


def _exact(
    column: pd.Series, parse: Callable[[str, str], int], where: str, *, required: bool = True
) -> pd.Series:
    """Converts decimal strings to exact integers (``Int64``, NA for an empty field).

    Each distinct string is parsed once (``pandas.factorize``), never through ``float``.
    """
    import numpy as np

    pd = _pandas()
    codes, texts = pd.factorize(column, use_na_sentinel=False)
    parsed = [None if text == "" else parse(text, where) for text in texts]
    missing = np.array([value is None for value in parsed], dtype=bool)[codes]
    if required and missing.any():
        raise RunDataError(where, "empty where a value is required")
    values = np.array([value or 0 for value in parsed], dtype=np.int64)[codes]
    return pd.Series(pd.arrays.IntegerArray(values, missing), index=column.index)


def _coded(column: pd.Series, codes: Mapping[str, object], where: str, dtype: str) -> pd.Series:
    unknown = sorted(str(text) for text in set(column.unique()) - codes.keys())
    if unknown:
        raise RunDataError(where, f"expected one of {', '.join(codes)}, got {unknown[0]!r}")
    return column.map(codes).astype(dtype)


# --- pure computations --------------------------------------------------------------------


def equity_curve(tape: pd.DataFrame) -> pd.DataFrame:
    """The run's equity and gross inventory after each distinct tape time.

    Args:
        tape: The typed tape (:attr:`RunData.tape`), sorted by time.

    Returns:
        Columns ``ts_ns``, ``equity`` (Σ over markets of realized + unrealized, money units)
        and ``gross_inventory`` (Σ |inventory|, 0.01 contract), one row per distinct time.
    """
    equity = tape["realized"] + tape["unrealized"]
    gross = tape["inventory"].abs()
    curve = _pandas().DataFrame(
        {
            "ts_ns": tape["ts_ns"],
            "equity": _changes(equity, tape["ticker"]).cumsum(),
            "gross_inventory": _changes(gross, tape["ticker"]).cumsum(),
        }
    )
    return curve.groupby("ts_ns", sort=True).last().reset_index()


def _changes(values: pd.Series, ticker: pd.Series) -> pd.Series:
    """Each row's change from its market's previous row (its own value for the first)."""
    return values.groupby(ticker, sort=False).diff().fillna(values)


def max_drawdown(equity: pd.Series) -> int | None:
    """The largest fall of ``equity`` from its running peak (≥ 0), or ``None`` if empty."""
    if equity.empty:
        return None
    return int((equity.cummax() - equity).max())


def fill_marks(fills: pd.DataFrame, tape: pd.DataFrame, end_ns: int) -> pd.DataFrame:
    """The fills with the spread they captured and their markouts.

    Args:
        fills: The typed fills, sorted by time.
        tape: The typed tape, sorted by time (its mids are the marks).
        end_ns: The end of the run; a markout whose horizon passes it is NA.

    Returns:
        ``fills`` plus ``ref`` (the mid, else the mark, at the fill), ``edge`` and
        ``markout_<Δ>s`` for Δ in :data:`MARKOUT_HORIZONS_S`, in money units per contract
        (``Int64``, NA where the market had no mid or mark yet).
    """
    refs = tape.loc[tape["ref"].notna(), ["ts_ns", "ticker", "ref"]]
    price = fills["price"] * _MONEY_PER_PRICE
    ref = _ref_at(fills, refs, fills["ts_ns"])
    columns = {"ref": ref, "edge": fills["sign"] * (ref - price)}
    for horizon in MARKOUT_HORIZONS_S:
        at = fills["ts_ns"] + horizon * _NS_PER_S
        markout = fills["sign"] * (_ref_at(fills, refs, at) - price)
        columns[f"markout_{horizon}s"] = markout.where(at <= end_ns)
    return fills.assign(**columns)


def _ref_at(fills: pd.DataFrame, refs: pd.DataFrame, at: pd.Series) -> pd.Series:
    """The mid (or mark) of each fill's market at the times ``at`` (the last at or before)."""
    pd = _pandas()
    left = pd.DataFrame({"ts_ns": at, "ticker": fills["ticker"]})
    merged = pd.merge_asof(left, refs, on="ts_ns", by="ticker", direction="backward")
    return merged["ref"].set_axis(fills.index)


def attribute(marked: pd.DataFrame, tape: pd.DataFrame) -> pd.DataFrame:
    """Each fill's share of the P&L attribution (see the module docstring).

    Args:
        marked: The fills from :func:`fill_marks`.
        tape: The typed tape, sorted by time.

    Returns:
        ``marked`` plus ``spread``, ``inventory`` and ``settlement`` in $0.00000001
        (``int64``). A fill before its market's first mid or mark counts at its own price
        (no spread); a market never marked keeps everything in spread and settlement.
    """
    ends = _market_ends(tape).reindex(marked["ticker"]).set_axis(marked.index)
    price = marked["price"] * _MONEY_PER_PRICE
    ref = marked["ref"].fillna(price)
    mark = ends["mark"].fillna(ref)
    settle = ends["settle"].fillna(mark)
    signed = marked["sign"] * marked["qty"]
    parts = {
        "spread": signed * (ref - price),
        "inventory": signed * (mark - ref),
        "settlement": signed * (settle - mark),
    }
    return marked.assign(**{name: part.astype("int64") for name, part in parts.items()})


def _market_ends(tape: pd.DataFrame) -> pd.DataFrame:
    """Per ticker: ``mark``, the last mark before its settlement (or the end), and
    ``settle``, its settlement value (NA if it did not settle); money per contract."""
    pd = _pandas()
    closes = tape[(tape["event"] == "close") & tape["mid"].notna()]
    first_close = closes.groupby("ticker", sort=False)[["ts_ns", "mid"]].first()
    close_ts = first_close["ts_ns"].astype("Int64").reindex(tape["ticker"])
    before = tape["ts_ns"].to_numpy() < close_ts.fillna(2**62).to_numpy(dtype="int64")
    marks = tape[before & tape["mark"].notna().to_numpy()]
    last_mark = marks.groupby("ticker", sort=False)["mark"].last()
    return pd.DataFrame({"mark": last_mark, "settle": first_close["mid"]}).astype("Int64")


@dataclass(frozen=True, slots=True)
class Attribution:
    """The P&L of some fills split into its sources, exact in $0.00000001.

    ``spread + inventory + settlement + carried_in - fees_maker - fees_taker == net``.
    ``given_back`` holds, per markout horizon (s), the spread the mid took back by then and
    the fills that had a markout there.
    """

    spread: int
    inventory: int
    settlement: int
    fees_maker: int
    fees_taker: int
    carried_in: int
    net: int
    given_back: tuple[tuple[int, int, int], ...]

    @classmethod
    def of(cls, fills: pd.DataFrame, net: int | None = None) -> Attribution:
        """Sums :func:`attribute`'s columns over ``fills``.

        Args:
            fills: Fills with the attribution columns.
            net: The P&L (money units) the parts must add up to; what they leave is
                ``carried_in``. ``None``: the fills' own P&L (nothing carried in).
        """
        taker = fills["is_taker"]
        fees = fills["fee"] * _SUB_PER_MONEY
        spread = int(fills["spread"].sum())
        inventory = int(fills["inventory"].sum())
        settlement = int(fills["settlement"].sum())
        fees_maker, fees_taker = int(fees[~taker].sum()), int(fees[taker].sum())
        own = spread + inventory + settlement - fees_maker - fees_taker
        total = own if net is None else net * _SUB_PER_MONEY
        given_back = []
        for horizon in MARKOUT_HORIZONS_S:
            markout = fills[f"markout_{horizon}s"]
            known = markout.notna() & fills["ref"].notna()
            back = (fills["edge"] - markout)[known] * fills["qty"][known]
            given_back.append((horizon, int(back.sum()), int(known.sum())))
        return cls(
            spread, inventory, settlement, fees_maker, fees_taker, total - own, total,
            tuple(given_back),
        )  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        """The attribution as ``report.json`` holds it: dollars with 6 decimals."""
        parts = (self.spread, self.inventory, self.settlement, self.carried_in)
        fees = self.fees_maker + self.fees_taker
        rounded = sum(round(Fraction(part, _SUB_PER_MONEY)) for part in parts)
        rounding = (self.net + fees) // _SUB_PER_MONEY - rounded
        return {
            "spread": _sub_dollars(self.spread),
            "inventory": _sub_dollars(self.inventory),
            "settlement": _sub_dollars(self.settlement),
            "carried_in": _sub_dollars(self.carried_in),
            "fees": _sub_dollars(fees),
            "fees_maker": _sub_dollars(self.fees_maker),
            "fees_taker": _sub_dollars(self.fees_taker),
            "rounding": format_money(rounding),
            "net": _sub_dollars(self.net),
            "adverse_selection": {
                f"{horizon}s": {"given_back": _sub_dollars(back), "fills": fills}
                for horizon, back, fills in self.given_back
            },
        }


def _sub_dollars(amount: int) -> str:
    return _decimal(amount, 8, 6) or ""


def _attribution_json(fills: pd.DataFrame, net: int) -> dict[str, Any]:
    """An attribution of ``net`` over ``fills``, with the maker and taker fills' own."""
    result = Attribution.of(fills, net).to_json()
    for name, rows in (("maker", fills[~fills["is_taker"]]), ("taker", fills[fills["is_taker"]])):
        own = Attribution.of(rows)
        result[name] = {
            "fills": len(rows),
            "contracts": format_count(int(rows["qty"].sum())),
            "spread": _sub_dollars(own.spread),
            "inventory": _sub_dollars(own.inventory),
            "settlement": _sub_dollars(own.settlement),
            "fees": _sub_dollars(own.fees_maker + own.fees_taker),
            "pnl": _sub_dollars(own.net),
        }
    return result


def market_results(tape: pd.DataFrame, marked: pd.DataFrame, end_ns: int) -> list[MarketResult]:
    """One :class:`MarketResult` per market on the tape, by ticker.

    Args:
        tape: The typed tape, sorted by time.
        marked: The fills from :func:`fill_marks`.
        end_ns: The end of the run, where the last inventory of each market stops counting.
    """
    fills_by_market = dict(tuple(marked.groupby("ticker", sort=False)))
    empty = marked.iloc[0:0]
    return [
        _market_result(str(ticker), rows, fills_by_market.get(ticker, empty), end_ns)
        for ticker, rows in tape.groupby("ticker", sort=True)
    ]


def _market_result(
    ticker: str, rows: pd.DataFrame, fills: pd.DataFrame, end_ns: int
) -> MarketResult:
    closes = rows[(rows["event"] == "close") & rows["mid"].notna()]
    settled = not closes.empty
    final = closes.iloc[-1] if settled else rows.iloc[-1]
    mids = rows["mid"].dropna()
    mark = final["mid"] if settled else (mids.iloc[-1] if len(mids) else None)
    takers = int(fills["is_taker"].sum())
    return MarketResult(
        ticker=ticker,
        fills=len(fills),
        maker_fills=len(fills) - takers,
        contracts=int(fills["qty"].sum()),
        position=int(final["inventory"]),
        realized=int(final["realized"]),
        unrealized=int(final["unrealized"]),
        fees=int(final["fees"]),
        mark=None if mark is None else int(mark),
        settled=settled,
        inventory_mean=_time_weighted(rows["inventory"], rows["ts_ns"], end_ns),
        inventory_min=int(rows["inventory"].min()),
        inventory_max=int(rows["inventory"].max()),
        spread_captured=_mean(fills["edge"])[0],
    )


def _time_weighted(values: pd.Series, ts_ns: pd.Series, end_ns: int) -> Fraction:
    """The mean of a step function that holds each value until the next time (or the end)."""
    held_us = (ts_ns.shift(-1, fill_value=end_ns) - ts_ns) // _NS_PER_US
    total_us = int(held_us.sum())
    if total_us == 0:
        return Fraction(int(values.iloc[-1]))
    return Fraction(int((values * held_us).sum()), total_us)


def _mean(values: pd.Series) -> tuple[Fraction | None, int]:
    """The exact mean of the known values and how many there were."""
    known = values.dropna()
    if known.empty:
        return None, 0
    return Fraction(int(known.sum()), len(known)), len(known)


# --- the report ---------------------------------------------------------------------------


def summarize(data: RunData, curve: pd.DataFrame | None = None) -> dict[str, Any]:
    """Computes the report (the content of ``report.json``) from a loaded run.

    Args:
        data: The loaded run.
        curve: Its :func:`equity_curve`, if already computed.

    Returns:
        A JSON-ready dict: ``run``, ``pnl``, ``fills``, ``markouts``, ``attribution``,
        ``inventory``,
        ``orders``, ``markets``, ``warnings`` and ``units`` (see the module docstring).
    """
    curve = equity_curve(data.tape) if curve is None else curve
    span = data.span_ns()
    end_ns = span[1] if span else 0
    marked = attribute(fill_marks(data.fills, data.tape, end_ns), data.tape)
    markets = market_results(data.tape, marked, end_ns)
    taped = marked[marked["ticker"].isin([m.ticker for m in markets])]
    by_market = dict(tuple(taped.groupby("ticker", sort=False)))
    market_rows = [
        {
            **m.to_json(),
            "attribution": _attribution_json(by_market.get(m.ticker, taped.iloc[0:0]), m.net),
        }
        for m in markets
    ]
    return {
        "run": _period(span),
        "pnl": _pnl(markets, curve),
        "fills": _fill_stats(marked),
        "markouts": _markouts(marked),
        "attribution": _attribution_json(taped, sum(m.net for m in markets)),
        "inventory": _inventory(curve, end_ns),
        "orders": _order_counts(data.orders),
        "markets": market_rows,
        "warnings": [
            *data.warnings,
            *_checks(markets, marked),
            *_unexplained(data.tape, market_rows),
        ],
        "units": dict(_UNITS),
    }


def _period(span: tuple[int, int] | None) -> dict[str, Any]:
    if span is None:
        return {"start": None, "end": None, "duration_s": None}
    start, end = span
    return {
        "start": _iso(start),
        "end": _iso(end),
        "duration_s": _decimal(Fraction(end - start, _NS_PER_S), 0, 3),
    }


def _iso(ts_ns: int) -> str:
    seconds, ns = divmod(ts_ns, _NS_PER_S)
    moment = datetime.fromtimestamp(seconds, UTC).replace(microsecond=ns // _NS_PER_US)
    return moment.isoformat(timespec="microseconds")


def _pnl(markets: list[MarketResult], curve: pd.DataFrame) -> dict[str, Any]:
    realized = sum(m.realized for m in markets)
    unrealized = sum(m.unrealized for m in markets)
    fees = sum(m.fees for m in markets)
    settled = [m for m in markets if m.settled]
    drawdown = max_drawdown(curve["equity"])
    return {
        "net": format_money(realized + unrealized),
        "realized": format_money(realized),
        "unrealized": format_money(unrealized),
        "fees": format_money(fees),
        "gross": format_money(realized + unrealized + fees),
        "max_drawdown": None if drawdown is None else format_money(drawdown),
        "at_settlement": format_money(sum(m.net for m in settled)) if settled else None,
        "settled_markets": len(settled),
    }


def _fill_stats(marked: pd.DataFrame) -> dict[str, Any]:
    count = len(marked)
    makers = count - int(marked["is_taker"].sum())
    edge, with_mid = _mean(marked["edge"])
    total_edge = int((marked["edge"] * marked["qty"]).dropna().sum())
    return {
        "count": count,
        "maker": makers,
        "taker": count - makers,
        "maker_share": _decimal(Fraction(makers, count), 0, 4) if count else None,
        "contracts": format_count(int(marked["qty"].sum())),
        "spread_captured_per_fill": _decimal(edge, 6, 6),
        "spread_captured_total": _decimal(Fraction(total_edge, 100), 6, 6),
        "with_mid": with_mid,
    }


def _markouts(marked: pd.DataFrame) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for horizon in MARKOUT_HORIZONS_S:
        mean, known = _mean(marked[f"markout_{horizon}s"])
        result[f"{horizon}s"] = {"mean": _decimal(mean, 6, 6), "fills": known}
    return result


def _inventory(curve: pd.DataFrame, end_ns: int) -> dict[str, Any]:
    if curve.empty:
        return {"gross_mean": None, "gross_max": None}
    gross = curve["gross_inventory"]
    return {
        "gross_mean": _decimal(_time_weighted(gross, curve["ts_ns"], end_ns), 2, 4),
        "gross_max": format_count(int(gross.max())),
    }


def _order_counts(orders: pd.DataFrame) -> dict[str, int]:
    counts = orders["event"].value_counts()
    return {str(event): int(counts[event]) for event in sorted(counts.index)}


def _checks(markets: list[MarketResult], marked: pd.DataFrame) -> list[str]:
    warnings = []
    taped = {m.ticker for m in markets}
    untaped = sorted(set(marked["ticker"]) - taped)
    if untaped:
        names = ", ".join(untaped)
        warnings.append(f"fills in {names} have no tape rows: their P&L is not in the totals")
    tape_fees = sum(m.fees for m in markets if m.ticker in taped)
    fill_fees = int(marked.loc[marked["ticker"].isin(taped), "fee"].sum())
    if tape_fees != fill_fees:
        warnings.append(
            f"the tape's fees {_usd(format_money(tape_fees))} differ from fills.csv's "
            f"{_usd(format_money(fill_fees))} (fills from before this run, or lost rows)"
        )
    return warnings


def _unexplained(tape: pd.DataFrame, markets: list[dict[str, Any]]) -> list[str]:
    """Markets that start flat on the tape but whose attribution carries P&L in."""
    first = tape.groupby("ticker", sort=False)[["inventory", "realized", "fees"]].first()
    flat = first[(first == 0).all(axis=1)].index
    return [
        f"{m['ticker']}: started flat but {_usd(m['attribution']['carried_in'])} of its P&L "
        "is not explained by fills.csv (fills missing from it?)"
        for m in markets
        if m["ticker"] in flat and m["attribution"]["carried_in"] != "0.000000"
    ]


def _decimal(value: Fraction | int | None, unit_digits: int, digits: int) -> str | None:
    """``value`` × 10**-unit_digits as a decimal string with ``digits`` places (half to even)."""
    if value is None:
        return None
    scaled = round(Fraction(value) * 10**digits / 10**unit_digits)
    whole, frac = divmod(abs(scaled), 10**digits)
    return f"{'-' if scaled < 0 else ''}{whole}.{frac:0{digits}d}"


def _mark_text(mark: int | None) -> str | None:
    """A mark in money per contract as a dollar price: 4 decimals, 5 for a half-tick mid."""
    if mark is None:
        return None
    if mark % _MONEY_PER_PRICE == 0:
        return format_price(mark // _MONEY_PER_PRICE)
    return _decimal(mark, 6, 5)


# --- the printed table --------------------------------------------------------------------

_MARKET_HEADER: Final = (
    "market",
    "fills",
    "position",
    "realized",
    "unrealized",
    "fees",
    "net",
    "mark",
    "inv mean",
    "inv min",
    "inv max",
)


def format_report(report: Mapping[str, Any], title: str) -> str:
    """Renders a report (as :func:`summarize` returns it, or read back from ``report.json``)
    as aligned text: the run's figures, then one row per market, then any warnings.
    """
    lines = [f"kmm report: {title}", ""]
    pairs = _summary_pairs(report)
    width = max(len(label) for label, _ in pairs)
    lines += [f"{label:<{width}}  {value}" for label, value in pairs]
    if report["markets"]:
        rows = [_market_cells(market) for market in report["markets"]]
        lines += ["", *_table(_MARKET_HEADER, rows)]
        rows = [_attribution_cells(market) for market in report["markets"]]
        lines += ["", *_table(_ATTRIBUTION_HEADER, rows)]
    lines += [f"warning: {warning}" for warning in report["warnings"]]
    return "\n".join(lines) + "\n"


def _summary_pairs(report: Mapping[str, Any]) -> list[tuple[str, str]]:
    run, pnl, fills, inventory = report["run"], report["pnl"], report["fills"], report["inventory"]
    count = fills["count"]
    settled = pnl["at_settlement"]
    pairs = [
        ("period", f"{run['start'] or '-'} → {run['end'] or '-'} ({run['duration_s'] or 0} s)"),
        ("net P&L after fees", _usd(pnl["net"])),
        ("  realized", _usd(pnl["realized"])),
        ("  unrealized", _usd(pnl["unrealized"])),
        ("  fees", _usd(pnl["fees"])),
        ("max drawdown", _usd(pnl["max_drawdown"])),
        (
            "P&L at settlement",
            f"{_usd(settled)} ({pnl['settled_markets']} settled)" if settled else "none settled",
        ),
        (
            "fills",
            f"{count}: maker {fills['maker']}, taker {fills['taker']} "
            f"(maker share {fills['maker_share'] or '-'}), {fills['contracts']} contracts",
        ),
        ("spread captured", _per_fill(fills["spread_captured_per_fill"], fills["with_mid"], count)),
    ]
    for horizon, markout in report["markouts"].items():
        pairs.append((f"markout {horizon}", _per_fill(markout["mean"], markout["fills"], count)))
    pairs += _attribution_pairs(report["attribution"])
    gross_mean, gross_max = inventory["gross_mean"] or "-", inventory["gross_max"] or "-"
    pairs.append(("inventory Σ|q|", f"time-weighted mean {gross_mean}, max {gross_max} contracts"))
    orders = ", ".join(f"{event} {n}" for event, n in report["orders"].items())
    pairs.append(("order events", orders or "none"))
    return pairs


def _attribution_pairs(parts: Mapping[str, Any]) -> list[tuple[str, str]]:
    pairs = [
        ("P&L attribution", "spread + inventory + settlement + carried in - fees = net"),
        ("  spread captured", _usd(parts["spread"])),
        ("  inventory", _usd(parts["inventory"])),
        ("  settlement", _usd(parts["settlement"])),
        ("  carried in", _usd(parts["carried_in"])),
        (
            "  - fees",
            f"{_usd(parts['fees'])} (maker {_usd(parts['fees_maker'])}, "
            f"taker {_usd(parts['fees_taker'])})",
        ),
    ]
    if parts["rounding"] != "0.000000":
        pairs.append(("  rounding", _usd(parts["rounding"])))
    pairs.append(("  = net", _usd(parts["net"])))
    given_back = ", ".join(
        f"{_usd(back['given_back'])} by {horizon} ({back['fills']} fills)"
        for horizon, back in parts["adverse_selection"].items()
    )
    pairs.append(("spread given back", given_back))
    for name in ("maker", "taker"):
        own = parts[name]
        pairs.append(
            (
                f"{name} fills",
                f"{own['fills']}, {own['contracts']} contracts: P&L {_usd(own['pnl'])} = "
                f"spread {_usd(own['spread'])} + inventory {_usd(own['inventory'])} + "
                f"settlement {_usd(own['settlement'])} - fees {_usd(own['fees'])}",
            )
        )
    return pairs


def _usd(value: str | None) -> str:
    """``"-1.500000"`` as ``"-$1.500000"``; ``None`` as ``"-"``."""
    if value is None:
        return "-"
    return f"-${value[1:]}" if value.startswith("-") else f"${value}"


def _per_fill(mean: str | None, known: int, count: int) -> str:
    if count == 0:
        return "no fills"
    if mean is None:
        return f"n/a (none of {count} fills measurable)"
    return f"{_usd(mean)} per contract, mean of {known} fill{'' if known == 1 else 's'}"


def _market_cells(market: Mapping[str, Any]) -> list[str]:
    mark = market["mark"] or "-"
    if market["mark_source"] == "settlement":
        mark += " settled"
    keys = ("fills", "position", "realized", "unrealized", "fees", "net")
    return [
        market["ticker"],
        *(str(market[key]) for key in keys),
        mark,
        market["inventory_mean"],
        market["inventory_min"],
        market["inventory_max"],
    ]


_ATTRIBUTION_HEADER: Final = (
    "market",
    "spread",
    "inventory",
    "settlement",
    "carried in",
    "fees",
    "net",
    "maker P&L",
    "taker P&L",
    f"given back {MARKOUT_HORIZONS_S[-1]}s",
)


def _attribution_cells(market: Mapping[str, Any]) -> list[str]:
    parts = market["attribution"]
    keys = ("spread", "inventory", "settlement", "carried_in", "fees", "net")
    last = parts["adverse_selection"][f"{MARKOUT_HORIZONS_S[-1]}s"]["given_back"]
    return [
        market["ticker"],
        *(parts[key] for key in keys),
        parts["maker"]["pnl"],
        parts["taker"]["pnl"],
        last,
    ]


def _table(header: tuple[str, ...], rows: list[list[str]]) -> list[str]:
    """Columns aligned: the first to the left, the others (numbers) to the right."""
    widths = [max(len(cells[i]) for cells in (list(header), *rows)) for i in range(len(header))]

    def line(cells: list[str] | tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))
        return "  ".join((first, *rest)).rstrip()

    return [line(header), *(line(cells) for cells in rows)]


# --- plots --------------------------------------------------------------------------------


def _figure(rows: int, height: float) -> tuple[Figure, list[Axes]]:
    """A figure on the Agg canvas (no pyplot, no global backend) with ``rows`` panels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10.0, height * rows), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(rows, 1, sharex=True, squeeze=False)
    return figure, list(axes[:, 0])


def _times_of(ts_ns: pd.Series) -> Any:
    return ts_ns.to_numpy(dtype="int64").astype("datetime64[ns]")


def _message(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=14)


def plot_equity(curve: pd.DataFrame, path: Path, *, no_fills: bool) -> None:
    """Writes the equity curve over the gross inventory (two panels) as a PNG.

    Args:
        curve: The run's :func:`equity_curve`.
        path: Where to write the image.
        no_fills: Say "no fills" in the title.
    """
    figure, (equity_ax, inventory_ax) = _figure(2, 3.2)
    equity_ax.set_title("Equity after fees" + (" (no fills)" if no_fills else ""))
    equity_ax.set_ylabel("$")
    inventory_ax.set_ylabel("Σ |inventory| (contracts)")
    inventory_ax.set_xlabel("time (UTC)")
    if curve.empty:
        _message(equity_ax, "no tape rows")
    else:
        times = _times_of(curve["ts_ns"])
        equity = curve["equity"].to_numpy(dtype="float64") / MONEY_SCALE
        inventory = curve["gross_inventory"].to_numpy(dtype="float64") / 100
        equity_ax.step(times, equity, where="post", color="tab:blue")
        inventory_ax.step(times, inventory, where="post", color="tab:orange")
    figure.savefig(path, dpi=100)


def plot_fills(fills: pd.DataFrame, tape: pd.DataFrame, path: Path) -> None:
    """Writes our fills over each market's mid as a PNG: buys ▲, sells ▼.

    One panel per market, for the markets with the most fills (at most six); each mid holds
    until the last time in the tape or the fills.
    """
    counts = fills.groupby("ticker").size().sort_values(ascending=False, kind="stable")
    tickers = [str(t) for t in counts.index[:_PLOTTED_MARKETS]]
    figure, axes = _figure(max(len(tickers), 1), 2.8)
    if not tickers:
        axes[0].set_title("Our fills over the mid")
        _message(axes[0], "no fills")
    end_ns = max(int(tape["ts_ns"].max()), int(fills["ts_ns"].max())) if tickers else 0
    for ax, ticker in zip(axes[: len(tickers)], tickers, strict=True):
        rows = tape[(tape["ticker"] == ticker) & tape["mid"].notna()]
        _plot_market(ax, ticker, rows, fills[fills["ticker"] == ticker], end_ns)
    if len(counts) > len(tickers):
        figure.suptitle(f"The {len(tickers)} of {len(counts)} markets with the most fills")
    axes[-1].set_xlabel("time (UTC)")
    figure.savefig(path, dpi=100)


def _plot_market(
    ax: Axes, ticker: str, mids: pd.DataFrame, fills: pd.DataFrame, end_ns: int
) -> None:
    if len(mids):
        pd = _pandas()
        times = _times_of(pd.concat([mids["ts_ns"], pd.Series([end_ns])]))
        mid = mids["mid"].to_numpy(dtype="float64") / MONEY_SCALE
        ax.step(times, [*mid, mid[-1]], where="post", color="0.5", label="mid")
    for sign, marker, color, label in ((1, "^", "tab:green", "buy"), (-1, "v", "tab:red", "sell")):
        ours = fills[fills["sign"] == sign]
        if len(ours):
            price = ours["price"].to_numpy(dtype="float64") / PRICE_SCALE
            ax.scatter(_times_of(ours["ts_ns"]), price, marker=marker, color=color, label=label)
    ax.set_title(ticker)
    ax.set_ylabel("YES price ($)")
    ax.legend(loc="best", fontsize="small")


# --- command ------------------------------------------------------------------------------


_RUN_ID: Final = re.compile(r"(\d{8}T\d{6}Z)(?:-(\d+))?")
"""A run directory's name: its UTC start, and ``-N`` for the Nth run started in that second."""
_RUN_FILES: Final = ("tape.csv", "config.yaml")


def is_run_dir(path: Path) -> bool:
    """Whether ``path`` is a run's directory: a run-id name holding ``tape.csv`` or ``config.yaml``.

    Anything else under ``record.runs_dir`` (the local exchange's state, a notebook's
    scratch directory) is not a run.
    """
    return (
        _RUN_ID.fullmatch(path.name) is not None
        and path.is_dir()
        and any((path / name).is_file() for name in _RUN_FILES)
    )


def _run_order(path: Path) -> tuple[str, int]:
    match = _RUN_ID.fullmatch(path.name)
    assert match is not None
    return match.group(1), int(match.group(2) or 1)


def latest_run_dir(runs_dir: Path) -> Path | None:
    """The newest run under ``runs_dir`` (by the UTC start in its name), if any.

    Only directories that look like runs count (:func:`is_run_dir`); ``20261123T120000Z-10``
    is newer than ``20261123T120000Z-9``.
    """
    runs = run_dirs(runs_dir)
    return runs[0] if runs else None


def run_dirs(runs_dir: Path) -> list[Path]:
    """Every run under ``runs_dir``, newest first (see :func:`latest_run_dir`)."""
    if not runs_dir.is_dir():
        return []
    return sorted((p for p in runs_dir.iterdir() if is_run_dir(p)), key=_run_order, reverse=True)


def write_report(data: RunData, run_dir: Path) -> dict[str, Any]:
    """Writes ``report.json``, ``equity.png`` and ``fills.png`` into ``run_dir``.

    Returns:
        The report written to ``report.json``.
    """
    curve = equity_curve(data.tape)
    report = summarize(data, curve)
    text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
    (run_dir / REPORT_FILE).write_text(text, encoding="utf-8")
    plot_equity(curve, run_dir / EQUITY_PLOT, no_fills=data.fills.empty)
    plot_fills(data.fills, data.tape, run_dir / FILLS_PLOT)
    return report


def _missing_analysis() -> str | None:
    for name in ("pandas", "matplotlib"):
        try:
            importlib.import_module(name)
        except ImportError:
            return name
    return None


def run_report(run_dir: Path, out: TextIO, err: TextIO | None = None) -> int:
    """``kmm report RUN_DIR``: prints the report and writes it with its plots into the run.

    Args:
        run_dir: The run directory.
        out: Where the table goes.
        err: Where problems go (default: ``sys.stderr``).

    Returns:
        0 on success, 1 if the run's files are malformed, 2 if the directory does not exist
        or the ``[analysis]`` extra (pandas, matplotlib) is not installed.
    """
    err = sys.stderr if err is None else err
    missing = _missing_analysis()
    if missing is not None:
        print(f"kmm report needs {missing}: pip install 'kmm[analysis]'", file=err)
        return EXIT_USAGE
    if not run_dir.is_dir():
        print(f"kmm report: {run_dir}: no such run directory", file=err)
        return EXIT_USAGE
    try:
        data = load_run(run_dir)
    except KmmError as e:
        print(f"kmm report: {run_dir}: {e}", file=err)
        return EXIT_DATA
    report = write_report(data, run_dir)
    out.write(format_report(report, str(run_dir)))
    out.write(f"wrote {REPORT_FILE}, {EQUITY_PLOT} and {FILLS_PLOT} in {run_dir}\n")
    return EXIT_OK
