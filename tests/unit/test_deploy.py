"""deploy/: the systemd unit passes ``systemd-analyze verify`` and restarts on exactly the exit
statuses a restart can fix; the Dockerfile builds what the repository holds."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kmm.cli import EXIT_FAILED, EXIT_LEFT_RESTING, EXIT_UNREACHABLE, EXIT_USAGE, main

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "kmm.service"
KMM = Path(sys.executable).parent / "kmm"


def _directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+)=(.*)", line.strip())
        if match:
            found.setdefault(match.group(1), []).append(match.group(2))
    return found


def _verify(unit_text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` on a copy of the unit whose kmm is this test's."""
    analyze = shutil.which("systemd-analyze")
    assert analyze, "no systemd-analyze: run sh scripts/install-system.sh (make test does)"
    copy = tmp_path / "kmm.service"
    copy.write_text(unit_text.replace("/opt/kmm/.venv/bin/kmm", str(KMM)))
    return subprocess.run(
        [analyze, "verify", str(copy)], capture_output=True, text=True, check=False, timeout=60
    )


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    assert KMM.exists(), KMM
    ran = _verify(UNIT.read_text(), tmp_path)

    assert ran.returncode == 0 and ran.stderr.strip() == "", ran.stderr


def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    broken = UNIT.read_text().replace("Restart=on-failure", "Restart=sometimes")
    ran = _verify(broken, tmp_path)
    assert "restart specifier" in ran.stderr, ran.stderr

    missing = UNIT.read_text().replace("/opt/kmm/.venv/bin/kmm", "/nonexistent/kmm")
    ran = _verify(missing, tmp_path)
    assert ran.returncode != 0 and "not executable" in ran.stderr, ran.stderr


def test_the_restart_policy_follows_kmms_exit_statuses() -> None:
    unit = _directives(UNIT.read_text())

    assert unit["Restart"] == ["on-failure"]
    prevented = {int(s) for s in unit["RestartPreventExitStatus"][0].split()}
    assert prevented == {EXIT_USAGE}, "only a bad config or a refused key stops the restarts"
    assert not prevented & {EXIT_FAILED, EXIT_LEFT_RESTING, EXIT_UNREACHABLE}
    assert unit["KillSignal"] == ["SIGTERM"] and int(unit["TimeoutStopSec"][0]) >= 60
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["ExecStart"][0].startswith("/opt/kmm/.venv/bin/kmm --config /etc/kmm/config.yaml")


def test_a_bad_config_exits_with_the_status_the_unit_does_not_restart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text("strategy:\n  gamma: -1\n")

    assert main(["--config", str(bad), "run"]) == EXIT_USAGE
    assert capsys.readouterr().err == "kmm: config: strategy.gamma: must be > 0, got -1\n"


def test_the_dockerfile_runs_kmm_unprivileged_and_copies_what_exists() -> None:
    text = (ROOT / "deploy" / "Dockerfile").read_text()

    copied = re.findall(r"^COPY (.+) \S+$", text, re.M)
    for sources in copied:
        for source in sources.split():
            assert (ROOT / source).exists(), source
    assert re.search(r"^USER (?!root)\w+$", text, re.M)
    assert "STOPSIGNAL SIGTERM" in text
    assert re.search(r'^ENTRYPOINT \["kmm"', text, re.M)
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {"*.pem", "*.key", ".venv", "runs"} <= set(ignored), "no key or state in the image"
