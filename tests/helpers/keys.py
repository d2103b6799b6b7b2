"""Participants' sealers that already trust each other's keys (as after key discovery)."""

from __future__ import annotations

from syft_flwr_gdrive.crypto.keys import Identity
from syft_flwr_gdrive.crypto.pins import PinStore
from syft_flwr_gdrive.crypto.seal import Sealer


def sealers(*emails: str) -> dict[str, Sealer]:
    """One sealer per email with a fresh identity, each having learned all the others' public keys."""
    out = {e: Sealer(Identity.ephemeral(), PinStore(None)) for e in emails}
    for e, s in out.items():
        for other, o in out.items():
            if other != e:
                s.learn(other, o.identity.public)
    return out
