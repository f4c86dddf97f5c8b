"""The taker-flow skew (kmm.strategy.flow)."""

from __future__ import annotations

import pytest

from kmm.strategy.flow import TakerFlow

S = 1_000_000_000
T0 = 1_800_000_000 * S


def test_takers_buying_skew_the_quotes_up_and_the_flow_halves_each_half_life() -> None:
    flow = TakerFlow(halflife_s=5.0, per_contract=30.0, cap=300.0)

    flow.on_trade(True, 4.0, T0)
    flow.on_trade(True, 4.0, T0)

    assert flow.flow(T0) == 8.0
    assert flow.skew(T0) == 240.0
    assert flow.flow(T0 + 5 * S) == pytest.approx(4.0)
    assert flow.flow(T0 + 10 * S) == pytest.approx(2.0)


def test_sellers_skew_down_and_the_skew_is_capped() -> None:
    flow = TakerFlow(halflife_s=5.0, per_contract=30.0, cap=300.0)

    flow.on_trade(False, 50.0, T0)

    assert flow.skew(T0) == -300.0


def test_buyers_and_sellers_net_out() -> None:
    flow = TakerFlow(halflife_s=5.0, per_contract=30.0, cap=300.0)

    flow.on_trade(True, 3.0, T0)
    flow.on_trade(False, 3.0, T0)

    assert flow.skew(T0 + S) == 0.0
