"""Shared blobs: upload a broadcast array once, encrypted, and fetch it once, vetted.

``BlobPlacer`` (server side) uploads each distinct large array once per run,
however many clients it goes to, encrypted with a fresh random key (the key
and the plaintext's SHA-256 travel inside each recipient's sealed, signed
message, so Drive only ever holds ciphertext). ``BlobCache`` (receiving side)
fetches a blob only from the sending peer's own blobs folder, after the
transport checked owner, folder and size from the file's metadata, and keeps
the last blob, so the model evaluated in round r and trained in round r+1 is
downloaded once (and no older model is kept in memory).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import threading
from collections import OrderedDict

from syft_flwr_gdrive.crypto import CryptoError, new_blob_key, open_blob, seal_blob, sealed_blob_size
from syft_flwr_gdrive.flower_codec import BlobRef, PayloadError
from syft_flwr_gdrive.transport.contract import BlobRefused, Transport
from syft_flwr_gdrive.transport.segments import SegmentReader

logger = logging.getLogger(__name__)

BLOB_MIN_BYTES = 256 * 1024  # smaller arrays travel inline: a blob costs an extra upload and download
SPOOL_IN_MEMORY = 8 * 1024 * 1024  # a downloaded blob's ciphertext spools to disk beyond this


class BlobPlacer:
    """Server side: one encrypted upload per distinct array content per run; thread-safe."""

    def __init__(self, transport: Transport, app: str, min_bytes: int = BLOB_MIN_BYTES) -> None:
        self.transport = transport
        self.app = app
        self.min_bytes = min_bytes
        self._lock = threading.Lock()
        self._by_sha: dict[str, BlobRef] = {}
        self._sha_locks: dict[str, threading.Lock] = {}
        # id(data) -> (data, sha) while one push encodes N messages sharing one RecordDict; cleared after
        # each push (end_push) so no old model is kept alive.
        self._digests: dict[int, tuple[bytes, str]] = {}
        self.uploaded_bytes = 0

    def __call__(self, data: bytes) -> BlobRef | None:
        if len(data) < self.min_bytes:
            return None
        sha = self._digest(data)
        with self._lock:
            sha_lock = self._sha_locks.setdefault(sha, threading.Lock())
        with sha_lock:
            ref = self._by_sha.get(sha)
            if ref is None:
                key = new_blob_key()
                sealed = seal_blob(SegmentReader([data]), len(data), key)  # encrypted chunk by chunk while uploading
                ref = BlobRef(self.transport.put_blob(self.app, sealed), sha, len(data), key)
                self.uploaded_bytes += sealed.size
                with self._lock:
                    self._by_sha[sha] = ref
        return ref

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
            return [ref.locator for ref in self._by_sha.values()]

    def drop(self, locators: list[str]) -> None:
        """Forget deleted blobs (content sent again later is uploaded again)."""
        gone = set(locators)
        with self._lock:
            self._by_sha = {sha: ref for sha, ref in self._by_sha.items() if ref.locator not in gone}

    def forget(self) -> None:
        with self._lock:
            self._by_sha.clear()
            self._digests.clear()


class BlobCache:
    """Receiving side: fetch, check and decrypt blobs through the transport, keeping the most recent few.

    ``fetch(ref, owner=...)`` raises ``PayloadError`` for a blob that must never be used (not
    the sender's, wrong size, over the limit, does not decrypt or match its SHA-256) and lets
    a ``TransportError`` (maybe transient) through.
    """

    def __init__(self, transport: Transport, app: str, *, max_bytes: int | None = None, max_items: int = 1) -> None:
        self.transport = transport
        self.app = app
        self.max_bytes = max_bytes
        self.max_items = max_items
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.fetched_bytes = 0

    def fetch(self, ref: BlobRef, *, owner: str) -> bytes:
        with self._lock:
            if ref.sha256 in self._items:
                self._items.move_to_end(ref.sha256)
                return self._items[ref.sha256]
        if self.max_bytes is not None and ref.size > self.max_bytes:
            raise PayloadError(f"a shared blob of {ref.size} bytes exceeds the {self.max_bytes}-byte message limit")
        stored_size = sealed_blob_size(ref.size)
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
            try:
                self.transport.get_blob(self.app, ref.locator, owner=owner, size=stored_size, out=spool)
            except BlobRefused as exc:
                raise PayloadError(f"shared blob refused: {exc}") from None
            self.fetched_bytes += stored_size
            spool.seek(0)
            try:
                data = open_blob(spool, ref.size, ref.key)  # type: ignore[arg-type]
            except CryptoError as exc:
                raise PayloadError(str(exc)) from None
        if hashlib.sha256(data).hexdigest() != ref.sha256:
            raise PayloadError("a shared blob does not match its SHA-256")
        if self.max_items:
            with self._lock:
                self._items[ref.sha256] = data
                while len(self._items) > self.max_items:
                    self._items.popitem(last=False)
        return data
