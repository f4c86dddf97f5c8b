from __future__ import annotations

from fractions import Fraction

import pytest

from kmm.errors import IllegalTransition
from kmm.fees import maker_fee, taker_fee
from kmm.sim.engine import (
    BookChange,
    CreateResult,
    EventDef,
    FillEvent,
    MarketDef,
    MarketLifecycle,
    MarketStatus,
    MatchingEngine,
    OrderGroupUpdate,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    PositionUpdate,
    Rejection,
    SelfTradePrevention,
    SeriesDef,
    TimeInForce,
    TradePrint,
)
from kmm.types import (
    ONE_CENT,
    ONE_DOLLAR,
    BookSide,
    Money,
    Outcome,
    Price,
    Qty,
    parse_count,
    parse_money,
    parse_price,
)

BID = BookSide.BID
ASK = BookSide.ASK
PLAIN = "KXPLAIN-26-A"  # quadratic fees: takers only
MAKER = "KXMAKER-26-A"  # quadratic_with_maker_fees
SUB = "KXSUB-26-A"  # tapered_deci_cent grid
CENTI = "KXSUB-26-B"  # center_centi_edge_centi_cent: every $0.0001
NOW = 1_700_000_000 * 1_000_000_000
CLOSE = NOW + 3_600 * 1_000_000_000
USERS = ("alice", "bob", "carol")
BALANCE = parse_money("1000")


def p(text: str) -> Price:
    return parse_price(text)


def c(contracts: int) -> Qty:
    return contracts * 100


def _market(
    ticker: str, event: str, ranges: tuple[tuple[Price, Price, Price], ...], structure: str
) -> MarketDef:
    return MarketDef(ticker, event, ticker, "Yes", ranges, structure, NOW - 1, CLOSE)


def make_engine(record_events: bool = True) -> MatchingEngine:
    engine = MatchingEngine(record_events=record_events)
    engine.add_series(SeriesDef("KXPLAIN", "Plain", "quadratic", Fraction(1)))
    engine.add_series(SeriesDef("KXMAKER", "Maker", "quadratic_with_maker_fees", Fraction(1)))
    engine.add_series(SeriesDef("KXSUB", "Sub-cent", "quadratic", Fraction(1)))
    for series in ("KXPLAIN", "KXMAKER", "KXSUB"):
        engine.add_event(EventDef(f"{series}-26", series, series))
    cent = ((0, ONE_DOLLAR, ONE_CENT),)
    tapered = (
        (0, p("0.10"), p("0.001")),
        (p("0.10"), p("0.90"), ONE_CENT),
        (p("0.90"), ONE_DOLLAR, p("0.001")),
    )
    engine.add_market(_market(PLAIN, "KXPLAIN-26", cent, "linear_cent"))
    engine.add_market(_market(MAKER, "KXMAKER-26", cent, "linear_cent"))
    engine.add_market(_market(SUB, "KXSUB-26", tapered, "tapered_deci_cent"))
    centi = ((0, ONE_DOLLAR, 1),)
    engine.add_market(_market(CENTI, "KXSUB-26", centi, "center_centi_edge_centi_cent"))
    for user in USERS:
        engine.open_account(user, BALANCE)
    engine.drain_events()
    return engine


@pytest.fixture
def engine() -> MatchingEngine:
    return make_engine()


def place(
    engine: MatchingEngine,
    user: str,
    side: BookSide,
    price: str,
    contracts: int,
    ticker: str = PLAIN,
    now_ns: int = NOW,
    **options: object,
) -> CreateResult:
    request = OrderRequest(ticker, side, p(price), c(contracts), **options)  # type: ignore[arg-type]
    return engine.create_order(user, request, now_ns)


def rejection(call: object) -> Rejection:
    assert callable(call)
    with pytest.raises(Rejection) as caught:
        call()
    return caught.value


def total_money(engine: MatchingEngine) -> Money:
    """Cash (available + reserved) + fees collected + $1 escrowed per open contract."""
    cash = sum(engine.balance(u) + engine.reserved(u) for u in USERS)
    escrow = sum(engine.open_interest(t) * ONE_DOLLAR for t in engine.markets)
    return cash + engine.fees_collected + escrow


# ---------------------------------------------------------------- book and matching


def test_a_bid_that_does_not_cross_rests_as_a_yes_bid_at_its_price(engine: MatchingEngine) -> None:
    result = place(engine, "alice", BID, "0.40", 10)

    assert result.order.status is OrderStatus.RESTING
    assert result.fills == ()
    assert engine.book_levels(PLAIN) == ({p("0.40"): c(10)}, {})
    assert engine.best(PLAIN) == (p("0.40"), None)


def test_an_ask_rests_as_a_no_bid_at_one_dollar_minus_its_price(engine: MatchingEngine) -> None:
    place(engine, "alice", ASK, "0.60", 5)

    assert engine.book_levels(PLAIN) == ({}, {p("0.40"): c(5)})
    assert engine.best(PLAIN) == (None, p("0.60"))


def test_a_crossing_ask_trades_at_the_resting_bids_price(engine: MatchingEngine) -> None:
    place(engine, "alice", BID, "0.45", 10)

    result = place(engine, "bob", ASK, "0.40", 4)

    assert [(f.yes_price, f.count, f.is_taker) for f in result.fills] == [(p("0.45"), c(4), True)]
    assert engine.book_levels(PLAIN) == ({p("0.45"): c(6)}, {})
    assert engine.last_price(PLAIN) == p("0.45")


def test_a_crossing_bid_trades_at_one_dollar_minus_the_resting_no_bid(
    engine: MatchingEngine,
) -> None:
    place(engine, "alice", ASK, "0.55", 3)  # a NO bid at 0.45

    result = place(engine, "bob", BID, "0.60", 3)

    assert [f.yes_price for f in result.fills] == [p("0.55")]
    assert result.order.taker_fill_cost == p("0.55") * c(3)
    assert engine.book_levels(PLAIN) == ({}, {})


def test_orders_at_the_same_price_fill_in_time_priority(engine: MatchingEngine) -> None:
    first = place(engine, "alice", BID, "0.50", 2).order
    second = place(engine, "carol", BID, "0.50", 2).order

    place(engine, "bob", ASK, "0.50", 3)

    assert (first.status, first.remaining) == (OrderStatus.EXECUTED, 0)
    assert (second.status, second.remaining) == (OrderStatus.RESTING, c(1))


def test_a_taker_walks_the_levels_best_price_first(engine: MatchingEngine) -> None:
    place(engine, "alice", BID, "0.48", 1)
    place(engine, "alice", BID, "0.50", 1)
    place(engine, "alice", BID, "0.49", 1)

    result = place(engine, "bob", ASK, "0.48", 3)

    assert [f.yes_price for f in result.fills] == [p("0.50"), p("0.49"), p("0.48")]
    assert engine.book_levels(PLAIN) == ({}, {})


def test_the_remainder_of_a_good_till_cancelled_taker_rests(engine: MatchingEngine) -> None:
    place(engine, "alice", ASK, "0.52", 2)

    result = place(engine, "bob", BID, "0.53", 5)

    assert (result.order.filled, result.order.remaining) == (c(2), c(3))
    assert result.order.status is OrderStatus.RESTING
    assert engine.book_levels(PLAIN) == ({p("0.53"): c(3)}, {})


def test_immediate_or_cancel_cancels_what_does_not_fill_at_once(engine: MatchingEngine) -> None:
    place(engine, "alice", ASK, "0.52", 2)

    result = place(engine, "bob", BID, "0.53", 5, time_in_force=TimeInForce.IOC)

    assert (result.order.filled, result.order.remaining) == (c(2), 0)
    assert result.order.status is OrderStatus.CANCELED
    assert engine.book_levels(PLAIN) == ({}, {})
    assert engine.reserved("bob") == 0


def test_fill_or_kill_that_cannot_fill_entirely_does_not_trade(engine: MatchingEngine) -> None:
    place(engine, "alice", ASK, "0.52", 2)

    result = place(engine, "bob", BID, "0.53", 3, time_in_force=TimeInForce.FOK)

    assert result.fills == ()
    assert result.order.status is OrderStatus.CANCELED
    assert engine.book_levels(PLAIN) == ({}, {p("0.48"): c(2)})


def test_fill_or_kill_that_can_fill_entirely_fills(engine: MatchingEngine) -> None:
    place(engine, "alice", ASK, "0.52", 2)
    place(engine, "carol", ASK, "0.53", 2)

    result = place(engine, "bob", BID, "0.53", 3, time_in_force=TimeInForce.FOK)

    assert sum(f.count for f in result.fills) == c(3)
    assert result.order.status is OrderStatus.EXECUTED


def test_fill_or_kill_that_meets_its_own_order_acts_like_immediate_or_cancel(
    engine: MatchingEngine,
) -> None:
    place(engine, "alice", ASK, "0.52", 1)
    place(engine, "bob", ASK, "0.53", 1)

    result = place(engine, "bob", BID, "0.53", 5, time_in_force=TimeInForce.FOK)

    assert [f.count for f in result.fills] == [c(1)]
    assert result.order.status is OrderStatus.CANCELED


def test_post_only_that_would_cross_is_rejected_as_a_post_only_cross(
    engine: MatchingEngine,
) -> None:
    place(engine, "alice", ASK, "0.52", 1)

    error = rejection(lambda: place(engine, "bob", BID, "0.52", 1, post_only=True))

    assert (error.status, error.code, error.details) == (400, "invalid_order", "post only cross")
    assert engine.orders_of("bob") == []


def test_post_only_that_does_not_cross_rests(engine: MatchingEngine) -> None:
    place(engine, "alice", ASK, "0.52", 1)

    result = place(engine, "bob", BID, "0.51", 1, post_only=True)

    assert result.order.status is OrderStatus.RESTING


def test_taker_at_cross_cancels_the_incoming_order_and_keeps_fills_already_made(
    engine: MatchingEngine,
) -> None:
    place(engine, "carol", ASK, "0.50", 1)
    own = place(engine, "bob", ASK, "0.51", 1).order
    place(engine, "carol", ASK, "0.52", 1)

    result = place(engine, "bob", BID, "0.52", 3)

    assert [f.yes_price for f in result.fills] == [p("0.50")]
    assert result.order.status is OrderStatus.CANCELED
    assert own.status is OrderStatus.RESTING


def test_maker_stp_cancels_the_resting_order_and_keeps_matching(engine: MatchingEngine) -> None:
    own = place(engine, "bob", ASK, "0.50", 1).order
    place(engine, "carol", ASK, "0.51", 1)

    result = place(engine, "bob", BID, "0.52", 2, self_trade_prevention=SelfTradePrevention.MAKER)

    assert own.status is OrderStatus.CANCELED
    assert [f.yes_price for f in result.fills] == [p("0.51")]
    assert result.order.status is OrderStatus.RESTING
    assert engine.book_levels(PLAIN) == ({p("0.52"): c(1)}, {})


# ---------------------------------------------------------------- validation


def test_a_price_off_the_market_grid_is_rejected_as_invalid_price(
    engine: MatchingEngine,
) -> None:
    error = rejection(lambda: place(engine, "alice", BID, "0.505", 1))

    assert (error.status, error.code) == (400, "invalid_price")
    assert "0.5050" in error.message


def test_a_sub_cent_market_accepts_fine_ticks_only_in_its_fine_bands(
    engine: MatchingEngine,
) -> None:
    fine = place(engine, "alice", BID, "0.055", 1, ticker=SUB)
    error = rejection(lambda: place(engine, "alice", BID, "0.555", 1, ticker=SUB))

    assert fine.order.status is OrderStatus.RESTING
    assert error.code == "invalid_price"


@pytest.mark.parametrize("price", ["0", "1"])
def test_zero_and_one_dollar_are_invalid_prices(engine: MatchingEngine, price: str) -> None:
    assert rejection(lambda: place(engine, "alice", BID, price, 1)).code == "invalid_price"


def test_a_count_below_a_hundredth_is_rejected_as_invalid_order_size(
    engine: MatchingEngine,
) -> None:
    request = OrderRequest(PLAIN, BID, p("0.50"), 0)

    error = rejection(lambda: engine.create_order("alice", request, NOW))

    assert (error.status, error.code) == (400, "invalid_order_size")


def test_a_fractional_count_trades(engine: MatchingEngine) -> None:
    engine.create_order("alice", OrderRequest(PLAIN, BID, p("0.50"), parse_count("1.55")), NOW)

    result = engine.create_order(
        "bob", OrderRequest(PLAIN, ASK, p("0.50"), parse_count("0.3")), NOW
    )

    assert result.fills[0].count == 30
    assert engine.book_levels(PLAIN) == ({p("0.50"): 125}, {})


def test_a_reused_client_order_id_is_rejected_with_409_even_after_a_cancel(
    engine: MatchingEngine,
) -> None:
    first = place(engine, "alice", BID, "0.40", 1, client_order_id="abc").order
    engine.cancel_order("alice", first.order_id, NOW)

    error = rejection(lambda: place(engine, "alice", BID, "0.41", 1, client_order_id="abc"))

    assert (error.status, error.code) == (409, "order_already_exists")
    assert error.message == "Order with this client_order_id already exists"


def test_another_user_may_use_the_same_client_order_id(engine: MatchingEngine) -> None:
    place(engine, "alice", BID, "0.40", 1, client_order_id="abc")

    result = place(engine, "bob", BID, "0.40", 1, client_order_id="abc")

    assert result.order.client_order_id == "abc"


def test_an_unknown_market_is_not_found(engine: MatchingEngine) -> None:
    error = rejection(lambda: place(engine, "alice", BID, "0.40", 1, ticker="NOPE"))

    assert (error.status, error.code) == (404, "not_found")
    assert "NOPE" in error.message


def test_an_expiration_with_immediate_or_cancel_or_in_the_past_is_rejected(
    engine: MatchingEngine,
) -> None:
    now_s = NOW // 1_000_000_000
    ioc = rejection(
        lambda: place(
            engine, "alice", BID, "0.40", 1, time_in_force=TimeInForce.IOC, expiration_s=now_s + 5
        )
    )
    past = rejection(lambda: place(engine, "alice", BID, "0.40", 1, expiration_s=now_s))

    assert (ioc.code, past.code) == ("invalid_order", "invalid_order")
    assert past.message == "Expiration timestamp must be in the future"


# ---------------------------------------------------------------- balance and collateral


def test_a_resting_bid_reserves_its_cost_plus_a_fee_reserve(engine: MatchingEngine) -> None:
    place(engine, "alice", BID, "0.40", 10)

    # $4.00 of contracts plus 1000 lots × $0.0002 (0.07 × 0.01 × 0.4 × 0.6 rounded up)
    assert engine.reserved("alice") == parse_money("4.20")
    assert engine.balance("alice") == BALANCE - parse_money("4.20")


def test_an_unaffordable_order_is_rejected_as_available_balance_too_low() -> None:
    engine = make_engine()
    engine.open_account("dave", parse_money("5"))

    error = rejection(lambda: place(engine, "dave", BID, "0.50", 10))

    assert (error.status, error.code) == (400, "available_balance_too_low")
    assert engine.balance("dave") == parse_money("5")
    assert engine.orders_of("dave") == []


def test_an_order_that_closes_a_position_needs_only_its_fee_reserve() -> None:
    engine = make_engine()
    engine.open_account("dave", parse_money("10"))
    place(engine, "alice", ASK, "0.50", 10)
    place(engine, "dave", BID, "0.50", 10)  # dave holds 10 YES, has about $4.65 left
    cash = engine.balance("dave")

    result = place(engine, "dave", ASK, "0.60", 10)  # selling YES needs $4 of NO otherwise

    assert result.order.status is OrderStatus.RESTING
    assert engine.balance("dave") == cash - 1000 * 200


def test_an_order_placed_with_the_last_of_a_balance_never_takes_it_below_zero() -> None:
    # 0.03 contracts at $0.4999 cost $0.014997 plus a $0.0006 fee plus a $0.000003 rounding
    # fee, while the per-lot fee reserve comes to exactly $0.0006: the reservation must also
    # hold the rounding fee of a sub-cent market.
    engine = make_engine()
    filled = 0
    for balance in range(15_500, 16_000, 3):
        user = f"u{balance}"
        engine.open_account(user, balance)
        engine.create_order("alice", OrderRequest(CENTI, ASK, p("0.4999"), 3), NOW)
        request = OrderRequest(CENTI, BID, p("0.4999"), 3, time_in_force=TimeInForce.IOC)
        try:
            filled += len(engine.create_order(user, request, NOW).fills)
        except Rejection as error:
            assert error.code == "available_balance_too_low"
        assert engine.balance(user) >= 0
    assert filled > 0


def test_buying_no_against_a_yes_position_nets_and_pays_back_a_dollar_per_pair(
    engine: MatchingEngine,
) -> None:
    place(engine, "alice", ASK, "0.40", 10)
    place(engine, "bob", BID, "0.40", 10)  # bob: +10 YES at $0.40
    place(engine, "carol", BID, "0.55", 4)
    before = engine.balance("bob")

    place(engine, "bob", ASK, "0.55", 4)  # bob buys 4 NO at $0.45

    position = engine.positions_of("bob")[PLAIN]
    fee = taker_fee(p("0.55"), c(4))
    assert position.position == c(6)
    assert position.market_exposure == p("0.40") * c(6)
    assert position.realized_pnl == (ONE_DOLLAR - p("0.40") - p("0.45")) * c(4)
    assert engine.balance("bob") == before + (ONE_DOLLAR - p("0.45")) * c(4) - fee
    assert engine.open_interest(PLAIN) == c(10)


def test_positions_are_positive_for_yes_and_negative_for_no(engine: MatchingEngine) -> None:
    place(engine, "alice", BID, "0.30", 3)

    fill = place(engine, "bob", ASK, "0.30", 3).fills[0]

    assert engine.positions_of("alice")[PLAIN].position == c(3)
    assert engine.positions_of("bob")[PLAIN].position == -c(3)
    assert fill.post_position == -c(3)


def test_money_is_conserved_across_fills_netting_and_settlement(engine: MatchingEngine) -> None:
    start = total_money(engine)
    place(engine, "alice", BID, "0.45", 10)
    place(engine, "bob", ASK, "0.40", 6)
    place(engine, "bob", BID, "0.46", 3)
    place(engine, "alice", ASK, "0.30", 8)
    place(engine, "carol", BID, "0.35", 8)
    assert total_money(engine) == start

    engine.determine_market(PLAIN, "yes", NOW)
    engine.settle_market(PLAIN, NOW)

    assert total_money(engine) == start


# ---------------------------------------------------------------- fees


@pytest.mark.parametrize(
    ("price", "count"),
    [("0.52", "1"), ("0.01", "3"), ("0.99", "100"), ("0.50", "0.30"), ("0.3301", "0.03")],
)
@pytest.mark.parametrize("multiplier", [Fraction(1), Fraction(1, 2), Fraction(3, 2)])
def test_the_engine_fees_equal_kmm_fees(price: str, count: str, multiplier: Fraction) -> None:
    from kmm.sim._accounts import FeeModel

    model = FeeModel("quadratic_with_maker_fees", multiplier)

    assert model.taker(p(price), parse_count(count)) == taker_fee(
        p(price), parse_count(count), multiplier
    )
    assert model.maker(p(price), parse_count(count)) == maker_fee(
        p(price), parse_count(count), "quadratic_with_maker_fees", multiplier
    )


def test_a_taker_pays_the_taker_fee_and_a_maker_pays_nothing_on_a_quadratic_series(
    engine: MatchingEngine,
) -> None:
    maker = place(engine, "alice", BID, "0.52", 1).order

    taker = place(engine, "bob", ASK, "0.52", 1)

    assert taker.fills[0].fee == parse_money("0.0175")
    assert taker.order.taker_fees == parse_money("0.0175")
    assert maker.maker_fees == 0
    assert engine.fills_of("alice")[0].fee == 0


def test_a_maker_pays_the_maker_fee_where_the_series_charges_makers(
    engine: MatchingEngine,
) -> None:
    maker = place(engine, "alice", BID, "0.50", 10, ticker=MAKER).order

    place(engine, "bob", ASK, "0.50", 10, ticker=MAKER)

    assert maker.maker_fees == parse_money("0.0438")  # 0.0175 × 10 × 0.25 = 0.04375
    assert engine.positions_of("alice")[MAKER].fees_paid == parse_money("0.0438")


def test_a_balance_change_finer_than_a_centicent_pays_a_rounding_fee_with_rebates(
    engine: MatchingEngine,
) -> None:
    for _ in range(3):
        engine.create_order("bob", OrderRequest(CENTI, BID, p("0.6699"), 3), NOW)
    alice = engine.create_order("alice", OrderRequest(CENTI, ASK, p("0.6699"), 9), NOW)
    assert [f.yes_price for f in alice.fills] == [p("0.6699")] * 3

    # alice's one order buys NO at $0.3301 in three fills of 0.03: cost $0.009903 + fee
    # $0.0005 each; each balance change is floored to $0.0001 (a $0.000097 rounding fee);
    # the order's accumulator passes $0.0001 on fills 2 and 3, paying back $0.0001 each time.
    charged = BALANCE - engine.balance("alice") - engine.reserved("alice")
    assert charged == 3 * 9903 + 3 * 500 + 3 * 97 - 2 * 100
    assert charged % 100 == 0
    assert [f.fee for f in engine.fills_of("alice")] == [500, 500, 500]


# ---------------------------------------------------------------- cancel, amend, decrease


def test_cancel_returns_the_reduced_count_and_releases_the_reservation(
    engine: MatchingEngine,
) -> None:
    order = place(engine, "alice", BID, "0.40", 10).order

    cancelled, reduced = engine.cancel_order("alice", order.order_id, NOW)

    assert (cancelled.status, reduced) == (OrderStatus.CANCELED, c(10))
    assert engine.reserved("alice") == 0
    assert engine.book_levels(PLAIN) == ({}, {})


def test_cancelling_another_users_or_an_unknown_order_is_not_found(
    engine: MatchingEngine,
) -> None:
    order = place(engine, "alice", BID, "0.40", 10).order

    assert rejection(lambda: engine.cancel_order("bob", order.order_id, NOW)).status == 404
    assert rejection(lambda: engine.cancel_order("alice", "nope", NOW)).code == "not_found"


def test_cancelling_an_order_that_no_longer_rests_is_not_found(engine: MatchingEngine) -> None:
    order = place(engine, "alice", BID, "0.40", 1).order
    engine.cancel_order("alice", order.order_id, NOW)

    error = rejection(lambda: engine.cancel_order("alice", order.order_id, NOW))

    assert (error.status, error.code) == (404, "not_found")


def test_an_amend_that_strictly_decreases_size_at_the_same_price_keeps_priority(
    engine: MatchingEngine,
) -> None:
    first = place(engine, "alice", BID, "0.50", 5).order
    place(engine, "carol", BID, "0.50", 5)

    engine.amend_order(
        "alice",
        first.order_id,
        ticker=PLAIN,
        book_side=BID,
        price=p("0.50"),
        count=c(3),
        now_ns=NOW,
    )
    place(engine, "bob", ASK, "0.50", 3)

    assert first.status is OrderStatus.EXECUTED
    assert engine.queue_position("carol", engine.orders_of("carol")[0].order_id) == 0


@pytest.mark.parametrize(("price", "contracts"), [("0.50", 6), ("0.51", 5), ("0.50", 5)])
def test_an_amend_that_changes_price_or_does_not_decrease_size_loses_priority(
    engine: MatchingEngine, price: str, contracts: int
) -> None:
    first = place(engine, "alice", BID, "0.50", 5).order
    other = place(engine, "carol", BID, price, 5).order

    engine.amend_order(
        "alice",
        first.order_id,
        ticker=PLAIN,
        book_side=BID,
        price=p(price),
        count=c(contracts),
        now_ns=NOW,
    )

    assert engine.queue_position("alice", first.order_id) == other.remaining
    assert engine.queue_position("carol", other.order_id) == 0


def test_an_amend_count_is_the_filled_count_plus_the_new_remaining(
    engine: MatchingEngine,
) -> None:
    order = place(engine, "alice", BID, "0.50", 10).order
    place(engine, "bob", ASK, "0.50", 4)

    engine.amend_order(
        "alice",
        order.order_id,
        ticker=PLAIN,
        book_side=BID,
        price=p("0.49"),
        count=c(7),
        now_ns=NOW,
    )

    assert (order.filled, order.remaining, order.price) == (c(4), c(3), p("0.49"))
    assert engine.book_levels(PLAIN) == ({p("0.49"): c(3)}, {})


def test_an_amend_that_crosses_trades_at_once(engine: MatchingEngine) -> None:
    order = place(engine, "alice", BID, "0.45", 5).order
    place(engine, "bob", ASK, "0.48", 2)

    result = engine.amend_order(
        "alice",
        order.order_id,
        ticker=PLAIN,
        book_side=BID,
        price=p("0.48"),
        count=c(5),
        now_ns=NOW,
    )

    assert [(f.yes_price, f.count, f.is_taker) for f in result.fills] == [(p("0.48"), c(2), True)]
    assert engine.book_levels(PLAIN) == ({p("0.48"): c(3)}, {})


def test_an_amend_with_the_wrong_ticker_side_or_count_is_rejected(
    engine: MatchingEngine,
) -> None:
    order = place(engine, "alice", BID, "0.45", 5).order
    place(engine, "bob", ASK, "0.45", 2)

    def amend(ticker: str, side: BookSide, count: Qty) -> None:
        engine.amend_order(
            "alice",
            order.order_id,
            ticker=ticker,
            book_side=side,
            price=p("0.45"),
            count=count,
            now_ns=NOW,
        )

    assert rejection(lambda: amend(MAKER, BID, c(5))).code == "order_ticker_mismatch"
    assert rejection(lambda: amend(PLAIN, ASK, c(5))).code == "order_side_mismatch"
    assert rejection(lambda: amend(PLAIN, BID, c(2))).code == "invalid_order_size"


def test_an_amend_can_change_the_client_order_id_to_an_unused_one(
    engine: MatchingEngine,
) -> None:
    order = place(engine, "alice", BID, "0.45", 5, client_order_id="a").order
    place(engine, "alice", BID, "0.44", 5, client_order_id="b")

    def amend(new_id: str) -> None:
        engine.amend_order(
            "alice",
            order.order_id,
            ticker=PLAIN,
            book_side=BID,
            price=p("0.46"),
            count=c(5),
            now_ns=NOW,
            updated_client_order_id=new_id,
        )

    assert rejection(lambda: amend("b")).code == "order_already_exists"
    amend("c")
    assert order.client_order_id == "c"


def test_an_amend_that_needs_more_collateral_than_available_changes_nothing() -> None:
    engine = make_engine()
    engine.open_account("dave", parse_money("5"))
    order = place(engine, "dave", BID, "0.40", 10).order

    error = rejection(
        lambda: engine.amend_order(
            "dave",
            order.order_id,
            ticker=PLAIN,
            book_side=BID,
            price=p("0.45"),
            count=c(11),
            now_ns=NOW,
        )
    )

    assert error.code == "available_balance_too_low"
    assert (order.price, order.remaining) == (p("0.40"), c(10))
    assert engine.reserved("dave") == parse_money("4.20")


def test_decrease_by_reduces_the_remaining_and_keeps_priority(engine: MatchingEngine) -> None:
    first = place(engine, "alice", BID, "0.50", 5).order
    place(engine, "carol", BID, "0.50", 5)

    engine.decrease_order("alice", first.order_id, reduce_by=c(2), reduce_to=None, now_ns=NOW)

    assert first.remaining == c(3)
    assert engine.queue_position("alice", first.order_id) == 0
    assert engine.book_levels(PLAIN) == ({p("0.50"): c(8)}, {})


def test_decrease_to_zero_cancels_the_order(engine: MatchingEngine) -> None:
    order = place(engine, "alice", BID, "0.50", 5).order

    engine.decrease_order("alice", order.order_id, reduce_by=None, reduce_to=0, now_ns=NOW)

    assert order.status is OrderStatus.CANCELED
    assert engine.reserved("alice") == 0


def test_decrease_needs_exactly_one_of_reduce_by_and_reduce_to(engine: MatchingEngine) -> None:
    order = place(engine, "alice", BID, "0.50", 5).order

    both = rejection(
        lambda: engine.decrease_order("alice", order.order_id, reduce_by=1, reduce_to=1, now_ns=NOW)
    )
    neither = rejection(
        lambda: engine.decrease_order(
            "alice", order.order_id, reduce_by=None, reduce_to=None, now_ns=NOW
        )
    )

    assert (both.code, neither.code) == ("invalid_order", "invalid_order")


def test_reduce_only_caps_the_count_at_the_position(engine: MatchingEngine) -> None:
    place(engine, "alice", ASK, "0.50", 3)
    place(engine, "bob", BID, "0.50", 3)

    result = place(engine, "bob", ASK, "0.60", 10, reduce_only=True)

    assert result.order.initial == c(3)


def test_reduce_only_that_would_only_increase_the_position_is_rejected(
    engine: MatchingEngine,
) -> None:
    error = rejection(lambda: place(engine, "bob", ASK, "0.60", 10, reduce_only=True))

    assert (error.status, error.code) == (400, "invalid_order")
    assert "reduce_only" in error.message


# ---------------------------------------------------------------- pause, lifecycle, expiry


def test_a_trading_pause_refuses_places_and_amends_but_allows_cancels(
    engine: MatchingEngine,
) -> None:
    order = place(engine, "alice", BID, "0.50", 5).order
    engine.set_trading_active(False, NOW)

    place_error = rejection(lambda: place(engine, "alice", BID, "0.40", 1))
    amend_error = rejection(
        lambda: engine.amend_order(
            "alice",
            order.order_id,
            ticker=PLAIN,
            book_side=BID,
            price=p("0.49"),
            count=c(5),
            now_ns=NOW,
        )
    )
    engine.cancel_order("alice", order.order_id, NOW)

    assert (place_error.status, place_error.code) == (400, "trading_is_paused")
    assert amend_error.code == "trading_is_paused"
    assert order.status is OrderStatus.CANCELED


def test_a_trading_pause_cancels_only_cancel_on_pause_orders(engine: MatchingEngine) -> None:
    keep = place(engine, "alice", BID, "0.40", 1).order
    drop = place(engine, "alice", BID, "0.41", 1, cancel_order_on_pause=True).order

    engine.set_trading_active(False, NOW)

    assert (keep.status, drop.status) == (OrderStatus.RESTING, OrderStatus.CANCELED)
    assert engine.trading_active is False


def test_a_deactivated_market_refuses_orders_and_its_reactivation_cancels_resting_orders(
    engine: MatchingEngine,
) -> None:
    order = place(engine, "alice", BID, "0.40", 1).order
    engine.set_market_active(PLAIN, False, NOW)

    error = rejection(lambda: place(engine, "alice", BID, "0.40", 1))
    engine.set_market_active(PLAIN, True, NOW)

    assert (error.status, error.code) == (400, "market_inactive")
    assert order.status is OrderStatus.CANCELED
    events = [e for e in engine.drain_events() if isinstance(e, MarketLifecycle)]
    assert [(e.event_type, e.is_deactivated) for e in events] == [
        ("deactivated", True),
        ("activated", False),
    ]


def test_close_cancels_resting_orders_and_every_later_order_operation_is_market_closed(
    engine: MatchingEngine,
) -> None:
    order = place(engine, "alice", BID, "0.40", 1).order

    engine.close_market(PLAIN, NOW)

    assert order.status is OrderStatus.CANCELED
    assert engine.markets[PLAIN].status is MarketStatus.CLOSED
    calls = [
        lambda: place(engine, "alice", BID, "0.40", 1),
        lambda: engine.cancel_order("alice", order.order_id, NOW),
        lambda: engine.decrease_order(
            "alice", order.order_id, reduce_by=1, reduce_to=None, now_ns=NOW
        ),
        lambda: engine.amend_order(
            "alice",
            order.order_id,
            ticker=PLAIN,
            book_side=BID,
            price=p("0.4"),
            count=1,
            now_ns=NOW,
        ),
    ]
    for call in calls:
        error = rejection(call)
        assert (error.status, error.code) == (409, "market_closed")


def test_orders_are_refused_once_the_close_time_has_passed(engine: MatchingEngine) -> None:
    error = rejection(lambda: place(engine, "alice", BID, "0.40", 1, now_ns=CLOSE))

    assert error.code == "market_closed"


def test_the_schedule_closes_markets_past_their_close_time_and_opens_due_ones(
    engine: MatchingEngine,
) -> None:
    engine.update_close_time(MAKER, NOW + 5, NOW)
    engine.markets[SUB].status = MarketStatus.INITIALIZED
    early = rejection(lambda: place(engine, "alice", BID, "0.40", 1, ticker=SUB))

    changed = engine.apply_schedule(NOW + 5)

    assert early.code == "market_inactive"
    assert changed == [MAKER, SUB]
    assert engine.markets[MAKER].status is MarketStatus.CLOSED
    assert engine.markets[SUB].status is MarketStatus.ACTIVE
    assert engine.markets[PLAIN].status is MarketStatus.ACTIVE


def test_moving_the_close_time_into_the_future_reopens_a_closed_market(
    engine: MatchingEngine,
) -> None:
    engine.close_market(PLAIN, NOW)
    engine.drain_events()

    engine.update_close_time(PLAIN, NOW + 10**12, NOW)

    assert engine.markets[PLAIN].status is MarketStatus.ACTIVE
    assert [e.event_type for e in engine.drain_events() if isinstance(e, MarketLifecycle)] == [
        "close_date_updated",
        "activated",
    ]


def test_settlement_pays_a_dollar_per_winning_net_contract_and_writes_rows(
    engine: MatchingEngine,
) -> None:
    place(engine, "alice", BID, "0.30", 10)
    place(engine, "bob", ASK, "0.30", 10)  # alice +10 YES at 0.30, bob 10 NO at 0.70
    alice_cash = engine.balance("alice")
    engine.determine_market(PLAIN, "no", NOW)

    engine.settle_market(PLAIN, NOW + 1)

    assert engine.balance("alice") == alice_cash
    (bob_row,) = engine.settlements_of("bob")
    assert (bob_row.no_count, bob_row.no_total_cost, bob_row.revenue, bob_row.value) == (
        c(10),
        p("0.70") * c(10),
        ONE_DOLLAR * c(10),
        0,
    )
    assert engine.settlements_of("alice")[0].revenue == 0
    assert engine.positions_of("bob") == {}
    assert engine.markets[PLAIN].status is MarketStatus.FINALIZED
    assert engine.open_interest(PLAIN) == 0
    lifecycle = [e for e in engine.drain_events() if isinstance(e, MarketLifecycle)]
    assert [(e.event_type, e.result) for e in lifecycle] == [
        ("close_date_updated", None),
        ("determined", "no"),
        ("settled", "no"),
    ]


def test_settling_a_market_that_is_not_determined_is_an_illegal_transition(
    engine: MatchingEngine,
) -> None:
    with pytest.raises(IllegalTransition):
        engine.settle_market(PLAIN, NOW)
    with pytest.raises(ValueError, match="result"):
        engine.determine_market(PLAIN, "maybe", NOW)


def test_expire_orders_cancels_orders_whose_expiration_has_come(engine: MatchingEngine) -> None:
    now_s = NOW // 1_000_000_000
    short = place(engine, "alice", BID, "0.40", 1, expiration_s=now_s + 5).order
    long = place(engine, "alice", BID, "0.41", 1, expiration_s=now_s + 50).order

    expired = engine.expire_orders(NOW + 5 * 1_000_000_000)

    assert expired == 1
    assert (short.status, long.status) == (OrderStatus.CANCELED, OrderStatus.RESTING)


# ---------------------------------------------------------------- order groups


def test_a_group_triggers_when_its_rolling_fills_exceed_the_limit(engine: MatchingEngine) -> None:
    group = engine.create_order_group("alice", c(5), NOW)
    first = place(engine, "alice", BID, "0.50", 4, order_group_id=group).order
    second = place(engine, "alice", BID, "0.49", 4, order_group_id=group).order

    place(engine, "bob", ASK, "0.49", 6, time_in_force=TimeInForce.IOC)

    assert first.status is OrderStatus.EXECUTED
    assert (second.filled, second.status) == (c(2), OrderStatus.CANCELED)
    assert engine.order_group("alice", group).is_auto_cancel_enabled is False
    error = rejection(lambda: place(engine, "alice", BID, "0.40", 1, order_group_id=group))
    assert error.code == "invalid_order"


def test_a_reset_group_accepts_orders_again(engine: MatchingEngine) -> None:
    group = engine.create_order_group("alice", c(5), NOW)
    engine.trigger_order_group("alice", group, NOW)

    engine.reset_order_group("alice", group, NOW)
    result = place(engine, "alice", BID, "0.40", 1, order_group_id=group)

    assert engine.order_group("alice", group).order_ids == (result.order.order_id,)


def test_fills_older_than_fifteen_seconds_leave_the_rolling_window(
    engine: MatchingEngine,
) -> None:
    group = engine.create_order_group("alice", c(5), NOW)
    place(engine, "alice", BID, "0.50", 4, order_group_id=group)
    place(engine, "bob", ASK, "0.50", 4)
    later = NOW + 15 * 1_000_000_000
    order = place(engine, "alice", BID, "0.50", 4, order_group_id=group, now_ns=later).order

    place(engine, "bob", ASK, "0.50", 4, now_ns=later)

    assert order.status is OrderStatus.EXECUTED
    assert engine.order_group("alice", group).is_auto_cancel_enabled is True


def test_lowering_a_group_limit_below_its_rolling_volume_triggers_it(
    engine: MatchingEngine,
) -> None:
    group = engine.create_order_group("alice", c(10), NOW)
    place(engine, "alice", BID, "0.50", 4, order_group_id=group)
    place(engine, "bob", ASK, "0.50", 4)
    resting = place(engine, "alice", BID, "0.45", 1, order_group_id=group).order

    engine.set_order_group_limit("alice", group, c(3), NOW)

    assert resting.status is OrderStatus.CANCELED
    kinds = [e.event_type for e in engine.drain_events() if isinstance(e, OrderGroupUpdate)]
    assert kinds == ["created", "limit_updated", "triggered"]


def test_deleting_a_group_cancels_its_orders_and_forgets_it(engine: MatchingEngine) -> None:
    group = engine.create_order_group("alice", c(10), NOW)
    order = place(engine, "alice", BID, "0.45", 1, order_group_id=group).order

    engine.delete_order_group("alice", group, NOW)

    assert order.status is OrderStatus.CANCELED
    assert engine.order_groups_of("alice") == []
    assert rejection(lambda: engine.order_group("alice", group)).status == 404


def test_a_group_limit_outside_one_to_a_million_contracts_is_rejected(
    engine: MatchingEngine,
) -> None:
    assert rejection(lambda: engine.create_order_group("alice", 99)).code == "invalid_parameters"
    error = rejection(lambda: engine.create_order_group("alice", c(1_000_001)))
    assert error.status == 400


# ---------------------------------------------------------------- events and ids


def test_a_match_emits_its_events_in_order(engine: MatchingEngine) -> None:
    place(engine, "alice", BID, "0.50", 5, client_order_id="maker")
    engine.drain_events()

    place(engine, "bob", ASK, "0.50", 2, client_order_id="taker")

    events = engine.drain_events()
    assert [type(e) for e in events] == [
        BookChange,
        TradePrint,
        FillEvent,
        OrderUpdate,
        PositionUpdate,
        FillEvent,
        OrderUpdate,
        PositionUpdate,
    ]
    change = events[0]
    assert isinstance(change, BookChange)
    assert (change.outcome, change.price, change.delta) == (Outcome.YES, p("0.50"), -c(2))
    assert (change.user_id, change.client_order_id) == ("bob", "taker")
    fills = [e.fill for e in events if isinstance(e, FillEvent)]
    assert [(f.user_id, f.is_taker, f.book_side) for f in fills] == [
        ("bob", True, ASK),
        ("alice", False, BID),
    ]


def test_order_updates_carry_snapshots_not_the_live_order(engine: MatchingEngine) -> None:
    order = place(engine, "alice", BID, "0.50", 5).order
    (update,) = [e for e in engine.drain_events() if isinstance(e, OrderUpdate)]

    place(engine, "bob", ASK, "0.50", 5)

    assert update.order.remaining == c(5)
    assert order.remaining == 0


def test_a_no_side_change_is_reported_at_the_no_price(engine: MatchingEngine) -> None:
    place(engine, "alice", ASK, "0.62", 3, client_order_id="x")

    (change,) = [e for e in engine.drain_events() if isinstance(e, BookChange)]

    assert (change.outcome, change.price, change.delta) == (Outcome.NO, p("0.38"), c(3))
    assert (change.user_id, change.client_order_id) == ("alice", "x")


def test_an_amend_reports_the_old_and_the_new_level_as_the_owners_changes(
    engine: MatchingEngine,
) -> None:
    order = place(engine, "alice", ASK, "0.60", 4, client_order_id="q1").order
    engine.drain_events()

    engine.amend_order(
        "alice",
        order.order_id,
        ticker=PLAIN,
        book_side=ASK,
        price=p("0.58"),
        count=c(4),
        now_ns=NOW,
        updated_client_order_id="q2",
    )

    changes = [e for e in engine.drain_events() if isinstance(e, BookChange)]
    assert [(e.outcome, e.price, e.delta, e.user_id, e.client_order_id) for e in changes] == [
        (Outcome.NO, p("0.40"), -c(4), "alice", "q2"),
        (Outcome.NO, p("0.42"), c(4), "alice", "q2"),
    ]


def test_a_cancel_by_the_exchange_names_no_user(engine: MatchingEngine) -> None:
    place(engine, "alice", BID, "0.40", 1, client_order_id="x")
    engine.drain_events()

    engine.close_market(PLAIN, NOW)

    changes = [e for e in engine.drain_events() if isinstance(e, BookChange)]
    assert [(e.delta, e.user_id, e.client_order_id) for e in changes] == [(-c(1), None, None)]


def test_without_recorded_events_the_engine_still_matches() -> None:
    engine = make_engine(record_events=False)
    place(engine, "alice", BID, "0.50", 5)

    result = place(engine, "bob", ASK, "0.50", 5)

    assert len(result.fills) == 1
    assert engine.fills_of("alice")[0].count == c(5)
    assert engine.drain_events() == []


def test_ids_come_from_counters_so_equal_runs_give_equal_ids() -> None:
    runs = []
    for _ in range(2):
        engine = make_engine()
        place(engine, "alice", BID, "0.50", 5)
        result = place(engine, "bob", ASK, "0.50", 2)
        runs.append((result.order.order_id, result.fills[0].trade_id))

    assert runs[0] == runs[1]
    assert runs[0][0] != runs[0][1]


def test_the_statistics_follow_the_trades(engine: MatchingEngine) -> None:
    place(engine, "alice", BID, "0.50", 5)
    place(engine, "bob", ASK, "0.50", 2)
    place(engine, "bob", ASK, "0.50", 1)

    assert engine.volume(PLAIN) == c(3)
    assert engine.open_interest(PLAIN) == c(3)
    assert [t.count for t in engine.trades(PLAIN)] == [c(2), c(1)]
    assert engine.trades() == engine.trades(PLAIN)
    assert [o.order_id for o in engine.resting_orders(PLAIN)] == [
        engine.orders_of("alice")[0].order_id
    ]
