"""The live view of ``run`` and ``demo``: a table of rounds and answers while the federation runs, then its report."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import typer

from syft_flwr_gdrive.cli.exits import EXIT_RUN
from syft_flwr_gdrive.cli.exits import run_errors

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from syft_flwr_gdrive.localrun.runner import Progress

# Runs the federation, calling back with its progress as it goes; returns the report.
Start = Callable[[Callable[["Progress"], None]], dict[str, Any]]


def run_with_live_view(clients: int, out_dir: Path, start: Start, transport: str = "p2p") -> dict[str, Any]:
    """Run a local federation with a live table of rounds and answers; then print its report.

    Exits 4 when the federation did not complete."""
    from rich.console import Console
    from rich.live import Live

    from syft_flwr_gdrive.localrun.runner import Progress

    console = Console(stderr=False)
    storage = "fake Google Drive" if transport == "p2p" else "a shared directory"

    def go() -> dict[str, Any]:
        console.print(f"Starting 1 server and {clients} client processes over {storage} ({out_dir})")
        with Live(_progress_table(Progress(), storage), console=console, refresh_per_second=4, transient=False) as live:
            return start(lambda p: live.update(_progress_table(p, storage)))

    report = run_errors(go)
    _print_report(console, report, out_dir, transport)
    if not report["ok"]:
        typer.echo("error: the federation did not complete; see the participants' logs named in the report.", err=True)
        raise typer.Exit(EXIT_RUN)
    return report


def _progress_table(p: Progress, storage: str) -> Table:
    from rich.table import Table

    table = Table(title=f"Federation on {storage} - {p.elapsed:5.1f}s", show_edge=False)
    table.add_column("round")
    table.add_column("participant")
    table.add_column("messages answered", justify="right")
    label = f"{p.round}/{p.rounds or '?'}" + (" done" if p.done else "")
    for i, (email, count) in enumerate(sorted(p.answered.items())):
        table.add_row(label if i == 0 else "", email, str(count))
    return table


def _print_report(console: Console, report: dict[str, Any], out_dir: Path, transport: str) -> None:
    """Metrics per round (when the app records a history), storage calls per participant, replies, totals."""
    from rich.table import Table

    history = report.get("history") or {}
    if history.get("round"):
        metrics = Table(title="Federated evaluation per round", show_edge=False)
        for col in ("round", "loss", "accuracy", "clients"):
            metrics.add_column(col, justify="right")
        for i, rnd in enumerate(history["round"]):
            metrics.add_row(
                str(rnd),
                f"{history['loss'][i]:.4f}",
                f"{history['accuracy'][i]:.4f}",
                str(history.get("num_clients", [""] * (i + 1))[i]),
            )
        console.print(metrics)
    calls = Table(title="Google Drive API calls" if transport == "p2p" else "Storage calls", show_edge=False)
    for col in ("participant", "role", "exit", "total", "per round", "by method"):
        calls.add_column(col)
    for email, info in report["participants"].items():
        by_method = " ".join(
            f"{k.split('.')[-1]}:{v}" for k, v in sorted(info["drive_calls"].items(), key=lambda kv: -kv[1])
        )
        calls.add_row(
            email,
            info["role"],
            str(info["exit_code"]),
            str(info["drive_calls_total"]),
            str(info["drive_calls_per_round"]),
            by_method,
        )
    console.print(calls)
    summary = report.get("summary") or {}
    if summary:
        types = ", ".join(f"{k} x{n}" for k, n in sorted((summary.get("error_types") or {}).items()))
        console.print(
            f"Replies: {summary.get('replies', 0)}, error replies: {summary.get('errors', 0)}"
            + (f" ({types})" if types else "")
            + f", missing: {summary.get('missing', 0)}"
        )
    console.print(
        f"{report['rounds_completed']}/{report['rounds']} rounds in {report['elapsed_seconds']}s. "
        f"Report: {out_dir / 'report.json'}" + (f", plot: {report['plot']}" if report.get("plot") else "")
    )
