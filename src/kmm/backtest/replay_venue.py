"""A recorded capture as the backtest's venue.

:class:`ReplayVenue` adapts a :class:`~kmm.backtest.replay.ReplayExchange` (the capture's
books, trades and lifecycle replayed, our orders virtual with a queue model) to the driver's
:class:`~kmm.backtest.driver.BacktestVenue`: the capture's frames come with their recorded
receive times, the markets come from the capture's ``markets.json``, and a refusal is
returned as the error the REST client would raise. Websocket commands change nothing: the
capture's own subscriptions and snapshots are what is replayed.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from kmm.backtest.driver import BacktestOptions
from kmm.backtest.latency import Latencies
from kmm.backtest.queue import ConservativeQueue, ProbabilisticQueue, QueueModel
from kmm.backtest.replay import ReplayExchange
from kmm.config import BacktestConfig
from kmm.errors import ConfigError, VenueError
from kmm.kalshi.rest import (
    BatchItem,
    CreateAck,
    MarketInfo,
    OrderRequest,
    SeriesInfo,
    VenueOrder,
    VenuePosition,
)
from kmm.record import MARKETS_FILE, MarketMeta, iter_capture, load_markets_json
from kmm.types import BookSide, Fill, Money, Price, Qty

__all__ = ["ReplayVenue", "replay_setup"]


class ReplayVenue:
    """A capture file replayed as a venue.

    Args:
        capture: The ``capture.jsonl.gz`` of a ``kmm capture`` or ``kmm run --capture``; its
            ``markets.json`` must be next to it.
        queue: The queue model our virtual orders advance by.
        balance: Our starting cash, in $0.000001.

    Raises:
        ConfigError: one line naming the file if the capture or its ``markets.json`` is
            missing or unreadable, or the capture holds no frame.
    """

    def __init__(self, capture: Path, queue: QueueModel, balance: Money) -> None:
        if not capture.is_file():
            raise ConfigError([f"--capture: no such capture file: {capture}"])
        markets = capture.parent / MARKETS_FILE
        if not markets.is_file():
            raise ConfigError(
                [f"--capture: {markets} is missing (written by kmm capture next to the capture)"]
            )
        self.metas: dict[str, MarketMeta] = load_markets_json(markets)
        self.exchange = ReplayExchange(iter_capture(capture), self.metas, queue, balance=balance)
        first = self.exchange.next_time_ns()
        if first is None:
            raise ConfigError([f"--capture: {capture} holds no frame"])
        self.start_ns = first
        self._now = first

    def next_event_ns(self) -> int | None:
        """The receive time of the next captured frame."""
        return self.exchange.next_time_ns()

    def advance(self, now_ns: int) -> list[tuple[int, bytes]]:
        """Replays up to ``now_ns``: the captured frames and our fills and order updates."""
        self._now = max(self._now, now_ns)
        return self.exchange.advance(self._now)

    def sent(self) -> list[tuple[int, bytes]]:
        """Our frames a write just caused."""
        return self.exchange.advance(self._now)

    def command(self, body: dict[str, Any]) -> list[tuple[int, bytes]]:
        """Nothing: the capture's own subscriptions and snapshots are replayed."""
        return []

    def markets(self) -> list[MarketInfo]:
        """The captured markets, open (as they were when captured)."""
        return [
            MarketInfo(m.ticker, m.event_ticker, "active", m.close_ns, m.price_ranges, None, None)
            for m in self.metas.values()
        ]

    def series_of(self, market: MarketInfo) -> SeriesInfo:
        """The fee terms ``markets.json`` recorded for the market's series."""
        meta = self.metas[market.ticker]
        multiplier = meta.fee_multiplier  # a decimal as Kalshi writes it: exact in Decimal
        text = str(Decimal(multiplier.numerator) / Decimal(multiplier.denominator))
        return SeriesInfo(market.event_ticker, meta.fee_type, text)

    def create_order(self, order: OrderRequest, now_ns: int) -> CreateAck | VenueError:
        """A virtual create: its ack, or the refusal the client would raise."""
        try:
            return self.exchange.create_order(order, now_ns)
        except VenueError as e:
            return e

    def amend_order(
        self, order_id: str, *, ticker: str, side: BookSide, price: Price, count: Qty, now_ns: int
    ) -> CreateAck | VenueError:
        """A virtual amend."""
        try:
            return self.exchange.amend_order(
                order_id, price=price, count=count, side=side, now_ns=now_ns
            )
        except VenueError as e:
            return e

    def batch_cancel(self, order_ids: Sequence[str], now_ns: int) -> list[BatchItem]:
        """Virtual cancels, item by item."""
        return self.exchange.batch_cancel(order_ids, now_ns)

    def order(self, order_id: str) -> VenueOrder | None:
        """One of our virtual orders, or None if there is no such order."""
        try:
            return self.exchange.order(order_id)
        except VenueError:
            return None

    def resting_orders(self) -> list[VenueOrder]:
        """Our virtual resting orders."""
        return self.exchange.resting_orders()

    def fills(self, min_ts_s: int | None = None) -> list[Fill]:
        """Our virtual fills since ``min_ts_s``."""
        lo = None if min_ts_s is None else min_ts_s * 1000
        return [f for f in self.exchange.fills() if lo is None or f.ts_ms >= lo]

    def positions(self) -> list[VenuePosition]:
        """Our virtual positions."""
        return self.exchange.positions()


def replay_setup(
    capture: Path,
    settings: BacktestConfig,
    seed: int,
    latency: Latencies,
    queue_name: str | None = None,
    duration_s: float | None = None,
    tier: str = "basic",
) -> tuple[ReplayVenue, BacktestOptions, str]:
    """The venue, options and description of a backtest replaying ``capture``, with the queue
    model ``queue_name`` (else ``backtest.queue_model``).

    Raises:
        ConfigError: the capture or its ``markets.json`` is missing or unreadable.
    """
    name = queue_name or settings.queue_model
    queue: QueueModel = (
        ConservativeQueue() if name == "conservative" else ProbabilisticQueue(settings.queue_power)
    )
    balance = 100_000 * 1_000_000
    venue = ReplayVenue(capture, queue, balance)
    options = BacktestOptions(
        seed=seed,
        duration_s=duration_s,
        tier=tier,
        latency=latency,
        start_ns=venue.start_ns,
        balance=balance,
    )
    source = f"capture {capture} ({len(venue.metas)} markets, {name} queue)"
    return venue, options, source
