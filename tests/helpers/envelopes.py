"""Whole message bodies as bytes, for tests that build or read envelopes by hand.

The package streams bodies (``encode_segments``, ``decode_file``); these wrap the same code for a
body held in memory, so tests check exactly what goes over the wire.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import fields
from dataclasses import replace
from typing import Any

from syft_flwr_gdrive.base.routing import Routing
from syft_flwr_gdrive.mailbox.envelope import Envelope
from syft_flwr_gdrive.mailbox.envelope import decode_file
from syft_flwr_gdrive.mailbox.envelope import encode_segments


def encode(envelope: Envelope, payload: bytes) -> bytes:
    """Header and payload as one message body (the header's hash and size describe ``payload``)."""
    return b"".join(bytes(s) for s in encode_segments(envelope, [payload]))


def decode(body: bytes, *, max_payload: int | None = None) -> tuple[Envelope, bytes]:
    """Parse and verify a whole message body (EnvelopeError if it is not a valid one): header and payload."""
    stream = io.BytesIO(body)
    envelope, offset = decode_file(stream, max_payload=max_payload)
    return envelope, body[offset:]


def with_payload(envelope: Envelope, payload: bytes) -> Envelope:
    """``envelope`` describing ``payload``: its SHA-256 and size filled in, as ``encode`` does."""
    return replace(envelope, sha256=hashlib.sha256(payload).hexdigest(), size=len(payload))


def envelope_for(routing: Routing, **header_changes: Any) -> Envelope:
    """The envelope header a sender writes for ``routing`` (any header field overridable, e.g. to forge one)."""
    values = {f.name: getattr(routing, f.name) for f in fields(Routing)}
    values.update(header_changes)
    return Envelope(**values)


def body_for(routing: Routing, payload: bytes = b"hello", **header_changes: Any) -> bytes:
    """A well-formed message body for ``routing`` around ``payload`` (header fields overridable)."""
    return encode(envelope_for(routing, **header_changes), payload)
