"""Queue-position models: trades, cancels, trades through, and their invariants."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmm.backtest.queue import (
    ConservativeQueue,
    ProbabilisticQueue,
    QueueModel,
    QueuePos,
    fill_through,
)

MODELS: list[QueueModel] = [ConservativeQueue(), ProbabilisticQueue(), ProbabilisticQueue(0.5)]


def test_join_takes_the_level_without_us() -> None:
    assert QueuePos.join(500, 100) == QueuePos(500, 100)
    assert QueuePos.join(-3, 100) == QueuePos(0, 100)


@pytest.mark.parametrize("model", MODELS, ids=repr)
def test_trades_eat_the_front_then_fill_us(model: QueueModel) -> None:
    pos = QueuePos.join(500, 200)
    assert model.on_trade(pos, 300) == 0
    assert pos == QueuePos(200, 200)
    assert model.on_trade(pos, 250) == 50
    assert pos == QueuePos(0, 150)
    assert model.on_trade(pos, 1000) == 150
    assert pos == QueuePos(0, 0)
    assert model.on_trade(pos, 100) == 0


@pytest.mark.parametrize("model", MODELS, ids=repr)
def test_trade_through_fills_up_to_the_traded_quantity(model: QueueModel) -> None:
    pos = QueuePos.join(10_000, 300)
    assert fill_through(pos, 100) == 100
    assert pos == QueuePos(0, 200)
    assert fill_through(pos, 900) == 200
    assert pos.remaining == 0


def test_conservative_cancels_never_advance_except_to_the_level() -> None:
    model = ConservativeQueue()
    pos = QueuePos.join(500, 100)
    model.on_level_decrease(pos, 100, 800)  # level 800 -> 700: 500 ahead still fits
    assert pos.ahead == 500
    model.on_level_decrease(pos, 400, 700)  # level 700 -> 300: at most 300 ahead
    assert pos.ahead == 300


def test_probabilistic_cancel_share_follows_hftbacktest_power_function() -> None:
    model = ProbabilisticQueue(2.0)
    # front 100, back 100: half of a cancel of 50 is ahead of us.
    pos = QueuePos(100, 10)
    model.on_level_decrease(pos, 50, 200)
    assert pos.ahead == 75
    # front 300, back 100: f(front)/(f(front)+f(back)) = 9/10 of 100 -> 90 ahead of us.
    pos = QueuePos(300, 10)
    model.on_level_decrease(pos, 100, 400)
    assert pos.ahead == 210
    # front 100, back 300: 1/10 of 100 -> 10.
    pos = QueuePos(100, 10)
    model.on_level_decrease(pos, 100, 400)
    assert pos.ahead == 90


def test_probabilistic_rounds_down_and_overflows_to_the_front() -> None:
    model = ProbabilisticQueue(1.0)
    pos = QueuePos(100, 10)
    model.on_level_decrease(pos, 3, 300)  # 1/3 of 3 ahead = 1 exactly
    assert pos.ahead == 99
    pos = QueuePos(100, 10)
    model.on_level_decrease(pos, 1, 300)  # 1/3 of 1 -> 0 (never more than the model says)
    assert pos.ahead == 100
    # back is 10, a cancel of 100: 10 from behind at most, the other 90 from the front.
    pos = QueuePos(100, 10)
    model.on_level_decrease(pos, 100, 110)
    assert pos.ahead == 10


def test_probabilistic_power_must_be_positive() -> None:
    with pytest.raises(ValueError, match="power"):
        ProbabilisticQueue(0.0)


def test_probabilistic_huge_power_does_not_overflow() -> None:
    pos = QueuePos(1, 10)
    ProbabilisticQueue(500.0).on_level_decrease(pos, 1, 10**9)
    assert pos.ahead == 1


_event = st.one_of(
    st.tuples(st.just("trade"), st.integers(0, 2_000)),
    st.tuples(st.just("cancel"), st.integers(0, 2_000)),
    st.tuples(st.just("add"), st.integers(0, 2_000)),
    st.tuples(st.just("through"), st.integers(0, 2_000)),
)


@settings(max_examples=300, deadline=None)
@given(
    level=st.integers(0, 5_000),
    size=st.integers(1, 1_000),
    power=st.floats(0.1, 8.0),
    events=st.lists(_event, max_size=40),
)
def test_invariants_and_conservative_never_fills_first(
    level: int, size: int, power: float, events: list[tuple[str, int]]
) -> None:
    cons, prob = ConservativeQueue(), ProbabilisticQueue(power)
    pc, pp = QueuePos.join(level, size), QueuePos.join(level, size)
    filled_c = filled_p = 0
    for kind, qty in events:
        if kind == "trade":
            qty = min(qty, level + size)  # a trade at our level cannot exceed it
            got_c, got_p = cons.on_trade(pc, qty), prob.on_trade(pp, qty)
            assert got_c <= qty and got_p <= qty
            level = max(0, level - qty)
        elif kind == "cancel":
            qty = min(qty, level)
            cons.on_level_decrease(pc, qty, level)
            prob.on_level_decrease(pp, qty, level)
            level -= qty
            got_c = got_p = 0
        elif kind == "add":
            level += qty
            got_c = got_p = 0
        else:
            got_c, got_p = fill_through(pc, qty), fill_through(pp, qty)
            assert got_c <= qty and got_p <= qty
            level = 0 if qty else level
        filled_c += got_c
        filled_p += got_p
        for pos in (pc, pp):
            assert pos.ahead >= 0
            assert 0 <= pos.remaining <= size
        assert filled_c + pc.remaining == size
        assert filled_p + pp.remaining == size
        assert pp.ahead <= pc.ahead
        assert filled_c <= filled_p
