"""``syft-flwr-gdrive doctor``: check settings, credentials, Drive and the account; ``--peer`` adds a round trip."""

from __future__ import annotations

import os
from typing import Annotated
from typing import Any

import typer

from syft_flwr_gdrive.base.config import validate_email
from syft_flwr_gdrive.cli.exits import EXIT_CONFIG
from syft_flwr_gdrive.cli.exits import EXIT_DRIVE
from syft_flwr_gdrive.cli.exits import run_errors
from syft_flwr_gdrive.cli.shared_options import Email
from syft_flwr_gdrive.cli.shared_options import HousekeepingDriveUrl

Peer = Annotated[
    str | None,
    typer.Option(
        help="Also test a round trip with this peer (share, list, read, delete); "
        "they run `doctor --peer <your email>` at the same time."
    ),
]
PeerTimeout = Annotated[float, typer.Option(help="Seconds to wait for the peer's side of --peer.")]


def doctor(
    email: Email = None,
    drive_url: HousekeepingDriveUrl = None,
    peer: Peer = None,
    peer_timeout: PeerTimeout = 60.0,
) -> None:
    """Check settings, credentials, Drive reachability and the account; say what to fix."""
    from syft_flwr_gdrive.ops.checks import run_checks

    overrides: dict[str, Any] = {"email": email} if email else {}
    environ = dict(os.environ)
    if drive_url:
        environ["SYFT_FLWR_DRIVE_URL"] = drive_url
    checks = run_checks(environ, **overrides)
    for check in checks:
        mark = "ok " if check.ok else "FAIL"
        typer.echo(f"[{mark}] {check.name}: {check.detail}")
        if not check.ok and check.fix:
            typer.echo(f"       fix: {check.fix}")
    failed = [c for c in checks if not c.ok]
    if failed:
        raise typer.Exit(EXIT_CONFIG if failed[0].name == "settings" else EXIT_DRIVE)
    if peer:
        _doctor_peer(environ, overrides, peer, peer_timeout)
    typer.echo("all good")


def _doctor_peer(environ: dict[str, str], overrides: dict[str, Any], peer: str, timeout: float) -> None:
    """The timed round trip of `doctor --peer`; exits 3 (Drive) when the two accounts cannot federate."""
    from syft_flwr_gdrive.base.config import Settings
    from syft_flwr_gdrive.ops.peer_roundtrip import check_peer
    from syft_flwr_gdrive.transport.registry import create_transport

    settings = run_errors(lambda: Settings.from_env(environ, **overrides))
    peer = run_errors(lambda: validate_email(peer, what="--peer"))
    transport = run_errors(lambda: create_transport(settings))
    typer.echo(f"round trip with {peer} (waiting up to {timeout:.0f}s for their side):")
    steps = check_peer(transport, peer, timeout=timeout)
    for step in steps:
        typer.echo(f"[{'ok ' if step.ok else 'FAIL'}] {step.name} ({step.seconds:.1f}s): {step.detail}")
    total = sum(s.seconds for s in steps)
    if not steps or not all(s.ok for s in steps):
        typer.echo(f"{settings.email} and {peer} cannot federate yet ({total:.1f}s).", err=True)
        raise typer.Exit(EXIT_DRIVE)
    typer.echo(f"{settings.email} and {peer} can federate: round trip in {total:.1f}s.")
