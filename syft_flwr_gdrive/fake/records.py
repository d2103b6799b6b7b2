"""Records and small pure helpers of the fake Drive: what a file *is*, ids, times, ordering.

Kept apart from :mod:`store` (which holds state and rules) so that the data shapes, the
id and time formats and the ``orderBy`` keys can be read and tested on their own.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from . import query as q
from .exceptions import ApiError
from .exceptions import invalid

FOLDER_MIME = "application/vnd.google-apps.folder"
ROLE_RANK = q.ROLE_RANK
RANK_ROLE = {v: k for k, v in ROLE_RANK.items()}
ANYONE_ID = "anyoneWithLink"
DEFAULT_APP = "default"  # the OAuth app of tokens that name none
ID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
MAX_PROPS = 30  # Drive: at most 30 appProperties (per app) and 30 public properties per file
MAX_PROP_BYTES = 124  # Drive: key + value at most 124 bytes (UTF-8)

CREATE_FIELDS = {
    "name",
    "mimeType",
    "parents",
    "description",
    "appProperties",
    "properties",
    "starred",
    "id",
    "createdTime",
    "modifiedTime",
    "trashed",
    "originalFilename",
    "contentHints",
    "folderColorRgb",
    "copyRequiresWriterPermission",
    "writersCanShare",
    "viewedByMeTime",
    "kind",
    "contentRestrictions",
    "shortcutDetails",
    "inheritedPermissionsDisabled",
}
UPDATE_FIELDS = CREATE_FIELDS - {"id", "createdTime", "parents"}
READ_ONLY = {
    "owners",
    "size",
    "md5Checksum",
    "sha1Checksum",
    "sha256Checksum",
    "version",
    "capabilities",
    "permissions",
    "permissionIds",
    "ownedByMe",
    "webViewLink",
    "webContentLink",
    "iconLink",
    "headRevisionId",
    "quotaBytesUsed",
    "shared",
    "explicitlyTrashed",
    "trashedTime",
    "trashingUser",
    "lastModifyingUser",
    "sharingUser",
    "spaces",
    "hasThumbnail",
    "thumbnailLink",
    "thumbnailVersion",
    "exportLinks",
    "fullFileExtension",
    "fileExtension",
    "modifiedByMe",
    "modifiedByMeTime",
    "isAppAuthorized",
    "teamDriveId",
    "driveId",
    "sharedWithMeTime",
    "viewedByMe",
    "resourceKey",
    "linkShareMetadata",
    "labelInfo",
    "hasAugmentedPermissions",
    "imageMediaMetadata",
    "videoMediaMetadata",
    "clientEncryptionDetails",
    "downloadRestrictions",
    "viewersCanCopyContent",
}


def now() -> float:
    """Wall-clock time rounded to Drive's millisecond resolution."""
    return round(time.time(), 3)


def rfc3339(t: float) -> str:
    d = _dt.datetime.fromtimestamp(t, _dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"


def new_id() -> str:
    """A fresh id shaped like Drive's (33 URL-safe characters starting with '1')."""
    return "1" + "".join(secrets.choice(ID_ALPHABET) for _ in range(32))


def permission_id_for(email: str) -> str:
    """Drive gives each user one stable numeric permission id; derive ours from the email."""
    digest = hashlib.sha256(email.lower().encode()).digest()
    return str(int.from_bytes(digest[:8], "big")).rjust(20, "0")


def display_name(email: str) -> str:
    return email.split("@", 1)[0]


@dataclass
class FileRec:
    """One Drive file or folder (metadata only; content is ``blob`` under ``blobs/``)."""

    id: str
    name: str
    mime_type: str
    owner: str
    parents: list[str]
    created: float
    modified: float
    seq: int  # creation order: stable tie-breaker for sorting and paging
    description: str | None = None
    app_properties: dict[str, dict[str, str]] = field(default_factory=dict)  # OAuth app -> its private properties
    properties: dict[str, str] = field(default_factory=dict)
    starred: bool = False
    explicitly_trashed: bool = False
    trashed_time: float | None = None
    version: int = 1
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None
    blob: str | None = None
    permissions: list[dict[str, str]] = field(default_factory=list)  # direct: id, type, role, emailAddress
    is_root: bool = False
    last_modifier: str | None = None

    @property
    def is_folder(self) -> bool:
        return self.mime_type == FOLDER_MIME


@dataclass
class Change:
    seq: int
    file_id: str
    time: float
    removed_for: list[str] | None = None  # users who lost sight of the file with this change


class Desc:
    """Wraps a sort value so that ascending tuple order sorts it descending."""

    __slots__ = ("v",)

    def __init__(self, v: Any) -> None:
        self.v = v

    def __lt__(self, other: Desc) -> bool:
        return other.v < self.v

    def __gt__(self, other: Desc) -> bool:
        return other.v > self.v

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Desc) and other.v == self.v


ORDER_KEYS = {
    "createdTime": lambda r: r.created,
    "modifiedTime": lambda r: r.modified,
    "modifiedByMeTime": lambda r: r.modified,
    "recency": lambda r: r.modified,
    "viewedByMeTime": lambda r: r.modified,
    "sharedWithMeTime": lambda r: r.created,
    "name": lambda r: r.name.casefold(),
    "name_natural": lambda r: r.name.casefold(),
    "folder": lambda r: 0 if r.is_folder else 1,
    "starred": lambda r: 0 if r.starred else 1,
    "quotaBytesUsed": lambda r: r.size or 0,
}


def parse_order(order_by: str | None) -> list[tuple[str, bool]]:
    """``"createdTime desc,name"`` -> [("createdTime", True), ("name", False)]."""
    out: list[tuple[str, bool]] = []
    for part in (order_by or "").split(","):
        words = part.split()
        if not words:
            continue
        if (
            len(words) > 2
            or words[0] not in ORDER_KEYS
            or (len(words) == 2 and words[1].lower() not in ("asc", "desc"))
        ):
            raise invalid(f"Invalid Value: orderBy {order_by!r}", "orderBy")
        out.append((words[0], len(words) == 2 and words[1].lower() == "desc"))
    return out


def b64(obj: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).decode().rstrip("=")


def unb64(token: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))


def check_fields(meta: dict, allowed: set[str], for_update: bool) -> None:
    for k in meta:
        if k in allowed:
            continue
        if k == "parents" and for_update:
            raise ApiError(
                403,
                "fieldNotWritable",
                "The parents field is not directly writable in update requests. "
                "Use the addParents and removeParents parameters instead.",
            )
        if k in READ_ONLY or k in ("id", "createdTime"):
            raise ApiError(
                403, "fieldNotWritable", f"The resource body includes fields which are not directly writable: {k}"
            )
        raise ApiError(
            400, "badRequest", f"Invalid JSON payload received. Unknown name \"{k}\" at 'resource': Cannot find field."
        )


def check_props(name: str, props: Any, current: dict[str, str]) -> dict[str, str]:
    """Merge a properties patch (``None`` deletes a key) and enforce Drive's limits."""
    if props is None:
        return {}
    if not isinstance(props, dict):
        raise invalid(f"Invalid value for {name}: expected an object")
    out = dict(current)
    for k, v in props.items():
        if v is None:
            out.pop(k, None)
            continue
        if not isinstance(v, str):
            raise invalid(f"Invalid value for {name}[{k!r}]: values must be strings")
        if not k or len(k.encode()) + len(v.encode()) > MAX_PROP_BYTES:
            raise invalid(f"The size of the {name} key and value exceeds {MAX_PROP_BYTES} bytes: {k!r}")
        out[k] = v
    if len(out) > MAX_PROPS:
        raise invalid(f"A file may have at most {MAX_PROPS} {name}, got {len(out)}")
    return out


def time_field(meta: dict, key: str) -> float | None:
    if key not in meta or meta[key] is None:
        return None
    try:
        return round(q.parse_time(str(meta[key])), 3)
    except ValueError:
        raise invalid(f"Invalid value for {key}: {meta[key]!r}") from None
