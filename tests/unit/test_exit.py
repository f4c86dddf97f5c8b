"""The exit planner: one reduce-only order, priced from the book, never past its limit."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kmm.book.grid import PriceGrid
from kmm.strategy.exit import ExitPlan, ExitStyle, exit_quote
from kmm.types import Quote

GRID = PriceGrid.linear_cent()
C = 100  # one cent in $0.0001 units
TAKE = ExitPlan(ExitStyle.TAKE, 5 * C, anchor=50.0 * C)
PASSIVE = ExitPlan(ExitStyle.PASSIVE, 5 * C, anchor=50.0 * C)


def quote(position: int, book: tuple[int | None, ...], plan: ExitPlan, cap: int = 10_000) -> Quote:
    best_bid, best_ask, touch_bid, touch_ask = book
    return exit_quote("M", position, (best_bid, best_ask, touch_bid, touch_ask), plan, GRID, cap)


def test_a_long_position_is_sold_at_others_best_bid_when_taking() -> None:
    got = quote(1000, (49 * C, 51 * C, 49 * C, 51 * C), TAKE)
    assert got == Quote("M", None, 0, 49 * C, 1000)


def test_a_short_position_is_bought_at_others_best_ask_when_taking() -> None:
    got = quote(-700, (49 * C, 51 * C, 49 * C, 51 * C), TAKE)
    assert got == Quote("M", 51 * C, 700, None, 0)


def test_a_take_never_goes_past_the_slippage_limit() -> None:
    # the bid fell to 40c: a sale rests at the limit, 50c - 5c, and waits
    assert quote(1000, (40 * C, 42 * C, 40 * C, 42 * C), TAKE).ask_price == 45 * C
    # the ask rose to 60c: a purchase rests at 55c
    assert quote(-1000, (58 * C, 60 * C, 58 * C, 60 * C), TAKE).bid_price == 55 * C


def test_a_passive_sale_steps_one_tick_inside_others_ask_and_never_crosses() -> None:
    assert quote(1000, (48 * C, 52 * C, 48 * C, 52 * C), PASSIVE).ask_price == 51 * C
    # one-tick spread: join the ask, stay above the bid (post-only)
    assert quote(1000, (49 * C, 50 * C, 49 * C, 50 * C), PASSIVE).ask_price == 50 * C


def test_a_passive_purchase_steps_one_tick_inside_others_bid() -> None:
    assert quote(-1000, (48 * C, 52 * C, 48 * C, 52 * C), PASSIVE).bid_price == 49 * C


def test_a_passive_sale_is_held_at_the_limit_when_the_market_falls() -> None:
    assert quote(1000, (30 * C, 33 * C, 30 * C, 33 * C), PASSIVE).ask_price == 45 * C


def test_with_no_one_to_take_from_a_take_rests_passively() -> None:
    assert quote(1000, (None, 53 * C, None, 53 * C), TAKE).ask_price == 52 * C
    assert quote(1000, (None, None, None, None), TAKE).ask_price == 50 * C


def test_our_own_orders_are_not_taken_and_not_crossed() -> None:
    # our leftover bid at 49c is the whole book's best; others bid 47c
    got = quote(1000, (49 * C, 51 * C, 47 * C, 51 * C), TAKE)
    assert got.ask_price == 47 * C
    got = quote(1000, (49 * C, 51 * C, 47 * C, 51 * C), PASSIVE)
    assert got.ask_price == 50 * C


def test_the_size_is_the_position_capped_at_the_largest_order() -> None:
    assert quote(2550, (49 * C, 51 * C, 49 * C, 51 * C), TAKE, cap=1000).ask_qty == 1000
    assert quote(55, (49 * C, 51 * C, 49 * C, 51 * C), TAKE).ask_qty == 55


def test_nothing_is_sent_without_a_position_or_an_anchor() -> None:
    book = (49 * C, 51 * C, 49 * C, 51 * C)
    assert quote(0, book, TAKE) == Quote("M", None, 0, None, 0)
    assert quote(100, book, ExitPlan(ExitStyle.TAKE, 5 * C)) == Quote("M", None, 0, None, 0)


def test_the_limit_rounds_in_our_favour_and_stays_on_the_grid() -> None:
    plan = ExitPlan(ExitStyle.TAKE, 250, anchor=5050.0)  # 50.5c - 2.5c = 48c
    assert plan.limit(True, GRID) == 4800
    assert plan.limit(False, GRID) == 5300
    far = ExitPlan(ExitStyle.TAKE, 9000, anchor=5000.0)
    assert far.limit(True, GRID) == GRID.min_price
    assert far.limit(False, GRID) == GRID.max_price


_prices = st.integers(1, 99).map(lambda c: c * C)


@given(
    position=st.integers(-5000, 5000).filter(bool),
    bid=st.none() | _prices,
    spread=st.integers(1, 20),
    anchor=st.integers(100, 9900),
    slippage=st.integers(0, 3000),
    style=st.sampled_from(ExitStyle),
)
def test_the_exit_order_reduces_within_its_limit_and_a_passive_one_never_crosses(
    position: int, bid: int | None, spread: int, anchor: int, slippage: int, style: ExitStyle
) -> None:
    ask = None if bid is None or bid + spread * C > 99 * C else bid + spread * C
    plan = ExitPlan(style, slippage, anchor=float(anchor))
    got = quote(position, (bid, ask, bid, ask), plan)
    if position > 0:
        assert got.bid_price is None
        assert got.ask_price is not None and GRID.is_valid(got.ask_price)
        assert got.ask_price >= anchor - slippage - 1e-9 or got.ask_price == GRID.min_price
        assert 0 < got.ask_qty <= position
        if style is ExitStyle.PASSIVE and bid is not None:
            assert got.ask_price > bid
    else:
        assert got.ask_price is None
        assert got.bid_price is not None and GRID.is_valid(got.bid_price)
        assert got.bid_price <= anchor + slippage + 1e-9 or got.bid_price == GRID.max_price
        assert 0 < got.bid_qty <= -position
        if style is ExitStyle.PASSIVE and ask is not None:
            assert got.bid_price < ask
