"""The data owner's long-running node (Flower's SuperNode, here): offers in, approved apps run.

One node serves every aggregator it is told to, any number of apps: each poll it takes offers in
and sends answers on the apps channel (``node_channel``), then keeps one ClientApp process per
approved app and aggregator (``node_children``). The review family (``apps``, ``review``,
``approve``, ``reject``) changes the store from another terminal; the node sees it at its next poll.

``run`` blocks (the command line; Ctrl-C or SIGTERM stop it and every child); ``start`` runs the same
loop in a background thread (a notebook) and returns a handle whose ``stop()`` ends it.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from syft_flwr_gdrive.base.accounts import canonical_email
from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.base.config import validate_email
from syft_flwr_gdrive.flower.app_store import AUTO_NONE
from syft_flwr_gdrive.flower.app_store import AUTO_RULES
from syft_flwr_gdrive.flower.app_store import AppStore
from syft_flwr_gdrive.flower.node_channel import NodeChannel
from syft_flwr_gdrive.flower.node_children import Supervisor
from syft_flwr_gdrive.transport.contract import Transport
from syft_flwr_gdrive.transport.contract import TransportError
from syft_flwr_gdrive.transport.registry import create_transport

logger = logging.getLogger(__name__)


@dataclass
class NodeReport:
    email: str
    aggregators: list[str]
    offers_received: int = 0
    offers_refused: int = 0
    clients_started: int = 0
    client_crashes: int = 0
    stopped_by: str = ""
    drive_calls: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


class Node:
    """A data owner's node for ``aggregators``; ``node_config`` is every app's ``context.node_config`` base."""

    def __init__(
        self,
        settings: Settings,
        aggregators: Sequence[str],
        *,
        node_config: Mapping[str, Any] | None = None,
        auto_approve: str = AUTO_NONE,
        transport: Transport | None = None,
    ) -> None:
        if not aggregators:
            raise ConfigError("a node serves at least one aggregator: pass --aggregator ds@example.com")
        if auto_approve not in AUTO_RULES:
            raise ConfigError(f"auto-approval rule {auto_approve!r} is not one of {', '.join(AUTO_RULES)}")
        self.settings = settings
        self.aggregators = sorted({validate_email(a, what="--aggregator") for a in aggregators})
        self.node_config = dict(node_config or {})
        self.auto_approve = auto_approve
        self.store = AppStore.for_participant(settings.participant_state_dir())
        self._transport = transport
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.report = NodeReport(settings.email, list(self.aggregators))
        self.ready = threading.Event()  # set once the node is on the apps channel

    def run(self) -> NodeReport:
        """Serve until ``stop()``, Ctrl-C or SIGTERM; every child is stopped before this returns."""
        transport = self._transport or create_transport(self.settings)
        channel = NodeChannel(self.settings, transport, self.aggregators, self.store, auto=self.auto_approve)
        supervisor = Supervisor(self.store, self.settings, self.node_config)
        if self.auto_approve != AUTO_NONE:
            logger.warning("node %s: auto-approval is ON (%s)", self.settings.email, self.auto_approve)
        signals = StopSignals(self._stop)
        try:
            channel.start()
            self.ready.set()
            logger.info(
                "node %s: serving %s; apps in %s; polling every %.1fs",
                self.settings.email,
                ", ".join(self.aggregators),
                self.store.root,
                self.settings.poll_interval,
            )
            while not self._stop.is_set():
                try:
                    channel.poll_once()
                except TransportError as exc:
                    logger.warning("apps channel: %s (next poll)", exc)
                supervisor.sync(self.store.runnable(frozenset(self.aggregators)))
                self._stop.wait(self.settings.poll_interval)
            self.report.stopped_by = "interrupt" if signals.signalled else "stop"
        except KeyboardInterrupt:
            self.report.stopped_by = "interrupt"
        finally:
            supervisor.stop_all()
            signals.restore()
            self.report.offers_received = channel.received
            self.report.offers_refused = channel.refused
            self.report.clients_started = supervisor.started
            self.report.client_crashes = supervisor.crashes
            self.report.drive_calls = dict(transport.call_counts())
            if self._transport is None:
                transport.close()
            logger.info("node %s stopped (%s); every client stopped", self.settings.email, self.report.stopped_by)
        return self.report

    def start(self) -> Node:
        """Run in a background thread (a notebook's); ``stop()`` ends it."""
        self._thread = threading.Thread(target=self.run, name="syft-flwr-node", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> NodeReport:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        return self.report

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


class StopSignals:
    """Ctrl-C and SIGTERM stop the node (main thread only; a notebook's thread keeps the kernel's handlers).

    Each sets the node's stop event *and* raises KeyboardInterrupt to cut a slow Drive call short. The event
    is what makes it certain: Python drops an exception raised inside an at-fork hook ("Exception ignored
    in: _releaseLock"), so a Ctrl-C that came while the node was starting a client was lost and the node
    served on (seen in CI: the node never stopped)."""

    def __init__(self, stop: threading.Event) -> None:
        self.signalled = False
        self._stop = stop
        self._previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handler)

    def _handler(self, signum: int, frame: Any) -> None:
        self.signalled = True
        self._stop.set()
        raise KeyboardInterrupt

    def restore(self) -> None:
        """Put the previous handlers back."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


def aggregators_from(values: Sequence[str]) -> list[str]:
    """``--aggregator a --aggregator b`` or ``--aggregator a,b``."""
    return [canonical_email(v.strip()) for value in values for v in value.split(",") if v.strip()]
