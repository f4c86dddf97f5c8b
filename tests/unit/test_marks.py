"""Marks: the mid of a two-sided book, conservative ones when a side is empty."""

from __future__ import annotations

from kmm.execution.marks import Mark, mark_position

H = 500  # a 5¢ haircut


def test_a_two_sided_book_marks_at_the_mid_whatever_the_position() -> None:
    for qty in (-100, 0, 100):
        assert mark_position(qty, 4000, 4200, 9000, 1000, H) == Mark(4100, "mid")


def test_a_long_position_marks_at_the_bid_when_only_bids_are_left() -> None:
    assert mark_position(100, 3000, None, 4100, 4100, H) == Mark(3000, "bid")


def test_a_short_position_marks_at_the_ask_when_only_offers_are_left() -> None:
    assert mark_position(-100, None, 7000, 4100, 4100, H) == Mark(7000, "ask")


def test_a_long_with_no_bid_marks_below_the_lower_of_last_trade_and_ask() -> None:
    assert mark_position(100, None, 2000, 4100, 4100, H) == Mark(1500, "ask-haircut")
    assert mark_position(100, None, 6000, 4100, 4100, H) == Mark(3600, "trade-haircut")


def test_a_short_with_no_offer_marks_above_the_higher_of_last_trade_and_bid() -> None:
    assert mark_position(-100, 8000, None, 4100, None, H) == Mark(8500, "bid-haircut")
    assert mark_position(-100, 2000, None, 4100, None, H) == Mark(4600, "trade-haircut")


def test_an_empty_book_marks_the_last_trade_or_the_previous_mark_against_the_position() -> None:
    assert mark_position(100, None, None, 4100, 5000, H) == Mark(3600, "trade-haircut")
    assert mark_position(100, None, None, None, 5000, H) == Mark(4500, "last-haircut")
    assert mark_position(-100, None, None, None, 5000, H) == Mark(5500, "last-haircut")
    assert mark_position(100, None, None, None, None, H) is None


def test_marks_stay_between_zero_and_one_dollar() -> None:
    assert mark_position(100, None, None, 200, None, H) == Mark(0, "trade-haircut")
    assert mark_position(-100, None, None, 9800, None, H) == Mark(10_000, "trade-haircut")


def test_a_flat_position_takes_whatever_price_is_left() -> None:
    assert mark_position(0, 3000, None, None, None, H) == Mark(3000, "bid")
    assert mark_position(0, None, 7000, None, None, H) == Mark(7000, "ask")
    assert mark_position(0, None, None, 4100, None, H) == Mark(4100, "trade")
    assert mark_position(0, None, None, None, 5000, H) == Mark(5000, "last")
