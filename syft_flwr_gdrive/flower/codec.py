"""Flower Message <-> payload bytes, and node ids from emails.

Two payload codecs:

* ``flwr-message-proto``: the whole Message with Flower's protobuf serde. Small
  and simple; read for compatibility.
* ``sfg-flwr-parts-v1`` (what we write): the Message with its arrays taken out,
  serialised with Flower's serde, followed by each array's raw bytes::

      uint32 index length | index (JSON) | message proto | array data ...

  The array bytes are never copied or re-encoded (Flower's ``Array.data`` is
  streamed as is), so a 1 GiB model costs no second 1 GiB in memory. An array
  may instead live in a shared *blob*, encrypted once with a fresh key (the index,
  itself inside each recipient's sealed message, gives where to fetch it, its key
  and cipher, and the digest of its plaintext): a global model broadcast to N clients is then
  uploaded once, not N times, and a client that already has it fetches nothing.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from typing import BinaryIO
from typing import TypedDict

from flwr.app import Array
from flwr.app import ArrayRecord
from flwr.app import Message
from flwr.app import RecordDict
from flwr.app.message.message import make_message
from flwr.common.constant import SUPERLINK_NODE_ID
from flwr.common.serde import message_from_proto
from flwr.common.serde import message_to_proto
from flwr.proto.message_pb2 import Message as ProtoMessage  # pylint: disable=no-name-in-module
from typing_extensions import Unpack

from syft_flwr_gdrive.base.segments import Buffer
from syft_flwr_gdrive.crypto.blobseal import BLOB_CHACHA
from syft_flwr_gdrive.crypto.blobseal import BLOB_CIPHERS
from syft_flwr_gdrive.crypto.blobseal import BLOB_DIGESTS
from syft_flwr_gdrive.crypto.blobseal import sealed_blob_size
from syft_flwr_gdrive.transport.contract import TransportError

SERVER_NODE_ID = SUPERLINK_NODE_ID
CODEC_PROTO = "flwr-message-proto"
CODEC_PARTS = "sfg-flwr-parts-v1"
_LEN = struct.Struct(">I")
MAX_INDEX_BYTES = 16 * 1024 * 1024
MAX_ARRAYS = 100_000  # entries in one index
MAX_NAME_CHARS = 1024  # record and array keys
MAX_DIMS = 64
MAX_TYPE_CHARS = 64  # dtype and stype names ("float32", "numpy.ndarray"; legacy Parameters leave them empty)
_LOCATOR = re.compile(r"^[A-Za-z0-9_-]{1,256}$")  # Drive file ids and memory-transport locators
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
BLOB_KEY_BYTES = 32


class PayloadError(ValueError):
    """A payload is not a Flower message we can read."""


@dataclass(frozen=True)
class BlobRef:
    """A shared array: where it is stored, its plaintext's digest (``"<algorithm>:<hex>"``, see
    ``crypto.content_digest``) and size, the key it is encrypted with and the cipher (``crypto.BLOB_CIPHERS``)."""

    locator: str
    digest: str
    size: int
    key: bytes
    cipher: str
    # A blob stored in parts: the locators of the parts after the first (``locator``), and the ciphertext
    # bytes in each part but the last. The sender names them before it uploads them, so a receiver can
    # download part k while part k+1 is still uploading.
    parts: tuple[str, ...] = ()
    part_bytes: int = 0

    @property
    def locators(self) -> tuple[str, ...]:
        """Every file the blob is stored in, in order."""
        return (self.locator, *self.parts)

    def part_sizes(self, stored_size: int) -> list[int]:
        """The stored (ciphertext) size of each part, for a blob of ``stored_size`` stored bytes."""
        return split_sizes(stored_size, self.part_bytes, len(self.parts) + 1)


def split_sizes(stored_size: int, part_bytes: int, count: int) -> list[int]:
    """``count`` parts of ``part_bytes`` each, the last one holding what is left of ``stored_size``."""
    return [part_bytes] * (count - 1) + [stored_size - part_bytes * (count - 1)]


# Given an array's data, store it as a shared blob and return its reference, or None to keep it inline.
BlobPlacer = Callable[[bytes], "BlobRef | None"]
# Given a reference, return the blob's plaintext, verified against ref.digest (the decoder does not hash it again).
BlobFetcher = Callable[[BlobRef], bytes]


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
                    "record": record_key,
                    "key": array_key,
                    "dtype": array.dtype,
                    "shape": list(array.shape),
                    "stype": array.stype,
                    "size": len(data),
                    "blob": None,
                }
                placed = place_blob(array.data) if place_blob is not None else None
                if placed is not None:
                    entry.update(
                        blob_digest=placed.digest,
                        blob=placed.locator,
                        blob_key=base64.b64encode(placed.key).decode("ascii"),
                        blob_cipher=placed.cipher,
                    )
                    if placed.parts:
                        entry.update(blob_parts=list(placed.parts), blob_part_bytes=placed.part_bytes)
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


class DecodeOptions(TypedDict, total=False):
    """How a payload may be read: the codecs accepted, where shared blobs come from, the size limit."""

    codecs: tuple[str, ...]
    fetch_blob: BlobFetcher | None
    max_bytes: int | None


def decode_message(stream: BinaryIO, size: int, **options: Unpack[DecodeOptions]) -> Message:
    """Read a Message from ``size`` payload bytes at the stream's position."""
    return decode_message_and_run(stream, size, **options)[0]


def decode_message_and_run(
    stream: BinaryIO,
    size: int,
    *,
    codecs: tuple[str, ...] = (CODEC_PARTS,),
    fetch_blob: BlobFetcher | None = None,
    max_bytes: int | None = None,
) -> tuple[Message, Any]:
    """The Message and the sender's ``run_info`` (None if absent; unchecked: the caller validates it).

    Everything wrong with the payload raises ``PayloadError`` (a peer wrote it: no other
    exception may escape); only a ``TransportError`` from fetching a blob, which may be
    transient, passes through. ``max_bytes`` bounds the message with its shared blobs.
    """
    try:
        return _decode(stream, size, codecs, fetch_blob, max_bytes)
    except (PayloadError, TransportError):
        raise
    except Exception as exc:  # noqa: BLE001 - whatever a hostile payload provokes, it is a bad payload
        raise PayloadError(f"payload could not be decoded ({type(exc).__name__})") from None


def _decode(
    stream: BinaryIO, size: int, codecs: tuple[str, ...], fetch_blob: BlobFetcher | None, max_bytes: int | None
) -> tuple[Message, Any]:
    if max_bytes is not None and size > max_bytes:
        raise PayloadError(f"payload of {size} bytes exceeds the {max_bytes}-byte limit")
    if codecs == (CODEC_PROTO,):
        return _from_proto(_read_exact(stream, size, "message")), None
    if codecs != (CODEC_PARTS,):
        raise PayloadError(f"unsupported payload codecs {_short(list(codecs))}; upgrade syft-flwr-gdrive")
    (index_len,) = _LEN.unpack(_read_exact(stream, _LEN.size, "index length"))
    if index_len > min(MAX_INDEX_BYTES, size):
        raise PayloadError("payload index is larger than the payload")
    try:
        index = json.loads(_read_exact(stream, index_len, "index"))
    except (ValueError, RecursionError):
        raise PayloadError("payload index is not valid JSON") from None
    proto_len, entries = parse_index(index)
    run_info = index.get("run")
    inline_total = sum(e.size for e in entries if e.blob is None)
    if _LEN.size + index_len + proto_len + inline_total != size:
        raise PayloadError("payload sizes in the index do not add up")
    blob_total = sum(e.blob.size for e in entries if e.blob is not None)
    if max_bytes is not None and size + blob_total > max_bytes:
        raise PayloadError(
            f"message with its shared blobs is {size + blob_total} bytes, over the {max_bytes}-byte limit"
        )
    shell = _from_proto(_read_exact(stream, proto_len, "message"))
    if not entries:
        return shell, run_info
    content = shell.content
    for entry in entries:
        record = content.get(entry.record)
        if not isinstance(record, ArrayRecord):
            raise PayloadError(
                f"array {_short(entry.key)} belongs to {_short(entry.record)}, which is not an ArrayRecord"
            )
        if entry.blob is not None:
            if fetch_blob is None:
                raise PayloadError("payload refers to a shared blob but this transport cannot fetch blobs")
            data = fetch_blob(entry.blob)  # checked against entry.blob.digest by the fetcher, while it decrypted
            if len(data) != entry.size:
                raise PayloadError(f"shared blob for array {_short(entry.key)} is not {entry.size} bytes")
        else:
            data = _read_exact(stream, entry.size, f"array {_short(entry.key)}")
        record[entry.key] = Array(dtype=entry.dtype, shape=entry.shape, stype=entry.stype, data=data)
    return shell, run_info


def parts_layout(head: bytes) -> list[int] | None:
    """The regions of a parts payload from its first bytes: [index and message, inline array, ...].

    None while ``head`` is too short to tell; [] if it is not a valid parts payload. The opener
    uses this only to keep each array in its own buffer (so decoding hands it over without a
    copy); the payload is decoded, and so validated, only after it was verified.
    """
    if len(head) < _LEN.size:
        return None
    (index_len,) = _LEN.unpack(head[: _LEN.size])
    if index_len > MAX_INDEX_BYTES:
        return []
    if len(head) < _LEN.size + index_len:
        return None
    try:
        index = json.loads(head[_LEN.size : _LEN.size + index_len])
        proto_len, entries = parse_index(index)
    except (ValueError, RecursionError, PayloadError):
        return []
    return [_LEN.size + index_len + proto_len, *(e.size for e in entries if e.blob is None)]


@dataclass(frozen=True)
class IndexEntry:
    """One array of a parts payload, validated."""

    record: str
    key: str
    dtype: str
    shape: tuple[int, ...]
    stype: str
    size: int
    blob: BlobRef | None


def parse_index(index: Any) -> tuple[int, list[IndexEntry]]:
    """Validate a parts payload's index (a peer wrote it); returns (message proto length, entries)."""
    if not isinstance(index, dict) or not {"message", "arrays"} <= set(index):
        raise PayloadError("payload index must be an object with 'message' and 'arrays'")  # other keys: ignored
    proto_len, arrays = index["message"], index["arrays"]
    if not _is_count(proto_len):
        raise PayloadError("payload index: 'message' is not a byte count")
    if not isinstance(arrays, list) or len(arrays) > MAX_ARRAYS:
        raise PayloadError(f"payload index: 'arrays' is not a list of at most {MAX_ARRAYS} entries")
    return proto_len, [_parse_entry(i, raw) for i, raw in enumerate(arrays)]


_ENTRY_FIELDS = {"record", "key", "dtype", "shape", "stype", "size", "blob"}
# formats 1 and 2 wrote sha256 (a bare SHA-256) and no cipher; format 3 writes blob_digest and blob_cipher;
# format 4 adds blob_parts and blob_part_bytes for a blob stored in parts
_BLOB_FIELDS = {"sha256", "blob_digest", "blob_key", "blob_cipher", "blob_parts", "blob_part_bytes"}
MAX_BLOB_PARTS = 1024
MIN_BLOB_PART_BYTES = 1024 * 1024  # a peer may not make a receiver fetch a model in tiny pieces
_DIGEST = re.compile(r"^([a-z0-9]{1,16}):([0-9a-f]{64})$")


def _parse_entry(i: int, raw: Any) -> IndexEntry:
    where = f"payload index entry {i}"
    if not isinstance(raw, dict):
        raise PayloadError(f"{where} is not an object")
    has_blob = raw.get("blob") is not None
    if not _ENTRY_FIELDS <= set(raw) <= (_ENTRY_FIELDS | _BLOB_FIELDS if has_blob else _ENTRY_FIELDS):
        raise PayloadError(f"{where} has missing or unknown fields")
    record, key, dtype, stype = raw["record"], raw["key"], raw["dtype"], raw["stype"]
    if not (
        isinstance(record, str)
        and isinstance(key, str)
        and len(record) <= MAX_NAME_CHARS
        and len(key) <= MAX_NAME_CHARS
    ):
        raise PayloadError(f"{where}: record and key must be strings of at most {MAX_NAME_CHARS} characters")
    if not all(isinstance(t, str) and len(t) <= MAX_TYPE_CHARS and t.isprintable() for t in (dtype, stype)):
        raise PayloadError(
            f"{where}: dtype or stype is not a type name of at most {MAX_TYPE_CHARS} printable characters"
        )
    shape = raw["shape"]
    if not (isinstance(shape, list) and len(shape) <= MAX_DIMS and all(_is_count(d) for d in shape)):
        raise PayloadError(f"{where}: shape is not a list of at most {MAX_DIMS} non-negative integers")
    size = raw["size"]
    if not _is_count(size):
        raise PayloadError(f"{where}: size is not a byte count")
    blob = None
    if has_blob:
        locator, b64 = raw["blob"], raw.get("blob_key")
        if not (isinstance(locator, str) and _LOCATOR.match(locator)):
            raise PayloadError(f"{where}: the blob locator is not a file id")
        digest = _blob_digest(where, raw)
        try:
            blob_key = base64.b64decode(b64, validate=True) if isinstance(b64, str) else b""
        except (binascii.Error, ValueError):
            blob_key = b""
        if len(blob_key) != BLOB_KEY_BYTES:
            raise PayloadError(
                f"{where}: the blob has no valid {BLOB_KEY_BYTES}-byte key (unencrypted blobs are refused)"
            )
        cipher = raw.get("blob_cipher", BLOB_CHACHA)  # versions 1 and 2 name none: theirs is ChaCha20-Poly1305
        if not isinstance(cipher, str) or cipher not in BLOB_CIPHERS:
            raise PayloadError(
                f"{where}: the blob's cipher {_short(cipher)} is not one this build reads "
                f"({', '.join(sorted(BLOB_CIPHERS))}); the sender runs a newer release. Fix: upgrade syft-flwr-gdrive"
            )
        parts, part_bytes = _blob_parts(where, raw, locator, size)
        blob = BlobRef(locator, digest, size, blob_key, cipher, parts, part_bytes)
    return IndexEntry(record, key, dtype, tuple(shape), stype, size, blob)


def _blob_parts(where: str, raw: dict[str, Any], locator: str, size: int) -> tuple[tuple[str, ...], int]:
    """The entry's further parts and part size (none for a blob in one file), consistent with its size."""
    if "blob_parts" not in raw and "blob_part_bytes" not in raw:
        return (), 0
    parts, part_bytes = raw.get("blob_parts"), raw.get("blob_part_bytes")
    if not (
        isinstance(parts, list)
        and 1 <= len(parts) < MAX_BLOB_PARTS
        and all(isinstance(p, str) and _LOCATOR.match(p) for p in parts)
        and len({locator, *parts}) == len(parts) + 1
    ):
        raise PayloadError(
            f"{where}: blob_parts is not a list of 1 to {MAX_BLOB_PARTS - 1} distinct file ids other than the blob's"
        )
    stored = sealed_blob_size(size)
    if not (
        isinstance(part_bytes, int)
        and _is_count(part_bytes)
        and part_bytes >= MIN_BLOB_PART_BYTES
        and part_bytes * len(parts) < stored <= part_bytes * (len(parts) + 1)
    ):
        raise PayloadError(
            f"{where}: blob_part_bytes is not a part size (at least {MIN_BLOB_PART_BYTES} bytes) that splits the "
            f"blob's {stored} stored bytes into {len(parts) + 1} parts"
        )
    return tuple(parts), part_bytes


def _blob_digest(where: str, raw: dict[str, Any]) -> str:
    """The entry's blob digest as ``"<algorithm>:<hex>"``: its blob_digest, or a previous format's sha256."""
    if ("sha256" in raw) == ("blob_digest" in raw):
        raise PayloadError(f"{where}: a blob needs exactly one of blob_digest and sha256")
    if "sha256" in raw:
        sha = raw["sha256"]
        if not (isinstance(sha, str) and _HEX64.match(sha)):
            raise PayloadError(f"{where}: the blob's sha256 is not 64 lowercase hex digits")
        return f"sha256:{sha}"
    found = _DIGEST.match(raw["blob_digest"]) if isinstance(raw["blob_digest"], str) else None
    if found is None:
        raise PayloadError(f"{where}: the blob's digest is not <algorithm>:<64 lowercase hex digits>")
    if found.group(1) not in BLOB_DIGESTS:
        raise PayloadError(
            f"{where}: the blob's digest algorithm {found.group(1)!r} is not one this build reads "
            f"({', '.join(sorted(BLOB_DIGESTS))}); the sender runs a newer release. Fix: upgrade syft-flwr-gdrive"
        )
    return found.group(0)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63


def _short(value: Any, limit: int = 80) -> str:
    """A peer-chosen value for an error text: repr (escapes newlines and control characters), bounded."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def message_from_bytes(payload: bytes, codecs: tuple[str, ...] = (CODEC_PARTS,)) -> Message:
    return decode_message(io.BytesIO(payload), len(payload), codecs=codecs)


def _from_proto(data: bytes) -> Message:
    proto = ProtoMessage()
    try:
        proto.ParseFromString(data)
        return message_from_proto(proto)
    except Exception as exc:  # protobuf raises DecodeError, serde may raise ValueError/KeyError
        raise PayloadError(f"payload is not a Flower message ({type(exc).__name__})") from None
