"""A recipient's checks of one message file (one body for one recipient) before it is acted on.

A posting is delivered only if it passes every rule of ``vetting`` in turn: routing readable and
well formed, addressed to this app and participant, written (says the storage) by the sender it
names, that sender a peer, not handled before (the ledger), accepted by the caller (its run), not
expired, not over the size limit; then its body is a valid envelope whose header agrees with the
listing, sealed exactly when encryption is on, and opens and verifies. Whatever fails is skipped
through the mailbox's ``SkipLog`` and left in place.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import replace
from typing import BinaryIO
from typing import Protocol
from typing import cast

from syft_flwr_gdrive.base.segments import as_binary
from syft_flwr_gdrive.crypto.seal import CODEC_SEAL
from syft_flwr_gdrive.crypto.seal import PlainLayout
from syft_flwr_gdrive.crypto.seal import Sealer
from syft_flwr_gdrive.mailbox import vetting
from syft_flwr_gdrive.mailbox.delivery import Accept
from syft_flwr_gdrive.mailbox.delivery import Delivery
from syft_flwr_gdrive.mailbox.delivery import Refusal
from syft_flwr_gdrive.mailbox.envelope import MAX_HEADER_BYTES
from syft_flwr_gdrive.mailbox.envelope import Envelope
from syft_flwr_gdrive.mailbox.envelope import decode_file
from syft_flwr_gdrive.mailbox.ledger import Ledger
from syft_flwr_gdrive.mailbox.skips import Refused
from syft_flwr_gdrive.mailbox.skips import SkipLog
from syft_flwr_gdrive.mailbox.skips import verdict_of
from syft_flwr_gdrive.mailbox.streamed import SealedBodySink
from syft_flwr_gdrive.transport.contract import Posting
from syft_flwr_gdrive.transport.contract import Routing

IN_MEMORY_BODY = 8 * 1024 * 1024  # bodies up to this size are read into memory, larger ones spool to disk
SEAL_BYTES_PER = 65536  # sealing adds one byte per 64 KiB of payload (16 bytes per MiB)
BODY_SLACK = 2 * MAX_HEADER_BYTES + 4096  # the envelope header (bounded) and the seal's framing, with room to spare


class BodySource(Protocol):
    """Where bodies come from: the transport's two reads (bounded by ``max_bytes``)."""

    def read(self, posting: Posting, *, max_bytes: int | None = None) -> bytes: ...

    def read_to(self, posting: Posting, out: BinaryIO, *, max_bytes: int | None = None) -> int: ...


def body_limit(max_payload: int) -> int:
    """Largest body file for a payload limit: sealing adds 16 bytes per MiB, the envelope a bounded header."""
    return max_payload + max_payload // SEAL_BYTES_PER + BODY_SLACK


def in_memory(posting: Posting) -> bool:
    """Whether a posting's body is small enough to read into memory (and to check beside others)."""
    return posting.size <= IN_MEMORY_BODY


class MessageReader:
    """Check, download and open the message files addressed to one participant of one app."""

    def __init__(
        self,
        *,
        me: str,
        app: str,
        peers: frozenset[str],
        ledger: Ledger,
        skips: SkipLog,
        source: BodySource,
        sealer: Sealer | None = None,
        max_payload: int | None = None,
        plain_layouts: Mapping[str, PlainLayout] | None = None,
    ) -> None:
        """``plain_layouts`` (payload codec -> its layout) lets an opened payload keep each of its arrays
        in a buffer of its own, so decoding does not copy them."""
        self.me, self.app, self.peers, self.ledger = me, app, peers, ledger
        self.skips, self.source, self.sealer = skips, source, sealer
        self.max_payload = max_payload
        self.limit = None if max_payload is None else body_limit(max_payload)  # largest body file
        self.plain_layouts = dict(plain_layouts or {})

    def check(self, posting: Posting, accept: Accept | None, refused: list[Refusal]) -> Delivery | None:
        """The verified delivery of a posting, or None: each rule returns None (passed) or why not."""
        if self.skips.is_refused(posting.handle):
            return None
        routing = posting.routing
        if routing is None:
            return self._refuse(posting, vetting.unrouted(posting) or vetting.NO_ROUTING)
        reason = vetting.malformed(routing)
        if reason is None and self.ledger.handled(routing.message_id, routing.sender, routing.created_at):
            return None  # handled before
        reason = reason or vetting.misaddressed(routing, self.app, self.me) or vetting.forged(posting, routing)
        reason = reason or vetting.stranger(routing, self.peers)
        if reason:
            return self._refuse(posting, reason)
        verdict = verdict_of(accept(routing)) if accept is not None else None
        if verdict is not None:
            self.skips.skip(posting, verdict)
            return None
        reason = vetting.expired(routing.created_at, routing.ttl)
        if reason:
            return self._drop(posting, routing, reason)
        reason = vetting.oversize(posting.size, self.limit, self.max_payload)
        if reason:
            if self.skips.refuse(posting, reason):
                refused.append(Refusal(routing, reason))
            return None
        if self.sealer is not None and posting.inline is None and not in_memory(posting):
            return self._unless_handled(self._check_streamed(posting, routing))
        read = self._download(posting)
        if read is None:
            return None
        envelope, body, offset = read
        reason = vetting.disagreement(envelope, routing)
        if reason:
            body.close()
            return self._refuse(posting, reason)
        reason = vetting.expired(envelope.created_at, envelope.ttl)
        if reason:
            body.close()
            return self._drop(posting, routing, reason)
        return self._unless_handled(self._unseal(Delivery(envelope, posting, body, offset), routing))

    def _unless_handled(self, delivery: Delivery | None) -> Delivery | None:
        """The ledger asked again with the opened header's own time (the listing's ``sfg_at`` only decided that a
        file is skipped unread): a message at or below its sender's floor is handled, silently."""
        if delivery is None:
            return None
        env = delivery.envelope
        if self.ledger.handled(env.message_id, env.sender, env.created_at):
            delivery.close()
            return None
        return delivery

    def _refuse(self, posting: Posting, reason: str) -> Delivery | None:
        """Refuse a posting for good (one log line); the delivery is none."""
        self.skips.refuse(posting, reason)
        return None

    def _drop(self, posting: Posting, routing: Routing, reason: str) -> Delivery | None:
        """Refuse a posting for good and record its message as handled: it is never looked at again.

        (Its header agrees with ``routing``, or it was not read: the listed id and sender are the message's.)"""
        self.skips.refuse(posting, reason)
        self.ledger.add(routing.message_id, routing.sender, routing.created_at)
        return None

    def _download(self, posting: Posting) -> tuple[Envelope, BinaryIO, int] | None:
        """Download a posting's body (spooled to disk past IN_MEMORY_BODY) and decode its envelope.

        None if it cannot be read now (asked again at the next poll) or is no valid envelope (refused)."""
        # a binary file object; typeshed types SpooledTemporaryFile as IO[bytes], not BinaryIO
        body = cast(BinaryIO, tempfile.SpooledTemporaryFile(max_size=IN_MEMORY_BODY))
        try:
            if posting.inline is not None and len(posting.inline) == posting.size:
                body.write(posting.inline)  # the listing carried it: no download
            elif in_memory(posting):
                body.write(self.source.read(posting, max_bytes=self.limit))
            else:  # big bodies stream to disk: memory stays bounded whatever the model's size
                self.source.read_to(posting, body, max_bytes=self.limit)
            envelope, offset = decode_file(body, max_payload=self.limit, digest_checked_later=self._opens_sealed)
        except BaseException as exc:
            body.close()
            if not self.skips.failed(posting, exc):
                raise
            return None
        return envelope, body, offset

    def _check_streamed(self, posting: Posting, routing: Routing) -> Delivery | None:
        """A big body with encryption on: opened while it downloads (see ``mailbox.streamed``), no temporary file."""
        assert self.sealer is not None

        def on_header(envelope: Envelope) -> None:  # the rules check and _unseal apply, before any payload byte
            reason = vetting.sealing(self._opens_sealed(envelope), True) or vetting.disagreement(envelope, routing)
            if reason:
                raise Refused(reason)
            reason = vetting.expired(envelope.created_at, envelope.ttl)
            if reason:
                self.ledger.add(envelope.message_id, envelope.sender, envelope.created_at)
                raise Refused(reason)

        sink = SealedBodySink(
            self.sealer, routing, on_header=on_header, max_payload=self.limit, layout_of=self._layout_of
        )
        try:
            # read_to only calls out.write(); the sink decrypts what it is given instead of storing it
            self.source.read_to(posting, sink, max_bytes=self.limit)  # type: ignore[arg-type]
            envelope, plain, size = sink.finish()
        except BaseException as exc:
            sink.abort()
            if not self.skips.failed(posting, exc):
                raise
            return None
        reason = vetting.too_large(size, self.max_payload)
        if reason:
            plain.close()
            return self._refuse(posting, reason)
        return Delivery(replace(envelope, codecs=envelope.codecs[1:], size=size), posting, as_binary(plain), 0)

    def _layout_of(self, envelope: Envelope) -> PlainLayout | None:
        """The layout of a sealed payload's plaintext, from the codec under the seal (None if unknown)."""
        inner = envelope.codecs[1:]
        return self.plain_layouts.get(inner[0]) if len(inner) == 1 else None

    def _opens_sealed(self, envelope: Envelope) -> bool:
        """True if ``_unseal`` will decrypt this payload, checking its SHA-256 in that same pass."""
        return self.sealer is not None and _sealed(envelope)

    def _unseal(self, delivery: Delivery, routing: Routing) -> Delivery | None:
        """Decrypt and verify a sealed payload; fail closed on plaintext when encryption is on."""
        env, posting = delivery.envelope, delivery.posting
        reason = vetting.sealing(_sealed(env), self.sealer is not None)
        if reason:
            delivery.close()
            return self._refuse(posting, reason)
        if self.sealer is None:
            return delivery
        try:
            plain, size = self.sealer.open(
                routing,
                delivery.open_payload(),
                env.size,
                payload_sha256=env.sha256 or None,
                layout=self._layout_of(env),
            )
        except BaseException as exc:
            delivery.close()
            if not self.skips.failed(posting, exc):
                raise
            return None
        delivery.close()
        reason = vetting.too_large(size, self.max_payload)
        if reason:
            plain.close()
            return self._refuse(posting, reason)
        return Delivery(replace(env, codecs=env.codecs[1:], size=size), posting, plain, 0)


def _sealed(envelope: Envelope) -> bool:
    return bool(envelope.codecs) and envelope.codecs[0] == CODEC_SEAL
