"""Tests of the scoreboard's baseline quoters (kmm.strategy.baselines)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from kmm.book.grid import PriceGrid
from kmm.strategy.baselines import QUOTERS, fixed_spread, hbot_avellaneda_stoikov, join_touch
from kmm.strategy.quoter import QuoteInputs, StrategyParams, compute_quote
from kmm.types import ONE_DOLLAR, Quote

GRID = PriceGrid.linear_cent()
PARAMS = StrategyParams()


def _inputs(
    fair: float | None = 5000.0,
    best_bid: int | None = 4900,
    best_ask: int | None = 5100,
    inventory: int = 0,
    tau_s: float = 3600.0,
    sigma: float = 0.001,
    kappa: float = 150.0,
) -> QuoteInputs:
    return QuoteInputs(fair, best_bid, best_ask, inventory, tau_s, sigma, kappa)


def test_every_quoter_is_named_and_kmm_is_the_default_one() -> None:
    assert list(QUOTERS) == ["kmm", "fixed", "join", "hbot_as"]
    assert QUOTERS["kmm"] is compute_quote


def test_the_fixed_baseline_quotes_k_ticks_either_side_of_the_fair_price() -> None:
    quote = fixed_spread("KX", _inputs(fair=5050.0, best_bid=4800, best_ask=5300), PARAMS, GRID)

    # 50.5¢: floor 50¢ - 2 ticks = 48¢, ceil 51¢ + 2 ticks = 53¢; no skew with inventory
    assert quote == Quote("KX", 4800, 500, 5300, 500)
    long = fixed_spread(
        "KX", _inputs(fair=5050.0, best_bid=4800, best_ask=5300, inventory=2000), PARAMS, GRID
    )
    assert (long.bid_price, long.ask_price) == (4800, 5300)


def test_the_fixed_baseline_stays_post_only_in_a_tight_book() -> None:
    quote = fixed_spread("KX", _inputs(fair=5000.0, best_bid=4900, best_ask=5000), PARAMS, GRID)

    assert quote.bid_price == 4800 and quote.ask_price == 5200  # outside the touch anyway
    tight = fixed_spread(
        "KX",
        _inputs(fair=5000.0, best_bid=4990, best_ask=5010),
        StrategyParams(baseline_ticks=1),
        GRID,
    )
    assert tight.bid_price is not None and tight.ask_price is not None
    assert tight.bid_price < 5010 and tight.ask_price > 4990


def test_the_join_baseline_joins_the_touch_and_skews_linearly_with_inventory() -> None:
    flat = join_touch("KX", _inputs(best_bid=4700, best_ask=5300), PARAMS, GRID)
    long = join_touch("KX", _inputs(best_bid=4700, best_ask=5300, inventory=1000), PARAMS, GRID)
    short = join_touch("KX", _inputs(best_bid=4700, best_ask=5300, inventory=-1500), PARAMS, GRID)

    assert (flat.bid_price, flat.ask_price) == (4700, 5300)
    assert (long.bid_price, long.ask_price) == (4500, 5100)  # 10 contracts / 5 = 2 ticks down
    assert (short.bid_price, short.ask_price) == (5000, 5600)  # 15 / 5 = 3 ticks up


def test_the_join_baseline_needs_both_sides_of_the_book() -> None:
    assert join_touch("KX", _inputs(best_ask=None), PARAMS, GRID) == Quote("KX", None, 0, None, 0)


def test_the_hbot_baseline_does_not_bound_sigma_near_the_edges_as_kmm_does() -> None:
    # at 3¢ kmm bounds σ by the binary shape and quotes one side; the textbook one does not
    edge = _inputs(fair=300.0, best_bid=200, best_ask=400, sigma=0.01)

    kmm = compute_quote("KX", edge, PARAMS, GRID)
    hbot = hbot_avellaneda_stoikov("KX", edge, PARAMS, GRID)

    # kmm: the extreme band keeps only the bid. hbot: γσ²τ puts 18¢ in the spread, its bid falls
    # below $0 and only an ask at 3¢ + 9.7¢ is left: it sells the cheap side
    assert kmm.bid_price is not None and kmm.ask_price is None
    assert hbot.bid_price is None and hbot.ask_price == 1300


@settings(max_examples=200)
@given(
    st.sampled_from(list(QUOTERS.values())),
    st.integers(100, 9800),
    st.integers(1, 500),
    st.integers(-6000, 6000),
)
def test_every_quoter_keeps_post_only_prices_on_the_grid_and_sizes_within_the_cap(
    quoter: object, bid: int, width: int, inventory: int
) -> None:
    bid = bid // 100 * 100
    ask = min(bid + max(width // 100, 1) * 100, ONE_DOLLAR - 100)
    inputs = _inputs(fair=(bid + ask) / 2, best_bid=bid, best_ask=ask, inventory=inventory)

    quote = quoter("KX", inputs, PARAMS, GRID)  # type: ignore[operator]

    if quote.bid_price is not None:
        assert GRID.is_valid(quote.bid_price) and quote.bid_price < ask
        assert quote.bid_qty > 0 and inventory + quote.bid_qty <= PARAMS.max_position
    if quote.ask_price is not None:
        assert GRID.is_valid(quote.ask_price) and quote.ask_price > bid
        assert quote.ask_qty > 0 and inventory - quote.ask_qty >= -PARAMS.max_position
    if quote.bid_price is not None and quote.ask_price is not None:
        assert quote.bid_price < quote.ask_price
