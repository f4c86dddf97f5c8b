"""Kalshi's official async SDK (kalshi-python-async 3.34.0) against the sim, unchanged but its host.

The SDK's pydantic models are generated from Kalshi's OpenAPI spec, so every call below also
checks the sim's response shapes. ``make test`` installs it with
``scripts/install-sdk.sh .venv/bin/python``; without it these tests fail rather than skip, so a
broken install can never pass CI silently.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
import pytest_asyncio

from kmm.sim.server import SimOptions, SimServer
from kmm.types import ONE_DOLLAR, format_price
from tests.sim.conftest import make_options

try:
    import kalshi_python_async as sdk
except ImportError as e:  # pragma: no cover - only without the SDK
    raise ImportError("kalshi-python-async is missing: run scripts/install-sdk.sh PYTHON") from e

pytestmark = pytest.mark.asyncio


@pytest.fixture
def sim_options(sim_state_dir: Any) -> SimOptions:
    # The SDK signs with the wall clock, so the sim runs on it too (no flow: a still book)
    return make_options(sim_state_dir, clock=None)


@pytest_asyncio.fixture
async def kalshi(sim: SimServer) -> AsyncIterator[Any]:
    config = sdk.Configuration(host=sim.rest_url)
    config.api_key_id = sim.key_id
    config.private_key_pem = sim.private_key_path.read_text()
    client = sdk.KalshiClient(config)
    try:
        yield client
    finally:
        await client.close()


def _linear_market(sim: SimServer) -> str:
    return next(
        m.ticker for m in sim.venue.universe.markets if m.price_level_structure == "linear_cent"
    )


def _order(ticker: str, side: str, price: int, count: str, **extra: Any) -> dict[str, Any]:
    return {
        "ticker": ticker,
        "side": side,
        "price": format_price(price),
        "count": count,
        "time_in_force": "good_till_canceled",
        "self_trade_prevention_type": "taker_at_cross",
        **extra,
    }


async def test_the_sdk_lists_markets_and_reads_one(sim: SimServer, kalshi: Any) -> None:
    listed = await kalshi.get_markets(limit=2)
    ticker = listed.markets[0].ticker
    one = await kalshi.get_market(ticker)

    assert len(listed.markets) == 2
    assert listed.cursor != ""
    assert one.market.ticker == ticker
    assert one.market.price_ranges


async def test_the_sdk_reads_an_orderbook_matching_the_engine(sim: SimServer, kalshi: Any) -> None:
    ticker = _linear_market(sim)
    yes, no = sim.venue.engine.book_levels(ticker)

    book = await kalshi.get_market_orderbook(ticker)

    best_yes = book.orderbook_fp.yes_dollars[-1]
    assert Decimal(best_yes[0]) * 10_000 == max(yes)
    assert len(book.orderbook_fp.no_dollars) == len(no)


async def test_the_sdk_reads_exchange_series_events_and_limits(sim: SimServer, kalshi: Any) -> None:
    status = await kalshi.get_exchange_status()
    schedule = await kalshi.get_exchange_schedule()
    series = await kalshi.get_series_list()
    events = await kalshi.get_events(with_nested_markets=True)
    limits = await kalshi.get_account_api_limits()
    costs = await kalshi.get_account_endpoint_costs()

    assert status.trading_active
    assert schedule.schedule.standard_hours
    assert {s.fee_type for s in series.series} >= {"quadratic_with_maker_fees"}
    assert events.events[0].markets
    assert limits.usage_tier == "premier"
    assert costs.default_cost == 10


async def test_the_sdk_creates_amends_decreases_and_cancels_a_v2_order(
    sim: SimServer, kalshi: Any
) -> None:
    ticker = _linear_market(sim)
    bid, _ = sim.venue.engine.best(ticker)
    assert bid is not None
    price = bid - 300

    created = await kalshi.create_order_v2(
        **_order(ticker, "bid", price, "5", client_order_id="a1")
    )
    amended = await kalshi.amend_order_v2(
        created.order_id,
        ticker=ticker,
        side="bid",
        price=format_price(price - 100),
        count="4.00",
        updated_client_order_id="a2",
    )
    decreased = await kalshi.decrease_order_v2(created.order_id, reduce_by="1")
    cancelled = await kalshi.cancel_order_v2(created.order_id)
    fetched = await kalshi.get_order(created.order_id)

    assert created.remaining_count == "5.00"
    assert amended.remaining_count == "4.00"
    assert decreased.remaining_count == "3.00"
    assert cancelled.reduced_by == "3.00"
    assert fetched.order.status == "canceled"
    assert fetched.order.client_order_id == "a2"


async def test_the_sdk_batches_creates_and_cancels(sim: SimServer, kalshi: Any) -> None:
    ticker = _linear_market(sim)
    bid, _ = sim.venue.engine.best(ticker)
    assert bid is not None
    orders = [
        _order(ticker, "bid", bid - 500 - 100 * i, "1", client_order_id=f"b{i}") for i in range(3)
    ]

    created = await kalshi.batch_create_orders_v2(orders=orders)
    ids = [item.order_id for item in created.orders]
    cancelled = await kalshi.batch_cancel_orders_v2(orders=[{"order_id": i} for i in ids])

    assert [item.error for item in created.orders] == [None, None, None]
    assert [item.reduced_by for item in cancelled.orders] == ["1.00"] * 3


async def test_the_sdk_cancels_every_order_at_once(sim: SimServer, kalshi: Any) -> None:
    ticker = _linear_market(sim)
    bid, _ = sim.venue.engine.best(ticker)
    assert bid is not None
    for i in range(2):
        await kalshi.create_order_v2(**_order(ticker, "bid", bid - 500 - 100 * i, "2"))

    await kalshi.cancel_all_orders()
    resting = await kalshi.get_orders(status="resting")

    assert resting.orders == []


async def test_the_sdk_reads_balance_positions_and_fills_after_a_trade(
    sim: SimServer, kalshi: Any
) -> None:
    ticker = _linear_market(sim)
    _, ask = sim.venue.engine.best(ticker)
    assert ask is not None
    before = await kalshi.get_balance()

    taken = await kalshi.create_order_v2(
        **_order(ticker, "bid", ask, "2", time_in_force="immediate_or_cancel")
    )
    after = await kalshi.get_balance()
    positions = await kalshi.get_positions()
    fills = await kalshi.get_fills(ticker=ticker)
    settlements = await kalshi.get_settlements()

    assert taken.fill_count == "2.00"
    assert Decimal(taken.average_fill_price) == Decimal(ask) / ONE_DOLLAR
    assert after.balance < before.balance
    assert [p.position_fp for p in positions.market_positions] == ["2.00"]
    assert positions.event_positions[0].total_cost_shares_fp == "2.00"
    assert len(fills.fills) == 1
    assert fills.fills[0].is_taker
    assert settlements.settlements == []


async def test_the_sdk_raises_kalshis_error_for_a_reused_client_order_id(
    sim: SimServer, kalshi: Any
) -> None:
    ticker = _linear_market(sim)
    bid, _ = sim.venue.engine.best(ticker)
    assert bid is not None
    await kalshi.create_order_v2(**_order(ticker, "bid", bid - 500, "1", client_order_id="d1"))

    with pytest.raises(sdk.ApiException) as refused:
        await kalshi.create_order_v2(**_order(ticker, "bid", bid - 600, "1", client_order_id="d1"))

    assert refused.value.status == 409
    assert "order_already_exists" in refused.value.body


async def test_the_sdk_manages_an_order_group(sim: SimServer, kalshi: Any) -> None:
    created = await kalshi.create_order_group(contracts_limit=10)
    group_id = created.order_group_id

    await kalshi.update_order_group_limit(group_id, contracts_limit_fp="20.00")
    await kalshi.trigger_order_group(group_id, body={})
    await kalshi.reset_order_group(group_id, body={})
    one = await kalshi.get_order_group(group_id)
    listed = await kalshi.get_order_groups()
    await kalshi.delete_order_group(group_id)

    assert one.contracts_limit_fp == "20.00"
    assert [g.id for g in listed.order_groups] == [group_id]


async def test_the_sdk_creates_funds_and_trades_in_a_subaccount(
    sim: SimServer, kalshi: Any
) -> None:
    ticker = _linear_market(sim)
    bid, _ = sim.venue.engine.best(ticker)
    assert bid is not None

    created = await kalshi.create_subaccount()
    number = created.subaccount_number
    await kalshi.apply_subaccount_transfer(
        client_transfer_id=str(uuid.uuid4()),
        from_subaccount=0,
        to_subaccount=number,
        amount_cents=50_000,
    )
    placed = await kalshi.create_order_v2(
        **_order(ticker, "bid", bid - 500, "1", subaccount=number)
    )
    balances = await kalshi.get_subaccount_balances()
    transfers = await kalshi.get_subaccount_transfers()
    balance = await kalshi.get_balance(subaccount=number)
    mine = await kalshi.get_orders(subaccount=number)
    primary = await kalshi.get_orders(subaccount=0)
    cancelled = await kalshi.cancel_order_v2(placed.order_id, subaccount=number)

    assert number == 1
    assert [b.subaccount_number for b in balances.subaccount_balances] == [0, 1]
    assert [t.amount_cents for t in transfers.transfers] == [50_000]
    assert balance.balance < 50_000  # $500 less what the resting bid reserves
    assert [o.order_id for o in mine.orders] == [placed.order_id]
    assert mine.orders[0].subaccount_number == number
    assert primary.orders == []
    assert cancelled.reduced_by == "1.00"
