"""Peers' public keys, pinned on first sight (trust on first use).

A peer's published keys are pinned the first time they are seen; a key that later changes is
refused, loudly, and remembered so that a person who confirmed it with the peer can accept it
(``syft-flwr-gdrive trust --accept``).
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from syft_flwr_gdrive.base.statefile import write_json_atomic
from syft_flwr_gdrive.crypto.failures import CryptoError
from syft_flwr_gdrive.crypto.keys import PublicKeys

logger = logging.getLogger(__name__)


class PinStore:
    """Peers' public keys as first seen (trust on first use), persisted as JSON."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._pins: dict[str, dict[str, str]] = {}
        if path is not None and path.exists():
            try:
                self._pins = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                raise CryptoError(f"{path} (pinned peer keys) is unreadable; fix or delete it") from None
        self._warned: set[str] = set()
        self._refused_now: dict[str, PublicKeys] = {}  # peer -> the changed key it was last refused for, here

    def check(self, peer: str, keys: PublicKeys) -> bool:
        """Pin on first sight; afterwards True only for the pinned keys."""
        with self._lock:
            pinned = self._pins.get(peer)
            if pinned is None:
                self._pins[peer] = keys.encode()
                self._save()
                logger.info("pinned %s's public keys (fingerprint %s)", peer, keys.fingerprint())
                return True
            if PublicKeys.decode(pinned) == keys:
                self._refused_now.pop(peer, None)
                return True
            self._refused_now[peer] = keys
            if peer not in self._warned:
                self._warned.add(peer)
                self._note_refused(peer, keys)
                logger.error(
                    "%s now publishes different public keys (fingerprint %s, pinned %s): refusing them. If %s "
                    "really re-created its keys, confirm the new fingerprint with them, then run "
                    "`syft-flwr-gdrive trust --accept %s` (pins are kept in %s).",
                    peer,
                    keys.fingerprint(),
                    old.fingerprint() if (old := PublicKeys.decode(pinned)) else "?",
                    peer,
                    peer,
                    self._path,
                )
            return False

    # -- what `syft-flwr-gdrive trust` shows and does ---------------------------------------

    def _refused_path(self) -> Path | None:
        return None if self._path is None else self._path.with_name(self._path.stem + "-refused.json")

    def _read_refused(self) -> dict[str, dict[str, str]]:
        path = self._refused_path()
        try:
            data = json.loads(path.read_text(encoding="utf-8")) if path is not None and path.exists() else {}
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _note_refused(self, peer: str, keys: PublicKeys) -> None:
        """Remember the last refused key of a peer, so a person can accept it explicitly later."""
        path = self._refused_path()
        if path is None:
            return
        refused = self._read_refused()
        refused[peer] = keys.encode()
        write_json_atomic(path, refused)

    def pinned(self) -> dict[str, PublicKeys]:
        with self._lock:
            return {peer: k for peer, raw in self._pins.items() if (k := PublicKeys.decode(raw)) is not None}

    def refused_now(self, peer: str) -> PublicKeys | None:
        """The changed key ``peer`` publishes now and this process refused (None: it publishes its pinned key,
        or none was seen). Such a peer can be told nothing secret; it can still be told to stop."""
        with self._lock:
            return self._refused_now.get(peer)

    def refused(self) -> dict[str, PublicKeys]:
        """Peers' keys that differed from their pin when last seen."""
        return {peer: k for peer, raw in self._read_refused().items() if (k := PublicKeys.decode(raw)) is not None}

    def accept(self, peer: str) -> PublicKeys:
        """Pin the key a peer was refused for (a person confirmed it); returns it."""
        refused = self._read_refused()
        keys = PublicKeys.decode(refused.get(peer, {}))
        if keys is None:
            raise CryptoError(f"no refused key of {peer} is on record; nothing to accept")
        with self._lock:
            self._pins[peer] = keys.encode()
            self._save()
            self._warned.discard(peer)
            self._refused_now.pop(peer, None)
        del refused[peer]
        path = self._refused_path()
        assert path is not None
        write_json_atomic(path, refused)
        return keys

    def _save(self) -> None:
        if self._path is None:
            return
        write_json_atomic(self._path, self._pins)
