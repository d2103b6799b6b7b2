"""Make ``fixtures/`` importable (``fl_common``) and load the two sample apps the
way Flower does: from each project's ``pyproject.toml`` components."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

FIXTURES_DIR = Path(__file__).resolve().parents[2] / "fixtures"
if str(FIXTURES_DIR) not in sys.path:
    sys.path.insert(0, str(FIXTURES_DIR))

from flwr.clientapp.client_app import LoadClientAppError  # noqa: E402
from flwr.common.config import get_project_config  # noqa: E402
from flwr.serverapp.server_app import LoadServerAppError  # noqa: E402
from flwr.supercore.object_ref import load_app  # noqa: E402

APP_DIRS = {"legacy": FIXTURES_DIR / "legacy_app", "message": FIXTURES_DIR / "message_app"}


def load_components(kind: str):
    """Return ``(server_app, client_app, default run config)`` of one sample app."""
    project_dir = APP_DIRS[kind]
    config = get_project_config(project_dir)  # also validates the pyproject
    components = config["tool"]["flwr"]["app"]["components"]
    server_app = load_app(components["serverapp"], LoadServerAppError, project_dir)
    client_app = load_app(components["clientapp"], LoadClientAppError, project_dir)
    run_config = dict(config["tool"]["flwr"]["app"].get("config", {}))
    return server_app, client_app, run_config


@pytest.fixture(scope="session")
def legacy_app():
    return load_components("legacy")


@pytest.fixture(scope="session")
def message_app():
    return load_components("message")
