"""Call each sample ClientApp directly with real Flower Messages.

The instructions are built exactly as the server side builds them: for the legacy
app the way ``GridClientProxy`` wraps ``FitIns``/``EvaluateIns`` into a RecordDict,
for the Message-API app the way ``flwr.serverapp.strategy.FedAvg`` does. Then a few
rounds of plain federated averaging over three partitions, by hand.
"""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from fl_common.data import DEFAULT_DATA_PATH
from fl_common.task import DEFAULTS
from fl_common.task import initial_weights
from flwr.app import ArrayRecord
from flwr.app import ConfigRecord
from flwr.app import Context
from flwr.app import Message
from flwr.app import MessageType
from flwr.app import RecordDict
from flwr.common import EvaluateIns
from flwr.common import FitIns
from flwr.common import ndarrays_to_parameters
from flwr.common import parameters_to_ndarrays
from flwr.compat.common import recorddict_compat as compat

from tests.helpers.direct_grid import roundtrip
from tests.helpers.direct_grid import task_identity

RUN_ID = 42
NUM_CLIENTS = 3
# What both server apps send by default.
TRAIN_CONFIG = {k: DEFAULTS[k] for k in ("local-epochs", "learning-rate", "batch-size")}


@pytest.fixture(autouse=True)
def _identity():
    with task_identity(RUN_ID):
        yield


def node_context(pid: int, num: int = NUM_CLIENTS, **extra) -> Context:
    return Context(
        run_id=RUN_ID,
        node_id=100 + pid,
        node_config={"partition-id": pid, "num-partitions": num, **extra},
        state=RecordDict(),
        run_config={},
    )


def instruction(content: RecordDict, node_id: int, message_type: str, server_round: int) -> Message:
    msg = Message(content, node_id, message_type, group_id=str(server_round))
    msg.metadata.__dict__["_message_id"] = f"ins-{node_id}-{message_type}-{server_round}"
    return roundtrip(msg)


# --- legacy: ClientApp(client_fn=...) --------------------------------------------------
def legacy_train(client_app, weights, pid, server_round, **cfg):
    config = {"server-round": server_round, **TRAIN_CONFIG, **cfg}
    rd = compat.fitins_to_recorddict(FitIns(ndarrays_to_parameters(weights), config), keep_input=True)
    reply = roundtrip(client_app(instruction(rd, 100 + pid, MessageType.TRAIN, server_round), node_context(pid)))
    assert not reply.has_error()
    return compat.recorddict_to_fitres(reply.content, keep_input=False), reply


def legacy_evaluate(client_app, weights, pid, server_round):
    rd = compat.evaluateins_to_recorddict(
        EvaluateIns(ndarrays_to_parameters(weights), {"server-round": server_round}), keep_input=True
    )
    reply = roundtrip(client_app(instruction(rd, 100 + pid, MessageType.EVALUATE, server_round), node_context(pid)))
    assert not reply.has_error()
    return compat.recorddict_to_evaluateres(reply.content), reply


def test_legacy_client_replies_with_weights_and_metrics(legacy_app):
    _, client_app, _ = legacy_app
    fit_res, reply = legacy_train(client_app, initial_weights(), 0, 1)
    assert reply.metadata.reply_to_message_id == "ins-100-train-1"
    assert reply.metadata.message_type == MessageType.TRAIN
    weights = parameters_to_ndarrays(fit_res.parameters)
    assert [w.shape for w in weights] == [(64, 10), (10,)]
    assert np.abs(weights[0]).sum() > 0  # it trained
    assert fit_res.num_examples > 100
    assert set(fit_res.metrics) == {"train_loss", "train_accuracy"}
    assert 0.0 <= fit_res.metrics["train_accuracy"] <= 1.0

    eval_res, reply = legacy_evaluate(client_app, weights, 0, 1)
    assert reply.metadata.message_type == MessageType.EVALUATE
    assert eval_res.num_examples > 20
    assert eval_res.loss > 0 and eval_res.loss == pytest.approx(eval_res.metrics["loss"])
    assert 0.3 < eval_res.metrics["accuracy"] <= 1.0


def test_legacy_client_is_deterministic_and_honours_config(legacy_app):
    _, client_app, _ = legacy_app
    a, _ = legacy_train(client_app, initial_weights(), 1, 2)
    b, _ = legacy_train(client_app, initial_weights(), 1, 2)
    np.testing.assert_array_equal(parameters_to_ndarrays(a.parameters)[0], parameters_to_ndarrays(b.parameters)[0])
    more, _ = legacy_train(client_app, initial_weights(), 1, 2, **{"local-epochs": 4})
    assert more.metrics["train_loss"] < a.metrics["train_loss"]


# --- Message API: ClientApp() with @app.train / @app.evaluate --------------------------
def fedavg_content(weights, config) -> RecordDict:
    # What flwr.serverapp.strategy.FedAvg.configure_train/_evaluate put in a message.
    return RecordDict({"arrays": ArrayRecord(weights), "config": ConfigRecord(config)})


def message_train(client_app, weights, pid, server_round, **cfg):
    config = {**TRAIN_CONFIG, "server-round": server_round, **cfg}
    ins = instruction(fedavg_content(weights, config), 100 + pid, MessageType.TRAIN, server_round)
    reply = roundtrip(client_app(ins, node_context(pid)))
    assert not reply.has_error()
    return reply


def message_evaluate(client_app, weights, pid, server_round):
    ins = instruction(
        fedavg_content(weights, {"server-round": server_round}), 100 + pid, MessageType.EVALUATE, server_round
    )
    reply = roundtrip(client_app(ins, node_context(pid)))
    assert not reply.has_error()
    return reply


def test_message_client_replies_with_arrayrecord_and_metricrecord(message_app):
    _, client_app, _ = message_app
    reply = message_train(client_app, initial_weights(), 2, 1)
    assert reply.metadata.reply_to_message_id == "ins-102-train-1"
    content = reply.content
    assert list(content.array_records) == ["arrays"] and list(content.metric_records) == ["metrics"]
    weights = content["arrays"].to_numpy_ndarrays()
    assert [w.shape for w in weights] == [(64, 10), (10,)]
    metrics = content["metrics"]
    assert set(metrics) == {"train_loss", "train_accuracy", "num-examples"}
    assert isinstance(metrics["num-examples"], int) and metrics["num-examples"] > 100

    reply = message_evaluate(client_app, weights, 2, 1)
    content = reply.content
    assert len(content.array_records) == 0 and list(content.metric_records) == ["metrics"]
    assert set(content["metrics"]) == {"loss", "accuracy", "num-examples"}
    assert 0.3 < content["metrics"]["accuracy"] <= 1.0


def test_unknown_message_type_is_refused(message_app):
    _, client_app, _ = message_app
    ins = instruction(fedavg_content(initial_weights(), {}), 100, MessageType.QUERY, 1)
    with pytest.raises(ValueError):
        client_app(ins, node_context(0))


def test_node_config_data_path_and_bad_config(message_app, tmp_path):
    _, client_app, _ = message_app
    # A data owner's own file (here: the first 600 rows of the digits) replaces
    # the shipped data; without partition keys the whole file is the node's data.
    with gzip.open(DEFAULT_DATA_PATH, "rt") as fh:
        rows = fh.read().splitlines()[:600]
    own = tmp_path / "own.csv"
    own.write_text("\n".join(rows) + "\n")
    ctx = Context(RUN_ID, 100, {"data-path": str(own)}, RecordDict(), {})
    ins = instruction(fedavg_content(initial_weights(), {"server-round": 1}), 100, MessageType.TRAIN, 1)
    n_train = client_app(ins, ctx).content["metrics"]["num-examples"]
    ins = instruction(fedavg_content(initial_weights(), {"server-round": 1}), 100, MessageType.EVALUATE, 1)
    n_test = client_app(ins, ctx).content["metrics"]["num-examples"]
    assert n_train + n_test == 600 and 100 < n_test < 150

    ctx = Context(RUN_ID, 100, {"partition-id": 0}, RecordDict(), {})
    with pytest.raises(ValueError, match="num-partitions"):
        client_app(ins, ctx)


# --- hand-rolled federated averaging -----------------------------------------------------
def _average(weight_lists, counts):
    total = sum(counts)
    return [sum(w[k] * n for w, n in zip(weight_lists, counts)) / total for k in range(2)]


def run_legacy_rounds(client_app, rounds):
    weights, accs = initial_weights(), []
    for rnd in range(1, rounds + 1):
        fits = [legacy_train(client_app, weights, pid, rnd)[0] for pid in range(NUM_CLIENTS)]
        weights = _average([parameters_to_ndarrays(f.parameters) for f in fits], [f.num_examples for f in fits])
        evals = [legacy_evaluate(client_app, weights, pid, rnd)[0] for pid in range(NUM_CLIENTS)]
        n = sum(e.num_examples for e in evals)
        accs.append(sum(e.metrics["accuracy"] * e.num_examples for e in evals) / n)
    return accs


def run_message_rounds(client_app, rounds):
    weights, accs = initial_weights(), []
    for rnd in range(1, rounds + 1):
        replies = [message_train(client_app, weights, pid, rnd).content for pid in range(NUM_CLIENTS)]
        weights = _average(
            [r["arrays"].to_numpy_ndarrays() for r in replies], [r["metrics"]["num-examples"] for r in replies]
        )
        evals = [message_evaluate(client_app, weights, pid, rnd).content["metrics"] for pid in range(NUM_CLIENTS)]
        n = sum(e["num-examples"] for e in evals)
        accs.append(sum(e["accuracy"] * e["num-examples"] for e in evals) / n)
    return accs


def test_federated_averaging_by_hand_improves_accuracy(legacy_app, message_app):
    legacy_accs = run_legacy_rounds(legacy_app[1], 5)
    message_accs = run_message_rounds(message_app[1], 5)
    for accs in (legacy_accs, message_accs):
        assert all(b > a for a, b in zip(accs, accs[1:])), accs
        assert accs[-1] > 0.85, accs
        assert accs[-1] - accs[0] > 0.15, accs
    # Same model, data, seeds and settings: both app styles compute the same thing.
    np.testing.assert_allclose(legacy_accs, message_accs, atol=1e-12)
