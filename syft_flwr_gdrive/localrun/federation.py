"""A whole federation on this machine: a Drive, one server and N clients, each its own OS process.

Used by the ``demo`` command and by the end-to-end tests, so both exercise
exactly what users run: ``syft-flwr-gdrive server`` and ``client`` processes
talking through a Drive API endpoint (the embedded fake by default).

Each participant writes its logs and its app's output (stderr) to ``<key>.log`` and its JSON outcome to
``<key>.json``; its stdout, which carries that outcome alone, is not kept. Participants run in sessions
of their own, so a Ctrl-C in the terminal reaches only the process that started them, which stops them
in order; and each is started with ``--exit-with-parent``, so it stops by itself if that process is
killed outright (``cli/parent_watch.py``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any


@dataclass
class Participant:
    """One server or client process of a local federation, with its log and its JSON report."""

    email: str
    role: str  # "server" | "client"
    args: list[str]
    env: dict[str, str]
    report_path: Path
    log_path: Path
    process: subprocess.Popen | None = None
    cwd: Path | None = None  # where the app's relative paths (outputs, checkpoints) land

    def start(self) -> None:
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                self.args,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=self.cwd,
            )
        finally:
            log.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def exit_code(self) -> int | None:
        """The process's exit status once it ended (``-N``: ended by signal N); None while it runs."""
        return None if self.process is None else self.process.poll()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            assert self.process is not None
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def report(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.report_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""


@dataclass
class LocalFederation:
    """Launch participants of one Flower project against one Drive URL (or, with ``drive_url=None``,
    whatever storage ``extra_env`` names, e.g. ``SYFT_FLWR_TRANSPORT=dir``)."""

    workdir: Path
    project: Path
    drive_url: str | None
    server_email: str = "ds@example.com"
    client_emails: Sequence[str] = ("do1@example.com", "do2@example.com", "do3@example.com")
    poll_interval: float = 0.5
    msg_timeout: float = 60.0
    run_config: Mapping[str, Any] | str = field(default_factory=dict)  # a mapping, or Flower's "k=v k2=v2" text
    # Per client: a mapping (sent as JSON) or Flower's "k=v" text; default partition-id/num-partitions.
    node_configs: Sequence[Mapping[str, Any] | str] | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)
    # Per client: more environment of its own (e.g. DATA_DIR: its mock dataset); default none.
    client_envs: Sequence[Mapping[str, str]] | None = None
    state_dir: Path | None = None  # participants' keys, pins and ledgers; default workdir/state
    # Ship the app: data owners run `node` (auto-approving, said so in its log) from empty folders, and the server
    # offers the app to them over the (fake) Drive; else each data owner runs `client -p` on the project.
    ship: bool = False
    participants: dict[str, Participant] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = self.workdir.resolve()
        self.project = Path(self.project).resolve()
        if self.node_configs is not None and len(self.node_configs) != len(self.client_emails):
            raise ValueError("node_configs needs one entry per client")
        if self.client_envs is not None and len(self.client_envs) != len(self.client_emails):
            raise ValueError("client_envs needs one entry per client")

    def node_config(self, index: int) -> str:
        """The --node-config text of client ``index``."""
        if self.node_configs is None:
            return json.dumps({"partition-id": index, "num-partitions": len(self.client_emails)})
        chosen = self.node_configs[index]
        return chosen if isinstance(chosen, str) else json.dumps(dict(chosen))

    def _env(self, email: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYFT")}
        if self.drive_url:
            env["SYFT_FLWR_DRIVE_URL"] = self.drive_url
        env.update(
            SYFTBOX_EMAIL=email,
            SYFT_FLWR_POLL_INTERVAL=str(self.poll_interval),
            SYFT_FLWR_MSG_TIMEOUT=str(self.msg_timeout),
            SYFT_FLWR_STATE_DIR=str(self.state_dir or self.workdir / "state"),
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    def _cli(self) -> list[str]:
        return [sys.executable, "-m", "syft_flwr_gdrive.cli", "--exit-with-parent", str(os.getpid())]

    def client(self, index: int) -> Participant:
        email = self.client_emails[index]
        key = f"client{index}"
        if self.ship and key not in self.participants:
            return self._node(index, email, key)
        if key not in self.participants:
            report = self.workdir / f"{key}.json"
            self.participants[key] = Participant(
                email,
                "client",
                self._cli()
                + [
                    "client",
                    "--project",
                    str(self.project),
                    "--aggregator",
                    self.server_email,
                    "--node-config",
                    self.node_config(index),
                    "--report",
                    str(report),
                ],
                {**self._env(email), **(self.client_envs[index] if self.client_envs else {})},
                report,
                self.workdir / f"{key}.log",
                cwd=self.workdir,
            )
        return self.participants[key]

    @property
    def progress_path(self) -> Path:
        """Where the server keeps its progress (``server --progress``): rounds so far and Flower's metrics."""
        return self.workdir / "server.progress.json"

    def _node(self, index: int, email: str, key: str) -> Participant:
        """A data owner's node with no copy of the project: the app reaches it as an offer, auto-approved."""
        home = self.workdir / f"{key}-home"
        home.mkdir(exist_ok=True)
        args = self._cli() + ["node", "--aggregator", self.server_email, "--node-config", self.node_config(index)]
        self.participants[key] = Participant(
            email,
            "node",
            args + ["--auto-approve", "all"],
            {**self._env(email), **(self.client_envs[index] if self.client_envs else {})},
            self.workdir / f"{key}.json",
            self.workdir / f"{key}.log",
            cwd=home,
        )
        return self.participants[key]

    def server(self) -> Participant:
        if "server" not in self.participants:
            report = self.workdir / "server.json"
            args = self._cli() + [
                "server",
                "--project",
                str(self.project),
                "--datasites",
                ",".join(self.client_emails),
                "--report",
                str(report),
                "--progress",
                str(self.progress_path),
            ]
            args += ["--approval-timeout", str(self.msg_timeout)] if self.ship else ["--no-offer"]
            if self.run_config:
                text = self.run_config if isinstance(self.run_config, str) else json.dumps(dict(self.run_config))
                args += ["--run-config", text]
            self.participants["server"] = Participant(
                self.server_email,
                "server",
                args,
                self._env(self.server_email),
                report,
                self.workdir / "server.log",
                cwd=self.workdir,
            )
        return self.participants["server"]

    def start_all(self) -> None:
        for i in range(len(self.client_emails)):
            self.client(i).start()
        self.server().start()

    def wait(self, timeout: float, keys: Sequence[str] | None = None) -> bool:
        """Wait until the given participants (default: all) exited; False on timeout."""
        deadline = time.monotonic() + timeout
        chosen = [self.participants[k] for k in (keys or list(self.participants))]
        for p in chosen:
            remaining = deadline - time.monotonic()
            if p.process is None:
                continue
            try:
                p.process.wait(timeout=max(0.0, remaining))
            except subprocess.TimeoutExpired:
                return False
        return True

    def stop(self, grace: float = 10.0, *, patience: float = 0.0) -> None:
        """Interrupt what still runs, all at once (Ctrl-C: a clean stop), and kill what has not stopped within
        ``grace`` seconds; returns once every participant has ended. ``patience``: first give them that long to
        end by themselves (clients that already have the server's stop signal)."""
        until = time.monotonic() + patience
        while time.monotonic() < until and any(p.alive() for p in self.participants.values()):
            time.sleep(0.05)
        running = [p for p in self.participants.values() if p.alive()]
        for p in running:
            assert p.process is not None
            with contextlib.suppress(ProcessLookupError):
                p.process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + max(0.0, grace)
        for p in running:
            assert p.process is not None
            try:
                p.process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.process.kill()
        for p in running:
            assert p.process is not None
            p.process.wait()

    def __enter__(self) -> LocalFederation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
