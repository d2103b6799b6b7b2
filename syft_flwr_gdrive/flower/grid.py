"""A Flower ``Grid`` over any transport.

Flower's server side (legacy ``server_fn`` strategies and the Message-API
``@app.main()`` strategies alike) talks only to a ``Grid``. This one turns
pushes into one ``Mailbox.push`` (the mailbox decides: one bundle for many
datasites, or one file each) and pulls into the replies its poll filed.

The parts it is made of, each in a module of its own: the reply store
(``replies``: pending requests and their replies), the shared poll that fills
it (``intake``), the stop protocol (``stop``) and the push items
(``instructions``). What stays here is Flower's ``Grid`` and the run's
datasites (who is excluded, and why).

Timeout precedence (documented in the README): the wait for replies is
``min(caller's timeout, SYFT_FLWR_MSG_TIMEOUT)``; a caller's ``None`` means
``SYFT_FLWR_MSG_TIMEOUT``. A strategy's generous default (Flower's FedAvg uses
3600 s) therefore cannot silently stretch a run past the configured limit;
raise ``SYFT_FLWR_MSG_TIMEOUT`` to wait longer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from collections.abc import Sequence

from flwr.app import Error
from flwr.app import Message
from flwr.app import RecordDict
from flwr.serverapp import Grid
from flwr.supercore.run import Run

from syft_flwr_gdrive.base.accounts import node_id_for
from syft_flwr_gdrive.base.routing import KIND_REQUEST
from syft_flwr_gdrive.crypto.failures import MissingPeerKey
from syft_flwr_gdrive.flower.coalesce import Coalescer
from syft_flwr_gdrive.flower.codec import SERVER_NODE_ID
from syft_flwr_gdrive.flower.instructions import Instructions
from syft_flwr_gdrive.flower.intake import ReplyIntake
from syft_flwr_gdrive.flower.poll_schedule import PollPolicy
from syft_flwr_gdrive.flower.poll_schedule import PollSchedule
from syft_flwr_gdrive.flower.replies import Pending
from syft_flwr_gdrive.flower.replies import ReplyStore
from syft_flwr_gdrive.flower.shared_blobs import BlobPlacer
from syft_flwr_gdrive.flower.stop import StopProtocol
from syft_flwr_gdrive.flower.tally import Tally
from syft_flwr_gdrive.mailbox.envelope import STOP_ACK_WAIT
from syft_flwr_gdrive.mailbox.mailbox import Mailbox
from syft_flwr_gdrive.mailbox.mailbox import new_message_id
from syft_flwr_gdrive.mailbox.outgoing import Outgoing
from syft_flwr_gdrive.transport.contract import AccessLost
from syft_flwr_gdrive.transport.contract import access_lost_in
from syft_flwr_gdrive.transport.contract import brief

logger = logging.getLogger(__name__)

# Error code of the replies the grid makes up for requests it could not deliver (excluded datasite,
# failed send): Flower's strategies then count a failure for that node and go on with the others.
UNDELIVERED_ERROR_CODE = 2
NO_KEY = "no trusted public key (its key changed? see `syft-flwr-gdrive trust`)"
KEY_REFUSED = (
    "it publishes a different public key than the one pinned for it, refused (a reinstall? compare fingerprints "
    "with its data owner, then `syft-flwr-gdrive trust --accept` it on this server's machine)"
)


class TransportGrid(Grid):
    """Flower Grid whose messages travel through a ``Mailbox``."""

    def __init__(
        self,
        mailbox: Mailbox,
        datasites: Sequence[str],
        *,
        msg_timeout: float,
        poll_interval: float,
        poll_schedule: PollSchedule | None = None,
    ) -> None:
        self.mailbox = mailbox
        self.msg_timeout = msg_timeout
        self.poll_interval = poll_interval
        self._email_by_node = {node_id_for(e): e.lower() for e in datasites}
        if len(self._email_by_node) != len({e.lower() for e in datasites}):
            raise ValueError("two datasite emails map to the same node id; use distinct emails")
        self._run: Run | None = None
        self._lock = threading.Lock()  # guards excluded (written by pushes from several threads)
        self.excluded: dict[str, str] = {}  # datasite -> why it is left out of this run
        # Set when the storage refused this server for good (a sign-in Google refused, a daily cap): from then on
        # every Grid call raises it, so the ServerApp ends at once whatever its strategy does with a failure.
        self.access_lost: AccessLost | None = None
        self.run_info: dict | None = None  # what every request carries for the client's Context (run config, app)
        self.tally = Tally()
        self.blobs = BlobPlacer(mailbox)
        self._schedule = poll_schedule or PollSchedule(PollPolicy(poll_interval))
        self._replies = ReplyStore()
        self._stops = StopProtocol(mailbox, self.blobs, self._schedule, poll=lambda: self._poll_if_due(force=True))
        self._intake = ReplyIntake(
            mailbox,
            self._replies,
            schedule=self._schedule,
            tally=self.tally,
            run_id=lambda: self.run_id,
            reply_wait=lambda: self.msg_timeout,
            acknowledged=self._stops.acknowledged,
            stopped_unverified=self._stops.sent_unverified,
            awaited=lambda: self._replies.awaited_senders() | self._stops.owed(),
        )
        # The legacy path's one-message calls, made side by side from a thread pool, become one push.
        self._coalescer: Coalescer[Message] = Coalescer(
            self.push_messages, self._complete, result_timeout=msg_timeout + 60
        )
        self._closed = False

    # -- run ------------------------------------------------------------------------

    def set_run(self, run: Run | int) -> None:
        """Accepts a ``Run`` (the ABC) or a bare run id (the built-in grids)."""
        if isinstance(run, Run):
            self._run = run
        elif isinstance(run, int) and not isinstance(run, bool) and run >= 0:
            self._run = Run.create_empty(run)
        else:
            raise TypeError(f"set_run expects a flwr Run or a non-negative int run id, got {type(run).__name__}")

    @property
    def run(self) -> Run:
        if self._run is None:
            raise RuntimeError("No run set: call grid.set_run(run_id) before using the grid.")
        return Run(**vars(self._run))

    @property
    def run_id(self) -> int:
        return self.run.run_id

    # -- Grid ABC ---------------------------------------------------------------------

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        """Every datasite, excluded ones too: they answer at once with an error reply, so a strategy
        counts them as failures and goes on instead of waiting forever for enough nodes."""
        return list(self._email_by_node)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        self._check_access()
        run_id = self.run_id
        prepared: list[tuple[Message, str]] = []
        for msg in messages:
            recipient = self._check_instruction(msg)
            msg.metadata.__dict__["_message_id"] = new_message_id()
            msg.metadata.__dict__["_run_id"] = run_id
            msg.metadata.__dict__["_src_node_id"] = SERVER_NODE_ID
            prepared.append((msg, recipient))
        self.tally.begin_push(msg for msg, _ in prepared)
        instructions = Instructions(self.blobs, self.run_info)
        by_id: dict[str, Message] = {}
        items: list[Outgoing] = []
        for msg, recipient in prepared:
            if recipient in self.excluded:
                self._undelivered(msg, recipient, f"datasite excluded: {self.excluded[recipient]}", excluded=True)
            else:
                by_id[msg.metadata.message_id] = msg
                items.append(instructions.item(msg, recipient))

        def stored(handle: str, sent: Sequence[Outgoing]) -> None:
            """Requests count as sent once the blobs they name are stored; recorded at once (replies may follow)."""
            blobs = dict.fromkeys(loc for item in sent for loc in instructions.blobs_of(item.message_id))
            self._await_blobs(handle, blobs)
            for item in sent:
                msg = by_id[item.message_id]
                pending = Pending(
                    item.recipient,
                    handle,
                    item.created_at + item.ttl,
                    tuple(instructions.blobs_of(item.message_id)),
                    self.tally.round_of(msg),
                    msg.metadata.message_type,
                )
                self._replies.sent(item.message_id, pending)

        try:
            for pushed, item in zip(self.mailbox.push(KIND_REQUEST, run_id, items, on_stored=stored), items):
                if isinstance(pushed.error, MissingPeerKey):
                    self.exclude(item.recipient, NO_KEY)
                    msg = by_id[item.message_id]
                    self._undelivered(
                        msg, item.recipient, f"datasite excluded: {self.excluded[item.recipient]}", excluded=True
                    )
                elif pushed.error is not None:  # refused for good after retries: this request fails, the run goes on
                    self._lose_access(pushed.error)
                    self._not_sent(by_id[item.message_id], item.recipient, pushed.error)
        finally:
            self._schedule.expect()  # replies are due: poll fast, backing off toward the interval
            self.blobs.end_push()
            if self.access_lost is None:
                self._collect_blobs()
        self._check_access()
        return [msg.metadata.message_id for msg, _ in prepared]

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        self._check_access()
        self._poll_if_due()
        return self._replies.take(set(message_ids))

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        self._check_access()
        wait = self.effective_timeout(timeout)
        batch = list(messages)
        self._check_instructions(batch)  # a bad message fails its own caller, not the batch it would join
        waiting = set(self._coalescer.submit(batch))
        # The requests' arrays are the app's to free while the replies are awaited (else a 2x peak): no local
        # of this frame may keep one (a loop variable over the batch would hold its last message).
        del batch
        deadline = time.monotonic() + wait
        replies: list[Message] = []
        while waiting:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._replies.wait(waiting, min(max(0.01, self._schedule.due_in()), remaining))
            for msg in self.pull_messages(waiting):
                replies.append(msg)
                waiting.discard(msg.metadata.reply_to_message_id)
        if waiting:
            logger.warning(
                "%d of %d replies did not arrive within %.0fs (SYFT_FLWR_MSG_TIMEOUT / strategy timeout); "
                "their requests are withdrawn",
                len(waiting),
                len(waiting) + len(replies),
                wait,
            )
            self._withdraw(waiting)
        # A canonical order (by node id), not arrival order: strategies sum floats in this order, and
        # Flower's node sampling shuffles requests, so a seeded run must see one order to be repeatable.
        return sorted(replies, key=lambda m: (m.metadata.src_node_id, m.metadata.reply_to_message_id))

    # -- the run's datasites ----------------------------------------------------------

    def effective_timeout(self, timeout: float | None) -> float:
        """See the module docstring: the smaller of the caller's and our configured timeout."""
        if timeout is None:
            return self.msg_timeout
        return max(0.0, min(float(timeout), self.msg_timeout))

    def email_of(self, node_id: int) -> str:
        try:
            return self._email_by_node[node_id]
        except KeyError:
            raise ValueError(f"node id {node_id} is not one of this run's datasites") from None

    def exclude(self, email: str, reason: str) -> None:
        """Leave a datasite out of the rest of the run (reported, never sent to again)."""
        email = email.lower()
        with self._lock:
            if email in self.excluded:
                return
            self.excluded[email] = reason
        logger.warning("datasite %s is excluded from this run: %s", email, reason)

    def await_keys(self, timeout: float) -> set[str]:
        """With encryption on, wait (bounded) for every datasite's trusted public key; exclude the rest.

        Returns the datasites left out. One datasite that never started, or whose key changed,
        no longer stops the run for the others; one whose changed key was refused is left out as soon
        as that is seen (its key will not become trusted by waiting).
        """
        sealer = self.mailbox.sealer
        everyone = set(self._email_by_node.values())
        if sealer is None:
            return set()
        deadline = time.monotonic() + timeout
        waiting = {e for e in everyone if not sealer.knows(e)}
        if waiting:
            logger.info(
                "waiting up to %.0fs for the public keys of %s (are their clients running?)", timeout, sorted(waiting)
            )
        refused: set[str] = set()
        while waiting and time.monotonic() < deadline:
            self._poll_if_due(force=True)
            waiting = {e for e in waiting if not sealer.knows(e)}
            for email in sorted(e for e in waiting if sealer.refused(e) is not None):
                self.exclude(email, KEY_REFUSED)
                refused.add(email)
            waiting -= refused
            if waiting:
                time.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())))
        for email in sorted(waiting):
            self.exclude(
                email,
                f"no trusted public key within {timeout:.0f}s: its client is not running, or its key "
                "changed (see `syft-flwr-gdrive trust`)",
            )
        return waiting | refused

    def send_stop_signal(
        self, group_id: str = "final", reason: str = "Server stopped", *, wait: float | None = None
    ) -> set[str]:
        """Tell every reachable datasite this run is over; wait (bounded) for their acknowledgements.

        An excluded datasite whose changed key was refused is stopped too, with a stop sealed to the key it
        publishes now (a stop holds no secret; see ``stop``), so it does not poll forever. Other excluded
        datasites are skipped: nothing can be sealed for a peer that published no key.

        Returns the datasites that acknowledged. Stop files of datasites that
        did not are left for the next run or ``syft-flwr-gdrive clean``.
        """
        sealer = self.mailbox.sealer
        refused = {
            email: keys for email in self.excluded if sealer is not None and (keys := sealer.refused(email)) is not None
        }
        reachable = {
            nid: email for nid, email in self._email_by_node.items() if email not in self.excluded or email in refused
        }
        # Acks travel stop -> client poll -> ack -> server poll, each subject to Drive's listing lag:
        # wait long enough for that (returning as soon as every datasite acknowledged).
        if wait is None:
            wait = min(self.msg_timeout, max(10 * self.poll_interval, STOP_ACK_WAIT))
        return self._stops.stop(
            self.run_id,
            reachable,
            group_id=group_id,
            reason=reason,
            wait=wait,
            run_info=self.run_info,
            refused_keys=refused,
        )

    # -- housekeeping -------------------------------------------------------------------

    def remove_stale_files(self) -> int:
        """Delete my own message files of other runs (crashed or finished earlier runs)."""
        listing = self.mailbox.stored()
        stale = [p.handle for p in listing.outbound if p.routing is None or p.routing.run_id != self.run_id]
        stale += self.mailbox.my_blobs()
        if stale:
            logger.info("removing %d message file(s) left by earlier runs", len(stale))
            self.mailbox.delete_own(stale)
        return len(stale)

    def close(self) -> None:
        """Withdraw unanswered requests, finish the background deletes, and delete the shared blobs."""
        if self._closed:
            return
        self._closed = True
        leftover = self._replies.unanswered()
        if leftover:
            self._withdraw(leftover)
        self._intake.close()
        self.blobs.close()
        blobs = self.blobs.locators()
        if self.access_lost is not None:  # nothing can be deleted now; said once rather than per file
            logger.warning(
                "%d request file(s) and %d shared blob(s) of this run stay on the storage; "
                "`syft-flwr-gdrive clean` removes them once it accepts this account again",
                len(leftover),
                len(blobs),
            )
        elif blobs:
            try:
                self.mailbox.delete_own(blobs)
                self.blobs.forget()
            except Exception as exc:
                logger.warning(
                    "could not delete %d shared blob(s): %s; `syft-flwr-gdrive clean` removes them",
                    len(blobs),
                    brief(exc),
                )

    # -- internals ----------------------------------------------------------------------

    def _check_instructions(self, messages: Sequence[Message]) -> None:
        """Each message is an instruction to one of this run's datasites (raises for the first that is not)."""
        for msg in messages:
            self._check_instruction(msg)

    def _check_instruction(self, msg: Message) -> str:
        """The recipient of an instruction the grid can send; ValueError for anything else."""
        recipient = self.email_of(msg.metadata.dst_node_id)
        if msg.metadata.reply_to_message_id:
            raise ValueError("push_messages sends instructions; a message with reply_to_message_id is a reply")
        if msg.metadata.ttl <= 0:
            raise ValueError(f"message ttl must be positive, got {msg.metadata.ttl}")
        return recipient

    def _complete(self, messages: list[Message]) -> bool:
        """Does a gathered push address every datasite still in the run? (then it need not wait for more)"""
        live = {nid for nid, email in self._email_by_node.items() if email not in self.excluded}
        return {m.metadata.dst_node_id for m in messages} >= live

    def _poll_if_due(self, *, force: bool = False) -> None:
        """Poll once if due (the one poll all threads share: see ``intake``)."""
        try:
            self._intake.poll_if_due(force=force)
        except AccessLost as exc:
            self._lose_access(exc)
            raise

    def _lose_access(self, exc: BaseException) -> None:
        """Remember the first ``AccessLost`` behind ``exc``: the storage refuses this server for good."""
        lost = access_lost_in(exc)
        if lost is not None and self.access_lost is None:
            self.access_lost = lost
            logger.error("stopping the run: %s", lost.headline)

    def _check_access(self) -> None:
        """Raise the ``AccessLost`` seen earlier: no call of this run can succeed any more."""
        if self.access_lost is not None:
            raise self.access_lost

    def _not_sent(self, msg: Message, recipient: str, exc: Exception) -> None:
        """Log a request the storage refused for good and file its error reply (the run goes on without it)."""
        why = "the storage refuses this server (above)" if access_lost_in(exc) is not None else brief(exc)
        logger.error(
            "could not send %s (round %s) to %s: %s",
            msg.metadata.message_type,
            self.tally.round_of(msg),
            recipient,
            why,
        )
        self._undelivered(msg, recipient, f"could not be delivered ({type(exc).__name__})", excluded=False)

    def _undelivered(self, msg: Message, recipient: str, reason: str, *, excluded: bool) -> None:
        """File a local error reply for a request that was not sent."""
        rnd = self.tally.round_of(msg)
        if excluded:
            self.tally.excluded(rnd, recipient)
        else:
            self.tally.missing(rnd, recipient)
        self._replies.fail(
            msg.metadata.message_id, Message(Error(code=UNDELIVERED_ERROR_CODE, reason=reason), reply_to=msg)
        )

    def _await_blobs(self, handle: str, blobs: Iterable[str]) -> None:
        """A request may go out while the blobs it names still upload in parts (its recipients fetch each
        part as it lands): it counts as sent once they are stored. If one fails, the request is deleted
        (best effort: a recipient that read it gives up on the missing part) and the error raised."""
        try:
            self.blobs.wait_for(blobs)
        except Exception:
            try:
                self.mailbox.delete_own([handle])
            except Exception as exc:  # the request's recipients then wait for the part until it expires
                logger.warning("could not withdraw a request whose shared blob failed to upload: %s", exc)
            raise

    def _collect_blobs(self) -> None:
        """Delete shared blobs no pending request refers to any more (Drive keeps at most one model)."""
        live = self._replies.blobs_in_use()
        dead = [loc for loc in self.blobs.locators() if loc not in live]
        if dead:
            try:
                self.mailbox.delete_own(dead)
                self.blobs.drop(dead)
            except Exception as exc:  # left for the end of the run, or the next run's clean-up
                logger.warning("could not delete %d old shared blob(s): %s", len(dead), exc)

    def _withdraw(self, message_ids: Iterable[str]) -> None:
        """Delete unanswered requests; each counts as a missing reply of its round."""
        gone, handles = self._replies.withdraw(message_ids)
        for pending in gone:
            self.tally.missing(pending.round, pending.recipient)
        if self.access_lost is not None:
            return  # nothing can be deleted now (``close`` says what stays)
        try:
            self.mailbox.delete_own(handles)
        except Exception as exc:  # leftovers are removed by the next run; never mask the caller's flow
            self._lose_access(exc)
            logger.warning("could not withdraw %d request file(s): %s", len(handles), brief(exc))
