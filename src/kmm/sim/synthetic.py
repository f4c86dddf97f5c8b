"""A deterministic generator of Kalshi-shaped ``orderbook_delta`` traffic.

Theory of operation
-------------------
Each market keeps a real two-sided book (YES bids below a latent fair price, NO bids below
``$1 - fair``) and a fair price that takes small random steps. Every step picks a market and
emits one frame, exactly as Kalshi's websocket would (fixed-point strings, ``seq`` per
subscription, ``ts_ms``): mostly size changes at resting levels, sometimes a new level near
the top, and, when the fair price moves, the removal of levels it crossed. The books never
cross, levels never go negative, and the same seed always yields the same bytes, so the stream
can drive the benchmark, the offline demo and property tests.

It is a source of *book traffic*, not a matching engine: orders and fills are the local
exchange's business.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson

from kmm.types import ONE_CENT, ONE_DOLLAR, Price, Qty, format_count, format_price

__all__ = ["SyntheticFeed", "synthetic_frames"]

_MIN_PRICE = ONE_CENT
_MAX_PRICE = ONE_DOLLAR - ONE_CENT
_LEVELS = 20


@dataclass(slots=True)
class _Market:
    ticker: str
    market_id: str
    fair: Price
    yes: dict[Price, Qty] = field(default_factory=dict)
    no: dict[Price, Qty] = field(default_factory=dict)


class SyntheticFeed:
    """Generates snapshots then deltas for ``markets`` markets on one subscription id.

    Args:
        markets: How many markets to simulate.
        seed: The random seed; equal seeds give equal streams.
        sid: The subscription id written on every frame.
        start_ts_ms: The ``ts_ms`` of the first delta; each frame adds ``step_ms``.
        step_ms: Milliseconds between frames.
    """

    def __init__(
        self,
        markets: int = 8,
        seed: int = 7,
        sid: int = 1,
        start_ts_ms: int = 1_767_225_600_000,
        step_ms: int = 1,
    ) -> None:
        if markets < 1:
            raise ValueError(f"markets must be >= 1, got {markets}")
        self._rng = random.Random(seed)
        self._sid = sid
        self._seq = 0
        self._ts_ms = start_ts_ms
        self._step_ms = step_ms
        self.markets = [self._new_market(i) for i in range(markets)]

    @property
    def tickers(self) -> list[str]:
        """The tickers of the simulated markets, in order."""
        return [m.ticker for m in self.markets]

    def snapshots(self) -> list[bytes]:
        """One ``orderbook_snapshot`` frame per market, in the current state."""
        return [self._snapshot_frame(m) for m in self.markets]

    def deltas(self, count: int) -> Iterator[bytes]:
        """Yields ``count`` ``orderbook_delta`` frames."""
        for _ in range(count):
            yield self._next_delta()

    def _new_market(self, index: int) -> _Market:
        fair = self._rng.randrange(20, 81) * ONE_CENT
        market = _Market(
            f"KXSYN-26DEC31-M{index:02d}", f"00000000-0000-4000-8000-{index:012d}", fair
        )
        for level in range(1, _LEVELS + 1):
            yes_price = fair - level * ONE_CENT
            no_price = ONE_DOLLAR - fair - level * ONE_CENT
            if yes_price >= _MIN_PRICE:
                market.yes[yes_price] = self._size()
            if no_price >= _MIN_PRICE:
                market.no[no_price] = self._size()
        return market

    def _size(self) -> Qty:
        return self._rng.randrange(1, 500) * 100

    def _next_delta(self) -> bytes:
        market = self.markets[self._rng.randrange(len(self.markets))]
        roll = self._rng.random()
        if roll < 0.03:
            change = self._move_fair(market)
        elif roll < 0.12:
            change = self._add_level_near_top(market)
        else:
            change = self._resize_level(market)
        return self._delta_frame(market, *change)

    def _resize_level(self, market: _Market) -> tuple[bool, Price, Qty]:
        is_yes = self._rng.random() < 0.5
        levels = market.yes if is_yes else market.no
        if not levels:
            return self._add_level_near_top(market)
        price = self._rng.choice(list(levels))
        size = levels[price]
        delta = self._rng.randrange(1, 100) * 100
        if self._rng.random() < 0.5:
            delta = -min(delta, size)
        self._apply(levels, price, delta)
        return is_yes, price, delta

    def _add_level_near_top(self, market: _Market) -> tuple[bool, Price, Qty]:
        is_yes = self._rng.random() < 0.5
        levels = market.yes if is_yes else market.no
        ceiling = market.fair if is_yes else ONE_DOLLAR - market.fair
        price = ceiling - self._rng.randrange(1, 4) * ONE_CENT
        price = max(_MIN_PRICE, price)
        delta = self._size()
        self._apply(levels, price, delta)
        return is_yes, price, delta

    def _move_fair(self, market: _Market) -> tuple[bool, Price, Qty]:
        step = self._rng.choice((-ONE_CENT, ONE_CENT))
        market.fair = min(_MAX_PRICE - ONE_CENT, max(_MIN_PRICE + ONE_CENT, market.fair + step))
        # Remove one level the new fair price crossed, if any; else resize as usual
        if market.yes and max(market.yes) >= market.fair:
            price = max(market.yes)
            delta = -market.yes[price]
            self._apply(market.yes, price, delta)
            return True, price, delta
        no_ceiling = ONE_DOLLAR - market.fair
        if market.no and max(market.no) >= no_ceiling:
            price = max(market.no)
            delta = -market.no[price]
            self._apply(market.no, price, delta)
            return False, price, delta
        return self._resize_level(market)

    @staticmethod
    def _apply(levels: dict[Price, Qty], price: Price, delta: Qty) -> None:
        size = levels.get(price, 0) + delta
        if size > 0:
            levels[price] = size
        else:
            levels.pop(price, None)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _snapshot_frame(self, market: _Market) -> bytes:
        msg: dict[str, object] = {"market_ticker": market.ticker, "market_id": market.market_id}
        if market.yes:
            msg["yes_dollars_fp"] = _levels(market.yes)
        if market.no:
            msg["no_dollars_fp"] = _levels(market.no)
        frame = {
            "type": "orderbook_snapshot",
            "sid": self._sid,
            "seq": self._next_seq(),
            "msg": msg,
        }
        return orjson.dumps(frame)

    def _delta_frame(self, market: _Market, is_yes: bool, price: Price, delta: Qty) -> bytes:
        self._ts_ms += self._step_ms
        frame = {
            "type": "orderbook_delta",
            "sid": self._sid,
            "seq": self._next_seq(),
            "msg": {
                "market_ticker": market.ticker,
                "market_id": market.market_id,
                "price_dollars": format_price(price),
                "delta_fp": format_count(delta),
                "side": "yes" if is_yes else "no",
                "ts_ms": self._ts_ms,
            },
        }
        return orjson.dumps(frame)


def _levels(levels: dict[Price, Qty]) -> list[list[str]]:
    return [[format_price(p), format_count(q)] for p, q in sorted(levels.items())]


def synthetic_frames(markets: int, deltas: int, seed: int = 7) -> list[bytes]:
    """Returns the snapshots of ``markets`` markets followed by ``deltas`` delta frames."""
    feed = SyntheticFeed(markets=markets, seed=seed)
    return feed.snapshots() + list(feed.deltas(deltas))
