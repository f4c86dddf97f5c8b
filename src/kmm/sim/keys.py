"""The local exchange's API keys: a ``keys.json`` index plus one PEM file per key.

Theory of operation
-------------------
The sim authenticates exactly as Kalshi does (:mod:`kmm.kalshi.auth`), so it needs registered
keys. They live in the state directory: ``keys.json`` maps each key id to its user and public
key (PEM), and each private key is written beside it (``demo.pem`` for the demo key,
``key-<key id>.pem`` for the others) with mode 0600, so a client can load it like a key
downloaded from Kalshi. On first start the store creates the demo key; later starts reuse the
same key id and file. Losing a private key file does not break verification (the public key
is in ``keys.json``), but then no client can sign for that key.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from kmm.errors import ConfigError

__all__ = ["DEMO_USER", "KEYS_FILE", "KeyRecord", "KeyStore"]

KEYS_FILE: Final = "keys.json"
DEMO_USER: Final = "demo"
_DEMO_PEM: Final = "demo.pem"
_KEY_BITS: Final = 2048


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One registered API key.

    Attributes:
        key_id: The id clients send as ``KALSHI-ACCESS-KEY``.
        user_id: The account the key trades for.
        public_key: What signatures are checked against.
        private_key_path: Where the private half was written.
    """

    key_id: str
    user_id: str
    public_key: RSAPublicKey
    private_key_path: Path


class KeyStore:
    """The keys registered with one sim instance, persisted in ``state_dir``.

    Use :meth:`open`, which loads ``keys.json`` or creates the demo key on first start.
    """

    def __init__(self, state_dir: Path, records: list[KeyRecord]) -> None:
        self.state_dir = state_dir
        self._by_id = {r.key_id: r for r in records}

    @classmethod
    def open(cls, state_dir: Path) -> KeyStore:
        """Loads the store in ``state_dir``, creating the directory and demo key if needed.

        Raises:
            ConfigError: if ``keys.json`` exists but cannot be read or parsed.
        """
        state_dir.mkdir(parents=True, exist_ok=True)
        index = state_dir / KEYS_FILE
        if not index.exists():
            store = cls(state_dir, [])
            store._add(DEMO_USER, state_dir / _DEMO_PEM)
            return store
        return cls(state_dir, _load_index(index, state_dir))

    @property
    def demo(self) -> KeyRecord:
        """The demo key (the first key registered for the demo user)."""
        for record in self._by_id.values():
            if record.user_id == DEMO_USER:
                return record
        return self._add(DEMO_USER, self.state_dir / _DEMO_PEM)

    def records(self) -> list[KeyRecord]:
        """Every registered key, in registration order."""
        return list(self._by_id.values())

    def lookup(self, key_id: str) -> KeyRecord | None:
        """The key with this id, or ``None`` if it is not registered."""
        return self._by_id.get(key_id)

    def register_key(self, user_id: str) -> KeyRecord:
        """Generates and registers a new key for ``user_id`` (a user may hold several).

        Raises:
            ValueError: if ``user_id`` is empty.
        """
        if not user_id:
            raise ValueError("a key needs a non-empty user id")
        key_id = str(uuid.uuid4())
        return self._add(user_id, self.state_dir / f"key-{key_id}.pem", key_id)

    def _add(self, user_id: str, pem_path: Path, key_id: str | None = None) -> KeyRecord:
        private = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_BITS)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        _write_private(pem_path, pem)
        record = KeyRecord(key_id or str(uuid.uuid4()), user_id, private.public_key(), pem_path)
        self._by_id[record.key_id] = record
        self._save()
        return record

    def _save(self) -> None:
        rows = [
            {
                "key_id": r.key_id,
                "user_id": r.user_id,
                "private_key_file": r.private_key_path.name,
                "public_key_pem": r.public_key.public_bytes(
                    serialization.Encoding.PEM,
                    serialization.PublicFormat.SubjectPublicKeyInfo,
                ).decode("ascii"),
            }
            for r in self._by_id.values()
        ]
        tmp = self.state_dir / (KEYS_FILE + ".tmp")
        tmp.write_bytes(orjson.dumps({"keys": rows}, option=orjson.OPT_INDENT_2))
        tmp.replace(self.state_dir / KEYS_FILE)


def _write_private(path: Path, pem: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, pem)
    finally:
        os.close(fd)


def _load_index(index: Path, state_dir: Path) -> list[KeyRecord]:
    try:
        rows = orjson.loads(index.read_bytes())["keys"]
        return [_record(row, state_dir) for row in rows]
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise ConfigError([f"sim key store {index}: unreadable ({e})"]) from e


def _record(row: dict[str, str], state_dir: Path) -> KeyRecord:
    public = serialization.load_pem_public_key(row["public_key_pem"].encode("ascii"))
    if not isinstance(public, RSAPublicKey):
        raise ValueError(f"key {row['key_id']} is not an RSA key")
    return KeyRecord(row["key_id"], row["user_id"], public, state_dir / row["private_key_file"])
