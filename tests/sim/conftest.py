"""Fixtures for tests that drive the local exchange over real loopback sockets.

``sim`` is a started :class:`~kmm.sim.server.SimServer` (port 0, a temporary ``state_dir``, a
:class:`~kmm.clock.ManualClock`, no background flow unless ``sim_options`` is overridden);
``client`` is a :class:`SignedClient` for its demo key. Override ``sim_options`` in a test
module (or with ``@pytest.mark.parametrize("sim_options", ..., indirect=True)``) to change
the setup; :func:`make_options` builds test options for a state directory, and the
``sim_state_dir`` fixture gives a fresh one that already holds the session's demo key.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import pytest_asyncio

from kmm.clock import Clock, ManualClock
from kmm.kalshi.auth import Signer, load_private_key
from kmm.kalshi.constants import API_PREFIX
from kmm.sim.keys import KeyStore
from kmm.sim.server import SimOptions, SimServer

START_NS = 1_795_435_200_000_000_000
"""2026-11-23T12:00:00Z: the manual clock's start in every sim test."""


def make_options(state_dir: Path, **changes: Any) -> SimOptions:
    """Test defaults: a manual clock at :data:`START_NS`, no background flow, six markets."""
    base = SimOptions(state_dir=state_dir, clock=ManualClock(START_NS), flow=False)
    return dataclasses.replace(base, **changes)


class SignedClient:
    """An HTTP client that signs requests as one API key, with the venue's clock.

    Args:
        session: The aiohttp session to send with.
        base_url: ``http://host:port`` of the sim.
        key_id: The API key id.
        private_key_path: The key's PEM file.
        clock: Where request timestamps come from (the sim's clock, so manual time works).
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        key_id: str,
        private_key_path: Path,
        clock: Clock,
    ) -> None:
        self.session = session
        self.base_url = base_url
        self.signer = Signer(key_id, load_private_key(private_key_path))
        self.clock = clock

    def headers(self, method: str, full_path: str) -> dict[str, str]:
        """The three ``KALSHI-ACCESS-*`` headers for ``method full_path`` now."""
        return self.signer.headers(method, full_path, self.clock.now_ns() // 1_000_000)

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        signed: bool = True,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """Sends ``method`` to ``/trade-api/v2`` + ``path``; returns (status, decoded JSON).

        The body is ``None`` when the response has none (e.g. 204).
        """
        full = API_PREFIX + path
        sent = self.headers(method, full) if signed else {}
        sent.update(headers or {})
        data = None if json is None else orjson.dumps(json)
        if data is not None:
            sent["Content-Type"] = "application/json"
        async with self.session.request(
            method, self.base_url + full, data=data, params=params, headers=sent
        ) as resp:
            raw = await resp.read()
            return resp.status, (orjson.loads(raw) if raw else None)

    async def get(self, path: str, **kw: Any) -> tuple[int, Any]:
        """``GET``; see :meth:`request`."""
        return await self.request("GET", path, **kw)

    async def post(self, path: str, json: Any = None, **kw: Any) -> tuple[int, Any]:
        """``POST``; see :meth:`request`."""
        return await self.request("POST", path, json=json, **kw)

    async def put(self, path: str, json: Any = None, **kw: Any) -> tuple[int, Any]:
        """``PUT``; see :meth:`request`."""
        return await self.request("PUT", path, json=json, **kw)

    async def delete(self, path: str, json: Any = None, **kw: Any) -> tuple[int, Any]:
        """``DELETE``; see :meth:`request`."""
        return await self.request("DELETE", path, json=json, **kw)


@pytest.fixture(scope="session")
def sim_key_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state directory holding a demo key, generated once per session (RSA keygen is slow)."""
    path = tmp_path_factory.mktemp("sim-keys")
    KeyStore.open(path)
    return path


@pytest.fixture
def sim_state_dir(tmp_path: Path, sim_key_template: Path) -> Path:
    """A fresh state directory for one test, with the session's demo key already in it."""
    target = tmp_path / "sim"
    shutil.copytree(sim_key_template, target)
    return target


@pytest.fixture
def sim_options(sim_state_dir: Path) -> SimOptions:
    """The options of the ``sim`` fixture; override to change the setup."""
    return make_options(sim_state_dir)


@pytest_asyncio.fixture
async def sim(sim_options: SimOptions) -> AsyncIterator[SimServer]:
    """A started sim on a free loopback port, stopped after the test."""
    server = SimServer(sim_options)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session."""
    async with aiohttp.ClientSession() as session:
        yield session


@pytest_asyncio.fixture
async def client(sim: SimServer, http: aiohttp.ClientSession) -> SignedClient:
    """A client signing as the sim's demo key."""
    return SignedClient(http, sim.url, sim.key_id, sim.private_key_path, sim.venue.clock)


async def new_user(
    sim: SimServer, http: aiohttp.ClientSession, user_id: str, balance: int | None = None
) -> SignedClient:
    """Registers a key for a new account and returns a client signing with it."""
    key_id, pem = sim.register_key(user_id, balance)
    return SignedClient(http, sim.url, key_id, pem, sim.venue.clock)


def bot_env(sim: SimServer, tmp_path: Path, **more: str) -> dict[str, str]:
    """The environment of a ``kmm`` subprocess that trades on ``sim`` with its demo key and
    records under ``tmp_path/runs`` (no ``KMM__`` variable of the test run leaks in)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KMM__")}
    env.update(
        KMM__RECORD__RUNS_DIR=str(tmp_path / "runs"),
        KMM__RECORD__LEDGER_PATH=str(tmp_path / "runs" / "ledger.sqlite"),
        KMM__VENUE__REST_URL=sim.rest_url,
        KMM__AUTH__KEY_ID=sim.key_id,
        KMM__AUTH__PRIVATE_KEY_PATH=str(sim.private_key_path),
        **more,
    )
    return env
