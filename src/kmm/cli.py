"""kmm's command line: ``main(argv) -> int`` and the ``kmm`` console script.

Subcommands are small functions that load the configuration, build what they need through
:mod:`kmm.app`, and return the process exit status. A bad command line or configuration exits
with status 2 and one line per problem on stderr, naming the field. uvloop is installed here,
and only here: library code never chooses the event loop.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from kmm.config import KmmConfig, load_config, masked_dump
from kmm.demo import DemoOptions, run_demo
from kmm.errors import ConfigError

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
    demo = commands.add_parser(
        "demo", help="run the pure pipeline on a generated feed with paper execution"
    )
    demo.add_argument("--markets", type=_positive_int, default=8, help="generated markets")
    demo.add_argument("--seed", type=int, default=7, help="seed of the generated feed")
    demo.add_argument("--rate", type=_positive_int, default=200, help="frames per second")
    demo.add_argument("--duration", type=_positive_float, default=None, help="seconds to run")
    commands.add_parser("config", help="validate the config and print it (secrets masked)")
    return parser


def _config_path(arg: Path | None) -> Path | None:
    if arg is not None:
        return arg
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


def _run_async(coro: Coroutine[Any, Any, int]) -> int:
    import uvloop

    try:
        return uvloop.run(coro)
    except KeyboardInterrupt:
        return EXIT_OK


def _cmd_config(config: KmmConfig, args: argparse.Namespace) -> int:
    print(json.dumps(masked_dump(config), indent=2))
    return EXIT_OK


def _cmd_demo(config: KmmConfig, args: argparse.Namespace) -> int:
    options = DemoOptions(
        markets=args.markets, seed=args.seed, rate=args.rate, duration_s=args.duration
    )
    return _run_async(run_demo(config, options, sys.stdout))


_COMMANDS: dict[str, Callable[[KmmConfig, argparse.Namespace], int]] = {
    "config": _cmd_config,
    "demo": _cmd_demo,
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
    command = args.command or "demo"
    if args.command is None:
        args = parser.parse_args([*(argv or []), "demo"])
    try:
        config = load_config(_config_path(args.config), os.environ)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"kmm: config: {problem}", file=sys.stderr)
        return EXIT_USAGE
    return _COMMANDS[command](config, args)


def main_entry() -> None:
    """The ``kmm`` console script."""
    sys.exit(main())
