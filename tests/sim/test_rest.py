"""The sim's REST API over real HTTP: every endpoint, its errors, rate limits and faults.

Every 2xx body is checked against the schema of Kalshi's own API reference page
(``tests/sim/schema.py``), and so are the error bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kmm.clock import ManualClock
from kmm.kalshi.constants import API_PREFIX
from kmm.sim.engine import EngineEvent, MarketDef, OrderUpdate
from kmm.sim.server import SimOptions, SimServer
from kmm.types import ONE_DOLLAR, format_price
from tests.sim.conftest import START_NS, SignedClient, make_options, new_user
from tests.sim.schema import check

pytestmark = pytest.mark.asyncio

SECOND = 1_000_000_000
ORDERS = "/portfolio/events/orders"


# ----------------------------------------------------------------------------- helpers


def linear(sim: SimServer, index: int = 0) -> MarketDef:
    markets = [m for m in sim.venue.universe.markets if m.price_level_structure == "linear_cent"]
    return markets[index]


def sub_cent(sim: SimServer) -> MarketDef:
    return next(m for m in sim.venue.universe.markets if m.price_level_structure != "linear_cent")


def best(sim: SimServer, ticker: str) -> tuple[int, int]:
    bid, ask = sim.venue.engine.best(ticker)
    assert bid is not None and ask is not None
    return bid, ask


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


async def rest_bid(client: SignedClient, sim: SimServer, ticker: str, **extra: Any) -> str:
    """Rests a 1-lot bid 5¢ under the best bid; returns its order id."""
    bid, _ = best(sim, ticker)
    status, body = await client.post(ORDERS, order(ticker, "bid", bid - 500, **extra))
    assert status == 201, body
    order_id: str = body["order_id"]
    return order_id


def assert_error(status: int, body: Any, expected_status: int, code: str) -> None:
    assert status == expected_status, body
    assert body["error"]["code"] == code, body
    assert set(body["error"]) <= {"code", "message", "details"}


@contextlib.asynccontextmanager
async def started(options: SimOptions) -> AsyncIterator[SimServer]:
    server = SimServer(options)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


# ----------------------------------------------------------------------------- exchange


async def test_exchange_status_reports_trading_active(client: SignedClient) -> None:
    status, body = await client.get("/exchange/status", signed=False)

    assert status == 200
    check("exchange/get-exchange-status", "GET", "/exchange/status", 200, body)
    assert body["trading_active"] is True
    assert body["exchange_estimated_resume_time"] is None


async def test_exchange_status_reflects_a_trading_pause_and_its_end(
    sim: SimServer, client: SignedClient
) -> None:
    sim.venue.faults.pause_trading(10.0, START_NS)

    _, paused = await client.get("/exchange/status")
    sim.venue.clock.advance(11.0)  # type: ignore[attr-defined]
    _, resumed = await client.get("/exchange/status")

    check("exchange/get-exchange-status", "GET", "/exchange/status", 200, paused)
    assert paused["trading_active"] is False
    assert paused["exchange_estimated_resume_time"] == "2026-11-23T12:00:10.000Z"
    assert resumed["trading_active"] is True


async def test_exchange_schedule_has_kalshis_shape(client: SignedClient) -> None:
    status, body = await client.get("/exchange/schedule", signed=False)

    assert status == 200
    check("exchange/get-exchange-schedule", "GET", "/exchange/schedule", 200, body)
    week = body["schedule"]["standard_hours"][0]
    assert week["thursday"][0]["close_time"] == "03:00"


# ----------------------------------------------------------------------------- series, events


async def test_series_carry_fee_type_and_multiplier(sim: SimServer, client: SignedClient) -> None:
    status, body = await client.get("/series", signed=False)

    assert status == 200
    check("market/get-series-list", "GET", "/series", 200, body)
    fees = {s["ticker"]: (s["fee_type"], s["fee_multiplier"]) for s in body["series"]}
    for series in sim.venue.engine.series.values():
        assert fees[series.ticker][0] == series.fee_type
        assert fees[series.ticker][1] == float(series.fee_multiplier)
    assert "quadratic_with_maker_fees" in {kind for kind, _ in fees.values()}


async def test_one_series_and_an_unknown_one(sim: SimServer, client: SignedClient) -> None:
    ticker = sim.venue.universe.series[0].ticker

    status, body = await client.get(f"/series/{ticker}", signed=False)
    missing_status, missing = await client.get("/series/NOPE", signed=False)

    assert status == 200
    check("market/get-series", "GET", "/series/{series_ticker}", 200, body)
    assert body["series"]["ticker"] == ticker
    assert_error(missing_status, missing, 404, "not_found")


async def test_events_page_with_a_cursor_and_nest_markets(
    sim: SimServer, client: SignedClient
) -> None:
    status, first = await client.get(
        "/events", params={"limit": "2", "with_nested_markets": "true"}
    )
    _, rest = await client.get("/events", params={"limit": "2", "cursor": first["cursor"]})

    assert status == 200
    check("events/get-events", "GET", "/events", 200, first)
    check("events/get-events", "GET", "/events", 200, rest)
    tickers = [e["event_ticker"] for e in first["events"] + rest["events"]]
    assert tickers == [e.event_ticker for e in sim.venue.universe.events]
    assert rest["cursor"] == ""
    assert all(e["markets"] for e in first["events"])
    assert "markets" not in rest["events"][0]


async def test_events_filter_by_series_and_ticker(sim: SimServer, client: SignedClient) -> None:
    event = sim.venue.universe.events[1]

    _, by_series = await client.get("/events", params={"series_ticker": event.series_ticker})
    _, by_ticker = await client.get("/events", params={"event_ticker": event.event_ticker})

    assert [e["event_ticker"] for e in by_series["events"]] == [event.event_ticker]
    assert [e["event_ticker"] for e in by_ticker["events"]] == [event.event_ticker]


async def test_one_event_lists_its_markets(sim: SimServer, client: SignedClient) -> None:
    event = sim.venue.universe.events[0]

    status, body = await client.get(f"/events/{event.event_ticker}")
    missing_status, missing = await client.get("/events/NOPE")

    assert status == 200
    check("events/get-event", "GET", "/events/{event_ticker}", 200, body)
    assert {m["event_ticker"] for m in body["markets"]} == {event.event_ticker}
    assert_error(missing_status, missing, 404, "not_found")


# ----------------------------------------------------------------------------- markets


async def test_markets_page_through_every_market(sim: SimServer, client: SignedClient) -> None:
    seen: list[str] = []
    cursor = ""
    for _ in range(10):
        params = {"limit": "4", **({"cursor": cursor} if cursor else {})}
        status, body = await client.get("/markets", params=params, signed=False)
        assert status == 200
        check("market/get-markets", "GET", "/markets", 200, body)
        seen += [m["ticker"] for m in body["markets"]]
        cursor = body["cursor"]
        if not cursor:
            break

    assert seen == [m.ticker for m in sim.venue.universe.markets]


async def test_a_market_shows_its_top_of_book_and_grid(
    sim: SimServer, client: SignedClient
) -> None:
    market = sub_cent(sim)
    bid, ask = best(sim, market.ticker)

    status, body = await client.get(f"/markets/{market.ticker}")

    assert status == 200
    check("market/get-market", "GET", "/markets/{ticker}", 200, body)
    got = body["market"]
    assert got["yes_bid_dollars"] == format_price(bid)
    assert got["yes_ask_dollars"] == format_price(ask)
    assert got["no_bid_dollars"] == format_price(ONE_DOLLAR - ask)
    assert got["price_level_structure"] == "tapered_deci_cent"
    assert got["price_ranges"][0] == {"start": "0.0000", "end": "0.1000", "step": "0.0010"}
    assert got["status"] == "active"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "open"}, "all"),
        ({"status": "settled"}, "none"),
        ({"tickers": "FIRST,SECOND"}, "two"),
        ({"mve_filter": "only"}, "none"),
    ],
)
async def test_markets_filter_by_status_and_tickers(
    sim: SimServer, client: SignedClient, params: dict[str, str], expected: str
) -> None:
    tickers = [m.ticker for m in sim.venue.universe.markets]
    if "tickers" in params:
        params = {"tickers": f"{tickers[0]},{tickers[1]}"}

    _, body = await client.get("/markets", params=params)

    want = {"all": tickers, "none": [], "two": tickers[:2]}[expected]
    assert [m["ticker"] for m in body["markets"]] == want


async def test_markets_filter_by_event_and_series(sim: SimServer, client: SignedClient) -> None:
    event = sim.venue.universe.events[0]
    expected = [
        m.ticker for m in sim.venue.universe.markets if m.event_ticker == event.event_ticker
    ]

    _, by_event = await client.get("/markets", params={"event_ticker": event.event_ticker})
    _, by_series = await client.get("/markets", params={"series_ticker": event.series_ticker})

    assert [m["ticker"] for m in by_event["markets"]] == expected
    assert [m["ticker"] for m in by_series["markets"]] == expected


@pytest.mark.parametrize(
    "params",
    [{"limit": "0"}, {"limit": "1001"}, {"limit": "x"}, {"cursor": "zz"}, {"status": "live"}],
)
async def test_bad_list_parameters_are_400_naming_the_parameter(
    client: SignedClient, params: dict[str, str]
) -> None:
    status, body = await client.get("/markets", params=params)

    assert_error(status, body, 400, "bad_request")
    assert next(iter(params)) in body["error"]["details"]
    check("market/get-markets", "GET", "/markets", 400, body)


async def test_a_market_past_its_close_time_reads_closed(
    sim: SimServer, client: SignedClient
) -> None:
    market = sim.venue.universe.markets[0]
    sim.venue.clock.set_ns(market.close_ns)  # type: ignore[attr-defined]

    _, one = await client.get(f"/markets/{market.ticker}")
    _, closed = await client.get("/markets", params={"status": "closed"})
    status, body = await client.post(ORDERS, order(market.ticker, "bid", 100))

    assert one["market"]["status"] == "closed"
    assert market.ticker in [m["ticker"] for m in closed["markets"]]
    assert_error(status, body, 409, "market_closed")


async def test_an_unknown_market_is_404(client: SignedClient) -> None:
    status, body = await client.get("/markets/NOPE-1")

    assert_error(status, body, 404, "not_found")
    check("market/get-market", "GET", "/markets/{ticker}", 404, body)


async def test_the_orderbook_lists_bids_ascending_with_the_best_last(
    sim: SimServer, client: SignedClient
) -> None:
    ticker = linear(sim).ticker
    yes, no = sim.venue.engine.book_levels(ticker)

    status, body = await client.get(f"/markets/{ticker}/orderbook", signed=False)
    _, top = await client.get(f"/markets/{ticker}/orderbook", params={"depth": "1"})

    assert status == 200
    check("market/get-market-orderbook", "GET", "/markets/{ticker}/orderbook", 200, body)
    book = body["orderbook_fp"]
    assert [p for p, _ in book["yes_dollars"]] == [format_price(p) for p in sorted(yes)]
    assert [p for p, _ in book["no_dollars"]] == [format_price(p) for p in sorted(no)]
    assert top["orderbook_fp"]["yes_dollars"] == [book["yes_dollars"][-1]]
    assert top["orderbook_fp"]["no_dollars"] == [book["no_dollars"][-1]]


async def test_several_orderbooks_at_once(sim: SimServer, client: SignedClient) -> None:
    tickers = [m.ticker for m in sim.venue.universe.markets[:2]]

    status, body = await client.get("/markets/orderbooks", params={"tickers": ",".join(tickers)})
    missing_status, missing = await client.get("/markets/orderbooks")
    unknown_status, unknown = await client.get("/markets/orderbooks", params={"tickers": "NOPE"})

    assert status == 200
    check("market/get-multiple-market-orderbooks", "GET", "/markets/orderbooks", 200, body)
    assert [b["ticker"] for b in body["orderbooks"]] == tickers
    assert_error(missing_status, missing, 400, "bad_request")
    assert_error(unknown_status, unknown, 404, "not_found")


async def test_trades_list_newest_first_and_filter(sim: SimServer, client: SignedClient) -> None:
    first, second = linear(sim, 0).ticker, linear(sim, 1).ticker
    for ticker in (first, second):
        _, ask = best(sim, ticker)
        await client.post(ORDERS, order(ticker, "bid", ask, time_in_force="immediate_or_cancel"))

    status, body = await client.get("/markets/trades", signed=False)
    _, filtered = await client.get("/markets/trades", params={"ticker": first})
    _, later = await client.get("/markets/trades", params={"min_ts": str(START_NS // SECOND + 1)})

    assert status == 200
    check("market/get-trades", "GET", "/markets/trades", 200, body)
    assert [t["ticker"] for t in body["trades"]] == [second, first]
    assert body["trades"][0]["taker_book_side"] == "bid"
    assert [t["ticker"] for t in filtered["trades"]] == [first]
    assert later["trades"] == []


# ----------------------------------------------------------------------------- account


@pytest.mark.parametrize("tier", ["basic", "premier", "prestige"])
async def test_account_limits_report_the_tier(sim_state_dir: Path, tier: str) -> None:
    async with (
        started(make_options(sim_state_dir, tier=tier)) as sim,
        aiohttp.ClientSession() as http,
    ):
        client = SignedClient(http, sim.url, sim.key_id, sim.private_key_path, sim.venue.clock)

        status, body = await client.get("/account/limits")

    assert status == 200
    check("account/get-account-api-limits", "GET", "/account/limits", 200, body)
    assert body["usage_tier"] == tier
    expected = {"basic": (100, 100), "premier": (1000, 2000), "prestige": (8000, 16000)}[tier]
    assert (body["write"]["refill_rate"], body["write"]["bucket_capacity"]) == expected


async def test_endpoint_costs_list_the_cheap_routes(client: SignedClient) -> None:
    status, body = await client.get("/account/endpoint_costs")

    assert status == 200
    check("account/list-non-default-endpoint-costs", "GET", "/account/endpoint_costs", 200, body)
    assert body["default_cost"] == 10
    rows = {(r["method"], r["path"]): r["cost"] for r in body["endpoint_costs"]}
    assert rows == {
        ("DELETE", "/portfolio/events/orders/:order_id"): 2,
        ("DELETE", "/portfolio/events/orders/batched"): 2,
        ("GET", "/portfolio/orders/:order_id"): 2,
    }


# ----------------------------------------------------------------------------- portfolio reads


async def test_the_balance_starts_at_the_initial_balance(client: SignedClient) -> None:
    status, body = await client.get("/portfolio/balance")

    assert status == 200
    check("portfolio/get-balance", "GET", "/portfolio/balance", 200, body)
    assert body["balance_dollars"] == "100000.0000"
    assert body["balance"] == 10_000_000
    assert body["portfolio_value"] == 0


async def test_a_subaccount_never_created_is_not_found(client: SignedClient) -> None:
    status, body = await client.get("/portfolio/balance", params={"subaccount": "3"})

    assert_error(status, body, 404, "not_found")
    assert "subaccount 3" in body["error"]["message"]


@pytest.mark.parametrize("number", ["64", "-1", "x"])
async def test_a_subaccount_number_outside_0_to_63_is_a_bad_request(
    client: SignedClient, number: str
) -> None:
    status, body = await client.get("/portfolio/positions", params={"subaccount": number})

    assert_error(status, body, 400, "bad_request")


async def test_a_fill_shows_in_fills_positions_balance_and_orders(
    sim: SimServer, client: SignedClient
) -> None:
    ticker = linear(sim).ticker
    _, ask = best(sim, ticker)

    status, created = await client.post(
        ORDERS, order(ticker, "bid", ask, "2", client_order_id="t1")
    )
    _, fills = await client.get("/portfolio/fills")
    _, positions = await client.get("/portfolio/positions")
    _, balance = await client.get("/portfolio/balance")
    _, orders = await client.get("/portfolio/orders")

    assert status == 201
    check("orders/create-order-v2", "POST", ORDERS, 201, created)
    assert created["fill_count"] == "2.00"
    assert created["average_fill_price"] == format_price(ask)
    check("portfolio/get-fills", "GET", "/portfolio/fills", 200, fills)
    fill = fills["fills"][0]
    assert (fill["order_id"], fill["count_fp"], fill["is_taker"]) == (
        created["order_id"],
        "2.00",
        True,
    )
    assert fill["yes_price_dollars"] == format_price(ask)
    check("portfolio/get-positions", "GET", "/portfolio/positions", 200, positions)
    assert [(p["ticker"], p["position_fp"]) for p in positions["market_positions"]] == [
        (ticker, "2.00")
    ]
    check("portfolio/get-balance", "GET", "/portfolio/balance", 200, balance)
    assert balance["portfolio_value"] > 0
    check("orders/get-orders", "GET", "/portfolio/orders", 200, orders)
    assert orders["orders"][0]["status"] == "executed"


async def test_orders_filter_and_page_newest_first(sim: SimServer, client: SignedClient) -> None:
    first = await rest_bid(client, sim, linear(sim, 0).ticker)
    second = await rest_bid(client, sim, linear(sim, 1).ticker)
    await client.delete(f"{ORDERS}/{first}")

    _, page1 = await client.get("/portfolio/orders", params={"limit": "1"})
    _, page2 = await client.get(
        "/portfolio/orders", params={"limit": "1", "cursor": page1["cursor"]}
    )
    _, resting = await client.get("/portfolio/orders", params={"status": "resting"})
    _, by_ticker = await client.get("/portfolio/orders", params={"ticker": linear(sim, 0).ticker})
    bad_status, bad = await client.get("/portfolio/orders", params={"status": "open"})

    assert [o["order_id"] for o in page1["orders"] + page2["orders"]] == [second, first]
    assert page2["cursor"] == ""
    assert [o["order_id"] for o in resting["orders"]] == [second]
    assert [o["order_id"] for o in by_ticker["orders"]] == [first]
    assert_error(bad_status, bad, 400, "bad_request")


async def test_one_order_and_someone_elses(
    sim: SimServer, client: SignedClient, http: aiohttp.ClientSession
) -> None:
    order_id = await rest_bid(client, sim, linear(sim).ticker, client_order_id="mine")
    other = await new_user(sim, http, "other")

    status, body = await client.get(f"/portfolio/orders/{order_id}")
    hidden_status, hidden = await other.get(f"/portfolio/orders/{order_id}")

    assert status == 200
    check("orders/get-order", "GET", "/portfolio/orders/{order_id}", 200, body)
    assert body["order"]["client_order_id"] == "mine"
    assert body["order"]["status"] == "resting"
    assert_error(hidden_status, hidden, 404, "not_found")


async def test_positions_filter_by_ticker_event_and_count(
    sim: SimServer, client: SignedClient
) -> None:
    first, second = linear(sim, 0), linear(sim, 1)
    for market in (first, second):
        _, ask = best(sim, market.ticker)
        await client.post(ORDERS, order(market.ticker, "bid", ask))
    bid, _ = best(sim, first.ticker)
    await client.post(ORDERS, order(first.ticker, "ask", bid))  # flat again, traded

    _, everything = await client.get("/portfolio/positions")
    _, held = await client.get("/portfolio/positions", params={"count_filter": "position"})
    _, by_ticker = await client.get("/portfolio/positions", params={"ticker": second.ticker})
    _, by_event = await client.get(
        "/portfolio/positions", params={"event_ticker": first.event_ticker}
    )
    bad = await client.get("/portfolio/positions", params={"count_filter": "volume"})
    bad_settlement = await client.get("/portfolio/positions", params={"settlement_status": "x"})

    def tickers(body: Any) -> list[str]:
        return [p["ticker"] for p in body["market_positions"]]

    assert tickers(everything) == [first.ticker, second.ticker]
    assert tickers(held) == [second.ticker]
    assert tickers(by_ticker) == [second.ticker]
    assert set(tickers(by_event)) == {
        m.ticker for m in (first, second) if m.event_ticker == first.event_ticker
    }
    assert_error(*bad, 400, "bad_request")
    assert_error(*bad_settlement, 400, "bad_request")


async def test_fills_filter_by_order_and_ticker(sim: SimServer, client: SignedClient) -> None:
    first, second = linear(sim, 0).ticker, linear(sim, 1).ticker
    ids = []
    for ticker in (first, second):
        _, ask = best(sim, ticker)
        _, created = await client.post(ORDERS, order(ticker, "bid", ask))
        ids.append(created["order_id"])

    _, by_order = await client.get("/portfolio/fills", params={"order_id": ids[0]})
    _, by_ticker = await client.get("/portfolio/fills", params={"ticker": second})
    _, page = await client.get("/portfolio/fills", params={"limit": "1"})

    assert [f["order_id"] for f in by_order["fills"]] == [ids[0]]
    assert [f["ticker"] for f in by_ticker["fills"]] == [second]
    assert [f["order_id"] for f in page["fills"]] == [ids[1]]
    assert page["cursor"] != ""


async def test_settlements_and_settled_positions_after_a_market_settles(
    sim: SimServer, client: SignedClient
) -> None:
    market = linear(sim)
    _, ask = best(sim, market.ticker)
    await client.post(ORDERS, order(market.ticker, "bid", ask, "3"))
    engine = sim.venue.engine
    engine.close_market(market.ticker, START_NS)
    engine.determine_market(market.ticker, "yes", START_NS)
    engine.settle_market(market.ticker, START_NS)

    status, body = await client.get("/portfolio/settlements")
    _, unsettled = await client.get("/portfolio/positions")
    _, settled = await client.get("/portfolio/positions", params={"settlement_status": "settled"})
    _, listed = await client.get("/markets", params={"status": "settled"})

    assert status == 200
    check("portfolio/get-settlements", "GET", "/portfolio/settlements", 200, body)
    row = body["settlements"][0]
    assert (row["ticker"], row["market_result"], row["yes_count_fp"]) == (
        market.ticker,
        "yes",
        "3.00",
    )
    assert row["revenue"] == 300
    assert unsettled["market_positions"] == []
    assert settled["market_positions"] == []  # the sim archives settled positions at once
    assert [m["ticker"] for m in listed["markets"]] == [market.ticker]
    assert listed["markets"][0]["settlement_value_dollars"] == "1.0000"


# ----------------------------------------------------------------------------- order writes


async def test_a_resting_order_appears_in_the_book(sim: SimServer, client: SignedClient) -> None:
    ticker = linear(sim).ticker
    bid, ask = best(sim, ticker)
    inside = bid + 100
    assert inside < ask

    status, body = await client.post(ORDERS, order(ticker, "bid", inside, "7"))
    _, book = await client.get(f"/markets/{ticker}/orderbook")

    assert status == 201
    check("orders/create-order-v2", "POST", ORDERS, 201, body)
    assert (body["fill_count"], body["remaining_count"]) == ("0.00", "7.00")
    assert "average_fill_price" not in body
    assert book["orderbook_fp"]["yes_dollars"][-1] == [format_price(inside), "7.00"]


async def test_a_sub_cent_price_is_accepted_only_where_the_grid_allows(
    sim: SimServer, client: SignedClient
) -> None:
    fine, coarse = sub_cent(sim).ticker, linear(sim).ticker

    off_status, off = await client.post(ORDERS, order(fine, "bid", 15))  # $0.0015: off grid
    fine_status, fine_body = await client.post(ORDERS, order(fine, "bid", 50))  # $0.005
    coarse_status, coarse_body = await client.post(ORDERS, order(coarse, "bid", 50))

    assert_error(off_status, off, 400, "invalid_price")
    assert fine_status == 201, fine_body
    assert_error(coarse_status, coarse_body, 400, "invalid_price")
    check("orders/create-order-v2", "POST", ORDERS, 400, coarse_body)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"side": "buy"}, "side"),
        ({"price": "0.55555"}, "price"),
        ({"price": 0.55}, "price"),
        ({"count": "1.001"}, "count"),
        ({"time_in_force": "GTC"}, "time_in_force"),
        ({"self_trade_prevention_type": None}, "self_trade_prevention_type"),
        ({"ticker": ""}, "ticker"),
        ({"post_only": "yes"}, "post_only"),
        ({"expiration_time": "soon"}, "expiration_time"),
    ],
)
async def test_a_malformed_order_field_is_400_naming_it(
    sim: SimServer, client: SignedClient, change: dict[str, Any], field: str
) -> None:
    body = {**order(linear(sim).ticker, "bid", 100), **change}

    status, answer = await client.post(ORDERS, body)

    assert_error(status, answer, 400, "invalid_order")
    assert field in answer["error"]["details"]


@pytest.mark.parametrize("data", [b"{not json", b"[1, 2]"])
async def test_a_body_that_is_not_a_json_object_is_bad_request(
    client: SignedClient, data: bytes
) -> None:
    status, body = await _post_raw(client, ORDERS, data)

    assert_error(status, body, 400, "bad_request")
    assert "body" in body["error"]["details"]


async def _post_raw(client: SignedClient, path: str, data: bytes) -> tuple[int, Any]:
    headers = client.headers("POST", API_PREFIX + path)
    async with client.session.post(
        client.base_url + API_PREFIX + path, data=data, headers=headers
    ) as r:
        return r.status, await r.json()


async def test_a_reused_client_order_id_is_409(sim: SimServer, client: SignedClient) -> None:
    ticker = linear(sim).ticker
    await rest_bid(client, sim, ticker, client_order_id="dup")

    status, body = await client.post(ORDERS, order(ticker, "bid", 100, client_order_id="dup"))

    assert_error(status, body, 409, "order_already_exists")
    check("orders/create-order-v2", "POST", ORDERS, 409, body)


async def test_a_post_only_order_that_would_cross_is_refused(
    sim: SimServer, client: SignedClient
) -> None:
    ticker = linear(sim).ticker
    _, ask = best(sim, ticker)

    status, body = await client.post(ORDERS, order(ticker, "bid", ask, post_only=True))

    assert status == 400
    assert body == {
        "error": {"code": "invalid_order", "message": "invalid order", "details": "post only cross"}
    }


async def test_an_unaffordable_order_is_refused(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    poor = await new_user(sim, http, "poor", balance=1_000_000)  # $1
    ticker = linear(sim).ticker

    status, body = await poor.post(ORDERS, order(ticker, "bid", 5000, "3"))

    assert_error(status, body, 400, "available_balance_too_low")


async def test_ioc_cancels_what_does_not_fill_and_fok_fills_all_or_nothing(
    sim: SimServer, client: SignedClient
) -> None:
    ticker = linear(sim).ticker
    _, ask = best(sim, ticker)
    _, no_levels = sim.venue.engine.book_levels(ticker)
    at_ask = no_levels[ONE_DOLLAR - ask] // 100  # whole contracts offered at the best ask
    too_many = f"{at_ask + 1}"

    _, ioc = await client.post(
        ORDERS, order(ticker, "bid", ask, too_many, time_in_force="immediate_or_cancel")
    )
    fok_status, fok = await client.post(
        ORDERS, order(ticker, "bid", ask, "1000", time_in_force="fill_or_kill")
    )

    assert (ioc["fill_count"], ioc["remaining_count"]) == (f"{at_ask}.00", "0.00")
    assert fok_status == 201
    assert fok["fill_count"] == "0.00"


async def test_reduce_only_caps_at_the_position(sim: SimServer, client: SignedClient) -> None:
    ticker = linear(sim).ticker
    bid, ask = best(sim, ticker)
    flat_status, flat = await client.post(ORDERS, order(ticker, "ask", bid, reduce_only=True))
    await client.post(ORDERS, order(ticker, "bid", ask, "2"))

    status, body = await client.post(
        ORDERS,
        order(ticker, "ask", bid, "5", reduce_only=True, time_in_force="immediate_or_cancel"),
    )

    assert_error(flat_status, flat, 400, "invalid_order")
    assert status == 201
    assert body["fill_count"] == "2.00"


async def test_self_trade_prevention_cancels_the_taker(
    sim: SimServer, client: SignedClient
) -> None:
    ticker = linear(sim).ticker
    bid, _ = best(sim, ticker)
    mine = bid + 100
    await client.post(ORDERS, order(ticker, "bid", mine, "1"))

    status, body = await client.post(ORDERS, order(ticker, "ask", mine, "1"))

    assert status == 201
    assert (body["fill_count"], body["remaining_count"]) == ("0.00", "0.00")


async def test_cancel_answers_reduced_by_and_a_second_cancel_is_404(
    sim: SimServer, client: SignedClient
) -> None:
    order_id = await rest_bid(client, sim, linear(sim).ticker)

    status, body = await client.delete(f"{ORDERS}/{order_id}")
    again_status, again = await client.delete(f"{ORDERS}/{order_id}")

    assert status == 200
    check("orders/cancel-order-v2", "DELETE", f"{ORDERS}/{{order_id}}", 200, body)
    assert (body["order_id"], body["reduced_by"]) == (order_id, "1.00")
    assert again_status in (400, 404, 409), again


async def test_amend_moves_price_and_size(sim: SimServer, client: SignedClient) -> None:
    ticker = linear(sim).ticker
    order_id = await rest_bid(client, sim, ticker, client_order_id="am1")
    bid, _ = best(sim, ticker)

    status, body = await client.post(
        f"{ORDERS}/{order_id}/amend",
        {
            "ticker": ticker,
            "side": "bid",
            "price": format_price(bid - 600),
            "count": "3",
            "client_order_id": "am1",
            "updated_client_order_id": "am2",
        },
    )
    _, fetched = await client.get(f"/portfolio/orders/{order_id}")

    assert status == 200
    check("orders/amend-order-v2", "POST", f"{ORDERS}/{{order_id}}/amend", 200, body)
    assert (body["client_order_id"], body["remaining_count"], body["fill_count"]) == (
        "am2",
        "3.00",
        "0.00",
    )
    assert fetched["order"]["yes_price_dollars"] == format_price(bid - 600)


async def test_amend_with_the_wrong_client_order_id_is_refused(
    sim: SimServer, client: SignedClient
) -> None:
    ticker = linear(sim).ticker
    order_id = await rest_bid(client, sim, ticker, client_order_id="right")

    status, body = await client.post(
        f"{ORDERS}/{order_id}/amend",
        {
            "ticker": ticker,
            "side": "bid",
            "price": "0.0100",
            "count": "1",
            "client_order_id": "wrong",
        },
    )
    missing_status, missing = await client.post(f"{ORDERS}/{order_id}/amend", {"ticker": ticker})

    assert_error(status, body, 400, "order_id_and_client_order_id_mismatch")
    assert_error(missing_status, missing, 400, "invalid_order")


async def test_decrease_by_or_to_and_exactly_one_of_them(
    sim: SimServer, client: SignedClient
) -> None:
    ticker = linear(sim).ticker
    bid, _ = best(sim, ticker)
    _, created = await client.post(ORDERS, order(ticker, "bid", bid - 500, "10"))
    path = f"{ORDERS}/{created['order_id']}/decrease"

    by_status, by = await client.post(path, {"reduce_by": "3"})
    _, to = await client.post(path, {"reduce_to": "2.50"})
    both_status, both = await client.post(path, {"reduce_by": "1", "reduce_to": "1"})
    none_status, none = await client.post(path, {})

    assert by_status == 200
    check("orders/decrease-order-v2", "POST", f"{ORDERS}/{{order_id}}/decrease", 200, by)
    assert by["remaining_count"] == "7.00"
    assert to["remaining_count"] == "2.50"
    assert_error(both_status, both, 400, "invalid_order")
    assert_error(none_status, none, 400, "invalid_order")


async def test_batch_create_reports_each_item(sim: SimServer, client: SignedClient) -> None:
    ticker = linear(sim).ticker
    bid, _ = best(sim, ticker)
    items = [
        order(ticker, "bid", bid - 500, client_order_id="b1"),
        order(ticker, "bid", bid - 550),  # off the 1¢ grid
        {"ticker": ticker},
        order(ticker, "bid", bid - 600, client_order_id="b1"),
    ]

    status, body = await client.post(f"{ORDERS}/batched", {"orders": items})

    assert status == 201
    check("orders/batch-create-orders-v2", "POST", f"{ORDERS}/batched", 201, body)
    results = body["orders"]
    assert results[0]["error"] is None and results[0]["client_order_id"] == "b1"
    assert [r["error"]["code"] for r in results[1:]] == [
        "invalid_price",
        "invalid_order",
        "order_already_exists",
    ]
    assert results[3]["client_order_id"] == "b1"
    assert results[1]["ts_ms"] is None


async def test_batch_cancel_reports_each_item(sim: SimServer, client: SignedClient) -> None:
    order_id = await rest_bid(client, sim, linear(sim).ticker)

    status, body = await client.delete(
        f"{ORDERS}/batched", {"orders": [{"order_id": order_id}, {"order_id": "nope"}, {}]}
    )

    assert status == 200
    check("orders/batch-cancel-orders-v2", "DELETE", f"{ORDERS}/batched", 200, body)
    first, unknown, empty = body["orders"]
    assert (first["reduced_by"], first["error"]) == ("1.00", None)
    assert (unknown["reduced_by"], unknown["error"]["code"]) == ("0.00", "not_found")
    assert empty["error"]["code"] == "invalid_order"


@pytest.mark.parametrize("body", [{}, {"orders": []}, {"orders": "x"}])
async def test_an_empty_batch_is_bad_request(client: SignedClient, body: dict[str, Any]) -> None:
    status, answer = await client.post(f"{ORDERS}/batched", body)

    assert_error(status, answer, 400, "bad_request")


async def test_cancel_all_leaves_nothing_resting(sim: SimServer, client: SignedClient) -> None:
    for index in range(2):
        await rest_bid(client, sim, linear(sim, index).ticker)

    status, body = await client.delete(ORDERS)
    _, resting = await client.get("/portfolio/orders", params={"status": "resting"})

    assert (status, body) == (204, None)
    assert resting["orders"] == []


async def test_a_pause_refuses_places_allows_cancels_and_cancels_flagged_orders(
    sim: SimServer, client: SignedClient
) -> None:
    ticker = linear(sim).ticker
    keep = await rest_bid(client, sim, ticker)
    flagged = await rest_bid(client, sim, ticker, cancel_order_on_pause=True)
    sim.venue.faults.pause_trading(None, START_NS)

    place_status, place = await client.post(ORDERS, order(ticker, "bid", 100))
    cancel_status, _ = await client.delete(f"{ORDERS}/{keep}")
    _, flagged_order = await client.get(f"/portfolio/orders/{flagged}")

    assert_error(place_status, place, 400, "trading_is_paused")
    assert cancel_status == 200
    assert flagged_order["order"]["status"] == "canceled"


async def test_a_closed_market_refuses_every_order_operation(
    sim: SimServer, client: SignedClient
) -> None:
    ticker = linear(sim).ticker
    sim.venue.engine.close_market(ticker, START_NS)

    status, body = await client.post(ORDERS, order(ticker, "bid", 100))

    assert_error(status, body, 409, "market_closed")


async def test_an_order_expires_when_the_venue_steps_past_its_time(
    sim: SimServer, client: SignedClient
) -> None:
    expires = START_NS // SECOND + 10
    order_id = await rest_bid(client, sim, linear(sim).ticker, expiration_time=expires)
    _, listed = await client.get(f"/portfolio/orders/{order_id}")

    await sim.step(START_NS + 11 * SECOND)
    _, after = await client.get(f"/portfolio/orders/{order_id}")

    assert listed["order"]["expiration_time"] == "2026-11-23T12:00:10.000Z"
    assert after["order"]["status"] == "canceled"


async def test_an_expiration_in_the_past_is_refused(sim: SimServer, client: SignedClient) -> None:
    ticker = linear(sim).ticker

    status, body = await client.post(
        ORDERS, order(ticker, "bid", 100, expiration_time=START_NS // SECOND)
    )

    assert_error(status, body, 400, "invalid_order")


async def test_v1_order_writes_answer_410(sim: SimServer, client: SignedClient) -> None:
    paths = [
        ("POST", "/portfolio/orders"),
        ("POST", "/portfolio/orders/batched"),
        ("DELETE", "/portfolio/orders/batched"),
        ("DELETE", "/portfolio/orders/abc"),
        ("POST", "/portfolio/orders/abc/amend"),
        ("POST", "/portfolio/orders/abc/decrease"),
    ]

    answers = [await client.request(method, path, json={}) for method, path in paths]

    expected = {
        "error": {
            "code": "deprecated_v1_order_endpoint",
            "message": "Please switch to the V2 endpoints",
            "details": "https://docs.kalshi.com/api-reference/orders/create-order-v2",
        }
    }
    assert answers == [(410, expected)] * len(paths)


async def test_a_rest_write_is_published_to_listeners_at_once(
    sim: SimServer, client: SignedClient
) -> None:
    seen: list[EngineEvent] = []
    sim.venue.add_listener(seen.extend)

    order_id = await rest_bid(client, sim, linear(sim).ticker)

    assert any(isinstance(e, OrderUpdate) and e.order.order_id == order_id for e in seen)


# ----------------------------------------------------------------------------- order groups


async def test_an_order_group_lives_through_limit_trigger_reset_and_delete(
    sim: SimServer, client: SignedClient
) -> None:
    ticker = linear(sim).ticker
    status, created = await client.post("/portfolio/order_groups/create", {"contracts_limit": 5})
    gid = created["order_group_id"]
    base = f"/portfolio/order_groups/{gid}"
    in_group = await rest_bid(client, sim, ticker, order_group_id=gid)

    limit = await client.put(f"{base}/limit", {"contracts_limit_fp": "8.00"})
    _, one = await client.get(base)
    trigger = await client.put(f"{base}/trigger", {})
    refused_status, refused = await client.post(
        ORDERS, order(ticker, "bid", 100, order_group_id=gid)
    )
    _, cancelled = await client.get(f"/portfolio/orders/{in_group}")
    reset = await client.put(f"{base}/reset")
    _, listed = await client.get("/portfolio/order_groups")
    delete = await client.delete(base)
    gone_status, gone = await client.get(base)

    assert status == 201
    check("order-groups/create-order-group", "POST", "/portfolio/order_groups/create", 201, created)
    assert limit == (200, {})
    check(
        "order-groups/get-order-group", "GET", "/portfolio/order_groups/{order_group_id}", 200, one
    )
    assert one["contracts_limit_fp"] == "8.00"
    assert one["orders"] == [in_group]
    assert trigger == (200, {})
    assert_error(refused_status, refused, 400, "invalid_order")
    assert cancelled["order"]["status"] == "canceled"
    assert reset == (200, {})
    check("order-groups/get-order-groups", "GET", "/portfolio/order_groups", 200, listed)
    assert [g["id"] for g in listed["order_groups"]] == [gid]
    assert delete == (200, {})
    assert_error(gone_status, gone, 404, "not_found")


@pytest.mark.parametrize(
    "body",
    [{}, {"contracts_limit": "5"}, {"contracts_limit": 5, "contracts_limit_fp": "6.00"}],
)
async def test_a_bad_group_limit_is_bad_request(client: SignedClient, body: dict[str, Any]) -> None:
    status, answer = await client.post("/portfolio/order_groups/create", body)

    assert_error(status, answer, 400, "bad_request")


async def test_a_group_limit_out_of_range_is_refused(client: SignedClient) -> None:
    status, body = await client.post("/portfolio/order_groups/create", {"contracts_limit": 0})

    assert status == 400
    assert "contracts_limit" in body["error"]["message"]


# ----------------------------------------------------------------------------- rate limits


@pytest.fixture
def sim_options(sim_state_dir: Path, request: pytest.FixtureRequest) -> SimOptions:
    changes = getattr(request, "param", {})
    return make_options(sim_state_dir, **changes)


BASIC = pytest.mark.parametrize("sim_options", [{"tier": "basic"}], indirect=True)


@BASIC
async def test_the_write_bucket_answers_429_when_empty_and_refills(
    sim: SimServer, client: SignedClient
) -> None:
    ticker = linear(sim).ticker
    answers = [await client.post(ORDERS, order(ticker, "bid", 100)) for _ in range(11)]
    read_status, _ = await client.get("/portfolio/balance")
    sim.venue.clock.advance(0.1)  # type: ignore[attr-defined]  # 10 tokens at 100/s
    after_status, _ = await client.post(ORDERS, order(ticker, "bid", 100))

    assert [s for s, _ in answers] == [201] * 10 + [429]
    assert answers[-1][1] == {"error": "too many requests"}
    assert read_status == 200
    assert after_status == 201
    assert sim.rest.limiter.stats.refused_write == 1
    assert sim.rate_limit_summary().startswith("1 429s (write bucket 1, read bucket 0, injected 0)")


@BASIC
async def test_a_429_carries_no_retry_after(sim: SimServer, client: SignedClient) -> None:
    sim.venue.faults.rate_limit_burst(1)
    path = API_PREFIX + "/portfolio/balance"

    async with client.session.get(client.base_url + path, headers=client.headers("GET", path)) as r:
        status, headers = r.status, r.headers

    assert status == 429
    assert "Retry-After" not in headers
    assert not any(h.lower().startswith("x-ratelimit") for h in headers)


@BASIC
async def test_cancels_cost_two_tokens(sim: SimServer, client: SignedClient) -> None:
    ticker = linear(sim).ticker
    ids = [await rest_bid(client, sim, ticker) for _ in range(9)]  # 90 of 100 tokens

    statuses = [(await client.delete(f"{ORDERS}/{i}"))[0] for i in ids[:6]]  # 12 tokens

    assert statuses == [200] * 5 + [429]


@BASIC
async def test_a_batch_that_does_not_fit_is_rejected_whole(
    sim: SimServer, client: SignedClient
) -> None:
    ticker = linear(sim).ticker
    await rest_bid(client, sim, ticker)  # 90 tokens left
    items = [order(ticker, "bid", 100 + i * 100) for i in range(10)]  # needs 100

    status, body = await client.post(f"{ORDERS}/batched", {"orders": items})
    _, orders = await client.get("/portfolio/orders")

    assert (status, body) == (429, {"error": "too many requests"})
    assert len(orders["orders"]) == 1


@BASIC
async def test_a_batch_larger_than_the_bucket_can_hold_is_429(
    sim: SimServer, client: SignedClient
) -> None:
    items = [order(linear(sim).ticker, "bid", 100)] * 11  # 110 > capacity 100

    status, _ = await client.post(f"{ORDERS}/batched", {"orders": items})

    assert status == 429


async def test_unsigned_public_reads_are_not_metered(sim: SimServer, client: SignedClient) -> None:
    sim.venue.faults.rate_limit_burst(1)

    public_status, _ = await client.get("/markets", signed=False)
    signed_status, _ = await client.get("/markets")

    assert (public_status, signed_status) == (200, 429)


async def test_rate_limits_are_per_account(
    sim: SimServer, client: SignedClient, http: aiohttp.ClientSession
) -> None:
    other = await new_user(sim, http, "other")
    now = sim.venue.clock.monotonic_ns()
    sim.rest.limiter.bucket(sim.user_id, "read", now).empty(now)

    mine, theirs = await client.get("/portfolio/balance"), await other.get("/portfolio/balance")

    assert (mine[0], theirs[0]) == (429, 200)


# ----------------------------------------------------------------------------- write faults


@pytest.mark.parametrize("accepted", [True, False])
async def test_a_5xx_write_fault_with_and_without_the_order_accepted(
    sim: SimServer, client: SignedClient, accepted: bool
) -> None:
    sim.venue.faults.fail_next_writes(1, "5xx", accepted=accepted)
    ticker = linear(sim).ticker

    status, body = await client.post(ORDERS, order(ticker, "bid", 100, client_order_id="f1"))
    _, orders = await client.get("/portfolio/orders")

    assert_error(status, body, 500, "internal_server_error")
    assert [o["client_order_id"] for o in orders["orders"]] == (["f1"] if accepted else [])


@pytest.mark.parametrize("accepted", [True, False])
async def test_a_timeout_write_fault_gives_no_answer(
    sim: SimServer, client: SignedClient, accepted: bool
) -> None:
    sim.venue.faults.fail_next_writes(1, "timeout", accepted=accepted)
    ticker = linear(sim).ticker
    path = API_PREFIX + ORDERS
    headers = client.headers("POST", path)
    impatient = aiohttp.ClientTimeout(total=0.3)

    with pytest.raises(asyncio.TimeoutError):
        await client.session.post(
            client.base_url + path,
            json=order(ticker, "bid", 100, client_order_id="t1"),
            headers=headers,
            timeout=impatient,
        )
    _, orders = await client.get("/portfolio/orders")

    assert [o["client_order_id"] for o in orders["orders"]] == (["t1"] if accepted else [])


@pytest.mark.parametrize("sim_options", [{"write_timeout_hold_s": 0.2}], indirect=True)
async def test_a_held_write_ends_with_the_connection_dropped(
    sim: SimServer, client: SignedClient
) -> None:
    sim.venue.faults.fail_next_writes(1, "timeout", accepted=False)

    with pytest.raises(aiohttp.ServerDisconnectedError):
        await client.post(ORDERS, order(linear(sim).ticker, "bid", 100))


async def test_write_faults_skip_reads(sim: SimServer, client: SignedClient) -> None:
    sim.venue.faults.fail_next_writes(1, "5xx", accepted=False)

    read_status, _ = await client.get("/portfolio/orders")
    write_status, _ = await client.post(ORDERS, order(linear(sim).ticker, "bid", 100))

    assert (read_status, write_status) == (200, 500)


@pytest.mark.parametrize(
    "sim_options", [{"fault_spec": "5s:429x2,5s:deactivate=KXSIMA-26NOV25-T40"}], indirect=True
)
async def test_scheduled_faults_fire_when_due(sim: SimServer, client: SignedClient) -> None:
    before, _ = await client.get("/portfolio/balance")
    sim.venue.clock.advance(5.0)  # type: ignore[attr-defined]

    answers = [(await client.get("/portfolio/balance"))[0] for _ in range(3)]
    _, market = await client.get("/markets/KXSIMA-26NOV25-T40")

    assert before == 200
    assert answers == [429, 429, 200]
    assert market["market"]["status"] == "inactive"


# ----------------------------------------------------------------------------- time


@pytest.mark.parametrize("sim_options", [{"flow": True}], indirect=True)
async def test_stepping_a_manual_clock_runs_the_background_flow(
    sim: SimServer, client: SignedClient
) -> None:
    seen: list[EngineEvent] = []
    sim.venue.add_listener(seen.extend)

    await sim.step(START_NS + 60 * SECOND)
    _, trades = await client.get("/markets/trades")

    assert isinstance(sim.venue.clock, ManualClock)
    assert sim.venue.clock.now_ns() == START_NS + 60 * SECOND
    assert trades["trades"]
    assert seen


async def test_a_manual_clock_does_not_move_by_itself(sim: SimServer) -> None:
    await asyncio.sleep(0.1)

    assert sim.venue.clock.now_ns() == START_NS


async def test_a_live_clock_runs_the_flow_in_the_background(sim_state_dir: Path) -> None:
    options = make_options(sim_state_dir, clock=None, flow=True, tick_s=0.01)
    async with started(options) as sim:
        for _ in range(300):
            if sim.venue.engine.trades():
                break
            await asyncio.sleep(0.01)

        assert sim.venue.engine.trades()


async def test_an_unknown_path_or_method_gets_a_json_error(client: SignedClient) -> None:
    path_status, path_body = await client.get("/nowhere")
    method_status, method_body = await client.put("/markets")

    assert_error(path_status, path_body, 404, "not_found")
    assert_error(method_status, method_body, 405, "method_not_allowed")


async def test_the_server_reports_its_urls(sim: SimServer) -> None:
    assert sim.url.startswith("http://127.0.0.1:")
    assert sim.rest_url == sim.url + "/trade-api/v2"
    assert sim.ws_url == sim.url.replace("http://", "ws://") + "/trade-api/ws/v2"
    assert sim.private_key_path.name == "demo.pem"
