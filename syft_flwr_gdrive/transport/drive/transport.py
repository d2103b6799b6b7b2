"""The Google Drive transport: message files in per-peer outbox folders.

Only documented Drive behaviour is relied on (docs/drive-assumptions.md):

* peers' outbox folders are found as folders shared with me directly (``sharedWithMe``
  plus ``properties``), then remembered by id (:mod:`.discovery`);
* a poll lists ``'<folder>' in parents`` over those folders and my own outboxes, OR'ed
  in chunks of :data:`layout.PARENTS_PER_QUERY` (smaller chunks, down to one folder per
  query, when Drive answers 400 "The query is too complex"; :mod:`.listing`);
* a file counts as a peer's only if it sits in that peer's outbox folder AND Drive's
  owner is that peer: by email, or by permission id when Drive hides the email
  (:mod:`.owners`, :mod:`.polling`);
* listings are eventually consistent, so my own files count as present until I delete
  them, and a request or stop that vanishes from a listing is confirmed gone by id;
* a file found by id is current: each message or bundle file names the id of its writer's
  next file of the stream (``sfg_nx``, :mod:`.promises`, written by :mod:`.writes`), and a
  reader with such promises outstanding fetches them by id instead of waiting for the listing
  to show them.

Cost per operation (Drive calls): announce a run 1 per outbox, send 1 (multipart create
with a pre-generated id, so a retried create is idempotent; ids are fetched 100 at a
time), poll 1 per 40 folders (plus one discovery listing every
:data:`.discovery.DISCOVER_EVERY` seconds, and one ``files.get`` per request or stop that
disappears) or, with promises outstanding, 1 batch get per 100 promised or held files
(every :data:`.polling.LIST_EVERY`-th poll lists instead), read 1 (download by id), delete 1
batch per 100 files.

This module is the contract (:class:`~syft_flwr_gdrive.transport.contract.Transport`) and
composes the parts: my folders (:mod:`.folders`), peers' folders (:mod:`.discovery`), the
poll's listings and postings (:mod:`.listing`, :mod:`.polling`), creates (:mod:`.writes`) and
the connection (:mod:`.connect`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO
from typing import ClassVar

from syft_flwr_gdrive.base.accounts import canonical_email
from syft_flwr_gdrive.base.config import MAX_EMAIL_LENGTH
from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.base.segments import Buffer
from syft_flwr_gdrive.base.segments import SeekableReader
from syft_flwr_gdrive.base.segments import as_reader
from syft_flwr_gdrive.transport.contract import BlobRefused
from syft_flwr_gdrive.transport.contract import Check
from syft_flwr_gdrive.transport.contract import Listing
from syft_flwr_gdrive.transport.contract import Posting
from syft_flwr_gdrive.transport.contract import Routing
from syft_flwr_gdrive.transport.contract import Transport
from syft_flwr_gdrive.transport.contract import TransportError
from syft_flwr_gdrive.transport.drive import connect
from syft_flwr_gdrive.transport.drive import layout
from syft_flwr_gdrive.transport.drive.api import DriveApi
from syft_flwr_gdrive.transport.drive.blob_checks import BlobWaits
from syft_flwr_gdrive.transport.drive.blob_checks import vet_peer_blob
from syft_flwr_gdrive.transport.drive.discovery import Discovery
from syft_flwr_gdrive.transport.drive.errors import DriveError
from syft_flwr_gdrive.transport.drive.errors import DriveNotFound
from syft_flwr_gdrive.transport.drive.errors import DrivePermissionDenied
from syft_flwr_gdrive.transport.drive.errors import DriveTooLarge
from syft_flwr_gdrive.transport.drive.errors import without_tracebacks
from syft_flwr_gdrive.transport.drive.folders import MyFolders
from syft_flwr_gdrive.transport.drive.idbook import IdBook
from syft_flwr_gdrive.transport.drive.listing import FolderLister
from syft_flwr_gdrive.transport.drive.options import DriveOptions
from syft_flwr_gdrive.transport.drive.owners import PeerOwners
from syft_flwr_gdrive.transport.drive.polling import POLL_RETRY_SECONDS
from syft_flwr_gdrive.transport.drive.polling import Poller
from syft_flwr_gdrive.transport.drive.polling import Sorted
from syft_flwr_gdrive.transport.drive.retry import deadline
from syft_flwr_gdrive.transport.drive.writes import Writer

logger = logging.getLogger(__name__)

INLINE_MAX = 1536  # bodies up to this size also ride in the file's properties (no download needed)


class DriveTransport(Transport):
    """Transport over one account's Google Drive (or the fake Drive server)."""

    name: ClassVar[str] = "p2p"
    shares_blobs: ClassVar[bool] = True

    def __init__(self, api: DriveApi, email: str, *, state_dir: Path | None = None, min_poll_gap: float = 0.0) -> None:
        if len(email) > MAX_EMAIL_LENGTH:  # "sfg_from" + email must fit a 124-byte property
            raise ConfigError(
                f"{email!r} is longer than {MAX_EMAIL_LENGTH} characters, more than Drive metadata can hold."
            )
        self.api = api
        self.email = canonical_email(email)
        self._min_poll_gap = min_poll_gap
        self.owners = PeerOwners()  # peers' Drive permission ids, learnt from my shares and their files
        self.writer = Writer(api)
        self.folders = MyFolders(
            api,
            self.email,
            book=IdBook(state_dir / "drive-folders.json" if state_dir is not None else None),
            next_id=self.writer.next_id,
            owners=self.owners,
        )
        self.discovery = Discovery(api, self.email, self.owners)
        self.lister = FolderLister(api)
        self.poller = Poller(api, self.email, self.owners)
        self._peer_blob_folders: set[tuple[str, str, str]] = set()  # (owner, app, folder id) vetted as owner's

    @property
    def last_poll_lists(self) -> int:
        """files.list calls the last poll took (1 up to PARENTS_PER_QUERY folders; 0 when it fetched by id)."""
        return self.lister.last_calls

    @classmethod
    def from_settings(cls, settings: Settings) -> DriveTransport:
        """Credentials from settings (see :func:`.connect.drive_api`); the account must be ``settings.email``."""
        options = DriveOptions.from_settings(settings)
        api = connect.verified_api(settings, options)
        return cls(api, settings.email, state_dir=settings.participant_state_dir(), min_poll_gap=options.min_poll_gap())

    @classmethod
    def diagnose(cls, settings: Settings) -> list[Check]:
        """Credentials, scopes, Drive reachability and the account; stops at the first blocker."""
        return connect.diagnose(settings)

    # -- my folders ---------------------------------------------------------------------

    def prepare(self, app: str, peers: Sequence[str]) -> None:
        """Find or create my root folder and one outbox per peer, shared read-only with that peer
        (:meth:`.folders.MyFolders.prepare`); then look for the peers' outboxes to me."""
        self.folders.prepare(app, peers)
        self._discover(app)

    def announce_run(self, app: str, run_id: int) -> None:
        """Stamp the run id on each of my outbox folders of ``app`` (duplicates too: peers read them all)."""
        self.discovery.announcing.add(app)
        self.folders.announce_run(app, run_id)

    def enable_bundles(self, app: str) -> None:
        """Send bundles of ``app`` into my shared blobs folder (created and shared with the peers now);
        its id goes out with the next :meth:`announce_run`."""
        self.folders.enable_bundles(app)

    def publish_keys(self, app: str, keys: dict[str, str]) -> None:
        """Put my public keys on each of my outbox folders of ``app`` (skipped where already there)."""
        self.discovery.publishing_keys.add(app)
        self.folders.publish_keys(app, keys)

    # -- writing ------------------------------------------------------------------------

    def send_bundle(self, routing: Routing, body: bytes) -> str:
        """One create in my shared blobs folder, read by every peer of the app; small bundles ride inline."""
        if routing.app not in self.folders.bundle_folders:
            self.enable_bundles(routing.app)
        file_id, props = self.writer.promise((routing.app, ""), layout.bundle_properties(routing))
        if len(body) <= INLINE_MAX:
            props.update(layout.inline_properties(body, used=len(props)))
        name = f"bundle-{routing.run_id}-{routing.message_id}.sfgd"
        try:
            created = self.writer.create_promised(
                name, as_reader(body), self.folders.bundle_folders[routing.app], props, file_id
            )
        except DriveError as exc:
            raise TransportError(f"could not send a bundle of {routing.kind}s: {exc}") from exc
        return str(created["id"])

    def send(self, routing: Routing, body: Buffer | Sequence[Buffer] | BinaryIO | SeekableReader) -> str:
        reader = as_reader(body)
        recipient = canonical_email(routing.recipient)
        folder = self.folders.outboxes.get((routing.app, recipient))
        if folder is None:
            self.prepare(routing.app, [recipient])
            folder = self.folders.outboxes[(routing.app, recipient)]
        file_id, props = self.writer.promise((routing.app, recipient), layout.message_properties(routing))
        if reader.size <= INLINE_MAX:
            reader.seek(0)
            props.update(layout.inline_properties(reader.read(reader.size), used=len(props)))
        try:
            created = self.writer.create_promised(layout.message_file_name(routing), reader, folder, props, file_id)
        except DriveError as exc:
            raise TransportError(f"could not send {routing.kind} to {routing.recipient}: {exc}") from exc
        handle = str(created["id"])
        self.poller.sent(
            routing.app,
            Posting(
                handle=handle,
                owner=self.email,
                routing=routing,
                size=reader.size,
                name=layout.message_file_name(routing),
            ),
        )
        return handle

    def put_blob(self, app: str, data: Buffer | BinaryIO | SeekableReader) -> str:
        """Upload content once into my blobs folder of ``app``, shared read-only with all its peers."""
        return self._upload_blob(app, as_reader(data), None, "a shared blob")

    def reserve_blob(self, app: str, parts: int) -> list[str] | None:
        """Pre-generated file ids (``files.generateIds``, drive-assumptions rows 13 and 16) for the parts, from
        the pool every create draws on (usually no call at all)."""
        try:
            return self.writer.take_ids(parts)
        except DriveError as exc:
            raise TransportError(f"could not reserve file ids for a shared blob: {exc}") from exc

    def put_blob_part(self, app: str, locator: str, data: SeekableReader) -> None:
        """Upload one part at its reserved id into my blobs folder of ``app`` (a repeated create that Drive
        answers 409 is success if the file there is mine: ``DriveApi`` checks)."""
        self._upload_blob(app, data, locator, f"part {locator} of a shared blob")

    def _upload_blob(self, app: str, reader: SeekableReader, file_id: str | None, what: str) -> str:
        """One blob file (a whole blob or a part) in my blobs folder of ``app``; returns its id."""
        blob_id = uuid.uuid4().hex  # random: the name and properties say nothing about the content
        try:
            created = self.writer.upload(
                f"blob-{blob_id}.bin",
                reader,
                self.folders.blobs_folder(app),
                layout.blob_properties(app, blob_id),
                file_id=file_id,
            )
        except DriveError as exc:
            raise TransportError(f"could not upload {what}: {exc}") from exc
        return str(created["id"])

    # -- reading ------------------------------------------------------------------------

    def get_blob(
        self, app: str, locator: str, *, owner: str, size: int, out: BinaryIO, appear_within: float = 0.0
    ) -> int:
        """Download a peer's blob, only once its metadata shows it is ``owner``'s, in its blobs folder,
        ``size`` bytes. A part not created yet (404) is asked for again until ``appear_within`` runs out."""
        owner = canonical_email(owner)
        waits = BlobWaits(appear_within)
        try:
            while True:
                try:
                    vet_peer_blob(
                        self.api,
                        locator,
                        owner=owner,
                        app=app,
                        size=size,
                        trusted_folders=self._peer_blob_folders,
                        owner_permission_id=self.owners.permission_ids.get(owner),
                    )
                    break
                except DriveNotFound as exc:
                    without_tracebacks(exc)  # else its frames, and this caller's model, outlive the wait
                    if not waits.sleep():
                        if waits.within:
                            raise BlobRefused(
                                f"shared blob {locator} was not stored within {waits.within:.0f} s "
                                "(its sender stopped uploading it, or deleted it)"
                            ) from None
                        raise
            return self.api.download_to(locator, out, max_bytes=size)
        except (DriveNotFound, DrivePermissionDenied, DriveTooLarge) as exc:
            raise BlobRefused(f"shared blob {locator}: {exc}") from None
        except DriveError as exc:
            raise TransportError(f"could not download shared blob {locator}: {exc}") from exc

    def list_my_blobs(self, app: str) -> list[str]:
        """Blobs of ``app`` I own (left by a crashed run, for instance)."""
        found = [str(f["id"]) for f in self.api.list_files(layout.my_blobs_query(app, self.email), fields="id")]
        return [h for h in found if h not in self.poller.gone]

    def poll(self, app: str) -> Listing:
        """What peers sent me and what I sent. With files promised to me outstanding, a poll fetches
        them by id (one batch call), and every :data:`.polling.LIST_EVERY`-th poll lists instead; without,
        it lists."""
        try:
            with deadline(POLL_RETRY_SECONDS):
                if self.discovery.due(app, self.folders.peers.get(app, [])):
                    self._discover(app)
                places = self.discovery.places(app, self.folders.my_folders.get(app, set()))
                wanted = self.poller.promised_now(app)
                if wanted:
                    found = self.poller.fetch_promised(app, places, wanted)
                    self.lister.last_calls = 0
                    return self._listing(app, found)
                files = self.lister.list_parents(places.folders())
        except DriveError as exc:
            raise TransportError(f"could not list messages: {exc}") from exc
        inbound, outbound, bundles = self.poller.listed(app, files, places)
        if self.discovery.newer_run_listed(app, [*inbound.values(), *bundles.values()]):
            try:  # the announcement we hold lags behind the peer's messages: read it again now
                self._discover(app)
            except DriveError as exc:
                logger.info("could not refresh peers' run announcements (%s); next poll", exc)
        return self._listing(app, (inbound, outbound, bundles))

    def _listing(self, app: str, found: Sorted) -> Listing:
        """What a poll reports: the postings found, with the peers' announcements as discovery holds them."""
        inbound, outbound, bundles = found
        return Listing(
            tuple(inbound.values()),
            tuple(outbound.values()),
            self.discovery.announcements(app),
            tuple(bundles.values()),
        )

    def _discover(self, app: str) -> None:
        """Look for the peers' outboxes to me now (only the peers ``app`` was prepared for count)."""
        self.discovery.discover(app, self.folders.peers.get(app, []))

    def ignore_bundle(self, handle: str) -> None:
        """A peer's bundle with no part for me: no longer reported, nor confirmed gone by id."""
        self.poller.ignore(handle)

    def read_to(self, posting: Posting, out: BinaryIO, *, max_bytes: int | None = None) -> int:
        if max_bytes is not None and posting.size > max_bytes:
            raise TransportError(
                f"message file {posting.handle} is {posting.size} bytes, over the {max_bytes}-byte limit"
            )
        try:
            return self.api.download_to(posting.handle, out, max_bytes=max_bytes)
        except DriveNotFound as exc:
            self.poller.gone.add(posting.handle)
            raise TransportError(f"message file {posting.handle} is gone") from exc
        except DriveError as exc:
            raise TransportError(f"could not download {posting.handle}: {exc}") from exc

    def read(self, posting: Posting, *, max_bytes: int | None = None) -> bytes:
        """A small body, read by a poll (maybe on a reader thread): retried no longer than a poll's listings,
        so Ctrl-C never waits on a long backoff; the next poll tries again."""
        try:
            with deadline(POLL_RETRY_SECONDS):
                return self.api.download_bytes(posting.handle, max_bytes=max_bytes)
        except DriveNotFound as exc:
            self.poller.gone.add(posting.handle)
            raise TransportError(f"message file {posting.handle} is gone") from exc
        except DriveError as exc:
            raise TransportError(f"could not download {posting.handle}: {exc}") from exc

    # -- cleaning up --------------------------------------------------------------------

    def delete(self, handles: Sequence[str]) -> None:
        if not handles:
            return
        results = self.api.delete_many(list(handles), missing_ok=True)
        self.poller.deleted([h for h, e in results.items() if e is None])
        failed = {h: e for h, e in results.items() if e is not None}
        if failed:
            first = next(iter(failed.values()))
            raise TransportError(f"could not delete {len(failed)} of {len(handles)} file(s): {first}")

    def my_postings(self, app: str | None = None) -> list[Posting]:
        """Every message file I own, of ``app`` or of any app and run (what `clean` removes)."""
        try:
            files = self.api.list_files(layout.all_my_messages_query(self.email), fields=layout.LISTING_FIELDS)
        except DriveError as exc:
            raise TransportError(f"could not list my message files: {exc}") from exc
        wanted = None if app is None else layout.app_hash(app)
        return [
            Posting(
                str(f["id"]),
                self.email,
                layout.routing_from_properties(f.get("properties"), app or ""),
                int(f.get("size") or 0),
                str(f.get("name") or f["id"]),
            )
            for f in files
            if wanted is None or (f.get("properties") or {}).get(layout.P_APP) == wanted
        ]

    # -- figures ------------------------------------------------------------------------

    def call_counts(self) -> dict[str, int]:
        return self.api.calls.snapshot()

    def min_poll_gap(self) -> float:
        """Room for polls under SYFT_FLWR_QUOTA_UNITS_PER_MIN (0: no pacing configured)."""
        return self._min_poll_gap
