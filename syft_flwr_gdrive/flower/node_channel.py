"""The node's side of the apps channel: take offers in, send the data owner's answers, clean up after itself.

An offer is kept only after its FAB checked out (size, names, ``.info/CONTENT``, the fingerprint its
sender signed); a bad one is answered ``rejected`` with the reason, so the aggregator sees it. The
first answer to an offer is ``pending`` (the node holds it; its data owner has not decided), unless
the data owner approved this exact FAB before, or an auto-approval rule (off by default) approves it.
Decisions taken later, from another terminal, go out at the next poll while the offer is still on
Drive; an answer is deleted once the offer it answers is gone (the aggregator has stopped waiting).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from syft_flwr_gdrive.base.accounts import canonical_email
from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.base.routing import KIND_ANSWER
from syft_flwr_gdrive.base.routing import KIND_OFFER
from syft_flwr_gdrive.flower.app_store import AUTO_NONE
from syft_flwr_gdrive.flower.app_store import PENDING
from syft_flwr_gdrive.flower.app_store import AppStore
from syft_flwr_gdrive.flower.app_store import Offer
from syft_flwr_gdrive.flower.fab import FabRefused
from syft_flwr_gdrive.flower.fab import fab_hash
from syft_flwr_gdrive.flower.fab import install
from syft_flwr_gdrive.flower.offer_messages import MAX_OFFER_HEAD
from syft_flwr_gdrive.flower.offer_messages import Answer
from syft_flwr_gdrive.flower.offer_messages import decode_offer
from syft_flwr_gdrive.flower.offers import open_apps_mailbox
from syft_flwr_gdrive.mailbox.delivery import Delivery
from syft_flwr_gdrive.transport.contract import Posting
from syft_flwr_gdrive.transport.contract import Transport

logger = logging.getLogger(__name__)


class NodeChannel:
    """Offers in, answers out, for one data owner serving ``aggregators``."""

    def __init__(
        self,
        settings: Settings,
        transport: Transport,
        aggregators: Sequence[str],
        store: AppStore,
        *,
        auto: str = AUTO_NONE,
    ) -> None:
        self.settings = settings
        self.store = store
        self.auto = auto
        self.aggregators = sorted({canonical_email(a) for a in aggregators})
        self.mailbox = open_apps_mailbox(
            settings, transport, self.aggregators, max_payload=settings.max_offer_bytes + MAX_OFFER_HEAD + 1024
        )
        self.received = 0
        self.refused = 0

    def start(self) -> None:
        """Share my apps outbox with each aggregator and publish my keys: that is how they find this node."""
        self.mailbox.prepare()
        logger.info(
            "node %s: taking offers from %s only (offers from anyone else are never read)",
            self.settings.email,
            ", ".join(self.aggregators),
        )

    def poll_once(self) -> None:
        result = self.mailbox.poll()
        for refusal in result.refused:  # over the offer limit: refused unread, and the aggregator is told why
            routing = refusal.routing
            if routing.kind == KIND_OFFER:
                self.refused += 1
                self._answer_now(routing.sender, routing.message_id, Answer("rejected", refusal.reason, "", ""))
        for delivery in result.deliveries:
            try:
                if delivery.envelope.kind == KIND_OFFER:
                    self._receive(delivery)
                self.mailbox.mark_handled(
                    delivery.envelope.message_id, delivery.envelope.sender, delivery.envelope.created_at
                )
            finally:
                delivery.close()
        inbound = result.inbound_message_ids()
        self._send_due(inbound)
        self._delete_stale_answers(result.listing.outbound, inbound)

    def _receive(self, delivery: Delivery) -> None:
        sender = canonical_email(delivery.envelope.sender)
        message_id = delivery.envelope.message_id
        payload = delivery.payload
        try:
            head, fab = decode_offer(payload)
            if fab_hash(fab) != head.fab_hash:
                raise FabRefused("the FAB's hash differs from the one its offer names")
            info, _ = install(
                fab, head.fingerprint, self.store.installed_dir / head.fab_hash, max_bytes=self.settings.max_offer_bytes
            )
        except FabRefused as exc:
            self.refused += 1
            logger.warning("refused an offer from %s: %s", sender, exc)
            digest = head.fab_hash if "head" in locals() else ""
            self._answer_now(sender, message_id, Answer("rejected", f"refused by the node: {exc}", digest, ""))
            return
        meta = {**info.as_dict(), "fingerprint": head.fingerprint}
        offer = self.store.receive(sender=sender, message_id=message_id, meta=meta, fab=fab, auto=self.auto)
        self.received += 1
        if offer.state == PENDING:
            logger.info(
                "offer %s from %s: app %s %s (%d files, %d bytes), pending: `syft-flwr-gdrive review %s`, then "
                "`approve %s` or `reject %s --reason ...`",
                offer.id,
                sender,
                offer.name,
                offer.version,
                len(offer.files),
                offer.size,
                offer.id,
                offer.id,
                offer.id,
            )
        else:
            logger.info(
                "offer %s from %s: app %s %s, %s (%s)",
                offer.id,
                sender,
                offer.name,
                offer.version,
                offer.state,
                offer.decided_by or "decided before",
            )

    def _send_due(self, inbound: set[str]) -> None:
        for offer in self.store.offers():
            if not offer.answer_due:
                continue
            if offer.message_id in inbound:
                self._answer_now(offer.sender, offer.message_id, _answer_of(offer))
                logger.info("offer %s: answered %s %s", offer.id, offer.sender, offer.state)
            else:  # the aggregator stopped waiting: its next offer of this app is answered at once
                logger.info(
                    "offer %s: %s, kept for %s's next offer (this one is gone)", offer.id, offer.state, offer.sender
                )
            self.store.answered(offer)

    def _answer_now(self, recipient: str, reply_to: str, answer: Answer) -> None:
        try:
            self.mailbox.send(
                kind=KIND_ANSWER, recipient=recipient, run_id=0, payload=answer.encode(), reply_to=reply_to
            )
        except Exception as exc:  # noqa: BLE001 - the answer goes out again with the next offer
            logger.warning("could not answer %s's offer (%s); it is answered again when offered again", recipient, exc)

    def _delete_stale_answers(self, outbound: tuple[Posting, ...], inbound: set[str]) -> None:
        stale = [
            p.handle
            for p in outbound
            if p.routing is not None and p.routing.kind == KIND_ANSWER and p.routing.reply_to not in inbound
        ]
        if stale:
            try:
                self.mailbox.delete_own(stale)
            except Exception as exc:  # noqa: BLE001 - tried again at the next poll
                logger.info("could not delete %d answered offer replies yet (%s)", len(stale), exc)


def _answer_of(offer: Offer) -> Answer:
    return Answer(offer.state, offer.reason, offer.fab_hash, offer.fingerprint)
