"""``syft-flwr-gdrive bootstrap``: write ``[tool.syft_flwr]`` into a Flower project."""

from __future__ import annotations

from typing import Annotated

import typer

from syft_flwr_gdrive.cli.exits import run_errors
from syft_flwr_gdrive.cli.shared_options import ProjectDir

AggregatorEmail = Annotated[str, typer.Option(help="The data scientist's email (runs the server).")]
DatasiteEmails = Annotated[str, typer.Option(help="Comma-separated emails of the data owners.")]
AppName = Annotated[
    str | None, typer.Option(help="Name the app's messages are filed under; default: the project name.")
]
TransportPlugin = Annotated[str, typer.Option(help="Transport plugin name.")]


def bootstrap(
    project: ProjectDir,
    aggregator: AggregatorEmail,
    datasites: DatasiteEmails,
    app_name: AppName = None,
    transport: TransportPlugin = "p2p",
) -> None:
    """Write \\[tool.syft_flwr] (aggregator, datasites, transport, app name) into a Flower project."""
    from syft_flwr_gdrive.ops.project_setup import bootstrap as write_section

    path = run_errors(
        lambda: write_section(
            project,
            aggregator=aggregator,
            datasites=[d for d in datasites.split(",") if d.strip()],
            app_name=app_name,
            transport=transport,
        )
    )
    typer.echo(f"wrote [tool.syft_flwr] to {path}")
