"""``kmm status [--live] [RUN_DIR]``: a running bot's state in rich tables, from its control API.

Theory of operation
-------------------
Every ``kmm run`` writes its control API's address (``control.url``) and token
(``control.token``, mode 0600) into its run directory. ``kmm status`` reads them, asks the API
for the status, the markets, the orders and the risk state, and renders them with rich: the
run at a glance, then one row per market (position, our resting bid and ask, others' book, P&L,
flags) and the resting orders, and the dashboard's address with the token in its fragment
(the token never leaves the machine: the page is on 127.0.0.1). With no RUN_DIR it takes the
newest run under ``record.runs_dir`` whose bot answers. ``--live`` redraws every second until
Ctrl-C (or ``--duration``); ``--json`` prints what the API answered, for scripts.

The rendering (:func:`render`) is pure: it turns the API's JSON into rich renderables.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import aiohttp
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from kmm.errors import KmmError
from kmm.ops.control import TOKEN_FILE, URL_FILE
from kmm.report import run_dirs

__all__ = ["ControlClient", "find_running", "render", "run_status"]

_VIEWS = ("status", "markets", "orders", "risk")


@dataclass(frozen=True, slots=True)
class ControlClient:
    """The address and token of one run's control API."""

    run_dir: Path
    url: str
    token: str

    @classmethod
    def of(cls, run_dir: Path) -> ControlClient | None:
        """The run's control API, or None when the run never served one."""
        try:
            url = (run_dir / URL_FILE).read_text(encoding="utf-8").strip()
            token = (run_dir / TOKEN_FILE).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return cls(run_dir, url, token)

    async def read(self, session: aiohttp.ClientSession) -> dict[str, Any]:
        """The API's status, markets, orders and risk views, by name.

        Raises:
            aiohttp.ClientError: the bot does not answer (it is not running).
        """
        headers = {"Authorization": f"Bearer {self.token}"}
        views = {}
        for view in _VIEWS:
            async with session.get(f"{self.url}api/{view}", headers=headers) as answer:
                answer.raise_for_status()
                views[view] = await answer.json()
        return views


async def find_running(runs_dir: Path, session: aiohttp.ClientSession) -> ControlClient:
    """The newest run under ``runs_dir`` whose bot answers.

    Raises:
        KmmError: when no bot under ``runs_dir`` answers.
    """
    for run_dir in run_dirs(runs_dir):
        client = ControlClient.of(run_dir)
        if client is not None and await _answers(client, session):
            return client
    raise KmmError(f"status: no running bot under {runs_dir} (kmm run starts one)")


async def _answers(client: ControlClient, session: aiohttp.ClientSession) -> bool:
    headers = {"Authorization": f"Bearer {client.token}"}
    try:
        async with session.get(f"{client.url}api/status", headers=headers) as answer:
            return answer.status == 200
    except (aiohttp.ClientError, TimeoutError):
        return False


async def _client(
    run_dir: Path | None, runs_dir: Path, session: aiohttp.ClientSession
) -> ControlClient:
    if run_dir is None:
        return await find_running(runs_dir, session)
    client = ControlClient.of(run_dir)
    if client is None:
        raise KmmError(f"status: {run_dir} has no {URL_FILE}: not the run of a kmm run")
    if not await _answers(client, session):
        raise KmmError(
            f"status: the bot of {run_dir} is not running ({client.url} does not answer)"
        )
    return client


async def run_status(
    run_dir: Path | None,
    runs_dir: Path,
    *,
    live: bool,
    duration_s: float | None,
    as_json: bool,
    out: TextIO,
) -> int:
    """Shows a running bot's state; returns the exit status (0).

    Raises:
        KmmError: no running bot is found, or it stops answering (exit status 1).
    """
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        client = await _client(run_dir, runs_dir, session)
        views = await _read(client, session)
        if as_json:
            print(json.dumps(views, indent=2), file=out)
            return 0
        console = Console(file=out, width=max(Console(file=out).width, 120))
        if not live:
            console.print(render(views))
            console.print(f"dashboard: {client.url}#token={client.token}", soft_wrap=True)
            return 0
        await _live(client, session, console, views, duration_s)
    return 0


async def _read(client: ControlClient, session: aiohttp.ClientSession) -> dict[str, Any]:
    try:
        return await client.read(session)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise KmmError(f"status: the bot of {client.run_dir} stopped answering: {exc}") from None


async def _live(
    client: ControlClient,
    session: aiohttp.ClientSession,
    console: Console,
    views: dict[str, Any],
    duration_s: float | None,
) -> None:
    end = None if duration_s is None else time.monotonic() + duration_s
    with Live(render(views), console=console, auto_refresh=False) as screen:
        while end is None or time.monotonic() < end:
            await asyncio.sleep(1.0)
            views = await _read(client, session)
            screen.update(render(views), refresh=True)


# --------------------------------------------------------------------------- rendering


def render(views: dict[str, Any]) -> RenderableType:
    """The API's views as rich renderables: a header, the markets, the orders."""
    status = views["status"]
    return Group(
        Text(f"run directory {status.get('run_dir') or '-'}", style="dim"),
        _header(status, views["risk"]),
        _markets(views["markets"]),
        _orders(views["orders"]),
    )


def _money(text: str) -> Text:
    style = "red" if text.startswith("-") else "green" if text.strip("0.") else ""
    return Text(f"${text}", style=style)


def _header(status: dict[str, Any], risk: dict[str, Any]) -> Table:
    state = status["state"]
    style = {"quoting": "bold green", "halted": "bold red", "paused": "bold yellow"}
    table = Table.grid(padding=(0, 2))
    table.add_row(
        Text(state.upper(), style=style.get(state, "")),
        f"{status['env']} · {status['mode']} · up {status['uptime_s']:.0f} s",
        f"pid {status.get('pid', '-')}",
    )
    if status["halted"]:
        table.add_row("", Text(f"halted: {status['halted']}", style="red"), "")
    pnl = status["pnl"]
    feed = status["feed_age_s"]
    table.add_row(
        Text.assemble("P&L ", _money(pnl["total"])),
        Text.assemble(
            "realized ",
            _money(pnl["realized"]),
            " unrealized ",
            _money(pnl["unrealized"]),
            f" fees ${pnl['fees']}",
        ),
    )
    table.add_row(
        f"fills {status['fills']}",
        f"live orders {status['live_orders']} · inventory {status['inventory']}",
        "",
    )
    table.add_row(
        f"kill switch {risk['kill_switch']}",
        f"feed age {'-' if feed is None else f'{feed:.1f} s'} · write tokens "
        f"{status.get('write_tokens', '-')} · 429s {status.get('rate_limited', 0)}",
        f"quoting {status['quoting']}/{status['markets']}",
    )
    return table


def _side(price: str | None, qty: str) -> str:
    return "-" if price is None else f"{price} × {qty}"


def _flags(market: dict[str, Any]) -> str:
    flags = []
    if not market["enabled"]:
        flags.append("disabled")
    if market["reduce_only"]:
        flags.append("reduce-only")
    if market["exiting"]:
        flags.append("exiting")
    if market["blocked"]:
        flags.append(f"blocked: {market['blocked']}")
    if market["mode"] != "normal" and market["cause"] not in ("disabled", "reduce_only"):
        flags.append(f"{market['mode']} ({market['cause']})")
    if market["held"]:
        flags.append(market["held"])
    if market["override"]:
        flags.append("override " + ", ".join(f"{k}={v}" for k, v in market["override"].items()))
    return "; ".join(flags)


def _markets(markets: list[dict[str, Any]]) -> Table:
    table = Table(title="markets", title_justify="left", expand=True)
    for name in ("market", "position", "our bid", "our ask", "book bid", "book ask", "P&L"):
        table.add_column(name, justify="left" if name == "market" else "right", no_wrap=True)
    table.add_column("flags", overflow="fold")
    for m in markets:
        resting, book = m["resting"], m["book"]
        table.add_row(
            m["ticker"],
            m["position"],
            _side(resting["bid"], resting["bid_qty"]),
            _side(resting["ask"], resting["ask_qty"]),
            book["bid"] or "-",
            book["ask"] or "-",
            _money(m["pnl"]),
            _flags(m),
        )
    return table


def _orders(orders: list[dict[str, Any]]) -> Table:
    table = Table(title=f"resting orders ({len(orders)})", title_justify="left", expand=True)
    for name in ("market", "client order id", "side", "price", "remaining", "filled", "state"):
        table.add_column(name, justify="left" if name in ("market", "client order id") else "right")
    for o in orders:
        table.add_row(
            o["ticker"], o["client_order_id"], o["side"], o["price"], o["remaining"],
            o["filled"], o["state"],
        )  # fmt: skip
    return table
