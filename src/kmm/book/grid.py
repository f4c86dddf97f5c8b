"""A market's price grid: which prices Kalshi accepts, and snapping onto them.

Theory of operation
-------------------
A market's ``price_ranges`` is a list of bands ``{start, end, step}`` in dollars (KALSHI.md
§8.1). A price is valid when it lies in a band and is a whole number of that band's steps
from the band's start; $0 and $1 are never valid. Adjacent bands share their boundary
(0.10 ends the fine lower band and starts the coarse centre band of ``tapered_deci_cent``),
and the boundary is valid through either band.

:class:`PriceGrid` turns the bands into disjoint, increasing **runs** of valid prices: a run
is ``first, first + step, ...`` for ``length`` prices, with $0, $1 and a boundary already
counted by the band below left out. Every question is then a binary search over at most a
handful of runs plus integer arithmetic inside one run: validity, the nearest valid price
below or above (bids round down, asks round up), the step at a price, and the **rank** of a
price (how many valid prices lie at or below it), from which the number of grid steps
between two prices and a move by ``n`` steps follow without walking the grid.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from typing import NamedTuple

from kmm.types import ONE_CENT, ONE_DOLLAR, Price

__all__ = ["PriceGrid"]


class _Run(NamedTuple):
    """``length`` valid prices ``first, first + step, ...``; ``rank`` valid prices lie below."""

    first: Price
    step: Price
    length: int
    rank: int

    @property
    def last(self) -> Price:
        return self.first + (self.length - 1) * self.step


class PriceGrid:
    """The valid prices of one market, from its ``price_ranges``.

    Attributes:
        ranges: The bands ``(start, end, step)`` the grid was built from, in Price units.
        min_price: The smallest valid price (above $0).
        max_price: The largest valid price (below $1).
    """

    __slots__ = ("_band_starts", "_firsts", "_lasts", "_runs", "max_price", "min_price", "ranges")

    def __init__(self, ranges: Sequence[tuple[Price, Price, Price]]) -> None:
        """Builds a grid; prefer :meth:`from_ranges`, which is the same thing.

        Raises:
            ValueError: if a band is malformed, the bands overlap or are out of order, or
                no price in them is valid.
        """
        self.ranges: tuple[tuple[Price, Price, Price], ...] = tuple(
            (start, end, step) for start, end, step in ranges
        )
        _validate(self.ranges)
        self._runs = _runs_of(self.ranges)
        if not self._runs:
            raise ValueError(f"price ranges {self.ranges} hold no valid price in (0, $1)")
        self._band_starts = [start for start, _, _ in self.ranges]
        self._firsts = [run.first for run in self._runs]
        self._lasts = [run.last for run in self._runs]
        self.min_price: Price = self._firsts[0]
        self.max_price: Price = self._lasts[-1]

    @classmethod
    def from_ranges(
        cls, ranges: Sequence[tuple[Price, Price, Price]], *, whole: bool = False
    ) -> PriceGrid:
        """Builds a grid from ``(start, end, step)`` bands in Price units.

        Args:
            ranges: The market's ``price_ranges``, converted with ``parse_price``, sorted
                by price. Neighbouring bands may share a boundary but not overlap.
            whole: Also require the bands to tile ``[0, $1]``: the first starts at $0, each
                starts where the one before ends, the last ends at $1. Every structure
                Kalshi defines does; a band update from the stream that leaves a gap or
                stops short of either end is refused with this.

        Raises:
            ValueError: naming the band, if ``step <= 0``, ``start >= end``, a band leaves
                ``[0, $1]``, the bands overlap or are out of order, or nothing is valid;
                with ``whole``, also if the bands leave a gap or do not reach $0 and $1.
        """
        grid = cls(ranges)
        if whole:
            _check_whole(grid.ranges)
        return grid

    @classmethod
    def linear_cent(cls) -> PriceGrid:
        """The ordinary grid: every whole cent from 1¢ to 99¢."""
        return _LINEAR_CENT

    def __repr__(self) -> str:
        return f"PriceGrid({list(self.ranges)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PriceGrid):
            return NotImplemented
        return self.ranges == other.ranges

    def __hash__(self) -> int:
        return hash(self.ranges)

    def is_valid(self, price: Price) -> bool:
        """Whether the exchange accepts ``price`` in this market."""
        index = bisect_right(self._firsts, price) - 1
        if index < 0:
            return False
        first, step, count, _ = self._runs[index]
        offset, remainder = divmod(price - first, step)
        return remainder == 0 and offset < count

    def floor(self, price: Price) -> Price | None:
        """The largest valid price at or below ``price`` (how a bid is rounded).

        Returns:
            That price, or ``None`` if ``price`` is below :attr:`min_price`.
        """
        index = bisect_right(self._firsts, price) - 1
        if index < 0:
            return None
        first, step, count, _ = self._runs[index]
        return first + min((price - first) // step, count - 1) * step

    def ceil(self, price: Price) -> Price | None:
        """The smallest valid price at or above ``price`` (how an ask is rounded).

        Returns:
            That price, or ``None`` if ``price`` is above :attr:`max_price`.
        """
        index = bisect_left(self._lasts, price)
        if index == len(self._runs):
            return None
        first, step, _, _ = self._runs[index]
        if price <= first:
            return first
        return first - (first - price) // step * step

    def tick_at(self, price: Price) -> Price:
        """The step of the band containing ``price``.

        On a boundary shared by two bands this is the upper band's step (the distance to
        the next valid price above); use :meth:`offset` to move by whole grid steps in
        either direction.

        Raises:
            ValueError: if ``price`` lies in no band.
        """
        index = bisect_right(self._band_starts, price) - 1
        if index >= 0:
            _, end, step = self.ranges[index]
            if price <= end:
                return step
        raise ValueError(f"price {price} lies in no band of {list(self.ranges)}")

    def rank(self, price: Price) -> int:
        """How many valid prices lie at or below ``price`` (so ``rank(min_price)`` is 1)."""
        index = bisect_right(self._firsts, price) - 1
        if index < 0:
            return 0
        first, step, count, rank = self._runs[index]
        return rank + min((price - first) // step, count - 1) + 1

    def ticks_between(self, a: Price, b: Price) -> int:
        """The number of grid steps from ``a`` up to ``b`` (negative when ``b < a``).

        For valid prices this is the difference of their positions on the grid; in general
        it is the count of valid prices in ``(a, b]``, negated when ``b < a``.
        """
        return self.rank(b) - self.rank(a)

    def offset(self, price: Price, ticks: int) -> Price | None:
        """The valid price ``ticks`` grid steps above ``price`` (below, if negative).

        An off-grid ``price`` is first snapped onto the grid against the direction of
        travel (down for a move up or for ``ticks == 0``, up for a move down), so
        ``offset(p, 1)`` is the next valid price above ``p`` and ``offset(p, -1)`` the next
        one below, whether or not ``p`` is valid.

        Returns:
            That price, or ``None`` if it would fall off either end of the grid.
        """
        target = self.rank(price) + ticks
        if ticks < 0 and not self.is_valid(price):
            target += 1
        return self._price_at_rank(target)

    def _price_at_rank(self, rank: int) -> Price | None:
        """The ``rank``-th valid price counting from 1, or ``None`` outside the grid."""
        if rank < 1:
            return None
        for first, step, count, below in self._runs:
            if rank <= below + count:
                return first + (rank - below - 1) * step
        return None


def _validate(ranges: tuple[tuple[Price, Price, Price], ...]) -> None:
    """Refuses malformed, overlapping or unsorted bands, naming the band."""
    if not ranges:
        raise ValueError("price ranges are empty")
    previous_end = 0
    for index, (start, end, step) in enumerate(ranges):
        band = f"band {index} (start={start}, end={end}, step={step})"
        if step <= 0:
            raise ValueError(f"{band}: step must be positive")
        if start >= end:
            raise ValueError(f"{band}: start must be below end")
        if start < 0 or end > ONE_DOLLAR:
            raise ValueError(f"{band}: must lie within [0, {ONE_DOLLAR}]")
        if start < previous_end:
            raise ValueError(f"{band}: overlaps or precedes the band before it")
        previous_end = end


def _check_whole(ranges: tuple[tuple[Price, Price, Price], ...]) -> None:
    """Refuses validated bands that do not tile ``[0, $1]``, naming the band."""
    previous_end = 0
    for index, (start, end, step) in enumerate(ranges):
        if start != previous_end:
            band = f"band {index} (start={start}, end={end}, step={step})"
            where = "does not start at 0" if index == 0 else f"leaves a gap after {previous_end}"
            raise ValueError(f"{band}: {where}")
        previous_end = end
    if previous_end != ONE_DOLLAR:
        raise ValueError(f"price ranges end at {previous_end}, short of {ONE_DOLLAR}")


def _runs_of(ranges: tuple[tuple[Price, Price, Price], ...]) -> list[_Run]:
    """The disjoint increasing runs of valid prices in validated bands."""
    runs: list[_Run] = []
    rank = 0
    last = 0
    for start, end, step in ranges:
        first = start if start > last else last + step
        first = start + -(-(first - start) // step) * step
        top = min(end, ONE_DOLLAR - 1)
        if first <= top:
            count = (top - first) // step + 1
            runs.append(_Run(first, step, count, rank))
            rank += count
            last = first + (count - 1) * step
    return runs


_LINEAR_CENT = PriceGrid([(0, ONE_DOLLAR, ONE_CENT)])
