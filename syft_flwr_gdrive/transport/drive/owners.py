"""Who owns a Drive file or folder, as one of my configured peers.

Why: a file counts as a peer's only if Drive says that peer owns it, and Drive may hide an
owner's email (then only the permission id, learnt when I shared my outbox with the peer,
names them). Discovery, the poll and blob checks all ask the same question; this is the one
place that answers it and remembers the permission ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from syft_flwr_gdrive.base.accounts import same_account


class PeerOwners:
    """Matches Drive's owner records to peers, by permission id or else by email."""

    def __init__(self) -> None:
        self.permission_ids: dict[str, str] = {}  # peer -> Drive permission id (from my shares with them)

    def peer_of(self, owner: dict[str, Any], peers: Sequence[str]) -> str | None:
        """The configured peer Drive says owns something: by permission id, else by email."""
        pid, email = owner.get("permissionId"), owner.get("emailAddress")
        for peer in peers:
            if pid and self.permission_ids.get(peer) == pid:
                return peer
            if email and same_account(email, peer):
                if pid:
                    self.permission_ids.setdefault(peer, str(pid))
                return peer
        return None

    def owner_identity(self, owners: Any, peer: str) -> str:
        """``peer`` if Drive says ``peer`` owns the file; otherwise what Drive says (for the log)."""
        owner = (owners or [{}])[0] if isinstance(owners, list) else {}
        if self.peer_of(owner, [peer]) == peer:
            return peer
        return str(
            owner.get("emailAddress") or (f"permission id {owner['permissionId']}" if owner.get("permissionId") else "")
        )
