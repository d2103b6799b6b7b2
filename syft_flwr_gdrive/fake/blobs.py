"""File contents on disk, written in bounded memory with checksums computed on the way.

Uploads can be a gigabyte; the fake never holds a body in RAM. Writers stream into a
temporary file under the store's ``uploads`` directory and the store renames the finished
file into ``blobs`` (cheap, atomic) when the API call commits.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20  # 1 MiB: the most body the fake holds in memory at once per request


@dataclass
class BlobInfo:
    """A finished content file waiting to be attached to a Drive file."""

    path: Path
    size: int
    md5: str
    sha256: str


class BlobWriter:
    """Streams bytes into a temporary file, hashing as it goes.

    Supports checkpoint/rollback so a resumable upload can drop a half-received chunk
    without losing the checksums of the chunks already stored.
    """

    def __init__(self, directory: Path, name: str | None = None) -> None:
        self.path = directory / (name or uuid.uuid4().hex)
        self._fh: BinaryIO = open(self.path, "w+b")
        self.size = 0
        self._md5 = hashlib.md5()
        self._sha = hashlib.sha256()
        self._saved: tuple[int, hashlib._Hash, hashlib._Hash] | None = None

    def write(self, data: bytes) -> None:
        self._fh.write(data)
        self._md5.update(data)
        self._sha.update(data)
        self.size += len(data)

    def checkpoint(self) -> None:
        """Remember the current size and hashes (start of a chunk)."""
        self._saved = (self.size, self._md5.copy(), self._sha.copy())

    def rollback(self) -> None:
        """Forget everything written since :meth:`checkpoint` (a chunk that did not arrive whole)."""
        if self._saved is None:
            return
        self.size, self._md5, self._sha = self._saved[0], self._saved[1].copy(), self._saved[2].copy()
        self._fh.flush()
        self._fh.truncate(self.size)
        self._fh.seek(self.size)

    def finish(self) -> BlobInfo:
        self._fh.flush()
        self._fh.close()
        return BlobInfo(self.path, self.size, self._md5.hexdigest(), self._sha.hexdigest())

    def discard(self) -> None:
        try:
            self._fh.close()
        finally:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def copy_stream(read: Callable[[int], bytes], length: int, sink: Callable[[bytes], None]) -> int:
    """Copy exactly ``length`` bytes from ``read`` to ``sink`` in 1 MiB pieces.

    Returns the number of bytes copied (less than ``length`` when the peer went away).
    """
    done = 0
    while done < length:
        data = read(min(CHUNK, length - done))
        if not data:
            break
        sink(data)
        done += len(data)
    return done


def empty_blob(directory: Path) -> BlobInfo:
    w = BlobWriter(directory)
    return w.finish()
