"""The one owner of each market's facts, and the views the planner reads them through.

The pipeline's :class:`~kmm.pipeline.MarketState` holds each market's
:class:`~kmm.pipeline.MarketSpec` (ticker, price grid, close time, maker fee rate): a
``price_level_structure`` change replaces it there and nowhere else. The order planner
needs the grid of every market for the diff's hysteresis and reads it through
:class:`GridView`, so it always sees the grid the quoter snapped to; nothing copies it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from fractions import Fraction

from kmm.book.grid import PriceGrid
from kmm.fees import maker_fee_rate, parse_multiplier
from kmm.kalshi.rest import MarketInfo, SeriesInfo
from kmm.pipeline import MarketSpec, MarketState
from kmm.types import Price

__all__ = ["GridView", "market_spec"]


def market_spec(market: MarketInfo, series: SeriesInfo) -> tuple[MarketSpec, Price | None]:
    """What the core needs of a market the venue lists, and its mid if it has a book.

    Raises:
        ValueError: if the market's price bands do not make a grid.
    """
    grid = PriceGrid.from_ranges(market.price_ranges)
    fee_rate = maker_fee_rate(series.fee_type, Fraction(parse_multiplier(series.fee_multiplier)))
    mid = None
    if market.yes_bid is not None and market.yes_ask is not None:
        mid = (market.yes_bid + market.yes_ask) // 2
    spec = MarketSpec(
        market.ticker, grid, market.close_ns, fee_rate, market.event_ticker, series.category
    )
    return spec, mid


class GridView(Mapping[str, PriceGrid]):
    """Each market's current price grid, read live from the pipeline's market states.

    Args:
        markets: The pipeline's markets (``Pipeline.markets``), by ticker.
    """

    __slots__ = ("_markets",)

    def __init__(self, markets: Mapping[str, MarketState]) -> None:
        self._markets = markets

    def __getitem__(self, ticker: str) -> PriceGrid:
        return self._markets[ticker].spec.grid

    def get(self, ticker: str, default: PriceGrid | None = None) -> PriceGrid | None:  # type: ignore[override]
        """The grid of ``ticker``, or ``default`` if the market is not tracked."""
        market = self._markets.get(ticker)
        return default if market is None else market.spec.grid

    def __iter__(self) -> Iterator[str]:
        return iter(self._markets)

    def __len__(self) -> int:
        return len(self._markets)
