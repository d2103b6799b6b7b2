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

The rules are ``vetting``'s, the same functions and wording the single-message reader uses; what a
failed rule or an error means (refuse, note, retry) is ``skips``'. The reader is handed what it needs
(the transport's read and ignore, the sealer, the ledger, the peers, the limits, the skip log), so it
does not know the mailbox.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

from syft_flwr_gdrive.base.accounts import canonical_email
from syft_flwr_gdrive.base.routing import KIND_REQUEST
from syft_flwr_gdrive.crypto.failures import CryptoError
from syft_flwr_gdrive.crypto.multiseal import BundleHead
from syft_flwr_gdrive.crypto.multiseal import NotARecipient
from syft_flwr_gdrive.crypto.multiseal import Opened
from syft_flwr_gdrive.crypto.multiseal import Part
from syft_flwr_gdrive.crypto.multiseal import is_plain
from syft_flwr_gdrive.crypto.multiseal import open_bundle
from syft_flwr_gdrive.crypto.multiseal import open_plain
from syft_flwr_gdrive.crypto.multiseal import pack_plain
from syft_flwr_gdrive.crypto.multiseal import read_head
from syft_flwr_gdrive.crypto.multiseal import seal_bundle
from syft_flwr_gdrive.crypto.seal import Sealer
from syft_flwr_gdrive.mailbox import vetting
from syft_flwr_gdrive.mailbox.delivery import Accept
from syft_flwr_gdrive.mailbox.delivery import Delivery
from syft_flwr_gdrive.mailbox.delivery import Refusal
from syft_flwr_gdrive.mailbox.envelope import Envelope
from syft_flwr_gdrive.mailbox.ledger import Ledger
from syft_flwr_gdrive.mailbox.skips import SkipLog
from syft_flwr_gdrive.mailbox.skips import verdict_of
from syft_flwr_gdrive.transport.contract import Posting
from syft_flwr_gdrive.transport.contract import Routing

BUNDLED_KINDS = vetting.BUNDLED_KINDS
MAX_BUNDLE_BYTES = 64 * 1024 * 1024  # a bundle carries small payloads (large arrays travel as shared blobs)
BUNDLE_HEADER_ROOM = 4 * 1024 * 1024  # a bundle's header: up to ~400 bytes per recipient
BUNDLES_REMEMBERED = 256  # bundles whose part for me is noted (a server deletes each once answered: a few are listed)


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


def _private_fields(part: Part) -> dict[str, Any] | None:
    """My part's own fields (a JSON object whose "codecs", if any, is a list of strings); None if malformed."""
    try:
        meta = json.loads(part.private.decode("utf-8")) if part.private else {}
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    if not isinstance(meta, dict):
        return None
    codecs = meta.get("codecs", [])
    return meta if isinstance(codecs, list) and all(isinstance(c, str) for c in codecs) else None


class BundleReader:
    """A recipient's side of bundles: check, open, and remember my part of each file."""

    def __init__(
        self,
        *,
        me: str,
        peers: frozenset[str],
        ledger: Ledger,
        skips: SkipLog,
        read: Callable[[Posting, int], bytes],
        ignore: Callable[[str], None],
        sealer: Sealer | None = None,
        max_payload: int | None = None,
    ) -> None:
        """``read(posting, max_bytes)`` downloads a bundle; ``ignore(handle)`` leaves a bundle with no part for
        me out of my listings from now on (the transport's ``ignore_bundle``)."""
        self.me, self.peers, self.ledger, self.skips = me, peers, ledger, skips
        self._read, self._ignore = read, ignore
        self.sealer, self.max_payload = sealer, max_payload
        # the largest bundle file read: the payload, plus its header
        self.limit = (
            MAX_BUNDLE_BYTES if max_payload is None else min(MAX_BUNDLE_BYTES, max_payload + BUNDLE_HEADER_ROOM)
        )
        # bundle handle -> my part's message id (None: no part is mine), the newest BUNDLES_REMEMBERED of them
        self._mine: dict[str, str | None] = {}

    def part_ids(self, postings: Sequence[Posting]) -> set[str]:
        """Message ids of my parts in the bundles still listed (their requests are not withdrawn yet)."""
        return {mid for p in postings if (mid := self._mine.get(p.handle))}

    def _not_mine(self, posting: Posting) -> None:
        """For other recipients only: never opened again, nor listed (nor its disappearance confirmed)."""
        self._remember(posting.handle, None)
        self._ignore(posting.handle)

    def _remember(self, handle: str, part_id: str | None) -> None:
        """Note which part of a bundle is mine; the oldest notes go past ``BUNDLES_REMEMBERED``. Forgetting is
        safe: a forgotten bundle that is listed again is read again, and my part is then refused by the ledger
        (its message id, or its time at or below its sender's floor), never handled twice."""
        self._mine.pop(handle, None)
        self._mine[handle] = part_id
        while len(self._mine) > BUNDLES_REMEMBERED:
            del self._mine[next(iter(self._mine))]

    def check(self, posting: Posting, accept: Accept | None, refused: list[Refusal]) -> Delivery | None:
        """My verified part of a listed bundle, or None. (Nothing is refused unread here: ``refused`` stays
        as it is; a bundle over the limit is the sender's to split, not a request to answer.)"""
        if self.skips.is_refused(posting.handle):
            return None
        if posting.handle in self._mine:
            known = self._mine[posting.handle]
            if known is None or (
                posting.routing is not None
                and self.ledger.handled(known, posting.routing.sender, posting.routing.created_at)
            ):
                return None
        routing = posting.routing
        if routing is None:
            self.skips.refuse(posting, vetting.unrouted(posting) or vetting.NO_ROUTING)
            return None
        reason = vetting.malformed(routing) or vetting.forged(posting, routing) or vetting.stranger(routing, self.peers)
        if reason:
            self.skips.refuse(posting, reason)
            return None
        verdict = verdict_of(accept(Routing(**{**vars(routing), "kind": KIND_REQUEST}))) if accept is not None else None
        if verdict is not None:
            self.skips.skip(posting, verdict)
            return None
        if vetting.expired(routing.created_at, routing.ttl):
            return None  # its sender removes it; nothing to answer
        reason = vetting.oversize(posting.size, self.limit, self.max_payload or self.limit)
        if reason:
            self.skips.refuse(posting, reason)
            return None
        try:
            if posting.inline is not None and len(posting.inline) == posting.size:
                data = posting.inline
            else:
                data = self._read(posting, self.limit)
        except BaseException as exc:
            if not self.skips.failed(posting, exc):
                raise
            return None
        return self._open(posting, routing, data)

    def _open(self, posting: Posting, routing: Routing, data: bytes) -> Delivery | None:
        sealed = not is_plain(data)
        reason = vetting.sealing(sealed, self.sealer is not None)
        if reason:
            self.skips.refuse(posting, reason)
            return None
        if _count_mine(data, self.me, sealed) == 0:  # not mine: not even its signature is worth checking
            self._not_mine(posting)
            return None
        try:
            opened: Opened = (
                open_bundle(self.sealer, data, self.me) if self.sealer is not None else open_plain(data, self.me)
            )
        except NotARecipient:
            self._not_mine(posting)
            return None
        except BaseException as exc:
            if not self.skips.failed(posting, exc):
                raise
            return None
        head, part = opened.head, opened.part
        reason = vetting.head_disagreement(head, routing) or vetting.part_malformed(part)
        if reason:
            self.skips.refuse(posting, reason)
            return None
        self._remember(posting.handle, part.message_id)
        if self.ledger.handled(part.message_id, routing.sender, head.created_at):
            return None
        reason = vetting.too_large(len(opened.payload), self.max_payload)
        if reason:
            self.skips.refuse(posting, reason)
            return None
        meta = _private_fields(part)
        if meta is None:
            self.skips.refuse(posting, vetting.PRIVATE_MALFORMED)
            return None
        envelope = Envelope(
            run_id=head.run_id,
            message_id=part.message_id,
            sender=canonical_email(head.sender),
            recipient=canonical_email(self.me),
            kind=head.kind,
            app=head.app,
            created_at=head.created_at,
            ttl=head.ttl,
            codecs=tuple(meta.get("codecs") or ()),
            size=len(opened.payload),
        )
        return Delivery(envelope, posting, io.BytesIO(opened.payload), 0, private=meta)
