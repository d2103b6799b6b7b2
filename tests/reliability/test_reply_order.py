"""Deterministic regression test: the final weights must not depend on the order replies arrive in.

Three in-process clients (memory transport) answer one FedAvg round with fixed arrays whose
float sum depends on the order of addition; each client sleeps a different time, so the
server receives their replies in a chosen order. The same inputs must aggregate to the same
bits whatever the arrival order.
"""

from __future__ import annotations

import threading
import time

import numpy as np
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
from syft_flwr_gdrive.flower.app_mailbox import app_key
from syft_flwr_gdrive.flower.client_loop import ClientLoop
from syft_flwr_gdrive.flower.syftbox_server import syftbox_flwr_server
from syft_flwr_gdrive.mailbox.ledger import Ledger
from syft_flwr_gdrive.mailbox.mailbox import Mailbox
from syft_flwr_gdrive.transport.memory import MemoryHub
from syft_flwr_gdrive.transport.memory import MemoryTransport
from tests.helpers.client_loops import loops_running

SERVER = "ds@example.com"
CLIENTS = ["a@example.com", "b@example.com", "c@example.com"]
# x/3 summed in different orders: (1e16/3 + 1/3) - 1e16/3 != (1e16/3 - 1e16/3) + 1/3
VALUES = {"a@example.com": 1e16, "b@example.com": 1.0, "c@example.com": -1e16}


def client_app(value: float, delay: float) -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        time.sleep(delay)
        content = RecordDict(
            {"arrays": ArrayRecord([np.full(4, value)]), "metrics": MetricRecord({"num-examples": 10})}
        )
        return Message(content, reply_to=msg)

    return app


def server_app() -> ServerApp:
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        strategy = FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_available_nodes=3, min_train_nodes=3)
        result = strategy.start(grid=grid, initial_arrays=ArrayRecord([np.zeros(4)]), num_rounds=1, timeout=20)
        context.state["final"] = ArrayRecord(result.arrays.to_numpy_ndarrays())

    return app


def final_weights(tmp_path, arrival: list[str]) -> bytes:
    hub = MemoryHub()
    # Plain payloads: the in-process clients below have no encryption keys (the order bug is below the crypto).
    settings = Settings.from_env(
        {"SYFT_FLWR_ENCRYPTION_ENABLED": "false"}, email=SERVER, poll_interval=0.05, msg_timeout=20, state_dir=tmp_path
    )
    stop = threading.Event()
    loops = []
    for email in CLIENTS:
        delay = 0.6 * arrival.index(email)
        mailbox = Mailbox(MemoryTransport(email, hub), app_key("order"), [SERVER], Ledger(None))
        loops.append(
            ClientLoop(client_app(VALUES[email], delay), mailbox, poll_interval=0.05, stop_event=stop, linger=0.5)
        )
    with loops_running(loops, stop):
        context = Context(run_id=0, node_id=0, node_config={}, state=RecordDict(), run_config={})
        out = syftbox_flwr_server(
            server_app(), context, CLIENTS, "order", settings=settings, transport=MemoryTransport(SERVER, hub)
        )
    assert "final" in out.state, "the round did not complete"
    return b"".join(np.ascontiguousarray(a).tobytes() for a in out.state["final"].to_numpy_ndarrays())


def test_reply_arrival_order_is_observable_in_float_sums():
    """The premise: FedAvg's weighted sum of these inputs differs by order of addition."""
    a, b, c = (np.full(4, VALUES[e]) * (1 / 3) for e in CLIENTS)
    assert not np.array_equal((a + b) + c, (a + c) + b)


# Regression test (was a strict xfail, fixed in 584af16); the bug was:
#   ORDER_BUG
def test_final_weights_do_not_depend_on_reply_arrival_order(tmp_path):
    first = final_weights(tmp_path / "abc", ["a@example.com", "b@example.com", "c@example.com"])
    second = final_weights(tmp_path / "acb", ["a@example.com", "c@example.com", "b@example.com"])
    assert first == second, (np.frombuffer(first), np.frombuffer(second))
