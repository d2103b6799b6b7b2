"""Shared blobs: one array broadcast to N clients, encrypted once with a fresh random key.

A blob is uploaded once, so it cannot be sealed to each recipient. It is encrypted once with a
fresh random key instead, in the same chunked AEAD layout as a sealed payload (``chunks.py``; no
header, no signature); the key, the cipher and the digest of the plaintext travel inside each
recipient's sealed and signed message, so only recipients can read it and nobody else can
substitute it.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from typing import BinaryIO

from blake3 import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from syft_flwr_gdrive.base.segments import Buffer
from syft_flwr_gdrive.crypto.chunks import CHUNK
from syft_flwr_gdrive.crypto.chunks import TAG
from syft_flwr_gdrive.crypto.chunks import Aead
from syft_flwr_gdrive.crypto.chunks import ChunkStream
from syft_flwr_gdrive.crypto.chunks import Hasher
from syft_flwr_gdrive.crypto.chunks import SealedReader
from syft_flwr_gdrive.crypto.chunks import sized_buffer
from syft_flwr_gdrive.crypto.failures import CryptoError

BLOB_KEY_BYTES = 32
_BLOB_AAD = b"sfg-blob-v1"
# A blob's cipher is named in the index entry that refers to it (a blob has no header of its own);
# an entry without a name is a ChaCha20-Poly1305 blob (message format versions 1 and 2).
BLOB_CHACHA = "chacha20-poly1305"
BLOB_AESGCM = "aes-256-gcm"
BLOB_CIPHER = BLOB_AESGCM  # what this build writes
_BLOB_AEADS: dict[str, type[Aead]] = {BLOB_CHACHA: ChaCha20Poly1305, BLOB_AESGCM: AESGCM}
BLOB_CIPHERS = frozenset(_BLOB_AEADS)  # the names this build reads
# A blob's plaintext digest is written "<algorithm>:<hex>" (formats 1 and 2 gave a bare SHA-256,
# which the index parser turns into "sha256:<hex>"); it is also the placer's de-duplication key.
BLOB_DIGESTS: dict[str, Callable[[], Hasher]] = {"sha256": hashlib.sha256, "blake3": blake3}
BLOB_DIGEST = "blake3"  # what this build writes


def content_digest(data: Buffer, algorithm: str = BLOB_DIGEST) -> str:
    """``data``'s digest as a blob reference names it: ``"<algorithm>:<hex>"``."""
    hasher = BLOB_DIGESTS[algorithm]()
    hasher.update(data)
    return f"{algorithm}:{hasher.hexdigest()}"


def _digest_check(digest: str) -> tuple[Hasher, str]:
    """A fresh hasher for a named digest, and the hex it must end at."""
    algorithm, _, expected = digest.partition(":")
    factory = BLOB_DIGESTS.get(algorithm)
    if factory is None or not expected:
        raise CryptoError(f"a blob digest must be <algorithm>:<hex>, the algorithm one of {', '.join(BLOB_DIGESTS)}")
    return factory(), expected


def _blob_aead(key: bytes, cipher: str) -> Aead:
    if len(key) != BLOB_KEY_BYTES:
        raise CryptoError("a blob key must be 32 bytes")
    aead = _BLOB_AEADS.get(cipher)
    if aead is None:
        raise CryptoError(f"a blob's cipher {cipher!r} is not one this build reads ({', '.join(sorted(_BLOB_AEADS))})")
    return aead(key)


def new_blob_key() -> bytes:
    return os.urandom(BLOB_KEY_BYTES)


def sealed_blob_size(plain_size: int) -> int:
    """Bytes stored on Drive for a blob of ``plain_size`` plaintext bytes."""
    return plain_size + TAG * max(1, -(-plain_size // CHUNK))


def seal_blob(plain: BinaryIO, plain_size: int, key: bytes, cipher: str = BLOB_CIPHER) -> SealedReader:
    """The blob's ciphertext as a seekable stream, encrypted chunk by chunk while read."""
    return SealedReader(plain, plain_size, _blob_aead(key, cipher), _BLOB_AAD, b"")


class BlobOpener:
    """Decrypts and checks a shared blob fed in pieces (as it downloads); its plaintext only after ``finish``.

    ``digest`` (``"<algorithm>:<hex>"``, see ``content_digest``) is what the plaintext must hash to.
    """

    def __init__(self, plain_size: int, key: bytes, digest: str | None = None, cipher: str = BLOB_CIPHER) -> None:
        aead = _blob_aead(key, cipher)
        self._plain_size = plain_size
        self._digest: Hasher | None = None
        self._expected = ""
        if digest is not None:
            self._digest, self._expected = _digest_check(digest)
        # made at the first chunk, by whoever feeds it (the download's worker): touching every page of a
        # model-sized buffer takes 0.15 s per 256 MiB here, which should not hold up the download's start
        self._out: io.BytesIO | None = None
        self._view: memoryview | None = None
        self._filled = self._digested = 0
        self._stream = ChunkStream(aead, _BLOB_AAD, sealed_blob_size(plain_size), self._take, self._into)

    def _take(self, plain: bytes) -> None:  # only an empty blob's one empty chunk comes here
        if len(plain):
            raise CryptoError("the shared blob is longer than its declared size")

    def _into(self, n: int) -> memoryview:
        """The next ``n`` bytes of the output buffer; the previous chunk, now decrypted, is digested first."""
        if self._out is None and self._plain_size:
            self._out = sized_buffer(self._plain_size)
            self._view = self._out.getbuffer()
        if self._view is None or self._filled + n > len(self._view):
            raise CryptoError("the shared blob is longer than its declared size")
        self._digest_upto(self._filled)
        target = self._view[self._filled : self._filled + n]
        self._filled += n
        return target

    def _digest_upto(self, end: int) -> None:
        if self._digest is not None and self._view is not None:
            self._digest.update(self._view[self._digested : end])
        self._digested = end

    def feed(self, data: Buffer) -> None:
        try:
            self._stream.feed(data)
        except InvalidTag:
            raise CryptoError("the shared blob does not decrypt with its key: altered, swapped or cut") from None
        except CryptoError:
            raise CryptoError("the shared blob is longer than its declared size") from None

    def finish(self) -> bytes:
        try:
            self._stream.finish()
        except CryptoError:
            raise CryptoError("the shared blob is shorter than its declared size") from None
        self._digest_upto(self._filled)
        if self._view is not None:
            self._view.release()  # getvalue() below must not see an export
            self._view = None
        if self._digest is not None and self._digest.hexdigest() != self._expected:
            raise CryptoError("the shared blob does not match its digest")
        data, self._out = (self._out.getvalue() if self._out is not None else b""), None
        return data


def open_blob(
    sealed: BinaryIO, plain_size: int, key: bytes, digest: str | None = None, cipher: str = BLOB_CIPHER
) -> bytes:
    """Decrypt a blob read from ``sealed`` (exactly ``sealed_blob_size(plain_size)`` bytes follow);
    with ``digest``, its plaintext is checked against it in the same pass."""
    opener = BlobOpener(plain_size, key, digest, cipher)
    left = sealed_blob_size(plain_size)
    while left > 0:
        data = sealed.read(min(left, 8 * (CHUNK + TAG)))
        if not data:
            break
        opener.feed(data)
        left -= len(data)
    if left == 0 and sealed.read(1):
        raise CryptoError("the shared blob is longer than its declared size")
    return opener.finish()
