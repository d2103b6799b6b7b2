"""Command line: ``syft-flwr-gdrive server|client|fake-drive ...``.

Holds no business logic: it parses options, builds Settings, calls the
library, and turns errors into one readable line and an exit code.

Exit codes: 0 done, 2 bad input or configuration, 3 Drive/credentials
problem, 4 the federated run failed, 130 interrupted.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import math
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated
from typing import Any

import typer

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.base.config import validate_email

EXIT_OK, EXIT_CONFIG, EXIT_DRIVE, EXIT_RUN, EXIT_INTERRUPTED = 0, 2, 3, 4, 130

app = typer.Typer(
    help="Run Flower federated learning between Google accounts, with messages as files in Google Drive.",
    no_args_is_help=True,
    add_completion=False,
)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("googleapiclient.discovery_cache", "googleapiclient.discovery", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # Flower's logger has a console handler of its own and also propagates to ours: without this every
    # Flower line is printed twice. Ours stays, so all lines share one format with timestamps.
    from flwr.supercore.logger import FLOWER_LOGGER
    from flwr.supercore.logger import ConsoleHandler

    for handler in list(FLOWER_LOGGER.handlers):
        if isinstance(handler, ConsoleHandler):
            FLOWER_LOGGER.removeHandler(handler)


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _settings(email: str | None, drive_url: str | None, poll_interval: float | None, project: Any = None) -> Settings:
    overrides: dict[str, Any] = {}
    if email:
        overrides["email"] = email
    if poll_interval is not None:
        overrides["poll_interval"] = poll_interval
    if drive_url:
        overrides["transport_options"] = {"drive_url": drive_url}
    return Settings.from_env(project=project, **overrides)


def _record_to_jsonable(record: Any) -> Any:
    """MetricRecord/ConfigRecord -> dict; arrays are summarised, never dumped."""
    from flwr.app import ArrayRecord

    if isinstance(record, ArrayRecord):
        digest = hashlib.sha256()
        for key, array in record.items():  # lets two runs be compared bit for bit
            digest.update(key.encode() + array.dtype.encode() + repr(array.shape).encode() + array.data)
        return {"arrays": len(record), "bytes": record.count_bytes(), "sha256": digest.hexdigest()}
    out = {}
    for key, value in dict(record).items():
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        elif isinstance(value, list):
            value = [None if isinstance(v, float) and not math.isfinite(v) else v for v in value]
        elif isinstance(value, bytes):
            value = f"<{len(value)} bytes>"
        out[key] = value
    return out


def _run_errors(fn: Any) -> Any:
    """Map library errors to one line and an exit code."""
    from syft_flwr_gdrive.transport.contract import TransportError
    from syft_flwr_gdrive.transport.drive.auth import CredentialsError
    from syft_flwr_gdrive.transport.drive.errors import DriveError

    try:
        return fn()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except ConfigError as exc:
        raise _fail(str(exc), EXIT_CONFIG) from exc
    except (CredentialsError, DriveError, TransportError) as exc:
        raise _fail(str(exc), EXIT_DRIVE) from exc


# Options that several commands take, declared once.
EMAIL_HELP = "This participant's email; default: $SYFTBOX_EMAIL."
Email = Annotated[str | None, typer.Option(help=EMAIL_HELP)]

# The options of `server` and `client`: one per field of Participant.
PARTICIPANT_OPTIONS: dict[str, tuple[Any, Any]] = {
    "project": (Path, typer.Option(..., "--project", "-p", help="Flower project directory (holds pyproject.toml).")),
    "report": (
        Path | None,
        typer.Option(None, help="Also write the JSON report printed at the end (how the run went, Drive calls) here."),
    ),
    "email": (str | None, typer.Option(None, help=EMAIL_HELP)),
    "drive_url": (
        str | None,
        typer.Option(None, help="Drive API base URL, e.g. the fake Drive's; default: real Google Drive."),
    ),
    "poll_interval": (
        float | None,
        typer.Option(None, help="Seconds between polls; default $SYFT_FLWR_POLL_INTERVAL or 3.0."),
    ),
    "verbose": (bool, typer.Option(False, "--verbose", "-v")),
}


@dataclass(frozen=True)
class Participant:
    """Who runs a server or client, on which project, against which Drive, polling how often (PARTICIPANT_OPTIONS)."""

    project: Path
    report: Path | None = None
    email: str | None = None
    drive_url: str | None = None
    poll_interval: float | None = None
    verbose: bool = False

    def settings(self, project: Any = None) -> Settings:
        return _settings(self.email, self.drive_url, self.poll_interval, project)

    def publish(self, report: dict[str, Any]) -> None:
        """Print the run's JSON report, and write it where --report says."""
        text = json.dumps(report, indent=2, sort_keys=True)
        if self.report:
            self.report.write_text(text + "\n", encoding="utf-8")
        typer.echo(text)


def _with_options(options: dict[str, tuple[Any, Any]]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Declare ``options`` on a command (which takes them as ``**kwargs``) for typer to parse: one declaration
    serves every command that shares them."""

    def declare(command: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(command, eval_str=True)  # the module postpones annotations: typer needs objects
        own = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        shared = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
            for name, (kind, option) in options.items()
        ]
        # typer reads inspect.signature, which honours __signature__ (typeshed does not declare it on callables)
        command.__signature__ = signature.replace(parameters=own + shared)  # type: ignore[attr-defined]
        return command

    return declare


Datasites = Annotated[
    str | None, typer.Option(help="Comma-separated data owner emails; default: \\[tool.syft_flwr] datasites.")
]
RunConfigOverrides = Annotated[
    str | None,
    typer.Option(
        help="Override \\[tool.flwr.app.config] keys, as in `flwr run`: 'num-server-rounds=3 lr=0.1' or a JSON object."
    ),
]


@app.command()
@_with_options(PARTICIPANT_OPTIONS)
def server(
    datasites: Datasites = None,
    run_config: RunConfigOverrides = None,
    **participant: Any,
) -> None:
    """Run the project's ServerApp as the aggregator (data scientist)."""
    me = Participant(**participant)
    _setup_logging(me.verbose)

    def go() -> None:
        from flwr.app import Context
        from flwr.app import RecordDict

        from syft_flwr_gdrive.flower.fingerprint import app_identity
        from syft_flwr_gdrive.flower.project import FlowerProject
        from syft_flwr_gdrive.flower.syftbox_server import serve
        from syft_flwr_gdrive.flower.userconfig import parse_user_config
        from syft_flwr_gdrive.transport.registry import create_transport

        overrides = parse_user_config(run_config, option="--run-config")
        proj = FlowerProject.load(me.project, overrides)
        settings = me.settings(proj.syft)
        if proj.syft.aggregator and proj.syft.aggregator != settings.email:
            raise ConfigError(
                f"{proj.path}/pyproject.toml names {proj.syft.aggregator} as the aggregator, but this is "
                f"{settings.email}. Run the server as {proj.syft.aggregator}, or fix [tool.syft_flwr] aggregator."
            )
        sites = [s.strip() for s in datasites.split(",") if s.strip()] if datasites else list(proj.syft.datasites)
        if not sites:
            raise ConfigError("No datasites: pass --datasites a@x.com,b@y.com or set [tool.syft_flwr] datasites.")
        sites = [validate_email(site, what="datasites") for site in sites]  # before touching credentials
        transport = create_transport(settings)
        context = Context(run_id=0, node_id=0, node_config={}, state=RecordDict(), run_config=proj.run_config)
        identity = app_identity(proj.path)
        outcome = serve(
            proj.load_server_app(),
            context,
            sites,
            proj.app_name,
            settings=settings,
            transport=transport,
            app_fingerprint=identity.as_run_info(),
        )
        data = {
            "completed": outcome.completed,
            "error": outcome.error,
            "run_id": outcome.run_id,
            "run_config": dict(outcome.context.run_config),
            "app_fingerprint": identity.fingerprint,
            "rounds": outcome.rounds,
            "summary": outcome.summary,
            "excluded": outcome.excluded,
            "state": {k: _record_to_jsonable(v) for k, v in outcome.context.state.items()},
            "drive_calls": transport.call_counts(),
        }
        me.publish(data)
        if not outcome.completed:  # the ServerApp raised, or the run could not start
            raise typer.Exit(EXIT_RUN)

    _run_errors(go)


Aggregator = Annotated[
    str | None,
    typer.Option(help="The data scientist's email; default $SYFT_FLWR_AGGREGATOR or \\[tool.syft_flwr] aggregator."),
]
NodeConfig = Annotated[
    str | None,
    typer.Option(
        help="The ClientApp's context.node_config, as in flower-supernode: "
        "'partition-id=0 num-partitions=3 data-path=\"/data/a.csv\"' or a JSON object."
    ),
]
AllowProjectChanges = Annotated[
    bool,
    typer.Option(
        "--allow-project-changes",
        help="Development only: run the server's requests even if this project's files differ from the server's app.",
    ),
]


@app.command()
@_with_options(PARTICIPANT_OPTIONS)
def client(
    aggregator: Aggregator = None,
    node_config: NodeConfig = None,
    allow_project_changes: AllowProjectChanges = False,
    **participant: Any,
) -> None:
    """Serve the project's ClientApp as a data owner until the aggregator's stop signal.

    Requests of a server whose app differs from this project (files or \\[tool.flwr.app]) are refused,
    and the client exits 2 after the run, naming the files that differ.
    """
    me = Participant(**participant)
    _setup_logging(me.verbose)

    def go() -> None:
        from syft_flwr_gdrive.flower.fingerprint import app_identity
        from syft_flwr_gdrive.flower.project import FlowerProject
        from syft_flwr_gdrive.flower.syftbox_client import syftbox_flwr_client
        from syft_flwr_gdrive.flower.userconfig import parse_user_config
        from syft_flwr_gdrive.transport.registry import create_transport

        proj = FlowerProject.load(me.project)
        settings = me.settings(proj.syft)
        config = parse_user_config(node_config, option="--node-config")
        server_email = aggregator or settings.aggregator
        if server_email:  # check before Drive is contacted, so a typo fails at once
            server_email = validate_email(server_email, what="--aggregator" if aggregator else "SYFT_FLWR_AGGREGATOR")
        client_app = proj.load_client_app()
        transport = create_transport(settings)
        result = syftbox_flwr_client(
            client_app,
            proj.app_name,
            aggregator=server_email,
            node_config=config,
            run_config=proj.run_config,
            app_identity=app_identity(proj.path),
            allow_project_changes=allow_project_changes,
            settings=settings,
            transport=transport,
        )
        data = {
            "run_id": result.run_id,
            "handled": result.handled,
            "errors": result.errors,
            "error_types": result.error_types,
            "run_config": result.run_config,
            "node_config": config,
            "stopped_by": result.stopped_by,
            "drive_calls": transport.call_counts(),
            "project_differences": result.project_differences,
            "refused": result.refused,
            "run_config_refused": result.run_config_refused,
        }
        me.publish(data)
        if result.stopped_by == "interrupt":
            raise typer.Exit(EXIT_INTERRUPTED)
        if result.refused:
            raise _fail(
                f"refused {result.refused} request(s): this project differs from the server's app "
                f"({'; '.join(result.project_differences)})",
                EXIT_CONFIG,
            )
        if result.run_config_refused:
            raise _fail(
                f"refused {result.run_config_refused} request(s): the server's run config does not fit this "
                "project's [tool.flwr.app.config] (the log names the keys and the fix)",
                EXIT_CONFIG,
            )

    _run_errors(go)


def _run_with_live_view(title_clients: int, out_dir: Path, start: Any, transport: str = "p2p") -> dict:
    """Run a local federation with a live table of rounds and answers; then print its report."""
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    from syft_flwr_gdrive.localrun.runner import Progress

    console = Console(stderr=False)
    storage = "fake Google Drive" if transport == "p2p" else "a shared directory"

    def view(p: Progress) -> Table:
        table = Table(title=f"Federation on {storage} - {p.elapsed:5.1f}s", show_edge=False)
        table.add_column("round")
        table.add_column("participant")
        table.add_column("messages answered", justify="right")
        label = f"{p.round}/{p.rounds or '?'}" + (" done" if p.done else "")
        for i, (email, count) in enumerate(sorted(p.answered.items())):
            table.add_row(label if i == 0 else "", email, str(count))
        return table

    def go() -> dict:
        console.print(f"Starting 1 server and {title_clients} client processes over {storage} ({out_dir})")
        with Live(view(Progress()), console=console, refresh_per_second=4, transient=False) as live:
            return start(lambda p: live.update(view(p)))

    report = _run_errors(go)
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
    if not report["ok"]:
        typer.echo("error: the federation did not complete; see the participants' logs named in the report.", err=True)
        raise typer.Exit(EXIT_RUN)
    return report


# The options `run` and `demo` share, declared once: one per field of FederationKnobs.
FAKE_DRIVE_OPTIONS: dict[str, tuple[Any, Any]] = {
    "poll_interval": (
        float,
        typer.Option(0.25, help="Seconds between Drive polls (the real default is 3.0; the fake answers fast)."),
    ),
    "msg_timeout": (float, typer.Option(60.0, help="Seconds the server waits for a round's replies.")),
    "latency_ms": (float, typer.Option(0.0, help="Injected latency per Drive call, in milliseconds.")),
    "error_rate": (float, typer.Option(0.0, help="Fraction of Drive calls answered with 429/403/500/503.")),
    "drop_rate": (float, typer.Option(0.0, help="Fraction of Drive connections dropped without an answer.")),
    "seed": (int, typer.Option(0, help="Seed of the injected faults.")),
    "drive_profile": (
        str,
        typer.Option(
            "default",
            help="Fake Drive profile: 'default' or 'strict' (only what Drive "
            "documents: lag on every change, write limit, hidden owner "
            "emails, ...).",
        ),
    ),
    "timeout": (float, typer.Option(600.0, help="Give up after this many seconds.")),
    "transport": (
        str,
        typer.Option("p2p", help="'p2p': an embedded fake Google Drive; 'dir': a shared directory (--dir)."),
    ),
    "shared_dir": (
        Path | None,
        typer.Option(None, "--dir", help="The dir transport's shared directory; default OUT/shared."),
    ),
}


@app.command("run")
@_with_options(FAKE_DRIVE_OPTIONS)
def run_project(
    project: Path = typer.Option(
        Path("."), "--project", "-p", help="Your Flower project directory (holds pyproject.toml)."
    ),
    clients: int = typer.Option(2, help="Number of simulated data owners (client processes)."),
    run_config: str | None = typer.Option(
        None, help="Override \\[tool.flwr.app.config], as in `flwr run`: 'num-server-rounds=3 lr=0.1' or JSON."
    ),
    node_config: list[str] | None = typer.Option(
        None,
        help="Each client's node_config. Once: a template for all, {i} = client index (0..N-1), {n} = N; "
        "or once per client. Default: 'partition-id={i} num-partitions={n}'.",
    ),
    out: Path | None = typer.Option(None, help="Folder for report.json, the plot and logs; default runs/run-<time>."),
    **knobs: Any,
) -> None:
    """Federate your own Flower project on this machine: N data owners over an embedded fake Google Drive.

    Like `flwr run` with a local federation, but every participant is its own process talking
    through (fake) Drive exactly as it would over real Google Drive. Relative paths the app writes
    land in OUT/participants.
    """
    from syft_flwr_gdrive.localrun.runner import DEFAULT_NODE_CONFIG
    from syft_flwr_gdrive.localrun.runner import LocalRunOptions
    from syft_flwr_gdrive.localrun.runner import run_local

    options = LocalRunOptions(
        project=project.expanduser().resolve(),
        clients=clients,
        run_config=run_config or "",
        node_configs=tuple(node_config or (DEFAULT_NODE_CONFIG,)),
        **knobs,
    )
    if out:
        options.out_dir = out
    _run_with_live_view(
        clients, options.out_dir, lambda on_progress: run_local(options, on_progress), options.transport
    )


@app.command()
@_with_options(FAKE_DRIVE_OPTIONS)
def demo(
    clients: int = typer.Option(3, help="Number of data owners (client processes)."),
    rounds: int = typer.Option(5, help="Federated rounds."),
    app_style: str = typer.Option(
        "message", "--app", help="Bundled app style: 'message' (@app.main + FedAvg) or 'legacy' (server_fn)."
    ),
    out: Path | None = typer.Option(
        None, help="Folder for report.json, metrics.png and logs; default runs/demo-<time>."
    ),
    **knobs: Any,
) -> None:
    """Train a real model with N data owners over an embedded fake Google Drive (no account needed).

    This is `run` on the bundled digits app.
    """
    from syft_flwr_gdrive.localrun.runner import DemoOptions
    from syft_flwr_gdrive.localrun.runner import run_demo

    options = DemoOptions(clients=clients, rounds=rounds, app=app_style, **knobs)
    if out:
        options.out_dir = out
    _run_with_live_view(clients, options.out_dir, lambda on_progress: run_demo(options, on_progress), options.transport)


@app.command()
def bootstrap(
    project: Path = typer.Option(..., "--project", "-p", help="Flower project directory (holds pyproject.toml)."),
    aggregator: str = typer.Option(..., help="The data scientist's email (runs the server)."),
    datasites: str = typer.Option(..., help="Comma-separated emails of the data owners."),
    app_name: str | None = typer.Option(
        None, help="Name the app's messages are filed under; default: the project name."
    ),
    transport: str = typer.Option("p2p", help="Transport plugin name."),
) -> None:
    """Write \\[tool.syft_flwr] (aggregator, datasites, transport, app name) into a Flower project."""
    from syft_flwr_gdrive.ops.project_setup import bootstrap as write_section

    path = _run_errors(
        lambda: write_section(
            project,
            aggregator=aggregator,
            datasites=[d for d in datasites.split(",") if d.strip()],
            app_name=app_name,
            transport=transport,
        )
    )
    typer.echo(f"wrote [tool.syft_flwr] to {path}")


@app.command()
def login(
    client_secret: Path = typer.Option(
        ..., help="OAuth client secret JSON (Desktop app) from the Google Cloud console."
    ),
    token_file: Path = typer.Option(Path("token.json"), help="Where to save the token (keep it private)."),
    port: int = typer.Option(0, help="Local port for the OAuth redirect (0: any free port)."),
) -> None:
    """Sign in with a browser and save an OAuth token file (needs the 'login' extra)."""

    def go() -> Path:
        if not client_secret.is_file():
            raise ConfigError(
                f"{client_secret} does not exist. Download an OAuth client (type Desktop app) JSON from "
                "the Google Cloud console > APIs & Services > Credentials."
            )
        try:
            from google_auth_oauthlib.flow import InstalledAppFlow
        except ImportError:
            raise ConfigError("login needs google-auth-oauthlib: pip install 'syft-flwr-gdrive[login]'.") from None
        from syft_flwr_gdrive.transport.drive.auth import SCOPES

        flow = InstalledAppFlow.from_client_secrets_file(str(client_secret), scopes=list(SCOPES))
        creds = flow.run_local_server(port=port, open_browser=True)
        token_file.write_text(creds.to_json(), encoding="utf-8")
        token_file.chmod(0o600)
        return token_file

    path = _run_errors(go)
    typer.echo(f"saved {path}; use it with SYFT_FLWR_TOKEN_FILE={path}")


@app.command()
def doctor(
    email: Email = None,
    drive_url: str | None = typer.Option(
        None, help="Drive API base URL (the fake Drive's); default: real Google Drive."
    ),
    peer: str | None = typer.Option(
        None,
        help="Also test a round trip with this peer (share, list, read, delete); "
        "they run `doctor --peer <your email>` at the same time.",
    ),
    peer_timeout: float = typer.Option(60.0, help="Seconds to wait for the peer's side of --peer."),
) -> None:
    """Check settings, credentials, Drive reachability and the account; say what to fix."""
    from syft_flwr_gdrive.ops.checks import run_checks

    overrides: dict[str, Any] = {"email": email} if email else {}
    environ = dict(__import__("os").environ)
    if drive_url:
        environ["SYFT_FLWR_DRIVE_URL"] = drive_url
    checks = run_checks(environ, **overrides)
    for check in checks:
        mark = "ok " if check.ok else "FAIL"
        typer.echo(f"[{mark}] {check.name}: {check.detail}")
        if not check.ok and check.fix:
            typer.echo(f"       fix: {check.fix}")
    failed = [c for c in checks if not c.ok]
    if failed:
        raise typer.Exit(EXIT_CONFIG if failed[0].name == "settings" else EXIT_DRIVE)
    if peer:
        _doctor_peer(environ, overrides, peer, peer_timeout)
    typer.echo("all good")


def _doctor_peer(environ: dict[str, str], overrides: dict[str, Any], peer: str, timeout: float) -> None:
    """The timed round trip of `doctor --peer`; exits 3 (Drive) when the two accounts cannot federate."""
    from syft_flwr_gdrive.base.config import Settings
    from syft_flwr_gdrive.ops.peer_roundtrip import check_peer
    from syft_flwr_gdrive.transport.registry import create_transport

    settings = _run_errors(lambda: Settings.from_env(environ, **overrides))
    peer = _run_errors(lambda: validate_email(peer, what="--peer"))
    transport = _run_errors(lambda: create_transport(settings))
    typer.echo(f"round trip with {peer} (waiting up to {timeout:.0f}s for their side):")
    steps = check_peer(transport, peer, timeout=timeout)
    for step in steps:
        typer.echo(f"[{'ok ' if step.ok else 'FAIL'}] {step.name} ({step.seconds:.1f}s): {step.detail}")
    total = sum(s.seconds for s in steps)
    if not steps or not all(s.ok for s in steps):
        typer.echo(f"{settings.email} and {peer} cannot federate yet ({total:.1f}s).", err=True)
        raise typer.Exit(EXIT_DRIVE)
    typer.echo(f"{settings.email} and {peer} can federate: round trip in {total:.1f}s.")


@app.command()
def trust(
    accept: str | None = typer.Option(
        None, help="Pin the changed key this peer was refused for (confirm its fingerprint with them first)."
    ),
    email: Email = None,
) -> None:
    """List peers' pinned key fingerprints and refused (changed) keys; accept a changed key explicitly."""
    from syft_flwr_gdrive.crypto.seal import CryptoError
    from syft_flwr_gdrive.ops.key_files import accept as accept_key
    from syft_flwr_gdrive.ops.key_files import my_fingerprint
    from syft_flwr_gdrive.ops.key_files import peer_keys

    settings = _run_errors(lambda: _settings(email, None, None))
    if accept:
        try:
            fingerprint = accept_key(settings, accept)
        except CryptoError as exc:
            raise _fail(f"{exc}. `syft-flwr-gdrive trust` lists the refused keys.", EXIT_CONFIG) from exc
        typer.echo(f"pinned {accept.strip().lower()}'s new key (fingerprint {fingerprint}); restart your run to use it")
        return
    try:
        mine, peers = my_fingerprint(settings), peer_keys(settings)
    except CryptoError as exc:
        raise _fail(str(exc), EXIT_CONFIG) from exc
    typer.echo(
        f"me       {settings.email}: " + (f"fingerprint {mine}" if mine else "no keys yet (made on the first run)")
    )
    if not peers:
        typer.echo("no peer keys pinned yet (a peer's key is pinned the first time its messages are seen)")
    for entry in peers:
        line = f"peer     {entry.peer}: " + (f"pinned {entry.pinned}" if entry.pinned else "not pinned")
        if entry.refused:
            line += (
                f"; REFUSED a different key {entry.refused}: if {entry.peer} re-created its keys, confirm "
                f"that fingerprint with them, then `syft-flwr-gdrive trust --accept {entry.peer}`"
            )
        typer.echo(line)


@app.command()
def clean(
    app_name: str | None = typer.Option(
        None, "--app", help="Only this app's files (e.g. message-digits); default: all apps."
    ),
    email: Email = None,
    drive_url: str | None = typer.Option(
        None, help="Drive API base URL (the fake Drive's); default: real Google Drive."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be deleted."),
) -> None:
    """Delete this participant's leftover message files (peers clean their own)."""

    def go() -> Any:
        from syft_flwr_gdrive.flower.app_mailbox import app_key
        from syft_flwr_gdrive.ops.leftovers import clean as clean_files
        from syft_flwr_gdrive.transport.registry import create_transport

        settings = _settings(email, drive_url, None)
        return clean_files(create_transport(settings), app=app_key(app_name) if app_name else None, dry_run=dry_run)

    result = _run_errors(go)
    for name in result.names:
        typer.echo(("would delete " if dry_run else "deleted ") + name)
    typer.echo(f"{result.found} message file(s) found, {result.deleted} deleted")


@app.command(
    "fake-drive",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
def fake_drive(ctx: typer.Context) -> None:
    """Run the fake Google Drive server alone; prints its URL first (options: `fake-drive --help`, e.g. --port 8765)."""
    from syft_flwr_gdrive.fake.__main__ import main as fake_main

    raise typer.Exit(fake_main(["--human", *ctx.args]) or 0)


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
