"""Command line: ``syft-flwr-gdrive COMMAND``, the typer app and its commands, one module each.

The commands hold no business logic: they parse options (``shared_options`` declares the ones several
commands take), call the library, print, and turn errors into one readable line and an exit code
(``exits``).
"""

from __future__ import annotations

import signal
from typing import Annotated

import typer

from syft_flwr_gdrive.cli.apps import approve
from syft_flwr_gdrive.cli.apps import apps
from syft_flwr_gdrive.cli.apps import reject
from syft_flwr_gdrive.cli.apps import review
from syft_flwr_gdrive.cli.bootstrap import bootstrap
from syft_flwr_gdrive.cli.clean import clean
from syft_flwr_gdrive.cli.client import client
from syft_flwr_gdrive.cli.doctor import doctor
from syft_flwr_gdrive.cli.fake_drive import PASS_THROUGH
from syft_flwr_gdrive.cli.fake_drive import fake_drive
from syft_flwr_gdrive.cli.login import login
from syft_flwr_gdrive.cli.migrate import migrate
from syft_flwr_gdrive.cli.node import node
from syft_flwr_gdrive.cli.run import demo
from syft_flwr_gdrive.cli.run import run_project
from syft_flwr_gdrive.cli.server import server
from syft_flwr_gdrive.cli.submit import submit
from syft_flwr_gdrive.cli.trust import trust

app = typer.Typer(
    help="Run Flower federated learning between Google accounts, with messages as files in Google Drive.",
    no_args_is_help=True,
    add_completion=False,
)

ParentPid = Annotated[
    int | None,
    typer.Option(
        "--exit-with-parent",
        hidden=True,
        help="Stop when the process with this pid stops being this one's parent (run/demo start participants so).",
    ),
]


@app.callback()
def participant_process(exit_with_parent: ParentPid = None) -> None:
    """Options of the process itself, before the command (`run` and `demo` pass them to their participants)."""
    if exit_with_parent is not None:
        from syft_flwr_gdrive.cli.parent_watch import exit_with_parent as watch_parent

        watch_parent(exit_with_parent)


# In the order --help lists them.
app.command("server")(server)
app.command("client")(client)
app.command("submit")(submit)
app.command("node")(node)
app.command("apps")(apps)
app.command("review")(review)
app.command("approve")(approve)
app.command("reject")(reject)
app.command("run")(run_project)
app.command("demo")(demo)
app.command("bootstrap")(bootstrap)
app.command("migrate")(migrate)
app.command("login")(login)
app.command("doctor")(doctor)
app.command("trust")(trust)
app.command("clean")(clean)
app.command("fake-drive", context_settings=PASS_THROUGH, add_help_option=False)(fake_drive)


def _interruptible() -> None:
    """Let Ctrl-C (SIGINT) stop this process even if it started with SIGINT ignored.

    A shell without job control (a script, CI, ``nohup``-less ``&``) starts background commands
    that way, and ``run``/``demo`` stop their participants with SIGINT before anything harsher:
    ignored, a participant would lose its clean shutdown (stop signals, deleting its files)."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main() -> None:
    _interruptible()
    app()
