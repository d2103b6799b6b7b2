"""Server lifecycle: persistence across restarts, clean and quick stops, the CLI process."""

from __future__ import annotations

import io
import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from googleapiclient.errors import HttpError
from googleapiclient.http import MediaIoBaseUpload

from syft_flwr_gdrive.fake import FakeDriveServer
from tests.helpers.fake_service import FOLDER
from tests.helpers.fake_service import drive_service

ALICE, BOB = "alice@example.com", "bob@example.com"
REPO = Path(__file__).resolve().parents[2]


def test_restart_with_same_data_dir_keeps_everything(tmp_path):
    data = tmp_path / "drive"
    with FakeDriveServer(data_dir=data) as srv:
        a = drive_service(srv.url, ALICE)
        box = a.files().create(body={"name": "box", "mimeType": FOLDER}, fields="id").execute()["id"]
        a.permissions().create(fileId=box, body={"type": "user", "role": "reader", "emailAddress": BOB}).execute()
        kept = (
            a.files()
            .create(
                body={"name": "kept", "parents": [box], "appProperties": {"run": "7"}},
                media_body=MediaIoBaseUpload(io.BytesIO(b"payload"), "application/octet-stream"),
                fields="id,md5Checksum",
            )
            .execute()
        )
        gone = a.files().create(body={"name": "gone", "parents": [box]}, fields="id").execute()["id"]
        a.files().delete(fileId=gone).execute()
        spare_id, used_id = a.files().generateIds(count=2).execute()["ids"]
        a.files().create(body={"id": used_id, "name": "used"}).execute()
        token = drive_service(srv.url, BOB).changes().getStartPageToken().execute()["startPageToken"]
        root = a.files().get(fileId="root", fields="id").execute()["id"]
    for _ in range(2):  # twice: the journal compacted at the first restart must be complete too
        with FakeDriveServer(data_dir=data) as srv:
            a, b = drive_service(srv.url, ALICE), drive_service(srv.url, BOB)
            got = (
                b.files()
                .list(
                    q=f"'{box}' in parents and appProperties has {{ key='run' and value='7' }}",
                    fields="files(id,md5Checksum)",
                )
                .execute()["files"]
            )
            assert got == [{"id": kept["id"], "md5Checksum": kept["md5Checksum"]}]
            assert b.files().get_media(fileId=kept["id"]).execute() == b"payload"
            with pytest.raises(HttpError):
                a.files().get(fileId=gone).execute()
            assert a.files().get(fileId="root", fields="id").execute()["id"] == root
            assert b.changes().list(pageToken=token).execute()["changes"] == []  # old tokens stay valid
            with pytest.raises(HttpError) as e:
                a.files().create(body={"id": used_id, "name": "again"}).execute()
            assert e.value.resp.status == 409
    with FakeDriveServer(data_dir=data) as srv:
        a = drive_service(srv.url, ALICE)
        assert a.files().create(body={"id": spare_id, "name": "spare"}, fields="id").execute()["id"] == spare_id


def test_journal_compaction_while_running_loses_nothing(tmp_path, monkeypatch):
    from syft_flwr_gdrive.fake import journal
    from syft_flwr_gdrive.fake import store

    monkeypatch.setattr(journal, "JOURNAL_COMPACT_AT", 10)
    monkeypatch.setattr(journal, "CHANGES_KEPT", 5)
    compactions = []
    real = store.Store._compact
    monkeypatch.setattr(store.Store, "_compact", lambda self: (compactions.append(1), real(self))[1])
    data = tmp_path / "drive"
    with FakeDriveServer(data_dir=data) as srv:
        a = drive_service(srv.url, ALICE)
        files = a.files()
        made = {}
        for i in range(6):
            body = f"content {i}".encode()
            fid = files.create(
                body={"name": f"f{i}"}, fields="id", media_body=MediaIoBaseUpload(io.BytesIO(body), "text/plain")
            ).execute()["id"]
            for k in range(8):
                files.update(fileId=fid, body={"description": f"d{i}.{k}"}).execute()
            made[fid] = (body, f"d{i}.7")
    assert len(compactions) > 1  # the start-up one and at least one while running
    with FakeDriveServer(data_dir=data) as srv:
        files = drive_service(srv.url, ALICE).files()
        for fid, (body, desc) in made.items():
            assert files.get_media(fileId=fid).execute() == body
            assert files.get(fileId=fid, fields="description").execute() == {"description": desc}
        assert len(files.list(q="name contains 'f'", fields="files(id)").execute()["files"]) == 6


def test_stop_is_quick_with_idle_keepalive_connections_and_idempotent():
    srv = FakeDriveServer().start()
    svc = drive_service(srv.url, ALICE)
    svc.about().get(fields="user").execute()  # leaves an idle keep-alive connection open
    httpd, serve_thread = srv._httpd, srv._thread
    conn_threads = list(httpd._conns.values())
    assert conn_threads
    srv.stop(timeout=5.0)
    srv.stop()
    assert not srv.running and httpd.connection_count() == 0
    assert not serve_thread.is_alive() and not any(t.is_alive() for t in conn_threads)
    assert not Path(srv.store.dir).exists()  # a temporary data dir is removed


def _spawn(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(
        [sys.executable, "-m", "syft_flwr_gdrive.fake", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=REPO,
        text=True,
    )


def _first_line(proc: subprocess.Popen, wait: float = 30.0) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], wait)
    assert ready, "the CLI did not print its URL line"
    return proc.stdout.readline()


@pytest.mark.slow  # starts the fake's CLI
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_prints_url_serves_and_stops_on_signal(tmp_path, sig):
    port_file = tmp_path / "url.txt"
    proc = _spawn(
        "--port",
        "0",
        "--port-file",
        str(port_file),
        "--seed",
        "3",
        "--latency-ms",
        "1",
        "--data-dir",
        str(tmp_path / "d"),
    )
    try:
        info = json.loads(_first_line(proc))
        assert info["url"].startswith("http://127.0.0.1:") and info["url"].endswith("/")
        assert port_file.read_text().strip() == info["url"]
        svc = drive_service(info["url"], ALICE)
        assert svc.about().get(fields="user(emailAddress)").execute() == {"user": {"emailAddress": ALICE}}
        proc.send_signal(sig)  # with the client's keep-alive connection still open
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


@pytest.mark.slow  # starts the fake's CLI
def test_cli_rejects_bad_fault_settings():
    proc = _spawn("--error-rate", "2")
    try:
        assert proc.wait(timeout=30) == 2
        assert "error_rate" in proc.stderr.read()
    finally:
        proc.stdout.close()
        proc.stderr.close()
