"""What lagging listings show: recent states of each changed file (the strict profile's ``lag_all``).

Under the strict profile ``files.list`` shows each file as it was at a random moment of the last
``lag_window`` seconds, so a listing may miss a new file, show a deleted one, or go back in time
(not monotonic), as field reports say Drive's listings do. ``files.get`` stays current.

Mixed into :class:`store.Store`. Relies on the store's ``self.lock``: every method here runs with it
held by the caller (a store method), and touches ``self.history`` and ``self.files`` only under it.
"""

from __future__ import annotations

import copy
import random

from .records import FileRec
from .records import now


class LagHistory:
    """Per-file (since, state) lists kept while a change is within the lag window."""

    files: dict[str, FileRec]  # provided by the store
    lag_window: float  # > 0: listings show each file as it was up to this many seconds ago
    history: dict[str, list[tuple[float, FileRec | None]]]  # id -> (since, state) while lagging
    _rng: random.Random

    def _hist_before(self, fid: str) -> None:
        """Remember the state before a change, so lagging listings can still show it."""
        if self.lag_window <= 0 or fid in self.history:
            return
        rec = self.files.get(fid)
        self.history[fid] = [(float("-inf"), copy.deepcopy(rec) if rec is not None else None)]

    def _hist_after(self, fid: str) -> None:
        if self.lag_window <= 0 or fid not in self.history:
            return
        rec = self.files.get(fid)
        self.history[fid].append((now(), copy.deepcopy(rec) if rec is not None else None))

    def _hist_prune(self) -> None:
        horizon = now() - self.lag_window
        for fid in [f for f, h in self.history.items() if h[-1][0] <= horizon or self.lag_window <= 0]:
            del self.history[fid]

    def _lagged(self, fid: str) -> FileRec | None:
        """The state of ``fid`` some random moment within the lag window (not monotonic)."""
        hist = self.history.get(fid)
        if hist is None:
            return self.files.get(fid)
        at = now() - self._rng.uniform(0.0, self.lag_window)
        state = hist[0][1]
        for since, rec in hist:
            if since <= at:
                state = rec
        return state
