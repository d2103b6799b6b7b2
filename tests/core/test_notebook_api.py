"""The shipping functions from Python, as a notebook uses them: offer, list, approve, and a node in a thread."""

from __future__ import annotations

import time

import pytest

import syft_flwr_gdrive as sfg
from syft_flwr_gdrive.fake import FakeDriveServer
from tests.helpers.e2e import REPO

APP = REPO / "fixtures" / "quickstart_app"
DS = "ds@example.com"
DO = "do@example.com"


@pytest.mark.slow  # a fake Drive in this process, and the node starts a ClientApp process
def test_notebook_node_takes_an_offer_runs_the_approved_app_and_stops(tmp_path, monkeypatch):
    monkeypatch.setenv("SYFT_FLWR_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("SYFT_FLWR_POLL_INTERVAL", "0.2")
    for name in ("SYFTBOX_EMAIL", "SYFT_FLWR_AGGREGATOR"):
        monkeypatch.delenv(name, raising=False)
    with FakeDriveServer() as drive:
        node = sfg.start_node(DS, {"partition-id": 0}, email=DO, drive_url=drive.url)
        try:
            assert node.ready.wait(30) and node.running
            offered = sfg.submit(APP, [DO], wait=30, email=DS, drive_url=drive.url)
            assert offered["status"] == {DO: "awaiting approval"}  # the node holds it; its owner has not decided
            [app] = sfg.apps(email=DO)
            assert app["state"] == "pending" and app["name"] == "quickstart-linreg"
            assert "quickstart_linreg/client_app.py" in sfg.review(app["id"], email=DO)["file_list"]
            assert sfg.approve(app["id"], {"partition-id": 1}, email=DO)["state"] == "approved"
            deadline = time.monotonic() + 30
            while not node_children(node) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert node_children(node), "the approved app's client was not started"
        finally:
            started = time.monotonic()
            report = node.stop()
            stopped_in = time.monotonic() - started
        assert not node.running and stopped_in < 15
        assert report.clients_started >= 1 and report.offers_received == 1 and report.client_crashes == 0
        assert sfg.reject(app["id"], "changed my mind", email=DO)["state"] == "rejected"


def node_children(node) -> bool:
    logs = node.store.root / "logs"
    return logs.is_dir() and any(logs.iterdir())
