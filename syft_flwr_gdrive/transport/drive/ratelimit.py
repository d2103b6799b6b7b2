"""Client-side pacing of Drive quota units, shared by every thread of a process.

Drive counts a per-user budget of quota units per minute (list 100, get 5,
download 200, modify 50). Hitting it costs a 403/429 and a backoff; pacing
calls below it costs nothing. ``QuotaLimiter`` is a token bucket refilled at a
safety margin below the budget; every DriveApi call takes its units first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

UNITS_BY_METHOD: dict[str, int] = {
    "files.list": 100,
    "files.get": 5,
    "about.get": 5,
    "files.generateIds": 5,
    "media.download": 200,
}
MODIFY_UNITS = 50  # create, update, delete, permissions, uploads

SAFETY = 0.85  # use at most this share of the budget
BURST = 0.10  # bucket size, as a share of the per-minute budget


def units_for(method: str) -> int:
    return UNITS_BY_METHOD.get(method, MODIFY_UNITS)


class _TokenBucket:
    """Tokens refilled at ``rate`` per second up to ``capacity``, shared by every thread of a process: the
    mechanism under both pacers (what a token is, and how many a call takes, is theirs)."""

    def __init__(
        self, rate: float, capacity: float, clock: Callable[[], float], sleep: Callable[[float], None]
    ) -> None:
        self.rate = rate
        self.capacity = capacity
        self._tokens = capacity
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()
        self.waited = 0.0  # seconds callers were told to wait, in all

    def _refill(self) -> None:
        """Add the tokens earned since the last refill (the caller holds ``_lock``)."""
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def _pause(self, wait: float, deadline: float, too_long: str) -> None:
        """Sleep towards ``wait`` (at most a second at a time, so others' returns are seen), or raise
        TimeoutError(``too_long``) if it would end past ``deadline``."""
        if self._clock() + wait > deadline:
            raise TimeoutError(too_long)
        self.waited += wait
        self._sleep(min(max(wait, 0.001), 1.0))


class QuotaLimiter(_TokenBucket):
    """Token bucket of quota units; ``acquire`` blocks (bounded) until the units are available.

    In any 60 s window at most ``(SAFETY + BURST) * units_per_min`` units are
    spent, so a process alone never exceeds its budget.
    """

    def __init__(
        self,
        units_per_min: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if units_per_min <= 0:
            raise ValueError("units_per_min must be positive")
        capacity = max(float(max(UNITS_BY_METHOD.values())), units_per_min * BURST)
        super().__init__(units_per_min * SAFETY / 60.0, capacity, clock, sleep)  # units per second

    def acquire(self, units: float, *, timeout: float = 300.0) -> None:
        """Take ``units``; waits for the bucket to refill. Raises TimeoutError past ``timeout``."""
        units = min(float(units), self.capacity)
        deadline = self._clock() + timeout
        while True:
            with self._lock:
                self._refill()
                if self._tokens >= units - 1e-6:  # tolerate float rounding
                    self._tokens = max(0.0, self._tokens - units)
                    return
                wait = (units - self._tokens) / self.rate
            self._pause(wait, deadline, f"Drive quota pacing would wait {wait:.1f}s, over the {timeout:.0f}s limit")


WRITES_PER_SECOND = 2.0  # rclone measures about 2 file inserts per second per account before Drive refuses more
WRITE_BURST = 5.0  # writes an idle account makes at once before the rate applies
#: the API methods that are one write each (besides: a resumable upload is one write when its session starts, a
#: batch of deletes one per part; their callers say so)
WRITE_METHODS = frozenset({"files.create", "files.update", "files.delete", "permissions.create"})


class WritePacer(_TokenBucket):
    """Token bucket of writes for one account: ``acquire`` blocks (bounded) until a write is due.

    Drive refuses sustained writes above about 2-3 per second per account (403 userRateLimitExceeded or
    429), and each refusal costs a backoff of a second or more: pacing writes below the limit before Drive
    refuses them is faster than being refused, and it leaves the account's budget for other work."""

    def __init__(
        self,
        per_second: float,
        *,
        burst: float = WRITE_BURST,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if per_second <= 0:
            raise ValueError("per_second must be positive")
        super().__init__(per_second, max(1.0, burst), clock, sleep)

    def acquire(self, writes: float = 1.0, *, timeout: float = 300.0) -> None:
        """Take ``writes`` (a batch of deletes takes one per part); waits for the bucket to refill."""
        deadline = self._clock() + timeout
        left = float(writes)
        while left > 1e-9:
            with self._lock:
                self._refill()
                take = min(left, self._tokens)
                if take >= min(left, 1.0) - 1e-9:  # whole writes (a batch goes as its tokens come)
                    self._tokens -= take
                    left -= take
                    continue
                wait = (min(left, 1.0) - self._tokens) / self.rate
            self._pause(wait, deadline, f"Drive write pacing would wait {wait:.1f}s, over the {timeout:.0f}s limit")
