"""DriveApi with the real googleapiclient against the fake Drive server (no client mocks)."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.fake import FaultConfig
from syft_flwr_gdrive.transport.contract import AccessLost
from syft_flwr_gdrive.transport.drive.api import FOLDER_MIME
from syft_flwr_gdrive.transport.drive.api import DriveApi
from syft_flwr_gdrive.transport.drive.api import escape_q
from syft_flwr_gdrive.transport.drive.auth import AccountMismatchError
from syft_flwr_gdrive.transport.drive.auth import verify_account
from syft_flwr_gdrive.transport.drive.errors import DriveAuthError
from syft_flwr_gdrive.transport.drive.errors import DriveNotFound
from syft_flwr_gdrive.transport.drive.errors import DrivePermissionDenied
from syft_flwr_gdrive.transport.drive.errors import DriveRateLimited
from syft_flwr_gdrive.transport.drive.errors import DriveUnavailable
from syft_flwr_gdrive.transport.drive.errors import DriveUploadCapReached
from syft_flwr_gdrive.transport.drive.retry import RetryPolicy
from tests.helpers.fake_service import drive_api_for

POLICY = RetryPolicy(max_attempts=15, max_total=60, initial_wait=0.001, max_wait=0.01, max_retry_after=0.01)
KIB, MIB = 1024, 1024 * 1024
ALICE, BOB = "alice@example.com", "bob@example.com"


@pytest.fixture
def srv():
    with FakeDriveServer() as server:
        yield server


def api_for(server: FakeDriveServer, email: str, **kw) -> DriveApi:
    kw.setdefault("retry", POLICY)
    return drive_api_for(server.url, email, **kw)


def names(files: list[dict]) -> list[str]:
    return sorted(f["name"] for f in files)


def test_two_users_sharing_ownership_and_all_methods(srv):
    alice, bob = api_for(srv, ALICE), api_for(srv, BOB)
    assert alice.about_me() == ALICE and verify_account(bob, "BOB@example.com") == BOB
    with pytest.raises(AccountMismatchError, match="alice@example.com.*bob@example.com"):
        verify_account(alice, BOB)

    inbox = alice.create_folder("inbox", properties={"role": "inbox"})
    assert inbox["mimeType"] == FOLDER_MIME and inbox["properties"] == {"role": "inbox"}
    msg = alice.upload_bytes("m1", b"hello bob", parent_id=inbox["id"], properties={"run": "r1"})
    assert msg["parents"] == [inbox["id"]] and msg["size"] == "9"
    assert msg["md5Checksum"] == hashlib.md5(b"hello bob").hexdigest()

    # Not shared yet: invisible to bob, and a 404 is never retried.
    with pytest.raises(DriveNotFound) as info:
        bob.get(msg["id"])
    assert info.value.retries == 0 and bob.calls.retries == 0
    assert bob.list_files(f"'{inbox['id']}' in parents") == []

    perm = alice.share(inbox["id"], BOB, role="writer")
    assert perm["role"] == "writer" and perm["emailAddress"] == BOB
    assert bob.get(msg["id"])["name"] == "m1"  # inherited from the folder
    assert names(bob.list_files(f"'{inbox['id']}' in parents and trashed = false")) == ["m1"]
    assert bob.download_bytes(msg["id"]) == b"hello bob"

    # The creator owns a file even in someone else's folder; only the owner may delete.
    reply = bob.upload_bytes("r1", b"hi alice", parent_id=inbox["id"])
    assert reply["owners"] == [{"emailAddress": BOB}]
    retries_before = alice.calls.retries
    with pytest.raises(DrivePermissionDenied) as denied:
        alice.delete(reply["id"])
    assert denied.value.reason == "insufficientFilePermissions" and denied.value.retries == 0
    assert alice.calls.retries == retries_before
    with pytest.raises(DrivePermissionDenied):
        bob.delete(msg["id"])
    assert alice.list_files(f"'{inbox['id']}' in parents and '{BOB}' in owners") == [alice.get(reply["id"])]

    # update: rename, properties, move between folders, trash.
    done = alice.create_folder("done")
    moved = alice.update(
        msg["id"], name="m1-read", properties={"state": "read"}, add_parents=[done["id"]], remove_parents=[inbox["id"]]
    )
    assert moved["name"] == "m1-read" and moved["parents"] == [done["id"]]
    assert moved["properties"] == {"run": "r1", "state": "read"}
    assert alice.update(msg["id"], properties={"run": None})["properties"] == {"state": "read"}
    assert names(bob.list_files(f"'{inbox['id']}' in parents")) == ["r1"]
    assert alice.update(msg["id"], trashed=True)["trashed"] is True
    assert alice.list_files(f"'{done['id']}' in parents and trashed = false") == []

    fresh = alice.upload_bytes("m2", b"2", parent_id=inbox["id"])
    ids = alice.generate_ids(1500)
    assert len(set(ids)) == 1500 and alice.calls.snapshot()["files.generateIds"] == 2

    # delete / delete_many: typed per-file results.
    res = alice.delete_many([fresh["id"], reply["id"], "no-such-id", done["id"]])
    assert res[fresh["id"]] is None and res[done["id"]] is None
    assert isinstance(res[reply["id"]], DrivePermissionDenied)
    assert isinstance(res["no-such-id"], DriveNotFound)
    bob.delete(reply["id"])
    bob.delete(reply["id"], missing_ok=True)
    with pytest.raises(DriveNotFound):
        bob.delete(reply["id"])


def test_odd_addresses_reach_their_own_account(srv):
    """By the fake's ``fake:`` tokens (tests) and by the token endpoint (participants), quotes, backslashes,
    ``+`` and ``#`` are part of the address: ``#`` separates the app id in a ``fake:`` token, so it is escaped."""
    from syft_flwr_gdrive.transport.drive.auth import fake_drive_credentials

    for email in ("alice@example.com", "O'Neil\\x@Example.com", "a+b@x.org", "a#b@x.org"):
        assert drive_api_for(srv.url, email).about_me() == email.lower()
        assert DriveApi(fake_drive_credentials(srv.url, email), base_url=srv.url).about_me() == email.lower()


def test_an_address_with_a_hash_is_one_account_not_an_app_id(srv):
    """``#`` separates the fake's app id in a token: the helper takes the fake's own encoding, so it is escaped."""
    assert drive_api_for(srv.url, "a#b@example.com").about_me() == "a#b@example.com"


def test_socket_timeout_is_transient_then_unavailable(srv):
    alice = api_for(srv, ALICE, timeout=0.2, retry=RetryPolicy(max_attempts=2, initial_wait=0.001, max_wait=0.001))
    assert alice._new_http().http.timeout == 0.2
    srv.faults.latency = 1.0
    with pytest.raises(DriveUnavailable, match="timed out") as info:
        alice.about_me()
    assert info.value.retries == 1 and alice.calls.snapshot() == {"about.get": 2}


def test_unknown_token_is_an_auth_error():
    with FakeDriveServer(strict_tokens=True) as server:
        with pytest.raises(DriveAuthError) as info:
            api_for(server, "mallory@example.com").about_me()
        assert info.value.retries == 0


@pytest.mark.parametrize(
    "name", ["o'brien", "back\\slash", "both \\' mixed", "it''s \\\\ here", "x' or name contains 'a"]
)
def test_escaping_names(srv, name):
    alice = api_for(srv, ALICE)
    folder = alice.create_folder("esc")
    target = alice.upload_bytes(name, name.encode(), parent_id=folder["id"], properties={"label": name})
    alice.upload_bytes("a decoy", b"d", parent_id=folder["id"])
    q = f"name = '{escape_q(name)}' and '{folder['id']}' in parents"
    assert [f["id"] for f in alice.list_files(q)] == [target["id"]]
    q2 = f"properties has {{ key='label' and value='{escape_q(name)}' }}"
    assert [f["id"] for f in alice.list_files(q2)] == [target["id"]]


def test_escaping_emails(srv):
    odd = "o'neil\\x@example.com"  # the fake token percent-encodes it (httplib2 mangles '\\')
    alice, oneil = api_for(srv, ALICE), api_for(srv, odd)
    assert oneil.about_me() == odd
    folder = alice.create_folder("shared")
    alice.share(folder["id"], odd, role="writer")
    theirs = oneil.upload_bytes("from-oneil", b"o", parent_id=folder["id"])
    alice.upload_bytes("from-alice", b"a", parent_id=folder["id"])
    q = f"'{folder['id']}' in parents and '{escape_q(odd)}' in owners"
    assert [f["id"] for f in alice.list_files(q)] == [theirs["id"]]
    q_folders = f"'{escape_q(odd)}' in writers and mimeType = '{FOLDER_MIME}'"
    assert [f["id"] for f in oneil.list_files(q_folders)] == [folder["id"]]
    alice.create_folder("not shared")
    assert [f["id"] for f in oneil.list_files(q_folders)] == [folder["id"]]


@pytest.mark.slow  # ~10 s
def test_pagination_over_2500_files(srv):
    alice = api_for(srv, ALICE)
    folder = alice.create_folder("many")
    with ThreadPoolExecutor(8) as pool:
        created = list(
            pool.map(lambda i: alice.create_folder(f"f{i:04d}", folder["id"], fields="id")["id"], range(2500))
        )
    before = alice.calls.snapshot().get("files.list", 0)
    listed = alice.list_files(f"'{folder['id']}' in parents", fields="id,name", order_by="name")
    assert len(listed) == 2500 and sorted(f["id"] for f in listed) == sorted(created)
    assert [f["name"] for f in listed] == [f"f{i:04d}" for i in range(2500)]
    assert alice.calls.snapshot()["files.list"] - before == 3
    small_pages = alice.list_files(f"'{folder['id']}' in parents", fields="id", page_size=300)
    assert len({f["id"] for f in small_pages}) == 2500
    assert alice.calls.snapshot()["files.list"] - before == 3 + 9


@pytest.mark.slow  # a child process
def test_64mib_stream_roundtrip_with_bounded_client_memory(srv):
    size, chunk = 64 * MIB, 2 * MIB
    child = Path(__file__).with_name("_drive_stream_child.py")
    out = subprocess.run(
        [sys.executable, str(child), srv.url, ALICE, str(size), str(chunk)], capture_output=True, text=True, timeout=240
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["downloaded_bytes"] == report["sink_bytes"] == report["remote_size"] == size
    assert report["downloaded_sha256"] == report["uploaded_sha256"]
    # The payload is 64 MiB; the client holds only a few 2 MiB chunks at a time.
    assert report["upload_peak"] < size // 4, report
    assert report["download_peak"] < size // 4, report
    assert report["calls"]["media.upload"] == 1 + size // chunk  # session start + chunks
    assert report["calls"]["media.download"] == size // chunk


def test_binary_payloads_roundtrip_exactly(srv):
    alice = api_for(srv, ALICE)
    payloads = [
        b"",
        b"\r",
        b"a\r",
        b"\r\n",
        b"\n",
        b"x\r\n--boundary--\r\n",
        bytes(range(256)) * 3,
        bytes(range(256))[::-1],
        b"\r" * 1000,
    ]
    for i, data in enumerate(payloads):
        f = alice.upload_bytes(f"p{i}", data, parent_id=None)
        assert int(f["size"]) == len(data), (i, data[:20])
        assert alice.download_bytes(f["id"]) == data, (i, data[:20])


def test_idempotent_create_with_generated_id_under_ambiguous_failures(srv):
    alice = api_for(srv, ALICE, chunk_size=256 * KIB)
    folder = alice.create_folder("idem")
    ids = alice.generate_ids(40)
    # Every create may take effect and then lose its answer (dropped, or a 5xx "after").
    srv.faults = FaultConfig(
        seed=11,
        drop_rate=0.4,
        drop_after_fraction=1.0,
        error_rate=0.3,
        error_kinds=["500", "503"],
        error_after_fraction=1.0,
        routes=["files.create", "upload.create", "upload.chunk"],
    )
    made = []
    for i, fid in enumerate(ids):
        if i % 4 == 0:
            made.append(alice.create_folder(f"dir{i}", folder["id"], file_id=fid))
        elif i % 4 == 1:
            data = bytes([i]) * (600 * KIB)  # resumable: several chunks
            made.append(alice.upload_bytes(f"big{i}", data, parent_id=folder["id"], file_id=fid))
        else:
            made.append(alice.upload_bytes(f"f{i}", f"body {i}".encode(), parent_id=folder["id"], file_id=fid))
    injected = srv.stats()["faults"]
    srv.faults = FaultConfig()
    assert [m["id"] for m in made] == ids
    assert injected.get("drop_after", 0) > 5
    assert alice.calls.retries > 10
    assert alice.calls.snapshot().get("files.get", 0) > 0  # some creates came back as 409 -> get
    listed = alice.list_files(f"'{folder['id']}' in parents", fields="id,name")
    assert sorted(f["id"] for f in listed) == sorted(ids)  # exactly one file per create
    for i, fid in enumerate(ids):
        if i % 4 == 1:
            assert alice.download_bytes(fid) == bytes([i]) * (600 * KIB)
        elif i % 4 > 1:
            assert alice.download_bytes(fid) == f"body {i}".encode()


def test_call_counters_add_up_and_match_the_server(srv):
    alice = api_for(srv, ALICE, chunk_size=256 * KIB)
    alice.about_me()
    folder = alice.create_folder("c")
    small = alice.upload_bytes("s", b"x" * 100, parent_id=folder["id"])
    big = alice.upload_bytes("b", b"y" * (600 * KIB), parent_id=folder["id"])  # start + 3 chunks
    alice.get(small["id"])
    alice.list_files(f"'{folder['id']}' in parents")
    alice.download_bytes(big["id"])  # 3 ranged chunks
    alice.update(small["id"], name="s2")
    alice.share(folder["id"], BOB)
    alice.delete(small["id"])
    with pytest.raises(DriveNotFound):
        alice.get(small["id"])
    expected = {
        "about.get": 1,
        "files.create": 2,
        "media.upload": 4,
        "files.get": 2,
        "files.list": 1,
        "media.download": 3,
        "files.update": 1,
        "permissions.create": 1,
        "files.delete": 1,
    }
    assert alice.calls.snapshot() == expected
    assert alice.calls.total == sum(expected.values()) == 16
    assert alice.calls.retries == 0
    assert srv.stats()["by_user"][ALICE] == alice.calls.total


def test_counters_under_faults_match_the_server(srv):
    alice = api_for(srv, ALICE)
    srv.faults = FaultConfig(seed=5, error_rate=0.3, drop_rate=0.1)
    folder = alice.create_folder("c", file_id=alice.generate_ids(1)[0])
    for i in range(20):
        f = alice.upload_bytes(f"n{i}", b"z", parent_id=folder["id"], file_id=alice.generate_ids(1)[0])
        alice.get(f["id"])
    srv.faults = FaultConfig()
    snap = alice.calls.snapshot()
    assert alice.calls.total == sum(snap.values())
    assert alice.calls.retries > 0
    # Every request put on the wire is counted once, including ones the server dropped
    # (the fake files those under no user, so compare with its total: alice is alone here).
    stats = srv.stats()
    assert sum(stats["requests"].values()) == alice.calls.total
    assert stats["faults"].get("drop_before", 0) + stats["faults"].get("drop_after", 0) > 0


def test_eight_threads_share_one_api_and_get_their_own_answers(srv):
    srv.faults = FaultConfig(latency=0.002)
    alice = api_for(srv, ALICE)
    root = alice.create_folder("threads")
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker(t: int) -> None:
        try:
            barrier.wait()
            mine = alice.create_folder(f"t{t}", root["id"])
            made = {}
            for i in range(6):
                body = f"thread {t} item {i} ".encode() * (t + i + 1)
                f = alice.upload_bytes(f"t{t}-{i}", body, parent_id=mine["id"], properties={"t": str(t), "i": str(i)})
                assert f["name"] == f"t{t}-{i}" and f["properties"] == {"t": str(t), "i": str(i)}
                made[f["id"]] = body
            for fid, body in made.items():
                assert alice.get(fid, fields="id,parents")["parents"] == [mine["id"]]
                assert alice.download_bytes(fid) == body
            listed = alice.list_files(f"'{mine['id']}' in parents", fields="id")
            assert sorted(f["id"] for f in listed) == sorted(made)
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not errors, errors[0]
    snap = alice.calls.snapshot()
    assert snap == {"files.create": 1 + 8 * 7, "files.get": 48, "media.download": 48, "files.list": 8}
    assert alice.calls.total == srv.stats()["by_user"][ALICE]


def test_dropped_connection_is_not_silently_resent_by_httplib2(srv):
    """httplib2 re-sends once on BadStatusLine; our connections turn that off (one policy)."""
    alice = api_for(srv, ALICE, retry=RetryPolicy(max_attempts=1))
    folder = alice.create_folder("x")
    srv.faults = FaultConfig(drop_rate=1.0, drop_after_fraction=0.0, routes=["files.get"])
    before = sum(srv.stats()["requests"].values())
    with pytest.raises(DriveUnavailable, match="Could not reach Drive") as info:
        alice.get(folder["id"])
    assert info.value.retries == 0
    assert sum(srv.stats()["requests"].values()) - before == 1
    assert alice.calls.snapshot()["files.get"] == 1


@pytest.mark.parametrize("status", [403, 429])
def test_exhausted_quota_raises_rate_limited_naming_the_fix(srv, status):
    alice = api_for(srv, ALICE, retry=RetryPolicy(max_attempts=3, initial_wait=0.001, max_wait=0.001))
    srv.faults.quota_units_per_min = 100  # one files.list per minute
    srv.faults.quota_status = status
    alice.list_files("trashed = false")
    with pytest.raises(DriveRateLimited) as info:
        alice.list_files("trashed = false")
    err = info.value
    assert err.status == status and err.retries == 2 and alice.calls.retries == 2
    assert err.reason == ("userRateLimitExceeded" if status == 403 else "rateLimitExceeded")
    assert "quota" in err.message.lower() and "SYFT_FLWR_POLL_INTERVAL" in err.message


def test_the_daily_upload_cap_is_not_retried_and_says_it_resets_within_a_day(srv):
    """403 userRateLimitExceeded "User rate limit exceeded." is the cap (field reports), not the per-minute quota:
    no backoff can outlast it, so it is raised at once, for small and resumable uploads alike."""
    alice = api_for(srv, ALICE, chunk_size=256 * KIB)
    srv.faults.upload_bytes_per_day = 250 * KIB
    alice.upload_bytes("first", b"x" * 100 * KIB, parent_id=None)
    for name, upload in (
        ("multipart", lambda: alice.upload_bytes("small", b"x" * 200 * KIB, parent_id=None)),
        ("resumable", lambda: alice.upload_stream("big", io.BytesIO(b"x" * MIB), MIB, parent_id=None)),
    ):
        with pytest.raises(DriveUploadCapReached) as info:
            upload()
        err = info.value
        assert isinstance(err, AccessLost) and err.retries == 0, name
        assert (err.status, err.reason) == (403, "userRateLimitExceeded")
        assert str(err).startswith("Drive refused an upload: this account has reached Google Drive's daily upload cap")
        assert "resets within 24 hours and retrying sooner does not help" in str(err)
        assert "SYFT_FLWR_POLL_INTERVAL" not in str(err)  # not the rate limit's "slow down"
    assert alice.calls.retries == 0 and srv.stats()["faults"]["daily_upload_cap"] == 2
    assert alice.list_files("name = 'first'")  # reading goes on: only uploads are capped


def test_resumable_upload_resumes_after_failed_chunks_instead_of_restarting(srv):
    chunk, n_chunks = 256 * KIB, 24
    data = bytes(range(256)) * (chunk * n_chunks // 256)
    alice = api_for(srv, ALICE, chunk_size=chunk)
    srv.faults = FaultConfig(
        seed=3,
        drop_rate=0.15,
        error_rate=0.15,
        error_kinds=["500", "503"],
        error_after_fraction=0.5,
        routes=["upload.chunk"],
    )
    meta = alice.upload_stream("resumed", io.BytesIO(data), len(data), parent_id=None)
    stats = srv.stats()
    srv.faults = FaultConfig()
    failures = sum(stats["faults"].values())
    chunk_puts = sum(v for k, v in stats["requests"].items() if k.startswith("PUT upload.chunk"))
    assert failures >= 3
    # Each failure costs at most a probe and one re-sent chunk; a restart would re-send all.
    assert chunk_puts <= n_chunks + 2 * failures
    assert stats["requests"].get("POST upload.create", 0) == 1  # one session, never restarted
    assert alice.download_bytes(meta["id"]) == data
