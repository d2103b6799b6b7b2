"""The transport contract, run against every transport: memory, Drive (on the fake), directory.

A new transport reuses this suite by adding one entry to ``WORLDS``: a context manager
that yields ``make(email) -> Transport``, every transport it makes sharing one storage.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import pytest

from syft_flwr_gdrive.base.segments import SegmentReader
from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.ops.leftovers import clean
from syft_flwr_gdrive.transport.contract import BlobRefused
from syft_flwr_gdrive.transport.contract import Routing
from syft_flwr_gdrive.transport.contract import Transport
from syft_flwr_gdrive.transport.contract import TransportError
from syft_flwr_gdrive.transport.directory import DirectoryTransport
from syft_flwr_gdrive.transport.drive.transport import DriveTransport
from syft_flwr_gdrive.transport.memory import MemoryHub
from syft_flwr_gdrive.transport.memory import MemoryTransport
from tests.helpers.fake_service import drive_api_for
from tests.helpers.routings import request_routing

Make = Callable[[str], Transport]
APP, OTHER_APP = "flwr/contract", "flwr/other"
A, B, C = "alice@example.com", "bob@example.com", "carol@example.com"


@contextlib.contextmanager
def memory_world(tmp_path: Path) -> Iterator[Make]:
    hub = MemoryHub()
    yield lambda email: MemoryTransport(email, hub)


@contextlib.contextmanager
def drive_world(tmp_path: Path) -> Iterator[Make]:
    with FakeDriveServer() as drive:
        yield lambda email: DriveTransport(drive_api_for(drive.url, email), email, state_dir=tmp_path / email)


@contextlib.contextmanager
def directory_world(tmp_path: Path) -> Iterator[Make]:
    yield lambda email: DirectoryTransport(tmp_path, email)


WORLDS = {"memory": memory_world, "p2p": drive_world, "dir": directory_world}


@pytest.fixture(params=sorted(WORLDS))
def make(request, tmp_path) -> Iterator[Make]:
    with WORLDS[request.param](tmp_path) as factory:
        yield factory


def routing(sender: str, recipient: str, message_id: str = "m1", *, app: str = APP, kind: str = "request") -> Routing:
    return request_routing(7, message_id, sender=sender, recipient=recipient, app=app, kind=kind)


def pair(make: Make, app: str = APP) -> tuple[Transport, Transport]:
    a, b = make(A), make(B)
    a.prepare(app, [B, C])
    b.prepare(app, [A])
    return a, b


def test_every_transport_is_a_transport(make):
    assert isinstance(make(A), Transport)


def test_a_message_reaches_its_recipient_with_the_storages_word_on_its_owner(make):
    a, b = pair(make)
    sent = routing(A, B)
    handle = a.send(sent, b"hello bob")
    [posting] = b.poll(APP).inbound
    assert (posting.owner, posting.routing, posting.size) == (A, sent, 9)
    assert b.read(posting) == b"hello bob"
    out = io.BytesIO()
    assert b.read_to(posting, out) == 9 and out.getvalue() == b"hello bob"
    assert handle in {p.handle for p in a.poll(APP).outbound}


def test_bodies_may_be_buffers_or_a_reader(make):
    a, b = pair(make)
    a.send(routing(A, B, "m1"), [b"one ", memoryview(b"two")])
    a.send(routing(A, B, "m2"), SegmentReader([b"three"]))
    bodies = {p.routing.message_id: b.read(p) for p in b.poll(APP).inbound if p.routing}
    assert bodies == {"m1": b"one two", "m2": b"three"}


def test_a_body_over_max_bytes_is_refused(make):
    a, b = pair(make)
    a.send(routing(A, B), b"x" * 100)
    [posting] = b.poll(APP).inbound
    with pytest.raises(TransportError):
        b.read(posting, max_bytes=10)
    with pytest.raises(TransportError):
        b.read_to(posting, io.BytesIO(), max_bytes=10)


def test_only_what_is_addressed_to_me_is_listed(make):
    a, b = pair(make)
    a.send(routing(A, C, "for-carol"), b"not for bob")
    a.send(routing(A, B, "other-app", app=OTHER_APP), b"not this app")
    assert b.poll(APP).inbound == ()


def test_only_the_owner_deletes_and_a_deleted_message_is_gone(make):
    a, b = pair(make)
    handle = a.send(routing(A, B), b"body")
    with pytest.raises(TransportError):
        b.delete([handle])
    assert [p.handle for p in b.poll(APP).inbound] == [handle]
    a.delete([handle])
    a.delete([handle])  # already gone: not an error
    assert b.poll(APP).inbound == () and a.poll(APP).outbound == ()


def test_run_and_keys_reach_peers_in_their_poll(make):
    a = make(A)
    a.prepare(APP, [B])
    a.announce_run(APP, 42)
    a.publish_keys(APP, {"kx": "key-x", "ks": "key-s"})
    b = make(B)
    b.prepare(APP, [A])
    [announcement] = [x for x in b.poll(APP).announcements if x.owner == A]
    assert announcement.run_id == 42 and announcement.keys == {"kx": "key-x", "ks": "key-s"}


def test_shared_blobs_are_read_only_as_their_owners_and_at_their_size(make):
    a, b = pair(make)
    locator = a.put_blob(APP, b"model bytes")
    out = io.BytesIO()
    assert b.get_blob(APP, locator, owner=A, size=11, out=out) == 11 and out.getvalue() == b"model bytes"
    with pytest.raises(BlobRefused):
        b.get_blob(APP, locator, owner=A, size=12, out=io.BytesIO())
    with pytest.raises(BlobRefused):
        b.get_blob(APP, locator, owner=C, size=11, out=io.BytesIO())
    assert a.list_my_blobs(APP) == [locator]
    a.delete([locator])
    assert a.list_my_blobs(APP) == []
    with pytest.raises(BlobRefused):
        b.get_blob(APP, locator, owner=A, size=11, out=io.BytesIO())


def test_clean_removes_my_leftovers_of_one_app_or_all(make):
    a, b = pair(make)
    a.prepare(OTHER_APP, [B])
    a.send(routing(A, B, "m1"), b"one")
    a.send(routing(A, B, "m2", app=OTHER_APP), b"two")
    b.send(routing(B, A, "theirs"), b"bob's")
    assert clean(a, app=APP, dry_run=True).found == 1
    assert clean(a, app=APP).deleted == 1
    assert len(a.my_postings()) == 1
    assert clean(a).deleted == 1
    assert a.my_postings() == [] and len(b.my_postings()) == 1


def test_calls_are_counted(make):
    a, _ = pair(make)
    a.send(routing(A, B), b"x")
    counts = a.call_counts()
    assert counts and all(isinstance(k, str) and isinstance(v, int) for k, v in counts.items())
    assert sum(counts.values()) >= 1


def test_the_defaults_of_the_base_class():
    """What a transport gets without writing it: read through read_to, no blobs, no poll floor, a doctor line."""
    from syft_flwr_gdrive.base.config import Settings

    a = MemoryTransport(A, MemoryHub())
    a.send(routing(A, B), b"body")
    [posting] = MemoryTransport(B, a.hub).poll(APP).inbound
    assert Transport.read(a, posting) == b"body" and a.min_poll_gap() == 0.0
    with pytest.raises(TransportError, match="does not store shared blobs"):
        Transport.put_blob(a, APP, b"x")
    with pytest.raises(BlobRefused):
        Transport.get_blob(a, APP, "loc", owner=B, size=1, out=io.BytesIO())
    [check] = MemoryTransport.diagnose(Settings(email=A))
    assert not check.ok and "memory transport lives in one process" in check.detail
