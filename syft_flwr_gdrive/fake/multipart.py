"""MIME multipart on the wire: streaming ``multipart/related`` uploads and ``multipart/mixed`` batches.

``googleapiclient`` writes multipart bodies with bare LF line endings; other clients use
CRLF. Both are accepted. Upload bodies are parsed as a stream (metadata part in memory,
media part copied straight to disk) so that a large multipart upload never sits in RAM.
The batch answer puts CRLF CRLF between each inner response's headers and body, because
``BatchHttpRequest._deserialize_response`` splits on exactly that.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field

from .blobs import CHUNK
from .exceptions import ApiError

MAX_BATCH_PARTS = 100


def bad_request(message: str) -> ApiError:
    return ApiError(400, "badRequest", message)


def boundary_of(content_type: str) -> str:
    m = re.search(r'boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))', content_type or "", re.I)
    if not m:
        raise bad_request("Missing multipart boundary in Content-Type.")
    return m.group(1) or m.group(2)


def parse_headers(lines: list[bytes]) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw in lines:
        line = raw.decode("latin-1").rstrip("\r\n")
        if not line:
            continue
        if ":" not in line:
            raise bad_request(f"Malformed header line in multipart body: {line[:80]!r}")
        k, v = line.split(":", 1)
        out[k.strip().lower()] = v.strip()
    return out


class StreamingRelated:
    """Reads a ``multipart/related`` upload body part by part from a byte stream."""

    def __init__(self, read: Callable[[int], bytes], length: int, boundary: str) -> None:
        self._read = read
        self._remaining = length
        self._buf = b""
        self._delim = b"\n--" + boundary.encode("latin-1")
        self._first = b"--" + boundary.encode("latin-1")
        self.finished = False
        self._started = False
        self._crlf = True  # line-ending style of the body, taken from its first boundary line

    def _fill(self, want: int) -> bool:
        while len(self._buf) < want and self._remaining > 0:
            data = self._read(min(CHUNK, self._remaining))
            if not data:
                raise ConnectionAbortedError("client closed the connection mid-body")
            self._remaining -= len(data)
            self._buf += data
        return len(self._buf) >= want

    def _readline(self, limit: int = 64 * 1024) -> bytes:
        while True:
            i = self._buf.find(b"\n")
            if i >= 0:
                line, self._buf = self._buf[: i + 1], self._buf[i + 1 :]
                return line
            if len(self._buf) > limit:
                raise bad_request("Multipart header line too long.")
            if not self._fill(len(self._buf) + 1):
                line, self._buf = self._buf, b""
                return line

    def next_part(self) -> dict[str, str] | None:
        """Advance to the next part and return its headers (None after the last part)."""
        if self.finished:
            return None
        if not self._started:
            self._started = True
            while True:  # skip any preamble up to the first boundary line
                line = self._readline()
                if not line:
                    raise bad_request("Multipart body has no boundary line.")
                if line.rstrip(b"\r\n") == self._first:
                    self._crlf = line.endswith(b"\r\n")
                    break
                if line.rstrip(b"\r\n") == self._first + b"--":
                    self.finished = True
                    return None
        lines: list[bytes] = []
        while True:
            line = self._readline()
            if not line:
                raise bad_request("Truncated multipart body.")
            if line in (b"\n", b"\r\n"):
                break
            lines.append(line)
        return parse_headers(lines)

    def copy_body(self, sink: Callable[[bytes], None]) -> None:
        """Copy the current part's body to ``sink`` (bounded memory), stopping at the delimiter."""
        keep = len(self._delim) + 1
        while True:
            i = self._buf.find(self._delim)
            if i >= 0:
                data = self._buf[:i]
                if self._crlf and data.endswith(b"\r"):  # CRLF bodies: the CR belongs to the delimiter
                    data = data[:-1]
                if data:
                    sink(data)
                self._buf = self._buf[i + len(self._delim) :]
                self._fill(2)
                if self._buf.startswith(b"--"):
                    self.finished = True
                    self._buf = b""
                else:  # rest of the delimiter line (transport padding, CRLF)
                    self._readline()
                return
            if len(self._buf) > keep:
                sink(self._buf[:-keep])
                self._buf = self._buf[-keep:]
            if self._remaining <= 0:
                raise bad_request("Multipart body ended without a closing boundary.")
            self._fill(len(self._buf) + CHUNK)

    def read_body(self, limit: int) -> bytes:
        parts: list[bytes] = []
        size = 0

        def sink(b: bytes) -> None:
            nonlocal size
            size += len(b)
            if size > limit:
                raise bad_request("Multipart metadata part too large.")
            parts.append(b)

        self.copy_body(sink)
        return b"".join(parts)

    def drain(self) -> None:
        while self._remaining > 0:
            data = self._read(min(CHUNK, self._remaining))
            if not data:
                break
            self._remaining -= len(data)


# ---------------------------------------------------------------------------- batch


@dataclass
class InnerRequest:
    content_id: str
    method: str
    target: str  # path?query
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class InnerResponse:
    content_id: str
    status: int
    reason: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def _split_head(block: bytes) -> tuple[bytes, bytes]:
    """Split headers from body at the first blank line (LF or CRLF)."""
    m = re.search(rb"\r?\n\r?\n", block)
    if not m:
        return block, b""
    return block[: m.start()], block[m.end() :]


def parse_batch(body: bytes, content_type: str) -> list[InnerRequest]:
    """Parse a ``multipart/mixed`` batch body into its inner HTTP requests."""
    if not content_type.lower().startswith("multipart/mixed"):
        raise bad_request("Batch requests must be multipart/mixed.")
    b = boundary_of(content_type).encode("latin-1")
    chunks = re.split(rb"(?:^|\r?\n)--" + re.escape(b) + rb"(--)?[ \t]*(?:\r?\n|$)", body)
    # re.split with one group interleaves captures: [pre, g, part, g, part, ..., g, epilogue]
    parts: list[bytes] = []
    for i in range(2, len(chunks), 2):
        if chunks[i - 1] == b"--":
            break
        parts.append(chunks[i])
    if len(parts) > MAX_BATCH_PARTS:
        raise bad_request(f"A batch request cannot contain more than {MAX_BATCH_PARTS} requests.")
    if not parts:
        raise bad_request("Batch request has no parts.")
    out: list[InnerRequest] = []
    for n, part in enumerate(parts):
        head, inner = _split_head(part)
        ph = parse_headers(head.splitlines(keepends=True))
        if not ph.get("content-type", "").lower().startswith("application/http"):
            raise bad_request("Each batch part must have Content-Type: application/http.")
        ihead, ibody = _split_head(inner)
        lines = ihead.splitlines(keepends=True)
        if not lines:
            raise bad_request("Empty request in batch part.")
        request_line = lines[0].decode("latin-1").strip().split()
        if len(request_line) < 2:
            raise bad_request(f"Malformed request line in batch part: {lines[0][:80]!r}")
        headers = parse_headers(lines[1:])
        if "content-length" in headers:
            try:
                ibody = ibody[: int(headers["content-length"])]
            except ValueError:
                pass
        out.append(
            InnerRequest(ph.get("content-id", f"<{n + 1}>"), request_line[0].upper(), request_line[1], headers, ibody)
        )
    return out


def response_content_id(request_content_id: str) -> str:
    cid = request_content_id.strip()
    if cid.startswith("<") and cid.endswith(">"):
        cid = cid[1:-1]
    return f"<response-{cid}>"


def render_batch(responses: list[InnerResponse]) -> tuple[bytes, str]:
    """(body, content type) of a batch answer in Drive's format."""
    boundary = "batch_" + secrets.token_hex(12)
    out = bytearray()
    for r in responses:
        content_id = response_content_id(r.content_id)
        out += f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: {content_id}\r\n\r\n".encode()
        out += f"HTTP/1.1 {r.status} {r.reason}\r\n".encode()
        for k, v in r.headers:
            out += f"{k}: {v}\r\n".encode()
        out += f"Content-Length: {len(r.body)}\r\n\r\n".encode()
        out += r.body + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/mixed; boundary={boundary}"
