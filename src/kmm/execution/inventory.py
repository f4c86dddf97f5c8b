"""Positions and P&L per market, netted YES against NO as Kalshi does, exact in integers.

Theory of operation
-------------------
A position is a signed count of YES contracts (``Qty``): positive holds YES, negative holds
NO. Kalshi nets the two legs of one market (KALSHI.md §10), so every fill is a trade on the
YES leg: a ``bid`` fill at YES price P buys YES, an ``ask`` fill at P sells YES, which is
buying NO at ``1 - P``. A fill first closes contracts on the opposite side, oldest first, and
opens a lot with whatever is left.

Open lots are kept FIFO as ``[yes_price, qty]``. Closing ``q`` of a long lot bought at E by
selling at P realizes ``(P - E) * q``; closing a short (NO) lot entered at YES price E by
buying YES at P realizes ``(E - P) * q``. Price × count is already in money units
($0.000001), so realized P&L is exact. Fees are subtracted from realized P&L as they are paid.

Unrealized P&L at a mark M is ``M * position - open_cost`` for a long and
``open_cost + M * position`` for a short, where ``open_cost`` is the sum of ``E * q`` over the
open lots; it is kept up to date so that marking is O(1). The invariant, checked by the tests,
is the cash-flow identity::

    realized + unrealized(M) == -Σ bought P·q + Σ sold P·q - Σ fees + position · M

Settlement closes every lot at 1 (YES won), 0 (NO won) or the scalar settlement value.

Every fill is counted once by ``trade_id``: the same trade arrives from the ``fill`` stream,
from ``GET /portfolio/fills`` after a reconnect, and sometimes twice from either.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from typing import Literal

from kmm.types import ONE_DOLLAR, BookSide, Fill, Money, Outcome, Price, Qty

__all__ = ["Portfolio", "Position", "SeenIds", "settlement_mark"]


class SeenIds:
    """A bounded set of ids that remembers the most recent ``capacity`` ones.

    Args:
        capacity: How many ids to remember; the oldest are forgotten first.

    Raises:
        ValueError: if ``capacity`` is not positive.
    """

    __slots__ = ("_order", "_set", "capacity")

    def __init__(self, capacity: int = 100_000) -> None:
        if capacity <= 0:
            raise ValueError(f"a seen-id set needs a positive capacity, got {capacity}")
        self.capacity = capacity
        self._set: set[str] = set()
        self._order: deque[str] = deque()

    def add(self, key: str) -> bool:
        """Remembers ``key``.

        Returns:
            True if it is new, False if it was already remembered.
        """
        seen = self._set
        if key in seen:
            return False
        seen.add(key)
        order = self._order
        order.append(key)
        if len(order) > self.capacity:
            seen.discard(order.popleft())
        return True

    def __contains__(self, key: object) -> bool:
        return key in self._set

    def __len__(self) -> int:
        return len(self._set)


def settlement_mark(result: Outcome | Literal["yes", "no", "scalar"], value: Price | None) -> Price:
    """The YES value a market settles at: 1 for ``yes``, 0 for ``no``, ``value`` for scalar.

    Raises:
        ValueError: if a scalar result has no value in ``[0, ONE_DOLLAR]``, or the result is
            not one of the three.
    """
    if result == "yes":
        return ONE_DOLLAR
    if result == "no":
        return 0
    if result == "scalar" and value is not None and 0 <= value <= ONE_DOLLAR:
        return value
    raise ValueError(f"cannot settle on result {result!r} with value {value!r}")


class Position:
    """The netted position in one market, with exact FIFO lots and P&L.

    Attributes:
        ticker: The market.
        qty: Signed YES contracts (0.01 units): positive YES, negative NO.
        realized: Realized P&L net of fees (money units, $0.000001).
        fees_paid: Fees paid so far (money units).
        bought: YES contracts bought (bid fills), for reporting.
        sold: YES contracts sold (ask fills), for reporting.
    """

    __slots__ = ("_lots", "_open_cost", "bought", "fees_paid", "qty", "realized", "sold", "ticker")

    def __init__(self, ticker: str) -> None:
        self.ticker = ticker
        self.qty: Qty = 0
        self.realized: Money = 0
        self.fees_paid: Money = 0
        self.bought: Qty = 0
        self.sold: Qty = 0
        self._lots: deque[list[int]] = deque()
        self._open_cost: Money = 0

    @property
    def open_cost(self) -> Money:
        """Σ entry YES price × count over the open lots (money units)."""
        return self._open_cost

    def lots(self) -> Iterator[tuple[Price, Qty]]:
        """The open lots, oldest first, as ``(yes_entry_price, qty)``; their side is the
        sign of :attr:`qty`.
        """
        return ((price, qty) for price, qty in self._lots)

    def apply(self, side: BookSide, price: Price, qty: Qty, fee: Money = 0) -> Money:
        """Books one fill of ``qty`` at YES price ``price``.

        Returns:
            The realized P&L of this fill, net of ``fee`` (money units).

        Raises:
            ValueError: if ``qty`` is not positive, ``price`` is outside ``[0, ONE_DOLLAR]``
                or ``fee`` is negative.
        """
        if qty <= 0 or not 0 <= price <= ONE_DOLLAR or fee < 0:
            raise ValueError(
                f"{self.ticker}: cannot book a fill of qty={qty} at price={price} fee={fee}"
            )
        if side is BookSide.BID:
            sign = 1
            self.bought += qty
        else:
            sign = -1
            self.sold += qty
        realized = 0
        if self.qty * sign < 0:
            qty, realized = self._close(price, qty, sign)
        if qty:
            self._lots.append([price, qty])
            self._open_cost += price * qty
            self.qty += sign * qty
        realized -= fee
        self.realized += realized
        self.fees_paid += fee
        return realized

    def _close(self, price: Price, qty: Qty, sign: int) -> tuple[Qty, Money]:
        """Closes up to ``qty`` of the opposite lots at ``price``; returns what is left of
        ``qty`` and the P&L realized.
        """
        lots = self._lots
        gain = 0
        closed = 0
        while qty and lots:
            lot = lots[0]
            take = qty if qty < lot[1] else lot[1]
            gain += (price - lot[0]) * take
            self._open_cost -= lot[0] * take
            closed += take
            qty -= take
            lot[1] -= take
            if not lot[1]:
                lots.popleft()
        self.qty += sign * closed
        # Selling against longs gains (P - E); buying against shorts gains (E - P)
        return qty, -sign * gain

    def unrealized(self, mark: Price) -> Money:
        """P&L of the open lots marked at YES price ``mark`` (money units)."""
        if self.qty >= 0:
            return mark * self.qty - self._open_cost
        return self._open_cost + mark * self.qty

    def settle(
        self,
        result: Outcome | Literal["yes", "no", "scalar"],
        value: Price | None = None,
        fee: Money = 0,
    ) -> Money:
        """Closes every lot at the settlement value and realizes it.

        Args:
            result: ``yes``, ``no`` or ``scalar``.
            value: The YES settlement value, for a scalar result.
            fee: Any settlement fee (money units).

        Returns:
            The P&L realized by settlement, net of ``fee``.
        """
        pnl = self.unrealized(settlement_mark(result, value)) - fee
        self._lots.clear()
        self._open_cost = 0
        self.qty = 0
        self.realized += pnl
        self.fees_paid += fee
        return pnl

    def __repr__(self) -> str:
        return (
            f"Position({self.ticker!r}, qty={self.qty}, realized={self.realized}, "
            f"open_cost={self._open_cost})"
        )


class Portfolio:
    """Positions keyed by ticker, fed by fills, each fill counted once by ``trade_id``.

    Args:
        seen_trades: How many trade ids to remember for de-duplication.
    """

    __slots__ = ("_positions", "_seen")

    def __init__(self, seen_trades: int = 100_000) -> None:
        self._positions: dict[str, Position] = {}
        self._seen = SeenIds(seen_trades)

    def position(self, ticker: str) -> Position:
        """The position in ``ticker`` (flat if nothing has traded)."""
        pos = self._positions.get(ticker)
        if pos is None:
            pos = self._positions[ticker] = Position(ticker)
        return pos

    def positions(self) -> Mapping[str, Position]:
        """Every market that has traded, by ticker."""
        return self._positions

    def open_cost(self, ticker: str) -> Money:
        """Σ YES entry price × size over the open lots of ``ticker`` (0 if none)."""
        position = self._positions.get(ticker)
        return 0 if position is None else position.open_cost

    def net_qty(self, ticker: str) -> Qty:
        """Signed YES contracts held in ``ticker``."""
        pos = self._positions.get(ticker)
        return 0 if pos is None else pos.qty

    def on_fill(self, fill: Fill) -> bool:
        """Books a fill unless its ``trade_id`` was booked before.

        Returns:
            True if booked, False if it was a duplicate (and nothing changed).
        """
        if not self._seen.add(fill.trade_id):
            return False
        pos = self._positions.get(fill.ticker)
        if pos is None:
            pos = self._positions[fill.ticker] = Position(fill.ticker)
        pos.apply(fill.side, fill.price, fill.qty, fill.fee)
        return True

    def settle(
        self,
        ticker: str,
        result: Outcome | Literal["yes", "no", "scalar"],
        value: Price | None = None,
        fee: Money = 0,
    ) -> Money:
        """Settles one market; returns the P&L realized by settlement."""
        return self.position(ticker).settle(result, value, fee)

    def realized(self) -> Money:
        """Realized P&L net of fees over every market (money units)."""
        return sum(pos.realized for pos in self._positions.values())

    def fees_paid(self) -> Money:
        """Fees paid over every market (money units)."""
        return sum(pos.fees_paid for pos in self._positions.values())

    def unrealized(self, marks: Mapping[str, Price]) -> Money:
        """Unrealized P&L of every open position at the given YES marks.

        Raises:
            ValueError: if an open position has no mark, naming the market.
        """
        total = 0
        for ticker, pos in self._positions.items():
            if pos.qty:
                mark = marks.get(ticker)
                if mark is None:
                    raise ValueError(f"{ticker}: open position of {pos.qty} has no mark")
                total += pos.unrealized(mark)
        return total

    def total_pnl(self, marks: Mapping[str, Price]) -> Money:
        """Realized plus unrealized P&L (money units)."""
        return self.realized() + self.unrealized(marks)
