"""Adverse selection detected live, per market: widen while our fills are being picked off.

Theory of operation
-------------------
A fill is *bad* when the fair price ``horizon_ns`` later sits on the wrong side of the fill's
price for us (we bought and it is below, or sold and it is above): the taker knew better. Each
fill is checked once, at its horizon (the first decision after it). A :class:`ToxicityGuard`
turns the checks into a state with hysteresis:

* **normal → toxic** after ``trigger`` bad checks in a row;
* **toxic → normal** after ``recover`` good checks in a row, or ``calm_ns`` without a bad one
  (a wider quote fills less, so the good checks may be slow to come).

While toxic, the quote's half-spread grows by ``widen`` ($0.0001 units) a side, so the takers
who know better pay more for it. The share of bad checks among the last ones is kept for the
record. Pure: no I/O, time is passed in.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from kmm.strategy.hysteresis import Hysteresis
from kmm.types import Price

__all__ = ["ToxicityGuard", "ToxicityParams"]


@dataclass(frozen=True, slots=True)
class ToxicityParams:
    """When a market's flow counts as toxic, and what that does to the quote.

    Attributes:
        horizon_ns: How long after a fill its markout is checked.
        trigger: Bad checks in a row that make the market toxic (0 disables the guard).
        recover: Good checks in a row that make it normal again.
        calm_ns: A toxic market is normal again after this long without a bad check.
        widen: Extra half-spread while toxic, in $0.0001.
    """

    horizon_ns: int = 5_000_000_000
    trigger: int = 2
    recover: int = 3
    calm_ns: int = 60_000_000_000
    widen: Price = 200


@dataclass(slots=True)
class ToxicityGuard:
    """One market's markout checks and toxic state (see the module docstring)."""

    params: ToxicityParams
    last_bad_ns: int = 0
    recent: deque[bool] = field(default_factory=lambda: deque(maxlen=20))
    state: Hysteresis = field(init=False)
    _pending: deque[tuple[int, int, Price]] = field(default_factory=deque)

    def __post_init__(self) -> None:
        params = self.params
        self.state = Hysteresis(max(params.trigger, 1), max(params.recover, 1))

    @property
    def toxic(self) -> bool:
        """Whether the market's flow counts as toxic now."""
        return self.state.on

    def on_fill(self, is_bid: bool, price: Price, now_ns: int) -> None:
        """One of our orders filled at ``price`` (``is_bid``: we bought)."""
        if self.params.trigger:
            self._pending.append((now_ns + self.params.horizon_ns, 1 if is_bid else -1, price))

    def on_fair(self, fair: float, now_ns: int) -> None:
        """The fair price now: every fill whose horizon has come is checked against it."""
        pending = self._pending
        while pending and pending[0][0] <= now_ns:
            _, sign, price = pending.popleft()
            self._check(sign * (fair - price) < 0, now_ns)
        if self.toxic and now_ns - self.last_bad_ns >= self.params.calm_ns:
            self.state.reset()

    def _check(self, bad: bool, now_ns: int) -> None:
        self.recent.append(bad)
        if bad:
            self.last_bad_ns = now_ns
        self.state.check(bad)

    @property
    def widen(self) -> Price:
        """The extra half-spread now, in $0.0001 (0 when not toxic)."""
        return self.params.widen if self.toxic else 0

    @property
    def bad_share(self) -> float | None:
        """The share of bad checks among the last ones (None before the first)."""
        return sum(self.recent) / len(self.recent) if self.recent else None
