"""The strict profile: each behaviour Drive's documentation allows, modelled by the fake.

See docs/drive-assumptions.md for the row each test stands for. Timing is controlled
(lag windows of a fraction of a second, waits well beyond them); nothing is measured.
"""

from __future__ import annotations

import time

import pytest
from googleapiclient.errors import HttpError

from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.fake import FaultConfig
from syft_flwr_gdrive.fake.faults import FaultEngine
from tests.helpers.fake_service import FOLDER
from tests.helpers.fake_service import drive_service
from tests.helpers.fake_service import http_error

ALICE, BOB = "alice@example.com", "bob@example.com"


@pytest.fixture
def strict(tmp_path):
    with FakeDriveServer(data_dir=tmp_path / "drive", profile="strict") as srv:
        yield srv


def names(svc, q):
    return sorted(f["name"] for f in svc.files().list(q=q, fields="files(name)").execute()["files"])


def test_profiles_are_named_and_unknown_ones_refused():
    assert FaultConfig.for_profile("strict").lag_all is True
    assert FaultConfig.for_profile("default") == FaultConfig()
    with pytest.raises(ValueError, match="unknown Drive profile 'lax'"):
        FakeDriveServer(profile="lax")


def test_given_faults_keep_their_values_and_take_the_profile_elsewhere():
    srv = FakeDriveServer(faults=FaultConfig(error_rate=0.2, list_lag=0.3), profile="strict")
    assert (srv.faults.error_rate, srv.faults.list_lag, srv.faults.write_rate) == (0.2, 0.3, 3.0)


def _listings_across(window: float, read, enough=None) -> list:
    """``read()`` again and again for ``window`` seconds, or until ``enough(seen)``: the reads span the whole
    lag window, however fast or busy the machine is (a fixed count overran a short window on a loaded
    machine); a long window stopped early costs a fast machine nothing and gives a slow one many reads."""
    seen: list = []
    start = time.monotonic()
    while time.monotonic() - start < window and not (enough is not None and enough(seen)):
        seen.append(read())
    return seen


def test_updates_and_deletes_lag_in_listings_and_reads_are_not_monotonic(strict):
    strict.faults.list_lag = 0.0  # the create listed at once...
    svc = drive_service(strict.url, ALICE)
    f = svc.files().create(body={"name": "a", "properties": {"v": "1"}}, fields="id").execute()
    # ...the update lagging: each listing draws an age in [0, lag], so the old state shows with a chance that
    # falls to 0 over the lag. A long lag leaves a loaded machine (each read slow) time for the many reads
    # that see both states mixed; the reads stop as soon as they did.
    strict.faults.list_lag = 3.0
    svc.files().update(fileId=f["id"], body={"properties": {"v": "2"}}).execute()

    def older_after_newer(seen: list) -> bool:
        return any(a == "2" and b == "1" for a, b in zip(seen, seen[1:]))

    seen = _listings_across(
        2.5,
        lambda: svc.files().list(q="name = 'a'", fields="files(properties)").execute()["files"][0]["properties"]["v"],
        older_after_newer,
    )
    assert set(seen) == {"1", "2"}  # old and new states mixed within the window...
    assert any(a == "2" and b == "1" for a, b in zip(seen, seen[1:]))  # ...and a later read may be older
    assert svc.files().get(fileId=f["id"], fields="properties").execute()["properties"]["v"] == "2"  # get is current
    svc.files().delete(fileId=f["id"]).execute()
    listed = _listings_across(
        2.5, lambda: len(svc.files().list(q="name = 'a'").execute()["files"]), lambda seen: set(seen) == {0, 1}
    )
    assert set(listed) == {0, 1}  # a deleted file still shows up now and then
    time.sleep(strict.listings_settle_in() + 0.01)  # listing times are in milliseconds
    assert names(svc, "name = 'a'") == []


def test_new_files_show_up_in_listings_only_after_a_lag(strict):
    strict.faults.list_lag = 0.5
    svc = drive_service(strict.url, ALICE)
    svc.files().create(body={"name": "n"}).execute()
    seen = [len(svc.files().list(q="name = 'n'").execute()["files"]) for _ in range(20)]
    assert 0 in seen
    time.sleep(0.6)
    assert names(svc, "name = 'n'") == ["n"]


def test_owned_files_is_the_truth_while_listings_lag_and_says_when_they_settle(strict):
    """``owned_files`` (for tests that ask what exists) is current inside the lag window, where a listing
    shows a deleted file now and then and a new one only sometimes; ``listings_settle_in`` says how long
    until listings agree with it."""
    strict.faults.list_lag = 0.0  # these two listed at once...
    svc = drive_service(strict.url, ALICE)
    assert strict.listings_settle_in() == 0.0 and strict.owned_files(ALICE) == []
    gone = svc.files().create(body={"name": "gone"}, fields="id").execute()["id"]
    folder = svc.files().create(body={"name": "box", "mimeType": FOLDER}, fields="id").execute()["id"]
    strict.faults.list_lag = 2.0  # ...what follows lagging, long enough for 0.3 s of reads on a loaded machine
    svc.files().delete(fileId=gone).execute()
    new = svc.files().create(body={"name": "new", "parents": [folder]}, fields="id").execute()["id"]
    requests = strict.stats()["by_user"]
    listed = _listings_across(0.3, lambda: names(svc, f"'{ALICE}' in owners and mimeType != '{FOLDER}'"))
    assert ["gone"] in [[n for n in seen if n == "gone"] for seen in listed]  # the listing lags...
    assert [f["name"] for f in strict.owned_files(ALICE)] == ["new"]  # ...the truth does not
    assert [f["id"] for f in strict.owned_files(ALICE, folders=True)] == [folder, new]
    assert strict.owned_files(ALICE)[0]["ownedByMe"] is True and strict.owned_files(BOB) == []
    assert strict.stats()["by_user"][ALICE] == requests[ALICE] + len(listed)  # owned_files made no request
    left = strict.listings_settle_in()
    assert 0.0 < left <= 2.0
    time.sleep(left + 0.01)  # listing times are in milliseconds
    assert strict.listings_settle_in() == 0.0
    assert names(svc, f"'{ALICE}' in owners and mimeType != '{FOLDER}'") == ["new"]


def test_sustained_writes_are_throttled_per_account_and_counted(strict):
    strict.faults.write_burst = 3
    strict.faults.write_rate = 1.0
    alice, bob = drive_service(strict.url, ALICE), drive_service(strict.url, BOB)
    statuses = []
    for i in range(6):
        try:
            alice.files().create(body={"name": f"w{i}"}).execute(num_retries=0)
            statuses.append(200)
        except HttpError as e:
            status, reason = http_error(e)
            assert (status, reason) in ((403, "userRateLimitExceeded"), (429, "rateLimitExceeded"))
            statuses.append(status)
    assert statuses[:3] == [200, 200, 200] and all(s != 200 for s in statuses[3:])
    bob.files().create(body={"name": "b"}).execute(num_retries=0)  # another account has its own budget
    alice.files().list().execute(num_retries=0)  # reads are not writes
    writes = strict.stats()["writes"]
    assert writes["throttled"] == {ALICE: 3} and writes["accepted"][ALICE] == 3
    assert strict.stats()["faults"]["write_limit"] == 3


def test_write_bucket_refills_at_the_configured_rate():
    engine = FaultEngine(FaultConfig(write_rate=2.0, write_burst=2))
    assert engine.charge_write("a", now=0.0) is None and engine.charge_write("a", now=0.0) is None
    assert engine.charge_write("a", now=0.0) is not None
    assert engine.charge_write("a", now=0.5) is None  # one token back after 1 / rate seconds


def test_owner_emails_are_hidden_from_readers_but_the_permission_id_is_not(strict):
    alice, bob = drive_service(strict.url, ALICE), drive_service(strict.url, BOB)
    folder = alice.files().create(body={"name": "box", "mimeType": FOLDER}, fields="id").execute()
    perm = (
        alice.permissions()
        .create(
            fileId=folder["id"],
            body={"type": "user", "role": "reader", "emailAddress": BOB},
            sendNotificationEmail=False,
            fields="id",
        )
        .execute()
    )
    mine = alice.files().get(fileId=folder["id"], fields="owners(emailAddress,permissionId)").execute()["owners"][0]
    theirs = bob.files().get(fileId=folder["id"], fields="owners(emailAddress,permissionId)").execute()["owners"][0]
    assert mine["emailAddress"] == ALICE
    assert "emailAddress" not in theirs and theirs["permissionId"] == mine["permissionId"]
    me = bob.about().get(fields="user(permissionId)").execute()["user"]["permissionId"]
    assert perm["id"] == me  # the id a share answers is the grantee's User.permissionId


def test_or_across_collections_and_long_queries_are_too_complex(strict):
    svc = drive_service(strict.url, ALICE)
    for q in (
        "properties has { key='a' and value='b' } or 'me' in owners",
        "('x' in parents or 'y' in parents) and ('me' in owners or 'x' in readers) "
        "or properties has { key='a' and value='b' }",
        " or ".join(f"'p{i}' in parents" for i in range(61)),
    ):
        with pytest.raises(HttpError) as err:
            svc.files().list(q=q).execute()
        assert err.value.resp.status == 400 and b"The query is too complex" in err.value.content
    svc.files().list(q=" or ".join(f"'p{i}' in parents" for i in range(50)) + " and trashed = false").execute()


def test_gmail_addresses_are_one_account_reported_in_one_form(strict):
    strict.faults.list_lag = 0.0
    first = drive_service(strict.url, "j.doe@gmail.com")
    folder = first.files().create(body={"name": "x", "mimeType": FOLDER}, fields="id").execute()
    same = drive_service(strict.url, "JDoe@googlemail.com")
    got = same.files().get(fileId=folder["id"], fields="ownedByMe,owners(emailAddress)").execute()
    assert got["ownedByMe"] is True and got["owners"][0]["emailAddress"] == "j.doe@gmail.com"
    owned = [
        [f["id"] for f in same.files().list(q=f"{who} in owners").execute()["files"]]
        for who in ("'me'", "'j.doe@gmail.com'", "'jdoe@gmail.com'")
    ]
    assert owned == [[folder["id"]], [folder["id"]], []]  # owners match only the registered address
    perm = (
        drive_service(strict.url, ALICE).files().create(body={"name": "s", "mimeType": FOLDER}, fields="id").execute()
    )
    shared = (
        drive_service(strict.url, ALICE)
        .permissions()
        .create(
            fileId=perm["id"],
            body={"type": "user", "role": "reader", "emailAddress": "jd.oe@gmail.com"},
            fields="emailAddress",
        )
        .execute()
    )
    assert shared["emailAddress"] == "j.doe@gmail.com"


def test_workspace_owner_transfers_within_the_domain_without_acceptance(strict):
    mallory, victim = "mallory@workspace.example", "victim@workspace.example"
    svc = drive_service(strict.url, mallory)
    f = svc.files().create(body={"name": "forged", "properties": {"sfg_from": victim}}, fields="id").execute()
    svc.permissions().create(
        fileId=f["id"], body={"type": "user", "role": "owner", "emailAddress": victim}, transferOwnership=True
    ).execute()
    owner = drive_service(strict.url, victim).files().get(fileId=f["id"], fields="owners(emailAddress)").execute()
    assert owner["owners"][0]["emailAddress"] == victim
    other = drive_service(strict.url, ALICE).files().create(body={"name": "g"}, fields="id").execute()
    with pytest.raises(HttpError) as err:  # consumer accounts still need the new owner's consent
        drive_service(strict.url, ALICE).permissions().create(
            fileId=other["id"], body={"type": "user", "role": "owner", "emailAddress": BOB}, transferOwnership=True
        ).execute()
    assert err.value.resp.status == 403
