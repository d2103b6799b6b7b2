"""The command line as users run it: the demo, bootstrap + server + clients, and every error path."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from syft_flwr_gdrive.transport.drive.transport import DriveTransport
from tests.helpers.e2e import CLI
from tests.helpers.e2e import CLIENTS
from tests.helpers.e2e import MESSAGE_APP
from tests.helpers.e2e import SERVER
from tests.helpers.e2e import env_for
from tests.helpers.e2e import settle
from tests.helpers.fake_service import drive_api_for
from tests.helpers.flower_metrics import history_of
from tests.helpers.flower_metrics import server_history
from tests.helpers.routings import request_routing


def copy_project(tmp_path: Path) -> Path:
    """A writable copy of the sample project (with the shared fixtures code and data it imports)."""
    shutil.copytree(MESSAGE_APP.parent, tmp_path / "fixtures", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "fixtures" / MESSAGE_APP.name


def run(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(CLI + args, env=env, capture_output=True, text=True, timeout=timeout)


def test_demo_runs_and_writes_a_report(tmp_path: Path):
    out = tmp_path / "demo"
    proc = run(["demo", "--out", str(out), "--poll-interval", "0.2"], env_for(), timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["ok"] and report["rounds_completed"] == 5
    accuracy = history_of(report["metrics"])["accuracy"]
    assert accuracy[-1] > accuracy[0] and accuracy[-1] > 0.85
    assert len(report["participants"]) == 4
    for info in report["participants"].values():
        assert info["exit_code"] == 0
        assert info["drive_calls"].get("files.list", 0) > 0 and info["drive_calls_total"] > 0
    assert (out / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Google Drive API calls" in proc.stdout and "rounds in" in proc.stdout


def test_demo_rejects_bad_options():
    proc = run(["demo", "--clients", "0"], env_for())
    assert proc.returncode == 2 and "--clients must be between" in proc.stderr


def test_bootstrap_then_server_and_clients_from_the_project(tmp_path: Path, drive):
    project = copy_project(tmp_path)
    bootstrap = ["bootstrap", "--project", str(project), "--aggregator", SERVER, "--datasites", ",".join(CLIENTS)]
    bootstrap += ["--app-name", "digits-study"]
    proc = run(bootstrap, env_for())
    assert proc.returncode == 0, proc.stderr
    text = (project / "pyproject.toml").read_text()
    assert "[tool.syft_flwr]" in text and "[tool.flwr.app.components]" in text  # the rest is kept
    # Idempotent: a second bootstrap replaces the section instead of adding another.
    assert run(bootstrap, env_for()).returncode == 0
    assert (project / "pyproject.toml").read_text().count("[tool.syft_flwr]") == 1

    common = dict(
        SYFT_FLWR_DRIVE_URL=drive.url, SYFT_FLWR_POLL_INTERVAL="0.2", SYFT_FLWR_STATE_DIR=str(tmp_path / "st")
    )
    clients = [
        subprocess.Popen(
            CLI
            + [
                "client",
                "--project",
                str(project),
                "--node-config",
                json.dumps({"partition-id": i, "num-partitions": 3}),
            ],
            env=env_for(email, **common),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, email in enumerate(CLIENTS)
    ]
    try:
        server = run(["server", "--project", str(project)], env_for(SERVER, **common), timeout=240)
        assert server.returncode == 0, server.stderr[-3000:]
        report = json.loads(server.stdout)
        assert server_history(report)["round"] == [1, 2, 3, 4, 5]
        for c in clients:
            out, err = c.communicate(timeout=60)
            assert c.returncode == 0, err[-2000:]
            assert json.loads(out)["stopped_by"] == "stop-signal"
    finally:
        for c in clients:
            c.kill()
    # The messages were filed under the app name from [tool.syft_flwr].
    assert "flwr/digits-study" in server.stderr


@pytest.mark.parametrize(
    "args, env, code, text",
    [
        (["server", "--project", "/nonexistent/project"], {"SYFTBOX_EMAIL": "ds@x.com"}, 2, "does not exist"),
        (["server", "--project", str(MESSAGE_APP)], {}, 2, "SYFTBOX_EMAIL is not set"),
        (["server", "--project", str(MESSAGE_APP)], {"SYFTBOX_EMAIL": "ds@x.com"}, 2, "No datasites"),
        (
            ["server", "--project", str(MESSAGE_APP), "--datasites", "a@x.com,bogus"],
            {"SYFTBOX_EMAIL": "ds@x.com"},
            2,
            "'bogus' is not a valid email",
        ),
        (
            ["client", "--project", str(MESSAGE_APP), "--aggregator", "ds@x.com", "--node-config", "{oops"],
            {"SYFTBOX_EMAIL": "a@x.com"},
            2,
            "not valid JSON",
        ),
        (
            ["bootstrap", "--project", str(MESSAGE_APP), "--aggregator", "ds@x.com", "--datasites", "ds@x.com"],
            {},
            2,
            "both the aggregator and a datasite",
        ),
        (
            ["bootstrap", "--project", "/nonexistent", "--aggregator", "ds@x.com", "--datasites", "a@x.com"],
            {},
            2,
            "No pyproject.toml",
        ),
        (["login", "--client-secret", "/nonexistent/secret.json"], {}, 2, "Google Cloud console"),
        (["clean"], {"SYFTBOX_EMAIL": "a@x.com", "SYFT_FLWR_TOKEN_FILE": "/nonexistent/token.json"}, 3, "token.json"),
    ],
)
def test_error_paths_name_the_problem_and_exit_with_a_documented_code(args, env, code, text):
    proc = run(args, env_for(**env))
    assert proc.returncode == code, proc.stderr
    assert text in proc.stderr
    assert "Traceback" not in proc.stderr


def test_server_refuses_to_run_as_someone_else_than_the_projects_aggregator(tmp_path: Path, drive):
    project = copy_project(tmp_path)
    assert (
        run(
            ["bootstrap", "--project", str(project), "--aggregator", SERVER, "--datasites", CLIENTS[0]], env_for()
        ).returncode
        == 0
    )
    proc = run(["server", "--project", str(project), "--drive-url", drive.url], env_for("intruder@x.com"))
    assert proc.returncode == 2 and f"names {SERVER} as the aggregator" in proc.stderr


def test_doctor(tmp_path: Path, drive):
    ok = run(["doctor", "--drive-url", drive.url], env_for("do1@example.com"))
    assert ok.returncode == 0 and "all good" in ok.stdout, ok.stdout + ok.stderr
    token = tmp_path / "token.json"
    token.write_text(json.dumps({"token": "fake:someone-else@example.com"}))
    mismatch = run(["doctor", "--drive-url", drive.url], env_for("do1@example.com", SYFT_FLWR_TOKEN_FILE=str(token)))
    assert mismatch.returncode == 3
    assert "someone-else@example.com" in mismatch.stdout and "fix:" in mismatch.stdout
    token.write_text("{not json")
    broken = run(["doctor"], env_for("do1@example.com", SYFT_FLWR_TOKEN_FILE=str(token)))
    assert broken.returncode == 3 and "[FAIL] credentials" in broken.stdout
    unreachable = run(["doctor", "--drive-url", "http://127.0.0.1:9/"], env_for("do1@example.com"), timeout=120)
    assert unreachable.returncode == 3 and "[FAIL] drive" in unreachable.stdout
    bad = run(["doctor"], env_for("nope"))
    assert bad.returncode == 2 and "[FAIL] settings" in bad.stdout


def test_clean_removes_a_crashed_servers_files(tmp_path: Path, drive):
    t = DriveTransport(drive_api_for(drive.url, SERVER), SERVER)
    for i in range(3):
        t.send(request_routing(1, f"m{i}", sender=SERVER, recipient=CLIENTS[i], app="flwr/x", ttl=60), b"body")
    settle(drive)
    dry = run(["clean", "--dry-run", "--drive-url", drive.url], env_for(SERVER))
    assert dry.returncode == 0 and "3 message file(s) found, 0 deleted" in dry.stdout
    other_app = run(["clean", "--app", "other", "--drive-url", drive.url], env_for(SERVER))
    assert "0 message file(s) found" in other_app.stdout
    done = run(["clean", "--app", "x", "--drive-url", drive.url], env_for(SERVER))
    assert done.returncode == 0 and "3 message file(s) found, 3 deleted" in done.stdout
    settle(drive)
    assert t.my_postings() == []
