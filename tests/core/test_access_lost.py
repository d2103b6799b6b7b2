"""Storage that refuses a participant for good (``AccessLost``: a sign-in Google no longer refreshes, a daily cap)
stops it at once, over the in-memory transport: the client loop after one failed poll, the server's run at its next
Grid call whatever its strategy does with failures, with the stop signals still tried and no traceback logged.
(The same over real processes and the fake Drive: tests/reliability/test_tokens.py.)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest
from flwr.app import ArrayRecord
from flwr.app import Context
from flwr.app import Message
from flwr.app import MetricRecord
from flwr.app import RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid
from flwr.serverapp import ServerApp
from flwr.serverapp.strategy import FedAvg

from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.crypto.keys import Identity
from syft_flwr_gdrive.crypto.pins import PinStore
from syft_flwr_gdrive.crypto.seal import Sealer
from syft_flwr_gdrive.flower.app_mailbox import app_key
from syft_flwr_gdrive.flower.client_loop import ClientLoop
from syft_flwr_gdrive.flower.syftbox_server import serve
from syft_flwr_gdrive.mailbox.ledger import Ledger
from syft_flwr_gdrive.mailbox.mailbox import Mailbox
from syft_flwr_gdrive.transport.contract import AccessLost
from syft_flwr_gdrive.transport.contract import TransportError
from syft_flwr_gdrive.transport.contract import access_lost_in
from syft_flwr_gdrive.transport.contract import brief
from syft_flwr_gdrive.transport.memory import MemoryHub
from syft_flwr_gdrive.transport.memory import MemoryTransport
from tests.helpers.client_loops import loops_running

SERVER = "ds@example.com"
CLIENTS = ["a@example.com", "b@example.com"]
HEADLINE = "The storage refused this account's sign-in."
FULL = f"{HEADLINE} Fix: log in again. Why: it expired."


class LosingTransport(MemoryTransport):
    """A memory transport that, once ``lose()`` was called, fails every call as the Drive transport does when
    Google refuses the sign-in: a ``TransportError`` naming the operation, raised from the ``AccessLost``."""

    def __init__(self, email: str, hub: MemoryHub) -> None:
        super().__init__(email, hub)
        self.lost = threading.Event()
        self.failed: list[str] = []

    def lose(self) -> None:
        self.lost.set()

    def _count(self, method: str) -> None:
        if self.lost.is_set():
            self.failed.append(method)
            cause = AccessLost(FULL, headline=HEADLINE)
            raise TransportError(f"could not {method}: {cause}") from cause
        super()._count(method)


class LoseAfterPrepare(LosingTransport):
    """Access is lost once the client published its keys (the end of its start, before its first poll)."""

    def publish_keys(self, app: str, keys: dict[str, str]) -> None:
        super().publish_keys(app, keys)
        self.lose()


def client_app(on_train: Callable[[], None] = lambda: None) -> ClientApp:
    """A ClientApp that returns the arrays it got; ``on_train`` runs first (to lose access mid-request)."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        on_train()
        content = RecordDict({"arrays": msg.content["arrays"], "metrics": MetricRecord({"num-examples": 1})})
        return Message(content, reply_to=msg)

    return app


def mailbox(transport: MemoryTransport, peers: list[str]) -> Mailbox:
    return Mailbox(transport, app_key("t"), peers, Ledger(None), sealer=Sealer(Identity.ephemeral(), PinStore(None)))


def settings(tmp_path, msg_timeout: float = 20.0) -> Settings:
    return Settings.from_env({}, email=SERVER, poll_interval=0.05, msg_timeout=msg_timeout, state_dir=tmp_path)


def test_access_lost_is_found_behind_the_error_that_names_the_operation():
    cause = AccessLost(FULL, headline=HEADLINE)
    try:
        try:
            raise cause
        except AccessLost as exc:
            raise TransportError("could not list messages") from exc
    except TransportError as wrapped:
        assert access_lost_in(wrapped) is cause and brief(wrapped) == HEADLINE
    assert access_lost_in(TransportError("gone")) is None and brief(TransportError("gone")) == "gone"
    assert str(cause) == FULL and AccessLost("only text").headline == "only text"


def test_a_client_stops_at_its_first_failed_poll_and_reports_why(tmp_path, caplog):
    hub = MemoryHub()
    transport = LoseAfterPrepare(CLIENTS[0], hub)
    loop = ClientLoop(client_app(), mailbox(transport, [SERVER]), poll_interval=0.05)
    with caplog.at_level(logging.INFO):
        started = time.monotonic()
        report = loop.run()
    assert time.monotonic() - started < 30.0  # at once, not after retries; slack for a loaded machine
    assert report.stopped_by == "access-lost" and report.access_lost == FULL
    assert transport.failed == ["poll"]  # one poll, not one per interval
    messages = [r.getMessage() for r in caplog.records]
    assert f"stopping: {HEADLINE}" in messages
    assert not any("poll failed" in m or "Fix:" in m for m in messages)  # the whole text is the caller's to say


def server_app(rounds: int, catch: bool = False) -> ServerApp:
    """FedAvg over the grid; ``catch``: a ServerApp that treats a failed round as a failure and goes on
    (what Flower's legacy strategies do with an exception in one client's exchange)."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        for _ in range(rounds if catch else 1):
            try:
                FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_available_nodes=len(CLIENTS)).start(
                    grid=grid, initial_arrays=ArrayRecord([np.zeros(2)]), num_rounds=rounds, timeout=20
                )
            except Exception:
                if not catch:
                    raise

    return app


class LoseAfterFirstReply(LosingTransport):
    """The server's transport: access is lost once the first round's replies were taken."""

    def delete(self, handles):
        super().delete(handles)
        self.lose()  # answered requests are deleted after their replies are filed


@pytest.mark.parametrize("catch", [False, True], ids=["strategy-raises", "strategy-goes-on"])
def test_a_server_that_loses_access_ends_the_run_at_once_tries_the_stop_signals_and_says_why(tmp_path, caplog, catch):
    hub = MemoryHub()
    stop = threading.Event()
    loops = [
        ClientLoop(client_app(), mailbox(MemoryTransport(email, hub), [SERVER]), poll_interval=0.05, stop_event=stop)
        for email in CLIENTS
    ]
    transport = LoseAfterFirstReply(SERVER, hub)
    context = Context(run_id=0, node_id=0, node_config={}, state=RecordDict(), run_config={"step": 1.0})
    with caplog.at_level(logging.INFO), loops_running(loops, stop):
        started = time.monotonic()
        outcome = serve(server_app(5, catch), context, CLIENTS, "t", settings=settings(tmp_path), transport=transport)
        seconds = time.monotonic() - started
    assert seconds < 10.0  # not a message timeout per round
    assert not outcome.completed and outcome.access_lost == FULL and outcome.error == FULL
    assert outcome.context is context
    assert "send" in transport.failed  # the stop signals were tried ...
    messages = [r.getMessage() for r in caplog.records]
    assert f"could not send a stop signal: {HEADLINE}" in messages  # ... and the log says they failed
    assert not any("Traceback" in m or "Fix:" in m for m in messages)
    assert sum(HEADLINE in m for m in messages) <= 3  # said where the run stopped and where the stops failed


def test_a_client_reply_refused_for_good_stops_the_client_and_sends_nothing_more(tmp_path):
    hub = MemoryHub()
    transport = LosingTransport(CLIENTS[0], hub)
    stop = threading.Event()

    app = client_app(on_train=transport.lose)  # the reply's upload is refused (a daily cap reached while training)
    loop = ClientLoop(app, mailbox(transport, [SERVER]), poll_interval=0.05, stop_event=stop)
    other = ClientLoop(
        client_app(), mailbox(MemoryTransport(CLIENTS[1], hub), [SERVER]), poll_interval=0.05, stop_event=stop
    )
    context = Context(run_id=0, node_id=0, node_config={}, state=RecordDict(), run_config={"step": 1.0})
    with loops_running([loop, other], stop):
        outcome = serve(
            server_app(1),
            context,
            CLIENTS,
            "t",
            settings=settings(tmp_path, 1.0),
            transport=MemoryTransport(SERVER, hub),
        )
    assert loop.report.stopped_by == "access-lost" and loop.report.access_lost == FULL
    assert loop.report.handled == 0 and transport.failed[0] == "send"
    assert outcome.completed and outcome.summary["missing"] == 1  # the server reports that datasite's failure
