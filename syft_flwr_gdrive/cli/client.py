"""``syft-flwr-gdrive client``: serve a Flower project's ClientApp as a data owner."""

from __future__ import annotations

from typing import Annotated

import typer

from syft_flwr_gdrive.cli.app_output import app_output_to_stderr
from syft_flwr_gdrive.cli.exits import EXIT_CONFIG
from syft_flwr_gdrive.cli.exits import EXIT_DRIVE
from syft_flwr_gdrive.cli.exits import EXIT_INTERRUPTED
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

Aggregator = Annotated[
    str | None,
    typer.Option(help="The data scientist's email; default $SYFT_FLWR_AGGREGATOR or \\[tool.syft_flwr] aggregator."),
]
NodeConfig = Annotated[
    str | None,
    typer.Option(
        help="The ClientApp's context.node_config, as in flower-supernode: "
        "'partition-id=0 num-partitions=3 data-path=\"/data/a.csv\"' or a JSON object."
    ),
]
AllowProjectChanges = Annotated[
    bool,
    typer.Option(
        "--allow-project-changes",
        help="Development only: run the server's requests even if this project's files differ from the server's app.",
    ),
]


def client(
    *,  # keyword-only: the options shared with `server` follow this command's own, as --help lists them
    aggregator: Aggregator = None,
    node_config: NodeConfig = None,
    allow_project_changes: AllowProjectChanges = False,
    project: ProjectDir,
    report: Report = None,
    email: Email = None,
    drive_url: DriveUrl = None,
    poll_interval: PollInterval = None,
    verbose: Verbose = False,
) -> None:
    """Serve the project's ClientApp as a data owner until the aggregator's stop signal.

    Requests of a server whose app differs from this project (files or \\[tool.flwr.app]) are refused,
    and the client exits 2 after the run, naming the files that differ. Stdout carries the JSON
    outcome alone (what the app prints and the logs go to stderr).
    """
    me = ParticipantOptions(
        project=project, report=report, email=email, drive_url=drive_url, poll_interval=poll_interval, verbose=verbose
    )
    setup_logging(me.verbose)

    def go() -> None:
        from syft_flwr_gdrive.flower.project_client import serve_project_client

        with app_output_to_stderr():
            outcome = serve_project_client(
                me.project,
                me.settings_overrides(),
                aggregator=aggregator,
                node_config=node_config,
                allow_project_changes=allow_project_changes,
            )
        me.publish(outcome)
        if outcome["stopped_by"] == "interrupt":
            raise typer.Exit(EXIT_INTERRUPTED)
        if outcome["access_lost"]:  # Drive refused this account for good (a revoked sign-in, the daily cap)
            raise fail(outcome["access_lost"], EXIT_DRIVE)
        if outcome["refused"]:
            raise fail(
                f"refused {outcome['refused']} request(s): this project differs from the server's app "
                f"({'; '.join(outcome['project_differences'])})",
                EXIT_CONFIG,
            )
        if outcome["run_config_refused"]:
            raise fail(
                f"refused {outcome['run_config_refused']} request(s): the server's run config does not fit this "
                "project's [tool.flwr.app.config] (the log names the keys and the fix)",
                EXIT_CONFIG,
            )

    run_errors(go)
