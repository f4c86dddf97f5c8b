"""Engine records → Kalshi's REST JSON shapes (field names, fixed-point strings, RFC 3339 times).

Every function here is pure: it takes engine records (and the time, where a shape needs it)
and returns plain dicts ready for ``orjson.dumps``. Shapes follow the OpenAPI schemas embedded
in ``shared/kalshi-docs/api-reference/**`` (spec 3.28) and the models of Kalshi's SDK (spec
3.34), which require a few more fields (``settlement_bounds_type`` on Market, ``categories`` on
Series). Prices are ``*_dollars`` strings with four decimals, counts ``*_fp`` with two, and money
has four decimals when it is a whole number of $0.0001 (it always is for balances, which are
kept at direct-member precision) and six otherwise. Legacy direction fields (``side``,
``action``) are still emitted because Kalshi still sends them; ``book_side`` ``bid`` ≡
``outcome_side`` ``yes`` always.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any, Final

from kmm.sim._candles import Candle, TradeStats
from kmm.sim.engine import (
    CreateResult,
    EventDef,
    MarketDef,
    MarketStatus,
    MatchingEngine,
    OrderGroup,
    Position,
    SeriesDef,
    Settlement,
    SimFill,
    SimOrder,
    SubaccountTransfer,
    TradePrint,
)
from kmm.types import (
    ONE_DOLLAR,
    BookSide,
    Money,
    Price,
    Qty,
    format_count,
    format_money,
    format_price,
)

__all__ = [
    "Json",
    "amend_json",
    "api_key_json",
    "balance_json",
    "batch_cancel_item",
    "batch_create_item",
    "cancel_json",
    "candlestick_json",
    "create_json",
    "decrease_json",
    "error_body",
    "event_json",
    "event_metadata_json",
    "event_positions_json",
    "fill_json",
    "format_dollars",
    "historical_cutoff_json",
    "market_json",
    "market_status",
    "netting_json",
    "order_group_json",
    "order_json",
    "orderbook_json",
    "position_json",
    "queue_position_json",
    "resting_order_value_json",
    "rfc3339",
    "series_json",
    "settlement_json",
    "subaccount_balance_json",
    "trade_json",
    "transfer_json",
]

Json = dict[str, Any]

_NS_PER_MS: Final = 1_000_000
_NS_PER_S: Final = 1_000_000_000
_MONEY_PER_PRICE: Final = 100
"""Money units ($0.000001) per price unit ($0.0001)."""
_MONEY_PER_CENT: Final = 10_000
_SETTLEMENT_TIMER_S: Final = 60
_LATEST_EXPIRATION_NS: Final = 7 * 24 * 3600 * _NS_PER_S
_OPEN: Final = frozenset({MarketStatus.INITIALIZED, MarketStatus.ACTIVE, MarketStatus.INACTIVE})


def rfc3339(ts_ns: int) -> str:
    """Formats Unix nanoseconds as Kalshi's UTC timestamp, e.g. ``2026-08-21T22:07:01.216Z``."""
    secs, rem = divmod(ts_ns, _NS_PER_S)
    stamp = datetime.fromtimestamp(secs, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{rem // _NS_PER_MS:03d}Z"


def format_dollars(amount: Money) -> str:
    """Money as a dollar string: four decimals when exact at $0.0001, else six."""
    if amount % _MONEY_PER_PRICE == 0:
        return format_price(amount // _MONEY_PER_PRICE)
    return format_money(amount)


def error_body(code: str, message: str, details: str | None = None) -> Json:
    """Kalshi's error envelope ``{"error": {"code", "message", "details"}}``."""
    inner: Json = {"code": code, "message": message}
    if details is not None:
        inner["details"] = details
    return {"error": inner}


def _outcome(side: BookSide) -> str:
    return "yes" if side is BookSide.BID else "no"


# --------------------------------------------------------------------------- market data


def _top(engine: MatchingEngine, ticker: str) -> tuple[Price | None, Qty, Price | None, Qty]:
    bid, ask = engine.best(ticker)
    yes_levels, no_levels = engine.book_levels(ticker)
    bid_size = yes_levels.get(bid, 0) if bid is not None else 0
    ask_size = no_levels.get(ONE_DOLLAR - ask, 0) if ask is not None else 0
    return bid, bid_size, ask, ask_size


def market_status(market: MarketDef, now_ns: int) -> str:
    """The status Kalshi reports: an open market whose close time has passed is ``closed``."""
    if market.status in _OPEN and now_ns >= market.close_ns:
        return MarketStatus.CLOSED.value
    return market.status.value


def market_json(engine: MatchingEngine, market: MarketDef, now_ns: int) -> Json:
    """A ``Market`` object with live top of book, last price, volume and open interest."""
    bid, bid_size, ask, ask_size = _top(engine, market.ticker)
    yes_bid = 0 if bid is None else bid
    yes_ask = ONE_DOLLAR if ask is None else ask
    last = engine.last_price(market.ticker) or 0
    traded = engine.volume(market.ticker)
    close = rfc3339(market.close_ns)
    out: Json = {
        "ticker": market.ticker,
        "event_ticker": market.event_ticker,
        "market_type": market.market_type,
        "title": market.title,
        "subtitle": "",
        "yes_sub_title": market.yes_sub_title,
        "no_sub_title": market.yes_sub_title,
        "created_time": rfc3339(market.open_ns),
        "updated_time": rfc3339(market.settlement_ns or market.open_ns),
        "open_time": rfc3339(market.open_ns),
        "close_time": close,
        "expected_expiration_time": close,
        "expiration_time": close,
        "latest_expiration_time": rfc3339(market.close_ns + _LATEST_EXPIRATION_NS),
        "settlement_timer_seconds": _SETTLEMENT_TIMER_S,
        "status": market_status(market, now_ns),
        "yes_bid_dollars": format_price(yes_bid),
        "yes_bid_size_fp": format_count(bid_size),
        "yes_ask_dollars": format_price(yes_ask),
        "yes_ask_size_fp": format_count(ask_size),
        "no_bid_dollars": format_price(ONE_DOLLAR - yes_ask),
        "no_ask_dollars": format_price(ONE_DOLLAR - yes_bid),
        "last_price_dollars": format_price(last),
        "previous_yes_bid_dollars": format_price(0),
        "previous_yes_ask_dollars": format_price(0),
        "previous_price_dollars": format_price(0),
        "volume_fp": format_count(market.prior_volume + traded),
        "volume_24h_fp": format_count(market.prior_volume_24h + traded),
        "open_interest_fp": format_count(
            market.prior_open_interest + engine.open_interest(market.ticker)
        ),
        "notional_value_dollars": format_price(ONE_DOLLAR),
        "liquidity_dollars": format_price(0),
        "result": market.result,
        "can_close_early": False,
        "expiration_value": "",
        "settlement_bounds_type": "default",
        "rules_primary": f"If {market.yes_sub_title or market.title}, the market resolves to Yes.",
        "rules_secondary": "",
        "price_level_structure": market.price_level_structure,
        "price_ranges": [
            {"start": format_price(a), "end": format_price(b), "step": format_price(s)}
            for a, b, s in market.price_ranges
        ],
        "is_provisional": False,
        "exchange_index": 0,
    }
    if market.mve_collection_ticker is not None:
        out["mve_collection_ticker"] = market.mve_collection_ticker
        out["mve_selected_legs"] = [
            {"event_ticker": e, "market_ticker": m, "side": side} for e, m, side in market.mve_legs
        ]
    if market.result in ("yes", "no"):
        out["settlement_value_dollars"] = format_price(ONE_DOLLAR if market.result == "yes" else 0)
    if market.settlement_ns is not None:
        out["settlement_ts"] = rfc3339(market.settlement_ns)
    return out


def _levels(levels: Mapping[Price, Qty], depth: int) -> list[list[str]]:
    prices = sorted(p for p, q in levels.items() if q > 0)
    if depth > 0:
        prices = prices[-depth:]
    return [[format_price(p), format_count(levels[p])] for p in prices]


def orderbook_json(engine: MatchingEngine, ticker: str, depth: int = 0) -> Json:
    """``orderbook_fp``: YES and NO bids, ascending (best last), ``depth`` best levels (0 = all)."""
    yes, no = engine.book_levels(ticker)
    return {"yes_dollars": _levels(yes, depth), "no_dollars": _levels(no, depth)}


def trade_json(trade: TradePrint) -> Json:
    """A public ``Trade``."""
    outcome = _outcome(trade.taker_book_side)
    return {
        "trade_id": trade.trade_id,
        "ticker": trade.ticker,
        "count_fp": format_count(trade.count),
        "yes_price_dollars": format_price(trade.yes_price),
        "no_price_dollars": format_price(ONE_DOLLAR - trade.yes_price),
        "taker_side": outcome,
        "taker_outcome_side": outcome,
        "taker_book_side": str(trade.taker_book_side),
        "created_time": rfc3339(trade.ts_ns),
        "is_block_trade": False,
    }


def _multiplier(value: Fraction) -> int | float:
    # The venue sends a JSON number; this is display only, never used in money arithmetic
    return value.numerator if value.denominator == 1 else float(value)


def series_json(series: SeriesDef, volume: Qty | None = None) -> Json:
    """A ``Series`` with its ``fee_type`` and ``fee_multiplier``."""
    out: Json = {
        "ticker": series.ticker,
        "frequency": "custom",
        "title": series.title,
        "category": series.category,
        "categories": [series.category],
        "tags": [],
        "settlement_sources": [],
        "contract_url": "",
        "contract_terms_url": "",
        "fee_type": series.fee_type,
        "fee_multiplier": _multiplier(series.fee_multiplier),
        "additional_prohibitions": [],
        "exchange_index": 0,
    }
    if volume is not None:
        out["volume_fp"] = format_count(volume)
    return out


def event_json(event: EventDef, category: str, markets: Sequence[Json] | None = None) -> Json:
    """An ``EventData``; ``markets`` are nested only when given."""
    out: Json = {
        "event_ticker": event.event_ticker,
        "series_ticker": event.series_ticker,
        "sub_title": event.sub_title,
        "title": event.title,
        "collateral_return_type": "",
        "mutually_exclusive": False,
        "category": category,
        "available_on_brokers": False,
        "settlement_sources": [],
        "exchange_index": 0,
    }
    if markets is not None:
        out["markets"] = list(markets)
    return out


# --------------------------------------------------------------------------- portfolio


def order_json(order: SimOrder) -> Json:
    """An ``Order`` (``GET /portfolio/orders``)."""
    outcome = _outcome(order.book_side)
    expiration = None if order.expiration_s is None else rfc3339(order.expiration_s * _NS_PER_S)
    return {
        "order_id": order.order_id,
        "user_id": order.user_id,
        "client_order_id": order.client_order_id or "",
        "ticker": order.ticker,
        "side": outcome,
        "action": "buy",
        "outcome_side": outcome,
        "book_side": str(order.book_side),
        "type": "limit",
        "status": str(order.status),
        "yes_price_dollars": format_price(order.price),
        "no_price_dollars": format_price(ONE_DOLLAR - order.price),
        "fill_count_fp": format_count(order.filled),
        "remaining_count_fp": format_count(order.remaining),
        "initial_count_fp": format_count(order.initial),
        "taker_fill_cost_dollars": format_dollars(order.taker_fill_cost),
        "maker_fill_cost_dollars": format_dollars(order.maker_fill_cost),
        "taker_fees_dollars": format_dollars(order.taker_fees),
        "maker_fees_dollars": format_dollars(order.maker_fees),
        "expiration_time": expiration,
        "created_time": rfc3339(order.created_ns),
        "last_update_time": rfc3339(order.updated_ns),
        "self_trade_prevention_type": str(order.self_trade_prevention),
        "order_group_id": order.order_group_id,
        "cancel_order_on_pause": order.cancel_order_on_pause,
        "subaccount_number": order.subaccount,
        "exchange_index": 0,
    }


def fill_json(fill: SimFill) -> Json:
    """A ``Fill`` (``GET /portfolio/fills``); ``fill_id`` equals ``trade_id`` as on Kalshi."""
    outcome = _outcome(fill.book_side)
    return {
        "fill_id": fill.trade_id,
        "trade_id": fill.trade_id,
        "order_id": fill.order_id,
        "ticker": fill.ticker,
        "market_ticker": fill.ticker,
        "side": outcome,
        "action": "buy",
        "outcome_side": outcome,
        "book_side": str(fill.book_side),
        "count_fp": format_count(fill.count),
        "yes_price_dollars": format_price(fill.yes_price),
        "no_price_dollars": format_price(ONE_DOLLAR - fill.yes_price),
        "is_taker": fill.is_taker,
        "created_time": rfc3339(fill.ts_ns),
        "fee_cost": format_dollars(fill.fee),
        "subaccount_number": fill.subaccount,
        "exchange_index": 0,
        "ts": fill.ts_ns // _NS_PER_S,
    }


def queue_position_json(order: SimOrder, ahead: Qty) -> Json:
    """``OrderQueuePosition``: the contracts ahead of a resting order at its price."""
    return {
        "order_id": order.order_id,
        "market_ticker": order.ticker,
        "queue_position_fp": format_count(ahead),
    }


def position_json(ticker: str, position: Position) -> Json:
    """A ``MarketPosition`` (``position_fp`` > 0 is YES, < 0 is NO)."""
    return {
        "ticker": ticker,
        "exchange_index": 0,
        "total_traded_dollars": format_dollars(position.total_traded),
        "position_fp": format_count(position.position),
        "market_exposure_dollars": format_dollars(position.market_exposure),
        "realized_pnl_dollars": format_dollars(position.realized_pnl),
        "fees_paid_dollars": format_dollars(position.fees_paid),
        "last_updated_ts": rfc3339(position.last_updated_ns),
    }


def event_positions_json(
    rows: Iterable[tuple[str, Position]], traded: Mapping[str, Qty]
) -> list[Json]:
    """``EventPosition`` rows: ``rows`` are (event ticker, position) pairs, one per market;
    ``traded`` is the contracts traded per event (YES and NO together)."""
    sums: dict[str, list[int]] = {}
    for event_ticker, p in rows:
        acc = sums.setdefault(event_ticker, [0, 0, 0, 0])
        acc[0] += p.total_traded
        acc[1] += p.market_exposure
        acc[2] += p.realized_pnl
        acc[3] += p.fees_paid
    return [
        {
            "event_ticker": event_ticker,
            "total_cost_dollars": format_dollars(cost),
            "total_cost_shares_fp": format_count(traded.get(event_ticker, 0)),
            "event_exposure_dollars": format_dollars(exposure),
            "realized_pnl_dollars": format_dollars(pnl),
            "fees_paid_dollars": format_dollars(fees),
        }
        for event_ticker, (cost, exposure, pnl, fees) in sums.items()
    ]


def balance_json(balance: Money, portfolio_value: Money, updated_ns: int) -> Json:
    """``GET /portfolio/balance``: cents fields truncated, ``balance_dollars`` exact."""
    dollars = format_dollars(balance)
    return {
        "balance": balance // _MONEY_PER_CENT,
        "balance_dollars": dollars,
        "portfolio_value": portfolio_value // _MONEY_PER_CENT,
        "updated_ts": updated_ns // _NS_PER_S,
        "balance_breakdown": [{"exchange_index": 0, "balance": dollars}],
    }


def subaccount_balance_json(subaccount: int, balance: Money, updated_ns: int) -> Json:
    """A ``SubaccountBalance`` (``GET /portfolio/subaccounts/balances``): a dollar string."""
    return {
        "subaccount_number": subaccount,
        "exchange_index": 0,
        "balance": format_dollars(balance),
        "updated_ts": updated_ns // _NS_PER_S,
    }


def transfer_json(row: SubaccountTransfer) -> Json:
    """A ``SubaccountTransfer`` (``GET /portfolio/subaccounts/transfers``), in cents."""
    return {
        "transfer_id": row.transfer_id,
        "from_subaccount": row.from_subaccount,
        "to_subaccount": row.to_subaccount,
        "amount_cents": row.amount // _MONEY_PER_CENT,
        "created_ts": row.created_ns // _NS_PER_S,
        "exchange_index": 0,
    }


def settlement_json(row: Settlement) -> Json:
    """A ``Settlement``; ``revenue`` and ``value`` are integer cents as on Kalshi."""
    return {
        "ticker": row.ticker,
        "exchange_index": 0,
        "event_ticker": row.event_ticker,
        "market_result": row.market_result,
        "yes_count_fp": format_count(row.yes_count),
        "yes_total_cost_dollars": format_dollars(row.yes_total_cost),
        "no_count_fp": format_count(row.no_count),
        "no_total_cost_dollars": format_dollars(row.no_total_cost),
        "revenue": row.revenue // _MONEY_PER_CENT,
        "value": row.value // (ONE_DOLLAR // 100),
        "fee_cost": format_dollars(row.fee_cost),
        "settled_time": rfc3339(row.settled_ns),
    }


def order_group_json(group: OrderGroup) -> Json:
    """An ``OrderGroup`` list row."""
    return {
        "id": group.id,
        "contracts_limit_fp": format_count(group.contracts_limit),
        "is_auto_cancel_enabled": group.is_auto_cancel_enabled,
        "exchange_index": 0,
    }


# --------------------------------------------------------------------------- order writes


def _averages(fills: Sequence[SimFill]) -> tuple[str, str] | None:
    """Volume-weighted average price and fee per contract, rounded half up to $0.000001."""
    count = sum(f.count for f in fills)
    if count == 0:
        return None
    value = sum(f.yes_price * f.count for f in fills)
    fees = sum(f.fee for f in fills)
    # value / count is money per 0.01 contract: x100 → per contract; + count//2 rounds half up
    avg_price = (value * 100 + count // 2) // count
    avg_fee = (fees * 100 + count // 2) // count
    return format_dollars(avg_price), format_dollars(avg_fee)


def _ts_ms(ts_ns: int) -> int:
    return ts_ns // _NS_PER_MS


def create_json(result: CreateResult) -> Json:
    """``CreateOrderV2Response``: averages only when something filled."""
    order = result.order
    filled = sum(f.count for f in result.fills)
    out: Json = {
        "order_id": order.order_id,
        "client_order_id": order.client_order_id or "",
        "fill_count": format_count(filled),
        "remaining_count": format_count(order.remaining),
        "ts_ms": _ts_ms(result.ts_ns),
    }
    averages = _averages(result.fills)
    if averages is not None:
        out["average_fill_price"], out["average_fee_paid"] = averages
    return out


def amend_json(result: CreateResult) -> Json:
    """``AmendOrderV2Response``: fill fields describe fills caused by the amend (null if none)."""
    order = result.order
    averages = _averages(result.fills)
    return {
        "order_id": order.order_id,
        "client_order_id": order.client_order_id or "",
        "remaining_count": format_count(order.remaining),
        "fill_count": format_count(sum(f.count for f in result.fills)),
        "average_fill_price": None if averages is None else averages[0],
        "average_fee_paid": None if averages is None else averages[1],
        "ts_ms": _ts_ms(result.ts_ns),
    }


def decrease_json(order: SimOrder, ts_ns: int) -> Json:
    """``DecreaseOrderV2Response``."""
    return {
        "order_id": order.order_id,
        "client_order_id": order.client_order_id or "",
        "remaining_count": format_count(order.remaining),
        "ts_ms": _ts_ms(ts_ns),
    }


def cancel_json(order: SimOrder, reduced_by: Qty, ts_ns: int) -> Json:
    """``CancelOrderV2Response``."""
    return {
        "order_id": order.order_id,
        "client_order_id": order.client_order_id or "",
        "reduced_by": format_count(reduced_by),
        "ts_ms": _ts_ms(ts_ns),
    }


def batch_create_item(
    result: CreateResult | None, client_order_id: str | None, error: Json | None
) -> Json:
    """One ``BatchCreateOrdersV2Response`` item: the create's fields, or ``error`` with the
    other fields null (``order_id``, which is not nullable, is left out)."""
    if result is not None:
        item = create_json(result)
        item.setdefault("average_fill_price", None)
        item.setdefault("average_fee_paid", None)
        item["error"] = None
        return item
    return {
        "client_order_id": client_order_id,
        "fill_count": None,
        "remaining_count": None,
        "average_fill_price": None,
        "average_fee_paid": None,
        "ts_ms": None,
        "error": error,
    }


def batch_cancel_item(
    order_id: str,
    cancelled: tuple[SimOrder, Qty] | None,
    ts_ns: int,
    error: Json | None,
) -> Json:
    """One ``BatchCancelOrdersV2Response`` item (``reduced_by`` "0.00" on error)."""
    if cancelled is not None:
        item = cancel_json(cancelled[0], cancelled[1], ts_ns)
        item["error"] = None
        return item
    return {
        "order_id": order_id,
        "client_order_id": None,
        "reduced_by": format_count(0),
        "ts_ms": None,
        "error": error,
    }


# --------------------------------------------------------------------------- candlesticks


def _maybe_price(price: Price | None) -> str | None:
    return None if price is None else format_price(price)


def _bid_ask(open_: Price, high: Price, low: Price, close: Price) -> Json:
    return {
        "open_dollars": format_price(open_),
        "low_dollars": format_price(low),
        "high_dollars": format_price(high),
        "close_dollars": format_price(close),
    }


def _price_distribution(trades: TradeStats) -> Json:
    return {
        "open_dollars": _maybe_price(trades.open),
        "low_dollars": _maybe_price(trades.low),
        "high_dollars": _maybe_price(trades.high),
        "close_dollars": _maybe_price(trades.close),
        "mean_dollars": None if trades.mean is None else format_dollars(trades.mean),
        "previous_dollars": _maybe_price(trades.previous),
        "min_dollars": _maybe_price(trades.min_close),
        "max_dollars": _maybe_price(trades.max_close),
    }


def candlestick_json(candle: Candle) -> Json:
    """A ``MarketCandlestick``: quote OHLC, trade prices (null without trades), volume and
    open interest, with the period's inclusive end in Unix seconds."""
    book = candle.book
    return {
        "end_period_ts": book.end_s,
        "yes_bid": _bid_ask(book.bid_open, book.bid_high, book.bid_low, book.bid_close),
        "yes_ask": _bid_ask(book.ask_open, book.ask_high, book.ask_low, book.ask_close),
        "price": _price_distribution(candle.trades),
        "volume_fp": format_count(candle.trades.volume),
        "open_interest_fp": format_count(book.open_interest),
    }


_COLOR_CODES: Final = ("#0A7E5C", "#C0392B", "#2E86C1", "#B9770E", "#7D3C98", "#566573")
"""Colors handed to an event's markets in turn (the sim has no artwork)."""


def event_metadata_json(market_tickers: Sequence[str]) -> Json:
    """``GET /events/{event_ticker}/metadata``: the sim has no images (empty paths) and no
    settlement sources; each market gets a color of its own within the event."""
    details = [
        {"market_ticker": t, "image_url": "", "color_code": _COLOR_CODES[i % len(_COLOR_CODES)]}
        for i, t in enumerate(market_tickers)
    ]
    return {"image_url": "", "market_details": details, "settlement_sources": []}


# --------------------------------------------------------------------------- account, keys


def netting_json(configs: Iterable[tuple[int, bool]]) -> Json:
    """``GET /portfolio/subaccounts/netting``: each subaccount's netting setting."""
    return {
        "netting_configs": [
            {"subaccount_number": n, "enabled": enabled, "exchange_index": 0}
            for n, enabled in configs
        ]
    }


def resting_order_value_json(total: Money) -> Json:
    """``GET /portfolio/summary/total_resting_order_value``: cents (truncated, as the balance
    is) and the exact dollar amount per exchange index."""
    return {
        "total_resting_order_value": total // _MONEY_PER_CENT,
        "resting_order_value_breakdown": [{"exchange_index": 0, "balance": format_dollars(total)}],
    }


def api_key_json(name: str, key_id: str, scopes: Sequence[str], subaccount: int | None) -> Json:
    """An ``ApiKey`` (``GET /api_keys``): never any key material; ``subaccount`` only for a
    restricted key."""
    out: Json = {"api_key_id": key_id, "name": name, "scopes": list(scopes)}
    if subaccount is not None:
        out["subaccount"] = subaccount
    return out


def historical_cutoff_json(cutoff_ns: int) -> Json:
    """``GET /historical/cutoff``: every partition's cutoff at the same moment."""
    stamp = rfc3339(cutoff_ns)
    return {
        "market_settled_ts": stamp,
        "trades_created_ts": stamp,
        "orders_updated_ts": stamp,
        "market_positions_last_updated_ts": stamp,
    }
