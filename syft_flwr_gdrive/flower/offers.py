"""The aggregator's side of shipping: offer the app to the datasites' nodes and collect their answers.

``offer_app`` builds the project's FAB (Flower's builder, Flower's file rules), pushes it on the apps
channel to every datasite that has not approved this exact FAB (one bundle for N where the transport
stores bundles: sealed once, its key wrapped per datasite, signed), and waits up to the approval
timeout for each datasite's answer. A node answers ``pending`` as soon as it holds the offer (its data
owner has not decided yet: *awaiting approval*), then ``approved`` or ``rejected`` with a reason.

A datasite whose node never showed itself on the apps channel (no outbox, no keys) within a short grace
is a data owner who runs their own copy (``client -p``): it takes part as before, and the client's
fingerprint check stays the real guard. Approvals received are kept in the aggregator's state dir, so a
datasite that approved this FAB is not offered it again. The offer files are deleted when the wait
ends: a node that has an offer keeps it, and a node that had none gets it at the next offer.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from syft_flwr_gdrive.base.accounts import canonical_email
from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.base.routing import KIND_ANSWER
from syft_flwr_gdrive.base.routing import KIND_OFFER
from syft_flwr_gdrive.base.statefile import write_json_atomic
from syft_flwr_gdrive.flower.app_mailbox import participant_mailbox
from syft_flwr_gdrive.flower.fab import build_fab
from syft_flwr_gdrive.flower.fab import describe
from syft_flwr_gdrive.flower.fab import fab_hash
from syft_flwr_gdrive.flower.fab import read_fab
from syft_flwr_gdrive.flower.fingerprint import app_identity
from syft_flwr_gdrive.flower.offer_messages import APPS_CHANNEL
from syft_flwr_gdrive.flower.offer_messages import Answer
from syft_flwr_gdrive.flower.offer_messages import OfferHead
from syft_flwr_gdrive.flower.offer_messages import encode_offer
from syft_flwr_gdrive.mailbox.mailbox import Mailbox
from syft_flwr_gdrive.mailbox.mailbox import new_message_id
from syft_flwr_gdrive.mailbox.outgoing import Outgoing
from syft_flwr_gdrive.transport.contract import Transport

logger = logging.getLogger(__name__)

# Why 300 s: the first offer of an app needs a person to read it and type `approve`; five minutes is enough for a
# data owner who is at their terminal (the usual case: they were told the run is starting), and short enough that a
# server whose data owners are away does not sit silent for long. An approved FAB is answered by the node at once
# (two polls), and `submit` offers ahead of time, so the wait is only ever long on the first run of a new version.
DEFAULT_APPROVAL_TIMEOUT = 300.0
# Polls (at least one discovers the peers' outboxes, the next confirms) to find a datasite's node on the apps channel
# before taking it for a data owner who runs their own copy (`client -p`); a datasite whose node was seen once is
# always waited for.
NODE_GRACE_POLLS = 3
ANSWER_ROOM = 64 * 1024  # largest answer accepted
OFFER_RUN = 0  # the run id offers and answers carry: they belong to no run

APPROVED = "approved"
AWAITING = "awaiting approval"
NO_NODE = "no node: runs its own copy (client -p)"
STATE_FILE = "app-approvals.json"


@dataclass
class OfferOutcome:
    """How the offer went, per datasite: ``approved``, ``awaiting approval``, ``rejected: <reason>``, or no node."""

    fab_hash: str
    fingerprint: str
    fab_bytes: int
    status: dict[str, str]
    offered: list[str] = field(default_factory=list)
    seconds: float = 0.0
    drive_calls: dict[str, int] = field(default_factory=dict)

    @property
    def participants(self) -> list[str]:
        """Who takes part in the run: who approved, and who runs its own copy."""
        return [site for site, state in self.status.items() if state in (APPROVED, NO_NODE)]

    def as_dict(self) -> dict[str, Any]:
        return {
            "fab_hash": self.fab_hash,
            "fingerprint": self.fingerprint,
            "fab_bytes": self.fab_bytes,
            "status": dict(self.status),
            "offered": list(self.offered),
            "seconds": round(self.seconds, 3),
            "drive_calls": dict(self.drive_calls),
        }


def open_apps_mailbox(settings: Settings, transport: Transport, peers: Sequence[str], *, max_payload: int) -> Mailbox:
    """The apps channel's mailbox: sealed and signed like any app's, its own ledger."""
    return participant_mailbox(settings, transport, APPS_CHANNEL, peers, max_payload=max_payload)


class ApprovalLog:
    """The answers an aggregator received, by FAB hash and datasite (``<state>/app-approvals.json``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.data: dict[str, dict[str, dict[str, Any]]] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.data = {}

    def has_node(self, site: str) -> bool:
        return site in self.data.get("nodes", {})

    def saw_nodes(self, sites: set[str]) -> None:
        """Remember who runs a node: such a datasite is waited for, never taken for a `client -p` one."""
        new = sites - set(self.data.get("nodes", {}))
        if new:
            nodes = self.data.setdefault("nodes", {})
            for site in new:
                nodes[site] = {"state": "node", "at": time.time()}
            write_json_atomic(self.path, self.data)

    def approved(self, digest: str, site: str) -> bool:
        return self.data.get(digest, {}).get(site, {}).get("state") == APPROVED

    def record(self, site: str, answer: Answer) -> None:
        self.data.setdefault(answer.fab_hash, {})[site] = {
            "state": answer.state,
            "reason": answer.reason,
            "at": time.time(),
        }
        write_json_atomic(self.path, self.data)


def offer_app(
    project_dir: Path,
    settings: Settings,
    transport: Transport,
    datasites: Sequence[str],
    *,
    approval_timeout: float = DEFAULT_APPROVAL_TIMEOUT,
    until: str = "decided",
    sleep: Callable[[float], None] = time.sleep,
) -> OfferOutcome:
    """Offer the project's app to ``datasites`` and wait for their answers; returns each one's status.

    ``until`` is ``"decided"`` (the server: wait for approve or reject) or ``"received"`` (``submit``: wait until
    each node holds the offer)."""
    started = time.monotonic()
    before = dict(transport.call_counts())
    identity = app_identity(project_dir)
    fab = build_fab(project_dir, max_bytes=settings.max_offer_bytes)
    info = describe(fab, read_fab(fab, max_bytes=settings.max_offer_bytes))
    digest = fab_hash(fab)
    sites = sorted({canonical_email(s) for s in datasites})
    log = ApprovalLog(settings.participant_state_dir() / STATE_FILE)
    status = {site: (APPROVED if log.approved(digest, site) else "") for site in sites}
    outcome = OfferOutcome(digest, identity.fingerprint, len(fab), status)
    to_offer = [site for site in sites if not status[site]]
    for site in sites:
        if status[site]:
            logger.info("app %s (FAB %s): %s approved it before; not offered again", info.name, digest[:12], site)
    if not to_offer:
        return _done(outcome, started, before, transport)
    payload = encode_offer(OfferHead(identity.fingerprint, digest, info.name, info.version), fab)
    mailbox = open_apps_mailbox(settings, transport, sites, max_payload=ANSWER_ROOM)
    mailbox.prepare(keys=False)
    if settings.bundles:
        mailbox.enable_bundles()
    mailbox.announce_run(OFFER_RUN)  # the announcement tells the nodes where my bundles are; my keys come after it
    mailbox.publish_keys()
    sent: dict[str, str] = {}  # site -> offer message id
    handles: set[str] = set()
    seen_nodes: set[str] = set()
    deadline = started + approval_timeout
    grace = started + min(approval_timeout, NODE_GRACE_POLLS * settings.poll_interval)
    try:
        while True:
            result = mailbox.poll()
            seen_nodes |= {canonical_email(a.owner) for a in result.listing.announcements} & set(sites)
            log.saw_nodes(seen_nodes)
            ready = [s for s in to_offer if s not in sent and s in seen_nodes and _can_seal(mailbox, s)]
            if ready:
                _push(mailbox, ready, payload, sent, handles)
                logger.info(
                    "offered app %s %s (FAB %s, %d bytes) to %s",
                    info.name,
                    info.version,
                    digest[:12],
                    len(fab),
                    ", ".join(ready),
                )
            for delivery in result.deliveries:
                try:
                    _take_answer(delivery, mailbox, log, digest, status)
                finally:
                    delivery.close()
            now = time.monotonic()
            if now >= grace:
                for site in to_offer:
                    if site not in sent and not status[site] and not log.has_node(site):
                        status[site] = NO_NODE
            if _settled(status, to_offer, until) or now >= deadline:
                break
            sleep(settings.poll_interval)
    finally:
        if handles:
            try:
                mailbox.delete_own(sorted(handles))
            except Exception as exc:  # noqa: BLE001 - leftovers are cleaned by the next start or `clean`
                logger.warning("could not delete the offer files (%s); `syft-flwr-gdrive clean` removes them", exc)
    for site in to_offer:
        if not status[site] or status[site] == "pending":
            status[site] = AWAITING if site in sent or log.has_node(site) else NO_NODE
    outcome.offered = sorted(sent)
    for site, state in sorted(status.items()):
        logger.info("app %s (FAB %s): %s %s", info.name, digest[:12], site, state)
    return _done(outcome, started, before, transport)


def _can_seal(mailbox: Mailbox, site: str) -> bool:
    return mailbox.sealer is None or mailbox.sealer.knows(site)


def _push(mailbox: Mailbox, sites: list[str], payload: bytes, sent: dict[str, str], handles: set[str]) -> None:
    now = time.time()
    items = [
        Outgoing(
            recipient=site,
            message_id=new_message_id(),
            created_at=now,
            ttl=12 * 3600.0,
            payload=lambda: payload,
            shared=lambda: payload,
        )
        for site in sites
    ]
    for item, pushed in zip(items, mailbox.push(KIND_OFFER, OFFER_RUN, items)):
        if pushed.error is not None:
            logger.warning(
                "could not offer the app to %s: %s (tried again at the next poll)", item.recipient, pushed.error
            )
            continue
        sent[item.recipient] = item.message_id
        if pushed.handle:
            handles.add(pushed.handle)


def _take_answer(delivery: Any, mailbox: Mailbox, log: ApprovalLog, digest: str, status: dict[str, str]) -> None:
    envelope = delivery.envelope
    mailbox.mark_handled(envelope.message_id, envelope.sender, envelope.created_at)
    if envelope.kind != KIND_ANSWER:
        return
    site = canonical_email(envelope.sender)
    answer = Answer.decode(delivery.payload)
    if answer is None:
        logger.warning("a malformed answer from %s was ignored", site)
        return
    if answer.state != "pending":
        log.record(site, answer)
    if answer.fab_hash != digest or site not in status:
        return  # an answer about another version: kept in the log, no bearing on this offer
    if answer.state == APPROVED:
        status[site] = APPROVED
    elif answer.state == "rejected":
        status[site] = f"rejected: {answer.reason or 'no reason given'}"
        logger.warning("%s rejected the app: %s", site, answer.reason or "no reason given")
    elif not status[site]:
        status[site] = "pending"
        logger.info("%s: the offer reached its node, awaiting approval by its data owner", site)


def _settled(status: dict[str, str], offered: list[str], until: str) -> bool:
    waiting = ("", "pending") if until == "decided" else ("",)
    return all(status[site] not in waiting for site in offered)


def _done(outcome: OfferOutcome, started: float, before: dict[str, int], transport: Transport) -> OfferOutcome:
    outcome.seconds = time.monotonic() - started
    after = transport.call_counts()
    outcome.drive_calls = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}
    return outcome


def submit_project(
    project_dir: Path, settings_overrides: dict[str, Any], datasites: Sequence[str] | None, *, wait: float
) -> OfferOutcome:
    """``submit``: offer the project's app and wait until each node holds it (or ``wait`` seconds); run nothing."""
    from syft_flwr_gdrive.base.config import ConfigError
    from syft_flwr_gdrive.base.config import ProjectConfig
    from syft_flwr_gdrive.base.config import validate_email
    from syft_flwr_gdrive.transport.registry import create_transport

    project = ProjectConfig.load(project_dir)
    settings = Settings.from_env(project=project, **settings_overrides)
    sites = list(datasites) if datasites is not None else list(project.datasites)
    if not sites:
        raise ConfigError("No datasites: pass --datasites a@x.com,b@y.com or set [tool.syft_flwr] datasites.")
    sites = [validate_email(site, what="datasites") for site in sites]
    transport = create_transport(settings)
    try:
        return offer_app(Path(project_dir), settings, transport, sites, approval_timeout=wait, until="received")
    finally:
        transport.close()
