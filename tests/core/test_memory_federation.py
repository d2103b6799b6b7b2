"""Grid + client loop + server orchestration over the in-memory transport (no storage service)."""

from __future__ import annotations

import threading

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
from syft_flwr_gdrive.flower.syftbox_server import syftbox_flwr_server
from syft_flwr_gdrive.mailbox.ledger import Ledger
from syft_flwr_gdrive.mailbox.mailbox import Mailbox
from syft_flwr_gdrive.transport.memory import MemoryHub
from syft_flwr_gdrive.transport.memory import MemoryTransport
from tests.helpers.client_loops import loops_running

SERVER = "ds@example.com"
CLIENTS = ["a_1@example.com", "b.2+x@example.com", "o'neil@example.com"]


def make_client_app(fail: bool = False) -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        if fail:
            raise RuntimeError("secret data value 42 at /home/alice/data.csv")
        arrays = msg.content["arrays"].to_numpy_ndarrays()
        target = float(context.node_config.get("target", 1.0))
        new = [a + 0.5 * (target - a) for a in arrays]
        content = RecordDict({"arrays": ArrayRecord(new), "metrics": MetricRecord({"num-examples": 10})})
        return Message(content, reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        arrays = msg.content["arrays"].to_numpy_ndarrays()
        loss = float(np.abs(arrays[0] - 2.0).mean())
        return Message(RecordDict({"metrics": MetricRecord({"loss": loss, "num-examples": 10})}), reply_to=msg)

    return app


def make_server_app(rounds: int, model_size: int = 4) -> ServerApp:
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        strategy = FedAvg(fraction_train=1.0, fraction_evaluate=1.0, min_available_nodes=3)
        initial = ArrayRecord([np.zeros(model_size)])
        result = strategy.start(grid=grid, initial_arrays=initial, num_rounds=rounds, timeout=30)
        final = result.arrays.to_numpy_ndarrays()[0]
        context.state["final"] = MetricRecord({"value": float(final.mean())})

    return app


def run_federation(
    tmp_path, client_apps, *, rounds=2, client_encryption=True, msg_timeout=10.0, model_size=4, part_mib=None
):
    hub = MemoryHub()
    env = {} if part_mib is None else {"SYFT_FLWR_BLOB_PART_MB": str(part_mib)}
    settings = Settings.from_env(env, email=SERVER, poll_interval=0.05, msg_timeout=msg_timeout, state_dir=tmp_path)
    stop = threading.Event()
    loops = []
    for email, app, target in zip(CLIENTS, client_apps, (1.0, 2.0, 3.0)):
        sealer = Sealer(Identity.ephemeral(), PinStore(None)) if client_encryption else None
        mailbox = Mailbox(
            MemoryTransport(email, hub),
            app_key("demo"),
            [SERVER],
            Ledger(None),
            sealer=sealer,
            blob_part_bytes=settings.blob_part_bytes,
        )
        loops.append(
            ClientLoop(app, mailbox, poll_interval=0.05, node_config={"target": target}, stop_event=stop, linger=1.0)
        )
    with loops_running(loops, stop, drain=10 if client_encryption else 0.5):
        context = Context(run_id=0, node_id=0, node_config={}, state=RecordDict(), run_config={})
        out = syftbox_flwr_server(
            make_server_app(rounds, model_size),
            context,
            CLIENTS,
            "demo",
            settings=settings,
            transport=MemoryTransport(SERVER, hub),
        )
    return out, loops, hub


def test_message_api_federation_over_memory_transport(tmp_path):
    out, loops, hub = run_federation(tmp_path, [make_client_app() for _ in CLIENTS], rounds=3)
    # FedAvg of targets 1,2,3 moves the model toward 2.0: 0 -> 1.0 -> 1.5 -> 1.75
    assert out.state["final"]["value"] == pytest.approx(1.75, abs=1e-6)
    assert all(loop.report.stopped_by == "stop-signal" for loop in loops)
    assert all(loop.report.handled == 6 for loop in loops)  # 3 rounds x (train + evaluate)
    assert hub.files == {}, "message files left behind after the run"
    assert hub.blobs == {}


def test_models_in_parts_both_ways_train_and_leave_nothing_behind(tmp_path, monkeypatch):
    """SYFT_FLWR_BLOB_PART_MB=1: parts of one AEAD chunk, so a 3.2 MB model goes in 4 parts out and back."""
    stored: list[str] = []
    real = MemoryTransport.put_blob_part

    def noting(self, app, locator, data):
        stored.append(self.email)
        real(self, app, locator, data)

    monkeypatch.setattr(MemoryTransport, "put_blob_part", noting)
    out, loops, hub = run_federation(
        tmp_path, [make_client_app() for _ in CLIENTS], rounds=2, model_size=400_000, part_mib=1
    )
    assert out.state["final"]["value"] == pytest.approx(1.5, abs=1e-6)
    assert all(loop.report.handled == 4 for loop in loops)
    # three distinct global models (round 2 trains the one round 1 evaluated), each client's model each round
    assert stored.count(SERVER) == 3 * 4 and all(stored.count(email) == 2 * 4 for email in CLIENTS)
    assert hub.files == {} and hub.blobs == {}  # every part deleted, the clients' included


def test_client_app_error_reply_hides_details(tmp_path, caplog):
    apps = [make_client_app(), make_client_app(), make_client_app(fail=True)]
    out, loops, hub = run_federation(tmp_path, apps, rounds=1)
    assert loops[2].report.errors == 1
    assert "final" in out.state  # the server still finished with the two good clients


def test_fail_closed_when_clients_have_encryption_off(tmp_path, caplog):
    """The server has encryption on (the default): plaintext clients are never sent to nor read."""
    out, loops, hub = run_federation(
        tmp_path, [make_client_app() for _ in CLIENTS], rounds=1, client_encryption=False, msg_timeout=1.0
    )
    assert "final" not in out.state  # the server's error path returned the original context
    assert all(loop.report.handled == 0 for loop in loops)
    assert "no trusted public key" in caplog.text and "no datasite can be reached" in caplog.text


def test_the_server_publishes_its_keys_before_announcing_its_run(tmp_path):
    """Peers read the server's folders by id at every poll (Drive transport): keys seen before the run hide
    nothing, and keys first let the Drive transport stamp both with one write per folder, not two."""
    order: list[str] = []

    class Recording(MemoryTransport):
        def publish_keys(self, app: str, keys: dict[str, str]) -> None:
            order.append("keys")
            super().publish_keys(app, keys)

        def announce_run(self, app: str, run_id: int) -> None:
            order.append("run")
            super().announce_run(app, run_id)

    settings = Settings.from_env({}, email=SERVER, poll_interval=0.05, msg_timeout=0.2, state_dir=tmp_path)
    context = Context(run_id=0, node_id=0, node_config={}, state=RecordDict(), run_config={})
    syftbox_flwr_server(
        make_server_app(1), context, CLIENTS, "demo", settings=settings, transport=Recording(SERVER, MemoryHub())
    )
    assert order[:2] == ["keys", "run"], order
