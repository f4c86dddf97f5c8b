"""Tests of kmm.report against small run directories written here in the documented formats."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.image import imread

from kmm.execution.inventory import Position
from kmm.report import (
    EQUITY_PLOT,
    FILLS_PLOT,
    REPORT_FILE,
    RunDataError,
    equity_curve,
    format_report,
    latest_run_dir,
    load_run,
    max_drawdown,
    run_report,
    summarize,
)
from kmm.types import BookSide, format_count, format_money, format_price

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
A = "KXA-26NOV23-T50"
B = "KXB-26NOV23-T60"
TAPE_HEADER = (
    "ts,ticker,event,mid,best_bid,best_ask,my_bid,my_bid_qty,my_ask,my_ask_qty,"
    "inventory,unrealized_pnl,realized_pnl,fees,latency_ms"
)
FILLS_HEADER = "ts,trade_id,order_id,ticker,side,price,qty,fee,is_taker,position_after"
ORDERS_HEADER = "ts,ticker,client_order_id,order_id,event,side,price,qty,code,reason"

# (ms after T0, ticker, event, mid, inventory, unrealized, realized net of fees, fees)
TAPE = [
    (0, A, "quote", "0.5000", "0.00", "0.000000", "0.000000", "0.000000"),
    (500, B, "quote", "0.6000", "0.00", "0.000000", "0.000000", "0.000000"),
    (1000, A, "fill", "0.5000", "10.00", "0.100000", "-0.020000", "0.020000"),
    (2000, A, "quote", "0.4800", "10.00", "-0.100000", "-0.020000", "0.020000"),
    (3000, B, "fill", "0.6000", "-5.00", "0.050000", "-0.050000", "0.050000"),
    (11000, A, "fill", "0.5000", "0.00", "0.000000", "0.160000", "0.040000"),
    (12000, A, "quote", "0.51505", "0.00", "0.000000", "0.160000", "0.040000"),
    (30000, B, "close", "1.0000", "-5.00", "-1.950000", "-0.050000", "0.050000"),
    (70000, A, "pulled", "", "0.00", "0.000000", "0.160000", "0.040000"),
]
# (ms after T0, trade_id, ticker, side, price, qty, fee, is_taker, position_after)
FILLS = [
    (900, "t1", A, "bid", "0.4900", "10.00", "0.020000", "False", "10.00"),
    (2900, "t2", B, "ask", "0.6100", "5.00", "0.050000", "True", "-5.00"),
    (10900, "t3", A, "ask", "0.5100", "10.00", "0.020000", "False", "0.00"),
]
ORDERS = [
    (100, A, "c1", "", "sent", "bid", "0.4900", "10.00", "", "quote"),
    (150, A, "c1", "o1", "acked", "bid", "0.4900", "10.00", "", ""),
    (200, A, "c2", "", "sent", "ask", "0.5100", "10.00", "", "quote"),
    (250, A, "c2", "o2", "acked", "ask", "0.5100", "10.00", "", ""),
    (600, B, "c3", "", "sent", "ask", "0.6100", "5.00", "", "quote"),
    (650, B, "c3", "", "rejected", "ask", "0.6100", "5.00", "post_only_cross", "post only"),
    (700, B, "c4", "", "sent", "ask", "0.6100", "5.00", "", "quote"),
    (750, B, "c4", "o4", "acked", "ask", "0.6100", "5.00", "", ""),
    (31000, A, "c1", "o1", "canceled", "bid", "0.4900", "10.00", "", "pull"),
]


def ts(ms: int) -> str:
    """An ISO UTC time with microseconds, as the recorder writes it."""
    return (T0 + timedelta(milliseconds=ms)).isoformat(timespec="microseconds")


def tape_line(row: tuple[int, str, str, str, str, str, str, str]) -> str:
    ms, ticker, event, mid, inventory, unrealized, realized, fees = row
    book = "0.4900,0.5100,0.4900,10.00,0.5100,10.00" if mid else ",,,0.00,,0.00"
    return (
        f"{ts(ms)},{ticker},{event},{mid},{book},{inventory},{unrealized},{realized},{fees},0.125"
    )


def fills_line(row: tuple[int, str, str, str, str, str, str, str, str]) -> str:
    ms, trade_id, ticker, side, price, qty, fee, is_taker, after = row
    return (
        f"{ts(ms)},{trade_id},o-{trade_id},{ticker},{side},{price},{qty},{fee},{is_taker},{after}"
    )


def orders_line(row: tuple[int, str, str, str, str, str, str, str, str, str]) -> str:
    ms, *rest = row
    return ",".join((ts(ms), *rest))


def write_run(
    run_dir: Path,
    tape: list[tuple[int, str, str, str, str, str, str, str]] = TAPE,
    fills: list[tuple[int, str, str, str, str, str, str, str, str]] = FILLS,
    orders: list[tuple[int, str, str, str, str, str, str, str, str, str]] = ORDERS,
) -> Path:
    """Writes tape.csv, fills.csv and orders.csv in the documented formats; returns the dir."""
    run_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "tape.csv": [TAPE_HEADER, *map(tape_line, tape)],
        "fills.csv": [FILLS_HEADER, *map(fills_line, fills)],
        "orders.csv": [ORDERS_HEADER, *map(orders_line, orders)],
    }
    for name, lines in files.items():
        (run_dir / name).write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    return run_dir


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return write_run(tmp_path / "20261123T120000Z")


def report_of(run_dir: Path) -> dict[str, object]:
    return summarize(load_run(run_dir))


def test_net_pnl_is_realized_plus_unrealized_after_fees_with_settled_markets_at_settlement(
    run_dir: Path,
) -> None:
    # Act
    pnl = report_of(run_dir)["pnl"]

    # Assert
    assert pnl == {
        "net": "-1.840000",
        "realized": "0.110000",
        "unrealized": "-1.950000",
        "fees": "0.090000",
        "gross": "-1.750000",
        "max_drawdown": "2.000000",
        "at_settlement": "-2.000000",
        "settled_markets": 1,
    }


def test_fills_are_counted_with_maker_share_and_spread_captured_against_the_mid_at_fill_time(
    run_dir: Path,
) -> None:
    # Act
    fills = report_of(run_dir)["fills"]

    # Assert: edges 0.01 (A bid), 0.01 (B ask), 0.03 (A ask against the 0.48 mid)
    assert fills == {
        "count": 3,
        "maker": 2,
        "taker": 1,
        "maker_share": "0.6667",
        "contracts": "25.00",
        "spread_captured_per_fill": "0.016667",
        "spread_captured_total": "0.450000",
        "with_mid": 3,
    }


def test_markouts_use_the_mid_after_each_horizon_and_skip_fills_whose_horizon_passes_the_run(
    run_dir: Path,
) -> None:
    # Act
    markouts = report_of(run_dir)["markouts"]

    # Assert: at 60 s the last fill's horizon (70.9 s) is past the end of the run (70 s),
    # and the settled market's short marks out against the settlement value
    assert markouts == {
        "1s": {"mean": "0.010000", "fills": 3},
        "10s": {"mean": "-0.001683", "fills": 3},
        "60s": {"mean": "-0.182475", "fills": 2},
    }


def test_inventory_is_time_weighted_until_the_end_of_the_run(run_dir: Path) -> None:
    # Act
    report = report_of(run_dir)
    markets = {m["ticker"]: m for m in report["markets"]}  # type: ignore[attr-defined]

    # Assert: Σ|q| holds 10 for 2 s, 15 for 8 s and 5 for 59 s of 70 s
    assert report["inventory"] == {"gross_mean": "6.2143", "gross_max": "15.00"}
    assert (markets[A]["inventory_mean"], markets[A]["inventory_max"]) == ("1.4286", "10.00")
    assert (markets[B]["inventory_mean"], markets[B]["inventory_min"]) == ("-4.8201", "-5.00")


def test_each_market_is_marked_at_its_settlement_or_else_at_its_last_mid(run_dir: Path) -> None:
    # Act
    markets = report_of(run_dir)["markets"]

    # Assert: A's last row has no mid, so its mark is the half-tick mid before it
    for market in markets:
        market.pop("attribution")  # tested below
    assert markets == [
        {
            "ticker": A,
            "fills": 2,
            "maker_fills": 2,
            "contracts": "20.00",
            "position": "0.00",
            "realized": "0.160000",
            "unrealized": "0.000000",
            "fees": "0.040000",
            "net": "0.160000",
            "mark": "0.51505",
            "mark_source": "last_mid",
            "inventory_mean": "1.4286",
            "inventory_min": "0.00",
            "inventory_max": "10.00",
            "spread_captured_per_fill": "0.020000",
        },
        {
            "ticker": B,
            "fills": 1,
            "maker_fills": 0,
            "contracts": "5.00",
            "position": "-5.00",
            "realized": "-0.050000",
            "unrealized": "-1.950000",
            "fees": "0.050000",
            "net": "-2.000000",
            "mark": "1.0000",
            "mark_source": "settlement",
            "inventory_mean": "-4.8201",
            "inventory_min": "-5.00",
            "inventory_max": "0.00",
            "spread_captured_per_fill": "0.010000",
        },
    ]


def test_the_report_counts_order_events_and_spans_the_run(run_dir: Path) -> None:
    # Act
    report = report_of(run_dir)

    # Assert
    assert report["orders"] == {"acked": 3, "canceled": 1, "rejected": 1, "sent": 4}
    assert report["run"] == {
        "start": "2026-11-23T12:00:00.000000+00:00",
        "end": "2026-11-23T12:01:10.000000+00:00",
        "duration_s": "70.000",
    }
    assert report["warnings"] == []


def test_run_report_prints_the_table_and_writes_report_json_and_both_plots(run_dir: Path) -> None:
    # Arrange
    out, err = io.StringIO(), io.StringIO()

    # Act
    status = run_report(run_dir, out, err)

    # Assert
    assert (status, err.getvalue()) == (0, "")
    written = json.loads((run_dir / REPORT_FILE).read_text(encoding="utf-8"))
    assert written == report_of(run_dir)
    table = out.getvalue()
    assert "net P&L after fees  -$1.840000" in table
    assert "markout 60s" in table and "-$0.182475 per contract, mean of 2 fills" in table
    assert any(line.startswith(B) and "1.0000 settled" in line for line in table.splitlines())
    assert imread(run_dir / EQUITY_PLOT).shape[:2] == (640, 1000)
    assert imread(run_dir / FILLS_PLOT).shape[:2] == (560, 1000)  # one panel per market


def test_the_printed_table_can_be_rendered_again_from_report_json(run_dir: Path) -> None:
    # Arrange
    out = io.StringIO()
    run_report(run_dir, out, io.StringIO())

    # Act
    again = format_report(json.loads((run_dir / REPORT_FILE).read_text()), str(run_dir))

    # Assert
    assert out.getvalue().startswith(again)


def test_market_columns_are_aligned_in_the_printed_table(run_dir: Path) -> None:
    # Act
    text = format_report(report_of(run_dir), "run")

    # Assert
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("market"))
    rows = lines[header : header + 3]
    assert len({line.index("realized") for line in rows[:1]}) == 1
    assert len({len(line) for line in rows}) == 1


def test_a_run_without_fills_still_writes_the_report_and_both_plots(tmp_path: Path) -> None:
    # Arrange
    quiet = [row for row in TAPE if row[2] == "quote" and row[1] == A][:1]
    run_dir = write_run(tmp_path / "run", tape=quiet, fills=[], orders=[])
    out = io.StringIO()

    # Act
    status = run_report(run_dir, out, io.StringIO())

    # Assert
    report = json.loads((run_dir / REPORT_FILE).read_text())
    assert status == 0
    assert report["fills"]["count"] == 0 and report["fills"]["maker_share"] is None
    assert report["markouts"]["1s"] == {"mean": None, "fills": 0}
    assert report["pnl"]["net"] == "0.000000"
    assert report["inventory"] == {"gross_mean": "0.0000", "gross_max": "0.00"}
    parts = report["attribution"]
    assert {parts[k] for k in ("spread", "inventory", "settlement", "carried_in", "net")} == {
        "0.000000"
    }
    assert parts["maker"]["fills"] == parts["taker"]["fills"] == 0
    assert "no fills" in out.getvalue()
    assert (run_dir / EQUITY_PLOT).stat().st_size > 0
    assert (run_dir / FILLS_PLOT).stat().st_size > 0


def test_a_run_killed_before_any_complete_line_is_an_empty_run(tmp_path: Path) -> None:
    # Arrange
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "tape.csv").write_text("")
    (run_dir / "fills.csv").write_text("ts,trade_")

    # Act
    status = run_report(run_dir, io.StringIO(), io.StringIO())

    # Assert
    report = json.loads((run_dir / REPORT_FILE).read_text())
    assert status == 0
    assert report["run"]["start"] is None and report["pnl"]["max_drawdown"] is None
    assert report["warnings"] == ["fills.csv: dropped an incomplete last line (killed mid-write?)"]
    assert (run_dir / EQUITY_PLOT).is_file() and (run_dir / FILLS_PLOT).is_file()


def test_an_incomplete_last_line_is_dropped_with_a_warning(run_dir: Path) -> None:
    # Arrange
    with (run_dir / "tape.csv").open("a", encoding="utf-8") as f:
        f.write(f"{ts(71000)},{A},quote,0.52")

    # Act
    report = report_of(run_dir)

    # Assert
    assert report["warnings"] == ["tape.csv: dropped an incomplete last line (killed mid-write?)"]
    assert report["run"]["end"] == "2026-11-23T12:01:10.000000+00:00"  # type: ignore[index]


def test_fees_that_disagree_between_the_tape_and_the_fills_are_warned_about(
    tmp_path: Path,
) -> None:
    # Arrange
    run_dir = write_run(tmp_path / "run", fills=FILLS[:2])

    # Act
    warnings = report_of(run_dir)["warnings"]

    # Assert
    assert warnings == [
        "the tape's fees $0.090000 differ from fills.csv's $0.070000 "
        "(fills from before this run, or lost rows)",
        f"{A}: started flat but -$0.070500 of its P&L is not explained by fills.csv "
        "(fills missing from it?)",
    ]


def test_fills_in_a_market_without_tape_rows_are_warned_about(tmp_path: Path) -> None:
    # Arrange
    run_dir = write_run(tmp_path / "run", tape=[row for row in TAPE if row[1] == A])

    # Act
    report = report_of(run_dir)

    # Assert
    assert report["warnings"] == [f"fills in {B} have no tape rows: their P&L is not in the totals"]
    assert report["fills"]["count"] == 3  # type: ignore[index]


def test_a_malformed_amount_exits_with_status_1_naming_the_file_and_column(
    tmp_path: Path,
) -> None:
    # Arrange
    bad = [(900, "t1", A, "bid", "0.49001", "10.00", "0.020000", "False", "10.00")]
    run_dir = write_run(tmp_path / "run", fills=bad)
    err = io.StringIO()

    # Act
    status = run_report(run_dir, io.StringIO(), err)

    # Assert
    assert status == 1
    assert "fills.csv price: more than 4 decimal places, got '0.49001'" in err.getvalue()
    assert not (run_dir / REPORT_FILE).exists()


def test_an_unknown_fill_side_is_refused_naming_the_column(tmp_path: Path) -> None:
    # Arrange
    bad = [(900, "t1", A, "buy", "0.4900", "10.00", "0.020000", "False", "10.00")]
    run_dir = write_run(tmp_path / "run", fills=bad)

    # Act
    with pytest.raises(RunDataError) as caught:
        load_run(run_dir)

    # Assert
    assert (caught.value.where, caught.value.reason) == (
        "fills.csv side",
        "expected one of bid, ask, got 'buy'",
    )


def test_a_required_empty_field_is_refused(tmp_path: Path) -> None:
    # Arrange
    run_dir = write_run(tmp_path / "run", tape=[(0, A, "quote", "0.5000", "", "0", "0", "0")])

    # Act
    with pytest.raises(RunDataError) as caught:
        load_run(run_dir)

    # Assert
    assert str(caught.value) == "tape.csv inventory: empty where a value is required"


def test_a_missing_file_or_column_is_named(tmp_path: Path) -> None:
    # Arrange
    run_dir = write_run(tmp_path / "run")
    (run_dir / "fills.csv").unlink()
    other = write_run(tmp_path / "other")
    (other / "tape.csv").write_text("ts,ticker,event\n")

    # Act
    with pytest.raises(RunDataError) as missing_file:
        load_run(run_dir)
    with pytest.raises(RunDataError) as missing_columns:
        load_run(other)

    # Assert
    assert str(missing_file.value) == "fills.csv: missing from the run directory"
    assert str(missing_columns.value) == (
        "tape.csv: missing column(s) mid, inventory, unrealized_pnl, realized_pnl, fees"
    )


def test_a_directory_that_does_not_exist_exits_with_status_2(tmp_path: Path) -> None:
    # Arrange
    err = io.StringIO()

    # Act
    status = run_report(tmp_path / "nope", io.StringIO(), err)

    # Assert
    assert status == 2
    assert err.getvalue() == f"kmm report: {tmp_path / 'nope'}: no such run directory\n"


def test_without_pandas_run_report_says_how_to_install_the_analysis_extra(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Arrange
    monkeypatch.setitem(sys.modules, "pandas", None)
    err = io.StringIO()

    # Act
    status = run_report(run_dir, io.StringIO(), err)

    # Assert
    assert status == 2
    assert err.getvalue() == "kmm report needs pandas: pip install 'kmm[analysis]'\n"


def test_importing_the_report_module_does_not_import_pandas_or_matplotlib() -> None:
    # Arrange
    code = "import sys, kmm.report; print(sorted({'pandas', 'matplotlib'} & set(sys.modules)))"

    # Act
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )

    # Assert
    assert result.stdout.strip() == "[]"


def test_the_latest_run_directory_is_the_newest_by_name(tmp_path: Path) -> None:
    # Arrange
    for name in ("20261123T120000Z", "20261124T090000Z", "20261123T230000Z"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "tape.csv").write_text("")
    (tmp_path / "ledger.sqlite").write_text("")

    # Act / Assert
    assert latest_run_dir(tmp_path) == tmp_path / "20261124T090000Z"
    assert latest_run_dir(tmp_path / "none") is None


_ROWS = st.lists(
    st.tuples(
        st.integers(0, 20),  # time step, ms (0: the same time as the row before)
        st.sampled_from("xyz"),
        st.integers(-(10**9), 10**9),  # realized + unrealized, money units
        st.integers(-(10**5), 10**5),  # inventory
    ),
    max_size=30,
)


@settings(max_examples=60)
@given(_ROWS)
def test_the_equity_curve_is_the_sum_of_every_markets_latest_pnl_at_each_time(
    rows: list[tuple[int, str, int, int]],
) -> None:
    # Arrange
    times, now = [], 0
    for step, *_ in rows:
        now += step
        times.append(now)
    tape = pd.DataFrame(
        {
            "ts_ns": pd.Series(times, dtype="int64"),
            "ticker": [r[1] for r in rows],
            "realized": pd.array([r[2] for r in rows], dtype="Int64"),
            "unrealized": pd.array([0] * len(rows), dtype="Int64"),
            "inventory": pd.array([r[3] for r in rows], dtype="Int64"),
        }
    )

    # Act
    curve = equity_curve(tape)

    # Assert
    expected: dict[int, tuple[int, int]] = {}
    latest: dict[str, tuple[int, int]] = {}
    for t, (_, ticker, pnl, inventory) in zip(times, rows, strict=True):
        latest[ticker] = (pnl, abs(inventory))
        expected[t] = (sum(v[0] for v in latest.values()), sum(v[1] for v in latest.values()))
    got = {
        int(t): (int(e), int(g))
        for t, e, g in zip(curve["ts_ns"], curve["equity"], curve["gross_inventory"], strict=True)
    }
    assert got == expected


@settings(max_examples=60)
@given(st.lists(st.integers(-(10**12), 10**12), max_size=40))
def test_max_drawdown_is_the_largest_fall_from_an_earlier_peak(values: list[int]) -> None:
    # Act
    drawdown = max_drawdown(pd.Series(values, dtype="Int64"))

    # Assert
    if not values:
        assert drawdown is None
    else:
        pairs = (values[i] - values[j] for i in range(len(values)) for j in range(i, len(values)))
        assert drawdown == max(pairs)


# --- P&L attribution ------------------------------------------------------------------------


def _parts_sum(parts: dict[str, str]) -> int:
    """spread + inventory + settlement + carried in - fees + rounding, in $0.000001."""
    micros = {k: round(float(parts[k]) * 1_000_000) for k in parts if isinstance(parts[k], str)}
    added = ("spread", "inventory", "settlement", "carried_in", "rounding")
    return sum(micros[k] for k in added) - micros["fees"]


def test_the_attribution_splits_net_pnl_into_spread_inventory_settlement_and_fees(
    run_dir: Path,
) -> None:
    # Act
    report = report_of(run_dir)

    # Assert: A bought 10 at 0.49 under a 0.50 mid (+0.10) and sold 10 at 0.51 over a 0.48
    # mid (+0.30); the mark's move on the 10 held is -0.20. B sold 5 at 0.61 under a 0.60
    # mid (+0.05) and settled at 1.00 from a 0.60 mark (-2.00).
    parts = report["attribution"]
    assert {k: v for k, v in parts.items() if isinstance(v, str)} == {
        "spread": "0.450000",
        "inventory": "-0.200000",
        "settlement": "-2.000000",
        "carried_in": "0.000000",
        "fees": "0.090000",
        "fees_maker": "0.040000",
        "fees_taker": "0.050000",
        "rounding": "0.000000",
        "net": report["pnl"]["net"],
    }
    by_market = {m["ticker"]: m["attribution"] for m in report["markets"]}
    assert (by_market[A]["spread"], by_market[A]["inventory"]) == ("0.400000", "-0.200000")
    assert (by_market[B]["settlement"], by_market[B]["net"]) == ("-2.000000", "-2.000000")
    for market in report["markets"]:
        assert _parts_sum(market["attribution"]) == round(float(market["net"]) * 1_000_000)


def test_maker_and_taker_fills_are_attributed_apart(run_dir: Path) -> None:
    # Act
    parts = report_of(run_dir)["attribution"]

    # Assert
    assert parts["maker"] == {
        "fills": 2,
        "contracts": "20.00",
        "spread": "0.400000",
        "inventory": "-0.200000",
        "settlement": "0.000000",
        "fees": "0.040000",
        "pnl": "0.160000",
    }
    assert parts["taker"] == {
        "fills": 1,
        "contracts": "5.00",
        "spread": "0.050000",
        "inventory": "0.000000",
        "settlement": "-2.000000",
        "fees": "0.050000",
        "pnl": "-2.000000",
    }


def test_adverse_selection_is_the_spread_the_mid_gave_back_by_each_horizon(
    run_dir: Path,
) -> None:
    # Act
    given_back = report_of(run_dir)["attribution"]["adverse_selection"]

    # Assert: by 1 s, A's buy (mid 0.50 -> 0.48) gave back 0.20 of its 0.10; by 10 s the
    # mid is 0.48 then 0.51505 for the sell (-0.35 + ...); at 60 s the last fill has no
    # markout and B's short met its settlement at 1.00.
    assert given_back == {
        "1s": {"given_back": "0.200000", "fills": 3},
        "10s": {"given_back": "0.550500", "fills": 3},
        "60s": {"given_back": "1.849500", "fills": 2},
    }


def test_the_printed_report_shows_the_attribution_and_its_table(run_dir: Path) -> None:
    # Act
    text = format_report(report_of(run_dir), "run")

    # Assert
    assert "P&L attribution" in text
    assert "  spread captured   $0.450000" in text
    assert "  settlement        -$2.000000" in text
    assert "  = net             -$1.840000" in text
    assert "given back 60s" in text
    row = [line for line in text.splitlines() if line.startswith(B)][-1]
    assert row.split()[1:4] == ["0.050000", "0.000000", "-2.000000"]


def test_a_position_carried_into_the_run_is_attributed_as_carried_in(tmp_path: Path) -> None:
    # Arrange: the run adopted 10 A at a cost of 0.40 (realized 0) and never traded it; the
    # mark went from 0.50 to 0.48
    tape = [
        (0, A, "quote", "0.5000", "10.00", "1.000000", "0.000000", "0.000000"),
        (5000, A, "quote", "0.4800", "10.00", "0.800000", "0.000000", "0.000000"),
    ]
    run_dir = write_run(tmp_path / "run", tape=tape, fills=[], orders=[])

    # Act
    report = report_of(run_dir)

    # Assert
    assert report["attribution"]["carried_in"] == "0.800000"
    assert report["attribution"]["net"] == report["pnl"]["net"] == "0.800000"
    assert report["warnings"] == []


MARKED_HEADER = TAPE_HEADER + ",quote_bid,quote_bid_qty,quote_ask,quote_ask_qty,mark,mark_source"


@settings(max_examples=80, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(1, 5_000),  # ms since the last event
            st.sampled_from(["bid", "ask", "book", "one_sided"]),
            st.integers(100, 9_900),  # price or mid, in $0.0001
            st.integers(1, 2_000),  # qty in 0.01 contract
            st.integers(0, 20_000),  # fee in $0.000001
            st.booleans(),  # is_taker
        ),
        max_size=30,
    ),
    st.sampled_from([None, "yes", "no"]),
)
def test_the_attribution_adds_up_to_the_positions_own_pnl_exactly(
    tmp_path_factory: pytest.TempPathFactory,
    events: list[tuple[int, str, int, int, int, bool]],
    settlement: str | None,
) -> None:
    """Fills and book moves booked by the engine's own :class:`Position`, written as tape and
    fills rows; the attribution must leave nothing carried in and add up to the net."""
    # Arrange
    position = Position(A)
    mark, mid, now = 5_000, "0.50000", 0
    tape_lines, fill_lines = [MARKED_HEADER], [FILLS_HEADER]

    def row(event: str, mid: str, mark: int | None) -> str:
        unrealized = position.unrealized(mark) if mark is not None else 0
        return (
            f"{ts(now)},{A},{event},{mid},,,,0.00,,0.00,{format_count(position.qty)},"
            f"{format_money(unrealized)},{format_money(position.realized)},"
            f"{format_money(position.fees_paid)},,,0.00,,0.00,"
            f"{'' if mark is None else format_price(mark)},mid"
        )

    tape_lines.append(row("quote", mid, mark))
    for n, (step, kind, price, qty, fee, taker) in enumerate(events):
        now += step
        if kind in ("book", "one_sided"):
            # a two-sided book's mid is half a tick over the mark; a one-sided one has none
            mark = price
            mid = "" if kind == "one_sided" else f"{price // 10_000}.{price % 10_000:04d}5"
            tape_lines.append(row(kind, mid, mark))
            continue
        side = BookSide.BID if kind == "bid" else BookSide.ASK
        position.apply(side, price, qty, fee)
        fill_lines.append(
            f"{ts(now)},t{n},o{n},{A},{kind},{format_price(price)},{format_count(qty)},"
            f"{format_money(fee)},{taker},{format_count(position.qty)}"
        )
        tape_lines.append(row("fill", mid, mark))
    if settlement is not None:
        now += 1_000
        position.settle(settlement)  # type: ignore[arg-type]
        value = "1.0000" if settlement == "yes" else "0.0000"
        tape_lines.append(row("close", value, None))
    run_dir = tmp_path_factory.mktemp("run")
    (run_dir / "tape.csv").write_text("\n".join(tape_lines) + "\n")
    (run_dir / "fills.csv").write_text("\n".join(fill_lines) + "\n")

    # Act
    report = summarize(load_run(run_dir))

    # Assert
    parts = report["attribution"]
    assert parts["net"] == report["pnl"]["net"]
    assert parts["net"] == format_money(position.realized + position.unrealized(mark))
    assert parts["carried_in"] == "0.000000"
    assert _parts_sum(parts) == position.realized + position.unrealized(mark)
    assert report["warnings"] == []
    if settlement is None:
        assert parts["settlement"] == "0.000000"
