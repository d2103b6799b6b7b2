"""Watching a local federation: its progress, its output, and the moment anything goes wrong.

A participant that exits with a non-zero code ends the run at once (its peers would only wait for it):
the others are stopped, and the failure says who, with which code, and the end of its log, where the
participant said why. The run also ends when its time is up (``--timeout`` bounds the whole run: the
participants are interrupted early enough that stopping them fits), and when ``run`` itself is told to
stop: Ctrl-C, and SIGTERM or SIGHUP too (a ``timeout`` command, a cancelled CI job, a closed terminal),
which become an interrupt here so the participants are always stopped with it.
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from types import FrameType
from typing import Any

from syft_flwr_gdrive.localrun.federation import LocalFederation
from syft_flwr_gdrive.localrun.federation import Participant
from syft_flwr_gdrive.localrun.log_stream import LogStream
from syft_flwr_gdrive.localrun.log_stream import last_lines

TICK = 0.2  # seconds between looks at the participants
STOP_GRACE = 5.0  # seconds a participant gets to stop cleanly (stop signals, deleting its files) before a kill
STOP_PATIENCE = 3.0  # seconds clients get to act on the stop signal of a server that ended, before an interrupt
CLIENT_LINGER = 15.0  # seconds clients get to see the stop signal once the server is done
ANSWERED = ": answered "  # the client loop's log line for each request it answered
EXIT_MEANINGS = {1: "crashed", 2: "bad input or configuration", 3: "Drive or credentials problem", 4: "run failed"}


class Terminated(KeyboardInterrupt):
    """``run`` was told to stop by SIGTERM or SIGHUP: handled like Ctrl-C, so its participants stop with it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class Progress:
    """What the live view shows: rounds (Flower's, or a query app's exchanges), answers, the latest metrics."""

    round: int = 0  # rounds begun so far
    rounds: int = 0  # rounds planned; 0: not known (an app that runs its own exchanges)
    answered: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0
    done: bool = False
    latest: dict[str, float] = field(default_factory=dict)  # the newest round's metrics, as Flower aggregated them
    latest_round: int = 0


@dataclass
class Failure:
    """Why a run ended early: a participant that exited badly, the time limit, or an interrupt."""

    reason: str
    participant: str | None = None  # email
    role: str | None = None
    exit_code: int | None = None
    log: str | None = None
    last_lines: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "participant": self.participant,
            "role": self.role,
            "exit_code": self.exit_code,
            "log": self.log,
            "last_lines": self.last_lines,
        }


def exit_failure(participant: Participant, code: int) -> Failure:
    meaning = EXIT_MEANINGS.get(code) or (f"killed by {signal.Signals(-code).name}" if code < 0 else "failed")
    return Failure(
        f"the {participant.role} {participant.email} exited with code {code} ({meaning})",
        participant.email,
        participant.role,
        code,
        str(participant.log_path),
        last_lines(participant),
    )


def server_progress(fed: LocalFederation) -> dict[str, Any]:
    """What the server last wrote to its progress file (``server --progress``); {} before it wrote any."""
    try:
        data = json.loads(fed.progress_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_progress(fed: LocalFederation, started: float, answered: dict[str, int] | None = None) -> Progress:
    """The progress as the server last wrote it; ``answered``: requests each client answered (counted from its
    log lines by the caller), else counted here from the whole logs."""
    now = server_progress(fed)
    metrics = now.get("metrics") or {}
    progress = Progress(
        round=len(now.get("rounds") or []),
        rounds=int(metrics.get("planned_rounds") or 0),
        elapsed=time.monotonic() - started,
        done=not fed.server().alive(),
    )
    for entry in reversed(metrics.get("rounds") or []):
        figures = entry.get("evaluate") or entry.get("server_evaluate") or entry.get("train") or {}
        numbers = {k: float(v) for k, v in figures.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if numbers:
            progress.latest, progress.latest_round = numbers, int(entry["round"])
            break
    for participant in fed.participants.values():
        if participant.role == "client":
            progress.answered[participant.email] = (
                answered.get(participant.email, 0) if answered is not None else participant.log_text().count(ANSWERED)
            )
    return progress


@contextlib.contextmanager
def terminations_as_interrupts() -> Iterator[None]:
    """While a run goes, SIGTERM and SIGHUP raise ``Terminated`` (a KeyboardInterrupt) like Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return

    def interrupt(signum: int, _frame: FrameType | None) -> None:
        raise Terminated(signum)

    chosen = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {sig: signal.signal(sig, interrupt) for sig in chosen}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Supervisor:
    """Runs the watch loop of one federation: output, progress, failures, the deadline."""

    def __init__(
        self,
        fed: LocalFederation,
        *,
        started: float,
        timeout: float,
        on_progress: Callable[[Progress], None] | None = None,
        on_output: Callable[[Participant, str], None] | None = None,
    ) -> None:
        self.fed = fed
        self.started = started
        self.deadline = started + timeout
        self.grace = min(STOP_GRACE, timeout / 4)
        self.on_progress = on_progress
        self.on_output = on_output
        self._stream = LogStream(fed.participants.values())
        self._answered: dict[str, int] = {}  # requests each client answered, from its log lines as they come

    def watch(self) -> Failure | None:
        """Until the run ends: None when the server finished and the clients stopped, else why it did not."""
        stop_by = self.deadline - self.grace
        server = self.fed.server()
        server_done_at: float | None = None
        while True:
            self.tick()
            for participant in self.fed.participants.values():
                code = participant.exit_code
                if code is not None and code != 0:
                    return exit_failure(participant, code)
            now = time.monotonic()
            if not server.alive():
                server_done_at = server_done_at or now
                clients = [p for p in self.fed.participants.values() if p.role == "client"]
                lingering = [c for c in clients if c.alive()]
                if not lingering:
                    return None
                if now - server_done_at > CLIENT_LINGER:
                    names = ", ".join(c.email for c in lingering)
                    return Failure(f"the server finished, but {names} did not stop within {CLIENT_LINGER:g} s")
            if now >= stop_by:
                return Failure(f"the run did not finish within --timeout {self.deadline - self.started:g} s")
            time.sleep(TICK)

    def tick(self, *, final: bool = False) -> None:
        """Pass on the output written since the last tick, and the progress."""
        for participant, line in self._stream.new_lines(final=final):
            if ANSWERED in line:
                self._answered[participant.email] = self._answered.get(participant.email, 0) + 1
            if self.on_output is not None:
                self.on_output(participant, line)
        if self.on_progress is not None:
            self.on_progress(read_progress(self.fed, self.started, self._answered))

    def end_all(self) -> None:
        """Stop every participant still running, within the time left (at least a moment to stop cleanly).

        Once the server has ended, it has sent its stop signals: the clients get a moment to see them first."""
        left = self.deadline - time.monotonic()
        patience = 0.0 if self.fed.server().alive() else max(0.0, min(STOP_PATIENCE, left - self.grace))
        grace = max(0.5, min(self.grace, left - patience))
        try:
            self.fed.stop(grace, patience=patience)
        except KeyboardInterrupt:  # asked to stop again while stopping: no more grace
            for participant in self.fed.participants.values():
                if participant.alive() and participant.process is not None:
                    participant.process.kill()
            raise
