"""The matching engine's subaccounts: separate cash and books per subaccount of one user.

See ``kalshi-docs/getting_started/subaccounts.md``: 0 is the primary account, 1–63 are
numbered subaccounts created in order; cash moves between them only by transfers.
"""

from __future__ import annotations

import pytest

from kmm.sim.engine import (
    FillEvent,
    MatchingEngine,
    OrderStatus,
    PositionUpdate,
    SelfTradePrevention,
    TimeInForce,
)
from kmm.types import BookSide, parse_money
from tests.unit.test_sim_engine import BALANCE, NOW, PLAIN, c, make_engine, place, rejection

BID = BookSide.BID
ASK = BookSide.ASK


@pytest.fixture
def engine() -> MatchingEngine:
    engine = make_engine()
    assert engine.create_subaccount("alice") == 1
    engine.transfer("alice", "t-1", 0, 1, parse_money("100"), NOW)
    return engine


def test_a_transfer_moves_available_cash_and_the_user_total_is_unchanged(
    engine: MatchingEngine,
) -> None:
    assert engine.balance("alice") == BALANCE - parse_money("100")
    assert engine.balance("alice", 1) == parse_money("100")
    assert [
        (t.from_subaccount, t.to_subaccount, t.amount) for t in engine.transfers_of("alice")
    ] == [(0, 1, parse_money("100"))]


def test_a_transfer_id_used_before_is_refused_and_not_applied_again(
    engine: MatchingEngine,
) -> None:
    refused = rejection(lambda: engine.transfer("alice", "t-1", 0, 1, parse_money("1"), NOW))

    assert (refused.status, refused.code) == (409, "conflict")
    assert engine.balance("alice", 1) == parse_money("100")


def test_a_transfer_cannot_take_cash_reserved_for_resting_orders(
    engine: MatchingEngine,
) -> None:
    place(engine, "alice", BID, "0.50", 100, subaccount=1)  # reserves $50 and its fees

    refused = rejection(lambda: engine.transfer("alice", "t-2", 1, 0, parse_money("60"), NOW))

    assert (refused.status, refused.code) == (400, "insufficient_balance")


def test_subaccounts_are_numbered_1_to_63_and_no_more(engine: MatchingEngine) -> None:
    numbers = [engine.create_subaccount("alice") for _ in range(62)]

    refused = rejection(lambda: engine.create_subaccount("alice"))

    assert numbers == list(range(2, 64))
    assert engine.subaccount_numbers("alice") == list(range(64))
    assert (refused.status, refused.code) == (400, "invalid_parameters")


def test_an_order_in_a_subaccount_never_created_is_not_found(engine: MatchingEngine) -> None:
    refused = rejection(lambda: place(engine, "alice", BID, "0.40", 1, subaccount=2))

    assert (refused.status, refused.code) == (404, "not_found")


def test_a_subaccounts_fill_books_its_own_position_cash_and_events(
    engine: MatchingEngine,
) -> None:
    place(engine, "bob", ASK, "0.40", 5)
    engine.drain_events()

    place(engine, "alice", BID, "0.40", 5, subaccount=1)

    events = engine.drain_events()
    (fill,) = [e.fill for e in events if isinstance(e, FillEvent) and e.fill.user_id == "alice"]
    positions = [e for e in events if isinstance(e, PositionUpdate) and e.user_id == "alice"]
    assert fill.subaccount == 1
    assert [e.subaccount for e in positions] == [1]
    assert engine.positions_of("alice", 1)[PLAIN].position == c(5)
    assert engine.positions_of("alice") == {}
    assert engine.balance("alice") == BALANCE - parse_money("100")
    assert engine.balance("alice", 1) == parse_money("100") - parse_money("2") - fill.fee
    assert engine.fills_of("alice", 0) == []
    assert engine.fills_of("alice") == engine.fills_of("alice", 1) == [fill]


def test_orders_are_read_and_cancelled_in_their_own_subaccount_only(
    engine: MatchingEngine,
) -> None:
    primary = place(engine, "alice", BID, "0.30", 1).order
    first = place(engine, "alice", BID, "0.31", 1, subaccount=1).order

    refused = rejection(lambda: engine.cancel_order("alice", first.order_id, NOW))
    engine.cancel_order("alice", first.order_id, NOW, subaccount=1)

    assert (refused.status, refused.code) == (404, "not_found")
    assert first.status is OrderStatus.CANCELED and primary.status is OrderStatus.RESTING
    assert engine.orders_of("alice", 0) == [primary]
    assert engine.orders_of("alice", 1) == [first]
    assert engine.orders_of("alice") == [primary, first]


def test_self_trade_prevention_spans_the_subaccounts_of_one_user(
    engine: MatchingEngine,
) -> None:
    place(engine, "alice", ASK, "0.40", 1)

    taker = place(
        engine, "alice", BID, "0.40", 1, subaccount=1,
        time_in_force=TimeInForce.IOC,
        self_trade_prevention=SelfTradePrevention.TAKER_AT_CROSS,
    ).order  # fmt: skip

    assert taker.filled == 0 and taker.status is OrderStatus.CANCELED


def test_a_client_order_id_is_unique_across_a_users_subaccounts(
    engine: MatchingEngine,
) -> None:
    place(engine, "alice", BID, "0.30", 1, client_order_id="same")

    refused = rejection(
        lambda: place(engine, "alice", BID, "0.30", 1, subaccount=1, client_order_id="same")
    )

    assert (refused.status, refused.code) == (409, "order_already_exists")


def test_an_order_group_takes_only_orders_of_its_subaccount(engine: MatchingEngine) -> None:
    group = engine.create_order_group("alice", c(10), NOW, subaccount=1)

    refused = rejection(lambda: place(engine, "alice", BID, "0.30", 1, order_group_id=group))
    placed = place(engine, "alice", BID, "0.30", 1, subaccount=1, order_group_id=group).order

    assert (refused.status, refused.code) == (404, "not_found")
    assert engine.order_group("alice", group).order_ids == (placed.order_id,)
    assert engine.order_groups_of("alice", 0) == []
    assert [g.id for g in engine.order_groups_of("alice", 1)] == [group]
