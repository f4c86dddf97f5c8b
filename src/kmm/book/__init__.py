"""Pure market-data state: order books, sequence tracking and price grids."""

from __future__ import annotations

from kmm.book.grid import PriceGrid
from kmm.book.orderbook import OfiAccumulator, OrderBook
from kmm.book.sequence import SeqGap, SeqStatus, SequenceTracker

__all__ = [
    "OfiAccumulator",
    "OrderBook",
    "PriceGrid",
    "SeqGap",
    "SeqStatus",
    "SequenceTracker",
]
