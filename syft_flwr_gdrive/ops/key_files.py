"""``trust``: whose public keys this participant has pinned, which changed keys it refused, and
accepting a changed key once a person has confirmed its fingerprint with the peer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.crypto.keys import Identity
from syft_flwr_gdrive.crypto.pins import PinStore


@dataclass(frozen=True)
class PeerKey:
    peer: str
    pinned: str | None  # fingerprint
    refused: str | None  # fingerprint of a different key the peer published since


def keys_file(settings: Settings) -> Path:
    return settings.participant_state_dir() / "keys.json"


def my_fingerprint(settings: Settings) -> str | None:
    """My own key fingerprint (what peers pin), or None before the first run created the keys.

    Nothing is created here: a check must not make keys as a side effect.
    """
    path = keys_file(settings)
    return Identity.load_or_create(path).public.fingerprint() if path.exists() else None


def pin_store(settings: Settings) -> PinStore:
    return PinStore(settings.participant_state_dir() / "peer-keys.json")


def peer_keys(settings: Settings) -> list[PeerKey]:
    store = pin_store(settings)
    pinned, refused = store.pinned(), store.refused()
    return [
        PeerKey(
            peer,
            pinned[peer].fingerprint() if peer in pinned else None,
            refused[peer].fingerprint() if peer in refused else None,
        )
        for peer in sorted(set(pinned) | set(refused))
    ]


def accept(settings: Settings, peer: str) -> str:
    """Pin the changed key ``peer`` was refused for; returns its fingerprint."""
    return pin_store(settings).accept(peer.strip().lower()).fingerprint()
