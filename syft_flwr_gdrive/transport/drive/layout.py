"""How syft-flwr-gdrive files look on Drive: folder and file names, properties, queries.

See docs/protocol.md for the picture. In short: every participant owns one
root folder, and in it one *outbox* folder per (app, peer), shared read-only
with exactly that peer. A message is a file in the sender's outbox to the
recipient; its routing metadata is copied into the file's ``properties`` so
receivers can find and vet it with one ``files.list`` and no download.

``properties``, not ``appProperties``: Drive shows ``appProperties`` only to the
OAuth app that wrote them, and every participant may use an OAuth client of
their own. Drive limits each property to 124 bytes of key plus value, so the app
name is stored as a hash and emails are limited in length.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import replace
from typing import Any

from syft_flwr_gdrive.base.accounts import node_id_for
from syft_flwr_gdrive.base.routing import KINDS
from syft_flwr_gdrive.base.routing import Routing

# How files and folders are arranged and described on Drive (the properties below), versioned apart
# from the message format (transport/envelope.WIRE_VERSION).
LAYOUT_VERSION = 1  # what this build writes
LAYOUT_READS = frozenset({1})  # what it reads
ROOT_FOLDER_NAME = "syft_flwr_gdrive"
FOLDER_MIME = "application/vnd.google-apps.folder"
MESSAGE_MIME = "application/octet-stream"

# property keys
P_ROLE = "sfg_role"  # "root" | "outbox" on folders
P_VERSION = "sfg_v"
P_APP = "sfg_app"
P_RUN = "sfg_run"
P_MSG = "sfg_msg"
P_REPLY_TO = "sfg_re"
P_KIND = "sfg_kind"
P_FROM = "sfg_from"
P_TO = "sfg_to"  # recipient's node id (short, fixed size, queryable)
P_TO_EMAIL = "sfg_to_email"
P_CREATED = "sfg_at"
P_TTL = "sfg_ttl"
P_INLINE = "sfg_b"  # sfg_b00, sfg_b01, ...: a small body, base64, readable from the listing
P_KEY_KX = "sfg_kx"  # on outbox folders: the owner's X25519 public key (base64)
P_KEY_SIGN = "sfg_ks"  # on outbox folders: the owner's Ed25519 public key (base64)
P_BLOB = "sfg_blob"  # a shared blob's random id (never its content's hash: Drive would learn which model it is)
P_BLOB_APP = "sfg_blob_app"  # blobs use their own app key so polls never list them
P_BUNDLES = "sfg_bundles"  # on outbox folders: the id of the owner's shared folder its bundles live in
KIND_BUNDLE = "bundle"  # sfg_kind of a bundle file: one message to many recipients (multiseal)
P_NEXT = "sfg_nx"  # on message and bundle files: the id the sender's next file of the same stream will have
# On outbox folders, stamped with a write the owner makes anyway (a server's run announcement, a client's keys,
# a client's first sight of a new run): the ids the owner's next files will have, so a reader fetches a
# stream's first file by id too (docs/protocol.md "Promised ids").
P_HEAD = P_NEXT  # on an outbox folder: the id of its owner's next message in it
P_BUNDLE_HEAD = "sfg_bnx"  # on an outbox folder: the id of its owner's next bundle (in the folder sfg_bundles names)
P_HEAD_AT = "sfg_hat"  # when those were stamped (epoch seconds, the owner's clock: ordered with files' sfg_at)
P_PART_OF = "sfg_part_of"  # on a blob part stored at a fresh id: the id its message named (Drive refused that one)
# Where each field of Routing lives in a message file's properties (the app as its hash, below).
ROUTING_PROPERTIES = {
    "app": P_APP,
    "run_id": P_RUN,
    "message_id": P_MSG,
    "reply_to": P_REPLY_TO,
    "kind": P_KIND,
    "sender": P_FROM,
    "recipient": P_TO_EMAIL,
    "created_at": P_CREATED,
    "ttl": P_TTL,
}

# What a poll asks Drive for: enough to route and vet without downloading. Drive may leave
# an owner's emailAddress out for readers; permissionId is always there (docs/drive-assumptions.md).
LISTING_FIELDS = "id,name,mimeType,size,properties,parents,ownedByMe,owners(emailAddress,permissionId)"
FOLDER_FIELDS = "id,name,createdTime,properties,permissions(id,emailAddress,role,type)"
DISCOVERY_FIELDS = "id,createdTime,properties,owners(emailAddress,permissionId)"
FOLDER_READ_FIELDS = DISCOVERY_FIELDS + ",mimeType,trashed"  # a known peer folder read again by id


def escape_q(value: str) -> str:
    """Quote a value for a Drive query string literal (backslash first, then quote)."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def app_hash(app: str) -> str:
    return hashlib.sha256(app.encode("utf-8")).hexdigest()[:24]


def prop_clause(key: str, value: str) -> str:
    return f"properties has {{ key='{escape_q(key)}' and value='{escape_q(value)}' }}"


def outbox_folder_name(app: str, peer: str) -> str:
    """Readable name for humans browsing Drive; lookups go by properties."""
    return f"{app.replace('/', '_')} to {peer}"


def outbox_properties(app: str, peer: str) -> dict[str, str]:
    return {
        P_ROLE: "outbox",
        P_APP: app_hash(app),
        P_TO: str(node_id_for(peer)),
        P_TO_EMAIL: peer,
        P_VERSION: str(LAYOUT_VERSION),
    }


def blobs_folder_properties(app: str) -> dict[str, str]:
    return {P_ROLE: "blobs", P_BLOB_APP: app_hash(app), P_VERSION: str(LAYOUT_VERSION)}


def blob_properties(app: str, blob_id: str) -> dict[str, str]:
    return {P_BLOB: blob_id, P_BLOB_APP: app_hash(app), P_VERSION: str(LAYOUT_VERSION)}


# Queries over my own files say ``'me' in owners`` (documented; an address in ``owners`` matches, if at all,
# only the form Drive registered, which a gmail address with or without dots may not be), and search
# properties only on my own files (Drive documents property search, not over other people's files).


def blobs_folder_query(app: str) -> str:
    return (
        f"'me' in owners and mimeType = '{FOLDER_MIME}' and "
        f"{prop_clause(P_ROLE, 'blobs')} and {prop_clause(P_BLOB_APP, app_hash(app))} and trashed = false"
    )


def my_blobs_query(app: str) -> str:
    return (
        f"'me' in owners and mimeType != '{FOLDER_MIME}' and "
        f"{prop_clause(P_BLOB_APP, app_hash(app))} and trashed = false"
    )


def message_file_name(routing: Routing) -> str:
    return f"{routing.kind}-{routing.run_id}-{routing.message_id}.sfgd"


def message_properties(routing: Routing) -> dict[str, str]:
    """Every routing field (``ROUTING_PROPERTIES``), the layout version and the recipient's node id."""
    text = {**routing.as_text(), "app": app_hash(routing.app)}
    return {
        P_VERSION: str(LAYOUT_VERSION),
        **{ROUTING_PROPERTIES[name]: value for name, value in text.items()},
        P_TO: str(node_id_for(routing.recipient)),
    }


def version_problem(props: Mapping[str, Any] | None) -> str | None:
    """Why a file's layout version cannot be read (naming both versions and the fix), or None if it can."""
    found = (props or {}).get(P_VERSION)
    if isinstance(found, str) and found in {str(v) for v in LAYOUT_READS}:
        return None
    readable = ", ".join(str(v) for v in sorted(LAYOUT_READS))
    return (
        f"Drive layout version {found!r} is not one this build reads (it reads {readable}, writes "
        f"{LAYOUT_VERSION}): its writer runs a different syft-flwr-gdrive release. Fix: upgrade, so that every "
        "participant runs the same release (pip install -U syft-flwr-gdrive)"
    )


MAX_PROPERTIES = 30  # Drive: public properties per file from one app
MAX_PROPERTY_BYTES = 124  # Drive: key + value, UTF-8


def inline_properties(body: bytes, used: int) -> dict[str, str]:
    """Spread a small body over the properties left free (``used`` taken); {} if it does not fit.

    A receiver then reads the body from the listing it already has: no download,
    one Drive call and one latency less. The file still holds the body too.
    """
    import base64

    free = MAX_PROPERTIES - used
    width = MAX_PROPERTY_BYTES - len(P_INLINE) - 2
    text = base64.b64encode(body).decode("ascii")
    pieces = [text[i : i + width] for i in range(0, len(text), width)] or [""]
    if len(pieces) > min(free, 100):
        return {}
    return {f"{P_INLINE}{i:02d}": piece for i, piece in enumerate(pieces)}


def inline_body(props: Mapping[str, Any] | None) -> bytes | None:
    """The body carried in properties, or None (absent, incomplete or not base64)."""
    import base64
    import binascii

    if not props or f"{P_INLINE}00" not in props:
        return None
    pieces = []
    for i in range(MAX_PROPERTIES):
        piece = props.get(f"{P_INLINE}{i:02d}")
        if piece is None:
            break
        pieces.append(str(piece))
    try:
        return base64.b64decode("".join(pieces), validate=True)
    except (binascii.Error, ValueError):
        return None


_FILE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")  # what Drive's generated ids look like (no '/', no quotes)


def promised_id(props: Mapping[str, Any] | None) -> str | None:
    """The id the writer promised to its stream's next file (``sfg_nx``), if well formed.

    A promise is only a hint where to look: the file found there passes every check a listed
    file passes (owner, folder) before it counts, so a wrong promise costs a lookup, nothing else."""
    value = (props or {}).get(P_NEXT)
    return value if isinstance(value, str) and _FILE_ID.fullmatch(value) else None


def bundle_properties(routing: Routing) -> dict[str, str]:
    """A bundle's properties: routing without a recipient (its parts name them, inside the file).

    ``sfg_blob_app`` too, so a server's start-up and ``clean`` remove leftovers with its blobs."""
    text = {**routing.as_text(), "app": app_hash(routing.app), "kind": KIND_BUNDLE}
    del text["recipient"]
    return {
        P_VERSION: str(LAYOUT_VERSION),
        P_BLOB_APP: app_hash(routing.app),
        **{ROUTING_PROPERTIES[name]: value for name, value in text.items()},
    }


def bundle_routing(props: Mapping[str, Any] | None, app: str, me: str) -> Routing | None:
    """A bundle's routing as a request to ``me`` (its part ids are inside); None if not a valid bundle."""
    props = props or {}
    if version_problem(props) or props.get(P_APP) != app_hash(app) or props.get(P_KIND) != KIND_BUNDLE:
        return None
    text = {name: props.get(key) for name, key in ROUTING_PROPERTIES.items()}
    text.update(app=app, reply_to="", recipient=me)
    routing = Routing.from_text(text)
    if routing is None or not routing.message_id:
        return None
    return replace(routing, sender=routing.sender.lower())


def announced_bundles(props: Mapping[str, Any] | None) -> str | None:
    """The folder an outbox folder's owner keeps its bundles in, if it says."""
    props = props or {}
    value = props.get(P_BUNDLES)
    return str(value) if props.get(P_ROLE) == "outbox" and value else None


def routing_from_properties(props: Mapping[str, Any] | None, app: str) -> Routing | None:
    """Parse a file's properties; None if anything is missing or malformed, or the layout version unreadable."""
    if not props or version_problem(props) or props.get(P_APP) != app_hash(app):
        return None
    text = {name: props.get(key) for name, key in ROUTING_PROPERTIES.items()}
    text.update(app=app, reply_to=text["reply_to"] or "")  # Drive may drop a property whose value is empty
    routing = Routing.from_text(text)
    if routing is None or routing.kind not in KINDS or not routing.message_id:
        return None
    routing = replace(routing, sender=routing.sender.lower(), recipient=routing.recipient.lower())
    if str(node_id_for(routing.recipient)) != props.get(P_TO):
        return None
    return routing


def parents_query(folder_ids: list[str]) -> str:
    """Everything in the given folders. Drive documents ``'<id>' in parents`` for any folder the caller
    can see, including folders shared with them directly. The product lists one folder per query
    (:func:`folder_query`): field reports show an OR of several returning only some folders' files."""
    terms = " or ".join(f"'{escape_q(f)}' in parents" for f in folder_ids)
    return f"({terms}) and trashed = false"


def folder_query(folder_id: str) -> str:
    """Everything in one folder: what a sweep asks of each folder it looks in."""
    return f"'{escape_q(folder_id)}' in parents and trashed = false"


def shared_folders_query() -> str:
    """Folders shared with me directly: discovery (each folder's properties are judged here, not searched:
    Drive documents property search, not over other people's files)."""
    return f"sharedWithMe = true and mimeType = '{FOLDER_MIME}' and trashed = false"


def peer_outboxes_query(app: str) -> str:
    """Outbox folders of ``app`` that peers shared with me directly: :func:`shared_folders_query`, filtered
    locally by :func:`is_outbox_of`."""
    return shared_folders_query()


def is_outbox_of(props: Mapping[str, Any] | None, app: str) -> bool:
    """Is a folder with these properties an outbox folder of ``app``?"""
    props = props or {}
    return props.get(P_ROLE) == "outbox" and props.get(P_APP) == app_hash(app)


def is_blobs_folder_of(props: Mapping[str, Any] | None, app: str) -> bool:
    """Is a folder with these properties a blobs folder (shared blobs, bundles, blob parts) of ``app``?"""
    props = props or {}
    return props.get(P_ROLE) == "blobs" and props.get(P_BLOB_APP) == app_hash(app)


@dataclass(frozen=True)
class Heads:
    """What an outbox folder stamps about its owner's next files: ids and when (owner's clock)."""

    direct: str | None  # the next message in this outbox
    bundle: str | None  # the next bundle (in the folder sfg_bundles names)
    at: float  # when stamped


def stamped_heads(props: Mapping[str, Any] | None) -> Heads | None:
    """The heads an outbox folder stamps, if it stamps any well-formed one with its time."""
    props = props or {}
    try:
        at = float(props[P_HEAD_AT])
    except (KeyError, TypeError, ValueError):
        return None
    direct = promised_id({P_NEXT: props.get(P_HEAD)})
    bundle = promised_id({P_NEXT: props.get(P_BUNDLE_HEAD)})
    if props.get(P_ROLE) != "outbox" or (direct is None and bundle is None) or at != at:
        return None
    return Heads(direct, bundle, at)


def head_properties(direct: str | None, bundle: str | None, at: float) -> dict[str, str]:
    """An outbox folder's stamp of its owner's next files (see :class:`Heads`)."""
    props = {P_HEAD_AT: f"{at:.3f}"}
    if direct is not None:
        props[P_HEAD] = direct
    if bundle is not None:
        props[P_BUNDLE_HEAD] = bundle
    return props


def outbox_recipient_matches(props: Mapping[str, Any] | None, me_canonical: str) -> bool:
    """Is this outbox folder addressed to me? (by email when it says, else by node id)"""
    from syft_flwr_gdrive.base.accounts import canonical_email

    props = props or {}
    to_email = props.get(P_TO_EMAIL)
    if to_email:
        return canonical_email(str(to_email)) == me_canonical
    return props.get(P_TO) == str(node_id_for(me_canonical))


def announced_run(props: Mapping[str, Any] | None) -> int | None:
    """The run an outbox folder announces, if any."""
    try:
        return int((props or {})[P_RUN]) if (props or {}).get(P_ROLE) == "outbox" else None
    except (KeyError, TypeError, ValueError):
        return None


def announced_keys(props: Mapping[str, Any] | None) -> dict[str, str] | None:
    """The public keys an outbox folder carries, if any."""
    props = props or {}
    if props.get(P_ROLE) != "outbox" or P_KEY_KX not in props or P_KEY_SIGN not in props:
        return None
    return {"kx": str(props[P_KEY_KX]), "ks": str(props[P_KEY_SIGN])}


def my_app_files_query(app: str) -> str:
    """Every file of ``app`` I own that is not a folder (my messages, wherever they lie, and my bundles): what a
    sweep asks instead of listing each of my outboxes (one query, whatever the number of peers)."""
    return f"'me' in owners and mimeType != '{FOLDER_MIME}' and {prop_clause(P_APP, app_hash(app))} and trashed = false"


def outbox_query(app: str) -> str:
    """My outbox folders of ``app``."""
    return (
        f"'me' in owners and mimeType = '{FOLDER_MIME}' and "
        f"{prop_clause(P_ROLE, 'outbox')} and {prop_clause(P_APP, app_hash(app))} and trashed = false"
    )


def root_query() -> str:
    return f"'me' in owners and mimeType = '{FOLDER_MIME}' and {prop_clause(P_ROLE, 'root')} and trashed = false"


def all_my_messages_query() -> str:
    """Every message file I own, of any app (for `clean`)."""
    return (
        f"'me' in owners and mimeType != '{FOLDER_MIME}' and "
        f"({' or '.join(prop_clause(P_VERSION, str(v)) for v in sorted(LAYOUT_READS))}) and trashed = false"
    )
