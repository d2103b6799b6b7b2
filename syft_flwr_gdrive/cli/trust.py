"""``syft-flwr-gdrive trust``: peers' pinned key fingerprints, refused (changed) keys, and accepting one."""

from __future__ import annotations

from typing import Annotated

import typer

from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.cli.exits import EXIT_CONFIG
from syft_flwr_gdrive.cli.exits import fail
from syft_flwr_gdrive.cli.exits import run_errors
from syft_flwr_gdrive.cli.shared_options import Email
from syft_flwr_gdrive.cli.shared_options import settings_overrides

AcceptPeer = Annotated[
    str | None,
    typer.Option(help="Pin the changed key this peer was refused for (confirm its fingerprint with them first)."),
]


def trust(accept: AcceptPeer = None, email: Email = None) -> None:
    """List peers' pinned key fingerprints and refused (changed) keys; accept a changed key explicitly."""
    from syft_flwr_gdrive.crypto.failures import CryptoError
    from syft_flwr_gdrive.ops.key_files import accept as accept_key
    from syft_flwr_gdrive.ops.key_files import my_fingerprint
    from syft_flwr_gdrive.ops.key_files import peer_keys

    settings = run_errors(lambda: Settings.from_env(**settings_overrides(email)))
    if accept:
        try:
            fingerprint = accept_key(settings, accept)
        except CryptoError as exc:
            raise fail(f"{exc}. `syft-flwr-gdrive trust` lists the refused keys.", EXIT_CONFIG) from exc
        typer.echo(f"pinned {accept.strip().lower()}'s new key (fingerprint {fingerprint}); restart your run to use it")
        return
    try:
        mine, peers = my_fingerprint(settings), peer_keys(settings)
    except CryptoError as exc:
        raise fail(str(exc), EXIT_CONFIG) from exc
    typer.echo(
        f"me       {settings.email}: " + (f"fingerprint {mine}" if mine else "no keys yet (made on the first run)")
    )
    if not peers:
        typer.echo("no peer keys pinned yet (a peer's key is pinned the first time its messages are seen)")
    for entry in peers:
        line = f"peer     {entry.peer}: " + (f"pinned {entry.pinned}" if entry.pinned else "not pinned")
        if entry.refused:
            line += (
                f"; REFUSED a different key {entry.refused}: if {entry.peer} re-created its keys, confirm "
                f"that fingerprint with them, then `syft-flwr-gdrive trust --accept {entry.peer}`"
            )
        typer.echo(line)
