"""Flower Message <-> payload bytes, and node ids from emails.

Two payload codecs:

* ``flwr-message-proto``: the whole Message with Flower's protobuf serde. Small
  and simple; read for compatibility.
* ``sfg-flwr-parts-v1`` (what we write): the Message with its arrays taken out,
  serialised with Flower's serde, followed by each array's raw bytes::

      uint32 index length | index (JSON) | message proto | array data ...

  The array bytes are never copied or re-encoded (Flower's ``Array.data`` is
  streamed as is), so a 1 GiB model costs no second 1 GiB in memory. An array
  may instead live in a shared, content-addressed *blob* (the index gives its
  SHA-256 and where to fetch it): a global model broadcast to N clients is then
  uploaded once, not N times, and a client that already has it fetches nothing.
"""

from __future__ import annotations

import hashlib
import json
import struct
from typing import Any, BinaryIO, Callable

from flwr.app import Array, ArrayRecord, Message, RecordDict
from flwr.app.message.message import make_message
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.common.serde import message_from_proto, message_to_proto
from flwr.proto.message_pb2 import Message as ProtoMessage  # pylint: disable=no-name-in-module

from syft_flwr_gdrive.transport.segments import Buffer

SERVER_NODE_ID = SUPERLINK_NODE_ID
CODEC_PROTO = "flwr-message-proto"
CODEC_PARTS = "sfg-flwr-parts-v1"
_LEN = struct.Struct(">I")
MAX_INDEX_BYTES = 16 * 1024 * 1024


class PayloadError(ValueError):
    """A payload is not a Flower message we can read."""


# Given an array's data, store it as a shared blob and return (sha256, locator), or None to keep it inline.
BlobPlacer = Callable[[bytes], "tuple[str, str] | None"]
# Given (locator, sha256, size) return the blob's bytes.
BlobFetcher = Callable[[str, str, int], bytes]


def node_id_for(email: str) -> int:
    """A stable 63-bit Flower node id for a participant's email.

    Derived, not assigned, so the server and every client agree on it without
    talking; never 0 and never the server's own id.
    """
    digest = hashlib.sha256(email.strip().lower().encode("utf-8")).digest()
    node_id = int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)
    return node_id if node_id > SERVER_NODE_ID else node_id + 2


# -- encoding --------------------------------------------------------------------------


def encode_message(
    message: Message, place_blob: BlobPlacer | None = None, run_info: dict[str, Any] | None = None
) -> list[Buffer]:
    """Payload segments for ``message`` (codec ``sfg-flwr-parts-v1``).

    ``run_info`` (JSON-able; the server's run config and app fingerprint) rides in the index, so it
    is sealed and signed with the message; readers that do not know the key ignore it.
    """
    stripped = RecordDict()
    entries: list[dict[str, Any]] = []
    inline: list[Buffer] = []
    if message.has_content():
        for record_key, record in message.content.items():
            if not isinstance(record, ArrayRecord):
                stripped[record_key] = record
                continue
            stripped[record_key] = ArrayRecord()
            for array_key, array in record.items():
                data = memoryview(array.data)
                entry: dict[str, Any] = {
                    "record": record_key, "key": array_key, "dtype": array.dtype,
                    "shape": list(array.shape), "stype": array.stype, "size": len(data), "blob": None,
                }
                placed = place_blob(array.data) if place_blob is not None else None
                if placed is not None:
                    entry.update(sha256=placed[0], blob=placed[1])
                if entry["blob"] is None:
                    inline.append(data)
                entries.append(entry)
    shell = make_message(
        metadata=message.metadata,
        content=stripped if message.has_content() else None,
        error=message.error if message.has_error() else None,
    )
    proto = message_to_proto(shell).SerializeToString()
    head: dict[str, Any] = {"message": len(proto), "arrays": entries}
    if run_info is not None:
        head["run"] = run_info
    index = json.dumps(head, separators=(",", ":")).encode("utf-8")
    return [_LEN.pack(len(index)) + index, proto, *inline]


def message_to_bytes(message: Message) -> bytes:
    """The whole payload as bytes (for small messages and tests)."""
    return b"".join(bytes(s) for s in encode_message(message))


# -- decoding --------------------------------------------------------------------------


def _read_exact(stream: BinaryIO, n: int, what: str) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise PayloadError(f"payload ends inside the {what}")
    return data


def decode_message(
    stream: BinaryIO, size: int, *, codecs: tuple[str, ...] = (CODEC_PARTS,), fetch_blob: BlobFetcher | None = None
) -> Message:
    """Read a Message from ``size`` payload bytes at the stream's position."""
    return decode_message_and_run(stream, size, codecs=codecs, fetch_blob=fetch_blob)[0]


def decode_message_and_run(
    stream: BinaryIO, size: int, *, codecs: tuple[str, ...] = (CODEC_PARTS,), fetch_blob: BlobFetcher | None = None
) -> tuple[Message, Any]:
    """The Message and the sender's ``run_info`` (None if absent; unchecked: the caller validates it)."""
    if codecs == (CODEC_PROTO,):
        return _from_proto(_read_exact(stream, size, "message")), None
    if codecs != (CODEC_PARTS,):
        raise PayloadError(f"unsupported payload codecs {list(codecs)}; upgrade syft-flwr-gdrive")
    try:
        (index_len,) = _LEN.unpack(_read_exact(stream, _LEN.size, "index length"))
        if index_len > min(MAX_INDEX_BYTES, size):
            raise PayloadError("payload index is larger than the payload")
        index = json.loads(_read_exact(stream, index_len, "index"))
        proto_len = int(index["message"])
        entries = list(index["arrays"])
        run_info = index.get("run")
    except (ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, PayloadError):
            raise
        raise PayloadError(f"payload index is malformed ({type(exc).__name__})") from None
    inline_total = sum(int(e.get("size", 0)) for e in entries if isinstance(e, dict) and not e.get("blob"))
    if _LEN.size + index_len + proto_len + inline_total != size:
        raise PayloadError("payload sizes in the index do not add up")
    shell = _from_proto(_read_exact(stream, proto_len, "message"))
    if not entries:
        return shell, run_info
    content = shell.content
    for entry in entries:
        try:
            record_key, array_key = str(entry["record"]), str(entry["key"])
            dtype, shape, stype = str(entry["dtype"]), tuple(int(d) for d in entry["shape"]), str(entry["stype"])
            n = int(entry["size"])
            locator = entry.get("blob")
        except (KeyError, TypeError, ValueError):
            raise PayloadError("payload index has a malformed array entry") from None
        if locator:
            if fetch_blob is None:
                raise PayloadError("payload refers to a shared blob but this transport cannot fetch blobs")
            data = fetch_blob(str(locator), str(entry.get("sha256", "")), n)
            if len(data) != n or hashlib.sha256(data).hexdigest() != entry.get("sha256"):
                raise PayloadError(f"shared blob for array {array_key!r} does not match its SHA-256")
        else:
            data = _read_exact(stream, n, f"array {array_key!r}")
        record = content.get(record_key)
        if not isinstance(record, ArrayRecord):
            raise PayloadError(f"array {array_key!r} belongs to {record_key!r}, which is not an ArrayRecord")
        record[array_key] = Array(dtype=dtype, shape=shape, stype=stype, data=data)
    return shell, run_info


def message_from_bytes(payload: bytes, codecs: tuple[str, ...] = (CODEC_PARTS,)) -> Message:
    import io

    return decode_message(io.BytesIO(payload), len(payload), codecs=codecs)


def _from_proto(data: bytes) -> Message:
    proto = ProtoMessage()
    try:
        proto.ParseFromString(data)
        return message_from_proto(proto)
    except Exception as exc:  # protobuf raises DecodeError, serde may raise ValueError/KeyError
        raise PayloadError(f"payload is not a Flower message ({type(exc).__name__})") from None
