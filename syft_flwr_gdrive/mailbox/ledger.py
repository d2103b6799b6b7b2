"""A persistent record of which messages this participant has handled, by sender and message id.

Drive listings can show a file again (eventual consistency, a retried create,
a restarted process), so receivers de-duplicate by message id. The id is the
sender's to choose, so it is recorded *with its sender*: a peer that writes a
message under an id another peer will use (a reply id is derived from public
facts) records only its own (sender, id), never silences the other peer's message.

The record is a text file, so it survives a crash or restart of the process: one
``<message id>/<sender> <created_at>`` per line (a message id has no ``/``; ``created_at`` is the
sender's own stamp, from its signed header). Lines of a bare id, written before the sender was
recorded, and lines without a time, written before the bound below, still load and count as handled
(what they meant when they were written).

**Bounded whatever the number of rounds.** Of each sender's dated entries the newest ``keep_per_sender``
are kept; when there are twice as many, the older ones are compacted into that sender's *floor*: the
newest ``created_at`` compacted away, one ``#floor <sender> <created_at>`` line. A message of that sender
created at or before its floor counts as handled. Why that is safe (docs/protocol.md "The ledger on disk"):

* never handled twice: a message compacted away has ``created_at`` <= the floor, and its replay carries
  the same signed ``created_at`` (the sender's header; a copy cannot change it), so it is refused as
  handled, exactly as the kept entries refuse theirs;
* nothing awaited is refused: a message at or below the floor is older than ``keep_per_sender`` messages
  of the same sender that were handled. Every stream using a ledger is one-at-a-time per peer (a server
  sends a datasite its next request only after the previous exchange ended: answered or withdrawn; a
  client replies once per request; the server takes a reply only while its request is pending), so such a
  message belongs to an exchange that ended long ago. The one case that loses messages: a sender whose
  clock steps back further than its last ``keep_per_sender`` messages to me span; its messages are then
  refused (as handled) until its clock passes the floor again, and those exchanges time out.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from pathlib import Path

from syft_flwr_gdrive.base.accounts import canonical_email

MAX_REMEMBERED = 200_000  # undated entries (files of versions before the bound) kept at most
KEEP_PER_SENDER = 64  # dated entries kept per sender; older ones are compacted into the sender's floor
SEPARATOR = "/"  # between message id and sender; never in a message id (1-64 letters, digits, ". _ @ + -")
FLOOR = "#floor"  # a floor line's tag: '#' is never in a message id


def entry(message_id: str, sender: str) -> str:
    """The ledger's line for ``sender``'s message ``message_id`` (the sender in its canonical form)."""
    return f"{message_id}{SEPARATOR}{canonical_email(sender)}"


class Ledger:
    """Set of handled (sender, message id) pairs, mirrored to a file; bounded per sender (module docstring)."""

    def __init__(self, path: Path | None, keep_per_sender: int = KEEP_PER_SENDER) -> None:
        if keep_per_sender < 1:
            raise ValueError("keep_per_sender must be at least 1")
        self._path = path
        self._keep = keep_per_sender
        self._lock = threading.Lock()
        self._entries: set[str] = set()  # "<id>/<sender>", and bare ids from files written before senders
        self._undated: list[str] = []  # entries without a time (older files, or a caller that has none)
        self._dated: dict[str, list[tuple[float, str]]] = {}  # sender -> (created_at, entry), in order of adding
        self._floor: dict[str, float] = {}  # sender -> its messages created at or before this count as handled
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                self._load(path.read_text(encoding="utf-8", errors="replace").splitlines())
                if len(self._undated) > MAX_REMEMBERED or any(
                    len(items) > 2 * self._keep for items in self._dated.values()
                ):
                    self._undated = self._undated[-MAX_REMEMBERED:]
                    self._entries = set(self._undated)
                    for sender in list(self._dated):
                        self._entries.update(e for _, e in self._dated[sender])
                        self._compact(sender)
                    self._rewrite()

    def _load(self, lines: list[str]) -> None:
        for line in lines:
            words = line.split()
            if len(words) == 3 and words[0] == FLOOR:
                try:
                    self._floor[words[1]] = max(self._floor.get(words[1], float("-inf")), float(words[2]))
                except ValueError:
                    pass
            elif len(words) == 2:
                try:
                    created_at = float(words[1])
                except ValueError:
                    self._keep_undated(words)
                    continue
                self._entries.add(words[0])
                self._dated.setdefault(_sender_of(words[0]), []).append((created_at, words[0]))
            else:
                self._keep_undated(words)

    def _keep_undated(self, words: list[str]) -> None:
        for word in words:  # the old format's reading: every whitespace-separated word an entry
            if word not in self._entries:
                self._entries.add(word)
                self._undated.append(word)

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

    def floor(self, sender: str) -> float | None:
        """Messages of ``sender`` created at or before this count as handled (None: no entry compacted yet)."""
        with self._lock:
            return self._floor.get(canonical_email(sender))

    def handled(self, message_id: str, sender: str, created_at: float | None = None) -> bool:
        """Whether ``sender``'s message ``message_id`` was handled (or the bare id, by a version before senders),
        or, given its ``created_at``, lies at or below the sender's floor (compacted away: handled long ago)."""
        with self._lock:
            return self._handled(message_id, sender, created_at)

    def _handled(self, message_id: str, sender: str, created_at: float | None) -> bool:
        if entry(message_id, sender) in self._entries or message_id in self._entries:
            return True
        floor = self._floor.get(canonical_email(sender))
        return floor is not None and created_at is not None and created_at <= floor

    def add(self, message_id: str, sender: str, created_at: float | None = None) -> bool:
        """Record ``sender``'s message ``message_id`` (created at ``created_at``, the sender's stamp); returns
        False if it was already there, or at or below the sender's floor.

        The file holds one entry per line and is read back split on whitespace, so an id or a sender
        with whitespace (or an empty one) would split into others: refused (peers' ids and emails are
        validated long before they get here). Without ``created_at`` the entry is kept until the file holds
        ``MAX_REMEMBERED`` of them (no floor can stand for it).
        """
        line = entry(message_id, sender)
        if (
            not message_id
            or SEPARATOR in message_id
            or not canonical_email(sender)
            or any(c.isspace() for c in line)
            or not line.isprintable()
            or (created_at is not None and not math.isfinite(created_at))
        ):
            raise ValueError(f"not a message id and sender for the ledger: {line[:160]!r}")
        with self._lock:
            if self._handled(message_id, sender, created_at):
                return False
            self._entries.add(line)
            if created_at is None:
                self._undated.append(line)
                self._append(line)
                return True
            who = canonical_email(sender)
            items = self._dated.setdefault(who, [])
            items.append((created_at, line))
            if len(items) > 2 * self._keep:
                self._compact(who)
                self._rewrite()
            else:
                self._append(f"{line} {created_at!r}")
            return True

    def _compact(self, sender: str) -> None:
        """Keep ``sender``'s newest entries; the others go, and the newest time among them becomes its floor."""
        items = sorted(self._dated.get(sender, []))
        if len(items) <= self._keep:
            return
        gone, kept = items[: -self._keep], items[-self._keep :]
        self._floor[sender] = max(self._floor.get(sender, float("-inf")), gone[-1][0])
        self._entries.difference_update(e for _, e in gone)
        self._dated[sender] = kept

    def _append(self, text: str) -> None:
        if self._path is not None:
            with self._path.open("a", encoding="utf-8") as fh:
                fh.write(text + "\n")

    def _rewrite(self) -> None:
        """The whole file again, atomically (a crash leaves the old one or the new one)."""
        if self._path is None:
            return
        lines = [f"{FLOOR} {sender} {floor!r}" for sender, floor in sorted(self._floor.items())]
        lines += self._undated
        lines += [f"{e} {t!r}" for items in self._dated.values() for t, e in items]
        tmp = self._path.with_name(self._path.name + ".tmp")
        tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        os.replace(tmp, self._path)


def _sender_of(line: str) -> str:
    return line.partition(SEPARATOR)[2]
