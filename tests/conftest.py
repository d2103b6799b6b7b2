"""Marks every test of the level folders (processes, long waits) as ``slow``: ``make test-fast`` leaves them out.

Tests elsewhere that start a process carry ``@pytest.mark.slow`` themselves; see tests/README.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# e2e, reliability, compat: each participant is a separate process running the CLI.
# live: waits out the strict fake's listing lags (and real Drive's); `make test-live` runs it on its own.
SLOW_FOLDERS = ("e2e", "reliability", "compat", "live")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    slow = [HERE / name for name in SLOW_FOLDERS]
    for item in items:
        if any(item.path.is_relative_to(folder) for folder in slow):
            item.add_marker(pytest.mark.slow)
