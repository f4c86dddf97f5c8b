"""The local Kalshi exchange as one aiohttp application: REST, websocket, flow and faults.

Theory of operation
-------------------
:class:`SimServer` owns a :class:`SimVenue` (the matching engine with its universe installed,
the background flow, the fault plan and the clock), the key store in ``state_dir``, the REST
routes (:mod:`kmm.sim.rest`) and the websocket hub (:mod:`kmm.sim.ws`), all served on one
port. Everything runs on the event loop thread, so engine calls need no locks.

Time moves two ways. With a live clock a background task wakes every ``tick_s`` and calls
:meth:`SimServer.step`: the flow trades up to now, expired orders are cancelled, scheduled
faults fire, and the engine's events are published to the hub. With a
:class:`~kmm.clock.ManualClock` (tests, backtests) nothing moves by itself: the caller
advances time with ``await server.step(now_ns)``. REST writes publish their own events as
soon as the engine has applied them, so a client sees its order on the websocket right away.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from aiohttp import web

from kmm.clock import Clock, LiveClock, ManualClock
from kmm.kalshi.constants import API_PREFIX, WS_PATH
from kmm.sim._accounts import MAX_SUBACCOUNT
from kmm.sim.engine import EngineEvent, MatchingEngine, Rejection
from kmm.sim.faults import FaultPlan, parse_spec
from kmm.sim.flow import BackgroundFlow, LifecycleDriver
from kmm.sim.keys import KeyStore
from kmm.sim.rest import RestApi
from kmm.sim.universe import Universe, build_universe, install
from kmm.sim.ws import WsHub
from kmm.types import Money

__all__ = ["SimOptions", "SimServer", "SimVenue", "build_venue"]

log = logging.getLogger(__name__)

_SHUTDOWN_TIMEOUT_S: Final = 2.0


@dataclass(frozen=True)
class SimOptions:
    """How to run the local exchange.

    Attributes:
        seed: Seed of the universe and the background flow.
        markets: How many markets.
        scenario: One of ``kmm.sim.universe.SCENARIOS``.
        state_dir: Where the API keys are kept (created if missing).
        tier: The usage tier every account is rate-limited at.
        flow: Whether background traders run.
        clock: ``None`` for wall time; a :class:`~kmm.clock.ManualClock` to drive time.
        tick_s: How often the background task advances the flow (wall time only).
        ping_interval_s: Websocket ping interval.
        initial_balance: Cash of every account opened for a key, in $0.000001.
        signature_max_age_ms: How far a request timestamp may be from the clock.
        fault_spec: Scheduled faults (``kmm.sim.faults`` grammar), counted from the start.
        write_timeout_hold_s: How long a ``timeout`` write fault holds the request.
    """

    seed: int = 7
    markets: int = 6
    scenario: str = "calm"
    state_dir: Path = Path("state/sim")
    tier: str = "premier"
    flow: bool = True
    clock: Clock | None = None
    tick_s: float = 0.05
    ping_interval_s: float = 10.0
    initial_balance: Money = 100_000 * 1_000_000
    signature_max_age_ms: int = 5_000
    fault_spec: str = ""
    write_timeout_hold_s: float = 60.0


@dataclass
class SimVenue:
    """The exchange state every front end shares.

    Attributes:
        engine: Markets, books, accounts and orders.
        flow: The background traders, or ``None``.
        faults: Injected faults.
        clock: The venue's time.
        universe: The series, events and markets installed at start.
    """

    engine: MatchingEngine
    flow: BackgroundFlow | None
    faults: FaultPlan
    clock: Clock
    universe: Universe
    _listeners: list[Callable[[list[EngineEvent]], None]] = field(default_factory=list)

    def add_listener(self, fn: Callable[[list[EngineEvent]], None]) -> None:
        """Registers ``fn`` to receive every batch of engine events :meth:`publish` drains."""
        self._listeners.append(fn)

    lifecycle: LifecycleDriver | None = None
    """Opens, closes and settles markets on time when no background flow runs."""

    def publish(self) -> None:
        """Drains the engine's events and hands them, in order, to every listener."""
        events = self.engine.drain_events()
        if not events:
            return
        for fn in self._listeners:
            fn(events)

    def step(self, now_ns: int) -> None:
        """Advances the venue to ``now_ns``: the flow trades up to then (or the markets'
        lifecycle runs), expired orders are cancelled, due faults fire, and the engine's
        events are published."""
        if self.flow is not None:
            self.flow.advance(now_ns)
        elif self.lifecycle is not None:
            self.lifecycle.advance(now_ns)
        self.engine.apply_schedule_if_due(now_ns)
        self.engine.expire_orders(now_ns)
        self.faults.apply_due(now_ns)
        self.publish()

    def next_event_ns(self) -> int | None:
        """When the background flow or the lifecycle next does something, if known."""
        if self.flow is not None:
            return self.flow.next_event_ns()
        return self.lifecycle.next_due_ns() if self.lifecycle is not None else None


def build_venue(options: SimOptions, clock: Clock) -> SimVenue:
    """The exchange state for ``options``: the universe installed in a matching engine, the
    background flow (or, without it, the markets' lifecycle) and the fault plan.

    The HTTP server and the in-process backtest both build their venue here.
    """
    start_ns = clock.now_ns()
    # Trade ids unique across restarts: a ledger shared by runs keys fills by trade id
    engine = MatchingEngine(trade_id_prefix=f"{start_ns // 1_000_000:x}-")
    universe = build_universe(options.markets, options.seed, options.scenario, start_ns)
    install(engine, universe)
    flow = (
        BackgroundFlow(engine, universe, options.scenario, options.seed, start_ns)
        if options.flow
        else None
    )
    faults = FaultPlan(parse_spec(options.fault_spec), start_ns=start_ns, controls=engine)
    # Without background flow, markets still open, close, determine and settle on time
    lifecycle = None if flow is not None else LifecycleDriver(engine, universe, options.seed)
    return SimVenue(engine, flow, faults, clock, universe, lifecycle=lifecycle)


class SimServer:
    """The local exchange: build it, ``await start()``, talk Kalshi to ``url``, ``await stop()``.

    Args:
        options: What to run; see :class:`SimOptions`.

    Raises:
        ConfigError: if the scenario, tier or fault spec is invalid, or the key store in
            ``state_dir`` is unreadable.
    """

    def __init__(self, options: SimOptions) -> None:
        self.options = options
        clock = options.clock if options.clock is not None else LiveClock()
        self.venue = build_venue(options, clock)
        self.keys = KeyStore.open(options.state_dir)
        self._accounts: set[str] = set()
        for record in self.keys.records():
            self._open_account(record.user_id, None)
        demo = self.keys.demo
        self._open_account(demo.user_id, None)
        self.key_id = demo.key_id
        self.private_key_path = demo.private_key_path
        self.user_id = demo.user_id
        self.venue.engine.drain_events()
        self._hub = WsHub(self.venue, ping_interval_s=options.ping_interval_s)
        self.rest = RestApi(
            self.venue,
            self.keys,
            tier=options.tier,
            signature_max_age_ms=options.signature_max_age_ms,
            write_timeout_hold_s=options.write_timeout_hold_s,
            ws_handler=self._hub.handle,
        )
        self._runner: web.AppRunner | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.url = ""
        self.request_observers: list[Callable[[web.Request], None]] = []
        """Called with every HTTP request when its handling starts (after HTTP parsing)."""
        self.arrival_observers: list[Callable[[bytes], None]] = []
        """Called with every chunk of bytes the HTTP side reads from a socket, before any
        parsing: the moment a request reaches the exchange (benchmarks time the order path)."""
        self._listener: asyncio.Server | None = None

    @property
    def rest_url(self) -> str:
        """The REST base, ``http://host:port/trade-api/v2`` (empty before :meth:`start`)."""
        return self.url + API_PREFIX if self.url else ""

    @property
    def ws_url(self) -> str:
        """The websocket URL, ``ws://host:port/trade-api/ws/v2`` (empty before :meth:`start`)."""
        return "ws" + self.url.removeprefix("http") + WS_PATH if self.url else ""

    def _open_account(self, user_id: str, balance: Money | None) -> None:
        if user_id in self._accounts:
            return
        cash = self.options.initial_balance if balance is None else balance
        self.venue.engine.open_account(user_id, cash)
        self._accounts.add(user_id)

    def register_key(self, user_id: str, balance: Money | None = None) -> tuple[str, Path]:
        """Registers a new API key for ``user_id``, opening its account if it has none.

        Args:
            user_id: The account the key trades for.
            balance: The account's starting cash in $0.000001 (default
                ``options.initial_balance``); ignored if the account already exists.

        Returns:
            The key id and the path of its PEM private key.
        """
        record = self.keys.register_key(user_id)
        self._open_account(user_id, balance)
        return record.key_id, record.private_key_path

    def fund_subaccount(self, subaccount: int, amount: Money, user_id: str | None = None) -> None:
        """Creates the user's subaccounts up to ``subaccount`` and moves ``amount`` into it.

        An admin hook for tests and the in-process sim of ``kmm run`` (over REST it is
        ``POST /portfolio/subaccounts`` then ``POST /portfolio/subaccounts/transfer``): the
        cash comes from the primary account, so the user's total is unchanged.

        Args:
            subaccount: The numbered subaccount (1–63) to fund.
            amount: Cash to move from the primary account, in $0.000001.
            user_id: The account (default: the demo key's).

        Raises:
            Rejection: if the primary account cannot pay ``amount`` or ``subaccount`` is
                not 1–63.
        """
        engine = self.venue.engine
        user = user_id or self.user_id
        if not 1 <= subaccount <= MAX_SUBACCOUNT:
            raise Rejection(400, "invalid_parameters", f"subaccount {subaccount}: not 1-63")
        while engine.subaccount_numbers(user)[-1] < subaccount:
            engine.create_subaccount(user)
        done = len(engine.transfers_of(user))
        engine.transfer(
            user, f"sim-fund-{done + 1}", 0, subaccount, amount, self.venue.clock.now_ns()
        )

    @property
    def hub(self) -> WsHub:
        """The websocket hub (its ``write_observers`` see every frame as it is written)."""
        return self._hub

    @web.middleware
    async def _observe(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Calls every request observer on arrival (before auth), then the handler."""
        for observer in self.request_observers:
            observer(request)
        return await handler(request)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serves REST and the websocket on ``host:port`` (0 = any free port).

        Returns:
            The base URL, ``http://host:port``.
        """
        app = web.Application(middlewares=[self._observe, self.rest.not_found_middleware])
        app.add_routes(self.rest.routes())
        runner = web.AppRunner(app, shutdown_timeout=_SHUTDOWN_TIMEOUT_S, access_log=None)
        await runner.setup()
        server = runner.server
        assert server is not None
        observers = self.arrival_observers
        # aiohttp's web.Server is a protocol factory (its low-level server API); each of its
        # connections is wrapped so that arrivals can be seen before aiohttp parses them
        self._listener = await asyncio.get_running_loop().create_server(
            lambda: _Tap(server(), observers), host, port
        )
        self._runner = runner
        bound = self._listener.sockets[0].getsockname()
        self.url = f"http://{host}:{bound[1]}"
        if not isinstance(self.venue.clock, ManualClock):
            self._ticker = asyncio.create_task(self._tick_loop(), name="sim-tick")
        log.info("sim: serving %s (key %s)", self.url, self.key_id)
        return self.url

    def rate_limit_summary(self) -> str:
        """One line: the 429s the venue sent so far (its buckets' and injected ones)."""
        stats = self.rest.limiter.stats
        injected = self.venue.faults.stats.rate_limited
        return (
            f"{stats.refused + injected} 429s (write bucket {stats.refused_write}, read bucket "
            f"{stats.refused_read}, injected {injected}) of "
            f"{stats.served_write + stats.served_read + stats.refused + injected} "
            f"metered requests"
        )

    async def stop(self) -> None:
        """Stops the background task, closes every websocket and shuts the server down."""
        log.info("sim: %s", self.rate_limit_summary())
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
            self._ticker = None
        self.rest.release_held()
        await self._hub.close_all()
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        ready: Callable[[SimServer], None] | None = None,
    ) -> None:
        """Starts, calls ``ready(self)`` (e.g. to print the URL and key path), and serves
        until cancelled; then stops. This is what ``kmm sim`` runs."""
        await self.start(host, port)
        try:
            if ready is not None:
                ready(self)
            await asyncio.Event().wait()
        finally:
            await self.stop()

    async def step(self, now_ns: int | None = None) -> None:
        """Advances the venue to ``now_ns`` (default: the clock's time) once.

        With a :class:`~kmm.clock.ManualClock` the clock is first moved to ``now_ns``. Then
        the flow trades up to that time, expired orders are cancelled, due faults fire, and
        the engine's events are published.

        Raises:
            ValueError: if ``now_ns`` is earlier than a manual clock's time.
        """
        venue = self.venue
        if now_ns is None:
            now_ns = venue.clock.now_ns()
        elif isinstance(venue.clock, ManualClock) and now_ns != venue.clock.now_ns():
            venue.clock.set_ns(now_ns)
        venue.step(now_ns)

    async def _tick_loop(self) -> None:
        while True:
            try:
                await self.step()
            except Exception:  # a failed step must not stop the venue; it is logged
                log.exception("sim: background step failed")
            await asyncio.sleep(self.options.tick_s)


class _Tap(asyncio.Protocol):
    """An aiohttp connection protocol with observers of the raw bytes it reads."""

    def __init__(self, inner: asyncio.Protocol, observers: list[Callable[[bytes], None]]) -> None:
        self._inner = inner
        self._observers = observers

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        for observe in self._observers:
            observe(data)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()
