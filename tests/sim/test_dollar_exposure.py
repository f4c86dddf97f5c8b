"""The dollar exposure caps in a real backtest: the markets' events and categories come from
the venue (``GET /series``), and at every tick the money at risk, recomputed from the
positions and the orders the bot tracks, stays within every cap while the caps bind."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from kmm.backtest import Backtest, BacktestOptions, default_latencies
from kmm.config import KmmConfig
from kmm.risk.limits import ExposureBook

CAPS = {
    "max_market_exposure_dollars": Decimal(3),
    "max_event_exposure_dollars": Decimal(5),
    "max_total_exposure_dollars": Decimal(8),
    "max_resting_value_dollars": Decimal(6),
}


class _Checked(Backtest):
    """A backtest that recomputes its money at risk from scratch after every tick."""

    def __init__(self, config: KmmConfig, options: BacktestOptions) -> None:
        super().__init__(config, options)
        self.ticks = 0
        self.worst_total = 0
        self.worst_event: dict[str, int] = {}

    def _on_tick(self, now: int, payload: Any) -> None:
        super()._on_tick(now, payload)
        core, book = self.core, ExposureBook()
        for ticker, market in core.pipeline.markets.items():
            book.set_group(ticker, market.spec.event_ticker, market.spec.category)
            book.refresh(ticker, core.portfolio, core.tracker)
        limits = core.risk.limits
        assert limits.max_total_exposure is not None and limits.max_resting_value is not None
        assert limits.max_market_exposure is not None and limits.max_event_exposure is not None
        assert book.total_dollars <= limits.max_total_exposure
        assert book.resting_value <= limits.max_resting_value
        for ticker in core.pipeline.markets:
            assert book.get(ticker).dollars <= limits.max_market_exposure
            event, event_dollars, _, _ = book.group_dollars(ticker)
            assert event_dollars <= limits.max_event_exposure
            self.worst_event[event] = max(self.worst_event.get(event, 0), event_dollars)
        self.worst_total = max(self.worst_total, book.total_dollars)
        self.ticks += 1


def test_the_dollar_caps_hold_at_every_tick_of_a_backtest_and_bind() -> None:
    config = KmmConfig()
    config = config.model_copy(update={"risk": config.risk.model_copy(update=CAPS)})
    options = BacktestOptions(
        scenario="jump", seed=3, markets=4, duration_s=120.0, latency=default_latencies()
    )
    backtest = _Checked(config, options)

    backtest.run()

    specs = [m.spec for m in backtest.core.pipeline.markets.values()]
    assert all(spec.event_ticker and spec.category for spec in specs)
    assert backtest.ticks >= 100
    assert len(backtest.core.fills) > 0
    # The caps bound: the money at risk came within a dollar of the total or an event's cap
    near = 1_000_000
    assert backtest.worst_total >= 8_000_000 - near or max(backtest.worst_event.values()) >= (
        5_000_000 - near
    )
