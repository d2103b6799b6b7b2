"""``report.json`` of a local run: how it ended, round by round, and what each participant did.

Rounds are counted from what was exchanged (the server's tally: Flower's rounds, or a query app's
exchanges), never from what a log announced: a round is completed when at least one datasite answered it
without an error, so a run that hung before any message counts 0 rounds. The per-round figures are
Flower's own (``metrics``: the strategy's Result or the legacy History, recorded by the server).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from typing import Protocol

from syft_flwr_gdrive.localrun.federation import LocalFederation
from syft_flwr_gdrive.localrun.supervisor import Failure
from syft_flwr_gdrive.localrun.supervisor import server_progress


class RunShape(Protocol):
    """What the report needs to know of a run's options."""

    project: Path
    clients: int
    label: str
    expected_rounds: int | None
    poll_interval: float
    transport: str
    latency_ms: float
    error_rate: float
    drop_rate: float
    drive_profile: str
    ship: bool


def completed_rounds(per_round: list[dict[str, Any]]) -> int:
    """Rounds in which at least one datasite answered without an error."""
    return sum(
        1
        for entry in per_round
        if any(site.get("replies", 0) > site.get("errors", 0) for site in (entry.get("datasites") or {}).values())
    )


def build_report(
    fed: LocalFederation,
    options: RunShape,
    elapsed: float,
    failure: Failure | None,
    drive_stats: dict,
) -> dict[str, Any]:
    """The run's report; participants' exit codes are read after they ended (``fed.stop``), so they are real."""
    server_report = fed.server().report() or {}
    progress = server_progress(fed)  # what the server said last, if it never wrote its report
    per_round = server_report.get("rounds") or progress.get("rounds") or []
    metrics = server_report.get("metrics") or progress.get("metrics") or {"planned_rounds": None, "rounds": []}
    rounds = options.expected_rounds or metrics.get("planned_rounds") or len(per_round)
    rounds_done = completed_rounds(per_round)
    participants = {}
    for p in fed.participants.values():
        rep = p.report() or {}
        calls = rep.get("drive_calls") or {}
        participants[p.email] = {
            "role": p.role,
            "exit_code": p.exit_code,
            "drive_calls": calls,
            "drive_calls_total": sum(calls.values()),
            "drive_calls_per_round": round(sum(calls.values()) / max(1, rounds), 2),
            "log": str(p.log_path),
        }
    stopped_ok = {"node": (0, 130)}  # a node serves until stopped: the run stops it once the server is done
    all_exited_0 = all(info["exit_code"] in stopped_ok.get(info["role"], (0,)) for info in participants.values())
    completed = bool(server_report.get("completed"))
    ok = (
        failure is None
        and all_exited_0
        and completed
        and (options.expected_rounds is None or rounds_done == options.expected_rounds)
    )
    return {
        "ok": ok,
        "completed": completed,
        "failure": failure.as_dict() if failure else None,
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
        "per_round": per_round,
        "metrics": metrics,
        "excluded": server_report.get("excluded"),
        "transport": options.transport,
        "faults": {
            "latency_ms": options.latency_ms,
            "error_rate": options.error_rate,
            "drop_rate": options.drop_rate,
            "drive_profile": options.drive_profile,
        },
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
