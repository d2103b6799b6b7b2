"""What the directory transport adds to the contract: options, hostile files, paths, doctor."""

from __future__ import annotations

import io
import json
import os

import pytest

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.crypto.keys import Identity
from syft_flwr_gdrive.crypto.pins import PinStore
from syft_flwr_gdrive.crypto.seal import Sealer
from syft_flwr_gdrive.mailbox.ledger import Ledger
from syft_flwr_gdrive.mailbox.mailbox import Mailbox
from syft_flwr_gdrive.ops.checks import run_checks
from syft_flwr_gdrive.transport.contract import Routing
from syft_flwr_gdrive.transport.contract import TransportError
from syft_flwr_gdrive.transport.directory import DirectoryTransport
from syft_flwr_gdrive.transport.directory import app_folder
from syft_flwr_gdrive.transport.registry import create_transport
from syft_flwr_gdrive.transport.untrusted_files import copy_at_most
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


# -- who a folder belongs to, and what may be read in it (docs/security.md, the dir transport) ------------


def test_the_folder_written_is_the_canonical_address_and_a_look_alike_is_never_read(tmp_path, caplog):
    honest = DirectoryTransport(tmp_path, "J.Doe@GoogleMail.com")
    honest.prepare(APP, [B])
    assert [p.name for p in tmp_path.iterdir()] == ["jdoe@gmail.com"]
    eve = DirectoryTransport(tmp_path, A)
    eve.home = tmp_path / "Alice@Example.com"  # Eve's folder, spelled like Alice's address
    eve.send(routing(), b"as alice")
    eve.publish_keys(APP, {"kx": "eve", "ks": "eve"})
    bob = DirectoryTransport(tmp_path, B)
    for _ in range(2):
        listing = bob.poll(APP)
        assert listing.inbound == () and listing.announcements == ()
    assert sum("a look-alike of 'alice@example.com'" in r.getMessage() for r in caplog.records) == 1


def test_a_directory_named_like_a_message_is_listed_as_refused_unread(tmp_path):
    box = tmp_path / A / app_folder(APP) / "to" / B
    box.mkdir(parents=True)
    (box / "request-x.msg").mkdir()
    [posting] = DirectoryTransport(tmp_path, B).poll(APP).inbound
    assert posting.routing is None and "a directory, not a regular file" in posting.unreadable


def test_a_link_named_like_a_message_is_refused_and_never_followed(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not for peers")
    box = tmp_path / A / app_folder(APP) / "to" / B
    box.mkdir(parents=True)
    (box / "request-x.msg").symlink_to(secret)
    [posting] = DirectoryTransport(tmp_path, B).poll(APP).inbound
    assert posting.routing is None and "a symbolic link" in posting.unreadable
    with pytest.raises(TransportError, match="refused"):
        DirectoryTransport(tmp_path, B).read(posting)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another uid")
def test_a_file_of_another_uid_in_a_participants_folder_is_refused(tmp_path):
    a = DirectoryTransport(tmp_path, A)
    a.send(routing(message_id="mine"), b"body")
    planted = tmp_path / a.send(routing(message_id="planted"), b"body")
    os.chown(planted, 65534, 65534)
    listed = {p.name: p for p in DirectoryTransport(tmp_path, B).poll(APP).inbound}
    assert listed["request-mine.msg"].routing is not None
    assert listed["request-planted.msg"].routing is None
    assert "owned by uid 65534, not by uid 0" in listed["request-planted.msg"].unreadable


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a folder to another uid")
def test_preparing_a_folder_someone_else_owns_fails_with_the_fix(tmp_path):
    (tmp_path / A).mkdir()
    os.chown(tmp_path / A, 65534, 65534)
    with pytest.raises(ConfigError, match="belongs to uid 65534.*Fix: remove it"):
        DirectoryTransport(tmp_path, A).prepare(APP, [B])


def test_a_body_is_read_no_further_than_its_checked_size(tmp_path):
    source, out = io.BytesIO(b"checked|appended later"), io.BytesIO()
    assert copy_at_most(source, out, 7, chunk=3) == 7 and out.getvalue() == b"checked"
    assert copy_at_most(io.BytesIO(b"short"), io.BytesIO(), 10, chunk=4) == 5  # shrank: the caller refuses it


def _mailbox(tmp_path, email, peers, sealer):
    return Mailbox(DirectoryTransport(tmp_path, email), APP, peers, Ledger(None), sealer=sealer)


def test_announcements_are_signed_and_a_planted_one_is_refused_once_the_key_is_pinned(tmp_path, caplog):
    keys = {email: Sealer(Identity.ephemeral(), PinStore(None)) for email in (A, B)}
    server, client = _mailbox(tmp_path, A, [B], keys[A]), _mailbox(tmp_path, B, [A], keys[B])
    server.prepare(keys=False)
    server.announce_run(7)
    server.publish_keys()
    stored = json.loads((tmp_path / A / app_folder(APP) / "announce.json").read_text())
    assert stored["run_id"] == 7 and stored["signature"]
    client.prepare()
    client.poll()
    assert client.announced == {A: 7} and keys[B].knows(A)
    planted = {"run_id": 99, "keys": keys[A].identity.public.encode()}  # unsigned: whoever could write there
    (tmp_path / A / app_folder(APP) / "announce.json").write_text(json.dumps(planted))
    for _ in range(2):
        client.poll()
        assert client.announced == {A: 7}  # the last announcement vetted stands
    said = [r.getMessage() for r in caplog.records if "announcement of its run" in r.getMessage()]
    assert len(said) == 1 and "carries no signature" in said[0]
