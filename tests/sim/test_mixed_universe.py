"""``kmm sim --scenario mixed --markets N`` over real HTTP: a universe worth choosing from,
listed as Kalshi lists it (combos behind ``mve_filter``, scalar markets by ``market_type``,
volume and open interest that include what traded before the exchange started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kmm.sim.server import SimOptions, SimServer
from kmm.types import format_count, parse_count
from tests.sim.conftest import SignedClient, make_options

pytestmark = pytest.mark.asyncio


@pytest.fixture
def sim_options(sim_state_dir: Path) -> SimOptions:
    return make_options(sim_state_dir, scenario="mixed", markets=120)


async def all_markets(client: SignedClient, **params: str) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    cursor = ""
    while True:
        query = {"limit": "50", **params}
        if cursor:
            query["cursor"] = cursor
        status, body = await client.get("/markets", params=query)
        assert status == 200, body
        found.extend(body["markets"])
        cursor = body.get("cursor") or ""
        if not cursor:
            return found


async def test_mve_filter_splits_combos_from_the_rest(sim: SimServer, client: SignedClient) -> None:
    combos = {m.ticker for m in sim.venue.universe.markets if m.mve_collection_ticker}

    every = await all_markets(client)
    only = await all_markets(client, mve_filter="only")
    without = await all_markets(client, mve_filter="exclude")

    assert len(every) == 120
    assert {m["ticker"] for m in only} == combos
    assert all(m["mve_collection_ticker"] == "KXMVESIM-R" for m in only)
    assert all(len(m["mve_selected_legs"]) == 2 for m in only)  # type: ignore[arg-type]
    assert {m["ticker"] for m in without} == {m["ticker"] for m in every} - combos
    assert all("mve_collection_ticker" not in m for m in without)


async def test_a_bad_mve_filter_is_a_400_naming_it(client: SignedClient) -> None:
    status, body = await client.get("/markets", params={"mve_filter": "some"})

    assert status == 400
    assert "mve_filter" in body["error"]["details"]


async def test_scalar_markets_say_so_and_volume_counts_what_traded_before(
    sim: SimServer, client: SignedClient
) -> None:
    markets = {m.ticker: m for m in sim.venue.universe.markets}

    listed = await all_markets(client)

    types = {str(m["market_type"]) for m in listed}
    assert types == {"binary", "scalar"}
    for row in listed:
        market = markets[str(row["ticker"])]
        assert row["market_type"] == market.market_type
        assert row["volume_24h_fp"] == format_count(market.prior_volume_24h)
        assert row["open_interest_fp"] == format_count(market.prior_open_interest)
        assert parse_count(str(row["volume_fp"])) >= parse_count(str(row["volume_24h_fp"]))


async def test_series_carry_many_categories(sim: SimServer, client: SignedClient) -> None:
    status, body = await client.get("/series")

    assert status == 200
    categories = {s["category"] for s in body["series"]}
    assert len(categories) >= 8
