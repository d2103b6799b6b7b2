"""The change log and Drive's changes feed: ``changes.getStartPageToken`` and ``changes.list``.

Every create, update, share and delete appends a :class:`records.Change` (journaled, so change
tokens survive a restart). Each user's feed is the changes to files they can see, plus
``removed: true`` for files deleted or no longer visible to them; changes inside the list-lag
window are held back without being skipped.

Mixed into :class:`store.Store`. Relies on the store's ``self.lock``: ``_record_change`` runs with
it held by the calling store method; the public methods take it themselves.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from .exceptions import invalid
from .journal import Journal
from .records import Change
from .records import now
from .records import rfc3339
from .resources import Resources


class ChangeFeed(Journal, Resources):
    """Appends to the change log and answers each user's feed from it."""

    def _record_change(self, file_id: str, removed_for: Iterable[str] | None = None) -> None:
        c = Change(self.next_change, file_id, now(), sorted(set(removed_for)) if removed_for is not None else None)
        self.next_change += 1
        self.changes.append(c)
        self._change_seqs.append(c.seq)
        self._log({"op": "chg", "c": asdict(c)})

    def start_page_token(self) -> str:
        with self.lock:
            return str(self.next_change)

    def list_changes(
        self, email: str, token: str, page_size: int, lag: float, include_removed: bool = True
    ) -> tuple[list[dict], str | None, str | None]:
        """changes.list: (changes, nextPageToken, newStartPageToken). Changes still inside
        the list-lag window are held back and the returned token does not skip them."""
        try:
            start = int(token)
            if start < 1:
                raise ValueError
        except (TypeError, ValueError):
            raise invalid("Invalid Value", "pageToken") from None
        with self.lock:
            cutoff = now() - lag
            i = bisect.bisect_left(self._change_seqs, start)
            picked: dict[str, Change] = {}
            seen_count = 0
            next_token: str | None = None
            memo: dict = {}
            stopped_at: int | None = None
            while i < len(self.changes):
                c = self.changes[i]
                if lag > 0 and c.time > cutoff:
                    stopped_at = c.seq
                    break
                if seen_count >= page_size:
                    next_token = str(c.seq)
                    break
                rec = self.files.get(c.file_id)
                relevant = False
                if rec is not None and not rec.is_root and self._role(rec, email, memo) > 0:
                    relevant = True
                elif c.removed_for and email in c.removed_for and include_removed:
                    relevant = True
                if relevant:
                    if c.file_id not in picked:
                        seen_count += 1
                    picked.pop(c.file_id, None)
                    picked[c.file_id] = c
                i += 1
            new_start = None if next_token else str(stopped_at if stopped_at is not None else self.next_change)
            out = []
            for fid, c in picked.items():
                rec = self.files.get(fid)
                visible = rec is not None and not rec.is_root and self._role(rec, email, memo) > 0
                item: dict[str, Any] = {
                    "kind": "drive#change",
                    "changeType": "file",
                    "type": "file",
                    "time": rfc3339(c.time),
                    "fileId": fid,
                    "removed": not visible,
                }
                if visible and rec is not None:
                    item["file"] = self.resource(rec, email, memo)
                elif not include_removed:
                    continue
                out.append(item)
            return out, next_token, new_start
