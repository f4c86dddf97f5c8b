"""Tests for kmm.listen: each event's line, exactly, and the listener's book and resyncs."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from kmm.book.orderbook import OrderBook
from kmm.book.sequence import SeqGap
from kmm.errors import WireError
from kmm.kalshi.wire import (
    BookDelta,
    ErrorMsg,
    MarketLifecycle,
    MarketPosition,
    Ticker,
    Trade,
    UserOrder,
    WireDecoder,
)
from kmm.listen import (
    MarketListener,
    format_delta,
    format_error,
    format_fill,
    format_gap,
    format_lifecycle,
    format_order,
    format_position,
    format_snapshot,
    format_ticker,
    format_top,
    format_trade,
    utc_stamp,
)
from kmm.types import BookSide, Fill, Outcome

TICKER = "KXSIMA-26NOV25-T40"
OTHER = "KXSIMA-26NOV25-T50"
NS = 1_795_435_200_123_456_789
"""2026-11-23T12:00:00.123456789Z."""
T = "2026-11-23T12:00:00.123Z"


def _book() -> OrderBook:
    """YES bids 0.45 x 20, 0.44 x 50; NO bids 0.53 x 30 (a YES ask at 0.47)."""
    book = OrderBook(TICKER)
    book.apply_snapshot([(4400, 5000), (4500, 2000)], [(5300, 3000)])
    return book


def test_the_stamp_is_utc_to_the_millisecond() -> None:
    assert utc_stamp(NS) == T
    assert utc_stamp(0) == "1970-01-01T00:00:00.000Z"


def test_a_snapshot_lists_its_levels_best_first_with_sizes() -> None:
    bids, asks = _book().depth(5)

    line = format_snapshot(NS, bids, asks)

    assert line == f"{T} snapshot     bids $0.4500 x 20.00, $0.4400 x 50.00 | asks $0.4700 x 30.00"


def test_an_empty_side_of_a_snapshot_is_a_dash() -> None:
    assert format_snapshot(NS, [], [(4700, 3000)]) == (
        f"{T} snapshot     bids - | asks $0.4700 x 30.00"
    )


def test_the_top_of_book_has_both_sides_their_sizes_and_the_spread() -> None:
    assert format_top(_book()) == "bid $0.4500 x 20.00  ask $0.4700 x 30.00  spread $0.0200"
    assert format_top(OrderBook(TICKER)) == "bid -  ask -  spread -"
    assert format_top(None) == "book resyncing: waiting for a snapshot"


def _delta(side: Outcome, price: int, qty: int, coid: str | None = None) -> BookDelta:
    return BookDelta(1, 2, TICKER, side, price, qty, coid, None)


def test_a_yes_delta_shows_its_change_then_the_new_top() -> None:
    book = _book()
    book.apply_delta(True, 4500, -500)

    line = format_delta(NS, _delta(Outcome.YES, 4500, -500), book)

    assert line == (
        f"{T} delta        yes $0.4500 -5.00 | bid $0.4500 x 15.00  ask $0.4700 x 30.00  "
        "spread $0.0200"
    )


def test_a_no_delta_names_the_yes_ask_it_is_and_our_order() -> None:
    line = format_delta(NS, _delta(Outcome.NO, 5400, 700, "kmm-7"), None)

    assert line == (
        f"{T} delta        no  $0.5400 +7.00 (yes ask $0.4600) [ours: kmm-7] | "
        "book resyncing: waiting for a snapshot"
    )


def test_a_trade_shows_the_taker_both_prices_and_the_count() -> None:
    trade = Trade("t-1", TICKER, 4700, 1250, BookSide.BID, False, 1)
    block = Trade("t-2", TICKER, 4500, 100, BookSide.ASK, True, 1)

    assert format_trade(NS, trade) == (
        f"{T} trade        taker yes  yes $0.4700  no $0.5300  count 12.50"
    )
    assert format_trade(NS, block) == (
        f"{T} trade        taker no   yes $0.4500  no $0.5500  count 1.00  block"
    )


def test_a_ticker_message_is_shown_as_it_came() -> None:
    ticker = Ticker(TICKER, 4600, 4500, 4700, 2000, 3000, 500, 123_400, 56_700, 1)

    assert format_ticker(NS, ticker) == (
        f"{T} ticker       bid $0.4500 x 20.00  ask $0.4700 x 30.00  last $0.4600 x 5.00  "
        "volume 1234.00  open interest 567.00"
    )


def test_lifecycle_events_show_the_fields_they_carry() -> None:
    closed = MarketLifecycle(TICKER, "close_date_updated", close_ts=1_795_521_600)
    determined = MarketLifecycle(TICKER, "determined", result="yes", settlement_value=10_000)
    paused = MarketLifecycle(TICKER, "deactivated", is_deactivated=True)
    grid = MarketLifecycle(
        TICKER,
        "price_level_structure_updated",
        price_ranges=((0, 10_000, 10),),
        price_level_structure="deci_cent",
    )

    assert format_lifecycle(NS, closed) == (
        f"{T} lifecycle    close_date_updated  closes 2026-11-24T12:00:00Z"
    )
    assert format_lifecycle(NS, determined) == (
        f"{T} lifecycle    determined  result yes  settlement $1.0000"
    )
    assert format_lifecycle(NS, paused) == f"{T} lifecycle    deactivated  trading paused"
    assert format_lifecycle(NS, grid) == (
        f"{T} lifecycle    price_level_structure_updated  price levels deci_cent  "
        "bands $0.0000-$1.0000 step $0.0010"
    )


def test_our_fill_is_marked_with_its_side_fee_and_position() -> None:
    fill = Fill("t-1", "o-1", TICKER, BookSide.ASK, 4700, 300, 17_500, True, 1, "kmm-3", -300)
    maker = Fill("t-2", "o-2", TICKER, BookSide.BID, 4500, 100, 0, False, 1)

    assert format_fill(NS, fill) == (
        f"{T} OUR FILL     sold yes 3.00 @ $0.4700  taker  fee $0.017500  position -3.00  "
        "order kmm-3"
    )
    assert format_fill(NS, maker) == (
        f"{T} OUR FILL     bought yes 1.00 @ $0.4500  maker  fee $0.000000  order o-2"
    )


def test_our_order_update_is_marked_with_its_status_and_counts() -> None:
    order = UserOrder("o-1", "kmm-3", TICKER, "resting", BookSide.BID, 4500, 200, 800, 1000, 1)

    assert format_order(NS, order) == (
        f"{T} OUR ORDER    resting  bid $0.4500  filled 2.00  remaining 8.00  of 10.00  order kmm-3"
    )


def test_our_position_is_marked_with_its_money_exact() -> None:
    short = MarketPosition(TICKER, -300, 1_590_000, -15_000, 17_500)

    assert format_position(NS, short) == (
        f"{T} OUR POSITION -3.00 (long no)  cost $1.590000  realized $-0.015000  fees $0.017500"
    )
    assert "0.00 (flat)" in format_position(NS, MarketPosition(TICKER, 0, 0, 0, 0))


def test_errors_and_gaps_are_one_line_each() -> None:
    assert format_error(NS, ErrorMsg(3, 16, "Market not found", TICKER)) == (
        f"{T} error        code 16: Market not found"
    )
    assert format_gap(NS, SeqGap(1, 5, 8)) == (
        f"{T} gap          sid 1: seq 5 due, 8 arrived (3 lost); asking for a fresh snapshot"
    )


# --------------------------------------------------------------------------- the listener


def _frame(kind: str, msg: dict[str, Any], sid: int = 1, seq: int | None = None) -> bytes:
    body: dict[str, Any] = {"type": kind, "sid": sid, "msg": msg}
    if seq is not None:
        body["seq"] = seq
    return orjson.dumps(body)


def _snapshot(seq: int = 1) -> bytes:
    # use_yes_price: the NO bid at 0.53 arrives as its YES price 0.47
    return _frame(
        "orderbook_snapshot",
        {
            "market_ticker": TICKER,
            "yes_dollars_fp": [["0.4400", "50.00"], ["0.4500", "20.00"]],
            "no_dollars_fp": [["0.4700", "30.00"]],
        },
        seq=seq,
    )


def _delta_frame(seq: int, side: str, price: str, delta: str, ticker: str = TICKER) -> bytes:
    msg = {"market_ticker": ticker, "price_dollars": price, "delta_fp": delta, "side": side}
    return _frame("orderbook_delta", msg, seq=seq)


def _listener(levels: int = 5) -> MarketListener:
    return MarketListener(TICKER, levels, WireDecoder(use_yes_price=True))


def test_the_listener_prints_the_snapshot_then_each_delta_on_its_book() -> None:
    listener = _listener(levels=1)

    listener.on_frame(_snapshot(), NS)
    listener.on_frame(_delta_frame(2, "no", "0.4600", "4.00"), NS)
    lines = listener.take_lines()

    assert lines == [
        f"{T} snapshot     bids $0.4500 x 20.00 | asks $0.4700 x 30.00",
        f"{T} delta        no  $0.5400 +4.00 (yes ask $0.4600) | bid $0.4500 x 20.00  "
        "ask $0.4600 x 4.00  spread $0.0100",
    ]
    assert listener.take_lines() == []
    assert listener.take_resync() == []


def test_a_gap_untrusts_the_book_and_asks_for_a_snapshot_until_one_comes() -> None:
    listener = _listener()
    listener.on_frame(_snapshot(), NS)

    listener.on_frame(_delta_frame(4, "yes", "0.4500", "1.00"), NS)

    lines = listener.take_lines()[1:]
    assert lines[0] == format_gap(NS, SeqGap(1, 2, 4))
    assert lines[1].endswith("| book resyncing: waiting for a snapshot")
    assert listener.take_resync() == [1]
    assert listener.counts["gap"] == 1
    listener.on_frame(_snapshot(seq=5), NS)
    listener.on_frame(_delta_frame(6, "yes", "0.4500", "1.00"), NS)
    assert listener.take_lines()[-1].endswith(
        "| bid $0.4500 x 21.00  ask $0.4700 x 30.00  spread $0.0200"
    )


def test_a_delta_the_book_refuses_resyncs_it() -> None:
    listener = _listener()
    listener.on_frame(_snapshot(), NS)

    listener.on_frame(_delta_frame(2, "yes", "0.4500", "-25.00"), NS)  # 20 - 25 < 0

    lines = listener.take_lines()
    assert lines[1].startswith(f"{T} book error") and "would go negative" in lines[1]
    assert lines[2].endswith("| book resyncing: waiting for a snapshot")
    assert listener.take_resync() == [1]


def test_a_stale_delta_is_dropped() -> None:
    listener = _listener()
    listener.on_frame(_snapshot(seq=3), NS)
    listener.take_lines()

    listener.on_frame(_delta_frame(3, "yes", "0.4500", "1.00"), NS)

    assert listener.take_lines() == []
    assert listener.counts["stale"] == 1
    assert listener.book.best_bid_qty == 2000


def test_a_malformed_frame_is_counted_and_raised_and_a_book_frame_resyncs() -> None:
    listener = _listener()
    listener.on_frame(_snapshot(), NS)

    with pytest.raises(WireError):
        listener.on_frame(b"{not json", NS)
    with pytest.raises(WireError):
        listener.on_frame(_delta_frame(2, "maybe", "0.4500", "1.00"), NS)

    assert listener.counts["malformed"] == 2
    assert not listener.book.trusted
    assert listener.take_resync() == [1]


def test_other_markets_are_dropped_and_ours_printed() -> None:
    listener = _listener()
    lifecycle = {"market_ticker": OTHER, "event_type": "deactivated", "is_deactivated": True}
    ours = {**lifecycle, "market_ticker": TICKER}

    listener.on_frame(_frame("market_lifecycle_v2", lifecycle, sid=4), NS)
    listener.on_frame(_frame("market_lifecycle_v2", ours, sid=4), NS)
    listener.on_frame(_frame("event_lifecycle", {"event_ticker": "KXSIMA"}, sid=4), NS)

    assert listener.take_lines() == [f"{T} lifecycle    deactivated  trading paused"]
    assert listener.counts["MarketLifecycle"] == 1


def test_our_fill_frame_becomes_our_fill_line() -> None:
    listener = _listener()
    fill = {
        "trade_id": "t-1",
        "order_id": "o-1",
        "market_ticker": TICKER,
        "is_taker": True,
        "book_side": "bid",
        "yes_price_dollars": "0.4700",
        "count_fp": "2.00",
        "fee_cost": "0.020000",
        "post_position_fp": "2.00",
        "ts_ms": 1_795_435_200_000,
    }

    listener.on_frame(_frame("fill", fill, sid=5), NS)

    assert listener.take_lines() == [
        f"{T} OUR FILL     bought yes 2.00 @ $0.4700  taker  fee $0.020000  position 2.00  "
        "order o-1"
    ]


def test_levels_must_be_positive() -> None:
    with pytest.raises(ValueError, match="levels"):
        _listener(levels=0)
