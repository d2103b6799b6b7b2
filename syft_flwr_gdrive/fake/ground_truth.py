"""What exists now, read for tests and demos: no fault, no lag, no request counted.

Under the strict profile ``files.list`` may show a file in any state it had within the lag window;
these helpers read the store itself, current and consistent, so a test can tell what a
participant did from what its listing shows.

Mixed into :class:`store.Store`. Relies on the store's ``self.lock``: every method takes it.
"""

from __future__ import annotations

import threading

from . import strict
from .records import Change
from .resources import Resources


class GroundTruth(Resources):
    """Owned files, the newest change's time, counts."""

    lock: threading.RLock
    gmail_dots: bool
    accounts: dict[str, str]  # gmail key -> the account's registered address form
    changes: list[Change]

    def owned_by(self, email: str, folders: bool = False) -> list[dict]:
        """Every file ``email`` owns now, oldest first, as File resources the way its owner sees them;
        trashed files and (unless ``folders``) folders left out.

        The ground truth, read under the lock: current and consistent, unlike files.list under the strict
        profile (a file changed within the lag window may be listed in any state it had in that window:
        a new one missing, a deleted one still there). No fault applies and no request is counted."""
        with self.lock:
            owner = email.strip().lower()
            if self.gmail_dots:  # the form Drive reports, without registering a new account (account())
                owner = self.accounts.get(strict.gmail_key(owner), owner)
            recs = [
                r
                for r in self.files.values()
                if r.owner == owner and not r.is_root and (folders or not r.is_folder) and not self._trashed(r)
            ]
            return [self.resource(r, owner) for r in sorted(recs, key=lambda r: r.seq)]

    def last_change_time(self) -> float | None:
        """When a file last changed (created, updated, shared or deleted: the change log's newest entry),
        in :func:`records.now` time; None before any change."""
        with self.lock:
            return self.changes[-1].time if self.changes else None

    def stats(self) -> dict[str, int]:
        with self.lock:
            return {
                "files": sum(1 for r in self.files.values() if not r.is_root),
                "users": len(self.users),
                "changes": len(self.changes),
                "blob_bytes": sum(r.size or 0 for r in self.files.values()),
            }
