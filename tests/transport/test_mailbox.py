"""Trust and de-duplication rules of Mailbox, on the in-memory transport."""

import logging
import time
from dataclasses import replace

import pytest

from syft_flwr_gdrive.mailbox.ledger import Ledger
from syft_flwr_gdrive.mailbox.mailbox import Mailbox
from syft_flwr_gdrive.mailbox.messages import body_limit
from syft_flwr_gdrive.transport.contract import Listing
from syft_flwr_gdrive.transport.contract import Posting
from syft_flwr_gdrive.transport.memory import MemoryHub
from syft_flwr_gdrive.transport.memory import MemoryTransport
from tests.helpers.envelopes import body_for
from tests.helpers.routings import request_routing

APP = "flwr/t"
ME, PEER, STRANGER = "me@x.com", "peer@x.com", "evil@x.com"


def routing(**kw):
    return replace(request_routing(5, "m1", sender=PEER, recipient=ME, app=APP, ttl=86400.0), **kw)


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
    box.mark_handled("m1", PEER)
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


class ListsEverything(MemoryTransport):
    """Lists every file of others as inbound, whatever it claims: a peer's outbox folder may hold anything."""

    def poll(self, app: str) -> Listing:
        listing = super().poll(app)
        with self.hub.lock:
            items = list(self.hub.files.items())
        inbound = tuple(Posting(h, s.owner, s.routing, len(s.body), s.name) for h, s in items if s.owner != self.email)
        return replace(listing, inbound=inbound)


@pytest.mark.parametrize(
    "r, body_routing, reason",
    [
        (routing(message_id="m 1"), routing(message_id="m1"), "malformed"),
        (routing(reply_to="a/b"), routing(), "malformed"),
        (routing(recipient="other@x.com"), None, "addressed to 'other@x.com'"),
        (routing(app="flwr/other"), None, "of app 'flwr/other', not to me"),
        (routing(), routing(created_at=time.time() - 100, ttl=10), "expired (ttl 10s)"),
    ],
    ids=["message-id", "reply-to", "recipient", "app", "header-expired"],
)
def test_each_check_names_its_reason_once(tmp_path, caplog, r, body_routing, reason):
    hub = MemoryHub()
    box = Mailbox(ListsEverything(ME, hub), APP, [PEER], Ledger(tmp_path / "ledger.log"))
    handle = hub.put(PEER, r, body_for(body_routing or r))
    caplog.set_level(logging.INFO)
    for _ in range(2):
        assert box.poll().deliveries == ()
    lines = [rec.getMessage() for rec in caplog.records if handle in rec.getMessage()]
    assert len(lines) == 1 and reason in lines[0], lines
    assert handle in hub.files


def test_an_expired_message_is_recorded_as_handled(setup):
    hub, box = setup
    r = routing(message_id="old", created_at=time.time() - 100, ttl=10)
    hub.put(PEER, r, body_for(r))
    assert box.poll().deliveries == ()
    assert box.handled("old", PEER)


def test_an_oversize_message_is_refused_unread_once(tmp_path, caplog):
    hub = MemoryHub()
    box = Mailbox(MemoryTransport(ME, hub), APP, [PEER], Ledger(tmp_path / "ledger.log"), max_payload=1000)
    r = routing(message_id="big")
    handle = hub.put(PEER, r, body_for(r, b"x" * (body_limit(1000) + 1)))
    first, second = box.poll(), box.poll()
    assert first.deliveries == second.deliveries == ()
    assert [(x.routing.message_id, "over the message limit of 1000 bytes" in x.reason) for x in first.refused] == [
        ("big", True)
    ]
    assert second.refused == ()  # reported once
    assert handle in hub.files


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
