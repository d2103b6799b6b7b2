"""Sweeping folders: one ``'<folder>' in parents`` listing per peer folder, and one of my own files, in the
poll's batch request, when due.

Why one folder per query: field reports (rclone's ``drive.go`` and its issues #3114, #4289 and
#9810; Google's issue tracker 149522397) show a ``q`` that ORs several ``'<id>' in parents``
terms answering only some folders' files, or none, with ``incompleteSearch: false`` and no error.
A listing of one folder is what Drive documents. Listings find only what nothing promised (a
stream's file stored at a fresh id, a restarted writer, a file someone planted): peers' files are
found by id (promised ids, and the heads their folders stamp, :mod:`.promises`), so a sweep is a
safety net and comes at most every :data:`SWEEP_MIN_GAP` seconds, less often where it would cost
more than :data:`SWEEP_UNITS_PER_S` quota units per second (a server with many peers: 100 units a
folder). My own outboxes are not listed one by one: one ``'me' in owners`` search of the app's files
finds my files in all of them (my own files only: what Drive documents for a property search).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from syft_flwr_gdrive.transport.drive import layout
from syft_flwr_gdrive.transport.drive.api import DriveApi
from syft_flwr_gdrive.transport.drive.discovery import Places
from syft_flwr_gdrive.transport.drive.errors import DriveError
from syft_flwr_gdrive.transport.drive.ratelimit import units_for

SWEEP_MIN_GAP = 4.0  # seconds: a safety net, not a path (steady state finds nothing in a sweep)
# Quota units per second sweeps may use: 6,000 a minute, under 2% of Drive's 325,000 per user. A client lists 3
# (300 units): every 4 s. A server with 10 peers lists 11 (1,100 units): every 11 s; with 50 peers 51 (5,100
# units): every 51 s; with 100 peers every 101 s. Steady state finds nothing in them: a server's files come by
# id, and a client's reply after a long round too (its fresh id stamped on its folder, .writes.PROMISE_MAX_AGE).
SWEEP_UNITS_PER_S = 100.0


class FolderLister:
    """When each app's folders are swept, and the listings a sweep takes (one per folder)."""

    def __init__(self, api: DriveApi) -> None:
        self.api = api
        self.last_calls = 0  # files.list calls the last poll took (0 when it swept nothing)
        self._last: dict[str, float] = {}  # app -> when its last sweep was asked for

    @staticmethod
    def gap(folders: int) -> float:
        """Seconds between two sweeps of ``folders`` folders."""
        return max(SWEEP_MIN_GAP, folders * units_for("files.list") / SWEEP_UNITS_PER_S)

    def due(self, app: str, places: Places) -> bool:
        lists = len(self._peer_folders(places)) + bool(places.mine)
        return bool(lists) and time.monotonic() - self._last.get(app, float("-inf")) >= self.gap(lists)

    def queries(self, app: str, places: Places, *, only: Sequence[str] | None = None) -> list[str]:
        """The listings of one sweep (counted as asked for now): each peer folder and my own files of the app;
        with ``only``, just those peer folders (found at this poll: not a sweep, the next one stays due)."""
        peers = self._peer_folders(places)
        if only is not None:
            peers = [f for f in peers if f in only]
        else:
            self._last[app] = time.monotonic()
        mine = [layout.my_app_files_query(app)] if places.mine and only is None else []
        return [layout.folder_query(f) for f in peers] + mine

    @staticmethod
    def _peer_folders(places: Places) -> list[str]:
        return [f for f in places.folders() if f not in places.mine]

    def list_parents(self, folder_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Every file in ``folder_ids``, one listing per folder, in batch requests of up to 100 listings."""
        queries = [layout.folder_query(f) for f in dict.fromkeys(folder_ids)]
        found = self.api.read_batch((), queries, list_fields=layout.LISTING_FIELDS).listings
        self.last_calls = len(queries)
        out: list[dict[str, Any]] = []
        for q in queries:
            answer = found[q]
            if isinstance(answer, DriveError):
                raise answer
            out.extend(answer)
        return out
