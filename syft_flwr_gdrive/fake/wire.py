"""The fake's wire types: a request as the routes see it, the answer they give, and Drive's JSON shapes.

Independent of sockets so that the HTTP layer (``httpd``) and the batch route (which feeds the
inner requests of a ``multipart/mixed`` body) build the same :class:`Request` and render the
same :class:`Response`.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import BinaryIO

from .blobs import copy_stream
from .exceptions import ApiError
from .exceptions import invalid

JSON_TYPE = "application/json; charset=UTF-8"
MAX_JSON_BODY = 8 * 1024 * 1024

#: HTTP reason phrases of the statuses the fake answers (Drive's, including its 308)
STATUS_PHRASES = {
    200: "OK",
    201: "Created",
    204: "No Content",
    206: "Partial Content",
    308: "Resume Incomplete",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Payload Too Large",
    416: "Requested range not satisfiable",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Body:
    """A request body read on demand (bounded memory), from a socket or from bytes."""

    def __init__(self, read: Callable[[int], bytes], length: int) -> None:
        self._read = read
        self.length = length
        self.consumed = 0
        #: the uplink the body crosses: given n, waits and returns how many bytes may be read now
        self.pace: Callable[[int], int] | None = None

    @classmethod
    def of(cls, data: bytes) -> Body:
        pos = 0

        def read(n: int) -> bytes:
            nonlocal pos
            out = data[pos : pos + n]
            pos += len(out)
            return out

        return cls(read, len(data))

    @property
    def remaining(self) -> int:
        return self.length - self.consumed

    def read(self, n: int) -> bytes:
        n = min(n, self.remaining)
        if n <= 0:
            return b""
        if self.pace is not None:
            n = self.pace(n)
        data = self._read(n)
        self.consumed += len(data)
        return data

    def read_all(self, limit: int = MAX_JSON_BODY) -> bytes:
        if self.remaining > limit:
            raise ApiError(413, "uploadTooLarge", f"Request body larger than {limit} bytes.")
        parts = []
        while self.remaining > 0:
            data = self.read(self.remaining)
            if not data:
                raise ConnectionAbortedError("client closed the connection mid-body")
            parts.append(data)
        return b"".join(parts)

    def drain(self) -> bool:
        """Read and drop what is left; False if the peer went away first."""
        copy_stream(self.read, self.remaining, lambda b: None)
        return self.remaining == 0


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: Body
    base_url: str  # "http://127.0.0.1:PORT/"

    def arg(self, name: str, default: str | None = None) -> str | None:
        v = self.query.get(name)
        return v[-1] if v else default

    def arg_list(self, name: str) -> list[str]:
        out: list[str] = []
        for v in self.query.get(name, []):
            out.extend(x.strip() for x in v.split(",") if x.strip())
        return out

    def flag(self, name: str, default: bool = False) -> bool:
        v = self.arg(name)
        return default if v is None else v.lower() in ("true", "1", "yes")

    @classmethod
    def build(cls, method: str, target: str, headers: dict[str, str], body: Body, base_url: str) -> Request:
        parts = urllib.parse.urlsplit(target)
        path = urllib.parse.unquote(parts.path)
        query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        return cls(method.upper(), path, query, {k.lower(): v for k, v in headers.items()}, body, base_url)


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    stream: tuple[BinaryIO, int, int] | None = None  # (file, offset, length); the HTTP layer closes it

    @property
    def length(self) -> int:
        return self.stream[2] if self.stream else len(self.body)

    def close(self) -> None:
        if self.stream:
            self.stream[0].close()


def json_response(obj: Any, status: int = 200, extra: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, [("Content-Type", JSON_TYPE)] + (extra or []), json.dumps(obj).encode())


def error_response(e: ApiError) -> Response:
    headers = [("Content-Type", JSON_TYPE)]
    if e.status == 401:
        headers.append(("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/"'))
    return Response(e.status, headers, e.to_bytes())


def bounded_int(req: Request, name: str, default: int) -> int:
    """An integer query parameter in Drive's range [1, 1000] (pageSize, count); refused as Drive refuses it."""
    raw = req.arg(name)
    if raw is None or raw == "":
        return default
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if not 1 <= n <= 1000:
        raise invalid(f"Invalid value '{raw}'. Values must be within the range: [1, 1000]", name)
    return n


def json_body(req: Request) -> dict:
    """The request's JSON object (an empty body is ``{}``); anything else is Drive's 400 ``parseError``."""
    raw = req.body.read_all()
    if not raw.strip():
        return {}
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ApiError(400, "parseError", f"Invalid JSON payload received. {e}") from None
    if not isinstance(obj, dict):
        raise ApiError(400, "parseError", "Invalid JSON payload received. Expected an object.")
    return obj
