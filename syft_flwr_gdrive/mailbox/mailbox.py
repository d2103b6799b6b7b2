"""Trust, de-duplication and envelope checks on top of any transport.

The transport says what is there and who the storage says wrote it; the
mailbox decides what may be acted on. A posting is delivered only if:

* its routing metadata names this app and this participant as recipient,
* the storage's owner of the file is the sender it claims to be,
* that sender is a configured peer,
* it has not been handled before (ledger survives restarts),
* the caller accepts its run, it has not expired,
* its body is a valid envelope whose header agrees with the metadata and
  whose payload matches its SHA-256.

Everything else is skipped with one log line per posting and left in place:
nothing is deleted that this participant does not own, so nothing is lost.
"""

from __future__ import annotations

import functools
import json
import logging
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from dataclasses import replace
from typing import Any
from typing import BinaryIO
from typing import cast

from syft_flwr_gdrive.base.accounts import canonical_email
from syft_flwr_gdrive.base.logsafe import printable as _printable
from syft_flwr_gdrive.base.segments import Buffer
from syft_flwr_gdrive.base.segments import ConcatReader
from syft_flwr_gdrive.base.segments import SeekableReader
from syft_flwr_gdrive.base.segments import SegmentReader
from syft_flwr_gdrive.base.segments import as_binary
from syft_flwr_gdrive.crypto.multiseal import BundleHead
from syft_flwr_gdrive.crypto.multiseal import Part
from syft_flwr_gdrive.crypto.seal import CODEC_SEAL
from syft_flwr_gdrive.crypto.seal import CryptoError
from syft_flwr_gdrive.crypto.seal import MissingPeerKey
from syft_flwr_gdrive.crypto.seal import PlainLayout
from syft_flwr_gdrive.crypto.seal import PublicKeys
from syft_flwr_gdrive.crypto.seal import Sealer
from syft_flwr_gdrive.mailbox.bundles import BundleReader
from syft_flwr_gdrive.mailbox.bundles import pack as pack_bundle
from syft_flwr_gdrive.mailbox.envelope import MAX_HEADER_BYTES
from syft_flwr_gdrive.mailbox.envelope import Envelope
from syft_flwr_gdrive.mailbox.envelope import EnvelopeError
from syft_flwr_gdrive.mailbox.envelope import decode_file
from syft_flwr_gdrive.mailbox.envelope import encode_segments
from syft_flwr_gdrive.mailbox.envelope import header_bytes
from syft_flwr_gdrive.mailbox.envelope import valid_email
from syft_flwr_gdrive.mailbox.envelope import valid_message_id
from syft_flwr_gdrive.mailbox.ledger import Ledger
from syft_flwr_gdrive.mailbox.signed_announcements import SignedAnnouncements
from syft_flwr_gdrive.mailbox.streamed import SealedBodySink
from syft_flwr_gdrive.transport.contract import BundleStore
from syft_flwr_gdrive.transport.contract import Listing
from syft_flwr_gdrive.transport.contract import Posting
from syft_flwr_gdrive.transport.contract import Routing
from syft_flwr_gdrive.transport.contract import Transport
from syft_flwr_gdrive.transport.contract import TransportError

logger = logging.getLogger(__name__)

READ_WORKERS = 8  # messages of one poll checked and downloaded side by side
IN_MEMORY_BODY = 8 * 1024 * 1024  # bodies up to this size are read into memory, larger ones spool to disk
DEFAULT_TTL = 12 * 3600.0  # seconds a sent message stays valid unless the caller says otherwise
SEAL_BYTES_PER = 65536  # sealing adds one byte per 64 KiB of payload (16 bytes per MiB)
BODY_SLACK = 2 * MAX_HEADER_BYTES + 4096  # the envelope header (bounded) and the seal's framing, with room to spare


@dataclass(frozen=True)
class Delivery:
    """A verified message ready to act on; its body is in memory or in a temporary file."""

    envelope: Envelope
    posting: Posting
    body: BinaryIO
    offset: int
    private: dict[str, Any] | None = (
        None  # a bundle part's own fields (its Flower metadata); None for a file of its own
    )

    def open_payload(self) -> BinaryIO:
        """The body positioned at the payload's first byte (``envelope.size`` bytes follow)."""
        self.body.seek(self.offset)
        return self.body

    @property
    def payload(self) -> bytes:
        """The whole payload in memory (fine for small messages)."""
        return self.open_payload().read(self.envelope.size)

    def close(self) -> None:
        self.body.close()


@dataclass(frozen=True)
class Refusal:
    """A message from a peer refused unread (over the size limit); the caller may owe its sender an answer."""

    routing: Routing
    reason: str


@dataclass(frozen=True)
class PollResult:
    deliveries: tuple[Delivery, ...]
    listing: Listing
    refused: tuple[Refusal, ...] = ()  # each reported once
    parts: frozenset[str] = frozenset()  # ids of my parts in bundles still listed

    def inbound_message_ids(self) -> set[str]:
        """Ids of everything addressed to me that is still stored (handled or not), bundle parts included."""
        return {p.routing.message_id for p in self.listing.inbound if p.routing is not None} | self.parts


def new_message_id() -> str:
    return uuid.uuid4().hex


def body_limit(max_payload: int) -> int:
    """Largest body file for a payload limit: sealing adds 16 bytes per MiB, the envelope a bounded header."""
    return max_payload + max_payload // SEAL_BYTES_PER + BODY_SLACK


class Mailbox:
    """Send and receive verified envelopes for one app through one transport."""

    def __init__(
        self,
        transport: Transport,
        app: str,
        peers: Iterable[str],
        ledger: Ledger,
        *,
        max_payload: int | None = None,
        sealer: Sealer | None = None,
        plain_layouts: Mapping[str, PlainLayout] | None = None,
        blob_part_bytes: int | None = None,
    ) -> None:
        """``sealer`` switches on end-to-end encryption: everything sent is sealed, and
        (fail closed) nothing unsealed is accepted. ``max_payload`` (bytes) is the largest
        message accepted; a larger message file is refused from its listed size, unread.
        ``plain_layouts`` (payload codec -> its layout) lets an opened payload keep each of
        its arrays in a buffer of its own, so decoding does not copy them. ``blob_part_bytes`` is the
        part size of the blobs sent from here in parts (None: ``blobs.PART_BYTES``)."""
        self.transport = transport
        self.blob_part_bytes = blob_part_bytes
        self.app = app
        self.peers = frozenset(canonical_email(p) for p in peers)
        self.ledger = ledger
        self.max_payload = max_payload
        self._rejected: set[str] = set()  # handles rejected for good (logged once)
        self._noted: set[tuple[str, str]] = set()  # (handle, reason) already logged for passing skips
        self._lock = threading.Lock()
        self.announced: dict[str, int] = {}  # peer (canonical email) -> the newest run it announces
        self.sealer = sealer
        self.plain_layouts = dict(plain_layouts or {})
        self.bundles = BundleReader(self)
        self.bundling = False  # pushes go as bundles (see enable_bundles)
        self._pool: ThreadPoolExecutor | None = None
        # Where the storage cannot vouch for who wrote an announcement, it is signed, and vetted on reading.
        self._signed: SignedAnnouncements | None = None
        if sealer is not None and transport.signed_announcements:
            self._signed = SignedAnnouncements(app, sealer)
            transport.sign_announcements(app, self._signed.signer(transport.email))

    @property
    def email(self) -> str:
        return self.transport.email

    def prepare(self, *, keys: bool = True) -> None:
        """Make my folders for the peers and (unless ``keys`` is False: see :meth:`publish_keys`) publish my keys."""
        self.transport.prepare(self.app, sorted(self.peers))
        if keys:
            self.publish_keys()

    def publish_keys(self) -> None:
        """Put my public keys where peers look (nothing without encryption).

        A server publishes them after announcing its run: a client that finds the keys stops looking
        for the server's folders at every poll (and looks again 10 s later), so keys seen before the
        run announcement would hide the run, and where its bundles are, for up to 10 s."""
        if self.sealer is not None:
            self.transport.publish_keys(self.app, self.sealer.identity.public.encode())

    def enable_bundles(self) -> bool:
        """Send pushes as bundles from now on, if the transport stores them; True if it does."""
        if isinstance(self.transport, BundleStore):
            self.transport.enable_bundles(self.app)
            self.bundling = True
        return self.bundling

    def announce_run(self, run_id: int) -> None:
        """Let peers know ``run_id`` is this participant's current run (clients then ignore others)."""
        self.transport.announce_run(self.app, run_id)

    def send(
        self,
        *,
        kind: str,
        recipient: str,
        run_id: int,
        payload: bytes | Sequence[Buffer],
        message_id: str | None = None,
        reply_to: str = "",
        ttl: float = DEFAULT_TTL,
        created_at: float | None = None,
        codecs: tuple[str, ...] | None = None,
    ) -> tuple[str, str]:
        """Send ``payload`` (bytes, or buffers sent without joining) to ``recipient``; returns (message_id, handle)."""
        routing = Routing(
            app=self.app,
            run_id=run_id,
            message_id=message_id or new_message_id(),
            reply_to=reply_to,
            kind=kind,
            sender=self.email,
            recipient=recipient.lower(),
            ttl=ttl,
            **({"created_at": created_at} if created_at is not None else {}),
        )
        # as_dict() has exactly Routing's fields, which Envelope takes too; mypy sees only dict[str, object]
        envelope = Envelope(**routing.as_dict(), **({"codecs": tuple(codecs)} if codecs else {}))  # type: ignore[arg-type]
        segments = [payload] if isinstance(payload, (bytes, bytearray, memoryview)) else list(payload)
        if self.sealer is None:
            body: SeekableReader = SegmentReader(encode_segments(envelope, segments))
        else:  # MissingPeerKey propagates: the caller decides whether to wait for the key
            plain = SegmentReader(segments)
            # no digest in the header: the seal's signature covers the payload, and the stream is signed as it
            # is read, so the upload starts at once instead of after a pass over the whole payload
            sealed = self.sealer.seal(routing, as_binary(plain), plain.size)
            envelope = replace(envelope, codecs=(CODEC_SEAL, *envelope.codecs), sha256="", size=sealed.size)
            body = ConcatReader([SegmentReader([header_bytes(envelope)]), sealed])
        try:
            handle = self.transport.send(routing, body)
        finally:
            body.close()
        return envelope.message_id, handle

    def send_bundle(
        self,
        *,
        kind: str,
        run_id: int,
        parts: Sequence[tuple[str, str, dict[str, Any]]],
        payload: bytes,
        created_at: float,
        ttl: float,
    ) -> tuple[str, str]:
        """One stored message for many recipients: ``parts`` are (recipient, message id, private fields).

        Needs a transport that stores bundles (``BundleStore``); returns (bundle id, handle).
        Raises ``MissingPeerKey`` (nothing sent) when a recipient's key is not known."""
        head = BundleHead(
            app=self.app,
            run_id=run_id,
            bundle_id=new_message_id(),
            kind=kind,
            sender=self.email,
            created_at=created_at,
            ttl=ttl,
        )
        sealed = pack_bundle(
            self.sealer,
            head,
            [
                Part(recipient.lower(), message_id, private=json.dumps(private, separators=(",", ":")).encode())
                for recipient, message_id, private in parts
            ],
            payload,
        )
        routing = Routing(
            run_id=run_id,
            message_id=head.bundle_id,
            reply_to="",
            kind=kind,
            sender=self.email,
            recipient="",
            app=self.app,
            created_at=created_at,
            ttl=ttl,
        )
        assert isinstance(self.transport, BundleStore), "send_bundle needs a transport that stores bundles"
        return head.bundle_id, self.transport.send_bundle(routing, sealed)

    def poll(self, accept: Callable[[Routing], str | None] | None = None) -> PollResult:
        """One poll: list, check, read and verify new messages.

        Peers' run announcements (only those the storage says a peer made) are
        refreshed first, in ``self.announced``, so ``accept`` can use them.

        ``accept`` may return a reason string to skip a message for now (for
        example, one of a run this participant is not in); it is asked again
        on the next poll.
        """
        listing = self.transport.poll(self.app)
        self.announced = self._announced_runs(listing)
        refused: list[Refusal] = []
        checks = [(p, functools.partial(self._check, p, accept, refused)) for p in listing.inbound]
        checks += [(p, functools.partial(self.bundles.check, p, accept, refused)) for p in listing.bundles]
        # A check may download a body: small ones side by side (N replies in ~N/8 latencies, not N);
        # large ones one at a time, so memory stays bounded by one large body as before.
        small = [check for p, check in checks if p.size <= IN_MEMORY_BODY]
        large = [check for p, check in checks if p.size > IN_MEMORY_BODY]
        checked = list(self._readers().map(lambda check: check(), small)) if len(small) > 1 else [c() for c in small]
        checked += [check() for check in large]
        deliveries = [d for d in checked if d is not None]
        return PollResult(tuple(deliveries), listing, tuple(refused), frozenset(self.bundles.part_ids(listing.bundles)))

    def _announced_runs(self, listing: Listing) -> dict[str, int]:
        """Each peer's newest announced run, from the announcements the storage says a peer made (and, where
        they are signed, that the peer's pinned key signed); their keys are learnt on the way."""
        trusted = [a for a in listing.announcements if canonical_email(a.owner) in self.peers]
        if self._signed is not None:
            vetted = self._signed.vetted(trusted)  # learns the keys it may
        else:
            vetted = trusted
            if self.sealer is not None:
                for a in trusted:
                    keys = PublicKeys.decode(a.keys) if a.keys else None
                    if keys is not None:
                        self.sealer.learn(canonical_email(a.owner), keys)
        announced: dict[str, int] = {}
        for a in vetted:  # a peer may announce on several folders (duplicates): the newest run wins
            if a.run_id is not None:
                peer = canonical_email(a.owner)
                announced[peer] = max(a.run_id, announced.get(peer, a.run_id))
        for a in trusted:  # a refused announcement changes nothing: the last one vetted stands
            peer = canonical_email(a.owner)
            if a not in vetted and peer not in announced and peer in self.announced:
                announced[peer] = self.announced[peer]
        return announced

    def _readers(self) -> ThreadPoolExecutor:
        """Threads that check (and download) one poll's messages side by side; made on first need."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=READ_WORKERS, thread_name_prefix="mailbox-read")
            return self._pool

    def mark_handled(self, message_id: str) -> bool:
        """Remember that a message was acted on; False if it already was."""
        return self.ledger.add(message_id)

    def delete_own(self, handles: Sequence[str]) -> None:
        if handles:
            self.transport.delete(list(handles))

    def stored(self) -> Listing:
        """What is stored now, unchecked: my own postings (to clean up) and those addressed to me."""
        return self.transport.poll(self.app)

    @property
    def shares_blobs(self) -> bool:
        """Whether the transport stores shared blobs (else big arrays travel inline in each message)."""
        return self.transport.shares_blobs

    def put_blob(self, data: Buffer | BinaryIO | SeekableReader) -> str:
        """Store (already encrypted) content once for every peer of this app; returns its locator."""
        return self.transport.put_blob(self.app, data)

    def reserve_blob(self, parts: int) -> list[str] | None:
        """Locators of a blob in ``parts`` parts before it is stored, or None (the transport stores blobs whole)."""
        return self.transport.reserve_blob(self.app, parts)

    def put_blob_part(self, locator: str, data: SeekableReader) -> None:
        """Store one part of a reserved blob (encrypted already) at its locator."""
        self.transport.put_blob_part(self.app, locator, data)

    def get_blob(self, locator: str, *, owner: str, size: int, out: BinaryIO, appear_within: float = 0.0) -> int:
        """Stream ``owner``'s blob of this app into ``out`` after the transport vetted owner, place and size,
        waiting up to ``appear_within`` seconds for it to be stored."""
        return self.transport.get_blob(self.app, locator, owner=owner, size=size, out=out, appear_within=appear_within)

    def my_blobs(self) -> list[str]:
        """Locators of my blobs of this app (leftovers to remove)."""
        return self.transport.list_my_blobs(self.app)

    # -- checks ---------------------------------------------------------------------

    def _reject(self, posting: Posting, reason: str) -> bool:
        """Skip a posting for good, with one log line; True the first time."""
        with self._lock:
            if posting.handle in self._rejected:
                return False
            self._rejected.add(posting.handle)
        logger.warning(
            "skipping message file %s (%s): %s", posting.handle, _printable(posting.name or "?"), _printable(reason)
        )
        return True

    def _note(self, posting: Posting, reason: str) -> None:
        key = (posting.handle, reason)
        with self._lock:
            if key in self._noted:
                return
            self._noted.add(key)
        logger.info("not acting on message file %s yet: %s", posting.handle, _printable(reason))

    def _check(
        self, posting: Posting, accept: Callable[[Routing], str | None] | None, refused: list[Refusal]
    ) -> Delivery | None:
        """The verified delivery of a posting, or None: each check returns None (passed) or why not."""
        if posting.handle in self._rejected:
            return None
        routing = posting.routing
        if routing is None:
            return self._skip(
                posting, f"unreadable routing metadata: {posting.unreadable}" if posting.unreadable else NO_ROUTING
            )
        reason = _malformed(routing)
        if reason is None and routing.message_id in self.ledger:
            return None  # handled before
        reason = reason or _misaddressed(routing, self.app, self.email) or _forged(posting, routing)
        reason = reason or _stranger(routing, self.peers)
        if reason:
            return self._skip(posting, reason)
        reason = accept(routing) if accept is not None else None
        if reason:
            self._note(posting, reason)
            return None
        reason = _expired(routing.created_at, routing.ttl)
        if reason:
            return self._drop(posting, routing.message_id, reason)
        limit = None if self.max_payload is None else body_limit(self.max_payload)
        reason = _oversize(posting.size, limit, self.max_payload)
        if reason:
            if self._reject(posting, reason):
                refused.append(Refusal(routing, reason))
            return None
        if self.sealer is not None and posting.inline is None and posting.size > IN_MEMORY_BODY:
            return self._check_streamed(posting, routing, limit)
        read = self._read(posting, limit)
        if read is None:
            return None
        envelope, body, offset = read
        reason = _disagreement(envelope, routing)
        if reason:
            body.close()
            return self._skip(posting, reason)
        reason = _expired(envelope.created_at, envelope.ttl)
        if reason:
            body.close()
            return self._drop(posting, envelope.message_id, reason)
        return self._unseal(Delivery(envelope, posting, body, offset), routing)

    def _skip(self, posting: Posting, reason: str) -> Delivery | None:
        """Reject a posting for good (one log line); the delivery is none."""
        self._reject(posting, reason)
        return None

    def _drop(self, posting: Posting, message_id: str, reason: str) -> Delivery | None:
        """Reject a posting for good and record its message as handled: it is never looked at again."""
        self._reject(posting, reason)
        self.ledger.add(message_id)
        return None

    def _read(self, posting: Posting, limit: int | None) -> tuple[Envelope, BinaryIO, int] | None:
        """Download a posting's body (spooled to disk past IN_MEMORY_BODY) and decode its envelope.

        None if it cannot be read now (asked again at the next poll) or is no valid envelope (rejected)."""
        # a binary file object; typeshed types SpooledTemporaryFile as IO[bytes], not BinaryIO
        body = cast(BinaryIO, tempfile.SpooledTemporaryFile(max_size=IN_MEMORY_BODY))
        try:
            if posting.inline is not None and len(posting.inline) == posting.size:
                body.write(posting.inline)  # the listing carried it: no download
            elif posting.size <= IN_MEMORY_BODY:
                body.write(self.transport.read(posting, max_bytes=limit))
            else:  # big bodies stream to disk: memory stays bounded whatever the model's size
                self.transport.read_to(posting, body, max_bytes=limit)
            envelope, offset = decode_file(body, max_payload=limit, digest_checked_later=self._opens_sealed)
        except TransportError as exc:
            body.close()
            logger.info("could not read message file %s yet (%s); will retry on the next poll", posting.handle, exc)
            return None
        except EnvelopeError as exc:
            body.close()
            self._reject(posting, f"invalid envelope: {exc}")
            return None
        except Exception as exc:  # a hostile body must never break the poll loop
            body.close()
            self._reject(posting, f"invalid envelope ({type(exc).__name__})")
            return None
        return envelope, body, offset

    def _check_streamed(self, posting: Posting, routing: Routing, limit: int | None) -> Delivery | None:
        """A big body with encryption on: opened while it downloads (see ``transport.streamed``), no temporary file."""
        assert self.sealer is not None

        def on_header(envelope: Envelope) -> None:  # the checks _check and _unseal make, before any payload byte
            if not self._opens_sealed(envelope):
                raise _Refused(NOT_SEALED)
            reason = _disagreement(envelope, routing)
            if reason:
                raise _Refused(reason)
            reason = _expired(envelope.created_at, envelope.ttl)
            if reason:
                self.ledger.add(envelope.message_id)
                raise _Refused(reason)

        sink = SealedBodySink(self.sealer, routing, on_header=on_header, max_payload=limit, layout_of=self._layout_of)
        try:
            # read_to only calls out.write(); the sink decrypts what it is given instead of storing it
            self.transport.read_to(posting, sink, max_bytes=limit)  # type: ignore[arg-type]
            envelope, plain, size = sink.finish()
        except BaseException as exc:
            sink.abort()
            if isinstance(exc, TransportError):
                logger.info("could not read message file %s yet (%s); will retry on the next poll", posting.handle, exc)
            elif isinstance(exc, MissingPeerKey):
                self._note(posting, str(exc))
            elif isinstance(exc, _Refused):
                self._reject(posting, str(exc))
            elif isinstance(exc, EnvelopeError):
                self._reject(posting, f"invalid envelope: {exc}")
            elif isinstance(exc, CryptoError):
                self._reject(posting, f"rejected: {exc}")
            elif isinstance(exc, Exception):  # a hostile body must never break the poll loop
                self._reject(posting, f"rejected: could not be opened ({type(exc).__name__})")
            else:
                raise
            return None
        if self.max_payload is not None and size > self.max_payload:
            plain.close()
            self._reject(posting, f"rejected: {size} bytes is over the message limit of {self.max_payload} bytes")
            return None
        return Delivery(replace(envelope, codecs=envelope.codecs[1:], size=size), posting, as_binary(plain), 0)

    def _layout_of(self, envelope: Envelope) -> PlainLayout | None:
        """The layout of a sealed payload's plaintext, from the codec under the seal (None if unknown)."""
        inner = envelope.codecs[1:]
        return self.plain_layouts.get(inner[0]) if len(inner) == 1 else None

    def _opens_sealed(self, envelope: Envelope) -> bool:
        """True if ``_unseal`` will decrypt this payload, checking its SHA-256 in that same pass."""
        return self.sealer is not None and bool(envelope.codecs) and envelope.codecs[0] == CODEC_SEAL

    def _unseal(self, delivery: Delivery, routing: Routing) -> Delivery | None:
        """Decrypt and verify a sealed payload; fail closed on plaintext when encryption is on."""
        env, posting = delivery.envelope, delivery.posting
        sealed = bool(env.codecs) and env.codecs[0] == CODEC_SEAL
        if self.sealer is None:
            if sealed:
                delivery.close()
                self._reject(
                    posting,
                    "encrypted, but encryption is switched off here "
                    "(unset SYFT_FLWR_ENCRYPTION_ENABLED=false to read it)",
                )
                return None
            return delivery
        if not sealed:
            delivery.close()
            self._reject(posting, NOT_SEALED)
            return None
        try:
            plain, size = self.sealer.open(
                routing,
                delivery.open_payload(),
                env.size,
                payload_sha256=env.sha256 or None,
                layout=self._layout_of(env),
            )
        except MissingPeerKey as exc:
            delivery.close()
            self._note(posting, str(exc))
            return None
        except CryptoError as exc:
            delivery.close()
            self._reject(posting, f"rejected: {exc}")
            return None
        except Exception as exc:  # noqa: BLE001 - a hostile payload must never break the poll loop
            delivery.close()
            self._reject(posting, f"rejected: could not be opened ({type(exc).__name__})")
            return None
        delivery.close()
        if self.max_payload is not None and size > self.max_payload:
            plain.close()
            self._reject(posting, f"rejected: {size} bytes is over the message limit of {self.max_payload} bytes")
            return None
        return Delivery(replace(env, codecs=env.codecs[1:], size=size), posting, plain, 0)


# -- checks: each returns None when the posting passes, else the reason it is skipped ---------------

NO_ROUTING = "no valid routing metadata; a foreign or damaged file, left untouched"
NOT_SEALED = (
    "not encrypted, but encryption is on: refused (fail closed). A peer with "
    "SYFT_FLWR_ENCRYPTION_ENABLED=false must switch it back on"
)
MALFORMED = (
    "its message id or sender is malformed (ids are 1-64 letters, digits or . _ @ + -); "
    "a foreign or forged file, left untouched"
)
# Routing fields the header must repeat exactly as listed (created_at and ttl are checked by expiry).
AGREEING_FIELDS = tuple(name for name in Routing.field_names() if name not in ("created_at", "ttl"))


def _malformed(routing: Routing) -> str | None:
    ids = valid_message_id(routing.message_id) and (routing.reply_to == "" or valid_message_id(routing.reply_to))
    return None if ids and valid_email(routing.sender) else MALFORMED


def _misaddressed(routing: Routing, app: str, email: str) -> str | None:
    if routing.app == app and canonical_email(routing.recipient) == canonical_email(email):
        return None
    return f"addressed to {routing.recipient!r} of app {routing.app!r}, not to me"


def _forged(posting: Posting, routing: Routing) -> str | None:
    if canonical_email(posting.owner) == canonical_email(routing.sender):
        return None
    return f"claims to be from {routing.sender!r} but the storage says {posting.owner!r} wrote it (forged sender)"


def _stranger(routing: Routing, peers: frozenset[str]) -> str | None:
    if canonical_email(routing.sender) in peers:
        return None
    return f"sender {routing.sender!r} is not a peer of this app (unknown sender)"


def _expired(created_at: float, ttl: float) -> str | None:
    return f"expired (ttl {ttl:.0f}s); dropped" if time.time() > created_at + ttl else None


def _oversize(size: int, limit: int | None, max_payload: int | None) -> str | None:
    if limit is None or size <= limit:
        return None
    return (
        f"{size} bytes is over the message limit of {max_payload} bytes "
        "(SYFT_FLWR_MAX_MESSAGE_MB); refused without downloading it"
    )


def _disagreement(envelope: Envelope, routing: Routing) -> str | None:
    bad = [name for name in envelope.routing().disagreement(routing) if name in AGREEING_FIELDS]
    return f"envelope header disagrees with its metadata on {', '.join(bad)}" if bad else None


class _Refused(Exception):
    """A streamed body's header shows the message must not be acted on (the text says why)."""
