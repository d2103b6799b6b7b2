"""What a user sees around `run`: the app's output streamed, rounds that are right for query apps and hung runs,
runs that fail fast with the participant's code, --timeout that bounds the whole run, participants that end
with run however it ends, a foreign aggregator after bootstrap, and server/client stdout kept for the JSON."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from syft_flwr_gdrive.base.config import ProjectConfig
from tests.helpers.e2e import CLI
from tests.helpers.e2e import MESSAGE_APP
from tests.helpers.e2e import env_for
from tests.helpers.processes import seconds_until_gone
from tests.helpers.processes import wait_for_children

QUERY_APP = Path(__file__).resolve().parent / "apps" / "query_app"
FAST = ["--poll-interval", "0.2", "--clients", "2"]


def run_cli(args: list[str], timeout: float = 180) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    proc = subprocess.run(CLI + args, env=env_for(), capture_output=True, text=True, timeout=timeout)
    return proc, time.monotonic() - started


def report_of(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def test_run_streams_every_participants_output_and_counts_a_query_apps_rounds(tmp_path):
    out = tmp_path / "out"
    proc, _ = run_cli(["run", "-p", str(QUERY_APP), "--out", str(out), *FAST])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = [line.strip() for line in proc.stdout.splitlines()]  # names are right-aligned
    # The app's own output, prefixed by who wrote it (fd 1 writes included), as `flwr run --stream` shows it.
    for rnd in (1, 2, 3):
        assert f"datascientist | Survival summary, round {rnd}: 10 events, median time 7.0" in lines
    for who in ("dataowner1", "dataowner2"):
        assert sum(line == f"{who} | sending 5 event times" for line in lines) == 3
        assert f"{who} | a line written straight to file descriptor 1" in lines
    report = report_of(out)
    assert report["ok"] and report["failure"] is None
    assert (report["rounds"], report["rounds_completed"]) == (3, 3)  # three exchanges, not one "-"
    assert [r["round"] for r in report["per_round"]] == ["1", "2", "3"]
    assert "3/3 rounds in" in proc.stdout and "0/? done" not in proc.stdout
    # The full logs stay in the run folder.
    assert "Survival summary, round 3" in (out / "participants" / "server.log").read_text()


def test_a_failing_server_ends_the_run_at_once_with_its_code_and_its_last_lines(tmp_path):
    out = tmp_path / "out"
    proc, elapsed = run_cli(
        ["run", "-p", str(QUERY_APP), "--out", str(out), "--run-config", "behaviour='fail'", "--timeout", "120", *FAST]
    )
    assert proc.returncode == 4, proc.stderr[-3000:]  # the server's own code: the ServerApp raised
    assert elapsed < 90, f"run took {elapsed:.1f} s to notice"  # at once, not at --timeout 120 (a loaded machine)
    assert "error: the server datascientist@example.com exited with code 4 (run failed)" in proc.stderr
    assert "ValueError: min-num-clients is 5, but the federation has 2 nodes" in proc.stderr  # its last lines
    report = report_of(out)
    assert report["failure"]["participant"] == "datascientist@example.com" and report["failure"]["exit_code"] == 4
    assert all(isinstance(p["exit_code"], int) for p in report["participants"].values())  # real codes, no None


def test_timeout_bounds_the_whole_run_and_a_hung_run_counts_no_round(tmp_path):
    out = tmp_path / "out"
    proc, elapsed = run_cli(
        ["run", "-p", str(QUERY_APP), "--out", str(out), "--run-config", "behaviour='hang'", "--timeout", "12", *FAST]
    )
    assert proc.returncode == 4, proc.stderr[-3000:]
    assert "did not finish within --timeout 12 s" in proc.stderr
    # the CLI's and the fake Drive's start, the stop and the report: seconds, several on a loaded 2-core machine
    assert elapsed < 12 + 20, f"--timeout 12 took {elapsed:.1f} s"
    report = report_of(out)
    assert (report["rounds"], report["rounds_completed"]) == (0, 0)
    assert all(isinstance(p["exit_code"], int) for p in report["participants"].values())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_participants_end_with_run_however_it_ends(tmp_path, sig):
    """SIGTERM (a `timeout`, a cancelled CI job): run stops them. SIGKILL: each notices its parent is gone."""
    out = tmp_path / "out"
    args = ["run", "-p", str(QUERY_APP), "--out", str(out), "--run-config", "behaviour='hang'", *FAST]
    run = subprocess.Popen(CLI + args, env=env_for(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        participants = wait_for_children(run.pid, 3, timeout=60)
        server_log = out / "participants" / "server.log"
        deadline = time.monotonic() + 60
        while "waiting up to" not in (server_log.read_text() if server_log.exists() else ""):
            assert time.monotonic() < deadline, "the server never started"
            time.sleep(0.1)
        run.send_signal(sig)
        gone = seconds_until_gone(participants, timeout=15)
        print(f"\n{sig.name}: every participant gone {gone:.2f} s after it")
        run.wait(timeout=15)
    finally:
        run.kill()
        run.wait()
    if sig == signal.SIGTERM:
        assert run.returncode == 128 + signal.SIGTERM, run.stderr.read() if run.stderr else ""
        assert gone < 8
        assert report_of(out)["failure"]["reason"] == "run was interrupted (SIGTERM)"
    else:
        assert gone < 12  # noticed within 0.5 s; the clean stop then cannot reach the (dead) fake Drive: 5 s grace
        assert "the process that started this one" in (out / "participants" / "client0.log").read_text()


def test_run_after_bootstrap_uses_the_aggregator_the_project_names(tmp_path):
    shutil.copytree(MESSAGE_APP.parent, tmp_path / "fixtures", ignore=shutil.ignore_patterns("__pycache__"))
    project = tmp_path / "fixtures" / MESSAGE_APP.name
    proc, _ = run_cli(
        ["bootstrap", "-p", str(project), "--aggregator", "lead@lab.org", "--datasites", "a@site.org,b@site.org"]
    )
    assert proc.returncode == 0, proc.stderr
    assert ProjectConfig.load(project).aggregator == "lead@lab.org"
    out = tmp_path / "out"
    run_config = "num-server-rounds=2 min-clients=2"
    proc, _ = run_cli(["run", "-p", str(project), "--out", str(out), "--run-config", run_config, *FAST])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = report_of(out)
    roles = {email: info["role"] for email, info in report["participants"].items()}
    assert roles == {"lead@lab.org": "server", "a@site.org": "client", "b@site.org": "client"}
    # Flower's own metrics reach the report and the plot, with no convention in the app.
    evaluated = [r["evaluate"] for r in report["metrics"]["rounds"]]
    assert len(evaluated) == 2 and evaluated[-1]["accuracy"] > evaluated[0]["accuracy"]
    assert report["plot"] and Path(report["plot"]).read_bytes()[:4] == b"\x89PNG"


def test_server_and_client_stdout_carry_the_json_outcome_alone(tmp_path, drive):
    common = dict(SYFT_FLWR_DRIVE_URL=drive.url, SYFT_FLWR_POLL_INTERVAL="0.2")
    clients = [
        subprocess.Popen(
            CLI
            + ["client", "-p", str(QUERY_APP), "--aggregator", "ds@example.com"]
            + ["--node-config", f"partition-id={i} num-partitions=2"],
            env=env_for(email, SYFT_FLWR_STATE_DIR=str(tmp_path / email), **common),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, email in enumerate(("a@example.com", "b@example.com"))
    ]
    try:
        server = subprocess.run(
            CLI + ["server", "-p", str(QUERY_APP), "--datasites", "a@example.com,b@example.com"],
            env=env_for("ds@example.com", SYFT_FLWR_STATE_DIR=str(tmp_path / "ds"), **common),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert server.returncode == 0, server.stderr[-3000:]
        assert json.loads(server.stdout)["completed"] is True  # stdout parses: nothing but the outcome
        assert "Survival summary, round 3: 10 events" in server.stderr  # the app's output went to stderr
        for client in clients:
            stdout, stderr = client.communicate(timeout=60)
            assert json.loads(stdout)["stopped_by"] == "stop-signal"
            assert "sending 5 event times" in stderr and "straight to file descriptor 1" in stderr
    finally:
        for client in clients:
            client.kill()


def test_a_migrated_syft_flwr_project_runs_with_no_hand_edits(tmp_path):
    source = Path(__file__).resolve().parents[1] / "ops" / "projects" / "diabetes_like"
    project = tmp_path / "diabetes_like"
    shutil.copytree(source, project, ignore=shutil.ignore_patterns("__pycache__"))
    proc, _ = run_cli(["migrate", "-p", str(project)])
    assert proc.returncode == 0, proc.stderr
    assert "+++ b/main.py" in proc.stdout
    # With each data owner's own (mock) dataset, as DATA_DIR, the way syft_flwr.run gave it.
    out = tmp_path / "with-data"
    proc, _ = run_cli(
        ["run", "-p", str(project), "--out", str(out), "--data-dir", str(project / "mock" / "{i}"), *FAST]
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "do1 | running with syft_flwr: this data owner's dataset" in proc.stdout
    weights = out / "participants" / "outputs" / "weights"
    assert sorted(p.name for p in weights.iterdir()) == [f"parameters_round_{r}.npz" for r in range(4)]
    report = report_of(out)
    assert report["rounds_completed"] == 3 and len(report["metrics"]["rounds"]) == 3
    # Without DATA_DIR: the plain-Flower branch of the same app (partitions of its pooled data).
    out = tmp_path / "plain"
    proc, _ = run_cli(["run", "-p", str(project), "--out", str(out), *FAST])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "do2 | running as a plain Flower simulation" in proc.stdout
    assert not os.path.exists(project / "outputs")  # outputs land in the run folder, not the project


def test_demo_ship_offers_a_self_contained_app_that_each_node_installs_approves_and_runs(tmp_path):
    """`demo --ship`: the bundled app (whose shared code lives outside its folder) is shipped with that code
    inside it; each data owner's node installs it, auto-approves it and trains on its own data file."""
    out = tmp_path / "out"
    proc, _ = run_cli(["demo", "--ship", "--rounds", "2", "--out", str(out), "--no-stream", *FAST], timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "AUTO-APPROVED" in proc.stdout
    report = report_of(out)
    assert report["ok"] and report["shipped"] and report["rounds_completed"] == 2
    assert report["summary"]["missing"] == 0 and report["summary"]["errors"] == 0
    assert all("data-path=" in config for config in report["node_configs"])  # the data is the owner's
    for owner in ("dataowner1_example.com", "dataowner2_example.com"):
        installed = list((out / "participants" / "state" / owner / "apps" / "installed").iterdir())
        assert len(installed) == 1 and (installed[0] / "fl_common" / "task.py").is_file()
        assert not list(installed[0].rglob("*.csv.gz"))  # the data was not shipped
