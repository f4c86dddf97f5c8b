"""Discovery in a live run: the shell that reads and scores the venue, records each scoring,
and rescores while the bot runs (``markets.mode: discovery``; ``volatility`` uses the first
scoring to choose the markets it tracks).

:class:`MarketChooser` owns the facts of that choice: each chosen market's position cap
(``budgets``), how many scorings there were, and which retired markets' feeds were
unsubscribed. The engine hands it what it needs to act: the REST client, the core, the
websocket, a way to add markets and a way to perform the core's actions.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import replace
from typing import Final

from kmm.app import discovery_params
from kmm.clock import Clock
from kmm.config import KmmConfig
from kmm.core.trading import TradingCore
from kmm.errors import VenueError
from kmm.kalshi.rest import KalshiRest, MarketInfo
from kmm.kalshi.ws import KalshiWs
from kmm.record import Recorder
from kmm.select.discovery import Scored, discover
from kmm.select.reader import ReadStats, read_views
from kmm.types import Qty, format_count

__all__ = ["MARKET_CHANNELS", "MarketChooser"]

MARKET_CHANNELS: Final = ("orderbook_delta", "ticker", "trade", "market_lifecycle_v2")
"""The public channels a traded market's feed is subscribed on."""


class MarketChooser:
    """Discovery's scorings in a live run (see the module doc).

    Args:
        config: The run's configuration.
        core: The trading core the chosen markets are added to.
        clock: Time.
        say: Prints and logs one operations line.
        recorder: Where each scoring is recorded (None: nowhere).
    """

    def __init__(
        self,
        config: KmmConfig,
        core: TradingCore,
        clock: Clock,
        say: Callable[[str], None],
        recorder: Recorder | None = None,
    ) -> None:
        self.config = config
        self.core = core
        self.clock = clock
        self.say = say
        self.recorder = recorder
        self.budgets: dict[str, Qty] = {}
        """Discovery's position cap of each market it chose (``markets.mode: discovery``)."""
        self.scorings = 0
        self.unsubscribed: set[str] = set()
        """Markets rescoring dropped whose feed was unsubscribed."""

    async def discover(
        self, rest: KalshiRest, incumbents: Collection[str] = ()
    ) -> list[MarketInfo]:
        """``discovery``: the best-scored open markets, each with its budget;
        ``volatility``: the best ``volatility.track_n``, which its sessions cap instead.
        ``incumbents`` (the markets traded now) rank with ``discovery.incumbent_margin``."""
        params = discovery_params(self.config)
        tracking = self.config.markets.mode == "volatility"
        if tracking:
            params = replace(params, top_n=self.config.volatility.track_n)
        now_ns = self.clock.now_ns()
        views, listings, stats = await read_views(
            rest,
            params,
            now_ns,
            recent_s=self.config.discovery.recent_s,
            depth_levels=self.config.discovery.depth_levels,
        )
        ranked, budgets = discover(views, params, now_ns, incumbents)
        chosen = [s for s in ranked if s.selected]
        if not tracking:
            chosen = chosen[: self.config.markets.max_markets]
            self.budgets = {s.ticker: budgets[s.ticker].max_position for s in chosen}
        self.say(
            f"discovery: {stats.markets} open markets, "
            f"{sum(s.score is not None for s in ranked)} candidates, {len(chosen)} chosen "
            f"({stats.requests} requests in {stats.wall_s:.2f} s)"
        )
        for s in chosen if not tracking else []:
            cap = format_count(self.budgets[s.ticker])
            self.say(f"discovery: {s.ticker} score {s.score or 0.0:.3f} cap {cap}")
        self._record(now_ns, ranked, len(chosen), stats)
        return [listings[s.ticker].info for s in chosen]

    def _record(self, now_ns: int, ranked: Sequence[Scored], chosen: int, stats: ReadStats) -> None:
        """The scoring and its scored candidates into the ledger (refused markets are only
        counted: ``markets - candidates``)."""
        self.scorings += 1
        if self.recorder is None:
            return
        candidates = [
            (
                s.ticker,
                s.view.category,
                s.score,
                s.ticker in self.budgets,
                format_count(self.budgets[s.ticker]) if s.ticker in self.budgets else "",
                "; ".join(s.reasons),
            )
            for s in ranked
            if s.score is not None
        ]
        counts = (stats.markets, len(candidates), chosen, stats.requests)
        self.recorder.discovery(now_ns, self.scorings, counts, candidates)

    async def rescore_forever(
        self,
        rest: KalshiRest,
        ws: KalshiWs,
        add_markets: Callable[[Sequence[MarketInfo]], Awaitable[None]],
        act: Callable[[], None],
    ) -> None:
        """Scores the markets again every ``discovery.rescore_s``; between scorings,
        unsubscribes the markets whose retirement is done (no position, none of our orders)."""
        interval = self.config.discovery.rescore_s
        step = min(1.0, interval)
        waited = 0.0
        while True:
            await asyncio.sleep(step)
            waited += step
            await self.unsubscribe_retired(ws)
            if waited < interval:
                continue
            waited = 0.0
            with contextlib.suppress(VenueError):
                await self.rescore(rest, ws, add_markets, act)

    async def rescore(
        self,
        rest: KalshiRest,
        ws: KalshiWs,
        add_markets: Callable[[Sequence[MarketInfo]], Awaitable[None]],
        act: Callable[[], None],
    ) -> None:
        """Adds the markets discovery now chooses and retires those it dropped (cancel and
        confirm our orders, work any position out, then unsubscribe)."""
        core = self.core
        traded = [t for t in core.pipeline.markets if t not in core.retiring]
        chosen = await self.discover(rest, traded)
        now_ns = self.clock.now_ns()
        known = set(core.pipeline.markets)
        names = {m.ticker for m in chosen}
        new = [m for m in chosen if m.ticker not in known]
        back = sorted(t for t in names & core.retiring)
        gone = sorted(t for t in known - names if t not in core.retiring)
        for ticker in names & known:
            core.set_market_cap(ticker, self.budgets[ticker])
        if new:
            await add_markets(new)
        for ticker in back:
            core.readmit(ticker, now_ns)
        resubscribe = [m.ticker for m in new] + [t for t in back if t in self.unsubscribed]
        self.unsubscribed.difference_update(resubscribe)
        if resubscribe:
            await ws.update_markets(MARKET_CHANNELS, "add_markets", resubscribe)
        for ticker in gone:
            core.retire(ticker, now_ns)
        if new or back or gone:
            added = ", ".join([m.ticker for m in new] + back) or "none"
            self.say(f"rescore: added {added}; dropping {', '.join(gone) or 'none'}")
        act()

    async def unsubscribe_retired(self, ws: KalshiWs) -> None:
        """Removes the feed of every retired market that is done."""
        done = [t for t in self.core.retired() if t not in self.unsubscribed]
        if not done:
            return
        self.unsubscribed.update(done)
        await ws.update_markets(MARKET_CHANNELS, "delete_markets", done)
        self.say(f"rescore: {', '.join(sorted(done))}: no order of ours rests, unsubscribed")
