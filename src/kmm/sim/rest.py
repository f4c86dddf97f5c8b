"""The local exchange's REST API under ``/trade-api/v2``: routes, auth, rate limits, faults.

Theory of operation
-------------------
Every route is a row of :data:`ENDPOINTS`: method, path, handler name, whether it must be
signed, which token bucket pays for it and how much, and whether it is an order write. One
wrapper runs the same pipeline in front of every handler, in Kalshi's order:

1. fire scheduled faults that are due (publishing any engine events they caused);
2. authenticate (KALSHI.md §3): required on portfolio and account routes, optional on public
   market data (a public request that carries the headers is checked and metered);
3. read and parse the JSON body, if the route takes one (malformed → 400 ``bad_request``);
4. an injected 429 burst, then the user's Read or Write bucket of the venue's own
   :class:`~kmm.sim._limits.RateLimiter` (written from Kalshi's documentation, not the bot's
   model) at the route's cost, at the request's arrival (batches pay per item, all or
   nothing) → 429 ``{"error": "too many requests"}``;
5. for order writes, an injected write fault: ``5xx`` answers 500, ``timeout`` holds the
   request past any client timeout and drops the connection, each either after applying
   the write (``accepted``) or without touching the engine;
6. the handler, which raises :class:`HttpError` or lets the engine's
   :class:`~kmm.sim.engine.Rejection` through; both become Kalshi's error body
   ``{"error": {"code", "message", "details"}}``. After a write the venue publishes the
   engine's events to the websocket hub.

**Subaccounts** (``getting_started/subaccounts.md``): every portfolio route takes Kalshi's
``subaccount`` (0 = primary, 1–63; anything else is a 400) where its reference page does,
with that page's default when it is omitted: creates, cancels (query, or per batch item),
amends, decreases, order-group writes, positions and balance act on the primary account;
the order, fill, settlement and order-group lists and cancel-all cover every subaccount.
A subaccount
that was never created is a 404. ``POST /portfolio/subaccounts`` creates the next one,
``POST /portfolio/subaccounts/transfer`` moves cash between two (``amount_cents``,
idempotent on ``client_transfer_id``: a replay is a 409), and
``GET /portfolio/subaccounts/balances`` / ``GET /portfolio/subaccounts/transfers`` read
them back.

**Candlesticks** (``GET /series/{series_ticker}/markets/{ticker}/candlesticks``, the batch
``GET /markets/candlesticks``, ``GET /series/{series_ticker}/events/{ticker}/candlesticks`` and
``GET /events/candlesticks``) come from what happened on this exchange: the top of book and
open interest recorded event by event by :class:`~kmm.sim._candles.CandleRecorder`, which the
API registers with the venue when it is built, and the engine's public trades. ``start_ts`` and
``end_ts`` (Unix seconds) select candlesticks by their inclusive end; ``period_interval`` is 1,
60 or 1440 minutes (any whole number of minutes in the batch, whose page sets only a minimum);
periods in which nothing happened are left out. The batch returns at most 10 000 candlesticks
in all (the first ones); the event routes move ``adjusted_end_ts`` back so that markets ×
periods stays within 5 000.

**Other reads and settings.** ``GET /events/{event_ticker}/metadata`` (no artwork: empty image
paths), ``GET /events/fee_changes`` and ``GET /series/fee_changes`` (the sim schedules no fee
changes: always empty), ``GET /historical/cutoff`` (every cutoff is the venue's start, before
which nothing exists, so no data is historical), ``GET /exchange/user_data_timestamp`` (the
sim has no replication lag: now), ``GET``/``PUT /portfolio/subaccounts/netting`` (a setting per
subaccount, kept on the engine's accounts), ``GET /portfolio/summary/total_resting_order_value``
(what the resting orders of every subaccount would cost: YES price × remaining for a bid,
``$1`` − price for an ask) and the API keys: ``GET /api_keys`` lists the caller's keys (never
key material), ``POST /api_keys`` registers one from the caller's RSA public key (premier tier
and above, as documented), ``DELETE /api_keys/{api_key}`` removes one (204). A key restricted
to a subaccount may not create or delete keys (403); the sim records the restriction and the
scopes of a key but does not enforce them on other routes.

**Routing.** aiohttp indexes routes by path and tries the longest literal prefix first, so a
static path such as ``/markets/candlesticks`` beats ``/markets/{ticker}`` for the methods it
serves. For every other method it would fall through to the templated neighbour; so every
static path also gets a catch-all route that answers 405, and static paths are registered
before templated ones, which keeps the rule under a dispatcher that resolves in registration
order.

Request bodies are validated by hand (they are small and off any hot path); a bad field is a
400 naming it. Money and counts go through :mod:`kmm.types` and never through ``float``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, TypeVar

import orjson
from aiohttp import hdrs, web

from kmm.errors import FixedPointError, KmmError
from kmm.kalshi.auth import ACCESS_KEY, ACCESS_SIGNATURE, ACCESS_TIMESTAMP, verify
from kmm.kalshi.constants import API_PREFIX, WS_PATH
from kmm.sim import serialize as ser
from kmm.sim._accounts import MAX_SUBACCOUNT
from kmm.sim._candles import MINUTE_S, CandleRecorder, adjusted_end
from kmm.sim._limits import DEFAULT_COST, TIER_LIMITS, BucketKind, RateLimiter
from kmm.sim.engine import (
    EventDef,
    MarketDef,
    MarketStatus,
    OrderRequest,
    OrderStatus,
    Position,
    Rejection,
    SelfTradePrevention,
    SimOrder,
    TimeInForce,
)
from kmm.sim.faults import WriteFault
from kmm.sim.keys import DEFAULT_SCOPES, KeyRecord, KeyStore
from kmm.types import (
    ONE_DOLLAR,
    BookSide,
    Money,
    Price,
    Qty,
    format_count,
    parse_count,
    parse_price,
)

if TYPE_CHECKING:
    from kmm.sim.server import SimVenue

__all__ = [
    "ENDPOINTS",
    "Endpoint",
    "HttpError",
    "RestApi",
    "WsHandler",
]

log = logging.getLogger(__name__)

Json = dict[str, Any]
WsHandler = Callable[[web.Request, str], Awaitable[web.StreamResponse]]
E = TypeVar("E", bound=StrEnum)

_NS_PER_MS: Final = 1_000_000
_MONEY_PER_CENT: Final = 10_000
_NS_PER_S: Final = 1_000_000_000
_DEFAULT_LIMIT: Final = 100
_MAX_LIMIT: Final = 1000
_MAX_EVENTS_LIMIT: Final = 200
_MAX_ORDERBOOK_TICKERS: Final = 100
_TOO_MANY: Final = orjson.dumps({"error": "too many requests"})
_CANDLE_PERIODS: Final = (1, 60, 1440)
"""The ``period_interval`` values (minutes) the single-market and event candlestick pages allow."""
_MAX_CANDLE_MARKETS: Final = 100
_MAX_BATCH_CANDLES: Final = 10_000
_MAX_EVENT_CANDLES: Final = 5_000
_KEY_SCOPES: Final = frozenset(
    {
        "read",
        "write",
        "read::portfolio_balance",
        "read::block_trade_accept",
        "write::trade",
        "write::transfer",
        "write::block_trade_accept",
    }
)
"""The API key scopes Kalshi documents."""
_KEY_CREATE_TIERS: Final = frozenset(list(TIER_LIMITS)[list(TIER_LIMITS).index("premier") :])
"""Usage tiers that may register a key from their own public key (premier and above)."""
_RESTRICTED_KEY: Final = (
    "this API key is restricted to a single sub-account and cannot access this endpoint"
)

_MARKET_STATUS_FILTER: Final[dict[str, frozenset[str]]] = {
    "unopened": frozenset({MarketStatus.INITIALIZED.value}),
    "open": frozenset({MarketStatus.ACTIVE.value}),
    "paused": frozenset({MarketStatus.INACTIVE.value}),
    "closed": frozenset({MarketStatus.CLOSED.value, MarketStatus.DETERMINED.value}),
    "settled": frozenset({MarketStatus.FINALIZED.value}),
}
"""``GET /markets?status=`` values → the ``Market.status`` values they select."""


class HttpError(KmmError):
    """An error answer: HTTP ``status`` with Kalshi's body ``{"error": {code, message, details}}``.

    Attributes:
        status: The HTTP status.
        code: Kalshi's error code.
        message: The human-readable message.
        details: What exactly was wrong (naming the field), or ``None``.
    """

    def __init__(self, status: int, code: str, message: str, details: str | None = None) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        super().__init__(f"{status} {code}: {message}" + (f" ({details})" if details else ""))


def _bad_request(details: str) -> HttpError:
    return HttpError(400, "bad_request", "bad request", details)


def _invalid_order(details: str) -> HttpError:
    return HttpError(400, "invalid_order", "invalid order", details)


def _not_found(what: str) -> HttpError:
    return HttpError(404, "not_found", f"{what} not found")


def _unauthorized(code: str, details: str | None = None) -> HttpError:
    message = "header timestamp expired" if code == "header_timestamp_expired" else "unauthorized"
    return HttpError(401, code, message, details)


# --------------------------------------------------------------------------- route table


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One REST route and how the venue meters it.

    Attributes:
        method: HTTP method.
        path: Path under ``/trade-api/v2`` in aiohttp syntax (``{order_id}``).
        handler: Name of the :class:`RestApi` method that answers it.
        auth: ``"required"`` (portfolio, account), ``"optional"`` (public market data) or
            ``"none"``.
        bucket: ``"read"`` or ``"write"``.
        cost: Tokens per request, or per item when ``items`` is set.
        items: For batches: the body key whose list length multiplies ``cost``.
        write: Whether this is an order write (subject to injected write faults).
        body: Whether the route reads a JSON body.
    """

    method: str
    path: str
    handler: str
    auth: str = "required"
    bucket: str = "read"
    cost: int = DEFAULT_COST
    items: str | None = None
    write: bool = False
    body: bool = False


def _public(path: str, handler: str) -> Endpoint:
    return Endpoint("GET", path, handler, auth="optional")


def _read(path: str, handler: str, cost: int = DEFAULT_COST) -> Endpoint:
    return Endpoint("GET", path, handler, cost=cost)


def _write(
    method: str, path: str, handler: str, cost: int = DEFAULT_COST, items: str | None = None
) -> Endpoint:
    body = method != "DELETE" or items is not None
    return Endpoint(method, path, handler, "required", "write", cost, items, True, body)


def _v1(method: str, path: str) -> Endpoint:
    return Endpoint(method, path, "deprecated_v1", auth="none")


_ORDERS: Final = "/portfolio/events/orders"
_GROUPS: Final = "/portfolio/order_groups"
_SUBACCOUNTS: Final = "/portfolio/subaccounts"

ENDPOINTS: Final[tuple[Endpoint, ...]] = (
    _public("/exchange/status", "exchange_status"),
    _public("/exchange/schedule", "exchange_schedule"),
    _public("/exchange/user_data_timestamp", "user_data_timestamp"),
    _public("/historical/cutoff", "historical_cutoff"),
    _public("/series", "series_list"),
    _public("/series/fee_changes", "series_fee_changes"),
    _public("/series/{series_ticker}", "series_one"),
    _public("/series/{series_ticker}/markets/{ticker}/candlesticks", "market_candlesticks"),
    _public("/series/{series_ticker}/events/{ticker}/candlesticks", "event_candlesticks"),
    _public("/events", "events_list"),
    _public("/events/candlesticks", "events_candlesticks"),
    _public("/events/fee_changes", "event_fee_changes"),
    _public("/events/{event_ticker}", "event_one"),
    _public("/events/{event_ticker}/metadata", "event_metadata"),
    _public("/markets", "markets_list"),
    _public("/markets/trades", "trades_list"),
    _public("/markets/orderbooks", "orderbooks"),
    _public("/markets/candlesticks", "batch_candlesticks"),
    _public("/markets/{ticker}", "market_one"),
    _public("/markets/{ticker}/orderbook", "orderbook"),
    _read("/api_keys", "api_keys"),
    Endpoint("POST", "/api_keys", "api_key_create", body=True),
    Endpoint("DELETE", "/api_keys/{api_key}", "api_key_delete"),
    _read("/account/limits", "account_limits"),
    _public("/account/endpoint_costs", "endpoint_costs"),
    _read("/portfolio/balance", "balance"),
    _read("/portfolio/positions", "positions"),
    _read("/portfolio/orders", "orders_list"),
    _read("/portfolio/orders/queue_positions", "queue_positions"),
    _read("/portfolio/orders/{order_id}", "order_one", cost=2),
    _read("/portfolio/orders/{order_id}/queue_position", "queue_position_one"),
    _read("/portfolio/fills", "fills"),
    _read("/portfolio/settlements", "settlements"),
    _read(_GROUPS, "order_groups"),
    _read(_GROUPS + "/{order_group_id}", "order_group_one"),
    Endpoint("POST", _SUBACCOUNTS, "subaccount_create", body=True),
    Endpoint("POST", _SUBACCOUNTS + "/transfer", "subaccount_transfer", body=True),
    _read(_SUBACCOUNTS + "/balances", "subaccount_balances"),
    _read(_SUBACCOUNTS + "/transfers", "subaccount_transfers"),
    _read(_SUBACCOUNTS + "/netting", "netting"),
    Endpoint("PUT", _SUBACCOUNTS + "/netting", "netting_update", body=True),
    _read("/portfolio/summary/total_resting_order_value", "total_resting_order_value"),
    _write("POST", _ORDERS, "create_order"),
    _write("DELETE", _ORDERS, "cancel_all"),
    _write("POST", _ORDERS + "/batched", "batch_create", items="orders"),
    _write("DELETE", _ORDERS + "/batched", "batch_cancel", cost=2, items="orders"),
    _write("DELETE", _ORDERS + "/{order_id}", "cancel_order", cost=2),
    _write("POST", _ORDERS + "/{order_id}/amend", "amend_order"),
    _write("POST", _ORDERS + "/{order_id}/decrease", "decrease_order"),
    _write("POST", _GROUPS + "/create", "group_create"),
    _write("PUT", _GROUPS + "/{order_group_id}/reset", "group_reset"),
    _write("PUT", _GROUPS + "/{order_group_id}/trigger", "group_trigger"),
    _write("PUT", _GROUPS + "/{order_group_id}/limit", "group_limit"),
    _write("DELETE", _GROUPS + "/{order_group_id}", "group_delete"),
    _v1("POST", "/portfolio/orders"),
    _v1("POST", "/portfolio/orders/batched"),
    _v1("DELETE", "/portfolio/orders/batched"),
    _v1("DELETE", "/portfolio/orders/{order_id}"),
    _v1("POST", "/portfolio/orders/{order_id}/amend"),
    _v1("POST", "/portfolio/orders/{order_id}/decrease"),
)
"""Every REST route of the sim (:meth:`RestApi.routes` registers static paths first)."""


@dataclass(slots=True)
class Call:
    """What the pipeline hands a handler: the caller, the time and the parsed body."""

    user_id: str
    now_ns: int
    body: Json


Handler = Callable[[web.Request, Call], Awaitable[web.StreamResponse]]


def _json(obj: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")


def _error(e: HttpError | Rejection) -> web.Response:
    details = e.details
    return _json(ser.error_body(e.code, e.message, details), e.status)


# --------------------------------------------------------------------------- request parsing


def _query_int(request: web.Request, name: str) -> int | None:
    text = request.query.get(name)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise _bad_request(f"{name}: expected an integer, got {text!r}") from None


def _page_args(request: web.Request, max_limit: int = _MAX_LIMIT) -> tuple[int, int]:
    """``(limit, start)``: ``limit`` in [1, max_limit] (default 100), ``start`` from ``cursor``."""
    limit = _query_int(request, "limit")
    if limit is None:
        limit = _DEFAULT_LIMIT
    if not 1 <= limit <= max_limit:
        raise _bad_request(f"limit: must be between 1 and {max_limit}, got {limit}")
    cursor = request.query.get("cursor", "")
    if not cursor:
        return limit, 0
    if not cursor.isdigit():
        raise _bad_request(f"cursor: not a cursor this server issued: {cursor!r}")
    return limit, int(cursor)


T = TypeVar("T")


def _page(items: Sequence[T], limit: int, start: int) -> tuple[list[T], str]:
    """One page of ``items`` from ``start`` and the cursor of the next ("" at the end)."""
    page = list(items[start : start + limit])
    end = start + len(page)
    return page, (str(end) if end < len(items) else "")


def _csv(request: web.Request, name: str) -> list[str] | None:
    text = request.query.get(name)
    if not text:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


def _in_window(ts_ns: int, min_s: int | None, max_s: int | None) -> bool:
    secs = ts_ns // _NS_PER_S
    return (min_s is None or secs >= min_s) and (max_s is None or secs <= max_s)


class _Fields:
    """Typed access to a JSON object's fields; a bad field raises a 400 naming it."""

    __slots__ = ("_body", "_fail")

    def __init__(self, body: Json, fail: Callable[[str], HttpError]) -> None:
        self._body = body
        self._fail = fail

    def present(self, name: str) -> bool:
        return self._body.get(name) is not None

    def text(self, name: str, *, required: bool = False) -> str | None:
        value = self._body.get(name)
        if value is None:
            if required:
                raise self._fail(f"{name}: required")
            return None
        if not isinstance(value, str) or (required and not value):
            raise self._fail(f"{name}: expected a non-empty string, got {value!r}")
        return value

    def flag(self, name: str) -> bool:
        value = self._body.get(name)
        if value is None:
            return False
        if not isinstance(value, bool):
            raise self._fail(f"{name}: expected true or false, got {value!r}")
        return value

    def integer(self, name: str) -> int | None:
        value = self._body.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(f"{name}: expected an integer, got {value!r}")
        return value

    def choice(self, name: str, kind: type[E]) -> E:
        value = self._body.get(name)
        try:
            return kind(value if isinstance(value, str) else repr(value))
        except ValueError:
            allowed = ", ".join(m.value for m in kind)
            raise self._fail(f"{name}: must be one of {allowed}, got {value!r}") from None

    def price(self, name: str) -> Price:
        text = self.text(name, required=True)
        assert text is not None
        try:
            return parse_price(text, name)
        except FixedPointError as e:
            raise self._fail(str(e)) from None

    def count(self, name: str, *, required: bool = False) -> Qty | None:
        text = self.text(name, required=required)
        if text is None:
            return None
        try:
            return parse_count(text, name)
        except FixedPointError as e:
            raise self._fail(str(e)) from None


def _required_query_int(request: web.Request, name: str) -> int:
    value = _query_int(request, name)
    if value is None:
        raise _bad_request(f"{name}: required")
    return value


def _query_bool(request: web.Request, name: str) -> bool:
    """A boolean query parameter (``true``/``false``, ``1``/``0``); false when omitted."""
    text = request.query.get(name, "")
    if text.lower() in ("", "false", "0"):
        return False
    if text.lower() in ("true", "1"):
        return True
    raise _bad_request(f"{name}: expected true or false, got {text!r}")


@dataclass(frozen=True, slots=True)
class _CandleQuery:
    """A candlestick request's window (Unix seconds), period and continuity flag."""

    start_ts: int
    end_ts: int
    period_s: int
    latest_before: bool = False


def _candle_query(
    request: web.Request, periods: Sequence[int] | None, *, latest: bool = False
) -> _CandleQuery:
    """``start_ts``, ``end_ts`` and ``period_interval`` (one of ``periods``, or any whole
    number of minutes when ``None``), and ``include_latest_before_start`` where ``latest``.

    Raises:
        HttpError: 400 naming the missing or bad parameter.
    """
    start = _required_query_int(request, "start_ts")
    end = _required_query_int(request, "end_ts")
    minutes = _required_query_int(request, "period_interval")
    if periods is None and minutes < 1:
        raise _bad_request(f"period_interval: must be at least 1, got {minutes}")
    if periods is not None and minutes not in periods:
        allowed = ", ".join(map(str, periods))
        raise _bad_request(f"period_interval: must be one of {allowed}, got {minutes}")
    if start > end:
        raise _bad_request(f"start_ts: must not be after end_ts ({start} > {end})")
    flag = _query_bool(request, "include_latest_before_start") if latest else False
    return _CandleQuery(start, end, minutes * MINUTE_S, flag)


def _mve_filter(request: web.Request) -> bool | None:
    """``mve_filter``: ``only`` → True (combos only), ``exclude`` → False, absent → None."""
    value = request.query.get("mve_filter")
    if value is None or value == "":
        return None
    if value not in ("only", "exclude"):
        raise _bad_request(f"mve_filter: must be 'only' or 'exclude', got {value!r}")
    return value == "only"


def _required_csv(request: web.Request, name: str, limit: int | None = None) -> list[str]:
    values = _csv(request, name)
    if not values:
        raise _bad_request(f"{name}: required")
    if limit is not None and len(values) > limit:
        raise _bad_request(f"{name}: at most {limit}, got {len(values)}")
    return values


def _static_methods() -> dict[str, list[str]]:
    """Every static path of :data:`ENDPOINTS` and the methods it serves."""
    methods: dict[str, list[str]] = {}
    for ep in ENDPOINTS:
        if "{" not in ep.path:
            methods.setdefault(ep.path, []).append(ep.method)
    return methods


def _method_not_allowed(methods: Sequence[str]) -> Callable[[web.Request], Awaitable[Any]]:
    """A catch-all handler for a static path: 405 with Kalshi's JSON error and ``Allow``."""
    allow = ", ".join(methods)

    async def refuse(request: web.Request) -> web.Response:
        body = ser.error_body("method_not_allowed", "method not allowed", request.method)
        response = _json(body, 405)
        response.headers[hdrs.ALLOW] = allow
        return response

    return refuse


def _resting_cost(order: SimOrder) -> Money:
    """What the rest of a resting order costs if it fills: its own leg's price × remaining."""
    own = order.price if order.book_side is BookSide.BID else ONE_DOLLAR - order.price
    return own * order.remaining


def _key_scopes(body: Json) -> tuple[str, ...]:
    """A create-key body's ``scopes`` (full access when omitted).

    Raises:
        HttpError: 400 for anything but a non-empty array of documented scopes, or ``write``
            without ``read``.
    """
    value = body.get("scopes")
    if value is None:
        return DEFAULT_SCOPES
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise _bad_request(f"scopes: expected a non-empty array of strings, got {value!r}")
    unknown = sorted(set(value) - _KEY_SCOPES)
    if unknown:
        raise _bad_request(f"scopes: unknown scope {unknown[0]!r}")
    if "write" in value and "read" not in value:
        raise _bad_request("scopes: 'write' must come with 'read'")
    return tuple(dict.fromkeys(value))


def _subaccount_number(value: int | None, where: str) -> int | None:
    if value is not None and not 0 <= value <= MAX_SUBACCOUNT:
        raise _bad_request(f"{where}: must be between 0 and {MAX_SUBACCOUNT}, got {value}")
    return value


def _body_subaccount(fields: _Fields) -> int:
    """A body's ``subaccount`` (0, the primary, when omitted)."""
    return _subaccount_number(fields.integer("subaccount"), "subaccount") or 0


def _query_subaccount(request: web.Request) -> int | None:
    """The ``subaccount`` query parameter, or ``None`` when it is omitted."""
    return _subaccount_number(_query_int(request, "subaccount"), "subaccount")


def _query_subaccount_or_primary(request: web.Request) -> int:
    """The ``subaccount`` query parameter, 0 (the primary) when it is omitted."""
    return _query_subaccount(request) or 0


def order_request(body: Json) -> OrderRequest:
    """Validates the types of a ``CreateOrderV2Request`` body into an engine request (the
    engine checks the values: grid, size, expiration, balance ...).

    Raises:
        HttpError: 400 ``invalid_order`` naming the first bad field.
    """
    f = _Fields(body, _invalid_order)
    subaccount = _body_subaccount(f)
    ticker = f.text("ticker", required=True)
    assert ticker is not None
    count = f.count("count", required=True)
    assert count is not None
    return OrderRequest(
        ticker=ticker,
        book_side=f.choice("side", BookSide),
        price=f.price("price"),
        count=count,
        time_in_force=f.choice("time_in_force", TimeInForce),
        self_trade_prevention=f.choice("self_trade_prevention_type", SelfTradePrevention),
        client_order_id=f.text("client_order_id") or None,
        post_only=f.flag("post_only"),
        reduce_only=f.flag("reduce_only"),
        cancel_order_on_pause=f.flag("cancel_order_on_pause"),
        order_group_id=f.text("order_group_id") or None,
        expiration_s=f.integer("expiration_time"),
        subaccount=subaccount,
    )


def _contracts_limit(body: Json) -> Qty:
    f = _Fields(body, _bad_request)
    whole = f.integer("contracts_limit")
    fp = f.count("contracts_limit_fp")
    if whole is None and fp is None:
        raise _bad_request("contracts_limit: one of contracts_limit or contracts_limit_fp")
    if whole is not None and fp is not None and whole * 100 != fp:
        raise _bad_request("contracts_limit: contracts_limit and contracts_limit_fp differ")
    return fp if fp is not None else (whole or 0) * 100


def _required_int(fields: _Fields, name: str) -> int:
    value = fields.integer(name)
    if value is None:
        raise _bad_request(f"{name}: required")
    return value


def _required_flag(fields: _Fields, name: str) -> bool:
    if not fields.present(name):
        raise _bad_request(f"{name}: required")
    return fields.flag(name)


def _exchange_index(fields: _Fields) -> None:
    index = fields.integer("exchange_index")
    if index not in (None, 0):
        raise _bad_request(f"exchange_index: the sim has only exchange index 0, got {index}")


def _list_field(body: Json, name: str) -> list[Any]:
    items = body.get(name)
    if not isinstance(items, list) or not items:
        raise _bad_request(f"{name}: expected a non-empty array")
    return items


# --------------------------------------------------------------------------- the API


class RestApi:
    """The REST routes of one sim instance.

    Building it registers a :class:`~kmm.sim._candles.CandleRecorder` with the venue, which
    starts from the engine's current books: build it once the engine's earlier events have
    been drained (as :class:`~kmm.sim.server.SimServer` does).

    Args:
        venue: The engine, faults, clock and publisher.
        keys: The registered API keys.
        tier: The usage tier every account is metered at (``kmm.sim._limits.TIER_LIMITS``).
        signature_max_age_ms: How far a ``KALSHI-ACCESS-TIMESTAMP`` may be from the clock.
        write_timeout_hold_s: How long a ``timeout`` write fault holds the request.
        ws_handler: Serves the websocket after its handshake is authenticated.
    """

    def __init__(
        self,
        venue: SimVenue,
        keys: KeyStore,
        *,
        tier: str,
        signature_max_age_ms: int,
        write_timeout_hold_s: float,
        ws_handler: WsHandler | None = None,
    ) -> None:
        if tier.lower() not in TIER_LIMITS:
            known = ", ".join(TIER_LIMITS)
            raise ValueError(f"tier: unknown usage tier {tier!r}; known: {known}")
        self.venue = venue
        self.keys = keys
        self.tier = tier.lower()
        self.signature_max_age_ms = signature_max_age_ms
        self.write_timeout_hold_s = write_timeout_hold_s
        self._ws_handler = ws_handler
        self.limiter = RateLimiter(TIER_LIMITS[self.tier])
        """The venue's Read and Write buckets of every account, and its count of 429s."""
        self.candles = CandleRecorder(venue.engine)
        """Every market's top of book and open interest, event by event, for candlesticks."""
        venue.add_listener(self.candles.on_events)
        self._closing = asyncio.Event()

    # ------------------------------------------------------------------ plumbing

    def routes(self) -> list[web.RouteDef]:
        """Every REST route plus the websocket handshake, wrapped in the pipeline.

        Static paths come first, and each also gets a catch-all route answering 405 to the
        methods it does not serve, so that no request for a static path reaches a templated
        neighbour (``/markets/candlesticks`` is never ``/markets/{ticker}``).
        """
        ordered = sorted(ENDPOINTS, key=lambda ep: "{" in ep.path)
        defs = [
            web.route(ep.method, API_PREFIX + ep.path, self._wrap(ep, getattr(self, ep.handler)))
            for ep in ordered
        ]
        defs += [
            web.route(hdrs.METH_ANY, API_PREFIX + path, _method_not_allowed(methods))
            for path, methods in _static_methods().items()
        ]
        if self._ws_handler is not None:
            defs.append(web.get(WS_PATH, self._websocket))
        return defs

    @web.middleware
    async def not_found_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Answers unknown paths and methods with Kalshi's JSON error body, not aiohttp's text."""
        try:
            return await handler(request)
        except web.HTTPNotFound:
            return _json(ser.error_body("not_found", "not found", request.path), 404)
        except web.HTTPMethodNotAllowed:
            body = ser.error_body("method_not_allowed", "method not allowed", request.method)
            return _json(body, 405)

    def release_held(self) -> None:
        """Ends every request held by a ``timeout`` fault (call before shutting down)."""
        self._closing.set()

    def _wrap(self, ep: Endpoint, handler: Handler) -> Callable[[web.Request], Awaitable[Any]]:
        async def run(request: web.Request) -> web.StreamResponse:
            try:
                return await self._pipeline(ep, handler, request)
            except (HttpError, Rejection) as e:
                return _error(e)

        return run

    async def _pipeline(
        self, ep: Endpoint, handler: Handler, request: web.Request
    ) -> web.StreamResponse:
        venue = self.venue
        now_ns = venue.clock.now_ns()
        if venue.faults.apply_due(now_ns):
            venue.publish()
        user_id = self._caller(ep, request, now_ns)
        body = await self._body(request) if ep.body else {}
        if user_id and not self._admit(ep, user_id, body):
            return web.Response(body=_TOO_MANY, status=429, content_type="application/json")
        fault = venue.faults.take_write_fault() if ep.write else None
        if fault is not None and not fault.accepted:
            return await self._fail_write(fault, request)
        try:
            response = await handler(request, Call(user_id or "", now_ns, body))
        except (HttpError, Rejection) as e:
            response = _error(e)
        finally:
            if ep.write:
                venue.publish()
        if fault is not None:
            return await self._fail_write(fault, request)
        return response

    def _caller(self, ep: Endpoint, request: web.Request, now_ns: int) -> str | None:
        if ep.auth == "none":
            return None
        if ep.auth == "optional" and ACCESS_KEY not in request.headers:
            return None
        return self.authenticate(request, now_ns)

    def authenticate(self, request: web.Request, now_ns: int) -> str:
        """Checks the ``KALSHI-ACCESS-*`` headers and returns the caller's user id.

        Raises:
            HttpError: 401 with Kalshi's codes (KALSHI.md §3.5).
        """
        headers = request.headers
        key_id = headers.get(ACCESS_KEY)
        stamp = headers.get(ACCESS_TIMESTAMP)
        signature = headers.get(ACCESS_SIGNATURE)
        if not signature:
            raise _unauthorized("signature_is_missing_from_headers")
        if not key_id or not stamp:
            missing = ACCESS_KEY if not key_id else ACCESS_TIMESTAMP
            raise _unauthorized("authentication_error", f"missing header {missing}")
        if not stamp.isdigit():
            raise _unauthorized("authentication_error", "INVALID_TIMESTAMP")
        if abs(now_ns // _NS_PER_MS - int(stamp)) > self.signature_max_age_ms:
            raise _unauthorized("header_timestamp_expired")
        record = self.keys.lookup(key_id)
        if record is None:
            raise _unauthorized("authentication_error", "NOT_FOUND")
        path = request.raw_path.split("?", 1)[0]
        if not verify(record.public_key, request.method, path, stamp, signature):
            raise _unauthorized("authentication_error", "INCORRECT_API_KEY_SIGNATURE")
        return record.user_id

    @staticmethod
    async def _body(request: web.Request) -> Json:
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise _bad_request(f"body: malformed JSON ({e.msg})") from None
        if not isinstance(body, dict):
            raise _bad_request("body: expected a JSON object")
        return body

    def _admit(self, ep: Endpoint, user_id: str, body: Json) -> bool:
        if self.venue.faults.take_rate_limit():
            return False
        cost = ep.cost
        if ep.items is not None:
            cost *= len(_list_field(body, ep.items))
        kind: BucketKind = "write" if ep.bucket == "write" else "read"
        return self.limiter.allow(user_id, kind, cost, self.venue.clock.monotonic_ns())

    async def _fail_write(self, fault: WriteFault, request: web.Request) -> web.StreamResponse:
        if fault.kind == "5xx":
            body = ser.error_body("internal_server_error", "internal server error")
            return _json(body, 500)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), self.write_timeout_hold_s)
        if request.transport is not None:
            request.transport.close()
        raise web.HTTPGatewayTimeout()

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        assert self._ws_handler is not None
        try:
            user_id = self.authenticate(request, self.venue.clock.now_ns())
        except HttpError as e:
            return _error(e)
        return await self._ws_handler(request, user_id)

    # ------------------------------------------------------------------ helpers

    def _market(self, ticker: str) -> MarketDef:
        market = self.venue.engine.markets.get(ticker)
        if market is None:
            raise _not_found(f"market {ticker}")
        return market

    def _category(self, series_ticker: str) -> str:
        series = self.venue.engine.series.get(series_ticker)
        return series.category if series is not None else ""

    # ------------------------------------------------------------------ exchange, account

    async def exchange_status(self, request: web.Request, call: Call) -> web.Response:
        """``GET /exchange/status``: ``trading_active`` is false during a trading pause."""
        trading = bool(self.venue.engine.trading_active)
        resume = self.venue.faults.pause_until_ns if not trading else None
        shard = {
            "exchange_index": 0,
            "description": "event contracts",
            "exchange_active": True,
            "trading_active": trading,
            "intra_exchange_transfers_active": True,
        }
        return _json(
            {
                "exchange_active": True,
                "trading_active": trading,
                "intra_exchange_transfers_active": True,
                "exchange_estimated_resume_time": None if resume is None else ser.rfc3339(resume),
                "exchange_index_statuses": [shard],
            }
        )

    async def exchange_schedule(self, request: web.Request, call: Call) -> web.Response:
        """``GET /exchange/schedule``: 24/7 except Thursday 03:00–05:00 ET maintenance."""
        day = [{"open_time": "00:00", "close_time": "23:59"}]
        thursday = [
            {"open_time": "00:00", "close_time": "03:00"},
            {"open_time": "05:00", "close_time": "23:59"},
        ]
        week: Json = {
            "start_time": "2025-08-07T00:00:00Z",
            "end_time": "2099-12-31T23:59:59Z",
        }
        for name in ("monday", "tuesday", "wednesday", "friday", "saturday", "sunday"):
            week[name] = day
        week["thursday"] = thursday
        return _json({"schedule": {"standard_hours": [week], "maintenance_windows": []}})

    async def account_limits(self, request: web.Request, call: Call) -> web.Response:
        """``GET /account/limits``: the tier's buckets."""
        limits = self.limiter.tier
        return _json(
            {
                "usage_tier": self.tier,
                "read": dataclasses.asdict(limits.read),
                "write": dataclasses.asdict(limits.write),
                "grants": [
                    {"exchange_instance": "event_contract", "level": self.tier, "source": "manual"}
                ],
            }
        )

    async def endpoint_costs(self, request: web.Request, call: Call) -> web.Response:
        """``GET /account/endpoint_costs``: the routes whose cost is not the default."""
        rows = [
            {
                "method": ep.method,
                "path": ep.path.replace("{", ":").replace("}", ""),
                "cost": ep.cost,
            }
            for ep in ENDPOINTS
            if ep.auth != "none" and ep.cost != DEFAULT_COST
        ]
        return _json({"default_cost": DEFAULT_COST, "endpoint_costs": rows})

    async def deprecated_v1(self, request: web.Request, call: Call) -> web.Response:
        """The six V1 order-write paths: 410 ``deprecated_v1_order_endpoint``."""
        raise HttpError(
            410,
            "deprecated_v1_order_endpoint",
            "Please switch to the V2 endpoints",
            "https://docs.kalshi.com/api-reference/orders/create-order-v2",
        )

    # ------------------------------------------------------------------ market data

    async def series_list(self, request: web.Request, call: Call) -> web.Response:
        """``GET /series`` (filter ``category``)."""
        category = request.query.get("category")
        rows = [
            ser.series_json(s)
            for s in self.venue.engine.series.values()
            if not category or s.category == category
        ]
        return _json({"series": rows})

    async def series_one(self, request: web.Request, call: Call) -> web.Response:
        """``GET /series/{series_ticker}``."""
        ticker = request.match_info["series_ticker"]
        series = self.venue.engine.series.get(ticker)
        if series is None:
            raise _not_found(f"series {ticker}")
        return _json({"series": ser.series_json(series)})

    def _markets_of_event(self, event_ticker: str) -> list[MarketDef]:
        return [m for m in self.venue.engine.markets.values() if m.event_ticker == event_ticker]

    def _markets_json(self, markets: Iterable[MarketDef], now_ns: int) -> list[Json]:
        return [ser.market_json(self.venue.engine, m, now_ns) for m in markets]

    def _event_body(self, event_ticker: str, nested: bool, now_ns: int) -> Json:
        event = self.venue.engine.events[event_ticker]
        markets = None
        if nested:
            markets = self._markets_json(self._markets_of_event(event_ticker), now_ns)
        return ser.event_json(event, self._category(event.series_ticker), markets)

    def _event_matches(self, request: web.Request, now_ns: int) -> Callable[[EventDef], bool]:
        series = request.query.get("series_ticker")
        wanted = _csv(request, "event_ticker") or _csv(request, "tickers")
        statuses = self._status_filter(request)

        def matches(e: EventDef) -> bool:
            return (
                (not series or e.series_ticker == series)
                and (wanted is None or e.event_ticker in wanted)
                and (
                    statuses is None
                    or any(
                        ser.market_status(m, now_ns) in statuses
                        for m in self._markets_of_event(e.event_ticker)
                    )
                )
            )

        return matches

    async def events_list(self, request: web.Request, call: Call) -> web.Response:
        """``GET /events`` (``series_ticker``, event tickers, ``status``, nesting)."""
        limit, start = _page_args(request, _MAX_EVENTS_LIMIT)
        matches = self._event_matches(request, call.now_ns)
        nested = request.query.get("with_nested_markets") == "true"
        tickers = [e.event_ticker for e in self.venue.engine.events.values() if matches(e)]
        page, cursor = _page(tickers, limit, start)
        events = [self._event_body(t, nested, call.now_ns) for t in page]
        return _json({"events": events, "cursor": cursor})

    async def event_one(self, request: web.Request, call: Call) -> web.Response:
        """``GET /events/{event_ticker}``: the event and its markets."""
        ticker = request.match_info["event_ticker"]
        if ticker not in self.venue.engine.events:
            raise _not_found(f"event {ticker}")
        nested = request.query.get("with_nested_markets") == "true"
        markets = self._markets_json(self._markets_of_event(ticker), call.now_ns)
        return _json({"event": self._event_body(ticker, nested, call.now_ns), "markets": markets})

    @staticmethod
    def _status_filter(request: web.Request) -> frozenset[str] | None:
        status = request.query.get("status")
        if not status:
            return None
        found = _MARKET_STATUS_FILTER.get(status)
        if found is None:
            allowed = ", ".join(_MARKET_STATUS_FILTER)
            raise _bad_request(f"status: must be one of {allowed}, got {status!r}")
        return found

    def _market_matches(self, request: web.Request, now_ns: int) -> Callable[[MarketDef], bool]:
        event = request.query.get("event_ticker")
        series = request.query.get("series_ticker")
        tickers = _csv(request, "tickers")
        statuses = self._status_filter(request)
        close_min = _query_int(request, "min_close_ts")
        close_max = _query_int(request, "max_close_ts")
        events = self.venue.engine.events

        def matches(m: MarketDef) -> bool:
            return (
                (not event or m.event_ticker == event)
                and (not series or events[m.event_ticker].series_ticker == series)
                and (tickers is None or m.ticker in tickers)
                and (statuses is None or ser.market_status(m, now_ns) in statuses)
                and _in_window(m.close_ns, close_min, close_max)
            )

        return matches

    async def markets_list(self, request: web.Request, call: Call) -> web.Response:
        """``GET /markets`` with Kalshi's filters and cursor pagination."""
        limit, start = _page_args(request)
        matches = self._market_matches(request, call.now_ns)
        combos = _mve_filter(request)
        found = [
            m
            for m in self.venue.engine.markets.values()
            if matches(m) and (combos is None or (m.mve_collection_ticker is not None) == combos)
        ]
        page, cursor = _page(found, limit, start)
        return _json({"markets": self._markets_json(page, call.now_ns), "cursor": cursor})

    async def market_one(self, request: web.Request, call: Call) -> web.Response:
        """``GET /markets/{ticker}``."""
        market = self._market(request.match_info["ticker"])
        return _json({"market": ser.market_json(self.venue.engine, market, call.now_ns)})

    async def orderbook(self, request: web.Request, call: Call) -> web.Response:
        """``GET /markets/{ticker}/orderbook?depth=``: bids only, best last."""
        market = self._market(request.match_info["ticker"])
        depth = _query_int(request, "depth") or 0
        book = ser.orderbook_json(self.venue.engine, market.ticker, depth)
        return _json({"orderbook_fp": book})

    async def orderbooks(self, request: web.Request, call: Call) -> web.Response:
        """``GET /markets/orderbooks?tickers=A,B`` (at most 100 tickers)."""
        tickers = _csv(request, "tickers")
        if not tickers:
            raise _bad_request("tickers: required")
        if len(tickers) > _MAX_ORDERBOOK_TICKERS:
            raise _bad_request(f"tickers: at most {_MAX_ORDERBOOK_TICKERS}, got {len(tickers)}")
        books = [
            {
                "ticker": t,
                "orderbook_fp": ser.orderbook_json(self.venue.engine, self._market(t).ticker),
            }
            for t in tickers
        ]
        return _json({"orderbooks": books})

    async def trades_list(self, request: web.Request, call: Call) -> web.Response:
        """``GET /markets/trades`` newest first (``ticker``, ``min_ts``, ``max_ts``)."""
        limit, start = _page_args(request)
        ticker = request.query.get("ticker") or None
        lo, hi = _query_int(request, "min_ts"), _query_int(request, "max_ts")
        if request.query.get("is_block_trade") == "true":
            trades = []
        else:
            trades = [
                t for t in reversed(self.venue.engine.trades(ticker)) if _in_window(t.ts_ns, lo, hi)
            ]
        page, cursor = _page(trades, limit, start)
        return _json({"trades": [ser.trade_json(t) for t in page], "cursor": cursor})

    # ------------------------------------------------------------------ portfolio reads

    def _mark(self, ticker: str, position: Qty) -> Money:
        """The value of ``position`` at the best bid of the held side."""
        bid, ask = self.venue.engine.best(ticker)
        if position > 0:
            return position * (bid or 0)
        return -position * (ONE_DOLLAR - ask if ask is not None else 0)

    def _positions(
        self, user_id: str, subaccount: int, settlement: str = "unsettled"
    ) -> list[tuple[str, Position]]:
        """The subaccount's positions in unsettled, settled or all markets, in market order."""
        if settlement not in ("unsettled", "settled", "all"):
            raise _bad_request(
                f"settlement_status: must be unsettled, settled or all, got {settlement!r}"
            )
        markets = self.venue.engine.markets
        return [
            (ticker, p)
            for ticker, p in self.venue.engine.positions_of(user_id, subaccount).items()
            if settlement == "all"
            or (markets[ticker].status is MarketStatus.FINALIZED) == (settlement == "settled")
        ]

    async def balance(self, request: web.Request, call: Call) -> web.Response:
        """``GET /portfolio/balance`` of ``subaccount`` (default 0, the primary)."""
        sub = _query_subaccount_or_primary(request)
        engine = self.venue.engine
        value = sum(self._mark(t, p.position) for t, p in self._positions(call.user_id, sub))
        return _json(ser.balance_json(engine.balance(call.user_id, sub), value, call.now_ns))

    def _position_filter(self, request: web.Request) -> Callable[[str, Position], bool]:
        ticker = request.query.get("ticker")
        event = request.query.get("event_ticker")
        counts = _csv(request, "count_filter") or []
        unknown = set(counts) - {"position", "total_traded"}
        if unknown:
            raise _bad_request(f"count_filter: unknown value {sorted(unknown)[0]!r}")
        markets = self.venue.engine.markets

        def keep(t: str, p: Position) -> bool:
            return (
                (not ticker or t == ticker)
                and (not event or markets[t].event_ticker == event)
                and ("position" not in counts or p.position != 0)
                and ("total_traded" not in counts or p.total_traded != 0)
            )

        return keep

    async def positions(self, request: web.Request, call: Call) -> web.Response:
        """``GET /portfolio/positions``: market positions of ``subaccount`` (default 0)
        (unsettled unless ``settlement_status`` says otherwise) and their events."""
        limit, start = _page_args(request)
        keep = self._position_filter(request)
        sub = _query_subaccount_or_primary(request)
        settlement = request.query.get("settlement_status") or "unsettled"
        rows = [(t, p) for t, p in self._positions(call.user_id, sub, settlement) if keep(t, p)]
        page, cursor = _page(rows, limit, start)
        markets = self.venue.engine.markets
        traded: dict[str, Qty] = {}
        for fill in self.venue.engine.fills_of(call.user_id, sub):
            event = markets[fill.ticker].event_ticker
            traded[event] = traded.get(event, 0) + fill.count
        by_event = [(markets[t].event_ticker, p) for t, p in rows]
        return _json(
            {
                "market_positions": [ser.position_json(t, p) for t, p in page],
                "event_positions": ser.event_positions_json(by_event, traded),
                "cursor": cursor,
            }
        )

    def _order_filter(self, request: web.Request) -> Callable[[SimOrder], bool]:
        ticker = request.query.get("ticker")
        events = _csv(request, "event_ticker")
        status = request.query.get("status")
        if status is not None and status not in {s.value for s in OrderStatus}:
            raise _bad_request(f"status: must be resting, canceled or executed, got {status!r}")
        lo, hi = _query_int(request, "min_ts"), _query_int(request, "max_ts")
        markets = self.venue.engine.markets

        def keep(o: SimOrder) -> bool:
            return (
                (not ticker or o.ticker == ticker)
                and (events is None or markets[o.ticker].event_ticker in events)
                and (status is None or o.status == status)
                and _in_window(o.created_ns, lo, hi)
            )

        return keep

    async def orders_list(self, request: web.Request, call: Call) -> web.Response:
        """``GET /portfolio/orders`` newest first (``subaccount`` omitted: every one)."""
        limit, start = _page_args(request)
        keep = self._order_filter(request)
        sub = _query_subaccount(request)
        orders = [o for o in reversed(self.venue.engine.orders_of(call.user_id, sub)) if keep(o)]
        page, cursor = _page(orders, limit, start)
        return _json({"orders": [ser.order_json(o) for o in page], "cursor": cursor})

    async def order_one(self, request: web.Request, call: Call) -> web.Response:
        """``GET /portfolio/orders/{order_id}``."""
        order = self.venue.engine.get_order(call.user_id, request.match_info["order_id"])
        return _json({"order": ser.order_json(order)})

    async def queue_position_one(self, request: web.Request, call: Call) -> web.Response:
        """``GET /portfolio/orders/{order_id}/queue_position``: the contracts ahead of a
        resting order in price-time priority (404 for an order that is unknown or not
        resting)."""
        ahead = self.venue.engine.queue_position(call.user_id, request.match_info["order_id"])
        return _json({"queue_position_fp": format_count(ahead)})

    async def queue_positions(self, request: web.Request, call: Call) -> web.Response:
        """``GET /portfolio/orders/queue_positions``: every resting order of ``subaccount``
        (default 0), filtered by ``market_tickers`` (comma-separated) and ``event_ticker``."""
        engine = self.venue.engine
        sub = _query_subaccount_or_primary(request)
        raw = request.query.get("market_tickers")
        tickers = {t for t in raw.split(",") if t} if raw else None
        event = request.query.get("event_ticker")
        rows = [
            ser.queue_position_json(o, engine.queue_position(call.user_id, o.order_id))
            for o in engine.orders_of(call.user_id, sub)
            if o.status is OrderStatus.RESTING
            and (tickers is None or o.ticker in tickers)
            and (not event or engine.markets[o.ticker].event_ticker == event)
        ]
        return _json({"queue_positions": rows})

    async def fills(self, request: web.Request, call: Call) -> web.Response:
        """``GET /portfolio/fills`` newest first (``ticker``, ``order_id``, time window,
        ``subaccount``: omitted, every one)."""
        limit, start = _page_args(request)
        sub = _query_subaccount(request)
        ticker = request.query.get("ticker")
        order_id = request.query.get("order_id")
        lo, hi = _query_int(request, "min_ts"), _query_int(request, "max_ts")
        fills = [
            f
            for f in reversed(self.venue.engine.fills_of(call.user_id, sub))
            if (not ticker or f.ticker == ticker)
            and (not order_id or f.order_id == order_id)
            and _in_window(f.ts_ns, lo, hi)
        ]
        page, cursor = _page(fills, limit, start)
        return _json({"fills": [ser.fill_json(f) for f in page], "cursor": cursor})

    async def settlements(self, request: web.Request, call: Call) -> web.Response:
        """``GET /portfolio/settlements`` newest first (``subaccount`` omitted: every one)."""
        limit, start = _page_args(request)
        sub = _query_subaccount(request)
        ticker = request.query.get("ticker")
        event = request.query.get("event_ticker")
        lo, hi = _query_int(request, "min_ts"), _query_int(request, "max_ts")
        rows = [
            s
            for s in reversed(self.venue.engine.settlements_of(call.user_id, sub))
            if (not ticker or s.ticker == ticker)
            and (not event or s.event_ticker == event)
            and _in_window(s.settled_ns, lo, hi)
        ]
        page, cursor = _page(rows, limit, start)
        return _json({"settlements": [ser.settlement_json(s) for s in page], "cursor": cursor})

    async def order_groups(self, request: web.Request, call: Call) -> web.Response:
        """``GET /portfolio/order_groups`` (``subaccount`` omitted: every one)."""
        groups = self.venue.engine.order_groups_of(call.user_id, _query_subaccount(request))
        return _json({"order_groups": [ser.order_group_json(g) for g in groups]})

    async def order_group_one(self, request: web.Request, call: Call) -> web.Response:
        """``GET /portfolio/order_groups/{order_group_id}``."""
        group = self.venue.engine.order_group(
            call.user_id, request.match_info["order_group_id"], _query_subaccount(request)
        )
        row = ser.order_group_json(group)
        return _json(
            {
                "is_auto_cancel_enabled": row["is_auto_cancel_enabled"],
                "contracts_limit_fp": row["contracts_limit_fp"],
                "orders": list(group.order_ids),
                "exchange_index": 0,
            }
        )

    # ------------------------------------------------------------------ order writes

    async def create_order(self, request: web.Request, call: Call) -> web.Response:
        """``POST /portfolio/events/orders`` → 201 ``CreateOrderV2Response``."""
        req = order_request(call.body)
        result = self.venue.engine.create_order(call.user_id, req, call.now_ns)
        return _json(ser.create_json(result), 201)

    def _create_item(self, item: object, call: Call) -> Json:
        client_order_id = None
        try:
            if not isinstance(item, dict):
                raise _invalid_order("orders: each item must be an object")
            raw_id = item.get("client_order_id")
            client_order_id = raw_id if isinstance(raw_id, str) else None
            req = order_request(item)
            result = self.venue.engine.create_order(call.user_id, req, call.now_ns)
        except (HttpError, Rejection) as e:
            error = ser.error_body(e.code, e.message, e.details)["error"]
            return ser.batch_create_item(None, client_order_id, error)
        return ser.batch_create_item(result, None, None)

    async def batch_create(self, request: web.Request, call: Call) -> web.Response:
        """``POST /portfolio/events/orders/batched``: per-item results and errors."""
        items = _list_field(call.body, "orders")
        return _json({"orders": [self._create_item(item, call) for item in items]}, 201)

    def _cancel_item(self, item: object, call: Call) -> Json:
        order_id = item.get("order_id") if isinstance(item, dict) else item
        if not isinstance(order_id, str) or not order_id:
            error = ser.error_body("invalid_order", "invalid order", "order_id: required")
            return ser.batch_cancel_item(str(order_id or ""), None, call.now_ns, error["error"])
        try:
            sub = _body_subaccount(_Fields(item, _bad_request)) if isinstance(item, dict) else 0
            done = self.venue.engine.cancel_order(
                call.user_id, order_id, call.now_ns, subaccount=sub
            )
        except (HttpError, Rejection) as e:
            error = ser.error_body(e.code, e.message, e.details)["error"]
            return ser.batch_cancel_item(order_id, None, call.now_ns, error)
        return ser.batch_cancel_item(order_id, done, call.now_ns, None)

    async def batch_cancel(self, request: web.Request, call: Call) -> web.Response:
        """``DELETE /portfolio/events/orders/batched``: per-item results and errors."""
        items = _list_field(call.body, "orders")
        return _json({"orders": [self._cancel_item(item, call) for item in items]})

    async def cancel_order(self, request: web.Request, call: Call) -> web.Response:
        """``DELETE /portfolio/events/orders/{order_id}`` (``subaccount`` default 0)."""
        order, reduced = self.venue.engine.cancel_order(
            call.user_id,
            request.match_info["order_id"],
            call.now_ns,
            subaccount=_query_subaccount_or_primary(request),
        )
        return _json(ser.cancel_json(order, reduced, call.now_ns))

    async def cancel_all(self, request: web.Request, call: Call) -> web.Response:
        """``DELETE /portfolio/events/orders``: cancel every resting order of ``subaccount``
        (omitted: of every subaccount) → 204."""
        engine = self.venue.engine
        resting = [
            o
            for o in engine.orders_of(call.user_id, _query_subaccount(request))
            if o.status is OrderStatus.RESTING
        ]
        for o in resting:
            with contextlib.suppress(Rejection):
                engine.cancel_order(call.user_id, o.order_id, call.now_ns, subaccount=o.subaccount)
        return web.Response(status=204)

    async def amend_order(self, request: web.Request, call: Call) -> web.Response:
        """``POST /portfolio/events/orders/{order_id}/amend`` (``subaccount`` query, default 0)."""
        order_id = request.match_info["order_id"]
        sub = _query_subaccount_or_primary(request)
        f = _Fields(call.body, _invalid_order)
        ticker = f.text("ticker", required=True)
        side = f.choice("side", BookSide)
        price = f.price("price")
        count = f.count("count", required=True)
        assert ticker is not None and count is not None
        engine = self.venue.engine
        claimed = f.text("client_order_id")
        if (
            claimed is not None
            and engine.get_order(call.user_id, order_id, sub).client_order_id != claimed
        ):
            raise HttpError(
                400,
                "order_id_and_client_order_id_mismatch",
                "order id and client order id mismatch",
                f"client_order_id: {claimed!r} is not the client order id of {order_id}",
            )
        result = engine.amend_order(
            call.user_id,
            order_id,
            ticker=ticker,
            book_side=side,
            price=price,
            count=count,
            now_ns=call.now_ns,
            updated_client_order_id=f.text("updated_client_order_id"),
            subaccount=sub,
        )
        return _json(ser.amend_json(result))

    async def decrease_order(self, request: web.Request, call: Call) -> web.Response:
        """``POST /portfolio/events/orders/{order_id}/decrease``: exactly one of
        ``reduce_by`` / ``reduce_to`` (``subaccount`` query, default 0)."""
        sub = _query_subaccount_or_primary(request)
        f = _Fields(call.body, _invalid_order)
        reduce_by = f.count("reduce_by")
        reduce_to = f.count("reduce_to")
        if (reduce_by is None) == (reduce_to is None):
            raise _invalid_order("exactly one of reduce_by or reduce_to must be provided")
        order = self.venue.engine.decrease_order(
            call.user_id,
            request.match_info["order_id"],
            reduce_by=reduce_by,
            reduce_to=reduce_to,
            now_ns=call.now_ns,
            subaccount=sub,
        )
        return _json(ser.decrease_json(order, call.now_ns))

    # ------------------------------------------------------------------ order groups

    async def group_create(self, request: web.Request, call: Call) -> web.Response:
        """``POST /portfolio/order_groups/create`` (``subaccount`` default 0) → 201."""
        sub = _body_subaccount(_Fields(call.body, _bad_request))
        limit = _contracts_limit(call.body)
        group_id = self.venue.engine.create_order_group(
            call.user_id, limit, call.now_ns, subaccount=sub
        )
        return _json({"order_group_id": group_id, "subaccount": sub, "exchange_index": 0}, 201)

    async def group_reset(self, request: web.Request, call: Call) -> web.Response:
        """``PUT /portfolio/order_groups/{id}/reset``."""
        gid = request.match_info["order_group_id"]
        sub = _query_subaccount_or_primary(request)
        self.venue.engine.reset_order_group(call.user_id, gid, call.now_ns, subaccount=sub)
        return _json({})

    async def group_trigger(self, request: web.Request, call: Call) -> web.Response:
        """``PUT /portfolio/order_groups/{id}/trigger``: cancel the group's orders, block it."""
        gid = request.match_info["order_group_id"]
        sub = _query_subaccount_or_primary(request)
        self.venue.engine.trigger_order_group(call.user_id, gid, call.now_ns, subaccount=sub)
        return _json({})

    async def group_limit(self, request: web.Request, call: Call) -> web.Response:
        """``PUT /portfolio/order_groups/{id}/limit``."""
        gid = request.match_info["order_group_id"]
        limit = _contracts_limit(call.body)
        sub = _query_subaccount_or_primary(request)
        self.venue.engine.set_order_group_limit(
            call.user_id, gid, limit, call.now_ns, subaccount=sub
        )
        return _json({})

    async def group_delete(self, request: web.Request, call: Call) -> web.Response:
        """``DELETE /portfolio/order_groups/{id}``: cancel the group's orders, remove it."""
        gid = request.match_info["order_group_id"]
        sub = _query_subaccount_or_primary(request)
        self.venue.engine.delete_order_group(call.user_id, gid, call.now_ns, subaccount=sub)
        return _json({})

    # ------------------------------------------------------------------ subaccounts

    async def subaccount_create(self, request: web.Request, call: Call) -> web.Response:
        """``POST /portfolio/subaccounts`` → 201 ``{"subaccount_number": N}`` (1, 2, … 63)."""
        _exchange_index(_Fields(call.body, _bad_request))
        number = self.venue.engine.create_subaccount(call.user_id)
        return _json({"subaccount_number": number}, 201)

    async def subaccount_transfer(self, request: web.Request, call: Call) -> web.Response:
        """``POST /portfolio/subaccounts/transfer``: ``amount_cents`` from ``from_subaccount``
        to ``to_subaccount``; a ``client_transfer_id`` used before is a 409."""
        f = _Fields(call.body, _bad_request)
        transfer_id = f.text("client_transfer_id", required=True)
        assert transfer_id is not None
        source = _subaccount_number(_required_int(f, "from_subaccount"), "from_subaccount")
        target = _subaccount_number(_required_int(f, "to_subaccount"), "to_subaccount")
        cents = _required_int(f, "amount_cents")
        _exchange_index(f)
        assert source is not None and target is not None
        self.venue.engine.transfer(
            call.user_id, transfer_id, source, target, cents * _MONEY_PER_CENT, call.now_ns
        )
        return _json({})

    async def subaccount_balances(self, request: web.Request, call: Call) -> web.Response:
        """``GET /portfolio/subaccounts/balances``: every subaccount's available balance."""
        engine = self.venue.engine
        rows = [
            ser.subaccount_balance_json(n, engine.balance(call.user_id, n), call.now_ns)
            for n in engine.subaccount_numbers(call.user_id)
        ]
        return _json({"subaccount_balances": rows})

    async def subaccount_transfers(self, request: web.Request, call: Call) -> web.Response:
        """``GET /portfolio/subaccounts/transfers``, newest first."""
        limit, start = _page_args(request)
        rows = list(reversed(self.venue.engine.transfers_of(call.user_id)))
        page, cursor = _page(rows, limit, start)
        return _json({"transfers": [ser.transfer_json(t) for t in page], "cursor": cursor})

    async def netting(self, request: web.Request, call: Call) -> web.Response:
        """``GET /portfolio/subaccounts/netting``: every subaccount's netting setting."""
        numbers = self.venue.engine.subaccount_numbers(call.user_id)
        rows = [(n, self.venue.engine.netting(call.user_id, n)) for n in numbers]
        return _json(ser.netting_json(rows))

    async def netting_update(self, request: web.Request, call: Call) -> web.Response:
        """``PUT /portfolio/subaccounts/netting``: ``subaccount_number`` (0–63, created) and
        ``enabled``, both required."""
        f = _Fields(call.body, _bad_request)
        number = _subaccount_number(_required_int(f, "subaccount_number"), "subaccount_number")
        enabled = _required_flag(f, "enabled")
        assert number is not None
        self.venue.engine.set_netting(call.user_id, number, enabled)
        return _json({})

    # ------------------------------------------------------------------ portfolio summary

    async def total_resting_order_value(self, request: web.Request, call: Call) -> web.Response:
        """``GET /portfolio/summary/total_resting_order_value``: what every resting order of
        every subaccount would cost to fill, exactly (a bid: YES price × remaining; an ask,
        i.e. a NO bid: ($1 − price) × remaining)."""
        orders = self.venue.engine.orders_of(call.user_id)
        total = sum(_resting_cost(o) for o in orders if o.status is OrderStatus.RESTING)
        return _json(ser.resting_order_value_json(total))

    # ------------------------------------------------------------------ exchange extras

    async def user_data_timestamp(self, request: web.Request, call: Call) -> web.Response:
        """``GET /exchange/user_data_timestamp``: the sim's user data is never behind: now."""
        return _json({"as_of_time": ser.rfc3339(call.now_ns)})

    async def historical_cutoff(self, request: web.Request, call: Call) -> web.Response:
        """``GET /historical/cutoff``: the venue's start for every partition (nothing is older,
        so every market, trade, order and position is live)."""
        return _json(ser.historical_cutoff_json(self.venue.universe.start_ns))

    async def series_fee_changes(self, request: web.Request, call: Call) -> web.Response:
        """``GET /series/fee_changes`` (``series_ticker``, ``show_historical``): the sim
        schedules no fee changes."""
        _query_bool(request, "show_historical")
        return _json({"series_fee_change_arr": []})

    async def event_fee_changes(self, request: web.Request, call: Call) -> web.Response:
        """``GET /events/fee_changes`` (``event_ticker``, ``limit``, ``cursor``): the sim
        schedules no fee overrides."""
        limit, start = _page_args(request)
        changes: list[Json] = []
        page, cursor = _page(changes, limit, start)
        return _json({"event_fee_changes": page, "cursor": cursor})

    async def event_metadata(self, request: web.Request, call: Call) -> web.Response:
        """``GET /events/{event_ticker}/metadata``."""
        ticker = request.match_info["event_ticker"]
        if ticker not in self.venue.engine.events:
            raise _not_found(f"event {ticker}")
        markets = [m.ticker for m in self._markets_of_event(ticker)]
        return _json(ser.event_metadata_json(markets))

    # ------------------------------------------------------------------ candlesticks

    def _series_market(self, series_ticker: str, ticker: str) -> MarketDef:
        engine = self.venue.engine
        if series_ticker not in engine.series:
            raise _not_found(f"series {series_ticker}")
        market = self._market(ticker)
        if engine.events[market.event_ticker].series_ticker != series_ticker:
            raise _not_found(f"market {ticker} in series {series_ticker}")
        return market

    def _series_event(self, series_ticker: str, ticker: str) -> EventDef:
        engine = self.venue.engine
        if series_ticker not in engine.series:
            raise _not_found(f"series {series_ticker}")
        event = self._event(ticker)
        if event.series_ticker != series_ticker:
            raise _not_found(f"event {ticker} in series {series_ticker}")
        return event

    def _event(self, ticker: str) -> EventDef:
        event = self.venue.engine.events.get(ticker)
        if event is None:
            raise _not_found(f"event {ticker}")
        return event

    def _candles_json(self, ticker: str, query: _CandleQuery) -> list[Json]:
        candles = self.candles.candles(
            ticker, query.period_s, query.start_ts, query.end_ts, query.latest_before
        )
        return [ser.candlestick_json(c) for c in candles]

    async def market_candlesticks(self, request: web.Request, call: Call) -> web.Response:
        """``GET /series/{series_ticker}/markets/{ticker}/candlesticks``."""
        info = request.match_info
        market = self._series_market(info["series_ticker"], info["ticker"])
        query = _candle_query(request, _CANDLE_PERIODS, latest=True)
        candles = self._candles_json(market.ticker, query)
        return _json({"ticker": market.ticker, "candlesticks": candles})

    async def batch_candlesticks(self, request: web.Request, call: Call) -> web.Response:
        """``GET /markets/candlesticks?market_tickers=A,B`` (at most 100): at most 10 000
        candlesticks in all, the earliest of each market in ticker order."""
        tickers = _required_csv(request, "market_tickers", _MAX_CANDLE_MARKETS)
        query = _candle_query(request, None, latest=True)
        markets = [self._market(t) for t in tickers]
        budget = _MAX_BATCH_CANDLES
        rows: list[Json] = []
        for market in markets:
            candles = self._candles_json(market.ticker, query)[:budget]
            budget -= len(candles)
            rows.append({"market_ticker": market.ticker, "candlesticks": candles})
        return _json({"markets": rows})

    def _event_candles(self, event_ticker: str, query: _CandleQuery, markets: int) -> Json:
        """One event's markets and their candlesticks, the end moved back if ``markets``
        markets × the periods would exceed the aggregate limit."""
        tickers = [m.ticker for m in self._markets_of_event(event_ticker)]
        end = adjusted_end(
            query.start_ts, query.end_ts, query.period_s, markets, _MAX_EVENT_CANDLES
        )
        window = dataclasses.replace(query, end_ts=end)
        return {
            "market_tickers": tickers,
            "market_candlesticks": [self._candles_json(t, window) for t in tickers],
            "adjusted_end_ts": end,
        }

    async def event_candlesticks(self, request: web.Request, call: Call) -> web.Response:
        """``GET /series/{series_ticker}/events/{ticker}/candlesticks``: one list per market."""
        info = request.match_info
        event = self._series_event(info["series_ticker"], info["ticker"])
        query = _candle_query(request, _CANDLE_PERIODS)
        markets = len(self._markets_of_event(event.event_ticker))
        return _json(self._event_candles(event.event_ticker, query, markets))

    async def events_candlesticks(self, request: web.Request, call: Call) -> web.Response:
        """``GET /events/candlesticks?event_tickers=A,B``: per event, as the single-event
        route, with one ``adjusted_end_ts`` keeping every market of every event within 5 000
        candlesticks."""
        events = [self._event(t) for t in _required_csv(request, "event_tickers")]
        query = _candle_query(request, _CANDLE_PERIODS)
        markets = sum(len(self._markets_of_event(e.event_ticker)) for e in events)
        rows = [
            {"event_ticker": e.event_ticker, **self._event_candles(e.event_ticker, query, markets)}
            for e in events
        ]
        return _json({"events": rows})

    # ------------------------------------------------------------------ API keys

    def _refuse_restricted(self, request: web.Request) -> None:
        """403 for a key restricted to one subaccount: it may not manage API keys."""
        record = self.keys.lookup(request.headers.get(ACCESS_KEY, ""))
        if record is not None and record.subaccount is not None:
            raise HttpError(403, "forbidden", _RESTRICTED_KEY)

    async def api_keys(self, request: web.Request, call: Call) -> web.Response:
        """``GET /api_keys``: the caller's keys (id, name, scopes, restriction), no key
        material; ``api_key_region_expiration_ts`` is absent (the sim has no attestation)."""
        rows = [_api_key_json(r) for r in self.keys.keys_of(call.user_id)]
        return _json({"api_keys": rows})

    async def api_key_create(self, request: web.Request, call: Call) -> web.Response:
        """``POST /api_keys``: ``name`` and ``public_key`` (RSA, PEM) required, ``scopes`` and
        ``subaccount`` optional → 201 ``{"api_key_id"}``; below the premier tier a 403."""
        self._refuse_restricted(request)
        if self.tier not in _KEY_CREATE_TIERS:
            raise HttpError(
                403,
                "forbidden",
                "insufficient API usage level",
                f"creating an API key needs the premier tier or above, not {self.tier}",
            )
        f = _Fields(call.body, _bad_request)
        name = f.text("name", required=True)
        pem = f.text("public_key", required=True)
        scopes = _key_scopes(call.body)
        subaccount = _subaccount_number(f.integer("subaccount"), "subaccount")
        assert name is not None and pem is not None
        if subaccount is not None:
            self.venue.engine.check_subaccount(call.user_id, subaccount)
        try:
            record = self.keys.register_public_key(
                call.user_id, pem, name=name, scopes=scopes, subaccount=subaccount
            )
        except ValueError as e:
            raise _bad_request(f"public_key: {e}") from None
        return _json({"api_key_id": record.key_id}, 201)

    async def api_key_delete(self, request: web.Request, call: Call) -> web.Response:
        """``DELETE /api_keys/{api_key}`` → 204; a malformed id is a 400, a key the caller does
        not hold a 404."""
        self._refuse_restricted(request)
        key_id = request.match_info["api_key"]
        try:
            uuid.UUID(key_id)
        except ValueError:
            raise _bad_request(f"api_key: not an API key id: {key_id!r}") from None
        if not self.keys.delete(call.user_id, key_id):
            raise _not_found(f"API key {key_id}")
        return web.Response(status=204)


def _api_key_json(record: KeyRecord) -> Json:
    return ser.api_key_json(record.name, record.key_id, record.scopes, record.subaccount)
