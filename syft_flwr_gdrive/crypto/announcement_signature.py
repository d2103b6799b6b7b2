"""A participant's signature on its announcement (current run, public keys).

Where the storage cannot vouch for who wrote an announcement (a shared directory says only which
folder a file is in, and anyone may be able to write there), the announcer signs it with its
Ed25519 key. A reader checks the signature against the key it pinned for that participant, so a
planted announcement cannot override a peer's run or offer other keys once the peer is pinned.
The signature binds the app and the announcer's address too, so it cannot be moved to another
app or another participant's folder. Before the first pin, the key the announcement carries is
all there is to check it with: trust on first use, as for any key.
"""

from __future__ import annotations

import base64
import binascii
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from syft_flwr_gdrive.crypto.keys import Identity
from syft_flwr_gdrive.crypto.keys import PublicKeys

LABEL = b"sfg-announce-v1|"


def statement(app: str, owner: str, run_id: int | None, keys: dict[str, str] | None) -> bytes:
    """The bytes signed: every field of the announcement, and whose announcement of which app it is."""
    fields = {"app": app, "keys": keys, "owner": owner, "run_id": run_id}
    return LABEL + json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("utf-8")


def sign_announcement(identity: Identity, app: str, owner: str, run_id: int | None, keys: dict[str, str] | None) -> str:
    """``identity``'s signature over an announcement, as text to store beside it."""
    return base64.b64encode(identity.sign(statement(app, owner, run_id, keys))).decode("ascii")


def announcement_signed_by(
    keys: PublicKeys, signature: str, app: str, owner: str, run_id: int | None, announced: dict[str, str] | None
) -> bool:
    """True if ``signature`` is ``keys``' signature over this announcement (``announced`` is the keys it carries)."""
    try:
        raw = base64.b64decode(signature, validate=True)
        Ed25519PublicKey.from_public_bytes(keys.sign).verify(raw, statement(app, owner, run_id, announced))
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True
