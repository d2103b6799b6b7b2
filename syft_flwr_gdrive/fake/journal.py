"""The store's metadata on disk: an append-only JSON-lines journal, replayed and compacted.

A server restarted on the same ``data_dir`` replays ``meta.jsonl`` and keeps its files, ids and
change tokens. The journal is compacted (rewritten as the current state, the newest
``CHANGES_KEPT`` changes kept) at start-up and whenever superseded lines outnumber live ones;
blobs no file names any more are removed then. A torn last line (a killed process) ends the replay.

Mixed into :class:`store.Store`. Relies on the store's ``self.lock``: ``_load`` runs in the
constructor, before any other thread sees the store; ``_log``, ``_put`` and ``_compact`` run with
the lock held by the calling store method; ``close`` takes it itself.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from dataclasses import asdict
from pathlib import Path
from typing import IO

from .records import DEFAULT_APP
from .records import Change
from .records import FileRec
from .records import now
from .reserved import ReservedIds

CHANGES_KEPT = 50_000  # change-log entries kept across a restart / compaction
JOURNAL_COMPACT_AT = 100_000  # superseded journal lines that trigger a compaction while running


class Journal:
    """Load, replay, append to and compact ``meta.jsonl`` (the state's fields are the store's)."""

    lock: threading.RLock
    dir: Path
    blobs_dir: Path
    uploads_dir: Path
    _own_dir: bool  # True: ``dir`` is a temporary directory, removed on close
    files: dict[str, FileRec]
    users: dict[str, str]
    generated: ReservedIds
    changes: list[Change]
    _change_seqs: list[int]
    next_change: int
    next_file_seq: int
    _journal_path: Path
    _journal: IO[str] | None
    _journal_lines: int

    def _link_children(self, rec: FileRec) -> None:  # provided by the store
        raise NotImplementedError

    def _unlink_children(self, rec: FileRec) -> None:  # provided by the store
        raise NotImplementedError

    def _load(self) -> None:
        if self._journal_path.exists():
            with open(self._journal_path, encoding="utf-8") as fh:
                for line in fh:
                    try:
                        e = json.loads(line)
                    except json.JSONDecodeError:
                        break  # a torn last line from a killed process
                    self._replay(e)
        for d in self.uploads_dir.iterdir():  # sessions do not survive a restart
            if d.is_file():
                d.unlink()
        self._compact()

    def _replay(self, e: dict) -> None:
        op = e["op"]
        if op == "put":
            fields = e["f"]
            props = fields.get("app_properties") or {}
            if any(isinstance(v, str) for v in props.values()):  # journals from before per-app properties
                fields = {**fields, "app_properties": {DEFAULT_APP: props}}
            rec = FileRec(**fields)
            old = self.files.get(rec.id)
            if old:
                self._unlink_children(old)
            self.files[rec.id] = rec
            self._link_children(rec)
            self.next_file_seq = max(self.next_file_seq, rec.seq + 1)
        elif op == "rm":
            old = self.files.pop(e["id"], None)
            if old:
                self._unlink_children(old)
        elif op == "user":
            self.users[e["email"]] = e["root"]
        elif op == "gen":  # journals before reservations recorded who and when: anyone, from now on
            self.generated.add(e["ids"], str(e.get("by") or ""), float(e.get("at") or now()))
        elif op == "used":
            self.generated.discard(e["id"])
        elif op == "chg":
            c = Change(**e["c"])
            if self._change_seqs and c.seq <= self._change_seqs[-1]:
                return  # already known (written again by a compaction)
            self.changes.append(c)
            self._change_seqs.append(c.seq)
            self.next_change = max(self.next_change, c.seq + 1)

    def _compact(self) -> None:
        """Rewrite the journal as the current state (at start-up, and when it grows large)."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        tmp = self._journal_path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            for email, root in self.users.items():
                fh.write(json.dumps({"op": "user", "email": email, "root": root}) + "\n")
            for rec in self.files.values():
                fh.write(json.dumps({"op": "put", "f": asdict(rec)}) + "\n")
            for by, at, ids in self.generated.groups():
                fh.write(json.dumps({"op": "gen", "ids": ids, "by": by, "at": at}) + "\n")
            kept = self.changes[-CHANGES_KEPT:]
            for c in kept:
                fh.write(json.dumps({"op": "chg", "c": asdict(c)}) + "\n")
        os.replace(tmp, self._journal_path)
        self.changes = list(kept)
        self._change_seqs = [c.seq for c in self.changes]
        live = {r.blob for r in self.files.values() if r.blob}
        for p in self.blobs_dir.iterdir():
            if p.name not in live:
                p.unlink()
        self._journal = open(self._journal_path, "a", encoding="utf-8")
        self._journal_lines = len(self.users) + len(self.files) + len(self.changes) + 1

    def _log(self, entry: dict) -> None:
        if self._journal is None:
            return
        self._journal.write(json.dumps(entry) + "\n")
        self._journal.flush()
        self._journal_lines += 1
        live = len(self.users) + len(self.files) + min(len(self.changes), CHANGES_KEPT)
        if self._journal_lines - live > max(JOURNAL_COMPACT_AT, live):  # mostly superseded lines
            self._compact()

    def _put(self, rec: FileRec) -> None:
        self._log({"op": "put", "f": asdict(rec)})

    def close(self) -> None:
        """Flush and close the journal; remove the directory if it was a temporary one."""
        with self.lock:
            if self._journal is not None:
                self._journal.close()
                self._journal = None
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)
