"""Peers' announcements on a transport whose storage cannot vouch for their writer (``signed_announcements``).

An announcement says which run a peer runs now and which public keys it uses: a client follows the
run, everyone pins the keys. On a shared directory anyone who can write where a peer's announcement
lies could put one there, so each carries its writer's signature and is acted on only when the key
pinned for that peer made it (see ``crypto/announcement_signature.py``). Before the first pin the
announcement must at least be signed by the keys it carries, and those are pinned: trust on first use.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Iterable

from syft_flwr_gdrive.base.accounts import canonical_email
from syft_flwr_gdrive.base.logsafe import printable
from syft_flwr_gdrive.crypto.announcement_signature import announcement_signed_by
from syft_flwr_gdrive.crypto.announcement_signature import sign_announcement
from syft_flwr_gdrive.crypto.keys import PublicKeys
from syft_flwr_gdrive.crypto.seal import Sealer
from syft_flwr_gdrive.transport.contract import Announcement
from syft_flwr_gdrive.transport.contract import AnnouncementSigner

logger = logging.getLogger(__name__)

UNSIGNED = (
    "it carries no signature: planted, written with encryption switched off, or by a syft-flwr-gdrive release "
    "from before signed announcements. Fix: every participant runs the same release (pip install -U "
    "syft-flwr-gdrive) with encryption on"
)


class SignedAnnouncements:
    """Signs my announcements of one app, and vets my peers' against their pinned keys."""

    def __init__(self, app: str, sealer: Sealer) -> None:
        self.app = app
        self.sealer = sealer
        self._noted: set[tuple[str, str]] = set()  # (peer, reason) already logged
        self._accepted: dict[str, Announcement] = {}  # peer -> its announcement last vetted
        self._lock = threading.Lock()

    def signer(self, me: str) -> AnnouncementSigner:
        """What signs my (``me``'s) announcements of this app."""
        return functools.partial(sign_announcement, self.sealer.identity, self.app, canonical_email(me))

    def vetted(self, announcements: Iterable[Announcement]) -> list[Announcement]:
        """The announcements that may be acted on: each signed by the key pinned for its peer.

        Keys an announcement carries, and is signed with, are offered to the pin store first: pinned on first
        sight, or (a changed key) refused loudly and kept for ``syft-flwr-gdrive trust --accept``, as on every
        transport. One that has neither keys nor a pinned key to check it with is waited for, silently (a
        server announces its run a moment before its keys)."""
        out = []
        for announcement in announcements:
            peer = canonical_email(announcement.owner)
            fields = (self.app, peer, announcement.run_id, announcement.keys)
            carried = PublicKeys.decode(announcement.keys) if announcement.keys else None
            if self._accepted.get(peer) == announcement:  # unchanged since it was vetted: no second check
                out.append(announcement)
                continue
            if carried is not None and announcement_signed_by(carried, announcement.signature, *fields):
                self.sealer.learn(peer, carried)
            pinned = self.sealer.pins.pinned().get(peer)
            if not announcement.signature:
                self._note(peer, UNSIGNED)
            elif pinned is None:
                if carried is not None:
                    self._note(peer, "it is not signed by the keys it carries, and no key of this peer is pinned")
            elif not announcement_signed_by(pinned, announcement.signature, *fields):
                self._note(
                    peer,
                    f"its signature is not made by the key pinned for {peer} (fingerprint {pinned.fingerprint()}): "
                    "forged or replaced, so the run and keys it names are not used",
                )
            else:
                self._accepted[peer] = announcement
                out.append(announcement)
        return out

    def _note(self, peer: str, reason: str) -> None:
        with self._lock:
            if (peer, reason) in self._noted:
                return
            self._noted.add((peer, reason))
        logger.warning("ignoring %s's announcement of its run and keys: %s", printable(peer), reason)
