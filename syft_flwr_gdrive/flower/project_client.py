"""The ``client`` command's work: serve a Flower project's ClientApp to the aggregator and report how it went.

``syftbox_flwr_client`` takes an app already loaded; this starts from the project folder, as the command
line does: it loads the project, settles who the aggregator is and checks it before any credential or
Drive call (so a typo fails at once), and turns the outcome into the JSON report the command prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.base.config import validate_email
from syft_flwr_gdrive.flower.fingerprint import app_identity
from syft_flwr_gdrive.flower.project import FlowerProject
from syft_flwr_gdrive.flower.syftbox_client import syftbox_flwr_client
from syft_flwr_gdrive.flower.userconfig import parse_user_config
from syft_flwr_gdrive.transport.registry import create_transport


def serve_project_client(
    project_dir: Path,
    settings_overrides: Mapping[str, Any],
    *,
    aggregator: str | None = None,
    node_config: str | None = None,
    allow_project_changes: bool = False,
) -> dict[str, Any]:
    """Serve the project's ClientApp until the aggregator's stop signal; returns the run's report.

    ``aggregator`` (the ``--aggregator`` option) defaults to SYFT_FLWR_AGGREGATOR; ``node_config`` is the
    ClientApp's ``context.node_config`` as flower-supernode's ``--node-config`` text; ``settings_overrides``
    are ``Settings`` fields by name (the command's options). The report's ``refused`` counts requests of a
    server whose app differs from this project, ``project_differences`` names the differing files; ``access_lost``
    (with ``stopped_by`` "access-lost") says why the storage refused this client for good, and the fix.
    """
    proj = FlowerProject.load(project_dir)
    settings = Settings.from_env(project=proj.syft, **settings_overrides)
    config = parse_user_config(node_config, option="--node-config")
    server_email = aggregator or settings.aggregator
    if server_email:  # check before Drive is contacted, so a typo fails at once
        server_email = validate_email(server_email, what="--aggregator" if aggregator else "SYFT_FLWR_AGGREGATOR")
    client_app = proj.load_client_app()
    transport = create_transport(settings)
    result = syftbox_flwr_client(
        client_app,
        proj.app_name,
        aggregator=server_email,
        node_config=config,
        run_config=proj.run_config,
        app_identity=app_identity(proj.path),
        allow_project_changes=allow_project_changes,
        settings=settings,
        transport=transport,
    )
    return {
        "run_id": result.run_id,
        "handled": result.handled,
        "errors": result.errors,
        "error_types": result.error_types,
        "run_config": result.run_config,
        "node_config": config,
        "stopped_by": result.stopped_by,
        "drive_calls": transport.call_counts(),
        "project_differences": result.project_differences,
        "refused": result.refused,
        "run_config_refused": result.run_config_refused,
        "access_lost": result.access_lost,
    }
