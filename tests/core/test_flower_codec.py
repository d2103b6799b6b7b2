"""The parts codec: arrays travel as raw bytes, large broadcast arrays as shared blobs."""

from __future__ import annotations

import functools
import io
import json
import struct

import numpy as np
import pytest
from flwr.app import Array
from flwr.app import ArrayRecord
from flwr.app import ConfigRecord
from flwr.app import Error
from flwr.app import Message
from flwr.app import MetricRecord
from flwr.app import RecordDict
from flwr.supercore.task_identity import TaskIdentity

from syft_flwr_gdrive.crypto.blobseal import BLOB_AESGCM
from syft_flwr_gdrive.crypto.blobseal import BLOB_CHACHA
from syft_flwr_gdrive.crypto.blobseal import content_digest
from syft_flwr_gdrive.flower.codec import CODEC_PARTS
from syft_flwr_gdrive.flower.codec import CODEC_PROTO
from syft_flwr_gdrive.flower.codec import PayloadError
from syft_flwr_gdrive.flower.codec import decode_message
from syft_flwr_gdrive.flower.codec import encode_message
from syft_flwr_gdrive.flower.codec import message_from_bytes
from syft_flwr_gdrive.flower.codec import message_to_bytes
from syft_flwr_gdrive.flower.shared_blobs import BlobCache
from syft_flwr_gdrive.flower.shared_blobs import BlobPlacer
from syft_flwr_gdrive.transport.memory import MemoryHub
from syft_flwr_gdrive.transport.memory import MemoryTransport
from tests.helpers.mailboxes import store


@pytest.fixture(autouse=True)
def identity():
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 9, 1


def sample(big: int = 10) -> Message:
    content = RecordDict(
        {
            "arrays": ArrayRecord([np.arange(big, dtype=np.float32), np.eye(3)]),
            "more": ArrayRecord([np.array([1, 2, 3], dtype=np.int8)]),
            "config": ConfigRecord({"lr": 0.1, "name": "x"}),
            "metrics": MetricRecord({"acc": 0.5}),
        }
    )
    msg = Message(content, 77, "train", group_id="3")
    msg.metadata.__dict__["_message_id"] = "abc"
    return msg


def assert_same(a: Message, b: Message) -> None:
    assert a.metadata.message_id == b.metadata.message_id and a.metadata.group_id == b.metadata.group_id
    assert list(a.content.keys()) == list(b.content.keys())
    for key in ("arrays", "more"):
        for x, y in zip(a.content[key].to_numpy_ndarrays(), b.content[key].to_numpy_ndarrays()):
            assert x.dtype == y.dtype and np.array_equal(x, y)
    assert dict(b.content["config"]) == {"lr": 0.1, "name": "x"}
    assert dict(b.content["metrics"]) == {"acc": 0.5}


def test_roundtrip_inline():
    assert_same(sample(), message_from_bytes(message_to_bytes(sample())))


def test_legacy_parameters_arrays_roundtrip_inline_and_as_blobs():
    """flwr's server_fn compatibility layer sends arrays with an empty dtype and shape (found by the e2e run)."""
    hub = MemoryHub()
    placer = BlobPlacer(store(MemoryTransport("ds@x.com", hub)), min_bytes=1024)
    legacy = {
        "0": Array(dtype="", shape=(), stype="numpy.ndarray", data=b"\x93NUMPY" + bytes(5000)),
        "1": Array(dtype="", shape=(), stype="", data=b"tiny"),
    }
    msg = Message(RecordDict({"fitins.parameters": ArrayRecord(legacy)}), 77, "train")
    p = b"".join(bytes(s) for s in encode_message(msg, place_blob=placer))
    cache = BlobCache(store(MemoryTransport("a@x.com", hub)))
    back = decode_message(io.BytesIO(p), len(p), fetch_blob=functools.partial(cache.fetch, owner="ds@x.com"))
    for key, array in legacy.items():
        got = back.content["fitins.parameters"][key]
        assert (got.dtype, got.shape, got.stype, got.data) == (array.dtype, array.shape, array.stype, array.data)


def test_error_messages_roundtrip():
    reply = Message(Error(code=1, reason="ClientApp raised ValueError"), reply_to=sample())
    back = message_from_bytes(message_to_bytes(reply))
    assert back.has_error() and back.error.reason == "ClientApp raised ValueError"


def test_legacy_proto_codec_is_still_read():
    from flwr.common.serde import message_to_proto

    data = message_to_proto(sample()).SerializeToString()
    assert_same(sample(), decode_message(io.BytesIO(data), len(data), codecs=(CODEC_PROTO,)))


def test_big_arrays_go_to_one_encrypted_shared_blob_and_are_fetched_once():
    hub = MemoryHub()
    server, client = MemoryTransport("ds@x.com", hub), MemoryTransport("a@x.com", hub)
    placer = BlobPlacer(store(server), min_bytes=1024)
    msg = sample(big=100_000)  # 400 kB array -> blob; the small ones stay inline
    payloads = [b"".join(bytes(s) for s in encode_message(msg, place_blob=placer)) for _ in range(5)]
    assert server.call_counts()["put_blob"] == 1 and placer.uploaded_bytes == 400_128 + 16  # one AEAD tag per MiB
    assert all(len(p) < 10_000 for p in payloads)  # the broadcast array is not in the messages
    [(_locator, (_owner, stored))] = hub.blobs.items()
    assert msg.content["arrays"]["0"].data[:4096] not in stored  # only ciphertext is stored
    cache = BlobCache(store(client))
    for p in payloads:
        assert_same(
            msg, decode_message(io.BytesIO(p), len(p), fetch_blob=functools.partial(cache.fetch, owner="ds@x.com"))
        )
    assert client.call_counts()["get_blob"] == 1


def _blob_payload(hub):
    server = MemoryTransport("ds@x.com", hub)
    return b"".join(
        bytes(s) for s in encode_message(sample(big=100_000), place_blob=BlobPlacer(store(server), min_bytes=1024))
    )


def test_tampered_blob_is_rejected():
    hub = MemoryHub()
    p = _blob_payload(hub)
    [(locator, (owner, data))] = hub.blobs.items()
    hub.blobs[locator] = (owner, data[:-1] + bytes([data[-1] ^ 1]))
    cache = BlobCache(store(MemoryTransport("a@x.com", hub)))
    with pytest.raises(PayloadError, match="does not decrypt"):
        decode_message(io.BytesIO(p), len(p), fetch_blob=functools.partial(cache.fetch, owner="ds@x.com"))


def _index_of(payload: bytes) -> dict:
    (index_len,) = struct.unpack(">I", payload[:4])
    return json.loads(payload[4 : 4 + index_len])


def _with_blob_entry(payload: bytes, **changes) -> bytes:
    """``payload`` with its one blob entry's fields changed (a value of None removes the field)."""
    (index_len,) = struct.unpack(">I", payload[:4])
    index = _index_of(payload)
    [entry] = [e for e in index["arrays"] if e["blob"] is not None]
    for name, value in changes.items():
        if value is None:
            entry.pop(name)
        else:
            entry[name] = value
    raw = json.dumps(index).encode()
    return struct.pack(">I", len(raw)) + raw + payload[4 + index_len :]


def _fetch_as_client(hub, payload: bytes) -> Message:
    cache = BlobCache(store(MemoryTransport("a@x.com", hub)))
    return decode_message(
        io.BytesIO(payload), len(payload), fetch_blob=functools.partial(cache.fetch, owner="ds@x.com")
    )


def test_blobs_are_aes_gcm_with_a_blake3_digest_and_a_previous_release_blob_still_opens(monkeypatch):
    """Since message format 3 a blob's index entry names its cipher and digest algorithm; one that names
    neither (formats 1 and 2) is ChaCha20-Poly1305 with a bare SHA-256."""
    hub = MemoryHub()
    p = _blob_payload(hub)
    [entry] = [e for e in _index_of(p)["arrays"] if e["blob"]]
    assert entry["blob_cipher"] == BLOB_AESGCM and entry["blob_digest"].startswith("blake3:") and "sha256" not in entry
    assert_same(sample(big=100_000), _fetch_as_client(hub, p))

    # what a previous release stored, and its index entry
    monkeypatch.setattr("syft_flwr_gdrive.flower.shared_blobs.BLOB_CIPHER", BLOB_CHACHA)
    monkeypatch.setattr(
        "syft_flwr_gdrive.flower.shared_blobs.content_digest", functools.partial(content_digest, algorithm="sha256")
    )
    old_hub = MemoryHub()
    new_style = _blob_payload(old_hub)
    [entry] = [e for e in _index_of(new_style)["arrays"] if e["blob"]]
    sha = entry["blob_digest"].removeprefix("sha256:")
    old = _with_blob_entry(new_style, blob_cipher=None, blob_digest=None, sha256=sha)
    assert_same(sample(big=100_000), _fetch_as_client(old_hub, old))


@pytest.mark.parametrize("field", ["blob_digest", "sha256"])
def test_a_blob_that_does_not_match_its_digest_is_refused(monkeypatch, field):
    hub = MemoryHub()
    if field == "sha256":
        monkeypatch.setattr("syft_flwr_gdrive.flower.shared_blobs.BLOB_CIPHER", BLOB_CHACHA)
    p = _blob_payload(hub)
    other = "1" * 64
    changes = {"blob_digest": f"blake3:{other}"} if field == "blob_digest" else {"blob_cipher": None}
    if field == "sha256":
        changes.update(blob_digest=None, sha256=other)
    with pytest.raises(PayloadError, match="does not match its digest"):
        _fetch_as_client(hub, _with_blob_entry(p, **changes))


@pytest.mark.parametrize(
    "changes, error",
    [
        ({"blob_digest": "md5:" + "0" * 64}, "digest algorithm 'md5' is not one this build reads.*Fix: upgrade"),
        ({"blob_digest": "blake3:" + "0" * 63}, "not <algorithm>:<64 lowercase hex digits>"),
        ({"blob_digest": ["blake3"]}, "not <algorithm>:<64 lowercase hex digits>"),
        ({"sha256": "0" * 64}, "exactly one of blob_digest and sha256"),
        ({"blob_digest": None}, "exactly one of blob_digest and sha256"),
    ],
)
def test_a_bad_blob_digest_is_named_before_any_fetch(changes, error):
    _refused_before_any_fetch(changes, error)


def _refused_before_any_fetch(changes: dict, error: str) -> None:
    """The blob entry with ``changes`` is refused with ``error`` before anything is downloaded."""
    hub = MemoryHub()
    p = _with_blob_entry(_blob_payload(hub), **changes)
    client = MemoryTransport("a@x.com", hub)
    cache = BlobCache(store(client))
    with pytest.raises(PayloadError, match=error):
        decode_message(io.BytesIO(p), len(p), fetch_blob=functools.partial(cache.fetch, owner="ds@x.com"))
    assert client.call_counts().get("get_blob", 0) == 0


@pytest.mark.parametrize(
    "changes, error",
    [
        ({"blob_parts": ["p1"]}, "blob_part_bytes is not a part size"),
        ({"blob_part_bytes": 2**20}, "blob_parts is not a list"),
        ({"blob_parts": "p1", "blob_part_bytes": 2**20}, "blob_parts is not a list"),
        ({"blob_parts": [], "blob_part_bytes": 2**20}, "blob_parts is not a list of 1 to"),
        ({"blob_parts": ["../x"], "blob_part_bytes": 2**20}, "distinct file ids"),
        ({"blob_parts": ["p1", "p1"], "blob_part_bytes": 2**20}, "distinct file ids"),
        ({"blob_parts": ["p1"] * 2000, "blob_part_bytes": 2**20}, "distinct file ids"),
        ({"blob_parts": ["p1"], "blob_part_bytes": 1024}, r"at least 1048576 bytes\) that splits"),
        ({"blob_parts": ["p1"], "blob_part_bytes": 2**20}, "into 2 parts"),  # 400 KB is not two 1 MiB parts
        ({"blob_parts": ["p1"], "blob_part_bytes": True}, "blob_part_bytes is not a part size"),
    ],
)
def test_bad_blob_parts_are_named_before_any_fetch(changes, error):
    _refused_before_any_fetch(changes, error)


def test_a_blob_whose_own_locator_is_listed_again_as_a_part_is_refused():
    hub = MemoryHub()
    p = _blob_payload(hub)
    [entry] = [e for e in _index_of(p)["arrays"] if e["blob"]]
    with pytest.raises(PayloadError, match="distinct file ids other than the blob's"):
        _fetch_as_client(hub, _with_blob_entry(p, blob_parts=[entry["blob"]], blob_part_bytes=2**20))


def test_a_blob_named_with_another_cipher_than_its_own_is_refused():
    hub = MemoryHub()
    p = _with_blob_entry(_blob_payload(hub), blob_cipher=None)  # an AES blob passed off as ChaCha20
    with pytest.raises(PayloadError, match="does not decrypt"):
        _fetch_as_client(hub, p)


@pytest.mark.parametrize("cipher", ["rot13", "", ["aes-256-gcm"], 3])
def test_a_blob_cipher_this_build_does_not_read_is_named_before_any_fetch(cipher):
    hub = MemoryHub()
    p = _with_blob_entry(_blob_payload(hub), blob_cipher=cipher)
    client = MemoryTransport("a@x.com", hub)
    cache = BlobCache(store(client))
    with pytest.raises(PayloadError, match="not one this build reads.*Fix: upgrade"):
        decode_message(io.BytesIO(p), len(p), fetch_blob=functools.partial(cache.fetch, owner="ds@x.com"))
    assert client.call_counts().get("get_blob", 0) == 0


def test_a_blob_is_fetched_only_from_the_sender():
    hub = MemoryHub()
    p = _blob_payload(hub)  # stored by ds@x.com; a message "from" eve names it
    client = MemoryTransport("a@x.com", hub)
    cache = BlobCache(store(client))
    with pytest.raises(PayloadError, match="not one of eve@x.com's blobs"):
        decode_message(io.BytesIO(p), len(p), fetch_blob=functools.partial(cache.fetch, owner="eve@x.com"))


def test_a_blob_over_the_message_limit_is_refused_before_it_is_fetched():
    hub = MemoryHub()
    p = _blob_payload(hub)
    client = MemoryTransport("a@x.com", hub)
    cache = BlobCache(store(client))
    with pytest.raises(PayloadError, match="limit"):
        decode_message(
            io.BytesIO(p), len(p), max_bytes=100_000, fetch_blob=functools.partial(cache.fetch, owner="ds@x.com")
        )
    assert client.call_counts().get("get_blob", 0) == 0


@pytest.mark.parametrize("cut", [0, 3, 10, -1])
def test_truncated_or_garbage_payloads_raise_payload_error(cut):
    good = message_to_bytes(sample())
    bad = good[:cut] if cut >= 0 else good + b"extra"
    with pytest.raises(PayloadError):
        decode_message(io.BytesIO(bad), len(bad), codecs=(CODEC_PARTS,))


def test_unknown_codec_is_named():
    with pytest.raises(PayloadError, match="unsupported payload codecs"):
        decode_message(io.BytesIO(b""), 0, codecs=("zstd",))


def test_array_data_is_not_copied_when_encoding():
    msg = sample(big=1000)
    data = msg.content["arrays"]["0"].data
    segments = encode_message(msg)
    assert any(isinstance(s, memoryview) and s.obj is data for s in segments)


def test_a_transport_without_shared_blobs_gets_big_arrays_inline():
    """Blobs are an optional part of the contract: with the base class's defaults, nothing is uploaded."""
    from syft_flwr_gdrive.transport.contract import Transport

    class NoBlobs(MemoryTransport):
        shares_blobs = False
        put_blob = Transport.put_blob
        get_blob = Transport.get_blob
        list_my_blobs = Transport.list_my_blobs

    server = NoBlobs("ds@x.com", MemoryHub())
    placer = BlobPlacer(store(server), min_bytes=1024)
    msg = sample(big=100_000)
    payload = b"".join(bytes(s) for s in encode_message(msg, place_blob=placer))
    assert len(payload) > 400_000 and "put_blob" not in server.call_counts() and placer.uploaded_bytes == 0
    assert_same(msg, decode_message(io.BytesIO(payload), len(payload)))
    assert server.list_my_blobs("flwr/t") == []
