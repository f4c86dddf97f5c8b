from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmm.execution.inventory import Portfolio, Position, SeenIds, settlement_mark
from kmm.types import ONE_DOLLAR, BookSide, Fill, Outcome

TICKER = "KXHIGHNY-26AUG22-T85"
BID, ASK = BookSide.BID, BookSide.ASK


def _fill(
    trade_id: str,
    side: BookSide,
    price: int,
    qty: int,
    fee: int = 0,
    ticker: str = TICKER,
) -> Fill:
    return Fill(
        trade_id=trade_id,
        order_id="ex-1",
        ticker=ticker,
        side=side,
        price=price,
        qty=qty,
        fee=fee,
        is_taker=False,
        ts_ms=1,
    )


def test_the_hand_worked_example_realizes_exactly() -> None:
    # Units: price $0.0001, qty 0.01 contract, money $0.000001 (= price × qty)
    pos = Position(TICKER)

    # Buy 10 YES at 40¢ paying a 16.8¢ fee: position +10, cost $4.00
    assert pos.apply(BID, 4000, 1000, fee=168_000) == -168_000
    # Buy 5 YES at 50¢: two lots
    assert pos.apply(BID, 5000, 500) == 0
    assert (pos.qty, pos.open_cost) == (1500, 6_500_000)
    # Sell 12 at 55¢ (1¢ fee): closes 10 @ 40¢ (+$1.50) and 2 @ 50¢ (+$0.10)
    assert pos.apply(ASK, 5500, 1200, fee=10_000) == 1_590_000
    assert (pos.qty, list(pos.lots())) == (300, [(5000, 300)])
    assert pos.unrealized(6000) == 300_000
    # Sell 5 at 60¢: closes 3 @ 50¢ (+$0.30), then opens 2 NO (short YES at 60¢)
    assert pos.apply(ASK, 6000, 500) == 300_000
    assert (pos.qty, list(pos.lots())) == (-200, [(6000, 200)])
    assert pos.unrealized(5000) == 200_000
    # Buy 2 YES at 30¢: closes the NO lot, +(60¢ - 30¢) × 2
    assert pos.apply(BID, 3000, 200) == 600_000

    assert pos.qty == 0
    assert pos.realized == 2_322_000
    assert pos.fees_paid == 178_000
    assert (pos.bought, pos.sold) == (1700, 1700)


def test_selling_yes_without_a_position_opens_no() -> None:
    pos = Position(TICKER)

    pos.apply(ASK, 6000, 500)

    assert pos.qty == -500
    # Short YES at 60¢ is long NO at 40¢: it gains when YES falls
    assert pos.unrealized(5000) == 500_000


def test_a_no_buy_reduces_a_yes_position() -> None:
    pos = Position(TICKER)
    pos.apply(BID, 5000, 1000)

    pos.apply(ASK, 5200, 400)

    assert pos.qty == 600
    assert pos.realized == 200 * 400


def test_a_fill_that_crosses_zero_flips_the_position() -> None:
    pos = Position(TICKER)
    pos.apply(BID, 5000, 300)

    pos.apply(ASK, 5100, 800)

    assert pos.qty == -500
    assert list(pos.lots()) == [(5100, 500)]
    assert pos.realized == 100 * 300


@pytest.mark.parametrize(
    ("result", "value", "expected"),
    [("yes", None, 1_500_000), ("no", None, -1_500_000), ("scalar", 2500, -750_000)],
)
def test_settlement_realizes_everything_at_the_result(
    result: str, value: int | None, expected: int
) -> None:
    pos = Position(TICKER)
    pos.apply(BID, 5000, 300)

    pnl = pos.settle(result, value)  # type: ignore[arg-type]

    assert pnl == expected
    assert (pos.qty, pos.open_cost, list(pos.lots())) == (0, 0, [])
    assert pos.realized == expected


def test_a_no_position_wins_when_the_market_settles_no() -> None:
    pos = Position(TICKER)
    pos.apply(ASK, 6000, 200)

    # Two NO contracts bought at 40¢ pay $1 each
    assert pos.settle(Outcome.NO) == 1_200_000


def test_a_settlement_fee_is_paid_out_of_realized_pnl() -> None:
    pos = Position(TICKER)
    pos.apply(BID, 5000, 100)

    pnl = pos.settle("scalar", 5012, fee=1_000)

    assert pnl == 12 * 100 - 1_000
    assert pos.fees_paid == 1_000


@pytest.mark.parametrize(("result", "value"), [("scalar", None), ("scalar", 10_001), ("void", 0)])
def test_an_impossible_settlement_is_refused(result: str, value: int | None) -> None:
    with pytest.raises(ValueError, match=result):
        settlement_mark(result, value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("price", "qty", "fee"), [(5000, 0, 0), (5000, -100, 0), (10_001, 100, 0), (5000, 100, -1)]
)
def test_an_impossible_fill_is_refused(price: int, qty: int, fee: int) -> None:
    pos = Position(TICKER)

    with pytest.raises(ValueError, match=TICKER):
        pos.apply(BID, price, qty, fee)


def test_the_portfolio_counts_each_trade_once() -> None:
    portfolio = Portfolio()

    first = portfolio.on_fill(_fill("t1", BID, 5000, 100))
    again = portfolio.on_fill(_fill("t1", BID, 5000, 100))

    assert (first, again) == (True, False)
    assert portfolio.net_qty(TICKER) == 100


def test_the_portfolio_totals_every_market() -> None:
    portfolio = Portfolio()
    portfolio.on_fill(_fill("t1", BID, 5000, 100, fee=700))
    portfolio.on_fill(_fill("t2", ASK, 3000, 200, ticker="OTHER"))
    portfolio.on_fill(_fill("t3", ASK, 5500, 100))

    marks = {"OTHER": 2000}

    assert portfolio.realized() == 500 * 100 - 700
    assert portfolio.fees_paid() == 700
    assert portfolio.unrealized(marks) == 1000 * 200
    assert portfolio.total_pnl(marks) == 500 * 100 - 700 + 1000 * 200
    assert portfolio.net_qty("NEVER") == 0


def test_an_open_position_without_a_mark_is_an_error_naming_the_market() -> None:
    portfolio = Portfolio()
    portfolio.on_fill(_fill("t1", BID, 5000, 100))

    with pytest.raises(ValueError, match=TICKER):
        portfolio.unrealized({})


def test_portfolio_settlement_closes_the_market() -> None:
    portfolio = Portfolio()
    portfolio.on_fill(_fill("t1", BID, 4000, 100))

    pnl = portfolio.settle(TICKER, "yes")

    assert pnl == 6000 * 100
    assert portfolio.unrealized({}) == 0


def test_seen_ids_forget_the_oldest_beyond_capacity() -> None:
    seen = SeenIds(capacity=2)

    assert [seen.add(k) for k in ("a", "b", "a", "c")] == [True, True, False, True]

    assert "a" not in seen
    assert "b" in seen and "c" in seen
    assert len(seen) == 2


_FILLS = st.lists(
    st.tuples(
        st.sampled_from([BID, ASK]),
        st.integers(1, ONE_DOLLAR - 1),
        st.integers(1, 5_000),
        st.integers(0, 50_000),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(fills=_FILLS, mark=st.integers(0, ONE_DOLLAR))
def test_pnl_always_equals_the_cash_flow_identity(
    fills: list[tuple[BookSide, int, int, int]], mark: int
) -> None:
    portfolio = Portfolio()
    cash = 0
    signed = 0
    for i, (side, price, qty, fee) in enumerate(fills):
        portfolio.on_fill(_fill(f"t{i}", side, price, qty, fee))
        sign = 1 if side is BID else -1
        cash += -sign * price * qty - fee
        signed += sign * qty

    pos = portfolio.position(TICKER)

    assert pos.qty == signed
    assert pos.realized + pos.unrealized(mark) == cash + signed * mark
    assert sum(q for _, q in pos.lots()) == abs(signed)
    assert pos.open_cost == sum(p * q for p, q in pos.lots())
