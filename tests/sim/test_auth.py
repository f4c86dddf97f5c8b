"""Request signing (kmm.kalshi.auth), the sim's key store (kmm.sim.keys), and the sim's 401s."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import aiohttp
import orjson
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from kmm.errors import ConfigError
from kmm.kalshi.auth import (
    ACCESS_KEY,
    ACCESS_SIGNATURE,
    ACCESS_TIMESTAMP,
    Signer,
    load_private_key,
    sign,
    signing_message,
    verify,
)
from kmm.kalshi.constants import API_PREFIX, WS_PATH
from kmm.sim.keys import KEYS_FILE, KeyStore
from kmm.sim.server import SimServer
from tests.sim.conftest import START_NS, SignedClient
from tests.sim.schema import check

TS_MS = START_NS // 1_000_000


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(key: rsa.RSAPrivateKey, fmt: serialization.PrivateFormat) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())


# ----------------------------------------------------------------------------- signing


def test_the_signed_message_is_timestamp_method_and_path_without_query() -> None:
    message = signing_message("get", "/trade-api/v2/portfolio/orders?limit=5", 1703123456789)

    assert message == b"1703123456789GET/trade-api/v2/portfolio/orders"


def test_a_signature_is_rsa_pss_sha256_with_digest_length_salt(key: rsa.RSAPrivateKey) -> None:
    signature = sign(key, "GET", "/trade-api/v2/portfolio/balance", TS_MS)

    # Verifying with exactly Kalshi's parameters raises if any of them differ
    key.public_key().verify(
        base64.b64decode(signature),
        f"{TS_MS}GET/trade-api/v2/portfolio/balance".encode(),
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        hashes.SHA256(),
    )


def test_verify_accepts_a_good_signature_and_refuses_any_change(key: rsa.RSAPrivateKey) -> None:
    public = key.public_key()
    path = "/trade-api/v2/portfolio/balance"
    signature = sign(key, "GET", path, TS_MS)

    assert verify(public, "GET", path, TS_MS, signature)
    assert verify(public, "GET", path + "?x=1", str(TS_MS), signature)
    assert not verify(public, "POST", path, TS_MS, signature)
    assert not verify(public, "GET", "/portfolio/balance", TS_MS, signature)
    assert not verify(public, "GET", path, TS_MS + 1, signature)
    assert not verify(public, "GET", path, TS_MS, "not base64!")
    assert not verify(public, "GET", path, TS_MS, base64.b64encode(b"x" * 256).decode())


def test_the_signer_makes_the_three_headers(key: rsa.RSAPrivateKey) -> None:
    signer = Signer("key-1", key)

    headers = signer.headers("delete", "/trade-api/v2/portfolio/events/orders/abc?x=1", TS_MS)

    assert headers[ACCESS_KEY] == "key-1"
    assert headers[ACCESS_TIMESTAMP] == str(TS_MS)
    assert verify(
        key.public_key(),
        "DELETE",
        "/trade-api/v2/portfolio/events/orders/abc",
        TS_MS,
        headers[ACCESS_SIGNATURE],
    )


def test_the_signer_reuses_a_fresh_signature_only_within_its_window(
    key: rsa.RSAPrivateKey,
) -> None:
    signer = Signer("key-1", key, reuse_ms=1000)
    path = "/trade-api/v2/portfolio/balance"

    first = signer.headers("GET", path, TS_MS)
    again = signer.headers("GET", path + "?limit=1", TS_MS + 999)
    later = signer.headers("GET", path, TS_MS + 1000)
    other = signer.headers("POST", path, TS_MS + 1)

    assert again == first
    assert later[ACCESS_TIMESTAMP] == str(TS_MS + 1000)
    assert other[ACCESS_TIMESTAMP] == str(TS_MS + 1)


def test_a_signer_without_reuse_signs_every_request(key: rsa.RSAPrivateKey) -> None:
    signer = Signer("key-1", key)
    path = "/trade-api/v2/portfolio/balance"

    first = signer.headers("GET", path, TS_MS)
    second = signer.headers("GET", path, TS_MS)

    # PSS is randomised: two signatures of one message differ
    assert first[ACCESS_SIGNATURE] != second[ACCESS_SIGNATURE]


def test_a_negative_reuse_window_is_refused(key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ValueError, match="reuse_ms"):
        Signer("key-1", key, reuse_ms=-1)


@pytest.mark.parametrize(
    "fmt", [serialization.PrivateFormat.TraditionalOpenSSL, serialization.PrivateFormat.PKCS8]
)
def test_pkcs1_and_pkcs8_keys_both_load(
    tmp_path: Path, key: rsa.RSAPrivateKey, fmt: serialization.PrivateFormat
) -> None:
    path = tmp_path / "k.pem"
    path.write_bytes(_pem(key, fmt))

    loaded = load_private_key(path)

    assert loaded.private_numbers() == key.private_numbers()


def test_a_missing_key_file_is_a_config_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.pem"

    with pytest.raises(ConfigError, match=r"absent\.pem"):
        load_private_key(path)


def test_a_file_that_is_not_a_key_is_a_config_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "junk.pem"
    path.write_text("hello")

    with pytest.raises(ConfigError, match=r"junk\.pem.*not an unencrypted PEM"):
        load_private_key(path)


def test_a_non_rsa_key_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "ec.pem"
    ec_key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(
        ec_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )

    with pytest.raises(ConfigError, match="not an RSA key"):
        load_private_key(path)


# ----------------------------------------------------------------------------- key store


def test_the_first_open_creates_the_demo_key_with_a_private_file(tmp_path: Path) -> None:
    store = KeyStore.open(tmp_path / "state")

    demo = store.demo

    assert demo.private_key_path == tmp_path / "state" / "demo.pem"
    assert stat.S_IMODE(demo.private_key_path.stat().st_mode) == 0o600
    assert (tmp_path / "state" / KEYS_FILE).exists()
    private = load_private_key(demo.private_key_path)
    assert private.public_key().public_numbers() == demo.public_key.public_numbers()


def test_reopening_the_store_keeps_the_same_keys(tmp_path: Path) -> None:
    first = KeyStore.open(tmp_path)
    extra = first.register_key("alice")

    second = KeyStore.open(tmp_path)

    assert second.demo.key_id == first.demo.key_id
    found = second.lookup(extra.key_id)
    assert found is not None
    assert found.user_id == "alice"
    assert found.public_key.public_numbers() == extra.public_key.public_numbers()


def test_an_unknown_key_id_is_not_found(tmp_path: Path) -> None:
    store = KeyStore.open(tmp_path)

    assert store.lookup("nope") is None


def test_a_corrupt_key_index_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / KEYS_FILE).write_text("{not json")

    with pytest.raises(ConfigError, match=KEYS_FILE):
        KeyStore.open(tmp_path)


def test_a_key_needs_a_user(tmp_path: Path) -> None:
    store = KeyStore.open(tmp_path)

    with pytest.raises(ValueError, match="user id"):
        store.register_key("")


# ----------------------------------------------------------------------------- the sim's 401s


async def _raw(
    http: aiohttp.ClientSession, sim: SimServer, path: str, headers: dict[str, str]
) -> tuple[int, object]:
    async with http.get(sim.url + API_PREFIX + path, headers=headers) as resp:
        return resp.status, orjson.loads(await resp.read())


@pytest.mark.asyncio
async def test_a_signed_request_is_served(client: SignedClient) -> None:
    status, body = await client.get("/portfolio/balance")

    assert status == 200
    check("portfolio/get-balance", "GET", "/portfolio/balance", 200, body)


@pytest.mark.asyncio
async def test_an_unsigned_portfolio_request_gets_signature_missing(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    status, body = await _raw(http, sim, "/portfolio/balance", {})

    assert status == 401
    assert body == {
        "error": {"code": "signature_is_missing_from_headers", "message": "unauthorized"}
    }


@pytest.mark.asyncio
async def test_a_wrong_signature_gets_incorrect_api_key_signature(
    sim: SimServer, client: SignedClient, http: aiohttp.ClientSession
) -> None:
    headers = client.headers("GET", API_PREFIX + "/portfolio/fills")

    status, body = await _raw(http, sim, "/portfolio/balance", headers)

    assert status == 401
    assert body == {
        "error": {
            "code": "authentication_error",
            "message": "unauthorized",
            "details": "INCORRECT_API_KEY_SIGNATURE",
        }
    }


@pytest.mark.asyncio
async def test_a_signature_over_the_short_path_is_refused(
    sim: SimServer, client: SignedClient, http: aiohttp.ClientSession
) -> None:
    headers = client.headers("GET", "/portfolio/balance")

    status, body = await _raw(http, sim, "/portfolio/balance", headers)

    assert status == 401
    assert isinstance(body, dict)
    assert body["error"]["details"] == "INCORRECT_API_KEY_SIGNATURE"


@pytest.mark.asyncio
async def test_the_query_string_is_not_signed(client: SignedClient) -> None:
    status, _ = await client.get("/portfolio/orders", params={"limit": "5"})

    assert status == 200


@pytest.mark.asyncio
async def test_an_unknown_key_gets_not_found(
    sim: SimServer, client: SignedClient, http: aiohttp.ClientSession
) -> None:
    headers = client.headers("GET", API_PREFIX + "/portfolio/balance")
    headers[ACCESS_KEY] = "00000000-0000-0000-0000-000000000000"

    status, body = await _raw(http, sim, "/portfolio/balance", headers)

    assert status == 401
    assert isinstance(body, dict)
    assert body["error"]["code"] == "authentication_error"
    assert body["error"]["details"] == "NOT_FOUND"


@pytest.mark.parametrize("skew_ms", [-6_000, 6_000])
@pytest.mark.asyncio
async def test_a_stale_or_future_timestamp_gets_header_timestamp_expired(
    sim: SimServer, client: SignedClient, http: aiohttp.ClientSession, skew_ms: int
) -> None:
    path = API_PREFIX + "/portfolio/balance"
    headers = client.signer.headers("GET", path, TS_MS + skew_ms)

    status, body = await _raw(http, sim, "/portfolio/balance", headers)

    assert status == 401
    assert isinstance(body, dict)
    assert body["error"]["code"] == "header_timestamp_expired"


@pytest.mark.asyncio
async def test_a_timestamp_inside_the_window_is_accepted(
    sim: SimServer, client: SignedClient, http: aiohttp.ClientSession
) -> None:
    path = API_PREFIX + "/portfolio/balance"
    headers = client.signer.headers("GET", path, TS_MS - 4_999)

    status, _ = await _raw(http, sim, "/portfolio/balance", headers)

    assert status == 200


@pytest.mark.parametrize("missing", [ACCESS_KEY, ACCESS_TIMESTAMP])
@pytest.mark.asyncio
async def test_a_missing_key_or_timestamp_header_is_named(
    sim: SimServer, client: SignedClient, http: aiohttp.ClientSession, missing: str
) -> None:
    headers = client.headers("GET", API_PREFIX + "/portfolio/balance")
    del headers[missing]

    status, body = await _raw(http, sim, "/portfolio/balance", headers)

    assert status == 401
    assert isinstance(body, dict)
    assert body["error"]["details"] == f"missing header {missing}"


@pytest.mark.asyncio
async def test_a_non_numeric_timestamp_is_refused(
    sim: SimServer, client: SignedClient, http: aiohttp.ClientSession
) -> None:
    headers = client.headers("GET", API_PREFIX + "/portfolio/balance")
    headers[ACCESS_TIMESTAMP] = "yesterday"

    status, body = await _raw(http, sim, "/portfolio/balance", headers)

    assert status == 401
    assert isinstance(body, dict)
    assert body["error"]["details"] == "INVALID_TIMESTAMP"


@pytest.mark.asyncio
async def test_public_market_data_needs_no_signature(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    status, _ = await _raw(http, sim, "/markets", {})

    assert status == 200


@pytest.mark.asyncio
async def test_public_market_data_with_a_bad_signature_is_refused(
    sim: SimServer, client: SignedClient, http: aiohttp.ClientSession
) -> None:
    headers = client.headers("GET", API_PREFIX + "/exchange/status")

    status, _ = await _raw(http, sim, "/markets", headers)

    assert status == 401


@pytest.mark.asyncio
async def test_a_registered_key_signs_for_its_own_account(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    key_id, pem = sim.register_key("bob", balance=5_000_000)
    bob = SignedClient(http, sim.url, key_id, pem, sim.venue.clock)

    status, body = await bob.get("/portfolio/balance")

    assert status == 200
    assert body["balance_dollars"] == "5.0000"


@pytest.mark.asyncio
async def test_the_websocket_handshake_is_authenticated(
    sim: SimServer, client: SignedClient, http: aiohttp.ClientSession
) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect(sim.ws_url)
    good = client.headers("GET", WS_PATH)

    async with http.ws_connect(sim.ws_url, headers=good) as ws:
        assert not ws.closed

    assert refused.value.status == 401
