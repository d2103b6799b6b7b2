"""Invalid emails in the environment, options or pyproject: exit code 2, a message naming the setting,
and not a single Drive request (configuration is checked before credentials or Drive are touched).

Each case is a real CLI process; the processes of a test run in parallel against a live fake
Drive, whose per-user request counts show whether a case reached Drive.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from syft_flwr_gdrive.fake import FakeDriveServer
from tests.helpers.reliability import MESSAGE_APP

BAD = [
    "not-an-email",
    "two@@example.com",
    "space in@example.com",
    "a/b@example.com",
    "back\\slash@example.com",
    "no-dot@localhost",
    "trailing@example.",
    "new\nline@example.com",
    "@example.com",
    "tab\t@example.com",
]
P = str(MESSAGE_APP)


def _project(tmp_path: Path, name: str, section: str) -> Path:
    project = tmp_path / name
    project.mkdir()
    text = (MESSAGE_APP / "pyproject.toml").read_text(encoding="utf-8")
    (project / "pyproject.toml").write_text(text + "\n[tool.syft_flwr]\n" + section + "\n", encoding="utf-8")
    return project


def run_cases(tmp_path: Path, drive: FakeDriveServer, cases, timeout: float) -> list[str]:
    """Run (id, args, env, expected text) cases in parallel; return what went wrong."""
    procs = []
    failures = []
    before = drive.stats()["by_user"]
    try:
        for case_id, args, extra, expected in cases:
            env = {k: v for k, v in os.environ.items() if not k.startswith("SYFT")}
            env.update(
                SYFT_FLWR_DRIVE_URL=drive.url,
                SYFT_FLWR_STATE_DIR=str(tmp_path / "state"),
                SYFT_FLWR_POLL_INTERVAL="0.2",
                SYFT_FLWR_MSG_TIMEOUT="5",
                **extra,
            )
            proc = subprocess.Popen(
                [sys.executable, "-m", "syft_flwr_gdrive.cli", *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            procs.append((case_id, expected, extra, proc))
        deadline = time.monotonic() + timeout  # one deadline for all: they run in parallel
        for case_id, expected, extra, proc in procs:
            try:
                out, err = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate(timeout=10)
                failures.append(f"{case_id} {extra}: still running after {timeout:.0f}s: {err.strip()[-300:]!r}")
                continue
            said = out + err  # `doctor` reports on stdout, the other commands on stderr
            if proc.returncode != 2 or expected not in said or "Traceback" in said:
                failures.append(f"{case_id} {extra}: exit {proc.returncode}, output {said.strip()[-400:]!r}")
    finally:
        for *_, proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    after = drive.stats()["by_user"]
    reached = {user: n - before.get(user, 0) for user, n in after.items() if n != before.get(user, 0)}
    if reached:
        failures.append(f"Drive requests were made before the configuration was rejected: {reached}")
    return failures


def run_in_process(drive: FakeDriveServer, tmp_path: Path, cases) -> list[str]:
    """The same cases through typer's CliRunner, in this process (fast, for many variants)."""
    from typer.testing import CliRunner

    from syft_flwr_gdrive.cli.app import app

    failures = []
    before = drive.stats()["by_user"]
    runner = CliRunner()
    for case_id, args, extra, expected in cases:
        env = {k: None for k in os.environ if k.startswith("SYFT")}
        env.update(SYFT_FLWR_DRIVE_URL=drive.url, SYFT_FLWR_STATE_DIR=str(tmp_path / "state"), **extra)
        result = runner.invoke(app, args, env=env)
        said = result.output + (getattr(result, "stderr", "") or "")
        if result.exit_code != 2 or expected not in said:
            failures.append(
                f"{case_id} {extra}: exit {result.exit_code}, output {said.strip()[-400:]!r} {result.exception!r}"
            )
    after = drive.stats()["by_user"]
    if after != before:
        failures.append(f"Drive requests were made before the configuration was rejected: {before} -> {after}")
    return failures


def test_invalid_emails_exit_2_naming_the_setting(tmp_path: Path, drive: FakeDriveServer):
    good = "ok@example.com"
    # Every malformed SYFTBOX_EMAIL, in process; then one real process per setting and command below.
    variants = [
        (f"env-SYFTBOX_EMAIL-{i}", ["client", "-p", P, "--aggregator", good], {"SYFTBOX_EMAIL": bad}, "SYFTBOX_EMAIL")
        for i, bad in enumerate(BAD + [""])
    ]
    variants += [
        (
            f"env-SYFT_FLWR_AGGREGATOR-{i}",
            ["client", "-p", P],
            {"SYFTBOX_EMAIL": good, "SYFT_FLWR_AGGREGATOR": bad},
            "SYFT_FLWR_AGGREGATOR",
        )
        for i, bad in enumerate(BAD)
        if bad.strip()
    ]
    variants += [
        (
            f"option-datasites-{i}",
            ["server", "-p", P, "--datasites", f"{good},{bad}"],
            {"SYFTBOX_EMAIL": "ds@example.com"},
            "datasites",
        )
        for i, bad in enumerate(BAD)
        if bad.strip()
    ]
    failures = run_in_process(drive, tmp_path, variants)
    assert not failures, "\n".join(failures)
    cases = [
        (
            "env-SYFTBOX_EMAIL-client",
            ["client", "-p", P, "--aggregator", good],
            {"SYFTBOX_EMAIL": BAD[0]},
            "SYFTBOX_EMAIL",
        ),
        ("env-SYFTBOX_EMAIL-unset", ["server", "-p", P, "--datasites", good], {}, "SYFTBOX_EMAIL"),
        ("env-SYFTBOX_EMAIL-clean", ["clean"], {"SYFTBOX_EMAIL": BAD[0]}, "SYFTBOX_EMAIL"),
        ("env-SYFTBOX_EMAIL-doctor", ["doctor"], {"SYFTBOX_EMAIL": BAD[3]}, "SYFTBOX_EMAIL"),
        (
            "env-SYFT_FLWR_AGGREGATOR",
            ["client", "-p", P],
            {"SYFTBOX_EMAIL": good, "SYFT_FLWR_AGGREGATOR": BAD[0]},
            "SYFT_FLWR_AGGREGATOR",
        ),
        (
            "pyproject-aggregator",
            ["client", "-p", str(_project(tmp_path, "agg", f'aggregator = "{BAD[0]}"'))],
            {"SYFTBOX_EMAIL": good},
            "pyproject.toml aggregator=",
        ),
        (
            "pyproject-datasites",
            ["server", "-p", str(_project(tmp_path, "sites", f"datasites = ['{good}', '{BAD[4]}']"))],
            {"SYFTBOX_EMAIL": "ds@example.com"},
            "pyproject.toml datasites=",
        ),
    ]
    failures = run_cases(tmp_path, drive, cases, timeout=60)
    assert not failures, "\n".join(failures)
    print(
        f"\n{len(variants)} invalid-email cases in process and {len(cases)} as CLI processes: exit 2, setting named, "
        "no Drive request"
    )


# Regression test (was a strict xfail, fixed in 584af16); the bug was:
#   cli.client creates the transport (account check against Drive, with retries) before syftbox_flwr_client
#   validates --aggregator: an invalid --aggregator is reported only after Drive answered, and with Drive
#   unreachable the command retries for minutes instead of exiting 2 at once
def test_invalid_aggregator_option_is_rejected_before_contacting_drive(tmp_path: Path, drive: FakeDriveServer):
    cases = [
        (
            "option-aggregator",
            ["client", "-p", P, "--aggregator", BAD[2]],
            {"SYFTBOX_EMAIL": "ok@example.com"},
            "aggregator",
        )
    ]
    failures = run_cases(tmp_path, drive, cases, timeout=30)
    assert not failures, "\n".join(failures)


# Regression test (was a strict xfail, fixed in 584af16); the bug was:
#   config.validate_email accepts emails that cannot fit Drive's 124-byte property limit: an own email over 100
#   characters is refused only by DriveTransport after an about.get, without naming SYFTBOX_EMAIL; an aggregator
#   of 120 characters is accepted and the client polls forever; a datasite of 120 characters makes the server fail
#   at run time (exit 4) instead of exit 2 naming datasites
def test_emails_too_long_for_drive_metadata_are_configuration_errors(tmp_path: Path, drive: FakeDriveServer):
    long_own = "x" * 95 + "@example.com"  # 107 characters
    long_peer = "y" * 108 + "@example.com"  # 120 characters
    cases = [
        (
            "own-email",
            ["client", "-p", P, "--aggregator", "ok@example.com"],
            {"SYFTBOX_EMAIL": long_own},
            "SYFTBOX_EMAIL",
        ),
        (
            "aggregator-env",
            ["client", "-p", P],
            {"SYFTBOX_EMAIL": "ok2@example.com", "SYFT_FLWR_AGGREGATOR": long_peer},
            "SYFT_FLWR_AGGREGATOR",
        ),
        (
            "datasite-option",
            ["server", "-p", P, "--datasites", long_peer, "--run-config", '{"num-server-rounds": 1, "min-clients": 1}'],
            {"SYFTBOX_EMAIL": "ds@example.com"},
            "datasites",
        ),
    ]
    # A hang detector, not a speed test: a loaded 2-core CI box can take several seconds to import flwr.
    failures = run_cases(tmp_path, drive, cases, timeout=30)
    assert not failures, "\n".join(failures)
