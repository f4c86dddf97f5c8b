"""Kalshi request signing: RSA-PSS over ``timestamp_ms + METHOD + path`` (KALSHI.md §3).

Theory of operation
-------------------
Every authenticated REST request and the websocket handshake carry three headers:
``KALSHI-ACCESS-KEY`` (the key id), ``KALSHI-ACCESS-TIMESTAMP`` (Unix milliseconds as a
decimal string) and ``KALSHI-ACCESS-SIGNATURE``: the standard base64 of an RSA-PSS signature
(SHA-256, MGF1 SHA-256, salt length = digest length) over the UTF-8 bytes of the timestamp
string, the upper-case HTTP method and the URL path from the API root (``/trade-api/v2/...``)
without the query string, concatenated with no separator. The body is not signed.

An RSA-2048 signature costs about a millisecond of CPU. :class:`Signer` can reuse the last
signature it made for a ``(method, path)`` while it is younger than ``reuse_ms`` (the venue
only checks that a timestamp is not stale), so a burst of cancels to one path signs once.
:meth:`Signer.presign` refills that cache ahead of time; the REST client runs it on a worker
thread for the fixed paths of the order path (create, batch create, batch cancel), so the
tick-to-order path finds a fresh signature and never pays the RSA cost on the event loop.
The time is always passed in; this module never reads the clock.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from kmm.errors import ConfigError

__all__ = [
    "ACCESS_KEY",
    "ACCESS_SIGNATURE",
    "ACCESS_TIMESTAMP",
    "Signer",
    "load_private_key",
    "load_private_key_pem",
    "sign",
    "signing_message",
    "verify",
]

ACCESS_KEY: Final = "KALSHI-ACCESS-KEY"
ACCESS_TIMESTAMP: Final = "KALSHI-ACCESS-TIMESTAMP"
ACCESS_SIGNATURE: Final = "KALSHI-ACCESS-SIGNATURE"

_PSS: Final = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)
_SHA256: Final = hashes.SHA256()


def load_private_key(path: str | Path) -> RSAPrivateKey:
    """Loads an unencrypted PEM RSA private key (PKCS#1 or PKCS#8), as Kalshi issues them.

    Args:
        path: The PEM file.

    Returns:
        The private key.

    Raises:
        ConfigError: if the file is missing or unreadable, or does not hold an unencrypted
            RSA private key; the message names the path.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError([f"private key {path}: cannot read the file ({e.strerror})"]) from e
    return load_private_key_pem(data, f"private key {path}")


def load_private_key_pem(data: bytes, source: str) -> RSAPrivateKey:
    """Loads an unencrypted PEM RSA private key from bytes (a file's or a variable's).

    Args:
        data: The PEM text.
        source: Where it came from, for the error message (never the key itself).

    Raises:
        ConfigError: if ``data`` is not an unencrypted PEM RSA private key.
    """
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise ConfigError([f"{source}: not an unencrypted PEM private key"]) from e
    if not isinstance(key, RSAPrivateKey):
        raise ConfigError([f"{source}: not an RSA key ({type(key).__name__})"])
    return key


def signing_message(method: str, path: str, ts_ms: int | str) -> bytes:
    """The exact bytes Kalshi signs: timestamp + upper-case method + path without query."""
    bare = path.split("?", 1)[0]
    return f"{ts_ms}{method.upper()}{bare}".encode()


def sign(private_key: RSAPrivateKey, method: str, path: str, ts_ms: int) -> str:
    """Signs one request and returns the base64 ``KALSHI-ACCESS-SIGNATURE`` value."""
    raw = private_key.sign(signing_message(method, path, ts_ms), _PSS, _SHA256)
    return base64.b64encode(raw).decode("ascii")


def verify(
    public_key: RSAPublicKey, method: str, path: str, ts_ms: int | str, signature_b64: str
) -> bool:
    """Checks a ``KALSHI-ACCESS-SIGNATURE`` value (the venue's side of :func:`sign`).

    Args:
        public_key: The public half of the registered key.
        method: The HTTP method of the request.
        path: The request path (any query string is ignored).
        ts_ms: The ``KALSHI-ACCESS-TIMESTAMP`` value exactly as sent.
        signature_b64: The ``KALSHI-ACCESS-SIGNATURE`` value.

    Returns:
        True if the signature is valid for that message and key; False otherwise, including
        when ``signature_b64`` is not valid base64.
    """
    try:
        raw = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        public_key.verify(raw, signing_message(method, path, ts_ms), _PSS, _SHA256)
    except InvalidSignature:
        return False
    return True


class Signer:
    """Makes the three authentication headers for one API key.

    Args:
        key_id: The API key id (``KALSHI-ACCESS-KEY``).
        private_key: The key's RSA private key.
        reuse_ms: Reuse the previous signature of the same ``(method, path)`` while its
            timestamp is less than this many milliseconds old; 0 signs every request. Keep
            it well inside the venue's timestamp tolerance (the sim allows 5 000 ms).

    Raises:
        ValueError: if ``reuse_ms`` is negative.
    """

    __slots__ = ("_cache", "_private_key", "key_id", "reuse_ms")

    def __init__(self, key_id: str, private_key: RSAPrivateKey, *, reuse_ms: int = 0) -> None:
        if reuse_ms < 0:
            raise ValueError(f"reuse_ms must not be negative, got {reuse_ms}")
        self.key_id = key_id
        self.reuse_ms = reuse_ms
        self._private_key = private_key
        self._cache: dict[tuple[str, str], tuple[int, dict[str, str]]] = {}

    def headers(self, method: str, path: str, ts_ms: int) -> dict[str, str]:
        """The ``KALSHI-ACCESS-*`` headers for a request sent at ``ts_ms``.

        Args:
            method: The HTTP method (any case).
            path: The full path from the host, e.g. ``/trade-api/v2/portfolio/balance``; a
                query string is allowed and is not signed.
            ts_ms: The current Unix time in milliseconds.

        Returns:
            A new dict of the three headers (safe for the caller to extend).
        """
        key = (method.upper(), path.split("?", 1)[0])
        if self.reuse_ms:
            hit = self._cache.get(key)
            if hit is not None and 0 <= ts_ms - hit[0] < self.reuse_ms:
                return dict(hit[1])
        made = {
            ACCESS_KEY: self.key_id,
            ACCESS_TIMESTAMP: str(ts_ms),
            ACCESS_SIGNATURE: sign(self._private_key, key[0], key[1], ts_ms),
        }
        if self.reuse_ms:
            self._cache[key] = (ts_ms, made)
        return dict(made)

    def presign(self, method: str, path: str, ts_ms: int) -> None:
        """Signs ``(method, path)`` at ``ts_ms`` into the reuse cache, replacing what was there.

        Meant to run on a worker thread (RSA-PSS releases the GIL), so that a request to a
        fixed path finds a fresh signature and signs nothing on the event loop. Has no effect
        when ``reuse_ms`` is 0.
        """
        if not self.reuse_ms:
            return
        key = (method.upper(), path.split("?", 1)[0])
        made = {
            ACCESS_KEY: self.key_id,
            ACCESS_TIMESTAMP: str(ts_ms),
            ACCESS_SIGNATURE: sign(self._private_key, key[0], key[1], ts_ms),
        }
        self._cache[key] = (ts_ms, made)  # one dict store: atomic under the GIL
