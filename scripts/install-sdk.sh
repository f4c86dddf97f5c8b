#!/bin/sh
# Installs Kalshi's official async Python SDK for the contract tests (tests/sim/test_sdk.py).
#
# Usage: scripts/install-sdk.sh PYTHON
#   PYTHON  the interpreter of the environment to install into, e.g. .venv/bin/python
#
# kalshi-python-async 3.34.0 (the current OpenAPI spec) declares Requires-Python >= 3.13 but
# imports and runs on 3.11, so its wheel is fetched for 3.13 and installed without the
# Python check and without its declared dependencies; those are installed normally.
set -eu

PYTHON="${1:?usage: scripts/install-sdk.sh PYTHON}"
SDK="kalshi-python-async==3.34.0"
DEPS="urllib3>=2.1.0,<3 python-dateutil>=2.8.2 aiohttp-retry>=2.8.0 lazy-imports>=1,<2 typing-extensions>=4.7.1"

if "$PYTHON" -c 'import kalshi_python_async, importlib.metadata as m; assert m.version("kalshi-python-async") == "3.34.0"' 2>/dev/null; then
    exit 0
fi

DIR="$(mktemp -d)"
trap 'rm -rf "$DIR"' EXIT INT TERM

"$PYTHON" -m pip download --quiet --no-deps --python-version 3.13 --only-binary=:all: "$SDK" -d "$DIR"
# shellcheck disable=SC2086  # DEPS is a list of requirement specifiers
"$PYTHON" -m pip install --quiet $DEPS
"$PYTHON" -m pip install --quiet --ignore-requires-python --no-deps "$DIR"/kalshi_python_async-3.34.0-*.whl
