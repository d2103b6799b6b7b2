"""Truthful outcomes and Flower Context semantics, over the in-memory transport.

The server's run config reaches every ClientApp's Context; error replies are
counted per round and datasite and logged; a datasite that never publishes a
key is excluded and the run goes on with the others.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
from flwr.app import ArrayRecord
from flwr.app import ConfigRecord
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
from syft_flwr_gdrive.flower.tally import Tally
from syft_flwr_gdrive.flower.tally import error_type
from syft_flwr_gdrive.flower.tally import round_of
from syft_flwr_gdrive.mailbox.ledger import Ledger
from syft_flwr_gdrive.mailbox.mailbox import Mailbox
from syft_flwr_gdrive.transport.memory import MemoryHub
from syft_flwr_gdrive.transport.memory import MemoryTransport
from tests.helpers.client_loops import loops_running

SERVER = "ds@example.com"
CLIENTS = ["a@example.com", "b@example.com", "c@example.com"]


def client_app(seen: list, fail_rounds: tuple[int, ...] = ()) -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        seen.append(dict(context.run_config))
        rnd = int(msg.content["config"]["server-round"])
        if rnd in fail_rounds:
            raise KeyError("penalty")
        arrays = msg.content["arrays"].to_numpy_ndarrays()
        step = float(context.run_config["step"])
        content = RecordDict(
            {"arrays": ArrayRecord([a + step for a in arrays]), "metrics": MetricRecord({"num-examples": 1})}
        )
        return Message(content, reply_to=msg)

    return app


def server_app(rounds: int, min_nodes: int = 3) -> ServerApp:
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:  # never touches context.state
        FedAvg(fraction_train=1.0, fraction_evaluate=0.0, min_available_nodes=min_nodes).start(
            grid=grid, initial_arrays=ArrayRecord([np.zeros(2)]), num_rounds=rounds, timeout=20
        )

    return app


def federate(
    tmp_path, apps, *, run_config, rounds=2, msg_timeout=10.0, default_run_config=None, server=None, **serve_options
):
    """Run clients (None: that datasite never starts) and the server; returns (outcome, loops, hub)."""
    hub = MemoryHub()
    stop = threading.Event()
    loops = []
    for email, app in zip(CLIENTS, apps):
        if app is None:
            continue
        box = Mailbox(
            MemoryTransport(email, hub),
            app_key("t"),
            [SERVER],
            Ledger(None),
            sealer=Sealer(Identity.ephemeral(), PinStore(None)),
        )
        loops.append(
            ClientLoop(app, box, poll_interval=0.05, stop_event=stop, linger=1.0, run_config=default_run_config)
        )
    with loops_running(loops, stop, drain=10):
        settings = Settings.from_env({}, email=SERVER, poll_interval=0.05, msg_timeout=msg_timeout, state_dir=tmp_path)
        context = Context(run_id=0, node_id=0, node_config={}, state=RecordDict(), run_config=dict(run_config))
        outcome = serve(
            server or server_app(rounds),
            context,
            CLIENTS,
            "t",
            settings=settings,
            transport=MemoryTransport(SERVER, hub),
            **serve_options,
        )
    return outcome, loops, hub


def test_clients_see_the_servers_run_config_not_their_own(tmp_path):
    seen: list = []
    outcome, loops, hub = federate(
        tmp_path,
        [client_app(seen) for _ in CLIENTS],
        run_config={"step": 0.5, "name": "x"},
        default_run_config={"step": 9.0, "name": "mine"},  # the keys it declares: the server's values win
    )
    assert outcome.completed and outcome.error is None
    assert len(seen) == 6 and all(cfg == {"step": 0.5, "name": "x"} for cfg in seen)
    assert all(loop.report.run_config == {"step": 0.5, "name": "x"} for loop in loops)
    assert outcome.summary == {"replies": 6, "errors": 0, "missing": 0, "excluded": 0, "error_types": {}}
    assert [r["round"] for r in outcome.rounds] == ["1", "2"]  # Message-API rounds from "server-round"
    assert hub.files == {}


def test_error_replies_are_counted_per_round_and_logged_once_each(tmp_path, caplog):
    seen: list = []
    apps = [client_app(seen), client_app(seen), client_app(seen, fail_rounds=(2,))]
    with caplog.at_level(logging.INFO):
        outcome, loops, _ = federate(tmp_path, apps, run_config={"step": 1.0})
    assert outcome.completed  # the ServerApp returned normally: a run with error replies still completed
    by_round = {r["round"]: r["datasites"] for r in outcome.rounds}
    assert by_round["1"]["c@example.com"]["errors"] == 0
    assert by_round["2"]["c@example.com"] == {
        "replies": 1,
        "errors": 1,
        "missing": 0,
        "excluded": 0,
        "error_types": {"KeyError": 1},
    }
    assert outcome.summary["errors"] == 1 and outcome.summary["error_types"] == {"KeyError": 1}
    warnings = [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "with an error" in r.getMessage()
    ]
    assert warnings == ["round 2: c@example.com answered train with an error: KeyError"]
    assert any("1 error replies (KeyError x1)" in r.getMessage() for r in caplog.records)
    assert loops[2].report.error_types == {"KeyError": 1}


def test_a_datasite_that_never_starts_is_excluded_and_the_run_goes_on(tmp_path, caplog):
    seen: list = []
    apps = [client_app(seen), client_app(seen), None]
    outcome, loops, hub = federate(tmp_path, apps, run_config={"step": 1.0}, msg_timeout=1.0)
    assert outcome.completed
    assert list(outcome.excluded) == ["c@example.com"] and "no trusted public key" in outcome.excluded["c@example.com"]
    assert outcome.summary["replies"] == 4 and outcome.summary["excluded"] == 2
    assert all(loop.report.stopped_by == "stop-signal" for loop in loops)  # the reachable ones were stopped
    assert hub.files == {}


def test_round_of_and_error_type():
    msg = Message(RecordDict({"config": ConfigRecord({"server-round": 3})}), 5, "train")
    assert round_of(msg) == "3"
    assert round_of(Message(RecordDict(), 5, "train", group_id="7")) == "7"
    assert round_of(Message(RecordDict(), 5, "train")) == "-"
    from flwr.app import Error

    reply = Message(Error(code=1, reason="ClientApp raised ZeroDivisionError"), reply_to=msg)
    assert error_type(reply) == "ZeroDivisionError"
    hostile = Message(Error(code=7, reason="\x1b[2J rm -rf; raised \nFAKE LOG LINE"), reply_to=msg)
    assert error_type(hostile) == "error code 7"  # peer text never reaches a log line raw


def test_tally_totals():
    t = Tally()
    t.reply("1", "a"), t.reply("1", "b", "KeyError"), t.missing("2", "a"), t.excluded("2", "c")
    assert t.summary() == {"replies": 2, "errors": 1, "missing": 1, "excluded": 1, "error_types": {"KeyError": 1}}
    assert [r["round"] for r in t.rounds()] == ["1", "2"]


def test_a_serverapp_that_raises_is_not_completed_and_says_why(tmp_path):
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        raise ValueError("strategy misconfigured")

    hub = MemoryHub()
    settings = Settings.from_env(
        {}, email=SERVER, poll_interval=0.05, msg_timeout=1.0, state_dir=tmp_path, encryption=False
    )
    context = Context(run_id=0, node_id=0, node_config={}, state=RecordDict(), run_config={})
    outcome = serve(app, context, CLIENTS, "t", settings=settings, transport=MemoryTransport(SERVER, hub))
    assert not outcome.completed and outcome.error == "ValueError: strategy misconfigured"
    assert outcome.context is context and outcome.summary["replies"] == 0


def test_a_client_without_a_project_takes_the_servers_run_config_as_sent_and_says_so_once(tmp_path, caplog):
    seen: list = []
    outcome, _, _ = federate(tmp_path, [client_app(seen) for _ in CLIENTS], run_config={"step": 0.5, "x": "y"})
    assert outcome.completed and len(seen) == 6 and all(cfg == {"step": 0.5, "x": "y"} for cfg in seen)
    said = [r for r in caplog.records if "no project run config is known here" in r.getMessage()]
    assert len(said) == len(CLIENTS)  # once per client, not once per request


def query_client_app() -> ClientApp:
    app = ClientApp()

    @app.query()
    def query(msg: Message, context: Context) -> Message:
        return Message(RecordDict({"metrics": MetricRecord({"rows": 10})}), reply_to=msg)

    return app


def query_server_app(exchanges: int) -> ServerApp:
    """A query app as Flower's examples write them: its own Messages, no group id, no server-round."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        for _ in range(exchanges):
            messages = [Message(RecordDict(), node, "query") for node in grid.get_node_ids()]
            assert all(not reply.has_error() for reply in grid.send_and_receive(messages))

    return app


def test_a_query_apps_exchanges_are_its_rounds(tmp_path):
    """Three queries without Flower rounds are three rounds, numbered in order, not one "-"."""
    outcome, loops, hub = federate(
        tmp_path, [query_client_app() for _ in CLIENTS], run_config={}, server=query_server_app(3)
    )
    assert outcome.completed
    assert [r["round"] for r in outcome.rounds] == ["1", "2", "3"]
    assert all(site["replies"] == 1 for r in outcome.rounds for site in r["datasites"].values())
    assert outcome.metrics == {"planned_rounds": None, "rounds": []}  # no strategy: Flower recorded no metrics
    assert hub.files == {}


def test_flowers_own_metrics_and_the_progress_are_reported(tmp_path):
    """A strategy's Result reaches the outcome with no help from the app, and progress is handed out as it goes."""
    seen: list = []
    progress: list[dict] = []
    outcome, _, _ = federate(
        tmp_path,
        [client_app(seen) for _ in CLIENTS],
        run_config={"step": 1.0},
        rounds=3,
        on_progress=progress.append,
    )
    assert outcome.metrics["planned_rounds"] == 3
    assert [r["round"] for r in outcome.metrics["rounds"]] == [1, 2, 3]
    assert all(set(r) == {"round", "train"} for r in outcome.metrics["rounds"])  # fraction_evaluate=0: train only
    assert progress, "on_progress was never called"
    assert progress[-1] == {"rounds": outcome.rounds, "metrics": outcome.metrics}
