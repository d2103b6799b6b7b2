"""The live view of ``run`` and ``demo``: every participant's output as it is written, prefixed by who wrote
it (as ``flwr run --stream`` shows the app's), under a table of rounds, answers and Flower's latest metrics;
then the report, and an exit code that tells what happened."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import typer

from syft_flwr_gdrive.cli.exits import EXIT_INTERRUPTED
from syft_flwr_gdrive.cli.exits import EXIT_RUN
from syft_flwr_gdrive.cli.exits import run_errors

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from syft_flwr_gdrive.localrun.federation import Participant
    from syft_flwr_gdrive.localrun.supervisor import Progress

# Runs the federation, calling back with its progress and each participant's output; returns the report.
Start = Callable[[Callable[["Progress"], None], Callable[["Participant", str], None] | None], dict[str, Any]]
SHOWN_METRICS = 4  # of the latest round, in the live table's caption
SHORT_PHASES = {"train": "train", "evaluate": "eval", "server_evaluate": "server eval"}  # a metric in several phases


def run_with_live_view(
    clients: int, out_dir: Path, start: Start, transport: str = "p2p", *, stream: bool = True
) -> dict[str, Any]:
    """Run a local federation with a live table (and, with ``stream``, every participant's output); then print
    its report. Exits with the code of a participant that failed, 4 when the run did not complete otherwise
    (time limit), 130 on Ctrl-C and 128+N on signal N."""
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    from syft_flwr_gdrive.localrun.log_stream import speaker
    from syft_flwr_gdrive.localrun.supervisor import Progress
    from syft_flwr_gdrive.localrun.supervisor import Terminated

    console = Console(stderr=False)
    storage = "fake Google Drive" if transport == "p2p" else "a shared directory"
    width = 0

    live = Live(_progress_table(Progress(), storage), console=console, refresh_per_second=4)

    def begin() -> None:
        """On the first sign of the run (after its options and project were checked, so a mistake is one line)."""
        if not live.is_started:
            console.print(f"Starting 1 server and {clients} client processes over {storage} ({out_dir})")
            live.start()

    def progress(p: Progress) -> None:
        begin()
        live.update(_progress_table(p, storage))

    def show(participant: Participant, line: str) -> None:
        nonlocal width
        begin()
        who = speaker(participant)
        width = max(width, len(who))
        console.print(Text(f"{who:>{width}} | ", style="dim") + Text(line), soft_wrap=True, highlight=False)

    def go() -> dict[str, Any]:
        try:
            try:
                report = start(progress, show if stream else None)
            finally:
                if live.is_started:
                    live.stop()
                    console.line()  # the live table's last frame ends without a newline when output goes to a file
        except KeyboardInterrupt as exc:  # the participants are stopped and the report written by now
            signum = exc.signum if isinstance(exc, Terminated) else None
            typer.echo(
                f"{'stopped by ' + str(exc) if signum else 'interrupted'}; every participant was stopped too "
                f"(report: {out_dir / 'report.json'})",
                err=True,
            )
            raise typer.Exit(128 + signum if signum else EXIT_INTERRUPTED) from None
        return report

    report = run_errors(go)
    _print_report(console, report, out_dir, transport)
    if not report["ok"]:
        raise typer.Exit(_explain_failure(report))
    return report


def _explain_failure(report: dict[str, Any]) -> int:
    """Say on stderr why the run failed and where to look; returns the exit code ``run`` ends with."""
    failure = report.get("failure")
    if not failure:
        typer.echo("error: the federation did not complete; see the participants' logs named in the report.", err=True)
        return EXIT_RUN
    typer.echo(f"error: {failure['reason']}.", err=True)
    if failure.get("last_lines"):
        typer.echo(f"Its last log lines ({failure['log']}):", err=True)
        for line in failure["last_lines"]:
            typer.echo(f"  {line}", err=True)
    code = failure.get("exit_code")
    if code is None:  # the time limit, or the clients not stopping
        return EXIT_RUN
    return 128 - code if code < 0 else code  # killed by signal N: 128+N, as a shell reports it


def _metrics_caption(p: Progress) -> str:
    if not p.latest:
        return ""
    shown = list(p.latest.items())[:SHOWN_METRICS]
    return f"round {p.latest_round}: " + ", ".join(f"{k} {v:.4g}" for k, v in shown)


def _progress_table(p: Progress, storage: str) -> Table:
    from rich.table import Table

    table = Table(
        title=f"Federation on {storage} - {p.elapsed:5.1f}s", caption=_metrics_caption(p) or None, show_edge=False
    )
    table.add_column("round")
    table.add_column("participant")
    table.add_column("messages answered", justify="right")
    label = (f"{p.round}/{p.rounds}" if p.rounds else str(p.round)) + (" done" if p.done else "")
    for i, (email, count) in enumerate(sorted(p.answered.items())):
        table.add_row(label if i == 0 else "", email, str(count))
    return table


def method_name(call: str) -> str:
    """A Drive method as the report shows it: ``files.list`` is ``list``, other resources keep their name
    (``permissions.create``), so two methods never show the same."""
    return call.removeprefix("files.")


def _print_report(console: Console, report: dict[str, Any], out_dir: Path, transport: str) -> None:
    """Flower's metrics per round, storage calls per participant, replies, totals."""
    from rich.table import Table

    from syft_flwr_gdrive.localrun.metrics_plot import PHASES

    rounds = [r for r in (report.get("metrics") or {}).get("rounds") or [] if len(r) > 1]
    if rounds:
        columns = sorted(
            {(phase, key) for r in rounds for phase in PHASES for key in (r.get(phase) or {})},
            key=lambda pk: (list(PHASES).index(pk[0]), pk[1]),
        )
        repeated = {key for _, key in columns if sum(1 for _, k in columns if k == key) > 1}
        console.print("Flower's metrics per round:")
        metrics = Table(show_edge=False)
        metrics.add_column("round", justify="right")
        for phase, key in columns:
            metrics.add_column(f"{SHORT_PHASES[phase]} {key}" if key in repeated else key, justify="right")
        for r in rounds:
            metrics.add_row(str(r["round"]), *(_cell((r.get(phase) or {}).get(key)) for phase, key in columns))
        console.print(metrics)
    calls = Table(title="Google Drive API calls" if transport == "p2p" else "Storage calls", show_edge=False)
    for col in ("participant", "role", "exit", "total", "per round", "by method"):
        calls.add_column(col)
    for email, info in report["participants"].items():
        by_method = " ".join(
            f"{method_name(k)}:{v}" for k, v in sorted(info["drive_calls"].items(), key=lambda kv: -kv[1])
        )
        calls.add_row(
            email,
            info["role"],
            _exit_cell(info),
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


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def _exit_cell(info: dict) -> str:
    """A participant's exit code; a node's 130 says it was stopped (it serves until the run stops it)."""
    code = info["exit_code"]
    return f"{code} (stopped)" if info["role"] == "node" and code == 130 else str(code)
