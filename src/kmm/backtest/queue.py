"""Queue-position models: where our simulated resting order stands in its price level.

Theory of operation
-------------------
A replayed feed shows only aggregate level quantities, so the place of a simulated order in
its level's FIFO queue has to be estimated. A :class:`QueuePos` holds two integers in 0.01
contracts: ``ahead``, the quantity in front of us, and ``remaining``, our unfilled size. The
order joins at the back (:meth:`QueuePos.join`: ``ahead`` is the level's quantity at that
moment, without us).

Two kinds of level change move us forward, and the caller must tell them apart:

* a **trade at our price** (:meth:`QueueModel.on_trade`) consumes the queue from the front:
  it eats ``ahead`` first and then fills us;
* a **decrease of the level that no trade explains** (:meth:`QueueModel.on_level_decrease`)
  is a cancel somewhere in the queue. The conservative model (hftbacktest's risk-averse
  model) never moves us for it, except that ``ahead`` can never exceed what is left in the
  level; the probabilistic model credits us with a share of it.

On Kalshi a trade is reported twice: as a ``trade`` print and as an ``orderbook_delta``
that removes the traded quantity. The caller must pass to :meth:`on_level_decrease` only the
part of a decrease the trades at that level have not already explained (the replay exchange
keeps a per-level "traded, not yet seen in the book" counter), or we would advance twice.

A **trade through our price** (the book traded past our level) fills us in every model:
:func:`fill_through`.

Everything here is integer arithmetic (the probabilistic model's share too when its power is
a whole number; otherwise a float ratio), rounded down, so a model never advances us more
than it says.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from kmm.types import Qty

__all__ = [
    "ConservativeQueue",
    "ProbabilisticQueue",
    "QueueModel",
    "QueuePos",
    "fill_through",
]


@dataclass(slots=True)
class QueuePos:
    """One simulated order's place in its level.

    Attributes:
        ahead: Quantity in front of us (0.01 contracts), never negative.
        remaining: Our unfilled size (0.01 contracts).
    """

    ahead: Qty
    remaining: Qty

    @classmethod
    def join(cls, level_qty: Qty, size: Qty) -> QueuePos:
        """Joins the back of a level holding ``level_qty`` (not counting us) with ``size``."""
        return cls(max(level_qty, 0), size)


class QueueModel(Protocol):
    """Moves a :class:`QueuePos` on the events at its price level."""

    def on_trade(self, pos: QueuePos, traded: Qty) -> Qty:
        """A trade of ``traded`` at our price hit our side: returns the quantity we filled."""
        ...

    def on_level_decrease(self, pos: QueuePos, decrease: Qty, level_before: Qty) -> None:
        """The level fell by ``decrease`` that no trade explains (cancels).

        Args:
            pos: Our place, updated in place.
            decrease: The unexplained decrease (positive).
            level_before: The level's quantity (without us) just before this decrease.
        """
        ...


def _trade(pos: QueuePos, traded: Qty) -> Qty:
    """A trade consumes the queue from the front: first ``ahead``, then us."""
    if traded <= 0 or pos.remaining <= 0:
        return 0
    if traded <= pos.ahead:
        pos.ahead -= traded
        return 0
    filled = min(traded - pos.ahead, pos.remaining)
    pos.ahead = 0
    pos.remaining -= filled
    return filled


def fill_through(pos: QueuePos, traded: Qty) -> Qty:
    """A trade beyond our price (the level was swept): fills us up to ``traded``.

    Returns:
        The quantity we filled.
    """
    if traded <= 0 or pos.remaining <= 0:
        return 0
    filled = min(traded, pos.remaining)
    pos.ahead = 0
    pos.remaining -= filled
    return filled


class ConservativeQueue:
    """Only trades advance us (hftbacktest's ``RiskAdverseQueueModel``).

    A cancel never moves us forward, except that the quantity ahead of us can never exceed
    the level's quantity after the cancel.
    """

    __slots__ = ()

    def on_trade(self, pos: QueuePos, traded: Qty) -> Qty:
        """See :meth:`QueueModel.on_trade`."""
        return _trade(pos, traded)

    def on_level_decrease(self, pos: QueuePos, decrease: Qty, level_before: Qty) -> None:
        """See :meth:`QueueModel.on_level_decrease`."""
        pos.ahead = max(0, min(pos.ahead, level_before - max(decrease, 0)))

    def __repr__(self) -> str:
        return "ConservativeQueue()"


class ProbabilisticQueue:
    """Cancels advance us by the share a power function gives the front of the queue.

    In the manner of hftbacktest's ``ProbQueueModel`` with ``PowerProbQueueFunc``: with
    ``front`` = ``ahead`` and ``back`` = the level's quantity behind us (``level_before -
    ahead``; the replayed level does not contain our order), a cancel of ``d`` came from
    behind us with probability ``p = f(back) / (f(front) + f(back))``, ``f(x) = x**power``,
    so ``ahead`` falls by ``(1 - p) * d``, rounded down; whatever of the behind share
    exceeds ``back`` must have come from the front too. A larger ``power`` makes a cancel
    more likely to come from the longer side of the queue.

    Args:
        power: The exponent of ``f``; must be positive.

    Raises:
        ValueError: if ``power`` is not positive.
    """

    __slots__ = ("_power",)

    def __init__(self, power: float = 2.0) -> None:
        if not power > 0:
            raise ValueError(f"power must be positive, got {power!r}")
        self._power = power

    @property
    def power(self) -> float:
        """The exponent of the probability function."""
        return self._power

    def on_trade(self, pos: QueuePos, traded: Qty) -> Qty:
        """See :meth:`QueueModel.on_trade`."""
        return _trade(pos, traded)

    def on_level_decrease(self, pos: QueuePos, decrease: Qty, level_before: Qty) -> None:
        """See :meth:`QueueModel.on_level_decrease`."""
        level_after = max(0, level_before - max(decrease, 0))
        front = min(pos.ahead, max(level_before, 0))
        if decrease > 0 and front > 0:
            back = max(level_before - front, 0)
            advance = self._front_part(decrease, front, back)
            behind = decrease - advance
            if behind > back:  # more left than was behind us: the rest came from the front
                advance += behind - back
            front -= min(advance, front)
        pos.ahead = max(0, min(front, level_after))

    def _front_part(self, decrease: Qty, front: Qty, back: Qty) -> Qty:
        """``decrease * f(front) / (f(front) + f(back))`` rounded down.

        Exact in integers when ``power`` is a whole number; otherwise computed from the ratio
        ``back / front`` in floating point (which cannot overflow for large quantities).
        """
        if back <= 0:
            return decrease
        n = self._power
        if n == int(n) and n <= 8:
            whole = int(n)
            ff: int = front**whole
            fb: int = back**whole
            return decrease * ff // (ff + fb)
        try:
            ratio = (back / front) ** n
        except OverflowError:
            return 0
        return int(decrease / (1.0 + ratio))

    def __repr__(self) -> str:
        return f"ProbabilisticQueue(power={self._power!r})"
