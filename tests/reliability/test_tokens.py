"""Sign-ins over a whole federation: access tokens that expire mid-run, a refresh token that stops working,
and Drive's daily upload cap (issue #21 item 2, #22 item 6).

Participants reach the fake Drive as they reach Google (``transport/drive/connect.py``): a refresh token and
the fake's token endpoint, so the real google-auth fetches, refreshes and, after a 401, re-sends.
google-auth refreshes 3 min 45 s before a token's announced expiry: with a shorter ``access_token_ttl`` it
refreshes before every call and never meets a 401. So the fake announces 4 min and accepts each token for
1 s only (``access_token_accepted_for``, the fake ending a token early as Google may): every participant
keeps using tokens the fake already refuses, and the 401 -> refresh -> resend path runs all through the run.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.localrun.federation import Participant
from tests.helpers.reliability import CLIENTS
from tests.helpers.reliability import DRIVE_PROFILE
from tests.helpers.reliability import SERVER
from tests.helpers.reliability import assert_clean_exit
from tests.helpers.reliability import make_federation
from tests.helpers.reliability import wait_for_log

ROUNDS = 5
ANNOUNCED_TTL = 240.0  # above google-auth's 225 s refresh margin: tokens are reused ...
ACCEPTED_FOR = 1.0  # ... while the fake accepts each for 1 s only
EXIT_DRIVE = 3
REVOKED = "Token has been expired or revoked."
REFRESHED_AFTER_401 = "Refreshing credentials due to a 401 response"  # google-auth-httplib2's log line
STOPPED_WITHIN = 20.0  # seconds from the revocation to the participant's exit: no minutes of retries


@pytest.fixture
def short_tokens() -> Iterator[FakeDriveServer]:
    with FakeDriveServer(
        profile=DRIVE_PROFILE, access_token_ttl=ANNOUNCED_TTL, access_token_accepted_for=ACCEPTED_FOR
    ) as server:
        yield server


def error_lines(participant: Participant) -> list[str]:
    """The ``error: ...`` lines the command printed on stderr (its one message to the user)."""
    return [line for line in participant.log_text().splitlines() if line.startswith("error: ")]


def wait_for_exit(participant: Participant, timeout: float) -> float:
    """Seconds until ``participant`` exited (fails after ``timeout``)."""
    started = time.monotonic()
    assert participant.process is not None
    participant.process.wait(timeout=timeout)
    return time.monotonic() - started


def assert_says_the_fix(line: str, drive: FakeDriveServer) -> None:
    """One line with what happened, the fix and why, and nothing raw (no tuple, no dict, no traceback)."""
    assert line.startswith(f"error: The fake Drive at {drive.url} refused to refresh this participant's sign-in")
    assert f"(invalid_grant: {REVOKED})" in line
    assert "Fix: nothing to log in to on a fake Drive: restart the fake Drive" in line
    assert '"Testing" gets refresh tokens that expire 7 days after sign-in' in line
    assert "('" not in line and "{'" not in line and "status=" not in line


def test_a_federation_outlives_many_access_tokens_without_a_failed_exchange(
    tmp_path: Path, short_tokens: FakeDriveServer
):
    drive = short_tokens
    with make_federation(tmp_path, drive, run_config={"num-server-rounds": ROUNDS}) as fed:
        fed.start_all()
        assert fed.wait(180), "federation did not finish:\n" + fed.server().log_text()[-3000:]
        report = assert_clean_exit(fed, ROUNDS)
        server_log = fed.server().log_text()
    assert report["summary"]["errors"] == 0 and report["summary"]["missing"] == 0, report["summary"]
    for phase in ("aggregate_train", "aggregate_evaluate"):
        received = re.findall(rf"INFO flwr: {phase}: Received (\d+) results and (\d+) failures", server_log)
        assert received == [("3", "0")] * ROUNDS, (phase, received)
    stats = drive.stats()
    issued = stats["oauth"]["issued"]
    for email in (SERVER, *CLIENTS):
        account = drive.store.account(email)
        assert issued.get(account, 0) >= 3, (email, issued)  # a run of several seconds: several 1 s tokens each
    assert stats["statuses"].get("401", 0) >= 4, stats["statuses"]  # refused tokens, refreshed and re-sent
    assert stats["oauth"]["refused"] == {}
    for participant in fed.participants.values():
        log = participant.log_text()
        assert REFRESHED_AFTER_401 in log, log[-3000:]  # each participant met the 401 path ...
        assert "Traceback" not in log and "failed (HTTP 401" not in log, log[-3000:]  # ... and it never failed


def test_a_revoked_client_stops_at_once_with_exit_3_and_the_server_finishes_without_it(
    tmp_path: Path, drive: FakeDriveServer
):
    victim_email = CLIENTS[1]
    with make_federation(tmp_path, drive, msg_timeout=10.0, run_config={"num-server-rounds": 2}) as fed:
        fed.start_all()
        victim = fed.client(1)
        wait_for_log(victim, "answered ", 90)  # mid-run: it has answered round 1's training
        drive.revoke_refresh_tokens(victim_email)
        assert wait_for_exit(victim, 60) < STOPPED_WITHIN, victim.log_text()[-3000:]
        assert victim.process.returncode == EXIT_DRIVE, victim.log_text()[-3000:]
        [line] = error_lines(victim)
        assert_says_the_fix(line, drive)
        log = victim.log_text()
        assert "Traceback" not in log and "poll failed" not in log, log[-3000:]
        report = victim.report()
        assert report["stopped_by"] == "access-lost" and report["access_lost"] == line.removeprefix("error: ")
        assert drive.stats()["oauth"]["refused"]["invalid_grant"] <= 2  # no retry loop (a call in flight may add one)

        assert fed.wait(150, keys=["server"]), "server did not finish:\n" + fed.server().log_text()[-3000:]
        server = fed.server()
        assert server.process.returncode == 0, server.log_text()[-4000:]
        outcome = server.report()
        assert outcome["completed"] and outcome["access_lost"] is None
        missing = sum(r["datasites"].get(victim_email, {}).get("missing", 0) for r in outcome["rounds"])
        assert missing >= 1, outcome["rounds"]  # its failure is reported, as for any missing reply
        assert REVOKED not in server.log_text()  # nothing of the client's error reaches its peer
        for i in (0, 2):
            assert fed.wait(60, keys=[f"client{i}"]) and fed.client(i).process.returncode == 0


def test_a_revoked_server_stops_at_once_with_exit_3_after_trying_the_stop_signals(
    tmp_path: Path, drive: FakeDriveServer
):
    with make_federation(tmp_path, drive, run_config={"num-server-rounds": 5}) as fed:
        fed.start_all()
        wait_for_log(fed.client(0), "answered ", 90)
        drive.revoke_refresh_tokens(SERVER)
        server = fed.server()
        assert wait_for_exit(server, 60) < STOPPED_WITHIN, server.log_text()[-3000:]
        assert server.process.returncode == EXIT_DRIVE, server.log_text()[-3000:]
        [line] = error_lines(server)
        assert_says_the_fix(line, drive)
        log = server.log_text()
        assert "Traceback" not in log, log[-4000:]
        assert "could not send a stop signal: The fake Drive at" in log  # the finally tried, and says so
        assert "stop signal(s) not sent; those clients keep polling until stopped by hand" in log
        assert log.count("Fix:") == 1, log[-4000:]  # the whole message once; log lines carry what happened
        outcome = server.report()
        assert not outcome["completed"] and outcome["access_lost"] == line.removeprefix("error: ")
        refused = drive.stats()["oauth"]["refused"]["invalid_grant"]
        # Only the calls in flight when the refusal came (the poll and at most one reply thread per datasite)
        # ask Google; every later call, the stop signals' try included, fails at once without asking again.
        assert refused <= 1 + len(CLIENTS), refused
        for i in range(len(CLIENTS)):
            assert REVOKED not in fed.client(i).log_text()


def test_the_daily_upload_cap_stops_the_server_at_once_with_exit_3_and_its_own_message(
    tmp_path: Path, drive: FakeDriveServer
):
    drive.faults.write_rate = 0.0  # no write limit (strict profile): any retry in the log would be the cap's
    with make_federation(tmp_path, drive, run_config={"num-server-rounds": 5}) as fed:
        fed.start_all()
        wait_for_log(fed.client(0), "answered ", 90)
        drive.faults.upload_bytes_per_day = 1  # every account is at its cap from now on
        server = fed.server()
        assert wait_for_exit(server, 90) < 45, server.log_text()[-3000:]
        assert server.process.returncode == EXIT_DRIVE, server.log_text()[-3000:]
        [line] = error_lines(server)
        assert line.startswith("error: Drive refused an upload: this account has reached Google Drive's daily upload")
        assert "resets within 24 hours and retrying sooner does not help" in line
        log = server.log_text()
        assert "Traceback" not in log and "; retry " not in log, log[-4000:]  # not retried (for minutes)
        assert drive.stats()["faults"].get("daily_upload_cap", 0) >= 1
