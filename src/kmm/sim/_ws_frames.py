"""Kalshi websocket message bodies and envelopes, built from the matching engine's records.

Theory of operation
-------------------
The hub sends one engine event to many subscriptions. Everything that is the same for every
subscriber (the ``msg`` object) is serialized once here, with ``orjson``, to bytes; what differs
per subscriber (``sid``, ``seq``) is stamped afterwards by :func:`data_frame` /
:func:`seq_frame`, which only splice bytes. Field names, value formats and optional keys follow
``kalshi-docs/asyncapi.yaml`` (schemas, August 2026): prices are four-decimal dollar strings,
counts two-decimal ``*_fp`` strings, money four decimals when exact and six otherwise (the
same helpers as REST, :mod:`kmm.sim.serialize`); deprecated fields are still sent where the
schema still requires them, and times are ``ts_ms`` plus the deprecated seconds / RFC 3339
forms where required.

Every function here is pure: no I/O, no clock; times come from the events. Enum members go
to ``orjson`` as they are (it writes a ``StrEnum``'s value), and price and count strings are
cached, since both repeat endlessly on the delta path.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Final, NamedTuple

import orjson

from kmm.kalshi.constants import WS_ERRORS
from kmm.sim.engine import (
    BookChange,
    EventDef,
    MarketDef,
    MarketLifecycle,
    OrderGroupUpdate,
    PositionUpdate,
    SimFill,
    SimOrder,
    TradePrint,
)
from kmm.sim.serialize import format_dollars, rfc3339
from kmm.types import (
    ONE_DOLLAR,
    BookSide,
    Outcome,
    Price,
    Qty,
    format_count,
    format_price,
)

__all__ = [
    "TickerState",
    "book_delta",
    "book_snapshot",
    "data_frame",
    "error_frame",
    "fill",
    "lifecycle",
    "list_frame",
    "market_id",
    "market_position",
    "ok_frame",
    "order_group",
    "seq_frame",
    "subscribed_frame",
    "ticker",
    "trade",
    "unsubscribed_frame",
    "user_order",
]

_dumps: Final = orjson.dumps
_NS_PER_MS: Final = 1_000_000
_NS_PER_S: Final = 1_000_000_000
_MARKET_NS: Final = uuid.UUID("6b6d6d2d-7369-4d2d-8d61-726b65747321")
_OUTCOME_OF: Final[dict[BookSide, str]] = {BookSide.BID: "yes", BookSide.ASK: "no"}
_ACTION_OF: Final[dict[BookSide, str]] = {BookSide.BID: "buy", BookSide.ASK: "sell"}
_SETTLEMENT_VALUE: Final[dict[str, str]] = {"yes": "1.0000", "no": "0.0000"}
_CACHE_LIMIT: Final = 100_000
_market_ids: dict[str, str] = {}
_PRICE_TEXT: dict[Price, str] = {}
_COUNT_TEXT: dict[Qty, str] = {}


class TickerState(NamedTuple):
    """What a ``ticker`` message reports for one market; two equal states need no message.

    Prices are YES prices (``yes_bid`` 0 when there is no bid, ``yes_ask`` ``ONE_DOLLAR``
    when there is no ask, ``price`` 0 before the first trade); sizes and totals are counts;
    the dollar totals are whole dollars.
    """

    ticker: str
    price: Price
    yes_bid: Price
    yes_ask: Price
    yes_bid_size: Qty
    yes_ask_size: Qty
    last_trade_size: Qty
    volume: Qty
    open_interest: Qty
    dollar_volume: int
    dollar_open_interest: int


# --------------------------------------------------------------------------- small helpers


def _price_text(price: Price) -> str:
    """``format_price``, cached (a market has at most ten thousand prices)."""
    text = _PRICE_TEXT.get(price)
    if text is None:
        if len(_PRICE_TEXT) >= _CACHE_LIMIT:
            _PRICE_TEXT.clear()
        text = _PRICE_TEXT[price] = format_price(price)
    return text


def _count_text(qty: Qty) -> str:
    """``format_count``, cached (sizes repeat)."""
    text = _COUNT_TEXT.get(qty)
    if text is None:
        if len(_COUNT_TEXT) >= _CACHE_LIMIT:
            _COUNT_TEXT.clear()
        text = _COUNT_TEXT[qty] = format_count(qty)
    return text


def market_id(ticker: str) -> str:
    """The market's UUID (``market_id``): a name-based UUID of the ticker, stable across runs."""
    found = _market_ids.get(ticker)
    if found is None:
        found = _market_ids[ticker] = str(uuid.uuid5(_MARKET_NS, ticker))
    return found


# --------------------------------------------------------------------------- envelopes


def data_frame(head: bytes, sid: int, body: bytes) -> bytes:
    """A data message without ``seq``; ``head`` is ``b'{"type":"<type>","sid":'``."""
    return b'%b%d,"msg":%b}' % (head, sid, body)


def seq_frame(head: bytes, sid: int, seq: int, body: bytes) -> bytes:
    """A data message with ``seq``; ``head`` is ``b'{"type":"<type>","sid":'``."""
    return b'%b%d,"seq":%d,"msg":%b}' % (head, sid, seq, body)


def _with_id(cmd_id: int | None, frame: dict[str, Any]) -> bytes:
    if cmd_id:
        frame = {"id": cmd_id, **frame}
    return _dumps(frame)


def subscribed_frame(cmd_id: int | None, channel: str, sid: int) -> bytes:
    """``{"id":1,"type":"subscribed","msg":{"channel":"orderbook_delta","sid":1}}``"""
    return _with_id(cmd_id, {"type": "subscribed", "msg": {"channel": channel, "sid": sid}})


def unsubscribed_frame(cmd_id: int | None, sid: int, seq: int) -> bytes:
    """``{"id":102,"sid":2,"seq":7,"type":"unsubscribed"}``"""
    return _with_id(cmd_id, {"sid": sid, "seq": seq, "type": "unsubscribed"})


def ok_frame(cmd_id: int | None, sid: int, seq: int, tickers: Iterable[str] | None) -> bytes:
    """``{"id":123,"sid":456,"seq":222,"type":"ok","msg":{"market_tickers":[...]}}``.

    ``tickers`` None (all markets, or ``skip_ticker_ack``) sends an empty ``msg``.
    """
    frame: dict[str, Any] = {"sid": sid}
    if seq:
        frame["seq"] = seq
    frame["type"] = "ok"
    frame["msg"] = {} if tickers is None else {"market_tickers": sorted(tickers)}
    return _with_id(cmd_id, frame)


def list_frame(cmd_id: int | None, subscriptions: Iterable[tuple[str, int]]) -> bytes:
    """``{"id":3,"type":"ok","msg":[{"channel":"orderbook_delta","sid":1}, ...]}``"""
    listed = [{"channel": channel, "sid": sid} for channel, sid in subscriptions]
    return _with_id(cmd_id, {"type": "ok", "msg": listed})


def error_frame(
    cmd_id: int | None, code: int, market_ticker: str | None = None, sid: int | None = None
) -> bytes:
    """``{"id":127,"type":"error","msg":{"code":16,"msg":"Market not found",...}}``.

    ``sid`` (top level, not in Kalshi's schema) names the subscription a terminal channel
    error ended; ``market_ticker`` the market an error is about.
    """
    msg: dict[str, Any] = {"code": code, "msg": WS_ERRORS[code]}
    if market_ticker is not None:
        msg["market_ticker"] = market_ticker
    frame: dict[str, Any] = {"type": "error", "msg": msg}
    if sid is not None:
        frame = {"sid": sid, **frame}
    return _with_id(cmd_id, frame)


# --------------------------------------------------------------------------- orderbook


def book_delta(ev: BookChange, use_yes_price: bool, client_order_id: str | None) -> bytes:
    """The ``msg`` of an ``orderbook_delta``.

    ``{"market_ticker":"FED-23DEC-T3.00","market_id":"9b0f6b43-…","price_dollars":"0.9600",
    "delta_fp":"-54.00","side":"yes","ts_ms":1669149841000,"client_order_id":"…",
    "subaccount":3}``

    Args:
        ev: The engine's level change (NO levels at NO prices).
        use_yes_price: Report a NO level at its YES price (``1 - p``).
        client_order_id: Set only for the owner of the order that caused the change; with
            it, ``subaccount`` names that order's subaccount when it is not the primary.
    """
    price = ev.price
    if use_yes_price and ev.outcome is Outcome.NO:
        price = ONE_DOLLAR - price
    msg: dict[str, Any] = {
        "market_ticker": ev.ticker,
        "market_id": market_id(ev.ticker),
        "price_dollars": _price_text(price),
        "delta_fp": _count_text(ev.delta),
        "side": ev.outcome,
        "ts_ms": ev.ts_ns // _NS_PER_MS,
    }
    if client_order_id is not None:
        msg["client_order_id"] = client_order_id
        if ev.subaccount:
            msg["subaccount"] = ev.subaccount
    return _dumps(msg)


def _levels(levels: Mapping[Price, Qty], flip: bool) -> list[list[str]]:
    """Levels ascending by the price reported (``flip``: NO levels at YES prices)."""
    if flip:
        pairs = sorted((ONE_DOLLAR - p, q) for p, q in levels.items())
    else:
        pairs = sorted(levels.items())
    return [[_price_text(p), _count_text(q)] for p, q in pairs if q > 0]


def book_snapshot(
    ticker: str, yes: Mapping[Price, Qty], no: Mapping[Price, Qty], use_yes_price: bool
) -> bytes:
    """The ``msg`` of an ``orderbook_snapshot``; an empty side's key is absent.

    ``{"market_ticker":"FED-23DEC-T3.00","market_id":"9b0f6b43-…",
    "yes_dollars_fp":[["0.0800","300.00"],["0.2200","333.00"]],
    "no_dollars_fp":[["0.5400","20.00"],["0.5600","146.00"]]}``

    Args:
        ticker: The market.
        yes: YES bids by YES price.
        no: NO bids by NO price.
        use_yes_price: Report NO bids at YES prices (``1 - p``), ascending.
    """
    msg: dict[str, Any] = {"market_ticker": ticker, "market_id": market_id(ticker)}
    yes_levels = _levels(yes, False)
    no_levels = _levels(no, use_yes_price)
    if yes_levels:
        msg["yes_dollars_fp"] = yes_levels
    if no_levels:
        msg["no_dollars_fp"] = no_levels
    return _dumps(msg)


# --------------------------------------------------------------------------- public data


def ticker(state: TickerState, ts_ns: int) -> bytes:
    """The ``msg`` of a ``ticker`` message.

    ``{"market_ticker":"FED-23DEC-T3.00","market_id":"…","price_dollars":"0.4800",
    "yes_bid_dollars":"0.4500","yes_ask_dollars":"0.5300","volume_fp":"33896.00",
    "open_interest_fp":"20422.00","dollar_volume":16948,"dollar_open_interest":10211,
    "yes_bid_size_fp":"300.00","yes_ask_size_fp":"150.00","last_trade_size_fp":"25.00",
    "ts":1669149841,"ts_ms":1669149841000,"time":"2022-11-22T20:44:01Z"}``
    """
    return _dumps(
        {
            "market_ticker": state.ticker,
            "market_id": market_id(state.ticker),
            "price_dollars": _price_text(state.price),
            "yes_bid_dollars": _price_text(state.yes_bid),
            "yes_ask_dollars": _price_text(state.yes_ask),
            "volume_fp": _count_text(state.volume),
            "open_interest_fp": _count_text(state.open_interest),
            "dollar_volume": state.dollar_volume,
            "dollar_open_interest": state.dollar_open_interest,
            "yes_bid_size_fp": _count_text(state.yes_bid_size),
            "yes_ask_size_fp": _count_text(state.yes_ask_size),
            "last_trade_size_fp": _count_text(state.last_trade_size),
            "ts": ts_ns // _NS_PER_S,
            "ts_ms": ts_ns // _NS_PER_MS,
            "time": rfc3339(ts_ns),
        },
    )


def trade(ev: TradePrint) -> bytes:
    """The ``msg`` of a ``trade`` message.

    ``{"trade_id":"…","market_ticker":"HIGHNY-22DEC23-B53.5","yes_price_dollars":"0.3600",
    "no_price_dollars":"0.6400","count_fp":"136.00","taker_side":"no",
    "taker_outcome_side":"no","taker_book_side":"ask","is_block_trade":false,
    "ts":1669149841,"ts_ms":1669149841000}``
    """
    outcome = _OUTCOME_OF[ev.taker_book_side]
    return _dumps(
        {
            "trade_id": ev.trade_id,
            "market_ticker": ev.ticker,
            "yes_price_dollars": _price_text(ev.yes_price),
            "no_price_dollars": _price_text(ONE_DOLLAR - ev.yes_price),
            "count_fp": _count_text(ev.count),
            "taker_side": outcome,
            "taker_outcome_side": outcome,
            "taker_book_side": ev.taker_book_side,
            "is_block_trade": False,
            "ts": ev.ts_ns // _NS_PER_S,
            "ts_ms": ev.ts_ns // _NS_PER_MS,
        },
    )


def lifecycle(ev: MarketLifecycle, market: MarketDef | None, event: EventDef | None) -> bytes:
    """The ``msg`` of a ``market_lifecycle_v2`` message; the fields depend on ``event_type``.

    ``{"market_ticker":"INXD-23SEP14-B4487","event_type":"determined","result":"yes",
    "determination_ts":1694721700,"settlement_value":"1.0000"}``

    Args:
        ev: The engine's lifecycle event.
        market: The market (for ``created``: times, price structure, metadata).
        event: The market's event (for ``created``'s metadata).
    """
    msg: dict[str, Any] = {"market_ticker": ev.ticker, "event_type": ev.event_type}
    seconds = ev.ts_ns // _NS_PER_S
    kind = ev.event_type
    if kind == "created" and market is not None:
        msg.update(_created_fields(market, event))
    elif kind in ("activated", "deactivated"):
        msg["is_deactivated"] = (
            ev.is_deactivated if ev.is_deactivated is not None else kind == "deactivated"
        )
    elif kind == "close_date_updated" and ev.close_ns is not None:
        msg["close_ts"] = ev.close_ns // _NS_PER_S
    elif kind == "determined":
        result = ev.result or (market.result if market is not None else "")
        msg["result"] = result
        msg["determination_ts"] = seconds
        if result in _SETTLEMENT_VALUE:
            msg["settlement_value"] = _SETTLEMENT_VALUE[result]
    elif kind == "settled":
        msg["settled_ts"] = seconds
    return _dumps(msg)


def _created_fields(market: MarketDef, event: EventDef | None) -> dict[str, Any]:
    close_ts = market.close_ns // _NS_PER_S
    subject = market.yes_sub_title or market.title
    return {
        "exchange_index": 0,
        "open_ts": market.open_ns // _NS_PER_S,
        "close_ts": close_ts,
        "price_level_structure": market.price_level_structure,
        "price_ranges": [
            {"start": _price_text(s), "end": _price_text(e), "step": _price_text(t)}
            for s, e, t in market.price_ranges
        ],
        "additional_metadata": {
            "name": event.title if event is not None else market.title,
            "title": market.title,
            "yes_sub_title": market.yes_sub_title,
            "no_sub_title": market.yes_sub_title,
            "rules_primary": f"If {subject}, the market resolves to Yes.",
            "rules_secondary": "",
            "can_close_early": False,
            "event_ticker": market.event_ticker,
            "expected_expiration_ts": close_ts,
        },
    }


# --------------------------------------------------------------------------- private data


def fill(f: SimFill) -> bytes:
    """The ``msg`` of a ``fill`` message (one side of one match, for its owner).

    ``{"trade_id":"…","order_id":"…","market_ticker":"HIGHNY-22DEC23-B53.5",
    "exchange_index":0,"is_taker":false,"side":"yes","action":"sell","purchased_side":"no",
    "outcome_side":"no","book_side":"ask","yes_price_dollars":"0.5200","count_fp":"1.00",
    "fee_cost":"0.0175","ts":1671899397,"ts_ms":1671899397123,"post_position_fp":"-4.00",
    "client_order_id":"kmm-1","subaccount":3}``

    ``subaccount`` (optional in Kalshi's schema) is sent for a fill of a numbered subaccount
    and left out for the primary account's.
    """
    outcome = _OUTCOME_OF[f.book_side]
    msg: dict[str, Any] = {
        "trade_id": f.trade_id,
        "order_id": f.order_id,
        "market_ticker": f.ticker,
        "exchange_index": 0,
        "is_taker": f.is_taker,
        "side": "yes",
        "action": _ACTION_OF[f.book_side],
        "purchased_side": outcome,
        "outcome_side": outcome,
        "book_side": f.book_side,
        "yes_price_dollars": _price_text(f.yes_price),
        "count_fp": _count_text(f.count),
        "fee_cost": format_dollars(f.fee),
        "ts": f.ts_ns // _NS_PER_S,
        "ts_ms": f.ts_ns // _NS_PER_MS,
        "post_position_fp": _count_text(f.post_position),
    }
    if f.client_order_id is not None:
        msg["client_order_id"] = f.client_order_id
    if f.subaccount:
        msg["subaccount"] = f.subaccount
    return _dumps(msg)


def user_order(o: SimOrder) -> bytes:
    """The ``msg`` of a ``user_order`` message (note the key ``ticker``, not ``market_ticker``).

    ``{"order_id":"…","user_id":"…","ticker":"FED-23DEC-T3.00","status":"resting",
    "side":"no","is_yes":false,"outcome_side":"no","book_side":"ask",
    "yes_price_dollars":"0.6500","fill_count_fp":"2.00","remaining_count_fp":"8.00",
    "initial_count_fp":"10.00","taker_fill_cost_dollars":"0.0000",
    "maker_fill_cost_dollars":"0.7000","taker_fees_dollars":"0.0000",
    "maker_fees_dollars":"0.0000","client_order_id":"kmm-2",
    "self_trade_prevention_type":"taker_at_cross","created_time":"…","created_ts_ms":…,
    "last_update_time":"…","last_updated_ts_ms":…,"subaccount_number":0}``
    """
    outcome = _OUTCOME_OF[o.book_side]
    msg: dict[str, Any] = {
        "order_id": o.order_id,
        "user_id": o.user_id,
        "ticker": o.ticker,
        "status": o.status,
        "side": outcome,
        "is_yes": o.book_side is BookSide.BID,
        "outcome_side": outcome,
        "book_side": o.book_side,
        "yes_price_dollars": _price_text(o.price),
        "fill_count_fp": _count_text(o.filled),
        "remaining_count_fp": _count_text(o.remaining),
        "initial_count_fp": _count_text(o.initial),
        "taker_fill_cost_dollars": format_dollars(o.taker_fill_cost),
        "maker_fill_cost_dollars": format_dollars(o.maker_fill_cost),
        "taker_fees_dollars": format_dollars(o.taker_fees),
        "maker_fees_dollars": format_dollars(o.maker_fees),
        "client_order_id": o.client_order_id or "",
        "self_trade_prevention_type": o.self_trade_prevention,
        "created_time": rfc3339(o.created_ns),
        "created_ts_ms": o.created_ns // _NS_PER_MS,
        "last_update_time": rfc3339(o.updated_ns),
        "last_updated_ts_ms": o.updated_ns // _NS_PER_MS,
        "subaccount_number": o.subaccount,
    }
    if o.order_group_id is not None:
        msg["order_group_id"] = o.order_group_id
    if o.expiration_s is not None:
        msg["expiration_time"] = rfc3339(o.expiration_s * _NS_PER_S)
        msg["expiration_ts_ms"] = o.expiration_s * 1000
    return _dumps(msg)


def market_position(ev: PositionUpdate, volume: Qty) -> bytes:
    """The ``msg`` of a ``market_position`` message.

    ``{"user_id":"…","market_ticker":"FED-23DEC-T3.00","position_fp":"100.00",
    "position_cost_dollars":"50.0000","realized_pnl_dollars":"10.0000",
    "fees_paid_dollars":"1.0000","position_fee_cost_dollars":"1.0000","volume_fp":"15.00",
    "subaccount":3}``

    Args:
        ev: The engine's position snapshot (``subaccount`` is sent unless it is the primary).
        volume: Contracts this subaccount traded in this market.
    """
    p = ev.position
    msg: dict[str, Any] = {
        "user_id": ev.user_id,
        "market_ticker": ev.ticker,
        "position_fp": _count_text(p.position),
        "position_cost_dollars": format_dollars(p.market_exposure),
        "realized_pnl_dollars": format_dollars(p.realized_pnl),
        "fees_paid_dollars": format_dollars(p.fees_paid),
        "position_fee_cost_dollars": format_dollars(p.fees_paid),
        "volume_fp": _count_text(volume),
    }
    if ev.subaccount:
        msg["subaccount"] = ev.subaccount
    return _dumps(msg)


def order_group(ev: OrderGroupUpdate) -> bytes:
    """The ``msg`` of an ``order_group_updates`` message.

    ``{"event_type":"limit_updated","order_group_id":"og_123","contracts_limit_fp":"150.00",
    "ts_ms":1787220000000}`` (``contracts_limit_fp`` on ``created``/``limit_updated`` only)
    """
    msg: dict[str, Any] = {"event_type": ev.event_type, "order_group_id": ev.group_id}
    if ev.event_type in ("created", "limit_updated"):
        msg["contracts_limit_fp"] = _count_text(ev.contracts_limit)
    msg["ts_ms"] = ev.ts_ns // _NS_PER_MS
    return _dumps(msg)
