"""The matching engine's order book: price levels of FIFO queues on two bid sides.

Theory of operation
-------------------
A Kalshi book holds only bids. Side 0 holds YES bids keyed by YES price, side 1 holds NO
bids keyed by NO price; an order's **own price** is the price of the leg it buys (``p`` for a
YES bid, ``$1 - p`` for a NO bid). An incoming order on one side with own price ``c`` crosses
every level of the other side whose own price is at least ``$1 - c``, best (highest) first.

Each side is a ``dict`` from price to :class:`Level` plus a sorted ``list`` of the prices that
have a level, so the best price is ``prices[-1]`` and a level is added or removed with a
bisect in C. A level is a ``deque`` of :class:`OrderEntry` in arrival order and the total
remaining quantity of its live entries.

Removal is lazy: cancelling an order marks its entry dead and takes its quantity off the
level's total; the matcher drops dead entries when it meets them at the front of the queue.
A level whose total reaches zero is deleted at once (dead entries and all), and a level that
accumulates many dead entries is compacted, so memory stays proportional to live orders.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING

from kmm.errors import BookIntegrityError
from kmm.types import ONE_DOLLAR, Money, Price, Qty

if TYPE_CHECKING:
    from kmm.sim._accounts import Account, MarketAccount
    from kmm.sim._groups import Group
    from kmm.sim.engine import SimOrder

__all__ = ["Book", "Level", "OrderEntry"]

_COMPACT_MIN_DEAD = 32


class OrderEntry:
    """One order's engine-side state: its record plus what matching needs at hand.

    Attributes:
        order: The public order record (mutated in place).
        side: 0 for a YES bid (``bid``), 1 for a NO bid (``ask``).
        own_price: The price of the leg the order buys.
        fee_lot: The fee reserved per 0.01 contract still to fill (money units).
        account: The owner's account.
        macct: The owner's account in this order's market.
        group: The order group, or ``None``.
        live: Whether the entry rests in the book.
        fee_acc: The order's rounding-fee accumulator (money units).
    """

    __slots__ = (
        "account",
        "fee_acc",
        "fee_lot",
        "group",
        "live",
        "macct",
        "order",
        "own_price",
        "side",
    )

    def __init__(
        self,
        order: SimOrder,
        side: int,
        own_price: Price,
        fee_lot: Money,
        account: Account,
        macct: MarketAccount,
        group: Group | None,
    ) -> None:
        self.order = order
        self.side = side
        self.own_price = own_price
        self.fee_lot = fee_lot
        self.account = account
        self.macct = macct
        self.group = group
        self.live = False
        self.fee_acc: Money = 0


class Level:
    """The FIFO queue at one price and the total remaining quantity of its live entries."""

    __slots__ = ("dead", "queue", "total")

    def __init__(self) -> None:
        self.queue: deque[OrderEntry] = deque()
        self.total: Qty = 0
        self.dead = 0

    def live_entries(self) -> Iterator[OrderEntry]:
        """The live entries in time priority."""
        return (entry for entry in self.queue if entry.live)


class Book:
    """The two bid sides of one market."""

    __slots__ = ("levels", "prices", "ticker")

    def __init__(self, ticker: str) -> None:
        self.ticker = ticker
        self.levels: tuple[dict[Price, Level], dict[Price, Level]] = ({}, {})
        self.prices: tuple[list[Price], list[Price]] = ([], [])

    def add(self, entry: OrderEntry) -> None:
        """Queues ``entry`` at the back of its level, creating the level if needed."""
        levels = self.levels[entry.side]
        price = entry.own_price
        level = levels.get(price)
        if level is None:
            level = levels[price] = Level()
            insort(self.prices[entry.side], price)
        level.queue.append(entry)
        level.total += entry.order.remaining
        entry.live = True

    def reduce(self, side: int, price: Price, level: Level, qty: Qty) -> None:
        """Takes ``qty`` off a level, deleting the level when nothing is left.

        Raises:
            BookIntegrityError: if the level would go negative.
        """
        total = level.total - qty
        if total > 0:
            level.total = total
            return
        if total < 0:
            raise BookIntegrityError(self.ticker, f"level {side}@{price} would go to {total}")
        level.total = 0
        del self.levels[side][price]
        prices = self.prices[side]
        if prices[-1] == price:
            prices.pop()
        else:
            del prices[bisect_left(prices, price)]

    def kill(self, entry: OrderEntry) -> None:
        """Takes a resting entry out of the book (lazily: it stays queued, marked dead)."""
        side = entry.side
        level = self.levels[side][entry.own_price]
        entry.live = False
        level.dead += 1
        self.reduce(side, entry.own_price, level, entry.order.remaining)
        if level.total and level.dead >= _COMPACT_MIN_DEAD and 2 * level.dead > len(level.queue):
            level.queue = deque(level.live_entries())
            level.dead = 0

    def level_of(self, entry: OrderEntry) -> Level:
        """The level a live entry rests in."""
        return self.levels[entry.side][entry.own_price]

    def crosses(self, side: int, own_price: Price) -> bool:
        """Whether an order on ``side`` at ``own_price`` would trade on arrival."""
        prices = self.prices[1 - side]
        return bool(prices) and prices[-1] >= ONE_DOLLAR - own_price

    def best(self, side: int) -> Price | None:
        """The best own price on ``side``, or ``None`` if it is empty."""
        prices = self.prices[side]
        return prices[-1] if prices else None

    def sizes(self, side: int) -> dict[Price, Qty]:
        """The aggregate size at each price of ``side``."""
        return {price: level.total for price, level in self.levels[side].items()}

    def entries(self) -> Iterator[OrderEntry]:
        """Every live entry: side 0 then side 1, best price first, then time priority."""
        for side in (0, 1):
            levels = self.levels[side]
            for price in reversed(self.prices[side]):
                yield from levels[price].live_entries()
