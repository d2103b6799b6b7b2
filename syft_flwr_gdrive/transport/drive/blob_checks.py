"""Is the file a peer names as a shared blob really that peer's blob? Decided from metadata, before any download.

A peer's signed message may name any Drive file id. Without these checks it could make
the receiver download one of the receiver's own private files (and learn from the
outcome whether its hash matched), a huge link-shared file, or anybody's file. So a blob
is read only when Drive's own metadata says all of:

* the sender owns it (Drive's ``owners``, which nobody can forge);
* it is a file of this app's blobs (``sfg_blob_app``), not a folder, not trashed;
* its only parent is a folder the sender owns, marked as its blobs folder of this app;
* its size is exactly the size the (signed) message declares, which the caller has
  already held against its message limit.

Kept separate and small on purpose: folder discovery is Drive-layout work that may change,
these rules should not.

A part named in a message before it uploads may end up at another id: Drive refused the reserved
one (expired, not the sender's, or taken by someone else's file, e.g. a peer that read the id
in the message and created a file there first). The sender then stores it at a fresh id in its
blobs folder with ``sfg_part_of`` naming the reserved id; :class:`PartAliases` finds it there by
listing that folder. The file found passes the same checks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from syft_flwr_gdrive.transport.contract import BlobRefused
from syft_flwr_gdrive.transport.drive import layout
from syft_flwr_gdrive.transport.drive.api import DriveApi
from syft_flwr_gdrive.transport.drive.discovery import Discovery
from syft_flwr_gdrive.transport.drive.owners import PeerOwners

BLOB_FIELDS = "id,mimeType,size,trashed,parents,owners(emailAddress,permissionId),properties"
FOLDER_FIELDS = "id,mimeType,trashed,owners(emailAddress,permissionId),properties"


def _owners(meta: dict[str, Any]) -> list[str]:
    return [str(o.get("emailAddress") or "").lower() for o in meta.get("owners") or []]


def _owned_by(meta: dict[str, Any], owner: str, permission_id: str | None) -> bool:
    """Drive says ``owner`` (alone) owns it: by email, or by permission id where Drive hides the email."""
    from syft_flwr_gdrive.base.accounts import same_account

    owners = meta.get("owners") or []
    if len(owners) != 1:
        return False
    email, pid = owners[0].get("emailAddress"), owners[0].get("permissionId")
    if email:
        return same_account(str(email), owner)
    return bool(permission_id) and pid == permission_id


def vet_peer_blob(
    api: DriveApi,
    locator: str,
    *,
    owner: str,
    app: str,
    size: int,
    trusted_folders: set[tuple[str, str, str]],
    owner_permission_id: str | None = None,
) -> None:
    """Raise ``BlobRefused`` unless ``locator`` is ``owner``'s blob of ``app`` of exactly ``size`` bytes.

    Costs one ``files.get``, plus one for the parent folder the first time it is seen
    (remembered in ``trusted_folders``). Drive errors (not found, no access) propagate.
    """
    meta = api.get(locator, fields=BLOB_FIELDS)
    owners = _owners(meta)
    if not _owned_by(meta, owner, owner_permission_id):
        raise BlobRefused(f"file {locator} is owned by {owners or 'nobody visible'}, not by the sender {owner}")
    props = meta.get("properties") or {}
    if (
        meta.get("mimeType") == layout.FOLDER_MIME
        or meta.get("trashed")
        or props.get(layout.P_BLOB_APP) != layout.app_hash(app)
    ):
        raise BlobRefused(f"file {locator} is not a shared blob of this app")
    parents = list(meta.get("parents") or [])
    if len(parents) != 1:
        raise BlobRefused(f"file {locator} is not in exactly one folder (it has {len(parents)})")
    folder_key = (owner, app, str(parents[0]))
    if folder_key not in trusted_folders:
        folder = api.get(str(parents[0]), fields=FOLDER_FIELDS)
        fprops = folder.get("properties") or {}
        if (
            not _owned_by(folder, owner, owner_permission_id)
            or folder.get("mimeType") != layout.FOLDER_MIME
            or folder.get("trashed")
            or fprops.get(layout.P_ROLE) != "blobs"
            or fprops.get(layout.P_BLOB_APP) != layout.app_hash(app)
        ):
            raise BlobRefused(f"file {locator} is not in {owner}'s blobs folder of this app")
        trusted_folders.add(folder_key)
    try:
        stored = int(meta.get("size", ""))  # a missing or odd size is refused below
    except (TypeError, ValueError):
        raise BlobRefused(f"file {locator} has no size in its metadata") from None
    if stored != size:
        raise BlobRefused(f"file {locator} is {stored} bytes, not the {size} its message declares")


class BlobWaits:
    """Sleeps between asking for a reserved blob part that is not there yet: an eighth of the time waited so
    far, at least 0.05 s and at most 1 s, until ``within`` seconds have passed. A part that lands is seen
    within about 12% of its wait (on a fast link parts come every fraction of a second and a fixed backoff
    lost more than that per part), while a long wait on a slow link costs about one ``files.get`` a second."""

    FIRST = 0.05
    LONGEST = 1.0
    SHARE = 1 / 8

    def __init__(self, within: float) -> None:
        self.within = max(0.0, within)
        self._start = time.monotonic()
        self._deadline = self._start + self.within

    def sleep(self) -> bool:
        """Sleep before the next try; False (at once) when the time is up."""
        now = time.monotonic()
        left = self._deadline - now
        if left <= 0:
            return False
        time.sleep(min(max(self.FIRST, (now - self._start) * self.SHARE), self.LONGEST, left))
        return True


ALIAS_AFTER = 2.0  # seconds a part may be missing at its reserved id before its owner's blobs folders are listed
ALIAS_EVERY = 2.0  # ...and again at most this often per part (a folder listing is 100 quota units)
ALIASES_KEPT = 1024  # parts remembered (when each went missing, when its folders were last listed)
ALIAS_FIELDS = "id,mimeType,trashed,owners(emailAddress,permissionId),properties"


class PartAliases:
    """Finds a blob part its owner stored at a fresh id because Drive refused the reserved one."""

    def __init__(
        self,
        api: DriveApi,
        discovery: Discovery,
        owners: PeerOwners,
        trusted_folders: set[tuple[str, str, str]],
        discover: Callable[[str], None],
    ) -> None:
        self.api = api
        self._discovery = discovery
        self._owners = owners
        self._trusted = trusted_folders  # (owner, app, folder) vetted as the owner's blobs folders
        self._discover = discover
        self._missing_since: dict[str, float] = {}
        self._searched: dict[str, float] = {}

    def find(self, app: str, locator: str, owner: str, *, now: bool = False) -> str | None:
        """The id of ``owner``'s file that names ``locator`` in ``sfg_part_of``, if its blobs folders list one.

        Looked for once the part has been missing :data:`ALIAS_AFTER` seconds (``now``: at once, the id
        holds a file that is not the owner's part), then every :data:`ALIAS_EVERY` seconds."""
        t = time.monotonic()
        first = self._missing_since.setdefault(locator, t)
        if (not now and t - first < ALIAS_AFTER) or t - self._searched.get(locator, float("-inf")) < ALIAS_EVERY:
            return None
        self._searched[locator] = t
        self._forget_old()
        folders = self._folders(app, owner)
        if not folders:  # its blobs folder not seen yet (a client's, made for its first reply in parts)
            self._discover(app)
            folders = self._folders(app, owner)
        permission_id = self._owners.permission_ids.get(owner)
        for folder in sorted(folders):
            for f in self.api.list_files(layout.folder_query(folder), fields=ALIAS_FIELDS):
                named = (f.get("properties") or {}).get(layout.P_PART_OF) == locator
                if named and _owned_by(f, owner, permission_id):
                    return str(f["id"])
        return None

    def _folders(self, app: str, owner: str) -> set[str]:
        known = {folder for o, a, folder in self._trusted if o == owner and a == app}
        return known | self._discovery.peer_blob_folders(app, owner)

    def _forget_old(self) -> None:
        while len(self._missing_since) > ALIASES_KEPT:
            self._missing_since.pop(next(iter(self._missing_since)))
        while len(self._searched) > ALIASES_KEPT:
            self._searched.pop(next(iter(self._searched)))
