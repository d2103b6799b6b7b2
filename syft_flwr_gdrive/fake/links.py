"""Per-account network links: the uplink and downlink a user's requests share.

A real user reaches Drive over one network connection: their uploads share its uplink,
their downloads its downlink, whatever number of HTTP connections they open, while
another user's traffic does not slow them down. Without this the fake serves bodies at
memory speed from the same CPU the client runs on, and a benchmark measures CPU
contention instead of what a user meets (bench/README.md §3).

Each (account, direction) is a token bucket that may go into debt: a virtual clock,
``busy_until``, says when the bytes reserved so far have crossed the link. A reservation of
``n`` bytes is due at ``busy_until + n / rate``; the caller waits until then *outside* the
lock, so parallel requests of one account are served in reservation order and share the
rate. A link idle for more than ``IDLE_GRACE`` starts again from now (no credit for idle
time: a transfer on a fresh link takes at least size / rate); a shorter gap, the fake's own
work on a slice between two waits (writing, hashing), is not idle time for the link, which
went on carrying the bytes in flight.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

UP = "up"  #: request bodies: what the account uploads
DOWN = "down"  #: response bodies: what the account downloads
DIRECTIONS = (UP, DOWN)

MIN_SLICE = 16 * 1024
MAX_SLICE = 1 << 20
#: a slice is about this long on the wire, so a large chunk spreads over time instead of one sleep
SLICE_SECONDS = 0.05
#: the slowest link accepted (bytes/s): with MIN_SLICE it bounds one slice's wait to ~16 s
MIN_RATE = 1000.0
#: a gap shorter than this between a link's reservations is the server's own work, not idle time
IDLE_GRACE = SLICE_SECONDS


def slice_bytes(rate: float) -> int:
    """How many bytes pass per wait at ``rate`` bytes/s: ~``SLICE_SECONDS`` worth, in [16 KiB, 1 MiB]."""
    return max(MIN_SLICE, min(MAX_SLICE, int(rate * SLICE_SECONDS)))


class _Link:
    """One account's link in one direction."""

    __slots__ = ("busy_until", "rate")

    def __init__(self) -> None:
        self.busy_until = 0.0
        self.rate = 0.0


class Links:
    """The links of every account, and the bytes each one carried (counted even when unlimited)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._links: dict[tuple[str, str], _Link] = {}
        self._bytes: collections.Counter[tuple[str, str]] = collections.Counter()

    def reserve(self, user: str, direction: str, n: int, rate: float, now: float | None = None) -> float:
        """Count ``n`` bytes on ``user``'s ``direction`` link; the clock time when they have crossed it.

        ``rate`` is the link's current bytes/s (0: unlimited, due at once). A changed rate starts
        the link afresh: a live change applies from the next slice without inheriting a backlog."""
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        now = self.clock() if now is None else now
        with self._lock:
            self._bytes[(user, direction)] += n
            if rate <= 0:
                return now
            link = self._links.get((user, direction))
            if link is None:
                link = self._links[(user, direction)] = _Link()
            if link.rate != rate or now - link.busy_until > IDLE_GRACE:
                link.rate, link.busy_until = rate, now
            link.busy_until += n / rate
            return link.busy_until

    def counts(self) -> dict[str, dict[str, int]]:
        """Bytes carried per direction per account: ``{"up": {user: n}, "down": {...}}``."""
        out: dict[str, dict[str, int]] = {d: {} for d in DIRECTIONS}
        with self._lock:
            for (user, direction), n in self._bytes.items():
                out[direction][user] = n
        return out

    def reset(self) -> None:
        """Forget every backlog and count (a fresh server state)."""
        with self._lock:
            self._links.clear()
            self._bytes.clear()


__all__ = ["DIRECTIONS", "DOWN", "UP", "Links", "slice_bytes"]
