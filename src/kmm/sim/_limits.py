"""The local exchange's rate limiter, written from Kalshi's rate-limit documentation.

Theory of operation
-------------------
Kalshi meters every authenticated request against two independent token buckets per account,
Read and Write (docs: *Rate Limits and Tiers*). This module is the venue's side of that rule
and deliberately shares nothing with the bot's client-side model
(``kmm.execution.token_bucket``): the tiers, the capacities and the arithmetic below are taken
from the documentation, so the local exchange can refute the bot rather than echo it.

The documented rules, as implemented:

* A bucket "refills continuously at your per-second budget, up to its capacity"; there are no
  windows and no per-second resets. The level is kept in fixed point, :data:`UNITS_PER_TOKEN`
  units per token, and time in nanoseconds: ``dt`` nanoseconds at ``rate`` tokens per second
  add exactly ``rate * dt`` units, so no fraction of a token is ever rounded away and no
  ``float`` is involved.
* A bucket is full when the account is first seen (an idle account has banked its capacity).
* "A request is allowed whenever the bucket holds enough tokens to cover its cost", measured
  when the request *arrives*; a batch is billed per item and "the whole batch must fit in the
  bucket at once" or the entire batch is rejected. A refused request costs nothing ("no
  penalty or cooldown").
* Capacity: Basic and Advanced Read buckets and every Write bucket above Basic hold two
  seconds of budget; the other Read buckets and the Basic Write bucket hold one second.
* Most requests cost :data:`DEFAULT_COST` tokens; the routes that cost otherwise carry their
  cost in the REST route table (``kmm.sim.rest.ENDPOINTS``), as ``GET /account/endpoint_costs``
  reports them.

Every refusal is counted in :class:`LimiterStats`, per bucket, so a run can report how many
429s the venue sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

__all__ = [
    "DEFAULT_COST",
    "TIER_LIMITS",
    "UNITS_PER_TOKEN",
    "BucketKind",
    "BucketLimits",
    "LimiterStats",
    "RateLimiter",
    "TierLimits",
    "VenueBucket",
]

BucketKind = Literal["read", "write"]

UNITS_PER_TOKEN: Final = 1_000_000_000
"""Fixed-point units per token: at ``r`` tokens per second, one nanosecond adds ``r`` units."""

DEFAULT_COST: Final = 10
"""The cost of a request whose route is not listed with another cost."""

_BUDGETS: Final[dict[str, tuple[int, int]]] = {
    "basic": (200, 100),
    "advanced": (300, 300),
    "expert": (600, 600),
    "premier": (1_000, 1_000),
    "paragon": (2_000, 2_000),
    "prime": (4_000, 4_000),
    "prestige": (10_000, 8_000),
}
"""Per-second (Read, Write) budgets of each tier, from the documentation's tier table."""

_TWO_SECOND_READ: Final = frozenset({"basic", "advanced"})
_ONE_SECOND_WRITE: Final = frozenset({"basic"})


@dataclass(frozen=True, slots=True)
class BucketLimits:
    """One bucket's parameters, as ``GET /account/limits`` reports them.

    Attributes:
        refill_rate: Tokens added per second.
        bucket_capacity: The most tokens the bucket holds.
    """

    refill_rate: int
    bucket_capacity: int


@dataclass(frozen=True, slots=True)
class TierLimits:
    """The Read and Write buckets of one usage tier."""

    read: BucketLimits
    write: BucketLimits

    def of(self, kind: BucketKind) -> BucketLimits:
        """The limits of the ``kind`` bucket."""
        return self.read if kind == "read" else self.write


def _tier(name: str) -> TierLimits:
    read, write = _BUDGETS[name]
    read_seconds = 2 if name in _TWO_SECOND_READ else 1
    write_seconds = 1 if name in _ONE_SECOND_WRITE else 2
    return TierLimits(
        BucketLimits(read, read * read_seconds), BucketLimits(write, write * write_seconds)
    )


TIER_LIMITS: Final[dict[str, TierLimits]] = {name: _tier(name) for name in _BUDGETS}
"""Every usage tier's buckets, keyed by the lower-case tier name."""


class VenueBucket:
    """One account's Read or Write bucket at the venue; starts full.

    Args:
        limits: Refill rate and capacity.
        created_ns: When the bucket came into being (it is full then).
    """

    __slots__ = ("_at_ns", "_capacity_units", "_level_units", "_rate", "limits")

    def __init__(self, limits: BucketLimits, created_ns: int) -> None:
        self.limits = limits
        self._rate = limits.refill_rate
        self._capacity_units = limits.bucket_capacity * UNITS_PER_TOKEN
        self._level_units = self._capacity_units
        self._at_ns = created_ns

    def _level_at(self, arrival_ns: int) -> int:
        """The level at ``arrival_ns``; a clock that steps back refills nothing."""
        elapsed = arrival_ns - self._at_ns
        if elapsed <= 0:
            return self._level_units
        return min(self._capacity_units, self._level_units + elapsed * self._rate)

    def _advance(self, arrival_ns: int) -> int:
        level = self._level_at(arrival_ns)
        self._level_units = level
        self._at_ns = max(self._at_ns, arrival_ns)
        return level

    def allow(self, cost: int, arrival_ns: int) -> bool:
        """Serves a request of ``cost`` tokens arriving at ``arrival_ns`` if it is covered.

        Returns:
            True if the tokens were taken, False if the request must be answered 429
            (the bucket is unchanged: a refusal costs nothing).
        """
        level = self._advance(arrival_ns)
        need = cost * UNITS_PER_TOKEN
        if cost < 0 or need > level:
            return False
        self._level_units = level - need
        return True

    def tokens(self, now_ns: int) -> int:
        """Whole tokens in the bucket at ``now_ns`` (does not change the bucket)."""
        return self._level_at(now_ns) // UNITS_PER_TOKEN

    def empty(self, now_ns: int) -> None:
        """Spends everything the bucket holds at ``now_ns`` (tests: another client's burst)."""
        self._advance(now_ns)
        self._level_units = 0


@dataclass(slots=True)
class LimiterStats:
    """What the limiter decided so far, per bucket.

    Attributes:
        served_read: Requests the Read bucket paid for.
        served_write: Requests the Write bucket paid for.
        refused_read: 429s because the Read bucket could not cover the cost.
        refused_write: 429s because the Write bucket could not cover the cost.
    """

    served_read: int = 0
    served_write: int = 0
    refused_read: int = 0
    refused_write: int = 0

    @property
    def refused(self) -> int:
        """Every 429 the buckets caused."""
        return self.refused_read + self.refused_write


@dataclass(slots=True)
class RateLimiter:
    """Every account's Read and Write buckets at one usage tier.

    Attributes:
        tier: The tier's limits (see :data:`TIER_LIMITS`).
        stats: Counts of served and refused requests.
    """

    tier: TierLimits
    stats: LimiterStats = field(default_factory=LimiterStats)
    _accounts: dict[str, tuple[VenueBucket, VenueBucket]] = field(default_factory=dict)

    def bucket(self, user_id: str, kind: BucketKind, now_ns: int) -> VenueBucket:
        """The ``kind`` bucket of ``user_id``; both are created full when the account is
        first seen at ``now_ns``."""
        pair = self._accounts.get(user_id)
        if pair is None:
            pair = (VenueBucket(self.tier.read, now_ns), VenueBucket(self.tier.write, now_ns))
            self._accounts[user_id] = pair
        return pair[0] if kind == "read" else pair[1]

    def allow(self, user_id: str, kind: BucketKind, cost: int, arrival_ns: int) -> bool:
        """Meters one request (a whole batch at once) and counts the decision.

        Returns:
            True to serve it, False to answer 429 ``{"error": "too many requests"}``.
        """
        ok = self.bucket(user_id, kind, arrival_ns).allow(cost, arrival_ns)
        stats = self.stats
        if kind == "read":
            if ok:
                stats.served_read += 1
            else:
                stats.refused_read += 1
        elif ok:
            stats.served_write += 1
        else:
            stats.refused_write += 1
        return ok
