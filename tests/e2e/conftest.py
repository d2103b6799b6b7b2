"""End-to-end fixtures: a fake Drive in this process, participants as separate OS processes."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from syft_flwr_gdrive.fake import FakeDriveServer
from tests.helpers.e2e import CALL_TABLE
from tests.helpers.e2e import DRIVE_PROFILE


@pytest.fixture
def drive() -> Iterator[FakeDriveServer]:
    with FakeDriveServer(profile=DRIVE_PROFILE) as server:
        yield server


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
