"""Real federations: a server and three clients as separate OS processes on the fake Drive.

Every participant runs the user-facing CLI (``python -m syft_flwr_gdrive.cli``),
with the real googleapiclient talking HTTP to the fake Drive server.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from syft_flwr_gdrive.fake import FakeDriveServer
from tests.helpers.e2e import CLIENTS
from tests.helpers.e2e import LEGACY_APP
from tests.helpers.e2e import MESSAGE_APP
from tests.helpers.e2e import ROUNDS
from tests.helpers.e2e import SERVER
from tests.helpers.e2e import assert_federation_succeeded
from tests.helpers.e2e import leftover_message_files
from tests.helpers.e2e import make_federation
from tests.helpers.e2e import record_calls
from tests.helpers.e2e import transport_for
from tests.helpers.e2e import wait_for_log

APP = "flwr/message-digits"


@pytest.mark.parametrize("project", [MESSAGE_APP, LEGACY_APP], ids=["message-api", "legacy-server_fn"])
def test_three_clients_train_a_real_model(tmp_path: Path, drive: FakeDriveServer, project: Path, request):
    with make_federation(tmp_path, drive, project) as fed:
        fed.start_all()
        assert fed.wait(180), "federation did not finish in time"
        assert_federation_succeeded(fed)
        record_calls(request.node.name, fed, ROUNDS)
    assert leftover_message_files(drive) == {}


def _announced_run(drive: FakeDriveServer, recipient: str, timeout: float = 60) -> int:
    """The run the server announces to ``recipient``, read from its own outbox folders (as their owner)."""
    from syft_flwr_gdrive.transport.drive import layout

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        folders = transport_for(drive, SERVER).api.list_files(layout.outbox_query(APP), fields="id,properties")
        runs = [
            layout.announced_run(f.get("properties"))
            for f in folders
            if layout.outbox_recipient_matches(f.get("properties"), recipient)
        ]
        if any(r is not None for r in runs):
            return max(r for r in runs if r is not None)
        time.sleep(0.1)
    raise AssertionError(f"{SERVER} announced no run to {recipient}")


def test_client_killed_mid_run_and_restarted_finishes(tmp_path: Path, drive: FakeDriveServer, request):
    with make_federation(tmp_path, drive, run_config={"num-server-rounds": ROUNDS}) as fed:
        fed.start_all()
        victim = fed.client(1)
        wait_for_log(victim, "answered train", 60)
        victim.kill()  # SIGKILL: no clean-up, mid-run
        time.sleep(0.5)
        victim.start()  # same email, same state dir: picks up where it stopped
        assert fed.wait(180)
        assert_federation_succeeded(fed)
        assert "answered" in victim.log_text()
        record_calls(request.node.name, fed, ROUNDS)
    assert leftover_message_files(drive) == {}


def test_second_run_is_unaffected_by_a_crashed_first_run(tmp_path: Path, drive: FakeDriveServer):
    # Same machines (state dirs: keys, pins, ledgers) for both runs, as in real life.
    first = make_federation(tmp_path / "one", drive, run_config={"num-server-rounds": 3}, state_dir=tmp_path / "state")
    with first:
        first.start_all()
        wait_for_log(first.client(0), "answered train", 60)
        first.server().kill()  # the server dies mid-run: its requests stay on Drive
        for i in range(3):
            first.client(i).kill()
    assert leftover_message_files(drive), "the crash should have left files behind"

    second = make_federation(tmp_path / "two", drive, run_config={"num-server-rounds": 3}, state_dir=tmp_path / "state")
    with second:
        second.start_all()
        assert second.wait(180)
        assert_federation_succeeded(second, rounds=3)
        client_log = second.client(0).log_text()
        server_runs = {line for line in client_log.splitlines() if "answered" in line}
        assert server_runs
    assert leftover_message_files(drive) == {}


def test_hostile_and_stale_files_are_skipped_and_nothing_is_lost(tmp_path: Path, drive: FakeDriveServer):
    from syft_flwr_gdrive.transport.contract import Routing
    from tests.helpers.envelopes import body_for
    from tests.helpers.routings import request_routing

    stranger = "mallory@evil.example"
    target = CLIENTS[0]
    with make_federation(tmp_path, drive) as fed:
        fed.start_all()
        wait_for_log(fed.client(0), "answered train", 60)
        run_id = _announced_run(drive, target)

        def routing(sender: str, mid: str, run: int = run_id) -> Routing:
            return request_routing(run, mid, sender=sender, recipient=target, app=APP)

        def valid_body(r: Routing) -> bytes:
            return body_for(r, b"\x00not a flower message")

        planted = {
            "corrupt": transport_for(drive, SERVER).send(routing(SERVER, "corrupt"), b"garbage, not an envelope"),
            "non-peer": transport_for(drive, stranger).send(
                routing(stranger, "stranger"), valid_body(routing(stranger, "stranger"))
            ),
            "forged": transport_for(drive, CLIENTS[1]).send(
                routing(SERVER, "forged"), valid_body(routing(SERVER, "forged"))
            ),
            "other-run": transport_for(drive, SERVER).send(
                routing(SERVER, "old", run_id - 1), valid_body(routing(SERVER, "old", run_id - 1))
            ),
        }
        assert fed.wait(180)
        assert_federation_succeeded(fed)
        log = fed.client(0).log_text()

    expected = {
        "corrupt": "invalid envelope",
        "other-run": f"belongs to run {run_id - 1}",
    }
    for name, handle in planted.items():
        lines = [line for line in log.splitlines() if handle in line]
        if name in ("non-peer", "forged"):  # outside the server's outbox: never listed, so never logged
            assert lines == [], f"{name}: a file outside a peer's outbox reached a poll: {lines}"
            continue
        assert len(lines) == 1, f"{name}: expected one log line, got {lines}"
        assert expected[name] in lines[0], lines[0]
    # The target owns none of the planted files and deleted none; the server's two stay for its
    # next run's clean-up, the stranger's stays, and so does client 1's (`clean` removes it).
    # Client 1's forged file sits in a folder its process does not use (to the target), so it stays too.
    assert leftover_message_files(drive) == {SERVER: 2, CLIENTS[1]: 1}
    assert len(transport_for(drive, stranger).my_postings()) == 1
