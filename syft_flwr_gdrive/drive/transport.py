"""The Google Drive transport: message files in per-peer outbox folders.

Cost per operation (Drive calls): announce a run 1 per peer, send 1 (multipart create with a
pre-generated id, so a retried create is idempotent; ids are fetched 100 at a
time), poll 1 (one ``files.list`` over everything addressed to me or written
by me, whatever the number of peers or pending messages), read 1 (download by
id), delete 1 batch per 100 files.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any, BinaryIO, ClassVar, Sequence

from syft_flwr_gdrive.config import MAX_EMAIL_LENGTH, ConfigError, Settings
from syft_flwr_gdrive.drive import layout
from syft_flwr_gdrive.drive.api import DriveApi
from syft_flwr_gdrive.drive.ratelimit import QuotaLimiter
from syft_flwr_gdrive.drive.blob_checks import vet_peer_blob
from syft_flwr_gdrive.drive.errors import DriveError, DriveNotFound, DrivePermissionDenied, DriveTooLarge
from syft_flwr_gdrive.transport.contract import Announcement, BlobRefused, Listing, Posting, Routing, TransportError
from syft_flwr_gdrive.transport.segments import Buffer, as_reader

logger = logging.getLogger(__name__)

ID_BATCH = 100
INLINE_MAX = 1536  # bodies up to this size also ride in the file's properties (no download needed)
_LIMITERS: dict[float, QuotaLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def shared_limiter(units_per_min: float | None) -> QuotaLimiter | None:
    """One quota pacer per process (the quota is per user, and a process acts as one user)."""
    if not units_per_min:
        return None
    with _LIMITERS_LOCK:
        return _LIMITERS.setdefault(units_per_min, QuotaLimiter(units_per_min))


class DriveTransport:
    """Transport over one account's Google Drive (or the fake Drive server)."""

    name: ClassVar[str] = "p2p"

    def __init__(self, api: DriveApi, email: str) -> None:
        if len(email) > MAX_EMAIL_LENGTH:  # "sfg_from" + email must fit a 124-byte property
            raise ConfigError(f"{email!r} is longer than {MAX_EMAIL_LENGTH} characters, more than Drive metadata can hold.")
        self.api = api
        self.email = email.lower()
        self._lock = threading.Lock()
        self._ids: list[str] = []
        self._root_id: str | None = None
        self._outboxes: dict[tuple[str, str], str] = {}  # (app, peer) -> folder id
        self._peers: dict[str, list[str]] = {}  # app -> peers it was prepared for
        self._blob_folders: dict[str, str] = {}  # app -> shared blobs folder id
        self._folder_props: dict[str, dict[str, str]] = {}  # outbox folder id -> its properties as last seen
        self._peer_blob_folders: set[tuple[str, str, str]] = set()  # (owner, app, folder id) checked to be owner's blobs folder

    @classmethod
    def from_settings(cls, settings: Settings) -> "DriveTransport":
        """Credentials from settings; the fake Drive (a URL and no credentials) needs none."""
        from syft_flwr_gdrive.drive.auth import load_credentials, verify_account

        uses_fake = bool(settings.drive_url) and not (settings.token_file or settings.service_account_file)
        limiter = shared_limiter(settings.quota_units_per_min)
        if uses_fake:
            api = DriveApi.for_fake(settings.drive_url, settings.email, limiter=limiter)  # type: ignore[arg-type]
        else:
            credentials = load_credentials(
                token_file=settings.token_file,
                service_account_file=settings.service_account_file,
                use_adc=not (settings.token_file or settings.service_account_file),
            )
            api = DriveApi(credentials, base_url=settings.drive_url, limiter=limiter)
        verify_account(api, settings.email)
        return cls(api, settings.email)

    # -- contract -----------------------------------------------------------------------

    def prepare(self, app: str, peers: Sequence[str]) -> None:
        """Find or create my root folder and one outbox per peer, shared read-only with that peer."""
        root = self._root()
        known = self._peers.setdefault(app, [])
        known.extend(p.lower() for p in peers if p.lower() not in known and p.lower() != self.email)
        existing: dict[str, dict[str, Any]] = {}
        for folder in self.api.list_files(layout.outbox_query(app, self.email), fields=layout.FOLDER_FIELDS):
            props = folder.get("properties") or {}
            existing.setdefault(props.get(layout.P_TO, ""), folder)
        for peer in peers:
            peer = peer.lower()
            if peer == self.email:
                continue
            props = layout.outbox_properties(app, peer)
            folder = existing.get(props[layout.P_TO])
            if folder is None:
                folder = self.api.create_folder(
                    layout.outbox_folder_name(app, peer), parent_id=root, properties=props,
                    file_id=self._next_id(),
                )
                folder.setdefault("permissions", [])
            shared = any(
                (p.get("emailAddress") or "").lower() == peer and p.get("role") in ("reader", "writer", "commenter")
                for p in folder.get("permissions") or []
            )
            if not shared:
                self._share(folder["id"], peer)
            self._outboxes[(app, peer)] = folder["id"]
            self._folder_props[folder["id"]] = dict(folder.get("properties") or props)

    def announce_run(self, app: str, run_id: int) -> None:
        """Stamp the run id on each of my outbox folders of ``app`` (one update per peer, once per run)."""
        for (folder_app, _peer), folder_id in list(self._outboxes.items()):
            if folder_app == app:
                self.api.update(folder_id, properties={layout.P_RUN: str(run_id)}, fields="id")

    def publish_keys(self, app: str, keys: dict[str, str]) -> None:
        """Put my public keys on each of my outbox folders of ``app`` (skipped where already there)."""
        wanted = {layout.P_KEY_KX: keys["kx"], layout.P_KEY_SIGN: keys["ks"]}
        for (folder_app, _peer), folder_id in list(self._outboxes.items()):
            if folder_app == app and self._folder_props.get(folder_id, {}) != {**self._folder_props.get(folder_id, {}), **wanted}:
                self.api.update(folder_id, properties=wanted, fields="id")
                self._folder_props.setdefault(folder_id, {}).update(wanted)

    def send(self, routing: Routing, body: Buffer | Sequence[Buffer] | BinaryIO) -> str:
        reader = as_reader(body)
        folder = self._outboxes.get((routing.app, routing.recipient))
        if folder is None:
            self.prepare(routing.app, [routing.recipient])
            folder = self._outboxes[(routing.app, routing.recipient)]
        props = layout.message_properties(routing)
        if reader.size <= INLINE_MAX:
            reader.seek(0)
            props.update(layout.inline_properties(reader.read(reader.size), used=len(props)))
        try:
            created = self._upload(layout.message_file_name(routing), reader, folder, props)
        except DriveError as exc:
            raise TransportError(f"could not send {routing.kind} to {routing.recipient}: {exc}") from exc
        return str(created["id"])

    def put_blob(self, app: str, data: Buffer | BinaryIO) -> str:
        """Upload content once into my blobs folder of ``app``, shared read-only with all its peers."""
        blob_id = uuid.uuid4().hex  # random: the name and properties say nothing about the content
        try:
            created = self._upload(f"blob-{blob_id}.bin", as_reader(data), self._blobs_folder(app), layout.blob_properties(app, blob_id))
        except DriveError as exc:
            raise TransportError(f"could not upload a shared blob: {exc}") from exc
        return str(created["id"])

    def get_blob(self, app: str, locator: str, *, owner: str, size: int, out: BinaryIO) -> int:
        """Download a peer's blob, only once its metadata shows it is ``owner``'s, in its blobs folder, ``size`` bytes."""
        try:
            vet_peer_blob(self.api, locator, owner=owner.lower(), app=app, size=size, trusted_folders=self._peer_blob_folders)
            return self.api.download_to(locator, out, max_bytes=size)
        except (DriveNotFound, DrivePermissionDenied, DriveTooLarge) as exc:
            raise BlobRefused(f"shared blob {locator}: {exc}") from None
        except DriveError as exc:
            raise TransportError(f"could not download shared blob {locator}: {exc}") from exc

    def list_my_blobs(self, app: str) -> list[str]:
        """Blobs of ``app`` I own (left by a crashed run, for instance)."""
        return [str(f["id"]) for f in self.api.list_files(layout.my_blobs_query(app, self.email), fields="id")]

    def poll(self, app: str) -> Listing:
        try:
            files = self.api.list_files(layout.poll_query(app, self.email), fields=layout.LISTING_FIELDS)
        except DriveError as exc:
            raise TransportError(f"could not list messages: {exc}") from exc
        inbound: list[Posting] = []
        outbound: list[Posting] = []
        announcements: list[Announcement] = []
        for f in files:
            owners = f.get("owners") or []
            owner = (owners[0].get("emailAddress") or "").lower() if owners else ""
            if f.get("mimeType") == layout.FOLDER_MIME:
                run = layout.announced_run(f.get("properties"))
                keys = layout.announced_keys(f.get("properties"))
                if (run is not None or keys is not None) and owner != self.email:
                    announcements.append(Announcement(owner, run, keys))
                continue
            posting = Posting(
                handle=str(f["id"]),
                owner=owner,
                routing=layout.routing_from_properties(f.get("properties"), app),
                size=int(f.get("size") or 0),
                name=str(f.get("name") or ""),
                inline=layout.inline_body(f.get("properties")),
            )
            (outbound if owner == self.email else inbound).append(posting)
        return Listing(tuple(inbound), tuple(outbound), tuple(announcements))

    def read_to(self, posting: Posting, out: BinaryIO, *, max_bytes: int | None = None) -> int:
        if max_bytes is not None and posting.size > max_bytes:
            raise TransportError(f"message file {posting.handle} is {posting.size} bytes, over the {max_bytes}-byte limit")
        try:
            return self.api.download_to(posting.handle, out, max_bytes=max_bytes)
        except DriveNotFound as exc:
            raise TransportError(f"message file {posting.handle} is gone") from exc
        except DriveError as exc:
            raise TransportError(f"could not download {posting.handle}: {exc}") from exc

    def read(self, posting: Posting, *, max_bytes: int | None = None) -> bytes:
        try:
            return self.api.download_bytes(posting.handle, max_bytes=max_bytes)
        except DriveNotFound as exc:
            raise TransportError(f"message file {posting.handle} is gone") from exc
        except DriveError as exc:
            raise TransportError(f"could not download {posting.handle}: {exc}") from exc

    def delete(self, handles: Sequence[str]) -> None:
        if not handles:
            return
        results = self.api.delete_many(list(handles), missing_ok=True)
        failed = {h: e for h, e in results.items() if e is not None}
        if failed:
            first = next(iter(failed.values()))
            raise TransportError(f"could not delete {len(failed)} of {len(handles)} file(s): {first}")

    def call_counts(self) -> dict[str, int]:
        return self.api.calls.snapshot()

    def close(self) -> None:
        pass

    # -- housekeeping beyond the contract ------------------------------------------------

    def my_message_files(self) -> list[dict[str, Any]]:
        """Every message file I own, of any app or run (what `clean` removes)."""
        return self.api.list_files(layout.all_my_messages_query(self.email), fields=layout.LISTING_FIELDS)

    # -- internals --------------------------------------------------------------------------

    def _upload(self, name: str, reader: Any, folder: str, props: dict[str, str]) -> dict[str, Any]:
        """One create: a multipart request for small bodies, a chunked resumable upload for big ones."""
        common = dict(parent_id=folder, properties=props, file_id=self._next_id(), mime_type=layout.MESSAGE_MIME, fields="id")
        reader.seek(0)
        if reader.size <= self.api.chunk_size:
            return self.api.upload_bytes(name, reader.read(reader.size), **common)
        return self.api.upload_stream(name, reader, reader.size, **common)

    def _blobs_folder(self, app: str) -> str:
        if app not in self._blob_folders:
            found = self.api.list_files(layout.blobs_folder_query(app, self.email), fields=layout.FOLDER_FIELDS)
            folder = found[0] if found else self.api.create_folder(
                f"{app.replace('/', '_')} shared", parent_id=self._root(),
                properties=layout.blobs_folder_properties(app), file_id=self._next_id(),
            )
            shared = {(p.get("emailAddress") or "").lower() for p in folder.get("permissions") or []}
            for peer in self._peers.get(app, []):
                if peer not in shared:
                    self._share(folder["id"], peer)
            self._blob_folders[app] = str(folder["id"])
        return self._blob_folders[app]

    def _next_id(self) -> str:
        with self._lock:
            if not self._ids:
                self._ids = self.api.generate_ids(ID_BATCH)
            return self._ids.pop()

    def _root(self) -> str:
        if self._root_id is None:
            found = self.api.list_files(layout.root_query(self.email), fields="id", order_by="createdTime")
            if found:
                self._root_id = str(found[0]["id"])
            else:
                created = self.api.create_folder(
                    layout.ROOT_FOLDER_NAME, properties={layout.P_ROLE: "root"}, file_id=self._next_id()
                )
                self._root_id = str(created["id"])
        return self._root_id

    def _share(self, folder_id: str, peer: str) -> None:
        try:
            self.api.share(folder_id, peer, role="reader")
        except DrivePermissionDenied as exc:
            raise TransportError(f"could not share my outbox with {peer}: {exc}") from exc
        except DriveError as exc:
            raise TransportError(
                f"could not share my outbox with {peer} ({exc}). Check that {peer} is a Google account email."
            ) from exc
