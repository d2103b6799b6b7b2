"""Trust, de-duplication and envelope checks on top of any transport.

The transport says what is there and who the storage says wrote it; the
mailbox decides what may be acted on (``messages`` checks message files,
``bundles`` bundles, both by the rules of ``vetting``) and how what is sent
travels (``push``: one bundle for many recipients, or one file each).

Everything refused is skipped with one log line per posting and left in place
(``skips``): nothing is deleted that this participant does not own, so nothing
is lost.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import uuid
from collections.abc import Collection
from collections.abc import Iterable
from collections.abc import Mapping
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any
from typing import BinaryIO

from syft_flwr_gdrive.base.accounts import canonical_email
from syft_flwr_gdrive.base.segments import Buffer
from syft_flwr_gdrive.base.segments import ConcatReader
from syft_flwr_gdrive.base.segments import SeekableReader
from syft_flwr_gdrive.base.segments import SegmentReader
from syft_flwr_gdrive.base.segments import as_binary
from syft_flwr_gdrive.crypto.failures import MissingPeerKey
from syft_flwr_gdrive.crypto.keys import PublicKeys
from syft_flwr_gdrive.crypto.multiseal import BundleHead
from syft_flwr_gdrive.crypto.multiseal import Part
from syft_flwr_gdrive.crypto.seal import CODEC_SEAL
from syft_flwr_gdrive.crypto.seal import PlainLayout
from syft_flwr_gdrive.crypto.seal import Sealer
from syft_flwr_gdrive.mailbox.announcement_vetting import SignedAnnouncements
from syft_flwr_gdrive.mailbox.bundles import BUNDLED_KINDS
from syft_flwr_gdrive.mailbox.bundles import BundleReader
from syft_flwr_gdrive.mailbox.bundles import pack
from syft_flwr_gdrive.mailbox.delivery import Accept
from syft_flwr_gdrive.mailbox.delivery import PollResult
from syft_flwr_gdrive.mailbox.delivery import Refusal
from syft_flwr_gdrive.mailbox.envelope import Envelope
from syft_flwr_gdrive.mailbox.envelope import encode_segments
from syft_flwr_gdrive.mailbox.envelope import header_bytes
from syft_flwr_gdrive.mailbox.ledger import Ledger
from syft_flwr_gdrive.mailbox.messages import MessageReader
from syft_flwr_gdrive.mailbox.messages import in_memory
from syft_flwr_gdrive.mailbox.outgoing import MAX_BUNDLE_PAYLOAD
from syft_flwr_gdrive.mailbox.outgoing import OnStored
from syft_flwr_gdrive.mailbox.outgoing import Outgoing
from syft_flwr_gdrive.mailbox.outgoing import Pushed
from syft_flwr_gdrive.mailbox.skips import SkipLog
from syft_flwr_gdrive.transport.contract import BundleStore
from syft_flwr_gdrive.transport.contract import Listing
from syft_flwr_gdrive.transport.contract import Routing
from syft_flwr_gdrive.transport.contract import Transport

READ_WORKERS = 8  # messages of one poll checked and downloaded side by side
SEND_WORKERS = 8  # files of one push sent side by side
DEFAULT_TTL = 12 * 3600.0  # seconds a sent message stays valid unless the caller says otherwise


def new_message_id() -> str:
    return uuid.uuid4().hex


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
        part size of the blobs sent from here in parts (None: ``blobs.PART_BYTES``).

        The readers are given these settings once, here: what is received is checked by the
        settings the mailbox was made with."""
        self.transport = transport
        self.blob_part_bytes = blob_part_bytes
        self.app = app
        self.peers = frozenset(canonical_email(p) for p in peers)
        self.ledger = ledger
        self.max_payload = max_payload
        self.skips = SkipLog()
        self._lock = threading.Lock()  # guards _pools
        self.announced: dict[str, int] = {}  # peer (canonical email) -> the newest run it announces
        self.sealer = sealer
        self.messages = MessageReader(
            me=transport.email,
            app=app,
            peers=self.peers,
            ledger=ledger,
            skips=self.skips,
            source=transport,
            sealer=sealer,
            max_payload=max_payload,
            plain_layouts=plain_layouts,
        )
        self.bundles = BundleReader(
            me=transport.email,
            peers=self.peers,
            ledger=ledger,
            skips=self.skips,
            read=lambda posting, limit: transport.read(posting, max_bytes=limit),
            ignore=functools.partial(_ignore_bundle, transport),
            sealer=sealer,
            max_payload=max_payload,
        )
        self.bundling = False  # pushes go as bundles (see enable_bundles)
        self._pools: dict[str, ThreadPoolExecutor] = {}  # "read", "send": made on first need
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

    # -- sending ----------------------------------------------------------------------

    def push(
        self, kind: str, run_id: int, items: Sequence[Outgoing], *, on_stored: OnStored | None = None
    ) -> list[Pushed]:
        """Send every item; returns how each went, in order. Never raises for one item's failure.

        The mailbox decides how they travel: when bundles are on (``enable_bundles``) and ``kind`` may be
        bundled, the items whose shared content is identical go as one bundle (one write for N recipients),
        unless that content is over ``MAX_BUNDLE_PAYLOAD``; every other item goes as a file of its own,
        several side by side. ``on_stored`` hears of each file as soon as it is stored (see ``OnStored``)."""
        results: dict[int, Pushed] = {}
        alone: list[int] = []
        groups: dict[str, list[int]] = {}  # digest of the shared content -> the items sharing it
        contents: dict[str, bytes] = {}
        if self.bundling and kind in BUNDLED_KINDS:
            digests: dict[int, tuple[bytes, str]] = {}  # id(content) -> (content, digest): each hashed once
            for index, item in enumerate(items):
                if item.shared is None or item.untrusted_keys is not None:
                    alone.append(index)
                    continue
                if self.sealer is not None and not self.sealer.knows(item.recipient):  # it would fail the bundle
                    error = MissingPeerKey(f"no trusted public key for {item.recipient} yet")
                    results[index] = Pushed(item.message_id, error=error)
                    continue
                try:
                    content = item.shared()
                except Exception as exc:  # this item fails (a blob refused for good, say); the others go on
                    results[index] = Pushed(item.message_id, error=exc)
                    continue
                if len(content) > MAX_BUNDLE_PAYLOAD:  # many small arrays: keep bundles small, one file each
                    alone.append(index)
                    continue
                known = digests.get(id(content))
                if known is None or known[0] is not content:
                    known = digests[id(content)] = (content, hashlib.sha256(content).hexdigest())
                groups.setdefault(known[1], []).append(index)
                contents.setdefault(known[1], content)
        else:
            alone = list(range(len(items)))
        for digest, members in groups.items():
            pushed = self._push_bundle(kind, run_id, [items[i] for i in members], contents[digest], on_stored)
            results.update(zip(members, pushed))
        results.update(zip(alone, self._push_alone(kind, run_id, [items[i] for i in alone], on_stored)))
        return [results[index] for index in range(len(items))]

    def _push_bundle(
        self, kind: str, run_id: int, members: Sequence[Outgoing], content: bytes, on_stored: OnStored | None
    ) -> list[Pushed]:
        """One file for every member: the shared content sealed once, each member's own fields in its part."""
        created_at = min(m.created_at for m in members)
        expires_at = max(m.created_at + m.ttl for m in members)
        try:
            _, handle = self.send_bundle(
                kind=kind,
                run_id=run_id,
                parts=[(m.recipient, m.message_id, dict(m.private)) for m in members],
                payload=content,
                created_at=created_at,
                ttl=expires_at - created_at,
            )
            if on_stored is not None:
                on_stored(handle, members)
        except Exception as exc:  # refused for good after retries: these items fail, the push goes on
            return [Pushed(m.message_id, error=exc) for m in members]
        return [Pushed(m.message_id, handle) for m in members]

    def _push_alone(
        self, kind: str, run_id: int, items: Sequence[Outgoing], on_stored: OnStored | None
    ) -> list[Pushed]:
        """One file per item, several side by side (each payload is made in the thread that sends it)."""

        def one(item: Outgoing) -> Pushed:
            try:
                _, handle = self.send(
                    kind=kind,
                    recipient=item.recipient,
                    run_id=run_id,
                    payload=item.payload(),
                    message_id=item.message_id,
                    ttl=item.ttl,
                    created_at=item.created_at,
                    codecs=item.codecs or None,
                    untrusted_keys=item.untrusted_keys,
                )
                if on_stored is not None:
                    on_stored(handle, [item])
            except Exception as exc:  # refused for good after retries (or no key): this item fails, the others go on
                return Pushed(item.message_id, error=exc)
            return Pushed(item.message_id, handle)

        if len(items) > 1:
            return list(self._pool("send", SEND_WORKERS).map(one, items))
        return [one(item) for item in items]

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
        untrusted_keys: PublicKeys | None = None,
    ) -> tuple[str, str]:
        """Send ``payload`` (bytes, or buffers sent without joining) to ``recipient``; returns (message_id, handle).

        ``untrusted_keys``: sealed to those keys, not the recipient's trusted ones (no secret in the payload;
        see ``Sealer.seal``). Ignored without encryption."""
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
            sealed = self.sealer.seal(routing, as_binary(plain), plain.size, untrusted_keys=untrusted_keys)
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
        sealed = pack(
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

    # -- receiving --------------------------------------------------------------------

    def await_from(self, peers: Collection[str] | None) -> None:
        """Tell the transport whose messages the next polls await (None: anyone's); a hint, see
        :meth:`Transport.await_from`."""
        self.transport.await_from(self.app, None if peers is None else sorted(canonical_email(p) for p in peers))

    def poll(self, accept: Accept | None = None) -> PollResult:
        """One poll: list, check, read and verify new messages.

        Peers' run announcements (only those the storage says a peer made) are
        refreshed first, in ``self.announced``, so ``accept`` can use them.

        ``accept`` is asked before anything is downloaded. It may return a reason
        string to skip a message for now (for example, one of a run this
        participant is not in; it is asked again on the next poll), or a
        ``skips.Verdict`` (refuse it for good, hold it without a log line).
        """
        listing = self.transport.poll(self.app)
        self.announced = self._announced_runs(listing)
        refused: list[Refusal] = []
        checks = [(p, functools.partial(self.messages.check, p, accept, refused)) for p in listing.inbound]
        checks += [(p, functools.partial(self.bundles.check, p, accept, refused)) for p in listing.bundles]
        # A check may download a body: small ones side by side (N replies in ~N/8 latencies, not N);
        # large ones one at a time, so memory stays bounded by one large body as before.
        small = [check for p, check in checks if in_memory(p)]
        large = [check for p, check in checks if not in_memory(p)]
        checked = (
            list(self._pool("read", READ_WORKERS).map(lambda check: check(), small))
            if len(small) > 1
            else [c() for c in small]
        )
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

    def _pool(self, name: str, workers: int) -> ThreadPoolExecutor:
        """The threads that read a poll's messages ("read") or send a push's files ("send") side by side."""
        with self._lock:
            if name not in self._pools:
                self._pools[name] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"mailbox-{name}")
            return self._pools[name]

    def mark_handled(self, message_id: str, sender: str, created_at: float | None = None) -> bool:
        """Remember that ``sender``'s message ``message_id`` (created at ``created_at``, the sender's signed stamp)
        was acted on; False if it already was.

        Recorded per sender: another peer's message under the same id is not affected (see ``ledger``). With
        ``created_at`` the entry is bounded (compacted into the sender's floor once it is old, ``ledger``)."""
        return self.ledger.add(message_id, sender, created_at)

    def handled(self, message_id: str, sender: str, created_at: float | None = None) -> bool:
        """Whether ``sender``'s message ``message_id`` was acted on (or lies at or below the sender's floor)."""
        return self.ledger.handled(message_id, sender, created_at)

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


def _ignore_bundle(transport: Transport, handle: str) -> None:
    """A bundle with no part for me is left out of my listings, where the transport stores bundles."""
    if isinstance(transport, BundleStore):
        transport.ignore_bundle(handle)
