"""Blobs stored in parts: the message naming them goes out while they upload, and a receiver fetches
each part as it lands (memory transport; the Drive path is in tests/drive/test_blob_parts_drive.py)."""

from __future__ import annotations

import functools
import io
import json
import os
import struct
import threading
import time

import numpy as np
import pytest
from flwr.app import Array
from flwr.app import ArrayRecord
from flwr.app import Message
from flwr.app import RecordDict
from flwr.supercore.task_identity import TaskIdentity

from syft_flwr_gdrive.crypto.blobseal import sealed_blob_size
from syft_flwr_gdrive.crypto.chunks import CHUNK
from syft_flwr_gdrive.crypto.chunks import TAG
from syft_flwr_gdrive.flower import shared_blobs
from syft_flwr_gdrive.flower.codec import PayloadError
from syft_flwr_gdrive.flower.codec import decode_message
from syft_flwr_gdrive.flower.codec import encode_message
from syft_flwr_gdrive.flower.shared_blobs import BlobCache
from syft_flwr_gdrive.flower.shared_blobs import BlobPlacer
from syft_flwr_gdrive.transport.contract import TransportError
from syft_flwr_gdrive.transport.memory import MemoryHub
from syft_flwr_gdrive.transport.memory import MemoryTransport
from tests.helpers.mailboxes import store

PART = CHUNK + TAG  # the smallest part a receiver accepts is 1 MiB: one AEAD chunk
SERVER, CLIENT = "ds@x.com", "a@x.com"


@pytest.fixture(autouse=True)
def identity():
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 9, 1


def _model(nbytes: int) -> tuple[Message, bytes]:
    data = os.urandom(nbytes)
    msg = Message(
        RecordDict({"arrays": ArrayRecord({"w": Array(dtype="uint8", shape=(nbytes,), stype="raw", data=data)})}),
        7,
        "train",
        group_id="1",
    )
    return msg, data


def _index(payload: bytes) -> dict:
    (n,) = struct.unpack(">I", payload[:4])
    return json.loads(payload[4 : 4 + n])


class GatedParts:
    """Wraps a transport's ``put_blob_part``: parts after the first wait for ``release`` (or fail)."""

    def __init__(self, transport: MemoryTransport, fail: bool = False) -> None:
        self.release = threading.Event()
        self.stored: list[tuple[str, float]] = []
        self._real = transport.put_blob_part
        self._fail = fail
        transport.put_blob_part = self  # type: ignore[method-assign]

    def __call__(self, app, locator, data) -> None:
        if self.stored:
            assert self.release.wait(30)
            if self._fail:
                raise TransportError("Drive refused the upload (quota)")
        self._real(app, locator, data)
        self.stored.append((locator, time.monotonic()))


def test_a_big_blob_is_named_in_parts_before_they_upload_and_read_part_by_part():
    hub = MemoryHub()
    server, client = MemoryTransport(SERVER, hub), MemoryTransport(CLIENT, hub)
    gate = GatedParts(server)
    placer = BlobPlacer(store(server), min_bytes=1024, part_bytes=PART)
    msg, data = _model(3 * CHUNK + 5)  # 4 AEAD chunks: 4 parts of one chunk each
    payload = b"".join(bytes(s) for s in encode_message(msg, place_blob=placer))

    [entry] = _index(payload)["arrays"]
    assert len(entry["blob_parts"]) == 3 and entry["blob_part_bytes"] == PART
    assert len(gate.stored) <= 1  # the message exists while the parts after the first still wait

    cache = BlobCache(store(client))
    got: dict[str, object] = {}

    def receive() -> None:
        fetch = functools.partial(cache.fetch, owner=SERVER, wait_until=time.time() + 30)
        got["data"] = decode_message(io.BytesIO(payload), len(payload), fetch_blob=fetch).content["arrays"]["w"].data
        got["at"] = time.monotonic()

    receiver = threading.Thread(target=receive)
    receiver.start()
    time.sleep(0.2)
    assert receiver.is_alive() and "data" not in got  # waiting for part 2, not failing
    released = time.monotonic()
    gate.release.set()
    placer.wait_for([entry["blob"]])
    receiver.join(30)
    assert got["data"] == data and got["at"] > released
    assert [loc for loc, _ in gate.stored] == [entry["blob"], *entry["blob_parts"]]
    assert sorted(placer.locators()) == sorted(loc for loc, _ in gate.stored)  # every part is deleted with it
    assert client.call_counts()["get_blob"] == 4
    placer.close()


def test_a_small_blob_stays_one_file():
    hub = MemoryHub()
    server = MemoryTransport(SERVER, hub)
    placer = BlobPlacer(store(server), min_bytes=1024, part_bytes=PART)
    msg, _ = _model(CHUNK)  # one chunk: one part's worth
    payload = b"".join(bytes(s) for s in encode_message(msg, place_blob=placer))
    [entry] = _index(payload)["arrays"]
    assert "blob_parts" not in entry and server.call_counts()["put_blob"] == 1
    assert server.call_counts().get("reserve_blob", 0) == 0


def test_a_huge_blob_gets_bigger_parts_not_more_of_them():
    placer = BlobPlacer(store(MemoryTransport(SERVER, MemoryHub())), part_bytes=PART)
    stored = sealed_blob_size(10 * 1024**3)  # 10 GiB at 1 MiB parts would be 10,240 of them
    parts, per_part = placer._parts_for(stored)
    assert per_part % PART == 0 and parts == -(-stored // per_part) <= shared_blobs.MAX_PARTS


def test_a_part_that_fails_to_upload_fails_the_push_and_the_receiver_names_it():
    hub = MemoryHub()
    server, client = MemoryTransport(SERVER, hub), MemoryTransport(CLIENT, hub)
    gate = GatedParts(server, fail=True)
    placer = BlobPlacer(store(server), min_bytes=1024, part_bytes=PART)
    msg, data = _model(3 * CHUNK)
    payload = b"".join(bytes(s) for s in encode_message(msg, place_blob=placer))
    [entry] = _index(payload)["arrays"]
    gate.release.set()
    with pytest.raises(TransportError, match="quota"):
        placer.wait_for([entry["blob"], *entry["blob_parts"]])
    # forgotten as content (uploaded again next time); its stored part is still listed, to be deleted
    assert placer.locators() == sorted([entry["blob"], *entry["blob_parts"]])
    cache = BlobCache(store(client))
    fetch = functools.partial(cache.fetch, owner=SERVER, wait_until=time.time() + 0.3)
    with pytest.raises(PayloadError, match=f"shared blob refused: blob {entry['blob_parts'][0]} does not exist"):
        decode_message(io.BytesIO(payload), len(payload), fetch_blob=fetch)
    gate._fail = False
    again = placer(np.frombuffer(data, dtype=np.uint8).tobytes())
    assert again is not None and again.locator != entry["blob"]
    placer.wait_for(again.locators)
    placer.close()


def test_every_request_naming_a_failed_blob_fails_also_one_that_waits_after_the_failure_was_seen():
    """Two requests of one push name one blob; the second's wait may begin only after the first's saw the
    upload fail (a loaded machine): it must fail too, not count as sent (test_grid's refused-part test got one
    error reply instead of two)."""
    server = MemoryTransport(SERVER, MemoryHub())
    gate = GatedParts(server, fail=True)
    placer = BlobPlacer(store(server), min_bytes=1024, part_bytes=PART)
    msg, _ = _model(3 * CHUNK)
    payload = b"".join(bytes(s) for s in encode_message(msg, place_blob=placer))
    [entry] = _index(payload)["arrays"]
    blob = [entry["blob"], *entry["blob_parts"]]
    gate.release.set()
    for _ in range(2):  # the first request's wait, then the second's
        with pytest.raises(TransportError, match="quota"):
            placer.wait_for(blob)
    placer.close()


def test_without_a_deadline_a_missing_part_is_not_waited_for():
    hub = MemoryHub()
    server, client = MemoryTransport(SERVER, hub), MemoryTransport(CLIENT, hub)
    gate = GatedParts(server)
    placer = BlobPlacer(store(server), min_bytes=1024, part_bytes=PART)
    msg, _ = _model(2 * CHUNK)
    payload = b"".join(bytes(s) for s in encode_message(msg, place_blob=placer))
    started = time.monotonic()
    with pytest.raises(PayloadError, match="does not exist"):
        decode_message(
            io.BytesIO(payload),
            len(payload),
            fetch_blob=functools.partial(BlobCache(store(client)).fetch, owner=SERVER),
        )
    assert time.monotonic() - started < 5
    gate.release.set()
    placer.close()


def test_close_abandons_a_running_upload_at_its_next_read():
    """Ctrl-C during an upload: close() does not wait for the remaining parts (exit stays fast)."""
    hub = MemoryHub()
    server = MemoryTransport(SERVER, hub)
    gate = GatedParts(server)  # part 2 waits for the gate: the upload is "running" when close comes
    placer = BlobPlacer(store(server), min_bytes=1024, part_bytes=PART)
    msg, _ = _model(3 * CHUNK)
    encode_message(msg, place_blob=placer)
    started = time.monotonic()
    threading.Timer(0.3, gate.release.set).start()  # the stuck request ends; the next read must not happen
    placer.close()
    assert time.monotonic() - started < shared_blobs.CANCEL_WAIT
    time.sleep(0.2)
    assert len(gate.stored) == 1  # part 2 read its data only after the close: refused; part 3 never started
