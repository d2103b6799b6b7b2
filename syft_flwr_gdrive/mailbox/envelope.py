"""The self-describing envelope every message file carries.

Wire format of a message body::

    b"SFGD" | uint32 big-endian header length | header (UTF-8 JSON) | payload

The header says everything a receiver needs to decide what to do with the
payload (which run, which message, who sent it to whom, when it expires, how
the payload is encoded, its size and its SHA-256), so a file found on any
storage can be checked on its own. The decoder trusts nothing: every field is
type-checked, sizes are bounded, and the payload hash is verified.

Since version 2 a sealed payload (outermost codec ``sfg-seal-v1``) may go without
the SHA-256 (``sha256`` empty): the seal's signature already covers every byte
of it, and leaving the digest out is what lets a sender stream the payload
without a pass over it before the header (see ``crypto.chunks.SealedReader``). A digest
that is given is always checked; version 1 (always with a digest) is still read.
Version 3 only changes the seal inside (AES-256-GCM instead of ChaCha20-Poly1305;
the seal's own header names it), so an older reader refuses the envelope with an
upgrade message instead of failing to decrypt.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import struct
import time
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import asdict
from dataclasses import dataclass
from dataclasses import fields
from typing import Any
from typing import BinaryIO

from syft_flwr_gdrive.base.routing import KINDS
from syft_flwr_gdrive.base.routing import Routing
from syft_flwr_gdrive.base.segments import Buffer
from syft_flwr_gdrive.crypto.seal import CODEC_SEAL

MAGIC = b"SFGD"
# The wire format (this header) is versioned apart from any storage layout (drive/layout.LAYOUT_VERSION).
# 2 = a sealed payload's SHA-256 may be left out; 3 = sealed payloads and shared blobs use AES-256-GCM
# (seal version 2, ``crypto.SEAL_AESGCM``); a reader before 3 cannot open them, so it must refuse the envelope;
# 4 = a shared blob may be stored in parts, named in the payload index before they upload (``blob_parts``)
WIRE_VERSION = 4  # what this build writes
WIRE_READS = frozenset({1, 2, 3, 4})  # what it reads (each version's bodies are readable under the next one's rules)
MAX_HEADER_BYTES = 64 * 1024
_LEN = struct.Struct(">I")
PREFIX_BYTES = len(MAGIC) + _LEN.size
_CHUNK = 4 * 1024 * 1024

# How long, at most, the server waits for stop-acks and a stopped client lingers for the server
# to remove its stop file: both hops cross Drive's listing lag (and maybe retries).
STOP_ACK_WAIT = 30.0

CODEC_FLWR_PROTO = "flwr-message-proto"

# What peers may put in the fields that reach file names, log lines and the handled-ids ledger.
_MESSAGE_ID = re.compile(r"[A-Za-z0-9._@+-]{1,64}")  # ours are 32 hex digits
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,190}")
MAX_APP_CHARS = 256
MAX_CODECS = 8
MAX_CODEC_CHARS = 64


def valid_message_id(value: object) -> bool:
    """1 to 64 letters, digits or ``. _ @ + -``: no spaces, newlines, quotes or slashes."""
    return isinstance(value, str) and _MESSAGE_ID.fullmatch(value) is not None


def valid_email(value: object) -> bool:
    """Shaped like an email, printable, no whitespace (config validates our own more strictly)."""
    return isinstance(value, str) and value.isprintable() and _EMAIL.fullmatch(value) is not None


class EnvelopeError(ValueError):
    """A message body is not a valid envelope; the text says what is wrong."""


@dataclass(frozen=True, kw_only=True)
class Envelope(Routing):
    """Routing (every field of ``Routing``) and the integrity header of one message."""

    codecs: tuple[str, ...] = (CODEC_FLWR_PROTO,)
    sha256: str = ""
    size: int = 0
    version: int = WIRE_VERSION

    def expired(self, now: float | None = None) -> bool:
        """True once the message's time to live has run out."""
        return (time.time() if now is None else now) > self.created_at + self.ttl


def _replace(env: Envelope, **changes: Any) -> Envelope:
    data = asdict(env)
    data.update(changes)
    data["codecs"] = tuple(data["codecs"])
    return Envelope(**data)


def encode_segments(envelope: Envelope, payload: Sequence[Buffer]) -> list[Buffer]:
    """Body as a list of buffers: the header, then the payload pieces untouched (no copy)."""
    digest = hashlib.sha256()
    size = 0
    for piece in payload:
        digest.update(piece)
        size += len(piece)
    return [header_bytes(_replace(envelope, sha256=digest.hexdigest(), size=size)), *payload]


# The JSON types of the header's fields, from Envelope's (hence Routing's) own field types.
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "str": (str,),
    "float": (int, float),
    "tuple[str, ...]": (list,),
}
_FIELD_TYPES: dict[str, tuple[type, ...]] = {f.name: _JSON_TYPES[str(f.type)] for f in fields(Envelope)}


def decode_header(prefix: bytes) -> tuple[Envelope, int]:
    """Parse the header from the first bytes of a body.

    Returns the envelope and the offset where the payload starts. ``prefix``
    must hold at least the whole header (callers can read ``PREFIX_BYTES``
    first to learn how much that is).
    """
    if len(prefix) < PREFIX_BYTES:
        raise EnvelopeError(f"truncated: {len(prefix)} bytes is shorter than the {PREFIX_BYTES}-byte envelope prefix")
    if prefix[:4] != MAGIC:
        raise EnvelopeError("not a syft-flwr-gdrive message (bad magic bytes); a foreign or corrupt file")
    (header_len,) = _LEN.unpack(prefix[4:PREFIX_BYTES])
    if header_len > MAX_HEADER_BYTES:
        raise EnvelopeError(f"header of {header_len} bytes exceeds the {MAX_HEADER_BYTES}-byte limit")
    end = PREFIX_BYTES + header_len
    if len(prefix) < end:
        raise EnvelopeError(f"truncated: header needs {header_len} bytes, only {len(prefix) - PREFIX_BYTES} present")
    try:
        raw = json.loads(prefix[PREFIX_BYTES:end].decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError):  # JSONDecodeError, int-digit limit, deep nesting
        raise EnvelopeError("header is not valid UTF-8 JSON (or nests or numbers beyond limits)") from None
    if not isinstance(raw, dict):
        raise EnvelopeError("header is not a JSON object")
    version = raw.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version not in WIRE_READS:
        readable = ", ".join(str(v) for v in sorted(WIRE_READS))
        raise EnvelopeError(
            f"message format version {version!r} is not one this build reads (it reads {readable}, writes "
            f"{WIRE_VERSION}): the sender runs a different syft-flwr-gdrive release. Fix: upgrade, so that every "
            "participant runs the same release (pip install -U syft-flwr-gdrive)"
        )
    unknown = set(raw) - set(_FIELD_TYPES)
    missing = set(_FIELD_TYPES) - set(raw)
    if missing:
        raise EnvelopeError(f"header lacks fields: {', '.join(sorted(missing))}")
    if unknown:
        raise EnvelopeError(f"header has unknown fields: {', '.join(sorted(unknown))}")
    for name, types in _FIELD_TYPES.items():
        value = raw[name]
        if isinstance(value, bool) or not isinstance(value, types):
            raise EnvelopeError(f"header field {name!r} has the wrong type ({type(value).__name__})")
    if raw["kind"] not in KINDS:
        raise EnvelopeError(f"header field 'kind' is {raw['kind']!r}, expected one of {sorted(KINDS)}")
    codecs = raw["codecs"]
    if len(codecs) > MAX_CODECS or not all(
        isinstance(c, str) and 0 < len(c) <= MAX_CODEC_CHARS and c.isprintable() for c in codecs
    ):
        raise EnvelopeError(f"header field 'codecs' must list at most {MAX_CODECS} printable codec names")
    if not valid_message_id(raw["message_id"]) or not (raw["reply_to"] == "" or valid_message_id(raw["reply_to"])):
        raise EnvelopeError("header field 'message_id' or 'reply_to' is not 1-64 letters, digits or . _ @ + -")
    if not (valid_email(raw["sender"]) and valid_email(raw["recipient"])):
        raise EnvelopeError("header field 'sender' or 'recipient' is not an email address")
    if len(raw["app"]) > MAX_APP_CHARS or not raw["app"].isprintable():
        raise EnvelopeError(f"header field 'app' is not a printable name of at most {MAX_APP_CHARS} characters")
    if not (0 <= raw["size"] < 2**63 and 0 <= raw["run_id"] < 2**63):
        raise EnvelopeError("header has a negative or oversized size or run id")
    for name in ("created_at", "ttl"):
        try:
            raw[name] = float(raw[name])
        except OverflowError:
            raise EnvelopeError(f"header field {name!r} is out of range") from None
        if not math.isfinite(raw[name]):
            raise EnvelopeError(f"header field {name!r} is not a finite number")
    if raw["ttl"] <= 0:
        raise EnvelopeError("header has a non-positive ttl")
    if len(raw["sha256"]) != 64 and not (raw["sha256"] == "" and version >= 2 and codecs[:1] == [CODEC_SEAL]):
        raise EnvelopeError(
            "header field 'sha256' is not a 64-character hex digest (only a sealed payload's may be empty)"
        )
    raw["codecs"] = tuple(raw["codecs"])
    return Envelope(**raw), end


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def header_bytes(envelope: Envelope) -> bytes:
    """The body's prefix for an envelope whose ``sha256`` and ``size`` are already set."""
    header = json.dumps(asdict(envelope), sort_keys=True, separators=(",", ":")).encode("utf-8")
    return MAGIC + _LEN.pack(len(header)) + header


def decode_file(
    fh: BinaryIO, *, max_payload: int | None = None, digest_checked_later: Callable[[Envelope], bool] | None = None
) -> tuple[Envelope, int]:
    """Parse and verify a body stored in a seekable file, reading it in chunks.

    Returns the envelope and the payload's offset in the file; memory stays
    at one chunk whatever the body's size. If ``digest_checked_later(envelope)``
    is true the payload's SHA-256 is left to the caller, who checks it in the
    pass it makes anyway (a sealed payload's is checked while it is decrypted).
    A sealed payload sent without a digest is left to the opener, whose signature
    check covers every byte of it.
    """
    fh.seek(0, io.SEEK_END)
    total = fh.tell()
    fh.seek(0)
    prefix = fh.read(PREFIX_BYTES)
    if len(prefix) == PREFIX_BYTES and prefix[:4] == MAGIC:
        (header_len,) = _LEN.unpack(prefix[4:])
        prefix += fh.read(min(header_len, MAX_HEADER_BYTES + 1))
    envelope, offset = decode_header(prefix)
    if max_payload is not None and envelope.size > max_payload:
        raise EnvelopeError(f"payload of {envelope.size} bytes exceeds the {max_payload}-byte limit")
    if total - offset != envelope.size:
        raise EnvelopeError(
            f"payload is {total - offset} bytes but the header says {envelope.size} (truncated or padded)"
        )
    if not envelope.sha256 or (digest_checked_later is not None and digest_checked_later(envelope)):
        fh.seek(offset)  # no digest: a sealed payload, verified by its signature when it is opened
        return envelope, offset
    digest = hashlib.sha256()
    fh.seek(offset)
    while chunk := fh.read(_CHUNK):
        digest.update(chunk)
    if digest.hexdigest() != envelope.sha256:
        raise EnvelopeError("payload SHA-256 does not match the header (corrupted in transit or tampered)")
    fh.seek(offset)
    return envelope, offset
