"""What a running bot shows its operator: the control API's JSON, read from the trading core.

Theory of operation
-------------------
Each function here reads the :class:`~kmm.core.trading.TradingCore` (and the time it is given)
and returns plain JSON-ready data; nothing is kept, nothing is changed, nothing is awaited.
The control API (:mod:`kmm.ops.control`), the dashboard that reads it and ``kmm status`` show
the same figures, and a test can read them off a core without a socket.

Money and counts are exact strings, as Kalshi writes them: prices ``"0.4500"`` (dollars),
counts ``"10.00"`` (contracts), P&L ``"-0.123400"`` (dollars). The P&L history for the chart is
integers in the same units as the core keeps them ($0.000001 and 0.01 contract), so a page can
plot them without parsing.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

from kmm.core.trading import TradingCore
from kmm.types import Price, format_count, format_money, format_price

__all__ = [
    "PnlHistory",
    "market_rows",
    "order_rows",
    "pnl_view",
    "position_rows",
    "risk_view",
    "status_view",
]

_NS_PER_S: Final = 1_000_000_000


def _price(price: Price | None) -> str | None:
    return None if price is None else format_price(price)


def status_view(core: TradingCore, now_ns: int, **more: Any) -> dict[str, Any]:
    """The run at a glance: state, P&L, fills, orders, feed age (``more`` is added as is:
    the shell's run directory, addresses, write tokens)."""
    marks = core.pnl_marks()
    portfolio = core.portfolio
    markets = core.pipeline.markets
    feed = (now_ns - core.feed_last_ns) / _NS_PER_S if core.feed_last_ns else None
    return {
        "now_ns": now_ns,
        "started_ns": core.started_ns,
        "uptime_s": (now_ns - core.started_ns) / _NS_PER_S,
        "env": core.env,
        "mode": core.config.markets.mode,
        "state": _state(core),
        "halted": core.halted,
        "paused": core.paused,
        "markets": len(markets),
        "quoting": len(core.quoting()),
        "fills": core.report.fills,
        "live_orders": core.live_orders(),
        "inventory": format_count(sum(abs(portfolio.net_qty(t)) for t in markets)),
        "pnl": {
            "realized": format_money(portfolio.realized()),
            "unrealized": format_money(portfolio.unrealized(marks)),
            "total": format_money(portfolio.total_pnl(marks)),
            "fees": format_money(portfolio.fees_paid()),
        },
        "feed_age_s": feed,
        **more,
    }


def _state(core: TradingCore) -> str:
    if core.halted is not None:
        return "halted"
    if core.paused:
        return "paused"
    return "quoting"


def market_rows(core: TradingCore) -> list[dict[str, Any]]:
    """One row per market: position, our quote and resting orders, others' book, P&L, flags."""
    return [_market_row(core, ticker) for ticker in core.pipeline.markets]


def _market_row(core: TradingCore, ticker: str) -> dict[str, Any]:
    market = core.pipeline.markets[ticker]
    position = core.portfolio.positions().get(ticker)
    bid, bid_qty, ask, ask_qty = core.resting_top(ticker)
    quote = market.quote
    others = market.others_top()
    mode, cause = core.risk.modes.get(ticker, ("normal", "none"))
    override = core.controls.get(ticker)
    inputs = market.inputs
    return {
        "ticker": ticker,
        "position": format_count(core.portfolio.net_qty(ticker)),
        "pnl": format_money(core.market_pnl(ticker)),
        "realized": format_money(position.realized if position else 0),
        "resting": {
            "bid": _price(bid),
            "bid_qty": format_count(bid_qty),
            "ask": _price(ask),
            "ask_qty": format_count(ask_qty),
        },
        "quote": {
            "bid": _price(quote.bid_price if quote else None),
            "bid_qty": format_count(quote.bid_qty if quote else 0),
            "ask": _price(quote.ask_price if quote else None),
            "ask_qty": format_count(quote.ask_qty if quote else 0),
        },
        "book": {"bid": _price(others[0]), "ask": _price(others[2])},
        "fair": None if inputs is None or inputs.fair is None else round(inputs.fair / 10_000, 4),
        "trusted": market.book.trusted,
        "mode": str(mode),
        "cause": str(cause),
        "held": market.held,
        "enabled": override.enabled,
        "reduce_only": ticker in core.risk.reduce_only,
        "exiting": ticker in core.exiting,
        "blocked": core.risk.blocked.get(ticker),
        "override": override.model_dump(mode="json", exclude_defaults=True),
    }


def order_rows(core: TradingCore) -> list[dict[str, Any]]:
    """Every order of ours that rests or may rest, oldest first."""
    rows = []
    for ticker in core.pipeline.markets:
        for order in core.tracker.live(ticker):
            rows.append(
                {
                    "ticker": ticker,
                    "client_order_id": order.client_order_id,
                    "order_id": order.order_id,
                    "side": str(order.side),
                    "price": format_price(order.price),
                    "remaining": format_count(order.remaining),
                    "filled": format_count(order.filled),
                    "state": str(order.state),
                    "placed_ns": order.placed_ns,
                }
            )
    return sorted(rows, key=lambda row: row["placed_ns"])


def position_rows(core: TradingCore) -> list[dict[str, Any]]:
    """Every market we hold or held a position in: position, bought, sold, fees, P&L."""
    marks = core.pnl_marks()
    rows = []
    for ticker, position in sorted(core.portfolio.positions().items()):
        mark = marks.get(ticker)
        rows.append(
            {
                "ticker": ticker,
                "position": format_count(position.qty),
                "bought": format_count(position.bought),
                "sold": format_count(position.sold),
                "fees": format_money(position.fees_paid),
                "realized": format_money(position.realized),
                "unrealized": format_money(position.unrealized(mark) if mark is not None else 0),
                "mark": _price(mark),
            }
        )
    return rows


def pnl_view(core: TradingCore, history: PnlHistory) -> dict[str, Any]:
    """P&L per market and in total, and the history the dashboard charts."""
    marks = core.pnl_marks()
    return {
        "total": format_money(core.portfolio.total_pnl(marks)),
        "markets": {t: format_money(core.market_pnl(t)) for t in core.pipeline.markets},
        "history": history.points(),
    }


def risk_view(core: TradingCore) -> dict[str, Any]:
    """The kill switch, the limits in force, and the markets held back, with why."""
    kill = core.kill_switch
    risk = core.risk
    limits = core.config.risk
    return {
        "kill_switch": str(kill.state),
        "reason": kill.reason,
        "trigger": None if kill.trigger is None else str(kill.trigger),
        "day_pnl": None if kill.day_pnl is None else format_money(kill.day_pnl),
        "day_peak": None if kill.day_peak is None else format_money(kill.day_peak),
        "max_daily_loss": str(limits.max_daily_loss_dollars),
        "max_drawdown": str(limits.max_drawdown_dollars),
        "max_position": str(limits.max_position_contracts),
        "max_open_orders": limits.max_open_orders,
        "open_orders": risk.exposures.open_orders,
        "exchange_paused": risk.exchange_paused,
        "blocked": dict(risk.blocked),
        "disabled": sorted(risk.disabled),
        "reduce_only": sorted(risk.reduce_only),
        "market_caps": {t: format_count(q) for t, q in sorted(risk.market_caps.items())},
        "throttled": {t: m.held for t, m in core.pipeline.markets.items() if m.held},
    }


@dataclass(slots=True)
class PnlHistory:
    """Total P&L and inventory sampled over time, for the dashboard's chart.

    Args:
        size: The most points kept (the oldest go first).
    """

    size: int = 3600
    _points: deque[tuple[int, int, int]] = field(init=False)

    def __post_init__(self) -> None:
        self._points = deque(maxlen=self.size)

    def sample(self, core: TradingCore, now_ns: int) -> None:
        """Adds a point: the time (ms), total P&L ($0.000001) and inventory (0.01 contract)."""
        marks = core.pnl_marks()
        inventory = sum(abs(core.portfolio.net_qty(t)) for t in core.pipeline.markets)
        self._points.append((now_ns // 1_000_000, core.portfolio.total_pnl(marks), inventory))

    def points(self) -> list[list[int]]:
        """The points, oldest first, as ``[ms, pnl, inventory]``."""
        return [list(p) for p in self._points]
