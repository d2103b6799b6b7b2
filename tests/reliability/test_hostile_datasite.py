"""One dishonest datasite must not be able to silence, stall or impersonate an honest one (issue #23).

Each attack is played as the attacker would play it: a datasite of the run with its own Drive account and
keys on the fake Drive (a real ``DriveTransport`` and ``Mailbox``), reading only what it legitimately
receives (its requests, the request bundles of the run, whose header lists every recipient's request id)
and writing only into its own outbox. The server and the honest datasites are the real code: a
``TransportGrid`` and ``ClientLoop`` threads in this process for the exact, fast scenarios; the CLI's
``server`` and ``client`` processes for the federations.

* Reply-id pre-emption: a reply's id is derived from its request id and its sender's email, both in a
  bundle's header. Was: the server recorded the id of any reply as handled, whoever sent it, so a reply
  under another datasite's future id made that datasite's real reply vanish, every round, unlogged.
* Parts that never arrive: was: the server decoded a reply, waiting for the blob parts it names, inside
  its one poll, before checking that it answers a request sent to its sender: three such replies held the
  poll 3 x SYFT_FLWR_MSG_TIMEOUT and an honest reply sent 1 s later was lost for the round.
* A datasite whose key changed: was: excluded only after the whole key wait, and sent no stop signal,
  so it polled forever.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flwr.app import Array
from flwr.app import ArrayRecord
from flwr.app import Message
from flwr.app import Metadata
from flwr.app import MetricRecord
from flwr.app import RecordDict
from flwr.app.message.message import make_message
from flwr.clientapp import ClientApp
from flwr.supercore.task_identity import TaskIdentity

from syft_flwr_gdrive.base.accounts import node_id_for
from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.base.routing import KIND_REQUEST
from syft_flwr_gdrive.base.routing import KIND_STOP
from syft_flwr_gdrive.crypto.blobseal import BLOB_CIPHER
from syft_flwr_gdrive.crypto.blobseal import content_digest
from syft_flwr_gdrive.crypto.blobseal import sealed_blob_size
from syft_flwr_gdrive.crypto.keys import Identity
from syft_flwr_gdrive.crypto.multiseal import read_head
from syft_flwr_gdrive.crypto.pins import PinStore
from syft_flwr_gdrive.crypto.seal import Sealer
from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.flower.client_loop import ClientLoop
from syft_flwr_gdrive.flower.client_loop import _apply_part
from syft_flwr_gdrive.flower.client_loop import reply_id_for
from syft_flwr_gdrive.flower.codec import CODEC_PARTS
from syft_flwr_gdrive.flower.codec import MIN_BLOB_PART_BYTES
from syft_flwr_gdrive.flower.codec import SERVER_NODE_ID
from syft_flwr_gdrive.flower.codec import decode_message
from syft_flwr_gdrive.flower.codec import encode_message
from syft_flwr_gdrive.flower.grid import TransportGrid
from syft_flwr_gdrive.mailbox.ledger import Ledger
from syft_flwr_gdrive.mailbox.mailbox import Mailbox
from syft_flwr_gdrive.mailbox.mailbox import new_message_id
from syft_flwr_gdrive.transport.drive.ratelimit import WritePacer
from tests.helpers.reliability import MESSAGE_APP_KEY
from tests.helpers.reliability import SERVER
from tests.helpers.reliability import leftover_message_files
from tests.helpers.reliability import make_federation
from tests.helpers.reliability import run_cli
from tests.helpers.reliability import transport_for
from tests.helpers.reliability import wait_for_log

APP = "flwr/hostile-datasite"
DS, ALICE, EVE = "ds_hd@example.com", "alice_hd@example.com", "eve_hd@example.com"
RUN = 23


@pytest.fixture(autouse=True)
def identity():
    """Flower's Message() stamps messages with this process-wide identity (here: the tests' server's)."""
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, RUN, SERVER_NODE_ID


# -- the participants ----------------------------------------------------------------------------------


def keyed_mailbox(drive: FakeDriveServer, email: str, peers: list[str], app: str = APP) -> Mailbox:
    """A participant's mailbox with keys of its own (pins taken on first sight), encryption on."""
    return Mailbox(
        transport_for(drive, email), app, peers, Ledger(None), sealer=Sealer(Identity.ephemeral(), PinStore(None))
    )


def server_grid(drive: FakeDriveServer, datasites: list[str], msg_timeout: float) -> TransportGrid:
    """The server as ``serve`` sets it up: folders, bundles on, the run announced, then its keys; every key learnt."""
    box = keyed_mailbox(drive, DS, datasites)
    box.prepare(keys=False)
    box.enable_bundles()
    box.announce_run(RUN)
    box.publish_keys()
    grid = TransportGrid(box, datasites, msg_timeout=msg_timeout, poll_interval=0.05)
    grid.set_run(RUN)
    return grid


def honest_app() -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, context) -> Message:
        return Message(RecordDict({"metrics": MetricRecord({"honest": 1})}), reply_to=msg)

    return app


class HonestDatasite:
    """The real client loop in a thread, started when the scenario says."""

    def __init__(self, drive: FakeDriveServer, email: str) -> None:
        self.box = keyed_mailbox(drive, email, [DS])
        self.box.prepare()  # publishes its keys: the server can learn them before the loop runs
        self.stop = threading.Event()
        self.loop = ClientLoop(honest_app(), self.box, poll_interval=0.05, stop_event=self.stop, linger=0.5)
        self.thread = threading.Thread(target=self.loop.run, daemon=True)

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(10)


class DishonestDatasite:
    """A datasite of the run playing foul with what its account can do: its own keys and Drive account, the
    requests and bundles it receives, files in its own outbox only."""

    def __init__(self, drive: FakeDriveServer, email: str, server: str, app: str) -> None:
        self.email, self.server, self.drive = email, server, drive
        self.box = keyed_mailbox(drive, email, [server], app)
        self.box.prepare()
        self._bundles_read: set[str] = set()
        self.handled: set[str] = set()  # message ids of the requests and stops it acted on

    def _accept(self, routing) -> str | None:
        if routing.kind not in (KIND_REQUEST, KIND_STOP) or routing.message_id in self.handled:
            return "not for me now"
        return None if routing.run_id == self.box.announced.get(self.server) else "not the announced run"

    def poll(self) -> tuple[list[tuple[str, Message | None, str]], list[dict]]:
        """What the server sent me, as (kind, request or None for a stop, message id), and every recipient's part
        (``to``, ``msg``: its request id) of each request bundle listed to me, read from the header."""
        result = self.box.poll(accept=self._accept)
        received = []
        for delivery in result.deliveries:
            env = delivery.envelope
            try:
                if env.kind == KIND_STOP:
                    received.append((KIND_STOP, None, env.message_id))
                    continue
                request = decode_message(delivery.open_payload(), env.size, codecs=env.codecs)
                if delivery.private is not None:
                    _apply_part(request, delivery.private)
                received.append((KIND_REQUEST, request, env.message_id))
            finally:
                delivery.close()
        parts: list[dict] = []
        for posting in result.listing.bundles:
            if posting.handle in self._bundles_read:
                continue
            self._bundles_read.add(posting.handle)
            head, header_parts, *_ = read_head(self.box.transport.read(posting))  # readable without any key
            if head.kind == KIND_REQUEST:
                parts += header_parts
        return received, parts

    def reply(self, request_id: str, run_id: int, message: Message, *, message_id: str, payload=None) -> str:
        """Post ``message`` (or a hand-made ``payload``) as a reply to ``request_id``; returns its file."""
        message.metadata.__dict__["_message_id"] = message_id
        return self.box.send(
            kind="reply",
            recipient=self.server,
            run_id=run_id,
            payload=payload if payload is not None else encode_message(message),
            message_id=message_id,
            reply_to=request_id,
            codecs=(CODEC_PARTS,),
        )[1]

    def preempt(self, part: dict, run_id: int) -> str:
        """Reply to another recipient's request under the id that recipient's real reply will carry."""
        victim, request_id = part["to"], part["msg"]
        shell = make_message(
            metadata=Metadata(
                run_id=run_id,
                message_id="",
                src_node_id=node_id_for(self.email),
                dst_node_id=SERVER_NODE_ID,
                reply_to_message_id=request_id,
                group_id="",
                created_at=time.time(),
                ttl=600.0,
                message_type="train",
            ),
            content=RecordDict({"metrics": MetricRecord({"forged": 1})}),
        )
        return self.reply(request_id, run_id, shell, message_id=reply_id_for(request_id, victim))

    def reply_naming_missing_parts(self, request: Message, message_id: str) -> str:
        """A reply whose model is a blob in three parts this datasite reserved and never uploads."""
        locators = self.box.reserve_blob(3)
        assert locators is not None
        reply = Message(
            RecordDict({"arrays": ArrayRecord({"w": Array("uint8", (8,), "numpy.ndarray", b"\x01" * 8)})}),
            reply_to=request,
        )
        reply.metadata.__dict__["_message_id"] = message_id
        return self.reply(
            request.metadata.message_id,
            request.metadata.run_id,
            reply,
            message_id=message_id,
            payload=naming_missing_parts(encode_message(reply), locators),
        )

    def answer(self, request: Message) -> str:
        """An honest answer, under its own reply id."""
        reply = Message(RecordDict({"metrics": MetricRecord({"honest": 1})}), reply_to=request)
        mid = reply_id_for(request.metadata.message_id, self.email)
        return self.reply(request.metadata.message_id, request.metadata.run_id, reply, message_id=mid)

    def acknowledge(self, stop_id: str, run_id: int) -> None:
        self.box.send(
            kind="stop-ack",
            recipient=self.server,
            run_id=run_id,
            payload=b"",
            message_id=reply_id_for(stop_id, self.email),
            reply_to=stop_id,
        )

    def clean(self) -> None:
        """Delete every file it wrote (the attack leaves nothing of its own behind either), paced as Drive's write
        limit allows (the fake's, under the strict profile): a hundred deletes at once are mostly refused."""
        api = self.box.transport.api  # type: ignore[attr-defined]
        limit = self.drive.faults
        if api.writes is None and limit.write_rate > 0:
            api.writes = WritePacer(limit.write_rate, burst=limit.write_burst)
        mine = [p.handle for p in self.box.stored().outbound] + self.box.my_blobs()
        if mine:
            self.box.delete_own(mine)


def naming_missing_parts(segments, locators: list[str]) -> bytes:
    """A parts payload whose one inline array is re-pointed at a blob stored in ``locators`` (never uploaded)."""
    index_seg, proto, *_inline = [bytes(s) for s in segments]
    index = json.loads(index_seg[4:])
    size = MIN_BLOB_PART_BYTES * len(locators) - 4096  # its sealed size needs exactly len(locators) parts
    stored = sealed_blob_size(size)
    assert MIN_BLOB_PART_BYTES * (len(locators) - 1) < stored <= MIN_BLOB_PART_BYTES * len(locators)
    [entry] = index["arrays"]
    entry.update(
        shape=[size],
        size=size,
        blob=locators[0],
        blob_digest=content_digest(b"never uploaded"),
        blob_key=base64.b64encode(os.urandom(32)).decode(),
        blob_cipher=BLOB_CIPHER,
        blob_parts=locators[1:],
        blob_part_bytes=MIN_BLOB_PART_BYTES,
    )
    raw = json.dumps(index, separators=(",", ":")).encode()
    return struct.pack(">I", len(raw)) + raw + proto


def request_to(email: str) -> Message:
    return Message(RecordDict({"metrics": MetricRecord({"round": 1})}), node_id_for(email), "train", group_id="1")


def await_keys(grid: TransportGrid, *others: HonestDatasite | DishonestDatasite) -> None:
    """Server and datasites learn each other's keys (the datasites from the server's announcement)."""
    assert grid.await_keys(20) == set()
    deadline = time.monotonic() + 20
    while not all(o.box.sealer.knows(DS) for o in others):  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the datasites never learnt the server's keys"
        for o in others:
            if not o.box.sealer.knows(DS):  # type: ignore[union-attr]
                o.box.poll(accept=lambda r: "not yet")
        time.sleep(0.05)


def downloads_of(box: Mailbox) -> list[str]:
    """Every file id the account downloads, from now on."""
    api = box.transport.api  # type: ignore[attr-defined]
    seen: list[str] = []
    original = api._download

    def spy(file_id, out, max_bytes):
        seen.append(file_id)
        return original(file_id, out, max_bytes)

    api._download = spy
    return seen


def in_background(fn, *args, **kwargs) -> tuple[threading.Thread, dict]:
    """Run ``fn(*args, **kwargs)`` in a thread; its result lands in the dict under "result"."""
    out: dict = {}

    def run() -> None:
        started = time.monotonic()
        out["result"] = fn(*args, **kwargs)
        out["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def until(condition, timeout: float, what: str, step=None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        if step is not None:
            step()
        time.sleep(0.05)


@pytest.fixture
def grid_drive() -> Iterator[FakeDriveServer]:
    with FakeDriveServer() as server:
        yield server


# -- 1. reply-id pre-emption -----------------------------------------------------------------------------


def test_a_reply_under_another_datasites_reply_id_does_not_silence_that_datasite(grid_drive, caplog):
    """Eve reads Alice's request id in the bundle header they both receive and answers first, under the id
    Alice's reply will carry. Was: Alice's reply was then skipped as handled, with no log line."""
    caplog.set_level(logging.INFO)
    grid = server_grid(grid_drive, [ALICE, EVE], msg_timeout=15)
    alice, eve = HonestDatasite(grid_drive, ALICE), DishonestDatasite(grid_drive, EVE, DS, APP)
    server_downloads = downloads_of(grid.mailbox)
    try:
        await_keys(grid, alice, eve)
        round_thread, round_out = in_background(grid.send_and_receive, [request_to(ALICE), request_to(EVE)], timeout=15)
        mine: list = []
        parts: list[dict] = []

        def eve_polls() -> None:
            received, header = eve.poll()
            mine.extend(received)
            parts.extend(header)

        until(lambda: mine and parts, 15, "Eve never received her request and its bundle", eve_polls)
        [alices] = [p for p in parts if p["to"] == ALICE]
        forged = eve.preempt(alices, RUN)
        (_kind, my_request, _mid) = mine[0]
        eve.answer(my_request)  # Eve answers her own request too: the round ends as soon as Alice's reply is in
        # The server's poll looks at the forged reply before Alice has even read her request.
        until(
            lambda: any(forged in r.getMessage() or alices["msg"] in r.getMessage() for r in caplog.records),
            15,
            "the server never looked at the forged reply",
        )
        alice.start()
        round_thread.join(30)
        replies = round_out["result"]
        senders = {r.metadata.src_node_id for r in replies if not r.has_error()}
        assert node_id_for(ALICE) in senders, f"Alice's reply was silenced by Eve's forged one: {replies}"
        assert node_id_for(EVE) in senders
        assert forged not in server_downloads, "the forged reply was downloaded"
        lines = [r.getMessage() for r in caplog.records if forged in r.getMessage()]
        assert len(lines) == 1 and "not the one derived" in lines[0], lines
    finally:
        alice.close()
        grid.close()


# -- 2. reply parts that never arrive ----------------------------------------------------------------------


def test_replies_naming_parts_never_uploaded_cost_their_sender_its_reply_not_the_others_their_round(grid_drive, caplog):
    """Eve answers with three replies naming blob parts she never uploads; Alice answers 1 s later.
    Was: each held the server's one poll for SYFT_FLWR_MSG_TIMEOUT, and Alice's reply was lost."""
    caplog.set_level(logging.INFO)
    timeout = 8.0  # SYFT_FLWR_MSG_TIMEOUT: the round's wait, and the wait for a reply's parts
    grid = server_grid(grid_drive, [ALICE, EVE], msg_timeout=timeout)
    alice, eve = HonestDatasite(grid_drive, ALICE), DishonestDatasite(grid_drive, EVE, DS, APP)
    try:
        await_keys(grid, alice, eve)
        round_thread, round_out = in_background(grid.send_and_receive, [request_to(ALICE), request_to(EVE)], timeout=60)
        mine: list = []
        until(lambda: mine, 15, "Eve never received her request", lambda: mine.extend(eve.poll()[0]))
        (_kind, request, _mid) = mine[0]
        own_id = reply_id_for(request.metadata.message_id, EVE)
        stalling = [
            eve.reply_naming_missing_parts(request, mid) for mid in (own_id, new_message_id(), new_message_id())
        ]
        time.sleep(1.0)
        alice.start()
        round_thread.join(4 * timeout + 20)
        replies, seconds = round_out["result"], round_out["seconds"]
        senders = {r.metadata.src_node_id for r in replies if not r.has_error()}
        assert node_id_for(ALICE) in senders, (
            f"Alice's reply was lost while the server waited for Eve's parts: {replies}"
        )
        assert node_id_for(EVE) not in senders
        assert seconds < timeout + 3, f"the round took {seconds:.1f}s: Eve's parts held it past its timeout"
        # Eve's own reply was waited for (on its own), then refused: one line; the other two refused unread.
        until(
            lambda: any(stalling[0] in r.getMessage() for r in caplog.records), timeout + 5, "Eve's reply never vetted"
        )
        lines = {h: [r.getMessage() for r in caplog.records if h in r.getMessage()] for h in stalling}
        assert len(lines[stalling[0]]) == 1 and "was not stored within" in lines[stalling[0]][0], lines
        assert all(len(lines[h]) == 1 and "not the one derived" in lines[h][0] for h in stalling[1:]), lines
        assert not [r for r in caplog.records if "poll failed" in r.getMessage()]
    finally:
        alice.close()
        grid.close()


def test_a_reply_whose_parts_never_came_is_read_again_when_its_datasite_sends_it_again(grid_drive, caplog):
    """A datasite's upload fails after its reply went out (its parts never come); it deletes the reply and
    sends it again, same reply id, in a new file. Was: the id was recorded as handled before the parts were
    fetched, so the second copy was skipped as a duplicate and the datasite lost its reply."""
    caplog.set_level(logging.INFO)
    grid = server_grid(grid_drive, [EVE], msg_timeout=30)
    datasite = DishonestDatasite(grid_drive, EVE, DS, APP)  # an honest datasite whose upload fails, here
    try:
        await_keys(grid, datasite)
        [request_id] = grid.push_messages([request_to(EVE)])
        mine: list = []
        until(lambda: mine, 15, "the request never arrived", lambda: mine.extend(datasite.poll()[0]))
        (_kind, request, _mid) = mine[0]
        reply_id = reply_id_for(request_id, EVE)
        grid.msg_timeout = 1.5  # the wait for a reply's parts (the reply wait), short for this test
        first = datasite.reply_naming_missing_parts(request, reply_id)
        until(
            lambda: any("was not stored within" in r.getMessage() for r in caplog.records),
            20,
            "the server never gave up on the missing parts",
            lambda: grid._poll_if_due(force=True),
        )
        datasite.box.delete_own([first])
        datasite.answer(request)  # the same reply (same id), complete this time
        replies: list[Message] = []
        until(
            lambda: replies,
            20,
            "the reply sent again was ignored",
            lambda: replies.extend(grid.pull_messages([request_id])),
        )
        assert replies[0].metadata.src_node_id == node_id_for(EVE) and not replies[0].has_error()
    finally:
        grid.close()


# -- 3. the stop signal ----------------------------------------------------------------------------------------


def test_only_a_stop_signed_with_the_pinned_aggregator_key_stops_a_client(grid_drive, caplog):
    """A stop written in the aggregator's Drive account but signed with another key (someone who took over the
    account, not the keys), or written by a stranger, does not stop a client; the aggregator's own does."""
    caplog.set_level(logging.INFO)
    grid = server_grid(grid_drive, [ALICE], msg_timeout=10)
    alice = HonestDatasite(grid_drive, ALICE)
    try:
        await_keys(grid, alice)
        impostor = keyed_mailbox(grid_drive, DS, [ALICE])  # the aggregator's account, other keys
        impostor.prepare(keys=False)  # (publishing them would only have Alice refuse them: changed key)
        impostor.sealer.learn(ALICE, alice.box.sealer.identity.public)  # type: ignore[union-attr]
        stop = encode_message(
            make_message(
                metadata=Metadata(
                    run_id=RUN,
                    message_id="",
                    src_node_id=SERVER_NODE_ID,
                    dst_node_id=node_id_for(ALICE),
                    reply_to_message_id="",
                    group_id="final",
                    created_at=time.time(),
                    ttl=600.0,
                    message_type="system",
                ),
                content=RecordDict(),
            )
        )
        _, forged = impostor.send(kind="stop", recipient=ALICE, run_id=RUN, payload=stop, codecs=(CODEC_PARTS,))
        stranger = keyed_mailbox(grid_drive, "mallory_hd@evil.example", [ALICE])
        stranger.prepare()
        stranger.sealer.learn(ALICE, alice.box.sealer.identity.public)  # type: ignore[union-attr]
        _, strangers = stranger.send(kind="stop", recipient=ALICE, run_id=RUN, payload=stop, codecs=(CODEC_PARTS,))
        alice.start()
        until(lambda: any(forged in r.getMessage() for r in caplog.records), 15, "the forged stop was never vetted")
        time.sleep(0.5)
        assert alice.thread.is_alive(), "a stop not signed with the pinned key stopped the client"
        assert not [r for r in caplog.records if strangers in r.getMessage()], "a stranger's file reached a poll"
        assert grid.send_stop_signal(wait=15) == {ALICE}
        alice.thread.join(15)
        assert not alice.thread.is_alive() and alice.loop.report.stopped_by == "stop-signal"
        [line] = [r.getMessage() for r in caplog.records if forged in r.getMessage()]
        assert "rejected" in line, line
    finally:
        alice.close()
        grid.close()


# -- 4. federations: the CLI's processes, one datasite dishonest, one whose key changed ------------------------

CAROL = "carol_hd@example.com"
HONEST = ("alice_hd@example.com", "bob_hd@example.org")


def pin_an_older_key(state: Path, of: str) -> None:
    """The server's pins as a previous run left them: ``of``'s key then, which it has since re-created."""
    server_state = Settings.from_env({"SYFTBOX_EMAIL": SERVER, "SYFT_FLWR_STATE_DIR": str(state)})
    PinStore(server_state.participant_state_dir() / "peer-keys.json").check(of, Identity.ephemeral().public)


def received(server_log: str, phase: str) -> list[tuple[str, str]]:
    return re.findall(rf"INFO flwr: {phase}: Received (\d+) results and (\d+) failures", server_log)


def test_a_datasite_whose_key_changed_is_excluded_at_once_and_still_stopped(tmp_path: Path, drive: FakeDriveServer):
    """Carol re-created her keys (a reinstall); the server's pin is her old key. Was: the server waited its whole
    key wait before excluding her, and sent her no stop, so her client polled forever."""
    state = tmp_path / "state"
    pin_an_older_key(state, CAROL)
    clients = (HONEST[0], CAROL)
    with make_federation(
        tmp_path,
        drive,
        client_emails=clients,
        msg_timeout=30,
        run_config={"num-server-rounds": 2, "min-clients": 2},
        extra_env={"SYFT_FLWR_STATE_DIR": str(state)},
    ) as fed:
        fed.start_all()
        # Excluded as soon as its refused key is seen, not after the 30 s key wait: the reason says which (after the
        # wait it would be "no trusted public key within 30s"). Not a time bound: counted from start_all, it would
        # include four processes importing Flower, which a loaded 2-core machine makes last.
        wait_for_log(fed.server(), f"datasite {CAROL} is excluded from this run: it publishes a different", 90)
        assert fed.wait(90), "federation did not finish:\n" + fed.server().log_text()[-3000:]
        server_log = fed.server().log_text()
        for phase in ("aggregate_train", "aggregate_evaluate"):
            assert received(server_log, phase) == [("1", "1")] * 2, (phase, received(server_log, phase))
        for key, participant in fed.participants.items():
            assert participant.process is not None and participant.process.returncode == 0, participant.log_text()[
                -3000:
            ]
            if participant.role == "client":
                assert participant.report()["stopped_by"] == "stop-signal", (key, participant.report())
        assert "stop acknowledged by carol_hd@example.com" in server_log
    assert leftover_message_files(drive, (SERVER, *clients)) == {}
    # What README's trust steps say: the participant that refused the key (here the server) accepts it;
    # another data owner never pinned Carol, so it has nothing to accept.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYFT")}
    env.update(SYFT_FLWR_STATE_DIR=str(state), SYFT_FLWR_DRIVE_URL=drive.url)
    listed = run_cli(["trust"], {**env, "SYFTBOX_EMAIL": SERVER})
    assert listed.returncode == 0 and f"peer     {CAROL}: pinned" in listed.stdout and "REFUSED" in listed.stdout
    other = run_cli(["trust", "--accept", CAROL], {**env, "SYFTBOX_EMAIL": HONEST[0]})
    assert other.returncode == 2 and "no refused key" in other.stderr, other
    accepted = run_cli(["trust", "--accept", CAROL], {**env, "SYFTBOX_EMAIL": SERVER})
    assert accepted.returncode == 0, accepted


class EveInTheFederation:
    """The dishonest datasite of a federation, in a thread: every round it answers each other recipient's request
    first under that recipient's reply id, and its own with three replies naming parts it never uploads; it
    acknowledges the stop (to look honest) and then deletes what it wrote."""

    def __init__(self, drive: FakeDriveServer, email: str) -> None:
        self.eve = DishonestDatasite(drive, email, SERVER, MESSAGE_APP_KEY)
        self.preempted: list[str] = []
        self.stalling: list[str] = []
        self.stopped = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            while not self.stopped.is_set():
                received, parts = self.eve.poll()
                for part in parts:
                    if part["to"] != self.eve.email:
                        run_id = self.eve.box.announced.get(SERVER, 0)
                        self.preempted.append(self.eve.preempt(part, run_id))
                for kind, request, mid in received:
                    self.eve.handled.add(mid)
                    if kind == KIND_STOP:
                        self.eve.acknowledge(mid, self.eve.box.announced[SERVER])
                        time.sleep(2.0)  # the server sees the ack and removes its stop file
                        self.eve.clean()
                        self.stopped.set()
                        break
                    assert request is not None
                    own = reply_id_for(mid, self.eve.email)
                    for message_id in (own, new_message_id(), new_message_id()):
                        self.stalling.append(self.eve.reply_naming_missing_parts(request, message_id))
                time.sleep(0.05)
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)


def test_a_federation_with_one_dishonest_datasite_counts_every_honest_reply_and_leaves_nothing(
    tmp_path: Path, drive: FakeDriveServer
):
    """Two honest datasites, Eve (pre-empting their reply ids, stalling with parts she never uploads), and Carol,
    whose key changed: every round counts both honest replies, everyone stops, nothing is left on Drive."""
    rounds, timeout = 2, 10.0  # each phase waits out Eve's missing reply: keep the honest ones well inside it
    state = tmp_path / "state"
    pin_an_older_key(state, CAROL)
    eve_email = "eve_hd@example.com"
    clients = (*HONEST, CAROL)
    with make_federation(
        tmp_path,
        drive,
        client_emails=(*clients, eve_email),
        msg_timeout=timeout,
        run_config={"num-server-rounds": rounds, "min-clients": 3},
        extra_env={"SYFT_FLWR_STATE_DIR": str(state)},
    ) as fed:
        eve = EveInTheFederation(drive, eve_email)
        eve.thread.start()
        for i in range(len(clients)):
            fed.client(i).start()
        fed.server().start()
        finished = fed.wait(120, keys=["server", "client0", "client1", "client2"])
        eve.stopped.set()
        # Eve deletes what she wrote after the stop: about a hundred files, paced at the strict fake's 3 writes a
        # second: half a minute. Her leftovers are checked once she is done, not after 10 s.
        eve.thread.join(90)
        assert not eve.thread.is_alive(), "Eve was still deleting her files after 90 s"
        assert finished, "federation did not finish:\n" + fed.server().log_text()[-3000:]
        assert not eve.errors, eve.errors
        server_log = fed.server().log_text()
        assert eve.preempted and eve.stalling, "Eve never got to play"
        for phase in ("aggregate_train", "aggregate_evaluate"):
            # Alice and Bob counted every round; Carol (excluded) a failure; Eve's request timed out.
            assert received(server_log, phase) == [("2", "1")] * rounds, (phase, received(server_log, phase))
        for key in ("server", "client0", "client1", "client2"):
            participant = fed.participants[key]
            assert participant.process is not None and participant.process.returncode == 0, participant.log_text()[
                -3000:
            ]
            if participant.role == "client":
                assert participant.report()["stopped_by"] == "stop-signal", (key, participant.report())
        assert "poll failed" not in server_log and "Traceback" not in server_log
    assert leftover_message_files(drive, (SERVER, *clients, eve_email)) == {}
