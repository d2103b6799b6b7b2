"""The fake Drive's state: files, folders, owners, users, ids, blobs; the parts of ``Store`` meet here.

Drive's rules live here, independent of HTTP: who owns what, who may create, edit or delete
files. All state sits behind one lock, ``self.lock`` (an ``RLock``): every public method takes
it, and the mixins' private helpers run with it held. Contents live on disk and are only
*renamed* into place under the lock, never copied.

``Store`` is one object made of parts of one job each, mixed in (they share its state and lock):
``journal.py`` (metadata on disk), ``lag_history.py`` (what lagging listings show),
``changes.py`` (the change log and feed), ``permissions.py`` (sharing), ``file_listing.py``
(``files.list``), ``ground_truth.py`` (what exists, for tests), ``resources.py`` and
``access.py`` (wire shapes, access rules). This module keeps the files themselves: users and
their roots, generated ids, create, get, update, delete and downloads, and the children index.
"""

from __future__ import annotations

import hashlib
import os
import random
import secrets
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import BinaryIO

from . import strict
from .blobs import BlobInfo
from .changes import ChangeFeed
from .exceptions import ApiError
from .exceptions import forbidden
from .exceptions import invalid
from .file_listing import FileListing
from .ground_truth import GroundTruth
from .journal import Journal
from .lag_history import LagHistory
from .permissions import Permissions
from .records import CREATE_FIELDS
from .records import DEFAULT_APP
from .records import FOLDER_MIME
from .records import ROLE_RANK
from .records import UPDATE_FIELDS
from .records import Change
from .records import FileRec
from .records import check_fields
from .records import check_props
from .records import new_id
from .records import now
from .records import time_field
from .reserved import ReservedIds
from .resources import Resources

if TYPE_CHECKING:
    from .faults import FaultEngine


class Store(Permissions, ChangeFeed, FileListing, GroundTruth, Journal, Resources, LagHistory):
    """All of the fake Drive's state. Every public method is thread-safe.

    The state is created here (``__init__``); each part declares the fields it reads as bare
    annotations, and stubs (``raise NotImplementedError``) only for methods this class defines,
    so a stub never hides another part's method in the MRO. A part that calls another inherits it
    (``Permissions`` on ``ChangeFeed`` on ``Journal``), which is why the bases are in this order."""

    def __init__(self, data_dir: os.PathLike | str | None = None, faults: FaultEngine | None = None) -> None:
        self._own_dir = data_dir is None
        self.dir = Path(tempfile.mkdtemp(prefix="fake-gdrive-")) if data_dir is None else Path(data_dir)
        self.blobs_dir = self.dir / "blobs"
        self.uploads_dir = self.dir / "uploads"
        for d in (self.dir, self.blobs_dir, self.uploads_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.lock = threading.RLock()
        self.files: dict[str, FileRec] = {}
        self.children: dict[str, set[str]] = {}
        self.users: dict[str, str] = {}  # email -> id of the user's "My Drive" root folder
        self.generated = ReservedIds()  # ids from files.generateIds not used yet: who asked, when
        self._faults = faults  # the live fault config: the profile's rules the store applies (see rule())
        self.user_apps: dict[str, str] = {}  # email -> OAuth app of the user's token (see ensure_user)
        self.changes: list[Change] = []
        self._change_seqs: list[int] = []
        self.next_change = 1
        self.next_file_seq = 1
        self._journal_path = self.dir / "meta.jsonl"
        self._journal = None
        # strict profile (set from the live fault config on every request, see configure())
        self.lag_window = 0.0  # > 0: list shows each file as it was up to this many seconds ago
        self.hide_emails = False
        self.gmail_dots = False
        self.accounts: dict[str, str] = {}  # gmail key -> the account's registered address form
        self.history: dict[str, list[tuple[float, FileRec | None]]] = {}  # id -> (since, state) while lagging
        self._rng = random.Random()
        self._load()

    def rule(self, name: str, default: Any) -> Any:
        """A live profile setting (``FaultConfig`` field) the store applies; ``default`` without a fault engine."""
        return default if self._faults is None else getattr(self._faults.config, name)

    def configure(self, lag_window: float, hide_emails: bool, gmail_dots: bool) -> None:
        """Apply the strict profile's switches (the fault config is live, so this runs per request)."""
        self.lag_window, self.hide_emails, self.gmail_dots = lag_window, hide_emails, gmail_dots

    def account(self, email: str) -> str:
        """The form Drive reports for the account behind ``email`` (gmail: dots and googlemail ignored)."""
        email = email.strip().lower()
        if not self.gmail_dots:
            return email
        with self.lock:
            return self.accounts.setdefault(strict.gmail_key(email), email)

    # ------------------------------------------------------------------ indexes

    def _link_children(self, rec: FileRec) -> None:
        for p in rec.parents:
            self.children.setdefault(p, set()).add(rec.id)

    def _unlink_children(self, rec: FileRec) -> None:
        for p in rec.parents:
            s = self.children.get(p)
            if s:
                s.discard(rec.id)
                if not s:
                    del self.children[p]

    # ------------------------------------------------------------------ users

    def ensure_user(self, email: str, app: str | None = None) -> str:
        """Register ``email`` on first sight (creating its My Drive root); returns the root id.

        ``app`` is the OAuth app the user's current token belongs to: Drive keeps
        ``appProperties`` private to the app that wrote them."""
        email = self.account(email)
        with self.lock:
            if app is not None:
                self.user_apps[email] = app
            root = self.users.get(email)
            if root is not None:
                return root
            root = new_id()
            t = now()
            rec = FileRec(root, "My Drive", FOLDER_MIME, email, [], t, t, self._take_seq(), is_root=True)
            self.files[root] = rec
            self.users[email] = root
            self._log({"op": "user", "email": email, "root": root})
            self._put(rec)
            return root

    def _app(self, email: str) -> str:
        return self.user_apps.get(email, DEFAULT_APP)

    def _take_seq(self) -> int:
        s = self.next_file_seq
        self.next_file_seq += 1
        return s

    def _check_parent(self, parent_id: str, email: str) -> str:
        pid = self._resolve(parent_id, email)
        prec = self.files.get(pid)
        if prec is None or self._role(prec, email) == 0:
            raise ApiError(
                404, "notFound", f"File not found: {parent_id}.", location="fileId", locationType="parameter"
            )
        if not prec.is_folder:
            raise invalid(f"The specified parent is not a folder: {parent_id}", "parents")
        if self._role(prec, email) < ROLE_RANK["writer"]:
            raise forbidden("The user does not have sufficient permissions for this file's parent folder.")
        return pid

    # ------------------------------------------------------------------ ids

    def generate_ids(self, count: int, email: str = "") -> list[str]:
        """Ids ``email`` may create files at (``reserved.py``: whether others may, and for how long)."""
        with self.lock:
            at = now()
            self.generated.prune(at, float(self.rule("reserved_id_ttl", 0.0)))
            ids = [new_id() for _ in range(count)]
            self.generated.add(ids, email, at)
            self._log({"op": "gen", "ids": ids, "by": email, "at": at})
            return ids

    # ------------------------------------------------------------------ files

    def check_create(self, email: str, meta: dict) -> None:
        """Validate a create before any content is accepted (resumable session start)."""
        with self.lock:
            check_fields(meta, CREATE_FIELDS, False)
            self._prepare_create(email, meta, dry_run=True)

    def _prepare_create(self, email: str, meta: dict, dry_run: bool) -> tuple[str, list[str]]:
        fid = meta.get("id")
        if fid is not None:
            if not isinstance(fid, str):
                raise invalid("The provided file ID is not usable.", "file.id")
            if fid in self.files:
                raise ApiError(409, "duplicate", "A file already exists with the provided ID.")
            self.generated.check(
                fid,
                email,
                now(),
                owned=bool(self.rule("reserved_ids_owned", False)),
                ttl=float(self.rule("reserved_id_ttl", 0.0)),
            )
        parents = meta.get("parents")
        if parents is None:
            parents = ["root"]
        if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
            raise invalid("Invalid value for parents", "parents")
        if len(parents) > 1:
            raise ApiError(403, "cannotAddParent", "Increasing the number of parents is not allowed.")
        resolved = [self._check_parent(p, email) for p in parents]
        if "name" in meta and not isinstance(meta["name"], str):
            raise invalid("Invalid value for name", "name")
        check_props("appProperties", meta.get("appProperties"), {})
        check_props("properties", meta.get("properties"), {})
        time_field(meta, "createdTime")
        time_field(meta, "modifiedTime")
        return fid or new_id(), resolved

    def create(self, email: str, meta: dict, content: BlobInfo | None = None, default_mime: str | None = None) -> dict:
        """files.create: the creator owns the new file, wherever it is placed."""
        with self.lock:
            check_fields(meta, CREATE_FIELDS, False)
            fid, parents = self._prepare_create(email, meta, dry_run=False)
            t = now()
            app_props = check_props("appProperties", meta.get("appProperties"), {})
            mime = (
                meta.get("mimeType")
                or default_mime
                or ("application/octet-stream" if content else "application/octet-stream")
            )
            rec = FileRec(
                id=fid,
                name=name if isinstance(name := meta.get("name"), str) else "Untitled",
                mime_type=mime,
                owner=email,
                parents=parents,
                created=time_field(meta, "createdTime") or t,
                modified=time_field(meta, "modifiedTime") or t,
                seq=self._take_seq(),
                description=meta.get("description"),
                app_properties={self._app(email): app_props} if app_props else {},
                properties=check_props("properties", meta.get("properties"), {}),
                starred=bool(meta.get("starred", False)),
                explicitly_trashed=bool(meta.get("trashed", False)),
                trashed_time=t if meta.get("trashed") else None,
                last_modifier=email,
            )
            if rec.created > t:
                rec.created = t  # Drive does not accept creation times in the future
            if not rec.is_folder:
                self._attach(rec, content)
            elif content is not None and content.size:
                raise invalid("Folders cannot have content.")
            self._hist_before(fid)
            self.files[fid] = rec
            self._link_children(rec)
            if meta.get("id") is not None:
                self.generated.discard(fid)
                self._log({"op": "used", "id": fid})
            self._put(rec)
            self._hist_after(fid)
            self._record_change(fid)
            return self.resource(rec, email)

    def _attach(self, rec: FileRec, content: BlobInfo | None) -> None:
        old = rec.blob
        if content is None:
            rec.size, rec.md5, rec.sha256, rec.blob = (
                0,
                hashlib.md5(b"").hexdigest(),
                hashlib.sha256(b"").hexdigest(),
                None,
            )
        else:
            name = f"{rec.id}.{secrets.token_hex(4)}"
            os.replace(content.path, self.blobs_dir / name)
            rec.size, rec.md5, rec.sha256, rec.blob = content.size, content.md5, content.sha256, name
        if old:
            try:
                os.unlink(self.blobs_dir / old)  # open downloads keep reading the unlinked inode
            except FileNotFoundError:
                pass

    def get(self, email: str, file_id: str) -> dict:
        with self.lock:
            return self.resource(self._visible(file_id, email), email)

    def check_update(self, email: str, file_id: str, meta: dict) -> str:
        """Validate an update before content is accepted; returns the resolved id."""
        with self.lock:
            check_fields(meta, UPDATE_FIELDS, True)
            rec = self._writable(file_id, email)
            if rec.is_folder:
                raise invalid("Folders cannot have content.")
            return rec.id

    def update(
        self,
        email: str,
        file_id: str,
        meta: dict,
        add_parents: Sequence[str] = (),
        remove_parents: Sequence[str] = (),
        content: BlobInfo | None = None,
        default_mime: str | None = None,
    ) -> dict:
        """files.update (PATCH semantics): writers edit, only the owner trashes."""
        with self.lock:
            check_fields(meta, UPDATE_FIELDS, True)
            rec = self._writable(file_id, email)
            if rec.is_root:
                raise forbidden("The root folder cannot be modified.")
            if "trashed" in meta and bool(meta["trashed"]) != rec.explicitly_trashed and rec.owner != email:
                raise forbidden("Only the owner can trash or untrash this file.")
            new_parents = list(rec.parents)
            for p in remove_parents:
                pid = self._resolve(p, email)
                if pid in new_parents:
                    new_parents.remove(pid)
            for p in add_parents:
                pid = self._check_parent(p, email)
                if pid not in new_parents:
                    new_parents.append(pid)
            if len(new_parents) > 1 and len(new_parents) > len(rec.parents):
                raise ApiError(403, "cannotAddParent", "Increasing the number of parents is not allowed.")
            if content is not None and rec.is_folder:
                raise invalid("Folders cannot have content.")
            self._hist_before(rec.id)
            app = self._app(email)
            mine = rec.app_properties.get(app, {})
            app_props = check_props("appProperties", meta["appProperties"], mine) if "appProperties" in meta else mine
            props = (
                check_props("properties", meta["properties"], rec.properties)
                if "properties" in meta
                else rec.properties
            )
            mtime = time_field(meta, "modifiedTime")
            if "name" in meta:
                if not isinstance(meta["name"], str):
                    raise invalid("Invalid value for name", "name")
                rec.name = meta["name"]
            if meta.get("mimeType") and not rec.is_folder:
                rec.mime_type = meta["mimeType"]
            if "description" in meta:
                rec.description = meta["description"]
            if "starred" in meta:
                rec.starred = bool(meta["starred"])
            if "trashed" in meta:
                rec.explicitly_trashed = bool(meta["trashed"])
                rec.trashed_time = now() if rec.explicitly_trashed else None
            rec.app_properties = {
                **{k: v for k, v in rec.app_properties.items() if k != app},
                **({app: app_props} if app_props else {}),
            }
            rec.properties = props
            moved = new_parents != rec.parents
            affected = [rec, *self._descendants(rec.id)] if moved else [rec]
            before = {r.id: self._audience(r) for r in affected} if moved else {}
            if moved:
                self._unlink_children(rec)
                rec.parents = new_parents
                self._link_children(rec)
            if content is not None:
                self._attach(rec, content)
                if default_mime and "mimeType" not in meta and rec.mime_type == "application/octet-stream":
                    rec.mime_type = default_mime
            rec.version += 1
            rec.modified = mtime or now()
            rec.last_modifier = email
            self._put(rec)
            self._hist_after(rec.id)
            if moved:  # users who could only see it through the old parent are told it is gone
                for r in affected:
                    self._record_change(r.id, before[r.id] - self._audience(r))
            else:
                self._record_change(rec.id)
                if rec.is_folder and "trashed" in meta:
                    for d in self._descendants(rec.id):
                        self._record_change(d.id)
            return self.resource(rec, email)

    def delete(self, email: str, file_id: str) -> None:
        """files.delete: owner only; a folder takes the caller's descendants with it, and
        other users' files inside it are left without that parent (as in My Drive)."""
        with self.lock:
            rec = self._visible(file_id, email)
            if rec.owner != email or rec.is_root:
                raise forbidden("The user does not have sufficient permissions for this file.")
            doomed = [rec] + [d for d in self._descendants(rec.id) if d.owner == email]
            ids = {d.id for d in doomed}
            audiences = {d.id: self._audience(d) for d in doomed}
            orphans = [d for d in self._descendants(rec.id) if d.id not in ids and any(p in ids for p in d.parents)]
            orphan_audiences = {o.id: self._audience(o) for o in orphans}
            for d in doomed:
                self._hist_before(d.id)
                self._unlink_children(d)
                del self.files[d.id]
                self._hist_after(d.id)
                self._log({"op": "rm", "id": d.id})
                if d.blob:
                    try:
                        os.unlink(self.blobs_dir / d.blob)
                    except FileNotFoundError:
                        pass
                self._record_change(d.id, audiences[d.id])
            for o in orphans:
                self._unlink_children(o)
                o.parents = [p for p in o.parents if p not in ids]
                self._link_children(o)
                self._put(o)
                lost = orphan_audiences[o.id] - self._audience(o)
                self._record_change(o.id, lost)

    def open_content(self, email: str, file_id: str) -> tuple[BinaryIO | None, int, str, dict]:
        """(open file or None for empty, size, mimeType, resource) for a download.

        The file is opened under the lock and streamed by the caller without it; a
        concurrent update or delete unlinks the old blob but this handle stays valid."""
        with self.lock:
            rec = self._visible(file_id, email)
            if rec.is_folder:
                raise ApiError(
                    403,
                    "fileNotDownloadable",
                    "Only files with binary content can be downloaded. Use Export with Docs Editors files.",
                    location="alt",
                    locationType="parameter",
                )
            fh = open(self.blobs_dir / rec.blob, "rb") if rec.blob else None
            return fh, rec.size or 0, rec.mime_type, self.resource(rec, email)
