"""Bundles over DriveTransport + Mailbox against the fake Drive: one file, each recipient its own part.

Security rules (docs/security.md) shown here: a recipient acts only on its own part; a bundle
whose listed routing was changed after signing is refused; a bundle from anyone but the sender
it names, or outside the folder that sender announced, is never acted on.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.flower.replies import reply_id_for
from syft_flwr_gdrive.mailbox.ledger import Ledger
from syft_flwr_gdrive.mailbox.mailbox import Mailbox
from syft_flwr_gdrive.transport.drive import layout
from syft_flwr_gdrive.transport.drive.discovery import REDISCOVER_EVERY
from syft_flwr_gdrive.transport.drive.errors import DriveError
from syft_flwr_gdrive.transport.drive.listing import SWEEP_MIN_GAP
from syft_flwr_gdrive.transport.drive.transport import DriveTransport
from tests.helpers.fake_service import drive_api_for
from tests.helpers.keys import sealers
from tests.helpers.routings import request_routing

DS, A, B, C, EVE = "ds@x.com", "a@x.com", "b@x.com", "c@x.com", "eve@x.com"
M_A, M_B = "1" * 32, "2" * 32
PAYLOAD = b"global model " * 300  # 3.9 KB: downloaded, not inline


@pytest.fixture
def drive():
    with FakeDriveServer() as server:
        yield server


def transport(drive, email):
    return DriveTransport(drive_api_for(drive.url, email), email)


def federation(drive, app, *, encrypted=True, client_peers=(DS,)):
    """A server that bundles (announcing run 1) and mailboxes for A, B, C (C a peer but never a recipient)."""
    keys = sealers(DS, A, B, C, EVE) if encrypted else {}
    server = Mailbox(transport(drive, DS), app, [A, B, C], Ledger(None), sealer=keys.get(DS))
    server.prepare()
    assert server.enable_bundles()
    server.announce_run(1)
    clients = {}
    for email in (A, B, C):
        box = Mailbox(transport(drive, email), app, client_peers, Ledger(None), sealer=keys.get(email))
        box.prepare()
        clients[email] = box
    return server, clients, keys


def send(server, payload=PAYLOAD, run_id=1):
    return server.send_bundle(
        kind="request",
        run_id=run_id,
        payload=payload,
        created_at=time.time(),
        ttl=600,
        parts=[(A, M_A, {"n": "a"}), (B, M_B, {"n": "b"})],
    )


def calls(box, name):
    return box.transport.call_counts().get(name, 0)


@pytest.mark.parametrize("encrypted", [True, False], ids=["sealed", "clear"])
def test_one_file_each_recipient_gets_only_its_own_part(drive, encrypted):
    server, clients, _ = federation(drive, f"flwr/b-{encrypted}", encrypted=encrypted)
    creates = calls(server, "files.create")
    send(server)
    assert calls(server, "files.create") - creates == 1  # one write for every recipient
    got = {}
    for email in (A, B):
        [d] = clients[email].poll().deliveries
        env = d.envelope
        got[email] = (env.message_id, env.sender, env.recipient, env.kind, d.private, d.payload)
    assert got[A] == (M_A, DS, A, "request", {"n": "a"}, PAYLOAD)
    assert got[B] == (M_B, DS, B, "request", {"n": "b"}, PAYLOAD)
    assert clients[C].poll().deliveries == ()


def test_a_handled_part_is_not_downloaded_again_and_an_idle_poll_stays_one_call(drive):
    server, clients, _ = federation(drive, "flwr/b-idle")
    a, c = clients[A], clients[C]
    assert a.poll().deliveries == ()  # sees run 1: stamps the id of its next message on its outbox (one write)
    time.sleep(SWEEP_MIN_GAP)  # a sweep is due again
    before = a.transport.api.calls.total
    assert a.poll().deliveries == ()
    assert a.transport.api.calls.total - before == 1  # folders read, heads fetched, folders listed: one request
    _, handle = send(server)
    [d] = a.poll().deliveries
    a.mark_handled(d.envelope.message_id, d.envelope.sender)
    c.poll()  # no part for C: read once, then left out of its listings
    downloads_a, downloads_c = calls(a, "media.download"), calls(c, "media.download")
    result = a.poll()
    assert result.deliveries == () and M_A in result.inbound_message_ids()  # its reply must stay until it goes
    assert c.poll().deliveries == () and c.poll().listing.bundles == ()
    assert (calls(a, "media.download"), calls(c, "media.download")) == (downloads_a, downloads_c)
    server.delete_own([handle])
    assert M_A not in a.poll().inbound_message_ids()  # gone: A may now delete its reply


def test_a_bundle_whose_listed_routing_was_changed_is_refused(drive, caplog):
    server, clients, _ = federation(drive, "flwr/b-relabel")
    _, handle = send(server)
    server.transport.api.update(handle, properties={layout.P_RUN: "2"}, fields="id")  # replayed as another run
    with caplog.at_level(logging.WARNING):
        assert clients[A].poll().deliveries == ()
        assert clients[A].poll().deliveries == ()
    lines = [r.getMessage() for r in caplog.records if handle in r.getMessage()]
    assert len(lines) == 1 and "signed head disagrees with its listed routing" in lines[0], lines


def test_a_bundle_copied_by_another_peer_is_refused_as_forged(drive, caplog):
    """EVE, a peer of A, announces a bundles folder of its own and puts the server's bundle in it, claiming DS."""
    app = "flwr/b-forged"
    server, clients, keys = federation(drive, app, client_peers=(DS, EVE))
    _, handle = send(server)
    data = server.transport.api.download_bytes(handle)
    eve = Mailbox(transport(drive, EVE), app, [A], Ledger(None), sealer=keys[EVE])
    eve.prepare()
    eve.enable_bundles()
    eve.announce_run(1)
    forged = eve.transport.send_bundle(request_routing(1, "f" * 32, sender=DS, recipient="", app=app), data)
    a = clients[A]
    a.transport.discovery.discovered_at.clear()  # see EVE's announcement now rather than in 10 s
    with caplog.at_level(logging.WARNING):
        ids = [d.envelope.message_id for d in a.poll().deliveries]
    assert ids == [M_A]  # the server's own bundle, once; the copy is not acted on
    lines = [r.getMessage() for r in caplog.records if forged in r.getMessage()]
    assert len(lines) == 1 and "forged sender" in lines[0], lines


def test_nobody_else_can_write_into_the_servers_bundles_folder(drive):
    server, clients, _ = federation(drive, "flwr/b-readonly")
    folder = server.transport.folders.bundle_folders["flwr/b-readonly"]
    with pytest.raises(DriveError):
        clients[A].transport.api.upload_bytes("bundle-x.sfgd", b"x", parent_id=folder, properties={})


def test_a_clear_bundle_is_refused_when_encryption_is_on(drive, caplog):
    app = "flwr/b-mixed"
    server, clients, _ = federation(drive, app)
    server.sealer = None  # a server with encryption switched off
    _, handle = send(server)
    with caplog.at_level(logging.WARNING):
        assert clients[A].poll().deliveries == ()
    lines = [r.getMessage() for r in caplog.records if handle in r.getMessage()]
    assert any("in the clear, but encryption is on" in line for line in lines), lines


# -- the grid: a push of N is one create, N replies one delete --------------------------------------------


def grid_federation(drive, app):
    from flwr.supercore.task_identity import TaskIdentity

    from syft_flwr_gdrive.flower.codec import SERVER_NODE_ID
    from syft_flwr_gdrive.flower.grid import TransportGrid

    keys = sealers(DS, A, B, C)
    box = Mailbox(transport(drive, DS), app, [A, B, C], Ledger(None), sealer=keys[DS])
    box.prepare()
    box.enable_bundles()
    grid = TransportGrid(box, [A, B, C], msg_timeout=30, poll_interval=0.05)
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 5, SERVER_NODE_ID
    grid.set_run(5)
    box.announce_run(5)
    clients = {}
    for email in (A, B, C):
        client = Mailbox(transport(drive, email), app, [DS], Ledger(None), sealer=keys[email])
        client.prepare()
        clients[email] = client
    return grid, clients


def answer_all(clients, expected):
    """Each client answers its part (as ClientLoop does); returns what each got."""
    from flwr.app import Message

    from syft_flwr_gdrive.flower.client_loop import _apply_part
    from syft_flwr_gdrive.flower.codec import CODEC_PARTS
    from syft_flwr_gdrive.flower.codec import decode_message
    from syft_flwr_gdrive.flower.codec import encode_message

    got = {}
    deadline = time.monotonic() + 20
    while len(got) < expected and time.monotonic() < deadline:
        for email, box in clients.items():
            for d in box.poll().deliveries:
                msg = decode_message(d.open_payload(), d.envelope.size, codecs=d.envelope.codecs)
                assert _apply_part(msg, d.private)
                reply = Message(msg.content, reply_to=msg)
                reply.metadata.__dict__["_message_id"] = reply_id_for(d.envelope.message_id, email)
                box.send(
                    kind="reply",
                    recipient=DS,
                    run_id=5,
                    payload=encode_message(reply),
                    message_id=reply.metadata.message_id,
                    reply_to=d.envelope.message_id,
                    codecs=(CODEC_PARTS,),
                )
                box.mark_handled(d.envelope.message_id, d.envelope.sender)
                got[email] = (msg.metadata.message_id, msg.metadata.dst_node_id, msg.content["config"]["round"])
        time.sleep(0.05)
    return got


def test_a_push_of_n_is_one_bundle_answered_by_all_and_deleted_once(drive):
    from flwr.app import ConfigRecord
    from flwr.app import Message
    from flwr.app import RecordDict

    from syft_flwr_gdrive.base.accounts import node_id_for

    grid, clients = grid_federation(drive, "flwr/b-grid")
    content = RecordDict({"config": ConfigRecord({"round": 1})})
    msgs = [Message(content, node_id_for(e), "train", group_id="1") for e in (A, B, C)]  # FedAvg's shape
    creates, batches = calls(grid.mailbox, "files.create"), calls(grid.mailbox, "batch")
    ids = list(grid.push_messages(msgs))
    assert calls(grid.mailbox, "files.create") - creates == 1
    got = answer_all(clients, 3)
    assert got == {e: (mid, node_id_for(e), 1) for e, mid in zip((A, B, C), ids)}
    replies = []
    deadline = time.monotonic() + 20
    while len(replies) < 3 and time.monotonic() < deadline:
        replies += grid.pull_messages(ids)
        time.sleep(0.05)
    assert sorted(r.metadata.reply_to_message_id for r in replies) == sorted(ids)
    grid.close()  # waits for the background delete of the answered bundle
    assert calls(grid.mailbox, "batch") - batches == 1  # one delete for the three parts
    assert not grid.mailbox.transport.list_my_blobs("flwr/b-grid")  # the bundle is gone


def test_legacy_one_message_calls_from_a_thread_pool_become_one_bundle(drive):
    from concurrent.futures import ThreadPoolExecutor

    from flwr.app import ConfigRecord
    from flwr.app import Message
    from flwr.app import RecordDict

    from syft_flwr_gdrive.base.accounts import node_id_for

    grid, clients = grid_federation(drive, "flwr/b-legacy")
    creates = calls(grid.mailbox, "files.create")
    # The legacy path: one RecordDict per client (equal contents), one send_and_receive per client thread.
    msgs = [
        Message(RecordDict({"config": ConfigRecord({"round": 2})}), node_id_for(e), "train", group_id="2")
        for e in (A, B, C)
    ]
    answering = threading.Thread(target=answer_all, args=(clients, 3), daemon=True)
    answering.start()
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda m: list(grid.send_and_receive([m], timeout=20)), msgs))
    answering.join(30)
    assert [len(r) for r in results] == [1, 1, 1] and not any(r[0].has_error() for r in results)
    assert calls(grid.mailbox, "files.create") - creates == 1 and grid._coalescer.pushes == 1
    grid.close()


def test_stop_signals_are_one_bundle_deleted_after_the_last_acknowledgement(drive):
    grid, clients = grid_federation(drive, "flwr/b-stop")
    creates = calls(grid.mailbox, "files.create")
    acked: dict[str, bool] = {}

    def acknowledge():
        deadline = time.monotonic() + 20
        while len(acked) < 3 and time.monotonic() < deadline:
            for email, box in clients.items():
                for d in box.poll().deliveries:
                    assert d.envelope.kind == "stop" and d.envelope.sender == DS
                    box.send(
                        kind="stop-ack",
                        recipient=DS,
                        run_id=5,
                        payload=b"",
                        message_id=reply_id_for(d.envelope.message_id, email),
                        reply_to=d.envelope.message_id,
                    )
                    box.mark_handled(d.envelope.message_id, d.envelope.sender)
                    acked[email] = True
            time.sleep(0.05)

    acking = threading.Thread(target=acknowledge, daemon=True)
    acking.start()
    assert grid.send_stop_signal(wait=20) == {A, B, C}
    acking.join(20)
    assert calls(grid.mailbox, "files.create") - creates == 1  # one stop file for three datasites
    grid.close()
    assert not grid.mailbox.transport.list_my_blobs("flwr/b-stop")  # deleted once all three acknowledged


def test_a_bundle_of_a_newer_run_has_the_client_read_the_announcement_again_at_once(drive):
    """A client that stays up between runs: the next run's server (a new process, no promises) sends its
    first bundle into the same folder. The client takes it at once and reads the new announcement at
    the same poll, not at its next discovery 10 s later (as a message in the outbox already made it do)."""
    app = "flwr/b-rerun"
    server, clients, keys = federation(drive, app)
    box = clients[A]
    assert not box.poll().deliveries  # knows run 1 and where bundles are
    again = Mailbox(transport(drive, DS), app, [A, B, C], Ledger(None), sealer=keys[DS])
    again.prepare(keys=False)
    assert again.enable_bundles()
    again.announce_run(2)
    again.publish_keys()
    send(again, run_id=2)
    time.sleep(REDISCOVER_EVERY + 0.1)  # a rediscovery is due at most this often
    got = box.poll().deliveries  # a bundle nothing promised is found by listing
    assert [(d.envelope.run_id, d.envelope.message_id) for d in got] == [(2, M_A)]
    assert {a.run_id for a in box.transport.poll(app).announcements if a.owner == DS} == {2}


def test_an_unencrypted_client_sees_the_first_run_soon_after_the_servers_folder_appears(drive):
    """Without keys a client counts the server ready once its folder exists; the run announcement comes
    a moment later, and must be read again within a second or two, not at the 10 s rediscovery."""
    app = "flwr/b-first-clear"
    server = Mailbox(transport(drive, DS), app, [A], Ledger(None))
    server.prepare()
    box = Mailbox(transport(drive, A), app, [DS], Ledger(None))
    box.prepare()
    assert not box.poll().deliveries  # found the server's folder: no run yet
    assert server.enable_bundles()
    server.announce_run(1)
    send(server)
    time.sleep(REDISCOVER_EVERY + 0.1)
    got = box.poll().deliveries
    assert [(d.envelope.run_id, d.envelope.message_id) for d in got] == [(1, M_A)]
