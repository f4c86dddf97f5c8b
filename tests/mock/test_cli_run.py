"""``kmm run`` safety at start: bad keys and prod without --live are one-line errors, exit 2."""

from __future__ import annotations

import asyncio
import os
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
