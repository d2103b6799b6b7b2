"""``syft-flwr-gdrive submit``: offer the project's app to the datasites' nodes, and run nothing."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from syft_flwr_gdrive.cli.exits import run_errors
from syft_flwr_gdrive.cli.logging_setup import setup_logging
from syft_flwr_gdrive.cli.shared_options import DriveUrl
from syft_flwr_gdrive.cli.shared_options import Email
from syft_flwr_gdrive.cli.shared_options import PollInterval
from syft_flwr_gdrive.cli.shared_options import ProjectDir
from syft_flwr_gdrive.cli.shared_options import Verbose
from syft_flwr_gdrive.cli.shared_options import settings_overrides


def submit(
    *,
    datasites: Annotated[
        str | None, typer.Option(help="Comma-separated data owner emails; default: \\[tool.syft_flwr] datasites.")
    ] = None,
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for each node to receive the offer (answers that come are shown).")
    ] = 60.0,
    project: ProjectDir,
    email: Email = None,
    drive_url: DriveUrl = None,
    poll_interval: PollInterval = None,
    verbose: Verbose = False,
) -> None:
    """Offer the project's app (a FAB) to the datasites' nodes; their data owners approve it before any run."""
    setup_logging(verbose)

    def go() -> None:
        from syft_flwr_gdrive.flower.offers import submit_project

        sites = [s.strip() for s in datasites.split(",") if s.strip()] if datasites else None
        outcome = submit_project(project, settings_overrides(email, drive_url, poll_interval), sites, wait=wait)
        typer.echo(json.dumps(outcome.as_dict(), indent=2, sort_keys=True))

    run_errors(go)
