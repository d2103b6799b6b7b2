"""The parts codec: arrays travel as raw bytes, large broadcast arrays as shared blobs."""

from __future__ import annotations

import io

import numpy as np
import pytest
from flwr.app import ArrayRecord, ConfigRecord, Error, Message, MetricRecord, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from syft_flwr_gdrive.blobs import BlobCache, BlobPlacer
from syft_flwr_gdrive.flower_codec import (
    CODEC_PARTS, CODEC_PROTO, PayloadError, decode_message, encode_message, message_from_bytes, message_to_bytes,
)
from syft_flwr_gdrive.transport.memory import MemoryHub, MemoryTransport


@pytest.fixture(autouse=True)
def identity():
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 9, 1


def sample(big: int = 10) -> Message:
    content = RecordDict({
        "arrays": ArrayRecord([np.arange(big, dtype=np.float32), np.eye(3)]),
        "more": ArrayRecord([np.array([1, 2, 3], dtype=np.int8)]),
        "config": ConfigRecord({"lr": 0.1, "name": "x"}),
        "metrics": MetricRecord({"acc": 0.5}),
    })
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


def test_error_messages_roundtrip():
    reply = Message(Error(code=1, reason="ClientApp raised ValueError"), reply_to=sample())
    back = message_from_bytes(message_to_bytes(reply))
    assert back.has_error() and back.error.reason == "ClientApp raised ValueError"


def test_legacy_proto_codec_is_still_read():
    from flwr.common.serde import message_to_proto

    data = message_to_proto(sample()).SerializeToString()
    assert_same(sample(), decode_message(io.BytesIO(data), len(data), codecs=(CODEC_PROTO,)))


def test_big_arrays_go_to_one_shared_blob_and_are_fetched_once():
    hub = MemoryHub()
    server, client = MemoryTransport("ds@x.com", hub), MemoryTransport("a@x.com", hub)
    placer = BlobPlacer(server, "flwr/t", min_bytes=1024)
    msg = sample(big=100_000)  # 400 kB array -> blob; the small ones stay inline
    payloads = [b"".join(bytes(s) for s in encode_message(msg, place_blob=placer)) for _ in range(5)]
    assert server.call_counts()["put_blob"] == 1 and placer.uploaded_bytes == 400_128
    assert all(len(p) < 10_000 for p in payloads)  # the broadcast array is not in the messages
    cache = BlobCache(client)
    for p in payloads:
        assert_same(msg, decode_message(io.BytesIO(p), len(p), fetch_blob=cache))
    assert client.call_counts()["get_blob"] == 1


def test_tampered_blob_is_rejected():
    hub = MemoryHub()
    server = MemoryTransport("ds@x.com", hub)
    p = b"".join(bytes(s) for s in encode_message(sample(big=100_000), place_blob=BlobPlacer(server, "flwr/t", min_bytes=1024)))
    [(locator, (owner, data))] = hub.blobs.items()
    hub.blobs[locator] = (owner, data[:-1] + b"\x00")
    with pytest.raises(PayloadError, match="SHA-256"):
        decode_message(io.BytesIO(p), len(p), fetch_blob=BlobCache(MemoryTransport("a@x.com", hub)))


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
