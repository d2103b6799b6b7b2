"""Flower instructions (requests, stop signals) as the mailbox's push items.

An item carries both forms the mailbox may send (``mailbox.outgoing``): the whole message as a file of
its own, and the content it may share with the push's other recipients (the message with its
per-recipient metadata blanked) plus that metadata as the private fields of its bundle part. Each is
encoded only if the mailbox uses it; shared content is encoded once per content object (the Message
API hands one RecordDict to every recipient; the legacy path equal ones, grouped by the mailbox).
"""

from __future__ import annotations

from typing import Any

from flwr.app import Message
from flwr.app import Metadata
from flwr.app.message.message import make_message

from syft_flwr_gdrive.base.segments import Buffer
from syft_flwr_gdrive.flower.codec import CODEC_PARTS
from syft_flwr_gdrive.flower.codec import encode_message
from syft_flwr_gdrive.flower.shared_blobs import BlobPlacer
from syft_flwr_gdrive.mailbox.outgoing import Outgoing


class Instructions:
    """Items for one push; ``blobs_of(message_id)`` are the blob files an item's sent form refers to."""

    def __init__(self, placer: BlobPlacer, run_info: dict[str, Any] | None) -> None:
        """``run_info`` (the run config and app fingerprint) rides in every request for the client's Context."""
        self.placer = placer
        self.run_info = run_info
        self._shared: dict[int, tuple[object, bytes, tuple[str, ...]]] = {}  # id(content) -> (content, payload, blobs)
        self._blobs: dict[str, list[str]] = {}  # message id -> blob files its payload refers to

    def blobs_of(self, message_id: str) -> list[str]:
        return self._blobs.get(message_id, [])

    def item(self, msg: Message, recipient: str, *, context: bool = True) -> Outgoing:
        """``msg`` to ``recipient``. ``context`` False: a file of its own carries no run info and places no
        blob (a stop signal); its shared form is the same as a request's."""
        meta = msg.metadata
        blobs = self._blobs.setdefault(meta.message_id, [])

        def alone() -> list[Buffer]:
            if not context:
                return encode_message(msg)
            return encode_message(msg, place_blob=self.placer.noting(blobs), run_info=self.run_info)

        def shared() -> bytes:
            payload, used = self._shared_form(msg)
            blobs.extend(used)
            return payload

        return Outgoing(
            recipient=recipient,
            message_id=meta.message_id,
            created_at=meta.created_at,
            ttl=meta.ttl,
            payload=alone,
            codecs=(CODEC_PARTS,),
            shared=shared,
            private={
                "message_id": meta.message_id,
                "dst_node_id": meta.dst_node_id,
                "created_at": meta.created_at,
                "ttl": meta.ttl,
                "codecs": [CODEC_PARTS],
            },
        )

    def _shared_form(self, msg: Message) -> tuple[bytes, tuple[str, ...]]:
        """The payload every recipient of this content shares, and the blobs it names; encoded once per content."""
        content = msg.content if msg.has_content() else msg.error
        known = self._shared.get(id(content))
        if known is None or known[0] is not content:  # messages stay alive during a push: ids are not reused
            known = self._shared[id(content)] = (content, *self._encode_shared(msg))
        return known[1], known[2]

    def _encode_shared(self, msg: Message) -> tuple[bytes, tuple[str, ...]]:
        """The message with its per-recipient metadata blanked (each recipient's travels in its bundle part)."""
        used: list[str] = []
        meta = msg.metadata
        shell = make_message(
            metadata=Metadata(
                run_id=meta.run_id,
                message_id="",
                src_node_id=meta.src_node_id,
                dst_node_id=0,
                reply_to_message_id="",
                group_id=meta.group_id,
                created_at=0.0,
                ttl=1.0,
                message_type=meta.message_type,
            ),
            content=msg.content if msg.has_content() else None,
            error=msg.error if msg.has_error() else None,
        )
        segments = encode_message(shell, place_blob=self.placer.noting(used), run_info=self.run_info)
        return b"".join(bytes(s) for s in segments), tuple(used)
