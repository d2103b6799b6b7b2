"""The node's ClientApp processes: one per aggregator and approved app, each run from the installed app.

Each child is ``syft-flwr-gdrive client -p <installed app> --aggregator X --node-config ...`` (the node's
config, then the app's own on top), started in a session of its own from a writable work folder under
the state dir (never the node's working directory), with bytecode writing off so the installed tree
stays as it was checked. A child that ends after a run's stop signal is started again at once, ready
for the next run; one that fails is started again after a growing pause (1 s, 2 s, ... 60 s) and
reported with the tail of its log; neither ever takes the node down. A child dies with the node: Linux
sends it SIGINT when the node goes (``PR_SET_PDEATHSIG``), even if the node is killed outright.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syft_flwr_gdrive.base.config import ENV_EMAIL
from syft_flwr_gdrive.base.config import ENV_POLL_INTERVAL
from syft_flwr_gdrive.base.config import ENV_STATE_DIR
from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.base.config import option_env
from syft_flwr_gdrive.flower.app_store import AppStore
from syft_flwr_gdrive.flower.app_store import Offer

logger = logging.getLogger(__name__)

STOP_GRACE = 8.0  # seconds children get to end cleanly (SIGINT) before SIGKILL
MAX_BACKOFF = 60.0
SHORT_RUN = 20.0  # a child that ends sooner than this counts towards the backoff
CLEAN_EXITS = (0,)
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGINT))
    except (OSError, AttributeError):
        pass


@dataclass
class Child:
    offer: Offer
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0
    next_start: float = 0.0
    runs: int = 0
    log_path: Path | None = None


def child_env(settings: Settings) -> dict[str, str]:
    """The node's environment, with the settings a child must share with it (who, where, which Drive)."""
    env = dict(os.environ)
    env[ENV_EMAIL] = settings.email
    env[ENV_STATE_DIR] = str(settings.state_dir)
    env[ENV_POLL_INTERVAL] = repr(settings.poll_interval)
    for name, value in settings.transport_options.items():
        env[option_env(name)] = str(value)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("SYFT_FLWR_AGGREGATOR", None)
    return env


class Supervisor:
    """Keeps exactly one ClientApp process per runnable (aggregator, app)."""

    def __init__(self, store: AppStore, settings: Settings, node_config: Mapping[str, Any]) -> None:
        self.store = store
        self.settings = settings
        self.node_config = dict(node_config)
        self.children: dict[tuple[str, str], Child] = {}
        self.crashes = 0
        self.started = 0

    def sync(self, runnable: list[Offer]) -> None:
        """Start, restart or stop children so that each runnable app has one (called every poll)."""
        wanted = {(o.sender, o.name): o for o in runnable}
        for key, child in list(self.children.items()):
            offer = wanted.get(key)
            if offer is None or offer.fab_hash != child.offer.fab_hash or offer.node_config != child.offer.node_config:
                self._stop([child])
                del self.children[key]
                if offer is not None:
                    logger.info("app %s of %s: approved version changed, restarting its client", key[1], key[0])
        now = time.monotonic()
        for key, offer in wanted.items():
            child = self.children.setdefault(key, Child(offer))
            if child.proc is not None:
                code = child.proc.poll()
                if code is None:
                    continue
                self._ended(child, code, now)
                child.proc = None
            if now >= child.next_start:
                self._start(child)

    def _ended(self, child: Child, code: int, now: float) -> None:
        ran = now - child.started
        name = f"app {child.offer.name} of {child.offer.sender}"
        if code in CLEAN_EXITS:
            logger.info("%s: client ended after its run (%.0fs); starting it again for the next run", name, ran)
        else:
            self.crashes += 1
            logger.warning(
                "%s: client exited with %d after %.0fs; restarting it.%s", name, code, ran, self._tail(child)
            )
        if code in CLEAN_EXITS and ran >= SHORT_RUN:
            child.failures = 0
        else:
            child.failures += 1
        pause = 0.5 if child.failures == 0 else min(MAX_BACKOFF, 2.0 ** (child.failures - 1))
        child.next_start = now + pause

    def _tail(self, child: Child) -> str:
        if child.log_path is None:
            return ""
        try:
            lines = child.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-5:]
        except OSError:
            return ""
        return (" Its log (" + str(child.log_path) + ") ends:\n  " + "\n  ".join(lines)) if lines else ""

    def _start(self, child: Child) -> None:
        offer = child.offer
        app_dir = self.store.app_dir(offer)
        work = self.store.root / "work" / offer.fab_hash
        work.mkdir(parents=True, exist_ok=True)
        logs = self.store.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9._+-]", "_", f"{offer.name}-{offer.sender}")
        child.log_path = logs / f"{safe}.log"
        config = {**self.node_config, **offer.node_config}
        cmd = [sys.executable, "-m", "syft_flwr_gdrive.cli", "client", "-p", str(app_dir), "--aggregator", offer.sender]
        if config:
            cmd += ["--node-config", json.dumps(config)]
        with open(child.log_path, "ab") as log:
            child.proc = subprocess.Popen(  # noqa: S603 - our own CLI, with arguments we made
                cmd,
                cwd=work,
                env=child_env(self.settings),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,  # noqa: PLW1509
            )
        child.started = time.monotonic()
        child.runs += 1
        self.started += 1
        logger.info(
            "app %s %s of %s: client started (pid %d), from %s, log %s",
            offer.name,
            offer.version,
            offer.sender,
            child.proc.pid,
            app_dir,
            child.log_path,
        )

    def stop_all(self, grace: float = STOP_GRACE) -> None:
        self._stop(list(self.children.values()), grace)
        self.children.clear()

    def _stop(self, children: list[Child], grace: float = STOP_GRACE) -> None:
        """SIGINT to every child at once (each ends its run cleanly), SIGKILL to any still there after ``grace``."""
        live = [c.proc for c in children if c.proc is not None and c.proc.poll() is None]
        for proc in live:
            try:
                proc.send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        for proc in live:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for c in children:
            c.proc = None
