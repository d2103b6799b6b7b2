"""Exit codes, and library errors turned into one readable line and an exit code.

0 done, 2 bad input or configuration, 3 Drive/credentials problem (credentials that do not load, Drive
unreachable, or Drive refusing the account for good: a sign-in Google no longer refreshes, the daily upload
cap), 4 the federated run failed, 130 interrupted. Scripts and the local federation read these codes, so
they never change meaning.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import typer

from syft_flwr_gdrive.base.config import ConfigError

EXIT_OK, EXIT_CONFIG, EXIT_DRIVE, EXIT_RUN, EXIT_INTERRUPTED = 0, 2, 3, 4, 130

T = TypeVar("T")


def fail(message: str, code: int) -> typer.Exit:
    """Print ``error: message`` on stderr; the caller raises the returned exit."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def run_errors(fn: Callable[[], T]) -> T:
    """Call ``fn``, mapping library errors to one line and an exit code (no traceback for a user's mistake)."""
    from syft_flwr_gdrive.transport.contract import TransportError
    from syft_flwr_gdrive.transport.contract import access_lost_in
    from syft_flwr_gdrive.transport.drive.auth import CredentialsError
    from syft_flwr_gdrive.transport.drive.errors import DriveError

    try:
        return fn()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except ConfigError as exc:
        raise fail(str(exc), EXIT_CONFIG) from exc
    except (CredentialsError, DriveError, TransportError) as exc:
        lost = access_lost_in(exc)  # said whole, not inside the text of the operation that met it
        raise fail(str(lost or exc), EXIT_DRIVE) from exc
