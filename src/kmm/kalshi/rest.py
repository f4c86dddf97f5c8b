"""Kalshi's REST API on aiohttp: typed methods for what kmm uses, errors as a typed tree.

Theory of operation
-------------------
One :class:`KalshiRest` holds one ``aiohttp.ClientSession`` (keep-alive) for one account. Each
call signs its path (:class:`~kmm.kalshi.auth.Signer`), sends the request with a timeout, and
maps the answer:

=====================================  ==================================================
answer                                 raised
=====================================  ==================================================
2xx                                    nothing: the body is parsed into kmm's types
401                                    :class:`~kmm.errors.AuthError`
429                                    :class:`~kmm.errors.RateLimited`
4xx, code is a pause code              :class:`~kmm.errors.ExchangePaused`
4xx, code is a closed-market code      :class:`~kmm.errors.MarketClosed`
other 4xx                              :class:`~kmm.errors.Rejected` with Kalshi's code
5xx, timeout, connection error         :class:`~kmm.errors.UnknownOutcome`
=====================================  ==================================================

**Order writes** (create, amend, cancel, batch) go through :meth:`KalshiRest.write`, which
puts them on the wire *in the call* over the :class:`~kmm.kalshi.lane.OrderLane` when one is
attached and has an idle connection (aiohttp otherwise) and returns an awaitable for the
answer: the executor's tick-to-order path has no task hop and no aiohttp request machinery.

**Reads** retry ``UnknownOutcome`` and ``RateLimited`` with capped exponential backoff and
jitter. **Writes never retry**: a create that ends in ``UnknownOutcome`` may have rested, so
the caller marks the order unknown and lets the stream or a REST read settle it (a resend, if
any, reuses the same ``client_order_id`` and is refused with 409 if the first one landed).

**Subaccount.** One client trades for one subaccount (0 = primary, 1–63) and names it on
every request that takes one, following each endpoint's reference page: the create body and
each batch-create item (``subaccount``), each batch-cancel item, the ``subaccount`` query of
a cancel, an amend, the order-group writes, and of the orders, fills, positions and balance
reads. It is sent even when it is 0: ``GET /portfolio/orders`` and ``/portfolio/fills``
cover *every* subaccount when it is omitted, so a bot on the primary account would otherwise
count a sibling subaccount's orders and fills as its own.

Dollar and count strings are converted exactly (:mod:`kmm.types`); nothing passes through
``float``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypeVar
from urllib.parse import urlencode, urlsplit

import aiohttp
import orjson

from kmm.errors import (
    AuthError,
    ExchangePaused,
    MarketClosed,
    RateLimited,
    Rejected,
    UnknownOutcome,
    VenueError,
    WireError,
)
from kmm.kalshi.auth import Signer
from kmm.kalshi.lane import LaneError, LaneResponse, OrderLane
from kmm.kalshi.wire import PriceRange, parse_price_ranges
from kmm.types import (
    BookSide,
    Fill,
    Money,
    Price,
    Qty,
    format_count,
    format_price,
    parse_count,
    parse_money,
    parse_price,
)

__all__ = [
    "CLOSED_CODES",
    "MAX_SUBACCOUNT",
    "PAUSE_CODES",
    "PRESIGNED_PATHS",
    "AccountLimits",
    "BatchItem",
    "CreateAck",
    "ExchangeStatus",
    "KalshiRest",
    "MarketInfo",
    "MarketListing",
    "OrderBookLegs",
    "OrderRequest",
    "SeriesInfo",
    "VenueOrder",
    "VenuePosition",
    "error_from_response",
    "parse_ack",
    "parse_batch_items",
    "parse_book_legs",
    "parse_listing",
]

PAUSE_CODES: Final = frozenset(
    {"trading_is_paused", "trading_paused", "exchange_paused", "exchange_closed"}
)
CLOSED_CODES: Final = frozenset({"market_closed", "market_inactive", "market_not_active"})
_READ_ATTEMPTS: Final = 4
_BACKOFF_BASE_S: Final = 0.05
_BACKOFF_MAX_S: Final = 1.0
_PAGE_LIMIT: Final = 1000
_EVENTS_PAGE_LIMIT: Final = 200
_ORDERBOOKS_BATCH: Final = 100
MAX_SUBACCOUNT: Final = 63
"""The highest Kalshi subaccount number (0 is the primary account)."""

T = TypeVar("T")


# --------------------------------------------------------------------------- result types


@dataclass(frozen=True, slots=True)
class ExchangeStatus:
    """``GET /exchange/status``."""

    exchange_active: bool
    trading_active: bool


@dataclass(frozen=True, slots=True)
class MarketInfo:
    """The fields of a Kalshi Market the bot uses."""

    ticker: str
    event_ticker: str
    status: str
    close_ns: int | None
    price_ranges: tuple[PriceRange, ...]
    yes_bid: Price | None
    yes_ask: Price | None


@dataclass(frozen=True, slots=True)
class MarketListing:
    """A market as ``GET /markets`` lists it, with what discovery reads of it.

    Attributes:
        info: What the bot trades it by.
        market_type: ``binary`` or ``scalar``.
        combo: Whether it is a multivariate combo.
        created_ns: ``created_time``, or ``None``.
        volume_24h: ``volume_24h_fp`` (0.01 contracts).
        open_interest: ``open_interest_fp`` (0.01 contracts).
    """

    info: MarketInfo
    market_type: str
    combo: bool
    created_ns: int | None
    volume_24h: Qty
    open_interest: Qty


OrderBookLegs = tuple[list[tuple[Price, Qty]], list[tuple[Price, Qty]]]
"""An order book as Kalshi sends it: ``(YES bids, NO bids)``, each ascending by price."""


@dataclass(frozen=True, slots=True)
class SeriesInfo:
    """``GET /series/{ticker}``: what sets the fees, and the series' category."""

    ticker: str
    fee_type: str
    fee_multiplier: str
    category: str = ""


@dataclass(frozen=True, slots=True)
class AccountLimits:
    """``GET /account/limits``: the account's tier and token budgets."""

    usage_tier: str
    read_refill_per_s: int
    read_capacity: int
    write_refill_per_s: int
    write_capacity: int


@dataclass(frozen=True, slots=True)
class VenueOrder:
    """One order as the venue reports it (``GET /portfolio/orders``)."""

    order_id: str
    client_order_id: str | None
    ticker: str
    side: BookSide
    price: Price
    filled: Qty
    remaining: Qty
    status: str


@dataclass(frozen=True, slots=True)
class VenuePosition:
    """One market position (``GET /portfolio/positions``): YES positive, NO negative."""

    ticker: str
    position: Qty
    realized_pnl: Money
    fees_paid: Money
    market_exposure: Money = 0


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A V2 create: everything is on the YES leg (``ask`` sells YES, i.e. buys NO)."""

    ticker: str
    side: BookSide
    price: Price
    count: Qty
    client_order_id: str
    post_only: bool = True
    time_in_force: str = "good_till_canceled"
    self_trade_prevention: str = "taker_at_cross"
    cancel_order_on_pause: bool = False
    reduce_only: bool = False
    order_group_id: str | None = None

    def body(self, subaccount: int = 0) -> dict[str, Any]:
        """The JSON body of ``POST /portfolio/events/orders`` for ``subaccount``."""
        body: dict[str, Any] = {
            "ticker": self.ticker,
            "side": self.side.value,
            "price": format_price(self.price),
            "count": format_count(self.count),
            "time_in_force": self.time_in_force,
            "self_trade_prevention_type": self.self_trade_prevention,
            "client_order_id": self.client_order_id,
            "post_only": self.post_only,
            "reduce_only": self.reduce_only,
            "cancel_order_on_pause": self.cancel_order_on_pause,
            "subaccount": subaccount,
        }
        if self.order_group_id is not None:
            body["order_group_id"] = self.order_group_id
        return body


@dataclass(frozen=True, slots=True)
class CreateAck:
    """The venue's answer to a create or amend."""

    order_id: str
    client_order_id: str | None
    filled: Qty
    remaining: Qty
    ts_ms: int | None


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One item of a batch answer: an ack or the item's own error."""

    order_id: str | None
    client_order_id: str | None
    filled: Qty
    remaining: Qty
    error: VenueError | None


# --------------------------------------------------------------------------- errors


def error_from_response(status: int, body: bytes) -> VenueError:
    """The typed error for a non-2xx answer, from its status and Kalshi's error body."""
    code, message = _error_fields(body)
    if status == 401:
        return AuthError(status, code or "unauthorized", message)
    if status == 429:
        return RateLimited(status, code or "too_many_requests", message)
    if status >= 500:
        return UnknownOutcome(status, code or "server_error", message)
    if code in PAUSE_CODES:
        return ExchangePaused(status, code, message)
    if code in CLOSED_CODES:
        return MarketClosed(status, code, message)
    return Rejected(status, code or f"http_{status}", message)


def _error_fields(body: bytes) -> tuple[str, str]:
    """``(code, "message: details")`` from ``{"error": {...}}`` or ``{"error": "text"}``."""
    try:
        data = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError:
        return "", body[:200].decode("utf-8", "replace")
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, str):
        return "", error
    if not isinstance(error, dict):
        return str(data.get("code", "")) if isinstance(data, dict) else "", ""
    message = str(error.get("message") or "")
    details = error.get("details")
    if details:
        message = f"{message}: {details}" if message else str(details)
    return str(error.get("code") or ""), message


# --------------------------------------------------------------------------- parsing


def _opt_price(value: object, field: str) -> Price | None:
    if value is None or value == "":
        return None
    return parse_price(str(value), field)


def _parse_ns(value: object) -> int | None:
    """RFC 3339 (``2026-11-23T12:00:00Z``) to Unix nanoseconds, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise WireError(None, f"timestamp: not RFC 3339, got {value!r}") from e
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1_000


def parse_market(m: Mapping[str, Any]) -> MarketInfo:
    """A Kalshi Market object to :class:`MarketInfo`."""
    ranges = m.get("price_ranges") or [{"start": "0.0000", "end": "1.0000", "step": "0.0100"}]
    return MarketInfo(
        ticker=m["ticker"],
        event_ticker=m.get("event_ticker", ""),
        status=m.get("status", ""),
        close_ns=_parse_ns(m.get("close_time")),
        price_ranges=parse_price_ranges(ranges),
        yes_bid=_opt_price(m.get("yes_bid_dollars"), "yes_bid_dollars"),
        yes_ask=_opt_price(m.get("yes_ask_dollars"), "yes_ask_dollars"),
    )


def parse_listing(m: Mapping[str, Any]) -> MarketListing:
    """A Kalshi Market object to :class:`MarketListing`."""
    return MarketListing(
        info=parse_market(m),
        market_type=str(m.get("market_type") or "binary"),
        combo=bool(m.get("mve_collection_ticker")),
        created_ns=_parse_ns(m.get("created_time")),
        volume_24h=parse_count(m.get("volume_24h_fp") or "0", "volume_24h_fp"),
        open_interest=parse_count(m.get("open_interest_fp") or "0", "open_interest_fp"),
    )


def _series_info(s: Mapping[str, Any]) -> SeriesInfo:
    return SeriesInfo(
        str(s["ticker"]),
        str(s["fee_type"]),
        str(s.get("fee_multiplier", "1")),
        str(s.get("category") or ""),
    )


def parse_book_legs(book: Mapping[str, Any]) -> OrderBookLegs:
    """An ``orderbook_fp`` object to its YES and NO bids (best last)."""
    yes, no = (
        [(parse_price(p, key), parse_count(q, key)) for p, q in book.get(key) or []]
        for key in ("yes_dollars", "no_dollars")
    )
    return yes, no


def parse_order(o: Mapping[str, Any]) -> VenueOrder:
    """A Kalshi Order object to :class:`VenueOrder`."""
    book_side = o.get("book_side")
    if book_side is None:  # older shape: outcome side + action
        book_side = "bid" if o.get("side") == "yes" else "ask"
    return VenueOrder(
        order_id=o["order_id"],
        client_order_id=o.get("client_order_id") or None,
        ticker=o["ticker"],
        side=BookSide(book_side),
        price=parse_price(o["yes_price_dollars"], "yes_price_dollars"),
        filled=parse_count(o.get("fill_count_fp") or "0", "fill_count_fp"),
        remaining=parse_count(o.get("remaining_count_fp") or "0", "remaining_count_fp"),
        status=o.get("status", ""),
    )


def parse_fill(f: Mapping[str, Any]) -> Fill:
    """A Kalshi REST Fill object to kmm's :class:`~kmm.types.Fill`."""
    book_side = f.get("book_side")
    if book_side is None:
        book_side = "bid" if f.get("outcome_side", f.get("side")) == "yes" else "ask"
    created_ns = _parse_ns(f.get("created_time"))
    ts_ms = created_ns // 1_000_000 if created_ns is not None else int(f.get("ts", 0)) * 1000
    return Fill(
        trade_id=f.get("trade_id") or f["fill_id"],
        order_id=f["order_id"],
        ticker=f.get("market_ticker") or f["ticker"],
        side=BookSide(book_side),
        price=parse_price(f["yes_price_dollars"], "yes_price_dollars"),
        qty=parse_count(f["count_fp"], "count_fp"),
        fee=parse_money(f.get("fee_cost") or "0", "fee_cost"),
        is_taker=bool(f.get("is_taker")),
        ts_ms=ts_ms,
    )


def parse_position(p: Mapping[str, Any]) -> VenuePosition:
    """A Kalshi MarketPosition object to :class:`VenuePosition`."""
    return VenuePosition(
        ticker=p["ticker"],
        position=parse_count(p.get("position_fp") or "0", "position_fp"),
        realized_pnl=parse_money(p.get("realized_pnl_dollars") or "0", "realized_pnl_dollars"),
        fees_paid=parse_money(p.get("fees_paid_dollars") or "0", "fees_paid_dollars"),
        market_exposure=parse_money(
            p.get("market_exposure_dollars") or "0", "market_exposure_dollars"
        ),
    )


def parse_ack(body: Mapping[str, Any]) -> CreateAck:
    """The answer to a create or amend (``CreateOrderV2Response``/``AmendOrderV2Response``)."""
    return CreateAck(
        order_id=body["order_id"],
        client_order_id=body.get("client_order_id"),
        filled=parse_count(body.get("fill_count") or "0", "fill_count"),
        remaining=parse_count(body.get("remaining_count") or "0", "remaining_count"),
        ts_ms=body.get("ts_ms"),
    )


def _decode(status: int, raw: bytes) -> Any:
    """The decoded JSON body of a 2xx answer; the typed error of any other."""
    if status >= 300:
        raise error_from_response(status, raw)
    return orjson.loads(raw) if raw else {}


async def _raise(error: Exception) -> Any:
    raise error


async def _then(pending: Awaitable[Any], parse: Callable[[Any], T]) -> T:
    """``parse`` of what ``pending`` gives (a write already started)."""
    return parse(await pending)


def parse_batch_items(answer: Mapping[str, Any]) -> list[BatchItem]:
    """The per-item answers of a batch create or cancel."""
    return [_batch_item(item) for item in answer["orders"]]


def _reduced_by(answer: Mapping[str, Any]) -> Qty:
    return parse_count(answer.get("reduced_by") or "0", "reduced_by")


def _batch_item(item: Mapping[str, Any]) -> BatchItem:
    error = item.get("error")
    if error:
        err = error_from_response(400, orjson.dumps({"error": error}))
        return BatchItem(item.get("order_id"), item.get("client_order_id"), 0, 0, err)
    return BatchItem(
        item.get("order_id"),
        item.get("client_order_id"),
        parse_count(item.get("fill_count") or "0", "fill_count"),
        parse_count(item.get("remaining_count") or item.get("reduced_by") or "0", "count"),
        None,
    )


# --------------------------------------------------------------------------- client

ORDERS_PATH: Final = "/portfolio/events/orders"
BATCH_PATH: Final = "/portfolio/events/orders/batched"
PRESIGNED_PATHS: Final = (
    ("POST", ORDERS_PATH),
    ("POST", BATCH_PATH),
    ("DELETE", BATCH_PATH),
)
"""The order path's fixed (method, path) pairs, whose signatures are prepared ahead."""


def _presign_all(signer: Signer, paths: Sequence[tuple[str, str]], now_ms: int) -> None:
    for method, path in paths:
        signer.presign(method, path, now_ms)


class KalshiRest:
    """Typed access to Kalshi's REST API for one account.

    Args:
        session: The shared ``aiohttp.ClientSession`` (the caller owns and closes it).
        base_url: The API root, e.g. ``https://external-api.kalshi.com/trade-api/v2``.
        signer: Signs requests; ``None`` for public market data only.
        timeout_s: Per-request timeout; a write that times out is an unknown outcome.
        now_ms: The clock for signature timestamps (injected for tests).
        rng: Jitter source for read retries.
        lane: The order lane for writes (started and closed by the caller), or None for
            aiohttp only.
        subaccount: The subaccount every order and portfolio request is for (0 = primary,
            1–63; see the module docstring).

    Raises:
        ValueError: for a subaccount outside 0–63.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        signer: Signer | None,
        *,
        timeout_s: float = 5.0,
        now_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        rng: random.Random | None = None,
        lane: OrderLane | None = None,
        subaccount: int = 0,
    ) -> None:
        if not 0 <= subaccount <= MAX_SUBACCOUNT:
            raise ValueError(
                f"subaccount: must be between 0 and {MAX_SUBACCOUNT}, got {subaccount}"
            )
        self.subaccount = subaccount
        self._sub: Final[dict[str, str | int]] = {"subaccount": subaccount}
        self._sub_query: Final = "?" + urlencode(self._sub)  # rendered once for the lane
        self._session = session
        self._lane = lane
        self._base = base_url.rstrip("/")
        self._root = urlsplit(self._base).path.rstrip("/")
        self._signer = signer
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._now_ms = now_ms
        self._rng = rng or random.Random()
        self.requests = 0

    # ----------------------------------------------------------------- transport

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        body: object = None,
    ) -> Any:
        """Sends one request over aiohttp and returns the decoded JSON body of a 2xx answer.

        Raises:
            VenueError: the typed error for anything else (see the module docstring).
        """
        headers = self._headers(method, path, body is not None)
        data = orjson.dumps(body) if body is not None else None
        self.requests += 1
        try:
            async with self._session.request(
                method,
                self._base + path,
                params=params,
                data=data,
                headers=headers,
                timeout=self._timeout,
            ) as response:
                raw = await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as e:
            raise UnknownOutcome(0, type(e).__name__, f"{method} {path}: {e}") from e
        return _decode(status, raw)

    def write(
        self,
        method: str,
        path: str,
        body: object,
        params: Mapping[str, str | int] | None = None,
    ) -> Awaitable[Any]:
        """Starts an order write now and returns an awaitable for its decoded answer.

        On the order lane (when attached and a connection is idle) the request is on the
        wire when this returns; otherwise it is an aiohttp :meth:`request`, sent when
        awaited. Either way the answer maps to the same typed errors, and a dropped
        connection or a timeout is an :class:`~kmm.errors.UnknownOutcome`. ``params`` is
        the query string (never signed: Kalshi signs the path alone).
        """
        lane = self._lane
        if lane is not None:
            has_body = body is not None
            try:
                data = orjson.dumps(body) if has_body else b""
                headers = self._headers(method, path, has_body)
                target = self._root + path
                if params is self._sub:
                    target += self._sub_query
                elif params:
                    target += "?" + urlencode(params)
                sent = lane.send(method, target, headers, data)
            except Exception as e:
                # Nothing was written; the error surfaces where the answer is awaited, as it
                # does on the aiohttp path, not in the caller's planning loop
                return _raise(e)
            if sent is not None:
                self.requests += 1
                return self._answer(method, path, sent)
        return self.request(method, path, params=params, body=body)

    async def _answer(self, method: str, path: str, sent: Awaitable[LaneResponse]) -> Any:
        try:
            response = await sent
        except LaneError as e:
            raise UnknownOutcome(0, "LaneError", f"{method} {path}: {e}") from e
        return _decode(response.status, response.body)

    def _headers(self, method: str, path: str, has_body: bool) -> dict[str, str]:
        headers = {"Content-Type": "application/json"} if has_body else {}
        if self._signer is not None:
            headers.update(self._signer.headers(method, self._root + path, self._now_ms()))
        return headers

    async def presign_forever(
        self,
        *,
        every_s: float = 1.0,
        more: Callable[[], Iterable[tuple[str, str]]] = lambda: (),
    ) -> None:
        """Keeps fresh signatures for the order path, signed off the event loop.

        Every ``every_s`` it signs the fixed order-write paths and the ``(method, path)``
        pairs ``more()`` returns (paths under the API root, e.g. the amend path of each
        resting order) on a worker thread. Runs until cancelled. Effective only with a
        signer whose ``reuse_ms`` is larger than ``every_s``.
        """
        while True:
            await self.presign([*PRESIGNED_PATHS, *more()])
            await asyncio.sleep(every_s)

    async def presign(self, paths: Iterable[tuple[str, str]]) -> None:
        """Signs ``(method, path)`` pairs (under the API root) now, on a worker thread."""
        signer = self._signer
        if signer is None or not signer.reuse_ms:
            return
        full = [(m, self._root + p) for m, p in paths]
        await asyncio.to_thread(_presign_all, signer, full, self._now_ms())

    @staticmethod
    def amend_path(order_id: str) -> tuple[str, str]:
        """The ``(method, path)`` of an order's amend, for :meth:`presign`."""
        return ("POST", f"/portfolio/events/orders/{order_id}/amend")

    async def _read(self, call: Callable[[], Awaitable[T]]) -> T:
        """Runs a read, retrying unknown outcomes and 429s with backoff and jitter."""
        for attempt in range(_READ_ATTEMPTS):
            try:
                return await call()
            except (UnknownOutcome, RateLimited):
                if attempt == _READ_ATTEMPTS - 1:
                    raise
                delay = min(_BACKOFF_MAX_S, _BACKOFF_BASE_S * 2**attempt)
                await asyncio.sleep(delay * (0.5 + self._rng.random() / 2))
        raise AssertionError("unreachable")

    async def get(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        """A GET with read retries."""
        return await self._read(lambda: self.request("GET", path, params=params))

    async def _pages(
        self,
        path: str,
        key: str,
        params: Mapping[str, str | int] | None = None,
        *,
        limit: int = _PAGE_LIMIT,
        max_pages: int | None = None,
    ) -> list[Any]:
        """Every item of a cursor-paginated collection (at most ``max_pages`` pages)."""
        query: dict[str, str | int] = {**(params or {}), "limit": limit}
        items: list[Any] = []
        pages = 0
        while True:
            page = await self.get(path, query)
            pages += 1
            items.extend(page.get(key) or [])
            cursor = page.get("cursor")
            if not cursor or (max_pages is not None and pages >= max_pages):
                return items
            query["cursor"] = cursor

    # ----------------------------------------------------------------- reads

    async def exchange_status(self) -> ExchangeStatus:
        """Whether the exchange and trading are active."""
        body = await self.get("/exchange/status")
        return ExchangeStatus(bool(body["exchange_active"]), bool(body["trading_active"]))

    async def markets(
        self,
        *,
        tickers: Sequence[str] = (),
        series_ticker: str | None = None,
        event_ticker: str | None = None,
        status: str | None = "open",
    ) -> list[MarketInfo]:
        """Markets matching the filters (every page)."""
        params: dict[str, str | int] = {}
        if tickers:
            params["tickers"] = ",".join(tickers)
        if series_ticker:
            params["series_ticker"] = series_ticker
        if event_ticker:
            params["event_ticker"] = event_ticker
        if status:
            params["status"] = status
        return [parse_market(m) for m in await self._pages("/markets", "markets", params)]

    async def market(self, ticker: str) -> MarketInfo:
        """One market."""
        return parse_market((await self.get(f"/markets/{ticker}"))["market"])

    async def event_series(self, event_ticker: str) -> str:
        """The series ticker of an event."""
        body = await self.get(f"/events/{event_ticker}")
        event = body.get("event", body)
        return str(event["series_ticker"])

    async def series(self, series_ticker: str) -> SeriesInfo:
        """A series' fee type, multiplier and category."""
        return _series_info((await self.get(f"/series/{series_ticker}"))["series"])

    async def listings(self, *, status: str = "open") -> list[MarketListing]:
        """Every market of ``status``, combos left out (``mve_filter=exclude``), with what
        discovery reads of each."""
        params: dict[str, str | int] = {"status": status, "mve_filter": "exclude"}
        return [parse_listing(m) for m in await self._pages("/markets", "markets", params)]

    async def series_categories(self) -> dict[str, str]:
        """``GET /series``: each series' category, by series ticker."""
        return {ticker: info.category for ticker, info in (await self.all_series()).items()}

    async def all_series(self) -> dict[str, SeriesInfo]:
        """``GET /series`` (one request): every series' fees and category, by ticker."""
        body = await self.get("/series")
        return {str(s["ticker"]): _series_info(s) for s in body.get("series") or []}

    async def event_series_map(self, *, status: str = "open") -> dict[str, str]:
        """``GET /events?status=``: each event's series, by event ticker (every page)."""
        params: dict[str, str | int] = {"status": status}
        events = await self._pages("/events", "events", params, limit=_EVENTS_PAGE_LIMIT)
        return {str(e["event_ticker"]): str(e["series_ticker"]) for e in events}

    async def recent_trades(self, min_ts_s: int, *, max_pages: int) -> list[tuple[str, Qty]]:
        """``GET /markets/trades?min_ts=``: ``(ticker, count)`` of each public trade since
        ``min_ts_s`` (Unix seconds), at most ``max_pages`` pages of 1000."""
        params: dict[str, str | int] = {"min_ts": min_ts_s}
        trades = await self._pages("/markets/trades", "trades", params, max_pages=max_pages)
        return [(str(t["ticker"]), parse_count(t["count_fp"], "count_fp")) for t in trades]

    async def orderbooks(self, tickers: Sequence[str]) -> dict[str, OrderBookLegs]:
        """``GET /markets/orderbooks`` in batches of 100: ``(yes bids, no bids)`` by ticker,
        each ascending by price."""
        books: dict[str, OrderBookLegs] = {}
        for start in range(0, len(tickers), _ORDERBOOKS_BATCH):
            batch = ",".join(tickers[start : start + _ORDERBOOKS_BATCH])
            body = await self.get("/markets/orderbooks", {"tickers": batch})
            for entry in body.get("orderbooks") or []:
                books[str(entry["ticker"])] = parse_book_legs(entry.get("orderbook_fp") or {})
        return books

    async def orderbook(self, ticker: str) -> tuple[list[tuple[Price, Qty]], ...]:
        """``(yes bids, no bids)``, each ascending by price, in their own legs."""
        book = (await self.get(f"/markets/{ticker}/orderbook"))["orderbook_fp"]
        return tuple(
            [(parse_price(p, key), parse_count(q, key)) for p, q in book.get(key) or []]
            for key in ("yes_dollars", "no_dollars")
        )

    async def balance(self) -> Money:
        """The subaccount's available balance, exact (``balance_dollars``)."""
        body = await self.get("/portfolio/balance", self._sub)
        if "balance_dollars" in body:
            return parse_money(body["balance_dollars"], "balance_dollars")
        return int(body["balance"]) * 10_000

    async def positions(self) -> list[VenuePosition]:
        """Every unsettled market position of the subaccount."""
        rows = await self._pages("/portfolio/positions", "market_positions", self._sub)
        return [parse_position(p) for p in rows]

    async def resting_orders(self, ticker: str | None = None) -> list[VenueOrder]:
        """Every resting order of the subaccount (optionally in one market)."""
        params: dict[str, str | int] = {"status": "resting", **self._sub}
        if ticker:
            params["ticker"] = ticker
        return [parse_order(o) for o in await self._pages("/portfolio/orders", "orders", params)]

    async def orders_by_client_id(
        self, client_order_id: str, *, ticker: str | None = None
    ) -> list[VenueOrder]:
        """Orders of any status carrying ``client_order_id`` (settles an unknown create)."""
        params: dict[str, str | int] = {"ticker": ticker, **self._sub} if ticker else self._sub
        rows = await self._pages("/portfolio/orders", "orders", params)
        return [parse_order(o) for o in rows if o.get("client_order_id") == client_order_id]

    async def order(self, order_id: str) -> VenueOrder:
        """One order by its exchange id."""
        return parse_order((await self.get(f"/portfolio/orders/{order_id}"))["order"])

    async def queue_position(self, order_id: str) -> Qty:
        """The contracts ahead of a resting order at its price (price-time priority).

        Raises:
            Rejected: 404 if the order is unknown or no longer resting.
        """
        body = await self.get(f"/portfolio/orders/{order_id}/queue_position")
        return parse_count(body["queue_position_fp"], "queue_position_fp")

    async def queue_positions(
        self, *, market_tickers: Sequence[str] = (), event_ticker: str | None = None
    ) -> dict[str, Qty]:
        """The contracts ahead of each resting order of the subaccount, by exchange order id,
        optionally only in ``market_tickers`` or one event."""
        params: dict[str, str | int] = dict(self._sub)
        if market_tickers:
            params["market_tickers"] = ",".join(market_tickers)
        if event_ticker:
            params["event_ticker"] = event_ticker
        body = await self.get("/portfolio/orders/queue_positions", params)
        return {
            row["order_id"]: parse_count(row["queue_position_fp"], "queue_position_fp")
            for row in body["queue_positions"]
        }

    async def fills(self, *, min_ts_s: int | None = None, ticker: str | None = None) -> list[Fill]:
        """The subaccount's fills, oldest first, optionally since ``min_ts_s`` (Unix seconds)."""
        params: dict[str, str | int] = dict(self._sub)
        if min_ts_s is not None:
            params["min_ts"] = min_ts_s
        if ticker:
            params["ticker"] = ticker
        rows = await self._pages("/portfolio/fills", "fills", params)
        return sorted((parse_fill(f) for f in rows), key=lambda f: (f.ts_ms, f.trade_id))

    async def account_limits(self) -> AccountLimits:
        """The account's usage tier and Read/Write token budgets."""
        body = await self.get("/account/limits")
        read, write = body["read"], body["write"]
        return AccountLimits(
            body.get("usage_tier", ""),
            int(read["refill_rate"]),
            int(read["bucket_capacity"]),
            int(write["refill_rate"]),
            int(write["bucket_capacity"]),
        )

    # ----------------------------------------------------------------- writes (never retried)

    def create_order(self, order: OrderRequest) -> Awaitable[CreateAck]:
        """``POST /portfolio/events/orders`` (started now: see :meth:`write`)."""
        return _then(self.write("POST", ORDERS_PATH, order.body(self.subaccount)), parse_ack)

    def batch_create(self, orders: Sequence[OrderRequest]) -> Awaitable[list[BatchItem]]:
        """``POST /portfolio/events/orders/batched``: per-item acks or errors."""
        body = {"orders": [o.body(self.subaccount) for o in orders]}
        return _then(self.write("POST", BATCH_PATH, body), parse_batch_items)

    def cancel_order(self, order_id: str) -> Awaitable[Qty]:
        """``DELETE /portfolio/events/orders/{id}?subaccount=``; returns ``reduced_by``."""
        path = f"{ORDERS_PATH}/{order_id}"
        return _then(self.write("DELETE", path, None, self._sub), _reduced_by)

    def batch_cancel(self, order_ids: Sequence[str]) -> Awaitable[list[BatchItem]]:
        """``DELETE /portfolio/events/orders/batched``: per-item results or errors."""
        sub = self.subaccount
        body = {"orders": [{"order_id": oid, "subaccount": sub} for oid in order_ids]}
        return _then(self.write("DELETE", BATCH_PATH, body), parse_batch_items)

    def amend_order(
        self,
        order_id: str,
        *,
        ticker: str,
        side: BookSide,
        price: Price,
        count: Qty,
        client_order_id: str | None = None,
    ) -> Awaitable[CreateAck]:
        """``POST /portfolio/events/orders/{id}/amend?subaccount=``; ``count`` = filled + new
        remainder."""
        body: dict[str, Any] = {
            "ticker": ticker,
            "side": side.value,
            "price": format_price(price),
            "count": format_count(count),
        }
        if client_order_id is not None:
            body["client_order_id"] = client_order_id
        method, path = self.amend_path(order_id)
        return _then(
            self.write(method, path, body, self._sub),
            lambda a: parse_ack({"order_id": order_id, **a}),
        )

    async def create_order_group(self, contracts_limit: Qty) -> str:
        """Creates an order group of the subaccount; returns its id."""
        body = {"contracts_limit_fp": format_count(contracts_limit), "subaccount": self.subaccount}
        answer = await self.request("POST", "/portfolio/order_groups/create", body=body)
        return str(answer["order_group_id"])

    async def trigger_order_group(self, group_id: str) -> None:
        """Cancels every order of the group and blocks it until reset."""
        path = f"/portfolio/order_groups/{group_id}/trigger"
        await self.request("PUT", path, params=self._sub, body={})

    async def delete_order_group(self, group_id: str) -> None:
        """Cancels every order of the group and deletes it."""
        await self.request("DELETE", f"/portfolio/order_groups/{group_id}", params=self._sub)
