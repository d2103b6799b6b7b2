"""Participants killed mid-run: a client SIGKILLed and restarted three times; the server SIGKILLed."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from syft_flwr_gdrive.fake import FakeDriveServer
from tests.helpers.flower_metrics import server_history
from tests.helpers.reliability import CLIENTS
from tests.helpers.reliability import SERVER
from tests.helpers.reliability import answered
from tests.helpers.reliability import assert_clean_exit
from tests.helpers.reliability import duplicates
from tests.helpers.reliability import leftover_message_files
from tests.helpers.reliability import make_federation
from tests.helpers.reliability import owned_files
from tests.helpers.reliability import wait_for_log
from tests.helpers.reliability import wait_for_settled_listings

ROUNDS = 5
SEED = int(os.environ.get("RELIABILITY_SEED", "0")) or random.SystemRandom().randrange(1, 10**6)


def test_client_killed_and_restarted_three_times_still_finishes(tmp_path: Path, drive: FakeDriveServer):
    rng = random.Random(SEED)
    # One kill while the client starts up (imports, account check, folders), two after
    # a random number of answered requests, each after a random extra delay.
    after_answers = sorted(rng.sample(range(1, 2 * ROUNDS), 2))
    plan = [(0, rng.uniform(0.2, 2.5))] + [(k, rng.uniform(0.0, 0.6)) for k in after_answers]
    print(f"\nseed {SEED}: kill plan (after n answers, extra delay) {plan}")
    with make_federation(tmp_path, drive) as fed:
        fed.start_all()
        victim = fed.client(1)
        for answers, delay in plan:
            if answers:
                wait_for_log(victim, "answered ", 60, count=answers)
            time.sleep(delay)
            if "stop signal received" in victim.log_text():
                # The run ended during the delay (fast rounds): restarted now, the client would wait for
                # another run, as its acknowledgement already removed the stop. Nothing left to test.
                print(f"run over before the kill after {answers} answer(s): kill skipped")
                break
            assert victim.alive(), f"victim exited before its planned kill:\n{victim.log_text()[-3000:]}"
            victim.kill()  # SIGKILL: no clean-up, no report
            assert victim.process.returncode == -9
            victim.start()  # same email, same state dir
        assert fed.wait(150), "federation did not finish:\n" + fed.server().log_text()[-3000:]
        assert_clean_exit(fed, ROUNDS)
        server = fed.server()
        assert server_history(server.report())["num_clients"] == [3] * ROUNDS
        for phase in ("aggregate_train", "aggregate_evaluate"):
            received = re.findall(rf"INFO flwr: {phase}: Received (\d+) results and (\d+) failures", server.log_text())
            assert received == [("3", "0")] * ROUNDS, (phase, received)
        log = victim.log_text()
        # 4 starts; any of them may have been killed before it logged that it polls (a kill at start-up).
        assert log.count("polling every") >= 1, log[-3000:]
        lines = answered(log)
        # Nothing answered twice. A kill between storing a reply and logging it can swallow that log line
        # (the server then has the reply and removes the request), so at most one line per kill is missing;
        # that no reply was lost is what the server's "Received 3 results" per round above shows.
        assert duplicates(mid for _r, _t, mid, _n in lines) == {}, lines
        assert 2 * ROUNDS - len(plan) <= len(lines) <= 2 * ROUNDS, lines
        for i in (0, 2):
            assert fed.client(i).report()["handled"] == 2 * ROUNDS
    assert leftover_message_files(drive) == {}


def _clean_as(drive: FakeDriveServer, email: str, state_dir: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYFT")}
    env.update(SYFTBOX_EMAIL=email, SYFT_FLWR_DRIVE_URL=drive.url, SYFT_FLWR_STATE_DIR=str(state_dir))
    return subprocess.Popen(
        [sys.executable, "-m", "syft_flwr_gdrive.cli", "clean"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_next_posting(drive: FakeDriveServer, email: str, before: set[str], timeout: float) -> None:
    """Wait until ``email`` owns a file it did not own in ``before`` (its next phase's model or requests).

    With a client held, the server's next phase waits for that client, so from its first new file on it owns
    something until it is killed. If nothing new comes within ``timeout``, it posted that phase before
    ``before`` was taken and is waiting already: then it must own files now.

    Ownership is read from the fake's store, not a listing: under the strict profile a listing may show a
    file deleted within the lag as "new" or miss the current phase's file in ``before``, and the wait then
    ended while the server was between phases, owning nothing (seed 654293).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if {f["id"] for f in owned_files(drive, email)} - before:
            return
        time.sleep(0.05)
    assert owned_files(drive, email), f"{email} owns nothing while a client is held"


def _wait_for_requests(drive: FakeDriveServer, at_least: dict[str, int], timeout: float) -> None:
    """Wait until each account made ``at_least`` Drive requests in all: a participant still polling gets there
    (one request per poll, every 0.2 s when the machine keeps up; a loaded 2-core machine may be several times
    slower, so the bound is generous), one that stopped never does."""
    deadline = time.monotonic() + timeout
    while True:
        made = drive.stats()["by_user"]
        short = {email: (made.get(email, 0), n) for email, n in at_least.items() if made.get(email, 0) < n}
        if not short:
            return
        assert time.monotonic() < deadline, f"stopped polling (requests made, wanted): {short}"
        time.sleep(0.2)


def test_server_killed_mid_run_clients_keep_polling_and_clean_removes_everything(
    tmp_path: Path, drive: FakeDriveServer
):
    rng = random.Random(SEED)
    kill_after = rng.randrange(1, 2 * ROUNDS - 1)
    print(f"\nseed {SEED}: server killed after client 0 answered {kill_after} request(s)")
    with make_federation(tmp_path, drive) as fed:
        fed.start_all()
        held = fed.client(0)
        wait_for_log(held, "answered ", 60, count=kill_after)
        # Hold client 0 so the server's next requests stay unanswered: killed at a random moment, the server
        # then always leaves requests behind (killed between phases it would own nothing, and the clean-up
        # below would prove nothing).
        held.process.send_signal(signal.SIGSTOP)
        try:
            _wait_for_next_posting(drive, SERVER, {f["id"] for f in owned_files(drive, SERVER)}, 10)
            time.sleep(rng.uniform(0.0, 0.4))
            server = fed.server()
            server.kill()
            assert server.process.returncode != 0
        finally:
            held.process.send_signal(signal.SIGCONT)
        before = drive.stats()["by_user"]
        time.sleep(3.0)  # 15 poll intervals
        _wait_for_requests(drive, {email: before.get(email, 0) + 5 for email in CLIENTS}, timeout=60)
        for i, email in enumerate(CLIENTS):
            client = fed.client(i)
            assert client.alive(), f"{email} exited after the server died:\n{client.log_text()[-3000:]}"
        left = leftover_message_files(drive)
        assert left.get(SERVER), f"the killed server should have left requests behind: {left}"
        for i in range(len(CLIENTS)):
            client = fed.client(i)
            client.kill(2)  # SIGINT: the documented way to stop a client
            assert client.process.returncode == 130, client.log_text()[-3000:]
            assert client.report()["stopped_by"] == "interrupt"
            log = client.log_text()
            assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
        # `clean` lists once and deletes what it lists: what it promises is what Drive lists. Every
        # participant has stopped, so once the list lag has passed since the last write a listing shows
        # exactly what exists; wait for that instead of hoping the cleaners' start-up outlasts the lag.
        wait_for_settled_listings(drive)
        left = leftover_message_files(drive)
        cleaners = {email: _clean_as(drive, email, tmp_path / "clean-state") for email in (SERVER, *CLIENTS)}
        try:
            for email, proc in cleaners.items():
                out, err = proc.communicate(timeout=60)
                assert proc.returncode == 0, (email, out, err)
                n = left.get(email, 0)
                assert f"{n} message file(s) found, {n} deleted" in out, (email, left, out, err)
        finally:
            for proc in cleaners.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(10)
    assert leftover_message_files(drive) == {}
