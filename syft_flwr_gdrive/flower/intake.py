"""What comes back to the server: one shared poll, each verified reply decoded and filed, each stop-ack noted.

Threads: Flower's legacy path waits for replies in one thread per client, and asks for node ids in
yet another. All of them share this one poller: a poll happens when the shared ``PollSchedule`` says
it is due, whichever thread asks (a thread that finds another polling goes back to waiting: it is
woken when replies arrive), so storage calls per poll stay O(1) whatever the number of clients.
Answered request files are deleted in the background, off the path of the strategy that waits.

One dishonest datasite must not silence, stall or impersonate an honest one:

* a reply is taken only under the message id derived for the request it answers and its own sender
  (``replies.reply_id_for``: every datasite can compute every other's), and only if that request awaits
  a reply from that sender. Both are asked from the listing, before anything is downloaded
  (``_accept``); a reply that can never be taken is refused for good with one log line;
* a reply is decoded, and the shared blob parts it names fetched, on a thread of its own, at most one
  per datasite at a time, within a deadline (``reply_wait``): a reply whose parts never come costs its
  sender that reply, never the others their poll. Its message id is recorded as handled only once the
  reply is filed, so the same reply sent again (a new file under the same id) is read again;
* a stop-ack of a stop sent to a datasite's refused key (see ``stop``) is taken from the listing: it is
  signed with a key this server does not trust, so it is never opened; all it does is have that stop
  file deleted.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from syft_flwr_gdrive.base.accounts import node_id_for
from syft_flwr_gdrive.base.logsafe import printable
from syft_flwr_gdrive.base.routing import KIND_REPLY
from syft_flwr_gdrive.base.routing import KIND_STOP_ACK
from syft_flwr_gdrive.flower.codec import PayloadError
from syft_flwr_gdrive.flower.codec import decode_message
from syft_flwr_gdrive.flower.poll_schedule import PollSchedule
from syft_flwr_gdrive.flower.replies import ReplyStore
from syft_flwr_gdrive.flower.replies import reply_id_for
from syft_flwr_gdrive.flower.shared_blobs import BlobCache
from syft_flwr_gdrive.flower.tally import Tally
from syft_flwr_gdrive.flower.tally import error_type
from syft_flwr_gdrive.mailbox.delivery import Delivery
from syft_flwr_gdrive.mailbox.mailbox import Mailbox
from syft_flwr_gdrive.mailbox.skips import Skip
from syft_flwr_gdrive.mailbox.skips import Verdict
from syft_flwr_gdrive.transport.contract import AccessLost
from syft_flwr_gdrive.transport.contract import Routing
from syft_flwr_gdrive.transport.contract import TransportError
from syft_flwr_gdrive.transport.contract import access_lost_in
from syft_flwr_gdrive.transport.contract import brief
from syft_flwr_gdrive.transport.contract import raise_if_access_lost

logger = logging.getLogger(__name__)

DELETE_WORKERS = 4  # answered request files deleted side by side, in the background
CLOSE_WAIT = 1.0  # seconds close gives a reply still fetching its parts (its thread is a daemon: not waited for)
NOT_ITS_ID = (
    "its message id is not the one derived from the request it answers and its sender: another datasite's "
    "reply id? (refused, so that the datasite whose id it is still gets its reply read)"
)


class ReplyIntake:
    """The server's poller: files replies in a ``ReplyStore``, hands stop-acks to ``acknowledged``."""

    def __init__(
        self,
        mailbox: Mailbox,
        replies: ReplyStore,
        *,
        schedule: PollSchedule,
        tally: Tally,
        run_id: Callable[[], int],
        reply_wait: Callable[[], float],
        acknowledged: Callable[[str], str | None],
        stopped_unverified: Callable[[str, str], bool] = lambda datasite, stop_id: False,
        awaited: Callable[[], set[str]] = set,
    ) -> None:
        """``awaited()`` names the datasites that owe a reply or a stop-ack now; ``run_id()`` is the run replies
        must belong to; ``reply_wait()`` bounds the wait for a reply's blob
        parts still uploading; ``acknowledged(datasite)`` notes a stop-ack and names a stop file to delete;
        ``stopped_unverified(datasite, stop_id)`` says whether ``stop_id`` is a stop sent to ``datasite``'s
        refused key (its acknowledgement is taken from the listing)."""
        self.mailbox = mailbox
        self.replies = replies
        self.schedule = schedule
        self.tally = tally
        self._run_id = run_id
        self._reply_wait = reply_wait
        self._acknowledged = acknowledged
        self._stopped_unverified = stopped_unverified
        self._awaited = awaited
        self._polling = threading.Lock()  # held by the one thread polling now
        self._deleter = ThreadPoolExecutor(max_workers=DELETE_WORKERS, thread_name_prefix="grid-delete")
        # Replies never need shared blobs, but one that names a blob gets the same checks as a client's fetch.
        self._blobs = BlobCache(mailbox, max_bytes=mailbox.max_payload, max_items=0)
        self._lock = threading.Lock()  # guards _fetching, _threads and _closed
        self._fetching: dict[str, str] = {}  # datasite -> the id of its reply being decoded now (one at a time)
        self._threads: set[threading.Thread] = set()
        self._closed = False
        self._lost: AccessLost | None = None  # seen by a reply's thread; raised by the next poll

    def poll_if_due(self, *, force: bool = False) -> None:
        """Poll once if the schedule says a poll is due (or ``force``), unless another thread polls right now.

        A failure is logged and the next poll tries again, except ``AccessLost`` (the storage refuses this server
        for good), which is raised: no later poll can succeed."""
        if self._lost is not None:
            raise self._lost
        if not self._polling.acquire(blocking=False):
            return  # another thread is polling right now; it will wake us
        try:
            if not force and not self.schedule.is_due():
                return
            started = time.monotonic()
            self.schedule.polled(started)
            # only the datasites that owe a reply or an ack are asked for their next file by id (none owing:
            # everyone's); at N = 100 the last replies come 100 times cheaper
            self.mailbox.await_from(self._awaited() or None)
            result = self.mailbox.poll(accept=self._accept)
            for delivery in result.deliveries:
                try:
                    self._take(delivery, started)
                except Exception as exc:  # noqa: BLE001 - one bad reply must not cost the others their poll
                    raise_if_access_lost(exc)  # no later poll can succeed
                    logger.warning(
                        "reply %s from %s could not be handled (%s); skipped",
                        delivery.envelope.message_id,
                        delivery.envelope.sender,
                        printable(exc),
                    )
        except Exception as exc:
            raise_if_access_lost(exc)  # no later poll can succeed
            logger.warning("poll failed (%s); retrying at the next poll interval", exc)
        finally:
            self._polling.release()

    def close(self) -> None:
        """Wait (briefly) for replies still being fetched, then for the background deletes of answered requests."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        deadline = time.monotonic() + CLOSE_WAIT
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._deleter.shutdown(wait=True)

    # -- before anything is downloaded ----------------------------------------------------

    def _accept(self, routing: Routing) -> str | Verdict | None:
        """The server acts only on replies and stop-acks of its run, each under the id derived for its sender, and
        on a reply only while its request awaits it from that sender (asked before anything is downloaded)."""
        run_id = self._run_id()
        if routing.run_id != run_id:
            return f"belongs to run {routing.run_id}, this is run {run_id}"
        if routing.kind not in (KIND_REPLY, KIND_STOP_ACK):
            return f"a {routing.kind!r} message; the server only acts on replies"
        if routing.message_id != reply_id_for(routing.reply_to, routing.sender):
            return Verdict(Skip.REFUSE, NOT_ITS_ID)
        if routing.kind == KIND_STOP_ACK:
            return self._listed_ack(routing)
        expected = self.replies.expected_from(routing.reply_to)
        if expected is None:
            if self.replies.was_sent(routing.reply_to):
                return Verdict(Skip.REFUSE, "a late reply: its request was withdrawn (timed out) or answered")
            return "it answers no request this server has recorded as sent (yet)"
        if expected != routing.sender:
            return Verdict(Skip.REFUSE, f"it answers a request sent to {expected}, not to its sender")
        with self._lock:
            fetching = self._fetching.get(routing.sender)
        if fetching == routing.message_id:
            return Verdict(Skip.HELD, "being fetched")
        if fetching is not None:
            return f"{routing.sender}'s reply {fetching} is still being fetched (one reply per datasite at a time)"
        return None

    def _listed_ack(self, routing: Routing) -> Verdict | None:
        """A stop-ack: opened and verified like any message, unless it acknowledges a stop sent to the sender's
        refused key; that one is signed with a key this server does not trust, so it is taken from its listing
        (the storage says the datasite's account wrote it, naming that stop) and never opened."""
        if not self._stopped_unverified(routing.sender, routing.reply_to):
            return None
        if self.mailbox.mark_handled(routing.message_id, routing.sender, routing.created_at):
            logger.info(
                "stop acknowledged by %s (taken from the listing: signed with its changed key, not opened)",
                routing.sender,
            )
            self._done(self._acknowledged(routing.sender), time.monotonic())
        return Verdict(Skip.HELD, "acknowledged")

    # -- after the download -----------------------------------------------------------------

    def _take(self, delivery: Delivery, polled: float) -> None:
        """Note a stop-ack now; hand a reply to a thread of its own (``polled``: when the poll that found it began)."""
        env = delivery.envelope
        if env.kind == KIND_STOP_ACK:
            try:
                if self.mailbox.mark_handled(env.message_id, env.sender, env.created_at):
                    self._done(self._acknowledged(env.sender), polled)
            finally:
                delivery.close()
            return
        with self._lock:
            if self._closed or env.sender in self._fetching:  # its datasite's other reply of this poll goes first
                delivery.close()
                return  # read again at a later poll
            self._fetching[env.sender] = env.message_id
            thread = threading.Thread(
                target=self._fetch_and_file, args=(delivery, polled), name="grid-reply", daemon=True
            )
            self._threads.add(thread)
        try:
            thread.start()
        except BaseException:
            self._finished(env.sender, thread)
            delivery.close()
            raise

    def _fetch_and_file(self, delivery: Delivery, polled: float) -> None:
        """Decode a reply (fetching the blob parts it names, within the reply wait) and file it; on its own thread."""
        env = delivery.envelope
        try:
            # its file's delete is queued before this thread counts as finished: close waits for running threads,
            # then for the queued deletes
            self._done(self._file(delivery, min(env.created_at + env.ttl, time.time() + self._reply_wait())), polled)
        except Exception as exc:  # noqa: BLE001 - one bad reply costs its sender that reply, nothing more
            lost = access_lost_in(exc)
            if lost is not None:  # the storage refuses this server, not the reply: the next poll raises it
                self._lost = self._lost or lost
                return
            self._refuse(delivery, f"reply {env.message_id} from {env.sender} could not be handled ({printable(exc)})")
        finally:
            delivery.close()
            self._finished(env.sender, threading.current_thread())

    def _finished(self, datasite: str, thread: threading.Thread) -> None:
        """``datasite``'s reply is no longer being fetched: its next one may be."""
        with self._lock:
            self._fetching.pop(datasite, None)
            self._threads.discard(thread)

    def _done(self, handle: str | None, polled: float) -> None:
        """A request (or stop) answered: delete its file in the background; the poll that began at ``polled``
        found something (learn how long replies take, stay fast for the rest)."""
        if handle is None:
            return
        self.schedule.arrived(polled)
        self._delete(handle)

    def _refuse(self, delivery: Delivery, reason: str) -> None:
        """This file of a reply is never read again (one log line); its message id is not recorded as handled,
        so the same reply sent again in a new file is read."""
        self.mailbox.skips.refuse(delivery.posting, reason)

    def _delete(self, handle: str) -> None:
        """Delete an answered request (or acknowledged stop) file, in the background."""
        try:
            self._deleter.submit(self._delete_answered, [handle])
        except RuntimeError:  # closed meanwhile: the next run's start (or `clean`) removes it
            logger.info("an answered request file is left for the next run's clean-up")

    def _delete_answered(self, handles: list[str]) -> None:
        try:
            self.mailbox.delete_own(handles)
        except Exception as exc:  # the next run's start (or `clean`) removes them
            logger.warning("could not delete %d answered request file(s): %s", len(handles), brief(exc))

    def _file(self, delivery: Delivery, deadline: float) -> str | None:
        """File a verified reply; returns my request handle to delete, if any."""
        env = delivery.envelope
        try:
            message = decode_message(
                delivery.open_payload(),
                env.size,
                codecs=env.codecs,
                max_bytes=self.mailbox.max_payload,
                # a reply's model in parts may still be uploading: wait for each part, until the deadline
                fetch_blob=functools.partial(self._blobs.fetch, owner=env.sender, wait_until=deadline),
            )
        except (PayloadError, TransportError) as exc:
            raise_if_access_lost(exc)  # not the reply's fault: no later call can succeed (see _fetch_and_file)
            self._refuse(
                delivery, f"reply {env.message_id} from {env.sender} is not a Flower message ({printable(exc)})"
            )
            return None
        meta = message.metadata
        if meta.reply_to_message_id != env.reply_to or meta.run_id != self._run_id():
            self._refuse(delivery, f"reply {env.message_id} from {env.sender} disagrees with its envelope")
            return None
        if meta.src_node_id != node_id_for(env.sender):
            self._refuse(delivery, f"reply {env.message_id} claims node {meta.src_node_id} but comes from {env.sender}")
            return None
        if not self.mailbox.mark_handled(env.message_id, env.sender, env.created_at):
            return None
        filed = self.replies.answer(env.reply_to, env.sender, message)
        if filed is None:
            logger.info(
                "late reply %s from %s ignored (its request was withdrawn meanwhile)", env.message_id, env.sender
            )
            return None
        pending = filed.pending
        if message.has_error():
            if pending.message_type and message.metadata.message_type != pending.message_type:
                # A refusal of an unread request cannot know the request's type: give strategies the real one.
                message.metadata.__dict__["_message_type"] = pending.message_type
            kind = error_type(message)
            self.tally.reply(pending.round, env.sender, kind)
            logger.warning(
                "round %s: %s answered %s with an error: %s",
                pending.round,
                env.sender,
                pending.message_type or "?",
                kind,
            )
        else:
            self.tally.reply(pending.round, env.sender)
        return pending.handle if filed.file_done else None
