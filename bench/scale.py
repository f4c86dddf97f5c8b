"""Scale figures of ``make bench``: discovery over thousands of open markets within the read
budget, and start-up of ``kmm run`` on 1000 markets next to the same start on 8."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from kmm.kalshi.auth import Signer, load_private_key
from kmm.kalshi.rest import KalshiRest
from kmm.select.discovery import DiscoveryParams
from kmm.select.reader import ReadStats, read_views
from kmm.sim.server import SimOptions, SimServer


async def _discover(markets: int, state: Path) -> tuple[ReadStats, int, int, str]:
    options = SimOptions(
        markets=markets, scenario="mixed", flow=False, tier="basic",
        state_dir=state,
    )  # fmt: skip
    server = SimServer(options)
    await server.start("127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as session:
            signer = Signer(server.key_id, load_private_key(server.private_key_path))
            rest = KalshiRest(session, server.rest_url, signer)
            limits = await rest.account_limits()
            _, _, stats = await read_views(rest, DiscoveryParams(), time.time_ns())
        return stats, limits.read_capacity, limits.read_refill_per_s, server.rate_limit_summary()
    finally:
        await server.stop()


def discovery(markets: int) -> tuple[ReadStats, int, int, str]:
    """Discovery's read of ``markets`` open markets of the mixed universe over loopback:
    its cost, the Basic tier's read bucket (capacity, refill per second) and the exchange's
    count of the 429s it sent."""
    with tempfile.TemporaryDirectory(prefix="kmm-bench-scale-") as state:
        return asyncio.run(_discover(markets, Path(state)))


def start_up(markets: int) -> tuple[float, float]:
    """``kmm run`` on ``markets`` markets of the in-process exchange: seconds from launch to
    the start banner (markets read, subscriptions about to go out) and to the first summary
    line (the first second of quoting)."""
    with tempfile.TemporaryDirectory(prefix="kmm-bench-start-") as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KMM__")}
        env.update(
            KMM__SIM__MARKETS=str(markets),
            KMM__MARKETS__MAX_MARKETS=str(markets),
            KMM__SIM__STATE_DIR=str(Path(home) / "state"),
        )
        started = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "kmm", "run", "--duration", "3"],
            cwd=home, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        assert process.stdout is not None
        banner = first = float("nan")
        for line in process.stdout:
            now = time.perf_counter() - started
            if banner != banner and line.lstrip().startswith(f"markets ({markets})"):
                banner = now
            if line.startswith("t="):
                first = now
                break
        process.terminate()
        process.wait(30)
        return banner, first
