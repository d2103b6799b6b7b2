"""What comes back to the server: one shared poll, each verified reply decoded and filed, each stop-ack noted.

Threads: Flower's legacy path waits for replies in one thread per client, and asks for node ids in
yet another. All of them share this one poller: a poll happens when the shared ``PollSchedule`` says
it is due, whichever thread asks (a thread that finds another polling goes back to waiting: it is
woken when replies arrive), so storage calls per poll stay O(1) whatever the number of clients.
Answered request files are deleted in the background, off the path of the strategy that waits.
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
from syft_flwr_gdrive.flower.shared_blobs import BlobCache
from syft_flwr_gdrive.flower.tally import Tally
from syft_flwr_gdrive.flower.tally import error_type
from syft_flwr_gdrive.mailbox.delivery import Delivery
from syft_flwr_gdrive.mailbox.mailbox import Mailbox
from syft_flwr_gdrive.transport.contract import Routing
from syft_flwr_gdrive.transport.contract import TransportError
from syft_flwr_gdrive.transport.contract import brief
from syft_flwr_gdrive.transport.contract import raise_if_access_lost

logger = logging.getLogger(__name__)

DELETE_WORKERS = 4  # answered request files deleted side by side, in the background


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
    ) -> None:
        """``run_id()`` is the run replies must belong to; ``reply_wait()`` bounds the wait for a reply's blob
        parts still uploading; ``acknowledged(datasite)`` notes a stop-ack and names a stop file to delete."""
        self.mailbox = mailbox
        self.replies = replies
        self.schedule = schedule
        self.tally = tally
        self._run_id = run_id
        self._reply_wait = reply_wait
        self._acknowledged = acknowledged
        self._polling = threading.Lock()  # held by the one thread polling now
        self._deleter = ThreadPoolExecutor(max_workers=DELETE_WORKERS, thread_name_prefix="grid-delete")
        # Replies never need shared blobs, but one that names a blob gets the same checks as a client's fetch.
        self._blobs = BlobCache(mailbox, max_bytes=mailbox.max_payload, max_items=0)

    def poll_if_due(self, *, force: bool = False) -> None:
        """Poll once if the schedule says a poll is due (or ``force``), unless another thread polls right now.

        A failure is logged and the next poll tries again, except ``AccessLost`` (the storage refuses this server
        for good), which is raised: no later poll can succeed."""
        if not self._polling.acquire(blocking=False):
            return  # another thread is polling right now; it will wake us
        try:
            if not force and not self.schedule.is_due():
                return
            started = time.monotonic()
            self.schedule.polled(started)
            result = self.mailbox.poll(accept=self._accept)
            answered: list[str] = []
            for delivery in result.deliveries:
                try:
                    handle = self._take(delivery)
                except Exception as exc:  # noqa: BLE001 - one bad reply must not cost the others their poll
                    raise_if_access_lost(exc)  # no later poll can succeed
                    logger.warning(
                        "reply %s from %s could not be handled (%s); skipped",
                        delivery.envelope.message_id,
                        delivery.envelope.sender,
                        printable(exc),
                    )
                    continue
                if handle:
                    answered.append(handle)
            if answered:  # off the critical path: the waiting strategy has its replies already
                self._deleter.submit(self._delete_answered, answered)
                self.schedule.arrived(started)  # learn how long replies take; stay fast for the rest
        except Exception as exc:
            raise_if_access_lost(exc)  # no later poll can succeed
            logger.warning("poll failed (%s); retrying at the next poll interval", exc)
        finally:
            self._polling.release()

    def close(self) -> None:
        """Wait for the background deletes of answered requests."""
        self._deleter.shutdown(wait=True)

    def _accept(self, routing: Routing) -> str | None:
        """The server acts only on replies and stop-acks of its run (asked before anything is downloaded)."""
        run_id = self._run_id()
        if routing.run_id != run_id:
            return f"belongs to run {routing.run_id}, this is run {run_id}"
        if routing.kind not in (KIND_REPLY, KIND_STOP_ACK):
            return f"a {routing.kind!r} message; the server only acts on replies"
        return None

    def _delete_answered(self, handles: list[str]) -> None:
        try:
            self.mailbox.delete_own(handles)
        except Exception as exc:  # the next run's start (or `clean`) removes them
            logger.warning("could not delete %d answered request file(s): %s", len(handles), brief(exc))

    def _take(self, delivery: Delivery) -> str | None:
        """File a verified reply or stop-ack; returns my request handle to delete, if any."""
        try:
            return self._file(delivery)
        finally:
            delivery.close()

    def _file(self, delivery: Delivery) -> str | None:
        env = delivery.envelope
        if not self.mailbox.mark_handled(env.message_id):
            return None
        if env.kind == KIND_STOP_ACK:
            return self._acknowledged(env.sender)
        try:
            message = decode_message(
                delivery.open_payload(),
                env.size,
                codecs=env.codecs,
                max_bytes=self.mailbox.max_payload,
                # a reply's model in parts may still be uploading: wait for each part, within the reply wait
                fetch_blob=functools.partial(
                    self._blobs.fetch,
                    owner=env.sender,
                    wait_until=min(env.created_at + env.ttl, time.time() + self._reply_wait()),
                ),
            )
        except (PayloadError, TransportError) as exc:
            raise_if_access_lost(exc)  # no later poll can succeed
            logger.warning(
                "reply %s from %s is not a Flower message (%s); skipped", env.message_id, env.sender, printable(exc)
            )
            return None
        meta = message.metadata
        if meta.reply_to_message_id != env.reply_to or meta.run_id != self._run_id():
            logger.warning("reply %s from %s disagrees with its envelope; skipped", env.message_id, env.sender)
            return None
        if meta.src_node_id != node_id_for(env.sender):
            logger.warning(
                "reply %s claims node %d but comes from %s; skipped", env.message_id, meta.src_node_id, env.sender
            )
            return None
        expected = self.replies.expected_from(env.reply_to)
        if expected is not None and expected != env.sender:
            logger.warning(
                "reply to %s came from %s, but it was sent to %s; skipped", env.reply_to, env.sender, expected
            )
            return None
        filed = self.replies.answer(env.reply_to, env.sender, message)
        if filed is None:
            logger.info("late or unknown reply %s from %s ignored", env.message_id, env.sender)
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
