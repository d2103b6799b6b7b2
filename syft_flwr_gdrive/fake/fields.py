"""Partial responses: the ``fields`` system parameter.

Drive returns only what ``fields`` selects (``nextPageToken,files(id,name,owners(emailAddress))``,
``files/id``, ``*``) and rejects selections of fields that do not exist with
``400 Invalid field selection``. The fake validates against the real v3 schema names, so
a typo in product code fails offline the same way it would against Google.
"""

from __future__ import annotations

from typing import Any
from typing import Optional

from .exceptions import ApiError

Tree = dict[str, Optional["Tree"]]  # name -> subtree; None means "everything below"

_USER = {k: None for k in ("displayName", "emailAddress", "kind", "me", "permissionId", "photoLink")}
_PERMISSION = {
    k: None
    for k in (
        "allowFileDiscovery",
        "deleted",
        "displayName",
        "domain",
        "emailAddress",
        "expirationTime",
        "id",
        "inheritedPermissionsDisabled",
        "kind",
        "pendingOwner",
        "permissionDetails",
        "photoLink",
        "role",
        "teamDrivePermissionDetails",
        "type",
        "view",
    )
}
_FILE: dict[str, Any] = {
    k: None
    for k in (
        "appProperties",
        "capabilities",
        "clientEncryptionDetails",
        "contentHints",
        "contentRestrictions",
        "copyRequiresWriterPermission",
        "createdTime",
        "description",
        "downloadRestrictions",
        "driveId",
        "explicitlyTrashed",
        "exportLinks",
        "fileExtension",
        "folderColorRgb",
        "fullFileExtension",
        "hasAugmentedPermissions",
        "hasThumbnail",
        "headRevisionId",
        "iconLink",
        "id",
        "imageMediaMetadata",
        "inheritedPermissionsDisabled",
        "isAppAuthorized",
        "kind",
        "labelInfo",
        "lastModifyingUser",
        "linkShareMetadata",
        "md5Checksum",
        "mimeType",
        "modifiedByMe",
        "modifiedByMeTime",
        "modifiedTime",
        "name",
        "originalFilename",
        "ownedByMe",
        "owners",
        "parents",
        "permissionIds",
        "permissions",
        "properties",
        "quotaBytesUsed",
        "resourceKey",
        "sha1Checksum",
        "sha256Checksum",
        "shared",
        "sharedWithMeTime",
        "sharingUser",
        "shortcutDetails",
        "size",
        "spaces",
        "starred",
        "teamDriveId",
        "thumbnailLink",
        "thumbnailVersion",
        "trashed",
        "trashedTime",
        "trashingUser",
        "version",
        "videoMediaMetadata",
        "viewedByMe",
        "viewedByMeTime",
        "viewersCanCopyContent",
        "webContentLink",
        "webViewLink",
        "writersCanShare",
    )
}
_FILE.update(owners=_USER, lastModifyingUser=_USER, sharingUser=_USER, trashingUser=_USER, permissions=_PERMISSION)
_CHANGE: dict[str, Any] = {
    k: None
    for k in ("changeType", "drive", "driveId", "fileId", "kind", "removed", "teamDrive", "teamDriveId", "time", "type")
}
_CHANGE["file"] = _FILE

SCHEMAS: dict[str, dict[str, Any]] = {
    "File": _FILE,
    "FileList": {"files": _FILE, "incompleteSearch": None, "kind": None, "nextPageToken": None},
    "Permission": _PERMISSION,
    "PermissionList": {"kind": None, "nextPageToken": None, "permissions": _PERMISSION},
    "Change": _CHANGE,
    "ChangeList": {"changes": _CHANGE, "kind": None, "newStartPageToken": None, "nextPageToken": None},
    "About": {
        k: None
        for k in (
            "appInstalled",
            "canCreateDrives",
            "canCreateTeamDrives",
            "driveThemes",
            "exportFormats",
            "folderColorPalette",
            "importFormats",
            "kind",
            "maxImportSizes",
            "maxUploadSize",
            "storageQuota",
            "teamDriveThemes",
        )
    }
    | {"user": _USER},
    "GeneratedIds": {"ids": None, "kind": None, "space": None},
    "StartPageToken": {"kind": None, "startPageToken": None},
}


def _bad(spec: str, detail: str = "") -> ApiError:
    msg = f"Invalid field selection {detail or spec}"
    return ApiError(400, "invalidParameter", msg, location="fields", locationType="parameter")


def parse(spec: str) -> Tree:
    """Parse a ``fields`` value into a selection tree."""
    pos = 0

    def selectors(depth: int) -> Tree:
        nonlocal pos
        out: Tree = {}
        while True:
            path: list[str] = []
            while pos < len(spec) and spec[pos] == " ":
                pos += 1
            while True:
                start = pos
                while pos < len(spec) and (spec[pos].isalnum() or spec[pos] in "_*"):
                    pos += 1
                name = spec[start:pos]
                if not name:
                    raise _bad(spec)
                path.append(name)
                if pos < len(spec) and spec[pos] == "/":
                    pos += 1
                    continue
                break
            sub: Tree | None = None
            while pos < len(spec) and spec[pos] == " ":
                pos += 1
            if pos < len(spec) and spec[pos] == "(":
                pos += 1
                sub = selectors(depth + 1)
                if pos >= len(spec) or spec[pos] != ")":
                    raise _bad(spec)
                pos += 1
            for name in reversed(path[1:]):
                sub = {name: sub}
            _merge(out, path[0], sub)
            while pos < len(spec) and spec[pos] == " ":
                pos += 1
            if pos < len(spec) and spec[pos] == ",":
                pos += 1
                while pos < len(spec) and spec[pos] == " ":
                    pos += 1
                continue
            if depth == 0 and pos < len(spec):
                raise _bad(spec)
            return out

    spec = spec.strip()
    if not spec:
        raise _bad(spec)
    return selectors(0)


def _merge(tree: Tree, key: str, sub: Tree | None) -> None:
    if key not in tree:
        tree[key] = sub
        return
    cur = tree[key]
    if cur is None or sub is None:
        tree[key] = None
        return
    for k, v in sub.items():
        _merge(cur, k, v)


def validate(tree: Tree, schema: str) -> None:
    """Raise ``400 invalidParameter`` if ``tree`` selects a field ``schema`` does not have."""

    def walk(t: Tree, s: dict | None) -> None:
        if s is None:
            return
        for k, sub in t.items():
            if k == "*":
                continue
            if k not in s:
                raise _bad("", k)
            if sub is not None:
                walk(sub, s[k])

    walk(tree, SCHEMAS[schema])


def apply(obj: Any, tree: Tree | None) -> Any:
    """Keep only the selected parts of ``obj`` (lists are filtered element-wise)."""
    if tree is None:
        return obj
    if isinstance(obj, list):
        return [apply(x, tree) for x in obj]
    if not isinstance(obj, dict):
        return obj
    if "*" in tree:
        star = tree["*"]
        out = {k: apply(v, star) for k, v in obj.items()}
        for k, sub in tree.items():
            if k != "*" and k in obj and sub is not None and star is not None:
                out[k] = apply(obj[k], sub)
        return out
    return {k: apply(obj[k], sub) for k, sub in tree.items() if k in obj}


def select(obj: dict, spec: str | None, schema: str, default: str) -> dict:
    """Apply ``spec`` (or the method's ``default`` field set) to a response object."""
    tree = parse(spec if spec else default)
    validate(tree, schema)
    return apply(obj, tree)


def needs(spec: str | None, default: str, name: str) -> bool:
    """Cheap check whether a (possibly nested) selection mentions ``name`` or ``*``."""
    s = spec or default
    return "*" in s or name in s
