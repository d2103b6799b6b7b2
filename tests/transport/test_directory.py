"""What the directory transport adds to the contract: options, hostile files, paths, doctor."""

from __future__ import annotations

import json

import pytest

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.mailbox.ledger import Ledger
from syft_flwr_gdrive.mailbox.mailbox import Mailbox
from syft_flwr_gdrive.ops.checks import run_checks
from syft_flwr_gdrive.transport.contract import Routing
from syft_flwr_gdrive.transport.contract import TransportError
from syft_flwr_gdrive.transport.directory import DirectoryTransport
from syft_flwr_gdrive.transport.directory import app_folder
from syft_flwr_gdrive.transport.registry import create_transport
from tests.helpers.routings import request_routing

APP = "flwr/dir"
A, B, EVE = "alice@example.com", "bob@example.com", "eve@example.com"


def routing(sender=A, recipient=B, message_id="m1") -> Routing:
    return request_routing(1, message_id, sender=sender, recipient=recipient, app=APP)


def test_built_from_its_own_option_through_the_plugin(tmp_path):
    settings = Settings.from_env({"SYFTBOX_EMAIL": A, "SYFT_FLWR_TRANSPORT": "dir", "SYFT_FLWR_DIR": str(tmp_path)})
    transport = create_transport(settings)
    assert isinstance(transport, DirectoryTransport) and transport.root == tmp_path and transport.email == A


@pytest.mark.parametrize(
    "env, says",
    [
        ({}, "set SYFT_FLWR_DIR="),
        ({"SYFT_FLWR_DIR": "/nonexistent/shared"}, "does not exist"),
    ],
)
def test_a_missing_directory_is_a_clear_config_error(env, says):
    settings = Settings.from_env({"SYFTBOX_EMAIL": A, "SYFT_FLWR_TRANSPORT": "dir", **env})
    with pytest.raises(ConfigError, match=says):
        create_transport(settings)


def test_doctor_checks_the_directory_through_the_transport(tmp_path):
    env = {
        "SYFTBOX_EMAIL": A,
        "SYFT_FLWR_TRANSPORT": "dir",
        "SYFT_FLWR_DIR": str(tmp_path),
        "SYFT_FLWR_STATE_DIR": str(tmp_path / "state"),
    }
    checks = run_checks(env)
    assert [c.name for c in checks] == ["settings", "keys", "directory"] and all(c.ok for c in checks)
    assert not any(p.name.startswith(".doctor") for p in (tmp_path / A).iterdir())
    failed = run_checks({**env, "SYFT_FLWR_DIR": str(tmp_path / "missing")})
    assert failed[-1].name == "directory" and not failed[-1].ok and "SYFT_FLWR_DIR" in failed[-1].fix


def test_writes_leave_no_temporary_files_and_bodies_are_whole(tmp_path):
    a = DirectoryTransport(tmp_path, A)
    handle = a.send(routing(), b"x" * 3_000_000)
    box = (tmp_path / handle).parent
    assert [p.name for p in box.iterdir()] == ["request-m1.msg"]
    [posting] = DirectoryTransport(tmp_path, B).poll(APP).inbound
    assert posting.size == 3_000_000


def test_a_planted_file_is_listed_without_routing_and_refused_by_the_mailbox(tmp_path, caplog):
    box = tmp_path / A / app_folder(APP) / "to" / B
    box.mkdir(parents=True)
    (box / "junk.msg").write_bytes(b"not json\nbody")
    (box / "half.msg").write_bytes(
        json.dumps({"layout": 1, **routing().as_dict(), "ttl": "forever"}).encode() + b"\nbody"
    )
    listing = DirectoryTransport(tmp_path, B).poll(APP)
    assert sorted((p.name, p.routing) for p in listing.inbound) == [("half.msg", None), ("junk.msg", None)]
    mailbox = Mailbox(DirectoryTransport(tmp_path, B), APP, [A], Ledger(None))
    assert mailbox.poll().deliveries == ()
    assert "no valid routing metadata" in caplog.text


def test_the_owner_is_whose_subfolder_the_file_is_in(tmp_path):
    """Eve writes a message claiming to be Alice's into her own subfolder: the mailbox sees Eve as its owner."""
    DirectoryTransport(tmp_path, EVE).send(routing(sender=A), b"forged")
    [posting] = DirectoryTransport(tmp_path, B).poll(APP).inbound
    assert posting.owner == EVE and posting.routing.sender == A
    mailbox = Mailbox(DirectoryTransport(tmp_path, B), APP, [A], Ledger(None))
    assert mailbox.poll().deliveries == ()


@pytest.mark.parametrize("handle", ["../etc/passwd", f"{A}/x/to/../../../y", f"{A}/x/to/{B}/.hidden.msg", "a/b"])
def test_handles_never_leave_the_directory(tmp_path, handle):
    a = DirectoryTransport(tmp_path, A)
    with pytest.raises(TransportError):
        a.delete([handle])


def test_message_ids_that_cannot_name_a_file_are_refused(tmp_path):
    with pytest.raises(TransportError, match="cannot name a file"):
        DirectoryTransport(tmp_path, A).send(routing(message_id="../../x"), b"x")


def test_a_newer_layout_is_refused_once_with_the_fix(tmp_path, caplog):
    box = tmp_path / A / app_folder(APP) / "to" / B
    box.mkdir(parents=True)
    (box / "new.msg").write_bytes(json.dumps({"layout": 2, **routing().as_dict()}).encode() + b"\nbody")
    [posting] = DirectoryTransport(tmp_path, B).poll(APP).inbound
    assert posting.routing is None
    assert "directory layout version 2 is not one this build reads (it reads 1, writes 1)" in posting.unreadable
    mailbox = Mailbox(DirectoryTransport(tmp_path, B), APP, [A], Ledger(None))
    assert mailbox.poll().deliveries == () and mailbox.poll().deliveries == ()
    said = [r.getMessage() for r in caplog.records if "layout version" in r.getMessage()]
    assert len(said) == 1 and "unreadable routing metadata" in said[0] and "Fix: upgrade" in said[0]
