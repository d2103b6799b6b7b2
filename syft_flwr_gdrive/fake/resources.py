"""Wire shapes of Drive resources (File, Permission, User) as one viewer sees them.

The store hands out the *full* resource; the API layer applies ``fields`` afterwards.
Mixed into :class:`store.Store`, whose lock callers already hold.
"""

from __future__ import annotations

import hashlib
from typing import Any

from .access import AccessRules
from .records import ROLE_RANK
from .records import FileRec
from .records import display_name
from .records import permission_id_for
from .records import rfc3339


class Resources(AccessRules):
    """Renders records for a viewer (needs the access rules for roles and capabilities)."""

    hide_emails: bool = False  # strict profile: others' addresses are not visible (User.emailAddress absent)

    def user_resource(self, email: str, viewer: str) -> dict:
        out = {
            "kind": "drive#user",
            "displayName": display_name(email),
            "emailAddress": email,
            "me": email == viewer,
            "permissionId": permission_id_for(email),
        }
        if self.hide_emails and email != viewer:
            del out["emailAddress"]
        return out

    def _permission_resource(self, p: dict, inherited: bool) -> dict:
        out = {
            "kind": "drive#permission",
            "id": p["id"],
            "type": p["type"],
            "role": p["role"],
            "deleted": False,
            "pendingOwner": False,
            "permissionDetails": [{"permissionType": "file", "role": p["role"], "inherited": inherited}],
        }
        if p["type"] == "user":
            out["emailAddress"] = p["emailAddress"]
            out["displayName"] = display_name(p["emailAddress"])
        else:
            out["allowFileDiscovery"] = False
        return out

    def _effective_permissions(self, rec: FileRec) -> list[dict]:
        """Owner, direct, then inherited permissions (one per permission id, strongest role)."""
        owner = {"id": permission_id_for(rec.owner), "type": "user", "role": "owner", "emailAddress": rec.owner}
        found: dict[str, tuple[dict, bool]] = {owner["id"]: (owner, False)}
        for p in rec.permissions:
            found.setdefault(p["id"], (p, False))
        for a in self._ancestors(rec):
            if a.is_root:
                continue
            cands = [{"id": permission_id_for(a.owner), "type": "user", "role": "writer", "emailAddress": a.owner}]
            cands += a.permissions
            for p in cands:
                cur = found.get(p["id"])
                if cur is None or (cur[1] and ROLE_RANK[p["role"]] > ROLE_RANK[cur[0]["role"]]):
                    found[p["id"]] = (p, True)
        return [self._permission_resource(p, inh) for p, inh in found.values()]

    def resource(self, rec: FileRec, viewer: str, memo: dict | None = None) -> dict:
        """The full v3 File resource of ``rec`` as ``viewer`` sees it (``fields`` filters later)."""
        rank = self._role(rec, viewer, memo)
        writer = rank >= ROLE_RANK["writer"]
        owner = rec.owner == viewer
        trashed = self._trashed(rec)
        out: dict[str, Any] = {
            "kind": "drive#file",
            "id": rec.id,
            "name": rec.name,
            "mimeType": rec.mime_type,
            "starred": rec.starred,
            "trashed": trashed,
            "explicitlyTrashed": rec.explicitly_trashed,
            "parents": list(rec.parents),
            "spaces": ["drive"],
            "version": str(rec.version),
            "webViewLink": f"https://drive.google.com/file/d/{rec.id}/view",
            "viewedByMe": owner,
            "createdTime": rfc3339(rec.created),
            "modifiedTime": rfc3339(rec.modified),
            "owners": [self.user_resource(rec.owner, viewer)],
            "lastModifyingUser": self.user_resource(rec.last_modifier or rec.owner, viewer),
            "shared": bool(rec.permissions) or any(a.permissions for a in self._ancestors(rec)),
            "ownedByMe": owner,
            "writersCanShare": True,
            "viewersCanCopyContent": True,
            "copyRequiresWriterPermission": False,
            "capabilities": {
                "canAddChildren": rec.is_folder and writer,
                "canComment": rank >= ROLE_RANK["commenter"],
                "canCopy": not rec.is_folder,
                "canDelete": owner,
                "canDownload": True,
                "canEdit": writer,
                "canListChildren": rec.is_folder,
                "canModifyContent": writer,
                "canReadRevisions": writer,
                "canRemoveChildren": rec.is_folder and writer,
                "canRename": writer,
                "canShare": writer,
                "canTrash": owner,
                "canUntrash": owner,
            },
        }
        if rec.is_root:
            del out["parents"]
        if not rec.is_folder:
            size = rec.size or 0
            out.update(
                size=str(size),
                quotaBytesUsed=str(size if owner else 0),
                headRevisionId=f"0B{rec.id[-10:]}{rec.version}",
            )
            out["md5Checksum"] = rec.md5 or hashlib.md5(b"").hexdigest()
            out["sha256Checksum"] = rec.sha256 or hashlib.sha256(b"").hexdigest()
            out["webContentLink"] = f"https://drive.google.com/uc?id={rec.id}&export=download"
        if rec.description is not None:
            out["description"] = rec.description
        mine = rec.app_properties.get(self._app(viewer))
        if mine:
            out["appProperties"] = dict(mine)  # private to the viewer's OAuth app
        if rec.properties:
            out["properties"] = dict(rec.properties)
        if rec.trashed_time is not None and rec.explicitly_trashed:
            out["trashedTime"] = rfc3339(rec.trashed_time)
        if self._shared_with_me(rec, viewer):
            out["sharedWithMeTime"] = rfc3339(rec.created)
        if writer:
            perms = self._effective_permissions(rec)
            out["permissions"] = perms
            out["permissionIds"] = [p["id"] for p in perms]
        return out
