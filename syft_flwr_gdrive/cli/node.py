"""``syft-flwr-gdrive node``: the data owner's long-running node, serving the apps they approve."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from syft_flwr_gdrive.cli.exits import EXIT_INTERRUPTED
from syft_flwr_gdrive.cli.exits import run_errors
from syft_flwr_gdrive.cli.logging_setup import setup_logging
from syft_flwr_gdrive.cli.shared_options import DriveUrl
from syft_flwr_gdrive.cli.shared_options import Email
from syft_flwr_gdrive.cli.shared_options import PollInterval
from syft_flwr_gdrive.cli.shared_options import Verbose
from syft_flwr_gdrive.cli.shared_options import settings_overrides

Aggregators = Annotated[
    list[str],
    typer.Option("--aggregator", help="A data scientist whose offers this node takes (repeat, or comma-separate)."),
]
NodeConfig = Annotated[
    str | None,
    typer.Option(
        help="Every app's context.node_config, as in flower-supernode: 'data-path=\"/data/a.csv\"' or a JSON object "
        "(an app's own, set by `approve --node-config`, goes on top)."
    ),
]
AutoApprove = Annotated[
    str,
    typer.Option(
        help="Auto-approval rule: 'none' (default: every new version waits for `approve`), or 'config-only' (approve "
        "a version whose only change from the one you approved is \\[tool.flwr.app.config])."
    ),
]


def node(
    *,
    aggregator: Aggregators,
    node_config: NodeConfig = None,
    auto_approve: AutoApprove = "none",
    email: Email = None,
    drive_url: DriveUrl = None,
    poll_interval: PollInterval = None,
    verbose: Verbose = False,
) -> None:
    """Run this data owner's node: take offers from the aggregators, run the apps you approve, until Ctrl-C.

    Review offers from another terminal: `syft-flwr-gdrive apps`, `review ID`, `approve ID`, `reject ID --reason`.
    """
    setup_logging(verbose)

    def go() -> None:
        from syft_flwr_gdrive.base.config import Settings
        from syft_flwr_gdrive.flower.data_owner_node import Node
        from syft_flwr_gdrive.flower.data_owner_node import aggregators_from
        from syft_flwr_gdrive.flower.userconfig import parse_user_config

        settings = Settings.from_env(**settings_overrides(email, drive_url, poll_interval))
        config = parse_user_config(node_config, option="--node-config")
        the_node = Node(settings, aggregators_from(aggregator), node_config=config, auto_approve=auto_approve)
        report = the_node.run()
        typer.echo(json.dumps(report.as_dict(), indent=2, sort_keys=True))
        if report.stopped_by == "interrupt":
            raise typer.Exit(EXIT_INTERRUPTED)

    run_errors(go)
