"""Holding a refused price off: a definitive refusal is never re-sent in a loop.

Theory of operation
-------------------
When the venue definitively refuses a create or an amend (post-only cross, the order already
executed, not found, a market that will not take orders), the diff would ask for the very same
order again on its next pass, a millisecond later, and the bot would hammer the venue with a
request it knows will fail. :class:`RefusalCooldown` remembers, per market and side, the price
that was refused and until when it must not be asked for again. The hold starts at
``base_ns`` and doubles on each further refusal of the same price, up to ``max_ns``; an accepted
order on that side, or a different price, clears it. With ``base_ns`` of 0.6 s, one price on one
side is sent at most twice in any second however often it is refused.

Pure: no I/O, no clock (times are passed in).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from kmm.types import BookSide, Price

__all__ = ["REFUSAL_HOLD_BASE_NS", "REFUSAL_HOLD_MAX_NS", "RefusalCooldown"]

REFUSAL_HOLD_BASE_NS: Final = 600_000_000
"""The first hold after a refusal: more than half a second, so at most two sends a second."""
REFUSAL_HOLD_MAX_NS: Final = 8_000_000_000
"""The longest hold, reached after repeated refusals of the same price."""


@dataclass(slots=True)
class _Hold:
    price: Price
    until_ns: int
    refusals: int


class RefusalCooldown:
    """Per market and side: the refused price and how long it stays off.

    Args:
        base_ns: The hold after the first refusal of a price.
        max_ns: The cap of the doubling hold.

    Raises:
        ValueError: if ``base_ns`` is not positive or ``max_ns`` is below it.
    """

    __slots__ = ("_holds", "base_ns", "max_ns")

    def __init__(
        self, base_ns: int = REFUSAL_HOLD_BASE_NS, max_ns: int = REFUSAL_HOLD_MAX_NS
    ) -> None:
        if base_ns <= 0 or max_ns < base_ns:
            raise ValueError(f"need 0 < base_ns <= max_ns, got {base_ns} and {max_ns}")
        self.base_ns = base_ns
        self.max_ns = max_ns
        self._holds: dict[tuple[str, BookSide], _Hold] = {}

    def refused(self, ticker: str, side: BookSide, price: Price, now_ns: int) -> int:
        """Records a definitive refusal of ``price``; returns when it may be sent again."""
        key = (ticker, side)
        hold = self._holds.get(key)
        refusals = hold.refusals + 1 if hold is not None and hold.price == price else 1
        delay = min(self.max_ns, self.base_ns << min(refusals - 1, 32))
        self._holds[key] = _Hold(price, now_ns + delay, refusals)
        return now_ns + delay

    def accepted(self, ticker: str, side: BookSide) -> None:
        """The venue took an order on this side: forget its refusals."""
        self._holds.pop((ticker, side), None)

    def holds(self, ticker: str, side: BookSide, price: Price, now_ns: int) -> bool:
        """Whether sending ``price`` on this side now would repeat a refusal too soon."""
        hold = self._holds.get((ticker, side))
        return hold is not None and hold.price == price and now_ns < hold.until_ns

    def next_expiry_ns(self, now_ns: int) -> int | None:
        """The earliest time a hold still in force ends (to wake up and re-plan), or None."""
        ends = [h.until_ns for h in self._holds.values() if h.until_ns > now_ns]
        return min(ends) if ends else None

    def __len__(self) -> int:
        return len(self._holds)
