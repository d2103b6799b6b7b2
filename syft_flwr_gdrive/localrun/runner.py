"""A whole federation on this machine over the embedded fake Google Drive (or a shared directory): ``run`` and ``demo``.

``run`` federates the user's own Flower project (like ``flwr run`` with a local
federation): it starts the fake Drive in this process (``transport="p2p"``) or
uses a directory (``transport="dir"``), then a server and N clients as separate
processes, each running the project unchanged, streams their output and
progress (``supervisor``), and writes a JSON report (``run_report``) and a plot
of Flower's per-round metrics (``metrics_plot``). ``demo`` is ``run`` on the
bundled digits app (``fixtures/``).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
from pathlib import Path
from typing import Any

from syft_flwr_gdrive.base.config import ENV_DATA_DIR
from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.fake import FaultConfig
from syft_flwr_gdrive.flower.project import FlowerProject
from syft_flwr_gdrive.flower.userconfig import parse_user_config
from syft_flwr_gdrive.localrun.federation import LocalFederation
from syft_flwr_gdrive.localrun.federation import Participant
from syft_flwr_gdrive.localrun.metrics_plot import write_plot
from syft_flwr_gdrive.localrun.run_report import build_report
from syft_flwr_gdrive.localrun.supervisor import Failure
from syft_flwr_gdrive.localrun.supervisor import Progress
from syft_flwr_gdrive.localrun.supervisor import Supervisor
from syft_flwr_gdrive.localrun.supervisor import terminations_as_interrupts

REPO_ROOT = Path(__file__).resolve().parents[2]  # syft_flwr_gdrive/localrun/runner.py -> the clone
APPS = {"message": "message_app", "legacy": "legacy_app"}
DEFAULT_NODE_CONFIG = "partition-id={i} num-partitions={n}"
DEMO_DATA = REPO_ROOT / "fixtures" / "data" / "digits.csv.gz"  # the demo data owners' data (not shipped)
TRANSPORTS = ("p2p", "dir")  # the embedded fake Google Drive, or a shared directory


@dataclass(kw_only=True)
class FederationKnobs:
    """How a local federation runs (which storage, its injected faults, pace and time limit): shared by ``run``
    and ``demo`` (``cli/shared_options.py`` declares one command-line option per field, with these defaults)."""

    poll_interval: float = 0.25
    msg_timeout: float = 60.0
    latency_ms: float = 0.0  # injected per Drive call
    error_rate: float = 0.0  # fraction of calls answered 429/403/500/503
    drop_rate: float = 0.0  # fraction of connections dropped
    seed: int = 0  # of the injected faults
    drive_profile: str = "default"  # "strict": only what Drive documents (docs/drive-assumptions.md)
    timeout: float = 600.0  # seconds before the federation is given up
    transport: str = "p2p"  # "p2p": the embedded fake Google Drive; "dir": a shared directory
    shared_dir: Path | None = None  # the dir transport's directory; default OUT/shared


@dataclass(kw_only=True)
class LocalRunOptions(FederationKnobs):
    """A local federation of a Flower project; ``node_configs`` is one template for every client or one per client."""

    project: Path
    clients: int = 2
    run_config: str = ""  # Flower's "k=v k2=v2" form or JSON, as `flwr run --run-config`
    node_configs: Sequence[str] = (DEFAULT_NODE_CONFIG,)  # "{i}" is the client's index, "{n}" the number of clients
    # Each client's DATA_DIR (syft-flwr's dataset folder convention, flower/app_paths.py): none, one template
    # ("{i}", "{n}" as above) or one per client; relative to where run is started.
    data_dirs: Sequence[str] = ()
    out_dir: Path = field(default_factory=lambda: Path("runs") / time.strftime("run-%Y%m%d-%H%M%S"))
    label: str = ""  # for the plot's title; default the project's folder name
    expected_rounds: int | None = None  # the demo knows how many rounds make a success
    ship: bool = False  # data owners run nodes with no copy of the project; the app is offered and auto-approved


@dataclass(kw_only=True)
class DemoOptions(FederationKnobs):
    """``run`` on a bundled app (``APPS``) for a number of rounds."""

    clients: int = 3
    rounds: int = 5
    app: str = "message"
    out_dir: Path = field(default_factory=lambda: Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S"))
    ship: bool = False  # as ``run --ship``, on a self-contained copy of the bundled app (``shippable_demo_app``)

    def as_run(self) -> LocalRunOptions:
        if not 1 <= self.rounds <= 100:
            raise ConfigError("--rounds must be between 1 and 100.")
        knobs = {f.name: getattr(self, f.name) for f in fields(FederationKnobs)}
        project, node_config = app_dir(self.app), DEFAULT_NODE_CONFIG
        if self.ship:
            project = shippable_demo_app(self.app, Path(self.out_dir) / "shipped-app")
            # The data stays with the data owners (here: this clone's digits file), never in the app.
            node_config += f" data-path={json.dumps(str(DEMO_DATA))}"
        return LocalRunOptions(
            project=project,
            clients=self.clients,
            run_config=json.dumps({"num-server-rounds": self.rounds, "min-clients": self.clients}),
            node_configs=(node_config,),
            out_dir=self.out_dir,
            label=f"{self.app} app",
            expected_rounds=self.rounds,
            ship=self.ship,
            **knobs,
        )


def shippable_demo_app(app: str, dest: Path) -> Path:
    """A copy of the bundled ``app`` that holds everything its code imports, for ``demo --ship``.

    Why: the bundled apps share their model and data code (``fixtures/fl_common``) from outside their
    project folder, and a FAB carries only the project folder, so a node that installed the shipped app
    could not import it. The copy puts ``fl_common`` inside the project (its data file stays out: each
    data owner names its own with ``data-path``)."""
    source = app_dir(app)
    if dest.exists():
        shutil.rmtree(dest)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(source, dest, ignore=skip)
    shutil.copytree(REPO_ROOT / "fixtures" / "fl_common", dest / "fl_common", ignore=skip)
    return dest


def app_dir(app: str) -> Path:
    if app not in APPS:
        raise ConfigError(f"--app must be one of {', '.join(APPS)}, not {app!r}.")
    path = REPO_ROOT / "fixtures" / APPS[app]
    if not (path / "pyproject.toml").is_file():
        raise ConfigError(
            f"The demo app is missing at {path}. The demo runs from a clone of the repository "
            "(its fixtures/ folder); run `make demo` there."
        )
    return path


def node_config_for(options: LocalRunOptions, index: int) -> str:
    """Client ``index``'s --node-config: its own entry, or the shared template, with {i} and {n} filled in."""
    template = options.node_configs[index] if len(options.node_configs) > 1 else options.node_configs[0]
    return template.replace("{i}", str(index)).replace("{n}", str(options.clients))


def data_dir_for(options: LocalRunOptions, index: int) -> Path | None:
    """Client ``index``'s DATA_DIR (absolute), from its own --data-dir or the shared template; None without one."""
    if not options.data_dirs:
        return None
    template = options.data_dirs[index] if len(options.data_dirs) > 1 else options.data_dirs[0]
    return Path(template.replace("{i}", str(index)).replace("{n}", str(options.clients))).expanduser().resolve()


def validate(options: LocalRunOptions) -> FlowerProject:
    """Check the options and load the project (unknown --run-config keys, a broken pyproject fail here, not
    in the server process); returns the project."""
    if not 1 <= options.clients <= 50:
        raise ConfigError("--clients must be between 1 and 50.")
    for name in ("error_rate", "drop_rate"):
        if not 0.0 <= getattr(options, name) < 1.0:
            raise ConfigError(f"--{name.replace('_', '-')} must be in [0, 1).")
    if options.latency_ms < 0 or options.poll_interval <= 0:
        raise ConfigError("--latency-ms must be >= 0 and --poll-interval > 0.")
    if options.timeout <= 0:
        raise ConfigError("--timeout must be > 0 seconds.")
    if options.transport not in TRANSPORTS:
        raise ConfigError(f"--transport {options.transport!r} is not one of {', '.join(TRANSPORTS)}.")
    if options.transport != "p2p" and (
        options.latency_ms or options.error_rate or options.drop_rate or options.drive_profile != "default"
    ):
        raise ConfigError(
            "--latency-ms, --error-rate, --drop-rate and --drive-profile shape the fake Google Drive: "
            "use them with --transport p2p."
        )
    if options.drive_profile not in ("default", "strict"):
        raise ConfigError(f"--drive-profile {options.drive_profile!r} is not a profile: use 'default' or 'strict'.")
    if not (Path(options.project) / "pyproject.toml").is_file():
        raise ConfigError(f"No pyproject.toml in {options.project}: pass the Flower project's folder with -p.")
    if not options.node_configs or len(options.node_configs) not in (1, options.clients):
        raise ConfigError(
            f"Give --node-config once (a template for every client, {{i}} = client index) or "
            f"once per client ({options.clients} times), not {len(options.node_configs)} times."
        )
    if options.data_dirs and len(options.data_dirs) not in (1, options.clients):
        raise ConfigError(
            f"Give --data-dir once (a template, {{i}} = client index) or once per client ({options.clients} "
            f"times), not {len(options.data_dirs)} times."
        )
    for i in range(options.clients if options.data_dirs else 0):
        folder = data_dir_for(options, i)
        if folder is not None and not folder.exists():
            raise ConfigError(f"--data-dir: client {i}'s dataset {folder} does not exist.")
    project = FlowerProject.load(options.project, parse_user_config(options.run_config, option="--run-config"))
    for i in range(options.clients):
        parse_user_config(node_config_for(options, i), option="--node-config")
    return project


def participants_for(project: FlowerProject, clients: int) -> tuple[str, list[str]]:
    """The server's and the clients' emails: those ``[tool.syft_flwr]`` names (after ``bootstrap``), so the
    project runs as it is; made-up ones for what it does not name."""
    server = project.syft.aggregator or "datascientist@example.com"
    named = [site for site in project.syft.datasites if site != server][:clients]
    made_up = (f"dataowner{i + 1}@example.com" for i in range(clients * 2))
    return server, named + [e for e in made_up if e not in named and e != server][: clients - len(named)]


def run_demo(
    options: DemoOptions,
    on_progress: Callable[[Progress], None] | None = None,
    on_output: Callable[[Participant, str], None] | None = None,
) -> dict[str, Any]:
    """The bundled app as a local run (see ``run_local``)."""
    if not 1 <= options.clients <= 50:
        raise ConfigError("--clients must be between 1 and 50.")
    return run_local(options.as_run(), on_progress, on_output)


def run_local(
    options: LocalRunOptions,
    on_progress: Callable[[Progress], None] | None = None,
    on_output: Callable[[Participant, str], None] | None = None,
) -> dict[str, Any]:
    """Run the federation; returns the report that is also written to ``out_dir/report.json``.

    Ends as soon as a participant exits with an error (``report["failure"]`` says who and why), when
    ``options.timeout`` is up (the whole run, stopping included), or when interrupted (Ctrl-C, SIGTERM,
    SIGHUP: re-raised once the participants are stopped and the report written)."""
    project = validate(options)
    out = Path(options.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    server_email, emails = participants_for(project, options.clients)
    started = time.monotonic()
    interrupted: KeyboardInterrupt | None = None
    with terminations_as_interrupts(), _storage(options, out) as (drive_url, extra_env, storage_stats):
        fed = LocalFederation(
            out / "participants",
            Path(options.project),
            drive_url,
            server_email=server_email,
            client_emails=emails,
            poll_interval=options.poll_interval,
            msg_timeout=options.msg_timeout,
            run_config=options.run_config,
            node_configs=[node_config_for(options, i) for i in range(options.clients)],
            extra_env=extra_env,
            client_envs=[_client_env(options, i) for i in range(options.clients)],
            ship=options.ship,
        )
        for participant in (*(fed.client(i) for i in range(options.clients)), fed.server()):
            participant.log_path.unlink(missing_ok=True)  # a rerun into the same folder starts fresh logs
        fed.progress_path.unlink(missing_ok=True)
        supervisor = Supervisor(
            fed, started=started, timeout=options.timeout, on_progress=on_progress, on_output=on_output
        )
        try:
            fed.start_all()
            failure = supervisor.watch()
        except KeyboardInterrupt as exc:
            interrupted = exc
            failure = Failure(f"run was interrupted ({exc or 'SIGINT'})")
        finally:
            supervisor.end_all()
        supervisor.tick(final=True)
        report = build_report(fed, options, time.monotonic() - started, failure, storage_stats())
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    report["plot"] = write_plot(report, out / "metrics.png")
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if interrupted is not None:
        raise interrupted
    return report


def _client_env(options: LocalRunOptions, index: int) -> dict[str, str]:
    folder = data_dir_for(options, index)
    return {ENV_DATA_DIR: str(folder)} if folder is not None else {}


@contextlib.contextmanager
def _storage(options: LocalRunOptions, out: Path) -> Iterator[tuple[str | None, dict[str, str], Callable[[], dict]]]:
    """What the participants share: (Drive URL or None, their extra environment, the storage's stats)."""
    if options.transport == "dir":
        shared = Path(options.shared_dir or out / "shared").resolve()
        shared.mkdir(parents=True, exist_ok=True)
        yield None, {"SYFT_FLWR_TRANSPORT": "dir", "SYFT_FLWR_DIR": str(shared)}, dict
        return
    faults = FaultConfig(
        latency=options.latency_ms / 1000.0,
        error_rate=options.error_rate,
        drop_rate=options.drop_rate,
        seed=options.seed,
    )
    with FakeDriveServer(faults=faults, profile=options.drive_profile) as drive:
        yield drive.url, {}, drive.stats
