"""The large-payload streaming pieces: chunked upload reads, sealing and opening, the on-disk blob cache."""

from __future__ import annotations

import functools
import hashlib
import io
import os

import pytest
from flwr.app import Array, ArrayRecord, Message, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from syft_flwr_gdrive.blobs import BlobCache, BlobPlacer
from syft_flwr_gdrive.crypto import CHUNK, CryptoError, Identity, PinStore, Sealer, SPOOL_IN_MEMORY
from syft_flwr_gdrive.drive.api import DriveError, _StreamMedia
from syft_flwr_gdrive.flower_codec import decode_message, encode_message
from syft_flwr_gdrive.transport.contract import Routing
from syft_flwr_gdrive.transport.envelope import Envelope, decode_file, encode
from syft_flwr_gdrive.transport.memory import MemoryHub, MemoryTransport
from syft_flwr_gdrive.transport.segments import SegmentReader

KIB = 1024


# -- upload chunks -------------------------------------------------------------------------


def test_stream_media_reads_chunks_and_rereads_a_resent_one_from_a_seekable_stream():
    data = os.urandom(700 * KIB)
    src = io.BytesIO(b"prefix" + data)
    src.seek(6)  # the upload starts at the stream's position, not at 0
    media = _StreamMedia(src, len(data), "application/octet-stream", 256 * KIB)
    first = media.getbytes(0, 256 * KIB)
    second = media.getbytes(256 * KIB, 256 * KIB)
    assert isinstance(first, bytearray) and bytes(first) == data[: 256 * KIB]
    assert bytes(second) == data[256 * KIB : 512 * KIB]
    assert bytes(media.getbytes(100, 256 * KIB)) == data[100 : 100 + 256 * KIB]  # Drive kept 100 bytes: resend
    assert bytes(first) == data[: 256 * KIB]  # a body handed out earlier is never changed
    assert bytes(media.getbytes(512 * KIB, 256 * KIB)) == data[512 * KIB :]  # the short last chunk


def test_stream_media_over_a_segment_reader_and_a_short_stream():
    parts = [os.urandom(1000), os.urandom(300 * KIB), b"tail"]
    whole = b"".join(parts)
    media = _StreamMedia(SegmentReader(parts), len(whole), "application/octet-stream", 256 * KIB)
    got = bytes(media.getbytes(0, 256 * KIB)) + bytes(media.getbytes(256 * KIB, 256 * KIB))
    assert got == whole
    short = _StreamMedia(io.BytesIO(b"abc"), 10, "application/octet-stream", 256 * KIB)
    with pytest.raises(DriveError, match="real size"):
        short.getbytes(0, 10)


# -- sealing and opening ---------------------------------------------------------------------------------


def _sealers() -> tuple[Sealer, Sealer, Routing]:
    alice, bob = Sealer(Identity.ephemeral(), PinStore(None)), Sealer(Identity.ephemeral(), PinStore(None))
    alice.learn("bob@x.com", bob.identity.public)
    bob.learn("alice@x.com", alice.identity.public)
    routing = Routing(app="flwr/t", run_id=1, message_id="m1", reply_to="", kind="request",
                      sender="alice@x.com", recipient="bob@x.com", created_at=1.0, ttl=60.0)
    return alice, bob, routing


@pytest.mark.parametrize("size", [0, 5, CHUNK, 2 * CHUNK + 7, SPOOL_IN_MEMORY + 3])
def test_sealed_stream_reads_back_the_digested_bytes_and_opens(size):
    alice, bob, routing = _sealers()
    plain = os.urandom(size)
    sealed, digest = alice.seal(routing, SegmentReader([plain]), size)
    try:
        body = bytearray()
        while piece := sealed.read(300 * KIB + 1):  # odd read sizes cross header, chunks and trailer
            body += piece
        assert len(body) == sealed.size and hashlib.sha256(body).hexdigest() == digest
        sealed.seek(sealed.size // 2)  # an upload resend seeks back
        assert sealed.read(100) == bytes(body[sealed.size // 2 : sealed.size // 2 + 100])
    finally:
        sealed.close()
    out, n = bob.open(routing, io.BytesIO(bytes(body)), len(body), payload_sha256=digest)
    assert n == size and out.read() == plain


def test_open_checks_the_envelope_digest_in_its_own_pass():
    alice, bob, routing = _sealers()
    sealed, digest = alice.seal(routing, io.BytesIO(b"x" * 5000), 5000)
    body = sealed.read(sealed.size)
    sealed.close()
    with pytest.raises(CryptoError, match="SHA-256 does not match"):
        bob.open(routing, io.BytesIO(body), len(body), payload_sha256="0" * 64)


def test_decode_file_leaves_the_digest_to_a_later_pass_only_when_asked():
    env = Envelope(run_id=1, message_id="m", sender="a@x.com", recipient="b@x.com", kind="request", app="flwr/t")
    body = bytearray(encode(env, b"payload" * 100))
    body[-1] ^= 1  # the payload no longer matches the header's SHA-256
    with pytest.raises(Exception, match="SHA-256"):
        decode_file(io.BytesIO(bytes(body)))
    got, offset = decode_file(io.BytesIO(bytes(body)), digest_checked_later=lambda e: True)
    assert got.message_id == "m" and len(body) - offset == got.size


# -- the blob cache ---------------------------------------------------------------------------


@pytest.fixture
def task_identity():
    """Flower's Message() reads the run and node of the task it runs in."""
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 9, 1


def _model(nbytes: int, seed: int) -> Message:
    data = bytes([seed]) * 16 + os.urandom(nbytes)
    msg = Message(RecordDict({"arrays": ArrayRecord({"w": Array(dtype="uint8", shape=(len(data),), stype="raw", data=data)})}),
                  7, "train", group_id="1")
    msg.metadata.__dict__["_message_id"] = f"m{seed}"
    return msg


def test_blob_cache_keeps_the_model_on_disk_not_in_memory(task_identity):
    hub = MemoryHub()
    server, client = MemoryTransport("ds@x.com", hub), MemoryTransport("a@x.com", hub)
    placer = BlobPlacer(server, "flwr/t", min_bytes=1024)
    cache = BlobCache(client, "flwr/t")
    fetch = functools.partial(cache.fetch, owner="ds@x.com")
    m1 = _model(300 * KIB, 1)
    p1 = b"".join(bytes(s) for s in encode_message(m1, place_blob=placer))
    first = decode_message(io.BytesIO(p1), len(p1), fetch_blob=fetch).content["arrays"]["w"].data
    again = decode_message(io.BytesIO(p1), len(p1), fetch_blob=fetch).content["arrays"]["w"].data
    assert first == again == m1.content["arrays"]["w"].data
    assert first is not again  # each fetch hands out its own copy: the cache holds no plaintext
    assert client.call_counts()["get_blob"] == 1  # ... and the second came from the kept file
    placer.end_push()
    m2 = _model(300 * KIB, 2)
    p2 = b"".join(bytes(s) for s in encode_message(m2, place_blob=placer))
    assert decode_message(io.BytesIO(p2), len(p2), fetch_blob=fetch).content["arrays"]["w"].data == m2.content["arrays"]["w"].data
    decode_message(io.BytesIO(p1), len(p1), fetch_blob=fetch)  # only the last blob is kept
    assert client.call_counts()["get_blob"] == 3
    cache.close()
    assert decode_message(io.BytesIO(p1), len(p1), fetch_blob=fetch).content["arrays"]["w"].data == first
