"""``syft-flwr-gdrive login``: sign in with a browser and save an OAuth token file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from syft_flwr_gdrive.cli.exits import run_errors

ClientSecret = Annotated[
    Path, typer.Option(help="OAuth client secret JSON (Desktop app) from the Google Cloud console.")
]
TokenFile = Annotated[Path, typer.Option(help="Where to save the token (keep it private).")]
RedirectPort = Annotated[int, typer.Option(help="Local port for the OAuth redirect (0: any free port).")]


def login(client_secret: ClientSecret, token_file: TokenFile = Path("token.json"), port: RedirectPort = 0) -> None:
    """Sign in with a browser and save an OAuth token file (needs the 'login' extra)."""
    from syft_flwr_gdrive.ops.oauth_token import save_oauth_token

    path = run_errors(lambda: save_oauth_token(client_secret, token_file, port=port))
    typer.echo(f"saved {path}; use it with SYFT_FLWR_TOKEN_FILE={path}")
