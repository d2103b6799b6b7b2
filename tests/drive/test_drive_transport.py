"""DriveTransport + Mailbox against the fake Drive through the real googleapiclient."""

from __future__ import annotations

import hashlib
import io
import os
import time

import pytest

from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.mailbox.ledger import Ledger
from syft_flwr_gdrive.mailbox.mailbox import Mailbox
from syft_flwr_gdrive.transport.contract import Routing
from syft_flwr_gdrive.transport.contract import TransportError
from syft_flwr_gdrive.transport.drive.api import DriveApi
from syft_flwr_gdrive.transport.drive.listing import SWEEP_MIN_GAP
from syft_flwr_gdrive.transport.drive.transport import DriveTransport
from tests.helpers.fake_service import drive_api_for
from tests.helpers.routings import request_routing

APP = "flwr/t"
DS, DO, EVE = "ds@x.com", "do@x.com", "eve@x.com"


@pytest.fixture(scope="module")
def drive():
    with FakeDriveServer() as server:
        yield server


def transport(drive, email):
    return DriveTransport(drive_api_for(drive.url, email, chunk_size=4 * 1024 * 1024), email)


def test_large_message_streams_through_disk_and_arrives_intact(drive, tmp_path):
    sender, receiver = transport(drive, DS), transport(drive, DO)
    out = Mailbox(sender, APP, [DO], Ledger(None))
    inbox = Mailbox(receiver, APP, [DS], Ledger(None))
    out.prepare()
    inbox.prepare()
    payload = os.urandom(1024) * (24 * 1024)  # 24 MiB: above the in-memory limit, several upload chunks
    out.send(kind="request", recipient=DO, run_id=1, payload=[payload[: 10**6], memoryview(payload)[10**6 :]])
    [delivery] = inbox.poll().deliveries
    assert delivery.envelope.size == len(payload)
    stream = delivery.open_payload()
    digest = hashlib.sha256()
    while chunk := stream.read(1 << 20):
        digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(payload).hexdigest()
    assert sender.call_counts().get("media.upload", 0) >= 6  # chunked resumable upload, not one request
    delivery.close()


def test_blobs_are_readable_by_peers_only(drive):
    ds = transport(drive, DS)
    ds.prepare("flwr/blobs", [DO])
    locator = ds.put_blob("flwr/blobs", b"model-bytes")
    out = io.BytesIO()
    assert transport(drive, DO).get_blob("flwr/blobs", locator, owner=DS, size=11, out=out) == 11
    assert out.getvalue() == b"model-bytes"
    with pytest.raises(TransportError):
        transport(drive, EVE).get_blob("flwr/blobs", locator, owner=DS, size=11, out=io.BytesIO())
    assert ds.list_my_blobs("flwr/blobs") == [locator]
    # Blobs never show up in polls (so nobody mistakes them for messages).
    assert ds.poll("flwr/blobs").outbound == ()
    ds.delete([locator])
    assert ds.list_my_blobs("flwr/blobs") == []


def test_one_request_per_poll_whatever_is_pending(drive):
    ds, do = transport(drive, DS), transport(drive, DO)
    app = "flwr/cost"
    ds.prepare(app, [DO])
    ds.announce_run(app, 1)  # as a server does before it sends (a client waiting for a run looks again each second)
    do.prepare(app, [DS])
    do.poll(app)  # sees run 1: stamps the id of its next message on its outbox (one write)
    time.sleep(SWEEP_MIN_GAP)  # a sweep is due again
    before = do.api.calls.total
    do.poll(app)
    idle = do.api.calls.total - before
    for i in range(300):
        ds.send(
            request_routing(1, f"m{i}", sender=DS, recipient=DO, app=app),
            b"x",
        )
    time.sleep(SWEEP_MIN_GAP)  # the next sweep is due (it lists the 299 files nothing promised this reader yet)
    before = do.api.calls.total
    listing = do.poll(app)
    assert len(listing.inbound) == 300
    assert idle == 1 and do.api.calls.total - before == 1  # one batch request: reads by id and listings


def test_peers_with_different_oauth_apps_see_each_others_routing(drive):
    """Drive hides appProperties from other OAuth apps; routing lives in public properties."""
    from google.oauth2.credentials import Credentials

    from syft_flwr_gdrive.fake import fake_token_for

    def as_app(email: str, app_id: str) -> DriveTransport:
        api = DriveApi(Credentials(token=fake_token_for(email, app=app_id)), base_url=drive.url)
        return DriveTransport(api, email)

    ds, do = as_app(DS, "ds-oauth-client"), as_app(DO, "do-oauth-client")
    app = "flwr/two-apps"
    ds.prepare(app, [DO])
    ds.announce_run(app, 5)
    ds.send(
        request_routing(5, "m", sender=DS, recipient=DO, app=app),
        b"x",
    )
    listing = do.poll(app)
    assert [p.routing.message_id for p in listing.inbound if p.routing] == ["m"]
    assert [(a.owner, a.run_id) for a in listing.announcements] == [(DS, 5)]


def test_small_bodies_ride_in_properties_and_need_no_download(drive):
    from syft_flwr_gdrive.transport.drive import layout

    ds, do = transport(drive, DS), transport(drive, DO)
    app = "flwr/inline"
    out = Mailbox(ds, app, [DO], Ledger(None))
    inbox = Mailbox(do, app, [DS], Ledger(None))
    out.prepare()
    inbox.prepare()
    out.send(kind="request", recipient=DO, run_id=1, payload=b"tiny")
    out.send(kind="request", recipient=DO, run_id=1, payload=os.urandom(5000))  # too big to inline
    downloads = do.call_counts().get("media.download", 0)
    got = sorted(d.envelope.size for d in inbox.poll().deliveries)
    assert got == [4, 5000]
    assert do.call_counts().get("media.download", 0) - downloads == 1  # only the big one
    # Round trip of the property encoding at its limits.
    body = os.urandom(1536)
    props = layout.inline_properties(body, used=11)
    assert props and layout.inline_body(props) == body
    assert layout.inline_properties(os.urandom(5000), used=11) == {}
    assert layout.inline_body({"sfg_b00": "not base64!"}) is None


def test_a_message_of_a_newer_drive_layout_is_listed_unread_and_named_once(drive, caplog):
    from syft_flwr_gdrive.transport.drive import layout

    ds, do = transport(drive, DS), transport(drive, DO)
    ds.prepare("flwr/layout", [DO])
    routing = Routing(app="flwr/layout", run_id=1, message_id="new", kind="request", sender=DS, recipient=DO)
    props = {**layout.message_properties(routing), layout.P_VERSION: "2"}
    ds.api.upload_bytes("new.sfgd", b"body", parent_id=ds.folders.outboxes[("flwr/layout", DO)], properties=props)
    inbox = Mailbox(do, "flwr/layout", [DS], Ledger(None))
    inbox.prepare()
    [posting] = do.poll("flwr/layout").inbound
    assert posting.routing is None and "'2' is not one this build reads (it reads 1, writes 1)" in posting.unreadable
    assert inbox.poll().deliveries == () and inbox.poll().deliveries == ()
    said = [r.getMessage() for r in caplog.records if "layout version" in r.getMessage()]
    assert len(said) == 1 and "upgrade" in said[0]


def test_a_poll_over_many_folders_lists_each_in_one_batch_request_and_finds_every_file(drive):
    ds, do = transport(drive, DS), transport(drive, DO)
    app = "flwr/chunks"
    ds.prepare(app, [DO])
    do.prepare(app, [DS])
    ds.send(
        request_routing(1, "m1", sender=DS, recipient=DO, app=app),
        b"x",
    )
    [outbox] = do.discovery.peer_folders[app]
    missing = [f"1{i:040d}xyz" for i in range(99)]  # 100 folders: one listing each, 100 in a batch request
    for ids in ([outbox, *missing], [*missing, outbox]):
        before = do.api.calls.total
        found = do.lister.list_parents(ids)
        assert [f["properties"]["sfg_msg"] for f in found] == ["m1"] and do.last_poll_lists == 100
        assert do.api.calls.total - before == 1
