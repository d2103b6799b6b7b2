"""The compatibility corpus (``fixtures/compat``): Flower apps written as Flower's examples are,
run unchanged as users run them: ``bootstrap``, N ``client`` processes and a ``server`` process over
the fake Drive.

Each app runs once per module (processes are the expensive part); the tests then check what each
side saw, the exit codes, the reported outcome and that nothing is left on Drive.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.localrun.federation import LocalFederation
from syft_flwr_gdrive.transport.drive.transport import DriveTransport
from tests.helpers.fake_service import drive_api_for

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "compat"
SERVER = "ds@example.com"
CLIENTS = ("alice@example.com", "bob@example.org")
CLI = [sys.executable, "-m", "syft_flwr_gdrive.cli"]


@dataclass
class Run:
    fed: LocalFederation
    records: Path
    out: Path
    leftovers: dict[str, int]
    finished: bool

    def seen(self, side: str) -> list[dict[str, Any]]:
        path = self.records / f"{side}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def server_report(self) -> dict[str, Any]:
        return self.fed.server().report() or {}


@contextmanager
def fake_drive_process(port: int) -> Iterator[str]:
    """`syft-flwr-gdrive fake-drive --port P` as the README's several-terminals walkthrough starts it."""
    proc = subprocess.Popen(CLI + ["fake-drive", "--port", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()  # the first line is the URL alone
        assert url == f"http://127.0.0.1:{port}/", url
        assert f"export SYFT_FLWR_DRIVE_URL={url}" in proc.stdout.readline() + proc.stdout.readline()
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_app(
    tmp: Path, name: str, *, run_config: str, node_configs: list, timeout: float = 240, drive_process: bool = False
) -> Run:
    project = tmp / name
    shutil.copytree(CORPUS / name, project, ignore=shutil.ignore_patterns("__pycache__"))
    boot = subprocess.run(
        CLI + ["bootstrap", "-p", str(project), "--aggregator", SERVER, "--datasites", ",".join(CLIENTS)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert boot.returncode == 0, boot.stderr
    records, out = tmp / "records", tmp / "out"
    records.mkdir()
    with fake_drive_process(free_port()) if drive_process else FakeDriveServer() as drive:
        url = drive if isinstance(drive, str) else drive.url
        fed = LocalFederation(
            tmp / "fed",
            project,
            url,
            server_email=SERVER,
            client_emails=CLIENTS,
            poll_interval=0.2,
            msg_timeout=60.0,
            run_config=run_config.replace("OUT", str(out)),
            node_configs=node_configs,
            extra_env={"COMPAT_RECORD_DIR": str(records)},
        )
        with fed:
            fed.start_all()
            finished = fed.wait(timeout)
        leftovers = {}
        for email in (SERVER, *CLIENTS):
            transport = DriveTransport(drive_api_for(url, email), email)
            count = len(transport.my_postings()) + len(transport.list_my_blobs(f"flwr/{name.replace('_', '-')}"))
            if count:
                leftovers[email] = count
    return Run(fed, records, out, leftovers, finished)


def assert_clean_exit(run: Run) -> None:
    assert run.finished, "participants still running at the timeout"
    for key, participant in run.fed.participants.items():
        assert participant.process.returncode == 0, f"{key}: " + participant.log_text()[-3000:]
    for i in range(len(CLIENTS)):
        assert run.fed.client(i).report()["stopped_by"] == "stop-signal"
    assert run.leftovers == {}, f"message files left on Drive: {run.leftovers}"


# -- Message API (quickstart-sklearn / quickstart-pandas style) ----------------------------------------


@pytest.fixture(scope="module")
def tabular(tmp_path_factory) -> Run:
    # Overrides in Flower's own `flwr run --run-config` form; node configs in both accepted forms,
    # and alice's ClientApp raises in round 2.
    return run_app(
        tmp_path_factory.mktemp("tabular"),
        "tabular_message",
        run_config='num-server-rounds=3 penalty="none" output-dir="OUT"',
        node_configs=["partition-id=0 num-partitions=2 fail-in-round=2", {"partition-id": 1, "num-partitions": 2}],
    )


def test_message_api_app_completes_with_exit_0_everywhere_and_leaves_nothing(tabular):
    assert_clean_exit(tabular)
    report = tabular.server_report()
    assert report["completed"] is True and report["error"] is None
    assert report["state"] == {}  # the app never touches context.state: that is no failure


def test_message_api_clients_see_the_servers_run_config_and_their_node_config(tabular):
    expected = {
        "num-server-rounds": 3,
        "penalty": "none",
        "local-epochs": 1,
        "learning-rate": 0.1,
        "fraction-train": 1.0,
        "histogram-feature": "x0",
        "output-dir": str(tabular.out),
    }
    [main] = [r for r in tabular.seen("server") if r["kind"] == "main"]
    assert main["run_config"] == expected  # defaults overlaid with the server's overrides
    for i in range(2):
        trains = [r for r in tabular.seen(f"client{i}") if r["kind"] == "train"]
        assert [r["round"] for r in trains] == [1, 2, 3]
        assert all(r["run_config"] == expected for r in trains)  # not the client's own pyproject defaults
        assert trains[0]["node_config"]["partition-id"] == i and trains[0]["node_config"]["num-partitions"] == 2
    assert tabular.seen("client0")[0]["node_config"]["fail-in-round"] == 2  # k=v form: ints stay ints
    assert tabular.fed.client(1).report()["node_config"] == {"partition-id": 1, "num-partitions": 2}  # JSON form


def test_message_api_error_replies_are_reported_per_round_and_datasite(tabular):
    report = tabular.server_report()
    assert report["summary"]["errors"] == 1 and report["summary"]["error_types"] == {"RuntimeError": 1}
    assert report["summary"]["missing"] == 0 and report["summary"]["excluded"] == 0
    rounds = {r["round"]: r["datasites"] for r in report["rounds"]}
    assert rounds["2"][CLIENTS[0]]["errors"] == 1 and rounds["2"][CLIENTS[0]]["error_types"] == {"RuntimeError": 1}
    assert rounds["2"][CLIENTS[1]]["errors"] == 0
    assert all(site["errors"] == 0 for rnd in ("1", "3") for site in rounds[rnd].values())
    log = tabular.fed.server().log_text()
    assert log.count(f"round 2: {CLIENTS[0]} answered train with an error: RuntimeError") == 1
    assert "1 error replies (RuntimeError x1)" in log
    client = tabular.fed.client(0).report()
    assert client["errors"] == 1 and client["error_types"] == {"RuntimeError": 1}
    assert "round 2" in tabular.fed.client(0).log_text()  # Message-API rounds shown in client logs
    assert '"penalty": "none"' in tabular.fed.client(1).log_text()  # the run config a client got is logged once
    assert tabular.fed.client(1).log_text().count("run config from the server") == 1


def test_message_api_evaluate_fn_checkpoints_and_query(tabular):
    evaluations = [r for r in tabular.seen("server") if r["kind"] == "evaluate_fn"]
    assert [r["round"] for r in evaluations] == [0, 1, 2, 3]
    assert evaluations[-1]["accuracy"] > 0.8
    for rnd in range(4):
        assert (tabular.out / f"model_round_{rnd}.npz").is_file()
    assert (tabular.out / "final_model.npz").is_file()
    [histogram] = [r for r in tabular.seen("server") if r["kind"] == "histogram"]
    assert histogram["replies"] == 2 and sum(histogram["counts"]) == 180  # 90 train rows per node


def test_flower_log_lines_appear_once(tabular):
    log = tabular.fed.server().log_text()
    assert log.count("[ROUND 1/3]") == 1, log[-2000:]


# -- legacy API (server_fn / client_fn, quickstart-numpy style) -----------------------------------------


@pytest.fixture(scope="module")
def legacy(tmp_path_factory) -> Run:
    return run_app(
        tmp_path_factory.mktemp("legacy"),
        "numpy_legacy",
        run_config='{"local-epochs": 2, "checkpoint-dir": "OUT"}',
        node_configs=["partition-id=0 num-partitions=2", 'partition-id=1 num-partitions=2 site="bob"'],
        drive_process=True,  # the fake Drive as its own process, started with `fake-drive --port P`
    )


def test_legacy_app_completes_with_no_failed_replies(legacy):
    assert_clean_exit(legacy)
    report = legacy.server_report()
    assert report["completed"] is True and report["state"] == {}
    assert report["summary"] == {"replies": 8, "errors": 0, "missing": 0, "excluded": 0, "error_types": {}}
    assert [r["round"] for r in report["rounds"]] == ["1", "2"]


def test_legacy_client_fn_and_server_fn_see_the_same_run_config(legacy):
    expected = {
        "num-server-rounds": 2,
        "fraction-fit": 1.0,
        "local-epochs": 2,
        "learning-rate": 0.05,
        "checkpoint-dir": str(legacy.out),
    }
    [server_fn] = [r for r in legacy.seen("server") if r["kind"] == "server_fn"]
    assert server_fn["run_config"] == expected
    for i in range(2):
        made = [r for r in legacy.seen(f"client{i}") if r["kind"] == "client_fn"]
        assert made and all(r["run_config"] == expected for r in made)
        fits = [r for r in legacy.seen(f"client{i}") if r["kind"] == "fit"]
        assert [r["round"] for r in fits] == [1, 2] and fits[0]["config"]["lr"] == 0.05
    assert legacy.seen("client1")[0]["node_config"] == {"partition-id": 1, "num-partitions": 2, "site": "bob"}


def test_legacy_evaluate_fn_writes_checkpoints(legacy):
    evaluations = [r for r in legacy.seen("server") if r["kind"] == "evaluate_fn"]
    assert [r["round"] for r in evaluations] == [0, 1, 2]
    assert evaluations[-1]["mse"] < evaluations[0]["mse"] / 4
    assert sorted(p.name for p in legacy.out.iterdir()) == ["round-0.npy", "round-1.npy", "round-2.npy"]


# -- `syft-flwr-gdrive run`: your own project, locally, N data owners ----------------------------------


def test_run_command_federates_a_project_on_the_embedded_fake(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        CLI
        + [
            "run",
            "-p",
            str(CORPUS / "numpy_legacy"),
            "--clients",
            "3",
            "--out",
            str(out),
            "--run-config",
            "num-server-rounds=1",
            "--node-config",
            "partition-id={i} num-partitions={n}",
            "--poll-interval",
            "0.2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["ok"] and report["completed"] and report["rounds_completed"] == 1
    assert report["run_config"]["num-server-rounds"] == 1
    assert report["node_configs"] == [f"partition-id={i} num-partitions=3" for i in range(3)]
    assert report["summary"]["errors"] == 0 and report["summary"]["replies"] == 6
    assert sorted(info["exit_code"] for info in report["participants"].values()) == [0, 0, 0, 0]
    assert (out / "participants" / "checkpoints" / "round-1.npy").is_file()  # relative outputs land in OUT
    assert "Replies: 6, error replies: 0" in proc.stdout


def test_run_command_rejects_bad_input_before_starting_anything(tmp_path):
    bad = subprocess.run(
        CLI
        + ["run", "-p", str(CORPUS / "numpy_legacy"), "--clients", "3", "--node-config", "a=1", "--node-config", "a=2"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "once per client (3 times), not 2" in bad.stderr
    unknown = subprocess.run(CLI + ["run", "-p", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "No pyproject.toml" in unknown.stderr
    typo = subprocess.run(
        CLI + ["run", "-p", str(CORPUS / "numpy_legacy"), "--run-config", "num-rounds=3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert typo.returncode == 2 and "num-rounds" in typo.stderr and "num-server-rounds" in typo.stderr


# -- project identity: a data owner runs only the code it has looked at ----------------------------------


def test_a_client_whose_project_differs_refuses_unless_told_otherwise(tmp_path):
    """Alice's copy has an edited task.py: she refuses (error replies naming ProjectMismatch) and exits 2.
    Bob's copy differs too but he started with --allow-project-changes: he runs, with a warning."""
    server_project = tmp_path / "numpy_legacy"
    shutil.copytree(CORPUS / "numpy_legacy", server_project, ignore=shutil.ignore_patterns("__pycache__"))
    copies = []
    for who in ("alice", "bob"):
        copy = tmp_path / who / "numpy_legacy"
        shutil.copytree(server_project, copy)
        task = copy / "numpy_legacy" / "task.py"
        task.write_text(task.read_text() + f"\n# {who} edited this\n")
        copies.append(copy)
    with FakeDriveServer() as drive:
        fed = LocalFederation(
            tmp_path / "fed",
            server_project,
            drive.url,
            server_email=SERVER,
            client_emails=CLIENTS,
            poll_interval=0.2,
            msg_timeout=60.0,
            run_config="num-server-rounds=1",
        )
        for i, copy in enumerate(copies):
            args = fed.client(i).args
            args[args.index("--project") + 1] = str(copy)
        fed.client(1).args.append("--allow-project-changes")
        with fed:
            fed.start_all()
            assert fed.wait(240)
    server = fed.server().report()
    assert fed.server().process.returncode == 0 and server["completed"]
    assert server["summary"]["error_types"] == {"ProjectMismatch": 2}  # alice's fit and evaluate
    assert all(site == CLIENTS[0] for r in server["rounds"] for site, v in r["datasites"].items() if v["errors"])
    alice, bob = fed.client(0), fed.client(1)
    assert alice.process.returncode == 2 and alice.report()["refused"] == 2
    assert alice.report()["project_differences"] == ["numpy_legacy/task.py: changed"]
    assert "REFUSING the server's requests" in alice.log_text() and "numpy_legacy/task.py: changed" in alice.log_text()
    assert bob.process.returncode == 0 and bob.report()["refused"] == 0 and bob.report()["errors"] == 0
    assert "running it anyway (--allow-project-changes)" in bob.log_text()


# -- one bad peer is left out, not fatal -------------------------------------------------------------


def test_a_datasite_whose_key_changed_is_left_out_and_the_run_goes_on(legacy, tmp_path):
    """Bob wiped his state dir (new keys). The server, which pinned his old key in the corpus run,
    refuses the new one: bob is excluded at once and reported, alice trains, the server exits 0 and
    still stops bob (a stop holds no secret: sealed to his new key, signed with the server's);
    `trust` shows the refused key and `trust --accept` pins it."""
    state = legacy.fed.workdir / "state"
    bob_state = Settings.from_env(
        {"SYFTBOX_EMAIL": CLIENTS[1], "SYFT_FLWR_STATE_DIR": str(state)}
    ).participant_state_dir()
    shutil.rmtree(bob_state)
    with FakeDriveServer() as drive:
        fed = LocalFederation(
            tmp_path / "fed",
            legacy.fed.project,
            drive.url,
            server_email=SERVER,
            client_emails=CLIENTS,
            poll_interval=0.2,
            msg_timeout=6.0,
            state_dir=state,
            run_config='{"checkpoint-dir": "ckpt"}',
        )
        with fed:
            fed.start_all()
            assert fed.wait(120)
        left = {
            email: len(DriveTransport(drive_api_for(drive.url, email), email).my_postings())
            for email in (SERVER, *CLIENTS)
        }
    assert left == {SERVER: 0, CLIENTS[0]: 0, CLIENTS[1]: 0}
    report = fed.server().report()
    assert fed.server().process.returncode == 0 and report["completed"], fed.server().log_text()[-3000:]
    assert list(report["excluded"]) == [CLIENTS[1]] and "different public key" in report["excluded"][CLIENTS[1]]
    assert report["summary"]["excluded"] == 4 and report["summary"]["errors"] == 0  # fit + evaluate, 2 rounds
    assert all(r["datasites"][CLIENTS[0]]["replies"] == 2 for r in report["rounds"])
    assert fed.client(0).process.returncode == 0 and fed.client(0).report()["stopped_by"] == "stop-signal"
    assert fed.client(1).process.returncode == 0 and fed.client(1).report()["stopped_by"] == "stop-signal"
    log = fed.server().log_text()
    assert f"trust --accept {CLIENTS[1]}" in log and f"datasite {CLIENTS[1]} is excluded from this run" in log

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SYFT")},
        "SYFTBOX_EMAIL": SERVER,
        "SYFT_FLWR_STATE_DIR": str(state),
    }
    listing = subprocess.run(CLI + ["trust"], env=env, capture_output=True, text=True, timeout=60)
    assert listing.returncode == 0 and f"{CLIENTS[1]}: pinned" in listing.stdout and "REFUSED" in listing.stdout
    accepted = subprocess.run(
        CLI + ["trust", "--accept", CLIENTS[1]], env=env, capture_output=True, text=True, timeout=60
    )
    assert accepted.returncode == 0 and "pinned" in accepted.stdout
    assert "REFUSED" not in subprocess.run(CLI + ["trust"], env=env, capture_output=True, text=True, timeout=60).stdout


def test_server_exits_4_with_completed_false_when_no_datasite_can_be_reached(tmp_path):
    """Nobody's client runs: every datasite is excluded after the key wait, the run cannot start."""
    project = tmp_path / "numpy_legacy"
    shutil.copytree(CORPUS / "numpy_legacy", project, ignore=shutil.ignore_patterns("__pycache__"))
    with FakeDriveServer() as drive:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SYFT")},
            "SYFTBOX_EMAIL": SERVER,
            "SYFT_FLWR_DRIVE_URL": drive.url,
            "SYFT_FLWR_STATE_DIR": str(tmp_path / "state"),
            "SYFT_FLWR_MSG_TIMEOUT": "1",
            "SYFT_FLWR_POLL_INTERVAL": "0.2",
        }
        proc = subprocess.run(
            CLI + ["server", "-p", str(project), "--datasites", ",".join(CLIENTS)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 4, proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["completed"] is False and "no datasite can be reached" in report["error"]
    assert sorted(report["excluded"]) == sorted(CLIENTS)
