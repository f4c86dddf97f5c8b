"""``kmm scan --watch``: volatility mode's scanner on the live feed, printed, never trading.

The shell reads discovery's best ``volatility.track_n`` markets, subscribes to their books,
tickers and trades, and drives a trading core in volatility mode that is never started for
trading (it has no order planner, so it cannot send anything). Every second the core samples
the books; every ``volatility.scan_s`` the scanner scans. Each event is printed as it is
found, with the session volatility mode would run (or why it would not), and each session's
end with its reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TextIO

from kmm.app import build_core, discovery_params
from kmm.config import KmmConfig
from kmm.core.actions import Resync
from kmm.core.markets import market_spec
from kmm.core.trading import TradingCore
from kmm.engine import read_series
from kmm.kalshi.auth import Signer
from kmm.kalshi.wire import Event
from kmm.kalshi.ws import KalshiWs
from kmm.live import venue_feed
from kmm.select.discovery import discover
from kmm.select.reader import read_views
from kmm.select.sessions import Session
from kmm.select.volatility import MarketScan, VolEvent
from kmm.types import ONE_CENT, Money, format_money

__all__ = ["EventPrinter", "format_event", "run_watch"]

_CHANNELS = ("orderbook_delta", "ticker", "trade")


def _clock(ts_ns: int) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(ts_ns / 1e9))


def format_event(event: VolEvent, session: int | None, skipped: str) -> str:
    """One event as ``kmm scan --watch`` prints it."""
    outcome = f"session {session}" if session is not None else f"no session: {skipped}"
    direction = f" {event.direction}" if event.direction else ""
    return (
        f"{_clock(event.ts_ns)} {event.ticker:<28} {event.kind:<5} range "
        f"{event.jump / ONE_CENT:4.1f}c{direction} sigma {event.sigma:.5f} strength "
        f"{event.strength:.2f} regime {event.regime} -> {outcome}"
    )


class EventPrinter:
    """The desk's records printed, one line each (snapshots are not printed)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.events = 0

    def volatility_event(
        self, ts_ns: int, event: VolEvent, session: int | None, skipped: str
    ) -> None:
        """Prints one event and what came of it."""
        self.events += 1
        print(format_event(event, session, skipped), file=self.out, flush=True)

    def volatility_session(self, session: Session, fills: int, pnl: Money) -> None:
        """Prints one session's end."""
        ended = session.ended_ns or session.started_ns
        run_s = (ended - session.started_ns) / 1e9
        print(
            f"{_clock(ended)} {session.ticker:<28} session {session.number} ended "
            f"({session.reason}) after {run_s:.0f} s, {fills} fills, P&L ${format_money(pnl)}",
            file=self.out,
            flush=True,
        )

    def market_snapshot(
        self,
        ts_ns: int,
        scan: MarketScan,
        terms: tuple[float, float, float, float, float] | None,
        session: int | None,
    ) -> None:
        """Not printed (the ledger keeps them in ``kmm run``)."""


async def run_watch(config: KmmConfig, *, duration_s: float | None, out: TextIO) -> int:
    """Watches the live feed of discovery's best markets for volatility events until a
    signal or ``duration_s``. Returns the exit status (0)."""
    config = config.model_copy(
        update={"markets": config.markets.model_copy(update={"mode": "volatility"})}
    )
    printer = EventPrinter(out)
    async with venue_feed(config, out) as (rest, ws_url, signer):
        now_ns = time.time_ns()
        params = replace(discovery_params(config), top_n=config.volatility.track_n)
        views, listings, _ = await read_views(
            rest,
            params,
            now_ns,
            recent_s=config.discovery.recent_s,
            depth_levels=config.discovery.depth_levels,
        )
        ranked, _ = discover(views, params, now_ns)
        infos = [listings[s.ticker].info for s in ranked if s.selected]
        by_event = await read_series(rest, infos)
        core = build_core(config, start_ns=now_ns)  # no records: it never trades
        assert core.desk is not None
        core.desk.records = printer
        for info in infos:
            core.add_market(*market_spec(info, by_event[info.event_ticker]))
        core.take_actions()  # the idle exits' lines
        v = config.volatility
        print(
            f"kmm scan --watch: {len(infos)} markets tracked; scans every {v.scan_s:g} s after "
            f"{v.warmup} s of samples; events as they come (Ctrl-C stops)",
            file=out,
            flush=True,
        )
        await _feed(core, ws_url, signer, [i.ticker for i in infos], duration_s)
    print(f"kmm scan --watch: {printer.events} events", file=out)
    return 0


async def _feed(
    core: TradingCore, ws_url: str, signer: Signer, tickers: list[str], duration_s: float | None
) -> None:
    ws: KalshiWs

    def act() -> None:
        for action in core.take_actions():
            if isinstance(action, Resync):  # the rest are lines the printer prints better
                ws.resync(list(action.sids))

    def on_frame(frame: bytes | str, recv_ns: int) -> Event | None:
        event = core.on_frame(frame, recv_ns)
        act()
        return event

    ws = KalshiWs(ws_url, signer, on_frame, use_yes_price=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = asyncio.create_task(ws.run())
    ticker = asyncio.create_task(_tick(core, act))
    try:
        await ws.subscribe(_CHANNELS, tickers)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration_s)
    finally:
        await ws.close()
        for task in (runner, ticker):
            task.cancel()
        await asyncio.gather(runner, ticker, return_exceptions=True)


async def _tick(core: TradingCore, act: Callable[[], None]) -> None:
    while True:
        await asyncio.sleep(1.0)
        core.on_tick(time.time_ns())
        act()
