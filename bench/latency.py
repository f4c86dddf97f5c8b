"""Tick-to-order latency over loopback: a top-of-book move at the exchange → the bot's order.

The local exchange runs in this process; the bot runs as ``kmm run`` in its own process (as
in production), pointed at the exchange's port. Another account moves the top of book (it
places, then withdraws, a bid inside the spread); the clock starts when the exchange writes the
``orderbook_delta`` frame of that change to the bot's socket and stops when the exchange
receives the first order-write request that follows (create, amend or cancel). Both stamps are
``time.monotonic_ns`` in the exchange's process. The same run is made twice: with the order
path's signatures prepared ahead of time (``execution.presign``, the default) and with every
request signed on the event loop when it is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import uvloop
from aiohttp import web

from kmm.sim.engine import OrderRequest
from kmm.sim.server import SimOptions, SimServer
from kmm.types import ONE_CENT, QTY_SCALE, BookSide

__all__ = ["run"]

MOVER = "mover"
_WAIT_S = 0.5
_GAP_S = 0.06


def run(samples: int = 200) -> dict[str, dict[str, float]]:
    """p50/p99 in µs and the sample count, with and without presigned signatures."""
    return {
        "presigned": uvloop.run(_measure(presign=True, samples=samples)),
        "on_loop": uvloop.run(_measure(presign=False, samples=samples)),
    }


async def _measure(*, presign: bool, samples: int) -> dict[str, float]:
    state = Path(tempfile.mkdtemp(prefix="kmm-bench-"))
    sim = SimServer(SimOptions(state_dir=state / "sim", flow=False, tier="premier", markets=2))
    await sim.start()
    sim.venue.engine.open_account(MOVER, 10**15)
    ticker = next(iter(sim.venue.engine.markets))
    arrivals = _Arrivals()
    sim.request_observers.append(arrivals.observe)
    writes = _Writes(ticker)
    sim.hub.write_observers.append(writes.observe)
    bot = await _start_bot(sim, ticker, presign, state)
    try:
        await _until(lambda: len(_our_resting(sim, ticker)) == 2, 30)
        latencies = await _moves(sim, ticker, arrivals, writes, samples)
    finally:
        bot.send_signal(signal.SIGTERM)
        await asyncio.wait_for(bot.wait(), 30)
        await sim.stop()
    ordered = sorted(latencies)
    return {
        "p50_us": statistics.median(ordered) / 1_000 if ordered else float("nan"),
        "p99_us": ordered[int(0.99 * (len(ordered) - 1))] / 1_000 if ordered else float("nan"),
        "n": float(len(ordered)),
    }


class _Writes:
    """When the exchange wrote the first book frame of ``ticker`` since ``arm()``."""

    def __init__(self, ticker: str) -> None:
        self.needle = ticker.encode()
        self.armed = False
        self.at = 0

    def arm(self) -> None:
        self.armed, self.at = True, 0

    def observe(self, frame: bytes) -> None:
        if self.armed and b"orderbook_delta" in frame and self.needle in frame:
            self.at = time.monotonic_ns()
            self.armed = False


class _Arrivals:
    """Arrival times of order-write requests at the exchange, with an event to wait on."""

    def __init__(self) -> None:
        self.times: list[int] = []
        self.event = asyncio.Event()

    def observe(self, request: web.Request) -> None:
        if request.method in ("POST", "DELETE") and "/portfolio/events/orders" in request.path:
            self.times.append(time.monotonic_ns())
            self.event.set()

    def clear(self) -> None:
        self.times.clear()
        self.event.clear()


async def _start_bot(
    sim: SimServer, ticker: str, presign: bool, state: Path
) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMM__")}
    env.update(
        {
            "KMM__VENUE__REST_URL": sim.rest_url,
            "KMM__VENUE__WS_URL": sim.ws_url,
            "KMM__AUTH__KEY_ID": sim.key_id,
            "KMM__AUTH__PRIVATE_KEY_PATH": str(sim.private_key_path),
            "KMM__MARKETS__TICKERS": f"[{ticker}]",
            "KMM__EXECUTION__PRESIGN": "true" if presign else "false",
            "KMM__EXECUTION__MIN_REST_MS": "0",
            "KMM__RISK__KILL_FILE": str(state / "KILL"),
            "KMM__RECORD__RUNS_DIR": str(state / "runs"),
            "KMM__RECORD__LEDGER_PATH": str(state / "runs" / "ledger.sqlite"),
        }
    )
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kmm",
        "run",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


def _our_resting(sim: SimServer, ticker: str) -> list[object]:
    return [o for o in sim.venue.engine.resting_orders(ticker) if o.user_id == sim.user_id]


async def _until(what: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not what():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit("bench: the bot did not start quoting")
        await asyncio.sleep(0.01)


async def _moves(
    sim: SimServer, ticker: str, arrivals: _Arrivals, writes: _Writes, samples: int
) -> list[int]:
    engine = sim.venue.engine
    latencies: list[int] = []
    resting: str | None = None
    for _ in range(samples):
        await asyncio.sleep(_GAP_S)
        arrivals.clear()
        writes.arm()
        now = sim.venue.clock.now_ns()
        if resting is None:
            best_bid, best_ask = engine.best(ticker)
            assert best_bid is not None and best_ask is not None
            price = min(best_bid + 2 * ONE_CENT, best_ask - ONE_CENT)
            order = OrderRequest(ticker, BookSide.BID, price, 50 * QTY_SCALE)
            resting = engine.create_order(MOVER, order, now).order.order_id
        else:
            engine.cancel_order(MOVER, resting, now)
            resting = None
        sim.venue.publish()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrivals.event.wait(), _WAIT_S)
        if arrivals.times and writes.at and arrivals.times[0] > writes.at:
            latencies.append(arrivals.times[0] - writes.at)
    return latencies
