"""A persistent record of which message ids this participant has handled.

Drive listings can show a file again (eventual consistency, a retried create,
a restarted process), so receivers de-duplicate by message id. The record is an
append-only text file, so it survives a crash or restart of the process.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

MAX_REMEMBERED = 200_000


class Ledger:
    """Set of handled message ids, mirrored to an append-only file."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._ids: set[str] = set()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                lines = path.read_text(encoding="utf-8", errors="replace").split()
                self._ids.update(lines[-MAX_REMEMBERED:])
                if len(lines) > MAX_REMEMBERED:  # compact so the file cannot grow without bound
                    path.write_text("\n".join(lines[-MAX_REMEMBERED:]) + "\n", encoding="utf-8")

    @classmethod
    def for_app(cls, state_dir: Path | None, app: str) -> Ledger:
        """The ledger of one app under a participant's state dir (None keeps it in memory)."""
        if state_dir is None:
            return cls(None)
        digest = hashlib.sha256(app.encode("utf-8")).hexdigest()[:16]
        return cls(state_dir / f"handled-{digest}.log")

    def __contains__(self, message_id: str) -> bool:
        with self._lock:
            return message_id in self._ids

    def add(self, message_id: str) -> bool:
        """Record an id; returns False if it was already there.

        The file holds one id per line and is read back split on whitespace, so an id with
        whitespace (or none at all) would split into others: refused (peers' ids are
        validated long before they get here).
        """
        if not message_id or any(c.isspace() for c in message_id) or not message_id.isprintable():
            raise ValueError(f"not a message id for the ledger: {message_id[:80]!r}")
        with self._lock:
            if message_id in self._ids:
                return False
            self._ids.add(message_id)
            if self._path is not None:
                with self._path.open("a", encoding="utf-8") as fh:
                    fh.write(message_id + "\n")
            return True
