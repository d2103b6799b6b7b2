"""The large-payload streaming pieces: chunked upload reads, sealing and opening, the on-disk blob cache."""

from __future__ import annotations

import functools
import hashlib
import io
import os

import pytest
from blake3 import blake3
from flwr.app import Array
from flwr.app import ArrayRecord
from flwr.app import Message
from flwr.app import RecordDict
from flwr.supercore.task_identity import TaskIdentity

from syft_flwr_gdrive.base.segments import SegmentReader
from syft_flwr_gdrive.crypto.blobseal import content_digest
from syft_flwr_gdrive.crypto.chunks import CHUNK
from syft_flwr_gdrive.crypto.failures import CryptoError
from syft_flwr_gdrive.crypto.keys import Identity
from syft_flwr_gdrive.crypto.pins import PinStore
from syft_flwr_gdrive.crypto.seal import Sealer
from syft_flwr_gdrive.flower.codec import decode_message
from syft_flwr_gdrive.flower.codec import encode_message
from syft_flwr_gdrive.flower.shared_blobs import BlobCache
from syft_flwr_gdrive.flower.shared_blobs import BlobPlacer
from syft_flwr_gdrive.mailbox.envelope import Envelope
from syft_flwr_gdrive.mailbox.envelope import decode_file
from syft_flwr_gdrive.transport.contract import Routing
from syft_flwr_gdrive.transport.drive.api import DriveError
from syft_flwr_gdrive.transport.drive.api import _StreamMedia
from syft_flwr_gdrive.transport.memory import MemoryHub
from syft_flwr_gdrive.transport.memory import MemoryTransport
from tests.helpers.envelopes import encode
from tests.helpers.mailboxes import store
from tests.helpers.routings import request_routing

SPOOL_IN_MEMORY = 8 * 1024 * 1024  # beyond this, bodies used to spool to disk

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


def test_stream_media_reads_the_next_chunk_ahead_in_a_worker_and_still_serves_resends():
    import threading

    data = os.urandom(900 * KIB)

    class Recording(io.BytesIO):
        def __init__(self, raw: bytes) -> None:
            super().__init__(raw)
            self.readers: list[tuple[int, str]] = []

        def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
            self.readers.append((self.tell(), threading.current_thread().name))
            return super().readinto(buffer)

    src = Recording(data)
    media = _StreamMedia(src, len(data), "application/octet-stream", 256 * KIB, read_ahead=True)
    try:
        got = [bytes(media.getbytes(k * 256 * KIB, 256 * KIB)) for k in range(2)]
        assert bytes(media.getbytes(0, 256 * KIB)) == data[: 256 * KIB]  # a resend from the start
        got += [bytes(media.getbytes(k * 256 * KIB, 256 * KIB)) for k in range(2, 4)]
    finally:
        media.close()
    assert b"".join(got) == data
    ahead = {pos for pos, name in src.readers if name.startswith("upload-read-ahead")}
    assert 256 * KIB in ahead and 3 * 256 * KIB in ahead  # read while the previous chunk was being sent
    short = _StreamMedia(
        io.BytesIO(b"x" * 300 * KIB), 600 * KIB, "application/octet-stream", 256 * KIB, read_ahead=True
    )
    try:
        assert len(short.getbytes(0, 256 * KIB)) == 256 * KIB
        with pytest.raises(DriveError, match="real size"):  # the read-ahead's failure, where the chunk is asked for
            short.getbytes(256 * KIB, 256 * KIB)
    finally:
        short.close()


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
    routing = request_routing(
        1, "m1", sender="alice@x.com", recipient="bob@x.com", app="flwr/t", created_at=1.0, ttl=60.0
    )
    return alice, bob, routing


@pytest.mark.parametrize("size", [0, 5, CHUNK, 2 * CHUNK + 7, SPOOL_IN_MEMORY + 3])
def test_sealed_stream_reads_back_the_digested_bytes_and_opens(size):
    alice, bob, routing = _sealers()
    plain = os.urandom(size)
    sealed = alice.seal(routing, SegmentReader([plain]), size)
    try:
        body = bytearray()
        while piece := sealed.read(300 * KIB + 1):  # odd read sizes cross header, chunks and trailer
            body += piece
        assert len(body) == sealed.size
        sealed.seek(sealed.size // 2)  # an upload resend seeks back
        assert sealed.read(100) == bytes(body[sealed.size // 2 : sealed.size // 2 + 100])
        sealed.seek(0)  # and reading it all again gives the same bytes, signature included
        assert sealed.read() == bytes(body)
    finally:
        sealed.close()
    digest = hashlib.sha256(body).hexdigest()
    out, n = bob.open(routing, io.BytesIO(bytes(body)), len(body), payload_sha256=digest)
    assert n == size and out.read() == plain


@pytest.mark.parametrize("order", ["trailer-first", "skip-a-chunk", "resend-twice"])
def test_a_sealed_stream_read_out_of_order_signs_every_chunk_once(order):
    """The signature is made when a read first reaches the trailer: chunks skipped before are digested
    then, chunks read again (an upload's resend) are not digested twice."""
    alice, bob, routing = _sealers()
    plain = os.urandom(3 * CHUNK + 5)
    sealed = alice.seal(routing, SegmentReader([plain]), len(plain))
    try:
        if order == "trailer-first":
            sealed.seek(sealed.size - 68)
            trailer = sealed.read()
        elif order == "skip-a-chunk":
            sealed.read(CHUNK // 2)
            sealed.seek(41 + 2 * (CHUNK + 16) + 7)  # chunk 1 never read before the trailer
            trailer = sealed.read()[-68:]
        else:
            for _ in range(2):
                sealed.seek(0)
                sealed.read(2 * CHUNK)
            trailer = sealed.read()[-68:]
        sealed.seek(0)
        body = sealed.read()
    finally:
        sealed.close()
    assert len(body) == sealed.size and body.endswith(trailer)
    out, n = bob.open(routing, io.BytesIO(body), len(body))
    assert n == len(plain) and out.read() == plain


def test_open_checks_the_envelope_digest_in_its_own_pass():
    alice, bob, routing = _sealers()
    sealed = alice.seal(routing, io.BytesIO(b"x" * 5000), 5000)
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
    msg = Message(
        RecordDict({"arrays": ArrayRecord({"w": Array(dtype="uint8", shape=(len(data),), stype="raw", data=data)})}),
        7,
        "train",
        group_id="1",
    )
    msg.metadata.__dict__["_message_id"] = f"m{seed}"
    return msg


def test_blob_cache_keeps_the_model_on_disk_not_in_memory(task_identity):
    hub = MemoryHub()
    server, client = MemoryTransport("ds@x.com", hub), MemoryTransport("a@x.com", hub)
    placer = BlobPlacer(store(server), min_bytes=1024)
    cache = BlobCache(store(client))
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
    assert (
        decode_message(io.BytesIO(p2), len(p2), fetch_blob=fetch).content["arrays"]["w"].data
        == m2.content["arrays"]["w"].data
    )
    decode_message(io.BytesIO(p1), len(p1), fetch_blob=fetch)  # only the last blob is kept
    assert client.call_counts()["get_blob"] == 3
    cache.close()
    assert decode_message(io.BytesIO(p1), len(p1), fetch_blob=fetch).content["arrays"]["w"].data == first


# -- opening while downloading ----------------------------------------------------------------


def test_pipe_sink_consumes_in_order_in_its_worker_and_reports_its_failure():
    import threading

    from syft_flwr_gdrive.mailbox.pipe import PipeError
    from syft_flwr_gdrive.mailbox.pipe import PipeSink

    got, threads, fronts = [], set(), []
    pipe = PipeSink(lambda piece: (got.append(bytes(piece)), threads.add(threading.get_ident())), front=fronts.append)
    for i in range(20):
        assert pipe.write(bytes([i]) * 3) == 3
    pipe.finish()
    assert got == [bytes([i]) * 3 for i in range(20)] and len(fronts) == 20
    assert threads and threading.get_ident() not in threads  # consumed beside the writer, not in it
    with pytest.raises(PipeError):
        pipe.write(b"late")

    def boom(piece):
        raise ValueError("bad chunk")

    failing = PipeSink(boom)
    with pytest.raises(ValueError, match="bad chunk"):
        for _ in range(100):  # the failure surfaces at a later write or at finish
            failing.write(b"x")
        failing.finish()


def test_chunk_reader_hands_a_whole_region_over_and_drops_what_a_big_read_copied():
    from syft_flwr_gdrive.base.segments import ChunkReader

    region = os.urandom(5000)
    reader = ChunkReader(release_at=1000)
    for part in (b"head", region, b"ab", b"cd"):
        reader.append(part)
    assert reader.read(2) == b"he" and reader.read(2) == b"ad"
    assert reader.read(5000) is region  # exactly one buffer: no copy
    with pytest.raises(io.UnsupportedOperation):
        reader.seek(0)  # handed over and dropped
    assert reader.read() == b"abcd" and reader.read(3) == b""
    small = ChunkReader(release_at=1000)
    small.append(b"abc")
    small.append(b"def")
    assert small.read() == b"abcdef" and small.seek(1) == 1 and small.read(2) == b"bc"  # small reads keep all


def _sealed_body(alice, routing, plain: bytes) -> bytes:
    from syft_flwr_gdrive.crypto.seal import CODEC_SEAL
    from syft_flwr_gdrive.flower.codec import CODEC_PARTS
    from syft_flwr_gdrive.mailbox.envelope import header_bytes

    sealed = alice.seal(routing, SegmentReader([plain]), len(plain))
    env = Envelope(
        run_id=routing.run_id,
        message_id=routing.message_id,
        sender=routing.sender,
        recipient=routing.recipient,
        kind=routing.kind,
        app=routing.app,
        created_at=routing.created_at,
        ttl=routing.ttl,
        codecs=(CODEC_SEAL, CODEC_PARTS),
        size=sealed.size,
    )
    return header_bytes(env) + sealed.read(sealed.size)


def _sink_open(bob, routing, body: bytes, piece: int, layout=None):
    from syft_flwr_gdrive.mailbox.streamed import SealedBodySink

    seen = []
    sink = SealedBodySink(bob, routing, on_header=seen.append, layout_of=lambda env: layout)
    try:
        for start in range(0, len(body), piece):
            sink.write(body[start : start + piece])
        env, plain, size = sink.finish()
    except BaseException:
        sink.abort()
        raise
    assert len(seen) == 1 and seen[0] is env
    return plain, size


@pytest.mark.parametrize("piece", [1, 7, 64 * KIB + 3, CHUNK + 16, 8 * CHUNK])
def test_sealed_body_sink_opens_a_body_written_in_pieces_of_any_size(piece):
    alice, bob, routing = _sealers()
    routing = Routing(**{**routing.__dict__, "created_at": 4e9})  # not expired
    plain = os.urandom(2 * CHUNK + 5 if piece > 1000 else 3000)
    plain_reader, size = _sink_open(bob, routing, _sealed_body(alice, routing, plain), piece)
    assert size == len(plain) and plain_reader.read() == plain


@pytest.mark.parametrize(
    "where",
    [
        "envelope",
        "sealed-header",
        "first-chunk",
        "chunk-boundary",
        "last-chunk",
        "signature",
        "end-marker",
        "cut",
        "padded",
    ],
)
def test_sealed_body_sink_refuses_any_changed_byte_and_hands_nothing_out(where):
    from syft_flwr_gdrive.mailbox.envelope import EnvelopeError

    alice, bob, routing = _sealers()
    routing = Routing(**{**routing.__dict__, "created_at": 4e9})
    plain = os.urandom(2 * CHUNK + 5)
    body = bytearray(_sealed_body(alice, routing, plain))
    payload_at = len(body) - (len(plain) + 3 * 16 + 41 + 68)
    pos = {
        "envelope": 30,
        "sealed-header": payload_at + 10,
        "first-chunk": payload_at + 41 + 5,
        "chunk-boundary": payload_at + 41 + CHUNK + 16,
        "last-chunk": len(body) - 68 - 3,
        "signature": len(body) - 10,
        "end-marker": len(body) - 1,
    }.get(where)
    if pos is not None:
        body[pos] ^= 0x01
    elif where == "cut":
        del body[-100:]
    else:
        body += b"\0"
    with pytest.raises((CryptoError, EnvelopeError)):
        _sink_open(bob, routing, bytes(body), 64 * KIB + 1)


def test_a_parts_payload_is_opened_into_one_buffer_per_array(task_identity):
    from syft_flwr_gdrive.flower.codec import parts_layout

    alice, bob, routing = _sealers()
    routing = Routing(**{**routing.__dict__, "created_at": 4e9})
    msg = _model(3 * CHUNK, 5)
    msg.content["arrays"]["v"] = Array(dtype="uint8", shape=(10,), stype="raw", data=b"0123456789")
    plain = b"".join(bytes(s) for s in encode_message(msg))
    index_len = int.from_bytes(plain[:4], "big")
    layout = parts_layout(plain[: 4 + index_len])
    assert layout is not None and layout[1:] == [3 * CHUNK + 16, 10] and sum(layout) == len(plain)
    assert parts_layout(plain[:3]) is None and parts_layout(b"\0\0\0\2{]") == []
    reader, size = _sink_open(bob, routing, _sealed_body(alice, routing, plain), 8 * CHUNK, layout=parts_layout)
    region = reader._chunks[1]
    back = decode_message(reader, size)
    assert back.content["arrays"]["w"].data == msg.content["arrays"]["w"].data
    assert back.content["arrays"]["w"].data is region  # handed over, not copied
    assert back.content["arrays"]["v"].data == b"0123456789"


def test_tail_sink_reads_back_behind_the_writer_in_blocks_and_reports_a_failure(tmp_path):
    from syft_flwr_gdrive.mailbox.pipe import TailSink

    data = os.urandom(5 * 1000 + 7)
    got: list[bytes] = []
    with open(tmp_path / "spool", "w+b") as fh:
        sink = TailSink(fh, lambda view: got.append(bytes(view)), block=1000)
        for start in range(0, len(data), 1500):
            sink.write(data[start : start + 1500])
        sink.finish()
        assert b"".join(got) == data and max(len(g) for g in got) <= 1000
        fh.seek(0)
        assert fh.read() == data  # the file keeps it all

    def boom(view):
        raise ValueError("bad block")

    with open(tmp_path / "spool2", "w+b") as fh:
        failing = TailSink(fh, boom, block=10)
        with pytest.raises(ValueError, match="bad block"):
            failing.write(b"x" * 100)
            failing.finish()


@pytest.mark.parametrize("tamper", [None, "first", "last", "cut"])
def test_a_big_blob_is_decrypted_while_it_downloads_and_kept_on_disk(task_identity, monkeypatch, tamper):
    from syft_flwr_gdrive.flower import shared_blobs as blobs
    from syft_flwr_gdrive.flower.codec import PayloadError

    monkeypatch.setattr(blobs, "SPOOL_IN_MEMORY", 64 * KIB)  # the big-blob path, at a test's size
    hub = MemoryHub()
    server, client = MemoryTransport("ds@x.com", hub), MemoryTransport("a@x.com", hub)
    placer = BlobPlacer(store(server), min_bytes=1024)
    msg = _model(2 * CHUNK + 3, 4)
    p = b"".join(bytes(s) for s in encode_message(msg, place_blob=placer))
    cache = BlobCache(store(client))
    fetch = functools.partial(cache.fetch, owner="ds@x.com")
    if tamper is not None:
        [(locator, (owner, stored))] = hub.blobs.items()
        at = {"first": 10, "last": len(stored) - 1}.get(tamper)
        hub.blobs[locator] = (
            owner,
            stored[:-5] if at is None else stored[:at] + bytes([stored[at] ^ 1]) + stored[at + 1 :],
        )
        with pytest.raises(PayloadError):
            decode_message(io.BytesIO(p), len(p), fetch_blob=fetch)
        return
    want = msg.content["arrays"]["w"].data
    assert decode_message(io.BytesIO(p), len(p), fetch_blob=fetch).content["arrays"]["w"].data == want
    assert decode_message(io.BytesIO(p), len(p), fetch_blob=fetch).content["arrays"]["w"].data == want
    assert client.call_counts()["get_blob"] == 1  # the second came from the kept ciphertext
    cache.close()


def test_segment_reader_lends_a_view_within_one_segment_only():
    reader = SegmentReader([b"abc", b"defgh"])
    assert bytes(reader.view(3, 5)) == b"defgh" and bytes(reader.view(0, 2)) == b"ab"
    assert reader.view(2, 2) is None and reader.view(6, 5) is None and reader.view(0, 0) is None


# -- the blob placer: de-duplication without a hashing pass before new content's upload ----------


def test_new_content_is_hashed_beside_its_upload_and_known_content_is_not_uploaded_again(monkeypatch):
    import threading

    from syft_flwr_gdrive.flower import shared_blobs as blobs

    hashed_in: list[str] = []
    real = blobs.content_digest

    def spy(data: bytes) -> str:
        hashed_in.append(threading.current_thread().name)
        return real(data)

    monkeypatch.setattr(blobs, "content_digest", spy)
    hub = MemoryHub()
    server = MemoryTransport("ds@x.com", hub)
    placer = BlobPlacer(store(server), min_bytes=1024)
    data = os.urandom(300 * KIB)
    ref = placer(data)
    assert ref is not None and ref.digest == "blake3:" + blake3(data).hexdigest()
    assert len(hashed_in) == 1 and hashed_in[0].startswith("blob-hash")  # beside the upload, not before it
    assert placer(data) is ref and len(hashed_in) == 1  # the same object within a push: no second hash
    placer.end_push()
    copy = bytes(bytearray(data))  # equal content, another object (a later push): hashed in full, then reused
    assert placer(copy) is ref and len(hashed_in) == 2 and hashed_in[1] == threading.current_thread().name
    assert server.call_counts()["put_blob"] == 1


def test_content_that_only_shares_the_fingerprint_is_uploaded_as_a_new_blob():
    from syft_flwr_gdrive.flower.shared_blobs import sample_fingerprint

    hub = MemoryHub()
    server = MemoryTransport("ds@x.com", hub)
    placer = BlobPlacer(store(server), min_bytes=1024)
    original = os.urandom(300 * KIB)
    first = placer(original)
    data = bytearray(original)
    data[1000] ^= 1  # outside every sampled slice: same fingerprint, different content
    changed = bytes(data)
    assert sample_fingerprint(changed) == sample_fingerprint(original) and changed != original
    second = placer(changed)
    assert first is not None and second is not None and second.locator != first.locator
    assert second.digest == content_digest(changed) != first.digest
    assert server.call_counts()["put_blob"] == 2


def test_a_failed_blob_upload_leaves_nothing_behind(monkeypatch):
    hub = MemoryHub()
    server = MemoryTransport("ds@x.com", hub)
    placer = BlobPlacer(store(server), min_bytes=1024)
    data = os.urandom(300 * KIB)

    def refuse(*args, **kwargs):
        raise DriveError("quota")

    monkeypatch.setattr(placer.mailbox, "put_blob", refuse)
    with pytest.raises(DriveError):
        placer(data)
    monkeypatch.undo()
    ref = placer(data)  # tried again: uploaded, as nothing was recorded for the failed attempt
    assert ref is not None and server.call_counts()["put_blob"] == 1 and placer.locators() == [ref.locator]
