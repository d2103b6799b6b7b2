"""The directory transport runs the federation: a server and three clients, each its own OS process,
sharing nothing but a folder (the contract is the shared protocol, not Drive)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from syft_flwr_gdrive.localrun.federation import LocalFederation
from syft_flwr_gdrive.transport.directory import DirectoryTransport
from tests.helpers.e2e import CLI
from tests.helpers.e2e import CLIENTS
from tests.helpers.e2e import MESSAGE_APP
from tests.helpers.e2e import SERVER
from tests.helpers.e2e import env_for
from tests.helpers.flower_metrics import server_history

ROUNDS = 2


def run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + args, env=env_for(), capture_output=True, text=True, timeout=timeout)


def test_three_clients_train_over_a_shared_directory(tmp_path: Path):
    shared = tmp_path / "shared"
    shared.mkdir()
    fed = LocalFederation(
        tmp_path / "fed",
        MESSAGE_APP,
        None,
        server_email=SERVER,
        client_emails=CLIENTS,
        poll_interval=0.2,
        msg_timeout=40.0,
        run_config={"num-server-rounds": ROUNDS},
        extra_env={"SYFT_FLWR_TRANSPORT": "dir", "SYFT_FLWR_DIR": str(shared)},
    )
    with fed:
        fed.start_all()
        assert fed.wait(240), "the federation did not finish in 240 s"
    server = fed.server()
    assert server.process.returncode == 0, server.log_text()[-3000:]
    report = server.report()
    assert report["completed"] and report["summary"]["errors"] == 0 and report["summary"]["missing"] == 0
    assert server_history(report)["round"] == list(range(1, ROUNDS + 1))
    assert server_history(report)["num_clients"] == [3] * ROUNDS
    assert report["drive_calls"].get("write", 0) > 0  # the directory carried the messages: no Drive involved
    for i in range(len(CLIENTS)):
        client = fed.client(i)
        assert client.process.returncode == 0, client.log_text()[-3000:]
        assert client.report()["stopped_by"] == "stop-signal" and client.report()["handled"] > 0
    assert {p.name for p in shared.iterdir()} == {SERVER, *CLIENTS}  # one subfolder per participant
    left = {e: DirectoryTransport(shared, e).my_postings() for e in (SERVER, *CLIENTS)}
    assert left == {e: [] for e in left}, "every participant deletes its own messages once acted on"


def test_demo_command_over_a_shared_directory(tmp_path: Path):
    out, shared = tmp_path / "demo", tmp_path / "shared"
    proc = run(
        [
            "demo",
            "--transport",
            "dir",
            "--dir",
            str(shared),
            "--clients",
            "2",
            "--rounds",
            "2",
            "--out",
            str(out),
            "--poll-interval",
            "0.2",
        ],
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["ok"] and report["rounds_completed"] == 2 and report["transport"] == "dir"
    assert "over a shared directory" in proc.stdout and "Storage calls" in proc.stdout
    assert sorted(p.name for p in shared.iterdir()) == sorted(report["participants"])
    bad = run(["demo", "--transport", "dir", "--error-rate", "0.1"])
    assert bad.returncode == 2 and "--transport p2p" in bad.stderr
