"""Kalshi's rate limits as pure token buckets, the write admission queue, and 429 backoff.

Theory of operation
-------------------
Kalshi meters every authenticated request with two independent token buckets, Read and Write
(https://docs.kalshi.com/getting_started/rate_limits). A bucket refills continuously at
``refill_per_s`` tokens per second up to ``capacity``; a request is served only if its whole
cost is in the bucket when it *arrives* (creates and amends cost 10, cancels 2, a batch is
billed per item and must fit whole).
:class:`TokenBucket` is our model of one bucket, exact in integers: the level is kept in
*token-nanoseconds* (one token is ``10**9`` units), so refilling ``dt`` nanoseconds adds
exactly ``refill_per_s * dt`` units and no fraction of a token is ever rounded away. Time is
always passed in.

The model must never let through a request the venue refuses, under every schedule. Two
things make the venue's view differ from ours:

* **Arrival, not send.** The venue charges a request when it arrives, some unknown time after
  we sent it; a constant delay changes nothing, but *varying* delays do: a burst that arrives
  late followed by a request that arrives promptly gives the venue less refill between them
  than we saw. So a request is charged in two steps: :meth:`TokenBucket.try_take` reserves its
  cost when it is sent (it counts as spent from that moment on), and
  :meth:`TokenBucket.settle` books it when its answer comes back (or it fails). Until then its
  cost stays reserved *and* the refill it would have earned since its arrival is not credited:
  the model charges every request at the latest moment it can have arrived (its answer, or
  now while it is in flight) and the new one at the earliest (now). Whatever the delays and
  the order of arrival, every window of arrivals the venue checks is then covered by a window
  we checked, with no more refill than the venue's (see ``tests/unit/test_token_bucket.py``,
  the property test against the local exchange's limiter). The price: a request's latency is
  refill we do not spend, ``refill_per_s × latency`` tokens, e.g. 0.1 token for 1 ms at 100/s.
* **Start state and other writers.** A bucket starts full, as the venue's is for a key that
  was idle for ``capacity / refill_per_s`` seconds, so it must exist before the first write
  and every write must pay from it: the engine builds it when it reads the limits and sends
  its own writes (start-up and reconcile cancels, order groups) through it too. Another
  client on the same key is invisible to it; its 429s drain the model (below).

:class:`WriteScheduler` decides which queued writes may go out now. Cancels reduce risk, so
they are admitted first, in FIFO order, while the Write bucket can pay for them; places are
admitted after them, in FIFO order, and only when no cancel is waiting. A place carries a
deadline (the freshness of the quote it was computed from): once the deadline has passed it is
dropped, never sent late. The async shell calls :meth:`WriteScheduler.admit` whenever it
submits something or wakes at :meth:`WriteScheduler.next_wake_ns`.

A 429 means the venue's bucket is empty even if ours is not (another client on the same key,
a start after a busy run). The shell then calls :meth:`TokenBucket.drain` so our model agrees
with the venue, and waits :meth:`Backoff.next_delay_s` before retrying.

A batch larger than the bucket could ever pay for is always refused by the venue;
:func:`split_by_cost` cuts a list of batch items into batches that each fit.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Generic, Protocol, TypeVar

from kmm.errors import ConfigError
from kmm.kalshi.constants import AMEND_COST, CANCEL_COST, CREATE_COST, TIERS

__all__ = [
    "BACKOFF_BASE_S",
    "BACKOFF_FACTOR",
    "BACKOFF_JITTER",
    "BACKOFF_MAX_S",
    "Admitted",
    "Backoff",
    "Costed",
    "RateBuckets",
    "TokenBucket",
    "WriteScheduler",
    "amend_cost",
    "cancel_cost",
    "create_cost",
    "split_by_cost",
]

_UNITS_PER_TOKEN: Final = 1_000_000_000
"""One token in token-nanoseconds: refilling 1 ns at r tokens/s adds exactly r units."""

BACKOFF_BASE_S: Final = 0.01
"""First 429 delay: at 1 000 tokens/s a 10-token create is affordable again ~10 ms later."""
BACKOFF_FACTOR: Final = 2.0
BACKOFF_MAX_S: Final = 2.0
BACKOFF_JITTER: Final = 0.5
"""Fraction of each delay that is randomised (0 = none, 1 = full jitter)."""


def create_cost(n: int = 1) -> int:
    """Tokens for creating ``n`` orders, singly or in one batch (batches are billed per item)."""
    return CREATE_COST * n


def cancel_cost(n: int = 1) -> int:
    """Tokens for cancelling ``n`` orders, singly or in one batch."""
    return CANCEL_COST * n


def amend_cost() -> int:
    """Tokens for one amend (price and/or size change of one order)."""
    return AMEND_COST


class TokenBucket:
    """Our model of one of Kalshi's token buckets, exact in integers and never more generous.

    A request's cost is reserved when it is sent (:meth:`try_take`) and booked when its
    answer arrives (:meth:`settle`); see the module docstring for why.

    Args:
        capacity: The most tokens the bucket holds.
        refill_per_s: Tokens added per second.
        now_ns: The current time, in nanoseconds (any monotonic origin).
        tokens: The starting level; full when ``None``.

    Raises:
        ValueError: if ``capacity`` or ``refill_per_s`` is not positive, or ``tokens`` is
            outside ``[0, capacity]``.
    """

    __slots__ = (
        "_cap_units",
        "_inflight",
        "_last_ns",
        "_level",
        "_rate",
        "capacity",
        "refill_per_s",
    )

    def __init__(
        self, capacity: int, refill_per_s: int, now_ns: int, *, tokens: int | None = None
    ) -> None:
        if capacity <= 0 or refill_per_s <= 0:
            raise ValueError(
                f"a token bucket needs a positive capacity and refill rate, "
                f"got capacity={capacity}, refill_per_s={refill_per_s}"
            )
        start = capacity if tokens is None else tokens
        if not 0 <= start <= capacity:
            raise ValueError(f"starting tokens {start} outside [0, capacity={capacity}]")
        self.capacity = capacity
        self.refill_per_s = refill_per_s
        self._rate = refill_per_s
        self._cap_units = capacity * _UNITS_PER_TOKEN
        self._level = start * _UNITS_PER_TOKEN
        """Booked level: every request answered so far charged when its answer came."""
        self._inflight = 0
        """Units reserved by requests sent and not answered yet."""
        self._last_ns = now_ns

    def _refill(self, now_ns: int) -> int:
        level = self._level
        dt = now_ns - self._last_ns
        if dt > 0:
            level += dt * self._rate
            if level > self._cap_units:
                level = self._cap_units
            self._level = level
            self._last_ns = now_ns
        return level

    def available(self, now_ns: int) -> int:
        """Whole tokens free at ``now_ns``: the booked level less what is in flight."""
        return max(0, (self._refill(now_ns) - self._inflight) // _UNITS_PER_TOKEN)

    @property
    def in_flight(self) -> int:
        """Tokens reserved by requests sent and not yet settled."""
        return self._inflight // _UNITS_PER_TOKEN

    def try_take(self, cost: int, now_ns: int) -> bool:
        """Reserves ``cost`` tokens for a request sent now, if the bucket has them free.

        Every ``True`` must be followed by one :meth:`settle` (the answer came, or the
        request failed) or :meth:`release` (it was never sent) of the same cost.

        Returns:
            True if the tokens were reserved (send the request), False if not (nothing
            changes).

        Raises:
            ValueError: if ``cost`` is negative or more than the bucket can ever hold.
        """
        level = self._level
        dt = now_ns - self._last_ns
        if dt > 0:
            level += dt * self._rate
            if level > self._cap_units:
                level = self._cap_units
            self._level = level
            self._last_ns = now_ns
        need = cost * _UNITS_PER_TOKEN
        if 0 <= need <= level - self._inflight:
            self._inflight += need
            return True
        self.check_cost(cost)
        return False

    def settle(self, cost: int, now_ns: int) -> None:
        """Books a reserved request at ``now_ns``, when its answer arrived (or it failed).

        The venue charged it at the latest then, so the model charges it then: the refill
        between its send and now is not credited for it. The free level does not change.

        Raises:
            ValueError: if more than is in flight would be settled.
        """
        need = self._unreserve(cost)
        self._level = self._refill(now_ns) - need

    def release(self, cost: int) -> None:
        """Returns a reservation whose request was never sent.

        Raises:
            ValueError: if more than is in flight would be released.
        """
        self._unreserve(cost)

    def _unreserve(self, cost: int) -> int:
        need = cost * _UNITS_PER_TOKEN
        if not 0 <= need <= self._inflight:
            raise ValueError(
                f"cannot settle {cost} tokens: {self._inflight / _UNITS_PER_TOKEN:.3f} in flight"
            )
        self._inflight -= need
        return need

    def wait_ns(self, cost: int, now_ns: int) -> int | None:
        """Nanoseconds until ``cost`` tokens are free if nothing settles; 0 if they are free
        now; ``None`` if only an answer to a request in flight can free them.

        Raises:
            ValueError: if ``cost`` is negative or more than the bucket can ever hold.
        """
        self.check_cost(cost)
        need = cost * _UNITS_PER_TOKEN + self._inflight
        if need > self._cap_units:
            return None
        missing = need - self._refill(now_ns)
        if missing <= 0:
            return 0
        return -(-missing // self._rate)

    def drain(self, now_ns: int) -> None:
        """Empties the bucket, as the venue's 429 says it is (reservations stay)."""
        self._refill(now_ns)
        self._level = 0

    def check_cost(self, cost: int) -> None:
        """Refuses a cost the bucket could never pay.

        Raises:
            ValueError: if ``cost`` is negative or more than ``capacity``, naming both.
        """
        if cost < 0:
            raise ValueError(f"a request cannot cost {cost} tokens")
        if cost > self.capacity:
            raise ValueError(
                f"a request costing {cost} tokens can never fit a bucket of capacity "
                f"{self.capacity}"
            )

    def __repr__(self) -> str:
        return (
            f"TokenBucket(capacity={self.capacity}, refill_per_s={self.refill_per_s}, "
            f"level={self._level / _UNITS_PER_TOKEN:.3f}, "
            f"in_flight={self._inflight / _UNITS_PER_TOKEN:.3f})"
        )


def split_by_cost(items: Sequence[T], unit_cost: int, capacity: int) -> list[list[T]]:
    """Cuts batch items into consecutive batches that each cost at most ``capacity``.

    Args:
        items: The items, in order.
        unit_cost: What each item costs (a batch is billed per item).
        capacity: The bucket's capacity: a dearer batch is always refused.

    Raises:
        ValueError: if a single item costs more than ``capacity`` or ``unit_cost`` is not
            positive.
    """
    if unit_cost <= 0 or unit_cost > capacity:
        raise ValueError(f"an item costing {unit_cost} tokens cannot fit capacity {capacity}")
    per_batch = capacity // unit_cost
    return [list(items[i : i + per_batch]) for i in range(0, len(items), per_batch)]


@dataclass(slots=True)
class RateBuckets:
    """The Read and Write buckets of one API key."""

    read: TokenBucket
    write: TokenBucket

    @classmethod
    def from_tier(cls, name: str, now_ns: int) -> RateBuckets:
        """Buckets of a usage tier from ``kmm.kalshi.constants.TIERS`` (e.g. ``"basic"``).

        Raises:
            ConfigError: if the tier is unknown.
        """
        budget = TIERS.get(name.lower())
        if budget is None:
            known = ", ".join(TIERS)
            raise ConfigError([f"unknown usage tier {name!r}; known tiers: {known}"])
        return cls.from_limits(
            budget.read_per_s,
            budget.read_capacity,
            budget.write_per_s,
            budget.write_capacity,
            now_ns,
        )

    @classmethod
    def from_limits(
        cls,
        read_per_s: int,
        read_capacity: int,
        write_per_s: int,
        write_capacity: int,
        now_ns: int,
    ) -> RateBuckets:
        """Buckets from explicit limits, e.g. those ``GET /account/limits`` reports."""
        return cls(
            read=TokenBucket(read_capacity, read_per_s, now_ns),
            write=TokenBucket(write_capacity, write_per_s, now_ns),
        )


class Costed(Protocol):
    """Anything the scheduler queues: it only needs to know what the request costs."""

    @property
    def cost(self) -> int:
        """Write tokens the request will take."""
        ...


R = TypeVar("R", bound=Costed)
T = TypeVar("T")


@dataclass(slots=True)
class Admitted(Generic[R]):
    """What :meth:`WriteScheduler.admit` decided.

    Attributes:
        send: Requests to send now, cancels first; their tokens are already taken.
        dropped: Places whose deadline passed before they could be afforded.
    """

    send: list[R]
    dropped: list[R]


class WriteScheduler(Generic[R]):
    """Admits queued writes against the Write bucket: cancels first, places by deadline.

    Args:
        bucket: The Write bucket; the scheduler takes tokens from it for what it admits.
    """

    __slots__ = ("_bucket", "_cancels", "_places")

    def __init__(self, bucket: TokenBucket) -> None:
        self._bucket = bucket
        self._cancels: deque[R] = deque()
        self._places: deque[tuple[R, int]] = deque()

    @property
    def bucket(self) -> TokenBucket:
        """The Write bucket this scheduler draws on."""
        return self._bucket

    @property
    def waiting_cancels(self) -> int:
        """Cancels queued and not yet admitted."""
        return len(self._cancels)

    @property
    def waiting_places(self) -> int:
        """Places queued and not yet admitted or dropped."""
        return len(self._places)

    def submit_cancel(self, req: R) -> None:
        """Queues a cancel (or a batch cancel) behind earlier cancels.

        Raises:
            ValueError: if the request costs more than the bucket can ever hold.
        """
        self._bucket.check_cost(req.cost)
        self._cancels.append(req)

    def submit_place(self, req: R, deadline_ns: int) -> None:
        """Queues a place (create or amend) that is worth sending until ``deadline_ns``.

        Raises:
            ValueError: if the request costs more than the bucket can ever hold.
        """
        self._bucket.check_cost(req.cost)
        self._places.append((req, deadline_ns))

    def withdraw_places(self, predicate: Callable[[R], bool]) -> list[R]:
        """Removes and returns the queued places for which ``predicate`` is true.

        Use it when a newer target supersedes a place that has not been sent yet.
        """
        kept: deque[tuple[R, int]] = deque()
        removed: list[R] = []
        for item in self._places:
            if predicate(item[0]):
                removed.append(item[0])
            else:
                kept.append(item)
        self._places = kept
        return removed

    def admit(self, now_ns: int) -> Admitted[R]:
        """Takes tokens for everything that may go out at ``now_ns`` and returns it.

        Every affordable cancel is admitted first, in FIFO order. Places follow in FIFO order
        while they are affordable, and only if no cancel is still waiting; a place never
        overtakes an earlier one. Places whose deadline is before ``now_ns`` are dropped
        wherever they stand in the queue.
        """
        send: list[R] = []
        dropped: list[R] = []
        cancels = self._cancels
        take = self._bucket.try_take
        while cancels and take(cancels[0].cost, now_ns):
            send.append(cancels.popleft())
        if self._places:
            self._admit_places(now_ns, bool(cancels), send, dropped)
        return Admitted(send, dropped)

    def _admit_places(self, now_ns: int, blocked: bool, send: list[R], dropped: list[R]) -> None:
        take = self._bucket.try_take
        kept: deque[tuple[R, int]] = deque()
        for item in self._places:
            req, deadline_ns = item
            if deadline_ns < now_ns:
                dropped.append(req)
            elif not blocked and take(req.cost, now_ns):
                send.append(req)
            else:
                blocked = True
                kept.append(item)
        self._places = kept

    def next_wake_ns(self, now_ns: int) -> int | None:
        """When :meth:`admit` could next do something: a request becomes affordable or a
        place's deadline passes. ``None`` when nothing is queued or only an answer to a
        request in flight can free the tokens (wake on the answer); ``now_ns`` when now.
        """
        if self._cancels:
            wait = self._bucket.wait_ns(self._cancels[0].cost, now_ns)
        elif self._places:
            wait = self._bucket.wait_ns(self._places[0][0].cost, now_ns)
        else:
            return None
        wake = None if wait is None else now_ns + wait
        for _, deadline_ns in self._places:
            if wake is None or deadline_ns < wake:
                wake = max(deadline_ns + 1, now_ns)
        return wake


class Backoff:
    """Capped exponential backoff with jitter, for retrying after a 429.

    The n-th delay (from 0) is ``min(max_s, base_s * factor**n)``, of which the fraction
    ``jitter`` is randomised downwards: the result lies in ``[d * (1 - jitter), d]``.

    Args:
        base_s: The first delay, in seconds.
        factor: The growth per consecutive failure.
        max_s: The cap, in seconds.
        jitter: The randomised fraction, in ``[0, 1]``.
        random_fn: A source of floats in ``[0, 1)``; inject a fixed one in tests.

    Raises:
        ValueError: if a parameter is out of range.
    """

    __slots__ = ("_attempt", "base_s", "factor", "jitter", "max_s", "random_fn")

    def __init__(
        self,
        base_s: float = BACKOFF_BASE_S,
        factor: float = BACKOFF_FACTOR,
        max_s: float = BACKOFF_MAX_S,
        jitter: float = BACKOFF_JITTER,
        random_fn: Callable[[], float] = random.random,
    ) -> None:
        if not (base_s > 0 and factor >= 1 and max_s >= base_s and 0 <= jitter <= 1):
            raise ValueError(
                f"backoff needs base_s > 0, factor >= 1, max_s >= base_s and jitter in [0, 1], "
                f"got base_s={base_s}, factor={factor}, max_s={max_s}, jitter={jitter}"
            )
        self.base_s = base_s
        self.factor = factor
        self.max_s = max_s
        self.jitter = jitter
        self.random_fn = random_fn
        self._attempt = 0

    @property
    def attempt(self) -> int:
        """Consecutive failures so far (delays handed out since the last reset)."""
        return self._attempt

    def next_delay_s(self) -> float:
        """The delay before the next retry, in seconds; each call counts one more failure."""
        ceiling = self.max_s
        delay = self.base_s * self.factor**self._attempt if self._attempt < 64 else ceiling
        delay = min(delay, ceiling)
        self._attempt += 1
        return delay * (1.0 - self.jitter * self.random_fn())

    def reset(self) -> None:
        """Starts over after a success."""
        self._attempt = 0
