"""The small contract every transport implements (no Flower, no Drive here).

A transport moves opaque message bodies between participants known by email
and lists what is waiting, cheaply, without reading bodies. Everything about
trust, runs, de-duplication and clean-up lives above it in ``Mailbox``, so a
second transport only has to implement these few methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, ClassVar, Protocol, Sequence, runtime_checkable

from syft_flwr_gdrive.transport.segments import Buffer


@dataclass(frozen=True)
class Routing:
    """Routing metadata stored beside a body, readable without downloading it."""

    run_id: int
    message_id: str
    reply_to: str
    kind: str
    sender: str
    recipient: str
    app: str
    created_at: float
    ttl: float


@dataclass(frozen=True)
class Posting:
    """One message as listed by a transport.

    ``owner`` is what the storage itself says about who wrote the body (for
    Drive, the file's owner); it is the fact trust is based on. ``routing`` is
    what the writer claims, or None when the metadata is missing or malformed.
    """

    handle: str
    owner: str
    routing: Routing | None
    size: int
    name: str = ""
    inline: bytes | None = None  # the body, when the listing already carried it (small messages)


@dataclass(frozen=True)
class Announcement:
    """A peer's statement of which run it is currently running, and who the storage says made it."""

    owner: str
    run_id: int | None
    keys: dict[str, str] | None = None  # the owner's published public keys, if any


@dataclass(frozen=True)
class Listing:
    """Result of one poll: what is addressed to me, what I wrote myself, and peers' current runs."""

    inbound: tuple[Posting, ...]
    outbound: tuple[Posting, ...]
    announcements: tuple[Announcement, ...] = ()
    bundles: tuple[Posting, ...] = ()  # peers' multi-recipient messages (routing.kind "bundle", recipient me)


class TransportError(RuntimeError):
    """A transport operation failed after its own retries; the text names the fix."""


class BlobRefused(TransportError):
    """A blob a peer referred to is not its own, not where its blobs live, or not the size it said: never read."""


@runtime_checkable
class Transport(Protocol):
    """Moves message bodies; found by name through the ``syft_flwr.transports`` entry points."""

    name: ClassVar[str]
    email: str

    def prepare(self, app: str, peers: Sequence[str]) -> None:
        """Create whatever storage ``app`` needs so ``peers`` can read what I send them."""

    def announce_run(self, app: str, run_id: int) -> None:
        """Tell my peers (in the same listing they poll) which run of ``app`` is current."""

    def publish_keys(self, app: str, keys: dict[str, str]) -> None:
        """Publish my public keys to ``app``'s peers (in the same listing they poll)."""

    def send(self, routing: Routing, body: Buffer | Sequence[Buffer] | BinaryIO) -> str:
        """Store ``body`` (buffers, or a seekable reader with ``.size``) for ``routing.recipient``.

        Returns a handle. Idempotent under retry.
        """

    def poll(self, app: str) -> Listing:
        """List postings of ``app`` addressed to me and my own, in O(1) storage calls."""

    def read(self, posting: Posting, *, max_bytes: int | None = None) -> bytes:
        """Return a posting's whole body."""

    def read_to(self, posting: Posting, out: BinaryIO, *, max_bytes: int | None = None) -> int:
        """Stream a posting's body into ``out`` in bounded memory; returns its size."""

    def put_blob(self, app: str, data: Buffer | BinaryIO) -> str:
        """Store content (buffers, or a seekable reader with ``.size``) readable by all of ``app``'s peers.

        Returns a locator. The content is opaque here (callers encrypt it).
        """

    def get_blob(self, app: str, locator: str, *, owner: str, size: int, out: BinaryIO) -> int:
        """Stream into ``out`` a blob that ``owner`` stored for ``app``, of exactly ``size`` bytes.

        Before reading a byte, checks from the storage's own metadata that ``owner`` owns
        it, that it lies where ``owner`` keeps the blobs of ``app``, and its size; raises
        ``BlobRefused`` if not (a peer may name any file it likes).
        """

    def list_my_blobs(self, app: str) -> list[str]:
        """Locators of the blobs of ``app`` I own (to remove leftovers)."""

    def delete(self, handles: Sequence[str]) -> None:
        """Delete my own postings or blobs (already-missing ones are not an error)."""

    def call_counts(self) -> dict[str, int]:
        """Storage calls made so far, by method, for reports and benchmarks."""

    def close(self) -> None:
        """Release connections and threads."""


@runtime_checkable
class BundleStore(Protocol):
    """Optional: a transport that stores one message for many recipients (``multiseal`` bundles).

    A sender's bundles live in one place every peer of the app reads; ``poll`` lists peers'
    bundles in ``Listing.bundles`` (the storage's owner and place vetted as for postings)."""

    def enable_bundles(self, app: str) -> None:
        """Make the place my bundles of ``app`` go readable by all peers, and tell them where it is."""

    def send_bundle(self, routing: Routing, body: bytes) -> str:
        """Store one bundle (``routing.recipient`` is unused); returns its handle."""

    def ignore_bundle(self, handle: str) -> None:
        """A listed bundle with no part for me: leave it out of my listings from now on."""
