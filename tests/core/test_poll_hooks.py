"""The grid and the client loop consult their PollSchedule: a real federation over the memory transport.

Nothing is timed: the schedules record which hooks were called and which gaps they chose.
"""

from __future__ import annotations

import threading
from typing import Any

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

import syft_flwr_gdrive.flower.syftbox_server as server_module
from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.crypto.keys import Identity
from syft_flwr_gdrive.crypto.pins import PinStore
from syft_flwr_gdrive.crypto.seal import Sealer
from syft_flwr_gdrive.flower.app_mailbox import app_key
from syft_flwr_gdrive.flower.client_loop import ClientLoop
from syft_flwr_gdrive.flower.poll_schedule import PollPolicy
from syft_flwr_gdrive.flower.poll_schedule import PollSchedule
from syft_flwr_gdrive.flower.syftbox_server import syftbox_flwr_server
from syft_flwr_gdrive.mailbox.ledger import Ledger
from syft_flwr_gdrive.mailbox.mailbox import Mailbox
from syft_flwr_gdrive.transport.memory import MemoryHub
from syft_flwr_gdrive.transport.memory import MemoryTransport
from tests.helpers.client_loops import loops_running

SERVER = "ds@example.com"
CLIENTS = ["a@example.com", "b@example.com", "c@example.com"]
INTERVAL = 1.0  # above the fast gap, so the adaptive and the idle cadence differ


def make_client_app() -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        arrays = [a + 1.0 for a in msg.content["arrays"].to_numpy_ndarrays()]
        content = RecordDict({"arrays": ArrayRecord(arrays), "metrics": MetricRecord({"num-examples": 1})})
        return Message(content, reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        return Message(RecordDict({"metrics": MetricRecord({"loss": 0.0, "num-examples": 1})}), reply_to=msg)

    return app


def make_server_app(rounds: int) -> ServerApp:
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        strategy = FedAvg(fraction_train=1.0, fraction_evaluate=1.0, min_available_nodes=len(CLIENTS))
        result = strategy.start(grid=grid, initial_arrays=ArrayRecord([np.zeros(2)]), num_rounds=rounds, timeout=20)
        context.state["final"] = MetricRecord({"value": float(result.arrays.to_numpy_ndarrays()[0].mean())})

    return app


class RecordingSchedule(PollSchedule):
    """A real schedule that also logs the hooks called and the gap chosen after each poll."""

    def __init__(self, policy: PollPolicy) -> None:
        super().__init__(policy)
        self.calls: list[str] = []
        self.gaps: list[float] = []
        self._log_lock = threading.Lock()

    def expect(self, at: float | None = None) -> None:
        with self._log_lock:
            self.calls.append("expect")
        super().expect(at)

    def arrived(self, at: float | None = None) -> None:
        with self._log_lock:
            self.calls.append("arrived")
        super().arrived(at)

    def polled(self, at: float | None = None) -> float:
        due = super().polled(at)
        with self._log_lock:
            self.gaps.append(self.gap())
        return due


def run(
    tmp_path: Any, mocker: Any, *, adaptive: bool, rounds: int = 2
) -> tuple[RecordingSchedule, list[ClientLoop], Context]:
    hub = MemoryHub()
    settings = Settings.from_env(
        {}, email=SERVER, poll_interval=INTERVAL, msg_timeout=20.0, state_dir=tmp_path, adaptive_poll=adaptive
    )
    server_schedule = RecordingSchedule(PollPolicy.for_settings(settings))
    mocker.patch.object(server_module.PollSchedule, "for_settings", return_value=server_schedule)
    stop = threading.Event()
    loops = []
    for email in CLIENTS:
        mailbox = Mailbox(
            MemoryTransport(email, hub),
            app_key("demo"),
            [SERVER],
            Ledger(None),
            sealer=Sealer(Identity.ephemeral(), PinStore(None)),
        )
        loops.append(
            ClientLoop(
                make_client_app(),
                mailbox,
                poll_interval=INTERVAL,
                stop_event=stop,
                linger=1.0,
                poll_schedule=RecordingSchedule(PollPolicy(INTERVAL, adaptive=adaptive)),
            )
        )
    with loops_running(loops, stop):
        context = Context(run_id=0, node_id=0, node_config={}, state=RecordDict(), run_config={})
        out = syftbox_flwr_server(
            make_server_app(rounds), context, CLIENTS, "demo", settings=settings, transport=MemoryTransport(SERVER, hub)
        )
    return server_schedule, loops, out


def test_adaptive_hooks_in_grid_and_client_loop(tmp_path, mocker) -> None:
    server_schedule, loops, out = run(tmp_path, mocker, adaptive=True)
    assert "final" in out.state  # the run itself completed
    # the server expects replies after each push (2 exchanges a round) and after the stop signals ...
    assert server_schedule.calls.count("expect") >= 2 * 2 + 1
    # ... and learns from the polls that brought them
    assert "arrived" in server_schedule.calls and server_schedule.lead is not None
    assert min(server_schedule.gaps) < INTERVAL
    for loop in loops:
        sched = loop.schedule
        assert isinstance(sched, RecordingSchedule)
        assert loop.report.handled == 2 * 2
        # after every answered request: learn from the poll that found it, then expect the next one
        assert sched.calls == ["arrived", "expect"] * loop.report.handled
        assert min(sched.gaps) < INTERVAL <= max(sched.gaps) + 1e-9


@pytest.mark.slow  # polls at the fixed interval for seconds
def test_off_switch_keeps_the_interval_in_grid_and_client_loop(tmp_path, mocker) -> None:
    server_schedule, loops, out = run(tmp_path, mocker, adaptive=False, rounds=1)
    assert "final" in out.state
    assert server_schedule.policy.adaptive is False
    assert server_schedule.gaps and set(server_schedule.gaps) == {INTERVAL}
    assert server_schedule.lead is None
    for loop in loops:
        assert set(loop.schedule.gaps) == {INTERVAL}  # type: ignore[attr-defined]


@pytest.mark.parametrize("flag", [True, False])
def test_client_entry_point_builds_the_schedule_from_settings(flag: bool) -> None:
    settings = Settings.from_env({}, email="a@x.com", poll_interval=3.0, adaptive_poll=flag)
    sched = PollSchedule.for_settings(settings)
    assert sched.policy.adaptive is flag and sched.policy.interval == 3.0
