"""The sim's newer REST routes over real HTTP: candlesticks, event metadata, fee changes, the
historical cutoff, the user-data timestamp, subaccount netting, API keys and the total
resting-order value, plus the routing rule that keeps static paths away from templated ones.

Trades are made by crossing orders between two accounts at prices inside the seeded spread,
so every expected number below is worked out by hand from the orders the test sends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kmm.clock import ManualClock
from kmm.kalshi.constants import API_PREFIX
from kmm.sim.engine import MarketDef, OrderRequest
from kmm.sim.rest import ENDPOINTS
from kmm.sim.server import SimOptions, SimServer
from kmm.types import BookSide, format_price
from tests.sim.conftest import START_NS, SignedClient, make_options, new_user

pytestmark = pytest.mark.asyncio

SECOND = 1_000_000_000
START_S = START_NS // SECOND
"""12:00:00 UTC, a minute and hour boundary (not a day boundary)."""
MINUTE = 60
ORDERS = "/portfolio/events/orders"
CANDLE_KEYS = {"end_period_ts", "yes_bid", "yes_ask", "price", "volume_fp", "open_interest_fp"}
OHLC_KEYS = {"open_dollars", "low_dollars", "high_dollars", "close_dollars"}
PRICE_KEYS = OHLC_KEYS | {"mean_dollars", "previous_dollars", "min_dollars", "max_dollars"}


# ----------------------------------------------------------------------------- helpers


def linear(sim: SimServer, index: int = 0) -> MarketDef:
    markets = [m for m in sim.venue.universe.markets if m.price_level_structure == "linear_cent"]
    return markets[index]


def series_of(sim: SimServer, market: MarketDef) -> str:
    return sim.venue.engine.events[market.event_ticker].series_ticker


def advance(sim: SimServer, seconds: float) -> None:
    clock = sim.venue.clock
    assert isinstance(clock, ManualClock)
    clock.advance(seconds)


def order(ticker: str, side: str, price: int, count: str = "1", **extra: Any) -> dict[str, Any]:
    return {
        "ticker": ticker,
        "side": side,
        "price": format_price(price),
        "count": count,
        "time_in_force": "good_till_canceled",
        "self_trade_prevention_type": "taker_at_cross",
        **extra,
    }


async def place(client: SignedClient, body: dict[str, Any]) -> dict[str, Any]:
    status, answer = await client.post(ORDERS, body)
    assert status == 201, answer
    return dict(answer)


async def take(client: SignedClient, ticker: str, side: str, price: int, count: str) -> None:
    """Crosses with an immediate-or-cancel order that must fill completely."""
    answer = await place(
        client, order(ticker, side, price, count, time_in_force="immediate_or_cancel")
    )
    assert answer["remaining_count"] == "0.00", answer


def assert_error(status: int, body: Any, expected: int, code: str, param: str = "") -> None:
    assert status == expected, body
    assert body["error"]["code"] == code, body
    if param:
        assert body["error"]["details"].startswith(param + ":"), body


def candle_path(sim: SimServer, market: MarketDef) -> str:
    return f"/series/{series_of(sim, market)}/markets/{market.ticker}/candlesticks"


def window(start: int, end: int, period: int = 1, **extra: str) -> dict[str, str]:
    return {"start_ts": str(start), "end_ts": str(end), "period_interval": str(period), **extra}


def check_candle_shape(candle: dict[str, Any]) -> None:
    assert set(candle) == CANDLE_KEYS
    assert set(candle["yes_bid"]) == OHLC_KEYS and set(candle["yes_ask"]) == OHLC_KEYS
    assert set(candle["price"]) == PRICE_KEYS
    assert all(isinstance(candle["yes_bid"][k], str) for k in OHLC_KEYS)
    assert isinstance(candle["end_period_ts"], int)


def ohlc(open_: str, high: str, low: str, close: str) -> dict[str, str]:
    return {"open_dollars": open_, "high_dollars": high, "low_dollars": low, "close_dollars": close}


async def two_minutes_of_trades(sim: SimServer, client: SignedClient) -> tuple[MarketDef, Any]:
    """Five trades over two minutes in the first linear market, seeded at 0.66 / 0.69.

    12:00:10  maker asks 3 @ 0.68, the demo account lifts 2        (trade 2 @ 0.68)
    12:00:30  the demo account lifts the last one                   (trade 1 @ 0.68)
    12:00:40  maker asks 1 @ 0.67, lifted at once                   (trade 1 @ 0.67)
    12:01:10  the demo account sells 1 into the seeded bid at 0.66  (trade 1 @ 0.66)
    """
    market = linear(sim)
    assert sim.venue.engine.best(market.ticker) == (6600, 6900)
    maker = await new_user(sim, client.session, "maker")
    advance(sim, 10)
    await place(maker, order(market.ticker, "ask", 6800, "3"))
    await take(client, market.ticker, "bid", 6800, "2")
    advance(sim, 20)
    await take(client, market.ticker, "bid", 6800, "1")
    advance(sim, 10)
    await place(maker, order(market.ticker, "ask", 6700, "1"))
    await take(client, market.ticker, "bid", 6700, "1")
    advance(sim, 30)
    await take(client, market.ticker, "ask", 6600, "1")
    return market, maker


# ----------------------------------------------------------------------------- candlesticks


async def test_minute_candles_agree_with_the_trades_that_made_them(
    sim: SimServer, client: SignedClient
) -> None:
    market, _ = await two_minutes_of_trades(sim, client)

    status, body = await client.get(
        candle_path(sim, market), params=window(START_S, START_S + 5 * MINUTE), signed=False
    )
    _, trades = await client.get("/markets/trades", params={"ticker": market.ticker})

    assert status == 200, body
    assert body["ticker"] == market.ticker
    first, second = body["candlesticks"]
    for candle in (first, second):
        check_candle_shape(candle)
    assert first["end_period_ts"] == START_S + MINUTE
    assert first["yes_bid"] == ohlc("0.6600", "0.6600", "0.6600", "0.6600")
    assert first["yes_ask"] == ohlc("0.6900", "0.6900", "0.6700", "0.6900")
    assert first["price"] == {
        **ohlc("0.6800", "0.6800", "0.6700", "0.6700"),
        "mean_dollars": "0.6775",  # (3 × 0.68 + 0.67) / 4
        "previous_dollars": None,
        "min_dollars": "0.6700",
        "max_dollars": "0.6700",
    }
    assert first["volume_fp"] == "4.00"
    assert first["open_interest_fp"] == "4.00"  # the demo account holds 4 YES
    assert second["end_period_ts"] == START_S + 2 * MINUTE
    assert second["price"]["open_dollars"] == second["price"]["close_dollars"] == "0.6600"
    assert second["price"]["previous_dollars"] == "0.6700"
    assert second["volume_fp"] == "1.00"
    # the seeded maker bought the YES the demo account sold: 3 + 1 contracts outstanding
    assert second["open_interest_fp"] == "4.00"
    assert sim.venue.engine.open_interest(market.ticker) == 400
    traded = sum(float(t["count_fp"]) for t in trades["trades"])
    assert traded == float(first["volume_fp"]) + float(second["volume_fp"])


async def test_hour_and_day_candles_aggregate_the_minutes(
    sim: SimServer, client: SignedClient
) -> None:
    market, _ = await two_minutes_of_trades(sim, client)
    day_end = START_S + 12 * 3600  # the next UTC midnight

    _, hour = await client.get(candle_path(sim, market), params=window(START_S, START_S + 3600, 60))
    _, day = await client.get(candle_path(sim, market), params=window(START_S, day_end, 1440))

    (hourly,) = hour["candlesticks"]
    (daily,) = day["candlesticks"]
    assert hourly["end_period_ts"] == START_S + 3600
    assert daily["end_period_ts"] == day_end
    for candle in (hourly, daily):
        assert candle["price"] == {
            **ohlc("0.6800", "0.6800", "0.6600", "0.6600"),
            "mean_dollars": "0.6740",  # (3 × 0.68 + 0.67 + 0.66) / 5
            "previous_dollars": None,
            "min_dollars": "0.6600",  # the two minutes closed at 0.67 and 0.66
            "max_dollars": "0.6700",
        }
        assert candle["yes_ask"] == ohlc("0.6900", "0.6900", "0.6700", "0.6900")
        assert candle["volume_fp"] == "5.00"


async def test_candles_are_selected_by_their_inclusive_end(
    sim: SimServer, client: SignedClient
) -> None:
    market, _ = await two_minutes_of_trades(sim, client)
    path = candle_path(sim, market)

    _, late = await client.get(path, params=window(START_S + MINUTE + 1, START_S + 600))
    _, early = await client.get(path, params=window(START_S, START_S + MINUTE))
    _, exact = await client.get(path, params=window(START_S + 2 * MINUTE, START_S + 2 * MINUTE))

    assert [c["end_period_ts"] for c in late["candlesticks"]] == [START_S + 2 * MINUTE]
    assert [c["end_period_ts"] for c in early["candlesticks"]] == [START_S + MINUTE]
    assert [c["end_period_ts"] for c in exact["candlesticks"]] == [START_S + 2 * MINUTE]


async def test_latest_before_start_carries_the_last_candle_forward(
    sim: SimServer, client: SignedClient
) -> None:
    market, _ = await two_minutes_of_trades(sim, client)
    params = window(START_S + 250, START_S + 900, include_latest_before_start="true")

    _, with_it = await client.get(candle_path(sim, market), params=params)
    _, without = await client.get(
        candle_path(sim, market), params=window(START_S + 250, START_S + 900)
    )

    assert without["candlesticks"] == []
    (carried,) = with_it["candlesticks"]
    assert carried["end_period_ts"] == START_S + 5 * MINUTE  # the first boundary after start
    assert carried["price"] == {key: None for key in PRICE_KEYS} | {"previous_dollars": "0.6600"}
    assert carried["yes_bid"] == ohlc("0.6600", "0.6600", "0.6600", "0.6600")
    assert carried["yes_ask"] == ohlc("0.6900", "0.6900", "0.6900", "0.6900")
    assert carried["volume_fp"] == "0.00"
    assert carried["open_interest_fp"] == "4.00"


async def test_a_quiet_market_has_no_candles(sim: SimServer, client: SignedClient) -> None:
    market = linear(sim, 1)

    status, body = await client.get(
        candle_path(sim, market), params=window(START_S - 3600, START_S + 3600)
    )

    assert status == 200
    assert body == {"ticker": market.ticker, "candlesticks": []}


async def test_one_batch_spanning_minutes_is_recorded_event_by_event(
    sim: SimServer, client: SignedClient
) -> None:
    """Orders placed in the engine over three minutes and published at once (as the background
    flow does on a step) leave three candles, each with its own quotes and open interest."""
    market = linear(sim)
    engine = sim.venue.engine
    for user in ("buyer", "seller"):
        engine.open_account(user, 10**12)

    def at(user: str, side: BookSide, price: int, seconds: int) -> None:
        request = OrderRequest(market.ticker, side, price, 100)
        engine.create_order(user, request, START_NS + seconds * SECOND)

    at("buyer", BookSide.BID, 6700, 5)  # bid 0.66 → 0.67
    at("buyer", BookSide.BID, 6800, 65)  # bid → 0.68
    at("seller", BookSide.ASK, 6800, 70)  # fills it: bid back to 0.67, one contract open
    at("buyer", BookSide.BID, 6500, 125)  # rests under the bid
    await sim.step(START_NS + 3 * MINUTE * SECOND)

    _, body = await client.get(candle_path(sim, market), params=window(START_S, START_S + 600))

    rows = [(c["yes_bid"], c["open_interest_fp"]) for c in body["candlesticks"]]
    assert [c["end_period_ts"] for c in body["candlesticks"]] == [
        START_S + MINUTE,
        START_S + 2 * MINUTE,
        START_S + 3 * MINUTE,
    ]
    assert rows == [
        (ohlc("0.6600", "0.6700", "0.6600", "0.6700"), "0.00"),
        (ohlc("0.6700", "0.6800", "0.6700", "0.6700"), "1.00"),
        (ohlc("0.6700", "0.6700", "0.6700", "0.6700"), "1.00"),
    ]


async def test_open_interest_drops_to_zero_at_settlement(
    sim: SimServer, client: SignedClient
) -> None:
    market, _ = await two_minutes_of_trades(sim, client)
    engine = sim.venue.engine
    settle_ns = START_NS + 10 * MINUTE * SECOND
    engine.close_market(market.ticker, settle_ns)
    engine.determine_market(market.ticker, "yes", settle_ns)
    engine.settle_market(market.ticker, settle_ns)
    await sim.step(settle_ns)

    _, body = await client.get(candle_path(sim, market), params=window(START_S, START_S + 3600))

    assert body["candlesticks"][-1]["end_period_ts"] == START_S + 10 * MINUTE
    assert body["candlesticks"][-1]["open_interest_fp"] == "0.00"


async def test_candle_requests_name_their_bad_parameter(
    sim: SimServer, client: SignedClient
) -> None:
    path = candle_path(sim, linear(sim))
    cases = [
        ({"end_ts": "1", "period_interval": "1"}, "start_ts"),
        ({"start_ts": "1", "period_interval": "1"}, "end_ts"),
        ({"start_ts": "1", "end_ts": "2"}, "period_interval"),
        (window(1, 2, 5), "period_interval"),
        (window(1, 2, 60, start_ts="x"), "start_ts"),
        (window(10, 2), "start_ts"),
        (window(1, 2, include_latest_before_start="maybe"), "include_latest_before_start"),
    ]

    for params, name in cases:
        status, body = await client.get(path, params=params)
        assert_error(status, body, 400, "bad_request", name)


async def test_unknown_series_and_markets_are_404(sim: SimServer, client: SignedClient) -> None:
    market = linear(sim)
    other_series = next(
        s.ticker for s in sim.venue.universe.series if s.ticker != series_of(sim, market)
    )
    params = window(START_S, START_S + 60)
    paths = [
        f"/series/NOPE/markets/{market.ticker}/candlesticks",
        f"/series/{series_of(sim, market)}/markets/NOPE/candlesticks",
        f"/series/{other_series}/markets/{market.ticker}/candlesticks",
    ]

    for path in paths:
        status, body = await client.get(path, params=params)
        assert_error(status, body, 404, "not_found")


async def test_batch_candles_per_market_and_any_whole_minute_period(
    sim: SimServer, client: SignedClient
) -> None:
    market, _ = await two_minutes_of_trades(sim, client)
    quiet = linear(sim, 1)
    tickers = f"{market.ticker},{quiet.ticker}"
    single_params = window(START_S, START_S + 600)

    status, body = await client.get(
        "/markets/candlesticks", params={"market_tickers": tickers, **single_params}
    )
    _, single = await client.get(candle_path(sim, market), params=single_params)
    _, five = await client.get(
        "/markets/candlesticks",
        params={"market_tickers": market.ticker, **window(START_S, START_S + 600, 5)},
    )

    assert status == 200, body
    assert [m["market_ticker"] for m in body["markets"]] == [market.ticker, quiet.ticker]
    assert body["markets"][0]["candlesticks"] == single["candlesticks"]
    assert body["markets"][1]["candlesticks"] == []
    (five_minutes,) = five["markets"][0]["candlesticks"]
    assert five_minutes["end_period_ts"] == START_S + 5 * MINUTE
    assert five_minutes["volume_fp"] == "5.00"


async def test_batch_candle_errors(sim: SimServer, client: SignedClient) -> None:
    params = window(START_S, START_S + 60)
    too_many = ",".join([linear(sim).ticker] * 101)

    missing = await client.get("/markets/candlesticks", params=params)
    many = await client.get("/markets/candlesticks", params={"market_tickers": too_many, **params})
    unknown = await client.get("/markets/candlesticks", params={"market_tickers": "NOPE", **params})
    zero = await client.get(
        "/markets/candlesticks", params={"market_tickers": linear(sim).ticker, **window(1, 2, 0)}
    )

    assert_error(*missing, 400, "bad_request", "market_tickers")
    assert_error(*many, 400, "bad_request", "market_tickers")
    assert_error(*unknown, 404, "not_found")
    assert_error(*zero, 400, "bad_request", "period_interval")


async def test_event_candles_list_every_market_of_the_event(
    sim: SimServer, client: SignedClient
) -> None:
    market, _ = await two_minutes_of_trades(sim, client)
    event = sim.venue.engine.events[market.event_ticker]
    tickers = [m.ticker for m in sim.venue.universe.markets if m.event_ticker == event.event_ticker]
    params = window(START_S, START_S + 600)

    status, body = await client.get(
        f"/series/{event.series_ticker}/events/{event.event_ticker}/candlesticks", params=params
    )
    _, single = await client.get(candle_path(sim, market), params=params)
    wrong = await client.get(
        f"/series/NOPE/events/{event.event_ticker}/candlesticks", params=params
    )

    assert status == 200, body
    assert set(body) == {"market_tickers", "market_candlesticks", "adjusted_end_ts"}
    assert body["market_tickers"] == tickers
    assert body["market_candlesticks"][tickers.index(market.ticker)] == single["candlesticks"]
    assert body["adjusted_end_ts"] == START_S + 600
    assert_error(*wrong, 404, "not_found")


async def test_event_candles_move_the_end_back_past_5000_candles(
    sim: SimServer, client: SignedClient
) -> None:
    events = sim.venue.universe.events[:2]
    markets = sum(
        1 for m in sim.venue.universe.markets if m.event_ticker in {e.event_ticker for e in events}
    )
    assert markets == 4
    params = window(START_S, START_S + 3000 * MINUTE)
    one = events[0]

    _, single = await client.get(
        f"/series/{one.series_ticker}/events/{one.event_ticker}/candlesticks", params=params
    )
    status, multi = await client.get(
        "/events/candlesticks",
        params={"event_tickers": ",".join(e.event_ticker for e in events), **params},
    )
    missing = await client.get("/events/candlesticks", params=params)
    unknown = await client.get("/events/candlesticks", params={"event_tickers": "NOPE", **params})

    # 3001 boundaries × 2 markets > 5000: 2500 periods; × 4 markets: 1250
    assert single["adjusted_end_ts"] == START_S + 2499 * MINUTE
    assert status == 200, multi
    assert [e["event_ticker"] for e in multi["events"]] == [e.event_ticker for e in events]
    assert {e["adjusted_end_ts"] for e in multi["events"]} == {START_S + 1249 * MINUTE}
    assert all(
        set(e) == {"event_ticker", "market_tickers", "market_candlesticks", "adjusted_end_ts"}
        for e in multi["events"]
    )
    assert_error(*missing, 400, "bad_request", "event_tickers")
    assert_error(*unknown, 404, "not_found")


# ----------------------------------------------------------------------------- events, series


async def test_event_metadata(sim: SimServer, client: SignedClient) -> None:
    event = sim.venue.universe.events[0]
    tickers = [m.ticker for m in sim.venue.universe.markets if m.event_ticker == event.event_ticker]

    status, body = await client.get(f"/events/{event.event_ticker}/metadata", signed=False)
    missing = await client.get("/events/NOPE/metadata")

    assert status == 200, body
    assert body["image_url"] == "" and body["settlement_sources"] == []
    assert [d["market_ticker"] for d in body["market_details"]] == tickers
    assert all(
        set(d) == {"market_ticker", "image_url", "color_code"} for d in body["market_details"]
    )
    assert len({d["color_code"] for d in body["market_details"]}) == len(tickers)
    assert_error(*missing, 404, "not_found")


async def test_fee_changes_are_empty_lists(sim: SimServer, client: SignedClient) -> None:
    series = sim.venue.universe.series[0].ticker

    events = await client.get("/events/fee_changes", signed=False)
    filtered = await client.get("/events/fee_changes", params={"event_ticker": "X", "limit": "5"})
    bad_limit = await client.get("/events/fee_changes", params={"limit": "0"})
    by_series = await client.get(
        "/series/fee_changes", params={"series_ticker": series, "show_historical": "true"}
    )
    bad_flag = await client.get("/series/fee_changes", params={"show_historical": "sometimes"})

    assert events == (200, {"event_fee_changes": [], "cursor": ""})
    assert filtered == (200, {"event_fee_changes": [], "cursor": ""})
    assert_error(*bad_limit, 400, "bad_request", "limit")
    assert by_series == (200, {"series_fee_change_arr": []})
    assert_error(*bad_flag, 400, "bad_request", "show_historical")


async def test_historical_cutoff_is_the_venue_start(sim: SimServer, client: SignedClient) -> None:
    advance(sim, 90)

    status, body = await client.get("/historical/cutoff", signed=False)

    assert status == 200
    start = "2026-11-23T12:00:00.000Z"
    assert body == {
        "market_settled_ts": start,
        "trades_created_ts": start,
        "orders_updated_ts": start,
        "market_positions_last_updated_ts": start,
    }


async def test_user_data_timestamp_is_now(sim: SimServer, client: SignedClient) -> None:
    advance(sim, 1.5)

    status, body = await client.get("/exchange/user_data_timestamp")

    assert (status, body) == (200, {"as_of_time": "2026-11-23T12:00:01.500Z"})


# ----------------------------------------------------------------------------- subaccounts


async def test_netting_put_then_get_and_inheritance(sim: SimServer, client: SignedClient) -> None:
    _, start = await client.get("/portfolio/subaccounts/netting")
    await client.post("/portfolio/subaccounts", {})
    put = await client.put(
        "/portfolio/subaccounts/netting", {"subaccount_number": 0, "enabled": False}
    )
    await client.post("/portfolio/subaccounts", {})  # created while the primary is off
    await client.put("/portfolio/subaccounts/netting", {"subaccount_number": 1, "enabled": False})
    await client.put("/portfolio/subaccounts/netting", {"subaccount_number": 0, "enabled": True})

    status, body = await client.get("/portfolio/subaccounts/netting")

    assert start == {
        "netting_configs": [{"subaccount_number": 0, "enabled": True, "exchange_index": 0}]
    }
    assert put == (200, {})
    assert status == 200
    assert [(c["subaccount_number"], c["enabled"]) for c in body["netting_configs"]] == [
        (0, True),
        (1, False),
        (2, False),
    ]


async def test_netting_is_per_user(sim: SimServer, client: SignedClient) -> None:
    other = await new_user(sim, client.session, "other")
    await other.put("/portfolio/subaccounts/netting", {"subaccount_number": 0, "enabled": False})

    _, mine = await client.get("/portfolio/subaccounts/netting")
    _, theirs = await other.get("/portfolio/subaccounts/netting")

    assert mine["netting_configs"][0]["enabled"] is True
    assert theirs["netting_configs"][0]["enabled"] is False


async def test_netting_errors(client: SignedClient) -> None:
    path = "/portfolio/subaccounts/netting"

    never_created = await client.put(path, {"subaccount_number": 5, "enabled": True})
    out_of_range = await client.put(path, {"subaccount_number": 64, "enabled": True})
    no_number = await client.put(path, {"enabled": True})
    no_flag = await client.put(path, {"subaccount_number": 0})
    not_a_flag = await client.put(path, {"subaccount_number": 0, "enabled": "yes"})
    unsigned = await client.get(path, signed=False)

    assert_error(*never_created, 404, "not_found")
    assert_error(*out_of_range, 400, "bad_request", "subaccount_number")
    assert_error(*no_number, 400, "bad_request", "subaccount_number")
    assert_error(*no_flag, 400, "bad_request", "enabled")
    assert_error(*not_a_flag, 400, "bad_request", "enabled")
    assert unsigned[0] == 401


async def test_subaccount_balances_have_the_documented_shape(
    sim: SimServer, client: SignedClient
) -> None:
    sim.fund_subaccount(1, 12_345_600)  # $12.3456

    status, body = await client.get("/portfolio/subaccounts/balances")

    assert status == 200
    rows = body["subaccount_balances"]
    assert [r["subaccount_number"] for r in rows] == [0, 1]
    for row in rows:
        assert set(row) == {"subaccount_number", "exchange_index", "balance", "updated_ts"}
        assert isinstance(row["updated_ts"], int) and row["exchange_index"] == 0
    assert rows[0]["balance"] == "99987.6544"
    assert rows[1]["balance"] == "12.3456"


# ----------------------------------------------------------------------------- resting orders


async def test_total_resting_order_value_is_the_exact_cost_of_what_rests(
    sim: SimServer, client: SignedClient
) -> None:
    first, second = linear(sim, 0), linear(sim, 1)
    sub_cent = next(
        m for m in sim.venue.universe.markets if m.price_level_structure != "linear_cent"
    )
    sim.fund_subaccount(1, 100 * 1_000_000)
    await place(client, order(first.ticker, "bid", 6000, "3"))  # 3 × 0.60 = 1.80
    await place(client, order(first.ticker, "ask", 7500, "2"))  # NO: 2 × 0.25 = 0.50
    await place(client, order(sub_cent.ticker, "bid", 590, "1.5", subaccount=1))  # 1.5 × 0.059
    canceled = await place(client, order(second.ticker, "bid", 2000, "4"))
    await client.delete(f"{ORDERS}/{canceled['order_id']}")
    maker = await new_user(sim, client.session, "maker")
    await place(maker, order(second.ticker, "ask", 3100, "2"))
    partial = await place(client, order(second.ticker, "bid", 3100, "5"))
    assert partial["fill_count"] == "2.00"  # 3 left resting: 3 × 0.31 = 0.93

    status, body = await client.get("/portfolio/summary/total_resting_order_value")
    unsigned = await client.get("/portfolio/summary/total_resting_order_value", signed=False)

    assert status == 200, body
    # 1.80 + 0.50 + 0.0885 + 0.93 = 3.3185
    assert body == {
        "total_resting_order_value": 331,
        "resting_order_value_breakdown": [{"exchange_index": 0, "balance": "3.3185"}],
    }
    assert unsigned[0] == 401


async def test_no_resting_orders_is_zero(client: SignedClient) -> None:
    status, body = await client.get("/portfolio/summary/total_resting_order_value")

    assert (status, body["total_resting_order_value"]) == (200, 0)
    assert body["resting_order_value_breakdown"] == [{"exchange_index": 0, "balance": "0.0000"}]


# ----------------------------------------------------------------------------- API keys


def new_key_pair(tmp_path: Path) -> tuple[str, Path]:
    """A fresh RSA key: its public PEM, and its private PEM written to a file."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp_path / "own.pem"
    pem.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return public.decode("ascii"), pem


async def test_api_keys_list_create_use_and_delete(
    sim: SimServer, client: SignedClient, tmp_path: Path
) -> None:
    public, private_pem = new_key_pair(tmp_path)

    _, before = await client.get("/api_keys")
    created = await client.post(
        "/api_keys", {"name": "my bot", "public_key": public, "scopes": ["read", "write"]}
    )
    key_id = created[1]["api_key_id"]
    _, listed = await client.get("/api_keys")
    own = SignedClient(client.session, sim.url, key_id, private_pem, sim.venue.clock)
    used = await own.get("/portfolio/balance")
    deleted = await client.delete(f"/api_keys/{key_id}")
    _, after = await client.get("/api_keys")
    refused = await own.get("/portfolio/balance")
    again = await client.delete(f"/api_keys/{key_id}")

    assert before == {
        "api_keys": [{"api_key_id": sim.key_id, "name": "demo", "scopes": ["read", "write"]}]
    }
    assert created == (201, {"api_key_id": key_id})
    assert listed["api_keys"][1] == {
        "api_key_id": key_id,
        "name": "my bot",
        "scopes": ["read", "write"],
    }
    assert "private" not in str(listed).lower()
    assert used[0] == 200
    assert deleted == (204, None)
    assert after == before
    assert refused[0] == 401
    assert_error(*again, 404, "not_found")


async def test_api_key_requests_are_validated(
    sim: SimServer, client: SignedClient, tmp_path: Path
) -> None:
    public, _ = new_key_pair(tmp_path)
    cases = [
        ({"public_key": public}, "name"),
        ({"name": "x"}, "public_key"),
        ({"name": "x", "public_key": "not a key"}, "public_key"),
        ({"name": "x", "public_key": public, "scopes": ["write"]}, "scopes"),
        ({"name": "x", "public_key": public, "scopes": ["admin"]}, "scopes"),
        ({"name": "x", "public_key": public, "scopes": []}, "scopes"),
        ({"name": "x", "public_key": public, "subaccount": 64}, "subaccount"),
    ]

    for body, name in cases:
        status, answer = await client.post("/api_keys", body)
        assert_error(status, answer, 400, "bad_request", name)
    never_created = await client.post(
        "/api_keys", {"name": "x", "public_key": public, "subaccount": 3}
    )
    malformed = await client.delete("/api_keys/not-a-key-id")
    assert_error(*never_created, 404, "not_found")
    assert_error(*malformed, 400, "bad_request", "api_key")
    assert len(sim.keys.keys_of(sim.user_id)) == 1


async def test_a_restricted_key_is_listed_and_may_not_manage_keys(
    sim: SimServer, client: SignedClient, tmp_path: Path
) -> None:
    public, private_pem = new_key_pair(tmp_path)
    await client.post("/portfolio/subaccounts", {})
    _, created = await client.post(
        "/api_keys", {"name": "sub one", "public_key": public, "subaccount": 1, "scopes": ["read"]}
    )
    restricted = SignedClient(
        client.session, sim.url, created["api_key_id"], private_pem, sim.venue.clock
    )

    _, listed = await client.get("/api_keys")
    create = await restricted.post("/api_keys", {"name": "y", "public_key": public})
    delete = await restricted.delete(f"/api_keys/{sim.key_id}")

    assert listed["api_keys"][1] == {
        "api_key_id": created["api_key_id"],
        "name": "sub one",
        "scopes": ["read"],
        "subaccount": 1,
    }
    assert_error(*create, 403, "forbidden")
    assert_error(*delete, 403, "forbidden")


async def test_someone_elses_key_cannot_be_deleted(sim: SimServer, client: SignedClient) -> None:
    other = await new_user(sim, client.session, "other")

    answer = await other.delete(f"/api_keys/{sim.key_id}")
    _, still = await client.get("/api_keys")

    assert_error(*answer, 404, "not_found")
    assert [k["api_key_id"] for k in still["api_keys"]] == [sim.key_id]


@pytest.mark.parametrize("sim_options", [{"tier": "basic"}], indirect=True)
async def test_creating_a_key_below_premier_is_forbidden(
    client: SignedClient, tmp_path: Path
) -> None:
    public, _ = new_key_pair(tmp_path)

    answer = await client.post("/api_keys", {"name": "x", "public_key": public})

    assert_error(*answer, 403, "forbidden")


@pytest.fixture
def sim_options(sim_state_dir: Path, request: pytest.FixtureRequest) -> SimOptions:
    changes = getattr(request, "param", {})
    return make_options(sim_state_dir, **changes)


# ----------------------------------------------------------------------------- routing


def static_endpoints() -> list[tuple[str, str]]:
    return [(ep.method, ep.path) for ep in ENDPOINTS if "{" not in ep.path]


async def test_every_static_path_resolves_to_its_own_route(sim: SimServer) -> None:
    app = web.Application()
    app.add_routes(sim.rest.routes())
    paths = {path for _, path in static_endpoints()}

    for method, path in static_endpoints():
        request = make_mocked_request(method, API_PREFIX + path, app=app)
        info = await app.router.resolve(request)
        route = info.route
        assert route.resource is not None
        assert (route.method, route.resource.canonical) == (method, API_PREFIX + path)
    for path in paths:  # a method the path does not serve stays on the path: 405
        request = make_mocked_request("PATCH", API_PREFIX + path, app=app)
        info = await app.router.resolve(request)
        assert info.route.resource is not None
        assert info.route.resource.canonical == API_PREFIX + path


async def test_static_paths_next_to_templated_ones_reach_their_handlers(
    sim: SimServer, client: SignedClient
) -> None:
    candles = await client.get("/markets/candlesticks", signed=False)
    fees = await client.get("/series/fee_changes", signed=False)
    event_fees = await client.get("/events/fee_changes", signed=False)
    netting = await client.get("/portfolio/subaccounts/netting")
    wrong_method = await client.put("/markets/candlesticks", {})
    v1_read = await client.get("/portfolio/orders/batched")

    assert_error(*candles, 400, "bad_request", "market_tickers")
    assert fees == (200, {"series_fee_change_arr": []})
    assert event_fees[1] == {"event_fee_changes": [], "cursor": ""}
    assert set(netting[1]) == {"netting_configs"}
    assert_error(*wrong_method, 405, "method_not_allowed")
    # a static path never lands on the templated /portfolio/orders/{order_id} read
    assert_error(*v1_read, 405, "method_not_allowed")


async def test_a_405_on_a_static_path_names_the_allowed_methods(sim: SimServer) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.delete(sim.rest_url + "/portfolio/subaccounts/netting") as resp,
    ):
        assert resp.status == 405
        assert resp.headers["Allow"] == "GET, PUT"
