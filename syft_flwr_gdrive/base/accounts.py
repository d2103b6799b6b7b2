"""One spelling per Google account address.

Gmail ignores dots in the local part and treats ``googlemail.com`` as ``gmail.com``,
so ``J.Doe@googlemail.com`` and ``jdoe@gmail.com`` are one account, and Drive reports
only one of the forms (the one the account was registered with). Everything the
package compares or derives from an address (peers, node ids, trust) goes through
:func:`canonical_email`; addresses that Drive reports are compared the same way.
"""

from __future__ import annotations

import hashlib

GMAIL_DOMAINS = ("gmail.com", "googlemail.com")
FIRST_NODE_ID = 2  # Flower's node id 0 is "no node" and 1 its SuperLink (our server): participants' ids start above


def canonical_email(email: str) -> str:
    """Lower-cased; for gmail, without dots in the local part and with the gmail.com domain."""
    email = (email or "").strip().lower()
    local, at, domain = email.rpartition("@")
    if not at or domain not in GMAIL_DOMAINS:
        return email
    return local.replace(".", "") + "@gmail.com"


def same_account(a: str, b: str) -> bool:
    return bool(a) and bool(b) and canonical_email(a) == canonical_email(b)


def node_id_for(email: str) -> int:
    """A stable 63-bit Flower node id for a participant's email.

    Derived, not assigned, so the server and every client agree on it without
    talking; never 0 and never the server's own id. Here, not in the Flower codec,
    because storage layouts name recipients by it too and must not import Flower.
    """
    digest = hashlib.sha256(canonical_email(email).encode("utf-8")).digest()
    node_id = int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)
    return node_id if node_id >= FIRST_NODE_ID else node_id + FIRST_NODE_ID
