"""The Drive transport where Drive behaves as field reports describe (#22): reserved ids that expire or belong
to their account, ids someone else took, promised files that never appear, heads stamped on folders, paced
writes and the sharing limit. docs/drive-assumptions.md names the row each test stands for."""

from __future__ import annotations

import io
import logging
import time

import pytest

from syft_flwr_gdrive.base.segments import as_reader
from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.fake import FaultConfig
from syft_flwr_gdrive.flower.shared_blobs import BlobCache
from syft_flwr_gdrive.mailbox.ledger import Ledger
from syft_flwr_gdrive.mailbox.mailbox import Mailbox
from syft_flwr_gdrive.transport.contract import BlobNotStored
from syft_flwr_gdrive.transport.contract import TransportError
from syft_flwr_gdrive.transport.drive import layout
from syft_flwr_gdrive.transport.drive import writes
from syft_flwr_gdrive.transport.drive.discovery import CLIENT_READ_EVERY
from syft_flwr_gdrive.transport.drive.errors import DriveError
from syft_flwr_gdrive.transport.drive.ratelimit import WritePacer
from syft_flwr_gdrive.transport.drive.retry import RetryPolicy
from syft_flwr_gdrive.transport.drive.retry import is_transient
from syft_flwr_gdrive.transport.drive.transport import DriveTransport
from tests.helpers.fake_service import drive_api_for
from tests.helpers.routings import request_routing

DS, DO, MALLORY = "ds@x.com", "do@x.com", "mallory@x.com"
APP = "flwr/fidelity"


@pytest.fixture
def drive():
    with FakeDriveServer(profile="strict", faults=FaultConfig(list_lag=0.3)) as server:
        yield server


def transport(drive, email) -> DriveTransport:
    return DriveTransport(drive_api_for(drive.url, email), email)


def request(mid: str):
    return request_routing(1, mid, sender=DS, recipient=DO, app=APP)


def poll_until(t: DriveTransport, mid: str, timeout: float = 60.0):
    """Poll until ``mid`` is inbound. Generous: a file nothing promised waits for a sweep (every 4 s) and a fresh
    one may miss one, and a loaded 2-core machine is slow; the wait ends when the file comes."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        listing = t.poll(APP)
        if mid in {p.routing.message_id for p in listing.inbound if p.routing}:
            return listing
        time.sleep(0.1)
    raise AssertionError(f"{mid} never reached a poll")


def pair(drive) -> tuple[DriveTransport, DriveTransport]:
    ds, do = transport(drive, DS), transport(drive, DO)
    ds.prepare(APP, [DO])
    ds.announce_run(APP, 1)  # stamps the id of ds's next message to do (its head) on the outbox
    do.prepare(APP, [DS])
    end = time.monotonic() + 60  # generous (a loaded machine); it ends when the folder is read
    do.poll(APP)
    while do.discovery.newest_runs(APP).get(DS) != 1:  # its folder found (listings lag), then read by id
        assert time.monotonic() < end, "the datasite never found the server's folder"
        time.sleep(0.05)
        do.poll(APP)
    return ds, do


def test_a_streams_first_file_is_fetched_by_the_head_its_folder_stamps(drive):
    """Row 16: no listing finds the first file of a stream either: the run announcement stamped its id."""
    ds, do = pair(drive)
    drive.faults.list_lag = 3600.0  # listings have not caught up with anything new
    do.poll(APP)  # reads ds's folder by id: the head
    first = ds.send(request("m1"), b"one")
    listing = do.poll(APP)
    assert [p.handle for p in listing.inbound if p.routing and p.routing.message_id == "m1"] == [first]


def test_a_server_with_bundles_stamps_its_keys_with_its_run_one_write_per_folder(drive):
    """Set-up costs writes, paced at 2 a second: the keys ride in the run announcement's update."""
    ds = transport(drive, DS)
    ds.prepare(APP, [DO, MALLORY])
    ds.enable_bundles(APP)
    keys = {"kx": "a2V5LWV4Y2hhbmdl", "ks": "a2V5LXNpZ25pbmc="}
    updates = ds.api.calls.snapshot().get("files.update", 0)
    ds.publish_keys(APP, keys)
    ds.announce_run(APP, 7)
    assert ds.api.calls.snapshot().get("files.update", 0) - updates == 2  # one per outbox
    for folder in ds.folders.my_folders[APP]:
        props = drive.store.files[folder].properties
        assert layout.announced_keys(props) == keys and layout.announced_run(props) == 7


def test_a_client_stamps_its_next_reply_id_once_per_run_it_sees(drive):
    ds, do = pair(drive)
    outbox = do.folders.outboxes[(APP, DS)]
    stamped = layout.stamped_heads(drive.store.files[outbox].properties)
    assert stamped is not None and stamped.direct == do.writer.head((APP, DS))
    writes_before = do.api.calls.snapshot().get("files.update", 0)
    do.poll(APP)
    assert do.api.calls.snapshot().get("files.update", 0) == writes_before  # once per run
    ds.announce_run(APP, 2)
    time.sleep(CLIENT_READ_EVERY)  # a client reads its server's folder by id this often
    do.poll(APP)
    assert do.api.calls.snapshot().get("files.update", 0) == writes_before + 1


def test_a_promised_id_that_expired_is_replaced_and_the_file_is_found_by_listing(drive):
    """Row 13: a reserved id stays usable for a limited time (strict: reserved_id_ttl)."""
    ds, do = pair(drive)
    drive.faults.reserved_id_ttl = 0.5
    drive.faults.list_lag = 0.0
    ds.send(request("m1"), b"one")
    poll_until(do, "m1")
    time.sleep(0.7)  # the id m1 promised for m2 expires
    second = ds.send(request("m2"), b"two")  # Drive refuses the promised id: a fresh one
    assert second not in {layout.promised_id(f.properties) for f in drive.store.files.values()}
    poll_until(do, "m2")  # found by listing its folder


def test_a_reply_after_a_long_round_goes_to_a_fresh_id_its_folder_stamps_and_is_fetched_by_id(drive, monkeypatch):
    """A promised id older than PROMISE_MAX_AGE may have expired: the client stamps a fresh head and writes
    there, so the server (whose sweeps are rare with many datasites) still fetches the reply by id."""
    ds, do = pair(drive)
    do.send(request_routing(1, "r1", sender=DO, recipient=DS, app=APP, kind="reply", reply_to="m0"), b"one")
    end = time.monotonic() + 60  # generous (a loaded machine); it ends when the reply comes
    while "r1" not in {p.routing.message_id for p in ds.poll(APP).inbound if p.routing}:
        assert time.monotonic() < end
        time.sleep(0.1)
    monkeypatch.setattr(writes, "PROMISE_MAX_AGE", 0.2)
    time.sleep(0.3)
    drive.faults.list_lag = 3600.0  # no listing shows anything new
    stale = do.writer.head((APP, DS))
    updates = do.api.calls.snapshot().get("files.update", 0)
    second = do.send(request_routing(1, "r2", sender=DO, recipient=DS, app=APP, kind="reply", reply_to="m1"), b"two")
    assert second != stale and do.api.calls.snapshot()["files.update"] == updates + 1  # the fresh head stamped
    end = time.monotonic() + 60  # generous (a loaded machine); it ends when the reply comes
    while "r2" not in {p.routing.message_id for p in ds.poll(APP).inbound if p.routing}:
        assert time.monotonic() < end, "the server never fetched the reply at its stamped id"
        time.sleep(0.1)


def test_ids_wait_in_the_pool_at_most_id_max_age(drive, monkeypatch):
    ds = transport(drive, DS)
    monkeypatch.setattr(writes, "ID_MAX_AGE", 0.2)
    first = ds.writer.next_id()
    generated = ds.api.calls.snapshot().get("files.generateIds", 0)
    ds.writer.next_id()
    assert ds.api.calls.snapshot()["files.generateIds"] == generated  # from the pool
    time.sleep(0.3)
    assert ds.writer.next_id() != first and ds.api.calls.snapshot()["files.generateIds"] == generated + 1


def test_a_fresh_id_drive_refuses_is_replaced_once_by_a_newly_fetched_one(drive):
    ds = transport(drive, DS)
    ds.prepare(APP, [DO])
    drive.faults.reserved_id_ttl = 0.2
    ds.writer.next_id()  # fills the pool
    time.sleep(0.3)  # every pooled id expired on Drive's side, not yet on the pool's
    made = ds.writer.upload("f", as_reader(b"x"), ds.folders.outboxes[(APP, DO)], {})
    assert made["id"] in drive.store.files


def test_another_accounts_id_is_refused_under_the_strict_profile_and_the_promise_falls_back(drive):
    """Row 13: ids are "generated for the requesting user"; the strict fake refuses them to anyone else."""
    ds, do = pair(drive)
    [theirs] = drive_api_for(drive.url, MALLORY).generate_ids(1)
    with pytest.raises(DriveError) as err:
        ds.api.upload_bytes("x", b"x", parent_id=ds.folders.outboxes[(APP, DO)], file_id=theirs)
    assert err.value.status == 400
    drive.faults.list_lag = 0.0
    made = ds.writer.create_promised("m", as_reader(b"x"), ds.folders.outboxes[(APP, DO)], {}, theirs)
    assert made["id"] != theirs


def test_a_blob_part_whose_id_someone_took_is_stored_at_a_fresh_id_the_receiver_finds(drive, caplog):
    """#23 finding 3: a peer read the part ids in the message and created a file at one first."""
    drive.faults.reserved_ids_owned = False  # as the default profile (and maybe Drive): anyone may take an id
    drive.faults.list_lag = 0.0
    ds, do = pair(drive)
    [part] = ds.reserve_blob(APP, 1)
    mallory = drive_api_for(drive.url, MALLORY)
    mallory.upload_bytes("mine", b"z" * 16, parent_id=None, file_id=part)
    with caplog.at_level(logging.WARNING):
        ds.put_blob_part(APP, part, as_reader(b"p" * 16))
    assert any("Drive refused the reserved id" in r.getMessage() for r in caplog.records)
    out = io.BytesIO()
    assert do.get_blob(APP, part, owner=DS, size=16, out=out, appear_within=5.0) == 16
    assert out.getvalue() == b"p" * 16  # the server's part, not Mallory's file at the id
    ds.delete([part])  # the part where it is stored; Mallory's file is hers
    assert [r.owner for r in drive.store.files.values() if layout.P_BLOB in r.properties] == []
    assert drive.store.files[part].owner == MALLORY


def test_a_part_that_never_comes_ends_its_wait_at_once_when_its_message_is_withdrawn(drive):
    ds, do = pair(drive)
    [part] = ds.reserve_blob(APP, 1)
    box = Mailbox(do, APP, [DS], Ledger(None))
    cache = BlobCache(box)
    withdrawn = {"asked": 0}

    def still_wanted() -> bool:
        withdrawn["asked"] += 1
        return False

    from syft_flwr_gdrive.flower import shared_blobs

    started = time.monotonic()
    with pytest.raises(TransportError, match="withdrawn"):
        cache._wait_for_part(part, DS, 16, io.BytesIO(), time.time() + 600, still_wanted)
    # one slice (asked once), not the 600 s bound; the slack is a loaded machine's
    assert withdrawn["asked"] == 1 and time.monotonic() - started < shared_blobs.WANTED_EVERY + 30
    with pytest.raises(BlobNotStored):  # and without a still_wanted, the wait ends at its bound
        cache._wait_for_part(part, DS, 16, io.BytesIO(), time.time() + 0.5, None)


def test_writes_are_paced_below_the_rate_after_the_burst():
    now = [0.0]
    pacer = WritePacer(2.0, burst=3, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    for _ in range(3):
        pacer.acquire()
    assert now[0] == 0.0  # the burst
    for _ in range(4):
        pacer.acquire()
    assert now[0] == pytest.approx(2.0, abs=0.01)  # then 2 per second
    pacer.acquire(4)  # a batch of 4 deletes: 4 writes
    assert now[0] == pytest.approx(4.0, abs=0.01)


def test_paced_deletes_go_in_batches_drive_takes_at_once():
    """A batch's parts reach Drive together: a paced batch of 20 deletes sent as one was refused all but Drive's
    burst (10 here), and each refused part retried with a backoff (a hundred deletes took minutes)."""
    with FakeDriveServer(profile="strict") as drive:
        drive.faults.write_rate, drive.faults.write_burst = 30.0, 10
        api = drive_api_for(drive.url, DS, writes=WritePacer(20.0, burst=5))
        drive.store.ensure_user(DS)
        ids = [drive.store.create(DS, {"name": f"f{i}"})["id"] for i in range(20)]  # not writes of the api
        assert api.delete_many(ids) == {i: None for i in ids}
        assert api.calls.retries == 0 and drive.stats()["writes"]["throttled"].get(DS, 0) == 0
        assert api.calls.snapshot()["batch"] == 4  # batches of the pacer's burst


def test_the_sharing_limit_is_retried_with_a_long_backoff():
    from googleapiclient.errors import HttpError
    from httplib2 import Response

    body = b'{"error": {"code": 403, "message": "x", "errors": [{"reason": "sharingRateLimitExceeded"}]}}'
    err = HttpError(Response({"status": 403}), body)
    policy = RetryPolicy()
    assert is_transient(err)
    waits = [policy.wait_for(n, err) for n in (1, 2, 3, 4, 5)]
    assert 4 <= waits[0] <= 8 and 32 <= waits[3] <= 64 and waits[4] <= 64, waits
    assert policy.wait_for(1, None) <= 1.0  # other failures keep the short backoff


def test_the_fake_answers_an_or_of_parents_partially_and_a_poll_still_finds_everything(drive):
    """Rows 1-2: the strict profile answers an OR'ed parent listing with a per-account subset; the transport
    never sends one."""
    ds, do = pair(drive)
    drive.faults.list_lag = 0.0
    planted = transport(drive, DS)  # another process of the server's account: nothing promises its file
    planted.prepare(APP, [DO])
    handle = planted.send(request("planted"), b"x")
    listing = poll_until(do, "planted")
    assert handle in {p.handle for p in listing.inbound}
    lists = [q for q in drive_queries(drive, DO) if " in parents" in q]
    assert lists and not [q for q in lists if " or " in q]  # one folder per query, always


def drive_queries(drive: FakeDriveServer, email: str) -> list[str]:
    """Every q the fake answered for ``email`` so far (from its request counters)."""
    return list(_QUERIES.get(email, []))


_QUERIES: dict[str, list[str]] = {}


@pytest.fixture(autouse=True)
def record_queries(drive):
    """Record every listing's q per user, batch parts included (the fake's handle is called for each)."""
    _QUERIES.clear()
    api = drive.api
    inner = api.handle

    def handle(req, *args, **kwargs):
        resp = inner(req, *args, **kwargs)
        if req.method == "GET" and req.path.rstrip("/").endswith("/drive/v3/files"):
            _QUERIES.setdefault(req.headers.get("x-fake-user", "?"), []).append(req.arg("q") or "")
        return resp

    api.handle = handle
    yield
