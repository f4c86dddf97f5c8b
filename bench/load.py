"""Load figures of ``make bench``: the bot's resident memory with 1,000 markets subscribed, and
frame-to-decision lag at 20,000 messages a second across 1,000 markets.

**Memory.** The local exchange runs in this process (the ``calm`` scenario with its background
traders, Basic tier, as ``kmm run`` starts it by default) and the bot runs as ``kmm run`` in
its own process, pointed at the exchange's URLs: the figure is the bot's alone, not the
exchange's 1,000 books. Once the bot has printed its first summary line (its first second of
quoting) and ``settle_s`` more seconds have passed, its ``VmRSS`` (resident now) and ``VmHWM``
(the peak so far, start-up included) are read from ``/proc/PID/status``. The same run on 8
markets is the floor: the interpreter, kmm's imports, the sockets and the recorder.

**Lag.** The feed contains no kmm code: this process serves a websocket on loopback that
answers the ``subscribe`` command, sends one ``orderbook_snapshot`` per market and then
pre-built ``orderbook_delta`` frames (JSON made here, not by kmm) in paced bursts, ``burst``
frames in one write every ``burst / rate`` seconds, spinning to each burst's scheduled time.
The receiver is a fresh ``python -m bench.load receive`` process (a heap holding only what a
bot holds) running kmm's own receive path on uvloop: :class:`~kmm.kalshi.ws.KalshiWs` hands
each frame, inline in ``data_received``, to a handler that does what ``LiveEngine.on_frame``
does (``TradingCore.on_frame``; the mailbox drained through ``decide_quotes`` at once when the
socket read holds no later book frame, else at the end of the event-loop turn). A frame's lag
runs from its burst's scheduled send time to the moment the core has decided on it: its
``on_frame`` returned and, if quotes were waiting, ``decide_quotes`` returned. Both stamps are
``CLOCK_MONOTONIC`` (one clock for every process of the machine). No order planner runs (no
exchange answers orders here; the order path is the tick-to-order bench's), so
``decide_quotes`` hands the quotes on and the decision is the quote. The first ``warmup_s``
of the stream is left out. With two CPUs the feed and the receiver each have one.

**Floor.** The same stream to ``python -m bench.load floor``: after the websocket handshake it
only counts the bytes of each read and stamps every frame they complete. Its lag is what the
machine alone costs (the loopback, a wake-up, and whatever stalls the receiving CPU). Other
processes' CPU time during each run is read from ``/proc`` and returned, so that a disturbed
run can say so.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import contextlib
import gc
import itertools
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import uvloop

from kmm.sim.server import SimOptions, SimServer

__all__ = ["build_frames", "lag", "memory", "tickers"]

_ROOT = Path(__file__).resolve().parent.parent
_SID = 1
_TICKER = "KXLOAD-26DEC31-M{:04d}"
_LEVELS = 10
_MARKET_LINE = "markets ("
"""The start banner's line naming the markets subscribed: ``  markets (1000): A, B, …``."""


def tickers(markets: int) -> list[str]:
    """The tickers of the lag bench's feed, in order."""
    return [_TICKER.format(i) for i in range(markets)]


# --------------------------------------------------------------------------- memory


def memory(markets: int, settle_s: float = 5.0) -> dict[str, float]:
    """``kmm run`` on ``markets`` markets of a local exchange in this process: the bot
    process's resident memory in MB (``rss_mb``) and its peak (``hwm_mb``) ``settle_s`` after
    its first summary line, the markets it subscribed and the seconds to that line."""
    with tempfile.TemporaryDirectory(prefix="kmm-bench-memory-") as scratch:
        return asyncio.run(_memory(markets, settle_s, Path(scratch)))


async def _memory(markets: int, settle_s: float, scratch: Path) -> dict[str, float]:
    sim = SimServer(
        SimOptions(markets=markets, scenario="calm", tier="basic", state_dir=scratch / "sim")
    )
    await sim.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMM__")}
    env.update(
        KMM__VENUE__REST_URL=sim.rest_url,
        KMM__VENUE__WS_URL=sim.ws_url,
        KMM__AUTH__KEY_ID=sim.key_id,
        KMM__AUTH__PRIVATE_KEY_PATH=str(sim.private_key_path),
        KMM__MARKETS__MAX_MARKETS=str(markets),
        KMM__SIM__MARKETS=str(markets),
        KMM__RISK__KILL_FILE=str(scratch / "KILL"),
        KMM__RECORD__RUNS_DIR=str(scratch / "runs"),
        KMM__RECORD__LEDGER_PATH=str(scratch / "runs" / "ledger.sqlite"),
    )
    started = time.perf_counter()
    bot = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kmm", "run", cwd=scratch, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert bot.stdout is not None
    subscribed = first = float("nan")
    try:
        async with asyncio.timeout(60):
            while line := (await bot.stdout.readline()).decode():
                if line.lstrip().startswith(_MARKET_LINE):
                    subscribed = float(line.lstrip()[len(_MARKET_LINE) :].split(")", 1)[0])
                if line.startswith("t="):
                    first = time.perf_counter() - started
                    break
        if first != first:
            raise SystemExit(f"bench: kmm run on {markets} markets printed no summary line")
        drain = asyncio.create_task(_discard(bot.stdout))
        await asyncio.sleep(settle_s)
        status = _proc_status(bot.pid)
        drain.cancel()
    finally:
        # The exchange and its orders are thrown away: no need to wait for the bot's cancels
        with contextlib.suppress(ProcessLookupError):
            bot.send_signal(signal.SIGKILL)
        await bot.wait()
        await sim.stop()
    return {
        "rss_mb": status["VmRSS"] / 1024,
        "hwm_mb": status["VmHWM"] / 1024,
        "markets": subscribed,
        "first_s": first,
    }


async def _discard(stream: asyncio.StreamReader) -> None:
    """Reads the bot's summary lines so that its stdout never blocks it."""
    while await stream.readline():
        pass


def _proc_status(pid: int) -> dict[str, int]:
    """``VmRSS``, ``VmHWM`` and the other ``Vm*`` lines of ``/proc/PID/status``, in kB."""
    figures: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name.startswith("Vm") and value.strip().endswith("kB"):
            figures[name] = int(value.split()[0])
    return figures


# --------------------------------------------------------------------------- the feed's frames


def _price(cents: int) -> str:
    return f"0.{cents:02d}00"


def build_frames(markets: int, deltas: int, seed: int = 5) -> tuple[list[bytes], list[bytes]]:
    """One ``orderbook_snapshot`` per market, then ``deltas`` ``orderbook_delta`` frames on
    subscription 1 with ``seq`` from 1, in the ``use_yes_price`` convention (NO levels at
    their YES price, i.e. the asks). Each market's book holds 10 levels a side around a fair
    price; a delta resizes a level (75 %), adds size at or inside the best price (12.5 %) or
    removes the best level (12.5 %): about one delta in four moves a best price. The books
    never cross and no level goes below one contract."""
    rng = random.Random(seed)
    names = tickers(markets)
    ids = [f"00000000-0000-4000-8000-{i:012d}" for i in range(markets)]
    bids: list[dict[int, int]] = []
    asks: list[dict[int, int]] = []
    snapshots: list[bytes] = []
    for i, ticker in enumerate(names):
        fair = rng.randrange(20, 81)
        bids.append({fair - 1 - k: rng.randrange(1, 500) for k in range(_LEVELS)})
        asks.append({fair + 1 + k: rng.randrange(1, 500) for k in range(_LEVELS)})
        msg = {
            "market_ticker": ticker,
            "market_id": ids[i],
            "yes_dollars_fp": [[_price(p), f"{q}.00"] for p, q in sorted(bids[i].items())],
            "no_dollars_fp": [[_price(p), f"{q}.00"] for p, q in sorted(asks[i].items())],
        }
        snapshots.append(
            orjson.dumps({"type": "orderbook_snapshot", "sid": _SID, "seq": i + 1, "msg": msg})
        )
    frames: list[bytes] = []
    template = (
        '{"type":"orderbook_delta","sid":%d,"seq":%d,"msg":{"market_ticker":"%s",'
        '"market_id":"%s","price_dollars":"%s","delta_fp":"%s","side":"%s","ts_ms":%d}}'
    )
    ts_ms = 1_790_000_000_000
    for seq in range(markets + 1, markets + 1 + deltas):
        i = rng.randrange(markets)
        is_yes = rng.random() < 0.5
        levels = bids[i] if is_yes else asks[i]
        best_bid, best_ask = max(bids[i]), min(asks[i])
        roll = rng.random()
        if roll < 0.125:  # size at or inside the best price
            price = best_bid + 1 if is_yes else best_ask - 1
            if not best_bid < price < best_ask:
                price = best_bid if is_yes else best_ask
            delta = rng.randrange(1, 500)
        elif roll < 0.25 and len(levels) > 3:  # the best level goes
            price = best_bid if is_yes else best_ask
            delta = -levels[price]
        else:  # a resting level changes size
            price = rng.choice(list(levels))
            delta = rng.randrange(1, 100)
            if rng.random() < 0.5:
                delta = -min(delta, levels[price] - 1) or delta
        size = levels.get(price, 0) + delta
        if size > 0:
            levels[price] = size
        else:
            del levels[price]
        ts_ms += 1
        frame = template % (
            _SID, seq, names[i], ids[i], _price(price), f"{delta}.00",
            "yes" if is_yes else "no", ts_ms,
        )  # fmt: skip
        frames.append(frame.encode())
    return snapshots, frames


def _ws_text(payload: bytes) -> bytes:
    """``payload`` as one unmasked websocket text frame (server to client, RFC 6455 §5.2)."""
    size = len(payload)
    if size < 126:
        head = bytes((0x81, size))
    elif size < 1 << 16:
        head = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return head + payload


# --------------------------------------------------------------------------- lag


def lag(
    markets: int = 1000,
    rate: int = 20_000,
    seconds: float = 5.0,
    *,
    warmup_s: float = 1.0,
    burst: int = 20,
    floor_s: float = 5.0,
) -> dict[str, dict[str, Any]]:
    """Frame-to-decision lag of kmm's receive path and trading core (``kmm``) at ``rate``
    frames a second across ``markets`` markets, for ``seconds`` after ``warmup_s``, and the
    same stream's lag to a receiver that does nothing (``floor``: frames stamped as their
    bytes arrive), for ``floor_s`` after ``warmup_s``; see the module docstring.

    Each has lags in µs (``p50_us``, ``p99_us``, ``max_us``, and ``first_p50_us`` of the
    first frame of each burst alone), ``n`` frames measured (``missing``: never decided),
    ``rate`` achieved (frames measured over the time from the first one's scheduled send to
    the last one's decision), the feed's lateness against its schedule
    (``feed_late_p99_us``, ``feed_late_max_us``), and ``others_cpu``, the CPU time every
    other process of the machine used meanwhile, in CPUs (the ``busiest`` of them, by name,
    used ``busiest_cpu``). ``kmm`` adds the
    receiver's CPU time per frame (``cpu_us``), the trading core's part of it
    (``core_us``), its garbage collections in the window (``gc_count``, ``gc_full`` of the
    oldest generation, ``gc_max_ms`` the longest) and ``decisions`` (the quoter's)."""
    warm = round(warmup_s * rate)
    snapshots, deltas = build_frames(markets, _whole(warm + round(seconds * rate), burst))
    floor_count = _whole(warm + round(floor_s * rate), burst)
    with _pinned() as cpus:
        kmm = uvloop.run(_lag(snapshots, deltas, "receive", rate, burst, warm, cpus))
        floor = uvloop.run(_lag(snapshots, deltas[:floor_count], "floor", rate, burst, warm, cpus))
    return {"kmm": kmm, "floor": floor}


def _whole(count: int, burst: int) -> int:
    return max(burst, count - count % burst)


async def _lag(
    snapshots: list[bytes],
    deltas: list[bytes],
    mode: str,
    rate: int,
    burst: int,
    warm: int,
    cpus: set[int] | None,
) -> dict[str, Any]:
    """Serves the stream to one receiver process (``mode``: ``receive`` or ``floor``)."""
    from websockets.asyncio.server import ServerConnection, serve

    period_ns = round(burst * 1e9 / rate)
    frames = [_ws_text(frame) for frame in deltas]
    bursts = [b"".join(frames[start : start + burst]) for start in range(0, len(frames), burst)]
    books = b"".join(_ws_text(frame) for frame in snapshots)
    writes = array.array("q", bytes(8 * len(bursts)))
    others: dict[str, Any] = {}
    """From the stream's start until the receiver left: every other process's CPU time."""
    ours = {os.getpid()}
    loop = asyncio.get_running_loop()
    sent: asyncio.Future[int] = loop.create_future()
    ended: asyncio.Future[None] = loop.create_future()

    async def stream(connection: ServerConnection) -> None:
        command = orjson.loads(await connection.recv())
        transport = connection.transport
        transport.write(_ws_text(_subscribed(command["id"])) + books)
        await asyncio.sleep(0.5)  # the receiver takes the snapshots in
        monotonic_ns = time.monotonic_ns
        t0 = monotonic_ns() + 5_000_000
        others.update(cpu=_cpu_by_process(), wall=monotonic_ns())
        for k, chunk in enumerate(bursts):
            due = t0 + k * period_ns
            ahead = due - monotonic_ns()
            if ahead > 2_000_000:
                await asyncio.sleep((ahead - 1_500_000) / 1e9)
            while (now := monotonic_ns()) < due:
                pass
            writes[k] = now
            transport.write(chunk)
            if transport.get_write_buffer_size():
                await asyncio.sleep(0)  # the socket is full: let the loop flush
        sent.set_result(t0)
        await connection.wait_closed()
        others.update(cpu=_cpu_since(others["cpu"], ours), wall=monotonic_ns() - others["wall"])
        ended.set_result(None)

    with tempfile.TemporaryDirectory(prefix="kmm-bench-lag-") as scratch:
        out = Path(scratch) / "decided.json"
        ends = Path(scratch) / "ends.bin"
        # Where each delta's frame ends in the stream, for the floor (its command is id 1)
        opening = len(_ws_text(_subscribed(1))) + len(books)
        offsets = itertools.accumulate((len(frame) for frame in frames), initial=opening)
        ends.write_bytes(array.array("q", offsets)[1:].tobytes())
        async with serve(stream, "127.0.0.1", 0, compression=None, ping_interval=None,
                         max_size=None) as server:  # fmt: skip
            port = server.sockets[0].getsockname()[1]
            receiver = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.load", mode,
                f"ws://127.0.0.1:{port}/trade-api/ws/v2", str(len(snapshots)), str(len(deltas)),
                str(warm), str(out), "--ends", str(ends), cwd=_ROOT,
            )  # fmt: skip
            ours.add(receiver.pid)
            if cpus is not None:
                os.sched_setaffinity(receiver.pid, cpus)
            code = await receiver.wait()
            if code != 0 or not sent.done():
                raise SystemExit(f"bench: the lag receiver ({mode}) failed (exit status {code})")
            t0 = sent.result()
            await asyncio.wait_for(ended, 10)  # the connection's end reaches the handler
        result: dict[str, Any] = orjson.loads(out.read_bytes())
    figures = _lag_figures(result, t0, period_ns, burst, warm, writes.tolist())
    busiest = max(others["cpu"].items(), key=lambda item: item[1], default=("", 0))
    figures["others_cpu"] = sum(others["cpu"].values()) / others["wall"]
    figures["busiest"], figures["busiest_cpu"] = busiest[0], busiest[1] / others["wall"]
    return figures


def _subscribed(command_id: int) -> bytes:
    reply = {"id": command_id, "type": "subscribed",
             "msg": {"channel": "orderbook_delta", "sid": _SID}}  # fmt: skip
    return orjson.dumps(reply)


def _cpu_by_process() -> dict[int, tuple[str, int]]:
    """Every process's command line (or name) and CPU time so far (user and system, ns),
    from ``/proc``."""
    tick_ns = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    seen: dict[int, tuple[str, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        with contextlib.suppress(OSError):  # the command line says more than "python"
            name = (
                Path(f"/proc/{entry}/cmdline")
                .read_bytes()
                .replace(b"\0", b" ")
                .decode(errors="replace")
                .strip()[:60]
                or name
            )
        seen[int(entry)] = (name, (int(fields[11]) + int(fields[12])) * tick_ns)
    return seen


def _cpu_since(before: dict[int, tuple[str, int]], ours: set[int]) -> dict[str, int]:
    """CPU time (ns) by process name since ``before``, leaving ``ours`` out."""
    spent: dict[str, int] = {}
    for pid, (name, cpu) in _cpu_by_process().items():
        if pid not in ours:
            used = cpu - before.get(pid, (name, 0))[1]
            if used > 0:
                spent[name] = spent.get(name, 0) + used
    return spent


def _lag_figures(
    result: dict[str, Any], t0: int, period_ns: int, burst: int, warm: int, writes: list[int]
) -> dict[str, Any]:
    decided: list[int] = result["decided"]
    window = [(i, at) for i, at in enumerate(decided[warm:], start=warm) if at]
    lags = sorted(at - (t0 + (i // burst) * period_ns) for i, at in window)
    first = sorted(at - (t0 + (i // burst) * period_ns) for i, at in window if i % burst == 0)
    late = sorted(at - (t0 + k * period_ns) for k, at in enumerate(writes) if k >= warm // burst)
    n = len(lags)
    span = max((at for _, at in window), default=0) - (t0 + (warm // burst) * period_ns)
    figures = {
        "p50_us": _pct(lags, 0.5),
        "p99_us": _pct(lags, 0.99),
        "max_us": _pct(lags, 1.0),
        "first_p50_us": _pct(first, 0.5),
        "feed_late_p99_us": _pct(late, 0.99),
        "feed_late_max_us": _pct(late, 1.0),
        "n": float(n),
        "missing": float(len(decided) - warm - n),
        "rate": n / (span / 1e9) if n and span > 0 else float("nan"),
    }
    if "core_ns" in result:
        figures.update(
            cpu_us=result["cpu_ns"] / max(n, 1) / 1e3,
            core_us=result["core_ns"] / max(n, 1) / 1e3,
            gc_count=float(result["gc_count"]),
            gc_full=float(result["gc_full"]),
            gc_max_ms=result["gc_max_ns"] / 1e6,
            decisions=float(result["decisions"]),
        )
    return figures


def _pct(ordered: list[int], q: float) -> float:
    """The ``q`` quantile of sorted nanoseconds, in µs (NaN with no samples)."""
    if not ordered:
        return float("nan")
    return ordered[round(q * (len(ordered) - 1))] / 1e3


@contextlib.contextmanager
def _pinned() -> Iterator[set[int] | None]:
    """With two CPUs or more: this process (the feed) on the first, and yields the others
    (for the receiver); else yields None and pins nothing."""
    if not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2:
        yield None
        return
    before = os.sched_getaffinity(0)
    usable = sorted(before)
    os.sched_setaffinity(0, {usable[0]})
    try:
        yield set(usable[1:])
    finally:
        os.sched_setaffinity(0, before)


# --------------------------------------------------------------------------- the receivers


class _Window:
    """The receiver's side of the measurement: per delta, when it was decided
    (``CLOCK_MONOTONIC`` ns, 0: never); the process's CPU time and garbage collections from
    the first delta after the warm-up on."""

    def __init__(self, expect: int, warm: int) -> None:
        self.expect = expect
        self.warm = warm
        self.decided = array.array("q", bytes(8 * expect))
        self.cpu_from = self.cpu_to = 0
        self.gc_started = self.gc_max = self.gc_count = self.gc_full = 0
        self.done = asyncio.get_running_loop().create_future()

    def started(self, index: int) -> None:
        if index == self.warm:
            self.cpu_from = time.process_time_ns()

    def finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.gc_started = time.monotonic_ns()
        elif self.cpu_from:
            self.gc_max = max(self.gc_max, time.monotonic_ns() - self.gc_started)
            self.gc_count += 1
            self.gc_full += info["generation"] == 2

    async def wait(self, other: asyncio.Future[Any] | None = None) -> None:
        """Until every delta was decided (or ``other`` ended, or a generous timeout)."""
        gc.callbacks.append(self.on_gc)
        try:
            async with asyncio.timeout(self.expect / 1000 + 30):
                await asyncio.wait(
                    [self.done] + ([other] if other is not None else []),
                    return_when=asyncio.FIRST_COMPLETED,
                )
        except TimeoutError:
            pass
        finally:
            self.cpu_to = time.process_time_ns()
            gc.callbacks.remove(self.on_gc)

    def figures(self) -> dict[str, Any]:
        return {
            "decided": self.decided.tolist(),
            "cpu_ns": self.cpu_to - self.cpu_from if self.cpu_from else 0,
            "gc_max_ns": self.gc_max,
            "gc_count": self.gc_count,
            "gc_full": self.gc_full,
        }


class _KmmReceiver:
    """kmm's websocket client and trading core on ``markets`` markets, fed by ``url``: each
    frame goes where ``LiveEngine.on_frame`` sends it, and every delta's decision is stamped."""

    def __init__(self, url: str, markets: int, expect: int, warm: int) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        from kmm.app import build_core
        from kmm.book.grid import PriceGrid
        from kmm.config import KmmConfig
        from kmm.kalshi.auth import Signer
        from kmm.kalshi.ws import KalshiWs
        from kmm.pipeline import MarketSpec

        self.core = build_core(KmmConfig(), start_ns=time.time_ns())
        for ticker in tickers(markets):
            self.core.add_market(MarketSpec(ticker, PriceGrid.linear_cent()))
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ws = KalshiWs(
            url, Signer("bench-load", key), self.on_frame, use_yes_price=True,
            ping_interval_s=None, stale_after_s=60.0,
        )  # fmt: skip
        self.markets = markets
        self.window = _Window(expect, warm)
        self.skip = 1 + markets  # the subscribe reply, then one snapshot per market
        self.received = 0
        self.waiting: list[int] = []
        self.drain_scheduled = False
        self.core_ns = 0

    async def run(self) -> dict[str, Any]:
        await self.ws.subscribe(["orderbook_delta"], tickers(self.markets))
        run = asyncio.create_task(self.ws.run())
        await self.window.wait(run)
        await self.ws.close()
        with contextlib.suppress(asyncio.CancelledError):
            await run
        stats = self.core.pipeline.stats
        if stats.gaps or stats.integrity_errors or stats.rejected:
            sys.exit(f"bench: the trading core misbehaved on the feed: {stats}")
        return self.window.figures() | {"core_ns": self.core_ns, "decisions": stats.decisions}

    def on_frame(self, frame: bytes | str, recv_ns: int) -> Any:
        """What ``LiveEngine.on_frame`` does, with the decision time of every delta."""
        started = time.perf_counter_ns()
        index = self.received - self.skip
        self.received += 1
        core, window = self.core, self.window
        core.feed_last_ns = recv_ns
        event = core.on_frame(frame, recv_ns)
        if core.quotes_pending:
            self.waiting.append(index)
            if not self.ws.book_frames_ahead:
                self.drain()
            elif not self.drain_scheduled:
                self.drain_scheduled = True
                asyncio.get_running_loop().call_soon(self.drain)
        else:
            core.take_actions()
            if index >= 0:
                window.decided[index] = time.monotonic_ns()
            if index == window.expect - 1 and not self.waiting:
                window.finish()
        if index >= 0:
            window.started(index)
            if window.cpu_from and index != window.warm:
                self.core_ns += time.perf_counter_ns() - started
        return event

    def drain(self) -> None:
        """``LiveEngine._drain_mailbox``: the decided quotes handed on."""
        self.drain_scheduled = False
        started = time.perf_counter_ns()
        self.core.decide_quotes(time.time_ns())
        self.core.take_actions()
        now = time.monotonic_ns()
        window = self.window
        if window.cpu_from:
            self.core_ns += time.perf_counter_ns() - started
        for index in self.waiting:
            if index >= 0:
                window.decided[index] = now
        self.waiting.clear()
        if self.received - self.skip >= window.expect:
            window.finish()


async def _receive(url: str, markets: int, expect: int, warm: int) -> dict[str, Any]:
    return await _KmmReceiver(url, markets, expect, warm).run()


async def _floor(url: str, expect: int, warm: int, ends: array.array[int]) -> dict[str, Any]:
    """The floor: after the handshake, every read only counts its bytes, and each delta whose
    frame the bytes so far complete (``ends``: where each one's frame ends) is stamped."""
    from websockets.asyncio.client import ClientConnection, connect

    window = _Window(expect, warm)
    decided = window.decided
    counting = [False, 0, 0]  # after the handshake; bytes since; the next delta

    class Counting(ClientConnection):
        def data_received(self, data: bytes) -> None:
            if not counting[0]:
                super().data_received(data)
                return
            now = time.monotonic_ns()
            total = counting[1] = counting[1] + len(data)
            index = counting[2]
            while index < expect and ends[index] <= total:
                decided[index] = now
                window.started(index)
                index += 1
            counting[2] = index
            if index == expect:
                window.finish()

    ws = await connect(
        url, compression=None, ping_interval=None, max_size=None, create_connection=Counting
    )
    counting[0] = True  # from here on every byte is the feed's
    await ws.send(orjson.dumps({"id": 1, "cmd": "subscribe", "params": {}}).decode())
    await window.wait()
    ws.transport.abort()
    return window.figures()


def main(argv: list[str]) -> int:
    """``python -m bench.load receive|floor URL MARKETS EXPECT WARM OUT --ends FILE``: the
    lag bench's receiver (kmm, or the do-nothing floor)."""
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("mode", choices=("receive", "floor"))
    parser.add_argument("url")
    parser.add_argument("markets", type=int)
    parser.add_argument("expect", type=int)
    parser.add_argument("warm", type=int)
    parser.add_argument("out", type=Path)
    parser.add_argument("--ends", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.mode == "receive":
        work = _receive(args.url, args.markets, args.expect, args.warm)
    else:
        ends = array.array("q")
        ends.frombytes(args.ends.read_bytes())
        work = _floor(args.url, args.expect, args.warm, ends)
    args.out.write_bytes(orjson.dumps(uvloop.run(work)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
