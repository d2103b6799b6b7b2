"""One message to many recipients: the body sealed once, its key wrapped per recipient.

Why: a server that sends N messages per exchange makes N Drive writes (plus N deletes),
and real Drive allows an account only about 3 writes per second. A *bundle* carries the
exchange's N messages as one file: its common payload is encrypted once with a fresh
content key, and each recipient gets its own routing (message id, reply-to) and the
content key wrapped to its X25519 key, plus optional private bytes only it can read.
The whole header (every recipient's routing and wrap) and the ciphertext's SHA-256 are
signed with the sender's Ed25519 key, so nothing in it can be changed, added or moved
to another bundle; each wrap's AEAD also binds its recipient's routing, so a recipient
opens only its own part. With encryption off, :func:`pack_plain` gives the same header
and parts in the clear (no wraps, no signature; trust is then the storage's owner and folder,
as for any unsealed message). ``mailbox/bundles.py`` packs and opens bundles.

Layout (``sfg-mseal-v1``)::

    b"SFGM" | version 1 | uint32 header length | header: UTF-8 JSON
           | ChaCha20-Poly1305 ciphertext of the payload (one piece; bundles are small,
             large arrays travel as blobs)
           | Ed25519 signature (64) | b"SFGM"

Header: ``{"app", "run_id", "bundle_id", "kind", "sender", "created_at", "ttl",
"eph": <X25519 public, b64>, "parts": [{"to", "msg", "re", "wrap": <b64>}, ...]}``.
A wrap is ``ChaCha20-Poly1305(kek_i, nonce 0, content key | private bytes, aad =
common routing | the part's routing)`` with ``kek_i = HKDF(X25519(eph, recipient))``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from syft_flwr_gdrive.base.accounts import canonical_email
from syft_flwr_gdrive.crypto.failures import CryptoError
from syft_flwr_gdrive.crypto.keys import raw_public
from syft_flwr_gdrive.crypto.seal import Sealer

CODEC_MULTI = "sfg-mseal-v1"
MAGIC = b"SFGM"
VERSION = 1
_HEAD = struct.Struct(">4sBI")
SIG_BYTES = 64
MAX_HEADER = 4 * 1024 * 1024  # 1,000 recipients of ~300 bytes each fit with room to spare
MAX_PARTS = 10_000
KEY_BYTES = 32
_ZERO_NONCE = bytes(12)


class NotARecipient(CryptoError):
    """The bundle has no part for me: it is another recipient's, not damaged (a reader ignores it, no log).

    A ``CryptoError`` so that a caller that only knows bundles can fail it is still told."""


def _mine(parts: list[dict], me: str) -> dict:
    """My one part of a bundle: ``NotARecipient`` if none names me, ``CryptoError`` if several do."""
    mine = [p for p in parts if _address(p["to"]) == _address(me)]
    if len(mine) != 1:
        error = NotARecipient if not mine else CryptoError
        raise error(f"the bundle has {len(mine)} parts for {me}; exactly one expected")
    return mine[0]


def _address(email: str) -> str:
    """Recipients are compared as accounts (gmail dots and googlemail.com do not make a second one)."""
    return canonical_email(email)


@dataclass(frozen=True)
class BundleHead:
    """What all recipients share: app, run, the bundle's own id, kind, sender and lifetime."""

    app: str
    run_id: int
    bundle_id: str
    kind: str
    sender: str
    created_at: float
    ttl: float

    def to_json(self) -> dict:
        return {
            "app": self.app,
            "run_id": int(self.run_id),
            "bundle_id": self.bundle_id,
            "kind": self.kind,
            "sender": self.sender,
            "created_at": float(self.created_at),
            "ttl": float(self.ttl),
        }

    def aad(self) -> bytes:
        return b"sfg-mseal-v1|" + json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Part:
    """One recipient's routing inside a bundle, and bytes only it may read (e.g. its own metadata)."""

    recipient: str
    message_id: str
    reply_to: str = ""
    private: bytes = b""

    def aad(self, head: BundleHead) -> bytes:
        return (
            head.aad()
            + b"|"
            + json.dumps([self.recipient, self.message_id, self.reply_to], separators=(",", ":")).encode()
        )


@dataclass(frozen=True)
class Opened:
    """A recipient's view of a bundle: the shared head, its own part, the common payload."""

    head: BundleHead
    part: Part
    payload: bytes
    recipients: int


def _kek(shared: bytes, eph_pub: bytes, recipient_kx: bytes, part_aad: bytes) -> bytes:
    info = b"sfg-mseal-v1-wrap|" + eph_pub + recipient_kx + hashlib.sha256(part_aad).digest()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(shared)


def _signed(header: bytes, cipher: bytes) -> bytes:
    return b"sfg-mseal-sig-v1|" + hashlib.sha256(header).digest() + hashlib.sha256(cipher).digest()


def seal_bundle(sealer: Sealer, head: BundleHead, parts: Sequence[Part], payload: bytes) -> bytes:
    """The bundle's bytes: ``payload`` encrypted once, its key wrapped for each part's recipient.

    Raises :class:`~syft_flwr_gdrive.crypto.failures.MissingPeerKey` when a recipient's key is not
    known yet, and :class:`CryptoError` for an empty or duplicate recipient list."""
    if not parts or len(parts) > MAX_PARTS:
        raise CryptoError(f"a bundle needs 1 to {MAX_PARTS} recipients, not {len(parts)}")
    seen = [_address(p.recipient) for p in parts]
    if len(set(seen)) != len(seen):
        raise CryptoError("a bundle names a recipient twice; send one part per recipient")
    content_key = os.urandom(KEY_BYTES)
    eph = X25519PrivateKey.generate()
    eph_pub = raw_public(eph.public_key())
    wraps = []
    for part in parts:
        kx = sealer._keys_of(part.recipient).kx
        aad = part.aad(head)
        kek = _kek(eph.exchange(X25519PublicKey.from_public_bytes(kx)), eph_pub, kx, aad)
        wrap = ChaCha20Poly1305(kek).encrypt(_ZERO_NONCE, content_key + part.private, aad)
        wraps.append(
            {"to": part.recipient, "msg": part.message_id, "re": part.reply_to, "wrap": base64.b64encode(wrap).decode()}
        )
    header = json.dumps(
        {**head.to_json(), "eph": base64.b64encode(eph_pub).decode(), "parts": wraps},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    if len(header) > MAX_HEADER:
        raise CryptoError(f"a bundle header of {len(header)} bytes is over {MAX_HEADER}; split the recipients")
    cipher = ChaCha20Poly1305(content_key).encrypt(_ZERO_NONCE, payload, head.aad())
    signature = sealer.identity.sign(_signed(header, cipher))
    return b"".join([_HEAD.pack(MAGIC, VERSION, len(header)), header, cipher, signature, MAGIC])


def _head_from(doc: dict[str, Any]) -> BundleHead:
    """The bundle header's routing fields, typed (KeyError/ValueError/TypeError on a bad header)."""
    return BundleHead(
        app=str(doc["app"]),
        run_id=int(doc["run_id"]),
        bundle_id=str(doc["bundle_id"]),
        kind=str(doc["kind"]),
        sender=str(doc["sender"]),
        created_at=float(doc["created_at"]),
        ttl=float(doc["ttl"]),
    )


def _parts_from(doc: dict[str, Any], keys: tuple[str, ...]) -> list[dict]:
    """The header's parts: 1..MAX_PARTS objects, each with a string for every key (ValueError otherwise)."""
    parts = doc["parts"]
    if not isinstance(parts, list) or not 0 < len(parts) <= MAX_PARTS:
        raise ValueError("parts out of range")
    for p in parts:
        if not (isinstance(p, dict) and all(isinstance(p.get(k), str) for k in keys)):
            raise ValueError("a part is malformed")
    return parts


def read_head(data: bytes) -> tuple[BundleHead, list[dict], bytes, bytes, bytes, bytes]:
    """Parse without verifying: (head, parts, eph public, header bytes, ciphertext, signature)."""
    if len(data) < _HEAD.size + SIG_BYTES + len(MAGIC) or data[-len(MAGIC) :] != MAGIC:
        raise CryptoError("not a complete bundle (too short or no end marker)")
    magic, version, length = _HEAD.unpack_from(data)
    if magic != MAGIC or version != VERSION:
        raise CryptoError("not a bundle of a version this build reads")
    if length > MAX_HEADER or _HEAD.size + length + SIG_BYTES + len(MAGIC) > len(data):
        raise CryptoError("the bundle's header length is out of range")
    header = data[_HEAD.size : _HEAD.size + length]
    cipher = data[_HEAD.size + length : len(data) - SIG_BYTES - len(MAGIC)]
    signature = data[len(data) - SIG_BYTES - len(MAGIC) : len(data) - len(MAGIC)]
    try:
        doc = json.loads(header.decode("utf-8"))
        head = _head_from(doc)
        eph_pub = base64.b64decode(doc["eph"], validate=True)
        if len(eph_pub) != 32:
            raise ValueError("ephemeral key out of range")
        parts = _parts_from(doc, ("to", "msg", "re", "wrap"))
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise CryptoError(f"the bundle's header is malformed ({type(exc).__name__})") from None
    return head, parts, eph_pub, header, cipher, signature


def open_bundle(sealer: Sealer, data: bytes, me: str) -> Opened:
    """Verify the sender's signature, then open my part and the payload.

    Refused (:class:`CryptoError`) when the signature is not the sender's pinned key, when
    anything signed was changed (a wrap, a routing, the ciphertext), when the bundle names me twice,
    or when my wrap does not open with my key; :class:`NotARecipient` when it has no part for ``me``."""
    head, parts, eph_pub, header, cipher, signature = read_head(data)
    sender = sealer._keys_of(head.sender)
    try:
        Ed25519PublicKey.from_public_bytes(sender.sign).verify(signature, _signed(header, cipher))
    except InvalidSignature:
        raise CryptoError(f"the bundle's signature is not {head.sender}'s pinned key: forged or altered") from None
    raw = _mine(parts, me)
    part = Part(recipient=raw["to"], message_id=raw["msg"], reply_to=raw["re"])
    aad = part.aad(head)
    kx = sealer.identity.public.kx
    try:
        wrap = base64.b64decode(raw["wrap"], validate=True)
        kek = _kek(sealer.identity.exchange(eph_pub), eph_pub, kx, aad)
        unwrapped = ChaCha20Poly1305(kek).decrypt(_ZERO_NONCE, wrap, aad)
        if len(unwrapped) < KEY_BYTES:
            raise CryptoError("my wrapped key is too short")
        payload = ChaCha20Poly1305(unwrapped[:KEY_BYTES]).decrypt(_ZERO_NONCE, cipher, head.aad())
    except (InvalidTag, ValueError):
        raise CryptoError("my part of the bundle does not open with my key: not for me, or altered") from None
    return Opened(
        head=head,
        part=Part(part.recipient, part.message_id, part.reply_to, unwrapped[KEY_BYTES:]),
        payload=payload,
        recipients=len(parts),
    )


# -- encryption off ----------------------------------------------------------------------

PLAIN_MAGIC = b"SFGP"


def pack_plain(head: BundleHead, parts: Sequence[Part], payload: bytes) -> bytes:
    """A bundle in the clear (encryption switched off): same header, each part's private bytes in base64."""
    if not parts or len(parts) > MAX_PARTS:
        raise CryptoError(f"a bundle needs 1 to {MAX_PARTS} recipients, not {len(parts)}")
    seen = [_address(p.recipient) for p in parts]
    if len(set(seen)) != len(seen):
        raise CryptoError("a bundle names a recipient twice; send one part per recipient")
    header = json.dumps(
        {
            **head.to_json(),
            "parts": [
                {
                    "to": p.recipient,
                    "msg": p.message_id,
                    "re": p.reply_to,
                    "private": base64.b64encode(p.private).decode(),
                }
                for p in parts
            ],
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    if len(header) > MAX_HEADER:
        raise CryptoError(f"a bundle header of {len(header)} bytes is over {MAX_HEADER}; split the recipients")
    return b"".join([_HEAD.pack(PLAIN_MAGIC, VERSION, len(header)), header, payload, PLAIN_MAGIC])


def is_plain(data: bytes) -> bool:
    return data[: len(PLAIN_MAGIC)] == PLAIN_MAGIC


def open_plain(data: bytes, me: str) -> Opened:
    """My part of a clear bundle; :class:`CryptoError` if malformed or several parts are mine,
    :class:`NotARecipient` if none is."""
    if len(data) < _HEAD.size + len(PLAIN_MAGIC) or data[-len(PLAIN_MAGIC) :] != PLAIN_MAGIC:
        raise CryptoError("not a complete bundle (too short or no end marker)")
    magic, version, length = _HEAD.unpack_from(data)
    if magic != PLAIN_MAGIC or version != VERSION:
        raise CryptoError("not a clear bundle of a version this build reads")
    if length > MAX_HEADER or _HEAD.size + length + len(PLAIN_MAGIC) > len(data):
        raise CryptoError("the bundle's header length is out of range")
    try:
        doc = json.loads(data[_HEAD.size : _HEAD.size + length].decode("utf-8"))
        head = _head_from(doc)
        parts = _parts_from(doc, ("to", "msg", "re", "private"))
    except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise CryptoError(f"the bundle's header is malformed ({type(exc).__name__})") from None
    raw = _mine(parts, me)
    try:
        private = base64.b64decode(raw["private"], validate=True)
    except ValueError:
        raise CryptoError("my part's private bytes are not base64") from None
    payload = data[_HEAD.size + length : len(data) - len(PLAIN_MAGIC)]
    return Opened(
        head=head, part=Part(raw["to"], raw["msg"], raw["re"], private), payload=payload, recipients=len(parts)
    )
