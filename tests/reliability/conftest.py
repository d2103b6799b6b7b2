"""Reliability fixtures: a fake Drive in this process, participants as separate OS processes.

Every participant runs the user-facing CLI (``python -m syft_flwr_gdrive.cli``) through
``LocalFederation``; ``with`` blocks kill every process they started (SIGINT, then SIGKILL).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from syft_flwr_gdrive.fake import FakeDriveServer
from tests.helpers.fault_runs import PairOfRuns
from tests.helpers.reliability import DRIVE_PROFILE


def _fault_items(items: list[pytest.Item]) -> list[pytest.Item]:
    return [item for item in items if item.module.__name__.endswith("test_faults") and "runs" in item.fixturenames]


def pytest_collection_modifyitems(session, config, items):
    """Run the tests of the (long, mostly idle) fault runs last: ``fault_runs`` starts them at the first test."""
    fault_items = _fault_items(items)
    chosen = set(fault_items)
    items[:] = [item for item in items if item not in chosen] + fault_items


@pytest.fixture(scope="session", autouse=True)
def fault_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PairOfRuns | None]:
    """The fault runs of test_faults.py, started in the background at the first reliability test when those
    tests are selected (so the other reliability tests run meanwhile); killed at the end of the session."""
    if not _fault_items(request.session.items):
        yield None
        return
    background = PairOfRuns(tmp_path_factory.mktemp("faults")).start()
    try:
        yield background
    finally:
        background.stop()  # kills whatever still runs (an interrupted session)


@pytest.fixture
def drive() -> Iterator[FakeDriveServer]:
    with FakeDriveServer(profile=DRIVE_PROFILE) as server:
        yield server
