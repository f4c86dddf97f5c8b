"""The one owner of each market's facts, and the views the planner reads them through.

The pipeline's :class:`~kmm.pipeline.MarketState` holds each market's
:class:`~kmm.pipeline.MarketSpec` (ticker, price grid, close time, maker fee rate): a
``price_level_structure`` change replaces it there and nowhere else. The order planner
needs the grid of every market for the diff's hysteresis and reads it through
:class:`GridView`, so it always sees the grid the quoter snapped to; nothing copies it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from kmm.book.grid import PriceGrid
from kmm.pipeline import MarketState

__all__ = ["GridView"]


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
