"""Gather pushes that arrive together into one.

Why: Flower's legacy ``server_fn`` path sends one instruction per client, each from its own
thread of a pool, at the same moment. One push of N messages costs the server one bundle
(one Drive write); N pushes of one message cost N. The first caller of a batch waits a few
milliseconds for the others (until ``enough`` says the batch is complete, no new caller came
for ``window`` seconds, or ``max_wait`` passed), pushes everything once, and hands every
caller its own message ids.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from typing import Generic
from typing import TypeVar

T = TypeVar("T")

WINDOW = 0.03  # seconds without a new caller that close a batch
MAX_WAIT = 0.25  # a batch never waits longer than this for more callers


class _Batch(Generic[T]):
    def __init__(self) -> None:
        self.items: list[list[T]] = []
        self.last_arrival = time.monotonic()
        self.done = threading.Event()
        self.result: list[list[str]] | None = None
        self.error: BaseException | None = None


class Coalescer(Generic[T]):
    """Thread-safe: ``submit`` from many threads; ``push`` runs once per batch, in the batch's first caller."""

    def __init__(
        self,
        push: Callable[[list[T]], Iterable[str]],
        enough: Callable[[list[T]], bool],
        *,
        window: float = WINDOW,
        max_wait: float = MAX_WAIT,
        result_timeout: float = 3600.0,
    ) -> None:
        self._push = push
        self._enough = enough
        self.window = window
        self.max_wait = max_wait
        self.result_timeout = result_timeout  # bound on a follower's wait for its batch's push
        self._cond = threading.Condition()
        self._batch: _Batch[T] | None = None
        self.pushes = 0  # batches pushed (for tests and reports)

    def submit(self, items: Sequence[T]) -> list[str]:
        """Push ``items`` together with whatever other callers submit now; returns ids for ``items``, in order."""
        with self._cond:
            batch = self._batch
            leader = batch is None
            if batch is None:
                batch = self._batch = _Batch()
            index = len(batch.items)
            batch.items.append(list(items))
            batch.last_arrival = time.monotonic()
            self._cond.notify_all()
        if leader:
            self._lead(batch)
        elif not batch.done.wait(self.result_timeout):
            raise TimeoutError(f"a batched push did not finish within {self.result_timeout:.0f}s")
        if batch.error is not None:
            raise batch.error
        assert batch.result is not None
        return batch.result[index]

    def _lead(self, batch: _Batch[T]) -> None:
        started = time.monotonic()
        with self._cond:
            while True:
                now = time.monotonic()
                flat = [x for part in batch.items for x in part]
                quiet = now - batch.last_arrival
                if self._enough(flat) or quiet >= self.window or now - started >= self.max_wait:
                    break
                self._cond.wait(min(self.window - quiet, self.max_wait - (now - started)))
            self._batch = None  # later callers start the next batch
            sizes = [len(part) for part in batch.items]
        try:
            ids = list(self._push(flat))
            out, at = [], 0
            for size in sizes:
                out.append(ids[at : at + size])
                at += size
            batch.result = out
            self.pushes += 1
        except BaseException as exc:  # every caller of the batch sees the push's failure
            batch.error = exc
        finally:
            batch.done.set()
