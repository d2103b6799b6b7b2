"""Sharing: Drive's ``permissions.create/update/list/get/delete`` and Workspace ownership transfer.

Writers share; a user holds one permission id per file (``records.permission_id_for``); the
owner's permission cannot be removed, nor an inherited one from the file itself. Every change of
a permission is a change of the file and of everything under it (their audience changed), and a
permission removed tells those who lost access that the files are gone.

Mixed into :class:`store.Store`. Relies on the store's ``self.lock``: every public method takes it
(``_transfer`` runs with it held by ``create_permission``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from .changes import ChangeFeed
from .exceptions import ApiError
from .exceptions import forbidden
from .exceptions import invalid
from .lag_history import LagHistory
from .records import ANYONE_ID
from .records import ROLE_RANK
from .records import FileRec
from .records import permission_id_for

if TYPE_CHECKING:
    from .faults import FaultEngine


def _permission_not_found(permission_id: str) -> ApiError:
    return ApiError(
        404, "notFound", f"Permission not found: {permission_id}.", location="permissionId", locationType="parameter"
    )


class Permissions(ChangeFeed, LagHistory):
    """Who a file is shared with, and how it changes."""

    _faults: FaultEngine | None  # the live fault config: Drive's sharing limit (charge_share)

    def account(self, email: str) -> str:  # provided by the store
        raise NotImplementedError

    def ensure_user(self, email: str, app: str | None = None) -> str:  # provided by the store
        raise NotImplementedError

    def create_permission(
        self, email: str, file_id: str, body: dict, transfer: bool = False, workspace_domains: Iterable[str] = ()
    ) -> dict:
        """permissions.create: writers share; a user has one permission id per file.

        ``role=owner`` with ``transferOwnership`` moves ownership at once when owner and
        target share a Workspace domain (no acceptance, as in Google Workspace)."""
        with self.lock:
            rec = self._writable(file_id, email)
            if self._faults is not None:  # Drive's sharing limit, besides the write limit
                refused = self._faults.charge_share(email)
                if refused is not None:
                    raise refused
            ptype, role = body.get("type"), body.get("role")
            if ptype not in ("user", "anyone"):
                raise invalid(
                    f"Invalid permission type: {ptype!r} (the fake supports user and anyone)", "permission.type"
                )
            if role == "owner" and ptype == "user" and transfer and rec.owner == email:
                target = self.account(str(body.get("emailAddress") or ""))
                domain = target.rpartition("@")[2]
                if domain and domain in set(workspace_domains) and email.rpartition("@")[2] == domain:
                    return self._transfer(rec, target)
            if role not in ("reader", "commenter", "writer"):
                if role == "owner":
                    raise ApiError(
                        403, "consentRequiredForOwnershipTransfer", "Ownership transfer is not supported by the fake."
                    )
                raise invalid(f"Invalid permission role: {role!r}", "permission.role")
            if ptype == "user":
                target = self.account(str(body.get("emailAddress") or ""))
                if "@" not in target:
                    raise invalid("Permission emailAddress is required for type user.", "permission.emailAddress")
                perm = {"id": permission_id_for(target), "type": "user", "role": role, "emailAddress": target}
                if target == rec.owner:
                    return self._permission_resource({**perm, "role": "owner"}, False)
            else:
                perm = {"id": ANYONE_ID, "type": "anyone", "role": role}
            rec.permissions = [p for p in rec.permissions if p["id"] != perm["id"]] + [perm]
            self._put(rec)
            self._record_change(rec.id)
            for d in self._descendants(rec.id):
                self._record_change(d.id)
            return self._permission_resource(perm, False)

    def _transfer(self, rec: FileRec, target: str) -> dict:
        """Workspace ownership transfer: the target owns ``rec`` now, the old owner keeps writer."""
        self.ensure_user(target)
        self._hist_before(rec.id)
        old = rec.owner
        writer = {"id": permission_id_for(old), "type": "user", "role": "writer", "emailAddress": old}
        rec.permissions = [p for p in rec.permissions if p["id"] not in (writer["id"], permission_id_for(target))] + [
            writer
        ]
        rec.owner = target
        self._put(rec)
        self._hist_after(rec.id)
        self._record_change(rec.id)
        return self._permission_resource(
            {"id": permission_id_for(target), "type": "user", "role": "owner", "emailAddress": target}, False
        )

    def update_permission(self, email: str, file_id: str, permission_id: str, body: dict) -> dict:
        """permissions.update: change the role of a direct permission (writers only)."""
        with self.lock:
            rec = self._writable(file_id, email)
            extra = set(body) - {"role", "kind", "id", "type", "emailAddress"}
            if extra:
                raise ApiError(
                    403,
                    "fieldNotWritable",
                    f"The resource body includes fields which are not directly writable: {sorted(extra)}",
                )
            role = body.get("role")
            if role not in ("reader", "commenter", "writer"):
                raise invalid(f"Invalid permission role: {role!r}", "permission.role")
            mine = [p for p in rec.permissions if p["id"] == permission_id]
            if not mine:
                raise _permission_not_found(permission_id)
            perm = {**mine[0], "role": role}
            rec.permissions = [perm if p["id"] == permission_id else p for p in rec.permissions]
            self._put(rec)
            for r in [rec, *self._descendants(rec.id)]:
                self._record_change(r.id)
            return self._permission_resource(perm, False)

    def list_permissions(self, email: str, file_id: str) -> list[dict]:
        with self.lock:
            rec = self._visible(file_id, email)
            if self._role(rec, email) < ROLE_RANK["writer"]:
                raise forbidden("The user does not have sufficient permissions for this file.")
            return self._effective_permissions(rec)

    def get_permission(self, email: str, file_id: str, permission_id: str) -> dict:
        for p in self.list_permissions(email, file_id):
            if p["id"] == permission_id:
                return p
        raise _permission_not_found(permission_id)

    def delete_permission(self, email: str, file_id: str, permission_id: str) -> None:
        with self.lock:
            rec = self._writable(file_id, email)
            if permission_id == permission_id_for(rec.owner):
                raise ApiError(403, "cannotRemoveOwner", "The owner of a file cannot be removed.")
            mine = [p for p in rec.permissions if p["id"] == permission_id]
            if not mine:
                if any(p["id"] == permission_id for p in self._effective_permissions(rec)):
                    raise ApiError(
                        403, "cannotDeletePermission", "Inherited permissions cannot be removed from the item itself."
                    )
                raise _permission_not_found(permission_id)
            affected = [rec] + self._descendants(rec.id)
            before = {r.id: self._audience(r) for r in affected}
            rec.permissions = [p for p in rec.permissions if p["id"] != permission_id]
            self._put(rec)
            for r in affected:
                self._record_change(r.id, before[r.id] - self._audience(r))
