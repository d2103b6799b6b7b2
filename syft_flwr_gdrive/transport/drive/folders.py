"""My own folders on Drive: the root, one outbox per (app, peer), the shared blobs folder; their
sharing and the run and keys stamped on them.

Why apart: these folders are found or created once and then known by id (recorded in an
:class:`~.idbook.IdBook` before each create, so a restart inside Drive's list lag finds them by
id, not by search); everything else only reads their ids.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

from syft_flwr_gdrive.base.accounts import canonical_email
from syft_flwr_gdrive.base.accounts import same_account
from syft_flwr_gdrive.transport.contract import TransportError
from syft_flwr_gdrive.transport.drive import layout
from syft_flwr_gdrive.transport.drive.api import DriveApi
from syft_flwr_gdrive.transport.drive.errors import DriveError
from syft_flwr_gdrive.transport.drive.errors import DriveNotFound
from syft_flwr_gdrive.transport.drive.errors import DrivePermissionDenied
from syft_flwr_gdrive.transport.drive.idbook import IdBook
from syft_flwr_gdrive.transport.drive.owners import PeerOwners

logger = logging.getLogger(__name__)


def _created(folder: dict[str, Any]) -> tuple[str, str]:
    """Sort key: oldest first (RFC 3339 strings sort by time), ties by id: the same everywhere."""
    return (str(folder.get("createdTime") or "~"), str(folder.get("id")))


class MyFolders:
    """The folders I own, found or created on first use and then known by id."""

    def __init__(
        self, api: DriveApi, email: str, *, book: IdBook, next_id: Callable[[], str], owners: PeerOwners
    ) -> None:
        self.api = api
        self.email = email
        self._book = book
        self._next_id = next_id
        self._owners = owners  # learns each peer's permission id from my shares with them
        self._root_id: str | None = None
        self.outboxes: dict[tuple[str, str], str] = {}  # (app, peer) -> my primary outbox folder id
        self.my_folders: dict[str, set[str]] = {}  # app -> all my outbox folders (duplicates included)
        self.peers: dict[str, list[str]] = {}  # app -> peers it was prepared for (canonical)
        self.blob_folders: dict[str, str] = {}  # app -> shared blobs folder id
        self.bundle_folders: dict[str, str] = {}  # app -> the folder my bundles go in (bundles enabled)
        self._folder_props: dict[str, dict[str, str]] = {}  # my outbox folder id -> its properties as last seen
        self.folder_peer: dict[str, str] = {}  # my outbox folder id -> the peer it is for

    def prepare(self, app: str, peers: Sequence[str]) -> None:
        """Find or create my root folder and one outbox per peer, shared read-only with that peer.

        Duplicates (a restart inside Drive's list lag, another machine) resolve the same way
        everywhere: the oldest folder is the one I send into; the others stay announced on
        and listed until they are empty, then go.
        """
        root = self.root()
        known = self.peers.setdefault(app, [])
        wanted = [canonical_email(p) for p in peers if canonical_email(p) != self.email]
        known.extend(p for p in wanted if p not in known)
        by_peer: dict[str, list[dict[str, Any]]] = {}
        for folder in self.api.list_files(layout.outbox_query(app), fields=layout.FOLDER_FIELDS):
            peer = self._outbox_peer(folder.get("properties") or {}, known)
            if peer is not None:
                by_peer.setdefault(peer, []).append(folder)
        mine = self.my_folders.setdefault(app, set())
        for peer in wanted:
            key = f"outbox:{layout.app_hash(app)}:{peer}"
            folders = by_peer.get(peer, [])
            recorded = self._book.get(key)
            if recorded and recorded not in {f["id"] for f in folders}:
                found = self._get_mine(recorded, layout.FOLDER_FIELDS)
                if found is not None:
                    folders.append(found)
            if not folders:
                folders = [
                    self._create_folder(
                        key, layout.outbox_folder_name(app, peer), root, layout.outbox_properties(app, peer)
                    )
                ]
            folders.sort(key=_created)
            primary = folders[0]
            self._book.put(key, str(primary["id"]))
            self.outboxes[(app, peer)] = str(primary["id"])
            for folder in folders:
                mine.add(str(folder["id"]))
                self.folder_peer[str(folder["id"])] = peer
                self._folder_props[str(folder["id"])] = dict(
                    folder.get("properties") or layout.outbox_properties(app, peer)
                )
            self._ensure_shared(primary, peer)
            for extra in folders[1:]:
                self._retire_extra(app, extra)

    def announce_run(self, app: str, run_id: int, heads: Callable[[str], dict[str, str]]) -> None:
        """Stamp the run id on each of my outbox folders of ``app`` (duplicates too: peers read them all), with
        where my bundles are and ``heads(peer)``: the ids of my next files (one write per folder either way)."""
        props = {layout.P_RUN: str(run_id)}
        if app in self.bundle_folders:  # in the same update: a peer that sees the run sees where its bundles are
            props[layout.P_BUNDLES] = self.bundle_folders[app]
        for folder_id in sorted(self.my_folders.get(app, ())):
            stamp = {**props, **heads(self.folder_peer.get(folder_id, ""))}
            self.api.update(folder_id, properties=stamp, fields="id")
            self._folder_props.setdefault(folder_id, {}).update(stamp)

    def publish_keys(self, app: str, keys: dict[str, str], heads: Callable[[str], dict[str, str]] | None) -> None:
        """Put my public keys on each of my outbox folders of ``app``, skipped where already there unless
        ``heads`` is given: then with ``heads(peer)``, the ids of my next files, always (a client's start)."""
        wanted = {layout.P_KEY_KX: keys["kx"], layout.P_KEY_SIGN: keys["ks"]}
        for folder_id in sorted(self.my_folders.get(app, ())):
            props = self._folder_props.get(folder_id, {})
            if heads is None and props == {**props, **wanted}:
                continue
            stamp = {**wanted, **(heads(self.folder_peer.get(folder_id, "")) if heads is not None else {})}
            self.api.update(folder_id, properties=stamp, fields="id")
            self._folder_props.setdefault(folder_id, {}).update(stamp)

    def stamp_heads(self, app: str, peer: str, heads: dict[str, str]) -> None:
        """Stamp ``heads`` (the ids of my next files) on my outbox folders of ``app`` to ``peer``: one write."""
        for folder_id in sorted(f for f in self.my_folders.get(app, ()) if self.folder_peer.get(f) == peer):
            self.api.update(folder_id, properties=heads, fields="id")
            self._folder_props.setdefault(folder_id, {}).update(heads)

    def enable_bundles(self, app: str) -> None:
        """Send bundles of ``app`` into my shared blobs folder (created and shared with the peers now)."""
        self.bundle_folders[app] = self.blobs_folder(app)

    def blobs_folder(self, app: str) -> str:
        """My folder of ``app``'s blobs (and bundles), shared read-only with all its peers."""
        if app not in self.blob_folders:
            key = f"blobs:{layout.app_hash(app)}"
            recorded = self._book.get(key)
            folder = self._get_mine(recorded, layout.FOLDER_FIELDS) if recorded else None
            if folder is None:
                found = self.api.list_files(
                    layout.blobs_folder_query(app), fields=layout.FOLDER_FIELDS, order_by="createdTime"
                )
                folder = (
                    found[0]
                    if found
                    else self._create_folder(
                        key, f"{app.replace('/', '_')} shared", self.root(), layout.blobs_folder_properties(app)
                    )
                )
            self._book.put(key, str(folder["id"]))
            shared = [p.get("emailAddress") or "" for p in folder.get("permissions") or []]
            for peer in self.peers.get(app, []):
                if not any(same_account(s, peer) for s in shared):
                    self._share(folder["id"], peer)
            self.blob_folders[app] = str(folder["id"])
        return self.blob_folders[app]

    def root(self) -> str:
        """My root folder's id: recorded, else the oldest one Drive lists, else a new one."""
        if self._root_id is None:
            recorded = self._book.get("root")
            if recorded and self._get_mine(recorded, "id") is not None:
                self._root_id = recorded
                return recorded
            found = self.api.list_files(layout.root_query(), fields="id", order_by="createdTime")
            if found:
                self._root_id = str(found[0]["id"])
            else:
                self._root_id = str(
                    self._create_folder("root", layout.ROOT_FOLDER_NAME, None, {layout.P_ROLE: "root"})["id"]
                )
            self._book.put("root", self._root_id)
        return self._root_id

    def _outbox_peer(self, props: dict[str, Any], peers: Sequence[str]) -> str | None:
        """Which of ``peers`` one of my outbox folders is for."""
        to_email = props.get(layout.P_TO_EMAIL)
        for peer in peers:
            if to_email and canonical_email(str(to_email)) == peer:
                return peer
            if not to_email and props.get(layout.P_TO) == str(layout.node_id_for(peer)):
                return peer
        return None

    def _ensure_shared(self, folder: dict[str, Any], peer: str) -> None:
        """Share ``folder`` read-only with ``peer`` unless done; learn the peer's permission id either way."""
        for perm in folder.get("permissions") or []:
            if same_account(perm.get("emailAddress") or "", peer) and perm.get("role") in (
                "reader",
                "writer",
                "commenter",
            ):
                if perm.get("id"):
                    self._owners.permission_ids[peer] = str(perm["id"])
                return
        created = self._share(str(folder["id"]), peer)
        if created.get("id"):
            self._owners.permission_ids[peer] = str(created["id"])

    def _retire_extra(self, app: str, folder: dict[str, Any]) -> None:
        """A duplicate outbox: delete it once empty (its messages are still listed and cleaned meanwhile)."""
        try:
            if self.api.list_files(layout.parents_query([str(folder["id"])]), fields="id", page_size=1):
                return
            self.api.delete(str(folder["id"]), missing_ok=True)
        except DriveError as exc:
            logger.info("could not remove duplicate outbox %s yet (%s)", folder.get("id"), exc)
            return
        self.my_folders.get(app, set()).discard(str(folder["id"]))
        logger.info("removed duplicate outbox folder %s (the oldest one is kept)", folder.get("id"))

    def _get_mine(self, file_id: str, fields: str) -> dict[str, Any] | None:
        """A folder I recorded, fetched by id (consistent, unlike search); None if gone or trashed."""
        try:
            found = self.api.get(file_id, fields=fields + ",trashed")
        except DriveNotFound:
            return None
        return None if found.get("trashed") else found

    def _create_folder(self, key: str, name: str, parent: str | None, props: dict[str, str]) -> dict[str, Any]:
        """Create a folder with an id recorded beforehand (so a restart finds it by id, not by search)."""
        file_id = self._book.get(key)
        if file_id is None or self._get_mine(file_id, "id") is not None:
            file_id = self._next_id()
            self._book.put(key, file_id)
        try:
            return self.api.create_folder(
                name, parent_id=parent, properties=props, file_id=file_id, fields=layout.FOLDER_FIELDS
            )
        except DriveError as exc:
            if exc.status != 400:
                raise
            file_id = self._next_id()  # Drive no longer accepts the recorded id: take a fresh one
            self._book.put(key, file_id)
            return self.api.create_folder(
                name, parent_id=parent, properties=props, file_id=file_id, fields=layout.FOLDER_FIELDS
            )

    def _share(self, folder_id: str, peer: str) -> dict[str, Any]:
        try:
            return self.api.share(folder_id, peer, role="reader")
        except DrivePermissionDenied as exc:
            raise TransportError(f"could not share my outbox with {peer}: {exc}") from exc
        except DriveError as exc:
            raise TransportError(
                f"could not share my outbox with {peer} ({exc}). Check that {peer} is a Google account email."
            ) from exc
