"""``markets.json``: what a replay needs per market that the captured frames do not carry.

A capture holds the websocket feed only; the price grid, close time and fee schedule come
from REST at start-up. :func:`write_markets_json` stores them next to ``capture.jsonl.gz``;
:func:`load_markets_json` reads them back as :class:`MarketMeta`. The format is documented in
``docs/capture.md``:

.. code-block:: json

    {"version": 1, "markets": [{"ticker": "KXA-26DEC05-T40", "event_ticker": "KXA-26DEC05",
      "price_ranges": [{"start": "0.0100", "end": "0.9900", "step": "0.0100"}],
      "close_ns": 1796515200000000000, "fee_type": "quadratic", "fee_multiplier": "1"}]}
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

from kmm.book.grid import PriceGrid
from kmm.errors import ConfigError, FixedPointError, WireError
from kmm.fees import parse_multiplier
from kmm.kalshi.rest import MarketInfo, SeriesInfo
from kmm.kalshi.wire import PriceRange, parse_price_ranges
from kmm.types import format_price

__all__ = ["MARKETS_FILE", "MarketMeta", "load_markets_json", "write_markets_json"]

MARKETS_FILE: Final = "markets.json"
_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class MarketMeta:
    """One market's static facts for a replay.

    Attributes:
        ticker: The market.
        price_ranges: Its ``(start, end, step)`` bands in Price units.
        close_ns: Its close time (ns since the epoch), if it has one.
        fee_type: The series' ``fee_type`` (``quadratic``, ``quadratic_with_maker_fees`` ...).
        fee_multiplier: The series' ``fee_multiplier``, exact.
        event_ticker: The market's event.
    """

    ticker: str
    price_ranges: tuple[PriceRange, ...]
    close_ns: int | None
    fee_type: str
    fee_multiplier: Fraction = Fraction(1)
    event_ticker: str = ""

    @property
    def grid(self) -> PriceGrid:
        """The market's price grid."""
        return PriceGrid.from_ranges(self.price_ranges)


def _band(band: PriceRange) -> dict[str, str]:
    start, end, step = band
    return {"start": format_price(start), "end": format_price(end), "step": format_price(step)}


def write_markets_json(
    run_dir: Path, markets: Sequence[MarketInfo], series: Mapping[str, SeriesInfo]
) -> Path:
    """Writes ``run_dir/markets.json`` for ``markets``.

    Args:
        run_dir: The run directory (the capture's).
        markets: The markets captured or traded.
        series: Each market's series, by **event ticker** (``MarketInfo.event_ticker``).

    Returns:
        The file written.

    Raises:
        KeyError: if a market's event has no series in ``series``.
        OSError: if the file cannot be written.
    """
    rows: list[dict[str, Any]] = []
    for market in markets:
        info = series[market.event_ticker]
        rows.append(
            {
                "ticker": market.ticker,
                "event_ticker": market.event_ticker,
                "series_ticker": info.ticker,
                "price_ranges": [_band(b) for b in market.price_ranges],
                "close_ns": market.close_ns,
                "fee_type": info.fee_type,
                "fee_multiplier": str(info.fee_multiplier),
            }
        )
    path = run_dir / MARKETS_FILE
    path.write_text(json.dumps({"version": _VERSION, "markets": rows}, indent=1) + "\n")
    return path


def _meta(i: int, row: object) -> MarketMeta:
    where = f"markets[{i}]"
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected an object")
    ticker = row.get("ticker")
    if not isinstance(ticker, str) or not ticker:
        raise ValueError(f"{where}.ticker: expected a ticker")
    close_ns = row.get("close_ns")
    if close_ns is not None and (type(close_ns) is not int or close_ns < 0):
        raise ValueError(f"{where}.close_ns: expected an integer or null")
    fee_type = row.get("fee_type")
    if not isinstance(fee_type, str):
        raise ValueError(f"{where}.fee_type: expected a string")
    try:
        ranges = parse_price_ranges(row.get("price_ranges") or ())
        PriceGrid.from_ranges(ranges)
        multiplier = Fraction(parse_multiplier(str(row.get("fee_multiplier", "1"))))
    except (WireError, FixedPointError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None
    if not ranges:
        raise ValueError(f"{where}.price_ranges: expected at least one band")
    event = row.get("event_ticker")
    return MarketMeta(
        ticker, ranges, close_ns, fee_type, multiplier, event if isinstance(event, str) else ""
    )


def load_markets_json(path: Path) -> dict[str, MarketMeta]:
    """Reads a ``markets.json`` (see :func:`write_markets_json`), by ticker.

    Raises:
        ConfigError: one line naming the file and what is wrong with it.
    """
    try:
        body = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read markets file: {exc.strerror}"]) from None
    except ValueError as exc:
        raise ConfigError([f"{path}: not JSON: {exc}"]) from None
    if not isinstance(body, dict) or body.get("version") != _VERSION:
        raise ConfigError([f"{path}: not a version {_VERSION} markets file"])
    rows = body.get("markets")
    if not isinstance(rows, list):
        raise ConfigError([f"{path}: markets: expected a list"])
    try:
        metas = [_meta(i, row) for i, row in enumerate(rows)]
    except ValueError as exc:
        raise ConfigError([f"{path}: {exc}"]) from None
    return {m.ticker: m for m in metas}
