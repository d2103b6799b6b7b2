"""The data owner's side: poll, run the ClientApp, reply, stop on this run's stop signal.

Runs: the server announces its current run id before it sends anything (the
transport puts the announcement in the same listing a poll reads, so it costs
no extra call), and the client acts only on requests and stop signals of that
run. Anything else (a leftover of a crashed run, a replayed message of an old
run) is skipped with one log line and left for its owner to remove.

Clean-up: a participant can only delete what it owns. The client deletes
each of its replies once the server has deleted the request it answers (the
request disappears from the listing), and on stop deletes everything it wrote
for the run. So nothing piles up, and nothing is deleted before the server has
acted on it.

Privacy: a ClientApp exception is logged here in full but the reply carries
only the exception's type name: no message text, no traceback, no path.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from flwr.app import Context
from flwr.app import Error
from flwr.app import Message
from flwr.app import Metadata
from flwr.app import RecordDict
from flwr.app.message.message import make_message
from flwr.clientapp import ClientApp
from flwr.common.constant import ErrorCode
from flwr.supercore.constant import SYSTEM_MESSAGE_TYPE

from syft_flwr_gdrive.base.accounts import canonical_email
from syft_flwr_gdrive.base.accounts import node_id_for
from syft_flwr_gdrive.base.logsafe import printable
from syft_flwr_gdrive.base.routing import KIND_REPLY
from syft_flwr_gdrive.base.routing import KIND_REQUEST
from syft_flwr_gdrive.base.routing import KIND_STOP
from syft_flwr_gdrive.base.routing import KIND_STOP_ACK
from syft_flwr_gdrive.flower.codec import CODEC_PARTS
from syft_flwr_gdrive.flower.codec import SERVER_NODE_ID
from syft_flwr_gdrive.flower.codec import PayloadError
from syft_flwr_gdrive.flower.codec import decode_message_and_run
from syft_flwr_gdrive.flower.codec import encode_message
from syft_flwr_gdrive.flower.fingerprint import AppIdentity
from syft_flwr_gdrive.flower.fingerprint import differences
from syft_flwr_gdrive.flower.poll_schedule import PollPolicy
from syft_flwr_gdrive.flower.poll_schedule import PollSchedule
from syft_flwr_gdrive.flower.replies import reply_id_for
from syft_flwr_gdrive.flower.shared_blobs import MIN_PART_WAIT
from syft_flwr_gdrive.flower.shared_blobs import BlobCache
from syft_flwr_gdrive.flower.shared_blobs import BlobPlacer
from syft_flwr_gdrive.flower.tally import round_of
from syft_flwr_gdrive.flower.userconfig import RunConfigRefused
from syft_flwr_gdrive.flower.userconfig import merge_run_config
from syft_flwr_gdrive.flower.userconfig import run_config_of
from syft_flwr_gdrive.mailbox.delivery import Delivery
from syft_flwr_gdrive.mailbox.delivery import PollResult
from syft_flwr_gdrive.mailbox.envelope import STOP_ACK_WAIT
from syft_flwr_gdrive.mailbox.mailbox import Mailbox
from syft_flwr_gdrive.transport.contract import AccessLost
from syft_flwr_gdrive.transport.contract import Routing
from syft_flwr_gdrive.transport.contract import brief
from syft_flwr_gdrive.transport.contract import raise_if_access_lost

logger = logging.getLogger(__name__)

CLIENT_APP_ERROR_CODE = 1  # what Flower's SuperNode uses for ClientApp exceptions
PROJECT_MISMATCH = "ProjectMismatch"
RUN_CONFIG_REFUSED = "RunConfigRefused"
REFUSED_ERROR_CODE = ErrorCode.MESSAGE_UNAVAILABLE  # a request this client could not (or would not) read
MAX_ATTEMPTS = 5  # polls that may fail to fetch a request's shared blob before it is answered with an error
# Sent to the server in place of the reason, which may name files or owners (a hostile server must not probe).
UNREADABLE = "the datasite could not read this request (invalid payload or shared blob); details are in its log"


@dataclass
class ClientReport:
    """What a client loop did, for logs and tests."""

    run_id: int | None = None
    handled: int = 0
    errors: int = 0
    stopped_by: str = ""
    runs_seen: list[int] = field(default_factory=list)
    run_config: dict[str, Any] = field(default_factory=dict)  # what the ClientApp's Context held
    error_types: dict[str, int] = field(default_factory=dict)
    project_differences: list[str] = field(default_factory=list)  # how my project differs from the server's
    refused: int = 0  # requests refused because of those differences
    run_config_refused: int = 0  # requests refused because the server's run config does not fit my project's
    access_lost: str = ""  # why the storage refused this client for good (stopped_by "access-lost"): what, fix, why


def _apply_part(message: Message, private: Mapping[str, Any]) -> bool:
    """A bundle carries one Flower message for all its recipients; each part's own metadata
    (message id, destination, times) comes from the part, sealed for this recipient alone."""
    fields = {"message_id": str, "dst_node_id": int, "created_at": float, "ttl": float}
    values: dict[str, Any] = {}
    for name, kind in fields.items():
        value = private.get(name)
        if isinstance(value, bool) or not isinstance(value, (kind, int) if kind is float else kind):
            return False
        values[name] = kind(value)
    for name, value in values.items():
        message.metadata.__dict__[f"_{name}"] = value
    return True


class ClientLoop:
    """Serve one ClientApp through a Mailbox until this run's stop signal."""

    def __init__(
        self,
        client_app: ClientApp,
        mailbox: Mailbox,
        *,
        poll_interval: float,
        node_config: Mapping[str, Any] | None = None,
        run_config: Mapping[str, Any] | None = None,
        stop_event: threading.Event | None = None,
        linger: float | None = None,
        poll_schedule: PollSchedule | None = None,
        app_identity: AppIdentity | None = None,
        allow_project_changes: bool = False,
    ) -> None:
        """``run_config`` is the local project's (its ``[tool.flwr.app.config]``): as Flower's SuperNode does, the
        ClientApp sees it overridden by the server's values of the keys it declares; a request whose run config
        sets another key, or a value of another type, is refused with an error reply (``RunConfigRefused``). With
        no ``run_config`` (None: no project known) the server's run config is used as sent, checked only for
        shape; a server that sends none (an older one) leaves the ClientApp this project's.

        ``app_identity`` is this data owner's project; a request from a server running a different
        app is refused (an error reply naming ``ProjectMismatch``) unless ``allow_project_changes``."""
        self.client_app = client_app
        self.mailbox = mailbox
        self.poll_interval = poll_interval
        # The interval when idle; faster right after an exchange, while the next request is likely soon.
        self.schedule = poll_schedule or PollSchedule(PollPolicy(poll_interval))
        self.node_config = dict(node_config or {})
        self.default_run_config = dict(run_config or {})
        self.declared_run_config = None if run_config is None else dict(run_config)
        self._unchecked_warned = False  # the server's run config taken unchecked (no project): said once
        self.app_identity = app_identity
        self.allow_project_changes = allow_project_changes
        self._project_checked: set[int] = set()  # runs whose app was compared (logged once each)
        self.node_id = node_id_for(mailbox.email)
        self.stop_event = stop_event or threading.Event()
        # After a stop, wait this long (at most; usually far less) for the server to see our ack and
        # remove its stop file: both hops cross Drive's listing lag and maybe retries. Keep it at
        # least the server's own wait for acks, or the ack may vanish before the server saw it.
        self.linger = linger if linger is not None else max(6 * poll_interval, STOP_ACK_WAIT)
        self.report = ClientReport()
        self._current_run: int | None = None
        self._context: Context | None = None
        self._blobs = BlobCache(mailbox, max_bytes=mailbox.max_payload)
        # A reply's model big enough to go in parts goes as a blob of mine (format 4): the small reply is
        # sent at once and the server downloads part k while part k+1 uploads. Smaller arrays stay inline.
        self._placer = BlobPlacer(mailbox, only_in_parts=True)
        self._reply_blobs: dict[str, list[str]] = {}  # reply message id -> its blob's parts, deleted with it
        self._stale_blobs: list[str] = []  # blobs of mine found at start: deleted once no reply of mine is left
        self._swept = False  # incomplete replies of a previous process deleted (at the first poll)
        self._attempts: dict[str, int] = {}  # request id -> failed fetches so far

    # -- main loop ----------------------------------------------------------------------

    def run(self) -> ClientReport:
        """Serve until stopped; Ctrl-C returns within one poll interval. Storage that refuses this client for good
        (``AccessLost``) stops it at once: ``stopped_by`` "access-lost", and ``access_lost`` says why and the fix."""
        self.mailbox.prepare()
        try:
            if self.mailbox.shares_blobs:
                try:  # a previous process's reply parts: its replies may still be read, so not deleted yet
                    self._stale_blobs = self.mailbox.my_blobs()
                except Exception as exc:
                    raise_if_access_lost(exc)
                    logger.info(
                        "could not list my blobs left from before (%s); `syft-flwr-gdrive clean` removes them", exc
                    )
            logger.info(
                "client %s polling every %.1fs for app %r", self.mailbox.email, self.poll_interval, self.mailbox.app
            )
            while not self.stop_event.is_set():
                started, handled = time.monotonic(), self.report.handled
                if self._poll_once():
                    self.report.stopped_by = "stop-signal"
                    break
                if self.report.handled > handled:  # an exchange: the next request is likely soon
                    self.schedule.arrived(started)
                    self.schedule.expect()
                self.stop_event.wait(self.schedule.polled())
            else:
                self.report.stopped_by = "stop-event"
        except KeyboardInterrupt:
            self.report.stopped_by = "interrupt"
            logger.info("interrupted; leaving my files for the server to act on")
        except AccessLost as exc:  # its whole text is said once, by whoever reports the stop (the command line)
            self.report.stopped_by = "access-lost"
            self.report.access_lost = str(exc)
            logger.error("stopping: %s", exc.headline)
        finally:
            self._blobs.close()  # the kept model's temporary file
            self._placer.close()
        return self.report

    def _poll_once(self) -> bool:
        """One poll; returns True when this run's stop signal was handled."""
        try:
            result = self.mailbox.poll(accept=self._accept)
        except Exception as exc:
            raise_if_access_lost(exc)
            logger.warning("poll failed (%s); retrying in %.1fs", exc, self.poll_interval)
            return False
        for refusal in result.refused:  # over the size limit: answered, never downloaded
            r = refusal.routing
            if r.kind == KIND_REQUEST and not self.mailbox.handled(r.message_id, r.sender, r.created_at):
                limit_mib = (self.mailbox.max_payload or 0) / (1024 * 1024)
                self._refuse(
                    r.message_id,
                    r.run_id,
                    r.sender,
                    f"the request is over this datasite's message limit of {limit_mib:.0f} MiB "
                    "(SYFT_FLWR_MAX_MESSAGE_MB)",
                    created_at=r.created_at,
                )
        if not self._swept:
            self._swept = True
            self._delete_incomplete_replies(result.listing.outbound)
        try:
            return self._handle_all(result)
        finally:  # housekeeping after the replies, so it never delays one
            self._delete_answered(result.listing.outbound, result.inbound_message_ids())

    def _handle_all(self, result: PollResult) -> bool:
        for delivery in sorted(result.deliveries, key=lambda d: (d.envelope.run_id, d.envelope.created_at)):
            if self.stop_event.is_set():
                return False
            try:
                if delivery.envelope.kind == KIND_STOP:
                    if self._handle_stop(delivery):
                        return True
                else:
                    self._handle_request(delivery)
            finally:
                delivery.close()
        return False

    def _accept(self, routing: Routing) -> str | None:
        if routing.kind not in (KIND_REQUEST, KIND_STOP):
            return f"a {routing.kind!r} message; clients act on requests and stop signals"
        announced = self.mailbox.announced.get(canonical_email(routing.sender))
        if announced is None:
            return f"{routing.sender} has not announced a run yet"
        if routing.run_id != announced:
            return f"belongs to run {routing.run_id}, but {routing.sender} announces run {announced} as current"
        return None

    # -- requests -----------------------------------------------------------------------

    def _enter_run(self, run_id: int, run_config: Mapping[str, Any] | None = None) -> None:
        if self._current_run == run_id:
            return
        if self._current_run is not None:
            logger.info("run %d replaces run %d", run_id, self._current_run)
        self._current_run = run_id
        self.report.run_id = run_id
        self.report.runs_seen.append(run_id)
        self._context = Context(
            run_id=run_id,
            node_id=self.node_id,
            node_config=dict(self.node_config),
            state=RecordDict(),
            run_config=dict(self.default_run_config if run_config is None else run_config),
        )
        self.report.run_config = dict(self._context.run_config)
        if run_config is not None:  # JSON escapes whatever the server put in strings: no forged log lines
            logger.info(
                "run %d: run config from the server: %s", run_id, json.dumps(dict(run_config), sort_keys=True)[:2000]
            )

    def _handle_request(self, delivery: Delivery) -> None:
        env = delivery.envelope
        try:
            message, info = decode_message_and_run(
                delivery.open_payload(),
                env.size,
                codecs=env.codecs,
                max_bytes=self.mailbox.max_payload,
                # a blob in parts may still be uploading: wait for each part (PART_STALL at most) until the
                # request expires, and not once the request (or its bundle) is withdrawn
                fetch_blob=functools.partial(
                    self._blobs.fetch,
                    owner=env.sender,
                    wait_until=max(env.created_at + env.ttl, time.time() + MIN_PART_WAIT),
                    still_wanted=functools.partial(self._still_stored, delivery.posting.handle),
                ),
            )
        except Exception as exc:  # PayloadError, or a blob that could not be fetched (maybe transient)
            raise_if_access_lost(exc)
            if not isinstance(exc, PayloadError):
                attempts = self._attempts[env.message_id] = self._attempts.get(env.message_id, 0) + 1
                if attempts < MAX_ATTEMPTS:
                    logger.warning(
                        "request %s from %s: %s; will retry (attempt %d of %d)",
                        env.message_id,
                        env.sender,
                        printable(exc),
                        attempts,
                        MAX_ATTEMPTS,
                    )
                    return
            self._attempts.pop(env.message_id, None)
            logger.warning("request %s from %s skipped: %s", env.message_id, env.sender, printable(exc))
            self._refuse(env.message_id, env.run_id, env.sender, UNREADABLE, created_at=env.created_at)
            return
        if delivery.private is not None and not _apply_part(message, delivery.private):
            logger.warning(
                "request %s from %s skipped: its bundle part's metadata is malformed", env.message_id, env.sender
            )
            self.mailbox.mark_handled(env.message_id, env.sender, env.created_at)
            return
        meta = message.metadata
        if meta.message_id != env.message_id or meta.run_id != env.run_id or meta.dst_node_id != self.node_id:
            logger.warning(
                "request %s from %s skipped: its Flower metadata disagrees with its envelope",
                env.message_id,
                env.sender,
            )
            self.mailbox.mark_handled(env.message_id, env.sender, env.created_at)
            return
        refused: RunConfigRefused | None = None
        try:
            run_config = self._run_config_for(info)
        except RunConfigRefused as exc:
            run_config, refused = None, exc
        if self._current_run != env.run_id and run_config is None and refused is None:
            logger.warning(
                "run %d: the server sent no run config (an older version?); the ClientApp sees this "
                "project's [tool.flwr.app.config]",
                env.run_id,
            )
        if refused is None:  # a refused run config never reaches a Context
            self._enter_run(env.run_id, run_config)
        if self._project_differs(env.run_id, info):
            self.report.refused += 1
            reason = f"ClientApp raised {PROJECT_MISMATCH} (the data owner's project differs from the server's)"
            reply = Message(Error(code=CLIENT_APP_ERROR_CODE, reason=reason), reply_to=message)
        elif refused is not None:
            self.report.run_config_refused += 1
            logger.error("run %d: REFUSING request %s: %s", env.run_id, env.message_id, printable(str(refused), 2000))
            reason = f"ClientApp raised {RUN_CONFIG_REFUSED} ({refused.for_peer})"
            reply = Message(Error(code=CLIENT_APP_ERROR_CODE, reason=reason), reply_to=message)
        else:
            assert self._context is not None
            reply = self._execute(message, self._context)
        reply.metadata.__dict__["_message_id"] = reply_id_for(env.message_id, self.mailbox.email)
        parts: list[str] = []
        handle = None
        try:
            _, handle = self.mailbox.send(
                kind=KIND_REPLY,
                recipient=env.sender,
                run_id=env.run_id,
                payload=encode_message(reply, place_blob=self._placer.noting(parts)),
                message_id=reply.metadata.message_id,
                reply_to=env.message_id,
                ttl=reply.metadata.ttl,
                created_at=reply.metadata.created_at,
                codecs=(CODEC_PARTS,),
            )
            self._placer.wait_for(parts)  # sent while its parts upload; answered once they are stored
        except Exception as exc:
            raise_if_access_lost(exc)
            logger.error("could not send the reply to %s (%s); the request will be handled again", env.message_id, exc)
            self._withdraw_reply(handle, parts)
            return
        finally:
            self._placer.end_push()
        if parts:
            self._reply_blobs[reply.metadata.message_id] = parts
        self.mailbox.mark_handled(env.message_id, env.sender, env.created_at)
        self.report.handled += 1
        logger.info(
            "run %d: answered %s (%s, round %s)",
            env.run_id,
            printable(meta.message_type, 60),
            env.message_id[:8],
            printable(round_of(message), 60),
        )

    def _run_config_for(self, info: Any) -> dict[str, Any] | None:
        """The ClientApp's run config for a request's run info (None: the server sent none); raises
        ``RunConfigRefused`` if it does not fit this project's declared run config."""
        sent = run_config_of(info)
        if sent is None:
            return None
        if self.declared_run_config is None:
            if not self._unchecked_warned:
                self._unchecked_warned = True
                logger.warning(
                    "no project run config is known here (run_config=None): the server's run config reaches "
                    "the ClientApp as sent, unchecked against declared keys and types; pass the project's "
                    "[tool.flwr.app.config] as run_config to check it"
                )
            return sent
        return merge_run_config(self.declared_run_config, sent)

    def _delete_incomplete_replies(self, outbound: tuple) -> None:
        """A reply of mine whose request is not marked handled was sent by a process that stopped before its
        reply was complete (its model's parts maybe still missing): delete it, as the request is handled again."""
        incomplete = [
            p.handle
            for p in outbound
            if p.routing is not None
            and p.routing.kind == KIND_REPLY
            and p.routing.reply_to
            and not self.mailbox.handled(p.routing.reply_to, p.routing.recipient)  # the request came from it
        ]
        if incomplete:
            logger.info("deleting %d reply file(s) a previous run of this client left incomplete", len(incomplete))
            try:
                self.mailbox.delete_own(incomplete)
            except Exception as exc:
                logger.warning("could not delete incomplete replies (%s); the server may read them", brief(exc))

    def _withdraw_reply(self, handle: str | None, parts: list[str]) -> None:
        """Delete a reply that was not completed (its blob failed) and the parts it stored (best effort)."""
        gone = ([handle] if handle else []) + parts
        if not gone:
            return
        try:
            self.mailbox.delete_own(gone)
            self._placer.drop(parts)
        except Exception as exc:
            logger.warning("could not delete an incomplete reply (%s); `syft-flwr-gdrive clean` removes it", brief(exc))

    def _project_differs(self, run_id: int, info: Any) -> bool:
        """Compare the server's announced app with mine; True if this request must be refused."""
        if self.app_identity is None or not isinstance(info, Mapping):
            return False
        diffs = differences(self.app_identity, info.get("app"))
        if not diffs:
            return False
        if run_id not in self._project_checked:
            self._project_checked.add(run_id)
            self.report.project_differences = diffs
            if self.allow_project_changes:
                logger.warning(
                    "run %d: my project differs from the server's (%s); running it anyway (--allow-project-changes)",
                    run_id,
                    printable("; ".join(diffs), 4000),
                )
            else:
                logger.error(
                    "run %d: REFUSING the server's requests: my project differs from the one the server "
                    "runs (%s). Review the server's version of these files and update yours, or (for "
                    "development only) start the client with --allow-project-changes.",
                    run_id,
                    printable("; ".join(diffs), 4000),
                )
        return not self.allow_project_changes

    def _execute(self, message: Message, context: Context) -> Message:
        try:
            reply = self.client_app(message, context)
            if not isinstance(reply, Message):
                raise TypeError("ClientApp did not return a Message")
            return reply
        except Exception as exc:  # a user's ClientApp may raise anything; KeyboardInterrupt passes
            self.report.errors += 1
            kind = type(exc).__name__
            self.report.error_types[kind] = self.report.error_types.get(kind, 0) + 1
            logger.exception(
                "ClientApp failed on %s; replying with an error", printable(message.metadata.message_type, 60)
            )
            error = Error(code=CLIENT_APP_ERROR_CODE, reason=f"ClientApp raised {type(exc).__name__}")
            return Message(error, reply_to=message)

    def _refuse(
        self, request_id: str, run_id: int, server: str, reason: str, *, created_at: float | None = None
    ) -> None:
        """Answer a request this client will not act on with an error reply (the server need not wait), once
        (``created_at``: the request's, for the ledger's bound)."""
        reply = make_message(
            metadata=Metadata(
                run_id=run_id,
                message_id=reply_id_for(request_id, self.mailbox.email),
                src_node_id=self.node_id,
                dst_node_id=SERVER_NODE_ID,
                reply_to_message_id=request_id,
                group_id="",
                created_at=time.time(),
                ttl=43200.0,
                message_type=SYSTEM_MESSAGE_TYPE,  # the request's own type is unknown: it was not read
            ),
            error=Error(code=REFUSED_ERROR_CODE, reason=reason),
        )
        try:
            self.mailbox.send(
                kind=KIND_REPLY,
                recipient=server,
                run_id=run_id,
                payload=encode_message(reply),
                message_id=reply.metadata.message_id,
                reply_to=request_id,
                ttl=reply.metadata.ttl,
                created_at=reply.metadata.created_at,
                codecs=(CODEC_PARTS,),
            )
        except Exception as exc:  # the server's wait times out instead; never retried forever
            raise_if_access_lost(exc)
            logger.warning("could not send an error reply for a refused request (%s)", printable(exc))
        self.mailbox.mark_handled(request_id, server, created_at)

    # -- stop and clean-up -----------------------------------------------------------------

    def _handle_stop(self, delivery: Delivery) -> bool:
        env = delivery.envelope
        try:
            self.mailbox.send(
                kind=KIND_STOP_ACK,
                recipient=env.sender,
                run_id=env.run_id,
                payload=b"",
                message_id=reply_id_for(env.message_id, self.mailbox.email),
                reply_to=env.message_id,
            )
        except Exception as exc:
            raise_if_access_lost(exc)
            logger.warning("could not acknowledge the stop signal (%s)", exc)
        self.mailbox.mark_handled(env.message_id, env.sender, env.created_at)
        logger.info("run %d: stop signal received from %s", env.run_id, env.sender)
        self._enter_run(env.run_id)
        self._linger_and_clean(env.message_id)
        return True

    def _still_stored(self, handle: str) -> bool:
        """Is the request (or bundle) ``handle`` still stored? Asked while waiting for the blob parts it names:
        once its server withdrew it (the upload failed) the wait is over. True when the storage cannot say."""
        try:
            listing = self.mailbox.stored()
        except Exception as exc:
            logger.info("could not tell whether %s is still stored (%s); still waiting for its parts", handle, exc)
            return True
        return any(p.handle == handle for p in (*listing.inbound, *listing.bundles))

    def _linger_and_clean(self, stop_id: str) -> None:
        """Wait (bounded) until the server removed its stop file, then delete all my files."""
        deadline = time.monotonic() + self.linger
        outbound: tuple = ()
        while True:
            try:
                listing = self.mailbox.stored()
            except Exception as exc:
                raise_if_access_lost(exc)
                logger.warning("poll failed during shutdown (%s)", exc)
                listing = None
            if listing is not None:
                outbound = listing.outbound
                inbound_ids = {p.routing.message_id for p in listing.inbound if p.routing}
                inbound_ids |= self.mailbox.bundles.part_ids(listing.bundles)  # a stop that came in a bundle
                if stop_id not in inbound_ids:
                    break
            if time.monotonic() >= deadline or self.stop_event.wait(self.poll_interval):
                break
        mine = [p.handle for p in outbound] + self._placer.locators() + self._stale_blobs
        if mine:
            try:
                self.mailbox.delete_own(mine)
            except Exception as exc:
                logger.warning(
                    "could not delete %d of my message files (%s); `syft-flwr-gdrive clean` removes them",
                    len(mine),
                    brief(exc),
                )

    def _delete_answered(self, outbound: tuple, inbound_ids: set[str]) -> None:
        """Delete my replies whose requests the server has already removed."""
        answered = [
            p
            for p in outbound
            if p.routing is None
            or (p.routing.kind in (KIND_REPLY, KIND_STOP_ACK) and p.routing.reply_to not in inbound_ids)
        ]
        done = [p.handle for p in answered]
        parts = [loc for p in answered if p.routing for loc in self._reply_blobs.get(p.routing.message_id, ())]
        replies_left = any(p.routing and p.routing.kind == KIND_REPLY for p in outbound if p not in answered)
        stale = self._stale_blobs if not replies_left else []  # nothing can refer to them any more
        if done or stale:
            try:
                self.mailbox.delete_own(done + parts + stale)
            except Exception as exc:
                logger.info("could not delete %d answered reply file(s) yet (%s)", len(done), brief(exc))
                return
            for p in answered:
                if p.routing:
                    self._reply_blobs.pop(p.routing.message_id, None)
            self._placer.drop(parts)
            self._stale_blobs = [b for b in self._stale_blobs if b not in stale]
