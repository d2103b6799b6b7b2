"""Bundles: one stored message for many recipients, and a recipient's checks before acting on its part.

Why: a server pushing N instructions made N writes (and N deletes) per exchange; Drive allows
an account about 3 writes per second. A bundle carries the N instructions as one file
(``multiseal``: payload sealed once, content key wrapped per recipient, header signed), stored
where every peer of the app reads, deleted as one once every part is answered.

A recipient acts on its part only if, besides the usual rules for any message (see ``mailbox``):

* the storage says a configured peer owns the bundle file, and that peer is the sender it names;
* it lies in the place that peer announced for its bundles (the transport lists nothing else);
* the bundle opens: exactly one part is mine, the sender's pinned key signed header and body
  (encryption on), and the signed head agrees with the file's listed routing;
* my part's message id was not handled before (the ledger; remembered per file, so a handled
  bundle is not downloaded again while it stays listed).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from collections.abc import Sequence
from typing import TYPE_CHECKING

from syft_flwr_gdrive.base.accounts import canonical_email
from syft_flwr_gdrive.base.routing import KIND_REQUEST
from syft_flwr_gdrive.base.routing import KIND_STOP
from syft_flwr_gdrive.crypto.failures import CryptoError
from syft_flwr_gdrive.crypto.failures import MissingPeerKey
from syft_flwr_gdrive.crypto.multiseal import BundleHead
from syft_flwr_gdrive.crypto.multiseal import Opened
from syft_flwr_gdrive.crypto.multiseal import Part
from syft_flwr_gdrive.crypto.multiseal import is_plain
from syft_flwr_gdrive.crypto.multiseal import open_bundle
from syft_flwr_gdrive.crypto.multiseal import open_plain
from syft_flwr_gdrive.crypto.multiseal import pack_plain
from syft_flwr_gdrive.crypto.multiseal import read_head
from syft_flwr_gdrive.crypto.multiseal import seal_bundle
from syft_flwr_gdrive.crypto.seal import Sealer
from syft_flwr_gdrive.mailbox.envelope import Envelope
from syft_flwr_gdrive.mailbox.envelope import valid_email
from syft_flwr_gdrive.mailbox.envelope import valid_message_id
from syft_flwr_gdrive.transport.contract import BundleStore
from syft_flwr_gdrive.transport.contract import Posting
from syft_flwr_gdrive.transport.contract import Routing
from syft_flwr_gdrive.transport.contract import TransportError

if TYPE_CHECKING:
    from syft_flwr_gdrive.mailbox.mailbox import Delivery
    from syft_flwr_gdrive.mailbox.mailbox import Mailbox
    from syft_flwr_gdrive.mailbox.mailbox import Refusal

BUNDLED_KINDS = (KIND_REQUEST, KIND_STOP)  # what a bundle may carry: the server's instructions and stop signals
MAX_BUNDLE_BYTES = 64 * 1024 * 1024  # a bundle carries small payloads (large arrays travel as shared blobs)


def pack(sealer: Sealer | None, head: BundleHead, parts: Sequence[Part], payload: bytes) -> bytes:
    """The bundle's bytes: sealed and signed when encryption is on, in the clear otherwise."""
    return seal_bundle(sealer, head, parts, payload) if sealer is not None else pack_plain(head, parts, payload)


def _count_mine(data: bytes, me: str, sealed: bool) -> int | None:
    """How many parts name me (None: cannot tell, the open will say why)."""
    if not sealed:
        return None
    try:
        _, parts, *_ = read_head(data)
    except CryptoError:
        return None
    return sum(1 for p in parts if canonical_email(p["to"]) == canonical_email(me))


class BundleReader:
    """A recipient's side of bundles, for one mailbox: check, open, and remember my part of each file."""

    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox
        self._mine: dict[str, str | None] = {}  # bundle handle -> my part's message id (None: no part is mine)

    def part_ids(self, postings: Sequence[Posting]) -> set[str]:
        """Message ids of my parts in the bundles still listed (their requests are not withdrawn yet)."""
        return {mid for p in postings if (mid := self._mine.get(p.handle))}

    def _not_mine(self, posting: Posting) -> None:
        """For other recipients only: never opened again, nor listed (nor its disappearance confirmed)."""
        self._mine[posting.handle] = None
        if isinstance(self.mailbox.transport, BundleStore):
            self.mailbox.transport.ignore_bundle(posting.handle)

    def check(
        self, posting: Posting, accept: Callable[[Routing], str | None] | None, refused: list[Refusal]
    ) -> Delivery | None:
        box = self.mailbox
        if posting.handle in box._rejected:
            return None
        if posting.handle in self._mine:
            known = self._mine[posting.handle]
            if known is None or known in box.ledger:
                return None
        routing = posting.routing
        if routing is None:
            box._reject(posting, "a bundle without valid routing metadata; a foreign or damaged file, left untouched")
            return None
        if not (valid_message_id(routing.message_id) and valid_email(routing.sender)):
            box._reject(posting, "a bundle whose id or sender is malformed; a foreign or forged file, left untouched")
            return None
        if canonical_email(posting.owner) != canonical_email(routing.sender):
            box._reject(
                posting,
                f"a bundle claiming to be from {routing.sender!r} but the storage says "
                f"{posting.owner!r} wrote it (forged sender)",
            )
            return None
        if canonical_email(routing.sender) not in box.peers:
            box._reject(posting, f"a bundle from {routing.sender!r}, not a peer of this app (unknown sender)")
            return None
        if accept is not None:
            reason = accept(Routing(**{**vars(routing), "kind": KIND_REQUEST}))
            if reason:
                box._note(posting, reason)
                return None
        if time.time() > routing.created_at + routing.ttl:
            return None  # expired: its sender removes it; nothing to answer
        limit = MAX_BUNDLE_BYTES
        if box.max_payload is not None:  # the payload, plus a header of up to ~400 bytes per recipient
            limit = min(MAX_BUNDLE_BYTES, box.max_payload + 4 * 1024 * 1024)
        if posting.size > limit:
            box._reject(posting, f"a bundle of {posting.size} bytes, over {limit}; refused without downloading it")
            return None
        try:
            if posting.inline is not None and len(posting.inline) == posting.size:
                data = posting.inline
            else:
                data = box.transport.read(posting, max_bytes=limit)
        except TransportError as exc:
            box._note(posting, f"could not read the bundle yet ({exc}); will retry on the next poll")
            return None
        return self._open(posting, routing, data)

    def _open(self, posting: Posting, routing: Routing, data: bytes) -> Delivery | None:
        from syft_flwr_gdrive.mailbox.mailbox import Delivery

        box = self.mailbox
        me = box.email
        sealed = not is_plain(data)
        if box.sealer is None and sealed:
            box._reject(
                posting,
                "an encrypted bundle, but encryption is switched off here "
                "(unset SYFT_FLWR_ENCRYPTION_ENABLED=false to read it)",
            )
            return None
        if box.sealer is not None and not sealed:
            box._reject(
                posting,
                "a bundle in the clear, but encryption is on: refused (fail closed). A peer with "
                "SYFT_FLWR_ENCRYPTION_ENABLED=false must switch it back on",
            )
            return None
        if _count_mine(data, me, sealed) == 0:
            self._not_mine(posting)
            return None
        try:
            opened: Opened = open_bundle(box.sealer, data, me) if box.sealer is not None else open_plain(data, me)
        except MissingPeerKey as exc:
            box._note(posting, str(exc))
            return None
        except CryptoError as exc:
            if "0 parts for" in str(exc):
                self._not_mine(posting)
                return None
            box._reject(posting, f"bundle rejected: {exc}")
            return None
        except Exception as exc:  # noqa: BLE001 - a hostile bundle must never break the poll loop
            box._reject(posting, f"bundle rejected: could not be opened ({type(exc).__name__})")
            return None
        head, part = opened.head, opened.part
        signed = (head.app, head.run_id, head.bundle_id, canonical_email(head.sender))
        listed = (routing.app, routing.run_id, routing.message_id, canonical_email(routing.sender))
        if (
            signed != listed
            or head.created_at != routing.created_at
            or head.ttl != routing.ttl
            or head.kind not in BUNDLED_KINDS
        ):
            box._reject(posting, "the bundle's signed head disagrees with its listed routing (moved or altered)")
            return None
        if not valid_message_id(part.message_id) or part.reply_to:
            box._reject(posting, "my part of the bundle has a malformed message id")
            return None
        self._mine[posting.handle] = part.message_id
        if part.message_id in box.ledger:
            return None
        if box.max_payload is not None and len(opened.payload) > box.max_payload:
            box._reject(
                posting, f"rejected: {len(opened.payload)} bytes is over the message limit of {box.max_payload} bytes"
            )
            return None
        try:
            meta = json.loads(part.private.decode("utf-8")) if part.private else {}
            if (
                not isinstance(meta, dict)
                or not isinstance(meta.get("codecs", []), list)
                or not all(isinstance(c, str) for c in meta.get("codecs", []))
            ):
                raise ValueError("not an object with a list of codecs")
        except (UnicodeDecodeError, ValueError):
            box._reject(posting, "my part of the bundle carries malformed private metadata")
            return None
        envelope = Envelope(
            run_id=head.run_id,
            message_id=part.message_id,
            sender=canonical_email(head.sender),
            recipient=canonical_email(me),
            kind=head.kind,
            app=head.app,
            created_at=head.created_at,
            ttl=head.ttl,
            codecs=tuple(meta.get("codecs") or ()),
            size=len(opened.payload),
        )
        return Delivery(envelope, posting, io.BytesIO(opened.payload), 0, private=meta)
