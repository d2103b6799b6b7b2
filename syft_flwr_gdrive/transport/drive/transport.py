"""The Google Drive transport: message files in per-peer outbox folders.

Only documented Drive behaviour is relied on, or checked at run time with a fallback
(docs/drive-assumptions.md):

* peers' folders are found among the folders shared with me directly (``sharedWithMe`` and a
  ``mimeType``; their properties judged locally, not searched), then kept by id and read again
  by id (``files.get``: consistent), which is how their runs, keys and next ids are learnt
  (:mod:`.discovery`);
* a file counts as a peer's only if it sits in that peer's outbox folder AND Drive's
  owner is that peer: by email, or by permission id when Drive hides the email
  (:mod:`.owners`, :mod:`.polling`);
* files are found by id: each message or bundle file names the id of its writer's next file of
  the stream (``sfg_nx``), and each outbox folder the id of its owner's next one (stamped with a
  write made anyway), so a reader fetches them by id the moment they exist (:mod:`.promises`,
  written by :mod:`.writes`);
* listings are a safety net for what nothing promised, one folder per query (field reports show
  an OR of ``in parents`` terms answering only some folders' files; :mod:`.listing`); they are
  eventually consistent, so my own files count as present until I delete them, and a request,
  stop or bundle I hold counts as gone only when a get by id says so;
* an id Drive will not take (expired, another account's, taken by someone else's file) is
  replaced by a fresh one, where readers find the file by listing (a blob part: in its owner's
  blobs folder, naming the refused id).

Cost per operation (Drive calls): announce a run 1 per outbox, send 1 (multipart create
with a pre-generated id, so a retried create is idempotent; ids are fetched just before use),
poll 1 batch request per 100 reads (promised and held files, peers' folders, and when due one
listing per folder), read 1 (download by id), delete 1 batch per 100 files; each write is paced
below Drive's per-account limit (:mod:`.ratelimit`).

This module is the contract (:class:`~syft_flwr_gdrive.transport.contract.Transport`) and
composes the parts: my folders (:mod:`.folders`), peers' folders (:mod:`.discovery`), the
poll's listings and postings (:mod:`.listing`, :mod:`.polling`), creates (:mod:`.writes`) and
the connection (:mod:`.connect`).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
import uuid
from collections.abc import Collection
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
from syft_flwr_gdrive.transport.contract import BlobNotStored
from syft_flwr_gdrive.transport.contract import BlobRefused
from syft_flwr_gdrive.transport.contract import Check
from syft_flwr_gdrive.transport.contract import Listing
from syft_flwr_gdrive.transport.contract import Posting
from syft_flwr_gdrive.transport.contract import Routing
from syft_flwr_gdrive.transport.contract import Transport
from syft_flwr_gdrive.transport.contract import TransportError
from syft_flwr_gdrive.transport.drive import connect
from syft_flwr_gdrive.transport.drive import layout
from syft_flwr_gdrive.transport.drive.api import BatchReads
from syft_flwr_gdrive.transport.drive.api import DriveApi
from syft_flwr_gdrive.transport.drive.blob_checks import BlobWaits
from syft_flwr_gdrive.transport.drive.blob_checks import PartAliases
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
from syft_flwr_gdrive.transport.drive.polling import POLL_FIELDS
from syft_flwr_gdrive.transport.drive.polling import POLL_RETRY_SECONDS
from syft_flwr_gdrive.transport.drive.polling import Poller
from syft_flwr_gdrive.transport.drive.polling import Sorted
from syft_flwr_gdrive.transport.drive.polling import Sweep
from syft_flwr_gdrive.transport.drive.promises import Stream
from syft_flwr_gdrive.transport.drive.retry import deadline
from syft_flwr_gdrive.transport.drive.writes import REFUSED_ID
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
        self.aliases = PartAliases(api, self.discovery, self.owners, self._peer_blob_folders, self._discover)
        self._heads_stamped: dict[tuple[str, str], int] = {}  # (app, peer) -> the run I last stamped my heads for
        self._my_aliases: dict[str, str] = {}  # a part's reserved id Drive refused -> where I stored the part
        self._keys_to_announce: dict[str, dict[str, str]] = {}  # app -> my keys, stamped with its run announcement
        self._alias_lock = threading.Lock()
        self._awaited: dict[str, frozenset[str]] = {}  # app -> the only peers whose next direct files a poll fetches

    @property
    def last_poll_lists(self) -> int:
        """Folder listings the last poll took (one per folder when it swept; 0 when it did not)."""
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
        """Stamp the run id on each of my outbox folders of ``app`` (duplicates too: peers read them all), with
        the id my next bundle will have (bundles on) or my next message to that peer (off): its first files are
        fetched by id. With bundles on, direct messages carry only what does not fit a bundle (rare): no head for
        them, so no client asks for one at every poll; such a message is found by its client's sweep."""
        self.discovery.announcing.add(app)
        self.discovery.announced_at[app] = time.monotonic()
        bundles = app in self.folders.bundle_folders
        keys = self._keys_to_announce.pop(app, {})
        at = time.time()
        self.folders.announce_run(
            app,
            run_id,
            lambda peer: (
                keys
                | layout.head_properties(
                    self.writer.head((app, peer)) if peer and not bundles else None,
                    self.writer.head((app, "")) if bundles else None,
                    at,
                )
            ),
        )

    def enable_bundles(self, app: str) -> None:
        """Send bundles of ``app`` into my shared blobs folder (created and shared with the peers now);
        its id goes out with the next :meth:`announce_run`."""
        self.folders.enable_bundles(app)

    def publish_keys(self, app: str, keys: dict[str, str]) -> None:
        """Put my public keys on each of my outbox folders of ``app``: a server's skipped where already there, a
        client's always, with the id of its next message to that peer (its new process's first reply). A
        server with bundles on that has not announced its run yet stamps them with the announcement instead:
        one write per folder, not two (what a server's set-up costs is its writes, 2 per second)."""
        self.discovery.publishing_keys.add(app)
        if app in self.folders.bundle_folders and app not in self.discovery.announcing:
            self._keys_to_announce[app] = {layout.P_KEY_KX: keys["kx"], layout.P_KEY_SIGN: keys["ks"]}
            return
        if app in self.discovery.announcing:
            self.folders.publish_keys(app, keys, None)
            return
        at = time.time()
        self.folders.publish_keys(
            app, keys, lambda peer: layout.head_properties(self.writer.head((app, peer)), None, at) if peer else {}
        )

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
        self._renew_stale_head(routing.app, recipient)
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
        the pool every create draws on (usually no call at all); None if Drive gives none now: the blob then
        goes whole, stored before its message (message format 3)."""
        try:
            return self.writer.take_ids(parts)
        except DriveError as exc:
            logger.warning("could not reserve file ids for a blob in parts (%s); it goes as one file", exc)
            return None

    def put_blob_part(self, app: str, locator: str, data: SeekableReader) -> None:
        """Upload one part at its reserved id into my blobs folder of ``app`` (a repeated create that Drive
        answers 409 is success if the file there is mine: ``DriveApi`` checks).

        If Drive refuses the id (400: expired, or not this account's; 409: someone else's file took it,
        a peer that read the id in the message, say), the part goes to a fresh id in the same folder,
        naming the refused one in ``sfg_part_of``: its receivers find it there by listing that folder."""
        try:
            self._upload_blob(app, data, locator, f"part {locator} of a shared blob")
        except TransportError as exc:
            refused = exc.__cause__
            if not isinstance(refused, DriveError) or refused.status not in REFUSED_ID:
                raise
            logger.warning(
                "Drive refused the reserved id %s for a blob part (%s); stored at a fresh id its receivers look for",
                locator,
                refused,
            )
            if refused.status == 400:
                self.writer.forget_pool()
            alias = self._upload_blob(app, data, None, f"part {locator} of a shared blob", {layout.P_PART_OF: locator})
            with self._alias_lock:
                self._my_aliases[locator] = alias  # deleting the part deletes this file (the id is not mine)

    def _upload_blob(
        self, app: str, reader: SeekableReader, file_id: str | None, what: str, extra: dict[str, str] | None = None
    ) -> str:
        """One blob file (a whole blob or a part) in my blobs folder of ``app``; returns its id."""
        blob_id = uuid.uuid4().hex  # random: the name and properties say nothing about the content
        try:
            created = self.writer.upload(
                f"blob-{blob_id}.bin",
                reader,
                self.folders.blobs_folder(app),
                {**layout.blob_properties(app, blob_id), **(extra or {})},
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
        ``size`` bytes (:func:`.blob_checks.vet_peer_blob`).

        A part not stored yet (404) is asked for again until ``appear_within`` runs out. A part may also
        be stored at a fresh id (Drive refused the reserved one, or someone else's file holds it): while
        waiting, and at once when the file at the id is not the owner's part, the owner's blobs folders
        are listed for a file that names the id in ``sfg_part_of`` (:class:`.blob_checks.PartAliases`)."""
        owner = canonical_email(owner)
        waits = BlobWaits(appear_within)
        vet = functools.partial(
            vet_peer_blob,
            self.api,
            owner=owner,
            app=app,
            size=size,
            trusted_folders=self._peer_blob_folders,
            owner_permission_id=self.owners.permission_ids.get(owner),
        )
        try:
            while True:
                refused: BlobRefused | None = None
                try:
                    vet(locator)
                    return self.api.download_to(locator, out, max_bytes=size)
                except DriveNotFound as exc:
                    without_tracebacks(exc)  # else its frames, and this caller's model, outlive the wait
                except BlobRefused as exc:
                    if not waits.within:
                        raise  # a blob stored whole was there before its message: nothing to look for
                    refused = exc  # not the owner's part at that id (squatted?): its part may be elsewhere
                alias = self.aliases.find(app, locator, owner, now=refused is not None)
                if alias is not None:
                    vet(alias)
                    return self.api.download_to(alias, out, max_bytes=size)
                if not waits.sleep():
                    if refused is not None:
                        raise refused
                    if waits.within:
                        raise BlobNotStored(
                            f"shared blob {locator} was not stored within {waits.within:.0f} s "
                            "(its sender stopped uploading it, or deleted it)"
                        ) from None
                    raise DriveNotFound(f"shared blob {locator} not found", status=404)
        except BlobRefused:
            raise
        except (DriveNotFound, DrivePermissionDenied, DriveTooLarge) as exc:
            raise BlobRefused(f"shared blob {locator}: {exc}") from None
        except DriveError as exc:
            raise TransportError(f"could not download shared blob {locator}: {exc}") from exc

    def list_my_blobs(self, app: str) -> list[str]:
        """Blobs of ``app`` I own (left by a crashed run, for instance)."""
        found = [str(f["id"]) for f in self.api.list_files(layout.my_blobs_query(app), fields="id")]
        return [h for h in found if h not in self.poller.gone]

    def await_from(self, app: str, peers: Collection[str] | None) -> None:
        """Fetch only these peers' promised direct files at the next polls (None: every peer's). A server waiting
        for the last few replies of 100 then asks Drive for a few files, not 100, at each of its fast polls (less
        work for Drive and for the server's poll: at N = 100 that, not Drive, set the pace of the last replies).
        Bundles, folder reads, held files and the sweeps are unchanged: what others send is found as before."""
        if peers is None:
            self._awaited.pop(app, None)
        else:
            self._awaited[app] = frozenset(canonical_email(p) for p in peers)

    def _promised(self, app: str) -> dict[str, Stream]:
        """The promised ids this poll fetches: every outstanding one, or only the awaited peers' direct streams."""
        wanted = self.poller.promised_now(app)
        awaited = self._awaited.get(app)
        if awaited is None:
            return wanted

        def fetched_now(stream: Stream) -> bool:
            _app, kind, peer = stream
            return kind != "direct" or peer in awaited

        return {i: stream for i, stream in wanted.items() if fetched_now(stream)}

    def poll(self, app: str) -> Listing:
        """What peers sent me and what I sent: one batch request (:meth:`.api.DriveApi.read_batch`) of the files
        peers promised me, the requests, stops and bundles I hold, peers' folders due for a read (their runs,
        keys and the ids of their next files) and, when due, one listing per folder (:mod:`.listing`) and of the
        folders shared with me (:mod:`.discovery`). No OR'ed listing, and no listing that a file must wait for."""
        peers = self.folders.peers.get(app, [])
        mine = self.folders.my_folders.get(app, set())
        try:
            with deadline(POLL_RETRY_SECONDS):
                discover = self.discovery.due(app, peers)
                places = self.discovery.places(app, mine)
                folder_reads = self.discovery.folders_to_read(app)
                wanted = self._promised(app)
                held = self.poller.held(app)
                folders = places.folders()
                sweep = self.lister.queries(app, places) if self.lister.due(app, places) else []
                shared = [layout.shared_folders_query()] if discover else []
                reads = self.api.read_batch(
                    [*folder_reads, *wanted, *held], [*shared, *sweep], fields=POLL_FIELDS, list_fields=POLL_FIELDS
                )
                failed = _all_failed(reads)
                if failed is not None:  # Drive refused every part (a rate limit, an outage): the caller backs off
                    raise failed
                self._absorb_folders(app, peers, reads, shared, folder_reads)
                places_now = self.discovery.places(app, mine)
                # What these answers taught (a peer's first heads, a new run's bundles folder) is read in the same
                # poll, in one more batch request: a run's first file is not left for the next poll.
                more_wanted = {i: s for i, s in self._promised(app).items() if i not in wanted}
                more_folders = [f for f in places_now.folders() if f not in folders]  # found now: looked in at once
                more_sweep = self.lister.queries(app, places_now, only=more_folders) if more_folders else []
                if more_wanted or more_sweep:
                    more = self.api.read_batch(more_wanted, more_sweep, fields=POLL_FIELDS, list_fields=POLL_FIELDS)
                    reads.files.update(more.files)
                    reads.listings.update(more.listings)
                    wanted, sweep, places = {**wanted, **more_wanted}, [*sweep, *more_sweep], places_now
        except DriveError as exc:
            raise TransportError(f"could not list messages: {exc}") from exc
        self.lister.last_calls = len(sweep)
        swept = None
        if sweep:
            listed = [reads.listings[q] for q in sweep]
            files = [f for answer in listed if not isinstance(answer, DriveError) for f in answer]
            swept = Sweep(files, complete=not any(isinstance(a, DriveError) for a in listed))
        inbound, outbound, bundles = self.poller.absorb(app, places, reads.files, wanted, held, swept)
        self.discovery.newer_run_listed(app, [*inbound.values(), *bundles.values()])
        self._stamp_heads_for_new_runs(app)
        return self._listing(app, (inbound, outbound, bundles))

    def _absorb_folders(
        self, app: str, peers: Sequence[str], reads: BatchReads, shared: list[str], folder_reads: list[str]
    ) -> None:
        """A poll's discovery listing and reads of peers' folders: what peers announce, and their heads."""
        if shared:
            found = reads.listings[shared[0]]
            if isinstance(found, DriveError):
                logger.info("could not list the folders shared with me (%s); next poll", found)
            else:
                self.poller.stamped(app, self.discovery.absorb_listing(app, peers, found))
        heads = self.discovery.absorb_reads(app, {f: reads.files[f] for f in folder_reads if f in reads.files})
        self.poller.stamped(app, heads)

    def _renew_stale_head(self, app: str, peer: str) -> None:
        """A client whose promised id to its server is old (a long round: it may have expired) writes its reply at
        a fresh id, stamped first on its outbox folder (one write), where its server reads it within seconds;
        otherwise the reply would wait for a sweep of the server's, which comes seldom when it has many peers."""
        if app in self.discovery.announcing:
            return  # a server's streams: its clients sweep often (few folders); no write per message
        fresh = self.writer.renew_stale_head((app, peer))
        if fresh is None:
            return
        try:
            self.folders.stamp_heads(app, peer, layout.head_properties(fresh, None, time.time()))
        except DriveError as exc:
            logger.info("could not stamp a fresh id for my next message to %s (%s); it is found by listing", peer, exc)

    def _stamp_heads_for_new_runs(self, app: str) -> None:
        """A client that sees a peer announce a new run stamps the id of its next message to that peer on its
        outbox folder (one write per run): the peer's new run fetches its first reply by id."""
        if app in self.discovery.announcing:
            return
        for peer, run in self.discovery.newest_runs(app).items():
            if self._heads_stamped.get((app, peer)) == run or (app, peer) not in self.folders.outboxes:
                continue
            try:
                self.folders.stamp_heads(
                    app, peer, layout.head_properties(self.writer.head((app, peer)), None, time.time())
                )
            except DriveError as exc:
                logger.info("could not stamp my next message's id for %s (%s); next poll", peer, exc)
                continue
            self._heads_stamped[(app, peer)] = run

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
        self.poller.stamped(app, self.discovery.discover(app, self.folders.peers.get(app, [])))

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
        with self._alias_lock:  # a blob part stored at a fresh id: that file, not the one at the reserved id
            stored_at = {h: self._my_aliases.get(h, h) for h in handles}
        results = self.api.delete_many(list(stored_at.values()), missing_ok=True)
        self.poller.deleted([h for h, e in results.items() if e is None])
        with self._alias_lock:
            for handle, where in stored_at.items():
                if where != handle and results.get(where) is None:
                    self._my_aliases.pop(handle, None)
        failed = {h: e for h, e in results.items() if e is not None}
        if failed:
            first = next(iter(failed.values()))
            # from ``first``: a lost sign-in behind it is found (access_lost_in) and said once, not in every line
            raise TransportError(f"could not delete {len(failed)} of {len(handles)} file(s): {first}") from first

    def my_postings(self, app: str | None = None) -> list[Posting]:
        """Every message file I own, of ``app`` or of any app and run (what `clean` removes)."""
        try:
            files = self.api.list_files(layout.all_my_messages_query(), fields=layout.LISTING_FIELDS)
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

    def close(self) -> None:
        """Close the DriveApi's kept connections and threads (calls after it still work, uncached)."""
        self.api.close()

    # -- figures ------------------------------------------------------------------------

    def call_counts(self) -> dict[str, int]:
        return self.api.calls.snapshot()

    def min_poll_gap(self) -> float:
        """Room for polls under SYFT_FLWR_QUOTA_UNITS_PER_MIN (0: no pacing configured)."""
        return self._min_poll_gap


def _all_failed(reads: BatchReads) -> DriveError | None:
    """The first error of a batch whose every part failed for a reason other than "not found" (a rate limit,
    an outage): a poll that learnt nothing says so instead of reporting the last state as current."""
    answers = [*reads.files.values(), *reads.listings.values()]
    errors = [a for a in answers if isinstance(a, DriveError) and not isinstance(a, DriveNotFound)]
    return errors[0] if answers and len(errors) == len(answers) else None
