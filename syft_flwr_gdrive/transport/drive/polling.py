"""What a poll has seen: files sorted into postings by where they lie and who owns them, files
fetched by promised id, and which postings are still there.

Why apart: this is where a listed or fetched file is judged (a peer's only if Drive says that
peer owns it and it lies in that peer's folder) and where Drive's lagging listings are made
safe: my own files count as present until I delete them, and a request, stop or bundle that
vanishes from a listing is confirmed gone by id before anyone acts on it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from syft_flwr_gdrive.transport.contract import Posting
from syft_flwr_gdrive.transport.drive import layout
from syft_flwr_gdrive.transport.drive.api import DriveApi
from syft_flwr_gdrive.transport.drive.discovery import Places
from syft_flwr_gdrive.transport.drive.errors import DriveError
from syft_flwr_gdrive.transport.drive.errors import DriveNotFound
from syft_flwr_gdrive.transport.drive.owners import PeerOwners
from syft_flwr_gdrive.transport.drive.promises import PromiseBook
from syft_flwr_gdrive.transport.drive.promises import Stream
from syft_flwr_gdrive.transport.drive.retry import deadline

logger = logging.getLogger(__name__)

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

Sorted = tuple[dict[str, Posting], dict[str, Posting], dict[str, Posting]]  # (inbound, outbound, bundles) by handle


class Poller:
    """The postings of each app a poll reports, kept between polls, and the promises peers made me."""

    def __init__(self, api: DriveApi, email: str, owners: PeerOwners) -> None:
        self.api = api
        self.email = email
        self._owners = owners
        self._lock = threading.Lock()
        self._promises = PromiseBook()  # what peers promised me (reader side)
        self._gets_in_a_row: dict[str, int] = {}  # app -> polls since its last listing (see LIST_EVERY)
        self._mine: dict[str, dict[str, Posting]] = {}  # app -> my message files not deleted yet
        self._inbound: dict[str, dict[str, Posting]] = {}  # app -> inbound postings seen and not known gone
        self._bundles_seen: dict[str, dict[str, Posting]] = {}  # app -> peers' bundles seen and not known gone
        self.gone: set[str] = set()  # handles deleted (by me) or confirmed gone by id
        self._ignored: set[str] = set()  # peers' bundles with no part for me: not listed, not confirmed gone

    def promised_now(self, app: str) -> dict[str, Stream]:
        """The promised ids this poll fetches instead of listing (promised id -> stream); empty when it
        lists: nothing is promised, or :data:`LIST_EVERY` polls came since the last listing."""
        wanted = self._promises.outstanding(app)
        if wanted and self._gets_in_a_row.get(app, 0) < LIST_EVERY - 1:
            self._gets_in_a_row[app] = self._gets_in_a_row.get(app, 0) + 1
            return wanted
        self._gets_in_a_row[app] = 0
        return {}

    def listed(self, app: str, files: list[dict[str, Any]], places: Places) -> Sorted:
        """A listing's files, with my own files not deleted yet, and held postings the listing lost
        unless a get by id confirms them gone (deferred to the next poll's batch get when one is due)."""
        inbound, outbound, bundles = self._sort(app, files, places)
        with self._lock:
            known_mine = self._mine.setdefault(app, {})
            known_mine.update(outbound)
            outbound = {h: p for h, p in known_mine.items() if h not in self.gone}
            seen = {**self._inbound.get(app, {}), **self._bundles_seen.get(app, {})}
            vanished = [p for h, p in seen.items() if h not in inbound and h not in bundles and h not in self.gone]
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
        return inbound, outbound, bundles

    def fetch_promised(self, app: str, places: Places, wanted: dict[str, Stream]) -> Sorted:
        """The files peers promised me, fetched by id in one batch (a 404 means "not written yet"), and in
        the same batch the requests, stops and bundles I hold (a 404: withdrawn; by id, not by a lagging
        listing). Everything else as the last listing left it."""
        with self._lock:
            held = [
                h
                for h, p in (*self._inbound.get(app, {}).items(), *self._bundles_seen.get(app, {}).items())
                if p.routing is not None and p.routing.kind in _CONFIRM_KINDS and h not in self.gone
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
                    self.gone.add(handle)  # (another error: cannot tell now; kept, asked again next poll)
            seen_inbound = self._inbound.setdefault(app, {})
            seen_bundles = self._bundles_seen.setdefault(app, {})
            seen_inbound.update(inbound)
            seen_bundles.update(bundles)
            inbound = {h: p for h, p in seen_inbound.items() if h not in self.gone}
            bundles = {h: p for h, p in seen_bundles.items() if h not in self.gone and h not in self._ignored}
            outbound = {h: p for h, p in self._mine.setdefault(app, {}).items() if h not in self.gone}
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

    def _confirmed_gone(self, handle: str) -> bool:
        """Is a file that a listing lost really gone? A get by id is consistent; listings lag."""
        try:
            self.api.get(handle, fields="id")
            return False
        except DriveNotFound:
            self.gone.add(handle)
            return True
        except DriveError:
            return False  # cannot tell now; keep it and ask again next poll
