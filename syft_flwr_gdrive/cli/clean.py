"""``syft-flwr-gdrive clean``: delete this participant's leftover message files (peers clean their own)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Annotated

import typer

from syft_flwr_gdrive.cli.exits import run_errors
from syft_flwr_gdrive.cli.shared_options import Email
from syft_flwr_gdrive.cli.shared_options import HousekeepingDriveUrl
from syft_flwr_gdrive.cli.shared_options import settings_overrides

if TYPE_CHECKING:
    from syft_flwr_gdrive.ops.leftovers import CleanResult

OnlyApp = Annotated[
    str | None, typer.Option("--app", help="Only this app's files (e.g. message-digits); default: all apps.")
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Only list what would be deleted.")]


def clean(
    app_name: OnlyApp = None,
    email: Email = None,
    drive_url: HousekeepingDriveUrl = None,
    dry_run: DryRun = False,
) -> None:
    """Delete this participant's leftover message files (peers clean their own)."""

    def go() -> CleanResult:
        from syft_flwr_gdrive.base.config import Settings
        from syft_flwr_gdrive.flower.app_mailbox import app_key
        from syft_flwr_gdrive.ops.leftovers import clean as clean_files
        from syft_flwr_gdrive.transport.registry import create_transport

        settings = Settings.from_env(**settings_overrides(email, drive_url))
        return clean_files(create_transport(settings), app=app_key(app_name) if app_name else None, dry_run=dry_run)

    result = run_errors(go)
    for name in result.names:
        typer.echo(("would delete " if dry_run else "deleted ") + name)
    typer.echo(f"{result.found} message file(s) found, {result.deleted} deleted")
