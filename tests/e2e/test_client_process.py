"""The client process on its own: Ctrl-C, and clear errors for bad configuration."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers.e2e import MESSAGE_APP
from tests.helpers.e2e import SERVER


def client_cmd(*extra: str) -> list[str]:
    return [sys.executable, "-m", "syft_flwr_gdrive.cli", "client", "--project", str(MESSAGE_APP), *extra]


def clean_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYFT")}
    env.update(values)
    return env


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("started_ignoring_sigint", [False, True], ids=["default", "sigint-ignored-at-start"])
def test_ctrl_c_exits_within_one_poll_interval(tmp_path, drive, started_ignoring_sigint):
    """Also when started the way a shell without job control starts background jobs (SIGINT ignored)."""
    poll = 30.0  # much longer than the allowance below: exiting fast must not depend on the poll ending
    env = clean_env(
        SYFTBOX_EMAIL="do1@example.com",
        SYFT_FLWR_DRIVE_URL=drive.url,
        SYFT_FLWR_POLL_INTERVAL=str(poll),
        SYFT_FLWR_STATE_DIR=str(tmp_path),
    )
    proc = subprocess.Popen(
        client_cmd("--aggregator", SERVER),
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ignore_sigint if started_ignoring_sigint else None,
    )
    deadline = time.monotonic() + 60
    seen = ""
    while time.monotonic() < deadline and "polling every" not in seen:
        seen += proc.stderr.readline()
    assert "polling every" in seen, seen
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=poll)
    assert time.monotonic() - sent < poll / 2
    assert proc.returncode == 130


def test_missing_email_is_a_config_error_naming_the_fix(tmp_path):
    out = subprocess.run(
        client_cmd("--aggregator", SERVER), env=clean_env(), capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2
    assert "SYFTBOX_EMAIL is not set" in out.stderr and "export SYFTBOX_EMAIL=" in out.stderr
    assert "Traceback" not in out.stderr


def test_bad_email_and_missing_aggregator(tmp_path, drive):
    out = subprocess.run(
        client_cmd(), env=clean_env(SYFTBOX_EMAIL="not-an-email"), capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2 and "not a valid email" in out.stderr
    out = subprocess.run(
        client_cmd(),
        env=clean_env(
            SYFTBOX_EMAIL="do1@example.com", SYFT_FLWR_DRIVE_URL=drive.url, SYFT_FLWR_STATE_DIR=str(tmp_path)
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "aggregator" in out.stderr and "SYFT_FLWR_AGGREGATOR" in out.stderr
