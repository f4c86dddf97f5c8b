"""kmm's command line: ``main(argv) -> int`` and the ``kmm`` console script.

Subcommands are small functions that load the configuration, build what they need through
:mod:`kmm.app`, and return the process exit status. A bad command line or configuration exits
with status 2 and one line per problem on stderr, naming the field. uvloop is installed here,
and only here: library code never chooses the event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from kmm.config import KmmConfig, load_config, masked_dump
from kmm.demo import DemoOptions, run_demo
from kmm.errors import ConfigError
from kmm.kalshi.constants import TIERS
from kmm.live import run_capture, run_live
from kmm.report import latest_run_dir, run_report
from kmm.sim.faults import parse_spec
from kmm.sim.server import SimOptions, SimServer
from kmm.sim.universe import SCENARIOS

__all__ = ["main", "main_entry"]

EXIT_OK = 0
EXIT_USAGE = 2
DEFAULT_CONFIG = Path("config.yaml")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kmm", description="A market maker for Kalshi.")
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="YAML config file (default: ./config.yaml if it exists, else built-in defaults)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run_parser(commands)
    demo = commands.add_parser(
        "demo", help="run the pure pipeline on a generated feed with paper execution"
    )
    demo.add_argument("--markets", type=_positive_int, default=8, help="generated markets")
    demo.add_argument("--seed", type=int, default=7, help="seed of the generated feed")
    demo.add_argument("--rate", type=_positive_int, default=200, help="frames per second")
    demo.add_argument("--duration", type=_positive_float, default=None, help="seconds to run")
    commands.add_parser("config", help="validate the config and print it (secrets masked)")
    report = commands.add_parser(
        "report", help="P&L, fills, markouts and plots of a run directory (needs [analysis])"
    )
    report.add_argument(
        "run_dir", nargs="?", type=Path, default=None, help="a run directory (default: newest)"
    )
    _add_sim_parser(commands)
    _add_capture_parser(commands)
    return parser


def _add_run_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = commands.add_parser(
        "run", help="run the market maker (default; with env sim it starts the local exchange)"
    )
    run.add_argument("--env", choices=("sim", "demo", "prod"), default=None, help="venue.env")
    run.add_argument("--live", action="store_true", help="allow trading on prod")
    run.add_argument("--duration", type=_positive_float, default=None, help="seconds to run")
    run.add_argument(
        "--markets", default=None, help="comma-separated tickers to quote (markets.tickers)"
    )
    run.add_argument(
        "--capture", action="store_true", help="also record every websocket frame (record.capture)"
    )


def _duration(text: str) -> float:
    """``90``, ``30s``, ``10m`` or ``1h`` as seconds."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    scale = units.get(text[-1:], 1.0)
    number = text[:-1] if text[-1:] in units else text
    try:
        value = float(number) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration like 30s or 10m: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def _add_capture_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    capture = commands.add_parser(
        "capture", help="record the websocket feed of the markets without trading"
    )
    capture.add_argument("--env", choices=("sim", "demo", "prod"), default=None, help="venue.env")
    capture.add_argument("--markets", default=None, help="comma-separated tickers")
    capture.add_argument(
        "--duration", type=_duration, default=None, help="e.g. 10m (default: until Ctrl-C)"
    )


def _add_sim_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sim = commands.add_parser(
        "sim", help="run the local Kalshi-compatible exchange (REST + websocket on one port)"
    )
    sim.add_argument("--host", default=None, help="address to listen on (config: sim.host)")
    sim.add_argument("--port", type=int, default=None, help="port; 0 picks one (sim.port)")
    sim.add_argument("--seed", type=int, default=None, help="seed of markets and flow (sim.seed)")
    sim.add_argument("--markets", type=_positive_int, default=None, help="markets (sim.markets)")
    sim.add_argument(
        "--scenario", default=None, help="calm|trending|jump|thin|near_close|settlement"
    )
    sim.add_argument("--state-dir", type=Path, default=None, help="keys live here (sim.state_dir)")
    sim.add_argument("--tier", default=None, help="rate-limit tier (sim.tier)")
    sim.add_argument(
        "--faults",
        default="",
        help="scheduled faults, e.g. '30s:drop_ws,45s:close_ws,60s:pause=10s' (see kmm.sim.faults)",
    )
    sim.add_argument("--no-flow", action="store_true", help="no background traders")


def _config_path(arg: Path | None) -> Path | None:
    if arg is not None:
        return arg
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


def _run_async(coro: Coroutine[Any, Any, int]) -> int:
    """Runs ``coro`` on uvloop; SIGINT or SIGTERM cancels it and the exit status is 0."""
    import uvloop

    return uvloop.run(_until_signal(coro))


async def _until_signal(coro: Coroutine[Any, Any, int]) -> int:
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(coro)
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        return EXIT_OK
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


def _cmd_config(config: KmmConfig, args: argparse.Namespace) -> int:
    print(json.dumps(masked_dump(config), indent=2))
    return EXIT_OK


def _cmd_report(config: KmmConfig, args: argparse.Namespace) -> int:
    run_dir = args.run_dir or latest_run_dir(config.record.runs_dir)
    if run_dir is None:
        print(f"kmm report: no run directory under {config.record.runs_dir}", file=sys.stderr)
        return EXIT_USAGE
    return run_report(run_dir, sys.stdout, sys.stderr)


def _cmd_demo(config: KmmConfig, args: argparse.Namespace) -> int:
    options = DemoOptions(
        markets=args.markets, seed=args.seed, rate=args.rate, duration_s=args.duration
    )
    return _run_async(run_demo(config, options, sys.stdout))


def _sim_options(config: KmmConfig, args: argparse.Namespace) -> SimOptions:
    sim = config.sim
    scenario = args.scenario or sim.scenario
    if scenario not in SCENARIOS:
        raise ConfigError([f"--scenario: must be one of {', '.join(SCENARIOS)}, got {scenario!r}"])
    tier = args.tier or sim.tier
    if tier not in TIERS:
        raise ConfigError([f"--tier: must be one of {', '.join(TIERS)}, got {tier!r}"])
    parse_spec(args.faults)  # a bad spec is a config error before anything starts
    return SimOptions(
        seed=sim.seed if args.seed is None else args.seed,
        markets=args.markets or sim.markets,
        scenario=scenario,
        state_dir=args.state_dir or sim.state_dir,
        tier=tier,
        flow=not args.no_flow,
        fault_spec=args.faults,
    )


def _sim_ready(server: SimServer) -> None:
    print(f"kmm sim: listening on {server.url}", flush=True)
    print(f"  REST       {server.rest_url}")
    print(f"  websocket  {server.ws_url}")
    print(f"  key id     {server.key_id}")
    print(f"  key file   {server.private_key_path}")
    print(
        f"  markets    {len(server.venue.engine.markets)} "
        f"({server.options.scenario}, seed {server.options.seed}); Ctrl-C stops",
        flush=True,
    )


def _cmd_sim(config: KmmConfig, args: argparse.Namespace) -> int:
    options = _sim_options(config, args)
    host = args.host or config.sim.host
    port = config.sim.port if args.port is None else args.port
    server = SimServer(options)
    return _run_async(_serve(server, host, port))


async def _serve(server: SimServer, host: str, port: int) -> int:
    try:
        await server.serve(host, port, _sim_ready)
    finally:
        print(f"kmm sim: sent {server.rate_limit_summary()}", flush=True)
    return EXIT_OK


def _venue_config(config: KmmConfig, args: argparse.Namespace) -> KmmConfig:
    """The config with ``--env`` and ``--markets`` applied; credentials checked."""
    venue = config.venue.model_copy(update={"env": args.env or config.venue.env})
    update: dict[str, Any] = {"venue": venue}
    if args.markets:
        tickers = tuple(t.strip() for t in args.markets.split(",") if t.strip())
        update["markets"] = config.markets.model_copy(update={"tickers": tickers})
    if venue.env != "sim" and not config.auth.complete:
        raise ConfigError(
            [f"auth: env {venue.env} needs auth.key_id and auth.private_key_path (or _env)"]
        )
    return config.model_copy(update=update)


def _cmd_capture(config: KmmConfig, args: argparse.Namespace) -> int:
    config = _venue_config(config, args)
    return _run_async(run_capture(config, duration_s=args.duration, out=sys.stdout))


def _run_config(config: KmmConfig, args: argparse.Namespace) -> KmmConfig:
    """The config with the command line's venue, markets and recording choices applied."""
    config = _venue_config(config, args)
    venue = config.venue.model_copy(update={"live": args.live or config.venue.live})
    update: dict[str, Any] = {"venue": venue}
    if args.capture:
        update["record"] = config.record.model_copy(update={"capture": True})
    if not venue.trading_allowed:
        raise ConfigError(["venue.live: --env prod trades real money; add --live to confirm"])
    return config.model_copy(update=update)


def _cmd_run(config: KmmConfig, args: argparse.Namespace) -> int:
    config = _run_config(config, args)
    return _run_async(run_live(config, duration_s=args.duration, out=sys.stdout))


_COMMANDS: dict[str, Callable[[KmmConfig, argparse.Namespace], int]] = {
    "run": _cmd_run,
    "config": _cmd_config,
    "report": _cmd_report,
    "capture": _cmd_capture,
    "demo": _cmd_demo,
    "sim": _cmd_sim,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Runs kmm with the given arguments (``sys.argv[1:]`` when ``None``).

    Returns:
        The process exit status: 0 on success, 2 for a bad command line or configuration.
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    command = args.command or "run"
    if args.command is None:
        args = parser.parse_args([*(argv or []), "run"])
    try:
        config = load_config(_config_path(args.config), os.environ)
    except ConfigError as exc:
        return _config_problems(exc)
    try:
        return _COMMANDS[command](config, args)
    except ConfigError as exc:
        return _config_problems(exc)


def _config_problems(exc: ConfigError) -> int:
    for problem in exc.problems:
        print(f"kmm: config: {problem}", file=sys.stderr)
    return EXIT_USAGE


def main_entry() -> None:
    """The ``kmm`` console script."""
    sys.exit(main())
