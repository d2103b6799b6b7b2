"""The ``backend`` fixture of the conformance suite: the fake (default and strict profiles) and real Google Drive.

Which accounts real Drive needs, and how they are named: tests/helpers/live_backends.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers.live_backends import Backend
from tests.helpers.live_backends import fake_backend
from tests.helpers.live_backends import google_backend


@pytest.fixture(params=["fake-default", "fake-strict", "google"])
def backend(request) -> Iterator[Backend]:
    if request.param == "google":
        yield from google_backend()
    else:
        yield from fake_backend(request.param.split("-", 1)[1])
