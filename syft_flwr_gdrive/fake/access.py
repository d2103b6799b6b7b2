"""Drive's access rules: who can see, edit and delete what.

A user sees a file if they own it or hold a permission on it or on any ancestor folder
(``anyone`` permissions count for everybody); the owner of a folder may edit what others
put in it; only a file's owner deletes or trashes it. Invisible files answer 404, never
403, as on Drive. Mixed into :class:`store.Store`, whose lock callers already hold.
"""

from __future__ import annotations

from .exceptions import forbidden
from .exceptions import not_found
from .records import ROLE_RANK
from .records import FileRec


class AccessRules:
    """Role and visibility computations over ``self.files`` (provided by the store)."""

    files: dict[str, FileRec]
    children: dict[str, set[str]]
    users: dict[str, str]

    def _app(self, email: str) -> str:  # provided by the store
        raise NotImplementedError

    @staticmethod
    def _direct_rank(rec: FileRec, email: str) -> int:
        best = 0
        for p in rec.permissions:
            if p["type"] == "anyone" or (p["type"] == "user" and p.get("emailAddress") == email):
                best = max(best, ROLE_RANK[p["role"]])
        return best

    def _inherited_rank(self, folder_id: str, email: str, memo: dict) -> int:
        """Role a child inherits from ``folder_id``: the folder's owner edits its children."""
        if folder_id in memo:
            return memo[folder_id]
        memo[folder_id] = 0  # guards against cycles
        f = self.files.get(folder_id)
        if f is None:
            return 0
        r = ROLE_RANK["writer"] if f.owner == email else self._direct_rank(f, email)
        for p in f.parents:
            if r >= ROLE_RANK["writer"]:
                break
            r = max(r, self._inherited_rank(p, email, memo))
        memo[folder_id] = r
        return r

    def _role(self, rec: FileRec, email: str, memo: dict | None = None) -> int:
        """0 (no access) .. 4 (owner) for ``email`` on ``rec``."""
        if rec.owner == email:
            return ROLE_RANK["owner"]
        if rec.is_root:
            return 0
        memo = {} if memo is None else memo
        r = self._direct_rank(rec, email)
        for p in rec.parents:
            r = max(r, self._inherited_rank(p, email, memo))
        return r

    def _trashed(self, rec: FileRec) -> bool:
        seen: set[str] = set()
        stack = [rec]
        while stack:
            r = stack.pop()
            if r.explicitly_trashed:
                return True
            for p in r.parents:
                if p not in seen and p in self.files:
                    seen.add(p)
                    stack.append(self.files[p])
        return False

    def _ancestors(self, rec: FileRec) -> list[FileRec]:
        out, seen, stack = [], set(), list(rec.parents)
        while stack:
            pid = stack.pop()
            if pid in seen or pid not in self.files:
                continue
            seen.add(pid)
            out.append(self.files[pid])
            stack.extend(self.files[pid].parents)
        return out

    def _descendants(self, folder_id: str) -> list[FileRec]:
        out, seen, stack = [], {folder_id}, [folder_id]
        while stack:
            for cid in self.children.get(stack.pop(), ()):
                if cid not in seen and cid in self.files:
                    seen.add(cid)
                    out.append(self.files[cid])
                    stack.append(cid)
        return out

    def _audience(self, rec: FileRec) -> set[str]:
        """Every named user who can currently see ``rec`` (``anyone`` links cannot be enumerated)."""
        who = {rec.owner}
        for r in [rec, *self._ancestors(rec)]:
            if r is not rec:
                who.add(r.owner)
            who.update(p["emailAddress"] for p in r.permissions if p["type"] == "user")
        return who

    @staticmethod
    def _shared_with_me(rec: FileRec, email: str) -> bool:
        """Drive's ``sharedWithMe``: shared directly with ``email`` by someone else."""
        return rec.owner != email and any(
            p["type"] == "user" and p.get("emailAddress") == email for p in rec.permissions
        )

    def _resolve(self, file_id: str, email: str) -> str:
        return self.users.get(email, file_id) if file_id == "root" else file_id

    def _visible(self, file_id: str, email: str, memo: dict | None = None) -> FileRec:
        """The file if ``email`` may see it; Drive answers 404 (not 403) otherwise."""
        rec = self.files.get(self._resolve(file_id, email))
        if rec is None or self._role(rec, email, memo) == 0:
            raise not_found(file_id)
        return rec

    def _writable(self, file_id: str, email: str) -> FileRec:
        rec = self._visible(file_id, email)
        if self._role(rec, email) < ROLE_RANK["writer"]:
            raise forbidden()
        return rec
