"""Flower's own per-round metrics, recorded without the app's help: Result, History, the planned rounds."""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
from flwr.app import ArrayRecord
from flwr.app import Context
from flwr.app import MetricRecord
from flwr.app import RecordDict
from flwr.server import ServerConfig
from flwr.server.compat.legacy_context import LegacyContext
from flwr.server.history import History
from flwr.serverapp.strategy import FedAvg
from flwr.serverapp.strategy import Result
from flwr.serverapp.strategy import Strategy

from syft_flwr_gdrive.flower.round_metrics import jsonable
from syft_flwr_gdrive.flower.round_metrics import recording


def test_a_result_is_read_live_and_in_round_order():
    with recording() as recorder:
        result = Result()
        result.train_metrics_clientapp[2] = MetricRecord({"train_loss": 0.5})
        result.train_metrics_clientapp[1] = MetricRecord({"train_loss": 0.9})
        assert [r["round"] for r in recorder.rounds()] == [1, 2]  # seen while the strategy still fills it
        result.evaluate_metrics_clientapp[1] = MetricRecord({"loss": 1.0, "accuracy": 0.5, "n": 3})
        result.evaluate_metrics_serverapp[0] = MetricRecord({"accuracy": 0.1})
    assert recorder.rounds() == [
        {"round": 0, "server_evaluate": {"accuracy": 0.1}},
        {"round": 1, "train": {"train_loss": 0.9}, "evaluate": {"loss": 1.0, "accuracy": 0.5, "n": 3}},
        {"round": 2, "train": {"train_loss": 0.5}},
    ]


def test_a_history_is_laid_out_by_round_and_phase():
    with recording() as recorder:
        history = History()
        history.add_loss_centralized(0, 2.0)
        history.add_metrics_distributed_fit(1, {"train_loss": 0.7})
        history.add_loss_distributed(1, 0.6)
        history.add_metrics_distributed(1, {"accuracy": 0.8})
        history.add_metrics_centralized(1, {"accuracy": 0.75})
    assert recorder.rounds() == [
        {"round": 0, "server_evaluate": {"loss": 2.0}},
        {
            "round": 1,
            "train": {"train_loss": 0.7},
            "evaluate": {"loss": 0.6, "accuracy": 0.8},
            "server_evaluate": {"accuracy": 0.75},
        },
    ]


def test_the_planned_rounds_come_from_the_call_that_runs_them():
    with recording() as recorder:
        assert recorder.planned_rounds is None
        LegacyContext(
            Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config={}),
            config=ServerConfig(num_rounds=7),
        )
        assert recorder.planned_rounds == 7
        assert len(recorder.rounds()) == 0  # its History is recorded, still empty

        # Strategy.start without num_rounds: Flower's default (3) is what runs (here it stops at once: no grid).
        with pytest.raises(AttributeError):
            FedAvg().start(grid=None, initial_arrays=ArrayRecord([np.zeros(1)]))
        assert recorder.planned_rounds == 3


def test_flower_is_as_it_was_once_the_recording_ends():
    originals = (Result.__init__, History.__init__, LegacyContext.__init__, Strategy.start)
    with recording():
        assert Result.__init__ is not originals[0]
    assert (Result.__init__, History.__init__, LegacyContext.__init__, Strategy.start) == originals
    with recording() as recorder:
        pass
    Result().train_metrics_clientapp[1] = MetricRecord({"x": 1.0})  # made after: not recorded
    assert recorder.rounds() == []


def test_each_thread_records_its_own_run():
    done = threading.Event()
    seen: dict[str, list] = {}

    def other() -> None:
        with recording() as mine:
            Result().train_metrics_clientapp[5] = MetricRecord({"x": 5.0})
            done.wait(5)
        seen["other"] = mine.rounds()

    with recording() as recorder:
        thread = threading.Thread(target=other)
        thread.start()
        Result().train_metrics_clientapp[1] = MetricRecord({"x": 1.0})
        done.set()
        thread.join()
    assert [r["round"] for r in recorder.rounds()] == [1]
    assert [r["round"] for r in seen["other"]] == [5]


def test_values_become_json():
    assert jsonable(math.nan) is None and jsonable(math.inf) is None
    assert jsonable(np.float32(0.5)) == 0.5 and jsonable(np.int64(3)) == 3.0
    assert jsonable([1.0, math.nan]) == [1.0, None]
    assert jsonable(b"abc") == "<3 bytes>" and jsonable(True) is True
