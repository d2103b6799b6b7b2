"""A big sealed message body opened while it downloads, with no temporary file.

The body is ``envelope header | sealed payload``. As the ranged chunks arrive, the
header is parsed (and vetted by the caller's ``on_header`` before any payload byte is
looked at), the envelope's SHA-256, if the header gives one (a version 1 sender's), is
updated in the downloading thread, and a worker
checks each chunk's AEAD tag, digests the ciphertext for the signature and decrypts
into memory (``transport.pipe.PipeSink``). ``finish`` hands out the plaintext only once
the envelope digest (if any), every tag, the length and the sender's signature checked out, so
nothing unverified ever reaches the decoder or the app.
"""

from __future__ import annotations

from collections.abc import Callable

from syft_flwr_gdrive.base.segments import Buffer
from syft_flwr_gdrive.base.segments import ChunkReader
from syft_flwr_gdrive.crypto.seal import PlainLayout
from syft_flwr_gdrive.crypto.seal import SealedOpener
from syft_flwr_gdrive.crypto.seal import Sealer
from syft_flwr_gdrive.mailbox.envelope import MAGIC
from syft_flwr_gdrive.mailbox.envelope import MAX_HEADER_BYTES
from syft_flwr_gdrive.mailbox.envelope import PREFIX_BYTES
from syft_flwr_gdrive.mailbox.envelope import Envelope
from syft_flwr_gdrive.mailbox.envelope import EnvelopeError
from syft_flwr_gdrive.mailbox.envelope import decode_header
from syft_flwr_gdrive.mailbox.pipe import PipeSink
from syft_flwr_gdrive.transport.contract import Routing


class SealedBodySink:
    """Write-only file for one message body; ``finish()`` returns (envelope, plaintext, plaintext size).

    ``on_header(envelope)`` runs once the header is parsed and may raise to refuse the
    message before its payload is processed (the exception leaves ``write``, stopping the
    download). Raises ``EnvelopeError`` for a bad envelope, ``CryptoError`` for a payload
    that does not verify, ``MissingPeerKey`` if the sender's key is not known yet.
    """

    def __init__(
        self,
        sealer: Sealer,
        routing: Routing,
        *,
        on_header: Callable[[Envelope], None],
        max_payload: int | None = None,
        layout_of: Callable[[Envelope], PlainLayout | None] | None = None,
    ) -> None:
        self._sealer, self._routing, self._on_header = sealer, routing, on_header
        self._layout_of = layout_of
        self._max_payload = max_payload
        self._prefix = bytearray()
        self.envelope: Envelope | None = None
        self._left = 0  # payload bytes still expected
        self._opener: SealedOpener | None = None
        self._pipe: PipeSink | None = None

    def write(self, data: Buffer) -> int:
        view = memoryview(data).cast("B")
        if self.envelope is None:
            view = self._take_header(view)
            if self.envelope is None:
                return len(data)
        if len(view) > self._left:
            raise EnvelopeError("the payload is longer than its header says (padded)")
        if len(view):
            assert self._opener is not None and self._pipe is not None
            self._left -= len(view)
            self._opener.front(view)  # the envelope digest here, the rest in the worker
            self._pipe.write(view)
        return len(data)

    def _take_header(self, view: memoryview) -> memoryview:
        while len(view):
            need = self._header_end()
            if len(self._prefix) >= need:
                break
            n = min(need - len(self._prefix), len(view))
            self._prefix += view[:n]
            view = view[n:]
        if len(self._prefix) < self._header_end():
            return view
        envelope, offset = decode_header(bytes(self._prefix))
        if offset != len(self._prefix):
            raise EnvelopeError("the envelope header's length does not add up")
        if self._max_payload is not None and envelope.size > self._max_payload:
            raise EnvelopeError(f"payload of {envelope.size} bytes exceeds the {self._max_payload}-byte limit")
        self._on_header(envelope)
        layout = self._layout_of(envelope) if self._layout_of is not None else None
        opener = self._sealer.opener(
            self._routing, envelope.size, payload_sha256=envelope.sha256 or None, layout=layout
        )
        self.envelope, self._left, self._opener = envelope, envelope.size, opener
        self._pipe = PipeSink(opener.feed, name="message-open")
        return view

    def _header_end(self) -> int:
        """How many bytes the prefix needs (a bad magic or length raises as soon as it is seen)."""
        if len(self._prefix) < PREFIX_BYTES:
            return PREFIX_BYTES
        header_len = int.from_bytes(self._prefix[4:PREFIX_BYTES], "big")
        if self._prefix[:4] != MAGIC or header_len > MAX_HEADER_BYTES:
            decode_header(bytes(self._prefix))  # raises the EnvelopeError that says which
        return PREFIX_BYTES + header_len

    def finish(self) -> tuple[Envelope, ChunkReader, int]:
        if self.envelope is None or self._opener is None or self._pipe is None:
            raise EnvelopeError(f"truncated: the body ended inside its envelope header ({len(self._prefix)} bytes)")
        if self._left:
            raise EnvelopeError(
                f"payload is {self.envelope.size - self._left} bytes but the header says "
                f"{self.envelope.size} (truncated)"
            )
        self._pipe.finish()
        plain, size = self._opener.finish()
        return self.envelope, plain, size

    def abort(self) -> None:
        """Stop the worker and drop what was decrypted (after any failure)."""
        if self._pipe is not None:
            self._pipe.abort()
        if self._opener is not None:
            self._opener.close()
