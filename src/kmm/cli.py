"""kmm's command line: ``main(argv) -> int`` and the ``kmm`` console script.

Subcommands are small functions that load the configuration, build what they need through
:mod:`kmm.app`, and return the process exit status. ``run`` is the default subcommand, so
``kmm --env demo`` is ``kmm run --env demo``; ``--config FILE`` goes before or after the
subcommand. Every problem the user can fix is one line on stderr naming it, never a traceback.
uvloop is installed here, and only here: library code never chooses the event loop.

Exit status (the same for every subcommand):

=== ==========================================================================================
0   success (``kmm run``: a clean stop by signal or ``--duration``)
1   ``kmm report``: the run's files are malformed; any other failure named on stderr
2   a bad command line or config, a missing or unreadable key file, a key the venue refuses,
    unknown, lower-case or closed tickers in ``--markets``/``markets.tickers``, no market to
    quote, a port that cannot be listened on, or a path kmm cannot write (``record.runs_dir``,
    ``record.ledger_path``, ``sim.state_dir``)
3   ``kmm run`` could not confirm at shutdown that all its orders were cancelled (each listed)
4   the venue cannot be reached (connection refused, DNS, timeout, 5xx) at ``venue.rest_url``
    or ``venue.ws_url``
5   ``kmm flatten`` left positions it could not work out within its price cap and time (each
    named)
130 ``kmm sweep`` interrupted by Ctrl-C; the same command resumes it
=== ==========================================================================================
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Final, NoReturn, TypeAlias

from kmm.backtest.driver import BacktestOptions
from kmm.backtest.latency import Latencies, configured_latencies
from kmm.backtest.replay_venue import replay_setup
from kmm.backtest.run import run_backtest
from kmm.backtest.scoreboard import MODELS, RunScore, format_board, run_scoreboard
from kmm.backtest.selection import ARMS, format_selection, run_selection
from kmm.config import (
    BacktestConfig,
    KmmConfig,
    load_config,
    masked_dump,
    parse_duration,
    parse_port,
    parse_tickers,
)
from kmm.demo import DemoOptions, run_demo
from kmm.errors import AuthError, ConfigError, KmmError, VenueError
from kmm.history import run_history
from kmm.kalshi.constants import TIERS
from kmm.listen import run_listen
from kmm.live import (
    EXIT_LEFT_RESTING,
    EXIT_NOT_FLAT,
    VenueUnreachable,
    run_capture,
    run_flatten,
    run_live,
)
from kmm.ops.status import run_status
from kmm.report import latest_run_dir, run_dirs, run_report
from kmm.research import OBJECTIVES, SAMPLERS
from kmm.scan import MarketFilter, run_markets, run_scan
from kmm.sim.faults import parse_spec
from kmm.sim.server import SimOptions, SimServer
from kmm.sim.universe import BOARD_SCENARIOS, SCENARIOS
from kmm.strategy.exit import ExitStyle
from kmm.types import QTY_SCALE
from kmm.watch import run_watch

__all__ = [
    "EXIT_FAILED",
    "EXIT_LEFT_RESTING",
    "EXIT_NOT_FLAT",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "UsageParser",
    "default_config_path",
    "main",
    "main_entry",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 4
EXIT_INTERRUPTED = 130
"""128 + SIGINT: ``kmm sweep`` stopped by Ctrl-C (its study resumes)."""
DEFAULT_CONFIG = Path("config.yaml")
DEFAULT_COMMAND = "run"


class UsageParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit status 2.

    ``kmm run: argument --duration: not a duration like 90, 30s, 10m or 1h: 'soon' (see kmm
    run --help)`` instead of argparse's usage block.
    """

    def error(self, message: str) -> NoReturn:
        """Prints ``prog: message`` on one line and exits with status 2."""
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _version() -> str:
    try:
        return version("kmm")
    except PackageNotFoundError:  # pragma: no cover - running from a tree that is not installed
        return "unknown"


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _duration(text: str) -> float:
    """``90``, ``1.5``, ``30s``, ``10m`` or ``1h`` in seconds (see ``parse_duration``)."""
    try:
        return parse_duration(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _port(text: str) -> int:
    try:
        return parse_port(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


_DURATION_HELP = "how long to run: 90 (seconds), 30s, 10m or 1h (default: until Ctrl-C)"
_Commands: TypeAlias = "argparse._SubParsersAction[UsageParser]"


def _add_config(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=default,
        help="YAML config file (default: ./config.yaml if it exists, else built-in defaults)",
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        default=argparse.SUPPRESS,
        help="lowest level written to the ops log (record.log_level)",
    )
    parser.add_argument(
        "--log-format",
        choices=("text", "json"),
        default=argparse.SUPPRESS,
        help="the ops log's lines: text or one JSON object a line (record.log_format)",
    )


def _command(commands: _Commands, name: str, help_text: str) -> UsageParser:
    """A subcommand's parser; it takes ``--config`` too (kept from before it when absent)."""
    parser = commands.add_parser(name, help=help_text, description=help_text)
    _add_config(parser, argparse.SUPPRESS)
    return parser


def _parser() -> argparse.ArgumentParser:
    parser = UsageParser(prog="kmm", description="A market maker for Kalshi.")
    _add_config(parser, None)
    parser.add_argument("--version", action="version", version=f"kmm {_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run_parser(commands)
    demo = _command(
        commands, "demo", "run the pure pipeline on a generated feed with paper execution"
    )
    demo.add_argument("--markets", type=_positive_int, default=8, help="generated markets")
    demo.add_argument("--seed", type=int, default=7, help="seed of the generated feed")
    demo.add_argument("--rate", type=_positive_int, default=200, help="frames per second")
    demo.add_argument("--duration", type=_duration, default=None, help=_DURATION_HELP)
    _command(commands, "config", "validate the config and print it (secrets masked)")
    report = _command(
        commands, "report", "P&L, fills, markouts and plots of a run directory (needs [analysis])"
    )
    report.add_argument(
        "run_dir", nargs="?", type=Path, default=None, help="a run directory (default: newest)"
    )
    _add_sim_parser(commands)
    _add_capture_parser(commands)
    _add_flatten_parser(commands)
    _add_scan_parsers(commands)
    _add_backtest_parser(commands)
    _add_bench_parser(commands)
    _add_status_parser(commands)
    _add_listen_parser(commands)
    _add_sweep_parser(commands)
    _add_history_parser(commands)
    calibrate = _command(
        commands, "calibrate", "the quoted fair value against the outcomes of settled markets"
    )
    calibrate.add_argument(
        "run_dirs", nargs="*", type=Path, help="run directories (default: every run)"
    )
    calibrate.add_argument("--bins", type=_positive_int, default=10, help="reliability bins")
    calibrate.add_argument(
        "--every", type=_duration, default=60.0, help="one sample per market this often (60s)"
    )
    calibrate.add_argument("--out", type=Path, default=None, help="where the plot and JSON go")
    return parser


def _since(text: str) -> str:
    """``--since``: a UTC date or time (``2026-12-01``, ``2026-12-01T12:00``) or a duration back
    from now (``7d``, ``12h``), as the ISO prefix the ledger's times are compared with."""
    try:
        return datetime.fromisoformat(text).isoformat() if "-" in text else _ago(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a date like 2026-12-01 or a duration like 7d: {text!r}"
        ) from None


def _ago(text: str) -> str:
    moment = datetime.now(UTC) - timedelta(seconds=parse_duration(text))
    return moment.isoformat()


def _add_history_parser(commands: _Commands) -> None:
    history = _command(commands, "history", "past runs, days or markets from the ledger")
    history.add_argument(
        "--by", choices=("runs", "days", "markets"), default="runs", help="default runs"
    )
    history.add_argument("--since", type=_since, default=None, help="a date (2026-12-01) or 7d")
    history.add_argument("--env", choices=("sim", "demo", "prod", "backtest"), default=None)
    history.add_argument("--limit", type=_positive_int, default=None, help="the newest N rows")
    history.add_argument("--json", action="store_true", help="JSON rows, amounts as strings")
    history.add_argument("--ledger", type=Path, default=None, help="default record.ledger_path")


def _seed_list(text: str) -> tuple[int, ...]:
    """Seeds as ``1-20`` or ``1,3,5`` (or both: ``1-5,9``)."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            first, last = int(low), int(high or low)
            if first < 0 or last < first:
                raise ValueError
            seeds += range(first, last + 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not seeds like 1-20 or 1,3,5: {text!r}") from None
    return tuple(dict.fromkeys(seeds))


def _add_sweep_parser(commands: _Commands) -> None:
    sweep = _command(
        commands, "sweep", "walk-forward parameter search: Optuna trials as backtests on Dask"
    )
    sweep.add_argument("--space", type=Path, required=True, help="the space file (YAML)")
    data = sweep.add_mutually_exclusive_group(required=True)
    data.add_argument("--captures", type=Path, help="a directory of captures (one session each)")
    data.add_argument(
        "--scenarios", type=_names(SCENARIOS), help="generated scenarios, e.g. calm,jump"
    )
    sweep.add_argument("--seeds", type=_seed_list, default=None, help="with --scenarios: 1-20")
    sweep.add_argument("--folds", type=_positive_int, default=3, help="walk-forward folds")
    sweep.add_argument("--trials", type=_positive_int, default=20, help="trials per fold")
    cluster = sweep.add_mutually_exclusive_group()
    cluster.add_argument("--workers", type=_positive_int, default=None, help="local workers")
    cluster.add_argument("--scheduler", default=None, help="an existing Dask scheduler")
    sweep.add_argument("--out", type=Path, required=True, help="the output directory")
    sweep.add_argument("--objective", choices=OBJECTIVES, default="net", help="default net")
    sweep.add_argument("--sampler", choices=SAMPLERS, default="tpe", help="default tpe")
    sweep.add_argument(
        "--duration", type=_duration, default=None, help="simulated time per run (default 10m)"
    )
    sweep.add_argument("--markets", type=_positive_int, default=None, help="generated markets")
    sweep.add_argument("--seed", type=int, default=1, help="the sampler's seed")


def _add_status_parser(commands: _Commands) -> None:
    status = _command(commands, "status", "a running bot's markets, orders and P&L, from its API")
    status.add_argument(
        "run_dir",
        nargs="?",
        type=Path,
        default=None,
        help="a running bot's run directory (default: the newest that answers)",
    )
    status.add_argument("--live", action="store_true", help="redraw every second until Ctrl-C")
    status.add_argument(
        "--duration", type=_duration, default=None, help="with --live: stop after this long"
    )
    status.add_argument("--json", action="store_true", help="print the API's JSON instead")


def _add_listen_parser(commands: _Commands) -> None:
    watch = _command(
        commands, "watch", "print one market's live book, trades and tickers, without trading"
    )
    watch.add_argument("ticker", metavar="TICKER", help="the market, e.g. KXSIMA-26DEC07-T40")
    watch.add_argument(
        "--with-private",
        action="store_true",
        help="also our fills, order updates and position in it (needs the key)",
    )
    watch.add_argument(
        "--levels", type=_positive_int, default=5, help="levels per side of a snapshot (5)"
    )
    watch.add_argument("--env", choices=("sim", "demo", "prod"), default=None, help="venue.env")
    watch.add_argument("--duration", type=_duration, default=None, help=_DURATION_HELP)


def _cmd_watch(config: KmmConfig, args: argparse.Namespace) -> int:
    config = _read_only_config(config, args)
    return _run_async(
        run_listen(
            config,
            args.ticker,
            with_private=args.with_private,
            levels=args.levels,
            duration_s=args.duration,
            out=sys.stdout,
        )
    )


def _non_negative_ms(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 milliseconds, got {text}")
    return value


def _add_backtest_parser(commands: _Commands) -> None:
    backtest = _command(
        commands,
        "backtest",
        "run the trading core on simulated time against the local exchange's traders",
    )
    backtest.add_argument(
        "--scenario", choices=SCENARIOS, default=None, help="the flow (default: sim.scenario)"
    )
    backtest.add_argument("--seed", type=int, default=None, help="seed (default: sim.seed)")
    backtest.add_argument(
        "--markets", type=_positive_int, default=None, help="markets (default: sim.markets)"
    )
    backtest.add_argument(
        "--duration",
        type=_duration,
        default=None,
        help="simulated time: 90, 30s, 10m, 2h (default 1h; a capture: to its end)",
    )
    backtest.add_argument(
        "--capture",
        type=Path,
        default=None,
        help="replay this capture.jsonl.gz (kmm capture; markets.json next to it) instead",
    )
    backtest.add_argument(
        "--queue",
        choices=("conservative", "probabilistic"),
        default=None,
        help="a capture's queue model (backtest.queue_model)",
    )
    backtest.add_argument(
        "--latency-ms",
        type=_non_negative_ms,
        default=None,
        help="one-way order latency (backtest.order_latency_ms, 5)",
    )
    backtest.add_argument(
        "--latency-from",
        type=Path,
        default=None,
        help="draw latencies from this live run's recorded ones (backtest.latency_from)",
    )
    backtest.add_argument(
        "--feed-latency-ms",
        type=_non_negative_ms,
        default=None,
        help="feed latency (backtest.feed_latency_ms, 2)",
    )


def _names(choices: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    """A comma-separated list of some of ``choices`` (one-line error naming the unknown)."""

    def parse(text: str) -> tuple[str, ...]:
        names = tuple(name.strip() for name in text.split(",") if name.strip())
        unknown = [name for name in names if name not in choices]
        if unknown or not names:
            got = ", ".join(unknown) or "an empty list"
            raise argparse.ArgumentTypeError(f"{got}: expected some of {', '.join(choices)}")
        return names

    return parse


def _add_bench_parser(commands: _Commands) -> None:
    bench = _command(
        commands,
        "bench",
        "score kmm's quoter against the baselines, or choosing markets against not choosing, "
        "through the backtest (make bench runs both)",
    )
    bench.add_argument(
        "what",
        choices=("strategy", "selection", "sweep"),
        help="strategy: kmm's quoter against the baselines; selection: discovery against the "
        "first N markets and volatility mode against always quoting, on the mixed universe; "
        "sweep: kmm sweep's trials per minute with 1 and 2 Dask workers",
    )
    bench.add_argument(
        "--scenarios",
        type=_names(SCENARIOS),
        default=BOARD_SCENARIOS,
        help=f"default: {','.join(BOARD_SCENARIOS)} (also: mixed)",
    )
    bench.add_argument(
        "--models", type=_names(MODELS), default=MODELS, help=f"default: {','.join(MODELS)}"
    )
    bench.add_argument(
        "--seeds", type=_positive_int, default=None, help="seeds 1..N (default 5; selection 3)"
    )
    bench.add_argument(
        "--duration",
        type=_duration,
        default=None,
        help="simulated time per run (default 30m; selection 15m)",
    )
    bench.add_argument(
        "--universe", type=_positive_int, default=300, help="selection: markets listed (300)"
    )
    bench.add_argument(
        "--top", type=_positive_int, default=10, help="selection: markets discovery trades (10)"
    )
    bench.add_argument(
        "--track", type=_positive_int, default=30, help="selection: markets volatility tracks (30)"
    )
    bench.add_argument(
        "--jobs", type=_positive_int, default=None, help="worker processes (default: the cores)"
    )


def _add_venue_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", choices=("sim", "demo", "prod"), default=None, help="venue.env")
    parser.add_argument(
        "--markets", default=None, help="comma-separated tickers, upper case (markets.tickers)"
    )
    parser.add_argument("--duration", type=_duration, default=None, help=_DURATION_HELP)


def _add_run_parser(commands: _Commands) -> None:
    run = _command(
        commands, "run", "run the market maker (default; with env sim it starts the local exchange)"
    )
    _add_venue_arguments(run)
    run.add_argument(
        "--mode",
        choices=("fixed", "discovery", "volatility"),
        default=None,
        help="fixed: the markets named (or the first open ones); discovery: the best-scored; "
        "volatility: short sessions on volatility events (markets.mode)",
    )
    run.add_argument("--live", action="store_true", help="allow trading on prod")
    run.add_argument(
        "--capture", action="store_true", help="also record every websocket frame (record.capture)"
    )


def _cents(text: str) -> Decimal:
    """A price distance in cents: 0 to 100 in steps of 0.01."""
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise argparse.ArgumentTypeError(f"not a number of cents: {text!r}") from None
    if not (value.is_finite() and 0 <= value <= 100 and value == value.quantize(Decimal("0.01"))):
        raise argparse.ArgumentTypeError(f"must be 0 to 100 cents in steps of 0.01, got {text}")
    return value


def _add_flatten_parser(commands: _Commands) -> None:
    flatten = _command(
        commands,
        "flatten",
        "work the account's positions out with limit orders, never past a slippage cap",
    )
    flatten.add_argument("--env", choices=("sim", "demo", "prod"), default=None, help="venue.env")
    flatten.add_argument(
        "--markets", default=None, help="only these tickers, comma-separated (default: all held)"
    )
    flatten.add_argument("--live", action="store_true", help="allow trading on prod")
    flatten.add_argument(
        "--passive",
        action="store_true",
        help="post-only, one tick inside others' best price (default: take at the touch)",
    )
    flatten.add_argument(
        "--max-slippage-cents",
        type=_cents,
        default=None,
        help="worst distance from the fair price at the start (exit.max_slippage_cents)",
    )
    flatten.add_argument(
        "--timeout",
        type=_duration,
        default=None,
        help="give up after this long: 90, 30s, 10m (exit.stop_timeout_s)",
    )


def _add_scan_parsers(commands: _Commands) -> None:
    scan = _command(commands, "scan", "score every open market as discovery would, without trading")
    scan.add_argument("--env", choices=("sim", "demo", "prod"), default=None, help="venue.env")
    scan.add_argument("--top", type=_positive_int, default=20, help="rows of the table (20)")
    scan.add_argument(
        "--refused", action="store_true", help="also list every refused market and why"
    )
    scan.add_argument(
        "--watch",
        action="store_true",
        help="then watch the best volatility.track_n markets' feed and print volatility "
        "events as they come (until Ctrl-C or --duration)",
    )
    scan.add_argument(
        "--duration", type=_duration, default=None, help="stop watching after: 90, 10m, 2h"
    )
    markets = _command(commands, "markets", "list and filter the venue's open markets")
    markets.add_argument("--env", choices=("sim", "demo", "prod"), default=None, help="venue.env")
    markets.add_argument("--category", default=None, help="only this category, e.g. Economics")
    markets.add_argument("--series", default=None, help="only this series ticker")
    markets.add_argument(
        "--closes-within", type=_duration, default=None, help="only markets closing within: 2h, 3d"
    )
    markets.add_argument(
        "--min-volume", type=_contracts, default=Decimal(0), help="least 24 h volume, contracts"
    )
    markets.add_argument("--limit", type=_positive_int, default=50, help="rows printed (50)")


def _contracts(text: str) -> Decimal:
    """A number of contracts: at least 0, in steps of 0.01."""
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise argparse.ArgumentTypeError(f"not a number of contracts: {text!r}") from None
    if not (value.is_finite() and value >= 0 and value == value.quantize(Decimal("0.01"))):
        raise argparse.ArgumentTypeError(f"must be >= 0 contracts in steps of 0.01, got {text}")
    return value


def _add_capture_parser(commands: _Commands) -> None:
    capture = _command(
        commands, "capture", "record the websocket feed of the markets without trading"
    )
    _add_venue_arguments(capture)


def _add_sim_parser(commands: _Commands) -> None:
    sim = _command(
        commands, "sim", "run the local Kalshi-compatible exchange (REST + websocket on one port)"
    )
    sim.add_argument("--host", default=None, help="address to listen on (config: sim.host)")
    sim.add_argument("--port", type=_port, default=None, help="0-65535; 0 picks one (sim.port)")
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


def default_config_path(arg: Path | None) -> Path | None:
    """``--config``'s file: the one given, else ``./config.yaml`` if it exists, else None."""
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
        print(f"kmm report: no run under {config.record.runs_dir}", file=sys.stderr)
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
    except OSError as e:
        raise ConfigError([f"--port: cannot listen on {host}:{port}: {e.strerror or e}"]) from e
    finally:
        print(f"kmm sim: sent {server.rate_limit_summary()}", flush=True)
    return EXIT_OK


def _venue_config(config: KmmConfig, args: argparse.Namespace) -> KmmConfig:
    """The config with ``--env`` and ``--markets`` applied; credentials checked."""
    venue = config.venue.model_copy(update={"env": args.env or config.venue.env})
    update: dict[str, Any] = {"venue": venue}
    if args.markets is not None:
        tickers = parse_tickers(args.markets, "--markets")
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


def _with_mode(config: KmmConfig, mode: str | None) -> KmmConfig:
    """The config with ``--mode`` applied (discovery names no markets itself)."""
    if mode is None:
        return config
    markets = config.markets
    if mode != "fixed" and (markets.tickers or markets.series or markets.events):
        raise ConfigError(
            [
                f"--mode {mode}: it chooses the markets itself; leave out --markets and the "
                "markets section's tickers, series and events"
            ]
        )
    return config.model_copy(update={"markets": markets.model_copy(update={"mode": mode})})


def _cmd_run(config: KmmConfig, args: argparse.Namespace) -> int:
    config = _with_mode(_run_config(config, args), args.mode)
    path = default_config_path(args.config)
    return _run_async(run_live(config, duration_s=args.duration, out=sys.stdout, config_path=path))


def _cmd_flatten(config: KmmConfig, args: argparse.Namespace) -> int:
    args.duration = None
    args.capture = False
    config = _run_config(config, args)
    update: dict[str, Any] = {}
    if args.max_slippage_cents is not None:
        update["max_slippage_cents"] = args.max_slippage_cents
    if args.timeout is not None:
        update["stop_timeout_s"] = args.timeout
    config = config.model_copy(update={"exit": config.exit.model_copy(update=update)})
    style = ExitStyle.PASSIVE if args.passive else ExitStyle.TAKE
    return _run_async(run_flatten(config, style=style, out=sys.stdout))


def _read_only_config(config: KmmConfig, args: argparse.Namespace) -> KmmConfig:
    """The config with ``--env`` applied, for commands that never trade."""
    args.markets = None
    return _venue_config(config, args)


def _cmd_scan(config: KmmConfig, args: argparse.Namespace) -> int:
    config = _read_only_config(config, args)
    if args.duration is not None and not args.watch:
        raise ConfigError(["--duration: only with --watch"])
    status = _run_async(run_scan(config, out=sys.stdout, show=args.top, refused=args.refused))
    if status or not args.watch:
        return status
    return _run_async(run_watch(config, duration_s=args.duration, out=sys.stdout))


def _cmd_status(config: KmmConfig, args: argparse.Namespace) -> int:
    if args.duration is not None and not args.live:
        raise ConfigError(["--duration: only with --live"])
    return _run_async(
        run_status(
            args.run_dir,
            config.record.runs_dir,
            live=args.live,
            duration_s=args.duration,
            as_json=args.json,
            out=sys.stdout,
        )
    )


def _cmd_sweep(config: KmmConfig, args: argparse.Namespace) -> int:
    from kmm.research.space import load_space  # Dask and Optuna: only for the sweep
    from kmm.research.sweep import (
        SweepOptions,
        capture_sessions,
        format_folds,
        run_sweep,
        scenario_sessions,
    )

    if args.scenarios is not None and args.seeds is None:
        raise ConfigError(["--seeds: required with --scenarios (e.g. --seeds 1-20)"])
    if args.captures is not None and args.seeds is not None:
        raise ConfigError(["--seeds: only with --scenarios"])
    if args.captures is not None:
        sessions = capture_sessions(args.captures, args.duration)
    else:
        duration = 600.0 if args.duration is None else args.duration
        markets = args.markets or config.sim.markets
        sessions = scenario_sessions(args.scenarios, args.seeds, markets, duration)
    options = SweepOptions(
        space=load_space(args.space, config),
        sessions=tuple(sessions),
        folds=args.folds,
        trials=args.trials,
        out=args.out,
        objective=args.objective,
        sampler=args.sampler,
        workers=args.workers,
        scheduler=args.scheduler,
        seed=args.seed,
        base_file=default_config_path(args.config),
    )
    try:
        results = run_sweep(config, options, sys.stdout).folds
    except KeyboardInterrupt:
        print(f"kmm sweep: interrupted; the study in {args.out} resumes when the same command "
              "runs again", file=sys.stderr)  # fmt: skip
        return EXIT_INTERRUPTED
    print(format_folds(results, args.out), flush=True)
    return EXIT_OK


def _cmd_history(config: KmmConfig, args: argparse.Namespace) -> int:
    ledger = args.ledger or config.record.ledger_path
    return run_history(
        ledger, args.by, since=args.since or "", env=args.env, limit=args.limit, json_out=args.json,
        out=sys.stdout,
    )  # fmt: skip


def _cmd_calibrate(config: KmmConfig, args: argparse.Namespace) -> int:
    from kmm.research.calibrate import run_calibrate

    runs = args.run_dirs or [
        r for r in run_dirs(config.record.runs_dir) if (r / "tape.csv").is_file()
    ]  # every run that quoted (a capture's has no tape)
    out_dir = args.out or (runs[0] if len(runs) == 1 else config.record.runs_dir)
    return run_calibrate(runs, out_dir, bins=args.bins, every_s=args.every, out=sys.stdout)


def _cmd_markets(config: KmmConfig, args: argparse.Namespace) -> int:
    config = _read_only_config(config, args)
    chosen = MarketFilter(
        category=args.category,
        series=args.series,
        closes_within_s=args.closes_within,
        min_volume_24h=int(args.min_volume * QTY_SCALE),
        limit=args.limit,
    )
    return _run_async(run_markets(config, chosen, out=sys.stdout))


def _latencies(settings: BacktestConfig, args: argparse.Namespace, seed: int) -> Latencies:
    """The feed and order latency models (flags over config)."""
    return configured_latencies(
        settings,
        seed,
        latency_from=args.latency_from,
        feed_ms=args.feed_latency_ms,
        order_ms=args.latency_ms,
    )


def _cmd_backtest(config: KmmConfig, args: argparse.Namespace) -> int:
    sim, settings = config.sim, config.backtest
    seed = sim.seed if args.seed is None else args.seed
    latency = _latencies(settings, args, seed)
    if args.capture is None:
        options = BacktestOptions(
            scenario=args.scenario or sim.scenario,
            seed=seed,
            markets=args.markets or sim.markets,
            duration_s=3600.0 if args.duration is None else args.duration,
            tier=sim.tier,
            latency=latency,
        )
        return run_backtest(config, options, sys.stdout)
    venue, options, source = replay_setup(
        args.capture, settings, seed, latency, args.queue, args.duration, sim.tier
    )
    return run_backtest(config, options, sys.stdout, venue=venue, source=source)


def _cmd_bench(config: KmmConfig, args: argparse.Namespace) -> int:
    jobs = args.jobs or os.cpu_count() or 1
    if args.what == "sweep":
        from kmm.research.bench import print_bench  # Dask and Optuna: only for the sweep

        return print_bench(config, sys.stdout)
    if args.what == "selection":
        return _bench_selection(config, args, jobs)
    seeds = args.seeds or 5
    duration = args.duration or 1800.0
    runs = len(args.scenarios) * len(args.models) * seeds
    print(
        f"kmm bench strategy: {runs} backtests ({', '.join(args.models)} on "
        f"{', '.join(args.scenarios)}; seeds 1-{seeds}; {duration:g} s each; {jobs} jobs)",
        flush=True,
    )
    board = run_scoreboard(
        config,
        scenarios=args.scenarios,
        models=args.models,
        seeds=range(1, seeds + 1),
        duration_s=duration,
        jobs=jobs,
        progress=_progress,
    )
    print(format_board(board), end="")
    return 0


def _progress(score: RunScore) -> None:
    print(
        f"  {score.model} on {score.scenario} seed {score.seed}: net ${score.net:.2f}, "
        f"{score.fills} fills",
        flush=True,
    )


def _bench_selection(config: KmmConfig, args: argparse.Namespace, jobs: int) -> int:
    seeds = args.seeds or 3
    duration = args.duration or 900.0
    if args.top > args.universe or args.track > args.universe:
        raise ConfigError([f"--top and --track: at most --universe ({args.universe})"])
    print(
        f"kmm bench selection: {len(ARMS) * seeds} backtests ({', '.join(ARMS)} on the mixed "
        f"universe of {args.universe} markets; seeds 1-{seeds}; {duration:g} s each; "
        f"{jobs} jobs)",
        flush=True,
    )
    board = run_selection(
        config,
        seeds=range(1, seeds + 1),
        markets=args.universe,
        duration_s=duration,
        n=args.top,
        track=args.track,
        jobs=jobs,
        progress=_progress,
    )
    print(format_selection(board))
    return 0


_COMMANDS: dict[str, Callable[[KmmConfig, argparse.Namespace], int]] = {
    "run": _cmd_run,
    "backtest": _cmd_backtest,
    "bench": _cmd_bench,
    "config": _cmd_config,
    "report": _cmd_report,
    "capture": _cmd_capture,
    "flatten": _cmd_flatten,
    "scan": _cmd_scan,
    "markets": _cmd_markets,
    "demo": _cmd_demo,
    "sim": _cmd_sim,
    "status": _cmd_status,
    "watch": _cmd_watch,
    "sweep": _cmd_sweep,
    "calibrate": _cmd_calibrate,
    "history": _cmd_history,
}


def with_default_command(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``run`` inserted when it names no subcommand (``kmm --env demo``).

    Top-level options (``--config FILE``, ``--help``, ``--version``) may come first; the first
    other word decides: a subcommand is left alone, an option gets ``run`` before it, and a
    stray word is left for argparse to refuse as an unknown subcommand.
    """
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-h", "--help", "--version") or arg in _COMMANDS or not arg.startswith("-"):
            return args
        if arg in _GLOBAL_OPTIONS:
            i += 2
        elif arg.split("=", 1)[0] in _GLOBAL_OPTIONS:
            i += 1
        else:
            break
    return [*args[:i], DEFAULT_COMMAND, *args[i:]]


_GLOBAL_OPTIONS: Final = ("--config", "--log-level", "--log-format")
"""Options every command takes, each with a value."""


def _with_logging(config: KmmConfig, args: argparse.Namespace) -> KmmConfig:
    """The config with ``--log-level`` and ``--log-format`` applied."""
    update = {key: getattr(args, key) for key in ("log_level", "log_format") if hasattr(args, key)}
    if not update:
        return config
    return config.model_copy(update={"record": config.record.model_copy(update=update)})


def main(argv: Sequence[str] | None = None) -> int:
    """Runs kmm with the given arguments (``sys.argv[1:]`` when ``None``).

    Returns:
        The process exit status (see the module docstring): 0 on success, 1 for a failure
        named on stderr, 2 for a bad command line, configuration, key or ticker, 3 if orders
        may still rest after ``kmm run``, 4 if the venue cannot be reached.
    """
    parser = _parser()
    try:
        args = parser.parse_args(with_default_command(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        config = load_config(default_config_path(args.config), os.environ)
    except ConfigError as exc:
        return _problems(exc, "config: ")
    return _dispatch(_COMMANDS[args.command], _with_logging(config, args), args)


def _dispatch(
    command: Callable[[KmmConfig, argparse.Namespace], int],
    config: KmmConfig,
    args: argparse.Namespace,
) -> int:
    """Runs one subcommand; every error kmm raises on purpose becomes one line and a status."""
    try:
        return command(config, args)
    except ConfigError as exc:
        return _problems(exc, "")
    except VenueUnreachable as exc:
        return _fail(str(exc), EXIT_UNREACHABLE)
    except AuthError as exc:
        return _fail(f"auth: the venue refused the key: {exc}", EXIT_USAGE)
    except VenueError as exc:
        return _fail(f"the venue answered {exc}", EXIT_UNREACHABLE)
    except KmmError as exc:
        return _fail(str(exc), EXIT_FAILED)
    except OSError as exc:
        if exc.filename is None:  # not a path: a bug, keep its traceback
            raise
        return _fail(f"cannot use {exc.filename}: {exc.strerror or exc}", EXIT_USAGE)


def _problems(exc: ConfigError, prefix: str) -> int:
    for problem in exc.problems:
        print(f"kmm: {prefix}{problem}", file=sys.stderr)
    return EXIT_USAGE


def _fail(line: str, status: int) -> int:
    print(f"kmm: {line}", file=sys.stderr)
    return status


EXIT_BROKEN_PIPE: Final = 141
"""128 + SIGPIPE, as a shell reports a program whose reader went away (``kmm ... | head``)."""


def main_entry() -> None:
    """The ``kmm`` console script. A reader that closes stdout early ends it quietly."""
    try:
        sys.exit(main())
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the exit's flush does not fail again
        sys.exit(EXIT_BROKEN_PIPE)
