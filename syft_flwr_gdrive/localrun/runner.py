"""A whole federation on this machine over the embedded fake Google Drive (or a shared directory): ``run`` and ``demo``.

``run`` federates the user's own Flower project (like ``flwr run`` with a local
federation): it starts the fake Drive in this process (``transport="p2p"``) or
uses a directory (``transport="dir"``), then a server and N clients as separate
processes, each running the project unchanged, shows live progress, and writes
a JSON report (and, when the app records a history, a PNG plot). ``demo`` is
``run`` on the bundled digits app (``fixtures/``).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
from pathlib import Path
from typing import Any

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.fake import FaultConfig
from syft_flwr_gdrive.flower.userconfig import parse_user_config
from syft_flwr_gdrive.localrun.federation import LocalFederation

REPO_ROOT = Path(__file__).resolve().parents[2]  # syft_flwr_gdrive/localrun/runner.py -> the clone
APPS = {"message": "message_app", "legacy": "legacy_app"}
_ROUND_RE = re.compile(r"\[ROUND (\d+)(?:/(\d+))?\]")
DEFAULT_NODE_CONFIG = "partition-id={i} num-partitions={n}"
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

    def as_run(self) -> LocalRunOptions:
        if not 1 <= self.rounds <= 100:
            raise ConfigError("--rounds must be between 1 and 100.")
        knobs = {f.name: getattr(self, f.name) for f in fields(FederationKnobs)}
        return LocalRunOptions(
            project=app_dir(self.app),
            clients=self.clients,
            run_config=json.dumps({"num-server-rounds": self.rounds, "min-clients": self.clients}),
            out_dir=self.out_dir,
            label=f"{self.app} app",
            expected_rounds=self.rounds,
            **knobs,
        )


@dataclass
class Progress:
    """What the live display shows, read from the participants' logs."""

    round: int = 0
    rounds: int = 0
    answered: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    done: bool = False


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


def validate(options: LocalRunOptions) -> None:
    if not 1 <= options.clients <= 50:
        raise ConfigError("--clients must be between 1 and 50.")
    for name in ("error_rate", "drop_rate"):
        if not 0.0 <= getattr(options, name) < 1.0:
            raise ConfigError(f"--{name.replace('_', '-')} must be in [0, 1).")
    if options.latency_ms < 0 or options.poll_interval <= 0:
        raise ConfigError("--latency-ms must be >= 0 and --poll-interval > 0.")
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
    from syft_flwr_gdrive.flower.project import FlowerProject

    # Fail here, not in the server process: unknown keys, a broken pyproject.
    FlowerProject.load(options.project, parse_user_config(options.run_config, option="--run-config"))
    for i in range(options.clients):
        parse_user_config(node_config_for(options, i), option="--node-config")


def read_progress(fed: LocalFederation, started: float) -> Progress:
    progress = Progress(rounds=0, elapsed=time.monotonic() - started)
    server_log = fed.server().log_text()
    for match in _ROUND_RE.finditer(server_log):
        progress.round = int(match.group(1))
        progress.rounds = int(match.group(2) or 0)
    for participant in fed.participants.values():
        if participant.role == "client":
            progress.answered[participant.email] = participant.log_text().count(": answered ")
    progress.done = not fed.server().alive()
    return progress


def run_demo(options: DemoOptions, on_progress: Callable[[Progress], None] | None = None) -> dict[str, Any]:
    """The bundled app as a local run (see ``run_local``)."""
    if not 1 <= options.clients <= 50:
        raise ConfigError("--clients must be between 1 and 50.")
    return run_local(options.as_run(), on_progress)


def run_local(options: LocalRunOptions, on_progress: Callable[[Progress], None] | None = None) -> dict[str, Any]:
    """Run the federation; returns the report that is also written to ``out_dir/report.json``."""
    validate(options)
    out = Path(options.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    emails = [f"dataowner{i + 1}@example.com" for i in range(options.clients)]
    started = time.monotonic()
    with _storage(options, out) as (drive_url, extra_env, storage_stats):
        fed = LocalFederation(
            out / "participants",
            Path(options.project),
            drive_url,
            server_email="datascientist@example.com",
            client_emails=emails,
            poll_interval=options.poll_interval,
            msg_timeout=options.msg_timeout,
            run_config=options.run_config,
            node_configs=[node_config_for(options, i) for i in range(options.clients)],
            extra_env=extra_env,
            ship=options.ship,
        )
        with fed:
            fed.start_all()
            deadline = started + options.timeout
            last: Progress | None = None
            while fed.server().alive() and time.monotonic() < deadline:
                last = read_progress(fed, started)
                if on_progress:
                    on_progress(last)
                time.sleep(0.2)
            if options.ship:  # nodes serve until stopped: the run is over when the server is
                fed.wait(max(0.0, deadline - time.monotonic()), keys=["server"])
                fed.stop()
            finished = fed.wait(max(0.0, deadline - time.monotonic()) + 30)
            last = read_progress(fed, started)
            if on_progress:
                on_progress(last)
            report = build_report(fed, options, time.monotonic() - started, finished, storage_stats(), last)
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    report["plot"] = write_plot(report, out / "metrics.png")
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return report


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


def build_report(
    fed: LocalFederation,
    options: LocalRunOptions,
    elapsed: float,
    finished: bool,
    drive_stats: dict,
    progress: Progress,
) -> dict[str, Any]:
    server_report = fed.server().report() or {}
    history = (server_report.get("state") or {}).get("history") or {}
    participants = {}
    rounds = options.expected_rounds or progress.rounds or progress.round
    for p in fed.participants.values():
        rep = p.report() or {}
        calls = rep.get("drive_calls") or {}
        participants[p.email] = {
            "role": p.role,
            "exit_code": p.process.returncode if p.process else None,
            "drive_calls": calls,
            "drive_calls_total": sum(calls.values()),
            "drive_calls_per_round": round(sum(calls.values()) / max(1, rounds), 2),
            "log": str(p.log_path),
        }
    rounds_done = len(history.get("round") or []) if history else progress.round
    stopped_ok = {"node": (130,)}  # a node serves until stopped: the runner stops it after the server
    all_exited_0 = finished and all(
        info["exit_code"] == 0 or info["exit_code"] in stopped_ok.get(info["role"], ())
        for info in participants.values()
    )
    completed = bool(server_report.get("completed"))
    ok = all_exited_0 and completed and (options.expected_rounds is None or rounds_done == options.expected_rounds)
    return {
        "ok": ok,
        "completed": completed,
        "project": str(Path(options.project).resolve()),
        "app": options.label or Path(options.project).name,
        "clients": options.clients,
        "rounds": rounds,
        "rounds_completed": rounds_done,
        "elapsed_seconds": round(elapsed, 2),
        "poll_interval": options.poll_interval,
        "run_config": server_report.get("run_config"),
        "node_configs": [fed.node_config(i) for i in range(options.clients)],
        "summary": server_report.get("summary"),
        "per_round": server_report.get("rounds"),
        "excluded": server_report.get("excluded"),
        "transport": options.transport,
        "faults": {
            "latency_ms": options.latency_ms,
            "error_rate": options.error_rate,
            "drop_rate": options.drop_rate,
            "drive_profile": options.drive_profile,
        },
        "history": history,
        **(
            {
                "shipped": "the app was offered over Drive and auto-approved by each data owner's node (a local run)",
                "approval": server_report.get("approval"),
            }
            if options.ship
            else {}
        ),
        "participants": participants,
        "fake_drive": {
            "faults_injected": drive_stats.get("faults"),
            "requests": sum((drive_stats.get("requests") or {}).values()),
            "writes": drive_stats.get("writes"),
        },
    }


def write_plot(report: dict[str, Any], path: Path) -> str | None:
    """PNG of loss and accuracy per round; None (and no file) without matplotlib."""
    history = report.get("history") or {}
    if not history.get("round"):
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.6))
    rounds = history["round"]
    ax_loss.plot(rounds, history.get("loss", []), marker="o", label="federated eval")
    if history.get("train_loss"):
        ax_loss.plot(rounds, history["train_loss"], marker="s", linestyle="--", label="train")
    ax_loss.set(title="Loss", xlabel="round")
    ax_acc.plot(rounds, history.get("accuracy", []), marker="o", label="federated eval")
    if history.get("train_accuracy"):
        ax_acc.plot(rounds, history["train_accuracy"], marker="s", linestyle="--", label="train")
    ax_acc.set(title="Accuracy", xlabel="round", ylim=(0, 1))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
        ax.set_xticks(rounds)
    fig.suptitle(f"{report['clients']} data owners over Google Drive (fake), {report['app']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)
