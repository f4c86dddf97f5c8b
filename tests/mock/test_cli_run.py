"""``kmm run`` safety at start: bad keys and prod without --live are one-line errors, exit 2."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kmm.sim.server import SimOptions, SimServer


def _env(tmp_path: Path, **values: str) -> dict[str, str]:
    """The environment without the caller's KMM__ overrides; run output under ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMM__")}
    env["KMM__RECORD__RUNS_DIR"] = str(tmp_path / "runs")
    env["KMM__RECORD__LEDGER_PATH"] = str(tmp_path / "runs" / "ledger.sqlite")
    env.update(values)
    return env


async def _kmm(*args: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kmm",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, err.decode()


@pytest.mark.asyncio
async def test_a_missing_key_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    env = _env(
        tmp_path, KMM__AUTH__KEY_ID="abc", KMM__AUTH__PRIVATE_KEY_PATH=str(tmp_path / "missing.pem")
    )

    status, err = await _kmm("run", "--env", "demo", env=env)

    assert status == 2
    assert len(err.strip().splitlines()) == 1
    assert "missing.pem" in err


@pytest.mark.asyncio
async def test_prod_without_live_refuses_to_trade(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n")
    env = _env(tmp_path, KMM__AUTH__KEY_ID="abc", KMM__AUTH__PRIVATE_KEY_PATH=str(key))

    status, err = await _kmm("run", "--env", "prod", env=env)

    assert status == 2
    assert "--live" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.asyncio
async def test_a_key_the_venue_refuses_is_one_line_and_exit_2(
    sim_state_dir: Path, tmp_path: Path
) -> None:
    stranger = tmp_path / "stranger.pem"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    sim = SimServer(SimOptions(state_dir=sim_state_dir, flow=False))
    await sim.start()
    try:
        env = _env(
            tmp_path,
            KMM__VENUE__REST_URL=sim.rest_url,
            KMM__VENUE__WS_URL=sim.ws_url,
            KMM__AUTH__KEY_ID="00000000-0000-0000-0000-000000000000",
            KMM__AUTH__PRIVATE_KEY_PATH=str(stranger),
        )
        status, err = await _kmm("run", env=env)
    finally:
        await sim.stop()

    assert status == 2, err
    assert "refused the key" in err
    assert len(err.strip().splitlines()) == 1


def _fake_key(path: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


async def _kmm_out(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "kmm",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def _sim_env(sim: SimServer, tmp_path: Path, **values: str) -> dict[str, str]:
    """``kmm run`` pointed at ``sim`` by its REST URL only, with the sim's own key."""
    return _env(
        tmp_path,
        KMM__VENUE__REST_URL=sim.rest_url,
        KMM__AUTH__KEY_ID=sim.key_id,
        KMM__AUTH__PRIVATE_KEY_PATH=str(sim.private_key_path),
        **values,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.asyncio
async def test_a_rest_url_alone_reads_the_books_from_the_same_exchange(
    sim_state_dir: Path, tmp_path: Path
) -> None:
    sim = SimServer(SimOptions(state_dir=sim_state_dir, flow=False, markets=2))
    await sim.start()
    try:
        env = _sim_env(sim, tmp_path)
        status, out, err = await _kmm_out("run", "--duration", "2.5", env=env)
    finally:
        await sim.stop()

    assert status == 0, err
    summaries = [line for line in out.splitlines() if line.startswith("t=")]
    assert summaries and "quoting 2/2" in summaries[-1], out


@pytest.mark.asyncio
@pytest.mark.parametrize("known", [0, 1])
async def test_unknown_tickers_are_refused_naming_them(
    sim_state_dir: Path, tmp_path: Path, known: int
) -> None:
    sim = SimServer(SimOptions(state_dir=sim_state_dir, flow=False, markets=2))
    await sim.start()
    try:
        tickers = [*list(sim.venue.engine.markets)[:known], "KXNOPE-26DEC31-T1", "KXNONE-1"]
        env = _sim_env(sim, tmp_path)
        status, _, err = await _kmm_out(
            "run", "--markets", ",".join(tickers), "--duration", "2", env=env
        )
    finally:
        await sim.stop()

    assert status == 2
    assert err.strip().splitlines() == [
        "kmm: markets: unknown tickers (the venue lists no such market): "
        "KXNOPE-26DEC31-T1, KXNONE-1"
    ]


@pytest.mark.asyncio
@pytest.mark.parametrize("command", ["run", "capture"])
async def test_a_venue_that_cannot_be_reached_is_one_line_and_exit_4(
    tmp_path: Path, command: str
) -> None:
    rest_url = f"http://127.0.0.1:{_free_port()}/trade-api/v2"
    env = _env(
        tmp_path,
        KMM__VENUE__REST_URL=rest_url,
        KMM__AUTH__KEY_ID="a952bcbe-ec3b-4b5b-b8f9-11dae589608c",
        KMM__AUTH__PRIVATE_KEY_PATH=str(_fake_key(tmp_path / "fake.pem")),
    )

    status, err = await _kmm(command, "--env", "demo", "--markets", "KXA-26DEC31", env=env)

    assert status == 4, err
    assert err.strip().splitlines() == [
        f"kmm: cannot reach the venue at {rest_url}: Connection refused"
    ]


@pytest.mark.asyncio
async def test_the_banner_names_a_few_markets_and_the_run_directory_lists_them_all(
    tmp_path: Path,
) -> None:
    env = _env(
        tmp_path,
        KMM__SIM__STATE_DIR=str(tmp_path / "state"),
        KMM__SIM__MARKETS="12",
        KMM__MARKETS__MAX_MARKETS="12",
    )

    status, out, err = await _kmm_out("run", "--duration", "1", env=env)

    assert status == 0, err
    [line] = [line for line in out.splitlines() if line.startswith("  markets (")]
    [run_dir] = (tmp_path / "runs").glob("2*")
    listed = (run_dir / "markets.txt").read_text().splitlines()
    assert len(listed) == 12
    assert line == (
        f"  markets (12): {', '.join(listed[:5])} and 7 more; list in {run_dir / 'markets.txt'}"
    )


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("field", "leaf"),
    [
        ("KMM__RECORD__RUNS_DIR", "runs"),
        ("KMM__RECORD__LEDGER_PATH", "ledger.sqlite"),
        ("KMM__SIM__STATE_DIR", "sim"),
    ],
)
async def test_a_path_that_cannot_be_written_is_one_line_and_exit_2(
    tmp_path: Path, field: str, leaf: str
) -> None:
    not_a_directory = tmp_path / "a-file"
    not_a_directory.write_text("")
    env = _env(tmp_path, **{field: str(not_a_directory / leaf)})
    env.setdefault("KMM__SIM__STATE_DIR", str(tmp_path / "state"))

    status, err = await _kmm("run", "--duration", "1", env=env)

    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(not_a_directory) in lines[0]
    assert "Traceback" not in err


@pytest.mark.asyncio
async def test_make_run_on_its_defaults_trades_within_30_seconds(tmp_path: Path) -> None:
    """What ``make run`` runs, on the default config: a fill is booked inside 30 s of market."""
    env = _env(tmp_path, KMM__SIM__STATE_DIR=str(tmp_path / "state"))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kmm", "--duration", "30s", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    fills: list[str] = []
    async with asyncio.timeout(90):
        async for raw in process.stdout:
            line = raw.decode()
            if ": fill " in line:
                fills.append(line)
                process.send_signal(signal.SIGTERM)
                break
        _, err = await process.communicate()

    assert fills, "no fill in 30 s of make run"
    assert process.returncode == 0, err.decode()


@pytest.mark.asyncio
async def test_a_run_can_log_the_queue_place_of_each_resting_order(tmp_path: Path) -> None:
    env = _env(
        tmp_path, KMM__SIM__STATE_DIR=str(tmp_path / "state"), KMM__RECORD__QUEUE_POSITIONS_S="1"
    )

    status, err = await _kmm("--duration", "4s", env=env)

    assert status == 0, err
    (ops_log,) = (tmp_path / "runs").glob("*/ops.log")
    lines = [line for line in ops_log.read_text().splitlines() if "queue: " in line]
    assert lines, "no queue place logged"
    assert all(line.endswith(" ahead") for line in lines)
    assert re.search(
        r"queue: KXSIM\S+ (bid|ask) \d+\.\d{2} @ 0\.\d{4} \S+: \d+\.\d{2} ahead", lines[0]
    )


@pytest.mark.asyncio
async def test_a_run_with_log_format_json_writes_one_json_object_a_line(tmp_path: Path) -> None:
    env = _env(tmp_path, KMM__SIM__STATE_DIR=str(tmp_path / "state"))

    status, err = await _kmm(
        "--log-format", "json", "--log-level", "debug", "--duration", "3s", env=env
    )

    assert status == 0, err
    (ops_log,) = (tmp_path / "runs").glob("*/ops.log")
    lines = [json.loads(line) for line in ops_log.read_text().splitlines()]
    assert lines and all({"ts", "level", "logger", "message"} <= set(line) for line in lines)
    assert {"DEBUG", "INFO"} <= {line["level"] for line in lines}
