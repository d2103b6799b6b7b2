"""The app travels to the data owners over Drive (issue #24's "done"): offer, review, approve, run, change, reject.

Two data owners run `node` from empty folders with state dirs that hold no copy of the project; the data
scientist runs `server -p`. Each data owner sees the offer in `apps --json`, approves it, and the run
completes with exit 0, no failed replies and no message file left on Drive. A changed app is a new pending
offer; a rejection reaches the server with its reason.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

from syft_flwr_gdrive.transport.drive import layout
from tests.helpers.e2e import CLI
from tests.helpers.e2e import REPO
from tests.helpers.e2e import env_for

QUICKSTART = REPO / "fixtures" / "quickstart_app"
DS = "ds@example.com"
OWNERS = ("alice@example.com", "bob@example.org")


class Owner:
    """A data owner: a node process, and the review commands run beside it."""

    def __init__(self, tmp: Path, email: str, index: int, drive_url: str) -> None:
        self.email = email
        self.home = tmp / f"owner{index}"  # an empty working folder: no project here
        self.home.mkdir()
        self.env = env_for(
            email,
            SYFT_FLWR_DRIVE_URL=drive_url,
            SYFT_FLWR_STATE_DIR=str(tmp / f"state{index}"),
            SYFT_FLWR_POLL_INTERVAL="0.2",
        )
        self.log = tmp / f"node{index}.log"
        self.node = subprocess.Popen(
            [*CLI, "node", "--aggregator", DS, "--node-config", json.dumps({"partition-id": index})],
            cwd=self.home,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=open(self.log, "wb"),  # noqa: SIM115 - closed with the process
        )

    def cli(self, *args: str) -> str:
        out = subprocess.run([*CLI, *args], env=self.env, cwd=self.home, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout

    def apps(self) -> list[dict]:
        return json.loads(self.cli("apps", "--json"))

    def wait_for_offer(self, state: str = "pending", *, not_ids: tuple[str, ...] = (), timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for app in self.apps():
                if app["state"] == state and app["id"] not in not_ids:
                    return app
            assert self.node.poll() is None, self.log.read_text()[-3000:]
            time.sleep(0.3)
        raise AssertionError(f"no {state} offer at {self.email}:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> int:
        self.node.send_signal(signal.SIGINT)
        started = time.monotonic()
        try:
            code = self.node.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.node.kill()  # leave no node polling after a failed test (its children follow it: PDEATHSIG)
            self.node.wait(10)
            raise AssertionError(f"the node ignored Ctrl-C:\n{self.log.read_text()[-3000:]}") from None
        assert time.monotonic() - started < 15, "the node took too long to stop"
        return code


def run_server(tmp: Path, project: Path, drive_url: str, *, approval_timeout: float) -> subprocess.Popen:
    env = env_for(
        DS, SYFT_FLWR_DRIVE_URL=drive_url, SYFT_FLWR_STATE_DIR=str(tmp / "ds-state"), SYFT_FLWR_POLL_INTERVAL="0.2"
    )
    return subprocess.Popen(
        [
            *CLI,
            "server",
            "-p",
            str(project),
            "--datasites",
            ",".join(OWNERS),
            "--approval-timeout",
            str(approval_timeout),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(server: subprocess.Popen) -> tuple[int, dict, str]:
    out, err = server.communicate(timeout=120)
    return server.returncode, json.loads(out), err


def message_files_left(drive, emails) -> dict[str, int]:
    """Message files each participant owns on Drive now (what `clean` would remove).

    Read from the fake's store, not a listing: under the strict profile a listing may still show a file
    deleted within the lag, so a wait that ends on one empty listing could be followed by a listing that
    is not (a clean-clone CI run failed so: ``{'alice@example.com': 1}``)."""
    left = {}
    for email in emails:
        files = [f for f in drive.owned_files(email) if layout.P_VERSION in (f.get("properties") or {})]
        if files:
            left[email] = len(files)
    return left


def test_offer_review_approve_run_change_reject(tmp_path, drive):
    project = tmp_path / "project"
    shutil.copytree(QUICKSTART, project)
    owners = [Owner(tmp_path, email, i, drive.url) for i, email in enumerate(OWNERS)]
    try:
        started = time.monotonic()
        server = run_server(tmp_path, project, drive.url, approval_timeout=120)
        offers = [owner.wait_for_offer() for owner in owners]
        for owner, offer in zip(owners, offers):
            assert offer["from"] == DS and offer["name"] == "quickstart-linreg" and offer["version"] == "1.0.0"
            assert offer["state"] == "pending" and offer["fingerprint"] and offer["size"] > 0
            assert "quickstart_linreg/client_app.py" in offer["files"]
            assert offer["dependencies"] == ["flwr>=1.41,<1.43", "numpy>=1.26"]
            assert offer["missing_dependencies"] == [] and offer["install_missing"] == ""
            shown = owner.cli("review", offer["id"])
            assert "quickstart_linreg/server_app.py" in shown and "no earlier version" in shown
            owner.cli("approve", offer["id"])
        code, report, err = finish(server)
        took = time.monotonic() - started
        assert code == 0, err[-3000:]
        assert report["completed"] and report["approval"] == {site: "approved" for site in OWNERS}
        assert report["summary"]["errors"] == 0 and report["summary"]["missing"] == 0
        assert [r["round"] for r in report["metrics"]["rounds"]] == [1, 2]  # Flower's own metrics, no app help
        assert report["offer"]["fab_bytes"] < 20_000
        print(f"first run (offer, approve by hand, 2 rounds): {took:.1f}s; offer cost the server {report['offer']}")

        # No message file left on Drive: the nodes delete their answers once the offer is gone.
        deadline = time.monotonic() + 30
        while message_files_left(drive, (DS, *OWNERS)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert message_files_left(drive, (DS, *OWNERS)) == {}

        # Nothing of the project in the data owners' working folders; the app runs from the node's store.
        for owner in owners:
            assert list(owner.home.iterdir()) == []
            installed = Path(owner.apps()[0]["path"])
            assert installed.is_dir() and not (installed / "pyproject.toml").stat().st_mode & 0o222

        # A second run of the same app: approved already, no new offer, straight to the run.
        started = time.monotonic()
        code, report, err = finish(run_server(tmp_path, project, drive.url, approval_timeout=60))
        assert code == 0, err[-3000:]
        assert report["offer"]["offered"] == [] and report["approval"] == {site: "approved" for site in OWNERS}
        print(f"second run (approved before): {time.monotonic() - started:.1f}s")

        # A changed app is a new, pending offer; nobody approved it in time, so the server does not run.
        task = project / "quickstart_linreg" / "task.py"
        task.chmod(0o644)
        task.write_text(task.read_text() + "\n# a change the data owners have not seen\n")
        code, report, err = finish(run_server(tmp_path, project, drive.url, approval_timeout=8))
        assert code == 4 and not report["completed"], err[-3000:]
        assert report["approval"] == {site: "awaiting approval" for site in OWNERS}
        changed = [owner.wait_for_offer(not_ids=(offer["id"],)) for owner, offer in zip(owners, offers)]
        assert all(c["fingerprint"] != offers[0]["fingerprint"] for c in changed)
        diff = owners[0].cli("review", changed[0]["id"])
        assert "a change the data owners have not seen" in diff and "+# a change" in diff

        # One data owner rejects it with a reason, the other approves: the server runs with one and shows why.
        owners[0].cli("reject", changed[0]["id"], "--reason", "task.py changed without notice")
        owners[1].cli("approve", changed[1]["id"])
        code, report, err = finish(run_server(tmp_path, project, drive.url, approval_timeout=60))
        assert code == 0, err[-3000:]
        assert report["approval"][OWNERS[0]] == "rejected: task.py changed without notice"
        assert report["approval"][OWNERS[1]] == "approved"
        assert "task.py changed without notice" in err
        assert report["summary"]["errors"] == 0
    finally:
        codes = [owner.stop() for owner in owners]
    assert codes == [130, 130]
    for owner in owners:
        assert "Traceback" not in owner.log.read_text()
