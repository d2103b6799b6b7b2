"""When to poll next: the poll interval when idle, faster while something is due soon.

Messages are found by polling, so at a fixed interval ``p`` every hop of an
exchange waits on average ``p/2`` (often ``p``) for a poll to come round: at
the default 3 s that, not Drive, decided how long a round took. The policy:

* **Idle** (nothing expected): poll every ``interval`` (``SYFT_FLWR_POLL_INTERVAL``).
  A client waiting for a run that has not started costs what it always did.
* **Expecting** (the server once its requests are out and replies are due; a
  client right after it answered a request, when the next one is likely): poll
  every ``fast`` seconds for ``hold`` seconds, then back off, each gap about
  ``backoff`` times the last (0.25, 0.25, 0.25, 0.25, 0.5, 1, 2, then the
  interval), so a participant that waited in vain is back to the idle cadence
  within a few seconds and a handful of extra polls.
* **Learned lead.** How long the wait lasted before something arrived is
  remembered (the least of the last few waits); the next fast phase begins
  with one poll at ``LEAD_SHARE`` of that, never later than the interval,
  instead of polling fast from the start. A client whose next request comes
  only once the slowest of 50 peers answered then spends a few polls per
  exchange, not a dozen.
* Anything that arrives restarts the fast phase (``arrived``): replies
  trickling in from many clients are collected at the fast cadence.

Polls are reads: they never touch a per-account write limit. A transport may ask
for a minimum gap between polls (``Transport.min_poll_gap``: Drive's, under
``SYFT_FLWR_QUOTA_UNITS_PER_MIN``, keeps polling within a quarter of the quota);
the fast gap is never shorter. ``adaptive=False`` (``SYFT_FLWR_ADAPTIVE_POLL=false``)
polls at the interval always.

Pure and clock-injected: no I/O, no sleeping. The grid's shared poller and the
client loop ask it how long to wait and tell it when they polled.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

FAST = 0.25  # first gap when something is due, seconds
HOLD = 1.0  # seconds spent at the fast gap before backing off
BACKOFF = 2.0  # each gap after the hold is about this many times the last
LEAD_SHARE = 0.5  # the first poll of a fast phase comes at this share of the learned lead
LEAD_MEMORY = 4  # leads remembered; the least of them is used (variation makes polls earlier, not later)
DUE_TOLERANCE = 0.05  # a poll this close to its due time (as a share of the gap) counts as due


@dataclass(frozen=True)
class PollPolicy:
    """The cadence: ``interval`` is the longest gap, ever; the rest shapes the fast phase."""

    interval: float
    adaptive: bool = True
    fast: float = FAST
    hold: float = HOLD
    backoff: float = BACKOFF

    def __post_init__(self) -> None:
        if not self.interval > 0 or not self.fast > 0:
            raise ValueError(f"poll interval and fast gap must be positive, got {self.interval!r} and {self.fast!r}")
        if self.hold < 0 or self.backoff < 1:
            raise ValueError(f"hold must be >= 0 and backoff >= 1, got {self.hold!r} and {self.backoff!r}")

    @classmethod
    def for_settings(cls, settings: Any, *, min_gap: float = 0.0) -> PollPolicy:
        """From ``Settings``: the interval and the off switch; ``min_gap`` is the transport's (its quota's) floor."""
        return cls(
            interval=float(settings.poll_interval),
            adaptive=bool(getattr(settings, "adaptive_poll", True)),
            fast=max(FAST, min_gap),
        )

    def first_delay(self, lead: float | None) -> float:
        """Seconds from ``expect`` to the first poll of the fast phase, given the learned lead (None: none yet)."""
        if not self.adaptive:
            return self.interval
        learned = 0.0 if lead is None else LEAD_SHARE * lead
        return min(self.interval, max(self.fast, learned))

    def gap(self, since_expect: float | None) -> float:
        """Seconds from one poll to the next, ``since_expect`` seconds into a fast phase (None: idle).

        Fast for ``hold`` seconds; then the gap grows by ``backoff - 1`` seconds per second waited,
        which, polling on schedule, makes each gap ``backoff`` times the one before; never above
        the interval.
        """
        if not self.adaptive or since_expect is None:
            return self.interval
        grown = self.fast + max(0.0, since_expect - self.hold) * (self.backoff - 1.0)
        return min(self.interval, grown)


class PollSchedule:
    """One participant's poll timer under a ``PollPolicy``; safe to share between threads.

    Callers say when they polled (``polled``), when something became due
    (``expect``: requests sent, an exchange finished) and when a poll found
    something (``arrived``, with the time that poll started); they wait
    ``due_in()`` between polls.
    """

    def __init__(self, policy: PollPolicy, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._lock = threading.Lock()
        self._anchor: float | None = None  # first poll of the current fast phase; None: idle
        self._due: float | None = None  # when the next poll is due; None: now
        self._last: float | None = None  # the last poll
        self._expected_at: float | None = None  # the open expect() whose lead is not learned yet
        self._leads: deque[float] = deque(maxlen=LEAD_MEMORY)

    @classmethod
    def for_settings(cls, settings: Any, *, min_gap: float = 0.0) -> PollSchedule:
        return cls(PollPolicy.for_settings(settings, min_gap=min_gap))

    @property
    def lead(self) -> float | None:
        """The learned wait from ``expect`` to an arrival (least of the last few), or None."""
        with self._lock:
            return min(self._leads) if self._leads else None

    def expect(self, at: float | None = None) -> None:
        """Something is due soon: start a fast phase, its first poll at the learned lead's share, or sooner."""
        if not self.policy.adaptive:
            return
        now = self._clock() if at is None else at
        with self._lock:
            first = now + self.policy.first_delay(min(self._leads) if self._leads else None)
            if self._last is not None:
                first = min(first, self._last + self.policy.interval)  # the interval stays the longest gap
            self._anchor = max(now, first)
            self._due = first
            self._expected_at = now

    def arrived(self, at: float | None = None) -> None:
        """The poll that started at ``at`` found something: learn the lead, and stay fast for what follows."""
        if not self.policy.adaptive:
            return
        now = self._clock()
        found = now if at is None else at
        with self._lock:
            if self._expected_at is not None:
                self._leads.append(max(0.0, found - self._expected_at))
                self._expected_at = None
            self._anchor = now
            soon = now + self.policy.fast
            self._due = soon if self._due is None else min(self._due, soon)

    def polled(self, at: float | None = None) -> float:
        """A poll happened at ``at`` (default now); returns the seconds until the next one is due."""
        now = self._clock() if at is None else at
        with self._lock:
            self._last = now
            if self._anchor is not None and now < self._anchor:
                self._due = self._anchor  # a fast phase whose first poll is still ahead
            else:
                self._due = now + self.policy.gap(self._since(now))
        return self.due_in()

    def gap(self) -> float:
        """The gap the schedule is at now (the interval when idle)."""
        now = self._clock()
        with self._lock:
            return self.policy.gap(self._since(now))

    def due_in(self) -> float:
        """Seconds until the next poll is due (0: due now)."""
        with self._lock:
            due = self._due
        return 0.0 if due is None else max(0.0, due - self._clock())

    def is_due(self) -> bool:
        """True when the next poll is due, give or take ``DUE_TOLERANCE`` of the gap (timers wake a little early)."""
        return self.due_in() <= DUE_TOLERANCE * self.gap()

    def _since(self, now: float) -> float | None:
        return None if self._anchor is None else max(0.0, now - self._anchor)
