"""Tests for probe.py: the connectivity check, run against the local exchange over loopback.

``probe.main`` runs its own event loop, so the tests that need an exchange started by the
test run ``main`` in a worker thread while the exchange serves on the test's loop. That
exchange runs on the wall clock: the probe signs with real time.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import probe
import pytest
import pytest_asyncio
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from kmm.sim.engine import OrderStatus
from kmm.sim.keys import KeyStore
from kmm.sim.server import SimServer
from tests.sim.conftest import make_options

ROWS = (
    "auth",
    "exchange status",
    "clock skew",
    "REST round trip",
    "websocket",
    "rate tier",
    "place order",
    "confirm order",
    "cancel order",
    "confirm cancel",
)


@pytest.fixture(autouse=True)
def _no_kmm_overrides(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The developer's own ``KMM__*`` variables must not steer these tests."""
    for name in [n for n in os.environ if n.startswith("KMM__")]:
        monkeypatch.delenv(name)
    yield


@pytest.fixture(scope="module")
def key_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("probe-keys")
    KeyStore.open(path)
    return path


@pytest_asyncio.fixture
async def sim(tmp_path: Path, key_template: Path) -> AsyncIterator[SimServer]:
    """The local exchange on the wall clock, on a free port, without background traders."""
    state_dir = tmp_path / "sim"
    shutil.copytree(key_template, state_dir)
    server = SimServer(make_options(state_dir, clock=None))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def write_config(path: Path, sim: SimServer, key_path: Path, env: str = "sim") -> Path:
    """A kmm config naming the exchange's URLs and a key."""
    config = {
        "venue": {"env": env, "rest_url": sim.rest_url, "ws_url": sim.ws_url},
        "auth": {"key_id": sim.key_id, "private_key_path": str(key_path)},
    }
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def foreign_key(path: Path) -> Path:
    """A PEM file holding an RSA key the exchange has never seen."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    return path


def rows(out: str) -> dict[str, str]:
    """The result column of each row of the printed table."""
    found = {}
    for line in out.splitlines():
        for name in ROWS:
            rest = line.strip().removeprefix(name)
            if line.startswith("  ") and rest != line.strip() and rest[:2] == "  ":
                found[name] = rest.split()[0]
    return found


# --------------------------------------------------------------------------- in-process


def test_the_probe_passes_every_check_against_an_in_process_local_exchange(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Act
    status = probe.main(["--env", "sim"])

    # Assert
    out = capsys.readouterr().out
    assert status == 0, out
    assert rows(out) == dict.fromkeys(ROWS, "PASS")
    assert "in-process" in out
    assert "10 of 10 checks passed" in out


# --------------------------------------------------------------------------- configured


@pytest.mark.asyncio
async def test_the_probe_uses_the_configured_exchange_and_key(
    sim: SimServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Arrange
    config = write_config(tmp_path / "kmm.yaml", sim, sim.private_key_path)

    # Act
    status = await asyncio.to_thread(probe.main, ["--env", "sim", "--config", str(config)])

    # Assert
    out = capsys.readouterr().out
    assert status == 0, out
    assert rows(out) == dict.fromkeys(ROWS, "PASS")
    assert sim.rest_url in out
    orders = sim.venue.engine.orders_of(sim.user_id)
    assert [o.status for o in orders] == [OrderStatus.CANCELED]


@pytest.mark.asyncio
async def test_a_key_the_venue_refuses_fails_auth_and_exits_2(
    sim: SimServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Arrange
    config = write_config(tmp_path / "kmm.yaml", sim, foreign_key(tmp_path / "other.pem"))

    # Act
    status = await asyncio.to_thread(probe.main, ["--env", "sim", "--config", str(config)])

    # Assert
    captured = capsys.readouterr()
    assert status == 2
    results = rows(captured.out)
    assert results["auth"] == "FAIL"
    assert {results[name] for name in ROWS[1:]} == {"SKIP"}
    assert captured.err.count("\n") == 1
    assert "refused the key" in captured.err and "401" in captured.err


@pytest.mark.asyncio
async def test_a_failed_check_exits_1_and_the_order_is_not_left_resting(
    sim: SimServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Arrange: trading paused, so the exchange check and the order fail
    config = write_config(tmp_path / "kmm.yaml", sim, sim.private_key_path)
    sim.venue.faults.pause_trading(None, sim.venue.clock.now_ns())
    sim.venue.publish()

    # Act
    status = await asyncio.to_thread(probe.main, ["--env", "sim", "--config", str(config)])

    # Assert
    out = capsys.readouterr().out
    assert status == 1, out
    results = rows(out)
    assert results["exchange status"] == "FAIL"
    assert results["auth"] == "PASS"
    assert results["place order"] == "FAIL"
    assert all(o.status != OrderStatus.RESTING for o in sim.venue.engine.orders_of(sim.user_id))


@pytest.mark.asyncio
async def test_prod_skips_the_test_order_without_live(
    sim: SimServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Arrange: a "prod" configuration whose URLs point at the local exchange
    config = write_config(tmp_path / "kmm.yaml", sim, sim.private_key_path, env="prod")

    # Act
    status = await asyncio.to_thread(probe.main, ["--env", "prod", "--config", str(config)])

    # Assert
    out = capsys.readouterr().out
    assert status == 0, out
    results = rows(out)
    assert {results[name] for name in ROWS[6:]} == {"SKIP"}
    assert {results[name] for name in ROWS[:6]} == {"PASS"}
    assert "need --live" in out
    assert not sim.venue.engine.orders_of(sim.user_id)


# --------------------------------------------------------------------------- config problems


def test_a_missing_key_file_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Arrange
    missing = tmp_path / "nowhere.pem"
    config = tmp_path / "kmm.yaml"
    config.write_text(
        yaml.safe_dump({"auth": {"key_id": "a" * 36, "private_key_path": str(missing)}}),
        encoding="utf-8",
    )

    # Act
    status = probe.main(["--env", "demo", "--config", str(config)])

    # Assert
    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert str(missing) in captured.err


def test_demo_without_credentials_is_a_config_problem(capsys: pytest.CaptureFixture[str]) -> None:
    # Act
    status = probe.main(["--env", "demo"])

    # Assert
    captured = capsys.readouterr()
    assert status == 2
    assert captured.err.startswith("probe: auth")
    assert captured.err.count("\n") == 1


# --------------------------------------------------------------------------- defaults


def test_a_bare_probe_checks_the_local_exchange(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Arrange: no ./config.yaml here
    monkeypatch.chdir(tmp_path)

    # Act
    status = probe.main([])

    # Assert
    out = capsys.readouterr().out
    assert status == 0, out
    assert "the local exchange" in out
    assert "10 of 10 checks passed" in out


def test_a_venue_that_cannot_be_reached_is_one_line_and_exit_4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Arrange: a port nothing listens on
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rest_url = f"http://127.0.0.1:{port}/trade-api/v2"
    monkeypatch.setenv("KMM__VENUE__REST_URL", rest_url)
    monkeypatch.setenv("KMM__AUTH__KEY_ID", "a952bcbe-ec3b-4b5b-b8f9-11dae589608c")
    monkeypatch.setenv("KMM__AUTH__PRIVATE_KEY_PATH", str(foreign_key(tmp_path / "k.pem")))

    # Act
    status = probe.main(["--env", "demo"])

    # Assert
    captured = capsys.readouterr()
    assert status == 4
    assert captured.err == f"probe: cannot reach the venue at {rest_url}: Connection refused\n"


@pytest.mark.asyncio
async def test_a_configured_exchange_without_a_key_is_refused_not_swapped_for_another(
    sim: SimServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Arrange
    monkeypatch.setenv("KMM__VENUE__REST_URL", sim.rest_url)

    # Act
    status = await asyncio.to_thread(probe.main, ["--env", "sim"])

    # Assert
    captured = capsys.readouterr()
    assert status == 2
    assert captured.err == (
        f"probe: auth.key_id: required to probe sim at {sim.rest_url} with a key\n"
    )
