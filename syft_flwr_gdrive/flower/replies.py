"""The server's reply store (the role Flower's LinkState plays): requests awaiting a reply, replies awaiting pull.

A request is recorded when its file is stored (``sent``); a verified reply moves it from the pending
table to the replies table in one step (``answer``), and wakes the threads waiting for replies
(``wait``); Flower's strategies take replies out by request id (``take``). Requests that time out
are withdrawn (``withdraw``), and their files deleted once no other pending request shares them
(a bundle carries many).

Whether a reply may be taken is asked apart from filing it (``expected_from`` before ``answer``), so
that it can be asked before a reply is decoded or any blob it names is fetched.

A reply's message id is derived from the request it answers and its sender's email (``reply_id_for``):
a client that re-sends a reply (after a crash, a failed upload) re-sends the same message. Every datasite
of a run can compute every other's reply ids (a bundle's header lists the request ids and recipients), so
the server takes a reply only under the id derived for its own sender.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Collection
from collections.abc import Iterable
from dataclasses import dataclass

from flwr.app import Message

# Request ids remembered as sent once no longer pending (answered or withdrawn): enough to refuse a late reply for
# good for many rounds. Forgetting one is safe: a reply is taken only while its request is *pending* (``answer``),
# and ids are never reused, so a late reply to a forgotten id is only skipped as "not recorded yet" (asked again
# at the next poll, never filed) instead of refused at once.
SENT_REMEMBERED = 1024


def reply_id_for(request_id: str, email: str) -> str:
    """Deterministic reply id, so a reply re-sent after a crash is recognised as the same message."""
    return hashlib.sha256(f"reply:{request_id}:{email}".encode()).hexdigest()[:32]


@dataclass
class Pending:
    """A request sent and not answered yet."""

    recipient: str
    handle: str  # its file (a bundle's is shared by all its parts)
    expires_at: float
    blobs: tuple[str, ...] = ()  # shared blobs this request refers to
    round: str = "-"
    message_type: str = ""


@dataclass(frozen=True)
class Filed:
    """A reply taken: the request it answers, and whether that request's file can go (no other part waits)."""

    pending: Pending
    file_done: bool


class ReplyStore:
    """Pending requests and their replies; thread-safe (one thread per client on Flower's legacy path)."""

    def __init__(self) -> None:
        # Guards _pending and _replies together (a reply moves from one to the other in one step);
        # notified whenever a reply is filed.
        self._cond = threading.Condition()
        self._pending: dict[str, Pending] = {}  # request id -> the request awaiting its reply
        self._replies: dict[str, Message] = {}  # request id -> its reply, until a strategy takes it
        # request ids recorded as sent (pending, answered or withdrawn), the newest SENT_REMEMBERED of them
        self._sent: dict[str, None] = {}

    def sent(self, request_id: str, pending: Pending) -> None:
        """Record a request whose file is stored: its reply is awaited from now on."""
        with self._cond:
            self._pending[request_id] = pending
            self._sent[request_id] = None
            while len(self._sent) > SENT_REMEMBERED:
                oldest = next(iter(self._sent))
                if oldest in self._pending:  # still awaited: never forgotten (a long wait); stop trimming here
                    break
                del self._sent[oldest]

    def was_sent(self, request_id: str) -> bool:
        """Whether ``request_id`` was recorded as sent, awaited still or not (answered, withdrawn; of those, the
        newest ``SENT_REMEMBERED``)."""
        with self._cond:
            return request_id in self._sent

    def expected_from(self, request_id: str) -> str | None:
        """Who a reply to ``request_id`` is awaited from; None if nobody's is (unknown, answered or withdrawn)."""
        with self._cond:
            pending = self._pending.get(request_id)
        return None if pending is None else pending.recipient

    def answer(self, request_id: str, sender: str, reply: Message) -> Filed | None:
        """File ``sender``'s reply to ``request_id``; None (nothing filed) unless that reply is awaited from
        ``sender`` now (checked again here: a withdrawal may have come between ``expected_from`` and this)."""
        with self._cond:
            pending = self._pending.get(request_id)
            if pending is None or pending.recipient != sender:
                return None
            del self._pending[request_id]
            self._replies[request_id] = reply
            self._cond.notify_all()
            shared = any(p.handle == pending.handle for p in self._pending.values())  # a bundle's other parts
        return Filed(pending, file_done=not shared)

    def fail(self, request_id: str, reply: Message) -> None:
        """File a reply made here for a request that was never sent (an error reply for Flower's strategy)."""
        with self._cond:
            self._replies[request_id] = reply
            self._cond.notify_all()

    def take(self, request_ids: Collection[str]) -> list[Message]:
        """Take out the replies to ``request_ids`` that are in."""
        with self._cond:
            return [self._replies.pop(mid) for mid in list(self._replies) if mid in request_ids]

    def wait(self, request_ids: Collection[str], timeout: float) -> None:
        """Wait up to ``timeout`` seconds unless a reply to one of ``request_ids`` is in already."""
        with self._cond:
            if not any(mid in self._replies for mid in request_ids):
                self._cond.wait(timeout)

    def withdraw(self, request_ids: Iterable[str]) -> tuple[list[Pending], list[str]]:
        """Stop awaiting replies to ``request_ids``: the requests withdrawn, and the handles of their files
        no request still pending shares (those can be deleted)."""
        with self._cond:
            gone = [self._pending.pop(mid) for mid in list(request_ids) if mid in self._pending]
            still = {p.handle for p in self._pending.values()}  # a bundle goes once none of its parts waits
        return gone, sorted({pending.handle for pending in gone} - still)

    def awaited_senders(self) -> set[str]:
        """The datasites that still owe a reply."""
        with self._cond:
            return {pending.recipient for pending in self._pending.values()}

    def unanswered(self) -> list[str]:
        """Ids of every request still awaiting its reply."""
        with self._cond:
            return list(self._pending)

    def blobs_in_use(self) -> set[str]:
        """Shared blobs some pending request still refers to."""
        with self._cond:
            return {loc for pending in self._pending.values() for loc in pending.blobs}
