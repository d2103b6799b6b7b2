"""What a poll has seen: files sorted into postings by where they lie and who owns them, files
fetched by promised id, and which postings are still there.

Why apart: this is where a listed or fetched file is judged (a peer's only if Drive says that
peer owns it and it lies in that peer's folder) and where Drive's lagging listings are made
safe: my own files count as present until I delete them, and a request, stop or bundle I hold
is asked for by id at every poll, so it counts as gone only when Drive's get says so, never
because a listing (lagging, or partial) left it out.

Files known gone are remembered so that a lagging listing cannot show them again; only the newest
``GONE_REMEMBERED`` are (a run deletes files every round). Forgetting an old one is safe: a listing lags
by seconds, not by a thousand deletions, and if one did show such a file again, a peer's message in it is
refused by the ledger (handled) and the next poll's get by id finds it gone again, and a file of mine is
deleted again (a delete that finds nothing counts as done).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from syft_flwr_gdrive.base.recent import RecentSet
from syft_flwr_gdrive.transport.contract import Posting
from syft_flwr_gdrive.transport.drive import layout
from syft_flwr_gdrive.transport.drive.api import DriveApi
from syft_flwr_gdrive.transport.drive.discovery import PeerHeads
from syft_flwr_gdrive.transport.drive.discovery import Places
from syft_flwr_gdrive.transport.drive.errors import DriveError
from syft_flwr_gdrive.transport.drive.errors import DriveNotFound
from syft_flwr_gdrive.transport.drive.owners import PeerOwners
from syft_flwr_gdrive.transport.drive.promises import PromiseBook
from syft_flwr_gdrive.transport.drive.promises import Stream

logger = logging.getLogger(__name__)

POLL_RETRY_SECONDS = 10.0  # a poll's calls stop retrying after this: the next poll comes soon anyway, and a
#                            waiter must not sit out a 30 s backoff past its own deadline
# What a poll asks Drive for, by id and in listings alike: enough to route and vet a file (and to read a peer's
# folder again: its properties and createdTime), and ``trashed`` (a get answers trashed files; a listing leaves
# them out by its query).
POLL_FIELDS = layout.LISTING_FIELDS + ",createdTime,trashed"
PROMISED_FIELDS = POLL_FIELDS
GONE_REMEMBERED = 1024  # handles known gone (and bundles with no part for me) remembered, the newest
_CONFIRM_KINDS = ("request", "stop", layout.KIND_BUNDLE)  # inbound kinds whose disappearance someone acts on

Sorted = tuple[dict[str, Posting], dict[str, Posting], dict[str, Posting]]  # (inbound, outbound, bundles) by handle


@dataclass(frozen=True)
class Sweep:
    """The listings of one sweep: every file of the folders listed, and whether every listing answered."""

    files: list[dict[str, Any]]
    complete: bool


class Poller:
    """The postings of each app a poll reports, kept between polls, and the promises peers made me.

    A poll is one batch request (:meth:`.api.DriveApi.read_batch`): the promised ids outstanding
    (:meth:`promised_now`), the requests, stops and bundles I hold (:meth:`held`; a 404 means
    withdrawn), peers' folders due for a read, and, when a sweep is due, one listing per folder.
    :meth:`absorb` sorts what came back."""

    def __init__(self, api: DriveApi, email: str, owners: PeerOwners) -> None:
        self.api = api
        self.email = email
        self._owners = owners
        self._lock = threading.Lock()
        self._promises = PromiseBook()  # what peers promised me (reader side)
        self._mine: dict[str, dict[str, Posting]] = {}  # app -> my message files not deleted yet
        self._inbound: dict[str, dict[str, Posting]] = {}  # app -> inbound postings seen and not known gone
        self._bundles_seen: dict[str, dict[str, Posting]] = {}  # app -> peers' bundles seen and not known gone
        # handles deleted (by me) or confirmed gone by id, the newest GONE_REMEMBERED (module docstring)
        self.gone: RecentSet[str] = RecentSet(GONE_REMEMBERED)
        # peers' bundles with no part for me: not listed, not confirmed gone (the newest GONE_REMEMBERED)
        self._ignored: RecentSet[str] = RecentSet(GONE_REMEMBERED)

    def promised_now(self, app: str) -> dict[str, Stream]:
        """The promised ids of ``app`` this poll fetches (promised id -> stream)."""
        return self._promises.outstanding(app)

    def held(self, app: str) -> list[str]:
        """Requests, stops and bundles of ``app`` I hold: asked for by id at every poll (a 404: withdrawn)."""
        with self._lock:
            return [
                h
                for h, p in (*self._inbound.get(app, {}).items(), *self._bundles_seen.get(app, {}).items())
                if p.routing is not None and p.routing.kind in _CONFIRM_KINDS and h not in self.gone
            ]

    def stamped(self, app: str, found: Iterable[PeerHeads]) -> None:
        """Heads peers stamp on their outbox folders to me: their streams' next files, fetched from the next poll."""
        for stamp in found:
            heads = stamp.heads
            if heads.direct is not None:
                self._promises.stamped((app, "direct", stamp.peer), heads.direct, heads.at)
            if heads.bundle is not None:
                self._promises.stamped((app, "bundle", stamp.peer), heads.bundle, heads.at)

    def absorb(
        self,
        app: str,
        places: Places,
        answers: dict[str, dict[str, Any] | DriveError],
        wanted: dict[str, Stream],
        held: Sequence[str],
        sweep: Sweep | None,
    ) -> Sorted:
        """What one poll found: the files peers promised me (a 404: not written yet), the held postings Drive
        says are gone (a 404), and, with a sweep, every file listed. A complete sweep replaces what the poll
        reports, except my own files (present until I delete them) and held postings a get found; an
        incomplete one only adds to it."""
        found = []
        for file_id, stream in wanted.items():
            answer = answers.get(file_id)
            if not isinstance(answer, dict) or answer.get("trashed"):
                continue  # not written yet (or Drive could not say now): ask again next poll
            if self._keeps_promise(answer, stream, places):
                found.append(answer)
            else:
                self._promises.refuse(file_id)
        fetched_in, _out, fetched_bundles = self._sort(app, found, places)
        listed = self._sort(app, sweep.files, places) if sweep is not None else None
        with self._lock:
            for handle in held:
                answer = answers.get(handle)
                if isinstance(answer, DriveNotFound) or (isinstance(answer, dict) and answer.get("trashed")):
                    self.gone.add(handle)  # (another error: cannot tell now; kept, asked again next poll)
            seen_inbound = self._inbound.setdefault(app, {})
            seen_bundles = self._bundles_seen.setdefault(app, {})
            mine = self._mine.setdefault(app, {})
            if listed is not None:
                listed_in, listed_out, listed_bundles = listed
                mine.update(listed_out)
                if sweep is not None and sweep.complete:  # what vanished from it: only held ones a get kept stay
                    kept = {h for h in held if h not in self.gone}
                    seen_inbound = {h: p for h, p in seen_inbound.items() if h in kept}
                    seen_bundles = {h: p for h, p in seen_bundles.items() if h in kept}
                seen_inbound.update(listed_in)
                seen_bundles.update(listed_bundles)
            seen_inbound.update(fetched_in)
            seen_bundles.update(fetched_bundles)
            # what is gone is forgotten here too, so that forgetting it in ``gone`` later cannot bring it back
            inbound = {h: p for h, p in seen_inbound.items() if h not in self.gone}
            seen_bundles = {h: p for h, p in seen_bundles.items() if h not in self.gone}
            self._inbound[app], self._bundles_seen[app] = inbound, seen_bundles
            bundles = {h: p for h, p in seen_bundles.items() if h not in self._ignored}
            outbound = {h: p for h, p in mine.items() if h not in self.gone}
        return inbound, outbound, bundles

    def sent(self, app: str, posting: Posting) -> None:
        """A file I just created: listings lag, so my own files count as present until I delete them."""
        with self._lock:
            self._mine.setdefault(app, {})[posting.handle] = posting

    def deleted(self, handles: list[str]) -> None:
        """Files I deleted: never reported again."""
        with self._lock:
            self.gone.update(handles)
            for known in self._mine.values():
                for h in handles:
                    known.pop(h, None)

    def ignore(self, handle: str) -> None:
        """A peer's bundle with no part for me: reported no more, and not confirmed gone."""
        with self._lock:
            self._ignored.add(handle)
            for seen in (*self._inbound.values(), *self._bundles_seen.values()):
                seen.pop(handle, None)

    def _keeps_promise(self, f: dict[str, Any], stream: Stream, places: Places) -> bool:
        """Is the file at a promised id the promising peer's, where that peer's files of the stream lie?
        The checks a listed file passes; a forged or stale promise never lets anyone else's file in."""
        _app, kind, peer = stream
        parent = str((f.get("parents") or [""])[0])
        owner = self._owners.owner_identity(f.get("owners"), peer)
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

    def _sort(self, app: str, files: list[dict[str, Any]], places: Places) -> Sorted:
        """Files of a poll -> (inbound, outbound, bundles) by where they lie and who Drive says owns them.
        Peers' files that pass those checks also tell the promise book what they promised."""
        inbound: dict[str, Posting] = {}
        outbound: dict[str, Posting] = {}
        bundles: dict[str, Posting] = {}
        for f in files:
            handle = str(f["id"])
            if f.get("mimeType") == layout.FOLDER_MIME or handle in self.gone:
                continue
            parent = str((f.get("parents") or [""])[0])
            props = f.get("properties") or {}
            if parent in places.mine:
                if f.get("ownedByMe") is False:
                    continue  # nobody else can write into my read-only shares; ignore if Drive says otherwise
                outbound[handle] = self._posting(f, self.email, app)
            elif parent in places.peer_of:
                peer = places.peer_of[parent]
                posting = inbound[handle] = self._posting(f, self._owners.owner_identity(f.get("owners"), peer), app)
                if posting.owner == peer and posting.routing is not None:
                    self._promises.seen(
                        (app, "direct", peer), handle, posting.routing.created_at, layout.promised_id(props)
                    )
            elif parent in places.bundles_of and props.get(layout.P_KIND) == layout.KIND_BUNDLE:
                owner = next(
                    (p for p in places.bundles_of[parent] if self._owners.owner_identity(f.get("owners"), p) == p),
                    None,
                )
                routing = layout.bundle_routing(props, app, self.email)
                if owner is not None and routing is not None:
                    self._promises.seen((app, "bundle", owner), handle, routing.created_at, layout.promised_id(props))
                if handle in self._ignored:
                    continue
                bundles[handle] = Posting(
                    handle=handle,
                    owner=owner or self._owners.owner_identity(f.get("owners"), ""),
                    routing=routing,
                    size=int(f.get("size") or 0),
                    name=str(f.get("name") or ""),
                    inline=layout.inline_body(props),
                )
        return inbound, outbound, bundles

    @staticmethod
    def _posting(f: dict[str, Any], owner: str, app: str) -> Posting:
        """A listed or fetched message file as the mailbox sees it (routing None: not readable, and why)."""
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
