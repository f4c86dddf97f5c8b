"""The control API and dashboard of a running ``kmm run`` (aiohttp, 127.0.0.1 only).

Theory of operation
-------------------
The server lives in the engine's event loop and answers from the engine's own state, read
through :mod:`kmm.ops.state`; the writes it accepts (halt, resume, a market's override, a
reload) are the engine's own methods, the same ones SIGUSR1, SIGUSR2 and SIGHUP call. So an
API call is one more event the single-threaded loop handles between frames: nothing is locked,
nothing is copied.

Every ``/api/`` request needs the run's token, as ``Authorization: Bearer TOKEN``. The token
is random per run and written to ``control.token`` in the run directory with mode 0600, so only
the user running the bot (and ``kmm status``, run by that user) can read it; it is never logged.
The dashboard page itself (``/``) carries no data and no token: it reads the token from the URL's
fragment (``/#token=...``, which browsers never send to a server) and calls the API with it.

========================================  ====================================================
``GET /api/status``                       the run at a glance
``GET /api/markets``                      per market: position, quote, resting, P&L, flags
``GET /api/orders``                       our orders that rest or may rest
``GET /api/positions``                    positions, bought, sold, fees, P&L
``GET /api/pnl``                          P&L per market and total, and its history
``GET /api/risk``                         kill switch, limits, markets held back
``POST /api/halt`` ``{"reason": ...}``    trips the kill switch (cancel all, stay halted)
``POST /api/resume``                      resumes after a halt, once flat
``POST /api/markets/TICKER``              changes the market's override: ``enabled``,
                                          ``reduce_only``, a parameter (``null``: the run's)
``POST /api/reload``                      reloads ``markets.overrides`` from the config file
========================================  ====================================================

A refused write answers 400 with ``{"error": ..., "problems": [...]}``; an unknown market 404;
a missing or wrong token 401.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import Awaitable, Callable
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from kmm.errors import ConfigError
from kmm.ops.state import (
    PnlHistory,
    market_rows,
    order_rows,
    pnl_view,
    position_rows,
    risk_view,
    status_view,
)
from kmm.risk import HaltState

if TYPE_CHECKING:
    from kmm.engine import LiveEngine

__all__ = ["TOKEN_FILE", "URL_FILE", "ControlServer", "write_token"]

TOKEN_FILE: Final = "control.token"
URL_FILE: Final = "control.url"
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def write_token(run_dir: Path) -> str:
    """A fresh random token, written to ``run_dir/control.token`` readable by its owner only."""
    token = secrets.token_urlsafe(24)
    path = run_dir / TOKEN_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(token + "\n")
    os.chmod(path, 0o600)  # O_CREAT's mode does not apply to a file that existed
    return token


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(data), status=status, content_type="application/json")


def _refused(error: str, problems: list[str], status: int = 400) -> web.Response:
    return _json({"error": error, "problems": problems}, status)


class ControlServer:
    """Serves the control API and the dashboard on ``127.0.0.1:port`` (0: a free port).

    Args:
        engine: The running engine.
        port: The port.
        token: The token every ``/api/`` request must carry.
    """

    def __init__(self, engine: LiveEngine, port: int, token: str) -> None:
        self.engine = engine
        self.port = port
        self._token = token
        self.history = PnlHistory()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> str:
        """Starts listening; returns the URL of the dashboard (without the token)."""
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/", self._page)
        routes: list[tuple[str, str, _Handler]] = [
            ("GET", "/api/status", self._status),
            ("GET", "/api/markets", self._markets),
            ("GET", "/api/orders", self._orders),
            ("GET", "/api/positions", self._positions),
            ("GET", "/api/pnl", self._pnl),
            ("GET", "/api/risk", self._risk),
            ("POST", "/api/halt", self._halt),
            ("POST", "/api/resume", self._resume),
            ("POST", "/api/markets/{ticker}", self._market),
            ("POST", "/api/reload", self._reload),
        ]
        for method, path, handler in routes:
            app.router.add_route(method, path, handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port)
        await site.start()
        self._runner = runner
        sockets = getattr(site._server, "sockets", None) or []
        port = sockets[0].getsockname()[1] if sockets else self.port
        self.url = f"http://127.0.0.1:{port}/"
        return self.url

    async def stop(self) -> None:
        """Stops listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def sample(self, now_ns: int) -> None:
        """Adds a point to the P&L history (the engine calls it once a second)."""
        self.history.sample(self.engine.core, now_ns)

    @web.middleware
    async def _auth(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        if not request.path.startswith("/api/"):
            return await handler(request)
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), self._token.encode()):
            return _refused("unauthorized", ["send Authorization: Bearer <control.token>"], 401)
        return await handler(request)

    async def _page(self, request: web.Request) -> web.Response:
        page = files("kmm.ops").joinpath("dashboard.html").read_text(encoding="utf-8")
        return web.Response(text=page, content_type="text/html")

    def _now(self) -> int:
        return self.engine.clock.now_ns()

    async def _status(self, request: web.Request) -> web.Response:
        return _json(status_view(self.engine.core, self._now(), **self.engine.ops.status()))

    async def _markets(self, request: web.Request) -> web.Response:
        return _json(market_rows(self.engine.core))

    async def _orders(self, request: web.Request) -> web.Response:
        return _json(order_rows(self.engine.core))

    async def _positions(self, request: web.Request) -> web.Response:
        return _json(position_rows(self.engine.core))

    async def _pnl(self, request: web.Request) -> web.Response:
        return _json(pnl_view(self.engine.core, self.history))

    async def _risk(self, request: web.Request) -> web.Response:
        return _json(risk_view(self.engine.core))

    async def _body(self, request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        try:
            body = await request.json()
        except ValueError:
            raise web.HTTPBadRequest(
                text=json.dumps({"error": "bad request", "problems": ["the body is not JSON"]}),
                content_type="application/json",
            ) from None
        if not isinstance(body, dict):
            raise web.HTTPBadRequest(
                text=json.dumps({"error": "bad request", "problems": ["send a JSON object"]}),
                content_type="application/json",
            )
        return body

    async def _halt(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        reason = str(body.get("reason") or "halted through the control API")
        self.engine.halt(reason)
        return _json(risk_view(self.engine.core))

    async def _resume(self, request: web.Request) -> web.Response:
        core = self.engine.core
        if core.halted is None:
            return _refused("not halted", ["the kill switch is running"], 409)
        self.engine.resume()
        state = core.kill_switch.state
        if state is not HaltState.RUNNING:
            return _refused("not resumed", [f"the kill switch is {state}: not flat yet"], 409)
        return _json(risk_view(core))

    async def _market(self, request: web.Request) -> web.Response:
        ticker = request.match_info["ticker"]
        if ticker not in self.engine.core.pipeline.markets:
            return _refused("unknown market", [f"{ticker}: not traded by this run"], 404)
        body = await self._body(request)
        try:
            changes = self.engine.ops.update_override(ticker, body)
        except ConfigError as exc:
            return _refused("refused", exc.problems)
        row = next(r for r in market_rows(self.engine.core) if r["ticker"] == ticker)
        return _json({"changes": changes, "market": row})

    async def _reload(self, request: web.Request) -> web.Response:
        try:
            changes = self.engine.ops.reload()
        except ConfigError as exc:
            return _refused("reload refused: nothing changed", exc.problems)
        return _json({"changes": changes})
