"""Subaccounts end to end: the local exchange's per-subaccount books and the bot on one.

Kalshi's rules (``getting_started/subaccounts.md`` and each endpoint's reference page): 0 is
the primary account, 1–63 are numbered subaccounts, each with its own cash, orders, fills and
positions. Creates, cancels, amends, order-group writes, positions and balance act on the
primary when ``subaccount`` is omitted; the order and fill lists cover every subaccount. The
tests below drive the sim over real HTTP, then :class:`~kmm.kalshi.rest.KalshiRest` and the
whole bot configured with ``venue.subaccount: 3``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import probe
import pytest
import pytest_asyncio

from kmm.config import KmmConfig
from kmm.engine import LiveEngine
from kmm.errors import Rejected
from kmm.kalshi.auth import Signer, load_private_key
from kmm.kalshi.lane import OrderLane
from kmm.kalshi.rest import KalshiRest, OrderRequest
from kmm.sim.engine import OrderRequest as SimRequest
from kmm.sim.engine import OrderStatus, SelfTradePrevention, TimeInForce
from kmm.sim.server import SimOptions, SimServer
from kmm.types import ONE_CENT, QTY_SCALE, BookSide, format_price, parse_money
from tests.sim.conftest import SignedClient
from tests.sim.schema import check
from tests.sim.test_ws import connect

pytestmark = pytest.mark.asyncio

ORDERS = "/portfolio/events/orders"
SUBACCOUNTS = "/portfolio/subaccounts"
FUNDS = 1_000 * 1_000_000
"""$1,000 in money units: what the tests move into subaccount 3."""


# ----------------------------------------------------------------------------- helpers


def _ticker(sim: SimServer) -> str:
    return next(
        m.ticker
        for m in sim.venue.universe.markets
        if m.price_level_structure == "linear_cent" and m.status == "active"
    )


def _bid_under_best(sim: SimServer, ticker: str, cents: int = 5) -> int:
    best_bid, _ = sim.venue.engine.best(ticker)
    assert best_bid is not None
    return best_bid - cents * ONE_CENT


def _order(ticker: str, price: int, **extra: Any) -> dict[str, Any]:
    return {
        "ticker": ticker,
        "side": "bid",
        "price": format_price(price),
        "count": "1",
        "time_in_force": "good_till_canceled",
        "self_trade_prevention_type": "taker_at_cross",
        **extra,
    }


async def _place(client: SignedClient, body: dict[str, Any]) -> str:
    status, answer = await client.post(ORDERS, body)
    assert status == 201, answer
    order_id: str = answer["order_id"]
    return order_id


async def _order_ids(client: SignedClient, **params: str) -> set[str]:
    status, body = await client.get("/portfolio/orders", params=params)
    assert status == 200, body
    check("orders/get-orders", "GET", "/portfolio/orders", 200, body)
    return {o["order_id"] for o in body["orders"]}


# ----------------------------------------------------------------------------- the sim's REST


async def test_subaccounts_are_numbered_in_order_and_funded_by_idempotent_transfers(
    client: SignedClient,
) -> None:
    created = [await client.post(SUBACCOUNTS, {}) for _ in range(2)]
    transfer = {
        "client_transfer_id": str(uuid.uuid4()),
        "from_subaccount": 0,
        "to_subaccount": 2,
        "amount_cents": 150_000,
    }
    moved = await client.post(SUBACCOUNTS + "/transfer", transfer)
    replayed = await client.post(SUBACCOUNTS + "/transfer", transfer)
    overdrawn = await client.post(
        SUBACCOUNTS + "/transfer",
        {**transfer, "client_transfer_id": str(uuid.uuid4()), "from_subaccount": 1},
    )
    _, balances = await client.get(SUBACCOUNTS + "/balances")
    _, primary = await client.get("/portfolio/balance")
    _, second = await client.get("/portfolio/balance", params={"subaccount": "2"})
    _, transfers = await client.get(SUBACCOUNTS + "/transfers")

    assert created == [(201, {"subaccount_number": 1}), (201, {"subaccount_number": 2})]
    assert moved == (200, {})
    assert replayed[0] == 409  # the same client_transfer_id is never applied twice
    assert overdrawn[0] == 400 and overdrawn[1]["error"]["code"] == "insufficient_balance"
    assert [(b["subaccount_number"], b["balance"]) for b in balances["subaccount_balances"]] == [
        (0, "98500.0000"),
        (1, "0.0000"),
        (2, "1500.0000"),
    ]
    check("portfolio/get-balance", "GET", "/portfolio/balance", 200, second)
    assert primary["balance_dollars"] == "98500.0000"
    assert second["balance_dollars"] == "1500.0000"
    assert [(t["from_subaccount"], t["to_subaccount"], t["amount_cents"]) for t in
            transfers["transfers"]] == [(0, 2, 150_000)]  # fmt: skip


async def test_orders_are_listed_per_subaccount_and_all_of_them_when_it_is_omitted(
    sim: SimServer, client: SignedClient
) -> None:
    sim.fund_subaccount(3, FUNDS)
    ticker = _ticker(sim)
    price = _bid_under_best(sim, ticker)
    primary = await _place(client, _order(ticker, price))
    third = await _place(client, _order(ticker, price - ONE_CENT, subaccount=3))

    every = await _order_ids(client)
    of_primary = await _order_ids(client, subaccount="0")
    of_third = await _order_ids(client, subaccount="3")
    _, one = await client.get(f"/portfolio/orders/{third}")

    assert every == {primary, third}
    assert of_primary == {primary}
    assert of_third == {third}
    assert one["order"]["subaccount_number"] == 3


async def test_cancel_and_amend_find_a_subaccounts_order_only_when_they_name_it(
    sim: SimServer, client: SignedClient
) -> None:
    sim.fund_subaccount(3, FUNDS)
    ticker = _ticker(sim)
    price = _bid_under_best(sim, ticker)
    order_id = await _place(client, _order(ticker, price, subaccount=3))
    amend = {"ticker": ticker, "side": "bid", "price": format_price(price - ONE_CENT), "count": "1"}

    cancel_primary = await client.delete(f"{ORDERS}/{order_id}")
    amend_primary = await client.post(f"{ORDERS}/{order_id}/amend", amend)
    amended = await client.post(f"{ORDERS}/{order_id}/amend", amend, params={"subaccount": "3"})
    cancelled = await client.delete(f"{ORDERS}/{order_id}", params={"subaccount": "3"})

    assert cancel_primary[0] == 404  # subaccount defaults to 0, which has no such order
    assert amend_primary[0] == 404
    assert amended[0] == 200, amended
    assert cancelled[0] == 200 and cancelled[1]["reduced_by"] == "1.00"


async def test_batch_cancel_items_cancel_in_the_subaccount_they_name(
    sim: SimServer, client: SignedClient
) -> None:
    sim.fund_subaccount(3, FUNDS)
    ticker = _ticker(sim)
    price = _bid_under_best(sim, ticker)
    first = await _place(client, _order(ticker, price, subaccount=3))
    second = await _place(client, _order(ticker, price - ONE_CENT, subaccount=3))

    status, body = await client.delete(
        f"{ORDERS}/batched",
        {"orders": [{"order_id": first}, {"order_id": second, "subaccount": 3}]},
    )

    assert status == 200, body
    assert body["orders"][0]["error"]["code"] == "not_found"
    assert body["orders"][1]["error"] is None and body["orders"][1]["reduced_by"] == "1.00"
    assert await _order_ids(client, subaccount="3", status="resting") == {first}


async def test_cancel_all_cancels_one_subaccounts_orders_or_every_subaccounts(
    sim: SimServer, client: SignedClient
) -> None:
    sim.fund_subaccount(3, FUNDS)
    ticker = _ticker(sim)
    price = _bid_under_best(sim, ticker)
    primary = await _place(client, _order(ticker, price))
    await _place(client, _order(ticker, price, subaccount=3))

    one = await client.delete(ORDERS, params={"subaccount": "3"})
    left = await _order_ids(client, status="resting")
    every = await client.delete(ORDERS)

    assert one == (204, None) and every == (204, None)
    assert left == {primary}
    assert await _order_ids(client, status="resting") == set()


async def test_fills_positions_and_balance_belong_to_the_subaccount_that_traded(
    sim: SimServer, client: SignedClient
) -> None:
    sim.fund_subaccount(3, FUNDS)
    ticker = _ticker(sim)
    _, ask = sim.venue.engine.best(ticker)
    assert ask is not None
    _, before = await client.get("/portfolio/balance")
    await _place(client, _order(ticker, ask, subaccount=3, time_in_force="immediate_or_cancel"))

    _, fills_all = await client.get("/portfolio/fills")
    _, fills_primary = await client.get("/portfolio/fills", params={"subaccount": "0"})
    _, fills_third = await client.get("/portfolio/fills", params={"subaccount": "3"})
    _, positions_default = await client.get("/portfolio/positions")
    _, positions_third = await client.get("/portfolio/positions", params={"subaccount": "3"})
    _, after = await client.get("/portfolio/balance")
    _, third = await client.get("/portfolio/balance", params={"subaccount": "3"})

    check("portfolio/get-fills", "GET", "/portfolio/fills", 200, fills_third)
    check("portfolio/get-positions", "GET", "/portfolio/positions", 200, positions_third)
    assert [f["subaccount_number"] for f in fills_all["fills"]] == [3]
    assert fills_primary["fills"] == []
    assert fills_third["fills"] == fills_all["fills"]
    assert positions_default["market_positions"] == []  # positions default to subaccount 0
    assert [(p["ticker"], p["position_fp"]) for p in positions_third["market_positions"]] == [
        (ticker, "1.00")
    ]
    assert after["balance_dollars"] == before["balance_dollars"]
    assert parse_money(third["balance_dollars"], "balance") < FUNDS


async def test_an_order_group_holds_only_orders_of_its_own_subaccount(
    sim: SimServer, client: SignedClient
) -> None:
    sim.fund_subaccount(3, FUNDS)
    ticker = _ticker(sim)
    price = _bid_under_best(sim, ticker)
    status, group = await client.post(
        "/portfolio/order_groups/create", {"contracts_limit": 10, "subaccount": 3}
    )
    gid = group["order_group_id"]
    in_primary = await client.post(ORDERS, _order(ticker, price, order_group_id=gid))
    order_id = await _place(client, _order(ticker, price, order_group_id=gid, subaccount=3))

    trigger_primary = await client.put(f"/portfolio/order_groups/{gid}/trigger", {})
    triggered = await client.put(
        f"/portfolio/order_groups/{gid}/trigger", {}, params={"subaccount": "3"}
    )

    assert status == 201 and group["subaccount"] == 3
    assert in_primary[0] == 404  # the primary account has no such group
    assert trigger_primary[0] == 404
    assert triggered == (200, {})
    assert sim.venue.engine.get_order(sim.user_id, order_id).status is OrderStatus.CANCELED


async def test_account_frames_name_a_numbered_subaccount_and_leave_it_out_for_the_primary(
    sim: SimServer,
) -> None:
    sim.fund_subaccount(3, FUNDS)
    ticker = _ticker(sim)
    _, ask = sim.venue.engine.best(ticker)
    assert ask is not None
    bought: dict[int, dict[str, dict[str, Any]]] = {}

    async with await connect(sim) as client:  # every frame is checked against AsyncAPI
        await client.subscribe(["user_orders", "fill", "market_positions"])
        for subaccount in (3, 0):
            _place_direct(sim, sim.user_id, ticker, BookSide.BID, ask, subaccount=subaccount,
                          tif=TimeInForce.IOC)  # fmt: skip
            frames = [await client.recv_msg() for _ in range(3)]
            bought[subaccount] = {f["type"]: f["msg"] for f in frames}

    assert bought[3]["fill"]["subaccount"] == 3
    assert bought[3]["market_position"]["subaccount"] == 3
    assert bought[3]["user_order"]["subaccount_number"] == 3
    assert "subaccount" not in bought[0]["fill"]
    assert "subaccount" not in bought[0]["market_position"]
    assert bought[0]["user_order"]["subaccount_number"] == 0


# ----------------------------------------------------------------------------- KalshiRest


@pytest_asyncio.fixture(params=["lane", "aiohttp"])
async def clients(
    request: pytest.FixtureRequest, sim: SimServer
) -> AsyncIterator[tuple[KalshiRest, KalshiRest]]:
    """``(primary, third)``: KalshiRest for subaccounts 0 and 3 of the demo key, writing over
    the order lane or over aiohttp."""
    sim.fund_subaccount(3, FUNDS)
    clock = sim.venue.clock
    lane = (
        OrderLane(sim.rest_url, connections=2, timeout_s=5.0) if request.param == "lane" else None
    )
    if lane is not None:
        await lane.start()
    signer = Signer(sim.key_id, load_private_key(sim.private_key_path))
    try:
        async with aiohttp.ClientSession() as session:

            def rest(subaccount: int) -> KalshiRest:
                return KalshiRest(
                    session,
                    sim.rest_url,
                    signer,
                    now_ms=lambda: clock.now_ns() // 1_000_000,
                    lane=lane,
                    subaccount=subaccount,
                )

            yield rest(0), rest(3)
            if lane is not None:
                assert lane.sent > 0  # the writes above went over the lane
    finally:
        if lane is not None:
            await lane.close()


async def test_a_client_on_subaccount_3_places_reads_and_cancels_only_its_own_orders(
    sim: SimServer, clients: tuple[KalshiRest, KalshiRest]
) -> None:
    primary, third = clients
    ticker = _ticker(sim)
    price = _bid_under_best(sim, ticker)
    theirs = await primary.create_order(OrderRequest(ticker, BookSide.BID, price, QTY_SCALE, "p1"))
    mine = await third.create_order(
        OrderRequest(ticker, BookSide.BID, price - ONE_CENT, 2 * QTY_SCALE, "s1")
    )
    extra = await third.create_order(
        OrderRequest(ticker, BookSide.BID, price - 2 * ONE_CENT, QTY_SCALE, "s2")
    )

    seen = {o.order_id for o in await third.resting_orders()}
    by_client_id = await third.orders_by_client_id("p1")
    with pytest.raises(Rejected) as refused:
        await third.cancel_order(theirs.order_id)
    amended = await third.amend_order(
        mine.order_id, ticker=ticker, side=BookSide.BID, price=price - ONE_CENT, count=QTY_SCALE
    )
    batch = await third.batch_cancel([theirs.order_id, extra.order_id])
    reduced = await third.cancel_order(mine.order_id)

    assert seen == {mine.order_id, extra.order_id}
    assert by_client_id == []
    assert refused.value.status == 404
    assert amended.remaining == QTY_SCALE
    assert [item.error is None for item in batch] == [False, True]
    assert reduced == QTY_SCALE
    assert {o.order_id for o in await primary.resting_orders()} == {theirs.order_id}
    assert await third.resting_orders() == []
    assert await third.balance() == FUNDS


async def test_a_client_on_subaccount_3_reads_only_its_fills_positions_and_balance(
    sim: SimServer, clients: tuple[KalshiRest, KalshiRest]
) -> None:
    primary, third = clients
    ticker = _ticker(sim)
    _, ask = sim.venue.engine.best(ticker)
    assert ask is not None
    take = OrderRequest(
        ticker, BookSide.BID, ask, QTY_SCALE, "t1", post_only=False,
        time_in_force="immediate_or_cancel",
    )  # fmt: skip
    await primary.create_order(take)

    assert [f.ticker for f in await primary.fills()] == [ticker]
    assert await third.fills() == []
    assert await third.positions() == []
    assert await third.balance() == FUNDS


async def test_a_client_on_subaccount_3_creates_and_triggers_its_own_order_group(
    sim: SimServer, clients: tuple[KalshiRest, KalshiRest]
) -> None:
    _, third = clients
    ticker = _ticker(sim)
    group = await third.create_order_group(10 * QTY_SCALE)
    placed = await third.create_order(
        OrderRequest(
            ticker, BookSide.BID, _bid_under_best(sim, ticker), QTY_SCALE, "g1",
            order_group_id=group,
        )
    )  # fmt: skip

    await third.trigger_order_group(group)
    await third.delete_order_group(group)

    order = sim.venue.engine.get_order(sim.user_id, placed.order_id)
    assert order.subaccount == 3 and order.status is OrderStatus.CANCELED
    assert sim.venue.engine.order_groups_of(sim.user_id) == []


# ----------------------------------------------------------------------------- the bot

TRADER = "sub-trader"


def _config(tmp_path: Path) -> KmmConfig:
    return KmmConfig.model_validate(
        {
            "venue": {"subaccount": 3},
            "markets": {"max_markets": 2},
            "execution": {"min_rest_ms": 0, "reconcile_interval_s": 1.0},
            "risk": {"kill_file": str(tmp_path / "KILL"), "order_group_contracts_limit": 1000},
        }
    )


async def _until(what: Callable[[], bool], reason: str, task: asyncio.Task[Any]) -> None:
    deadline = asyncio.get_running_loop().time() + 20.0
    while not what():
        if task.done():
            task.result()
            raise AssertionError(f"the engine stopped while waiting for: {reason}")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for: {reason}")
        await asyncio.sleep(0.02)


@pytest_asyncio.fixture
async def live_sim(sim_state_dir: Path) -> AsyncIterator[SimServer]:
    """A sim on the wall clock (the bot signs with it), no background flow."""
    server = SimServer(SimOptions(state_dir=sim_state_dir, flow=False))
    await server.start()
    server.venue.engine.open_account(TRADER, 10**15)
    try:
        yield server
    finally:
        await server.stop()


def _resting(sim: SimServer, subaccount: int) -> dict[str, Any]:
    engine = sim.venue.engine
    return {
        o.order_id: o
        for o in engine.orders_of(sim.user_id, subaccount)
        if o.status is OrderStatus.RESTING
    }


def _place_direct(
    sim: SimServer, user: str, ticker: str, side: BookSide, price: int, *, subaccount: int = 0,
    tif: TimeInForce = TimeInForce.GTC, coid: str | None = None,
) -> str:  # fmt: skip
    request = SimRequest(
        ticker, side, price, QTY_SCALE, time_in_force=tif,
        self_trade_prevention=SelfTradePrevention.TAKER_AT_CROSS, client_order_id=coid,
        subaccount=subaccount,
    )  # fmt: skip
    result = sim.venue.engine.create_order(user, request, sim.venue.clock.now_ns())
    sim.venue.publish()
    return result.order.order_id


def _take(sim: SimServer, ticker: str) -> None:
    """The primary account buys one contract at the ask (a fill that is not subaccount 3's)."""
    _, ask = sim.venue.engine.best(ticker)
    assert ask is not None
    _place_direct(sim, sim.user_id, ticker, BookSide.BID, ask, tif=TimeInForce.IOC)


async def test_a_bot_on_subaccount_3_trades_there_and_never_touches_the_primary_account(
    live_sim: SimServer, tmp_path: Path
) -> None:
    # Arrange: the primary account has a resting order and a fill; subaccount 3 has a stray
    sim = live_sim
    engine = sim.venue.engine
    sim.fund_subaccount(3, 10 * FUNDS)
    active = sorted(t for t, m in engine.markets.items() if m.status == "active")
    ticker, filled = active[0], active[-1]
    low = _bid_under_best(sim, ticker, 10)
    primary_order = _place_direct(sim, sim.user_id, ticker, BookSide.BID, low)
    _take(sim, filled)
    stray = _place_direct(sim, sim.user_id, ticker, BookSide.BID, low, subaccount=3)
    signer = Signer(sim.key_id, load_private_key(sim.private_key_path), reuse_ms=2_000)
    bot = LiveEngine(_config(tmp_path), rest_url=sim.rest_url, ws_url=sim.ws_url, signer=signer)

    # Act: the bot starts (cancel_on_start), quotes, and the primary account trades meanwhile
    task = asyncio.create_task(bot.run())
    try:
        await _until(lambda: bot.ready.is_set(), "the engine to start", task)
        for t in bot.core.pipeline.markets:
            await _until(
                lambda t=t: (
                    {o.book_side for o in _resting(sim, 3).values() if o.ticker == t}
                    == {BookSide.BID, BookSide.ASK}
                ),
                f"two-sided quotes in {t} on subaccount 3",
                task,
            )
        elsewhere = next(t for t in active if t not in bot.core.pipeline.markets)
        _take(sim, elsewhere)
        decoder = bot.core.pipeline.decoder
        await _until(
            lambda: (
                decoder.foreign_counts.get("fill", 0) > 0
                and decoder.foreign_counts.get("market_position", 0) > 0
            ),
            "the primary account's fill and position frames to be skipped",
            task,
        )
        ours = {o.order_id for m in bot.core.pipeline.markets for o in bot.core.tracker.live(m)}

        # Assert: the bot's orders are subaccount 3's, the primary's are untouched
        assert engine.get_order(sim.user_id, stray).status is OrderStatus.CANCELED
        assert engine.get_order(sim.user_id, primary_order).status is OrderStatus.RESTING
        assert ours == set(_resting(sim, 3))
        assert None not in {o.order_group_id for o in _resting(sim, 3).values()}
        assert bot.core.portfolio.net_qty(filled) == 0  # the primary's fills are not the bot's
        assert bot.core.portfolio.net_qty(elsewhere) == 0
        assert bot.core.fills == []
    finally:
        bot.stop()
        await asyncio.wait_for(task, 30)

    assert _resting(sim, 3) == {}
    assert set(_resting(sim, 0)) == {primary_order}  # shutdown cancelled only its own
    assert bot.report.left_resting == []


async def test_kmm_run_on_a_subaccount_the_venue_does_not_know_is_one_line_and_exit_2(
    live_sim: SimServer, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMM__")}
    env.update(
        KMM__RECORD__RUNS_DIR=str(tmp_path / "runs"),
        KMM__RECORD__LEDGER_PATH=str(tmp_path / "runs" / "ledger.sqlite"),
        KMM__VENUE__REST_URL=live_sim.rest_url,
        KMM__VENUE__WS_URL=live_sim.ws_url,
        KMM__VENUE__SUBACCOUNT="5",
        KMM__AUTH__KEY_ID=live_sim.key_id,
        KMM__AUTH__PRIVATE_KEY_PATH=str(live_sim.private_key_path),
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kmm", "run", "--duration", "5", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), 60)

    assert process.returncode == 2, err
    assert err.decode().strip().splitlines() == [
        "kmm: venue.subaccount: the venue refused subaccount 5: 404 not_found: "
        "subaccount 5 not found (create it with POST /portfolio/subaccounts)"
    ]
    assert engine_orders(live_sim) == []


def engine_orders(sim: SimServer) -> list[Any]:
    return list(sim.venue.engine.orders_of(sim.user_id))


async def test_the_probe_places_and_cancels_its_order_in_the_configured_subaccount(
    live_sim: SimServer,
) -> None:
    live_sim.fund_subaccount(3, FUNDS)
    target = probe.Target(
        "the sim", live_sim.rest_url, live_sim.ws_url, live_sim.key_id,
        load_private_key(live_sim.private_key_path), trading_allowed=True, subaccount=3,
    )  # fmt: skip

    checks = await probe.probe(target)

    assert all(c.ok for c in checks), checks
    engine = live_sim.venue.engine
    assert [o.status for o in engine.orders_of(live_sim.user_id, 3)] == [OrderStatus.CANCELED]
    assert engine.orders_of(live_sim.user_id, 0) == []
