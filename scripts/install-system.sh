#!/bin/sh
# Installs the Debian packages the test suite drives, each only if its command is missing:
# Chromium for the dashboard's browser test (tests/mock/test_dashboard.py) and systemd's
# systemd-analyze for the unit in deploy/ (tests/unit/test_deploy.py).
#
# Usage: scripts/install-system.sh COMMAND:PACKAGE ...
#   e.g. scripts/install-system.sh chromium:chromium systemd-analyze:systemd
#
# It needs root for apt-get (as on CI); otherwise it names what is missing and exits 0, and the
# tests that need it fail saying so.
set -eu

missing=""
for pair in "$@"; do
    command="${pair%%:*}"
    package="${pair#*:}"
    if ! command -v "$command" >/dev/null 2>&1; then
        missing="$missing $package"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system.sh: install these Debian packages for the whole suite:$missing" >&2
    exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086  # missing is a list of package names
apt-get install -y -qq --no-install-recommends $missing >/dev/null
