"""Connectivity check for kmm: ``python probe.py [--env sim|demo|prod] [--config FILE] [--live]``.

Theory of operation
-------------------
The probe runs one check after another against a venue and prints a pass/fail table with a
figure for each:

============== ==================================================================
check          what passes
============== ==================================================================
auth           a signed read (``GET /portfolio/balance``) is answered
exchange       ``GET /exchange/status``: exchange and trading both active
clock skew     the server's ``Date`` header is within 2 s of our clock
REST RTT       the median of 5 unsigned ``GET /exchange/status`` is under 1 s
websocket      a signed handshake, then a first data message after subscribing
rate tier      ``GET /account/limits`` names the tier and its token budgets
place order    a 1-contract post-only YES bid at 1¢ on an open market is accepted
confirm order  ``GET /portfolio/orders/{id}`` finds it resting, with our client id
cancel order   ``DELETE /portfolio/events/orders/{id}`` is accepted
confirm cancel ``GET /portfolio/orders/{id}`` finds it canceled
============== ==================================================================

If the venue refuses the key, the remaining checks are skipped. The order checks run on
``prod`` only with ``--live`` (or ``venue.live: true``); otherwise they are skipped, which is
not a failure. An order that was placed is always cancelled, even when a check in between
failed.

``--env`` defaults to the config's ``venue.env`` (``sim`` unless ``config.yaml`` says
otherwise), and ``--config`` to ``./config.yaml`` if it exists, as for ``kmm``. With ``sim``,
no credentials and no ``venue.rest_url``/``ws_url``, the probe starts the local exchange
in-process (a free loopback port, a temporary state directory) and probes that, so a bare
``python probe.py`` needs no key and no network.

Exit status: 0 when every check that ran passed, 1 when one failed, 2 for a bad command line,
configuration or key (a missing or unreadable key, or a key the venue refuses), 4 when the
venue cannot be reached at all (nothing listens, the host does not resolve), with one line on
stderr naming it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Final

import aiohttp
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from kmm.book.grid import PriceGrid
from kmm.cli import EXIT_UNREACHABLE, EXIT_USAGE, UsageParser, default_config_path
from kmm.config import KmmConfig, load_config, mask_key_id
from kmm.errors import AuthError, ConfigError
from kmm.kalshi.auth import Signer, load_private_key
from kmm.kalshi.rest import KalshiRest, MarketInfo, OrderRequest
from kmm.kalshi.wire import BookSnapshot, ErrorMsg, Ok, Subscribed, Unsubscribed, WireDecoder
from kmm.kalshi.ws import BOOK_CHANNEL, KalshiWs
from kmm.live import VenueUnreachable, check_reachable
from kmm.sim.server import SimOptions, SimServer
from kmm.types import ONE_CENT, QTY_SCALE, BookSide, format_money

__all__ = ["Check", "Target", "main", "probe", "render"]

STEP_TIMEOUT_S: Final = 15.0
MAX_SKEW_MS: Final = 2_000
MAX_RTT_MS: Final = 1_000.0
RTT_SAMPLES: Final = 5
_REPLIES: Final = (Subscribed, Ok, Unsubscribed, ErrorMsg)
_NS_PER_MS: Final = 1_000_000


@dataclass(slots=True)
class Check:
    """One row of the table.

    Attributes:
        name: What was checked.
        ok: True passed, False failed, None skipped.
        figure: The measured figure, or why it failed or was skipped.
        error: The exception a failed check raised, if any.
    """

    name: str
    ok: bool | None
    figure: str
    error: Exception | None = None


@dataclass(frozen=True, slots=True)
class Target:
    """The venue to probe and the credentials to probe it with."""

    label: str
    rest_url: str
    ws_url: str
    key_id: str
    private_key: RSAPrivateKey
    trading_allowed: bool
    subaccount: int = 0
    """The subaccount (``venue.subaccount``) the order checks and balance read use."""


StepResult = tuple[bool, str]


@dataclass(slots=True)
class _Probe:
    """The checks of one run, sharing one REST client and what earlier checks found."""

    target: Target
    session: aiohttp.ClientSession
    rest: KalshiRest
    checks: list[Check] = field(default_factory=list)
    market: MarketInfo | None = None
    order_id: str | None = None
    client_order_id: str = ""

    async def step(self, name: str, run: Callable[[], Awaitable[StepResult]]) -> Check:
        """Runs one check with a timeout; any exception is that check's failure."""
        try:
            ok, figure = await asyncio.wait_for(run(), STEP_TIMEOUT_S)
            check = Check(name, ok, figure)
        except TimeoutError as e:
            check = Check(name, False, f"no answer within {STEP_TIMEOUT_S:.0f} s", e)
        # A probe reports every failure as a row instead of stopping at the first one
        except Exception as e:
            check = Check(name, False, f"{type(e).__name__}: {e}", e)
        self.checks.append(check)
        return check

    def skip(self, names: Sequence[str], why: str) -> None:
        self.checks.extend(Check(name, None, why) for name in names)

    # ----------------------------------------------------------------- checks

    async def auth(self) -> StepResult:
        balance = await self.rest.balance()
        return True, f"signed GET /portfolio/balance: balance ${_dollars(balance)}"

    async def exchange(self) -> StepResult:
        status = await self.rest.exchange_status()
        ok = status.exchange_active and status.trading_active
        exchange = "active" if status.exchange_active else "closed"
        trading = "active" if status.trading_active else "paused"
        return ok, f"exchange {exchange}, trading {trading}"

    async def clock_skew(self) -> StepResult:
        sent_ns = time.time_ns()
        async with self.session.get(self.target.rest_url + "/exchange/status") as response:
            date = response.headers.get("Date")
            await response.read()
        received_ns = time.time_ns()
        if date is None:
            return False, "the server sent no Date header"
        # Date has whole seconds: its middle is the best estimate, within ±500 ms
        server_ms = int(parsedate_to_datetime(date).timestamp() * 1000) + 500
        skew_ms = server_ms - (sent_ns + received_ns) // 2 // _NS_PER_MS
        return abs(skew_ms) <= MAX_SKEW_MS, f"{skew_ms:+d} ms (server Date header, ±500 ms)"

    async def rtt(self) -> StepResult:
        samples: list[float] = []
        for _ in range(RTT_SAMPLES):
            start = time.perf_counter()
            async with self.session.get(self.target.rest_url + "/exchange/status") as response:
                await response.read()
                response.raise_for_status()
            samples.append((time.perf_counter() - start) * 1000)
        median = statistics.median(samples)
        figure = f"median {median:.1f} ms, max {max(samples):.1f} ms over {RTT_SAMPLES} GETs"
        return median < MAX_RTT_MS, figure

    async def websocket(self) -> StepResult:
        market = await self.pick_market()
        return await _first_message(self.target, market.ticker)

    async def rate_tier(self) -> StepResult:
        limits = await self.rest.account_limits()
        figure = (
            f"{limits.usage_tier or '?'}: read {limits.read_refill_per_s}/s "
            f"(bucket {limits.read_capacity}), write {limits.write_refill_per_s}/s "
            f"(bucket {limits.write_capacity})"
        )
        return bool(limits.usage_tier) and limits.write_refill_per_s > 0, figure

    async def place(self) -> StepResult:
        market = await self.pick_market()
        self.client_order_id = f"kmm-probe-{time.time_ns() // _NS_PER_MS}"
        order = OrderRequest(
            market.ticker, BookSide.BID, ONE_CENT, QTY_SCALE, self.client_order_id, post_only=True
        )
        ack = await self.rest.create_order(order)
        self.order_id = ack.order_id
        return True, f"1 contract bid at 1¢ post-only on {market.ticker}: order {ack.order_id}"

    async def confirm(self) -> StepResult:
        order = await self.rest.order(self._placed())
        ok = order.status == "resting" and order.client_order_id == self.client_order_id
        return ok, f"{order.status}, client order id {order.client_order_id}"

    async def cancel(self) -> StepResult:
        order_id = self._placed()
        reduced = await self.rest.cancel_order(order_id)
        self.order_id = None
        return reduced == QTY_SCALE, f"canceled {order_id}, reduced by {reduced / QTY_SCALE:g}"

    async def confirm_cancel(self, order_id: str) -> StepResult:
        order = await self.rest.order(order_id)
        return order.status == "canceled", f"{order.status}, {order.remaining} left"

    # ----------------------------------------------------------------- helpers

    async def pick_market(self) -> MarketInfo:
        """An open market where a 1¢ YES bid is a valid price that cannot trade."""
        if self.market is None:
            for market in await self.rest.markets(status="open"):
                cannot_cross = market.yes_ask is None or market.yes_ask > ONE_CENT
                if cannot_cross and PriceGrid.from_ranges(market.price_ranges).is_valid(ONE_CENT):
                    self.market = market
                    break
            else:
                raise LookupError("no open market where a 1¢ bid would rest")
        return self.market

    def _placed(self) -> str:
        if self.order_id is None:
            raise LookupError("no order was placed")
        return self.order_id


# --------------------------------------------------------------------------- websocket


async def _first_message(target: Target, ticker: str) -> StepResult:
    """Connects, subscribes one book and times the handshake and the first data message."""
    decoder = WireDecoder(use_yes_price=True)
    first_data: asyncio.Future[tuple[float, str]] = asyncio.get_running_loop().create_future()

    def on_frame(frame: bytes, recv_ns: int) -> object:
        event = decoder.decode(frame)
        if not isinstance(event, _REPLIES) and not first_data.done():
            first_data.set_result((time.perf_counter(), type(event).__name__))
        return event

    signer = Signer(target.key_id, target.private_key)
    ws = KalshiWs(target.ws_url, signer, on_frame, reconnect_initial_s=1.0)
    start = time.perf_counter()
    await ws.connect()
    connected = time.perf_counter()
    receiving = asyncio.create_task(ws.run())
    try:
        subscribed = time.perf_counter()
        await ws.subscribe([BOOK_CHANNEL], [ticker])
        arrived, kind = await first_data
    finally:
        await ws.close()
        await receiving
    figure = (
        f"handshake {(connected - start) * 1000:.1f} ms; first message ({kind}) "
        f"{(arrived - subscribed) * 1000:.1f} ms after subscribing"
    )
    return kind == BookSnapshot.__name__, figure


# --------------------------------------------------------------------------- running


_READ_CHECKS: Final = ("exchange status", "clock skew", "REST round trip", "websocket", "rate tier")
_ORDER_CHECKS: Final = ("place order", "confirm order", "cancel order", "confirm cancel")


async def probe(target: Target) -> list[Check]:
    """Runs every check against ``target`` and returns the rows, in order."""
    async with aiohttp.ClientSession() as session:
        signer = Signer(target.key_id, target.private_key)
        rest = KalshiRest(session, target.rest_url, signer, subaccount=target.subaccount)
        run = _Probe(target, session, rest)
        auth = await run.step("auth", run.auth)
        if isinstance(auth.error, AuthError):
            run.skip(_READ_CHECKS + _ORDER_CHECKS, "skipped: the venue refused the key")
            return run.checks
        await run.step("exchange status", run.exchange)
        await run.step("clock skew", run.clock_skew)
        await run.step("REST round trip", run.rtt)
        await run.step("websocket", run.websocket)
        await run.step("rate tier", run.rate_tier)
        if target.trading_allowed:
            await _order_checks(run)
        else:
            run.skip(_ORDER_CHECKS, "skipped: orders on prod need --live")
    return run.checks


async def _order_checks(run: _Probe) -> None:
    """Place, confirm, cancel, confirm; a placed order is cancelled whatever happens."""
    placed = await run.step("place order", run.place)
    if not placed.ok:
        run.skip(_ORDER_CHECKS[1:], "skipped: no order was placed")
        return
    order_id = run._placed()
    try:
        await run.step("confirm order", run.confirm)
    finally:
        await run.step("cancel order", run.cancel)
        await run.step("confirm cancel", lambda: run.confirm_cancel(order_id))


def render(checks: Sequence[Check], title: str) -> str:
    """The table: one row per check, then a summary line."""
    width = max(len(c.name) for c in checks)
    lines = [title, f"  {'check':<{width}}  result  figure"]
    for c in checks:
        result = "SKIP" if c.ok is None else "PASS" if c.ok else "FAIL"
        lines.append(f"  {c.name:<{width}}  {result:<6}  {c.figure}")
    failed = sum(c.ok is False for c in checks)
    ran = sum(c.ok is not None for c in checks)
    lines.append(
        f"{ran - failed} of {ran} checks passed" + (f", {failed} failed" if failed else "")
    )
    return "\n".join(lines)


def _exit_status(checks: Sequence[Check]) -> int:
    refused = next((c.error for c in checks if isinstance(c.error, AuthError)), None)
    if refused is not None:
        sys.stderr.write(f"probe: the venue refused the key: {refused}\n")
        return EXIT_USAGE
    return 1 if any(c.ok is False for c in checks) else 0


async def _probe_local_exchange() -> tuple[str, list[Check]]:
    """Starts the local exchange in-process on a free port and probes it."""
    with tempfile.TemporaryDirectory(prefix="kmm-probe-") as state_dir:
        server = SimServer(SimOptions(state_dir=Path(state_dir)))
        await server.start(port=0)
        try:
            target = Target(
                f"the local exchange at {server.url} (in-process)",
                server.rest_url,
                server.ws_url,
                server.key_id,
                load_private_key(server.private_key_path),
                trading_allowed=True,
            )
            return _title(target), await probe(target)
        finally:
            await server.stop()


def _target(config: KmmConfig, live: bool, environ: Mapping[str, str]) -> Target:
    """The venue and key the configuration names; ConfigError if the key cannot be used."""
    venue, auth = config.venue, config.auth
    if auth.key_id is None:
        raise ConfigError(
            [f"auth.key_id: required to probe {venue.env} at {venue.rest_base()} with a key"]
        )
    if auth.private_key_path is not None:
        key = load_private_key(auth.private_key_path.expanduser())
    else:
        key = _key_from_pem(auth.private_key_pem(environ), f"${auth.private_key_env}")
    return Target(
        f"{venue.env} at {venue.rest_base()}",
        venue.rest_base(),
        venue.ws_base(),
        auth.key_id,
        key,
        trading_allowed=venue.trading_allowed or live,
        subaccount=venue.subaccount,
    )


def _key_from_pem(pem: bytes, source: str) -> RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise ConfigError([f"private key {source}: not an unencrypted PEM private key"]) from e
    if not isinstance(key, RSAPrivateKey):
        raise ConfigError([f"private key {source}: not an RSA key ({type(key).__name__})"])
    return key


def _title(target: Target) -> str:
    return f"kmm probe: {target.label}, key {mask_key_id(target.key_id)}"


async def _main(config: KmmConfig, live: bool, environ: Mapping[str, str]) -> int:
    venue = config.venue
    if venue.env == "sim" and not config.auth.complete and not venue.custom_urls:
        title, checks = await _probe_local_exchange()
    else:
        target = _target(config, live, environ)
        await check_reachable((target.rest_url, target.ws_url), venue.request_timeout_s)
        title, checks = _title(target), await probe(target)
    sys.stdout.write(render(checks, title) + "\n")
    return _exit_status(checks)


def _parser() -> argparse.ArgumentParser:
    parser = UsageParser(prog="probe.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--env", choices=("sim", "demo", "prod"), default=None, help="venue.env (default: sim)"
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="kmm YAML configuration (default: ./config.yaml if it exists)",
    )
    parser.add_argument(
        "--live", action="store_true", help="allow the 1¢ test order on prod (venue.live)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the probe and returns the exit status.

    Args:
        argv: The arguments without the program name (default ``sys.argv[1:]``).

    Returns:
        0 when every check passed, 1 when one failed, 2 for a command line, config or key
        problem, 4 when the venue cannot be reached.
    """
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    environ = dict(os.environ)
    if args.env is not None:
        environ["KMM__VENUE__ENV"] = args.env
    try:
        config = load_config(default_config_path(args.config), environ)
        return asyncio.run(_main(config, args.live, environ))
    except ConfigError as e:
        sys.stderr.write(f"probe: {e}\n")
        return EXIT_USAGE
    except VenueUnreachable as e:
        sys.stderr.write(f"probe: {e}\n")
        return EXIT_UNREACHABLE


def _dollars(amount: int) -> str:
    text = format_money(amount)
    return text[: text.index(".") + 3]


if __name__ == "__main__":
    sys.exit(main())
