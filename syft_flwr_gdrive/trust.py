"""``trust``: whose public keys this participant has pinned, which changed keys it refused, and
accepting a changed key once a person has confirmed its fingerprint with the peer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from syft_flwr_gdrive.config import Settings
from syft_flwr_gdrive.crypto import PinStore, PublicKeys


@dataclass(frozen=True)
class PeerKey:
    peer: str
    pinned: str | None  # fingerprint
    refused: str | None  # fingerprint of a different key the peer published since


def keys_file(settings: Settings) -> Path:
    return settings.participant_state_dir() / "keys.json"


def my_fingerprint(settings: Settings) -> str | None:
    """My own key fingerprint (what peers pin), or None before the first run created the keys.

    Read without creating anything: a check must not make keys as a side effect.
    """
    import base64
    import json

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    path = keys_file(settings)
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    kx = X25519PrivateKey.from_private_bytes(base64.b64decode(data["kx"])).public_key()
    sign = Ed25519PrivateKey.from_private_bytes(base64.b64decode(data["sign"])).public_key()
    return PublicKeys(kx.public_bytes(Encoding.Raw, PublicFormat.Raw), sign.public_bytes(Encoding.Raw, PublicFormat.Raw)).fingerprint()


def pin_store(settings: Settings) -> PinStore:
    return PinStore(settings.participant_state_dir() / "peer-keys.json")


def peer_keys(settings: Settings) -> list[PeerKey]:
    store = pin_store(settings)
    pinned, refused = store.pinned(), store.refused()
    return [
        PeerKey(peer, pinned[peer].fingerprint() if peer in pinned else None,
                refused[peer].fingerprint() if peer in refused else None)
        for peer in sorted(set(pinned) | set(refused))
    ]


def accept(settings: Settings, peer: str) -> str:
    """Pin the changed key ``peer`` was refused for; returns its fingerprint."""
    return pin_store(settings).accept(peer.strip().lower()).fingerprint()
