"""Kalshi's queue-position endpoints on the local exchange, over real HTTP, checked against the
schemas of Kalshi's API reference pages; and the bot's client for them."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from kmm.kalshi.auth import Signer, load_private_key
from kmm.kalshi.rest import KalshiRest
from kmm.sim.server import SimServer
from kmm.types import format_price
from tests.sim.conftest import SignedClient, new_user
from tests.sim.schema import check

pytestmark = pytest.mark.asyncio

ORDERS = "/portfolio/events/orders"
ONE = "/portfolio/orders/{order_id}/queue_position"
MANY = "/portfolio/orders/queue_positions"


def _ticker(sim: SimServer, index: int = 0) -> str:
    markets = [m for m in sim.venue.universe.markets if m.price_level_structure == "linear_cent"]
    return markets[index].ticker


def _below_book(sim: SimServer, ticker: str) -> int:
    bid, _ = sim.venue.engine.best(ticker)
    assert bid is not None
    return bid - 700  # a level nobody else rests at


async def _bid(client: SignedClient, ticker: str, price: int, count: str, **extra: Any) -> str:
    body = {
        "ticker": ticker, "side": "bid", "price": format_price(price), "count": count,
        "time_in_force": "good_till_canceled", "self_trade_prevention_type": "taker_at_cross",
        **extra,
    }  # fmt: skip
    status, answer = await client.post(ORDERS, body)
    assert status == 201, answer
    order_id: str = answer["order_id"]
    return order_id


async def _ahead(client: SignedClient, order_id: str) -> str:
    status, body = await client.get(f"/portfolio/orders/{order_id}/queue_position")
    assert status == 200, body
    check("orders/get-order-queue-position", "GET", ONE, 200, body)
    text: str = body["queue_position_fp"]
    return text


async def test_an_order_at_a_new_level_is_at_the_front_and_later_ones_queue_behind_it(
    sim: SimServer, client: SignedClient, http: aiohttp.ClientSession
) -> None:
    ticker = _ticker(sim)
    price = _below_book(sim, ticker)
    other = await new_user(sim, http, "queue-other")
    first = await _bid(other, ticker, price, "3.50")
    mine = await _bid(client, ticker, price, "2.00")
    last = await _bid(other, ticker, price, "1.00")

    assert await _ahead(other, first) == "0.00"
    assert await _ahead(client, mine) == "3.50"
    assert await _ahead(other, last) == "5.50"


async def test_the_queue_advances_as_orders_ahead_are_cancelled_or_matched(
    sim: SimServer, client: SignedClient, http: aiohttp.ClientSession
) -> None:
    ticker = _ticker(sim)
    bid, ask = sim.venue.engine.best(ticker)
    assert bid is not None and ask is not None and ask - bid >= 200
    price = bid + 100  # the new best bid: a sell there meets this level first
    other = await new_user(sim, http, "queue-other")
    await _bid(other, ticker, price, "2.00")
    second = await _bid(other, ticker, price, "3.00")
    mine = await _bid(client, ticker, price, "1.00")
    assert await _ahead(client, mine) == "5.00"

    await other.delete(f"{ORDERS}/{second}")
    assert await _ahead(client, mine) == "2.00"

    taker = await new_user(sim, http, "queue-taker")
    status, body = await taker.post(ORDERS, {
        "ticker": ticker, "side": "ask", "price": format_price(price), "count": "1.50",
        "time_in_force": "immediate_or_cancel", "self_trade_prevention_type": "taker_at_cross",
    })  # fmt: skip
    assert status == 201, body
    assert await _ahead(client, mine) == "0.50"


async def test_an_unknown_order_or_one_no_longer_resting_is_not_found(
    sim: SimServer, client: SignedClient
) -> None:
    ticker = _ticker(sim)
    mine = await _bid(client, ticker, _below_book(sim, ticker), "1.00")
    await client.delete(f"{ORDERS}/{mine}")

    for order_id in (mine, "00000000-0000-4000-8000-000000000000"):
        status, body = await client.get(f"/portfolio/orders/{order_id}/queue_position")
        assert status == 404, body
        check("orders/get-order-queue-position", "GET", ONE, 404, body)


async def test_the_list_covers_resting_orders_filtered_by_market_or_event(
    sim: SimServer, client: SignedClient
) -> None:
    a, b = _ticker(sim, 0), _ticker(sim, 1)
    in_a = await _bid(client, a, _below_book(sim, a), "1.00")
    in_b = await _bid(client, b, _below_book(sim, b), "2.00")
    gone = await _bid(client, b, _below_book(sim, b) - 100, "1.00")
    await client.delete(f"{ORDERS}/{gone}")
    event_b = sim.venue.engine.markets[b].event_ticker

    _, everything = await client.get(MANY)
    _, only_a = await client.get(MANY, params={"market_tickers": a})
    _, both = await client.get(MANY, params={"market_tickers": f"{a},{b}"})
    _, by_event = await client.get(MANY, params={"event_ticker": event_b})

    for body in (everything, only_a, both, by_event):
        check("orders/get-queue-positions-for-orders", "GET", MANY, 200, body)
    ids = {row["order_id"] for row in everything["queue_positions"]}
    assert {in_a, in_b} <= ids and gone not in ids
    assert [r["order_id"] for r in only_a["queue_positions"]] == [in_a]
    assert {r["order_id"] for r in both["queue_positions"]} == {in_a, in_b}
    assert in_b in {r["order_id"] for r in by_event["queue_positions"]}
    assert in_a not in {r["order_id"] for r in by_event["queue_positions"]} or (
        sim.venue.engine.markets[a].event_ticker == event_b
    )


async def test_the_list_is_of_one_subaccount_the_primary_by_default(
    sim: SimServer, client: SignedClient
) -> None:
    ticker = _ticker(sim)
    status, body = await client.post("/portfolio/subaccounts", {})
    assert status in (200, 201), body
    sim.fund_subaccount(1, 1_000 * 1_000_000)
    primary = await _bid(client, ticker, _below_book(sim, ticker), "1.00")
    numbered = await _bid(client, ticker, _below_book(sim, ticker), "1.00", subaccount=1)

    _, default = await client.get(MANY)
    _, first = await client.get(MANY, params={"subaccount": "1"})

    assert [r["order_id"] for r in default["queue_positions"]] == [primary]
    assert [r["order_id"] for r in first["queue_positions"]] == [numbered]
    assert first["queue_positions"][0]["queue_position_fp"] == "1.00"


async def test_the_bots_client_reads_queue_positions_exactly(
    sim: SimServer, client: SignedClient, http: aiohttp.ClientSession
) -> None:
    ticker = _ticker(sim)
    price = _below_book(sim, ticker)
    other = await new_user(sim, http, "queue-other")
    await _bid(other, ticker, price, "12.34")
    mine = await _bid(client, ticker, price, "1.00")
    signer = Signer(sim.key_id, load_private_key(sim.private_key_path))
    rest = KalshiRest(
        http, sim.rest_url, signer, now_ms=lambda: sim.venue.clock.now_ns() // 1_000_000
    )

    assert await rest.queue_position(mine) == 1234
    assert await rest.queue_positions(market_tickers=[ticker]) == {mine: 1234}
