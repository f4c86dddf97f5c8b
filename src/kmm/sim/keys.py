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

Keys are also managed over REST (``/api_keys``): a user lists its keys, registers one from its
own RSA public key (the store then holds no private half: the key's ``private_key_path`` names
a file that does not exist, as for a lost key) and deletes one. Each key carries the name,
scopes and optional subaccount restriction it was created with; ``keys.json`` files written
before those existed load with the defaults (full ``read``/``write`` access, unrestricted).
The store never hands out private key material: it only writes the halves it generated to
their files.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from kmm.errors import ConfigError

__all__ = ["DEFAULT_SCOPES", "DEMO_USER", "KEYS_FILE", "KeyRecord", "KeyStore"]

KEYS_FILE: Final = "keys.json"
DEMO_USER: Final = "demo"
DEFAULT_SCOPES: Final[tuple[str, ...]] = ("read", "write")
"""The scopes of a key created without any: full access."""
_DEMO_PEM: Final = "demo.pem"
_KEY_BITS: Final = 2048


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One registered API key.

    Attributes:
        key_id: The id clients send as ``KALSHI-ACCESS-KEY``.
        user_id: The account the key trades for.
        public_key: What signatures are checked against.
        private_key_path: Where the private half was written (for a key registered from its
            public key alone, a path where no file exists).
        name: The name shown by ``GET /api_keys``.
        scopes: The scopes granted (``read``, ``write``, or narrower child scopes).
        subaccount: The one subaccount the key is restricted to, or ``None``.
    """

    key_id: str
    user_id: str
    public_key: RSAPublicKey
    private_key_path: Path
    name: str = ""
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    subaccount: int | None = None


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

    def keys_of(self, user_id: str) -> list[KeyRecord]:
        """The keys of ``user_id``, in registration order."""
        return [r for r in self._by_id.values() if r.user_id == user_id]

    def register_key(self, user_id: str) -> KeyRecord:
        """Generates and registers a new key for ``user_id`` (a user may hold several).

        Raises:
            ValueError: if ``user_id`` is empty.
        """
        if not user_id:
            raise ValueError("a key needs a non-empty user id")
        key_id = str(uuid.uuid4())
        return self._add(user_id, self.state_dir / f"key-{key_id}.pem", key_id)

    def register_public_key(
        self,
        user_id: str,
        public_key_pem: str,
        *,
        name: str,
        scopes: tuple[str, ...] = DEFAULT_SCOPES,
        subaccount: int | None = None,
    ) -> KeyRecord:
        """Registers a key from the user's own RSA public key (``POST /api_keys``).

        Raises:
            ValueError: if ``user_id`` is empty or ``public_key_pem`` is not an RSA public key
                in PEM.
        """
        if not user_id:
            raise ValueError("a key needs a non-empty user id")
        public = _rsa_public_key(public_key_pem)
        key_id = str(uuid.uuid4())
        path = self.state_dir / f"key-{key_id}.pem"
        record = KeyRecord(key_id, user_id, public, path, name, scopes, subaccount)
        self._by_id[key_id] = record
        self._save()
        return record

    def delete(self, user_id: str, key_id: str) -> bool:
        """Deletes ``user_id``'s key ``key_id`` and the private key file the store wrote for it.

        Returns:
            Whether the user held such a key.
        """
        record = self._by_id.get(key_id)
        if record is None or record.user_id != user_id:
            return False
        del self._by_id[key_id]
        self._save()
        record.private_key_path.unlink(missing_ok=True)
        return True

    def _add(self, user_id: str, pem_path: Path, key_id: str | None = None) -> KeyRecord:
        private = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_BITS)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        _write_private(pem_path, pem)
        name = _default_name(user_id, pem_path)
        record = KeyRecord(
            key_id or str(uuid.uuid4()), user_id, private.public_key(), pem_path, name
        )
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
                "name": r.name,
                "scopes": list(r.scopes),
                "subaccount": r.subaccount,
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


def _default_name(user_id: str, pem_path: Path) -> str:
    return "demo" if pem_path.name == _DEMO_PEM else f"{user_id} key"


def _rsa_public_key(pem: str) -> RSAPublicKey:
    """Loads an RSA public key from PEM text.

    Raises:
        ValueError: if the text is not a PEM public key, or the key is not RSA.
    """
    try:
        public = serialization.load_pem_public_key(pem.encode("ascii", "replace"))
    except UnsupportedAlgorithm as e:
        raise ValueError(f"unsupported key type ({e})") from None
    if not isinstance(public, RSAPublicKey):
        raise ValueError("not an RSA public key")
    return public


def _record(row: dict[str, Any], state_dir: Path) -> KeyRecord:
    try:
        public = _rsa_public_key(row["public_key_pem"])
    except ValueError as e:
        raise ValueError(f"key {row['key_id']}: {e}") from e
    path = state_dir / row["private_key_file"]
    subaccount = row.get("subaccount")
    return KeyRecord(
        row["key_id"],
        row["user_id"],
        public,
        path,
        row.get("name") or _default_name(row["user_id"], path),
        tuple(row.get("scopes") or DEFAULT_SCOPES),
        subaccount if isinstance(subaccount, int) else None,
    )
