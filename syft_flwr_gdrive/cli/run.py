"""``run`` and ``demo``: a whole federation on this machine, over an embedded fake Google Drive (or a directory).

``demo`` is ``run`` on the bundled digits app; both take the fake Drive knobs (``shared_options``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from typing import Annotated

import typer

from syft_flwr_gdrive.cli.live_view import Start
from syft_flwr_gdrive.cli.live_view import run_with_live_view
from syft_flwr_gdrive.cli.shared_options import DriveProfile
from syft_flwr_gdrive.cli.shared_options import DropRate
from syft_flwr_gdrive.cli.shared_options import ErrorRate
from syft_flwr_gdrive.cli.shared_options import FakePollInterval
from syft_flwr_gdrive.cli.shared_options import LatencyMs
from syft_flwr_gdrive.cli.shared_options import LocalTransport
from syft_flwr_gdrive.cli.shared_options import MsgTimeout
from syft_flwr_gdrive.cli.shared_options import Seed
from syft_flwr_gdrive.cli.shared_options import SharedDir
from syft_flwr_gdrive.cli.shared_options import Timeout

if TYPE_CHECKING:  # imported where used: the CLI starts without loading the federation runner
    from syft_flwr_gdrive.localrun.runner import DemoOptions
    from syft_flwr_gdrive.localrun.runner import LocalRunOptions

Stream = Annotated[
    bool,
    typer.Option(
        "--stream/--no-stream",
        help="Show every participant's output (the app's prints and logs) as it is written, prefixed by who wrote "
        "it; the full logs are in OUT/participants either way.",
    ),
]

# -- run ----------------------------------------------------------------------------------------------------

Ship = Annotated[
    bool,
    typer.Option(
        "--ship",
        help="Data owners run `node` with no copy of the app; the server offers it over Drive and the nodes "
        "auto-approve it (a local run only).",
    ),
]
YourProject = Annotated[
    Path, typer.Option("--project", "-p", help="Your Flower project directory (holds pyproject.toml).")
]
SimulatedClients = Annotated[int, typer.Option(help="Number of simulated data owners (client processes).")]
RunConfig = Annotated[
    str | None,
    typer.Option(help="Override \\[tool.flwr.app.config], as in `flwr run`: 'num-server-rounds=3 lr=0.1' or JSON."),
]
NodeConfigs = Annotated[
    list[str] | None,
    typer.Option(
        help="Each client's node_config. Once: a template for all, {i} = client index (0..N-1), {n} = N; "
        "or once per client. Default: 'partition-id={i} num-partitions={n}'."
    ),
]
DataDirs = Annotated[
    list[str] | None,
    typer.Option(
        "--data-dir",
        help="Each client's DATA_DIR, the dataset folder of syft-flwr's convention (mock data for a local run): "
        "once, a template ('mock/{i}'), or once per client.",
    ),
]
RunOut = Annotated[
    Path | None, typer.Option(help="Folder for report.json, the plot and logs; default runs/run-<time>.")
]


def run_project(
    project: YourProject = Path("."),
    clients: SimulatedClients = 2,
    run_config: RunConfig = None,
    node_config: NodeConfigs = None,
    data_dir: DataDirs = None,
    out: RunOut = None,
    poll_interval: FakePollInterval = 0.25,
    msg_timeout: MsgTimeout = 60.0,
    latency_ms: LatencyMs = 0.0,
    error_rate: ErrorRate = 0.0,
    drop_rate: DropRate = 0.0,
    seed: Seed = 0,
    drive_profile: DriveProfile = "default",
    timeout: Timeout = 600.0,
    transport: LocalTransport = "p2p",
    shared_dir: SharedDir = None,
    stream: Stream = True,
    ship: Ship = False,
) -> None:
    """Federate your own Flower project on this machine: N data owners over an embedded fake Google Drive.

    Like `flwr run` with a local federation, but every participant is its own process talking
    through (fake) Drive exactly as it would over real Google Drive. Relative paths the app writes
    land in OUT/participants. Stops as soon as a participant fails (showing why, and exiting with its
    code) or --timeout is up; the participants always stop with it.
    """
    from syft_flwr_gdrive.localrun.runner import DEFAULT_NODE_CONFIG
    from syft_flwr_gdrive.localrun.runner import LocalRunOptions
    from syft_flwr_gdrive.localrun.runner import run_local

    options = LocalRunOptions(
        project=project.expanduser().resolve(),
        clients=clients,
        run_config=run_config or "",
        node_configs=tuple(node_config or (DEFAULT_NODE_CONFIG,)),
        data_dirs=tuple(data_dir or ()),
        poll_interval=poll_interval,
        msg_timeout=msg_timeout,
        latency_ms=latency_ms,
        error_rate=error_rate,
        drop_rate=drop_rate,
        seed=seed,
        drive_profile=drive_profile,
        timeout=timeout,
        transport=transport,
        shared_dir=shared_dir,
        ship=ship,
    )
    _launch(options, out, lambda on_progress, on_output: run_local(options, on_progress, on_output), stream)


# -- demo ---------------------------------------------------------------------------------------------------

DemoClients = Annotated[int, typer.Option(help="Number of data owners (client processes).")]
Rounds = Annotated[int, typer.Option(help="Federated rounds.")]
AppStyle = Annotated[
    str, typer.Option("--app", help="Bundled app style: 'message' (@app.main + FedAvg) or 'legacy' (server_fn).")
]
DemoOut = Annotated[
    Path | None, typer.Option(help="Folder for report.json, metrics.png and logs; default runs/demo-<time>.")
]


def demo(
    clients: DemoClients = 3,
    rounds: Rounds = 5,
    app_style: AppStyle = "message",
    out: DemoOut = None,
    poll_interval: FakePollInterval = 0.25,
    msg_timeout: MsgTimeout = 60.0,
    latency_ms: LatencyMs = 0.0,
    error_rate: ErrorRate = 0.0,
    drop_rate: DropRate = 0.0,
    seed: Seed = 0,
    drive_profile: DriveProfile = "default",
    timeout: Timeout = 600.0,
    transport: LocalTransport = "p2p",
    shared_dir: SharedDir = None,
    stream: Stream = True,
    ship: Ship = False,
) -> None:
    """Train a real model with N data owners over an embedded fake Google Drive (no account needed).

    This is `run` on the bundled digits app.
    """
    from syft_flwr_gdrive.localrun.runner import DemoOptions
    from syft_flwr_gdrive.localrun.runner import run_demo

    options = DemoOptions(
        clients=clients,
        rounds=rounds,
        app=app_style,
        poll_interval=poll_interval,
        msg_timeout=msg_timeout,
        latency_ms=latency_ms,
        error_rate=error_rate,
        drop_rate=drop_rate,
        seed=seed,
        drive_profile=drive_profile,
        timeout=timeout,
        transport=transport,
        shared_dir=shared_dir,
        ship=ship,
    )
    _launch(options, out, lambda on_progress, on_output: run_demo(options, on_progress, on_output), stream)


def _launch(options: LocalRunOptions | DemoOptions, out: Path | None, start: Start, stream: bool) -> None:
    """Run a local federation (``run`` or ``demo``) under the live view, in ``out`` if given."""
    if out:
        options.out_dir = out
    if options.ship:
        typer.echo("--ship: the app is offered over Drive to each data owner's node, and AUTO-APPROVED (a local run)")
    run_with_live_view(options.clients, options.out_dir, start, options.transport, stream=stream)
