"""A bare mailbox over a transport: what blob placers and caches take in unit tests."""

from __future__ import annotations

from syft_flwr_gdrive.mailbox.ledger import Ledger
from syft_flwr_gdrive.mailbox.mailbox import Mailbox
from syft_flwr_gdrive.transport.contract import Transport


def store(transport: Transport, app: str = "flwr/t") -> Mailbox:
    """A mailbox of ``app`` with no peers and an in-memory ledger (blobs need no peers)."""
    return Mailbox(transport, app, [], Ledger(None))
