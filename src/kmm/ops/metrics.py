"""Prometheus metrics of a running ``kmm run``, served on ``/metrics`` (prometheus-client).

Theory of operation
-------------------
Nothing is counted twice and nothing is added to the trading path: on each scrape a custom
collector reads the figures the engine already keeps (the planner's and the websocket's
counters, the order events by kind and venue code, the portfolio, the kill switch, the token
bucket) and returns them as metric families. A scrape costs the event loop a few hundred
microseconds; between scrapes it costs nothing.

The server is a small aiohttp application on ``127.0.0.1`` (``ops.metrics_port``; 0 picks a
free port), started by the engine once it trades. Its URL is printed in the start banner and
written to ``metrics.url`` in the run directory, so that a scraper or ``kmm status`` finds it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from kmm.types import MONEY_SCALE, QTY_SCALE

if TYPE_CHECKING:
    from kmm.engine import LiveEngine

__all__ = ["CONTENT_TYPE", "EngineCollector", "MetricsServer", "engine_metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class EngineCollector(Collector):
    """The engine's figures as Prometheus metric families, read at scrape time."""

    def __init__(self, engine: LiveEngine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        """Every metric, from the engine's state now."""
        yield from self._orders()
        yield from self._money()
        yield from self._feed()
        yield from self._latency()

    def _orders(self) -> Iterator[Metric]:
        engine = self.engine
        events = CounterMetricFamily(
            "kmm_order_events", "Order events by kind and venue code.", labels=["event", "code"]
        )
        for (what, code), count in sorted(engine.report.order_events.items()):
            events.add_metric([what, code], count)
        yield events
        yield CounterMetricFamily("kmm_fills", "Fills booked.", value=engine.report.fills)
        planner = engine.core.planner
        counters = planner.counters if planner is not None else None
        yield CounterMetricFamily(
            "kmm_rate_limited",
            "Writes the venue answered with 429.",
            value=counters.rate_limited if counters else 0,
        )
        yield GaugeMetricFamily(
            "kmm_live_orders", "Our orders that rest or may rest.", value=engine.core.live_orders()
        )
        bucket = engine.write_bucket
        if bucket is not None:
            tokens = bucket.available(engine.clock.now_ns())
            yield GaugeMetricFamily("kmm_write_tokens", "Write tokens available.", value=tokens)

    def _money(self) -> Iterator[Metric]:
        core = self.engine.core
        portfolio = core.portfolio
        realized = portfolio.realized() / MONEY_SCALE
        unrealized = portfolio.unrealized(core.pnl_marks()) / MONEY_SCALE
        pnl = GaugeMetricFamily("kmm_pnl_dollars", "P&L net of fees.", labels=["kind"])
        pnl.add_metric(["realized"], realized)
        pnl.add_metric(["unrealized"], unrealized)
        yield pnl
        position = GaugeMetricFamily(
            "kmm_position_contracts", "Signed position (YES +).", labels=["ticker"]
        )
        exposure = 0.0
        for ticker in core.pipeline.markets:
            qty = portfolio.net_qty(ticker) / QTY_SCALE
            exposure += abs(qty)
            position.add_metric([ticker], qty)
        yield position
        yield GaugeMetricFamily(
            "kmm_exposure_contracts", "Sum of |position| over the markets.", value=exposure
        )
        yield GaugeMetricFamily(
            "kmm_halted", "1 while the kill switch holds.", value=float(core.halted is not None)
        )

    def _latency(self) -> Iterator[Metric]:
        histogram = self.engine.core.decision_latency
        buckets = [
            ("+Inf" if bound is None else repr(bound / 1e9), count)
            for bound, count in histogram.cumulative()
        ]
        yield HistogramMetricFamily(
            "kmm_frame_to_decision_seconds",
            "A book frame's arrival to its quote's hand-over to the planner.",
            buckets=buckets,
            sum_value=histogram.sum_ns / 1e9,
        )

    def _feed(self) -> Iterator[Metric]:
        engine = self.engine
        last = engine.core.feed_last_ns
        age = (engine.clock.now_ns() - last) / 1e9 if last else float("nan")
        yield GaugeMetricFamily(
            "kmm_feed_age_seconds", "Seconds since the venue's feed sent anything.", value=age
        )
        stats = engine.ws_stats
        if stats is None:
            return
        yield CounterMetricFamily("kmm_ws_frames", "Feed frames handled.", value=stats.frames)
        yield CounterMetricFamily(
            "kmm_ws_bad_frames", "Feed frames refused as malformed.", value=stats.bad_frames
        )
        yield CounterMetricFamily(
            "kmm_ws_reconnects", "Feed connections opened after a lost one.", value=stats.reconnects
        )


def engine_metrics(engine: LiveEngine) -> CollectorRegistry:
    """A registry holding only the engine's collector (no process or platform metrics)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(EngineCollector(engine))
    return registry


class MetricsServer:
    """``GET /metrics`` on ``127.0.0.1:port`` (0: a free port), in the engine's event loop.

    Args:
        registry: What to serve.
        port: The port.
        on_scrape: Called after each scrape (for tests and the ops log), or None.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        port: int,
        on_scrape: Callable[[], None] | None = None,
    ) -> None:
        self.registry = registry
        self.port = port
        self.on_scrape = on_scrape
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        """Starts listening; returns the URL of ``/metrics``."""
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port)
        await site.start()
        self._runner = runner
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        port = sockets[0].getsockname()[1] if sockets else self.port
        self.url = f"http://127.0.0.1:{port}/metrics"
        return self.url

    async def stop(self) -> None:
        """Stops listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        if self.on_scrape is not None:
            self.on_scrape()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})
