"""The chunked AEAD stream both seals are made of: a body encrypted and decrypted chunk by chunk.

A body is the plaintext cut into chunks of ``CHUNK`` bytes (the last one shorter, at least one
chunk), each encrypted with the stream's AEAD key and associated data, so each grows by a
``TAG``. A chunk's nonce holds its index and a last-chunk flag, so chunks cannot be reordered or
cut off. The message seal (``seal.py``) puts a header before the body and a signed trailer after
it; a shared blob (``blobseal.py``) is the body alone. Encryption happens while the stream is read
(``SealedReader``), decryption while it is fed (``ChunkStream``): a large payload never exists
twice in memory.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO
from typing import Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from syft_flwr_gdrive.base.segments import Buffer
from syft_flwr_gdrive.base.segments import SeekableReader
from syft_flwr_gdrive.crypto.failures import CryptoError

CHUNK = 1024 * 1024
TAG = 16
Aead = AESGCM | ChaCha20Poly1305


class Hasher(Protocol):
    """What ``hashlib.sha256()`` and ``blake3()`` both are."""

    def update(self, data: Buffer, /) -> object: ...
    def digest(self) -> bytes: ...
    def hexdigest(self) -> str: ...


@dataclass(frozen=True)
class TrailerSigner:
    """How a stream's trailer is made: ``sign(digest of the ciphertext)``, exactly ``size`` bytes.

    The three go together: the seal version decides the digest's algorithm and the signature's
    labels, and the reader must know the trailer's size before anything is signed.
    """

    sign: Callable[[bytes], bytes]
    digest: Callable[[], Hasher]
    size: int


def _nonce(index: int, last: bool) -> bytes:
    return struct.pack(">QI", index, 1 if last else 0)


class SealedReader(SeekableReader):
    """The sealed payload, encrypted chunk by chunk as it is read (seekable, bounded memory).

    With a ``signer``, the trailer is ``signer.sign(digest of the ciphertext)`` (``signer.size`` long),
    made when a read first reaches it: the ciphertext is digested as it is produced, in order,
    so a sequential read (an upload) encrypts and digests every chunk once, and nothing has
    to be encrypted ahead of the upload to sign it. Chunks a read skipped (it seeked forward)
    are encrypted again for the digest then; chunks read again (a resend) are not digested twice.
    """

    def __init__(
        self,
        plain: BinaryIO,
        plain_size: int,
        aead: Aead,
        aad: bytes,
        header: bytes,
        trailer: bytes = b"",
        *,
        signer: TrailerSigner | None = None,
    ) -> None:
        """With ``signer`` the trailer is made by it (and ``trailer`` is not used)."""
        super().__init__()
        self._plain, self._plain_size = plain, plain_size
        self._aead, self._aad = aead, aad
        self._chunks = max(1, -(-plain_size // CHUNK))
        self._header = header
        self._trailer: bytes | None = trailer if signer is None else None
        self._signer = signer
        self._digest = signer.digest() if signer is not None else None
        self._digested = 0  # chunks [0, _digested) are in _digest
        self._body = plain_size + TAG * self._chunks
        self.size = len(header) + self._body + (len(trailer) if signer is None else signer.size)
        self._pos = 0
        self._cache: tuple[int, bytes] | None = None

    def _encrypt(self, index: int) -> bytes:
        start, n = index * CHUNK, min(CHUNK, self._plain_size - index * CHUNK)
        view = getattr(self._plain, "view", None)  # a SegmentReader lends its buffers: no copy
        data = view(start, n) if view is not None else None
        if data is None:
            self._plain.seek(start)
            data = self._plain.read(n)
        return self._aead.encrypt(_nonce(index, index == self._chunks - 1), data, self._aad)

    def _chunk(self, index: int) -> bytes:
        if self._cache is None or self._cache[0] != index:
            chunk = self._encrypt(index)
            if self._digest is not None and index == self._digested and self._trailer is None:
                self._digest.update(chunk)
                self._digested += 1
            self._cache = (index, chunk)
        return self._cache[1]

    def _trailer_bytes(self) -> bytes:
        if self._trailer is None:
            assert self._signer is not None and self._digest is not None
            for index in range(self._digested, self._chunks):  # only chunks a read skipped
                self._digest.update(self._encrypt(index))
            self._digested = self._chunks
            self._trailer = self._signer.sign(self._digest.digest())
            if len(self._trailer) != self._signer.size:
                raise CryptoError(f"a seal's trailer must be {self._signer.size} bytes")
        return self._trailer

    # RawIOBase.readinto's buffer type is narrower in typeshed; any buffer memoryview can cast works here
    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        out = memoryview(buffer).cast("B")
        written = 0
        while written < len(out) and self._pos < self.size:
            rel = self._pos - len(self._header)
            if rel < 0:
                piece = self._header[self._pos :]
            elif rel >= self._body:
                piece = self._trailer_bytes()[rel - self._body :]
            else:
                index, inner = divmod(rel, CHUNK + TAG)
                piece = self._chunk(index)[inner:]
            n = min(len(piece), len(out) - written)
            out[written : written + n] = piece[:n]
            written += n
            self._pos += n
        return written


class ChunkStream:
    """Decrypts a chunked AEAD body fed in pieces of any size, in order (e.g. as it downloads).

    Each chunk's tag is checked as soon as the chunk is complete; ``InvalidTag`` propagates.
    """

    def __init__(
        self,
        aead: Aead,
        aad: bytes,
        body_size: int,
        take: Callable[[bytes], None],
        into: Callable[[int], memoryview] | None = None,
    ) -> None:
        """Each chunk's plaintext goes to ``take(plain)``, or with ``into``, is decrypted straight into
        the buffer ``into(n)`` returns (no allocation per chunk) and ``take`` is not called."""
        self._aead, self._aad, self._take, self._into = aead, aad, take, into
        self._body_size = body_size
        self._chunks = max(1, -(-body_size // (CHUNK + TAG)))
        self._index = 0
        self._carry = bytearray()

    def feed(self, data: Buffer) -> None:
        view = memoryview(data).cast("B")
        while len(view):
            if self._index >= self._chunks:
                raise CryptoError("the encrypted body is longer than its declared size")
            want = min(CHUNK + TAG, self._body_size - self._index * (CHUNK + TAG))
            if not self._carry and len(view) >= want:  # a whole chunk inside this piece: no copy
                piece, view = view[:want], view[want:]
                self._open(piece)
                continue
            n = min(want - len(self._carry), len(view))
            self._carry += view[:n]
            view = view[n:]
            if len(self._carry) == want:
                piece_bytes, self._carry = bytes(self._carry), bytearray()
                self._open(memoryview(piece_bytes))

    def _open(self, piece: memoryview) -> None:
        nonce = _nonce(self._index, self._index == self._chunks - 1)
        if self._into is not None:
            self._aead.decrypt_into(nonce, piece, self._aad, self._into(len(piece) - TAG))
        else:
            self._take(self._aead.decrypt(nonce, piece, self._aad))
        self._index += 1

    def finish(self) -> None:
        if self._index != self._chunks or self._carry:
            raise CryptoError("the encrypted body is shorter than its declared size (truncated)")


def sized_buffer(size: int) -> io.BytesIO:
    """An empty BytesIO that already owns ``size`` bytes: writing it never reallocates (a growing
    buffer leaves freed copies in the heap), and once full, ``getvalue()`` hands it over without a copy."""
    out = io.BytesIO()
    if size:
        out.seek(size - 1)
        out.write(b"\0")
        out.seek(0)
    return out
