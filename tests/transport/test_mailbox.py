"""Trust and de-duplication rules of Mailbox, on the in-memory transport."""

import logging
import time

import pytest

from syft_flwr_gdrive.transport.contract import Routing
from syft_flwr_gdrive.transport.envelope import Envelope, encode
from syft_flwr_gdrive.transport.ledger import Ledger
from syft_flwr_gdrive.transport.mailbox import Mailbox
from syft_flwr_gdrive.transport.memory import MemoryHub, MemoryTransport

APP = "flwr/t"
ME, PEER, STRANGER = "me@x.com", "peer@x.com", "evil@x.com"


def routing(**kw):
    base = dict(run_id=5, message_id="m1", reply_to="", kind="request", sender=PEER, recipient=ME, app=APP,
                created_at=time.time(), ttl=86400.0)
    base.update(kw)
    return Routing(**base)


def body_for(r: Routing, payload=b"hello"):
    env = Envelope(run_id=r.run_id, message_id=r.message_id, sender=r.sender, recipient=r.recipient, kind=r.kind,
                   app=r.app, reply_to=r.reply_to, created_at=r.created_at, ttl=r.ttl)
    return encode(env, payload)


@pytest.fixture
def setup(tmp_path):
    hub = MemoryHub()
    box = Mailbox(MemoryTransport(ME, hub), APP, [PEER], Ledger(tmp_path / "ledger.log"))
    return hub, box


def test_valid_message_is_delivered_once_and_dedupe_survives_restart(setup, tmp_path):
    hub, box = setup
    r = routing()
    hub.put(PEER, r, body_for(r))
    got = box.poll().deliveries
    assert [d.payload for d in got] == [b"hello"]
    box.mark_handled("m1")
    assert box.poll().deliveries == ()
    restarted = Mailbox(MemoryTransport(ME, hub), APP, [PEER], Ledger(tmp_path / "ledger.log"))
    assert restarted.poll().deliveries == ()


@pytest.mark.parametrize(
    "owner, r, body, reason",
    [
        (PEER, None, b"junk", "foreign or damaged"),
        (PEER, routing(), b"SFGD\x00\x00\x00\x05{bad}", "invalid envelope"),
        (STRANGER, routing(sender=STRANGER), None, "not a peer"),
        (STRANGER, routing(), None, "forged sender"),
        (PEER, routing(created_at=time.time() - 100, ttl=10), None, "expired"),
    ],
)
def test_hostile_or_stale_files_are_skipped_with_one_log_line(setup, caplog, owner, r, body, reason):
    hub, box = setup
    handle = hub.put(owner, r, body if body is not None else body_for(r))
    good = routing(message_id="good")
    hub.put(PEER, good, body_for(good, b"ok"))
    caplog.set_level(logging.INFO)
    for _ in range(3):
        assert [d.payload for d in box.poll().deliveries] == [b"ok"]  # nothing lost alongside
    lines = [rec.getMessage() for rec in caplog.records if handle in rec.getMessage()]
    assert len(lines) == 1 and reason in lines[0]
    assert handle in hub.files  # never deleted: not ours


def test_metadata_and_header_must_agree(setup, caplog):
    hub, box = setup
    claimed = routing(message_id="m-meta")
    hub.put(PEER, claimed, body_for(routing(message_id="m-body")))
    assert box.poll().deliveries == ()
    assert "disagrees" in caplog.text


def test_accept_callback_defers_without_rejecting(setup):
    hub, box = setup
    r = routing(run_id=3)
    hub.put(PEER, r, body_for(r))
    assert box.poll(accept=lambda rt: "other run" if rt.run_id != 4 else None).deliveries == ()
    assert len(box.poll(accept=lambda rt: None).deliveries) == 1


def test_only_owner_deletes(setup):
    hub, box = setup
    r = routing()
    handle = hub.put(PEER, r, body_for(r))
    with pytest.raises(Exception, match="may not delete"):
        box.delete_own([handle])
