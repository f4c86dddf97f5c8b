"""Tests for kmm.pipeline: frames in, books kept, quotes decided and pulled."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from kmm.book.grid import PriceGrid
from kmm.errors import WireError
from kmm.kalshi.wire import Fill as WireFill
from kmm.pipeline import MarketSpec, Pipeline, QuoteMailbox, empty_quote
from kmm.sim.synthetic import SyntheticFeed
from kmm.strategy.quoter import StrategyParams
from kmm.strategy.volatility import EwmaVolatility, KappaEstimator
from kmm.types import Quote

TICKER = "KXTEST-26NOV23-T50"
OTHER = "KXTEST-26NOV23-T60"
NOW = 1_790_000_000_000_000_000


def _frame(kind: str, sid: int, seq: int, **msg: Any) -> bytes:
    return orjson.dumps({"type": kind, "sid": sid, "seq": seq, "msg": msg})


def _snapshot(ticker: str, sid: int, seq: int, yes: list[list[str]], no: list[list[str]]) -> bytes:
    return _frame(
        "orderbook_snapshot",
        sid,
        seq,
        market_ticker=ticker,
        market_id="m",
        yes_dollars_fp=yes,
        no_dollars_fp=no,
    )


def _delta(ticker: str, sid: int, seq: int, side: str, price: str, delta: str) -> bytes:
    return _frame(
        "orderbook_delta",
        sid,
        seq,
        market_ticker=ticker,
        market_id="m",
        price_dollars=price,
        delta_fp=delta,
        side=side,
        ts_ms=1_790_000_000_000,
    )


def _book(ticker: str = TICKER, sid: int = 1, seq: int = 1) -> bytes:
    """A book with YES 0.45 bid and NO 0.53 bid, i.e. 45¢ @ 47¢."""
    return _snapshot(
        ticker, sid, seq, [["0.4400", "50.00"], ["0.4500", "20.00"]], [["0.5300", "30.00"]]
    )


class _Inventory:
    def __init__(self) -> None:
        self.position = 0

    def __call__(self, ticker: str) -> int:
        return self.position


def _pipeline(
    inventory: _Inventory | None = None, *, use_yes_price: bool = False
) -> tuple[Pipeline, QuoteMailbox]:
    mailbox = QuoteMailbox()
    pipeline = Pipeline(
        params=StrategyParams(),
        new_vol=lambda: EwmaVolatility(halflife_s=30.0, sigma_default=0.001, min_samples=5),
        new_kappa=lambda: KappaEstimator(
            halflife_trades=50.0,
            kappa_default=50.0,
            kappa_min=5.0,
            kappa_max=500.0,
            min_trades=10,
            half_tick=0.005,
        ),
        inventory=inventory or _Inventory(),
        mailbox=mailbox,
        use_yes_price=use_yes_price,
    )
    for ticker in (TICKER, OTHER):
        pipeline.add_market(MarketSpec(ticker, PriceGrid.linear_cent()))
    return pipeline, mailbox


def _two_sided(quote: Quote) -> bool:
    return quote.bid_price is not None and quote.ask_price is not None


def test_a_snapshot_makes_the_book_trusted_and_posts_a_quote_inside_the_book() -> None:
    pipeline, mailbox = _pipeline()

    pipeline.on_frame(_book(), NOW)

    quotes = mailbox.take()
    assert pipeline.markets[TICKER].book.trusted
    quote = quotes[TICKER]
    assert _two_sided(quote)
    assert quote.bid_price is not None and quote.bid_price < 4700
    assert quote.ask_price is not None and quote.ask_price > 4500


def test_a_delta_that_moves_the_top_of_book_triggers_a_decision() -> None:
    pipeline, mailbox = _pipeline()
    pipeline.on_frame(_book(), NOW)
    before = pipeline.stats.decisions

    pipeline.on_frame(_delta(TICKER, 1, 2, "yes", "0.4600", "10.00"), NOW + 1)

    assert pipeline.stats.decisions == before + 1
    assert pipeline.markets[TICKER].book.best_bid == 4600
    assert TICKER in mailbox.take()


def test_a_delta_below_the_top_does_not_trigger_a_decision() -> None:
    pipeline, _ = _pipeline()
    pipeline.on_frame(_book(), NOW)
    before = pipeline.stats.decisions

    pipeline.on_frame(_delta(TICKER, 1, 2, "yes", "0.4000", "10.00"), NOW + 1)

    assert pipeline.stats.decisions == before
    assert pipeline.markets[TICKER].book.yes_levels[4000] == 1000


def test_an_unchanged_quote_is_not_posted_again() -> None:
    pipeline, mailbox = _pipeline()
    pipeline.on_frame(_book(), NOW)
    mailbox.take()

    pipeline.decide(TICKER, NOW)

    assert len(mailbox) == 0


def test_a_sequence_gap_pulls_the_quotes_of_every_market_on_that_subscription() -> None:
    pipeline, mailbox = _pipeline()
    pipeline.on_frame(_book(TICKER, sid=1, seq=1), NOW)
    pipeline.on_frame(_book(OTHER, sid=1, seq=2), NOW)
    mailbox.take()

    pipeline.on_frame(_delta(TICKER, 1, 5, "yes", "0.4500", "1.00"), NOW + 1)

    pulled = mailbox.take()
    assert pulled == {TICKER: empty_quote(TICKER), OTHER: empty_quote(OTHER)}
    assert not pipeline.markets[TICKER].book.trusted
    assert not pipeline.markets[OTHER].book.trusted
    assert pipeline.take_resync() == [1]
    assert pipeline.take_resync() == []
    assert pipeline.stats.gaps == 1


def test_deltas_after_a_gap_are_ignored_until_a_fresh_snapshot_restores_quoting() -> None:
    pipeline, mailbox = _pipeline()
    pipeline.on_frame(_book(), NOW)
    pipeline.on_frame(_delta(TICKER, 1, 5, "yes", "0.4500", "1.00"), NOW)
    mailbox.take()

    pipeline.on_frame(_delta(TICKER, 1, 6, "yes", "0.4800", "5.00"), NOW)
    assert len(mailbox) == 0
    assert 4800 not in pipeline.markets[TICKER].book.yes_levels

    pipeline.on_frame(_book(seq=7), NOW)
    assert pipeline.markets[TICKER].book.trusted
    assert _two_sided(mailbox.take()[TICKER])


def test_a_gap_on_one_subscription_leaves_markets_on_another_quoting() -> None:
    pipeline, mailbox = _pipeline()
    pipeline.on_frame(_book(TICKER, sid=1, seq=1), NOW)
    pipeline.on_frame(_book(OTHER, sid=2, seq=1), NOW)
    mailbox.take()

    pipeline.on_frame(_delta(TICKER, 1, 9, "yes", "0.4500", "1.00"), NOW)

    assert set(mailbox.take()) == {TICKER}
    assert pipeline.markets[OTHER].book.trusted


def test_a_duplicate_delta_is_ignored_and_counted_as_stale() -> None:
    pipeline, _ = _pipeline()
    pipeline.on_frame(_book(), NOW)
    pipeline.on_frame(_delta(TICKER, 1, 2, "yes", "0.4000", "10.00"), NOW)

    pipeline.on_frame(_delta(TICKER, 1, 2, "yes", "0.4000", "10.00"), NOW)

    assert pipeline.markets[TICKER].book.yes_levels[4000] == 1000
    assert pipeline.stats.stale == 1


def test_a_delta_that_would_make_a_level_negative_distrusts_the_subscription() -> None:
    pipeline, mailbox = _pipeline()
    pipeline.on_frame(_book(), NOW)
    mailbox.take()

    pipeline.on_frame(_delta(TICKER, 1, 2, "yes", "0.4400", "-60.00"), NOW)

    assert pipeline.stats.integrity_errors == 1
    assert not pipeline.markets[TICKER].book.trusted
    assert mailbox.take()[TICKER] == empty_quote(TICKER)
    assert pipeline.take_resync() == [1]


def test_a_crossed_snapshot_is_refused_counted_and_its_subscription_resnapshotted() -> None:
    pipeline, mailbox = _pipeline()
    pipeline.on_frame(_book(), NOW)
    mailbox.take()
    crossed = _snapshot(TICKER, 1, 2, [["0.5000", "10.00"]], [["0.5500", "10.00"]])

    with pytest.raises(WireError, match="crossed"):
        pipeline.on_frame(crossed, NOW)

    book = pipeline.markets[TICKER].book
    assert not book.trusted
    assert not book.is_crossed()
    assert mailbox.take()[TICKER] == empty_quote(TICKER)
    assert pipeline.stats.rejected == {"orderbook_snapshot.crossed": 1}
    assert pipeline.take_resync() == [1]


def test_a_delta_that_would_cross_the_book_distrusts_the_subscription() -> None:
    pipeline, mailbox = _pipeline()
    pipeline.on_frame(_book(), NOW)
    mailbox.take()

    # YES asks start at 47¢ (NO bid 53¢): a YES bid at 47¢ would have matched
    pipeline.on_frame(_delta(TICKER, 1, 2, "yes", "0.4700", "5.00"), NOW + 1)

    book = pipeline.markets[TICKER].book
    assert not book.trusted
    assert book.best_bid == 4500
    assert book.invariant_violations() == []
    assert mailbox.take()[TICKER] == empty_quote(TICKER)
    assert pipeline.stats.integrity_errors == 1
    assert pipeline.take_resync() == [1]


def test_with_yes_price_convention_no_side_prices_are_read_as_yes_asks() -> None:
    pipeline, _ = _pipeline(use_yes_price=True)

    pipeline.on_frame(_book(), NOW)

    book = pipeline.markets[TICKER].book
    assert (book.best_bid, book.best_ask) == (4500, 5300)


def test_an_empty_side_means_no_quote() -> None:
    pipeline, mailbox = _pipeline()

    pipeline.on_frame(_snapshot(TICKER, 1, 1, [["0.4500", "10.00"]], []), NOW)

    assert mailbox.take()[TICKER] == empty_quote(TICKER)


def test_book_traffic_for_a_market_we_do_not_trade_is_counted_and_skipped() -> None:
    pipeline, mailbox = _pipeline()

    event = pipeline.on_frame(_book("KXOTHER-1"), NOW)

    assert event is None
    assert pipeline.stats.unknown_market == 1
    assert len(mailbox) == 0


def test_a_long_position_skews_the_quote_down() -> None:
    flat_inventory = _Inventory()
    long_inventory = _Inventory()
    long_inventory.position = 10 * 100
    flat, flat_box = _pipeline(flat_inventory)
    long, long_box = _pipeline(long_inventory)

    flat.on_frame(_book(), NOW)
    long.on_frame(_book(), NOW)

    flat_quote = flat_box.take()[TICKER]
    long_quote = long_box.take()[TICKER]
    assert flat_quote.ask_price is not None and long_quote.ask_price is not None
    assert long_quote.ask_price <= flat_quote.ask_price
    assert long_quote.bid_qty < flat_quote.bid_qty


def test_a_market_with_its_own_position_cap_sizes_its_quote_within_it() -> None:
    inventory = _Inventory()
    inventory.position = 9 * 100
    pipeline, mailbox = _pipeline(inventory)
    pipeline.add_market(MarketSpec("KXCAPPED-1", PriceGrid.linear_cent(), max_position=10 * 100))
    roomy = pipeline.add_market(
        MarketSpec("KXROOMY-1", PriceGrid.linear_cent(), max_position=10**9)
    )

    pipeline.on_frame(_book("KXCAPPED-1", sid=3), NOW)
    pipeline.on_frame(_book("KXROOMY-1", sid=4), NOW)

    quotes = mailbox.take()
    assert quotes["KXCAPPED-1"].bid_qty == 1 * 100  # one contract of room left under 10
    assert roomy.params.max_position == StrategyParams().max_position  # never above the global
    assert quotes["KXROOMY-1"].bid_qty > 1 * 100


def test_non_book_events_are_returned_to_the_caller() -> None:
    pipeline, _ = _pipeline()
    fill = _frame(
        "fill",
        3,
        1,
        trade_id="t1",
        order_id="o1",
        market_ticker=TICKER,
        is_taker=False,
        side="yes",
        action="buy",
        yes_price_dollars="0.4500",
        count_fp="1.00",
        fee_cost="0.0000",
        post_position_fp="1.00",
        purchased_side="yes",
        ts=1_790_000_000,
        ts_ms=1_790_000_000_000,
    )

    event = pipeline.on_frame(fill, NOW)

    assert isinstance(event, WireFill)
    assert event.trade_id == "t1"


def test_a_lifecycle_close_date_update_shortens_tau() -> None:
    pipeline, _ = _pipeline()
    frame = _frame(
        "market_lifecycle_v2",
        4,
        1,
        event_type="close_date_updated",
        market_ticker=TICKER,
        close_ts=1_790_000_060,
    )

    pipeline.on_frame(frame, NOW)

    assert pipeline.markets[TICKER].spec.close_ns == 1_790_000_060_000_000_000


@pytest.mark.parametrize("markets", [1, 8])
def test_a_synthetic_stream_is_consumed_without_gaps_or_errors(markets: int) -> None:
    feed = SyntheticFeed(markets=markets, seed=3)
    pipeline, mailbox = _pipeline()
    for ticker in feed.tickers:
        pipeline.add_market(MarketSpec(ticker, PriceGrid.linear_cent()))

    for i, frame in enumerate([*feed.snapshots(), *feed.deltas(2_000)]):
        pipeline.on_frame(frame, NOW + i * 1_000_000)

    stats = pipeline.stats
    assert stats.gaps == stats.stale == stats.integrity_errors == 0
    assert stats.decisions > 0
    assert all(pipeline.markets[t].book.trusted for t in feed.tickers)
    assert all(not pipeline.markets[t].book.is_crossed() for t in feed.tickers)
    assert len(mailbox) > 0


def test_pulling_all_markets_posts_empty_quotes_and_a_snapshot_brings_the_quote_back() -> None:
    pipeline, mailbox = _pipeline()
    pipeline.on_frame(_book(), NOW)
    quote = mailbox.take()[TICKER]

    pipeline.pull_all()

    assert mailbox.take()[TICKER] == empty_quote(TICKER)
    pipeline.on_frame(_book(seq=2), NOW)
    assert mailbox.take()[TICKER] == quote


# Refused frames


def _bands(*bands: tuple[str, str, str]) -> bytes:
    return _frame(
        "market_lifecycle_v2",
        13,
        1,
        market_ticker=TICKER,
        event_type="price_level_structure_updated",
        price_level_structure="deci_cent",
        price_ranges=[{"start": a, "end": b, "step": c} for a, b, c in bands],
    )


@pytest.mark.parametrize(
    "bands",
    [
        [("0.0000", "1.0000", "0.0000")],  # step 0
        [("0.0000", "0.6000", "0.0010"), ("0.5000", "1.0000", "0.0100")],  # overlapping
        [("0.0000", "0.4000", "0.0010"), ("0.5000", "1.0000", "0.0100")],  # a gap
        [("0.0000", "1.5000", "0.0100")],  # beyond $1
        [("0.1000", "1.0000", "0.0100")],  # does not cover the book's low end
        [("0.0000", "0.9000", "0.0100")],  # nor its high end
        [],  # nothing at all
    ],
)
def test_a_bad_price_band_keeps_the_old_grid_pulls_the_market_and_is_counted(
    bands: list[tuple[str, str, str]],
) -> None:
    pipeline, mailbox = _pipeline()
    pipeline.on_frame(_book(), NOW)
    mailbox.take()
    old = pipeline.markets[TICKER].spec.grid

    with pytest.raises(WireError, match="price_ranges refused"):
        pipeline.on_frame(_bands(*bands), NOW + 1)

    market = pipeline.markets[TICKER]
    assert market.spec.grid is old
    assert not market.book.trusted
    assert mailbox.take() == {TICKER: empty_quote(TICKER)}
    assert pipeline.stats.rejected == {"market_lifecycle_v2.price_ranges": 1}
    assert pipeline.markets[OTHER].spec.grid is old  # other markets untouched


def test_a_valid_price_band_replaces_the_grid_and_requotes_onto_it() -> None:
    pipeline, mailbox = _pipeline()
    pipeline.on_frame(_book(), NOW)
    mailbox.take()

    pipeline.on_frame(_bands(("0.0000", "1.0000", "0.0010")), NOW + 1)

    grid = pipeline.markets[TICKER].spec.grid
    assert grid == PriceGrid.from_ranges([(0, 10_000, 10)])
    quote = mailbox.take()[TICKER]
    assert _two_sided(quote)
    assert quote.bid_price is not None and grid.is_valid(quote.bid_price)
    assert pipeline.stats.rejected == {}


def test_a_malformed_delta_is_counted_and_its_subscription_resnapshotted_once() -> None:
    pipeline, mailbox = _pipeline()
    pipeline.on_frame(_book(TICKER, sid=1, seq=1), NOW)
    pipeline.on_frame(_book(OTHER, sid=1, seq=2), NOW)
    mailbox.take()

    with pytest.raises(WireError):
        pipeline.on_frame(_delta(TICKER, 1, 3, "yes", "1.5000", "10.00"), NOW + 1)
    pipeline.on_frame(_delta(TICKER, 1, 4, "yes", "0.4000", "10.00"), NOW + 2)

    assert pipeline.stats.rejected == {"orderbook_delta.price_dollars": 1}
    assert mailbox.take() == {TICKER: empty_quote(TICKER), OTHER: empty_quote(OTHER)}
    assert pipeline.take_resync() == [1]
    assert pipeline.stats.gaps == 0  # the refused frame used up its seq: no gap after it


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        (b"{not json", "frame.json"),
        (_frame("fill", 3, 1, market_ticker=TICKER), "fill.trade_id"),
        (_frame("trade", 3, 1, market_ticker=5), "trade.trade_id"),
    ],
)
def test_every_refused_frame_is_counted_by_kind(frame: bytes, kind: str) -> None:
    pipeline, _ = _pipeline()

    for _ in range(3):
        with pytest.raises(WireError):
            pipeline.on_frame(frame, NOW)

    assert pipeline.stats.rejected == {kind: 3}


def test_the_fair_price_leaves_our_own_resting_orders_out() -> None:
    # Arrange: the book is 45¢ @ 47¢, and the whole 45¢ bid (20) is ours
    pipeline, mailbox = _pipeline()
    pipeline.on_frame(_book(), NOW)
    market = pipeline.markets[TICKER]
    with_ours = market.others_fair("mid")

    # Act
    pipeline.set_own_orders(TICKER, {4500: 2000}, {}, NOW + 1)

    # Assert: others bid 44¢, so the fair is 45.5¢, not 46¢, and the market was decided again
    assert with_ours == 4600
    assert market.others_fair("mid") == 4550
    assert market.others_top() == (4400, 5000, 4700, 3000)
    assert TICKER in mailbox.take()


def test_a_size_change_where_we_rest_is_decided_again_even_with_the_mid_as_fair() -> None:
    # Arrange: 10 of the 20 at the 45¢ bid are ours
    pipeline, mailbox = _pipeline()
    pipeline.on_frame(_book(), NOW)
    pipeline.set_own_orders(TICKER, {4500: 1000}, {}, NOW)
    mailbox.take()
    before = pipeline.stats.decisions

    # Act: the others' 10 at 45¢ leave; the book's top price does not change
    pipeline.on_frame(_delta(TICKER, 1, 2, "yes", "0.4500", "-10.00"), NOW + 1)

    # Assert: decided again, and the fair now sits between others' 44¢ and 47¢
    assert pipeline.stats.decisions == before + 1
    assert pipeline.markets[TICKER].book.best_bid == 4500
    assert pipeline.markets[TICKER].others_fair("mid") == 4550


def test_when_our_orders_are_all_one_side_has_the_whole_books_fair_price_is_used() -> None:
    pipeline, _ = _pipeline()
    pipeline.on_frame(_book(), NOW)

    pipeline.set_own_orders(TICKER, {}, {5300: 3000}, NOW)  # the only ask, 47¢, is ours

    assert pipeline.markets[TICKER].others_top() == (4500, 2000, None, 0)
    assert pipeline.markets[TICKER].others_fair("mid") == 4600


def test_a_baseline_quotes_off_the_whole_book_but_kmm_off_the_book_without_its_orders() -> None:
    for own_orders_out, expected in ((True, 4550.0), (False, 4600.0)):
        pipeline, _ = _pipeline()
        pipeline.own_orders_out = own_orders_out
        pipeline.on_frame(_book(), NOW)

        pipeline.set_own_orders(TICKER, {4500: 2000}, {}, NOW + 1)  # the whole 45¢ bid is ours

        inputs = pipeline.markets[TICKER].inputs
        assert inputs is not None and inputs.fair == expected
        assert pipeline.markets[TICKER].others_fair("mid") == 4550.0  # marks: ours out either way
