"""``kmm sim`` as a user runs it: a real process, a real port, SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest


def _start(tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "kmm", "sim", "--port", "0", "--state-dir", str(tmp_path), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_kmm_sim_prints_its_url_and_key_serves_kalshi_rest_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    process = _start(tmp_path, "--markets", "3", "--seed", "5")
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("kmm sim: listening on http://127.0.0.1:"), first
        url = first.rsplit(" ", 1)[1].strip()
        lines = [process.stdout.readline() for _ in range(5)]
        key_file = next(line for line in lines if "key file" in line).split()[-1]
        assert Path(key_file).is_file()

        with urllib.request.urlopen(f"{url}/trade-api/v2/markets", timeout=10) as response:
            markets = json.loads(response.read())["markets"]
        assert len(markets) == 3
    finally:
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    # the count of 429s it sent, last (the unsigned market read is not metered)
    assert out.strip().splitlines()[-1] == (
        "kmm sim: sent 0 429s (write bucket 0, read bucket 0, injected 0) of 0 metered requests"
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--faults", "soon:close_ws"], "fault spec"),
        (["--scenario", "volcano"], "--scenario"),
        (["--tier", "platinum"], "--tier"),
    ],
)
def test_kmm_sim_refuses_a_bad_option_with_one_line_and_status_2(
    tmp_path: Path, args: list[str], needle: str
) -> None:
    process = _start(tmp_path, *args)
    _, err = process.communicate(timeout=30)

    assert process.returncode == 2
    assert needle in err
    assert len(err.strip().splitlines()) == 1
