"""Taker flow as a skew: who is crossing the spread says where the price is going.

Theory of operation
-------------------
Informed traders take liquidity toward the value they know, so a run of takers buying says the
price is about to rise (and a run of sellers that it will fall). A market maker that keeps its
quotes centred on the book's mid is the one they trade against: in the local exchange's
``jump`` scenario the quoter's 10-s markout was −$0.12 a contract while takers swept one way.

:class:`TakerFlow` keeps an exponentially decaying sum of the signed size of every public trade
(+ when the taker bought YES, − when it sold), with half-life ``halflife_s``: the net taker flow
of the last few seconds, in contracts. :meth:`TakerFlow.skew` turns it into a skew of the
reservation price, ``per_contract`` per contract of net flow, capped at ``cap`` either way, so
the quotes lean toward where takers push: the side they hit is moved away, the side they will
need is moved up to meet them. Our own fills are trades too, and count the same.

Pure: no I/O, time is passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["TakerFlow"]

_LN2 = math.log(2.0)


@dataclass(slots=True)
class TakerFlow:
    """The decaying net taker flow of one market and the skew it gives.

    Attributes:
        halflife_s: How fast the flow is forgotten, in seconds.
        per_contract: Skew per contract of net flow, in $0.0001.
        cap: The largest skew either way, in $0.0001.
    """

    halflife_s: float
    per_contract: float
    cap: float
    _flow: float = 0.0
    _at_ns: int = 0

    def _decayed(self, now_ns: int) -> float:
        if not self._flow or now_ns <= self._at_ns:
            return self._flow
        return self._flow * math.exp(-_LN2 * (now_ns - self._at_ns) / (self.halflife_s * 1e9))

    def on_trade(self, taker_bought: bool, contracts: float, now_ns: int) -> None:
        """A public trade of ``contracts`` at ``now_ns``; ``taker_bought``: the taker bought YES."""
        self._flow = self._decayed(now_ns) + (contracts if taker_bought else -contracts)
        self._at_ns = max(now_ns, self._at_ns)

    def flow(self, now_ns: int) -> float:
        """The net taker flow at ``now_ns``, in contracts (+ buying YES)."""
        return self._decayed(now_ns)

    def skew(self, now_ns: int) -> float:
        """The skew of the reservation price at ``now_ns``, in $0.0001 (+ up)."""
        raw = self.per_contract * self._decayed(now_ns)
        return max(-self.cap, min(self.cap, raw))
