"""What field reports say Drive does beyond its documentation, modelled by the fake.

Each behaviour is a ``FaultConfig`` switch a test can turn on; the strict profile turns them all on
(docs/drive-assumptions.md says which row each stands for): OR'ed parent listings that answer only
some folders' files, property search over the caller's own files only, reserved ids that belong to
their account and expire, owners matched by the registered address, small multipart uploads, no
global batch endpoint, and a sharing limit.
"""

from __future__ import annotations

import time

import httplib2
import pytest
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaInMemoryUpload

from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.fake import FaultConfig
from syft_flwr_gdrive.fake import fake_token_for
from syft_flwr_gdrive.fake.faults import MULTIPART_LIMIT
from syft_flwr_gdrive.fake.faults import RESERVED_ID_TTL
from tests.helpers.fake_service import FOLDER
from tests.helpers.fake_service import drive_service
from tests.helpers.fake_service import http_error

ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.com"


def folder_with_file(svc, reader: str, name: str) -> str:
    """A folder of ``svc``'s account shared with ``reader``, holding one file called ``name``."""
    folder = svc.files().create(body={"name": f"box-{name}", "mimeType": FOLDER}, fields="id").execute()["id"]
    svc.permissions().create(
        fileId=folder, body={"type": "user", "role": "reader", "emailAddress": reader}, sendNotificationEmail=False
    ).execute()
    svc.files().create(body={"name": name, "parents": [folder]}, fields="id").execute()
    return folder


def or_listing(svc, folders: list[str]) -> tuple[list[str], bool]:
    q = "(" + " or ".join(f"'{f}' in parents" for f in folders) + ") and trashed = false"
    got = svc.files().list(q=q, fields="incompleteSearch,files(name)").execute()
    return sorted(f["name"] for f in got["files"]), got["incompleteSearch"]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("all", ["a", "b", "c"]), ("first", ["a"]), ("none", [])],
)
def test_an_or_of_parents_answers_what_the_fault_says_and_calls_it_complete(mode, expected):
    with FakeDriveServer(faults=FaultConfig(or_listing=mode)) as drive:
        alice, carol = drive_service(drive.url, ALICE), drive_service(drive.url, CAROL)
        folders = [folder_with_file(alice, CAROL, "a"), folder_with_file(alice, CAROL, "b")]
        folders.append(folder_with_file(carol, CAROL, "c"))
        assert or_listing(carol, folders) == (expected, False)
        for folder, name in zip(folders, "abc", strict=True):  # one folder per query is never cut short
            assert or_listing(carol, [folder])[0] == [name]


def test_the_strict_or_listing_is_a_fixed_subset_per_account_that_keeps_the_callers_own_folders():
    with FakeDriveServer(faults=FaultConfig(or_listing="subset")) as drive:  # strict's, without its lag and limits
        owner = drive_service(drive.url, ALICE)
        readers = [f"reader{i}@example.com" for i in range(12)]
        folders = []
        for i in range(4):
            folder = owner.files().create(body={"name": f"f{i}", "mimeType": FOLDER}, fields="id").execute()["id"]
            for reader in readers:
                owner.permissions().create(
                    fileId=folder, body={"type": "user", "role": "reader", "emailAddress": reader}
                ).execute()
            owner.files().create(body={"name": f"file{i}", "parents": [folder]}).execute()
            folders.append(folder)
        every = [f"file{i}" for i in range(4)]
        assert or_listing(owner, folders)[0] == every  # all the caller's own
        seen = []
        for reader in readers:
            svc = drive_service(drive.url, reader)
            first, incomplete = or_listing(svc, folders)
            assert or_listing(svc, folders)[0] == first and not incomplete  # fixed, and called complete
            seen.append(first)
        assert [] in seen and any(len(s) < 4 for s in seen if s), seen  # some readers get none, some a part


def test_property_search_matches_only_the_callers_own_files_under_the_rule():
    with FakeDriveServer(faults=FaultConfig(own_properties_search=True)) as drive:
        alice, bob = drive_service(drive.url, ALICE), drive_service(drive.url, BOB)
        folder = folder_with_file(alice, BOB, "x")
        alice.files().update(fileId=folder, body={"properties": {"k": "v"}}).execute()
        q = "properties has { key='k' and value='v' }"
        assert [f["id"] for f in alice.files().list(q=q).execute()["files"]] == [folder]
        assert bob.files().list(q=q).execute()["files"] == []
        shared = bob.files().list(q=f"sharedWithMe = true and mimeType = '{FOLDER}'", fields="files(id,properties)")
        [found] = shared.execute()["files"]
        assert found["id"] == folder and found["properties"] == {"k": "v"}  # readable, just not searchable


def test_a_reserved_id_takes_a_create_only_from_its_account_and_only_while_it_lives():
    with FakeDriveServer(faults=FaultConfig(reserved_ids_owned=True, reserved_id_ttl=0.5)) as drive:
        alice, bob = drive_service(drive.url, ALICE), drive_service(drive.url, BOB)
        mine, squatted, late = alice.files().generateIds(count=3).execute()["ids"]
        with pytest.raises(HttpError) as err:
            bob.files().create(body={"id": squatted, "name": "squat"}).execute()
        assert http_error(err.value) == (400, "invalid")
        assert alice.files().create(body={"id": mine, "name": "mine"}, fields="id").execute()["id"] == mine
        assert alice.files().create(body={"id": squatted, "name": "ok"}, fields="id").execute()["id"] == squatted
        time.sleep(0.6)
        with pytest.raises(HttpError) as err:
            alice.files().create(body={"id": late, "name": "late"}).execute()
        assert http_error(err.value) == (400, "invalid")


def test_by_default_any_account_may_create_at_any_generated_id_forever():
    with FakeDriveServer() as drive:
        alice, bob = drive_service(drive.url, ALICE), drive_service(drive.url, BOB)
        [file_id] = alice.files().generateIds(count=1).execute()["ids"]
        assert bob.files().create(body={"id": file_id, "name": "squat"}, fields="id").execute()["id"] == file_id


def test_a_get_of_a_reserved_id_before_its_create_is_not_found():
    with FakeDriveServer(profile="strict") as drive:
        alice = drive_service(drive.url, ALICE)
        [file_id] = alice.files().generateIds(count=1).execute()["ids"]
        with pytest.raises(HttpError) as err:
            alice.files().get(fileId=file_id).execute()
        assert http_error(err.value) == (404, "notFound")


def test_a_resumable_create_at_a_reserved_id_is_refused_to_another_account_at_its_start():
    with FakeDriveServer(profile="strict") as drive:
        alice, bob = drive_service(drive.url, ALICE), drive_service(drive.url, BOB)
        [file_id] = alice.files().generateIds(count=1).execute()["ids"]
        media = MediaInMemoryUpload(b"x" * 1000, mimetype="application/octet-stream", resumable=True)
        with pytest.raises(HttpError) as err:
            bob.files().create(body={"id": file_id, "name": "squat"}, media_body=media).execute()
        assert http_error(err.value) == (400, "invalid")
        media = MediaInMemoryUpload(b"x" * 1000, mimetype="application/octet-stream", resumable=True)
        made = alice.files().create(body={"id": file_id, "name": "mine"}, media_body=media, fields="id,size").execute()
        assert made == {"id": file_id, "size": "1000"}


def test_a_multipart_upload_over_five_megabytes_is_refused_under_the_limit():
    with FakeDriveServer(faults=FaultConfig(multipart_max_bytes=MULTIPART_LIMIT)) as drive:
        alice = drive_service(drive.url, ALICE)
        small = MediaInMemoryUpload(b"x" * 5_000_000, mimetype="application/octet-stream", resumable=False)
        assert alice.files().create(body={"name": "small"}, media_body=small, fields="size").execute()["size"]
        big = MediaInMemoryUpload(b"x" * (MULTIPART_LIMIT + 1), mimetype="application/octet-stream", resumable=False)
        with pytest.raises(HttpError) as err:
            alice.files().create(body={"name": "big"}, media_body=big).execute()
        assert http_error(err.value) == (413, "uploadTooLarge")


def test_the_global_batch_endpoint_is_gone_under_the_strict_profile():
    for profile, status in (("default", 200), ("strict", 404)):
        with FakeDriveServer(profile=profile) as drive:
            body = (
                "--b\r\nContent-Type: application/http\r\nContent-ID: <1>\r\n\r\n"
                "GET /drive/v3/about?fields=user HTTP/1.1\r\n\r\n\r\n--b--\r\n"
            )
            headers = {
                "Authorization": f"Bearer {fake_token_for(ALICE)}",
                "Content-Type": "multipart/mixed; boundary=b",
            }
            for path, want in (("batch", status), ("batch/drive/v3", 200)):
                resp, _ = httplib2.Http().request(drive.url + path, "POST", body=body, headers=headers)
                assert resp.status == want, (profile, path, resp.status)


def test_shares_beyond_the_sharing_limit_are_refused_with_its_own_reason():
    with FakeDriveServer(faults=FaultConfig(share_rate=0.5, share_burst=2)) as drive:
        alice = drive_service(drive.url, ALICE)
        folder = alice.files().create(body={"name": "f", "mimeType": FOLDER}, fields="id").execute()["id"]

        def share(who: str):
            body = {"type": "user", "role": "reader", "emailAddress": who}
            return alice.permissions().create(fileId=folder, body=body).execute()

        share(BOB)
        share(CAROL)
        with pytest.raises(HttpError) as err:
            share("dave@example.com")
        assert http_error(err.value) == (403, "sharingRateLimitExceeded")
        assert drive.stats()["writes"]["shares_throttled"] == {ALICE: 1}
        time.sleep(2.1)
        share("dave@example.com")


def test_the_strict_profile_turns_every_field_report_on():
    strict = FaultConfig.for_profile("strict")
    assert (strict.or_listing, strict.own_properties_search, strict.reserved_ids_owned, strict.owners_exact) == (
        "subset",
        True,
        True,
        True,
    )
    assert strict.reserved_id_ttl == RESERVED_ID_TTL and strict.multipart_max_bytes == MULTIPART_LIMIT
    assert strict.global_batch is False and strict.share_rate > 0
    with pytest.raises(ValueError, match="or_listing"):
        FaultConfig(or_listing="some").validate()


def test_the_fake_drive_command_sets_what_an_or_listing_answers():
    """`fake-drive --or-listing first` lets a user try the field reports' partial listings by hand."""
    from syft_flwr_gdrive.fake.__main__ import config_from
    from syft_flwr_gdrive.fake.__main__ import parse_args

    assert config_from(parse_args(["--or-listing", "first"])).or_listing == "first"
    assert config_from(parse_args([])).or_listing == "all"  # the profile's own choice applies later
    with pytest.raises(SystemExit):
        parse_args(["--or-listing", "some"])
