"""A participant's keys: its private key pairs on disk, and the public halves it publishes.

Each participant has two long-lived key pairs, kept in its state dir (0600): X25519 to receive
encrypted messages and Ed25519 to sign what it sends. The public halves (``PublicKeys``) are
published beside its messages (the transport carries them in the same listing a poll reads)
and pinned by peers on first sight (``pins.PinStore``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from syft_flwr_gdrive.crypto.failures import CryptoError

logger = logging.getLogger(__name__)


def _raw_private(key: X25519PrivateKey | Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())


def raw_public(key: X25519PublicKey | Ed25519PublicKey) -> bytes:
    """The 32 bytes of a public key, as published and as bound into seals."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class PublicKeys:
    """What a participant publishes: encryption and signing public keys (32 bytes each)."""

    kx: bytes
    sign: bytes

    def encode(self) -> dict[str, str]:
        return {"kx": base64.b64encode(self.kx).decode(), "ks": base64.b64encode(self.sign).decode()}

    @classmethod
    def decode(cls, data: dict[str, str]) -> PublicKeys | None:
        try:
            kx, ks = base64.b64decode(data["kx"], validate=True), base64.b64decode(data["ks"], validate=True)
        except (KeyError, TypeError, ValueError):
            return None
        return cls(kx, ks) if len(kx) == 32 and len(ks) == 32 else None

    def fingerprint(self) -> str:
        return hashlib.sha256(self.kx + self.sign).hexdigest()[:16]


class Identity:
    """This participant's private keys, created once and kept in ``path`` (mode 0600)."""

    def __init__(self, kx: X25519PrivateKey, sign: Ed25519PrivateKey) -> None:
        self._kx = kx
        self._sign = sign
        self.public = PublicKeys(raw_public(kx.public_key()), raw_public(sign.public_key()))

    @classmethod
    def load_or_create(cls, path: Path) -> Identity:
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                return cls(
                    X25519PrivateKey.from_private_bytes(base64.b64decode(data["kx"])),
                    Ed25519PrivateKey.from_private_bytes(base64.b64decode(data["sign"])),
                )
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise CryptoError(
                    f"the key file {path} is unreadable ({type(exc).__name__}). Restore it from a backup; "
                    "deleting it makes new keys that peers will refuse until they drop their pin of you."
                ) from None
        identity = cls(X25519PrivateKey.generate(), Ed25519PrivateKey.generate())
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(
                {
                    "kx": base64.b64encode(_raw_private(identity._kx)).decode(),
                    "sign": base64.b64encode(_raw_private(identity._sign)).decode(),
                },
                fh,
            )
        logger.info("created encryption keys in %s (fingerprint %s)", path, identity.public.fingerprint())
        return identity

    @classmethod
    def ephemeral(cls) -> Identity:
        """Keys that live in memory only (tests)."""
        return cls(X25519PrivateKey.generate(), Ed25519PrivateKey.generate())

    def exchange(self, peer_kx: bytes) -> bytes:
        return self._kx.exchange(X25519PublicKey.from_public_bytes(peer_kx))

    def sign(self, data: bytes) -> bytes:
        return self._sign.sign(data)
