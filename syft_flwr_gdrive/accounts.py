"""One spelling per Google account address.

Gmail ignores dots in the local part and treats ``googlemail.com`` as ``gmail.com``,
so ``J.Doe@googlemail.com`` and ``jdoe@gmail.com`` are one account, and Drive reports
only one of the forms (the one the account was registered with). Everything the
package compares or derives from an address (peers, node ids, trust) goes through
:func:`canonical_email`; addresses that Drive reports are compared the same way.
"""

from __future__ import annotations

GMAIL_DOMAINS = ("gmail.com", "googlemail.com")


def canonical_email(email: str) -> str:
    """Lower-cased; for gmail, without dots in the local part and with the gmail.com domain."""
    email = (email or "").strip().lower()
    local, at, domain = email.rpartition("@")
    if not at or domain not in GMAIL_DOMAINS:
        return email
    return local.replace(".", "") + "@gmail.com"


def same_account(a: str, b: str) -> bool:
    return bool(a) and bool(b) and canonical_email(a) == canonical_email(b)
