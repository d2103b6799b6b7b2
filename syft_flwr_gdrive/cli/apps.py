"""``apps``, ``review``, ``approve``, ``reject``: the data owner looks at offered apps and decides.

They read and change the node's app store only (no Drive), so they work from another terminal while
the node runs; the node sends the answer, and starts an approved app, at its next poll.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated
from typing import Any

import typer

from syft_flwr_gdrive.cli.exits import run_errors
from syft_flwr_gdrive.cli.shared_options import Email
from syft_flwr_gdrive.cli.shared_options import settings_overrides

OfferId = Annotated[str, typer.Argument(help="The offer's id (`syft-flwr-gdrive apps` lists them; a prefix will do).")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _store(email: str | None) -> Any:
    from syft_flwr_gdrive.base.config import Settings
    from syft_flwr_gdrive.flower.app_store import AppStore

    return AppStore.for_participant(Settings.from_env(**settings_overrides(email)).participant_state_dir())


def apps(*, as_json: Json = False, email: Email = None) -> None:
    """List the apps offered to this data owner, and their state (pending, approved, rejected)."""

    def go() -> None:
        from syft_flwr_gdrive.flower.app_review import list_apps

        listed = list_apps(_store(email))
        if as_json:
            typer.echo(json.dumps(listed, indent=2, sort_keys=True))
            return
        if not listed:
            typer.echo("no apps offered yet (is `syft-flwr-gdrive node --aggregator ...` running?)")
            return
        for app in listed:
            typer.echo(
                f"{app['id']}  {app['state']:8s}  {app['name']} {app['version']}  from {app['from']}  "
                f"{len(app['files'])} files, {app['size']} bytes  fingerprint {app['fingerprint'][:12]}"
            )
            if app["state"] == "rejected":
                typer.echo(f"            reason: {app['reason']}")
            if app["missing_dependencies"]:
                typer.echo(f"            missing here: {', '.join(app['missing_dependencies'])}")
                typer.echo(f"            to add them:  {app['install_missing']}")

    run_errors(go)


def review(
    offer_id: OfferId,
    *,
    out: Annotated[Path | None, typer.Option(help="Unpack the app (read-only) into this new folder.")] = None,
    as_json: Json = False,
    email: Email = None,
) -> None:
    """Show an offered app: where its files are, their list, and the diff against the version you approved last."""

    def go() -> None:
        from syft_flwr_gdrive.flower.app_review import review_offer

        shown = review_offer(_store(email), offer_id, out)
        if as_json:
            typer.echo(json.dumps(shown, indent=2, sort_keys=True))
            return
        typer.echo(f"offer {shown['id']}: {shown['name']} {shown['version']} from {shown['from']} ({shown['state']})")
        typer.echo(f"fingerprint {shown['fingerprint']}")
        typer.echo(f"files (read-only) in {shown['path']}:")
        for path in shown["file_list"]:
            typer.echo(f"  {path}  ({shown['files'][path]} bytes)")
        typer.echo(f"declares: {', '.join(shown['dependencies']) or 'no dependencies'}")
        if shown["missing_dependencies"]:
            typer.echo(f"missing here: {', '.join(shown['missing_dependencies'])}; to add: {shown['install_missing']}")
        if shown["previous_approved"] is None:
            typer.echo("no earlier version of this app from this aggregator was approved here: read the files above")
        elif shown["diff"]:
            typer.echo(
                f"changes since the version you approved ({shown['previous_version']}, {shown['previous_approved']}):"
            )
            typer.echo(shown["diff"], nl=False)
        else:
            typer.echo(f"no file differs from the version you approved ({shown['previous_approved']})")

    run_errors(go)


def approve(
    offer_id: OfferId,
    *,
    node_config: Annotated[
        str | None,
        typer.Option(help="This app's own context.node_config (e.g. its data path), on top of the node's."),
    ] = None,
    email: Email = None,
) -> None:
    """Approve an offered app: the node answers the aggregator and runs the app's ClientApp for its runs."""

    def go() -> None:
        from syft_flwr_gdrive.flower.app_review import approve_offer
        from syft_flwr_gdrive.flower.userconfig import parse_user_config

        config = parse_user_config(node_config, option="--node-config") if node_config is not None else None
        offer = approve_offer(_store(email), offer_id, config)
        typer.echo(
            f"approved {offer.id} ({offer.name} {offer.version} from {offer.sender}); "
            "the node starts it at its next poll"
        )

    run_errors(go)


def reject(
    offer_id: OfferId,
    *,
    reason: Annotated[str, typer.Option(help="Why: the aggregator is shown this.")],
    email: Email = None,
) -> None:
    """Reject an offered app; the aggregator is told your reason."""

    def go() -> None:
        from syft_flwr_gdrive.flower.app_review import reject_offer

        offer = reject_offer(_store(email), offer_id, reason)
        typer.echo(f"rejected {offer.id} ({offer.name} {offer.version} from {offer.sender}): {offer.reason}")

    run_errors(go)
