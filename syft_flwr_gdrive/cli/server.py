"""``syft-flwr-gdrive server``: run a Flower project's ServerApp as the aggregator (data scientist)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from syft_flwr_gdrive.base.statefile import write_json_atomic
from syft_flwr_gdrive.cli.app_output import app_output_to_stderr
from syft_flwr_gdrive.cli.exits import EXIT_DRIVE
from syft_flwr_gdrive.cli.exits import EXIT_RUN
from syft_flwr_gdrive.cli.exits import fail
from syft_flwr_gdrive.cli.exits import run_errors
from syft_flwr_gdrive.cli.logging_setup import setup_logging
from syft_flwr_gdrive.cli.shared_options import DriveUrl
from syft_flwr_gdrive.cli.shared_options import Email
from syft_flwr_gdrive.cli.shared_options import ParticipantOptions
from syft_flwr_gdrive.cli.shared_options import PollInterval
from syft_flwr_gdrive.cli.shared_options import ProjectDir
from syft_flwr_gdrive.cli.shared_options import Report
from syft_flwr_gdrive.cli.shared_options import Verbose

Datasites = Annotated[
    str | None, typer.Option(help="Comma-separated data owner emails; default: \\[tool.syft_flwr] datasites.")
]
ProgressFile = Annotated[
    Path | None,
    typer.Option(
        help="Also keep the run's progress here, rewritten about twice a second: each round's replies per "
        "datasite and Flower's per-round metrics (JSON; `run` draws its live view from it)."
    ),
]
RunConfigOverrides = Annotated[
    str | None,
    typer.Option(
        help="Override \\[tool.flwr.app.config] keys, as in `flwr run`: 'num-server-rounds=3 lr=0.1' or a JSON object."
    ),
]

ApprovalTimeout = Annotated[
    float,
    typer.Option(
        help="Seconds to wait for the datasites' nodes to approve the offered app; those that have not sit the run out."
    ),
]
Offer = Annotated[
    bool,
    typer.Option(
        "--offer/--no-offer",
        help="Offer the app to the datasites' nodes over Drive first (datasites without a node run their own copy).",
    ),
]


def server(
    *,  # keyword-only: the options shared with `client` follow this command's own, as --help lists them
    datasites: Datasites = None,
    run_config: RunConfigOverrides = None,
    approval_timeout: ApprovalTimeout = 300.0,
    offer: Offer = True,
    project: ProjectDir,
    report: Report = None,
    progress: ProgressFile = None,
    email: Email = None,
    drive_url: DriveUrl = None,
    poll_interval: PollInterval = None,
    verbose: Verbose = False,
) -> None:
    """Run the project's ServerApp as the aggregator (data scientist).

    Stdout carries the JSON outcome alone (what the app prints and the logs go to stderr), so
    `server ... | jq .metrics` works.
    """
    me = ParticipantOptions(
        project=project, report=report, email=email, drive_url=drive_url, poll_interval=poll_interval, verbose=verbose
    )
    setup_logging(me.verbose)

    def go() -> None:
        from syft_flwr_gdrive.flower.project_server import serve_project
        from syft_flwr_gdrive.flower.userconfig import parse_user_config

        overrides = parse_user_config(run_config, option="--run-config")
        sites = [s.strip() for s in datasites.split(",") if s.strip()] if datasites else None
        on_progress = (lambda now: write_json_atomic(progress, now)) if progress else None
        with app_output_to_stderr():
            outcome = serve_project(
                me.project,
                me.settings_overrides(),
                datasites=sites,
                run_config=overrides,
                on_progress=on_progress,
                offer=offer,
                approval_timeout=approval_timeout,
            )
        me.publish(outcome)
        if outcome["access_lost"]:  # Drive refused this account for good (a revoked sign-in, the daily cap)
            raise fail(outcome["access_lost"], EXIT_DRIVE)
        if not outcome["completed"]:  # the ServerApp raised, or the run could not start
            raise typer.Exit(EXIT_RUN)

    run_errors(go)
