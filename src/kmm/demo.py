"""``kmm demo``: the real pure pipeline on a generated feed, with paper execution.

The synthetic feed (:mod:`kmm.sim.synthetic`) produces Kalshi-shaped ``orderbook_delta`` frames;
each goes through the same :class:`~kmm.pipeline.Pipeline` the live engine uses (decode →
sequence check → book → quote), and every quote taken from the mailbox is diffed against a
paper order tracker whose creates, amends and cancels are acknowledged at once. Nothing is sent
anywhere and no order can fill: the demo shows what the bot would quote and how much order
traffic the diff's hysteresis lets through. One summary line per second goes to ``out``.

The generated walk is a load test, not a market: replayed at hundreds of frames a second it
moves several cents a second, which the jump guard (``strategy.jump_cents``) would rightly
stand aside from all the time. The demo therefore runs without the jump guard.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TextIO

from kmm.app import build_pipeline, diff_params
from kmm.book.grid import PriceGrid
from kmm.config import KmmConfig
from kmm.execution.diff import DiffParams, DiffResult, diff
from kmm.execution.orders import ClientOrderIds, OrderTracker
from kmm.pipeline import MarketSpec, Pipeline, QuoteMailbox
from kmm.sim.synthetic import SyntheticFeed
from kmm.types import Quote, format_count, format_price

__all__ = ["DemoOptions", "PaperExecutor", "run_demo"]

_TICK_S = 0.01


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What ``kmm demo`` was asked for.

    Attributes:
        markets: Number of generated markets.
        seed: Seed of the generated feed.
        rate: Frames per second fed through the pipeline.
        duration_s: Stop after this many seconds; ``None`` runs until cancelled.
        show: How many markets the summary line shows in full.
    """

    markets: int = 8
    seed: int = 7
    rate: int = 200
    duration_s: float | None = None
    show: int = 3


@dataclass(slots=True)
class PaperExecutor:
    """Applies diffs to an order tracker whose every request is acknowledged at once."""

    params: DiffParams
    tracker: OrderTracker = field(default_factory=lambda: OrderTracker(ClientOrderIds("demo")))
    places: int = 0
    amends: int = 0
    cancels: int = 0
    _next_id: int = 0

    def apply(self, quote: Quote, grid: PriceGrid, now_ns: int) -> DiffResult:
        """Diffs ``quote`` against the paper orders of its market and applies the result."""
        result = diff(quote, self.tracker.live(quote.ticker), now_ns, self.params, grid.tick_at)
        for cid in result.cancel:
            self.tracker.request_cancel(cid, now_ns)
            self.tracker.on_cancel_ack(cid, now_ns)
        for amend in result.amend:
            self.tracker.request_amend(amend.client_order_id, amend.price, amend.qty, now_ns)
            self.tracker.on_amend_ack(amend.client_order_id, now_ns)
        for intent in result.place:
            order = self.tracker.new(intent, now_ns)
            self._next_id += 1
            self.tracker.on_ack(order.client_order_id, f"paper-{self._next_id}", now_ns)
        self.places += len(result.place)
        self.amends += len(result.amend)
        self.cancels += len(result.cancel)
        return result


def _quote_text(quote: Quote | None) -> str:
    if quote is None:
        return "-"
    bid = format_price(quote.bid_price) if quote.bid_price is not None else "----"
    ask = format_price(quote.ask_price) if quote.ask_price is not None else "----"
    return f"{bid}x{format_count(quote.bid_qty)} / {ask}x{format_count(quote.ask_qty)}"


def summary_line(
    elapsed_s: float, pipeline: Pipeline, paper: PaperExecutor, cpu_ns: int, show: int
) -> str:
    """One line: frames, µs per frame, decisions, paper order traffic, a few quotes."""
    stats = pipeline.stats
    per_frame = cpu_ns / stats.frames / 1_000 if stats.frames else 0.0
    quoting = sum(1 for m in pipeline.markets.values() if m.quote and m.quote.bid_price)
    head = (
        f"t={elapsed_s:6.1f}s frames={stats.frames} ({per_frame:.2f} µs/frame) "
        f"decisions={stats.decisions} gaps={stats.gaps} quoting={quoting}/{len(pipeline.markets)} "
        f"paper places={paper.places} amends={paper.amends} cancels={paper.cancels}"
    )
    markets = list(pipeline.markets.values())[:show]
    tail = " | ".join(f"{m.spec.ticker} {_quote_text(m.quote)}" for m in markets)
    return f"{head} | {tail}"


async def run_demo(config: KmmConfig, options: DemoOptions, out: TextIO) -> int:
    """Feeds the generated stream through the pipeline at ``options.rate`` frames/s.

    Returns:
        0 (the process exit status).
    """
    feed = SyntheticFeed(markets=options.markets, seed=options.seed)
    mailbox = QuoteMailbox()
    no_jump_guard = config.strategy.model_copy(update={"jump_cents": 0})
    config = config.model_copy(update={"strategy": no_jump_guard})
    pipeline = build_pipeline(config, lambda _ticker: 0, mailbox, use_yes_price=False)
    for ticker in feed.tickers:
        pipeline.add_market(MarketSpec(ticker, PriceGrid.linear_cent()))
    paper = PaperExecutor(diff_params(config.execution))
    frames = iter(feed.deltas(10**12))
    pending = feed.snapshots()
    start = time.monotonic()
    next_print = start + 1.0
    cpu_ns = 0
    try:
        while options.duration_s is None or time.monotonic() - start < options.duration_s:
            batch = pending or [next(frames) for _ in range(max(1, int(options.rate * _TICK_S)))]
            pending = []
            now_ns = time.time_ns()
            t0 = time.perf_counter_ns()
            for frame in batch:
                pipeline.on_frame(frame, now_ns)
            cpu_ns += time.perf_counter_ns() - t0
            for quote in mailbox.take().values():
                paper.apply(quote, pipeline.markets[quote.ticker].spec.grid, now_ns)
            if time.monotonic() >= next_print:
                next_print += 1.0
                line = summary_line(time.monotonic() - start, pipeline, paper, cpu_ns, options.show)
                print(line, file=out, flush=True)
            await asyncio.sleep(_TICK_S)
    except asyncio.CancelledError:
        pass
    print(summary_line(time.monotonic() - start, pipeline, paper, cpu_ns, options.show), file=out)
    return 0
