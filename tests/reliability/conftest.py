"""Reliability fixtures: a fake Drive in this process, participants as separate OS processes.

Every participant runs the user-facing CLI (``python -m syft_flwr_gdrive.cli``) through
``LocalFederation``; ``with`` blocks kill every process they started (SIGINT, then SIGKILL).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Iterator

import pytest

from syft_flwr_gdrive.drive.api import FOLDER_MIME, DriveApi, escape_q
from syft_flwr_gdrive.drive.transport import DriveTransport
from syft_flwr_gdrive.fake import FakeDriveServer, FaultConfig
from syft_flwr_gdrive.federation import LocalFederation, Participant

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
MESSAGE_APP = REPO / "fixtures" / "message_app"
DIGEST_APP = HERE / "apps" / "digest_app"  # message_app + a bit-exact digest of the final model
LEAKY_APP = HERE / "apps" / "leaky_app"  # a ClientApp that raises with private data in the message
SERVER = "ds_rel@example.com"
CLIENTS = ("do_a@example.com", "d.o_b+x@example.com", "o'hara@example.org")
MESSAGE_APP_KEY = "flwr/message-digits"
DIGEST_APP_KEY = "flwr/digest-digits"

# "run 123: answered train (0123abcd, round 1)"
ANSWERED = re.compile(r"run (\d+): answered (\S+) \(([0-9a-f]{8}|[^,]+), round ([^)]*)\)")


@pytest.fixture
def drive() -> Iterator[FakeDriveServer]:
    with FakeDriveServer() as server:
        yield server


def make_federation(workdir: Path, drive: FakeDriveServer, project: Path = MESSAGE_APP, **kw) -> LocalFederation:
    kw.setdefault("poll_interval", 0.2)
    kw.setdefault("msg_timeout", 40.0)
    kw.setdefault("server_email", SERVER)
    kw.setdefault("client_emails", CLIENTS)
    return LocalFederation(workdir, project, drive.url, **kw)


def api_for(drive: FakeDriveServer, email: str) -> DriveApi:
    return DriveApi.for_fake(drive.url, email)


def transport_for(drive: FakeDriveServer, email: str) -> DriveTransport:
    return DriveTransport(api_for(drive, email), email)


def owned_files(drive: FakeDriveServer, email: str) -> list[dict]:
    """Every non-folder file ``email`` owns on the fake Drive, ours or not (name, appProperties)."""
    q = f"'{escape_q(email)}' in owners and mimeType != '{FOLDER_MIME}' and trashed = false"
    return api_for(drive, email).list_files(q, fields="id,name,size,appProperties")


def leftover_message_files(drive: FakeDriveServer, emails=(SERVER, *CLIENTS)) -> dict[str, int]:
    """Files (not folders) each participant still owns on Drive: message files, blobs, anything."""
    saved = drive.faults
    drive.faults = FaultConfig()  # count on a clean Drive
    try:
        left = {}
        for email in emails:
            files = owned_files(drive, email)
            assert len(files) >= len(transport_for(drive, email).my_message_files())
            if files:
                left[email] = len(files)
        return left
    finally:
        drive.faults = saved


def wait_for_log(participant: Participant, text: str, timeout: float, count: int = 1) -> None:
    """Wait until ``text`` occurs ``count`` times in the participant's log (fails on timeout or exit)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if participant.log_text().count(text) >= count:
            return
        if not participant.alive():
            break
        time.sleep(0.05)
    raise AssertionError(
        f"{text!r} not seen {count}x in {participant.email}'s log (alive={participant.alive()}):\n"
        f"{participant.log_text()[-3000:]}"
    )


def answered(log: str) -> list[tuple[int, str, str, str]]:
    """(run, message type, request id prefix, round) of every 'answered' line of a client log."""
    return [(int(m.group(1)), m.group(2), m.group(3), m.group(4)) for m in ANSWERED.finditer(log)]


def duplicates(items) -> dict:
    return {k: n for k, n in Counter(items).items() if n > 1}


def run_cli(args: list[str], env: dict[str, str], timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Run the CLI to completion (killed on timeout by subprocess.run)."""
    return subprocess.run(
        [sys.executable, "-m", "syft_flwr_gdrive.cli", *args], env=env, capture_output=True, text=True,
        timeout=timeout, stdin=subprocess.DEVNULL,
    )


def assert_clean_exit(fed: LocalFederation, rounds: int) -> dict:
    """Server exit 0 with ``rounds`` rounds of history, every client stopped by the stop signal."""
    server = fed.server()
    assert server.process is not None and server.process.returncode == 0, server.log_text()[-4000:]
    report = server.report()
    assert report is not None, "server wrote no report"
    history = report["state"]["history"]
    assert history["round"] == list(range(1, rounds + 1)), history
    for key, participant in fed.participants.items():
        if participant.role != "client":
            continue
        assert participant.process is not None and participant.process.returncode == 0, (
            key, participant.log_text()[-4000:])
        assert participant.report()["stopped_by"] == "stop-signal", participant.report()
    return report
