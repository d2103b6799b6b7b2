"""The Google Drive transport: message files in per-peer outbox folders.

Only documented Drive behaviour is relied on (docs/drive-assumptions.md):

* peers' outbox folders are found as folders shared with me directly (``sharedWithMe``
  plus ``properties``), then remembered by id;
* a poll lists ``'<folder>' in parents`` over those folders and my own outboxes, OR'ed
  in chunks of :data:`layout.PARENTS_PER_QUERY` (smaller chunks, down to one folder per
  query, when Drive answers 400 "The query is too complex");
* a file counts as a peer's only if it sits in that peer's outbox folder AND Drive's
  owner is that peer: by email, or by permission id when Drive hides the email;
* listings are eventually consistent, so my own files count as present until I delete
  them, and a request or stop that vanishes from a listing is confirmed gone by id;
* a file found by id is current: each message or bundle file names the id of its writer's
  next file of the stream (``sfg_nx``, :mod:`.promises`), and a reader with such promises
  outstanding fetches them by id instead of waiting for the listing to show them.

Cost per operation (Drive calls): announce a run 1 per outbox, send 1 (multipart create
with a pre-generated id, so a retried create is idempotent; ids are fetched 100 at a
time), poll 1 per 40 folders (plus one discovery listing every
:data:`DISCOVER_EVERY` seconds, and one ``files.get`` per request or stop that
disappears) or, with promises outstanding, 1 batch get per 100 promised or held files
(every :data:`LIST_EVERY`-th poll lists instead), read 1 (download by id), delete 1 batch
per 100 files.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from typing import BinaryIO
from typing import ClassVar

from syft_flwr_gdrive.accounts import canonical_email
from syft_flwr_gdrive.accounts import same_account
from syft_flwr_gdrive.config import MAX_EMAIL_LENGTH
from syft_flwr_gdrive.config import ConfigError
from syft_flwr_gdrive.config import Settings
from syft_flwr_gdrive.drive import layout
from syft_flwr_gdrive.drive.api import DriveApi
from syft_flwr_gdrive.drive.blob_checks import vet_peer_blob
from syft_flwr_gdrive.drive.errors import DriveError
from syft_flwr_gdrive.drive.errors import DriveNotFound
from syft_flwr_gdrive.drive.errors import DrivePermissionDenied
from syft_flwr_gdrive.drive.errors import DriveTooLarge
from syft_flwr_gdrive.drive.idbook import IdBook
from syft_flwr_gdrive.drive.options import DriveOptions
from syft_flwr_gdrive.drive.promises import PromiseBook
from syft_flwr_gdrive.drive.promises import Stream
from syft_flwr_gdrive.drive.ratelimit import QuotaLimiter
from syft_flwr_gdrive.drive.retry import RetryPolicy
from syft_flwr_gdrive.drive.retry import deadline
from syft_flwr_gdrive.segments import Buffer
from syft_flwr_gdrive.segments import SeekableReader
from syft_flwr_gdrive.segments import as_binary
from syft_flwr_gdrive.segments import as_reader
from syft_flwr_gdrive.transport.contract import Announcement
from syft_flwr_gdrive.transport.contract import BlobRefused
from syft_flwr_gdrive.transport.contract import Check
from syft_flwr_gdrive.transport.contract import Listing
from syft_flwr_gdrive.transport.contract import Posting
from syft_flwr_gdrive.transport.contract import Routing
from syft_flwr_gdrive.transport.contract import Transport
from syft_flwr_gdrive.transport.contract import TransportError

logger = logging.getLogger(__name__)

ID_BATCH = 100
INLINE_MAX = 1536  # bodies up to this size also ride in the file's properties (no download needed)
DISCOVER_EVERY = 10.0  # seconds between listings of peers' outbox folders once every peer has one
REDISCOVER_EVERY = 1.0  # sooner when a peer's message names a newer run than it announces...
REDISCOVER_FOR = 60.0  # ...for this long per (peer, run)
MAX_RETRY_SECONDS = 300.0  # one Drive call never retries longer (nor longer than the message timeout)
LIST_WORKERS = 4  # a poll's listings (one per 40 folders) run side by side
POLL_RETRY_SECONDS = 10.0  # a poll's calls stop retrying after this: the next poll comes soon anyway, and a
#                            waiter must not sit out a 30 s backoff past its own deadline
# With promises outstanding, every 4th poll lists and the others fetch by id. Listings find what nothing
# promised (a stream's first file, a restarted writer, a new run); a listing poll cannot see a promised
# file younger than the list lag, so the file waits one poll more when its moment falls on a listing.
# At the fast poll gap (0.25 s) 4 polls are about a second, the strict profile's lag: what only a
# listing can find is found about as soon as a listing could show it, and 3 polls in 4 find
# promised files the moment they exist.
LIST_EVERY = 4
PROMISED_FIELDS = layout.LISTING_FIELDS + ",trashed"  # a fetched file as a listing shows it (which leaves trashed out)
_CONFIRM_KINDS = ("request", "stop", layout.KIND_BUNDLE)  # inbound kinds whose disappearance someone acts on
_LIMITERS: dict[float, QuotaLimiter] = {}
_LIMITERS_LOCK = threading.Lock()


def shared_limiter(units_per_min: float | None) -> QuotaLimiter | None:
    """One quota pacer per process (the quota is per user, and a process acts as one user)."""
    if not units_per_min:
        return None
    with _LIMITERS_LOCK:
        return _LIMITERS.setdefault(units_per_min, QuotaLimiter(units_per_min))


def drive_api(
    email: str, options: DriveOptions, *, retry: RetryPolicy, limiter: QuotaLimiter | None = None
) -> tuple[DriveApi, str]:
    """The one place credentials are chosen: a Drive URL and no credentials mean the fake Drive.

    Returns the API and where its credentials came from (for ``doctor``).
    """
    from syft_flwr_gdrive.drive.auth import load_credentials

    chosen = options.credentials_file
    if options.url and not chosen:
        api = DriveApi.for_fake(options.url, email, limiter=limiter, retry=retry)
        return api, f"fake Drive at {options.url}: no credentials needed"
    credentials = load_credentials(
        token_file=options.token_file, service_account_file=options.service_account_file, use_adc=not chosen
    )
    api = DriveApi(credentials, base_url=options.url, limiter=limiter, retry=retry)
    return api, f"loaded from {chosen or 'Application Default Credentials'}"


@dataclass(frozen=True)
class _Places:
    """Where a poll looks, by folder id: peers' outboxes to me, peers' bundle folders, my outboxes."""

    peer_of: dict[str, str]  # a peer's outbox folder to me -> that peer
    bundles_of: dict[str, list[str]]  # a folder peers announced for their bundles -> those peers
    mine: set[str]

    def folders(self) -> list[str]:
        return (
            sorted(self.peer_of)
            + sorted(set(self.bundles_of) - set(self.peer_of))
            + sorted(self.mine - set(self.peer_of) - set(self.bundles_of))
        )


def _created(folder: dict[str, Any]) -> tuple[str, str]:
    """Sort key: oldest first (RFC 3339 strings sort by time), ties by id: the same everywhere."""
    return (str(folder.get("createdTime") or "~"), str(folder.get("id")))


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
        self._lock = threading.Lock()
        self._ids: list[str] = []
        self._promised: dict[tuple[str, str], str] = {}  # (app, recipient; "" for bundles) -> id its next file gets
        self._promises = PromiseBook()  # what peers promised me (reader side)
        self._gets_in_a_row: dict[str, int] = {}  # app -> polls since its last listing (see LIST_EVERY)
        self._book = IdBook(state_dir / "drive-folders.json" if state_dir is not None else None)
        self._root_id: str | None = None
        self._outboxes: dict[tuple[str, str], str] = {}  # (app, peer) -> my primary outbox folder id
        self._my_folders: dict[str, set[str]] = {}  # app -> all my outbox folders (duplicates included)
        self._peers: dict[str, list[str]] = {}  # app -> peers it was prepared for (canonical)
        self._peer_pids: dict[str, str] = {}  # peer -> Drive permission id (from my shares with them)
        self._peer_folders: dict[str, dict[str, dict[str, Any]]] = {}  # app -> folder id -> {peer, props, seen}
        self._discovered_at: dict[str, float] = {}
        self._publishing_keys: set[str] = set()  # apps I publish keys for (encryption on: peers do too)
        self._announcing: set[str] = set()  # apps I announce runs of (a server): I wait for no peer's run
        self._blob_folders: dict[str, str] = {}  # app -> shared blobs folder id
        self._bundle_folders: dict[str, str] = {}  # app -> the folder my bundles go in (bundles enabled)
        self._folder_props: dict[str, dict[str, str]] = {}  # my outbox folder id -> its properties as last seen
        self._peer_blob_folders: set[tuple[str, str, str]] = (
            set()
        )  # (owner, app, folder id) checked to be owner's blobs folder
        self._mine: dict[str, dict[str, Posting]] = {}  # app -> my message files not deleted yet
        self._inbound: dict[str, dict[str, Posting]] = {}  # app -> inbound postings seen and not known gone
        self._bundles_seen: dict[str, dict[str, Posting]] = {}  # app -> peers' bundles seen and not known gone
        self._gone: set[str] = set()  # handles deleted (by me) or confirmed gone by id
        self._ignored: set[str] = set()  # peers' bundles with no part for me: not listed, not confirmed gone
        self._newer_seen: dict[tuple[str, int], float] = {}  # (peer, run) -> first seen newer than announced
        self._chunk = layout.PARENTS_PER_QUERY
        self._list_pool: ThreadPoolExecutor | None = None
        self.last_poll_lists = 0  # files.list calls the last poll took (1 up to PARENTS_PER_QUERY folders)

    @classmethod
    def from_settings(cls, settings: Settings) -> DriveTransport:
        """Credentials from settings (see :func:`drive_api`); the account must be ``settings.email``."""
        from syft_flwr_gdrive.drive.auth import verify_account

        options = DriveOptions.from_settings(settings)
        retry = RetryPolicy(max_total=min(MAX_RETRY_SECONDS, settings.msg_timeout))
        api, _source = drive_api(
            settings.email, options, retry=retry, limiter=shared_limiter(options.quota_units_per_min)
        )
        verify_account(api, settings.email)
        return cls(api, settings.email, state_dir=settings.participant_state_dir(), min_poll_gap=options.min_poll_gap())

    @classmethod
    def diagnose(cls, settings: Settings) -> list[Check]:
        """Credentials, scopes, Drive reachability and the account; stops at the first blocker."""
        from syft_flwr_gdrive.drive.auth import SCOPES
        from syft_flwr_gdrive.drive.auth import CredentialsError

        quick = RetryPolicy(max_attempts=3, max_total=10.0, initial_wait=0.5)  # a check should answer fast
        checks: list[Check] = []
        try:
            options = DriveOptions.from_settings(settings)
            api, source = drive_api(settings.email, options, retry=quick)
        except ConfigError as exc:
            return [Check("settings", False, str(exc), "fix the setting named above")]
        except CredentialsError as exc:
            return [Check("credentials", False, str(exc), "see the text above")]
        checks.append(Check("credentials", True, source))
        granted = set(getattr(api.credentials, "scopes", None) or [])
        if granted and not granted & set(SCOPES):
            checks.append(
                Check("scopes", False, f"granted {sorted(granted)}", f"log in again with the scope {SCOPES[0]}")
            )
            return checks
        try:
            account = api.about_me()
        except DriveError as exc:
            checks.append(
                Check(
                    "drive",
                    False,
                    f"Drive did not answer: {exc}",
                    "check the network, SYFT_FLWR_DRIVE_URL, and that the Drive API is enabled for the project",
                )
            )
            return checks
        checks.append(Check("drive", True, f"reachable ({options.url or 'www.googleapis.com'})"))
        if not same_account(account, settings.email):  # gmail: Drive reports the form the account registered
            checks.append(
                Check(
                    "account",
                    False,
                    f"the credentials are for {account}, but SYFTBOX_EMAIL is {settings.email}",
                    f"set SYFTBOX_EMAIL={account} or log in as {settings.email}",
                )
            )
        else:
            checks.append(Check("account", True, f"credentials belong to {account}"))
        return checks

    # -- contract -----------------------------------------------------------------------

    def prepare(self, app: str, peers: Sequence[str]) -> None:
        """Find or create my root folder and one outbox per peer, shared read-only with that peer.

        Duplicates (a restart inside Drive's list lag, another machine) resolve the same way
        everywhere: the oldest folder is the one I send into; the others stay announced on
        and listed until they are empty, then go.
        """
        root = self._root()
        known = self._peers.setdefault(app, [])
        wanted = [canonical_email(p) for p in peers if canonical_email(p) != self.email]
        known.extend(p for p in wanted if p not in known)
        by_peer: dict[str, list[dict[str, Any]]] = {}
        for folder in self.api.list_files(layout.outbox_query(app, self.email), fields=layout.FOLDER_FIELDS):
            peer = self._outbox_peer(folder.get("properties") or {}, known)
            if peer is not None:
                by_peer.setdefault(peer, []).append(folder)
        mine = self._my_folders.setdefault(app, set())
        for peer in wanted:
            key = f"outbox:{layout.app_hash(app)}:{peer}"
            folders = by_peer.get(peer, [])
            recorded = self._book.get(key)
            if recorded and recorded not in {f["id"] for f in folders}:
                found = self._get_mine(recorded, layout.FOLDER_FIELDS)
                if found is not None:
                    folders.append(found)
            if not folders:
                folders = [
                    self._create_folder(
                        key, layout.outbox_folder_name(app, peer), root, layout.outbox_properties(app, peer)
                    )
                ]
            folders.sort(key=_created)
            primary = folders[0]
            self._book.put(key, str(primary["id"]))
            self._outboxes[(app, peer)] = str(primary["id"])
            for folder in folders:
                mine.add(str(folder["id"]))
                self._folder_props[str(folder["id"])] = dict(
                    folder.get("properties") or layout.outbox_properties(app, peer)
                )
            self._ensure_shared(primary, peer)
            for extra in folders[1:]:
                self._retire_extra(app, extra)
        self._discover(app)

    def announce_run(self, app: str, run_id: int) -> None:
        """Stamp the run id on each of my outbox folders of ``app`` (duplicates too: peers read them all)."""
        self._announcing.add(app)
        props = {layout.P_RUN: str(run_id)}
        if app in self._bundle_folders:  # in the same update: a peer that sees the run sees where its bundles are
            props[layout.P_BUNDLES] = self._bundle_folders[app]
        for folder_id in sorted(self._my_folders.get(app, ())):
            self.api.update(folder_id, properties=props, fields="id")
            self._folder_props.setdefault(folder_id, {}).update(props)

    def enable_bundles(self, app: str) -> None:
        """Send bundles of ``app`` into my shared blobs folder (created and shared with the peers now);
        its id goes out with the next :meth:`announce_run`."""
        self._bundle_folders[app] = self._blobs_folder(app)

    def send_bundle(self, routing: Routing, body: bytes) -> str:
        """One create in my shared blobs folder, read by every peer of the app; small bundles ride inline."""
        if routing.app not in self._bundle_folders:
            self.enable_bundles(routing.app)
        file_id, props = self._promise((routing.app, ""), layout.bundle_properties(routing))
        if len(body) <= INLINE_MAX:
            props.update(layout.inline_properties(body, used=len(props)))
        name = f"bundle-{routing.run_id}-{routing.message_id}.sfgd"
        try:
            created = self._create_promised(name, as_reader(body), self._bundle_folders[routing.app], props, file_id)
        except DriveError as exc:
            raise TransportError(f"could not send a bundle of {routing.kind}s: {exc}") from exc
        return str(created["id"])

    def publish_keys(self, app: str, keys: dict[str, str]) -> None:
        """Put my public keys on each of my outbox folders of ``app`` (skipped where already there)."""
        wanted = {layout.P_KEY_KX: keys["kx"], layout.P_KEY_SIGN: keys["ks"]}
        self._publishing_keys.add(app)
        for folder_id in sorted(self._my_folders.get(app, ())):
            props = self._folder_props.get(folder_id, {})
            if props != {**props, **wanted}:
                self.api.update(folder_id, properties=wanted, fields="id")
                self._folder_props.setdefault(folder_id, {}).update(wanted)

    def send(self, routing: Routing, body: Buffer | Sequence[Buffer] | BinaryIO | SeekableReader) -> str:
        reader = as_reader(body)
        recipient = canonical_email(routing.recipient)
        folder = self._outboxes.get((routing.app, recipient))
        if folder is None:
            self.prepare(routing.app, [recipient])
            folder = self._outboxes[(routing.app, recipient)]
        file_id, props = self._promise((routing.app, recipient), layout.message_properties(routing))
        if reader.size <= INLINE_MAX:
            reader.seek(0)
            props.update(layout.inline_properties(reader.read(reader.size), used=len(props)))
        try:
            created = self._create_promised(layout.message_file_name(routing), reader, folder, props, file_id)
        except DriveError as exc:
            raise TransportError(f"could not send {routing.kind} to {routing.recipient}: {exc}") from exc
        handle = str(created["id"])
        with self._lock:  # listings lag; my own files count as present until I delete them
            self._mine.setdefault(routing.app, {})[handle] = Posting(
                handle=handle,
                owner=self.email,
                routing=routing,
                size=reader.size,
                name=layout.message_file_name(routing),
            )
        return handle

    def put_blob(self, app: str, data: Buffer | BinaryIO | SeekableReader) -> str:
        """Upload content once into my blobs folder of ``app``, shared read-only with all its peers."""
        blob_id = uuid.uuid4().hex  # random: the name and properties say nothing about the content
        try:
            created = self._upload(
                f"blob-{blob_id}.bin", as_reader(data), self._blobs_folder(app), layout.blob_properties(app, blob_id)
            )
        except DriveError as exc:
            raise TransportError(f"could not upload a shared blob: {exc}") from exc
        return str(created["id"])

    def get_blob(self, app: str, locator: str, *, owner: str, size: int, out: BinaryIO) -> int:
        """Download a peer's blob, only once its metadata shows it is ``owner``'s, in its blobs folder,
        ``size`` bytes."""
        owner = canonical_email(owner)
        try:
            vet_peer_blob(
                self.api,
                locator,
                owner=owner,
                app=app,
                size=size,
                trusted_folders=self._peer_blob_folders,
                owner_permission_id=self._peer_pids.get(owner),
            )
            return self.api.download_to(locator, out, max_bytes=size)
        except (DriveNotFound, DrivePermissionDenied, DriveTooLarge) as exc:
            raise BlobRefused(f"shared blob {locator}: {exc}") from None
        except DriveError as exc:
            raise TransportError(f"could not download shared blob {locator}: {exc}") from exc

    def list_my_blobs(self, app: str) -> list[str]:
        """Blobs of ``app`` I own (left by a crashed run, for instance)."""
        found = [str(f["id"]) for f in self.api.list_files(layout.my_blobs_query(app, self.email), fields="id")]
        return [h for h in found if h not in self._gone]

    def poll(self, app: str) -> Listing:
        """What peers sent me and what I sent. With files promised to me outstanding, a poll fetches
        them by id (one batch call), and every :data:`LIST_EVERY`-th poll lists instead; without, it lists."""
        try:
            with deadline(POLL_RETRY_SECONDS):
                if self._needs_discovery(app):
                    self._discover(app)
                places = self._places(app)
                wanted = self._promises.outstanding(app)
                if wanted and self._gets_in_a_row.get(app, 0) < LIST_EVERY - 1:
                    self._gets_in_a_row[app] = self._gets_in_a_row.get(app, 0) + 1
                    return self._poll_promised(app, places, wanted)
                self._gets_in_a_row[app] = 0
                files = self._list_parents(places.folders())
        except DriveError as exc:
            raise TransportError(f"could not list messages: {exc}") from exc
        inbound, outbound, bundles = self._sort(app, files, places)
        with self._lock:
            known_mine = self._mine.setdefault(app, {})
            known_mine.update(outbound)
            outbound = {h: p for h, p in known_mine.items() if h not in self._gone}
            seen = {**self._inbound.get(app, {}), **self._bundles_seen.get(app, {})}
            vanished = [p for h, p in seen.items() if h not in inbound and h not in bundles and h not in self._gone]
        defer = bool(self._promises.outstanding(app))  # then the next poll's batch get asks: no call now
        with deadline(POLL_RETRY_SECONDS):
            for posting in vanished:  # gone, or only lagging? A get by id is consistent.
                if posting.routing is None or posting.routing.kind not in _CONFIRM_KINDS:
                    continue
                if not defer and self._confirmed_gone(posting.handle):
                    continue
                (bundles if posting.routing.kind == layout.KIND_BUNDLE else inbound)[posting.handle] = posting
        with self._lock:
            self._inbound[app], self._bundles_seen[app] = inbound, bundles
        if self._newer_run_listed(app, [*inbound.values(), *bundles.values()]):
            try:  # the announcement we hold lags behind the peer's messages: read it again now
                self._discover(app)
            except DriveError as exc:
                logger.info("could not refresh peers' run announcements (%s); next poll", exc)
        return Listing(
            tuple(inbound.values()), tuple(outbound.values()), self._announcements(app), tuple(bundles.values())
        )

    def _places(self, app: str) -> _Places:
        peer_of = {fid: info["peer"] for fid, info in self._peer_folders.get(app, {}).items()}
        return _Places(peer_of, self._peer_bundle_folders(app, set(peer_of)), set(self._my_folders.get(app, ())))

    def _poll_promised(self, app: str, places: _Places, wanted: dict[str, Stream]) -> Listing:
        """The files peers promised me, fetched by id in one batch (a 404 means "not written yet"), and in
        the same batch the requests, stops and bundles I hold (a 404: withdrawn; by id, not by a lagging
        listing). Everything else as the last listing left it."""
        with self._lock:
            held = [
                h
                for h, p in (*self._inbound.get(app, {}).items(), *self._bundles_seen.get(app, {}).items())
                if p.routing is not None and p.routing.kind in _CONFIRM_KINDS and h not in self._gone
            ]
        answers = self.api.get_many([*wanted, *held], fields=PROMISED_FIELDS)
        found = []
        for file_id, stream in wanted.items():
            answer = answers.get(file_id)
            if not isinstance(answer, dict) or answer.get("trashed"):
                continue  # not written yet (or Drive could not say now): ask again next poll
            if self._keeps_promise(answer, stream, places):
                found.append(answer)
            else:
                self._promises.refuse(file_id)
        inbound, _outbound, bundles = self._sort(app, found, places)
        with self._lock:
            for handle in held:
                answer = answers.get(handle)
                if isinstance(answer, DriveNotFound) or (isinstance(answer, dict) and answer.get("trashed")):
                    self._gone.add(handle)  # (another error: cannot tell now; kept, asked again next poll)
            seen_inbound = self._inbound.setdefault(app, {})
            seen_bundles = self._bundles_seen.setdefault(app, {})
            seen_inbound.update(inbound)
            seen_bundles.update(bundles)
            inbound = {h: p for h, p in seen_inbound.items() if h not in self._gone}
            bundles = {h: p for h, p in seen_bundles.items() if h not in self._gone and h not in self._ignored}
            outbound = {h: p for h, p in self._mine.setdefault(app, {}).items() if h not in self._gone}
        self.last_poll_lists = 0
        return Listing(
            tuple(inbound.values()), tuple(outbound.values()), self._announcements(app), tuple(bundles.values())
        )

    def _keeps_promise(self, f: dict[str, Any], stream: Stream, places: _Places) -> bool:
        """Is the file at a promised id the promising peer's, where that peer's files of the stream lie?
        The checks a listed file passes; a forged or stale promise never lets anyone else's file in."""
        _app, kind, peer = stream
        parent = str((f.get("parents") or [""])[0])
        owner = self._owner_identity(f.get("owners"), peer)
        if kind == "direct":
            placed = places.peer_of.get(parent) == peer
        else:
            placed = (
                peer in places.bundles_of.get(parent, ())
                and (f.get("properties") or {}).get(layout.P_KIND) == layout.KIND_BUNDLE
            )
        if owner == peer and placed and f.get("mimeType") != layout.FOLDER_MIME:
            return True
        logger.warning(
            "ignored file %s: %s promised it as its next %s file, but Drive says %s owns it, in folder %s; "
            "that peer's files are found by listing until its next one lists",
            f.get("id"),
            peer,
            "bundle" if kind == "bundle" else "message",
            owner or "someone else",
            parent or "(none)",
        )
        return False

    def _sort(
        self, app: str, files: list[dict[str, Any]], places: _Places
    ) -> tuple[dict[str, Posting], dict[str, Posting], dict[str, Posting]]:
        """Files of a poll -> (inbound, outbound, bundles) by where they lie and who Drive says owns them.
        Peers' files that pass those checks also tell the promise book what they promised."""
        inbound: dict[str, Posting] = {}
        outbound: dict[str, Posting] = {}
        bundles: dict[str, Posting] = {}
        for f in files:
            handle = str(f["id"])
            if f.get("mimeType") == layout.FOLDER_MIME or handle in self._gone:
                continue
            parent = str((f.get("parents") or [""])[0])
            props = f.get("properties") or {}
            if parent in places.mine:
                if f.get("ownedByMe") is False:
                    continue  # nobody else can write into my read-only shares; ignore if Drive says otherwise
                outbound[handle] = self._posting(f, self.email, app)
            elif parent in places.peer_of:
                peer = places.peer_of[parent]
                posting = inbound[handle] = self._posting(f, self._owner_identity(f.get("owners"), peer), app)
                if posting.owner == peer and posting.routing is not None:
                    self._promises.seen(
                        (app, "direct", peer), handle, posting.routing.created_at, layout.promised_id(props)
                    )
            elif parent in places.bundles_of and props.get(layout.P_KIND) == layout.KIND_BUNDLE:
                owner = next(
                    (p for p in places.bundles_of[parent] if self._owner_identity(f.get("owners"), p) == p), None
                )
                routing = layout.bundle_routing(props, app, self.email)
                if owner is not None and routing is not None:
                    self._promises.seen((app, "bundle", owner), handle, routing.created_at, layout.promised_id(props))
                if handle in self._ignored:
                    continue
                bundles[handle] = Posting(
                    handle=handle,
                    owner=owner or self._owner_identity(f.get("owners"), ""),
                    routing=routing,
                    size=int(f.get("size") or 0),
                    name=str(f.get("name") or ""),
                    inline=layout.inline_body(props),
                )
        return inbound, outbound, bundles

    def read_to(self, posting: Posting, out: BinaryIO, *, max_bytes: int | None = None) -> int:
        if max_bytes is not None and posting.size > max_bytes:
            raise TransportError(
                f"message file {posting.handle} is {posting.size} bytes, over the {max_bytes}-byte limit"
            )
        try:
            return self.api.download_to(posting.handle, out, max_bytes=max_bytes)
        except DriveNotFound as exc:
            self._gone.add(posting.handle)
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
            self._gone.add(posting.handle)
            raise TransportError(f"message file {posting.handle} is gone") from exc
        except DriveError as exc:
            raise TransportError(f"could not download {posting.handle}: {exc}") from exc

    def delete(self, handles: Sequence[str]) -> None:
        if not handles:
            return
        results = self.api.delete_many(list(handles), missing_ok=True)
        done = [h for h, e in results.items() if e is None]
        with self._lock:
            self._gone.update(done)
            for known in self._mine.values():
                for h in done:
                    known.pop(h, None)
        failed = {h: e for h, e in results.items() if e is not None}
        if failed:
            first = next(iter(failed.values()))
            raise TransportError(f"could not delete {len(failed)} of {len(handles)} file(s): {first}")

    def call_counts(self) -> dict[str, int]:
        return self.api.calls.snapshot()

    def min_poll_gap(self) -> float:
        """Room for polls under SYFT_FLWR_QUOTA_UNITS_PER_MIN (0: no pacing configured)."""
        return self._min_poll_gap

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

    # -- discovery and trust ----------------------------------------------------------------

    def _needs_discovery(self, app: str) -> bool:
        """Every DISCOVER_EVERY seconds, and at every poll while a peer has no known outbox yet, or
        (when I publish keys) none of its outboxes carries its keys yet: a peer creates its folder
        before it stamps its keys on it, and a listing in between must not hide them for 10 s.
        One more list call per poll then: a peer that never starts costs that much. Every
        REDISCOVER_EVERY seconds while I wait for a run (I announce none) and no peer announces
        one: a server makes its folder before it announces its run (and, unencrypted, has no keys to wait for)."""
        keyed = app in self._publishing_keys  # then peers publish keys too, maybe after I saw their folder
        ready = {
            info["peer"]
            for info in self._peer_folders.get(app, {}).values()
            if not keyed or layout.announced_keys(info.get("props")) is not None
        }
        if any(p not in ready for p in self._peers.get(app, [])):
            return True
        since = time.monotonic() - self._discovered_at.get(app, float("-inf"))
        if app not in self._announcing and not any(
            layout.announced_run(info.get("props")) is not None for info in self._peer_folders.get(app, {}).values()
        ):  # a client whose server made its folder but has not announced a run yet (it will, in a moment)
            return since >= REDISCOVER_EVERY
        return since >= DISCOVER_EVERY

    def _discover(self, app: str) -> None:
        """Peers' outbox folders to me, found as folders shared with me directly; kept by id.

        Folders are never forgotten because one listing missed them (listings lag and are not
        monotonic); a folder whose owner is not a configured peer is never listed at all.
        """
        known = self._peers.get(app, [])
        found = self.api.list_files(layout.peer_outboxes_query(app), fields=layout.DISCOVERY_FIELDS)
        folders = self._peer_folders.setdefault(app, {})
        now = time.monotonic()
        for f in found:
            props = f.get("properties") or {}
            if not layout.outbox_recipient_matches(props, self.email):
                continue
            owner = (f.get("owners") or [{}])[0]
            peer = self._peer_of(owner, known)
            if peer is None and not known and owner.get("emailAddress"):
                peer = canonical_email(str(owner["emailAddress"]))  # not prepared: the mailbox judges the owner
            if peer is None:
                continue  # a stranger's folder: never listed
            entry = folders.setdefault(str(f["id"]), {"peer": peer, "created": f.get("createdTime")})
            entry["props"] = dict(props)
            entry["seen"] = now
        self._discovered_at[app] = now

    def _newer_run_listed(self, app: str, inbound: Any) -> bool:
        """A peer's message names a newer run than the peer announces: time to rediscover?

        Asked at most every :data:`REDISCOVER_EVERY` seconds, and for a given (peer, run) only
        during :data:`REDISCOVER_FOR` seconds (a planted file of a bogus run must not keep us busy).
        """
        now = time.monotonic()
        if now - self._discovered_at.get(app, 0.0) < REDISCOVER_EVERY:
            return False
        runs: dict[str, int] = {}
        for a in self._announcements(app):
            if a.run_id is not None:
                runs[a.owner] = max(a.run_id, runs.get(a.owner, a.run_id))
        for p in inbound:
            if p.routing is None or p.owner not in runs or p.routing.run_id <= runs[p.owner]:
                continue
            first = self._newer_seen.setdefault((p.owner, p.routing.run_id), now)
            if now - first <= REDISCOVER_FOR:
                return True
        return False

    def _announcements(self, app: str) -> tuple[Announcement, ...]:
        """One announcement per peer outbox folder (the mailbox keeps the newest run per peer)."""
        out = []
        for _fid, info in sorted(
            self._peer_folders.get(app, {}).items(), key=lambda kv: (str(kv[1].get("created") or "~"), kv[0])
        ):
            props = info.get("props") or {}
            run, keys = layout.announced_run(props), layout.announced_keys(props)
            if run is not None or keys is not None:
                out.append(Announcement(info["peer"], run, keys))
        return tuple(out)

    def ignore_bundle(self, handle: str) -> None:
        with self._lock:
            self._ignored.add(handle)
            for seen in (*self._inbound.values(), *self._bundles_seen.values()):
                seen.pop(handle, None)

    def _peer_bundle_folders(self, app: str, outboxes: set[str]) -> dict[str, list[str]]:
        """Folders peers announce (on their outbox folders to me) as where their bundles live -> those peers.

        Only a peer's own outbox folder (owner vetted at discovery) can name one; a file listed there
        still counts as a peer's only if Drive says that peer owns it."""
        out: dict[str, list[str]] = {}
        for info in self._peer_folders.get(app, {}).values():
            folder = layout.announced_bundles(info.get("props"))
            if folder and folder not in outboxes and info["peer"] not in out.setdefault(folder, []):
                out[folder].append(info["peer"])
        return out

    def _peer_of(self, owner: dict[str, Any], peers: Sequence[str]) -> str | None:
        """The configured peer Drive says owns something: by permission id, else by email."""
        pid, email = owner.get("permissionId"), owner.get("emailAddress")
        for peer in peers:
            if pid and self._peer_pids.get(peer) == pid:
                return peer
            if email and same_account(email, peer):
                if pid:
                    self._peer_pids.setdefault(peer, str(pid))
                return peer
        return None

    def _owner_identity(self, owners: Any, peer: str) -> str:
        """``peer`` if Drive says ``peer`` owns the file; otherwise what Drive says (for the log)."""
        owner = (owners or [{}])[0] if isinstance(owners, list) else {}
        if self._peer_of(owner, [peer]) == peer:
            return peer
        return str(
            owner.get("emailAddress") or (f"permission id {owner['permissionId']}" if owner.get("permissionId") else "")
        )

    def _posting(self, f: dict[str, Any], owner: str, app: str) -> Posting:
        routing = layout.routing_from_properties(f.get("properties"), app)
        return Posting(
            handle=str(f["id"]),
            owner=owner,
            routing=routing,
            size=int(f.get("size") or 0),
            name=str(f.get("name") or ""),
            inline=layout.inline_body(f.get("properties")),
            unreadable=(layout.version_problem(f.get("properties")) or "") if routing is None else "",
        )

    def _confirmed_gone(self, handle: str) -> bool:
        try:
            self.api.get(handle, fields="id")
            return False
        except DriveNotFound:
            self._gone.add(handle)
            return True
        except DriveError:
            return False  # cannot tell now; keep it and ask again next poll

    def _list_parents(self, folder_ids: list[str]) -> list[dict[str, Any]]:
        """Files in ``folder_ids``: one listing per chunk, the chunks side by side (a server with 50
        datasites lists 100 folders in 3 calls: one latency, not three); smaller chunks when Drive
        rejects the query."""
        chunks = [folder_ids[i : i + self._chunk] for i in range(0, len(folder_ids), self._chunk)]
        if len(chunks) > 1:  # each worker keeps the caller's retry deadline (a context variable)
            contexts = [contextvars.copy_context() for _ in chunks]
            results = list(self._listers().map(lambda ctx, chunk: ctx.run(self._list_chunk, chunk), contexts, chunks))
        else:
            results = [self._list_chunk(chunk) for chunk in chunks]
        self.last_poll_lists = sum(calls for _, calls in results)
        return [f for files, _ in results for f in files]

    def _list_chunk(self, chunk: list[str]) -> tuple[list[dict[str, Any]], int]:
        """One chunk's files and the listings they took (more than one if Drive said the query is too complex)."""
        out: list[dict[str, Any]] = []
        calls = 0
        todo = [chunk]
        while todo:
            part = todo.pop(0)
            try:
                calls += 1
                out.extend(self.api.list_files(layout.parents_query(part), fields=layout.LISTING_FIELDS))
            except DriveError as exc:
                if exc.status != 400 or len(part) == 1:
                    raise
                size = self._chunk = max(1, min(self._chunk, len(part) // 2))
                logger.warning(
                    "Drive rejected a listing over %d folders (%s); using %d folder(s) per listing from now on",
                    len(part),
                    exc,
                    size,
                )
                todo[:0] = [part[i : i + size] for i in range(0, len(part), size)]
        return out, calls

    def _listers(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._list_pool is None:
                self._list_pool = ThreadPoolExecutor(max_workers=LIST_WORKERS, thread_name_prefix="drive-list")
            return self._list_pool

    # -- internals --------------------------------------------------------------------------

    def _outbox_peer(self, props: dict[str, Any], peers: Sequence[str]) -> str | None:
        """Which of ``peers`` one of my outbox folders is for."""
        to_email = props.get(layout.P_TO_EMAIL)
        for peer in peers:
            if to_email and canonical_email(str(to_email)) == peer:
                return peer
            if not to_email and props.get(layout.P_TO) == str(layout.node_id_for(peer)):
                return peer
        return None

    def _ensure_shared(self, folder: dict[str, Any], peer: str) -> None:
        """Share ``folder`` read-only with ``peer`` unless done; learn the peer's permission id either way."""
        for perm in folder.get("permissions") or []:
            if same_account(perm.get("emailAddress") or "", peer) and perm.get("role") in (
                "reader",
                "writer",
                "commenter",
            ):
                if perm.get("id"):
                    self._peer_pids[peer] = str(perm["id"])
                return
        created = self._share(str(folder["id"]), peer)
        if created.get("id"):
            self._peer_pids[peer] = str(created["id"])

    def _retire_extra(self, app: str, folder: dict[str, Any]) -> None:
        """A duplicate outbox: delete it once empty (its messages are still listed and cleaned meanwhile)."""
        try:
            if self.api.list_files(layout.parents_query([str(folder["id"])]), fields="id", page_size=1):
                return
            self.api.delete(str(folder["id"]), missing_ok=True)
        except DriveError as exc:
            logger.info("could not remove duplicate outbox %s yet (%s)", folder.get("id"), exc)
            return
        self._my_folders.get(app, set()).discard(str(folder["id"]))
        logger.info("removed duplicate outbox folder %s (the oldest one is kept)", folder.get("id"))

    def _get_mine(self, file_id: str, fields: str) -> dict[str, Any] | None:
        """A folder I recorded, fetched by id (consistent, unlike search); None if gone or trashed."""
        try:
            found = self.api.get(file_id, fields=fields + ",trashed")
        except DriveNotFound:
            return None
        return None if found.get("trashed") else found

    def _create_folder(self, key: str, name: str, parent: str | None, props: dict[str, str]) -> dict[str, Any]:
        """Create a folder with an id recorded beforehand (so a restart finds it by id, not by search)."""
        file_id = self._book.get(key)
        if file_id is None or self._get_mine(file_id, "id") is not None:
            file_id = self._next_id()
            self._book.put(key, file_id)
        try:
            return self.api.create_folder(
                name, parent_id=parent, properties=props, file_id=file_id, fields=layout.FOLDER_FIELDS
            )
        except DriveError as exc:
            if exc.status != 400:
                raise
            file_id = self._next_id()  # Drive no longer accepts the recorded id: take a fresh one
            self._book.put(key, file_id)
            return self.api.create_folder(
                name, parent_id=parent, properties=props, file_id=file_id, fields=layout.FOLDER_FIELDS
            )

    def _promise(self, stream: tuple[str, str], props: dict[str, str]) -> tuple[str, dict[str, str]]:
        """The id of a stream's next file (the one promised last time, if any) and its properties with the
        promise of the file after it (``sfg_nx``): the reader fetches that by id before it lists."""
        with self._lock:
            file_id = self._promised.pop(stream, None) or self._take_id()
            self._promised[stream] = promised = self._take_id()
        return file_id, {**props, layout.P_NEXT: promised}

    def _create_promised(
        self, name: str, reader: SeekableReader, folder: str, props: dict[str, str], file_id: str
    ) -> dict[str, Any]:
        """Create at the promised id; if Drive refuses that id (400: no longer valid; 409: someone else's
        file has it), at a fresh one: the promise is not kept, and readers find the file by listing."""
        try:
            return self._upload(name, reader, folder, props, file_id=file_id)
        except DriveError as exc:
            if exc.status not in (400, 409):
                raise
            logger.info("Drive refused the promised id %s (%s); creating %s at a fresh id", file_id, exc, name)
            return self._upload(name, reader, folder, props)

    def _upload(
        self, name: str, reader: SeekableReader, folder: str, props: dict[str, str], *, file_id: str | None = None
    ) -> dict[str, Any]:
        """One create: a multipart request for small bodies, a chunked resumable upload for big ones."""
        file_id, mime = file_id or self._next_id(), layout.MESSAGE_MIME
        reader.seek(0)
        if reader.size <= self.api.chunk_size:
            data = reader.read(reader.size) or b""
            return self.api.upload_bytes(
                name, data, parent_id=folder, properties=props, file_id=file_id, mime_type=mime, fields="id"
            )
        return self.api.upload_stream(
            name,
            as_binary(reader),
            reader.size,
            parent_id=folder,
            properties=props,
            file_id=file_id,
            mime_type=mime,
            fields="id",
        )

    def _blobs_folder(self, app: str) -> str:
        if app not in self._blob_folders:
            key = f"blobs:{layout.app_hash(app)}"
            recorded = self._book.get(key)
            folder = self._get_mine(recorded, layout.FOLDER_FIELDS) if recorded else None
            if folder is None:
                found = self.api.list_files(
                    layout.blobs_folder_query(app, self.email), fields=layout.FOLDER_FIELDS, order_by="createdTime"
                )
                folder = (
                    found[0]
                    if found
                    else self._create_folder(
                        key, f"{app.replace('/', '_')} shared", self._root(), layout.blobs_folder_properties(app)
                    )
                )
            self._book.put(key, str(folder["id"]))
            shared = [p.get("emailAddress") or "" for p in folder.get("permissions") or []]
            for peer in self._peers.get(app, []):
                if not any(same_account(s, peer) for s in shared):
                    self._share(folder["id"], peer)
            self._blob_folders[app] = str(folder["id"])
        return self._blob_folders[app]

    def _next_id(self) -> str:
        with self._lock:
            return self._take_id()

    def _take_id(self) -> str:
        """A fresh pre-generated id (``self._lock`` held)."""
        if not self._ids:
            self._ids = self.api.generate_ids(ID_BATCH)
        return self._ids.pop()

    def _root(self) -> str:
        if self._root_id is None:
            recorded = self._book.get("root")
            if recorded and self._get_mine(recorded, "id") is not None:
                self._root_id = recorded
                return recorded
            found = self.api.list_files(layout.root_query(self.email), fields="id", order_by="createdTime")
            if found:
                self._root_id = str(found[0]["id"])
            else:
                self._root_id = str(
                    self._create_folder("root", layout.ROOT_FOLDER_NAME, None, {layout.P_ROLE: "root"})["id"]
                )
            self._book.put("root", self._root_id)
        return self._root_id

    def _share(self, folder_id: str, peer: str) -> dict[str, Any]:
        try:
            return self.api.share(folder_id, peer, role="reader")
        except DrivePermissionDenied as exc:
            raise TransportError(f"could not share my outbox with {peer}: {exc}") from exc
        except DriveError as exc:
            raise TransportError(
                f"could not share my outbox with {peer} ({exc}). Check that {peer} is a Google account email."
            ) from exc
