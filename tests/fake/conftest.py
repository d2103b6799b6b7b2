"""Fixtures for the fake Drive tests: a running server and real googleapiclient services.

Every test talks to the fake through Google's own client built from its bundled
discovery document, exactly as production code does; nothing here mocks the client.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterator

import pytest

from syft_flwr_gdrive.fake import FakeDriveServer
from tests.helpers.fake_service import drive_service


@pytest.fixture
def server(tmp_path) -> Iterator[FakeDriveServer]:
    with FakeDriveServer(data_dir=tmp_path / "drive") as srv:
        yield srv


@pytest.fixture
def drive(server) -> Callable[..., object]:
    """``drive("alice@example.com")`` -> a service authenticated as that user."""
    return lambda email, token=None: drive_service(server.url, email, token)
