"""Tick-to-order latency over loopback: a top-of-book move at the exchange → the bot's order.

The local exchange runs in this process; the bot runs as ``kmm run`` in its own process (as
in production), pointed at the exchange's port. Another account moves the top of book (it
places, then withdraws, a bid inside the spread); the clock starts when the exchange writes the
``orderbook_delta`` frame of that change to the bot's socket and stops when the bytes of the
first order-write request that follows (create, amend or cancel) reach the exchange's HTTP
side, before the exchange parses them. Both stamps are ``time.monotonic_ns`` in the exchange's
process. The run is made with the order path's signatures prepared ahead of time
(``execution.presign``, the default) and with every request signed on the event loop.

**Floor.** The same measurement with :mod:`bench.floor_client` in place of the bot: a process
that answers each trigger with a pre-rendered request on a kept-alive connection, doing no
work at all. It is the part no bot can avoid on this machine (two cross-process wake-ups and
a loopback write); ``kmm − floor`` is what kmm itself adds.

**CPUs.** With two or more CPUs the exchange is pinned to one and the bot (or the floor
client) to another, as a latency-sensitive deployment would isolate the bot; otherwise the
kernel tends to wake the exchange on the bot's CPU, behind the bot's own work.
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
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import uvloop

from kmm.kalshi.wire import WireDecoder
from kmm.sim.engine import OrderRequest
from kmm.sim.server import SimOptions, SimServer
from kmm.types import ONE_CENT, QTY_SCALE, BookSide

__all__ = ["run"]

MOVER = "mover"
_WAIT_S = 0.5
GAP_S = 0.06
"""The pause between two moves (the bot's answer to one has long arrived)."""
_ORDER_WRITES = (b"POST /trade-api/v2/portfolio/events/orders", b"DELETE /trade-api/v2/portfolio/")
_ROOT = Path(__file__).resolve().parent.parent


def run(samples: int = 200) -> dict[str, dict[str, float]]:
    """p50/p99 in µs and the sample count: presigned, signed on the loop, and the floor;
    and the machine's cost of running code cold (see :func:`cold_decode`)."""
    with _pinned():
        return {
            "presigned": uvloop.run(_measure_bot(presign=True, samples=samples)),
            "on_loop": uvloop.run(_measure_bot(presign=False, samples=samples)),
            "floor": uvloop.run(_measure_floor(samples)),
            "decode": cold_decode(),
        }


_USER_ORDER = (
    b'{"type":"user_order","sid":6,"msg":{"order_id":"00000001-0000-4000-8000-00000000001a",'
    b'"user_id":"demo","ticker":"KXSIMA-26NOV25-T40","status":"resting","side":"no",'
    b'"is_yes":false,"outcome_side":"no","book_side":"ask","yes_price_dollars":"0.7700",'
    b'"fill_count_fp":"0.00","remaining_count_fp":"5.00","initial_count_fp":"5.00",'
    b'"taker_fill_cost_dollars":"0.0000","maker_fill_cost_dollars":"0.0000",'
    b'"taker_fees_dollars":"0.0000","maker_fees_dollars":"0.0000",'
    b'"client_order_id":"kmm1-2","self_trade_prevention_type":"taker_at_cross",'
    b'"created_time":"2026-11-23T14:03:41.253Z","created_ts_ms":1795442621253,'
    b'"last_update_time":"2026-11-23T14:03:43.108Z","last_updated_ts_ms":1795442623108,'
    b'"subaccount_number":0}}'
)


def cold_decode(samples: int = 40) -> dict[str, float]:
    """p50 µs of decoding one ``user_order`` frame back to back ("warm") and after a pause
    as long as the bench's gap between moves ("cold"): how much slower this machine runs
    code that has not run for a while, which is the situation of every tick-to-order."""
    decoder = WireDecoder(use_yes_price=True)
    warm: list[int] = []
    cold: list[int] = []
    for _ in range(samples):
        time.sleep(GAP_S)
        started = time.perf_counter_ns()
        decoder.decode(_USER_ORDER)
        cold.append(time.perf_counter_ns() - started)
        started = time.perf_counter_ns()
        decoder.decode(_USER_ORDER)
        warm.append(time.perf_counter_ns() - started)
    return {
        "warm_us": statistics.median(warm) / 1_000,
        "cold_us": statistics.median(cold) / 1_000,
        "n": float(samples),
    }


# --------------------------------------------------------------------------- CPUs


_CPUS: tuple[set[int], set[int]] | None = None
"""(the exchange's CPU, the client's CPUs) while pinned; None when not."""


def _cpus() -> tuple[set[int], set[int]] | None:
    """(the exchange's CPU, every other CPU), or None with fewer than two usable CPUs."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    usable = sorted(os.sched_getaffinity(0))
    return ({usable[0]}, set(usable[1:])) if len(usable) >= 2 else None


@contextlib.contextmanager
def _pinned() -> Iterator[None]:
    global _CPUS
    cpus = _cpus()
    if cpus is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus[0])
    _CPUS = cpus
    try:
        yield
    finally:
        _CPUS = None
        os.sched_setaffinity(0, before)


def _pin_client(pid: int) -> None:
    """Moves a client process off the exchange's CPU (its children inherit it)."""
    if _CPUS is not None:
        os.sched_setaffinity(pid, _CPUS[1])


# --------------------------------------------------------------------------- measuring


class _Stamps:
    """The exchange-side stamps of one move: frame written, first order write arrived."""

    def __init__(self, ticker: str) -> None:
        self.needle = ticker.encode()
        self.armed = False
        self.written = 0
        self.arrived = 0
        self.event = asyncio.Event()

    def arm(self) -> None:
        self.armed, self.written, self.arrived = True, 0, 0
        self.event.clear()

    def on_frame(self, frame: bytes) -> None:
        if self.armed and not self.written and b"orderbook_delta" in frame and self.needle in frame:
            self.written = time.monotonic_ns()

    def on_trigger(self) -> None:
        self.written = time.monotonic_ns()

    def on_bytes(self, data: bytes) -> None:
        if self.armed and self.written and not self.arrived and data.startswith(_ORDER_WRITES):
            self.arrived = time.monotonic_ns()
            self.armed = False
            self.event.set()

    def latency_ns(self) -> int | None:
        return self.arrived - self.written if self.written and self.arrived else None


async def _measure_bot(*, presign: bool, samples: int) -> dict[str, float]:
    state = Path(tempfile.mkdtemp(prefix="kmm-bench-"))
    sim = SimServer(SimOptions(state_dir=state / "sim", flow=False, tier="premier", markets=2))
    await sim.start()
    sim.venue.engine.open_account(MOVER, 10**15)
    ticker = next(iter(sim.venue.engine.markets))
    stamps = _Stamps(ticker)
    sim.hub.write_observers.append(stamps.on_frame)
    sim.arrival_observers.append(stamps.on_bytes)
    bot = await _start_bot(sim, ticker, presign, state)
    try:
        await _until(lambda: len(_our_resting(sim, ticker)) == 2, 30)
        mover = _Mover(sim, ticker)
        latencies = await _moves(stamps, mover.move, samples)
    finally:
        bot.send_signal(signal.SIGTERM)
        await asyncio.wait_for(bot.wait(), 30)
        await sim.stop()
    return _figures(latencies)


async def _measure_floor(samples: int) -> dict[str, float]:
    state = Path(tempfile.mkdtemp(prefix="kmm-bench-"))
    sim = SimServer(SimOptions(state_dir=state / "sim", flow=False, markets=1))
    await sim.start()
    stamps = _Stamps("")
    sim.arrival_observers.append(stamps.on_bytes)
    triggers: list[asyncio.StreamWriter] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        triggers.append(writer)

    ctrl = await asyncio.start_server(accept, "127.0.0.1", 0)
    rest_port = int(sim.url.rsplit(":", 1)[1])
    ctrl_port = ctrl.sockets[0].getsockname()[1]
    client = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.floor_client", "127.0.0.1", str(ctrl_port), str(rest_port),
        cwd=_ROOT,
    )  # fmt: skip
    _pin_client(client.pid)
    try:
        await _until(lambda: bool(triggers), 30)

        async def trigger() -> None:
            stamps.on_trigger()
            triggers[0].write(b"x")

        latencies = await _moves(stamps, trigger, samples)
    finally:
        for writer in triggers:
            writer.close()
        await asyncio.wait_for(client.wait(), 30)
        ctrl.close()
        await sim.stop()
    return _figures(latencies)


async def _moves(stamps: _Stamps, move: Callable[[], Awaitable[None]], samples: int) -> list[int]:
    latencies: list[int] = []
    for _ in range(samples):
        await asyncio.sleep(GAP_S)
        stamps.arm()
        await move()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_WAIT_S):
                await stamps.event.wait()
        latency = stamps.latency_ns()
        if latency is not None:
            latencies.append(latency)
        stamps.armed = False
    return latencies


def _figures(latencies: list[int]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "p50_us": statistics.median(ordered) / 1_000 if ordered else float("nan"),
        "p99_us": ordered[int(0.99 * (len(ordered) - 1))] / 1_000 if ordered else float("nan"),
        "n": float(len(ordered)),
    }


class _Mover:
    """Another account that alternately places and withdraws a bid inside the spread."""

    def __init__(self, sim: SimServer, ticker: str) -> None:
        self.sim = sim
        self.ticker = ticker
        self.resting: str | None = None

    async def move(self) -> None:
        engine = self.sim.venue.engine
        now = self.sim.venue.clock.now_ns()
        if self.resting is None:
            best_bid, best_ask = engine.best(self.ticker)
            assert best_bid is not None and best_ask is not None
            price = min(best_bid + 2 * ONE_CENT, best_ask - ONE_CENT)
            order = OrderRequest(self.ticker, BookSide.BID, price, 50 * QTY_SCALE)
            self.resting = engine.create_order(MOVER, order, now).order.order_id
        else:
            engine.cancel_order(MOVER, self.resting, now)
            self.resting = None
        self.sim.venue.publish()


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
    bot = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kmm",
        "run",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    _pin_client(bot.pid)
    return bot


def _our_resting(sim: SimServer, ticker: str) -> list[object]:
    return [o for o in sim.venue.engine.resting_orders(ticker) if o.user_id == sim.user_id]


async def _until(what: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not what():
        if time.monotonic() > deadline:
            raise SystemExit("bench: the client did not start")
        await asyncio.sleep(0.01)
