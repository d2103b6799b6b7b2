"""The rules a posting must pass before it is acted on: each a function that returns why not, or None.

One rule, one function, one wording: the reader of single messages (``messages``) and the reader of
bundles (``bundles``) both call these, so a forged sender reads the same in the log whichever way it
came. What happens to a posting that fails a rule (refused for good, noted for later) is the readers'
call, through ``skips.SkipLog``; the rules only say why.
"""

from __future__ import annotations

import time

from syft_flwr_gdrive.base.accounts import canonical_email
from syft_flwr_gdrive.base.routing import KIND_OFFER
from syft_flwr_gdrive.base.routing import KIND_REQUEST
from syft_flwr_gdrive.base.routing import KIND_STOP
from syft_flwr_gdrive.crypto.multiseal import BundleHead
from syft_flwr_gdrive.crypto.multiseal import Part
from syft_flwr_gdrive.mailbox.envelope import Envelope
from syft_flwr_gdrive.mailbox.envelope import valid_email
from syft_flwr_gdrive.mailbox.envelope import valid_message_id
from syft_flwr_gdrive.transport.contract import Posting
from syft_flwr_gdrive.transport.contract import Routing

# What a bundle may carry: the server's instructions and stop signals, and an offer of the same content to N.
BUNDLED_KINDS = (KIND_REQUEST, KIND_STOP, KIND_OFFER)

NO_ROUTING = "no valid routing metadata; a foreign or damaged file, left untouched"
MALFORMED = (
    "its message id or sender is malformed (ids are 1-64 letters, digits or . _ @ + -); "
    "a foreign or forged file, left untouched"
)
NOT_SEALED = (
    "not encrypted: sent in the clear, but encryption is on here, so refused (fail closed). A peer with "
    "SYFT_FLWR_ENCRYPTION_ENABLED=false must switch it back on"
)
SEALED_BUT_OFF = "encrypted, but encryption is switched off here (unset SYFT_FLWR_ENCRYPTION_ENABLED=false to read it)"
HEAD_DISAGREES = "the bundle's signed head disagrees with its listed routing (moved or altered)"
PART_MALFORMED = "my part of the bundle has a malformed message id"
PRIVATE_MALFORMED = "my part of the bundle carries malformed private metadata"
# Routing fields an envelope header must repeat exactly as listed (created_at and ttl are checked by expiry).
AGREEING_FIELDS = tuple(name for name in Routing.field_names() if name not in ("created_at", "ttl"))


def unrouted(posting: Posting) -> str | None:
    """A posting whose routing metadata is missing or unreadable (the storage may say why)."""
    if posting.routing is not None:
        return None
    return f"unreadable routing metadata: {posting.unreadable}" if posting.unreadable else NO_ROUTING


def malformed(routing: Routing) -> str | None:
    """Ids and sender must be well formed before anything else is looked up by them (the ledger, the peers)."""
    ids = valid_message_id(routing.message_id) and (routing.reply_to == "" or valid_message_id(routing.reply_to))
    return None if ids and valid_email(routing.sender) else MALFORMED


def misaddressed(routing: Routing, app: str, me: str) -> str | None:
    if routing.app == app and canonical_email(routing.recipient) == canonical_email(me):
        return None
    return f"addressed to {routing.recipient!r} of app {routing.app!r}, not to me"


def forged(posting: Posting, routing: Routing) -> str | None:
    """Trust rests on the storage's owner of the file, never on the sender it claims."""
    if canonical_email(posting.owner) == canonical_email(routing.sender):
        return None
    return f"claims to be from {routing.sender!r} but the storage says {posting.owner!r} wrote it (forged sender)"


def stranger(routing: Routing, peers: frozenset[str]) -> str | None:
    if canonical_email(routing.sender) in peers:
        return None
    return f"sender {routing.sender!r} is not a peer of this app (unknown sender)"


def expired(created_at: float, ttl: float) -> str | None:
    return f"expired (ttl {ttl:.0f}s); dropped" if time.time() > created_at + ttl else None


def oversize(size: int, limit: int | None, stated: int | None) -> str | None:
    """A file over ``limit`` bytes is refused from its listed size, unread; ``stated`` is the limit people set."""
    if limit is None or size <= limit:
        return None
    return (
        f"{size} bytes is over the message limit of {stated} bytes "
        "(SYFT_FLWR_MAX_MESSAGE_MB); refused without downloading it"
    )


def too_large(size: int, max_payload: int | None) -> str | None:
    """An opened payload over the limit (its sealed size did not tell): refused before anyone acts on it."""
    if max_payload is None or size <= max_payload:
        return None
    return f"rejected: {size} bytes is over the message limit of {max_payload} bytes"


def sealing(sealed: bool, encrypting: bool) -> str | None:
    """Sealed and plain must match this participant's setting: plaintext is never accepted with encryption on."""
    if sealed == encrypting:
        return None
    return NOT_SEALED if encrypting else SEALED_BUT_OFF


def disagreement(envelope: Envelope, routing: Routing) -> str | None:
    """A body's header must say what its listing says (a body moved under other metadata does not)."""
    bad = [name for name in envelope.routing().disagreement(routing) if name in AGREEING_FIELDS]
    return f"envelope header disagrees with its metadata on {', '.join(bad)}" if bad else None


def head_disagreement(head: BundleHead, routing: Routing) -> str | None:
    """A bundle's signed head must say what its listing says, and carry only what bundles may carry."""
    signed = (head.app, head.run_id, head.bundle_id, canonical_email(head.sender), head.created_at, head.ttl)
    listed = (
        routing.app,
        routing.run_id,
        routing.message_id,
        canonical_email(routing.sender),
        routing.created_at,
        routing.ttl,
    )
    return None if signed == listed and head.kind in BUNDLED_KINDS else HEAD_DISAGREES


def part_malformed(part: Part) -> str | None:
    """My part of a bundle is an instruction: a well-formed id, no reply-to."""
    return None if valid_message_id(part.message_id) and not part.reply_to else PART_MALFORMED
