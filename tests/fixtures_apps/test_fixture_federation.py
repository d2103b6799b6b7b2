"""Both sample ServerApps, unchanged, end to end over an in-process Grid.

``DirectGrid`` (see direct_grid.py) hands each message, serialised and parsed with
Flower's protobuf serde, straight to the ClientApp. The run goes through
``flwr.server.run_serverapp.run``, as the real launcher will; the per-round history is
what Flower itself recorded (the strategy's ``Result`` or the legacy ``History``, read by
``round_metrics``), and the final model is read back from the returned Context. The
Grid-call assertions pin down how flwr 1.41 drives a Grid in each style.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
from fl_common.data import load_partition
from fl_common.model import SoftmaxRegression
from flwr.app import ArrayRecord

from tests.helpers.direct_grid import run_federation
from tests.helpers.flower_metrics import history_of


def check_history(run, rounds: int, num_clients: int = 3) -> dict:
    context, grid = run
    assert grid.metrics["planned_rounds"] == rounds
    history = history_of(grid.metrics)
    assert history["round"] == list(range(1, rounds + 1))
    assert history["num_clients"] == [num_clients] * rounds
    for key in ("loss", "accuracy", "train_loss", "train_accuracy"):
        assert len(history[key]) == rounds and all(math.isfinite(v) for v in history[key])
    acc, loss = history["accuracy"], history["loss"]
    assert all(b > a for a, b in zip(acc, acc[1:])), acc
    assert all(b < a for a, b in zip(loss, loss[1:])), loss
    assert acc[-1] > 0.85, acc
    # The final model is in the state too, and it is the trained one.
    model_rec = context.state["model"]
    assert isinstance(model_rec, ArrayRecord)
    model = SoftmaxRegression()
    model.set_weights(model_rec.to_numpy_ndarrays())
    tests = [load_partition(p, num_clients)[2:] for p in range(num_clients)]
    n = sum(len(y) for _, y in tests)
    pooled = sum(model.evaluate(x, y)[1] * len(y) for x, y in tests) / n
    assert pooled == pytest.approx(acc[-1], abs=1e-9)
    return history


@pytest.fixture(scope="module")
def legacy_run(legacy_app):
    server_app, client_app, run_config = legacy_app
    return run_federation(server_app, client_app, 3, run_config)


@pytest.fixture(scope="module")
def message_run(message_app):
    server_app, client_app, run_config = message_app
    return run_federation(server_app, client_app, 3, run_config)


def test_legacy_serverapp_runs_five_rounds(legacy_run):
    check_history(legacy_run, 5)


def test_message_serverapp_runs_five_rounds(message_run):
    check_history(message_run, 5)


def test_both_styles_agree(legacy_run, message_run):
    a, b = history_of(legacy_run[1].metrics), history_of(message_run[1].metrics)
    for key in ("loss", "accuracy", "train_loss", "train_accuracy"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-9)


def test_how_the_legacy_serverapp_drives_the_grid(legacy_run):
    _, grid = legacy_run
    sends = [c for c in grid.calls if c.method == "send_and_receive"]
    # One message per call, no timeout argument, from ThreadPoolExecutor workers
    # (concurrently, one per client); 5 rounds x (3 train + 3 evaluate). No
    # get_parameters message: the strategy supplies the initial model.
    assert all(c.num_messages == 1 and c.timeout is None for c in sends)
    assert all(c.thread != threading.main_thread().name for c in sends)
    types = [c.message_types[0] for c in sends]
    assert types.count("train") == 15 and types.count("evaluate") == 15 and len(types) == 30
    # group_id is the round number; the message TTL is ServerConfig.round_timeout.
    assert sorted({c.group_ids[0] for c in sends}) == ["1", "2", "3", "4", "5"]
    assert {c.ttls[0] for c in sends} == {600.0}
    assert any(c.method == "get_node_ids" for c in grid.calls)


def test_how_the_message_serverapp_drives_the_grid(message_run):
    _, grid = message_run
    sends = [c for c in grid.calls if c.method == "send_and_receive"]
    # One call per phase with all 3 messages, from the thread running the
    # ServerApp, with the strategy's timeout (run config "round-timeout").
    assert len(sends) == 10
    assert all(c.num_messages == 3 and c.timeout == 600.0 for c in sends)
    assert all(c.thread == threading.main_thread().name for c in sends)
    assert [c.message_types[0] for c in sends] == ["train", "evaluate"] * 5
    # FedAvg builds Message(...) itself: empty group_id, default TTL (12 h).
    assert {g for c in sends for g in c.group_ids} == {""}
    assert {t for c in sends for t in c.ttls} == {43200.0}


@pytest.mark.parametrize("kind", ["legacy", "message"])
def test_run_config_overrides_and_rerun_resets_history(kind, legacy_app, message_app):
    server_app, client_app, run_config = legacy_app if kind == "legacy" else message_app
    cfg = dict(run_config, **{"num-server-rounds": 2, "min-clients": 2})
    context, grid = run_federation(server_app, client_app, 2, cfg)
    assert history_of(grid.metrics)["round"] == [1, 2]
    assert history_of(grid.metrics)["num_clients"] == [2, 2]
    # Running again with the same Context starts a fresh history.
    context, grid = run_federation(server_app, client_app, 2, context=context)
    assert history_of(grid.metrics)["round"] == [1, 2]


@pytest.mark.parametrize("kind", ["legacy", "message"])
def test_a_failing_client_is_a_failure_not_a_crash(kind, legacy_app, message_app):
    # Node 102's node_config lacks "num-partitions": its ClientApp raises, the Grid
    # returns an error reply, and each round goes on with the other two nodes.
    server_app, client_app, run_config = legacy_app if kind == "legacy" else message_app
    nodes = {
        100: {"partition-id": 0, "num-partitions": 3},
        101: {"partition-id": 1, "num-partitions": 3},
        102: {"partition-id": 2},
    }
    cfg = dict(run_config, **{"num-server-rounds": 2})
    _, grid = run_federation(server_app, client_app, 3, cfg, node_configs=nodes)
    history = history_of(grid.metrics)
    assert history["round"] == [1, 2]
    assert history["num_clients"] == [2, 2]
    assert history["accuracy"][1] > history["accuracy"][0]
