"""The stop protocol: tell datasites a run is over, collect their acknowledgements, wait (bounded) for them.

A stop signal is an instruction like any other (one push: one bundle for all when bundles are on).
Each datasite answers with a stop-ack; the server's poll hands those here (``acknowledged``), and
the stop file is deleted once every datasite it addresses has acknowledged. Whom to stop is the
caller's choice: any datasite of the run can be addressed.

A datasite whose changed key was refused cannot be sent anything secret, but a stop holds no secret
(an action, a reason, ids): it is sealed to the key that datasite publishes now and signed with the
server's key, which the datasite verifies against the key it pinned for its aggregator, so a datasite
that re-created its keys (a reinstall) still stops. Its stop-ack is signed with that refused key, so the
server takes it from the listing (``sent_unverified``), never opening it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from flwr.app import Message
from flwr.app import RecordDict
from flwr.common import ConfigRecord
from flwr.supercore.constant import SYSTEM_MESSAGE_TYPE

from syft_flwr_gdrive.base.routing import KIND_STOP
from syft_flwr_gdrive.crypto.keys import PublicKeys
from syft_flwr_gdrive.flower.codec import SERVER_NODE_ID
from syft_flwr_gdrive.flower.instructions import Instructions
from syft_flwr_gdrive.flower.poll_schedule import PollSchedule
from syft_flwr_gdrive.flower.shared_blobs import BlobPlacer
from syft_flwr_gdrive.mailbox.mailbox import Mailbox
from syft_flwr_gdrive.mailbox.mailbox import new_message_id
from syft_flwr_gdrive.mailbox.outgoing import Outgoing
from syft_flwr_gdrive.transport.contract import brief

logger = logging.getLogger(__name__)

# The seed writes "SYSTEM"; flwr 1.41 validates message types and spells it "system".
STOP_MESSAGE_TYPE = SYSTEM_MESSAGE_TYPE


class StopProtocol:
    """Stop signals of one server: sent through the mailbox, acknowledged through the server's poll."""

    def __init__(self, mailbox: Mailbox, placer: BlobPlacer, schedule: PollSchedule, poll: Callable[[], None]) -> None:
        """``poll`` polls now (the server's one shared poll, which hands stop-acks to ``acknowledged``)."""
        self.mailbox = mailbox
        self.placer = placer
        self.schedule = schedule
        self.poll = poll
        # Guards _acks and _handles; notified whenever an acknowledgement arrives.
        self._cond = threading.Condition()
        self._acks: set[str] = set()  # datasites that acknowledged
        self._handles: dict[str, str] = {}  # datasite -> handle of its stop file (a bundle's is shared)
        self._unverified: dict[str, str] = {}  # datasite -> id of the stop sealed to its refused key

    def stop(
        self,
        run_id: int,
        datasites: Mapping[int, str],
        *,
        group_id: str,
        reason: str,
        wait: float,
        run_info: dict[str, Any] | None = None,
        refused_keys: Mapping[str, PublicKeys] | None = None,
    ) -> set[str]:
        """Send a stop to each of ``datasites`` (node id -> email) and wait up to ``wait`` seconds for their
        acknowledgements; returns the datasites that acknowledged. ``run_info`` rides in a stop bundle's
        shared content as in a request's (a stop in a file of its own carries none). ``refused_keys`` (email ->
        the changed key it publishes, refused) are the datasites whose stop is sealed to that key (see above)."""
        everyone = self._send(
            run_id, datasites, group_id=group_id, reason=reason, run_info=run_info, refused=refused_keys or {}
        )
        if not everyone:
            return set()  # no stop file was stored: no acknowledgement can come
        self.schedule.expect()
        missing = everyone - self._await(everyone, wait)
        if missing:
            logger.warning(
                "no stop acknowledgement from %s; their stop files stay until the next run or `clean`", sorted(missing)
            )
        return everyone - missing

    def owed(self) -> set[str]:
        """The datasites whose stop acknowledgement is still awaited."""
        with self._cond:
            return set(self._handles)

    def sent_unverified(self, datasite: str, stop_id: str) -> bool:
        """Whether ``stop_id`` is the stop sent to ``datasite``'s refused key (its ack cannot be verified)."""
        with self._cond:
            return self._unverified.get(datasite) == stop_id

    def acknowledged(self, datasite: str) -> str | None:
        """Note ``datasite``'s acknowledgement; returns the stop file to delete now (None: others still owe theirs)."""
        with self._cond:
            self._acks.add(datasite)
            handle = self._handles.pop(datasite, None)
            if handle in self._handles.values():
                handle = None  # a stop bundle: deleted with the last acknowledgement
            self._cond.notify_all()
        return handle

    def _send(
        self,
        run_id: int,
        datasites: Mapping[int, str],
        *,
        group_id: str,
        reason: str,
        run_info: dict[str, Any] | None,
        refused: Mapping[str, PublicKeys],
    ) -> set[str]:
        """Push the stop signals; returns the datasites whose stop was stored."""
        content = RecordDict({"config": ConfigRecord({"action": "stop", "reason": reason})})
        instructions = Instructions(self.placer, run_info)
        items = []
        for node_id, email in datasites.items():
            item = instructions.item(_stop_message(content, node_id, run_id, group_id), email, context=False)
            if email in refused:  # no secret in a stop: sealed to the key it publishes now, in a file of its own
                item = replace(item, untrusted_keys=refused[email])
                with self._cond:
                    self._unverified[email] = item.message_id
            items.append(item)
        errors: dict[int, Exception] = {}  # one line per failed file (a bundle's failure is every part's)
        sent: set[str] = set()
        for item, pushed in zip(items, self.mailbox.push(KIND_STOP, run_id, items, on_stored=self._stored)):
            if pushed.error is not None:
                errors.setdefault(id(pushed.error), pushed.error)
            else:
                sent.add(item.recipient)
        for line in dict.fromkeys(brief(exc) for exc in errors.values()):  # keep stopping the others; report once
            logger.error("could not send a stop signal: %s", line)
        if errors:
            logger.error(
                "%d stop signal(s) not sent; those clients keep polling until stopped by hand",
                len(items) - len(sent),
            )
        return sent

    def _stored(self, handle: str, items: Sequence[Outgoing]) -> None:
        with self._cond:
            for item in items:
                self._handles[item.recipient] = handle

    def _await(self, everyone: set[str], wait: float) -> set[str]:
        """Poll (forced: acks travel stop -> client poll -> ack -> server poll, each with the storage's
        listing lag) until every datasite acknowledged or ``wait`` seconds passed; returns who did."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            self.poll()
            with self._cond:
                if self._acks >= everyone:
                    break
                self._cond.wait(min(max(0.01, self.schedule.due_in()), max(0.0, deadline - time.monotonic())))
        with self._cond:
            return self._acks & everyone


def _stop_message(content: RecordDict, node_id: int, run_id: int, group_id: str) -> Message:
    msg = Message(content, node_id, STOP_MESSAGE_TYPE, group_id=group_id)
    msg.metadata.__dict__["_message_id"] = new_message_id()
    msg.metadata.__dict__["_run_id"] = run_id
    msg.metadata.__dict__["_src_node_id"] = SERVER_NODE_ID
    return msg
