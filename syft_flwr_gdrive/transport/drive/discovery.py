"""Finding peers' folders: their outboxes to me, their blobs folders, what they announce on them (run,
keys, bundles folder, the ids of their next files), and when to look again.

Why apart: discovery is the one place a stranger could slip in (a folder shared with me by
anyone). A folder counts only if Drive says a configured peer owns it, and it is then kept by
id; what a poll looks in (:class:`Places`) is built only from what passed here.

Only documented behaviour: a listing of the folders shared with me (``sharedWithMe`` and a
``mimeType``, each documented; their properties judged here, never searched, as Drive does not
document property search over other people's files), and ``files.get`` of a folder I know by id,
which is consistent where listings lag. So a peer's run, keys and next ids are read by id at
every poll (a client) or every few seconds (a server, once its run is out): no listing decides
what a participant knows about its peers once it has found their folders.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from syft_flwr_gdrive.base.accounts import canonical_email
from syft_flwr_gdrive.transport.contract import Announcement
from syft_flwr_gdrive.transport.contract import Posting
from syft_flwr_gdrive.transport.drive import layout
from syft_flwr_gdrive.transport.drive.api import DriveApi
from syft_flwr_gdrive.transport.drive.errors import DriveError
from syft_flwr_gdrive.transport.drive.errors import DriveNotFound
from syft_flwr_gdrive.transport.drive.owners import PeerOwners

DISCOVER_EVERY = 10.0  # seconds between listings of the folders shared with me once every peer has an outbox
REDISCOVER_EVERY = 1.0  # a peer's message names a newer run than it announces: its folders are read again...
REDISCOVER_FOR = 60.0  # ...at most this often, for this long per (peer, run)
FOLDER_READ_EVERY = 5.0  # an announcing participant (a server) reads its peers' folders by id this often...
FAST_READS_FOR = 30.0  # ...after reading them at every poll for this long after it announced a run
CLIENT_READ_EVERY = 1.0  # a participant that announces nothing (a client) reads its server's folders this often


@dataclass(frozen=True)
class Places:
    """Where a poll looks, by folder id: peers' outboxes to me, peers' bundle folders, my outboxes."""

    peer_of: dict[str, str]  # a peer's outbox folder to me -> that peer
    bundles_of: dict[str, list[str]]  # a folder peers announced for their bundles -> those peers
    mine: set[str]

    def folders(self) -> list[str]:
        """Every folder to list, each once, in the same order at every poll."""
        return (
            sorted(self.peer_of)
            + sorted(set(self.bundles_of) - set(self.peer_of))
            + sorted(self.mine - set(self.peer_of) - set(self.bundles_of))
        )


@dataclass(frozen=True)
class PeerHeads:
    """A peer's stamp of the ids its next files will have (from one of its outbox folders to me)."""

    peer: str
    heads: layout.Heads


class Discovery:
    """Peers' folders shared with me, found by listing once, then read by id, and what they announce."""

    def __init__(self, api: DriveApi, email: str, owners: PeerOwners) -> None:
        self.api = api
        self.email = email
        self._owners = owners
        self.peer_folders: dict[str, dict[str, dict[str, Any]]] = {}  # app -> folder id -> {peer, props, seen}
        self.blob_folders: dict[str, dict[str, set[str]]] = {}  # app -> peer -> its blobs folders shared with me
        self.discovered_at: dict[str, float] = {}
        self.publishing_keys: set[str] = set()  # apps I publish keys for (encryption on: peers do too)
        self.announcing: set[str] = set()  # apps I announce runs of (a server): I wait for no peer's run
        self.announced_at: dict[str, float] = {}  # app -> when I last announced a run of it
        self._read_now: set[str] = set()  # apps whose peer folders are read at the next poll whatever the cadence
        self._newer_seen: dict[tuple[str, int], float] = {}  # (peer, run) -> first seen newer than announced
        self._early_read_at: dict[str, float] = {}  # app -> when a newer run last had its folders read early

    # -- the listing ----------------------------------------------------------------------

    def due(self, app: str, peers: Sequence[str]) -> bool:
        """List the folders shared with me at the first poll, at every poll while a peer has no known outbox
        folder yet (one more call per poll: a peer that never starts costs that much), and every
        :data:`DISCOVER_EVERY` seconds (a duplicate outbox, a peer's new blobs folder)."""
        known = {info["peer"] for info in self.peer_folders.get(app, {}).values()}
        if any(p not in known for p in peers):
            return True
        return time.monotonic() - self.discovered_at.get(app, float("-inf")) >= DISCOVER_EVERY

    def discover(self, app: str, peers: Sequence[str]) -> list[PeerHeads]:
        """List the folders shared with me now and keep the peers' ones (:meth:`absorb_listing`)."""
        return self.absorb_listing(
            app, peers, self.api.list_files(layout.shared_folders_query(), fields=layout.DISCOVERY_FIELDS)
        )

    def absorb_listing(self, app: str, peers: Sequence[str], found: Iterable[dict[str, Any]]) -> list[PeerHeads]:
        """Peers' outbox folders to me and their blobs folders, among the folders shared with me; kept by id.
        Returns the heads the outbox folders stamp (as the listing shows them: maybe older than a read by id).

        Folders are never forgotten because one listing missed them (listings lag and are not
        monotonic); a folder whose owner is not one of ``peers`` is never looked in at all.
        """
        folders = self.peer_folders.setdefault(app, {})
        blobs = self.blob_folders.setdefault(app, {})
        now = time.monotonic()
        heads: list[PeerHeads] = []
        for f in found:
            props = f.get("properties") or {}
            outbox = layout.is_outbox_of(props, app) and layout.outbox_recipient_matches(props, self.email)
            if not outbox and not layout.is_blobs_folder_of(props, app):
                continue
            owner = (f.get("owners") or [{}])[0]
            peer = self._owners.peer_of(owner, peers)
            if peer is None and not peers and owner.get("emailAddress"):
                peer = canonical_email(str(owner["emailAddress"]))  # not prepared: the mailbox judges the owner
            if peer is None:
                continue  # a stranger's folder: never looked in
            if not outbox:
                blobs.setdefault(peer, set()).add(str(f["id"]))
                continue
            entry = folders.setdefault(str(f["id"]), {"peer": peer, "created": f.get("createdTime"), "read": 0.0})
            entry["props"] = dict(props)
            entry["seen"] = now
            stamped = layout.stamped_heads(props)
            if stamped is not None:
                heads.append(PeerHeads(peer, stamped))
        self.discovered_at[app] = now
        return heads

    # -- reading known folders by id --------------------------------------------------------

    def folders_to_read(self, app: str) -> list[str]:
        """Peers' outbox folders to read by id at this poll: a client's every :data:`CLIENT_READ_EVERY` seconds
        (one or two folders: a new run is seen within a second); a server's at every poll during
        :data:`FAST_READS_FOR` seconds after it announced a run (its peers stamp their next ids when they see
        the run), then every :data:`FOLDER_READ_EVERY`; any peer's at once when its message names a newer run."""
        folders = self.peer_folders.get(app, {})
        now = time.monotonic()
        if app in self._read_now:
            return sorted(folders)
        if app not in self.announcing:
            every = CLIENT_READ_EVERY
        elif now - self.announced_at.get(app, float("-inf")) < FAST_READS_FOR:
            return sorted(folders)
        else:
            every = FOLDER_READ_EVERY
        return sorted(fid for fid, info in folders.items() if now - info.get("read", 0.0) >= every)

    def absorb_reads(self, app: str, answers: dict[str, dict[str, Any] | DriveError]) -> list[PeerHeads]:
        """Peer folders read by id: their properties replace what the listing showed (a folder Drive says is
        gone is forgotten); returns the heads they stamp, for the poll to fetch."""
        folders = self.peer_folders.get(app, {})
        now = time.monotonic()
        heads: list[PeerHeads] = []
        for fid, answer in answers.items():
            info = folders.get(fid)
            if info is None:
                continue
            if isinstance(answer, DriveNotFound) or (isinstance(answer, dict) and answer.get("trashed")):
                del folders[fid]  # deleted (a retired duplicate) or unshared: Drive's get is authoritative
                continue
            if not isinstance(answer, dict):
                continue  # Drive could not say now: as the last read left it
            info["props"] = dict(answer.get("properties") or {})
            info["read"] = info["seen"] = now
            stamped = layout.stamped_heads(info["props"])
            if stamped is not None:
                heads.append(PeerHeads(info["peer"], stamped))
        self._read_now.discard(app)
        return heads

    def newer_run_listed(self, app: str, inbound: Iterable[Posting]) -> bool:
        """A peer's message names a newer run than the peer announces: read its folders again at the next poll?

        At most every :data:`REDISCOVER_EVERY` seconds, and for a given (peer, run) only during
        :data:`REDISCOVER_FOR` seconds (a planted file of a bogus run must not keep us busy).
        """
        now = time.monotonic()
        if now - self._early_read_at.get(app, float("-inf")) < REDISCOVER_EVERY:
            return False
        runs: dict[str, int] = {}
        for a in self.announcements(app):
            if a.run_id is not None:
                runs[a.owner] = max(a.run_id, runs.get(a.owner, a.run_id))
        for p in inbound:
            if p.routing is None or p.owner not in runs or p.routing.run_id <= runs[p.owner]:
                continue
            first = self._newer_seen.setdefault((p.owner, p.routing.run_id), now)
            if now - first <= REDISCOVER_FOR:
                self._read_now.add(app)
                self._early_read_at[app] = now
                return True
        return False

    # -- what peers announce -------------------------------------------------------------------

    def announcements(self, app: str) -> tuple[Announcement, ...]:
        """One announcement per peer outbox folder (the mailbox keeps the newest run per peer)."""
        out = []
        for _fid, info in sorted(
            self.peer_folders.get(app, {}).items(), key=lambda kv: (str(kv[1].get("created") or "~"), kv[0])
        ):
            props = info.get("props") or {}
            run, keys = layout.announced_run(props), layout.announced_keys(props)
            if run is not None or keys is not None:
                out.append(Announcement(info["peer"], run, keys))
        return tuple(out)

    def newest_runs(self, app: str) -> dict[str, int]:
        """Each peer's newest announced run of ``app``."""
        runs: dict[str, int] = {}
        for a in self.announcements(app):
            if a.run_id is not None:
                runs[a.owner] = max(a.run_id, runs.get(a.owner, a.run_id))
        return runs

    def places(self, app: str, mine: set[str]) -> Places:
        """Where a poll of ``app`` looks: the peers' folders found so far and ``mine`` (my outboxes)."""
        peer_of = {fid: info["peer"] for fid, info in self.peer_folders.get(app, {}).items()}
        return Places(peer_of, self._peer_bundle_folders(app, set(peer_of)), set(mine))

    def peer_blob_folders(self, app: str, peer: str) -> set[str]:
        """The blobs folders of ``app`` that ``peer`` owns and shared with me (found by discovery)."""
        return set(self.blob_folders.get(app, {}).get(peer, set()))

    def _peer_bundle_folders(self, app: str, outboxes: set[str]) -> dict[str, list[str]]:
        """Folders peers announce (on their outbox folders to me) as where their bundles live -> those peers.

        Only a peer's own outbox folder (owner vetted at discovery) can name one; a file listed there
        still counts as a peer's only if Drive says that peer owns it."""
        out: dict[str, list[str]] = {}
        for info in self.peer_folders.get(app, {}).values():
            folder = layout.announced_bundles(info.get("props"))
            if folder and folder not in outboxes and info["peer"] not in out.setdefault(folder, []):
                out[folder].append(info["peer"])
        return out
