"""Signatures prepared ahead of time for the order path's fixed paths."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import rsa

from kmm.kalshi.auth import ACCESS_SIGNATURE, ACCESS_TIMESTAMP, Signer, verify

KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PATH = "/trade-api/v2/portfolio/events/orders"


def test_a_presigned_path_is_served_from_the_cache_while_fresh() -> None:
    signer = Signer("key", KEY, reuse_ms=2_000)

    signer.presign("POST", PATH, 1_000)
    headers = signer.headers("POST", PATH, 2_500)

    assert headers[ACCESS_TIMESTAMP] == "1000"
    assert verify(KEY.public_key(), "POST", PATH, "1000", headers[ACCESS_SIGNATURE])


def test_a_stale_presigned_signature_is_replaced_by_a_fresh_one() -> None:
    signer = Signer("key", KEY, reuse_ms=2_000)
    signer.presign("POST", PATH, 1_000)

    headers = signer.headers("POST", PATH, 3_000)

    assert headers[ACCESS_TIMESTAMP] == "3000"
    assert verify(KEY.public_key(), "POST", PATH, "3000", headers[ACCESS_SIGNATURE])


def test_presigning_does_nothing_when_reuse_is_off() -> None:
    signer = Signer("key", KEY)

    signer.presign("POST", PATH, 1_000)

    assert signer.headers("POST", PATH, 1_500)[ACCESS_TIMESTAMP] == "1500"
