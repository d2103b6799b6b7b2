"""Finding peers' folders: their outboxes to me, what they announce on them (run, keys, bundles
folder), and when to look again.

Why apart: discovery is the one place a stranger could slip in (a folder shared with me by
anyone). A folder counts only if Drive says a configured peer owns it, and it is then kept by
id; what a poll lists (:class:`Places`) is built only from what passed here.
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
from syft_flwr_gdrive.transport.drive.owners import PeerOwners

DISCOVER_EVERY = 10.0  # seconds between listings of peers' outbox folders once every peer has one
REDISCOVER_EVERY = 1.0  # sooner when a peer's message names a newer run than it announces...
REDISCOVER_FOR = 60.0  # ...for this long per (peer, run)


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


class Discovery:
    """Peers' outbox folders to me, found as folders shared with me directly, and what they announce."""

    def __init__(self, api: DriveApi, email: str, owners: PeerOwners) -> None:
        self.api = api
        self.email = email
        self._owners = owners
        self.peer_folders: dict[str, dict[str, dict[str, Any]]] = {}  # app -> folder id -> {peer, props, seen}
        self.discovered_at: dict[str, float] = {}
        self.publishing_keys: set[str] = set()  # apps I publish keys for (encryption on: peers do too)
        self.announcing: set[str] = set()  # apps I announce runs of (a server): I wait for no peer's run
        self._newer_seen: dict[tuple[str, int], float] = {}  # (peer, run) -> first seen newer than announced

    def due(self, app: str, peers: Sequence[str]) -> bool:
        """Every DISCOVER_EVERY seconds, and at every poll while a peer has no known outbox yet, or
        (when I publish keys) none of its outboxes carries its keys yet: a peer creates its folder
        before it stamps its keys on it, and a listing in between must not hide them for 10 s.
        One more list call per poll then: a peer that never starts costs that much. Every
        REDISCOVER_EVERY seconds while I wait for a run (I announce none) and no peer announces
        one: a server makes its folder before it announces its run (and, unencrypted, has no keys to wait for)."""
        keyed = app in self.publishing_keys  # then peers publish keys too, maybe after I saw their folder
        ready = {
            info["peer"]
            for info in self.peer_folders.get(app, {}).values()
            if not keyed or layout.announced_keys(info.get("props")) is not None
        }
        if any(p not in ready for p in peers):
            return True
        since = time.monotonic() - self.discovered_at.get(app, float("-inf"))
        if app not in self.announcing and not any(
            layout.announced_run(info.get("props")) is not None for info in self.peer_folders.get(app, {}).values()
        ):  # a client whose server made its folder but has not announced a run yet (it will, in a moment)
            return since >= REDISCOVER_EVERY
        return since >= DISCOVER_EVERY

    def discover(self, app: str, peers: Sequence[str]) -> None:
        """Peers' outbox folders to me, found as folders shared with me directly; kept by id.

        Folders are never forgotten because one listing missed them (listings lag and are not
        monotonic); a folder whose owner is not one of ``peers`` is never listed at all.
        """
        found = self.api.list_files(layout.peer_outboxes_query(app), fields=layout.DISCOVERY_FIELDS)
        folders = self.peer_folders.setdefault(app, {})
        now = time.monotonic()
        for f in found:
            props = f.get("properties") or {}
            if not layout.outbox_recipient_matches(props, self.email):
                continue
            owner = (f.get("owners") or [{}])[0]
            peer = self._owners.peer_of(owner, peers)
            if peer is None and not peers and owner.get("emailAddress"):
                peer = canonical_email(str(owner["emailAddress"]))  # not prepared: the mailbox judges the owner
            if peer is None:
                continue  # a stranger's folder: never listed
            entry = folders.setdefault(str(f["id"]), {"peer": peer, "created": f.get("createdTime")})
            entry["props"] = dict(props)
            entry["seen"] = now
        self.discovered_at[app] = now

    def newer_run_listed(self, app: str, inbound: Iterable[Posting]) -> bool:
        """A peer's message names a newer run than the peer announces: time to rediscover?

        Asked at most every :data:`REDISCOVER_EVERY` seconds, and for a given (peer, run) only
        during :data:`REDISCOVER_FOR` seconds (a planted file of a bogus run must not keep us busy).
        """
        now = time.monotonic()
        if now - self.discovered_at.get(app, 0.0) < REDISCOVER_EVERY:
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
                return True
        return False

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

    def places(self, app: str, mine: set[str]) -> Places:
        """Where a poll of ``app`` looks: the peers' folders found so far and ``mine`` (my outboxes)."""
        peer_of = {fid: info["peer"] for fid, info in self.peer_folders.get(app, {}).items()}
        return Places(peer_of, self._peer_bundle_folders(app, set(peer_of)), set(mine))

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
