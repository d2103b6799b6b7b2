"""A model sent in parts both ways (message format 4) between real processes on the fake Drive.

The embedding app's model is 3 MiB; with SYFT_FLWR_BLOB_PART_MB=1 the server's global model and each
client's trained model go as blobs of three parts, named in the request or reply before they upload.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest

from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.transport.drive import layout
from tests.helpers.reliability import CLIENTS
from tests.helpers.reliability import HERE
from tests.helpers.reliability import SERVER
from tests.helpers.reliability import leftover_message_files
from tests.helpers.reliability import make_federation

EMBEDDING_APP = HERE / "apps" / "embedding_app"
ROUNDS = 2


class BlobWatch:
    """Notes, from a thread, every blob file (not message) each account stores while the run goes on."""

    def __init__(self, drive: FakeDriveServer) -> None:
        self.seen: dict[str, set[str]] = {email: set() for email in (SERVER, *CLIENTS)}
        self._drive = drive
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> BlobWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._halt.set()
        self._thread.join(30)

    def _run(self) -> None:
        store = self._drive.store  # the fake's own records: no listing lag, no faults
        accounts = {store.account(email): email for email in self.seen}
        while not self._halt.wait(0.02):
            with store.lock:
                blobs = [(rec.owner, rec.id) for rec in store.files.values() if layout.P_BLOB in rec.properties]
            for owner, file_id in blobs:
                if owner in accounts:
                    self.seen[accounts[owner]].add(file_id)


def test_a_model_in_parts_trains_both_ways_and_leaves_nothing(tmp_path: Path, drive: FakeDriveServer):
    with (
        make_federation(
            tmp_path,
            drive,
            project=EMBEDDING_APP,
            msg_timeout=60.0,
            run_config={"num-server-rounds": ROUNDS},
            extra_env={"SYFT_FLWR_BLOB_PART_MB": "1"},
        ) as fed,
        BlobWatch(drive) as watch,
    ):
        fed.start_all()
        assert fed.wait(200), "federation did not finish:\n" + fed.server().log_text()[-3000:]
        server = fed.server()
        assert server.process.returncode == 0, server.log_text()[-3000:]
        final = server.report()["state"]["final"]
        # FedAvg of steps 1, 2, 3 with equal weights: +2 per round, on every one of the 49,152 x 16 weights
        assert final["rows"] == 3 * 1024 * 1024 // 64
        assert final["embedding_min"] == final["embedding_max"] == pytest.approx(2.0 * ROUNDS)
        assert final["dense_mean"] == pytest.approx(2.0 * ROUNDS)
        for phase in ("aggregate_train", "aggregate_evaluate"):
            received = re.findall(rf"{phase}: Received (\d+) results and (\d+) failures", server.log_text())
            assert received == [("3", "0")] * ROUNDS, (phase, received)
        for i in range(len(CLIENTS)):
            client = fed.client(i)
            assert client.process.returncode == 0 and client.report()["stopped_by"] == "stop-signal"
            log = client.log_text()
            assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
        time.sleep(0.2)
    # three parts per model: the server's three distinct global models, each client's two trained models
    assert len(watch.seen[SERVER]) >= 3 * 3, watch.seen
    for email in CLIENTS:
        assert len(watch.seen[email]) >= 2 * 3, (email, watch.seen[email])
    assert leftover_message_files(drive) == {}
