"""Order groups: a rolling 15-second limit on matched contracts.

See ``getting_started/order_groups.md``.

A group counts the contracts its orders fill, maker or taker, over the last 15 seconds.
When that count exceeds the group's limit, or the owner triggers it, or the limit is lowered
below the count, the group is **triggered**: the engine cancels its resting orders and refuses
new orders in it until the owner resets it, which also clears the count.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Final

from kmm.types import Qty

if TYPE_CHECKING:
    from kmm.sim._book import OrderEntry

__all__ = ["WINDOW_NS", "Group"]

WINDOW_NS: Final = 15_000_000_000
"""The rolling window, in nanoseconds."""


class Group:
    """One order group's state.

    Attributes:
        group_id: The group's id.
        user_id: The owner.
        subaccount: The owner's subaccount whose orders the group holds.
        limit: The contracts limit (0.01-contract units).
        triggered: Whether the group is triggered.
        resting: The group's resting orders by order id, in the order they came to rest.
    """

    __slots__ = (
        "_window",
        "group_id",
        "limit",
        "resting",
        "subaccount",
        "triggered",
        "user_id",
        "volume",
    )

    def __init__(self, group_id: str, user_id: str, limit: Qty, subaccount: int = 0) -> None:
        self.group_id = group_id
        self.user_id = user_id
        self.subaccount = subaccount
        self.limit = limit
        self.triggered = False
        self.resting: dict[str, OrderEntry] = {}
        self.volume: Qty = 0
        self._window: deque[tuple[int, Qty]] = deque()

    def record(self, qty: Qty, now_ns: int) -> bool:
        """Counts a fill of ``qty``; returns whether the rolling volume now exceeds the limit."""
        self._window.append((now_ns, qty))
        self.volume += qty
        return self.rolling_volume(now_ns) > self.limit

    def rolling_volume(self, now_ns: int) -> Qty:
        """The contracts filled in the last 15 seconds."""
        window = self._window
        horizon = now_ns - WINDOW_NS
        while window and window[0][0] <= horizon:
            self.volume -= window.popleft()[1]
        return self.volume

    def reset(self) -> None:
        """Clears the triggered state and the rolling count."""
        self.triggered = False
        self._window.clear()
        self.volume = 0
