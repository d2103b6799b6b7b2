"""Ids from ``files.generateIds``: who generated each one, when, and whether a create may use it.

Drive says only that the ids are "generated for the requesting user". Nothing documents whether another
account may create a file at one, how long one stays usable, or what happens after. The default profile
lets any account create at any generated id, forever (what the fake always did); the strict profile
(``FaultConfig.reserved_ids_owned`` and ``reserved_id_ttl``) lets only the generating account use one,
for a limited time, and answers anything else as Drive answers an id it does not know: 400 "The
provided file ID is not usable". A peer that reads an id before its file exists (a promised id, a blob
part named in a message) can then not take it first.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Iterator
from dataclasses import dataclass

from .exceptions import ApiError
from .exceptions import invalid


@dataclass(frozen=True)
class Reservation:
    by: str  # the account that generated the id ("" for ids from journals that did not record it)
    at: float  # when (wall-clock seconds)


class ReservedIds:
    """Generated ids not used yet. Not thread-safe: the store calls it under its lock."""

    def __init__(self) -> None:
        self._ids: dict[str, Reservation] = {}

    def __contains__(self, file_id: object) -> bool:
        return file_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, ids: Iterable[str], by: str, at: float) -> None:
        for file_id in ids:
            self._ids[file_id] = Reservation(by, at)

    def discard(self, file_id: str) -> None:
        self._ids.pop(file_id, None)

    def check(self, file_id: str, email: str, now: float, *, owned: bool, ttl: float) -> None:
        """Raise Drive's 400 unless ``email`` may create a file at ``file_id`` now."""
        found = self._ids.get(file_id)
        if found is None:
            raise unusable()
        if owned and found.by and found.by != email:
            raise unusable()
        if ttl > 0 and now - found.at > ttl:
            raise unusable()

    def prune(self, now: float, ttl: float) -> None:
        """Forget ids that can no longer be used (kept forever when ids never expire)."""
        if ttl > 0:
            self._ids = {i: r for i, r in self._ids.items() if now - r.at <= ttl}

    def groups(self) -> Iterator[tuple[str, float, list[str]]]:
        """(by, at, ids) per reservation batch: what a journal compaction writes back."""
        batches: dict[tuple[str, float], list[str]] = {}
        for file_id, r in self._ids.items():
            batches.setdefault((r.by, r.at), []).append(file_id)
        for (by, at), ids in sorted(batches.items()):
            yield by, at, sorted(ids)


def unusable() -> ApiError:
    return invalid("The provided file ID is not usable.", "file.id")
