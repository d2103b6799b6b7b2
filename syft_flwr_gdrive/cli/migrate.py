"""``syft-flwr-gdrive migrate``: turn a syft-flwr project into one that runs here, showing the diff."""

from __future__ import annotations

from typing import Annotated

import typer

from syft_flwr_gdrive.cli.exits import EXIT_CONFIG
from syft_flwr_gdrive.cli.exits import fail
from syft_flwr_gdrive.cli.exits import run_errors
from syft_flwr_gdrive.cli.shared_options import ProjectDir

DryRun = Annotated[bool, typer.Option("--dry-run", help="Show the diff; write nothing.")]


def migrate(project: ProjectDir, dry_run: DryRun = False) -> None:
    """Turn a syft-flwr project into one that runs here: \\[tool.syft_flwr], main.py and syft-flwr imports.

    Prints the changes as a unified diff, then writes them (not with --dry-run). Imports of syft
    packages with no equivalent here are listed (exit 2): those are yours to change. Running it
    again changes nothing.
    """
    from syft_flwr_gdrive.ops.project_migration import plan_migration

    migration = run_errors(lambda: plan_migration(project))
    if migration.changes:
        typer.echo(migration.diff(), nl=False)
    for line in migration.mapped:
        typer.echo(f"mapped  {line}", err=True)
    where = migration.project
    if not migration.changes:
        typer.echo(f"{where}: nothing to change", err=True)
    elif dry_run:
        typer.echo(f"dry run: {len(migration.changes)} file(s) would change; nothing written", err=True)
    else:
        migration.write()
        typer.echo(f"wrote {len(migration.changes)} file(s) in {where}", err=True)
    if migration.leftovers:
        typer.echo("Left for you (no equivalent here):", err=True)
        for item in migration.leftovers:
            typer.echo(f"  {item.path}:{item.line}: {item.text}" + (f"  ({item.hint})" if item.hint else ""), err=True)
        raise fail(f"{len(migration.leftovers)} syft import(s) or use(s) to change by hand (listed above)", EXIT_CONFIG)
    typer.echo(
        f"next: syft-flwr-gdrive run -p {where} --clients 2   (mock data per client: --data-dir 'mock/{{i}}')",
        err=True,
    )
