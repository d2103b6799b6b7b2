"""A message body as a list of buffers, read like one file without joining them.

Joining a 1 GiB model's pieces into one ``bytes`` would double peak memory;
this reader hands out chunks straight from the pieces (memoryviews, no copy).
"""

from __future__ import annotations

import bisect
import io
import threading
from collections.abc import Sequence
from typing import BinaryIO
from typing import cast

Buffer = bytes | bytearray | memoryview


class SeekableReader(io.RawIOBase):
    """Base of the read-only, seekable streams here: subclasses set ``size`` and implement ``readinto``."""

    size: int = 0
    _pos: int = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _place(self, sizes: Sequence[int]) -> None:
        """Lay pieces of these sizes end to end: each one's start offset (``_starts``), the total ``size``."""
        self._starts: list[int] = []
        total = 0
        for n in sizes:
            self._starts.append(total)
            total += n
        self.size = total
        self._pos = 0


class SegmentReader(SeekableReader):
    """Seekable, read-only stream over a sequence of buffers."""

    def __init__(self, segments: Sequence[Buffer]) -> None:
        super().__init__()
        self._segments = [memoryview(s).cast("B") for s in segments if len(s)]
        self._place([len(seg) for seg in self._segments])

    # typeshed's RawIOBase.readinto takes a WriteableBuffer; ours takes any buffer memoryview can cast
    def readinto(self, buffer: Buffer) -> int:  # type: ignore[override]
        out = memoryview(buffer).cast("B")
        written = 0
        while written < len(out) and self._pos < self.size:
            index = self._segment_at(self._pos)
            seg = self._segments[index]
            inner = self._pos - self._starts[index]
            n = min(len(seg) - inner, len(out) - written)
            out[written : written + n] = seg[inner : inner + n]
            written += n
            self._pos += n
        return written

    def view(self, pos: int, n: int) -> memoryview | None:
        """The ``n`` bytes at ``pos`` without a copy if one segment holds them all (else None)."""
        if n <= 0 or pos < 0 or pos + n > self.size:
            return None
        index = self._segment_at(pos)
        inner = pos - self._starts[index]
        seg = self._segments[index]
        return seg[inner : inner + n] if inner + n <= len(seg) else None

    def _segment_at(self, pos: int) -> int:
        lo, hi = 0, len(self._starts) - 1
        while lo < hi:  # last segment whose start <= pos
            mid = (lo + hi + 1) // 2
            if self._starts[mid] <= pos:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def read_all(self) -> bytes:
        """Everything as one bytes object (only for small bodies)."""
        self._pos = self.size
        return b"".join(bytes(s) for s in self._segments)


def as_segments(body: Buffer | Sequence[Buffer]) -> list[Buffer]:
    """Accept one buffer or a sequence of them."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        return [body]
    return list(body)


class ReadAbandoned(RuntimeError):
    """A read from a stream whose consumer was told to stop."""


class WindowReader(SeekableReader):
    """Bytes ``[start, start + size)`` of another seekable reader, as a reader of their own (a blob's part).

    Once ``stop`` is set, reads raise ``ReadAbandoned``: an upload reading from it ends at its next chunk
    (not an ``OSError``, so no retry policy takes it for a network fault)."""

    def __init__(self, base: io.RawIOBase, start: int, size: int, *, stop: threading.Event | None = None) -> None:
        super().__init__()
        self._base, self._start, self._stop = base, start, stop
        self.size = size

    def readinto(self, buffer: Buffer) -> int:  # type: ignore[override]
        if self._stop is not None and self._stop.is_set():
            raise ReadAbandoned("the upload was abandoned (its process is stopping)")
        out = memoryview(buffer).cast("B")
        n = min(len(out), self.size - self._pos)
        if n <= 0:
            return 0
        self._base.seek(self._start + self._pos)
        got = self._base.readinto(out[:n]) or 0
        self._pos += got
        return got


class ConcatReader(SeekableReader):
    """Seekable stream over parts that are themselves seekable sized readers (e.g. a header and a sealed payload)."""

    def __init__(self, parts: Sequence[SeekableReader]) -> None:
        super().__init__()
        self._parts = list(parts)
        self._place([part.size for part in self._parts])

    # typeshed's RawIOBase.readinto takes a WriteableBuffer; ours takes any buffer memoryview can cast
    def readinto(self, buffer: Buffer) -> int:  # type: ignore[override]
        out = memoryview(buffer).cast("B")
        written = 0
        while written < len(out) and self._pos < self.size:
            index = max(i for i, start in enumerate(self._starts) if start <= self._pos)
            part = self._parts[index]
            part.seek(self._pos - self._starts[index])
            n = part.readinto(out[written:])
            if not n:
                break
            written += n
            self._pos += n
        return written

    def read_all(self) -> bytes:
        self.seek(0)
        return self.read(self.size)

    def close(self) -> None:
        """Close the parts too (a sealed payload's part holds a temporary file)."""
        for part in self._parts:
            part.close()
        super().close()


def as_reader(body: Buffer | Sequence[Buffer] | BinaryIO | io.RawIOBase) -> SeekableReader:
    """A seekable reader with ``.size`` for a buffer, buffers, or such a reader."""
    if isinstance(body, SeekableReader):
        return body
    if hasattr(body, "readinto") and hasattr(body, "size"):  # a sized reader of another kind
        return cast(SeekableReader, body)
    return SegmentReader(as_segments(cast("Buffer | Sequence[Buffer]", body)))


def as_binary(reader: io.RawIOBase) -> BinaryIO:
    """One of the readers here where a binary file is expected: it has every method the package calls on one,
    but typeshed does not count a RawIOBase as a BinaryIO."""
    return cast(BinaryIO, reader)


class ChunkReader(SeekableReader):
    """Seekable reader over buffers appended one by one (e.g. decrypted chunks), handing big reads over.

    A read of at least ``release_at`` bytes (a model's array) is assembled from the chunks
    while dropping each chunk it has copied, so memory holds the payload once, not twice;
    the reader cannot seek back before such a read afterwards. Smaller reads keep everything.
    """

    def __init__(self, release_at: int = 4 * 1024 * 1024) -> None:
        super().__init__()
        self._chunks: list[Buffer | None] = []
        self._starts: list[int] = []
        self._released = 0  # bytes before this offset were handed over and dropped
        self._release_at = release_at
        self.size = 0
        self._pos = 0

    def append(self, chunk: Buffer) -> None:
        if len(chunk):
            self._starts.append(self.size)
            self._chunks.append(chunk)
            self.size += len(chunk)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        before = self._pos
        pos = super().seek(offset, whence)
        if pos < self._released:
            self._pos = before
            raise io.UnsupportedOperation(f"bytes before {self._released} were already handed out and dropped")
        return pos

    def read(self, size: int | None = -1) -> bytes:
        n = self.size - self._pos if size is None or size < 0 else min(size, self.size - self._pos)
        if n <= 0:
            return b""
        release = n >= self._release_at
        index = self._chunk_at(self._pos)
        first = self._chunks[index]
        if isinstance(first, bytes) and self._starts[index] == self._pos and len(first) == n:
            self._pos += n  # exactly one whole chunk: hand it over as is
            if release:
                self._chunks[index], self._released = None, self._pos
            return first
        out = io.BytesIO()  # getvalue() hands over its buffer without a copy
        end = self._pos + n
        while self._pos < end:
            chunk = self._chunks[index]
            assert chunk is not None
            start = self._starts[index]
            piece = memoryview(chunk).cast("B")[self._pos - start : min(len(chunk), end - start)]
            out.write(piece)
            self._pos += len(piece)
            if release and self._pos == start + len(chunk):
                self._chunks[index], self._released = None, self._pos
            index += 1
        return out.getvalue()

    # typeshed's RawIOBase.readinto takes a WriteableBuffer; ours takes any buffer memoryview can cast
    def readinto(self, buffer: Buffer) -> int:  # type: ignore[override]
        data = self.read(len(memoryview(buffer)))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)

    def _chunk_at(self, pos: int) -> int:
        return max(0, bisect.bisect_right(self._starts, pos) - 1)

    def close(self) -> None:
        self._chunks = []
        super().close()
