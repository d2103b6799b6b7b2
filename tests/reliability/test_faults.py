"""A 3-client x 5-round federation under injected Drive faults ends like a clean run.

The faulty run and its clean reference run at the same time (each on its own fake Drive), once
per session, in the background while the other reliability tests run (see ``PairOfRuns``); the
tests below each check one property of the pair of runs. Both run the digest app
(apps/digest_app: fixtures/message_app plus a SHA-256 of the final model in the report, which
otherwise summarises ArrayRecords to their size). Faults: 20% of API
calls answered 429/403/500/503, 5% of connections dropped (half of them after the call took
effect), and a 2 s listing lag (a new file shows up in ``files.list`` 2 s after it was made).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.fake import FaultConfig
from syft_flwr_gdrive.localrun.federation import LocalFederation
from tests.helpers.fault_runs import ROUNDS
from tests.helpers.fault_runs import PairOfRuns
from tests.helpers.fault_runs import RunPair
from tests.helpers.flower_metrics import server_history
from tests.helpers.reliability import CLIENTS
from tests.helpers.reliability import DRIVE_PROFILE
from tests.helpers.reliability import MESSAGE_APP
from tests.helpers.reliability import SERVER
from tests.helpers.reliability import answered
from tests.helpers.reliability import assert_clean_exit
from tests.helpers.reliability import duplicates
from tests.helpers.reliability import leftover_message_files
from tests.helpers.reliability import make_federation
from tests.helpers.reliability import wait_for_log

STOP_ACK_BUG = (
    "grid.send_stop_signal waits only min(SYFT_FLWR_MSG_TIMEOUT, max(10 x poll interval, 5 s)) for stop-acks; "
    "with a Drive listing lag L the stop->ack round trip takes >= 2L (+ retries), so for L >= 2.5 s (and often "
    "for L = 2 s with retries) the server gives up and leaves its stop file(s) on Drive after a completed run"
)


@pytest.fixture(scope="module")
def runs(fault_runs: PairOfRuns | None) -> RunPair:
    assert fault_runs is not None, "tests/reliability/conftest.py starts the fault runs when these tests are selected"
    pair = fault_runs.wait()
    print(f"\nfaulty run: {pair.seconds:.1f}s, faults injected {pair.faults}")
    return pair


def _history(fed: LocalFederation) -> dict:
    return server_history(fed.server().report())


def test_faults_were_injected(runs: RunPair):
    errors = sum(n for k, n in runs.faults.items() if k.startswith("error_"))
    drops = sum(n for k, n in runs.faults.items() if k.startswith("drop_"))
    assert errors >= 50 and drops >= 10, runs.faults  # ~20% and ~5% of several hundred calls
    for participant in runs.faulty.participants.values():
        retried = participant.log_text().count("retry")
        assert retried > 0, f"{participant.email} never retried: were faults applied to it?"


SLOW_UPLOAD_LOSS = (
    "a reply upload retried for longer than the server's wait (SYFT_FLWR_MSG_TIMEOUT): one DriveApi call may retry "
    "for up to RetryPolicy.max_total (300 s; seen: 10 attempts of a resumable media.upload over 69 s, each attempt "
    "being several faultable HTTP requests), so the server withdrew the request and that round lost the reply; "
    "the client then logs 'could not send the reply ... will be handled again', but the request is gone"
)


def lost_to_slow_upload(fed: LocalFederation) -> list[str]:
    """The signature of SLOW_UPLOAD_LOSS: a reply given up by a client and missed by the server."""
    gave_up = [
        line
        for i in range(len(CLIENTS))
        for line in fed.client(i).log_text().splitlines()
        if "could not send the reply to" in line
    ]
    missed = [line for line in fed.server().log_text().splitlines() if "did not arrive within" in line]
    return gave_up + missed if gave_up and missed else []


def test_faulty_run_completes_and_nothing_is_lost_or_handled_twice(runs: RunPair):
    for fed in (runs.clean, runs.faulty):
        assert_clean_exit(fed, ROUNDS)
        server_log = fed.server().log_text()
        assert "Traceback" not in server_log
        for i in range(len(CLIENTS)):
            client = fed.client(i)
            report = client.report()
            assert report["errors"] == 0, report
            assert "Traceback" not in client.log_text()
            lines = answered(client.log_text())
            assert duplicates(mid for _run, _type, mid, _round in lines) == {}, lines  # nothing handled twice
            assert {run for run, *_ in lines} == {report["run_id"]}
            assert report["handled"] == len(lines), (report, lines)
        signature = lost_to_slow_upload(fed)
        if signature:
            pytest.xfail(f"{SLOW_UPLOAD_LOSS}:\n" + "\n".join(signature))
        assert _history(fed)["num_clients"] == [3] * ROUNDS
        for phase in ("aggregate_train", "aggregate_evaluate"):
            received = re.findall(rf"INFO flwr: {phase}: Received (\d+) results and (\d+) failures", server_log)
            assert received == [("3", "0")] * ROUNDS, (phase, received)
        for i in range(len(CLIENTS)):
            lines = answered(fed.client(i).log_text())
            assert len(lines) == 2 * ROUNDS, lines
            assert sorted(t for _run, t, _mid, _round in lines) == ["evaluate"] * ROUNDS + ["train"] * ROUNDS


def test_faulty_run_history_matches_the_clean_run(runs: RunPair):
    """Same rounds and clients; metrics equal up to float summation order (see the exact test below)."""
    clean, faulty = _history(runs.clean), _history(runs.faulty)
    assert faulty["round"] == clean["round"] == list(range(1, ROUNDS + 1))
    signature = lost_to_slow_upload(runs.faulty)
    if signature:
        pytest.xfail(f"{SLOW_UPLOAD_LOSS}:\n" + "\n".join(signature))
    assert faulty["num_clients"] == clean["num_clients"]
    for key in ("loss", "accuracy", "train_loss", "train_accuracy"):
        assert len(faulty[key]) == len(clean[key]) == ROUNDS
        for a, b in zip(faulty[key], clean[key]):
            assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), (key, faulty[key], clean[key])
    clean_w = [np.frombuffer(bytes.fromhex(h)) for h in runs.clean.server().report()["state"]["model_digest"]["hex"]]
    faulty_w = [np.frombuffer(bytes.fromhex(h)) for h in runs.faulty.server().report()["state"]["model_digest"]["hex"]]
    assert [w.shape for w in clean_w] == [w.shape for w in faulty_w]
    for a, b in zip(clean_w, faulty_w):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


# Regression test (was a strict xfail, fixed in 584af16); the bug was:
#   ORDER_BUG
def test_faulty_run_final_weights_and_history_are_bit_identical_to_the_clean_run(runs: RunPair):
    clean, faulty = runs.clean.server().report(), runs.faulty.server().report()
    assert faulty["state"]["model_digest"]["sha256"] == clean["state"]["model_digest"]["sha256"]
    assert faulty["metrics"] == clean["metrics"]


def test_faulty_run_leaves_no_message_files(runs: RunPair):
    assert runs.clean_left == {}
    stop_files = len(runs.faulty_stop_files)
    others = {k: v - (stop_files if k == SERVER else 0) for k, v in runs.faulty_left.items()}
    assert {k: v for k, v in others.items() if v} == {}, runs.faulty_left
    assert stop_files == 0, f"{stop_files} stop file(s) left (was: {STOP_ACK_BUG})"
    assert runs.faulty_left == {}


# Regression test (was a strict xfail, fixed in 584af16); the bug was:
#   STOP_ACK_BUG
def test_no_stop_file_is_left_after_a_completed_run_under_listing_lag(tmp_path: Path):
    """Deterministic: with a 3 s listing lag a stop-ack cannot show up within the server's 5 s window.

    The lag is switched on once the client answered its first request, so only the rest of the
    run (evaluate and the stop exchange) pays for it.
    """
    with FakeDriveServer(profile=DRIVE_PROFILE) as drive:
        with make_federation(
            tmp_path,
            drive,
            MESSAGE_APP,
            client_emails=CLIENTS[:1],
            run_config={"num-server-rounds": 1, "min-clients": 1},
        ) as fed:
            fed.start_all()
            wait_for_log(fed.client(0), "answered train", 60)
            drive.faults = FaultConfig.for_profile(DRIVE_PROFILE, list_lag=3.0)
            assert fed.wait(90), fed.server().log_text()[-3000:]
            assert_clean_exit(fed, 1)
        assert leftover_message_files(drive, (SERVER, CLIENTS[0])) == {}
