from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmm.book.orderbook import OfiAccumulator, OrderBook
from kmm.errors import BookIntegrityError
from kmm.types import ONE_DOLLAR, Price, Qty

# A Kalshi-shaped book: YES bids at 8¢ and 22¢, NO bids at 54¢ and 56¢ (YES asks 46¢, 44¢)
YES = [(800, 30000), (2200, 33300)]
NO = [(5400, 2000), (5600, 14600)]


def make_book(yes: list[tuple[Price, Qty]] = YES, no: list[tuple[Price, Qty]] = NO) -> OrderBook:
    book = OrderBook("FED-23DEC-T3.00")
    book.apply_snapshot(yes, no)
    return book


def top(book: OrderBook) -> tuple[Price | None, Qty, Price | None, Qty]:
    return book.best_bid, book.best_bid_qty, book.best_ask, book.best_ask_qty


# Snapshots


def test_a_new_book_is_empty_and_untrusted() -> None:
    book = OrderBook("T")

    assert not book.trusted
    assert top(book) == (None, 0, None, 0)


def test_a_snapshot_sets_the_top_of_book_in_yes_prices_and_trusts_the_book() -> None:
    book = make_book()

    assert book.trusted
    assert top(book) == (2200, 33300, ONE_DOLLAR - 5600, 14600)


def test_a_snapshot_replaces_every_level_of_the_previous_book() -> None:
    book = make_book()

    book.apply_snapshot([(1000, 100)], [])

    assert dict(book.yes_levels) == {1000: 100}
    assert dict(book.no_levels) == {}
    assert top(book) == (1000, 100, None, 0)
    assert book.depth(10) == ([(1000, 100)], [])


def test_zero_size_levels_in_a_snapshot_are_ignored() -> None:
    book = make_book(yes=[(800, 0), (900, 100)], no=[(5000, 0)])

    assert dict(book.yes_levels) == {900: 100}
    assert book.best_ask is None


@pytest.mark.parametrize(
    ("yes", "no", "words"),
    [
        ([(800, -1)], [], "level 800 has size -1"),
        ([], [(0, 100)], "price 0"),
        ([(ONE_DOLLAR, 100)], [], f"price {ONE_DOLLAR}"),
        ([(800, 100), (800, 200)], [], "level 800 repeated"),
    ],
)
def test_an_impossible_snapshot_raises_naming_the_level_and_leaves_the_book_alone(
    yes: list[tuple[Price, Qty]], no: list[tuple[Price, Qty]], words: str
) -> None:
    book = make_book()

    with pytest.raises(BookIntegrityError, match=words) as info:
        book.apply_snapshot(yes, no)

    assert info.value.ticker == "FED-23DEC-T3.00"
    assert dict(book.yes_levels) == dict(YES)
    assert top(book) == (2200, 33300, 4400, 14600)


def test_clear_empties_the_book_and_withdraws_trust() -> None:
    book = make_book()

    book.clear()

    assert not book.trusted
    assert top(book) == (None, 0, None, 0)
    assert book.depth(5) == ([], [])


# Deltas


def test_a_delta_below_the_top_changes_the_level_and_not_the_top() -> None:
    book = make_book()

    changed = book.apply_delta(True, 800, -1000)

    assert not changed
    assert book.yes_levels[800] == 29000
    assert top(book) == (2200, 33300, 4400, 14600)


def test_a_size_change_at_the_best_bid_changes_the_top() -> None:
    book = make_book()

    changed = book.apply_delta(True, 2200, 700)

    assert changed
    assert top(book) == (2200, 34000, 4400, 14600)


def test_a_size_change_at_the_best_no_bid_changes_the_ask_size() -> None:
    book = make_book()

    changed = book.apply_delta(False, 5600, -4600)

    assert changed
    assert top(book) == (2200, 33300, 4400, 10000)


def test_a_new_level_above_the_best_becomes_the_best() -> None:
    book = make_book()

    changed = book.apply_delta(False, 5700, 500)

    assert changed
    assert (book.best_ask, book.best_ask_qty) == (4300, 500)


def test_a_new_level_below_the_best_does_not_change_the_top() -> None:
    book = make_book()

    changed = book.apply_delta(True, 1500, 500)

    assert not changed
    assert book.yes_levels[1500] == 500


def test_a_level_is_removed_when_its_size_reaches_zero() -> None:
    book = make_book()

    book.apply_delta(True, 800, -30000)

    assert 800 not in book.yes_levels


def test_removing_the_best_level_promotes_the_next_level_down() -> None:
    book = make_book()

    changed = book.apply_delta(False, 5600, -14600)

    assert changed
    assert (book.best_ask, book.best_ask_qty) == (4600, 2000)


def test_removing_the_last_level_of_a_side_empties_it() -> None:
    book = make_book(yes=[(2200, 100)])

    changed = book.apply_delta(True, 2200, -100)

    assert changed
    assert (book.best_bid, book.best_bid_qty) == (None, 0)


def test_a_zero_delta_at_the_best_is_not_a_change() -> None:
    book = make_book()

    assert not book.apply_delta(True, 2200, 0)
    assert not book.apply_delta(True, 3000, 0)
    assert 3000 not in book.yes_levels


def test_a_delta_that_would_make_a_level_negative_raises_and_changes_nothing() -> None:
    book = make_book()

    with pytest.raises(BookIntegrityError, match="yes level 2200 would go negative") as info:
        book.apply_delta(True, 2200, -33301)

    assert info.value.ticker == "FED-23DEC-T3.00"
    assert book.yes_levels[2200] == 33300
    assert top(book) == (2200, 33300, 4400, 14600)


def test_a_negative_delta_on_an_absent_level_raises() -> None:
    book = make_book()

    with pytest.raises(BookIntegrityError, match="no level 5000"):
        book.apply_delta(False, 5000, -100)

    assert 5000 not in book.no_levels


@pytest.mark.parametrize("price", [0, -100, ONE_DOLLAR, ONE_DOLLAR + 1])
def test_a_delta_for_a_price_outside_the_dollar_raises(price: Price) -> None:
    book = make_book()

    with pytest.raises(BookIntegrityError, match=f"price {price} is not in"):
        book.apply_delta(True, price, 100)

    assert top(book) == (2200, 33300, 4400, 14600)


def test_deltas_work_on_sub_penny_prices() -> None:
    book = make_book(yes=[(9990, 100)], no=[(5, 300)])

    book.apply_delta(True, 9991, 50)
    book.apply_delta(False, 6, 70)

    assert top(book) == (9991, 50, ONE_DOLLAR - 6, 70)
    assert book.spread() == 3
    assert not book.is_crossed()


# Derived quantities


def test_mid_and_spread_come_from_the_best_bid_and_the_yes_ask() -> None:
    book = make_book()

    assert book.mid() == 3300.0
    assert book.spread() == 2200


def test_the_mid_can_fall_between_two_ticks() -> None:
    book = make_book(yes=[(2200, 100)], no=[(7699, 100)])

    assert book.mid() == 2250.5


def test_mid_spread_and_microprice_are_none_when_a_side_is_empty() -> None:
    book = make_book(no=[])

    assert book.mid() is None
    assert book.spread() is None
    assert book.microprice() is None


def test_the_microprice_weights_each_price_by_the_other_sides_size() -> None:
    # 100 bid at 40¢ against 300 offered at 44¢: the price leans toward the ask
    book = make_book(yes=[(4000, 100)], no=[(5600, 300)])

    assert book.microprice() == pytest.approx((4000 * 300 + 4400 * 100) / 400)
    assert book.microprice() == pytest.approx(4100.0)


def test_top_of_book_imbalance_is_the_normalised_size_difference() -> None:
    book = make_book(yes=[(4000, 300)], no=[(5600, 100)])

    assert book.imbalance() == pytest.approx(0.5)


def test_imbalance_over_several_levels_sums_each_sides_top_levels() -> None:
    book = make_book()

    # bids 33300 + 30000, asks 14600 + 2000
    assert book.imbalance(2) == pytest.approx((63300 - 16600) / (63300 + 16600))
    assert book.imbalance(50) == book.imbalance(2)


def test_imbalance_is_one_when_only_bids_rest_and_none_when_the_book_is_empty() -> None:
    assert make_book(no=[]).imbalance() == 1.0
    assert make_book(yes=[], no=[]).imbalance() is None


def test_depth_lists_bids_and_yes_asks_best_first() -> None:
    book = make_book()

    bids, asks = book.depth(5)

    assert bids == [(2200, 33300), (800, 30000)]
    assert asks == [(4400, 14600), (4600, 2000)]


def test_depth_stops_at_the_requested_number_of_levels() -> None:
    book = make_book()

    assert book.depth(1) == ([(2200, 33300)], [(4400, 14600)])


def test_depth_refuses_fewer_than_one_level() -> None:
    with pytest.raises(ValueError, match="at least one level"):
        make_book().depth(0)


def test_a_delta_whose_new_best_bid_would_reach_the_yes_ask_is_refused_and_changes_nothing() -> (
    None
):
    book = make_book()
    before = (top(book), dict(book.yes_levels), dict(book.no_levels))

    with pytest.raises(BookIntegrityError, match="would cross"):
        book.apply_delta(True, 4400, 100)
    with pytest.raises(BookIntegrityError, match="would cross"):
        book.apply_delta(False, 7800, 100)

    assert (top(book), dict(book.yes_levels), dict(book.no_levels)) == before
    assert not book.is_crossed()
    assert book.invariant_violations() == []


def test_a_crossed_snapshot_is_refused_and_leaves_the_book_as_it_was() -> None:
    book = make_book()
    before = (top(book), dict(book.yes_levels), dict(book.no_levels))

    with pytest.raises(BookIntegrityError, match="crossed"):
        book.apply_snapshot([(5000, 100)], [(5000, 100)])

    assert (top(book), dict(book.yes_levels), dict(book.no_levels)) == before


def test_a_new_best_bid_just_inside_the_yes_ask_is_accepted() -> None:
    book = make_book()

    assert book.apply_delta(True, 4399, 100)

    assert book.best_bid == 4399
    assert book.best_ask == 4400
    assert book.invariant_violations() == []


def test_the_invariant_check_names_what_is_broken() -> None:
    book = make_book()
    book._yes[100] = 0  # corrupted on purpose: a zero level, unmarked, while best is 2200

    problems = book.invariant_violations()

    assert any("yes level 100 x 0" in p for p in problems)
    assert any("yes occupancy" in p for p in problems)


def test_an_empty_side_never_makes_a_crossed_book() -> None:
    assert not make_book(no=[]).is_crossed()
    assert not make_book(yes=[]).is_crossed()


def test_the_level_views_are_read_only() -> None:
    book = make_book()

    with pytest.raises(TypeError):
        book.yes_levels[800] = 1  # type: ignore[index]


# Order-flow imbalance


def test_ofi_matches_a_hand_computed_sequence() -> None:
    ofi = OfiAccumulator()
    # (bid, bid_qty, ask, ask_qty) and the hand-computed e_n
    states_and_events = [
        ((4000, 100, 4400, 200), 0),  # first state: recorded only
        ((4000, 150, 4400, 200), 50),  # bid size up at the same price: +50
        ((4100, 30, 4400, 200), 30),  # bid price up: + new bid size
        ((4100, 30, 4400, 120), 80),  # ask size down at the same price: -(120 - 200)
        ((4100, 30, 4300, 10), -10),  # ask price down: - new ask size
        ((4000, 500, 4300, 10), -30),  # bid price down: - old bid size
        ((4000, 500, 4500, 70), 10),  # ask price up: + old ask size
    ]
    events = []

    for state, _ in states_and_events:
        events.append(ofi.update(*state))

    assert events == [event for _, event in states_and_events]
    assert ofi.value == 0 + 50 + 30 + 80 - 10 - 30 + 10


def test_ofi_treats_an_emptied_side_as_a_zero_size_level_beyond_the_range() -> None:
    ofi = OfiAccumulator()
    ofi.update(4000, 100, 4400, 200)

    # The bid side empties (price falls to 0: - old bid size); the ask side empties
    # (price rises to $1: + old ask size)
    event = ofi.update(None, 0, None, 0)

    assert event == -100 + 200


def test_ofi_from_a_book_is_unchanged_by_deltas_that_leave_the_top_alone() -> None:
    book = make_book()
    ofi = OfiAccumulator()
    ofi.update(book.best_bid, book.best_bid_qty, book.best_ask, book.best_ask_qty)

    book.apply_delta(True, 800, 500)
    event = ofi.update(book.best_bid, book.best_bid_qty, book.best_ask, book.best_ask_qty)

    assert event == 0


def test_ofi_reset_starts_a_new_window_from_the_last_state() -> None:
    ofi = OfiAccumulator()
    ofi.update(4000, 100, 4400, 200)
    ofi.update(4000, 150, 4400, 200)

    ofi.reset()
    event = ofi.update(4000, 170, 4400, 200)

    assert (event, ofi.value) == (20, 20)


def test_ofi_forget_drops_the_last_state_so_a_resnapshot_is_not_counted_as_flow() -> None:
    ofi = OfiAccumulator()
    ofi.update(4000, 100, 4400, 200)

    ofi.forget()
    event = ofi.update(1000, 9999, 9000, 1)

    assert (event, ofi.value) == (0, 0)


# Properties

PRICES = st.sampled_from([1, 5, 99, 100, 2200, 2250, 2300, 5000, 9899, 9900, 9999])
DELTAS = st.lists(
    st.tuples(st.booleans(), PRICES, st.integers(min_value=-5000, max_value=5000)),
    max_size=80,
)
SNAPSHOT_SIDE = st.dictionaries(PRICES, st.integers(min_value=0, max_value=5000), max_size=8)


def uncrossed_book(yes: dict[Price, Qty], no: dict[Price, Qty]) -> OrderBook:
    """A book of these levels, without the NO levels that would cross the best YES bid."""
    best_yes = max((p for p, q in yes.items() if q > 0), default=0)
    kept = [
        (p, q) for p, q in no.items() if not (q > 0 and best_yes and p + best_yes >= ONE_DOLLAR)
    ]
    return make_book(yes=list(yes.items()), no=kept)


def apply_valid(book: OrderBook, deltas: list[tuple[bool, Price, Qty]]) -> list[bool]:
    """Applies each delta, clamped so no level goes negative; returns the change flags.

    A delta that would cross the book (which the venue never sends) is refused by the book
    and counts as no change.
    """
    changes = []
    for is_yes, price, delta in deltas:
        levels = book.yes_levels if is_yes else book.no_levels
        try:
            changes.append(book.apply_delta(is_yes, price, max(delta, -levels.get(price, 0))))
        except BookIntegrityError as e:
            assert "would cross" in e.reason
            changes.append(False)
        assert book.invariant_violations() == []
    return changes


def brute_top(book: OrderBook) -> tuple[Price | None, Qty, Price | None, Qty]:
    yes, no = dict(book.yes_levels), dict(book.no_levels)
    bid = max(yes, default=None)
    no_best = max(no, default=None)
    return (
        bid,
        0 if bid is None else yes[bid],
        None if no_best is None else ONE_DOLLAR - no_best,
        0 if no_best is None else no[no_best],
    )


@settings(max_examples=100)
@given(yes=SNAPSHOT_SIDE, no=SNAPSHOT_SIDE, deltas=DELTAS)
def test_the_cached_top_always_equals_a_brute_force_search(
    yes: dict[Price, Qty], no: dict[Price, Qty], deltas: list[tuple[bool, Price, Qty]]
) -> None:
    book = uncrossed_book(yes, no)

    for is_yes, price, delta in deltas:
        apply_valid(book, [(is_yes, price, delta)])
        assert top(book) == brute_top(book)


@settings(max_examples=100)
@given(yes=SNAPSHOT_SIDE, no=SNAPSHOT_SIDE, deltas=DELTAS)
def test_no_level_is_ever_stored_at_zero_or_below(
    yes: dict[Price, Qty], no: dict[Price, Qty], deltas: list[tuple[bool, Price, Qty]]
) -> None:
    book = uncrossed_book(yes, no)

    apply_valid(book, deltas)

    assert all(size > 0 for size in book.yes_levels.values())
    assert all(size > 0 for size in book.no_levels.values())


@settings(max_examples=100)
@given(yes=SNAPSHOT_SIDE, no=SNAPSHOT_SIDE, deltas=DELTAS)
def test_the_change_flag_is_true_exactly_when_the_top_of_book_moved(
    yes: dict[Price, Qty], no: dict[Price, Qty], deltas: list[tuple[bool, Price, Qty]]
) -> None:
    book = uncrossed_book(yes, no)

    for delta in deltas:
        before = top(book)
        (changed,) = apply_valid(book, [delta])
        assert changed == (top(book) != before)


@settings(max_examples=100)
@given(yes=SNAPSHOT_SIDE, no=SNAPSHOT_SIDE, deltas=DELTAS)
def test_a_snapshot_then_deltas_equals_the_final_state_applied_as_a_snapshot(
    yes: dict[Price, Qty], no: dict[Price, Qty], deltas: list[tuple[bool, Price, Qty]]
) -> None:
    book = uncrossed_book(yes, no)
    apply_valid(book, deltas)

    fresh = make_book(yes=list(book.yes_levels.items()), no=list(book.no_levels.items()))

    assert top(fresh) == top(book)
    assert fresh.depth(100) == book.depth(100)
    assert dict(fresh.yes_levels) == dict(book.yes_levels)
    assert dict(fresh.no_levels) == dict(book.no_levels)


@settings(max_examples=100)
@given(yes=SNAPSHOT_SIDE, no=SNAPSHOT_SIDE, deltas=DELTAS, levels=st.integers(1, 12))
def test_depth_equals_the_levels_sorted_best_first(
    yes: dict[Price, Qty],
    no: dict[Price, Qty],
    deltas: list[tuple[bool, Price, Qty]],
    levels: int,
) -> None:
    book = uncrossed_book(yes, no)
    apply_valid(book, deltas)

    bids, asks = book.depth(levels)

    assert bids == sorted(book.yes_levels.items(), reverse=True)[:levels]
    expected_asks = sorted((ONE_DOLLAR - p, q) for p, q in book.no_levels.items())
    assert asks == expected_asks[:levels]


@settings(max_examples=100)
@given(yes=SNAPSHOT_SIDE, is_yes=st.booleans(), price=PRICES, excess=st.integers(1, 5000))
def test_a_delta_taking_a_level_below_zero_always_raises_and_changes_nothing(
    yes: dict[Price, Qty], is_yes: bool, price: Price, excess: int
) -> None:
    book = uncrossed_book(yes, yes)
    levels = book.yes_levels if is_yes else book.no_levels
    before = (top(book), dict(book.yes_levels), dict(book.no_levels))

    with pytest.raises(BookIntegrityError):
        book.apply_delta(is_yes, price, -levels.get(price, 0) - excess)

    assert (top(book), dict(book.yes_levels), dict(book.no_levels)) == before


# The book without our own orders


def test_the_top_without_our_orders_skips_a_level_that_is_only_ours() -> None:
    # Arrange: the 22¢ bid is all ours (33300), the 44¢ ask (NO 56¢) is ours in part
    book = make_book()

    # Act
    others = book.top_without({2200: 33300}, {5600: 600})

    # Assert
    assert others == (800, 30000, 4400, 14000)
    assert top(book) == (2200, 33300, 4400, 14600)  # the book itself is untouched


def test_the_top_without_our_orders_is_the_top_when_we_rest_below_it() -> None:
    book = make_book()

    assert book.top_without({800: 100}, {5400: 2000}) == top(book)


def test_our_size_beyond_a_level_removes_that_level_only() -> None:
    book = make_book()

    # ours at 22¢ is more than the feed shows (our order's delta has not arrived yet)
    assert book.top_without({2200: 99999}, {}) == (800, 30000, 4400, 14600)


def test_a_side_that_is_all_ours_is_empty_without_it() -> None:
    book = make_book()

    assert book.top_without({}, {5600: 14600, 5400: 2000}) == (2200, 33300, None, 0)


@settings(max_examples=100)
@given(
    st.dictionaries(st.integers(1, 9999), st.integers(1, 10_000), max_size=8),
    st.dictionaries(st.integers(1, 9999), st.integers(0, 12_000), max_size=8),
)
def test_the_top_without_our_orders_is_the_best_level_with_something_left(
    levels: dict[Price, Qty], own: dict[Price, Qty]
) -> None:
    book = OrderBook("T")
    book.apply_snapshot(list(levels.items()), [])

    bid, qty, _, _ = book.top_without(own, {})

    left = {p: q - own.get(p, 0) for p, q in levels.items() if q - own.get(p, 0) > 0}
    best = max(left, default=None)
    assert (bid, qty) == (best, left[best] if best is not None else 0)
