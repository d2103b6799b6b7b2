"""``syft-flwr-gdrive fake-drive``: the fake Google Drive server alone (its own options, parsed by it)."""

from __future__ import annotations

from typing import Any

import typer

# Every argument, --help included, goes to the fake's own parser.
PASS_THROUGH: dict[str, Any] = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def fake_drive(ctx: typer.Context) -> None:
    """Run the fake Google Drive server alone; prints its URL first (options: `fake-drive --help`, e.g. --port 8765)."""
    from syft_flwr_gdrive.fake.__main__ import main as fake_main

    raise typer.Exit(fake_main(["--human", *ctx.args]) or 0)
