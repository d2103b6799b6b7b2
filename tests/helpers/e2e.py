"""Shared by the end-to-end tests: the participants, the sample apps, federations on a fake Drive."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.fake import FaultConfig
from syft_flwr_gdrive.localrun.federation import LocalFederation
from syft_flwr_gdrive.transport.drive.transport import DriveTransport
from tests.helpers.fake_service import drive_api_for
from tests.helpers.flower_metrics import server_history

REPO = Path(__file__).resolve().parents[2]
MESSAGE_APP = REPO / "fixtures" / "message_app"
LEGACY_APP = REPO / "fixtures" / "legacy_app"
SERVER = "ds_lead@example.com"
# Emails exercise "_", ".", "+" and "'" end to end.
CLIENTS = ("do_1@example.com", "d.o2+eu@example.com", "o'brien@example.org")
ROUNDS = 5
CLI = [sys.executable, "-m", "syft_flwr_gdrive.cli"]

# SYFT_FLWR_DRIVE_PROFILE=strict runs every federation against the strict fake (docs/drive-assumptions.md).
DRIVE_PROFILE = os.environ.get("SYFT_FLWR_DRIVE_PROFILE", "default")

# Drive calls per round per participant, printed by tests/e2e/conftest.py's terminal summary.
CALL_TABLE: list[tuple[str, str, int, dict[str, int]]] = []


def settle(drive: FakeDriveServer) -> None:
    """Wait out the list lag of the strict profile (listings show every change only after it)."""
    if drive.faults.lag_all:
        time.sleep(drive.faults.list_lag + 0.2)


def make_federation(tmp_path: Path, drive: FakeDriveServer, project: Path = MESSAGE_APP, **kw) -> LocalFederation:
    kw.setdefault("poll_interval", 0.2)
    kw.setdefault("msg_timeout", 40.0)
    return LocalFederation(tmp_path / "fed", project, drive.url, server_email=SERVER, client_emails=CLIENTS, **kw)


def record_calls(test: str, fed: LocalFederation, rounds: int) -> None:
    """Keep Drive calls per round per participant for the terminal summary."""
    for key, participant in fed.participants.items():
        report = participant.report() or {}
        calls = report.get("drive_calls") or {}
        CALL_TABLE.append((test, f"{key} {participant.email}", rounds, calls))


def transport_for(drive: FakeDriveServer, email: str) -> DriveTransport:
    return DriveTransport(drive_api_for(drive.url, email), email)


def leftover_message_files(drive: FakeDriveServer) -> dict[str, int]:
    """Message files each participant still owns on Drive (folders excluded), counted without list lag."""
    saved, drive.faults = drive.faults, FaultConfig()
    try:
        left = {}
        for email in (SERVER, *CLIENTS):
            files = transport_for(drive, email).my_postings()
            if files:
                left[email] = len(files)
        return left
    finally:
        drive.faults = saved


def assert_federation_succeeded(fed, rounds: int = ROUNDS) -> list[float]:
    server = fed.server()
    assert server.process.returncode == 0, server.log_text()[-3000:]
    history = server_history(server.report())
    assert history["round"] == list(range(1, rounds + 1))
    accuracy = history["accuracy"]
    assert accuracy[-1] > accuracy[0] + 0.1, accuracy
    assert accuracy[-1] > 0.85, accuracy
    assert history["num_clients"] == [3] * rounds
    for i in range(3):
        client = fed.client(i)
        assert client.process.returncode == 0, client.log_text()[-3000:]
        assert client.report()["stopped_by"] == "stop-signal"
    return accuracy


def wait_for_log(participant, text: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in participant.log_text():
            return
        if not participant.alive():
            break
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not seen in {participant.email}'s log:\n{participant.log_text()[-2000:]}")


def env_for(email: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYFT") and k != "GOOGLE_APPLICATION_CREDENTIALS"}
    if email:
        env["SYFTBOX_EMAIL"] = email
    env.update(extra)
    return env
