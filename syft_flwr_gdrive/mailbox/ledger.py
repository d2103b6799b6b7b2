"""A persistent record of which messages this participant has handled, by sender and message id.

Drive listings can show a file again (eventual consistency, a retried create,
a restarted process), so receivers de-duplicate by message id. The id is the
sender's to choose, so it is recorded *with its sender*: a peer that writes a
message under an id another peer will use (a reply id is derived from public
facts) records only its own (sender, id), never silences the other peer's message.

The record is an append-only text file, so it survives a crash or restart of the
process: one ``<message id>/<sender>`` per line (a message id has no ``/``). Lines
of a bare id, written before the sender was recorded, still load and count as handled
whoever sends that id (what they meant when they were written).
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from syft_flwr_gdrive.base.accounts import canonical_email

MAX_REMEMBERED = 200_000
SEPARATOR = "/"  # between message id and sender; never in a message id (1-64 letters, digits, ". _ @ + -")


def entry(message_id: str, sender: str) -> str:
    """The ledger's line for ``sender``'s message ``message_id`` (the sender in its canonical form)."""
    return f"{message_id}{SEPARATOR}{canonical_email(sender)}"


class Ledger:
    """Set of handled (sender, message id) pairs, mirrored to an append-only file."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._entries: set[str] = set()  # "<id>/<sender>", and bare ids from files written before senders
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                lines = path.read_text(encoding="utf-8", errors="replace").split()
                self._entries.update(lines[-MAX_REMEMBERED:])
                if len(lines) > MAX_REMEMBERED:  # compact so the file cannot grow without bound
                    path.write_text("\n".join(lines[-MAX_REMEMBERED:]) + "\n", encoding="utf-8")

    @classmethod
    def for_app(cls, state_dir: Path | None, app: str) -> Ledger:
        """The ledger of one app under a participant's state dir (None keeps it in memory)."""
        if state_dir is None:
            return cls(None)
        digest = hashlib.sha256(app.encode("utf-8")).hexdigest()[:16]
        return cls(state_dir / f"handled-{digest}.log")

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def handled(self, message_id: str, sender: str) -> bool:
        """Whether ``sender``'s message ``message_id`` was handled (or the bare id, by a version before senders)."""
        with self._lock:
            return entry(message_id, sender) in self._entries or message_id in self._entries

    def add(self, message_id: str, sender: str) -> bool:
        """Record ``sender``'s message ``message_id``; returns False if it was already there.

        The file holds one entry per line and is read back split on whitespace, so an id or a sender
        with whitespace (or an empty one) would split into others: refused (peers' ids and emails are
        validated long before they get here).
        """
        line = entry(message_id, sender)
        if (
            not message_id
            or SEPARATOR in message_id
            or not canonical_email(sender)
            or any(c.isspace() for c in line)
            or not line.isprintable()
        ):
            raise ValueError(f"not a message id and sender for the ledger: {line[:160]!r}")
        with self._lock:
            if line in self._entries or message_id in self._entries:
                return False
            self._entries.add(line)
            if self._path is not None:
                with self._path.open("a", encoding="utf-8") as fh:
                    fh.write(line + "\n")
            return True
