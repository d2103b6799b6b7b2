"""The Drive v3 methods: each handler parses one call and renders Drive's answer (moto's ``responses.py``).

:class:`DriveHandlers` holds a handler per route of :mod:`.routes`; the state lives in the
:class:`~.store.Store` (moto's ``models.py``) and the per-request pipeline (auth, faults, quota,
stats) in :class:`~.dispatch.Api`, which is a ``DriveHandlers``. What the real
``googleapiclient`` relies on is documented at each handler.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import urllib.parse
from collections.abc import Callable
from typing import Any

from . import fields as fieldsel
from . import multipart
from . import query as q
from . import strict
from .blobs import BlobInfo
from .blobs import BlobWriter
from .blobs import copy_stream
from .exceptions import ApiError
from .exceptions import invalid
from .faults import FaultEngine
from .links import UP
from .store import Store
from .uploads import Session
from .uploads import Sessions
from .wire import JSON_TYPE
from .wire import MAX_JSON_BODY
from .wire import STATUS_PHRASES
from .wire import Body
from .wire import Request
from .wire import Response
from .wire import bounded_int
from .wire import error_response
from .wire import json_body
from .wire import json_response

#: the fields Drive answers when a call names none, by schema
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


class DriveHandlers:
    """One method per Drive route, called as ``handler(request, user, **path parameters)``."""

    store: Store
    faults: FaultEngine
    sessions: Sessions

    def handle(self, req: Request, outer_user: str | None = None) -> Response:
        """Answer one call through the whole pipeline (the batch route sends its parts there)."""
        raise NotImplementedError

    def count(self, key: str, user: str | None, status: int) -> None:
        """Count one answered call in the stats (a batch counts each of its parts)."""
        raise NotImplementedError

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
        count = bounded_int(req, "count", 10)
        space = req.arg("space", "drive") or "drive"
        if space not in ("drive", "appDataFolder"):
            raise invalid(f"Invalid value for space: {space}", "space")
        out = {"kind": "drive#generatedIds", "space": space, "ids": self.store.generate_ids(count, user)}
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
        page_size = bounded_int(req, "pageSize", 100)
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
        meta = json_body(req)
        return self._file_response(self.store.create(user, meta), req)

    def h_files_get(self, req: Request, user: str, id: str) -> Response:
        if req.arg("alt") == "media":
            return self._download(req, user, id)
        if req.arg("alt") not in (None, "json"):
            raise invalid(f"Invalid value for alt: {req.arg('alt')}", "alt")
        return self._file_response(self.store.get(user, id), req)

    def h_files_update(self, req: Request, user: str, id: str) -> Response:
        meta = json_body(req)
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
        """Count the upload body against ``user``'s daily cap (``FaultConfig.upload_bytes_per_day``), then read
        it at ``user``'s uplink rate (``FaultConfig.upload_bytes_per_s``)."""
        over_cap = self.faults.charge_upload(user, req.body.remaining)
        if over_cap is not None:
            raise over_cap
        req.body.pace = functools.partial(self.faults.pace, user, UP)

    def h_upload_create(self, req: Request, user: str) -> Response:
        self._on_uplink(req, user)
        kind = self._upload_type(req)
        if kind == "resumable":
            meta = json_body(req)
            self.store.check_create(user, meta)
            return self._start_session(req, user, meta, None)
        if kind == "media":
            self.store.check_create(user, {})
            info = self._stream_to_blob(req.body)
            media_type = req.headers.get("content-type") or "application/octet-stream"
            return self._committed(lambda: self.store.create(user, {}, info, default_mime=media_type), info, req)
        limit = int(self.faults.config.multipart_max_bytes)
        if limit and req.body.length > limit:  # Drive: multipart is for small files (5 MB or less)
            raise ApiError(413, "uploadTooLarge", f"Multipart upload bodies are limited to {limit} bytes.")
        meta, info, mime = self._read_related(req, lambda m: self.store.check_create(user, m))
        return self._committed(lambda: self.store.create(user, meta, info, default_mime=mime), info, req)

    def h_upload_update(self, req: Request, user: str, id: str) -> Response:
        self._on_uplink(req, user)
        kind = self._upload_type(req)
        add, remove = req.arg_list("addParents"), req.arg_list("removeParents")
        if kind == "resumable":
            meta = json_body(req)
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
        body = json_body(req)
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
        body = json_body(req)
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
            bounded_int(req, "pageSize", 100),
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
        if req.path.rstrip("/") == "/batch" and not self.faults.config.global_batch:
            raise ApiError(404, "notFound", "Not Found: the global batch endpoint was retired; use /batch/drive/v3")
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
                    STATUS_PHRASES.get(resp.status, "Unknown"),
                    [(k, v) for k, v in resp.headers if k.lower() != "content-length"],
                    resp.body,
                )
            )
            resp.close()
        data, ctype = multipart.render_batch(answers)
        return Response(200, [("Content-Type", ctype)], data)
