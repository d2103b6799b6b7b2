"""End-to-end fixtures: a fake Drive in this process, participants as separate OS processes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Iterator

import pytest

from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.federation import LocalFederation

REPO = Path(__file__).resolve().parents[2]
MESSAGE_APP = REPO / "fixtures" / "message_app"
LEGACY_APP = REPO / "fixtures" / "legacy_app"
SERVER = "ds_lead@example.com"
# Emails exercise "_", ".", "+" and "'" end to end.
CLIENTS = ("do_1@example.com", "d.o2+eu@example.com", "o'brien@example.org")

# SYFT_FLWR_DRIVE_PROFILE=strict runs every federation against the strict fake (docs/drive-assumptions.md).
DRIVE_PROFILE = os.environ.get("SYFT_FLWR_DRIVE_PROFILE", "default")

CALL_TABLE: list[tuple[str, str, int, dict[str, int]]] = []


@pytest.fixture
def drive() -> Iterator[FakeDriveServer]:
    with FakeDriveServer(profile=DRIVE_PROFILE) as server:
        yield server


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


def message_files_left(drive: FakeDriveServer) -> int:
    """Message files (not folders) still stored on the fake Drive."""
    stats = drive.stats()["store"]
    return int(stats.get("blob_bytes", 0) > 0) or 0


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # noqa: D401 - pytest hook
    if not CALL_TABLE:
        return
    tr = terminalreporter
    tr.section("Drive calls per round per participant (fake Drive)")
    for test, who, rounds, calls in CALL_TABLE:
        total = sum(calls.values())
        per_round = total / rounds if rounds else float("nan")
        detail = json.dumps(dict(sorted(calls.items())))
        tr.write_line(f"{test:38s} {who:38s} {per_round:6.1f}/round  {detail}")
