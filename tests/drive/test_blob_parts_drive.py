"""A blob in parts through the real googleapiclient and the fake Drive: ids reserved with
``files.generateIds``, the receiver downloading part k while the sender uploads part k+1, and a part
that never comes named after the wait (drive-assumptions rows 13 and 16)."""

from __future__ import annotations

import functools
import io
import os
import threading
import time

import pytest
from flwr.app import Array
from flwr.app import ArrayRecord
from flwr.app import Message
from flwr.app import RecordDict
from flwr.supercore.task_identity import TaskIdentity

from syft_flwr_gdrive.crypto.chunks import CHUNK
from syft_flwr_gdrive.crypto.chunks import TAG
from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.flower.codec import decode_message
from syft_flwr_gdrive.flower.codec import encode_message
from syft_flwr_gdrive.flower.shared_blobs import BlobCache
from syft_flwr_gdrive.flower.shared_blobs import BlobPlacer
from syft_flwr_gdrive.mailbox.ledger import Ledger
from syft_flwr_gdrive.mailbox.mailbox import Mailbox
from syft_flwr_gdrive.transport.contract import BlobRefused
from syft_flwr_gdrive.transport.drive.transport import DriveTransport
from tests.helpers.fake_service import drive_api_for

APP = "flwr/parts"
DS, DO = "ds@x.com", "do@x.com"
PART = 2 * (CHUNK + TAG)


@pytest.fixture(autouse=True)
def identity():
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 9, 1


def _mailbox(drive: FakeDriveServer, me: str, peer: str) -> Mailbox:
    transport = DriveTransport(drive_api_for(drive.url, me, chunk_size=4 * 1024 * 1024), me)
    box = Mailbox(transport, APP, [peer], Ledger(None))
    box.prepare()
    return box


class Timed:
    """Records when each call of a mailbox method returned."""

    def __init__(self, box: Mailbox, name: str) -> None:
        self.ends: list[float] = []
        real = getattr(box, name)

        def timed(*args, **kwargs):
            result = real(*args, **kwargs)
            self.ends.append(time.monotonic())
            return result

        setattr(box, name, timed)


class PartsInStep:
    """Orders a blob's parts by events, not by speed: the first part's upload waits for ``go``, each later one
    for the receiver to have finished its first download (fails after 60 s if it never does). So "the
    receiver downloads part 1 while part 3 is not stored yet" holds on any machine if the product pipelines,
    and never if it does not."""

    def __init__(self, sender: Mailbox, receiver: Mailbox) -> None:
        self.go = threading.Event()
        self.first_download = threading.Event()
        self.late = False  # a later part gave up waiting for the first download
        put, get = sender.put_blob_part, receiver.get_blob
        started: list[int] = []

        def put_in_step(*args, **kwargs):
            started.append(1)
            if len(started) == 1:
                assert self.go.wait(60)
            elif not self.first_download.wait(60):
                self.late = True
            return put(*args, **kwargs)

        def get_and_tell(*args, **kwargs):
            result = get(*args, **kwargs)
            self.first_download.set()
            return result

        sender.put_blob_part = put_in_step  # type: ignore[method-assign]
        receiver.get_blob = get_and_tell  # type: ignore[method-assign]


def test_the_receiver_downloads_early_parts_while_later_ones_upload():
    with FakeDriveServer() as drive:
        server, client = _mailbox(drive, DS, DO), _mailbox(drive, DO, DS)
        uploads, downloads = Timed(server, "put_blob_part"), Timed(client, "get_blob")
        steps = PartsInStep(server, client)
        placer = BlobPlacer(server, min_bytes=1024, part_bytes=PART)
        data = os.urandom(6 * CHUNK)
        msg = Message(
            RecordDict({"a": ArrayRecord({"w": Array(dtype="uint8", shape=(len(data),), stype="raw", data=data)})}),
            7,
            "train",
            group_id="1",
        )
        payload = b"".join(bytes(s) for s in encode_message(msg, place_blob=placer))  # returns before the parts
        assert uploads.ends == []
        steps.go.set()
        cache = BlobCache(client)
        fetch = functools.partial(cache.fetch, owner=DS, wait_until=time.time() + 60)
        got: dict[str, bytes] = {}
        receiver = threading.Thread(
            target=lambda: got.setdefault(
                "w", decode_message(io.BytesIO(payload), len(payload), fetch_blob=fetch).content["a"]["w"].data
            )
        )
        receiver.start()
        placer.wait_for(placer.locators())  # as a push does before it counts its request sent
        placer.close()
        receiver.join(60)
        assert got["w"] == data
        assert len(uploads.ends) == len(downloads.ends) == 3
        assert not steps.late and downloads.ends[0] < uploads.ends[-1]  # part 1 in hand before part 3 was stored
        by_method = client.transport.call_counts()
        assert by_method.get("files.get", 0) >= 3  # each part vetted (owner, folder, size) before download
        server.delete_own(placer.locators())
        assert server.my_blobs() == []


def test_a_part_that_never_comes_is_named_after_the_wait():
    with FakeDriveServer() as drive:
        server, client = _mailbox(drive, DS, DO), _mailbox(drive, DO, DS)
        [reserved] = server.reserve_blob(1) or []
        started = time.monotonic()
        with pytest.raises(BlobRefused, match=f"shared blob {reserved} was not stored within 1 s"):
            client.get_blob(reserved, owner=DS, size=PART, out=io.BytesIO(), appear_within=1.0)
        waited = time.monotonic() - started
        assert waited >= 1.0
        gets = client.transport.call_counts().get("files.get", 0)
        # every 0.05 s at first, then an eighth of the time waited: not hammering Drive (at most 25 in 1 s; fewer on
        # a loaded machine, where each get takes longer, so the floor only says it looked more than once)
        assert 2 <= gets <= 25
