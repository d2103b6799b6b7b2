"""The main job: a whole federation on this machine over the embedded fake Google Drive.

Starts the fake Drive in this process, then a server and N clients as separate
processes running the bundled digits app (``fixtures/``), shows live progress,
and writes a JSON report and a PNG plot of loss and accuracy per round.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from syft_flwr_gdrive.config import ConfigError
from syft_flwr_gdrive.fake import FakeDriveServer, FaultConfig
from syft_flwr_gdrive.federation import LocalFederation

REPO_ROOT = Path(__file__).resolve().parents[1]
APPS = {"message": "message_app", "legacy": "legacy_app"}
_ROUND_RE = re.compile(r"\[ROUND (\d+)(?:/(\d+))?\]")


@dataclass
class DemoOptions:
    clients: int = 3
    rounds: int = 5
    poll_interval: float = 0.25
    msg_timeout: float = 60.0
    app: str = "message"
    latency_ms: float = 0.0
    error_rate: float = 0.0
    drop_rate: float = 0.0
    seed: int = 0
    out_dir: Path = field(default_factory=lambda: Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S"))
    timeout: float = 600.0


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


def validate(options: DemoOptions) -> None:
    if not 1 <= options.clients <= 50:
        raise ConfigError("--clients must be between 1 and 50.")
    if not 1 <= options.rounds <= 100:
        raise ConfigError("--rounds must be between 1 and 100.")
    for name in ("error_rate", "drop_rate"):
        if not 0.0 <= getattr(options, name) < 1.0:
            raise ConfigError(f"--{name.replace('_', '-')} must be in [0, 1).")
    if options.latency_ms < 0 or options.poll_interval <= 0:
        raise ConfigError("--latency-ms must be >= 0 and --poll-interval > 0.")


def read_progress(fed: LocalFederation, started: float) -> Progress:
    progress = Progress(rounds=0, elapsed=time.monotonic() - started)
    server_log = fed.server().log_text()
    for match in _ROUND_RE.finditer(server_log):
        progress.round = int(match.group(1))
        progress.rounds = int(match.group(2) or 0)
    for key, participant in fed.participants.items():
        if participant.role == "client":
            progress.answered[participant.email] = participant.log_text().count(": answered ")
    progress.done = not fed.server().alive()
    return progress


def run_demo(options: DemoOptions, on_progress: Callable[[Progress], None] | None = None) -> dict[str, Any]:
    """Run the federation; returns the report that is also written to ``out_dir/report.json``."""
    validate(options)
    project = app_dir(options.app)
    out = options.out_dir
    out.mkdir(parents=True, exist_ok=True)
    faults = FaultConfig(
        latency=options.latency_ms / 1000.0,
        error_rate=options.error_rate,
        drop_rate=options.drop_rate,
        seed=options.seed,
    )
    emails = [f"dataowner{i + 1}@example.com" for i in range(options.clients)]
    started = time.monotonic()
    with FakeDriveServer(faults=faults) as drive:
        fed = LocalFederation(
            out / "participants", project, drive.url,
            server_email="datascientist@example.com", client_emails=emails,
            poll_interval=options.poll_interval, msg_timeout=options.msg_timeout,
            run_config={"num-server-rounds": options.rounds, "min-clients": options.clients},
        )
        with fed:
            fed.start_all()
            deadline = started + options.timeout
            while fed.server().alive() and time.monotonic() < deadline:
                if on_progress:
                    on_progress(read_progress(fed, started))
                time.sleep(0.2)
            finished = fed.wait(max(0.0, deadline - time.monotonic()) + 30)
            if on_progress:
                on_progress(read_progress(fed, started))
            report = build_report(fed, options, time.monotonic() - started, finished, drive.stats())
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    report["plot"] = write_plot(report, out / "metrics.png")
    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return report


def build_report(fed: LocalFederation, options: DemoOptions, elapsed: float, finished: bool, drive_stats: dict) -> dict[str, Any]:
    server_report = fed.server().report() or {}
    history = (server_report.get("state") or {}).get("history") or {}
    participants = {}
    for key, p in fed.participants.items():
        rep = p.report() or {}
        calls = rep.get("drive_calls") or {}
        participants[p.email] = {
            "role": p.role,
            "exit_code": p.process.returncode if p.process else None,
            "drive_calls": calls,
            "drive_calls_total": sum(calls.values()),
            "drive_calls_per_round": round(sum(calls.values()) / max(1, options.rounds), 2),
            "log": str(p.log_path),
        }
    rounds_done = len(history.get("round") or [])
    return {
        "ok": finished and fed.server().process is not None and fed.server().process.returncode == 0 and rounds_done == options.rounds,
        "app": options.app,
        "clients": options.clients,
        "rounds": options.rounds,
        "rounds_completed": rounds_done,
        "elapsed_seconds": round(elapsed, 2),
        "poll_interval": options.poll_interval,
        "faults": {"latency_ms": options.latency_ms, "error_rate": options.error_rate, "drop_rate": options.drop_rate},
        "history": history,
        "participants": participants,
        "fake_drive": {"faults_injected": drive_stats.get("faults"), "requests": sum((drive_stats.get("requests") or {}).values())},
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
    fig.suptitle(f"{report['clients']} data owners over Google Drive (fake), {report['app']} app")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)
