"""Per-market overrides: validation, the diff, and what the trading core does with them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from kmm.book.grid import PriceGrid
from kmm.config import KmmConfig, MarketOverride, load_config
from kmm.core.controls import MarketControls, override_diff, override_params
from kmm.core.planner import StartCancels, StartCreate
from kmm.errors import ConfigError
from kmm.kalshi.rest import CreateAck
from kmm.pipeline import MarketSpec
from kmm.risk.guards import Cause
from kmm.strategy.exit import ExitStyle
from kmm.strategy.quoter import StrategyParams
from kmm.types import BookSide
from tests.unit.test_trading_core import MS, T0, TICKER, _core, _of, _snapshot


def test_an_override_changes_only_the_parameters_it_names() -> None:
    base = StrategyParams()
    override = MarketOverride(gamma=0.9, min_spread_cents=Decimal("4"), order_size_contracts=20)

    params = override_params(base, override)

    assert (params.gamma, params.min_spread, params.base_qty) == (0.9, 400, 2000)
    assert params.max_order_qty == 2000  # raised with the order size
    assert (params.eta, params.edge, params.max_position) == (
        base.eta,
        base.edge,
        base.max_position,
    )


def test_an_override_never_raises_the_position_cap_above_the_runs() -> None:
    base = StrategyParams(max_position=5000)

    assert override_params(base, MarketOverride(max_position_contracts=80)).max_position == 5000
    assert override_params(base, MarketOverride(max_position_contracts=10)).max_position == 1000


def test_a_set_giving_invalid_parameters_is_refused_whole() -> None:
    controls = MarketControls(StrategyParams(), {"KXA": MarketOverride(gamma=0.7)})

    with pytest.raises(ConfigError) as caught:
        controls.replace_all(
            {
                "KXA": MarketOverride(gamma=0.9),
                "KXB": MarketOverride(min_spread_cents=Decimal(50), max_spread_cents=Decimal(10)),
            }
        )

    assert caught.value.problems[0].startswith("markets.overrides.KXB: ")
    assert controls.get("KXA").gamma == 0.7  # nothing changed


def test_the_diff_names_every_changed_field_with_both_values() -> None:
    old = {"KXA": MarketOverride(gamma=0.5), "KXC": MarketOverride(enabled=False)}
    new = {"KXA": MarketOverride(gamma=0.8, reduce_only=True), "KXB": MarketOverride(eta=0.1)}

    assert override_diff(old, new) == [
        "KXA: reduce_only false -> true, gamma 0.5 -> 0.8",
        "KXB: eta the run's -> 0.1",
        "KXC: enabled false -> true",
    ]


def test_an_update_through_the_api_is_checked_like_the_config_file() -> None:
    controls = MarketControls(StrategyParams(), {})

    with pytest.raises(ConfigError) as caught:
        controls.update("KXA", {"gamma": -1})
    assert caught.value.problems == ["markets.overrides.KXA.gamma: must be > 0, got -1"]
    with pytest.raises(ConfigError) as caught:
        controls.update("KXA", {"gama": 1})
    assert caught.value.problems == ["markets.overrides.KXA.gama: unknown field"]

    lines, changed = controls.update("KXA", {"gamma": 1.5})
    assert lines == ["KXA: gamma the run's -> 1.5"] and changed == {"KXA"}
    lines, changed = controls.update("KXA", {"gamma": None})
    assert lines == ["KXA: gamma 1.5 -> the run's"] and controls.overrides == {}


def test_the_config_file_refuses_a_bad_override_with_one_line(tmp_path: Any) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("markets:\n  overrides:\n    KXA-26: {min_spread_cents: -1}\n")

    with pytest.raises(ConfigError) as caught:
        load_config(path, {})

    assert caught.value.problems == [
        "markets.overrides.KXA-26.min_spread_cents: must be >= 0, got -1"
    ]


def _quoting_core(**overrides: Any) -> Any:
    core, _ = _core()
    if overrides:
        core.set_overrides({TICKER: MarketOverride(**overrides)}, T0)
    core.on_frame(_snapshot(), T0)
    core.decide_quotes(T0 + MS)
    return core


def test_disabling_a_market_cancels_its_orders_and_enabling_quotes_it_again() -> None:
    core = _quoting_core()
    assert len(_of(StartCreate, core.take_actions())) == 2

    lines = core.update_override(TICKER, {"enabled": False}, T0 + 2 * MS)

    assert lines == [f"{TICKER}: enabled true -> false"]
    assert TICKER in core.risk.disabled
    gated = core.gate(core.pipeline.decide(TICKER, T0 + 3 * MS), T0 + 3 * MS)
    assert gated.bid_price is None and gated.ask_price is None
    assert core.risk.modes[TICKER][1] == Cause.DISABLED
    core.update_override(TICKER, {"enabled": True}, T0 + 4 * MS)
    gated = core.gate(core.pipeline.decide(TICKER, T0 + 5 * MS), T0 + 5 * MS)
    assert gated.bid_price is not None and gated.ask_price is not None


def test_a_market_disabled_in_the_config_is_never_quoted() -> None:
    config = KmmConfig.model_validate({"markets": {"overrides": {TICKER: {"enabled": False}}}})
    core, _ = _core()
    core.set_overrides(config.markets.overrides, T0)
    core.on_frame(_snapshot(), T0)
    core.decide_quotes(T0 + MS)

    assert _of(StartCreate, core.take_actions()) == []


def test_reduce_only_quotes_only_the_side_that_reduces() -> None:
    core = _quoting_core(reduce_only=True)

    assert _of(StartCreate, core.take_actions()) == []  # flat: nothing reduces
    assert TICKER in core.risk.reduce_only
    assert core.risk.modes[TICKER][1] == Cause.REDUCE_ONLY


def test_reduce_only_outlives_an_exit_of_the_same_market() -> None:
    core = _quoting_core(reduce_only=True)
    core.start_exit([TICKER], ExitStyle.PASSIVE, "test", T0 + 2 * MS)

    core.end_exit(TICKER, T0 + 3 * MS)

    assert TICKER in core.risk.reduce_only


def test_parameters_of_one_market_change_its_quote_and_come_back() -> None:
    core = _quoting_core()
    core.take_actions()
    wide = core.update_override(TICKER, {"min_spread_cents": "20"}, T0 + 2 * MS)
    assert wide == [f"{TICKER}: min_spread_cents the run's -> 20"]
    quote = core.pipeline.markets[TICKER].quote
    assert quote is not None and quote.bid_price is not None and quote.ask_price is not None
    assert quote.ask_price - quote.bid_price >= 2000
    assert core.pipeline.markets[TICKER].params.min_spread == 2000

    core.set_overrides({}, T0 + 3 * MS)

    assert core.pipeline.markets[TICKER].params == core.pipeline.params


def test_an_override_cap_limits_the_markets_position_checks() -> None:
    core = _quoting_core(max_position_contracts=3)

    assert core.risk.max_position(TICKER) == 300
    core.set_overrides({}, T0 + MS)
    assert TICKER not in core.risk.market_caps


def test_an_override_for_a_market_not_traded_yet_applies_when_it_is_added() -> None:
    core, _ = _core()
    core.set_overrides({"KXLATER-26": MarketOverride(gamma=2.0)}, T0)

    core.add_market(MarketSpec("KXLATER-26", PriceGrid.linear_cent(), None, 0.0))

    assert core.pipeline.markets["KXLATER-26"].params.gamma == 2.0


def test_cancels_follow_a_disable() -> None:
    core = _quoting_core()
    creates = _of(StartCreate, core.take_actions())
    assert {c.order.side for c in creates} == {BookSide.BID, BookSide.ASK}
    assert core.planner is not None
    for start in creates:
        ack = CreateAck(f"v-{start.req.client_order_id}", None, 0, start.order.count, None)
        core.planner.on_created(start.req, ack, T0 + MS)

    core.update_override(TICKER, {"enabled": False}, T0 + 2 * MS)
    core.plan(T0 + 2 * MS)

    cancels = _of(StartCancels, core.take_actions())
    assert cancels, "a disabled market's resting orders are cancelled"
