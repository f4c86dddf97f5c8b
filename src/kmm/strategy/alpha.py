"""The alpha slot: an external view on where the price is going, as a skew of the quotes.

An :data:`AlphaFn` is called with the market's ticker and the current time and returns a skew
in :data:`~kmm.types.Price` units ($0.0001) that is added to the reservation price: positive
moves both quotes up (expecting YES to rise), negative moves them down. It must be cheap and
pure from the quoter's point of view (no I/O on the hot path); a model that needs data should
compute asynchronously elsewhere and have its function read the latest value.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["AlphaFn", "zero_alpha"]

AlphaFn = Callable[[str, int], float]
"""``(ticker, now_ns) -> skew`` in Price units ($0.0001), added to the reservation price."""


def zero_alpha(ticker: str, now_ns: int) -> float:
    """The default alpha: no view, so no skew.

    Args:
        ticker: The market (unused).
        now_ns: The current time in nanoseconds (unused).

    Returns:
        ``0.0``.
    """
    return 0.0
