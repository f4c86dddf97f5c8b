from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmm.book.grid import PriceGrid
from kmm.types import ONE_CENT, ONE_DOLLAR, Price, parse_price

Band = tuple[Price, Price, Price]


def tapered(edge: str, centre: str, low: str = "0.10", high: str = "0.90") -> list[Band]:
    """Three bands: ``edge`` step below ``low`` and above ``high``, ``centre`` step between."""
    lo, hi = parse_price(low), parse_price(high)
    return [
        (0, lo, parse_price(edge)),
        (lo, hi, parse_price(centre)),
        (hi, ONE_DOLLAR, parse_price(edge)),
    ]


def uniform(step: str) -> list[Band]:
    return [(0, ONE_DOLLAR, parse_price(step))]


# Every structure in KALSHI.md §8.1 (and the docs' fixed_point_migration table)
STRUCTURES: dict[str, list[Band]] = {
    "linear_cent": uniform("0.01"),
    "deci_cent": uniform("0.001"),
    "tapered_deci_cent": tapered("0.001", "0.01"),
    "center_whole_edge_half_cent": tapered("0.005", "0.01"),
    "center_whole_edge_quint_cent": tapered("0.002", "0.01"),
    "center_half_edge_half_cent": uniform("0.005"),
    "center_half_edge_quint_cent": tapered("0.002", "0.005"),
    "center_half_edge_deci_cent": tapered("0.001", "0.005"),
    "center_quint_edge_quint_cent": uniform("0.002"),
    "center_quint_edge_deci_cent": tapered("0.001", "0.002"),
    "center_centi_edge_centi_cent": uniform("0.0001"),
    "center_deci_edge_centi_cent": tapered("0.0001", "0.001", low="0.01", high="0.99"),
}
NAMES = sorted(STRUCTURES)


def brute_valid(bands: list[Band]) -> list[Price]:
    """Every valid price, by enumerating each band's steps from its start."""
    prices = {p for start, end, step in bands for p in range(start, end + 1, step)}
    return sorted(prices - {0, ONE_DOLLAR})


VALID = {name: brute_valid(bands) for name, bands in STRUCTURES.items()}
GRIDS = {name: PriceGrid.from_ranges(bands) for name, bands in STRUCTURES.items()}


# Validity


@pytest.mark.parametrize("name", NAMES)
def test_validity_matches_the_enumerated_grid_for_every_price(name: str) -> None:
    grid, valid = GRIDS[name], set(VALID[name])

    wrong = [p for p in range(-1, ONE_DOLLAR + 2) if grid.is_valid(p) != (p in valid)]

    assert wrong == []


@pytest.mark.parametrize("name", NAMES)
def test_min_and_max_are_the_extreme_valid_prices(name: str) -> None:
    grid = GRIDS[name]

    assert (grid.min_price, grid.max_price) == (VALID[name][0], VALID[name][-1])


@pytest.mark.parametrize("name", NAMES)
def test_whole_cent_prices_are_valid_in_every_structure(name: str) -> None:
    grid = GRIDS[name]

    assert all(grid.is_valid(p) for p in range(ONE_CENT, ONE_DOLLAR, ONE_CENT))


def test_zero_and_one_dollar_are_never_valid() -> None:
    for grid in GRIDS.values():
        assert not grid.is_valid(0)
        assert not grid.is_valid(ONE_DOLLAR)


def test_a_shared_boundary_is_valid_and_counted_once() -> None:
    grid = GRIDS["tapered_deci_cent"]

    assert grid.is_valid(1000)
    # 1..99 tenths of a cent below 10¢, 10¢..90¢ in cents, then 90.1¢..99.9¢
    assert grid.rank(grid.max_price) == 99 + 81 + 99


def test_the_linear_cent_grid_runs_from_one_to_ninety_nine_cents() -> None:
    grid = PriceGrid.linear_cent()

    assert (grid.min_price, grid.max_price) == (100, 9900)
    assert grid == GRIDS["linear_cent"]
    assert grid.is_valid(4200)
    assert not grid.is_valid(4250)


def test_a_band_counts_steps_from_its_own_start() -> None:
    grid = PriceGrid.from_ranges([(0, 1050, 100), (1050, ONE_DOLLAR, 200)])

    assert grid.is_valid(1000)
    assert grid.is_valid(1050)
    assert grid.is_valid(1250)
    assert not grid.is_valid(1200)


# Rounding


@pytest.mark.parametrize(
    ("name", "price", "floor", "ceil"),
    [
        ("linear_cent", 4250, 4200, 4300),
        ("linear_cent", 4200, 4200, 4200),
        ("linear_cent", 50, None, 100),
        ("linear_cent", 9950, 9900, None),
        ("tapered_deci_cent", 995, 990, 1000),
        ("tapered_deci_cent", 1005, 1000, 1100),
        ("tapered_deci_cent", 8995, 8900, 9000),
        ("tapered_deci_cent", 9005, 9000, 9010),
        ("center_deci_edge_centi_cent", 3, 3, 3),
        ("center_deci_edge_centi_cent", 105, 100, 110),
        ("center_deci_edge_centi_cent", 0, None, 1),
        ("center_deci_edge_centi_cent", ONE_DOLLAR, 9999, None),
    ],
)
def test_floor_and_ceil_snap_onto_the_band_containing_the_price(
    name: str, price: Price, floor: Price | None, ceil: Price | None
) -> None:
    grid = GRIDS[name]

    assert (grid.floor(price), grid.ceil(price)) == (floor, ceil)


def test_rounding_skips_a_gap_between_bands() -> None:
    grid = PriceGrid.from_ranges([(0, 2000, 500), (6000, ONE_DOLLAR, 1000)])

    assert grid.floor(4000) == 2000
    assert grid.ceil(4000) == 6000
    assert grid.ticks_between(2000, 6000) == 1
    assert grid.offset(2000, 1) == 6000


@settings(max_examples=200)
@given(name=st.sampled_from(NAMES), price=st.integers(min_value=-10, max_value=ONE_DOLLAR + 10))
def test_floor_and_ceil_are_the_nearest_valid_prices_either_side(name: str, price: Price) -> None:
    grid, valid = GRIDS[name], VALID[name]

    low, high = grid.floor(price), grid.ceil(price)

    below = [p for p in valid if p <= price]
    above = [p for p in valid if p >= price]
    assert low == (below[-1] if below else None)
    assert high == (above[0] if above else None)
    if low is not None:
        assert low <= price and grid.is_valid(low)
    if high is not None:
        assert price <= high and grid.is_valid(high)


# Ticks


def test_tick_at_gives_the_step_of_the_band_holding_the_price() -> None:
    grid = GRIDS["tapered_deci_cent"]

    assert grid.tick_at(550) == 10
    assert grid.tick_at(5000) == 100
    assert grid.tick_at(9500) == 10


def test_tick_at_a_shared_boundary_is_the_upper_bands_step() -> None:
    grid = GRIDS["tapered_deci_cent"]

    assert grid.tick_at(1000) == 100
    assert grid.tick_at(9000) == 10
    assert grid.tick_at(ONE_DOLLAR) == 10


def test_tick_at_a_price_in_no_band_raises() -> None:
    grid = PriceGrid.from_ranges([(0, 2000, 500), (6000, ONE_DOLLAR, 1000)])

    with pytest.raises(ValueError, match="price 4000 lies in no band"):
        grid.tick_at(4000)
    with pytest.raises(ValueError, match="price -1"):
        grid.tick_at(-1)


def test_ticks_between_counts_steps_across_bands() -> None:
    grid = GRIDS["tapered_deci_cent"]

    assert grid.ticks_between(990, 1100) == 2  # 99¢/10 -> 1000 -> 1100
    assert grid.ticks_between(1100, 990) == -2
    assert grid.ticks_between(4200, 4200) == 0
    assert grid.ticks_between(1000, 9000) == 80


def test_ticks_between_counts_valid_prices_passed_for_off_grid_prices() -> None:
    grid = PriceGrid.linear_cent()

    assert grid.ticks_between(4250, 4450) == 2  # 43¢ and 44¢


def test_offset_moves_by_whole_grid_steps_in_either_direction() -> None:
    grid = GRIDS["tapered_deci_cent"]

    assert grid.offset(1000, 1) == 1100
    assert grid.offset(1000, -1) == 990
    assert grid.offset(4200, 0) == 4200


def test_offset_from_an_off_grid_price_goes_to_the_next_valid_price_that_way() -> None:
    grid = PriceGrid.linear_cent()

    assert grid.offset(4250, 1) == 4300
    assert grid.offset(4250, -1) == 4200
    assert grid.offset(4250, 0) == 4200


def test_offset_off_either_end_of_the_grid_is_none() -> None:
    grid = PriceGrid.linear_cent()

    assert grid.offset(9900, 1) is None
    assert grid.offset(100, -1) is None
    assert grid.offset(50, 0) is None


@settings(max_examples=200)
@given(
    name=st.sampled_from(NAMES),
    i=st.integers(min_value=0, max_value=10**4),
    j=st.integers(min_value=0, max_value=10**4),
)
def test_steps_between_valid_prices_are_the_difference_of_their_positions(
    name: str, i: int, j: int
) -> None:
    grid, valid = GRIDS[name], VALID[name]
    i, j = i % len(valid), j % len(valid)

    assert grid.ticks_between(valid[i], valid[j]) == j - i
    assert grid.offset(valid[i], j - i) == valid[j]


# Construction


@pytest.mark.parametrize(
    ("ranges", "words"),
    [
        ([], "empty"),
        ([(0, ONE_DOLLAR, 0)], "band 0 .*step must be positive"),
        ([(0, ONE_DOLLAR, -100)], "band 0 .*step must be positive"),
        ([(5000, 5000, 100)], "band 0 .*start must be below end"),
        ([(0, 1000, 10), (2000, 1500, 100)], "band 1 .*start must be below end"),
        ([(-100, 1000, 10)], r"band 0 .*within \[0, 10000\]"),
        ([(0, ONE_DOLLAR + 100, 100)], "band 0 .*within"),
        ([(0, 1000, 10), (900, ONE_DOLLAR, 100)], "band 1 .*overlaps"),
        ([(9000, ONE_DOLLAR, 10), (0, 1000, 10)], "band 1 .*overlaps or precedes"),
        ([(0, 50, 100)], "no valid price"),
    ],
)
def test_malformed_ranges_are_refused_naming_the_band(ranges: list[Band], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        PriceGrid.from_ranges(ranges)


def test_grids_from_the_same_ranges_are_equal_and_hash_alike() -> None:
    a = PriceGrid.from_ranges(STRUCTURES["tapered_deci_cent"])
    b = PriceGrid.from_ranges(list(STRUCTURES["tapered_deci_cent"]))

    assert a == b
    assert hash(a) == hash(b)
    assert a != GRIDS["deci_cent"]


# Band updates from the stream must tile the whole dollar


@pytest.mark.parametrize("name", NAMES)
def test_every_kalshi_structure_tiles_the_dollar(name: str) -> None:
    grid = PriceGrid.from_ranges(STRUCTURES[name], whole=True)

    assert grid == GRIDS[name]


def test_a_gap_between_bands_is_refused_only_where_the_bands_must_tile_the_dollar() -> None:
    gapped = [(0, 4000, 100), (5000, ONE_DOLLAR, 100)]

    assert not PriceGrid.from_ranges(gapped).is_valid(4500)
    with pytest.raises(ValueError, match="gap"):
        PriceGrid.from_ranges(gapped, whole=True)


@pytest.mark.parametrize(
    ("ranges", "words"),
    [
        ([(0, 4000, 100), (5000, ONE_DOLLAR, 100)], "band 1 .*leaves a gap after 4000"),
        ([(100, ONE_DOLLAR, 100)], "band 0 .*does not start at 0"),
        ([(0, 9000, 100)], "end at 9000, short of 10000"),
        ([(0, ONE_DOLLAR, 0)], "step must be positive"),
        ([(0, 6000, 100), (5000, ONE_DOLLAR, 100)], "overlaps"),
    ],
)
def test_a_whole_grid_refuses_gaps_short_bands_and_every_malformed_band(
    ranges: list[Band], words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        PriceGrid.from_ranges(ranges, whole=True)
