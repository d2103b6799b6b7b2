"""`syft-flwr-gdrive doctor --peer`: two people check, each from their own process, that they can federate."""

from __future__ import annotations

import subprocess

from syft_flwr_gdrive.fake import FakeDriveServer
from tests.helpers.e2e import CLI
from tests.helpers.e2e import env_for

ALICE, BOB = "alice.doc@example.com", "bob.doc@example.com"


def doctor(email: str, peer: str, url: str, timeout: float, state) -> subprocess.Popen:
    return subprocess.Popen(
        CLI + ["doctor", "--peer", peer, "--peer-timeout", str(timeout)],
        env=env_for(email, SYFT_FLWR_DRIVE_URL=url, SYFT_FLWR_STATE_DIR=str(state)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_accounts_that_run_doctor_peer_at_once_can_federate(tmp_path):
    with FakeDriveServer(profile="strict") as drive:
        procs = {who: doctor(who, other, drive.url, 60, tmp_path) for who, other in ((ALICE, BOB), (BOB, ALICE))}
        outs = {who: p.communicate(timeout=120) for who, p in procs.items()}
    for who, (out, err) in outs.items():
        assert procs[who].returncode == 0, out + err
        for step in ("share", "send", "list", "read", "round trip", "delete"):
            assert f"[ok ] {step} (" in out, out
        assert "can federate: round trip in" in out


def test_doctor_peer_without_the_peer_says_what_is_missing_and_exits_3(tmp_path):
    with FakeDriveServer() as drive:
        proc = doctor(ALICE, BOB, drive.url, 3, tmp_path)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, out + err
    assert "[FAIL] list" in out and f"doctor --peer {ALICE}" in out, out + err
    assert "cannot federate yet" in err
