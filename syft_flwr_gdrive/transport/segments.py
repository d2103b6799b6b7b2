"""A message body as a list of buffers, read like one file without joining them.

Joining a 1 GiB model's pieces into one ``bytes`` would double peak memory;
this reader hands out chunks straight from the pieces (memoryviews, no copy).
"""

from __future__ import annotations

import io
from typing import Sequence, Union

Buffer = Union[bytes, bytearray, memoryview]


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


class SegmentReader(SeekableReader):
    """Seekable, read-only stream over a sequence of buffers."""

    def __init__(self, segments: Sequence[Buffer]) -> None:
        super().__init__()
        self._segments = [memoryview(s).cast("B") for s in segments if len(s)]
        self._starts: list[int] = []
        total = 0
        for seg in self._segments:
            self._starts.append(total)
            total += len(seg)
        self.size = total
        self._pos = 0

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


def as_segments(body: Union[Buffer, Sequence[Buffer]]) -> list[Buffer]:
    """Accept one buffer or a sequence of them."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        return [body]
    return list(body)


class ConcatReader(SeekableReader):
    """Seekable stream over parts that are themselves seekable sized readers (e.g. a header and a sealed payload)."""

    def __init__(self, parts: Sequence[io.RawIOBase]) -> None:
        super().__init__()
        self._parts = list(parts)
        self._starts = []
        total = 0
        for part in self._parts:
            self._starts.append(total)
            total += part.size  # type: ignore[attr-defined]
        self.size = total
        self._pos = 0

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


def as_reader(body: Union[Buffer, Sequence[Buffer], io.RawIOBase]) -> io.RawIOBase:
    """A seekable reader with ``.size`` for a buffer, buffers, or such a reader."""
    if hasattr(body, "readinto") and hasattr(body, "size"):
        return body  # type: ignore[return-value]
    return SegmentReader(as_segments(body))  # type: ignore[arg-type]
