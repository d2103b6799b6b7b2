"""The local run's pieces that need no process: who takes part, how rounds are counted, the output stream,
the progress the live view shows, the plot's series, and the options checked before anything starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.config import ProjectConfig
from syft_flwr_gdrive.flower.project import FlowerProject
from syft_flwr_gdrive.localrun.federation import LocalFederation
from syft_flwr_gdrive.localrun.federation import Participant
from syft_flwr_gdrive.localrun.log_stream import LogStream
from syft_flwr_gdrive.localrun.log_stream import speaker
from syft_flwr_gdrive.localrun.metrics_plot import series
from syft_flwr_gdrive.localrun.run_report import completed_rounds
from syft_flwr_gdrive.localrun.runner import LocalRunOptions
from syft_flwr_gdrive.localrun.runner import data_dir_for
from syft_flwr_gdrive.localrun.runner import participants_for
from syft_flwr_gdrive.localrun.runner import validate
from syft_flwr_gdrive.localrun.supervisor import read_progress

MESSAGE_APP = Path(__file__).resolve().parents[2] / "fixtures" / "message_app"


def project_naming(aggregator: str | None, datasites: tuple[str, ...]) -> FlowerProject:
    return FlowerProject(
        path=Path("/p"),
        components={},
        run_config={},
        syft=ProjectConfig(aggregator=aggregator, datasites=datasites),
        name="p",
    )


def test_the_participants_are_those_the_project_names_then_made_up_ones():
    server, clients = participants_for(project_naming("ds@lab.org", ("a@x.org",)), 3)
    assert server == "ds@lab.org" and clients == ["a@x.org", "dataowner1@example.com", "dataowner2@example.com"]
    server, clients = participants_for(project_naming(None, ()), 2)
    assert server == "datascientist@example.com" and clients == ["dataowner1@example.com", "dataowner2@example.com"]
    assert participants_for(project_naming("ds@lab.org", ("a@x.org", "b@x.org", "c@x.org")), 2)[1] == [
        "a@x.org",
        "b@x.org",
    ]


def test_a_round_is_completed_by_a_good_reply_not_by_a_log_line():
    def entry(**sites):
        return {"round": "1", "datasites": {k: {"replies": r, "errors": e} for k, (r, e) in sites.items()}}

    assert completed_rounds([]) == 0  # a run that hung before any message
    assert completed_rounds([entry(a=(1, 0), b=(0, 0))]) == 1
    assert completed_rounds([entry(a=(1, 1), b=(1, 1))]) == 0  # every answer an error


def test_the_stream_gives_whole_lines_as_a_terminal_shows_them(tmp_path):
    log = tmp_path / "client0.log"
    who = Participant("alice@x.org", "client", [], {}, tmp_path / "r.json", log)
    stream = LogStream([who])
    log.write_bytes(b"2026-01-31 12:00:00,123 INFO x: one\nprogress 10%\rprogress 100%\npart")
    assert [line for _, line in stream.new_lines()] == ["12:00:00,123 INFO x: one", "progress 100%"]
    with log.open("ab") as f:
        f.write(b"ial\n\xff tail")
    assert [line for _, line in stream.new_lines()] == ["partial"]
    assert [line for _, line in stream.new_lines(final=True)] == ["\ufffd tail"]
    assert speaker(who) == "alice"


def test_the_live_view_reads_the_servers_progress(tmp_path):
    fed = LocalFederation(tmp_path, MESSAGE_APP, None, client_emails=("a@x.org",))
    fed.server(), fed.client(0)
    fed.progress_path.write_text(
        json.dumps(
            {
                "rounds": [{"round": "1", "datasites": {}}, {"round": "2", "datasites": {}}],
                "metrics": {
                    "planned_rounds": 5,
                    "rounds": [
                        {"round": 1, "train": {"train_loss": 0.5}, "evaluate": {"loss": 0.4, "accuracy": 0.9}},
                        {"round": 2, "train": {"train_loss": 0.3}},
                    ],
                },
            }
        )
    )
    fed.client(0).log_path.write_text("x: answered train\nx: answered evaluate\n")
    progress = read_progress(fed, started=0.0)
    assert (progress.round, progress.rounds) == (2, 5)
    assert progress.latest_round == 2 and progress.latest == {"train_loss": 0.3}  # the newest round Flower has
    assert progress.answered == {"a@x.org": 2}


def test_the_plot_has_a_panel_per_metric_and_leaves_counts_out():
    panels = series(
        {
            "rounds": [
                {"round": 0, "server_evaluate": {"loss": 2.0}},
                {"round": 1, "train": {"train_loss": 0.9}, "evaluate": {"loss": 0.8, "num_clients": 3, "note": "x"}},
                {"round": 2, "train": {"train_loss": 0.7}, "evaluate": {"loss": 0.6, "num_clients": 3}},
            ]
        }
    )
    assert list(panels) == ["loss"]
    assert panels["loss"] == {
        "evaluate (server)": ([0], [2.0]),
        "train (clients): train_loss": ([1, 2], [0.9, 0.7]),
        "evaluate (clients)": ([1, 2], [0.8, 0.6]),
    }


def test_options_are_checked_before_anything_starts(tmp_path):
    options = LocalRunOptions(project=MESSAGE_APP, clients=2, data_dirs=("a", "b", "c"))
    with pytest.raises(ConfigError, match="--data-dir once"):
        validate(options)
    options = LocalRunOptions(project=MESSAGE_APP, clients=2, data_dirs=(str(tmp_path / "mock{i}"),))
    with pytest.raises(ConfigError, match="client 0's dataset .*mock0 does not exist"):
        validate(options)
    (tmp_path / "mock0").mkdir(), (tmp_path / "mock1").mkdir()
    assert validate(options).name == "message-digits"
    assert data_dir_for(options, 1) == tmp_path / "mock1"
    with pytest.raises(ConfigError, match="--timeout must be > 0"):
        validate(LocalRunOptions(project=MESSAGE_APP, timeout=0))
