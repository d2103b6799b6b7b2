"""Resumable upload sessions (Drive's ``uploadType=resumable`` protocol).

The protocol details the real client depends on: the session start answers exactly 200
with ``Location``; every non-final chunk answers 308 with ``Range: bytes=0-N`` (and no
``Range`` at all while nothing is stored, which makes the client start over); a
``Content-Range: bytes */total`` probe reports progress or the finished file; every chunk
but the last must be a multiple of 256 KiB. Bytes go straight to disk; a chunk that does
not arrive whole is rolled back so the stored prefix stays exact.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from .blobs import BlobInfo
from .blobs import BlobWriter
from .blobs import copy_stream
from .exceptions import ApiError
from .exceptions import invalid

CHUNK_GRANULARITY = 256 * 1024
_RANGE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*$")


@dataclass
class Session:
    id: str
    user: str
    meta: dict
    mime: str | None
    total: int | None
    file_id: str | None  # None: create; else the file whose content is replaced
    add_parents: list[str]
    remove_parents: list[str]
    writer: BlobWriter
    lock: threading.Lock = field(default_factory=threading.Lock)
    result: dict | None = None  # the finished file resource

    @property
    def received(self) -> int:
        return self.writer.size


class ChunkOutcome:
    """What to answer for one PUT: 308 + received bytes, or 200 + file resource."""

    def __init__(self, received: int, resource: dict | None = None) -> None:
        self.received = received
        self.resource = resource


class Sessions:
    """All open upload sessions of one server."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    def open(
        self,
        user: str,
        meta: dict,
        mime: str | None,
        total: int | None,
        file_id: str | None = None,
        add_parents: list[str] | None = None,
        remove_parents: list[str] | None = None,
    ) -> Session:
        sid = "ADPyc" + secrets.token_urlsafe(24)
        s = Session(
            sid, user, meta, mime, total, file_id, add_parents or [], remove_parents or [], BlobWriter(self._dir, sid)
        )
        with self._lock:
            self._sessions[sid] = s
        return s

    def get(self, sid: str) -> Session:
        with self._lock:
            s = self._sessions.get(sid)
        if s is None:
            raise ApiError(404, "notFound", "The requested upload session was not found or has expired.")
        return s

    def close_all(self) -> None:
        with self._lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for s in sessions:
            if s.result is None:
                s.writer.discard()

    def put(
        self,
        s: Session,
        content_range: str | None,
        length: int,
        read: Callable[[int], bytes],
        finalize: Callable[[Session, BlobInfo], dict],
    ) -> ChunkOutcome:
        """Apply one PUT to session ``s``. ``finalize`` turns the finished blob into a file.

        Raises ConnectionAbortedError if the body did not arrive whole (nothing is kept)."""
        with s.lock:
            if content_range is None:  # the whole content in one request
                start, end = 0, length - 1
                total: int | None = length
                probe = False
            else:
                m = _RANGE.match(content_range)
                if not m:
                    raise invalid(f"Invalid Content-Range header: {content_range!r}")
                probe = m.group(1) is None
                total = None if m.group(3) == "*" else int(m.group(3))
                start = int(m.group(1)) if not probe else 0
                end = int(m.group(2)) if not probe else -1
            if s.result is not None:
                _drain(read, length)
                return ChunkOutcome(s.received, s.result)
            if total is not None and s.total is not None and total != s.total:
                raise invalid(f"Content-Range total {total} does not match the declared size {s.total}.")
            total = s.total if total is None else total
            if probe:
                if length:
                    raise invalid("A status query (Content-Range: bytes */N) must have an empty body.")
                if total is not None and s.received == total and total == 0:
                    return self._finish(s, finalize)
                return ChunkOutcome(s.received)
            if end < start - 1 or end - start + 1 != length:
                raise invalid(f"Content-Range {content_range!r} does not match Content-Length {length}.")
            if start > s.received:
                raise invalid(f"Chunk starts at byte {start} but only {s.received} bytes were received.")
            last = total is not None and end + 1 == total
            if total is not None and end + 1 > total:
                raise invalid("Chunk extends past the declared total size.")
            if not last and length % CHUNK_GRANULARITY:
                raise invalid(f"Chunk size {length} is not a multiple of 256 KiB (only the last chunk may be shorter).")
            s.writer.checkpoint()
            skip = s.received - start
            got = copy_stream(read, skip, lambda b: None) if skip else 0
            got += copy_stream(read, length - skip, s.writer.write)
            if got < length:
                s.writer.rollback()
                raise ConnectionAbortedError("upload chunk did not arrive whole")
            if last:
                return self._finish(s, finalize)
            return ChunkOutcome(s.received)

    def _finish(self, s: Session, finalize: Callable[[Session, BlobInfo], dict]) -> ChunkOutcome:
        info = s.writer.finish()
        try:
            s.result = finalize(s, info)
        except BaseException:
            with self._lock:
                self._sessions.pop(s.id, None)
            try:
                info.path.unlink()
            except FileNotFoundError:
                pass
            raise
        return ChunkOutcome(s.received, s.result)


def _drain(read: Callable[[int], bytes], length: int) -> Any:
    return copy_stream(read, length, lambda b: None)
