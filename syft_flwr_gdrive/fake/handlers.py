"""Drive v3 routes and wire formats, independent of sockets.

:class:`Api` turns a parsed :class:`Request` into a :class:`Response`. The HTTP layer
(``httpd``) feeds it requests read from sockets; the batch route feeds it the inner
requests of a ``multipart/mixed`` body, so both paths share every rule, fault and
quota charge. What the real ``googleapiclient`` relies on is documented at each route.
"""

from __future__ import annotations

import base64
import collections
import functools
import json
import logging
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import BinaryIO

from . import fields as fieldsel
from . import multipart
from . import query as q
from . import strict
from .blobs import BlobInfo
from .blobs import BlobWriter
from .blobs import copy_stream
from .exceptions import ApiError
from .exceptions import error_body
from .exceptions import invalid
from .faults import FaultEngine
from .links import UP
from .records import DEFAULT_APP
from .store import Store
from .uploads import Session
from .uploads import Sessions

log = logging.getLogger(__name__)

JSON_TYPE = "application/json; charset=UTF-8"
MAX_JSON_BODY = 8 * 1024 * 1024

DEFAULT_FIELDS = {
    "File": "kind,id,name,mimeType",
    "FileList": "kind,nextPageToken,incompleteSearch,files(kind,id,name,mimeType)",
    "Permission": "kind,id,type,role",
    "PermissionList": "kind,nextPageToken,permissions(kind,id,type,role)",
    "ChangeList": (
        "kind,nextPageToken,newStartPageToken,"
        "changes(kind,changeType,type,time,removed,fileId,file(kind,id,name,mimeType))"
    ),
    "GeneratedIds": "kind,space,ids",
    "StartPageToken": "kind,startPageToken",
}

REASONS = {
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


def fake_token_for(email: str, app: str | None = None) -> str:
    """The bearer token that means ``email`` to the fake without any registration.

    ``fake:<email>``, percent-encoded where needed (httplib2 mangles header values that
    contain a backslash; ``fake:alice@example.com`` stays readable and valid as is).
    ``app`` names the OAuth app the token belongs to (``fake:<email>#<app>``): like Drive,
    the fake shows ``appProperties`` only to the app that wrote them. Default: one app."""
    token = "fake:" + urllib.parse.quote(email.strip().lower(), safe="@.+-_!$&*=?^`{|}~/")
    if app:
        if not _APP_RE.fullmatch(app):
            raise ValueError(f"app ids are [A-Za-z0-9._-]+, got {app!r}")
        token += "#" + app
    return token


_APP_RE = re.compile(r"[A-Za-z0-9._-]+")


def parse_fake_token(token: str) -> tuple[str, str | None] | None:
    """(email, app) of a ``fake:`` token, or None if it is not one."""
    if not token.startswith("fake:"):
        return None
    body, app = token[5:].strip(), None
    if "#" in body:
        body, app = body.rsplit("#", 1)
        if not _APP_RE.fullmatch(app):
            return None
    email = urllib.parse.unquote(body).lower()
    if not re.fullmatch(r"[^@\s]+@[^@\s]+", email):
        return None
    return email, app


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


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern
    name: str
    handler: Callable[..., Response]  # an Api method, called with (api, request, user, **path parameters)
    cost: str | None  # quota class; None: not charged


def _bounded_int(req: Request, name: str, default: int) -> int:
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


def _json_body(req: Request) -> dict:
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


class Api:
    """Routes, auth, per-call faults and quota, around one :class:`Store`."""

    def __init__(self, store: Store, faults: FaultEngine, strict_tokens: bool = False) -> None:
        self.store = store
        self.faults = faults
        self.strict_tokens = strict_tokens
        self.tokens: dict[str, tuple[str, str | None]] = {}  # registered token -> (email, app)
        self.sessions = Sessions(store.uploads_dir)
        self._stats_lock = threading.Lock()
        self.requests: collections.Counter[str] = collections.Counter()
        self.by_user: collections.Counter[str] = collections.Counter()
        self.statuses: collections.Counter[str] = collections.Counter()
        self.started = time.time()

    # ------------------------------------------------------------------ plumbing

    def match(self, req: Request) -> tuple[Route | None, dict[str, str]]:
        for r in ROUTES:
            if r.method == req.method:
                m = r.pattern.match(req.path)
                if m:
                    return r, m.groupdict()
        return None, {}

    def route_name(self, req: Request) -> str:
        self.normalize(req)
        if req.path.startswith("/_fake/"):
            return "admin"
        r, _ = self.match(req)
        if r is None:
            return "unknown"
        if r.name == "files.get" and req.arg("alt") == "media":
            return "files.download"
        return r.name

    @staticmethod
    def normalize(req: Request) -> None:
        """Undo ``X-HTTP-Method-Override``: the client POSTs long GET URLs with the query as a form body."""
        override = req.headers.pop("x-http-method-override", None)
        if override and req.method == "POST":
            req.method = override.upper()
            if req.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
                form = urllib.parse.parse_qs(req.body.read_all().decode("utf-8"), keep_blank_values=True)
                for k, v in form.items():
                    req.query.setdefault(k, []).extend(v)

    def user_of(self, req: Request, fallback: str | None = None) -> str:
        auth = req.headers.get("authorization", "")
        token = (
            auth[7:].strip()
            if auth.lower().startswith("bearer ")
            else (req.arg("access_token") or req.arg("oauth_token"))
        )
        if not token:
            if fallback:
                return fallback
            raise ApiError(
                401,
                "authError",
                "Request is missing required authentication credential. Expected OAuth 2 access token.",
                location="Authorization",
                locationType="header",
            )
        found = self.tokens.get(token)
        if found is None and not self.strict_tokens:
            found = parse_fake_token(token)
        if found is None:
            raise ApiError(
                401,
                "authError",
                "Request had invalid authentication credentials. Expected OAuth 2 access token.",
                location="Authorization",
                locationType="header",
            )
        email, app = found
        self.store.ensure_user(email, app or DEFAULT_APP)
        return email

    def count(self, key: str, user: str | None, status: int) -> None:
        with self._stats_lock:
            self.requests[key] += 1
            if user:
                self.by_user[user] += 1
            self.statuses[str(status)] += 1

    def stats(self) -> dict:
        with self._stats_lock:
            return {
                "requests": dict(self.requests),
                "by_user": dict(self.by_user),
                "statuses": dict(self.statuses),
                "faults": self.faults.counts(),
                "writes": self.faults.write_counts(),
                "links": self.faults.link_counts(),
                "store": self.store.stats(),
                "uptime": round(time.time() - self.started, 3),
            }

    # ------------------------------------------------------------------ entry points

    def handle(self, req: Request, outer_user: str | None = None) -> Response:
        """Answer one Drive API call (or an admin call); never raises ApiError."""
        user: str | None = None
        name = "unknown"
        try:
            self.normalize(req)
            if req.path.startswith("/_fake/"):
                name = "admin"
                return self.admin(req)
            route, params = self.match(req)
            if route is None:
                raise ApiError(404, "notFound", f"Not Found: {req.method} {req.path}")
            name = self.route_name(req)
            if route.name == "upload.chunk":
                user = None  # the upload URL itself is the credential, as on Drive
            else:
                user = self.user_of(req, outer_user)
            cfg = self.faults.config
            self.store.configure(
                float(cfg.list_lag) if cfg.lag_all else 0.0, bool(cfg.hide_owner_emails), bool(cfg.gmail_dots)
            )
            if user is not None:
                user = self.store.account(user)
            fault = self.faults.call(name) if route.name != "batch" else None
            if fault is not None and not fault.after:
                raise fault.error
            if user is not None and route.cost is not None:
                cost = "download" if name == "files.download" else route.cost
                quota_error = self.faults.charge(user, cost)
                if quota_error is not None:
                    raise quota_error
                if cost == "modify":
                    write_error = self.faults.charge_write(user)
                    if write_error is not None:
                        raise write_error
            resp = route.handler(self, req, user, **params)
            if fault is not None:  # "after": the call took effect, the answer is an error
                resp.close()
                raise fault.error
            return resp
        except ApiError as e:
            return error_response(e)
        except (ConnectionError, TimeoutError, OSError):
            raise
        except Exception as e:  # a bug in the fake: answer like Drive's backend would
            log.exception("fake drive: unhandled error for %s %s", req.method, req.path)
            return error_response(ApiError(500, "backendError", f"Internal error in fake Drive: {e!r}"))
        finally:
            req.headers["x-fake-route"] = name
            if user:
                req.headers["x-fake-user"] = user

    # ------------------------------------------------------------------ admin (not Drive)

    def admin(self, req: Request) -> Response:
        from .faults import FaultConfig

        if req.path.rstrip("/") == "/_fake/faults":
            if req.method == "GET":
                return json_response(self.faults.config.to_dict())
            if req.method in ("POST", "PUT", "PATCH"):
                body = _json_body(req)
                try:
                    data = {**self.faults.config.to_dict(), **body} if req.method == "PATCH" else body
                    self.faults.config = FaultConfig.from_dict(data)
                except (TypeError, ValueError) as e:
                    raise invalid(str(e)) from None
                if body.get("reset_quota") is not None:
                    self.faults.reset_quota()
                return json_response(self.faults.config.to_dict())
        if req.path.rstrip("/") == "/_fake/stats" and req.method == "GET":
            return json_response(self.stats())
        if req.path.rstrip("/") == "/_fake/health" and req.method == "GET":
            return json_response({"ok": True})
        raise ApiError(404, "notFound", f"Not Found: {req.method} {req.path}")

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _select(obj: dict, req: Request, schema: str) -> dict:
        return fieldsel.select(obj, req.arg("fields"), schema, DEFAULT_FIELDS.get(schema, "*"))

    def _file_response(self, resource: dict, req: Request, status: int = 200) -> Response:
        return json_response(self._select(resource, req, "File"), status)

    # ------------------------------------------------------------------ about, ids

    def h_about(self, req: Request, user: str) -> Response:
        spec = req.arg("fields")
        if not spec:
            raise ApiError(
                400,
                "required",
                "The 'fields' parameter is required for this method.",
                location="fields",
                locationType="parameter",
            )
        about = {
            "kind": "drive#about",
            "user": self.store.user_resource(user, user),
            "storageQuota": {"limit": str(15 * 2**30), "usage": "0", "usageInDrive": "0", "usageInDriveTrash": "0"},
            "maxUploadSize": str(5 * 2**40),
            "appInstalled": False,
            "canCreateDrives": False,
            "canCreateTeamDrives": False,
        }
        return json_response(fieldsel.select(about, spec, "About", "*"))

    def h_generate_ids(self, req: Request, user: str) -> Response:
        count = _bounded_int(req, "count", 10)
        space = req.arg("space", "drive") or "drive"
        if space not in ("drive", "appDataFolder"):
            raise invalid(f"Invalid value for space: {space}", "space")
        out = {"kind": "drive#generatedIds", "space": space, "ids": self.store.generate_ids(count)}
        return json_response(self._select(out, req, "GeneratedIds"))

    # ------------------------------------------------------------------ files

    def h_files_list(self, req: Request, user: str) -> Response:
        text = req.arg("q") or ""
        node = q.parse(text) if text.strip() else None
        cfg = self.faults.config
        strict.check_complexity(node, int(cfg.max_query_terms), bool(cfg.reject_mixed_or))
        corpora = req.arg("corpora", "user")
        if corpora not in ("user", "allDrives", "drive", "domain"):
            raise invalid(f"Invalid value for corpora: {corpora}", "corpora")
        page_size = _bounded_int(req, "pageSize", 100)
        spec = req.arg("fields")
        if spec:  # validate before doing the work, like Drive
            fieldsel.validate(fieldsel.parse(spec), "FileList")
        files, token = self.store.list(
            user,
            node,
            req.arg("orderBy"),
            page_size,
            req.arg("pageToken") or None,
            float(self.faults.config.list_lag),
            text,
        )
        out: dict[str, Any] = {"kind": "drive#fileList", "incompleteSearch": False, "files": files}
        if token:
            out["nextPageToken"] = token
        return json_response(self._select(out, req, "FileList"))

    def h_files_create(self, req: Request, user: str) -> Response:
        meta = _json_body(req)
        return self._file_response(self.store.create(user, meta), req)

    def h_files_get(self, req: Request, user: str, id: str) -> Response:
        if req.arg("alt") == "media":
            return self._download(req, user, id)
        if req.arg("alt") not in (None, "json"):
            raise invalid(f"Invalid value for alt: {req.arg('alt')}", "alt")
        return self._file_response(self.store.get(user, id), req)

    def h_files_update(self, req: Request, user: str, id: str) -> Response:
        meta = _json_body(req)
        res = self.store.update(user, id, meta, req.arg_list("addParents"), req.arg_list("removeParents"))
        return self._file_response(res, req)

    def h_files_delete(self, req: Request, user: str, id: str) -> Response:
        self.store.delete(user, id)
        return Response(204, [])

    def _download(self, req: Request, user: str, file_id: str) -> Response:
        """``alt=media``: whole file (200) or one ``Range`` (206), streamed from disk."""
        fh, size, mime, res = self.store.open_content(user, file_id)
        try:
            rng = req.headers.get("range")
            md5_b64 = base64.b64encode(bytes.fromhex(res.get("md5Checksum", ""))).decode()
            headers = [("Content-Type", mime), ("X-Goog-Hash", f"md5={md5_b64}"), ("Accept-Ranges", "bytes")]
            if rng is None:
                return Response(200, headers, stream=(fh, 0, size) if fh else None)
            m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", rng)
            if not m or (m.group(1) == "" and m.group(2) == ""):
                raise invalid(f"Invalid Range header: {rng!r}")
            if m.group(1) == "":  # suffix range: the last N bytes
                n = int(m.group(2))
                first, last = max(0, size - n), size - 1
            else:
                first = int(m.group(1))
                last = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            if size == 0 or first >= size or last < first:
                if fh:
                    fh.close()
                err = ApiError(416, "requestedRangeNotSatisfiable", "Request range not satisfiable")
                return Response(
                    416, [("Content-Type", JSON_TYPE), ("Content-Range", f"bytes */{size}")], err.to_bytes()
                )
            headers.append(("Content-Range", f"bytes {first}-{last}/{size}"))
            assert fh is not None  # a file with bytes in range has a blob
            return Response(206, headers, stream=(fh, first, last - first + 1))
        except BaseException:
            if fh is not None:
                fh.close()
            raise

    # ------------------------------------------------------------------ uploads

    def _stream_to_blob(self, body: Body) -> BlobInfo:
        w = BlobWriter(self.store.uploads_dir)
        try:
            copy_stream(body.read, body.remaining, w.write)
            if body.remaining:
                raise ConnectionAbortedError("upload body did not arrive whole")
            return w.finish()
        except BaseException:
            w.discard()
            raise

    def _read_related(self, req: Request, check: Callable[[dict], object]) -> tuple[dict, BlobInfo, str | None]:
        """Parse a multipart/related upload: JSON metadata, then media streamed to disk."""
        ctype = req.headers.get("content-type", "")
        if not ctype.lower().startswith("multipart/related"):
            raise multipart.bad_request("uploadType=multipart needs a multipart/related body.")
        parser = multipart.StreamingRelated(req.body.read, req.body.remaining, multipart.boundary_of(ctype))
        h1 = parser.next_part()
        if h1 is None:
            raise multipart.bad_request("Multipart upload has no metadata part.")
        raw = parser.read_body(MAX_JSON_BODY)
        try:
            meta = json.loads(raw) if raw.strip() else {}
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ApiError(400, "parseError", f"Invalid JSON payload received. {e}") from None
        if not isinstance(meta, dict):
            raise ApiError(400, "parseError", "Invalid JSON payload received. Expected an object.")
        check(meta)
        h2 = parser.next_part()
        if h2 is None:
            raise multipart.bad_request("Multipart upload has no media part.")
        w = BlobWriter(self.store.uploads_dir)
        try:
            parser.copy_body(w.write)
            parser.drain()
            return meta, w.finish(), h2.get("content-type")
        except BaseException:
            w.discard()
            raise

    def _upload_type(self, req: Request) -> str:
        kind = req.arg("uploadType")
        if kind not in ("media", "multipart", "resumable"):
            raise invalid(
                f"Invalid value for uploadType: {kind!r} (expected media, multipart or resumable)", "uploadType"
            )
        return kind

    def _session_location(self, req: Request, sid: str) -> str:
        query = [(k, v) for k, vs in req.query.items() for v in vs if k != "upload_id"]
        query.append(("upload_id", sid))
        path = req.path.lstrip("/")
        if path.startswith("resumable/"):
            path = path[len("resumable/") :]
        return req.base_url + path + "?" + urllib.parse.urlencode(query)

    def _start_session(self, req: Request, user: str, meta: dict, file_id: str | None) -> Response:
        total_raw = req.headers.get("x-upload-content-length")
        try:
            total = int(total_raw) if total_raw not in (None, "") else None
        except ValueError:
            raise invalid(f"Invalid X-Upload-Content-Length: {total_raw!r}") from None
        s = self.sessions.open(
            user,
            meta,
            req.headers.get("x-upload-content-type"),
            total,
            file_id,
            req.arg_list("addParents"),
            req.arg_list("removeParents"),
        )
        location = self._session_location(req, s.id)
        return Response(200, [("Location", location), ("X-GUploader-UploadID", s.id)])

    def _on_uplink(self, req: Request, user: str) -> None:
        """Read the upload body at ``user``'s uplink rate (``FaultConfig.upload_bytes_per_s``)."""
        req.body.pace = functools.partial(self.faults.pace, user, UP)

    def h_upload_create(self, req: Request, user: str) -> Response:
        self._on_uplink(req, user)
        kind = self._upload_type(req)
        if kind == "resumable":
            meta = _json_body(req)
            self.store.check_create(user, meta)
            return self._start_session(req, user, meta, None)
        if kind == "media":
            self.store.check_create(user, {})
            info = self._stream_to_blob(req.body)
            media_type = req.headers.get("content-type") or "application/octet-stream"
            return self._committed(lambda: self.store.create(user, {}, info, default_mime=media_type), info, req)
        meta, info, mime = self._read_related(req, lambda m: self.store.check_create(user, m))
        return self._committed(lambda: self.store.create(user, meta, info, default_mime=mime), info, req)

    def h_upload_update(self, req: Request, user: str, id: str) -> Response:
        self._on_uplink(req, user)
        kind = self._upload_type(req)
        add, remove = req.arg_list("addParents"), req.arg_list("removeParents")
        if kind == "resumable":
            meta = _json_body(req)
            fid = self.store.check_update(user, id, meta)
            return self._start_session(req, user, meta, fid)
        if kind == "media":
            self.store.check_update(user, id, {})
            info = self._stream_to_blob(req.body)
            mime = req.headers.get("content-type")
            return self._committed(lambda: self.store.update(user, id, {}, add, remove, info, mime), info, req)
        meta, info, mime = self._read_related(req, lambda m: self.store.check_update(user, id, m))
        return self._committed(lambda: self.store.update(user, id, meta, add, remove, info, mime), info, req)

    def _committed(self, commit: Callable[[], dict], info: BlobInfo, req: Request) -> Response:
        try:
            res = commit()
        except BaseException:
            try:
                info.path.unlink()
            except FileNotFoundError:
                pass
            raise
        return self._file_response(res, req)

    def h_upload_chunk(self, req: Request, user: str | None) -> Response:
        sid = req.arg("upload_id")
        if not sid:
            raise ApiError(404, "notFound", "Not Found: PUT without upload_id")
        s = self.sessions.get(sid)
        req.headers["x-fake-user"] = s.user  # stats: chunks count for the session's user
        self._on_uplink(req, s.user)
        length = req.body.remaining

        def finalize(sess: Session, info: BlobInfo) -> dict:
            if sess.file_id is None:
                return self.store.create(sess.user, sess.meta, info, default_mime=sess.mime)
            return self.store.update(
                sess.user, sess.file_id, sess.meta, sess.add_parents, sess.remove_parents, info, sess.mime
            )

        outcome = self.sessions.put(s, req.headers.get("content-range"), length, req.body.read, finalize)
        if outcome.resource is not None:
            return self._file_response(outcome.resource, req)
        headers = [("X-GUploader-UploadID", s.id)]
        if outcome.received > 0:
            headers.append(("Range", f"bytes=0-{outcome.received - 1}"))
        return Response(308, headers)

    # ------------------------------------------------------------------ permissions

    def h_perm_create(self, req: Request, user: str, id: str) -> Response:
        body = _json_body(req)
        perm = self.store.create_permission(
            user,
            id,
            body,
            transfer=req.flag("transferOwnership"),
            workspace_domains=self.faults.config.workspace_domains,
        )
        return json_response(self._select(perm, req, "Permission"))

    def h_perm_list(self, req: Request, user: str, id: str) -> Response:
        out = {"kind": "drive#permissionList", "permissions": self.store.list_permissions(user, id)}
        return json_response(self._select(out, req, "PermissionList"))

    def h_perm_get(self, req: Request, user: str, id: str, pid: str) -> Response:
        return json_response(self._select(self.store.get_permission(user, id, pid), req, "Permission"))

    def h_perm_update(self, req: Request, user: str, id: str, pid: str) -> Response:
        body = _json_body(req)
        return json_response(self._select(self.store.update_permission(user, id, pid, body), req, "Permission"))

    def h_perm_delete(self, req: Request, user: str, id: str, pid: str) -> Response:
        self.store.delete_permission(user, id, pid)
        return Response(204, [])

    # ------------------------------------------------------------------ changes

    def h_start_token(self, req: Request, user: str) -> Response:
        out = {"kind": "drive#startPageToken", "startPageToken": self.store.start_page_token()}
        return json_response(self._select(out, req, "StartPageToken"))

    def h_changes_list(self, req: Request, user: str) -> Response:
        token = req.arg("pageToken")
        if not token:
            raise ApiError(
                400, "required", "Required parameter: pageToken", location="pageToken", locationType="parameter"
            )
        spec = req.arg("fields")
        if spec:
            fieldsel.validate(fieldsel.parse(spec), "ChangeList")
        changes, nxt, new_start = self.store.list_changes(
            user,
            token,
            _bounded_int(req, "pageSize", 100),
            float(self.faults.config.list_lag),
            req.flag("includeRemoved", True),
        )
        out: dict[str, Any] = {"kind": "drive#changeList", "changes": changes}
        if nxt:
            out["nextPageToken"] = nxt
        if new_start:
            out["newStartPageToken"] = new_start
        return json_response(self._select(out, req, "ChangeList"))

    # ------------------------------------------------------------------ batch

    def h_batch(self, req: Request, user: str) -> Response:
        """``multipart/mixed`` of up to 100 calls; each answered as its own HTTP response."""
        body = req.body.read_all(64 * 1024 * 1024)
        inner = multipart.parse_batch(body, req.headers.get("content-type", ""))
        answers: list[multipart.InnerResponse] = []
        for part in inner:
            ireq = Request.build(part.method, part.target, part.headers, Body.of(part.body), req.base_url)
            if ireq.path.startswith(("/upload/", "/resumable/", "/batch", "/_fake/")) or ireq.arg("alt") == "media":
                resp = error_response(
                    invalid("Media uploads, downloads and nested batches are not allowed in a batch request.")
                )
            else:
                resp = self.handle(ireq, outer_user=user)
            self.count(
                f"{ireq.method} {ireq.headers.get('x-fake-route', 'unknown')}",
                ireq.headers.get("x-fake-user"),
                resp.status,
            )
            answers.append(
                multipart.InnerResponse(
                    part.content_id,
                    resp.status,
                    REASONS.get(resp.status, "Unknown"),
                    [(k, v) for k, v in resp.headers if k.lower() != "content-length"],
                    resp.body,
                )
            )
            resp.close()
        data, ctype = multipart.render_batch(answers)
        return Response(200, [("Content-Type", ctype)], data)


# Every route and the Api method that answers it (a table, not names built at run time: find-usages works).
_ID = r"(?P<id>[^/]+)"
_PID = r"(?P<pid>[^/]+)"
_FILES = "/drive/v3/files"
_PERMS = f"{_FILES}/{_ID}/permissions"
_UPLOAD = "(?:/resumable)?/upload/drive/v3/files"


def _route(method: str, path: str, name: str, handler: Callable[..., Response], cost: str | None) -> Route:
    return Route(method, re.compile(f"^{path}$"), name, handler, cost)


ROUTES = [
    _route("GET", "/drive/v3/about/?", "about.get", Api.h_about, "get"),
    _route("GET", f"{_FILES}/generateIds/?", "files.generateIds", Api.h_generate_ids, "get"),
    _route("GET", f"{_FILES}/?", "files.list", Api.h_files_list, "list"),
    _route("POST", f"{_FILES}/?", "files.create", Api.h_files_create, "modify"),
    _route("GET", f"{_PERMS}/?", "permissions.list", Api.h_perm_list, "get"),
    _route("POST", f"{_PERMS}/?", "permissions.create", Api.h_perm_create, "modify"),
    _route("GET", f"{_PERMS}/{_PID}", "permissions.get", Api.h_perm_get, "get"),
    _route("PATCH", f"{_PERMS}/{_PID}", "permissions.update", Api.h_perm_update, "modify"),
    _route("DELETE", f"{_PERMS}/{_PID}", "permissions.delete", Api.h_perm_delete, "modify"),
    _route("GET", f"{_FILES}/{_ID}", "files.get", Api.h_files_get, "get"),
    _route("PATCH", f"{_FILES}/{_ID}", "files.update", Api.h_files_update, "modify"),
    _route("DELETE", f"{_FILES}/{_ID}", "files.delete", Api.h_files_delete, "modify"),
    _route("GET", "/drive/v3/changes/startPageToken/?", "changes.getStartPageToken", Api.h_start_token, "get"),
    _route("GET", "/drive/v3/changes/?", "changes.list", Api.h_changes_list, "list"),
    _route("PUT", f"{_UPLOAD}(?:/[^/]+)?/?", "upload.chunk", Api.h_upload_chunk, None),
    _route("POST", f"{_UPLOAD}/?", "upload.create", Api.h_upload_create, "modify"),
    _route("PATCH", f"{_UPLOAD}/{_ID}", "upload.update", Api.h_upload_update, "modify"),
    _route("POST", "/batch(?:/drive/v3)?/?", "batch", Api.h_batch, None),
]


__all__ = ["Api", "Body", "Request", "Response", "fake_token_for", "error_body"]
