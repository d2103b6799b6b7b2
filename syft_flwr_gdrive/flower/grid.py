"""A Flower ``Grid`` over any transport.

Flower's server side (legacy ``server_fn`` strategies and the Message-API
``@app.main()`` strategies alike) talks only to a ``Grid``. This one turns
pushes into envelope files sent through a ``Mailbox`` and pulls into polls.

Threads: the legacy path calls ``send_and_receive`` from a thread pool (one
thread per client) and ``get_node_ids`` from yet another thread. All of them
share one poller: a poll happens when the shared ``PollSchedule`` says it is
due (every poll interval when idle, faster while replies are due; see
``poll_schedule``) whichever thread asks, and every waiting thread is woken
when replies arrive, so Drive calls per poll stay O(1) whatever the number of
clients.

Timeout precedence (documented in the README): the wait for replies is
``min(caller's timeout, SYFT_FLWR_MSG_TIMEOUT)``; a caller's ``None`` means
``SYFT_FLWR_MSG_TIMEOUT``. A strategy's generous default (Flower's FedAvg uses
3600 s) therefore cannot silently stretch a run past the configured limit;
raise ``SYFT_FLWR_MSG_TIMEOUT`` to wait longer.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from collections.abc import Iterable
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from dataclasses import field

from flwr.app import Error
from flwr.app import Message
from flwr.app import Metadata
from flwr.app import RecordDict
from flwr.app.message.message import make_message
from flwr.common import ConfigRecord
from flwr.serverapp import Grid
from flwr.supercore.constant import SYSTEM_MESSAGE_TYPE
from flwr.supercore.run import Run

from syft_flwr_gdrive.base.accounts import node_id_for
from syft_flwr_gdrive.base.logsafe import printable
from syft_flwr_gdrive.base.routing import KIND_REPLY
from syft_flwr_gdrive.base.routing import KIND_REQUEST
from syft_flwr_gdrive.base.routing import KIND_STOP
from syft_flwr_gdrive.base.routing import KIND_STOP_ACK
from syft_flwr_gdrive.crypto.seal import MissingPeerKey
from syft_flwr_gdrive.flower.coalesce import Coalescer
from syft_flwr_gdrive.flower.codec import CODEC_PARTS
from syft_flwr_gdrive.flower.codec import SERVER_NODE_ID
from syft_flwr_gdrive.flower.codec import PayloadError
from syft_flwr_gdrive.flower.codec import decode_message
from syft_flwr_gdrive.flower.codec import encode_message
from syft_flwr_gdrive.flower.poll_schedule import PollPolicy
from syft_flwr_gdrive.flower.poll_schedule import PollSchedule
from syft_flwr_gdrive.flower.shared_blobs import BlobCache
from syft_flwr_gdrive.flower.shared_blobs import BlobPlacer
from syft_flwr_gdrive.flower.tally import Tally
from syft_flwr_gdrive.flower.tally import error_type
from syft_flwr_gdrive.flower.tally import round_of
from syft_flwr_gdrive.mailbox.delivery import Delivery
from syft_flwr_gdrive.mailbox.envelope import STOP_ACK_WAIT
from syft_flwr_gdrive.mailbox.mailbox import Mailbox
from syft_flwr_gdrive.mailbox.mailbox import new_message_id
from syft_flwr_gdrive.transport.contract import Routing
from syft_flwr_gdrive.transport.contract import TransportError

logger = logging.getLogger(__name__)

# The seed writes "SYSTEM"; flwr 1.41 validates message types and spells it "system".
STOP_MESSAGE_TYPE = SYSTEM_MESSAGE_TYPE
# Error code of the replies the grid makes up for requests it could not deliver (excluded datasite,
# failed send): Flower's strategies then count a failure for that node and go on with the others.
UNDELIVERED_ERROR_CODE = 2
MAX_BUNDLE_PAYLOAD = (
    16 * 1024 * 1024
)  # larger shared content (many arrays under the blob size) goes one file per recipient


@dataclass
class _Pending:
    recipient: str
    handle: str
    expires_at: float
    blobs: tuple[str, ...] = ()  # shared blobs this request refers to
    round: str = "-"
    message_type: str = ""


@dataclass
class _Group:
    """One distinct content of a push: its shared payload, the blobs it names, and who gets it."""

    digest: str
    payload: bytes
    blobs: tuple[str, ...]
    members: list[tuple[Message, str]] = field(default_factory=list)


class TransportGrid(Grid):
    """Flower Grid whose messages travel through a ``Mailbox``."""

    def __init__(
        self,
        mailbox: Mailbox,
        datasites: Sequence[str],
        *,
        msg_timeout: float,
        poll_interval: float,
        send_workers: int = 8,
        poll_schedule: PollSchedule | None = None,
    ) -> None:
        self.mailbox = mailbox
        self.msg_timeout = msg_timeout
        self.poll_interval = poll_interval
        self._email_by_node = {node_id_for(e): e.lower() for e in datasites}
        if len(self._email_by_node) != len({e.lower() for e in datasites}):
            raise ValueError("two datasite emails map to the same node id; use distinct emails")
        self._run: Run | None = None
        self._cond = threading.Condition()
        self._pending: dict[str, _Pending] = {}
        self._replies: dict[str, Message] = {}
        self._stop_acks: set[str] = set()
        self._stop_handles: dict[str, str] = {}  # recipient -> handle of its stop message
        self._poll_lock = threading.Lock()
        self._schedule = poll_schedule or PollSchedule(PollPolicy(poll_interval))
        self._pool = ThreadPoolExecutor(max_workers=send_workers, thread_name_prefix="grid-send")
        self.blobs = BlobPlacer(mailbox)
        # Replies never need shared blobs, but one that names a blob gets the same checks as a client's fetch.
        self._reply_blobs = BlobCache(mailbox, max_bytes=mailbox.max_payload, max_items=0)
        self._coalescer: Coalescer[Message] = Coalescer(
            self.push_messages, self._complete, result_timeout=msg_timeout + 60
        )
        self._closed = False
        self.tally = Tally()
        self.excluded: dict[str, str] = {}  # datasite -> why it is left out of this run
        self.run_info: dict | None = None  # what every request carries for the client's Context (run config, app)

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

    def exclude(self, email: str, reason: str) -> None:
        """Leave a datasite out of the rest of the run (reported, never sent to again)."""
        email = email.lower()
        with self._cond:
            if email in self.excluded:
                return
            self.excluded[email] = reason
        logger.warning("datasite %s is excluded from this run: %s", email, reason)

    def await_keys(self, timeout: float) -> set[str]:
        """With encryption on, wait (bounded) for every datasite's trusted public key; exclude the rest.

        Returns the datasites left out. One datasite that never started, or whose key changed,
        no longer stops the run for the others.
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
        while waiting and time.monotonic() < deadline:
            self._poll_if_due(force=True)
            waiting = {e for e in waiting if not sealer.knows(e)}
            if waiting:
                time.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())))
        for email in sorted(waiting):
            self.exclude(
                email,
                f"no trusted public key within {timeout:.0f}s: its client is not running, or its key "
                "changed (see `syft-flwr-gdrive trust`)",
            )
        return waiting

    def _complete(self, messages: list[Message]) -> bool:
        """Does a gathered push address every datasite still in the run? (then it need not wait for more)"""
        live = {nid for nid, email in self._email_by_node.items() if email not in self.excluded}
        return {m.metadata.dst_node_id for m in messages} >= live

    def email_of(self, node_id: int) -> str:
        try:
            return self._email_by_node[node_id]
        except KeyError:
            raise ValueError(f"node id {node_id} is not one of this run's datasites") from None

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        run_id = self.run_id
        prepared: list[tuple[Message, str]] = []
        for msg in messages:
            recipient = self.email_of(msg.metadata.dst_node_id)
            if msg.metadata.reply_to_message_id:
                raise ValueError("push_messages sends instructions; a message with reply_to_message_id is a reply")
            msg.metadata.__dict__["_message_id"] = new_message_id()
            msg.metadata.__dict__["_run_id"] = run_id
            msg.metadata.__dict__["_src_node_id"] = SERVER_NODE_ID
            if msg.metadata.ttl <= 0:
                raise ValueError(f"message ttl must be positive, got {msg.metadata.ttl}")
            prepared.append((msg, recipient))

        if self.mailbox.bundling:
            return self._push_bundled(prepared)

        def send_one(item: tuple[Message, str]) -> str:
            msg, recipient = item
            if recipient in self.excluded:
                return self._undelivered(
                    msg, recipient, f"datasite excluded: {self.excluded[recipient]}", excluded=True
                )
            try:
                return self._send_request(msg, recipient)
            except MissingPeerKey:
                self.exclude(recipient, "no trusted public key (its key changed? see `syft-flwr-gdrive trust`)")
                return self._undelivered(
                    msg, recipient, f"datasite excluded: {self.excluded[recipient]}", excluded=True
                )
            except Exception as exc:  # Drive refused for good after retries: this request fails, the run goes on
                return self._not_sent(msg, recipient, exc)

        try:
            return list(self._pool.map(send_one, prepared))
        finally:
            self._schedule.expect()  # replies are due: poll fast, backing off toward the interval
            self.blobs.end_push()
            self._collect_blobs()

    def _push_bundled(self, prepared: list[tuple[Message, str]]) -> list[str]:
        """One bundle per distinct content: 1 write for N instructions that differ only in their metadata.

        Contents are compared by the SHA-256 of their encoding (the legacy path makes one RecordDict
        per client; the Message API shares one, encoded once here)."""
        ids = [msg.metadata.message_id for msg, _ in prepared]
        groups: dict[tuple[str, str, str], _Group] = {}
        encoded: dict[int, _Group] = {}  # id(content) -> its encoding (messages stay alive: ids are not reused)
        sealer = self.mailbox.sealer
        try:
            for msg, recipient in prepared:
                if recipient not in self.excluded and sealer is not None and not sealer.knows(recipient):
                    self.exclude(recipient, "no trusted public key (its key changed? see `syft-flwr-gdrive trust`)")
                if recipient in self.excluded:
                    self._undelivered(msg, recipient, f"datasite excluded: {self.excluded[recipient]}", excluded=True)
                    continue
                body = msg.content if msg.has_content() else msg.error
                try:
                    if id(body) not in encoded:
                        encoded[id(body)] = self._encode_shared(msg)
                except Exception as exc:  # a blob upload refused for good: this request fails, the others go on
                    self._not_sent(msg, recipient, exc)
                    continue
                shared = encoded[id(body)]
                key = (shared.digest, msg.metadata.message_type, msg.metadata.group_id)
                groups.setdefault(key, _Group(shared.digest, shared.payload, shared.blobs)).members.append(
                    (msg, recipient)
                )
            for group in groups.values():
                try:
                    self._send_bundle(group)
                except Exception as exc:  # Drive refused for good after retries: these requests fail, the run goes on
                    for msg, recipient in group.members:
                        self._not_sent(msg, recipient, exc)
        finally:
            self._schedule.expect()
            self.blobs.end_push()
            self._collect_blobs()
        return ids

    def _store_bundle(self, group: _Group, kind: str) -> str:
        """One file for the group: each member's Flower metadata is its part's private bytes; returns its handle."""
        members = group.members
        created_at = min(msg.metadata.created_at for msg, _ in members)
        expires_at = max(msg.metadata.created_at + msg.metadata.ttl for msg, _ in members)
        parts = [
            (
                recipient,
                msg.metadata.message_id,
                {
                    "message_id": msg.metadata.message_id,
                    "dst_node_id": msg.metadata.dst_node_id,
                    "created_at": msg.metadata.created_at,
                    "ttl": msg.metadata.ttl,
                    "codecs": [CODEC_PARTS],
                },
            )
            for msg, recipient in members
        ]
        _, handle = self.mailbox.send_bundle(
            kind=kind,
            run_id=self.run_id,
            parts=parts,
            payload=group.payload,
            created_at=created_at,
            ttl=expires_at - created_at,
        )
        return handle

    def _encode_shared(self, msg: Message) -> _Group:
        """The payload every recipient of this content shares: the message with its per-recipient metadata blanked."""
        used: list[str] = []
        place = self.blobs.noting(used)

        meta = msg.metadata
        shell = make_message(
            metadata=Metadata(
                run_id=meta.run_id,
                message_id="",
                src_node_id=meta.src_node_id,
                dst_node_id=0,
                reply_to_message_id="",
                group_id=meta.group_id,
                created_at=0.0,
                ttl=1.0,
                message_type=meta.message_type,
            ),
            content=msg.content if msg.has_content() else None,
            error=msg.error if msg.has_error() else None,
        )
        payload = b"".join(bytes(s) for s in encode_message(shell, place_blob=place, run_info=self.run_info))
        return _Group(hashlib.sha256(payload).hexdigest(), payload, tuple(used))

    def _send_bundle(self, group: _Group) -> None:
        """Seal the shared payload once for every recipient and store it as one file."""
        if len(group.payload) > MAX_BUNDLE_PAYLOAD:  # many small arrays: keep bundles small, one file each
            for msg, recipient in group.members:
                try:
                    self._send_request(msg, recipient)
                except Exception as exc:  # as in the unbundled path: this request fails, the others go on
                    self._not_sent(msg, recipient, exc)
            return
        handle = self._store_bundle(group, KIND_REQUEST)
        self._await_blobs(handle, group.blobs)
        with self._cond:
            for msg, recipient in group.members:
                meta = msg.metadata
                self._pending[meta.message_id] = _Pending(
                    recipient, handle, meta.created_at + meta.ttl, group.blobs, round_of(msg), meta.message_type
                )

    def _not_sent(self, msg: Message, recipient: str, exc: Exception) -> str:
        """Log a request Drive refused for good and file its error reply (the run goes on without it)."""
        logger.error("could not send %s (round %s) to %s: %s", msg.metadata.message_type, round_of(msg), recipient, exc)
        return self._undelivered(msg, recipient, f"could not be delivered ({type(exc).__name__})", excluded=False)

    def _undelivered(self, msg: Message, recipient: str, reason: str, *, excluded: bool) -> str:
        """File a local error reply for a request that was not sent; returns the request's id."""
        rnd = round_of(msg)
        if excluded:
            self.tally.excluded(rnd, recipient)
        else:
            self.tally.missing(rnd, recipient)
        reply = Message(Error(code=UNDELIVERED_ERROR_CODE, reason=reason), reply_to=msg)
        with self._cond:
            self._replies[msg.metadata.message_id] = reply
            self._cond.notify_all()
        return msg.metadata.message_id

    def _send_request(self, msg: Message, recipient: str) -> str:
        """Seal and send one instruction (with the run info its client's Context needs)."""
        run_id = self.run_id
        meta = msg.metadata
        used: list[str] = []
        place = self.blobs.noting(used)

        message_id, handle = self.mailbox.send(
            kind=KIND_REQUEST,
            recipient=recipient,
            run_id=run_id,
            payload=encode_message(msg, place_blob=place, run_info=self.run_info),
            message_id=meta.message_id,
            ttl=meta.ttl,
            created_at=meta.created_at,
            codecs=(CODEC_PARTS,),
        )
        self._await_blobs(handle, used)
        with self._cond:
            self._pending[message_id] = _Pending(
                recipient, handle, meta.created_at + meta.ttl, tuple(used), round_of(msg), meta.message_type
            )
        return message_id

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
        with self._cond:
            live = {loc for pending in self._pending.values() for loc in pending.blobs}
        dead = [loc for loc in self.blobs.locators() if loc not in live]
        if dead:
            try:
                self.mailbox.delete_own(dead)
                self.blobs.drop(dead)
            except Exception as exc:  # left for the end of the run, or the next run's clean-up
                logger.warning("could not delete %d old shared blob(s): %s", len(dead), exc)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        self._poll_if_due()
        wanted = set(message_ids)
        with self._cond:
            found = [self._replies.pop(mid) for mid in list(self._replies) if mid in wanted]
        return found

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        wait = self.effective_timeout(timeout)
        if self.mailbox.bundling:  # the legacy path's one-message calls from a thread pool become one push
            batch = list(messages)
            for node_id in [msg.metadata.dst_node_id for msg in batch]:
                self.email_of(node_id)  # a bad node id fails its own caller, not the batch
            waiting = set(self._coalescer.submit(batch))
            del batch  # the requests' arrays are the app's to free while the replies are awaited (else 2x peak)
        else:
            waiting = set(self.push_messages(messages))
        deadline = time.monotonic() + wait
        replies: list[Message] = []
        while waiting:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            with self._cond:
                if not any(mid in self._replies for mid in waiting):
                    self._cond.wait(min(max(0.01, self._schedule.due_in()), remaining))
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

    def effective_timeout(self, timeout: float | None) -> float:
        """See the module docstring: the smaller of the caller's and our configured timeout."""
        if timeout is None:
            return self.msg_timeout
        return max(0.0, min(float(timeout), self.msg_timeout))

    # -- stop signal ------------------------------------------------------------------

    def send_stop_signal(
        self, group_id: str = "final", reason: str = "Server stopped", *, wait: float | None = None
    ) -> set[str]:
        """Tell every reachable datasite this run is over; wait (bounded) for their acknowledgements.

        Excluded datasites are skipped: nothing can be sealed for a peer without a trusted key.

        Returns the datasites that acknowledged. Stop files of datasites that
        did not are left for the next run or ``syft-flwr-gdrive clean``.
        """
        run_id = self.run_id

        def stop_message(node_id: int) -> Message:
            content = RecordDict({"config": ConfigRecord({"action": "stop", "reason": reason})})
            msg = Message(content, node_id, STOP_MESSAGE_TYPE, group_id=group_id)
            msg.metadata.__dict__["_message_id"] = new_message_id()
            msg.metadata.__dict__["_run_id"] = run_id
            msg.metadata.__dict__["_src_node_id"] = SERVER_NODE_ID
            return msg

        def send_stops(node_ids: list[int]) -> None:
            """All stops as one bundle: one write, not N, at the end of every run."""
            msgs = [stop_message(nid) for nid in node_ids]
            shared = self._encode_shared(msgs[0])
            group = _Group(
                shared.digest,
                shared.payload,
                shared.blobs,
                [(m, self._email_by_node[m.metadata.dst_node_id]) for m in msgs],
            )
            handle = self._store_bundle(group, KIND_STOP)
            with self._cond:
                for _, recipient in group.members:
                    self._stop_handles[recipient] = handle

        def send_stop(node_id: int) -> None:
            msg = stop_message(node_id)
            recipient = self._email_by_node[node_id]
            _, handle = self.mailbox.send(
                kind=KIND_STOP,
                recipient=recipient,
                run_id=run_id,
                payload=encode_message(msg),
                message_id=msg.metadata.message_id,
                ttl=msg.metadata.ttl,
                created_at=msg.metadata.created_at,
                codecs=(CODEC_PARTS,),
            )
            with self._cond:
                self._stop_handles[recipient] = handle

        failures = 0
        reachable = [nid for nid, email in self._email_by_node.items() if email not in self.excluded]
        sends = (
            [self._pool.submit(send_stops, reachable)]
            if self.mailbox.bundling and reachable
            else [self._pool.submit(send_stop, nid) for nid in reachable]
        )
        for future in sends:
            try:
                future.result()
            except Exception as exc:  # keep stopping the others; report once
                failures += 1
                logger.error("could not send a stop signal: %s", exc)
        if failures:
            logger.error("%d stop signal(s) not sent; those clients keep polling until stopped by hand", failures)
        # Acks travel stop -> client poll -> ack -> server poll, each subject to Drive's listing lag:
        # wait long enough for that (returning as soon as every datasite acknowledged).
        deadline = time.monotonic() + (
            wait if wait is not None else min(self.msg_timeout, max(10 * self.poll_interval, STOP_ACK_WAIT))
        )
        everyone = {self._email_by_node[nid] for nid in reachable}
        self._schedule.expect()
        while time.monotonic() < deadline:
            self._poll_if_due(force=True)
            with self._cond:
                if self._stop_acks >= everyone:
                    break
                self._cond.wait(min(max(0.01, self._schedule.due_in()), max(0.0, deadline - time.monotonic())))
        with self._cond:
            missing = everyone - self._stop_acks
        if missing:
            logger.warning(
                "no stop acknowledgement from %s; their stop files stay until the next run or `clean`", sorted(missing)
            )
        return everyone - missing

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
        """Withdraw unanswered requests and stop the send pool."""
        if self._closed:
            return
        self._closed = True
        with self._cond:
            leftover = list(self._pending)
        if leftover:
            self._withdraw(leftover)
        self._pool.shutdown(wait=True)
        self.blobs.close()
        blobs = self.blobs.locators()
        if blobs:
            try:
                self.mailbox.delete_own(blobs)
                self.blobs.forget()
            except Exception as exc:
                logger.warning(
                    "could not delete %d shared blob(s): %s; `syft-flwr-gdrive clean` removes them", len(blobs), exc
                )

    # -- internals ----------------------------------------------------------------------

    def _withdraw(self, message_ids: Iterable[str]) -> None:
        """Delete unanswered requests; each counts as a missing reply of its round."""
        with self._cond:
            gone = [self._pending.pop(mid) for mid in list(message_ids) if mid in self._pending]
            still = {p.handle for p in self._pending.values()}  # a bundle goes once none of its parts waits
        for pending in gone:
            self.tally.missing(pending.round, pending.recipient)
        handles = sorted({pending.handle for pending in gone} - still)
        try:
            self.mailbox.delete_own(handles)
        except Exception as exc:  # leftovers are removed by the next run; never mask the caller's flow
            logger.warning("could not withdraw %d request file(s): %s", len(handles), exc)

    def _accept(self, routing: Routing) -> str | None:
        if routing.run_id != self.run_id:
            return f"belongs to run {routing.run_id}, this is run {self.run_id}"
        if routing.kind not in (KIND_REPLY, KIND_STOP_ACK):
            return f"a {routing.kind!r} message; the server only acts on replies"
        return None

    def _poll_if_due(self, *, force: bool = False) -> None:
        """Poll once if the schedule says a poll is due (shared by all threads)."""
        if not self._poll_lock.acquire(blocking=False):
            return  # another thread is polling right now; it will wake us
        try:
            if not force and not self._schedule.is_due():
                return
            started = time.monotonic()
            self._schedule.polled(started)
            result = self.mailbox.poll(accept=self._accept)
            answered: list[str] = []
            for delivery in result.deliveries:
                try:
                    handle = self._take(delivery)
                except Exception as exc:  # noqa: BLE001 - one bad reply must not cost the others their poll
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
                self._pool.submit(self._delete_answered, answered)
                self._schedule.arrived(started)  # learn how long replies take; stay fast for the rest
        except Exception as exc:
            logger.warning("poll failed (%s); retrying at the next poll interval", exc)
        finally:
            self._poll_lock.release()

    def _delete_answered(self, handles: list[str]) -> None:
        try:
            self.mailbox.delete_own(handles)
        except Exception as exc:  # the next run's start (or `clean`) removes them
            logger.warning("could not delete %d answered request file(s): %s", len(handles), exc)

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
            with self._cond:
                self._stop_acks.add(env.sender)
                handle = self._stop_handles.pop(env.sender, None)
                if handle in self._stop_handles.values():
                    handle = None  # a stop bundle: deleted with the last acknowledgement
                self._cond.notify_all()
            return handle
        try:
            message = decode_message(
                delivery.open_payload(),
                env.size,
                codecs=env.codecs,
                max_bytes=self.mailbox.max_payload,
                # a reply's model in parts may still be uploading: wait for each part, within the reply wait
                fetch_blob=functools.partial(
                    self._reply_blobs.fetch,
                    owner=env.sender,
                    wait_until=min(env.created_at + env.ttl, time.time() + self.msg_timeout),
                ),
            )
        except (PayloadError, TransportError) as exc:
            logger.warning(
                "reply %s from %s is not a Flower message (%s); skipped", env.message_id, env.sender, printable(exc)
            )
            return None
        meta = message.metadata
        if meta.reply_to_message_id != env.reply_to or meta.run_id != self.run_id:
            logger.warning("reply %s from %s disagrees with its envelope; skipped", env.message_id, env.sender)
            return None
        if meta.src_node_id != node_id_for(env.sender):
            logger.warning(
                "reply %s claims node %d but comes from %s; skipped", env.message_id, meta.src_node_id, env.sender
            )
            return None
        with self._cond:
            pending = self._pending.pop(env.reply_to, None)
            if pending is None:
                logger.info("late or unknown reply %s from %s ignored", env.message_id, env.sender)
                return None
            if pending.recipient != env.sender:
                self._pending[env.reply_to] = pending
                logger.warning(
                    "reply to %s came from %s, but it was sent to %s; skipped",
                    env.reply_to,
                    env.sender,
                    pending.recipient,
                )
                return None
            self._replies[env.reply_to] = message
            self._cond.notify_all()
            shared = any(p.handle == pending.handle for p in self._pending.values())  # a bundle's other parts
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
        return None if shared else pending.handle
