"""A set that remembers only its newest members: for what a long run notes per message and needs only lately.

A federation runs for hours; a set that gains a member per message (files seen gone, postings refused)
grows with the number of rounds. Where forgetting an old member is safe (the caller says why), this
keeps the newest ``limit`` of them, so memory stays flat however long the run.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from collections.abc import Iterable
from collections.abc import Iterator
from typing import Generic
from typing import TypeVar

T = TypeVar("T", bound=Hashable)


class RecentSet(Generic[T]):
    """Insertion-ordered set of at most ``limit`` members; adding past it forgets the oldest. Thread-safe."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._members: dict[T, None] = {}
        self._lock = threading.Lock()

    def add(self, item: T) -> None:
        """Add ``item`` (or make it the newest again)."""
        self.update((item,))

    def update(self, items: Iterable[T]) -> None:
        with self._lock:
            for item in items:
                self._members.pop(item, None)
                self._members[item] = None
            while len(self._members) > self.limit:
                del self._members[next(iter(self._members))]

    def discard(self, item: T) -> None:
        with self._lock:
            self._members.pop(item, None)

    def __contains__(self, item: object) -> bool:
        return item in self._members  # one dict lookup: atomic

    def __len__(self) -> int:
        return len(self._members)

    def __iter__(self) -> Iterator[T]:
        with self._lock:
            return iter(list(self._members))
