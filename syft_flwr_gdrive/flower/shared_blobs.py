"""Shared blobs: upload a broadcast array once, encrypted, and fetch it once, vetted.

``BlobPlacer`` (server side) uploads each distinct large array once per run,
however many clients it goes to, encrypted with a fresh random key (the key
and the plaintext's digest travel inside each recipient's sealed, signed
message, so Drive only ever holds ciphertext). ``BlobCache`` (receiving side)
fetches a blob only from the sending peer's own blobs folder, after the
transport checked owner, folder and size from the file's metadata, and keeps
the last blob (its ciphertext, on disk), so the model evaluated in round r and
trained in round r+1 is downloaded once, and no model is kept in memory.
"""

from __future__ import annotations

import hashlib
import io
import logging
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from collections.abc import Iterable
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from typing import BinaryIO

from syft_flwr_gdrive.base.segments import SegmentReader
from syft_flwr_gdrive.base.segments import WindowReader
from syft_flwr_gdrive.base.segments import as_binary
from syft_flwr_gdrive.crypto.blobseal import BLOB_CIPHER
from syft_flwr_gdrive.crypto.blobseal import BlobOpener
from syft_flwr_gdrive.crypto.blobseal import content_digest
from syft_flwr_gdrive.crypto.blobseal import new_blob_key
from syft_flwr_gdrive.crypto.blobseal import open_blob
from syft_flwr_gdrive.crypto.blobseal import seal_blob
from syft_flwr_gdrive.crypto.blobseal import sealed_blob_size
from syft_flwr_gdrive.crypto.chunks import CHUNK
from syft_flwr_gdrive.crypto.chunks import TAG
from syft_flwr_gdrive.crypto.chunks import SealedReader
from syft_flwr_gdrive.crypto.failures import CryptoError
from syft_flwr_gdrive.flower.codec import BlobRef
from syft_flwr_gdrive.flower.codec import PayloadError
from syft_flwr_gdrive.flower.codec import split_sizes
from syft_flwr_gdrive.mailbox.mailbox import Mailbox
from syft_flwr_gdrive.mailbox.pipe import PipeSink
from syft_flwr_gdrive.mailbox.pipe import TailSink
from syft_flwr_gdrive.transport.contract import BlobNotStored
from syft_flwr_gdrive.transport.contract import BlobRefused
from syft_flwr_gdrive.transport.contract import TransportError

logger = logging.getLogger(__name__)

BLOB_MIN_BYTES = 256 * 1024  # smaller arrays travel inline: a blob costs an extra upload and download
SPOOL_IN_MEMORY = 8 * 1024 * 1024  # a downloaded blob's ciphertext spools to disk beyond this
FINGERPRINT_SAMPLES = 64  # slices of a placed array read for its fingerprint ...
FINGERPRINT_SLICE = 256  # ... of this many bytes each
HASH_TIMEOUT = 600.0  # seconds for the digest beside an upload (1 GiB takes about 0.2 s here)
# A blob of at least two parts' worth is stored in parts, at ids reserved before the upload, and its
# message is sent at once: a receiver downloads part k while part k+1 uploads (see BlobPlacer).
PART_BYTES = 64 * (CHUNK + TAG)  # ciphertext per part: whole AEAD chunks, about 64 MiB
MAX_PARTS = 64  # a bigger blob gets bigger parts
UPLOAD_WAIT = 24 * 3600.0  # a bound, not a target: an upload's own retries end it long before
CANCEL_WAIT = 5.0  # seconds close gives an abandoned upload to notice (one request in flight at most)
MIN_PART_WAIT = 60.0  # a client waits at least this long for a request's parts (it may be near its expiry)
# A part's wait ends after this long without it (not at the message's expiry: Flower's default ttl is 12 h, and a
# part that does not come within minutes, e.g. one whose id someone took, must not hold its request that long)...
PART_STALL = 300.0
WANTED_EVERY = 5.0  # ...or once the message naming it is gone, asked this often while waiting (its sender gave up)


class BlobPlacer:
    """Server side: one encrypted upload per distinct array content per run; thread-safe.

    Content is de-duplicated by its digest (``crypto.content_digest``, which also travels in each
    message, for the receiver's check). Hashing a model before its upload would add a pass over it to
    every push, so the placer first takes a cheap fingerprint (``sample_fingerprint``): content whose
    fingerprint no stored blob has is new for certain and is uploaded at once, its digest computed in a
    thread beside the upload (the hash releases the GIL); only content that may be stored already is
    hashed first.
    """

    def __init__(
        self,
        mailbox: Mailbox,
        min_bytes: int = BLOB_MIN_BYTES,
        part_bytes: int | None = None,
        *,
        only_in_parts: bool = False,
    ) -> None:
        """``only_in_parts``: place only arrays that go in parts, and keep the rest inline (a client's reply
        goes to one peer: a blob in one piece would cost it an extra file and gain nothing)."""
        self.mailbox = mailbox
        self.min_bytes = min_bytes
        self.part_bytes = part_bytes or mailbox.blob_part_bytes or PART_BYTES
        self.only_in_parts = only_in_parts
        self._uploader: ThreadPoolExecutor | None = None  # uploads blobs stored in parts, one at a time
        self._uploading: dict[str, Future[None]] = {}  # a parted blob's first locator -> its upload
        self._orphans: set[str] = set()  # parts of blobs whose upload failed: to delete, never to refer to
        # A failed parted blob's first locator -> its upload's error, until its parts are deleted (``drop``):
        # every request naming it fails, also one whose wait comes after another's wait saw the failure.
        self._failed: dict[str, Exception] = {}
        self._cancel = threading.Event()  # set by close: a running upload fails at its next read
        self._lock = threading.Lock()
        self._by_digest: dict[str, BlobRef] = {}
        self._fingerprints: dict[str, str] = {}  # digest of each stored blob -> its sample fingerprint
        self._locks: dict[str, threading.Lock] = {}  # by fingerprint: one upload per content at a time
        # id(data) -> (data, digest) while one push encodes N messages sharing one RecordDict; cleared after
        # each push (end_push) so no old model is kept alive.
        self._known: dict[int, tuple[bytes, str]] = {}
        self.uploaded_bytes = 0

    def __call__(self, data: bytes) -> BlobRef | None:
        if len(data) < self.min_bytes or not self.mailbox.shares_blobs:
            return None
        if self.only_in_parts and self._parts_for(sealed_blob_size(len(data)))[0] < 2:
            return None
        fingerprint = sample_fingerprint(data)
        with self._lock:
            lock = self._locks.setdefault(fingerprint, threading.Lock())
        with lock:
            with self._lock:
                maybe_stored = fingerprint in self._fingerprints.values()
                known = self._known.get(id(data))
            digest = known[1] if known is not None and known[0] is data else None
            if digest is None and maybe_stored:
                digest = self._digest_of(data)
            ref = self._by_digest.get(digest) if digest is not None else None
            return ref if ref is not None else self._upload(data, fingerprint, digest)

    def noting(self, used: list[str]) -> Callable[[bytes], BlobRef | None]:
        """This placer as a message's ``place_blob``, noting every file of each blob it places in ``used``
        (what the message refers to: kept while it is pending, deleted with it)."""

        def place(data: bytes) -> BlobRef | None:
            ref = self(data)
            if ref is not None:
                used.extend(ref.locators)
            return ref

        return place

    def _upload(self, data: bytes, fingerprint: str, digest: str | None) -> BlobRef | None:
        """Encrypt and upload ``data`` as a new blob, hashing it beside the upload when ``digest`` is not known
        (None: an ``only_in_parts`` placer whose transport stores blobs only whole)."""
        key = new_blob_key()
        # encrypted chunk by chunk while uploading
        sealed = seal_blob(as_binary(SegmentReader([data])), len(data), key, BLOB_CIPHER)
        parts, part_bytes = self._parts_for(sealed.size)
        locators = self.mailbox.reserve_blob(parts) if parts >= 2 else None
        if locators is not None:
            return self._upload_in_parts(data, fingerprint, digest, key, sealed, locators, part_bytes)
        if self.only_in_parts:  # the transport stores blobs only whole: the array stays inline
            return None
        hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blob-hash") if digest is None else None
        try:
            hashing = hasher.submit(content_digest, data) if hasher is not None else None
            locator = self.mailbox.put_blob(sealed)
            if hashing is not None:
                digest = hashing.result(timeout=HASH_TIMEOUT)
        finally:
            if hasher is not None:
                hasher.shutdown(wait=False, cancel_futures=True)
        assert digest is not None
        return self._remember(BlobRef(locator, digest, len(data), key, BLOB_CIPHER), data, fingerprint, sealed.size)

    def _remember(self, ref: BlobRef, data: bytes, fingerprint: str, stored: int) -> BlobRef:
        """Record a placed blob: its content is not uploaded again while it is stored."""
        with self._lock:
            self.uploaded_bytes += stored
            self._by_digest[ref.digest] = ref
            self._fingerprints[ref.digest] = fingerprint
            self._known[id(data)] = (data, ref.digest)
        return ref

    def _parts_for(self, stored: int) -> tuple[int, int]:
        """How many parts a blob of ``stored`` bytes goes in, and their size: ``part_bytes`` (whole AEAD
        chunks), or bigger to stay within ``MAX_PARTS``."""
        per_part = max(self.part_bytes, -(-stored // MAX_PARTS))
        per_part = -(-per_part // (CHUNK + TAG)) * (CHUNK + TAG)
        return -(-stored // per_part), per_part

    def _upload_in_parts(
        self,
        data: bytes,
        fingerprint: str,
        digest: str | None,
        key: bytes,
        sealed: SealedReader,
        locators: list[str],
        part_bytes: int,
    ) -> BlobRef:
        """Name the parts now and upload them in the background: the message that refers to the blob goes
        out while it uploads (``wait_for`` before counting the message sent). Its digest must be in that
        message: it is computed while the first part uploads (BLAKE3, about 0.04 s per 256 MiB here)."""
        sizes = split_sizes(sealed.size, part_bytes, len(locators))
        with self._lock:
            if self._uploader is None:
                self._uploader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blob-parts")
            self._uploading[locators[0]] = self._uploader.submit(self._put_parts, sealed, locators, sizes)
        if digest is None:
            digest = content_digest(data)
        ref = BlobRef(locators[0], digest, len(data), key, BLOB_CIPHER, tuple(locators[1:]), part_bytes)
        return self._remember(ref, data, fingerprint, sealed.size)

    def _put_parts(self, sealed: SealedReader, locators: list[str], sizes: list[int]) -> None:
        start = 0
        for locator, size in zip(locators, sizes, strict=True):
            self.mailbox.put_blob_part(locator, WindowReader(sealed, start, size, stop=self._cancel))
            start += size

    def wait_for(self, locators: Iterable[str]) -> None:
        """Wait until the blobs among ``locators`` that are still uploading are stored; raise the first
        upload's error (that blob is forgotten: content sent again is uploaded again). The requests of one push
        that name one blob wait for it side by side: each raises its error, also one whose wait begins after
        another's saw the upload fail (the failure is remembered until the blob's parts are deleted)."""
        with self._lock:
            wanted = list(locators)
            failure: Exception | None = next((self._failed[loc] for loc in wanted if loc in self._failed), None)
            running = [(loc, self._uploading[loc]) for loc in wanted if loc in self._uploading]
        for locator, upload in running:
            try:
                upload.result(timeout=UPLOAD_WAIT)
            except Exception as exc:  # reported below, after every upload settled
                failure = failure or exc
                with self._lock:  # forgotten as content, kept as files to delete (parts stored before it failed)
                    self._failed[locator] = exc
                    failed = [r for r in self._by_digest.values() if r.locator == locator]
                    self._orphans.update(loc for r in failed for loc in r.locators)
                    self._by_digest = {d: r for d, r in self._by_digest.items() if r.locator != locator}
                    self._fingerprints = {d: fp for d, fp in self._fingerprints.items() if d in self._by_digest}
            finally:
                with self._lock:
                    self._uploading.pop(locator, None)
        if failure is not None:
            raise failure

    def close(self) -> None:
        """Stop the upload thread; a closed placer uploads nothing more. Pushes wait for their parts, so an
        upload still running here belongs to one that was interrupted (Ctrl-C, an error): it is abandoned at
        its next read, waited for only briefly (its parts are deleted next, or by ``clean``), so that exiting
        stays fast."""
        self._cancel.set()
        with self._lock:
            uploader, self._uploader = self._uploader, None
            running = list(self._uploading.values())
            self._uploading.clear()
        if uploader is not None:
            uploader.shutdown(wait=False, cancel_futures=True)
        for upload in running:
            try:
                upload.result(timeout=CANCEL_WAIT)
            except Exception as exc:  # cancelled, failed, or still finishing its current request
                logger.info("a blob upload was abandoned at close (%s)", type(exc).__name__)

    def _digest_of(self, data: bytes) -> str:
        with self._lock:
            known = self._known.get(id(data))
            if known is not None and known[0] is data:
                return known[1]
        digest = content_digest(data)
        with self._lock:
            self._known[id(data)] = (data, digest)
        return digest

    def end_push(self) -> None:
        """Drop the references kept while encoding one push (they would pin old models in memory)."""
        with self._lock:
            self._known.clear()

    def locators(self) -> list[str]:
        """Every file of every blob placed (each part of a blob stored in parts)."""
        with self._lock:
            return [loc for ref in self._by_digest.values() for loc in ref.locators] + sorted(self._orphans)

    def drop(self, locators: list[str]) -> None:
        """Forget deleted blobs (content sent again later is uploaded again)."""
        gone = set(locators)
        with self._lock:
            self._by_digest = {d: ref for d, ref in self._by_digest.items() if not gone & set(ref.locators)}
            self._orphans -= gone
            self._failed = {loc: exc for loc, exc in self._failed.items() if loc not in gone}
            self._fingerprints = {d: fp for d, fp in self._fingerprints.items() if d in self._by_digest}

    def forget(self) -> None:
        with self._lock:
            self._by_digest.clear()
            self._fingerprints.clear()
            self._known.clear()
            self._orphans.clear()
            self._failed.clear()


def sample_fingerprint(data: bytes) -> str:
    """The size and SHA-256 of ``FINGERPRINT_SAMPLES`` slices spread over ``data``: equal contents always
    have equal fingerprints, so a fingerprint no stored blob has means new content. (Cheap: ~16 KiB read
    whatever the size. Equal fingerprints prove nothing; the placer hashes such content in full.)"""
    view = memoryview(data).cast("B")
    digest = hashlib.sha256(len(view).to_bytes(8, "big"))
    step = max(1, len(view) // FINGERPRINT_SAMPLES)
    for start in range(0, len(view), step):
        digest.update(view[start : start + FINGERPRINT_SLICE])
    digest.update(view[-FINGERPRINT_SLICE:])
    return digest.hexdigest()


class BlobCache:
    """Receiving side: fetch, check and decrypt blobs through the transport, keeping the most recent few.

    ``fetch(ref, owner=...)`` raises ``PayloadError`` for a blob that must never be used (not
    the sender's, wrong size, over the limit, does not decrypt or match its digest) and lets
    a ``TransportError`` (maybe transient) through.

    What is kept is the blob's verified ciphertext in a temporary file (in memory only up to
    ``SPOOL_IN_MEMORY``), not its plaintext: a hit decrypts it again instead of downloading it,
    and memory never holds a model the app has dropped (the bytes handed out are the app's).
    """

    def __init__(self, mailbox: Mailbox, *, max_bytes: int | None = None, max_items: int = 1) -> None:
        self.mailbox = mailbox
        self.max_bytes = max_bytes
        self.max_items = max_items
        self._items: OrderedDict[str, BinaryIO] = OrderedDict()  # digest -> spooled ciphertext
        self._lock = threading.Lock()
        self.fetched_bytes = 0

    def fetch(
        self,
        ref: BlobRef,
        *,
        owner: str,
        wait_until: float | None = None,
        still_wanted: Callable[[], bool] | None = None,
    ) -> bytes:
        """The blob's verified plaintext. The parts of a blob stored in parts may still be uploading: each is
        waited for until ``wait_until`` (wall-clock time: a client's request's expiry, the server's reply
        wait), at most :data:`PART_STALL` seconds, or not at all without it; and no longer once
        ``still_wanted()`` says the message that names the blob is gone (a ``TransportError``)."""
        with self._lock:
            kept = self._items.pop(ref.digest, None)  # in use by this thread until put back
        if kept is not None:
            return self._open_and_keep(kept, ref)
        if self.max_bytes is not None and ref.size > self.max_bytes:
            raise PayloadError(f"a shared blob of {ref.size} bytes exceeds the {self.max_bytes}-byte message limit")
        stored_size = sealed_blob_size(ref.size)
        if stored_size <= SPOOL_IN_MEMORY:  # small: download, then decrypt
            # a binary file; typeshed types SpooledTemporaryFile as IO[bytes], not BinaryIO
            small: BinaryIO = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # type: ignore[assignment]
            self._download(ref, owner, stored_size, small, small, wait_until, still_wanted)
            return self._open_and_keep(small, ref)
        # Big: the ciphertext goes to disk (kept for the next fetch) while a worker reads it back behind
        # the download and decrypts and hashes it, so those passes overlap the transfer. A cache that keeps
        # nothing (the server's, for replies) hands each downloaded piece to the worker without the disk.
        opener = BlobOpener(ref.size, ref.key, ref.digest, ref.cipher)  # checks key, cipher and digest first
        spool: BinaryIO
        sink: TailSink | PipeSink
        if self.max_items:
            spool = tempfile.TemporaryFile()
            sink = TailSink(spool, opener.feed, block=CHUNK + TAG, name="blob-open")
        else:
            spool, sink = io.BytesIO(), PipeSink(opener.feed, name="blob-open")

        def download_and_open() -> bytes:
            self._download(ref, owner, stored_size, sink, spool, wait_until, still_wanted)
            sink.finish()
            return opener.finish()

        return self._open_then_keep(spool, ref, download_and_open, abort=sink.abort)

    def _download(
        self,
        ref: BlobRef,
        owner: str,
        size: int,
        out: Any,
        spool: BinaryIO,
        wait_until: float | None,
        still_wanted: Callable[[], bool] | None,
    ) -> None:
        """Fetch the blob's ciphertext into ``out``, part after part; ``spool`` is closed if that fails.
        A blob stored whole was stored before its message was sent: nothing to wait for."""
        try:
            for locator, part_size in zip(ref.locators, ref.part_sizes(size), strict=True):
                if not ref.parts or wait_until is None:
                    self.mailbox.get_blob(locator, owner=owner, size=part_size, out=out)
                    continue
                self._wait_for_part(
                    locator, owner, part_size, out, min(wait_until, time.time() + PART_STALL), still_wanted
                )
        except BaseException as exc:
            spool.close()
            if isinstance(exc, BlobRefused):
                raise PayloadError(f"shared blob refused: {exc}") from None
            raise
        self.fetched_bytes += size

    def _wait_for_part(
        self,
        locator: str,
        owner: str,
        size: int,
        out: Any,
        until: float,
        still_wanted: Callable[[], bool] | None,
    ) -> None:
        """One part of a blob stored in parts, waited for until ``until`` (wall clock), in slices of
        :data:`WANTED_EVERY` seconds between which ``still_wanted()`` is asked."""
        while True:
            left = max(0.0, until - time.time())
            try:
                self.mailbox.get_blob(locator, owner=owner, size=size, out=out, appear_within=min(left, WANTED_EVERY))
                return
            except BlobNotStored:
                if time.time() >= until:
                    raise
            if still_wanted is not None and not still_wanted():
                raise TransportError(f"the message naming shared blob part {locator} was withdrawn before it came")

    def _open_and_keep(self, spool: BinaryIO, ref: BlobRef) -> bytes:
        """Decrypt and verify the ciphertext in ``spool``, then keep it for the next fetch (closed on failure)."""

        def open_plain() -> bytes:
            spool.seek(0)
            return open_blob(spool, ref.size, ref.key, ref.digest, ref.cipher)

        return self._open_then_keep(spool, ref, open_plain)

    def _open_then_keep(
        self, spool: BinaryIO, ref: BlobRef, open_plain: Callable[[], bytes], abort: Callable[[], None] | None = None
    ) -> bytes:
        """``open_plain()`` (decrypt and verify), then keep ``spool`` for the next fetch. On failure ``abort()``
        runs and ``spool`` is closed, and a blob that fails its checks is reported as a PayloadError."""
        try:
            data = open_plain()
        except BaseException as exc:
            if abort is not None:
                abort()
            spool.close()
            if isinstance(exc, CryptoError):
                raise PayloadError(str(exc)) from None
            raise
        self._keep(ref.digest, spool)
        return data

    def _keep(self, digest: str, spool: BinaryIO) -> None:
        dropped: list[BinaryIO] = []
        with self._lock:
            if self.max_items and digest not in self._items:
                self._items[digest] = spool
                # handed to the cache: cleared so that the close below leaves it open
                spool = None  # type: ignore[assignment]
            while len(self._items) > self.max_items:
                dropped.append(self._items.popitem(last=False)[1])
        if spool is not None:
            dropped.append(spool)
        for fh in dropped:
            fh.close()

    def close(self) -> None:
        """Remove the kept temporary files."""
        with self._lock:
            items, self._items = list(self._items.values()), OrderedDict()
        for fh in items:
            fh.close()
