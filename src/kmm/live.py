"""``kmm run``: the live engine against sim, demo or prod, with signals and exit codes.

With ``venue.env: sim`` and no URL override, the local exchange is started in this process
(on a free loopback port, its key in ``sim.state_dir``) and the bot talks to it over real
sockets exactly as it would to Kalshi. With demo or prod the key comes from ``auth``.

SIGINT and SIGTERM stop the run cleanly; SIGUSR1 trips the kill switch (cancel everything,
stay running but halted) and SIGUSR2 resumes after it; SIGHUP reloads ``markets.overrides``
from the config file.

With ``venue.rest_url`` or ``venue.ws_url`` set, or with demo or prod, the venue's hosts are
first checked to accept a connection: a venue that cannot be reached is one line
(:class:`VenueUnreachable`, exit status 4) before anything is recorded, not a bot that waits
on a dead socket.

Exit status: 0 after a clean stop (signal or ``--duration``), 2 for a configuration or key
problem (including a key the venue refuses, and tickers it does not list), 3 if some of our
orders could not be confirmed cancelled at shutdown, 4 if the venue cannot be reached, 5 if
``kmm flatten`` left a position it could not work out within its price cap and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

import aiohttp
import yaml

from kmm.config import KmmConfig, RecordConfig, masked_dump
from kmm.engine import EngineReport, LiveEngine, read_series, select_markets
from kmm.errors import AuthError, ConfigError, KmmError, Rejected, UnknownOutcome, WireError
from kmm.kalshi.auth import Signer, load_private_key, load_private_key_pem
from kmm.kalshi.rest import KalshiRest
from kmm.kalshi.wire import Event, WireDecoder
from kmm.kalshi.ws import KalshiWs
from kmm.record import (
    LedgerLock,
    Recorder,
    account_id,
    new_run_dir,
    setup_logging,
    write_markets_json,
)
from kmm.sim.server import SimOptions, SimServer
from kmm.strategy.exit import ExitStyle
from kmm.types import format_count

__all__ = [
    "EXIT_LEFT_RESTING",
    "EXIT_NOT_FLAT",
    "VenueUnreachable",
    "check_reachable",
    "run_capture",
    "run_flatten",
    "run_live",
    "venue_rest",
]

EXIT_LEFT_RESTING = 3
EXIT_NOT_FLAT = 5
_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


class VenueUnreachable(KmmError):
    """The venue did not answer at all: nothing listens, the name does not resolve, a timeout.

    Attributes:
        url: The URL that could not be reached.
        reason: What the connection attempt said.
    """

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"cannot reach the venue at {url}: {reason}")


async def check_reachable(urls: tuple[str, ...], timeout_s: float) -> None:
    """Opens (and closes) a TCP connection to the host of each URL.

    Raises:
        VenueUnreachable: naming the first URL whose host refuses, does not resolve, or does
            not answer within ``timeout_s``.
    """
    for url in dict.fromkeys(urls):
        parts = urlsplit(url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 443)
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(parts.hostname, port), timeout_s
            )
        except TimeoutError:
            raise VenueUnreachable(url, f"no answer within {timeout_s:g} s") from None
        except OSError as e:
            raise VenueUnreachable(url, _os_reason(e)) from None
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def _os_reason(error: OSError) -> str:
    """``Connection refused``, ``Name or service not known``: the same on every event loop."""
    if isinstance(error, socket.gaierror) or not error.errno or error.errno < 0:
        return error.strerror or str(error)
    return os.strerror(error.errno)


SIGNATURE_REUSE_MS = 2_000
"""A signature is reused for this long; the presigner refreshes fixed paths every second."""


@contextlib.asynccontextmanager
async def _venue(config: KmmConfig, out: TextIO) -> AsyncIterator[tuple[str, str, Signer]]:
    """The REST URL, websocket URL and signer to use; starts the local exchange if needed."""
    venue = config.venue
    if venue.env == "sim" and not venue.custom_urls:
        sim = config.sim
        server = SimServer(
            SimOptions(
                seed=sim.seed,
                markets=sim.markets,
                scenario=sim.scenario,
                state_dir=sim.state_dir,
                tier=sim.tier,
            )
        )
        await server.start(sim.host, 0)
        print(f"kmm: local exchange started at {server.url} (state in {sim.state_dir})", file=out)
        if venue.subaccount:  # the local exchange funds it with half the primary's cash
            server.fund_subaccount(venue.subaccount, server.options.initial_balance // 2)
        try:
            key = load_private_key(server.private_key_path)
            signer = Signer(server.key_id, key, reuse_ms=_reuse_ms(config))
            yield server.rest_url, server.ws_url, signer
        finally:
            await server.stop()
            print(f"kmm: local exchange sent {server.rate_limit_summary()}", file=out)
        return
    signer = _signer(config)
    rest_url, ws_url = venue.rest_base(), venue.ws_base()
    await check_reachable((rest_url, ws_url), venue.request_timeout_s)
    try:
        yield rest_url, ws_url, signer
    except UnknownOutcome as e:  # reads are retried: this one never got an answer
        raise VenueUnreachable(rest_url, str(e)) from e


def _signer(config: KmmConfig) -> Signer:
    auth = config.auth
    if auth.key_id is None:
        raise ConfigError(["auth.key_id: required for env " + config.venue.env])
    pem = auth.private_key_pem(os.environ)
    source = (
        f"auth.private_key_path {auth.private_key_path}"
        if auth.private_key_path is not None
        else f"auth.private_key_env {auth.private_key_env}"
    )
    return Signer(auth.key_id, load_private_key_pem(pem, source), reuse_ms=_reuse_ms(config))


def _reuse_ms(config: KmmConfig) -> int:
    return SIGNATURE_REUSE_MS if config.execution.presign else 0


async def _check_subaccount(config: KmmConfig, rest_url: str, signer: Signer) -> None:
    """Reads the balance of ``venue.subaccount`` (if not 0) before anything else.

    Raises:
        ConfigError: if the venue refuses the key or that subaccount (e.g. never created).
    """
    subaccount = config.venue.subaccount
    if not subaccount:
        return
    timeout = aiohttp.ClientTimeout(total=config.venue.request_timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        rest = KalshiRest(session, rest_url, signer, subaccount=subaccount)
        try:
            await rest.balance()
        except AuthError as e:
            raise ConfigError([f"auth: the venue refused the key: {e}"]) from e
        except Rejected as e:
            raise ConfigError(
                [f"venue.subaccount: the venue refused subaccount {subaccount}: {e}"]
            ) from e


async def run_capture(config: KmmConfig, *, duration_s: float | None, out: TextIO) -> int:
    """Records the websocket feed of the configured markets without trading.

    Every frame goes to ``capture.jsonl.gz`` in a new run directory with its receive time
    (the format is in docs/capture.md). Runs for ``duration_s`` or until a signal.
    """
    config = config.model_copy(
        update={"record": config.record.model_copy(update={"capture": True})}
    )
    async with _venue(config, out) as (rest_url, ws_url, signer):
        with _recording(config) as recorder:
            timeout = aiohttp.ClientTimeout(total=config.venue.request_timeout_s)
            async with aiohttp.ClientSession(timeout=timeout) as session:
                rest = KalshiRest(session, rest_url, signer)
                try:
                    infos = await select_markets(rest, config.markets)
                    series = await read_series(rest, infos)
                except AuthError as e:
                    raise ConfigError([f"auth: the venue refused the key: {e}"]) from e
                write_markets_json(recorder.run_dir, infos, series)
                markets = [m.ticker for m in infos]
                print(f"kmm capture: {len(markets)} markets into {recorder.run_dir}", file=out)
                frames = await _capture_feed(ws_url, signer, markets, recorder, duration_s)
        print(f"kmm capture: {frames} frames in {recorder.run_dir / 'capture.jsonl.gz'}", file=out)
    return 0


async def _capture_feed(
    ws_url: str, signer: Signer, markets: list[str], recorder: Recorder, duration_s: float | None
) -> int:
    decoder = WireDecoder(use_yes_price=True)

    def on_frame(frame: bytes | str, recv_ns: int) -> Event | None:
        recorder.capture(recv_ns, frame)
        with contextlib.suppress(WireError):
            return decoder.decode(frame)
        return None

    ws = KalshiWs(ws_url, signer, on_frame, use_yes_price=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    runner = asyncio.create_task(ws.run())
    try:
        await ws.subscribe(("orderbook_delta", "ticker", "trade", "market_lifecycle_v2"), markets)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration_s)
    finally:
        await ws.close()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    return ws.stats.frames


@contextlib.contextmanager
def _recording(
    config: KmmConfig, account: str = "", *, exclusive: bool = False
) -> Iterator[Recorder]:
    """The run directory, its ops log and its recorder, closed (flushed) on the way out.

    With ``exclusive`` (a trading run) the ledger is locked for the run's life: a second
    trading run on the same ledger refuses to start, naming the one that holds it.
    """
    record = config.record
    now = time.time_ns()
    lock = LedgerLock(record.ledger_path)
    if exclusive:
        holder = lock.acquire(
            f"kmm run started {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
        )
        if holder is not None:
            raise ConfigError(
                [
                    f"record.ledger_path: {record.ledger_path} is in use by another kmm run "
                    f"({holder}); stop it or give this run its own ledger"
                ]
            )
    try:
        with _recorder(config, record, now, account) as recorder:
            yield recorder
    finally:
        lock.release()


@contextlib.contextmanager
def _recorder(
    config: KmmConfig, record: RecordConfig, now: int, account: str
) -> Iterator[Recorder]:
    run_dir = new_run_dir(record.runs_dir, now)
    record.ledger_path.parent.mkdir(parents=True, exist_ok=True)
    listener = setup_logging(run_dir, record.log_level, None, record.log_format)
    dump = masked_dump(config)
    recorder = Recorder.open(
        run_dir,
        record.ledger_path,
        run_id=run_dir.name,
        env=config.venue.env,
        config_yaml=yaml.safe_dump(dump, sort_keys=False),
        config_json=json.dumps(dump),
        capture=record.capture,
        flush_interval_s=record.flush_interval_s,
        account=account,
    )
    try:
        yield recorder
    finally:
        recorder.close()
        listener.stop()


@contextlib.asynccontextmanager
async def venue_rest(config: KmmConfig, out: TextIO) -> AsyncIterator[KalshiRest]:
    """A signed REST client of the configured venue (starting the local exchange, for
    ``env: sim`` without URLs, as ``kmm run`` does), for commands that only read.

    Raises:
        ConfigError: when the venue refuses the key.
    """
    async with _venue(config, out) as (rest_url, _, signer):
        timeout = aiohttp.ClientTimeout(total=config.venue.request_timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            try:
                yield KalshiRest(session, rest_url, signer, subaccount=config.venue.subaccount)
            except AuthError as e:
                raise ConfigError([f"auth: the venue refused the key: {e}"]) from e


@contextlib.asynccontextmanager
async def venue_feed(
    config: KmmConfig, out: TextIO
) -> AsyncIterator[tuple[KalshiRest, str, Signer]]:
    """Like :func:`venue_rest`, with the websocket URL and the signer a feed needs."""
    async with _venue(config, out) as (rest_url, ws_url, signer):
        timeout = aiohttp.ClientTimeout(total=config.venue.request_timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            try:
                rest = KalshiRest(session, rest_url, signer, subaccount=config.venue.subaccount)
                yield rest, ws_url, signer
            except AuthError as e:
                raise ConfigError([f"auth: the venue refused the key: {e}"]) from e


async def run_live(
    config: KmmConfig,
    *,
    duration_s: float | None,
    out: TextIO,
    config_path: Path | None = None,
) -> int:
    """Runs the market maker until a signal or ``duration_s``; returns the exit status.
    ``config_path``: the file a reload (SIGHUP, the control API) reads again.

    Raises:
        ConfigError: a bad key or a key the venue refuses, or a ``venue.subaccount`` it does
            not know (the CLI prints it, exit 2).
    """
    report = await _run_engine(config, duration_s=duration_s, out=out, config_path=config_path)
    if report.left_resting:
        print(f"kmm: {len(report.left_resting)} orders may still rest", file=sys.stderr)
        return EXIT_LEFT_RESTING
    return 0


async def run_flatten(config: KmmConfig, *, style: ExitStyle, out: TextIO) -> int:
    """``kmm flatten``: works every position of the account out (those of
    ``markets.tickers``, if named) with limit orders no worse than ``exit.max_slippage_cents``
    from the fair price, never quoting; then cancels and checks that nothing of ours rests.
    It stops when nothing is held or rests, after ``exit.stop_timeout_s``, or on a signal.

    Returns:
        0 when every position is closed, 5 when some remain (each is named), 3 when some of
        our orders may still rest.

    Raises:
        ConfigError: as :func:`run_live`; and for ``venue.env: sim`` without
            ``venue.rest_url``, which would start a fresh exchange holding no position.
    """
    if config.venue.env == "sim" and not config.venue.custom_urls:
        raise ConfigError(
            [
                "venue.rest_url: kmm flatten with env sim needs the running local exchange "
                "that holds the positions (kmm sim, then venue.rest_url "
                "http://127.0.0.1:PORT/trade-api/v2); a fresh one holds none"
            ]
        )
    # it never quotes, whatever markets.mode says: the markets are the positions it holds
    fixed = config.markets.model_copy(update={"mode": "fixed"})
    config = config.model_copy(update={"markets": fixed})
    report = await _run_engine(
        config, duration_s=config.exit.stop_timeout_s, out=out, flatten=style
    )
    if report.left_resting:
        print(f"kmm: {len(report.left_resting)} orders may still rest", file=sys.stderr)
        return EXIT_LEFT_RESTING
    if report.not_flat:
        left = ", ".join(f"{t} {format_count(q)}" for t, q in sorted(report.not_flat.items()))
        print(f"kmm flatten: positions left: {left}", file=sys.stderr)
        return EXIT_NOT_FLAT
    return 0


async def _run_engine(
    config: KmmConfig,
    *,
    duration_s: float | None,
    out: TextIO,
    flatten: ExitStyle | None = None,
    config_path: Path | None = None,
) -> EngineReport:
    """One trading run on the configured venue, with its signals and its run directory."""
    async with _venue(config, out) as (rest_url, ws_url, signer):
        await _check_subaccount(config, rest_url, signer)
        account = account_id(config.venue.env, signer.key_id, config.venue.subaccount)
        with _recording(config, account, exclusive=True) as recorder:
            engine = LiveEngine(
                config,
                rest_url=rest_url,
                ws_url=ws_url,
                signer=signer,
                out=out,
                duration_s=duration_s,
                recorder=recorder,
                flatten=flatten,
                config_path=config_path,
            )
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, engine.stop)
            loop.add_signal_handler(signal.SIGUSR1, engine.halt, "SIGUSR1 from the operator")
            loop.add_signal_handler(signal.SIGUSR2, engine.resume)
            loop.add_signal_handler(signal.SIGHUP, engine.ops.on_hangup)
            try:
                report = await engine.run()
            except AuthError as e:
                raise ConfigError([f"auth: the venue refused the key: {e}"]) from e
        print(f"kmm: run directory {recorder.run_dir}", file=out)
    return report
