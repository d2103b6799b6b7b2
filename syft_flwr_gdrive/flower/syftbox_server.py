"""``syftbox_flwr_server``: run a Flower ServerApp with its messages carried by a transport.

Workflow (as in the orchestration API we honour): set up the grid for the
datasites, give the run a fresh id, run the ServerApp, and in ``finally`` send
every datasite the stop signal. An error in the ServerApp is logged (with its
traceback, locally only) and the original context is returned. Storage that
refuses the server for good (``AccessLost``: a sign-in Google refused, a daily
cap) ends the run at once, is logged without a traceback, and is reported
(``ServerOutcome.access_lost``) for the command line to exit 3 with its fix.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from typing import ParamSpec
from typing import TypedDict

from flwr.app import Context
from flwr.server.run_serverapp import run as run_server
from flwr.serverapp import ServerApp
from flwr.supercore.task_identity import TaskIdentity
from typing_extensions import Unpack

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.config import ProjectConfig
from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.base.config import validate_email
from syft_flwr_gdrive.flower.app_mailbox import app_key
from syft_flwr_gdrive.flower.app_mailbox import open_mailbox
from syft_flwr_gdrive.flower.codec import SERVER_NODE_ID
from syft_flwr_gdrive.flower.grid import TransportGrid
from syft_flwr_gdrive.flower.poll_schedule import PollSchedule
from syft_flwr_gdrive.flower.round_metrics import RoundMetrics
from syft_flwr_gdrive.flower.round_metrics import recording
from syft_flwr_gdrive.flower.userconfig import run_info
from syft_flwr_gdrive.transport.contract import AccessLost
from syft_flwr_gdrive.transport.contract import Transport
from syft_flwr_gdrive.transport.contract import TransportError
from syft_flwr_gdrive.transport.contract import access_lost_in
from syft_flwr_gdrive.transport.contract import brief
from syft_flwr_gdrive.transport.registry import create_transport

logger = logging.getLogger(__name__)
P = ParamSpec("P")


def new_run_id() -> int:
    """A collision-free, time-ordered 63-bit run id: milliseconds since epoch, then 20 random bits.

    Clients follow the newest run they see, so ids must grow with time; the
    random tail keeps two servers started in the same millisecond apart.
    """
    return (int(time.time() * 1000) << 20) | secrets.randbits(20)


@dataclass
class ServerOutcome:
    """How a run ended: the Context, whether the ServerApp returned normally, and what each datasite answered."""

    context: Context
    run_id: int
    completed: bool
    error: str | None = None  # "ExceptionType: message" of a ServerApp that raised (local only)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    excluded: dict[str, str] = field(default_factory=dict)
    # Flower's own per-round metrics (its strategy's Result or its History): round_metrics.RoundMetrics.snapshot
    metrics: dict[str, Any] = field(default_factory=lambda: {"planned_rounds": None, "rounds": []})
    access_lost: str | None = None  # the storage refused this server for good: what happened, the fix, why


class ServeOptions(TypedDict, total=False):
    """What a caller may hand ``serve`` instead of letting it read the environment."""

    settings: Settings | None  # default: Settings.from_env for the project
    transport: Transport | None  # default: the one the settings name (plugin entry point)
    app_fingerprint: dict[str, Any] | None  # the app's identity, sent so clients can compare
    # Called about twice a second while the run goes, and once at its end, with ``progress_of`` the run so far.
    on_progress: Callable[[dict[str, Any]], None] | None


def serve(
    server_app: ServerApp,
    context: Context,
    datasites: list[str],
    app_name: str,
    project_dir: Path | None = None,
    **options: Unpack[ServeOptions],
) -> ServerOutcome:
    """``syftbox_flwr_server`` that also says how the run went (for exit codes and reports).

    The ServerApp's Context ``run_config`` is sent, sealed and signed, with every request, so each
    ClientApp's Context holds the same run config as the server's.
    """
    project = ProjectConfig.load(project_dir) if project_dir is not None else None
    settings = options.get("settings") or Settings.from_env(project=project)
    if not datasites:
        raise ConfigError("datasites is empty: list the emails of the data owners to train with.")
    peers = sorted({validate_email(d, what="datasites") for d in datasites})
    if settings.email in peers:
        raise ConfigError(f"{settings.email} is both the server and a datasite; use distinct accounts.")
    transport = options.get("transport") or create_transport(settings)
    mailbox = open_mailbox(settings, transport, app_name, peers)
    grid = TransportGrid(
        mailbox,
        peers,
        msg_timeout=settings.msg_timeout,
        poll_interval=settings.poll_interval,
        poll_schedule=PollSchedule.for_settings(settings, min_gap=transport.min_poll_gap()),
    )
    grid.run_info = run_info(context.run_config, options.get("app_fingerprint"))
    run_id = new_run_id()
    grid.set_run(run_id)
    # Flower's Message() constructor stamps instructions with this process-wide identity.
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, run_id, SERVER_NODE_ID
    logger.info("run %d: server %s, %d datasites, app %r", run_id, settings.email, len(peers), app_key(app_name))
    interrupted = False
    updated = context
    completed, error = False, None
    lost: AccessLost | None = None
    recorder = RoundMetrics()
    ticker = _ProgressTicker(lambda: progress_of(grid, recorder), options.get("on_progress"))
    try:
        mailbox.prepare(keys=False)
        if settings.bundles:
            mailbox.enable_bundles()  # before the announcement: it tells clients where the bundles are
        # Keys before the run: a transport may stamp both with one write per folder (Drive, bundles on); peers read
        # folders by id, so keys seen a moment before the run hide nothing.
        mailbox.publish_keys()
        mailbox.announce_run(run_id)
        grid.remove_stale_files()
        excluded = grid.await_keys(settings.msg_timeout)
        if excluded and len(excluded) == len(peers):
            raise TransportError(f"no datasite can be reached ({', '.join(sorted(excluded))}); nothing to run")
        with recording() as recorder:
            ticker.start()
            updated = run_server(grid, context=context, server_app_dir="", loaded_server_app=server_app)
        lost = grid.access_lost  # a strategy may have counted it as failures and finished the rounds
        completed = lost is None
        if completed:
            logger.info("run %d: server completed", run_id)
    except KeyboardInterrupt:
        interrupted = True
        logger.warning("run %d: interrupted; telling clients to stop", run_id)
        raise
    except Exception as exc:
        lost = grid.access_lost or access_lost_in(exc)
        if lost is None:
            error = f"{type(exc).__name__}: {exc}"
            logger.error("run %d: server encountered an error: %s", run_id, exc)
            logger.error("Traceback: %s", traceback.format_exc())
        elif grid.access_lost is None:  # before the grid saw it (setting up the run): not logged yet
            logger.error("run %d: stopping the run: %s", run_id, lost.headline)
        updated = context
    finally:
        logger.info("run %d: sending stop signals to the clients", run_id)
        try:
            grid.send_stop_signal(group_id="final", reason="Server stopped", wait=0.0 if interrupted else None)
        except Exception as exc:
            logger.error("could not send stop signals: %s", brief(exc))
        lost = lost or grid.access_lost
        grid.access_lost = grid.access_lost or lost  # close() then leaves what it cannot delete, said once
        grid.close()
        _log_summary(run_id, grid)
        ticker.stop()
    if lost is not None:
        error = str(lost)
    return ServerOutcome(
        updated,
        run_id,
        completed,
        error,
        grid.tally.rounds(),
        grid.tally.summary(),
        dict(grid.excluded),
        recorder.snapshot(),
        access_lost=str(lost) if lost is not None else None,
    )


def progress_of(grid: TransportGrid, recorder: RoundMetrics) -> dict[str, Any]:
    """The run so far: each round's replies per datasite (the tally) and Flower's metrics (``RoundMetrics``)."""
    return {"rounds": grid.tally.rounds(), "metrics": recorder.snapshot()}


class _ProgressTicker:
    """Hands the run's progress to a callback about twice a second, on a thread of its own, and once at the end."""

    def __init__(self, progress: Callable[[], dict[str, Any]], callback: Callable[[dict[str, Any]], None] | None):
        self._progress, self._callback = progress, callback
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._callback is not None:
            self._thread = threading.Thread(target=self._tick, name="run-progress", daemon=True)
            self._thread.start()

    def _tick(self) -> None:
        while not self._stopped.wait(0.5):
            self._report()

    def _report(self) -> None:
        assert self._callback is not None
        try:
            self._callback(self._progress())
        except Exception as exc:  # progress is for watching: it never stops the run
            logger.warning("could not report the run's progress: %s", exc)

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._callback is not None:
            self._report()


def _context_of(run: Callable[P, ServerOutcome]) -> Callable[P, Context]:
    """The syft-flwr entry point's contract over ``run``: the same arguments, only the resulting Context."""

    def syftbox_flwr_server(*args: P.args, **kwargs: P.kwargs) -> Context:
        """Run ``server_app`` against ``datasites`` (the arguments of :func:`serve`); returns the updated
        (or, on error, original) context."""
        return run(*args, **kwargs).context

    return syftbox_flwr_server


syftbox_flwr_server = _context_of(serve)


def _log_summary(run_id: int, grid: TransportGrid) -> None:
    """One line with the run's totals; a WARNING when anything was not answered cleanly."""
    total = grid.tally.summary()
    bad = total["errors"] or total["missing"] or total["excluded"]
    types = ", ".join(f"{k} x{n}" for k, n in sorted(total["error_types"].items()))
    logger.log(
        logging.WARNING if bad else logging.INFO,
        "run %d: %d replies, %d error replies%s, %d missing, %d requests to excluded datasites%s",
        run_id,
        total["replies"],
        total["errors"],
        f" ({types})" if types else "",
        total["missing"],
        total["excluded"],
        f" ({', '.join(sorted(grid.excluded))})" if grid.excluded else "",
    )
