"""Shared, content-addressed blobs: upload a broadcast array once, fetch it once.

``BlobPlacer`` (server side) uploads each distinct large array once per run,
however many clients it goes to; ``BlobCache`` (client side) keeps the last
blob, so the model evaluated in round r and trained in round r+1 is
downloaded once (and no older model is kept in memory).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict

from syft_flwr_gdrive.transport.contract import Transport

logger = logging.getLogger(__name__)

BLOB_MIN_BYTES = 256 * 1024  # smaller arrays travel inline: a blob costs an extra upload and download


class BlobPlacer:
    """Server side: one upload per distinct array content per run; thread-safe."""

    def __init__(self, transport: Transport, app: str, min_bytes: int = BLOB_MIN_BYTES) -> None:
        self.transport = transport
        self.app = app
        self.min_bytes = min_bytes
        self._lock = threading.Lock()
        self._by_sha: dict[str, str] = {}
        self._sha_locks: dict[str, threading.Lock] = {}
        # id(data) -> (data, sha) while one push encodes N messages sharing one RecordDict; cleared after
        # each push (end_push) so no old model is kept alive.
        self._digests: dict[int, tuple[bytes, str]] = {}
        self.uploaded_bytes = 0

    def __call__(self, data: bytes) -> tuple[str, str] | None:
        if len(data) < self.min_bytes:
            return None
        sha = self._digest(data)
        with self._lock:
            sha_lock = self._sha_locks.setdefault(sha, threading.Lock())
        with sha_lock:
            locator = self._by_sha.get(sha)
            if locator is None:
                locator = self.transport.put_blob(self.app, sha, data)
                self.uploaded_bytes += len(data)
                with self._lock:
                    self._by_sha[sha] = locator
        return sha, locator

    def _digest(self, data: bytes) -> str:
        with self._lock:
            known = self._digests.get(id(data))
            if known is not None and known[0] is data:
                return known[1]
        sha = hashlib.sha256(data).hexdigest()
        with self._lock:
            self._digests[id(data)] = (data, sha)
        return sha

    def end_push(self) -> None:
        """Drop the references kept while encoding one push (they would pin old models in memory)."""
        with self._lock:
            self._digests.clear()

    def locators(self) -> list[str]:
        with self._lock:
            return list(self._by_sha.values())

    def drop(self, locators: list[str]) -> None:
        """Forget deleted blobs (content sent again later is uploaded again)."""
        gone = set(locators)
        with self._lock:
            self._by_sha = {sha: loc for sha, loc in self._by_sha.items() if loc not in gone}

    def forget(self) -> None:
        with self._lock:
            self._by_sha.clear()
            self._digests.clear()


class BlobCache:
    """Client side: fetch blobs through the transport, keeping the most recent few."""

    def __init__(self, transport: Transport, max_items: int = 1) -> None:
        self.transport = transport
        self.max_items = max_items
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.fetched_bytes = 0

    def __call__(self, locator: str, sha256: str, size: int) -> bytes:
        with self._lock:
            if sha256 in self._items:
                self._items.move_to_end(sha256)
                return self._items[sha256]
        data = self.transport.get_blob(locator)
        self.fetched_bytes += len(data)
        if len(data) == size and hashlib.sha256(data).hexdigest() == sha256:
            with self._lock:
                self._items[sha256] = data
                while len(self._items) > self.max_items:
                    self._items.popitem(last=False)
        return data
