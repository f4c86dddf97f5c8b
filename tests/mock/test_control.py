"""The control API of a real ``kmm run`` against the local exchange: read over HTTP with the
run's token, written to (a market disabled, a bad parameter refused, a halt and a resume), and
``markets.overrides`` reloaded by SIGHUP from a good file and refused from a bad one."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import stat
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMM__")}
    env["KMM__RECORD__RUNS_DIR"] = str(tmp_path / "runs")
    env["KMM__RECORD__LEDGER_PATH"] = str(tmp_path / "runs" / "ledger.sqlite")
    env["KMM__SIM__STATE_DIR"] = str(tmp_path / "state")
    return env


@dataclass
class Bot:
    """A running ``kmm run`` and a client of its control API."""

    process: asyncio.subprocess.Process
    run_dir: Path
    url: str
    token: str
    session: aiohttp.ClientSession

    async def get(self, path: str, token: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token if token is None else token}"}
        async with self.session.get(self.url + path, headers=headers) as answer:
            return answer.status, await answer.json()

    async def post(self, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with self.session.post(self.url + path, json=body, headers=headers) as answer:
            return answer.status, await answer.json()

    def log(self) -> str:
        return (self.run_dir / "ops.log").read_text(encoding="utf-8")

    async def logged(self, line: str) -> None:
        """Waits for ``line`` in ``ops.log`` (written by a background thread)."""

        async def found() -> bool:
            return line in self.log()

        await _until(found, f"{line!r} in ops.log")


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 15) -> None:
    for _ in range(int(timeout_s / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@asynccontextmanager
async def _bot(tmp_path: Path, config: Path, duration_s: int) -> AsyncIterator[Bot]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kmm", "--config", str(config), "run",
        "--duration", str(duration_s),
        env=_env(tmp_path), cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    found: list[Path] = []

    async def started() -> bool:
        found[:] = list((tmp_path / "runs").glob("*/control.url"))
        return bool(found)

    try:
        await _until(started, "control.url in the run directory")
        run_dir = found[0].parent
        url = found[0].read_text().strip()
        token = (run_dir / "control.token").read_text().strip()
        async with aiohttp.ClientSession() as session:
            bot = Bot(process, run_dir, url, token, session)
            await _until(_quoting(bot), "orders resting")
            yield bot
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _, err = await process.communicate()
        assert process.returncode == 0, err.decode()


def _quoting(bot: Bot) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        status, orders = await bot.get("api/orders")
        return status == 200 and len(orders) > 0

    return check


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_the_api_reads_the_run_and_refuses_a_request_without_its_token(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("record:\n  capture: false\n")
    async with _bot(tmp_path, config, 30) as bot:
        mode = stat.S_IMODE((bot.run_dir / "control.token").stat().st_mode)
        assert mode == 0o600
        assert (await bot.get("api/status", token="wrong"))[0] == 401
        async with bot.session.get(bot.url + "api/status") as answer:
            assert answer.status == 401

        status, run = await bot.get("api/status")
        assert status == 200
        assert run["state"] == "quoting" and run["env"] == "sim" and run["markets"] == 8
        assert run["run_dir"] == str(bot.run_dir)
        assert run["control_url"] == bot.url and run["metrics_url"].endswith("/metrics")
        _, markets = await bot.get("api/markets")
        assert len(markets) == 8
        assert {"ticker", "position", "resting", "quote", "book", "pnl", "enabled"} <= set(
            markets[0]
        )
        _, orders = await bot.get("api/orders")
        assert {o["ticker"] for o in orders} <= {m["ticker"] for m in markets}
        assert all(o["client_order_id"].startswith("kmm") for o in orders)
        assert (await bot.get("api/positions"))[0] == 200
        _, pnl = await bot.get("api/pnl")
        assert set(pnl["markets"]) == {m["ticker"] for m in markets}
        await asyncio.sleep(1.5)
        _, pnl = await bot.get("api/pnl")
        assert pnl["history"], "the P&L history is sampled once a second"
        _, risk = await bot.get("api/risk")
        assert risk["kill_switch"] == "running"


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_a_market_is_disabled_a_bad_parameter_refused_and_the_bot_halted(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("record:\n  capture: false\n")
    async with _bot(tmp_path, config, 40) as bot:
        _, orders = await bot.get("api/orders")
        ticker = orders[0]["ticker"]

        status, answer = await bot.post(f"api/markets/{ticker}", {"enabled": False})
        assert status == 200, answer
        assert answer["changes"] == [f"{ticker}: enabled true -> false"]

        async def gone() -> bool:
            _, orders = await bot.get("api/orders")
            return all(o["ticker"] != ticker for o in orders)

        await _until(gone, f"{ticker}'s orders cancelled")
        _, markets = await bot.get("api/markets")
        row = next(m for m in markets if m["ticker"] == ticker)
        assert not row["enabled"] and row["cause"] == "disabled"

        status, answer = await bot.post(f"api/markets/{ticker}", {"gamma": -1})
        assert status == 400
        assert answer["problems"] == [f"markets.overrides.{ticker}.gamma: must be > 0, got -1"]
        assert (await bot.post("api/markets/KXNOPE-1", {"enabled": False}))[0] == 404

        status, answer = await bot.post("api/halt", {"reason": "test halt"})
        assert status == 200 and answer["reason"] == "test halt"

        async def halted() -> bool:
            _, risk = await bot.get("api/risk")
            return bool(risk["kill_switch"] == "halted")  # confirmed flat with the venue

        await _until(halted, "the halt to cancel everything")
        _, run = await bot.get("api/status")
        assert run["state"] == "halted" and run["halted"] == "test halt"
        assert (await bot.get("api/orders"))[1] == []
        status, answer = await bot.post("api/resume", {})
        assert status == 200 and answer["kill_switch"] == "running"
        await _until(_quoting(bot), "quoting again after the resume")
        await bot.logged("kill switch: trip (halting): test halt")


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_sighup_reloads_a_good_file_and_a_bad_one_changes_nothing(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("record:\n  capture: false\n")
    async with _bot(tmp_path, config, 40) as bot:
        _, orders = await bot.get("api/orders")
        ticker = orders[0]["ticker"]
        config.write_text(
            "record:\n  capture: false\nmarkets:\n  overrides:\n"
            f"    {ticker}: {{reduce_only: true, min_spread_cents: 12}}\n"
        )

        bot.process.send_signal(signal.SIGHUP)

        async def reloaded() -> bool:
            _, markets = await bot.get("api/markets")
            row = next(m for m in markets if m["ticker"] == ticker)
            return bool(row["reduce_only"] and row["override"].get("min_spread_cents") == "12")

        await _until(reloaded, "the reload")
        diff = f"override: {ticker}: reduce_only false -> true, min_spread_cents the run's -> 12"
        await bot.logged(diff)

        config.write_text(
            "markets:\n  overrides:\n"
            f"    {ticker}: {{gamma: -2}}\n    OTHER-1: {{enabled: false}}\n"
        )
        bot.process.send_signal(signal.SIGHUP)

        await bot.logged(
            f"reload refused, nothing changed: markets.overrides.{ticker}.gamma: must be > 0, "
            "got -2"
        )
        _, markets = await bot.get("api/markets")
        row = next(m for m in markets if m["ticker"] == ticker)
        assert row["reduce_only"] and row["override"]["min_spread_cents"] == "12"

        config.write_text("record:\n  capture: false\n")
        status, answer = await bot.post("api/reload")
        assert status == 200
        assert answer["changes"] == [
            f"{ticker}: reduce_only true -> false, min_spread_cents 12 -> the run's"
        ]


async def _kmm(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kmm", *args, env=_env(tmp_path), cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.asyncio
@pytest.mark.timeout(120)
async def test_kmm_status_finds_the_running_bot_and_shows_its_markets(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("record:\n  capture: false\n")
    code, _, err = await _kmm(tmp_path, "status")
    assert code == 1
    assert err == f"kmm: status: no running bot under {tmp_path / 'runs'} (kmm run starts one)\n"
    async with _bot(tmp_path, config, 40) as bot:
        _, markets = await bot.get("api/markets")
        await bot.post(f"api/markets/{markets[0]['ticker']}", {"reduce_only": True})

        code, out, err = await _kmm(tmp_path, "status")
        assert code == 0, err
        assert "QUOTING" in out and bot.run_dir.name in out
        for market in markets:
            assert market["ticker"] in out
        assert "reduce-only" in out
        code, out, _ = await _kmm(tmp_path, "status", str(bot.run_dir), "--json")
        views = json.loads(out)
        assert set(views) == {"status", "markets", "orders", "risk"}
        assert views["risk"]["reduce_only"] == [markets[0]["ticker"]]
        code, out, _ = await _kmm(tmp_path, "status", "--live", "--duration", "2")
        assert code == 0 and out.count("resting orders") >= 1
        run_dir = bot.run_dir
    code, _, err = await _kmm(tmp_path, "status", str(run_dir))
    assert code == 1 and "is not running" in err
    code, out, err = await _kmm(tmp_path, "history", "--json")
    assert code == 0, err
    (run,) = json.loads(out)
    with sqlite3.connect(tmp_path / "runs" / "ledger.sqlite") as db:
        (fills,) = db.execute("SELECT COUNT(*) FROM fills WHERE run_id = ?", (run_dir.name,))
    assert run["run_id"] == run_dir.name and run["fills"] == fills[0] and run["env"] == "sim"


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_a_halt_is_posted_to_the_webhook_once(tmp_path: Path) -> None:
    received: list[Any] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hooks/T000/B000/secret", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    config = tmp_path / "config.yaml"
    config.write_text(
        "record:\n  capture: false\n"
        f"ops:\n  webhook_url: http://127.0.0.1:{port}/hooks/T000/B000/secret\n"
    )
    try:
        async with _bot(tmp_path, config, 30) as bot:
            await bot.post("api/halt", {"reason": "webhook test"})

            async def posted() -> bool:
                return bool(received)

            await _until(posted, "the alert at the webhook")
            await asyncio.sleep(2.5)  # a halt is announced once, not every second
            assert len(received) == 1
            alert = received[0]
            assert alert["text"] == alert["content"] == "kmm halted: webhook test"
            assert alert["kmm"]["kind"] == "halt" and alert["kmm"]["run"] == bot.run_dir.name
            assert "secret" not in (bot.run_dir / "config.yaml").read_text()
            await bot.logged("alert halt: kmm halted: webhook test")
    finally:
        await runner.cleanup()
