"""The local exchange in process, as the backtest's venue: no sockets, no event loop.

Theory of operation
-------------------
:class:`GeneratedVenue` builds the same venue ``kmm sim`` serves (the universe installed in
the matching engine, the background traders, :func:`kmm.sim.server.build_venue`) on a manual
clock, and talks to it the way the bot's clients would, minus the transport:

* the feed is a :class:`~kmm.sim.ws.LocalConnection` of the local exchange's websocket hub:
  the bot's ``subscribe`` and ``update_subscription`` commands go in, the hub's frames come out
  (the same ``sid``, ``seq``, snapshots, deltas, trades, fills and order updates a socket
  would carry);
* a write goes in as the bot encodes it (:meth:`kmm.kalshi.rest.OrderRequest.body`), is
  parsed by the local exchange's REST layer, applied by its matching engine, serialized as its
  REST answer and parsed back by the bot's own parsers (:func:`kmm.kalshi.rest.parse_ack`, ...);
  a refusal becomes the error the bot's client raises (:func:`kmm.kalshi.rest.error_from_response`).

So the trading core sees exactly what it sees live; only time is simulated, by the driver.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from kmm.clock import ManualClock
from kmm.errors import VenueError
from kmm.kalshi.rest import (
    BatchItem,
    CreateAck,
    MarketInfo,
    MarketListing,
    OrderBookLegs,
    OrderRequest,
    SeriesInfo,
    VenueOrder,
    VenuePosition,
    error_from_response,
    parse_ack,
    parse_batch_items,
    parse_book_legs,
    parse_fill,
    parse_listing,
    parse_market,
    parse_order,
    parse_position,
)
from kmm.sim import serialize as ser
from kmm.sim._model import OrderStatus, Rejection
from kmm.sim.rest import HttpError, order_request
from kmm.sim.server import SimOptions, SimVenue, build_venue
from kmm.sim.ws import LocalConnection, WsHub
from kmm.types import BookSide, Fill, Money, Price, Qty

__all__ = ["BACKTEST_USER", "GeneratedVenue"]

BACKTEST_USER = "backtest"
"""The account the backtest trades."""


class GeneratedVenue:
    """The local exchange with its background traders, driven by a manual clock.

    Args:
        options: The exchange to build (seed, markets, scenario, flow); its clock is replaced
            by a manual one starting at ``start_ns``.
        start_ns: The simulated start time.
        balance: The backtest account's cash, in $0.000001.
    """

    def __init__(self, options: SimOptions, start_ns: int, balance: Money) -> None:
        self.clock = ManualClock(start_ns)
        self.venue: SimVenue = build_venue(options, self.clock)
        self.venue.engine.open_account(BACKTEST_USER, balance)
        self.venue.engine.drain_events()
        self._hub = WsHub(self.venue, ping_interval_s=10.0)
        self.feed: LocalConnection = self._hub.connect_local(BACKTEST_USER)

    # ----------------------------------------------------------------- time

    @property
    def now_ns(self) -> int:
        """The venue's time."""
        return self.clock.now_ns()

    def next_event_ns(self) -> int | None:
        """When the background traders or the lifecycle next act."""
        return self.venue.next_event_ns()

    def advance(self, now_ns: int) -> list[tuple[int, bytes]]:
        """Runs the venue up to ``now_ns``; returns the frames it sent meanwhile, with the
        time it sent them."""
        if now_ns > self.clock.now_ns():
            self.clock.set_ns(now_ns)
        self.venue.step(self.clock.now_ns())
        return self.sent()

    def sent(self) -> list[tuple[int, bytes]]:
        """The frames sent since the last call (a write's order updates and fills), now."""
        now = self.clock.now_ns()
        return [(now, frame) for frame in self.feed.take()]

    def command(self, body: dict[str, Any]) -> list[tuple[int, bytes]]:
        """Sends one websocket command; returns the frames it caused (replies, snapshots)."""
        self.venue.publish()  # a snapshot must match the deltas already sent
        self.feed.send(orjson.dumps(body))
        return self.sent()

    # ----------------------------------------------------------------- reads

    def markets(self) -> list[MarketInfo]:
        """Every market, as ``GET /markets`` lists it."""
        engine, now = self.venue.engine, self.now_ns
        return [parse_market(ser.market_json(engine, m, now)) for m in engine.markets.values()]

    def listings(self) -> list[MarketListing]:
        """Every market with its type, times and volumes, as ``GET /markets`` lists it."""
        engine, now = self.venue.engine, self.now_ns
        return [parse_listing(ser.market_json(engine, m, now)) for m in engine.markets.values()]

    def series_categories(self) -> dict[str, str]:
        """Each series' category, as ``GET /series`` gives it."""
        rows = (ser.series_json(s) for s in self.venue.engine.series.values())
        return {str(r["ticker"]): str(r.get("category") or "") for r in rows}

    def event_series_map(self) -> dict[str, str]:
        """Each event's series, as ``GET /events`` gives it."""
        return {t: e.series_ticker for t, e in self.venue.engine.events.items()}

    def orderbooks(self, tickers: Iterable[str]) -> dict[str, OrderBookLegs]:
        """The books of ``tickers``, as ``GET /markets/orderbooks`` gives them."""
        engine = self.venue.engine
        return {t: parse_book_legs(ser.orderbook_json(engine, t)) for t in tickers}

    def series_of(self, market: MarketInfo) -> SeriesInfo:
        """The fee terms of a market's series, as ``GET /series/{ticker}`` gives them."""
        engine = self.venue.engine
        series = engine.series[engine.events[market.event_ticker].series_ticker]
        row = ser.series_json(series)
        multiplier = str(row.get("fee_multiplier", "1"))
        return SeriesInfo(row["ticker"], row["fee_type"], multiplier, str(row.get("category", "")))

    def resting_orders(self) -> list[VenueOrder]:
        """Our resting orders, as ``GET /portfolio/orders?status=resting`` lists them."""
        return [
            parse_order(ser.order_json(o))
            for o in self.venue.engine.orders_of(BACKTEST_USER)
            if o.status is OrderStatus.RESTING
        ]

    def order(self, order_id: str) -> VenueOrder | None:
        """One of our orders, or None if the venue has no such order (a 404)."""
        try:
            return parse_order(ser.order_json(self.venue.engine.get_order(BACKTEST_USER, order_id)))
        except Rejection:
            return None

    def fills(self, min_ts_s: int | None = None) -> list[Fill]:
        """Our fills since ``min_ts_s``, oldest first."""
        rows = self.venue.engine.fills_of(BACKTEST_USER)
        lo = None if min_ts_s is None else min_ts_s * 1_000_000_000
        return [parse_fill(ser.fill_json(f)) for f in rows if lo is None or f.ts_ns >= lo]

    def positions(self) -> list[VenuePosition]:
        """Our positions, as ``GET /portfolio/positions`` lists them."""
        return [
            parse_position(ser.position_json(ticker, position))
            for ticker, position in self.venue.engine.positions_of(BACKTEST_USER).items()
        ]

    # ----------------------------------------------------------------- writes

    def create_order(self, order: OrderRequest, now_ns: int) -> CreateAck | VenueError:
        """``POST /portfolio/events/orders``: the ack, or the error the client would raise."""
        try:
            result = self.venue.engine.create_order(
                BACKTEST_USER, order_request(order.body()), self.now_ns
            )
        except (Rejection, HttpError) as e:
            return _error(e)
        finally:
            self.venue.publish()
        return parse_ack(ser.create_json(result))

    def amend_order(
        self, order_id: str, *, ticker: str, side: BookSide, price: Price, count: Qty, now_ns: int
    ) -> CreateAck | VenueError:
        """``POST /portfolio/events/orders/{order_id}/amend``."""
        try:
            result = self.venue.engine.amend_order(
                BACKTEST_USER, order_id, ticker=ticker, book_side=side, price=price,
                count=count, now_ns=self.now_ns,
            )  # fmt: skip
        except (Rejection, HttpError) as e:
            return _error(e)
        finally:
            self.venue.publish()
        return parse_ack({"order_id": order_id, **ser.amend_json(result)})

    def batch_cancel(self, order_ids: Sequence[str], now_ns: int) -> list[BatchItem]:
        """``DELETE /portfolio/events/orders/batched``: per-item results or errors."""
        engine, now = self.venue.engine, self.now_ns
        items = []
        for order_id in order_ids:
            try:
                done = engine.cancel_order(BACKTEST_USER, order_id, now)
            except Rejection as e:
                error = ser.error_body(e.code, e.message, e.details)["error"]
                items.append(ser.batch_cancel_item(order_id, None, now, error))
                continue
            items.append(ser.batch_cancel_item(order_id, done, now, None))
        self.venue.publish()
        return parse_batch_items({"orders": items})


def _error(e: Rejection | HttpError) -> VenueError:
    body = orjson.dumps(ser.error_body(e.code, e.message, e.details))
    return error_from_response(e.status, body)
