"""A ClientApp exception never carries its text, a traceback or a local path off the data owner's machine.

The leaky app (apps/leaky_app) raises, on train and evaluate, exceptions whose messages hold a
private data value and the absolute path of the private file. While the run goes on, every file
the client owns on the fake Drive (content, name and metadata) is downloaded as the client
itself; afterwards the server's report (what the ServerApp was told) and log are read. None
may contain the value, the path, the exception text or a traceback. The client's own log does
(it is local), which proves the exceptions really carried them.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from pathlib import Path

import pytest

from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.transport.drive import layout
from tests.helpers.reliability import CLIENTS
from tests.helpers.reliability import LEAKY_APP
from tests.helpers.reliability import SERVER
from tests.helpers.reliability import api_for
from tests.helpers.reliability import file_props
from tests.helpers.reliability import leftover_message_files
from tests.helpers.reliability import make_federation

CLIENT = CLIENTS[0]
VALUE = "SECRET-7f3a9c-glucose-242.4242"


class OwnedFilesCapture:
    """Downloads every file ``email`` owns, as ``email``, every 30 ms, with name and metadata, and keeps each
    file ``email`` deletes as it was just before (from the fake's store, in the deleting request).

    Files are found in the fake's store, then read by id as ``email``: a listing lags (1 s under
    the strict profile), and a reply now lives less than that (the server fetches it by its
    promised id and the client deletes it soon after). A file that lived less than one pass (a pass is
    several requests, slow on a loaded machine) is still kept: its delete goes through the store."""

    FIELDS = "id,name,mimeType,description,appProperties,properties"

    def __init__(self, drive: FakeDriveServer, email: str) -> None:
        self.drive = drive
        self.email = email
        self.api = api_for(drive, email)
        self.seen: dict[str, dict] = {}
        self.bodies: dict[str, bytes] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> OwnedFilesCapture:
        store = self.drive.store
        delete = store.delete

        def delete_once_kept(email: str, file_id: str) -> None:
            self._keep(file_id)
            delete(email, file_id)

        store.delete = delete_once_kept  # type: ignore[method-assign]
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)
        self.sweep()
        del self.drive.store.delete  # the store's own method again

    def _keep(self, file_id: str) -> None:
        """A file about to be deleted, if ``email`` owns it: its metadata and content as ``email`` reads them."""
        store = self.drive.store
        with store.lock:
            rec = store.files.get(file_id)
            if rec is None or rec.owner != store.account(self.email):
                return
            self.seen[file_id] = store.get(self.email, file_id)
            if rec.is_folder or file_id in self.bodies:
                return
            fh, _size, _mime, _resource = store.open_content(self.email, file_id)
        if fh is None:
            self.bodies[file_id] = b""
            return
        with fh:
            self.bodies[file_id] = fh.read()

    def sweep(self) -> None:
        with self.drive.store.lock:
            ids = [fid for fid, rec in self.drive.store.files.items() if rec.owner == self.email]
        files = []
        for fid in ids:
            try:
                files.append(self.api.get(fid, fields=self.FIELDS))
            except Exception:
                pass  # deleted meanwhile
        for f in files:
            self.seen[f["id"]] = f
            if f.get("mimeType") != layout.FOLDER_MIME and f["id"] not in self.bodies:
                try:
                    self.bodies[f["id"]] = self.api.download_bytes(f["id"])
                except Exception:
                    pass  # deleted meanwhile; its metadata was still seen

    def _run(self) -> None:
        while not self._stop.wait(0.03):
            self.sweep()

    def everything(self) -> list[bytes]:
        """Each file's content, name, description and metadata values, also base64-decoded where they decode."""
        out: list[bytes] = list(self.bodies.values())
        for f in self.seen.values():
            texts = [f.get("name") or "", f.get("description") or "", *file_props(f).values()]
            for text in texts:
                out.append(text.encode("utf-8"))
                for decoder in (base64.b64decode, base64.urlsafe_b64decode):
                    try:
                        out.append(decoder(text + "=" * (-len(text) % 4)))
                    except (binascii.Error, ValueError):
                        pass
        return out


@pytest.mark.parametrize("encryption", ["default", "off"])
def test_client_app_errors_reach_the_server_without_data_paths_or_tracebacks(
    tmp_path: Path, drive: FakeDriveServer, encryption
):
    private_dir = tmp_path / "alice-private-records-8c1e"
    private_dir.mkdir()
    data_file = private_dir / "patients.csv"
    data_file.write_text(VALUE + "\n", encoding="utf-8")
    forbidden = [
        VALUE,
        str(data_file),
        str(private_dir),
        private_dir.name,
        "patients.csv",
        "labels-for-this-patient",
        "cannot use record",
        "out of range",
        "Traceback",
        'File "',
        "FileNotFoundError",
        "client_app.py",
    ]
    extra_env = {"SYFT_FLWR_ENCRYPTION_ENABLED": "false"} if encryption == "off" else {}

    with make_federation(tmp_path / "fed", drive, LEAKY_APP, client_emails=(CLIENT,), extra_env=extra_env) as fed:
        client = fed.client(0)
        client.args[client.args.index("--node-config") + 1] = json.dumps({"data-path": str(data_file)})
        with OwnedFilesCapture(drive, CLIENT) as capture:
            fed.start_all()
            assert fed.wait(90), fed.server().log_text()[-3000:]
        assert fed.server().process.returncode == 0, fed.server().log_text()[-3000:]
        assert client.process.returncode == 0 and client.report()["stopped_by"] == "stop-signal", client.log_text()[
            -3000:
        ]
        received = fed.server().report()["state"]["received"]
        server_log = fed.server().log_text()
        client_log = client.log_text()

    # The exceptions were raised with the private data (the client logs them locally, in full).
    assert VALUE in client_log and str(data_file) in client_log and "Traceback" in client_log
    assert client.report()["errors"] == 2
    # The server got one error reply per failing message type, and a normal reply to the query.
    assert (received["train-replies"], received["train-errors"]) == (1, 1), received
    assert (received["evaluate-replies"], received["evaluate-errors"]) == (1, 1), received
    assert (received["query-replies"], received["query-errors"]) == (1, 0), received
    assert received["train-reasons"] and received["evaluate-reasons"]
    print(
        f"\nerror reasons the server received: {received['train-reasons']!r}, {received['evaluate-reasons']!r}; "
        f"{len(capture.bodies)} client files downloaded, {len(capture.seen)} seen"
    )

    what_server_was_told = json.dumps(received)
    leaks = [word for word in forbidden if word in what_server_was_told]
    assert not leaks, f"the error reply carried {leaks}: {received}"
    leaks = [word for word in forbidden if word in server_log]
    assert not leaks, f"the server log holds {leaks}"
    # Everything the client put on Drive (requests to it are the server's, not captured here).
    assert len(capture.bodies) >= 3, "the capture saw none of the client's replies"
    blobs = capture.everything()
    if encryption == "off":  # the capture really reads the replies: their plaintext error reason is in there
        assert any(b"ClientApp raised ValueError" in blob for blob in blobs)
    leaks = sorted({word for word in forbidden for blob in blobs if word.encode("utf-8") in blob})
    assert not leaks, f"files the client wrote to Drive hold {leaks}"
    assert leftover_message_files(drive, (SERVER, CLIENT)) == {}
