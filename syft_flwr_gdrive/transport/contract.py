"""The small contract every transport implements (no Flower, no Drive here).

A transport moves opaque message bodies between participants known by email
and lists what is waiting, cheaply, without reading bodies. Everything about
trust, runs, de-duplication and clean-up lives above it in ``Mailbox``, so a
second transport only has to implement the abstract primitives of ``Transport``.
"""

from __future__ import annotations

import abc
import io
import threading
from collections.abc import Callable
from collections.abc import Collection
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO
from typing import ClassVar
from typing import Protocol
from typing import runtime_checkable

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.base.routing import Routing
from syft_flwr_gdrive.base.segments import Buffer
from syft_flwr_gdrive.base.segments import SeekableReader

__all__ = [
    "AccessLost",
    "Announcement",
    "AnnouncementSigner",
    "BlobNotStored",
    "BlobRefused",
    "Check",
    "Listing",
    "Posting",
    "Routing",
    "Transport",
    "TransportError",
    "access_lost_in",
    "brief",
    "raise_if_access_lost",
]


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
    unreadable: str = ""  # why ``routing`` is None, when the storage can tell (a layout version this build cannot read)


@dataclass(frozen=True)
class Announcement:
    """A peer's statement of which run it is currently running, and who the storage says made it."""

    owner: str
    run_id: int | None
    keys: dict[str, str] | None = None  # the owner's published public keys, if any
    signature: str = ""  # its writer's signature over it, where the transport stores one (signed_announcements)


# (run id, public keys) -> the text a transport stores beside them as the announcer's signature (see
# Transport.signed_announcements); the mailbox makes it, the transport only stores and reports it.
AnnouncementSigner = Callable[[int | None, "dict[str, str] | None"], str]


@dataclass(frozen=True)
class Listing:
    """Result of one poll: what is addressed to me, what I wrote myself, and peers' current runs."""

    inbound: tuple[Posting, ...]
    outbound: tuple[Posting, ...]
    announcements: tuple[Announcement, ...] = ()
    bundles: tuple[Posting, ...] = ()  # peers' multi-recipient messages (routing.kind "bundle", recipient me)


class TransportError(RuntimeError):
    """A transport operation failed after its own retries; the text names the fix."""


class AccessLost(TransportError):
    """The storage refuses this participant for longer than a run can wait (its sign-in was refused for good,
    a daily cap is reached): no retry and no later poll can succeed, so the participant stops at once (exit 3).

    ``str`` says it all (what happened, the fix, why it happens), once, where the participant stops;
    ``headline`` is what happened, for the log lines written on the way out."""

    def __init__(self, message: str = "", *, headline: str = "") -> None:
        super().__init__(message)
        self.headline = headline or message


def access_lost_in(exc: BaseException | None) -> AccessLost | None:
    """The ``AccessLost`` behind ``exc``: itself, or the one it was raised from or while handling (a transport
    wraps a storage error in a ``TransportError`` that names the operation)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, AccessLost):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def raise_if_access_lost(exc: BaseException) -> None:
    """Raise the ``AccessLost`` behind ``exc``, if any: a loop that logs a failure and tries again at its next
    turn stops instead, as no later turn can succeed."""
    lost = access_lost_in(exc)
    if lost is not None:
        raise lost


def brief(exc: BaseException) -> str:
    """``exc`` for one log line: what happened, when access was lost (its whole text is said once, at the stop)."""
    lost = access_lost_in(exc)
    return lost.headline if lost is not None else str(exc)


class BlobRefused(TransportError):
    """A blob a peer referred to is not its own, not where its blobs live, or not the size it said: never read."""


class BlobNotStored(BlobRefused):
    """A reserved blob part was not stored within the wait (a longer wait may still see it)."""


@dataclass(frozen=True)
class Check:
    """One line of ``doctor``: what was checked, whether it passed, and what to do if not."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


class Transport(abc.ABC):
    """Moves message bodies; found by name through the ``syft_flwr.transports`` entry points.

    In the manner of kombu's virtual transport: a subclass implements the few abstract
    primitives (construction from settings, send, poll, read_to, delete, its own leftovers,
    and the two folder-level stamps peers see in their poll: run and keys); everything else
    has a default it may override (shared blobs are optional; ``read`` goes through
    ``read_to``; calls are counted by :meth:`_count`). Options that only one transport
    understands (a Drive URL, a directory) are read by that transport from
    ``settings.transport_options``, never added to the shared ``Settings``.
    The contract test suite (``tests/transport/test_contract.py``) runs against every transport.
    """

    name: ClassVar[str]
    email: str
    # True if put_blob/get_blob/list_my_blobs are implemented: a big array then goes once to every peer as a
    # shared blob. A transport that leaves them to the defaults says False, and senders put arrays inline.
    shares_blobs: ClassVar[bool] = False
    # True if the storage's word on who wrote an announcement is weak (a shared directory says only which folder
    # it is in): such a transport stores its writer's signature with each announcement (the signer comes from
    # the mailbox through :meth:`sign_announcements`) and reports it in ``Announcement.signature``; with
    # encryption on, the mailbox acts on a peer's announcement only if its pinned key signed it.
    signed_announcements: ClassVar[bool] = False

    # -- construction -------------------------------------------------------------------

    @classmethod
    @abc.abstractmethod
    def from_settings(cls, settings: Settings) -> Transport:
        """Build a transport for ``settings.email`` from the shared settings and its own options."""

    @classmethod
    def diagnose(cls, settings: Settings) -> list[Check]:
        """``doctor``'s checks specific to this transport (credentials, reachability...).

        The default builds the transport and says so; a transport with more to check overrides it.
        """
        try:
            cls.from_settings(settings).close()
        except (ConfigError, TransportError) as exc:
            return [Check(cls.name, False, str(exc), "see the text above")]
        return [Check(cls.name, True, f"the {cls.name!r} transport is ready")]

    # -- abstract primitives ------------------------------------------------------------

    @abc.abstractmethod
    def announce_run(self, app: str, run_id: int) -> None:
        """Tell my peers (in the same listing they poll) which run of ``app`` is current."""

    @abc.abstractmethod
    def publish_keys(self, app: str, keys: dict[str, str]) -> None:
        """Publish my public keys to ``app``'s peers (in the same listing they poll)."""

    @abc.abstractmethod
    def send(self, routing: Routing, body: Buffer | Sequence[Buffer] | BinaryIO | SeekableReader) -> str:
        """Store ``body`` (buffers, or a seekable reader with ``.size``) for ``routing.recipient``.

        Returns a handle. Idempotent under retry.
        """

    @abc.abstractmethod
    def poll(self, app: str) -> Listing:
        """List postings of ``app`` addressed to me and my own, in O(1) storage calls.

        ``owner`` of an inbound posting is what the storage says about its writer, never
        what the posting claims; a posting whose routing cannot be read has ``routing=None``.
        """

    @abc.abstractmethod
    def read_to(self, posting: Posting, out: BinaryIO, *, max_bytes: int | None = None) -> int:
        """Stream a posting's body into ``out`` in bounded memory; returns its size.

        Raises ``TransportError`` if it is gone or longer than ``max_bytes``.
        """

    @abc.abstractmethod
    def delete(self, handles: Sequence[str]) -> None:
        """Delete my own postings or blobs (already-missing ones are not an error; others' raise)."""

    @abc.abstractmethod
    def my_postings(self, app: str | None = None) -> list[Posting]:
        """Every message I stored and did not delete, of ``app`` or of every app (what ``clean`` removes)."""

    # -- defaults -----------------------------------------------------------------------

    def prepare(self, app: str, peers: Sequence[str]) -> None:
        """Create whatever storage ``app`` needs so ``peers`` can read what I send them (default: nothing)."""
        self._count("prepare")

    def sign_announcements(self, app: str, signer: AnnouncementSigner) -> None:  # noqa: B027 - optional hook
        """Store ``signer(run_id, keys)`` with each announcement of ``app`` from now on (only a transport with
        ``signed_announcements`` keeps it; the default has nowhere to put a signature)."""

    def read(self, posting: Posting, *, max_bytes: int | None = None) -> bytes:
        """Return a posting's whole body (through :meth:`read_to`)."""
        out = io.BytesIO()
        self.read_to(posting, out, max_bytes=max_bytes)
        return out.getvalue()

    def put_blob(self, app: str, data: Buffer | BinaryIO | SeekableReader) -> str:
        """Store content (buffers, or a seekable reader with ``.size``) readable by all of ``app``'s peers.

        Returns a locator. The content is opaque here (callers encrypt it). Optional: the
        default refuses, and (``shares_blobs`` False) senders put every array inline instead.
        """
        raise TransportError(f"the {self.name!r} transport does not store shared blobs")

    def reserve_blob(self, app: str, parts: int) -> list[str] | None:
        """Locators for a blob stored in ``parts`` parts, known before any part is stored, so a message can
        name them while they upload (``put_blob_part``); None if this transport stores blobs only whole
        (the default)."""
        return None

    def put_blob_part(self, app: str, locator: str, data: SeekableReader) -> None:
        """Store one part of a reserved blob at its locator (a receiver may be waiting for it already)."""
        raise TransportError(f"the {self.name!r} transport does not store blobs in parts")

    def get_blob(
        self, app: str, locator: str, *, owner: str, size: int, out: BinaryIO, appear_within: float = 0.0
    ) -> int:
        """Stream into ``out`` a blob that ``owner`` stored for ``app``, of exactly ``size`` bytes.

        Before reading a byte, checks from the storage's own metadata that ``owner`` owns
        it, that it lies where ``owner`` keeps the blobs of ``app``, and its size; raises
        ``BlobRefused`` if not (a peer may name any file it likes). A blob not there yet is
        waited for up to ``appear_within`` seconds (a reserved part still uploading).
        """
        raise BlobRefused(f"the {self.name!r} transport does not store shared blobs")

    def list_my_blobs(self, app: str) -> list[str]:
        """Locators of the blobs of ``app`` I own (to remove leftovers)."""
        return []

    def call_counts(self) -> dict[str, int]:
        """Storage calls made so far, by method, for reports and benchmarks."""
        counts, lock = self._counter()
        with lock:
            return dict(counts)

    def close(self) -> None:  # noqa: B027 - an optional hook: most transports hold nothing to release
        """Release connections and threads (default: nothing to release)."""

    def await_from(self, app: str, peers: Collection[str] | None) -> None:  # noqa: B027 - an optional hint
        """A hint for the next polls of ``app``: only ``peers``' next messages are awaited now (None: anyone's).

        A transport that fetches each peer's next file by id at every poll may fetch only these peers' (a server
        with 100 datasites, 3 of which still owe a reply, then asks for 3 files, not 100); what others send is
        still found, by the listings that find what nothing promised. Default: ignored."""

    def min_poll_gap(self) -> float:
        """The shortest gap between polls, in seconds, this transport asks for (e.g. to stay within a quota).

        The poll schedule never polls faster; the default asks for nothing.
        """
        return 0.0

    def _count(self, method: str) -> None:
        """Count one storage call (for :meth:`call_counts`)."""
        counts, lock = self._counter()
        with lock:
            counts[method] = counts.get(method, 0) + 1

    def _counter(self) -> tuple[dict[str, int], threading.Lock]:
        """The call counts and their lock, made on first use (subclasses need not call a base ``__init__``)."""
        state = self.__dict__.get("_call_counter")
        if state is None:
            with _COUNTER_GUARD:
                state = self.__dict__.setdefault("_call_counter", ({}, threading.Lock()))
        return state


_COUNTER_GUARD = threading.Lock()


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
