"""Keep-alive HTTP channels of one DriveApi, lent to one thread at a time.

Opening and closing a TCP connection per request was a fifth of a busy client's
CPU (py-spy, bench/README.md section 9), and the fake server starts a thread per
connection. A :class:`ConnectionPool` keeps the channels of finished requests and
lends them out again; the rules that keep the one retry policy honest:

* **One thread at a time.** ``httplib2.Http`` is not thread-safe: a channel is
  taken out of the pool for one attempt and put back after it, never used by two
  threads at once (which thread uses it next does not matter to httplib2).
* **Any failure closes it.** An attempt that raised anything (a dropped
  connection, a timeout, a 404) closes its channel, so a retry always starts on
  a fresh connection and a half-read response never reaches the next request.
* **Stale connections are not reused.** A server closes an idle keep-alive at
  its own moment (the fake after ``idle_timeout``, 300 s by default; Google's
  front ends after an idle time they do not document, reported in minutes), and
  a request sent on it fails as a dropped connection, which for a create is
  ambiguous. So a channel is reused only when it has been idle less than
  :data:`REUSE_IDLE_S` (well below either) and none of
  its sockets is readable (a close that has already arrived shows as readable).
  What remains is a close racing the request on the wire, which the policy
  sees as any dropped connection.
* **Not across a fork.** A child process made by ``fork`` (multiprocessing's
  default on Linux) would share the parent's sockets, and two processes' bytes
  on one connection; the child forgets the channels it inherited.
* **Writes not safe to repeat ride a fresh connection** (``fresh=True``): even
  that race then cannot turn a create into an ambiguous failure. They are one
  or two requests of an exchange, so reads keep nearly all of the gain; the new
  connection is kept afterwards only if no other channel is idle.

:meth:`close` closes the idle channels and stops keeping new ones; calls made
after it still work, each on a connection of its own that is closed at once.
"""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["REUSE_IDLE_S", "MAX_IDLE_CHANNELS", "ConnectionPool"]

#: A channel idle longer than this is closed instead of reused (seconds).
REUSE_IDLE_S = 15.0
#: Idle channels kept at most; more side-by-side requests than this open extra ones, closed after use.
MAX_IDLE_CHANNELS = 8


def _sockets(channel: Any) -> list[Any]:
    """The open sockets under an AuthorizedHttp (or a bare httplib2.Http)."""
    raw = getattr(channel, "http", channel)
    conns = getattr(raw, "connections", None) or {}
    return [c.sock for c in conns.values() if getattr(c, "sock", None) is not None]


def _readable(sock: Any) -> bool:
    """True when an idle socket has something to read: the peer's close (EOF or reset) or stray bytes."""
    try:
        if hasattr(select, "poll"):  # no FD_SETSIZE limit (a process with 100 clients has many fds)
            poller = select.poll()
            poller.register(sock, select.POLLIN | select.POLLPRI)
            return bool(poller.poll(0))
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable)
    except (OSError, ValueError):  # closed or unusable: not worth reusing
        return True


def is_reusable(channel: Any, idle_for: float, max_idle: float = REUSE_IDLE_S) -> bool:
    """Whether an idle channel may carry the next request (see the module docstring)."""
    return idle_for < max_idle and not any(_readable(s) for s in _sockets(channel))


class ConnectionPool:
    """Idle HTTP channels made by ``new_channel``, reused under the rules in the module docstring."""

    def __init__(
        self,
        new_channel: Callable[[], Any],
        *,
        max_idle_s: float = REUSE_IDLE_S,
        max_channels: int = MAX_IDLE_CHANNELS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._new_channel = new_channel
        self.max_idle_s = max_idle_s
        self.max_channels = max_channels
        self._clock = clock
        self._lock = threading.Lock()
        self._idle: list[tuple[Any, float]] = []  # (channel, when it was put back); the newest last
        self._pid = os.getpid()  # the process whose channels these are
        self._closed = False

    @contextmanager
    def lend(self, *, fresh: bool = False) -> Iterator[Any]:
        """A channel for one attempt: reused unless ``fresh``; closed if the attempt raises, else kept."""
        channel = None if fresh else self._take()
        if channel is None:
            channel = self._new_channel()
        try:
            yield channel
        except BaseException:
            channel.close()
            raise
        self._give_back(channel, spare=not fresh)

    def _take(self) -> Any:
        if os.getpid() != self._pid:  # a forked child: the kept sockets are its parent's connections too
            with self._lock:
                self._idle, self._pid = [], os.getpid()  # forgotten, not closed: the parent may be using them
        while True:
            with self._lock:
                if not self._idle:
                    return None
                channel, since = self._idle.pop()  # the most recently used: the least likely to be stale
            if is_reusable(channel, self._clock() - since, self.max_idle_s):
                return channel
            channel.close()

    def _give_back(self, channel: Any, *, spare: bool = True) -> None:
        """Keep ``channel`` for reuse; a fresh one (not ``spare``) only while no other is idle.

        A create's new connection kept every time would add one idle channel per create, 8 kept
        sockets a client (and 8 server threads) until each aged out; reads only ever need as many
        as they use at once.
        """
        if not _sockets(channel):  # the server asked to close (Connection: close) or nothing was opened
            channel.close()
            return
        now = self._clock()
        expired: list[Any] = []
        with self._lock:
            while self._idle and now - self._idle[0][1] >= self.max_idle_s:  # the oldest first
                expired.append(self._idle.pop(0)[0])
            keep = not self._closed and len(self._idle) < (self.max_channels if spare else 1)
            if keep:
                self._idle.append((channel, now))
        for old in expired:
            old.close()
        if not keep:
            channel.close()

    def idle_count(self) -> int:
        with self._lock:
            return len(self._idle)

    def close(self) -> None:
        """Close the idle channels and keep no more (later attempts use one-off connections)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for channel, _ in idle:
            channel.close()
