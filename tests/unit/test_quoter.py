from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmm.book.grid import PriceGrid
from kmm.errors import ConfigError
from kmm.strategy.quoter import QuoteInputs, StrategyParams, compute_quote, quote_bands
from kmm.types import ONE_DOLLAR, Quote

LINEAR_CENT = PriceGrid.linear_cent()
TAPERED_DECI_CENT = PriceGrid.from_ranges(
    [(0, 1000, 10), (1000, 9000, 100), (9000, ONE_DOLLAR, 10)]
)
CENTI_CENT = PriceGrid.from_ranges([(0, ONE_DOLLAR, 1)])
DEFAULTS = StrategyParams()
NO_BANDS = StrategyParams(extreme_low=0, extreme_high=ONE_DOLLAR)
ARRIVAL_TERM = 4.0 * math.log(1.01)  # (2/γ)·ln(1 + γ/κ) at γ = 0.5, κ = 50
# κ = 1000 with no time left: half-spread (1/γ)·ln(1 + γ/κ) = 2·ln(1.0005) ≈ $0.0009998
NARROW = {"tau_s": 0.0, "kappa": 1000.0}


def _inputs(
    fair: float | None = 5000.0,
    best_bid: int | None = 4900,
    best_ask: int | None = 5100,
    inventory: int = 0,
    tau_s: float = 3600.0,
    sigma: float = 0.001,
    kappa: float = 50.0,
    maker_fee_rate: float = 0.0,
    alpha_skew: float = 0.0,
) -> QuoteInputs:
    return QuoteInputs(
        fair=fair,
        best_bid=best_bid,
        best_ask=best_ask,
        inventory=inventory,
        tau_s=tau_s,
        sigma=sigma,
        kappa=kappa,
        maker_fee_rate=maker_fee_rate,
        alpha_skew=alpha_skew,
    )


def test_a_flat_book_is_quoted_symmetrically_around_fair() -> None:
    # half-spread 0.5 × (0.0018 + 0.0398) = $0.0208: 47.92¢ → 47¢, 52.08¢ → 53¢
    quote = compute_quote("KX", _inputs(), DEFAULTS, LINEAR_CENT)

    assert quote == Quote("KX", 4700, 500, 5300, 500)


def test_a_long_inventory_moves_both_quotes_down_and_shrinks_the_bid() -> None:
    flat = compute_quote("KX", _inputs(), DEFAULTS, CENTI_CENT)

    # 10 contracts: r moves 1.8¢ down; bid size 500·e^(−0.5) = 303 → 300
    long = compute_quote("KX", _inputs(inventory=1000), DEFAULTS, CENTI_CENT)

    assert flat.bid_price is not None and long.bid_price is not None
    assert flat.ask_price is not None and long.ask_price is not None
    assert flat.bid_price - long.bid_price == pytest.approx(180, abs=1)
    assert flat.ask_price - long.ask_price == pytest.approx(180, abs=1)
    assert (long.bid_qty, long.ask_qty) == (300, 500)


def test_a_short_inventory_moves_both_quotes_up_and_shrinks_the_ask() -> None:
    quote = compute_quote("KX", _inputs(inventory=-1000), DEFAULTS, LINEAR_CENT)

    # r = 51.8¢: 49.72¢ → 49¢ and 53.88¢ → 54¢
    assert quote == Quote("KX", 4900, 500, 5400, 300)


def test_at_the_position_cap_the_side_that_adds_is_not_quoted() -> None:
    long = compute_quote("KX", _inputs(inventory=5000), DEFAULTS, LINEAR_CENT)
    short = compute_quote("KX", _inputs(inventory=-5000), DEFAULTS, LINEAR_CENT)

    assert (long.bid_price, long.bid_qty) == (None, 0)
    assert long.ask_price is not None and long.ask_qty == 500
    assert (short.ask_price, short.ask_qty) == (None, 0)
    assert short.bid_price is not None and short.bid_qty == 500


def test_sizes_are_clipped_to_the_room_under_the_cap_then_rounded_to_a_lot() -> None:
    params = replace(NO_BANDS, eta=0.0, base_qty=1000, max_position=5000, max_order_qty=2500)

    long = compute_quote("KX", _inputs(inventory=4350), params, LINEAR_CENT)
    short = compute_quote("KX", _inputs(inventory=-4350), params, LINEAR_CENT)

    assert (long.bid_qty, long.ask_qty) == (600, 1000)  # 650 of room, down to a whole contract
    assert (short.bid_qty, short.ask_qty) == (1000, 600)


def test_no_quote_is_larger_than_the_order_cap() -> None:
    params = replace(DEFAULTS, base_qty=4000, max_order_qty=2500)

    quote = compute_quote("KX", _inputs(), params, LINEAR_CENT)

    assert (quote.bid_qty, quote.ask_qty) == (2500, 2500)


def test_a_size_that_rounds_to_nothing_is_not_quoted() -> None:
    params = replace(DEFAULTS, base_qty=150, eta=0.5)

    quote = compute_quote("KX", _inputs(inventory=100), params, LINEAR_CENT)  # 150·e^(−0.5) = 90

    assert (quote.bid_price, quote.bid_qty) == (None, 0)
    assert quote.ask_qty == 100


def test_near_the_close_the_spread_narrows_to_the_arrival_term() -> None:
    far = compute_quote("KX", _inputs(), DEFAULTS, CENTI_CENT)

    near = compute_quote("KX", _inputs(tau_s=0.0, inventory=1000), DEFAULTS, CENTI_CENT)

    assert near.bid_price is not None and near.ask_price is not None
    assert far.bid_price is not None and far.ask_price is not None
    width = near.ask_price - near.bid_price
    assert 0 <= width - ARRIVAL_TERM * ONE_DOLLAR < 2
    assert width < far.ask_price - far.bid_price
    assert (near.bid_price + near.ask_price) / 2 == 5000  # no time left, no inventory skew


def test_time_beyond_the_horizon_is_capped() -> None:
    at_horizon = compute_quote("KX", _inputs(tau_s=3600.0, inventory=1000), DEFAULTS, CENTI_CENT)

    months_away = compute_quote("KX", _inputs(tau_s=1e7, inventory=1000), DEFAULTS, CENTI_CENT)

    assert months_away == at_horizon


def test_a_maker_fee_series_widens_the_half_spread_to_the_fee_plus_the_edge() -> None:
    params = replace(DEFAULTS, edge=50)
    free = compute_quote("KX", _inputs(**NARROW), params, CENTI_CENT)

    # maker fee at 50¢: 0.0175 × 0.25 = $0.004375; plus the $0.005 edge = $0.009375
    charged = compute_quote("KX", _inputs(maker_fee_rate=0.0175, **NARROW), params, CENTI_CENT)

    assert (free.bid_price, free.ask_price) == (4940, 5060)  # model 0.1¢ + edge 0.5¢
    assert (charged.bid_price, charged.ask_price) == (4906, 5094)


def test_the_edge_widens_the_model_half_spread() -> None:
    plain = compute_quote("KX", _inputs(), DEFAULTS, CENTI_CENT)

    wider = compute_quote("KX", _inputs(), replace(DEFAULTS, edge=100), CENTI_CENT)

    assert (plain.bid_price, plain.ask_price) == (4791, 5209)
    assert (wider.bid_price, wider.ask_price) == (4691, 5309)


def test_the_fee_floor_does_not_narrow_a_wider_model_spread() -> None:
    quote = compute_quote("KX", _inputs(maker_fee_rate=0.0175), DEFAULTS, LINEAR_CENT)

    assert (quote.bid_price, quote.ask_price) == (4700, 5300)


@pytest.mark.parametrize(
    ("fair", "inventory", "bid_quoted", "ask_quoted"),
    [
        (300.0, 0, True, False),  # cheap YES: only buy it
        (300.0, 200, False, True),  # ... unless long, then only sell
        (300.0, -200, True, False),
        (9700.0, 0, False, True),  # dear YES: only sell it
        (9700.0, -200, True, False),  # ... unless short, then only buy
        (9700.0, 200, False, True),
    ],
)
def test_in_the_extreme_bands_one_side_only_is_quoted(
    fair: float, inventory: int, bid_quoted: bool, ask_quoted: bool
) -> None:
    book = {"best_bid": int(fair) - 100, "best_ask": int(fair) + 100}

    quote = compute_quote(
        "KX", _inputs(fair, inventory=inventory, **book, **NARROW), DEFAULTS, LINEAR_CENT
    )

    assert (quote.bid_price is not None, quote.ask_price is not None) == (bid_quoted, ask_quoted)
    assert (quote.bid_qty > 0, quote.ask_qty > 0) == (bid_quoted, ask_quoted)


def test_extreme_bands_can_be_disabled() -> None:
    quote = compute_quote("KX", _inputs(300.0, 200, 400, **NARROW), NO_BANDS, LINEAR_CENT)

    assert (quote.bid_price, quote.ask_price) == (200, 400)


def test_the_alpha_skew_shifts_both_quotes() -> None:
    plain = compute_quote("KX", _inputs(), DEFAULTS, CENTI_CENT)

    skewed = compute_quote("KX", _inputs(alpha_skew=150.0), DEFAULTS, CENTI_CENT)

    assert plain.bid_price is not None and skewed.bid_price is not None
    assert plain.ask_price is not None and skewed.ask_price is not None
    assert skewed.bid_price - plain.bid_price == 150
    assert skewed.ask_price - plain.ask_price == 150


def test_quotes_stay_within_one_tick_and_one_dollar_less_one_tick() -> None:
    low = compute_quote("KX", _inputs(150.0, 100, 200, **NARROW), NO_BANDS, LINEAR_CENT)
    high = compute_quote("KX", _inputs(9850.0, 9800, 9900, **NARROW), NO_BANDS, LINEAR_CENT)

    assert (low.bid_price, low.ask_price) == (100, 200)
    assert (high.bid_price, high.ask_price) == (9800, 9900)


def test_a_model_price_off_the_grid_is_not_clamped_onto_it() -> None:
    # half-spread ≈ 2¢ around 1.5¢ and 98.5¢: the model bid is ≈ −0.5¢ and the model ask
    # ≈ 100.5¢; quoting 1¢ or 99¢ instead would be tighter than the model asks for
    low = compute_quote("KX", _inputs(150.0, 100, 200), NO_BANDS, LINEAR_CENT)
    high = compute_quote("KX", _inputs(9850.0, 9800, 9900), NO_BANDS, LINEAR_CENT)

    assert (low.bid_price, low.bid_qty) == (None, 0)
    assert low.ask_price == 400  # model ≈ 3.5¢
    assert (high.ask_price, high.ask_qty) == (None, 0)
    assert high.bid_price == 9600


def test_a_bid_that_would_take_is_pulled_below_a_one_tick_wide_book() -> None:
    quote = compute_quote(
        "KX", _inputs(5050.0, 5000, 5100, alpha_skew=200.0, **NARROW), DEFAULTS, LINEAR_CENT
    )

    assert quote.bid_price == 5000  # model 52.4¢, best ask 51¢
    assert quote.ask_price == 5300


def test_an_ask_that_would_take_is_pulled_above_a_one_tick_wide_book() -> None:
    quote = compute_quote(
        "KX", _inputs(5050.0, 5000, 5100, alpha_skew=-200.0, **NARROW), DEFAULTS, LINEAR_CENT
    )

    assert quote.ask_price == 5100  # model 48.6¢, best bid 50¢
    assert quote.bid_price == 4800


def test_a_bid_landing_exactly_on_the_best_ask_is_pulled_below_it() -> None:
    inputs = _inputs(5050.0, 5000, 5100, alpha_skew=60.0, **NARROW)  # model bid 51.00025¢

    quote = compute_quote("KX", inputs, DEFAULTS, LINEAR_CENT)

    assert quote.bid_price == 5000


def test_an_ask_landing_exactly_on_the_best_bid_is_pulled_above_it() -> None:
    inputs = _inputs(5050.0, 5000, 5100, alpha_skew=-60.0, **NARROW)  # model ask 49.99975¢

    quote = compute_quote("KX", inputs, DEFAULTS, LINEAR_CENT)

    assert quote.ask_price == 5100


def test_the_passive_limit_uses_the_finer_grid_when_there_is_one() -> None:
    quote = compute_quote(
        "KX", _inputs(505.0, 500, 510, alpha_skew=200.0, **NARROW), NO_BANDS, TAPERED_DECI_CENT
    )

    assert quote.bid_price == 500  # one 0.1¢ tick below the best ask


def test_sub_cent_quotes_snap_onto_a_tapered_grid() -> None:
    fine_band = compute_quote("KX", _inputs(500.0, 450, 550, **NARROW), NO_BANDS, TAPERED_DECI_CENT)
    on_cents = compute_quote("KX", _inputs(500.0, 400, 600, **NARROW), NO_BANDS, LINEAR_CENT)

    assert (fine_band.bid_price, fine_band.ask_price) == (490, 510)  # 4.9¢ and 5.1¢
    assert (on_cents.bid_price, on_cents.ask_price) == (400, 600)


def test_a_quote_across_a_band_boundary_snaps_to_each_band() -> None:
    quote = compute_quote("KX", _inputs(1000.0, 950, 1100, **NARROW), NO_BANDS, TAPERED_DECI_CENT)

    assert (quote.bid_price, quote.ask_price) == (990, 1100)  # 9.9¢ fine, 10.1¢ → 11¢


def test_rounding_never_leaves_the_bid_at_or_above_the_ask() -> None:
    params = replace(DEFAULTS, gamma=1e12)  # half-spread of about $5e-11

    quote = compute_quote("KX", _inputs(tau_s=0.0), params, LINEAR_CENT)

    assert (quote.bid_price, quote.ask_price) == (5000, 5100)


@pytest.mark.parametrize(
    "inputs",
    [
        _inputs(fair=None),
        _inputs(best_bid=None, best_ask=None),
        _inputs(fair=math.nan),
        _inputs(tau_s=math.nan),
    ],
)
def test_without_a_fair_price_or_a_book_nothing_is_quoted(inputs: QuoteInputs) -> None:
    quote = compute_quote("KX", inputs, DEFAULTS, LINEAR_CENT)

    assert quote == Quote("KX", None, 0, None, 0)


def test_a_one_sided_book_is_still_quoted() -> None:
    quote = compute_quote("KX", _inputs(best_ask=None), DEFAULTS, LINEAR_CENT)

    assert quote == Quote("KX", 4700, 500, 5300, 500)


def test_an_unusable_kappa_falls_back_to_the_default() -> None:
    estimated = compute_quote("KX", _inputs(kappa=50.0), DEFAULTS, CENTI_CENT)

    assert compute_quote("KX", _inputs(kappa=0.0), DEFAULTS, CENTI_CENT) == estimated
    assert compute_quote("KX", _inputs(kappa=math.nan), DEFAULTS, CENTI_CENT) == estimated


def test_parameters_out_of_range_are_all_reported() -> None:
    with pytest.raises(ConfigError) as info:
        StrategyParams(
            gamma=0.0, lot_qty=0, eta=-1.0, sigma_min=0.01, sigma_max=0.001, extreme_low=9600
        )

    assert len(info.value.problems) == 5


_GRIDS = st.sampled_from([LINEAR_CENT, TAPERED_DECI_CENT, CENTI_CENT])


@st.composite
def _books(draw: st.DrawFn, grid: PriceGrid) -> tuple[int | None, int | None]:
    bid = draw(st.none() | st.integers(grid.min_price, grid.max_price - 1))
    ask_low = grid.min_price if bid is None else bid + 1
    ask = draw(st.none() | st.integers(ask_low, grid.max_price))
    # bid <= ask - 1, so floor(bid) < ceil(ask): the snapped book is never crossed
    return (None if bid is None else grid.floor(bid)), (None if ask is None else grid.ceil(ask))


_PARAMS = st.builds(
    StrategyParams,
    gamma=st.floats(0.01, 1e6),
    horizon_s=st.floats(1.0, 1e5),
    eta=st.floats(0.0, 2.0),
    base_qty=st.integers(0, 5000),
    lot_qty=st.sampled_from([1, 10, 100]),
    max_position=st.integers(0, 10_000),
    max_order_qty=st.integers(0, 5000),
    edge=st.integers(0, 300),
)


@settings(max_examples=400, deadline=None)
@given(
    data=st.data(),
    grid=_GRIDS,
    params=_PARAMS,
    fair=st.floats(0.0, ONE_DOLLAR),
    inventory=st.integers(-20_000, 20_000),
    tau_s=st.floats(-10.0, 1e6),
    sigma=st.floats(0.0, 1.0),
    kappa=st.floats(-1.0, 1e5),
    maker_fee_rate=st.sampled_from([0.0, 0.0175, 0.035]),
    alpha_skew=st.floats(-3000.0, 3000.0),
)
def test_quotes_are_on_the_grid_passive_uncrossed_and_within_every_cap(
    data: st.DataObject,
    grid: PriceGrid,
    params: StrategyParams,
    fair: float,
    inventory: int,
    tau_s: float,
    sigma: float,
    kappa: float,
    maker_fee_rate: float,
    alpha_skew: float,
) -> None:
    best_bid, best_ask = data.draw(_books(grid))
    inputs = QuoteInputs(
        fair, best_bid, best_ask, inventory, tau_s, sigma, kappa, maker_fee_rate, alpha_skew
    )

    quote = compute_quote("KX", inputs, params, grid)

    for price, qty in ((quote.bid_price, quote.bid_qty), (quote.ask_price, quote.ask_qty)):
        assert (price is None) == (qty == 0)
        assert qty >= 0 and qty % params.lot_qty == 0 and qty <= params.max_order_qty
        if price is not None:
            assert grid.is_valid(price) and grid.min_price <= price <= grid.max_price
    if quote.bid_price is not None:
        assert inventory + quote.bid_qty <= params.max_position
        assert best_ask is None or quote.bid_price < best_ask
    if quote.ask_price is not None:
        assert inventory - quote.ask_qty >= -params.max_position
        assert best_bid is None or quote.ask_price > best_bid
    if quote.bid_price is not None and quote.ask_price is not None:
        assert quote.bid_price < quote.ask_price


def _touch(inputs: QuoteInputs, bid: int | None, ask: int | None) -> QuoteInputs:
    return inputs._replace(touch_bid=bid, touch_ask=ask)


def test_a_quote_improves_on_others_touch_by_at_most_improve_ticks() -> None:
    # a 40¢ @ 60¢ book: the model (half-spread ~2.1¢ around 50¢) would bid 47¢ and offer 53¢
    wide = _inputs(best_bid=4000, best_ask=6000)

    free = compute_quote("KX", wide, DEFAULTS, LINEAR_CENT)
    placed = compute_quote("KX", _touch(wide, 4000, 6000), DEFAULTS, LINEAR_CENT)
    joined = compute_quote(
        "KX", _touch(wide, 4000, 6000), replace(DEFAULTS, improve_ticks=0), LINEAR_CENT
    )

    assert (free.bid_price, free.ask_price) == (4700, 5300)
    assert (placed.bid_price, placed.ask_price) == (4100, 5900)
    assert (joined.bid_price, joined.ask_price) == (4000, 6000)


def test_a_model_price_behind_the_touch_is_left_where_it_is() -> None:
    tight = _touch(_inputs(best_bid=4900, best_ask=5100), 4900, 5100)

    quote = compute_quote("KX", tight, DEFAULTS, LINEAR_CENT)

    assert (quote.bid_price, quote.ask_price) == (4700, 5300)


def test_with_no_one_else_on_a_side_there_is_no_touch_to_hold_to() -> None:
    # our own bid is the only bid (touch_bid None): the model's price stands, no creeping up
    alone = _touch(_inputs(best_bid=4000, best_ask=6000), None, 6000)

    quote = compute_quote("KX", alone, DEFAULTS, LINEAR_CENT)

    assert (quote.bid_price, quote.ask_price) == (4700, 5900)


def test_the_total_spread_is_held_between_its_minimum_and_maximum() -> None:
    # the model's total spread is about 4.2¢ around 50¢ (47¢ @ 53¢ on a cent grid)
    wide = replace(DEFAULTS, min_spread=1000)  # at least 10¢: 45¢ @ 55¢
    narrow = replace(DEFAULTS, max_spread=200)  # at most 2¢: 49¢ @ 51¢

    assert compute_quote("KX", _inputs(), wide, LINEAR_CENT)[1::2] == (4500, 5500)
    assert compute_quote("KX", _inputs(), narrow, LINEAR_CENT)[1::2] == (4900, 5100)


def test_the_maximum_spread_never_cuts_inside_the_maker_fee() -> None:
    # a maker fee rate of 0.0175·4 = 0.07 at 50¢ costs 1.75¢ a contract: half-spread >= 1.75¢
    params = replace(DEFAULTS, max_spread=100)
    quote = compute_quote("KX", _inputs(maker_fee_rate=0.07), params, CENTI_CENT)

    assert quote.bid_price is not None and quote.ask_price is not None
    assert quote.bid_price <= 5000 - 175 and quote.ask_price >= 5000 + 175


def test_a_market_narrower_than_the_minimum_market_spread_is_not_quoted() -> None:
    params = replace(DEFAULTS, min_market_spread=300)
    tight = _touch(_inputs(best_bid=4900, best_ask=5100), 4900, 5100)  # a 2¢ book
    wide = _touch(_inputs(best_bid=4800, best_ask=5200), 4800, 5200)  # 4¢
    one_sided = _touch(_inputs(best_bid=4900, best_ask=5100), None, 5100)

    assert compute_quote("KX", tight, params, LINEAR_CENT) == Quote("KX", None, 0, None, 0)
    assert compute_quote("KX", wide, params, LINEAR_CENT).bid_price is not None
    assert compute_quote("KX", one_sided, params, LINEAR_CENT).bid_price is not None


def test_spread_bounds_out_of_order_are_refused() -> None:
    with pytest.raises(ConfigError, match="min_spread, max_spread"):
        StrategyParams(min_spread=500, max_spread=400)


def test_the_bands_that_acted_are_named_for_the_tape() -> None:
    params = replace(DEFAULTS, min_market_spread=300)
    cheap = _inputs(fair=300.0, best_bid=200, best_ask=400)
    dear = _inputs(fair=9700.0, best_bid=9600, best_ask=9800)
    tight = _touch(_inputs(), 4900, 5100)

    assert quote_bands(_inputs(), params) == ""
    assert quote_bands(cheap, params) == "band_low"
    assert compute_quote("KX", cheap, params, LINEAR_CENT).ask_price is None
    assert quote_bands(dear, params) == "band_high"
    assert quote_bands(tight, params) == "narrow"
    assert quote_bands(_inputs(fair=None), params) == ""


def test_a_soft_band_shrinks_the_risky_side_unless_it_reduces_the_position() -> None:
    params = StrategyParams(soft_low=1500, soft_high=8500, soft_size_factor=0.4)
    cheap = _inputs(fair=1000.0, best_bid=900, best_ask=1100)

    flat = compute_quote("KX", cheap, params, LINEAR_CENT)
    assert (flat.bid_qty, flat.ask_qty) == (500, 200)  # selling cheap YES risks the most
    long = compute_quote("KX", cheap._replace(inventory=1000), params, LINEAR_CENT)
    assert long.ask_qty == 500  # the ask sells the long: full size
    dear = compute_quote(
        "KX", _inputs(fair=9000.0, best_bid=8900, best_ask=9100), params, LINEAR_CENT
    )
    assert (dear.bid_qty, dear.ask_qty) == (200, 500)
    assert quote_bands(cheap, params) == "soft_low"
    middle = compute_quote("KX", _inputs(), params, LINEAR_CENT)
    assert (middle.bid_qty, middle.ask_qty) == (500, 500)


def test_inventory_dependent_risk_aversion_skews_a_large_position_harder() -> None:
    plain = StrategyParams(extreme_low=0, extreme_high=ONE_DOLLAR)
    rising = replace(plain, gamma_inventory=2.0)
    small, large = _inputs(inventory=200), _inputs(inventory=2500)  # 2 and 25 of 50 contracts

    def skew(params: StrategyParams, inputs: QuoteInputs) -> float:
        quote = compute_quote("KX", inputs, params, CENTI_CENT)
        assert quote.bid_price is not None and quote.ask_price is not None
        return 5000 - (quote.bid_price + quote.ask_price) / 2

    assert skew(rising, small) == pytest.approx(skew(plain, small), rel=0.1)  # γ·1.08
    assert skew(rising, large) > 1.5 * skew(plain, large)  # γ doubled at half the cap


def test_soft_bands_outside_the_hard_ones_are_refused() -> None:
    with pytest.raises(ConfigError, match="soft_low"):
        StrategyParams(soft_low=400)
    with pytest.raises(ConfigError, match="soft_size_factor"):
        StrategyParams(soft_size_factor=1.5)
