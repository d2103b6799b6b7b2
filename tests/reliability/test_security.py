"""Security regression tests (issue 11): what Drive stores, which files a peer can make you read.

In-process, through the real googleapiclient against the fake Drive, with real keys: the
server's ``TransportGrid`` and a client's ``ClientLoop`` (or a bare ``Mailbox`` where the
test plays a hostile peer), each over its own ``DriveTransport``.

* With encryption on, no byte of a payload (shared blobs included) is readable in the
  fake Drive's own storage (its data directory: contents, metadata journal, everything).
* A validly sealed and signed message naming a Drive file as a shared blob makes the
  receiver download it only when Drive's metadata says the sender owns it, it lies in the
  sender's blobs folder and has the declared size; otherwise not one byte is read, one
  line is logged, and the message is never retried.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flwr.app import Array
from flwr.app import ArrayRecord
from flwr.app import ConfigRecord
from flwr.app import Message
from flwr.app import RecordDict
from flwr.clientapp import ClientApp
from flwr.supercore.task_identity import TaskIdentity

from syft_flwr_gdrive.base.accounts import node_id_for
from syft_flwr_gdrive.crypto.keys import Identity
from syft_flwr_gdrive.crypto.pins import PinStore
from syft_flwr_gdrive.crypto.seal import Sealer
from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.flower.client_loop import ClientLoop
from syft_flwr_gdrive.flower.client_loop import reply_id_for
from syft_flwr_gdrive.flower.codec import CODEC_PARTS
from syft_flwr_gdrive.flower.codec import decode_message
from syft_flwr_gdrive.flower.codec import encode_message
from syft_flwr_gdrive.flower.grid import TransportGrid
from syft_flwr_gdrive.mailbox.ledger import Ledger
from syft_flwr_gdrive.mailbox.mailbox import Mailbox
from syft_flwr_gdrive.transport.drive import layout
from tests.helpers.reliability import api_for
from tests.helpers.reliability import transport_for

APP = "flwr/security"
DS, DO, EVE = "ds_sec@example.com", "do_sec@example.com", "eve_sec@example.com"
RUN = 7


@pytest.fixture
def drive() -> Iterator[FakeDriveServer]:
    with FakeDriveServer() as server:
        yield server


@pytest.fixture(autouse=True)
def identity():
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, RUN, 1


def mailbox(drive: FakeDriveServer, email: str, peers: list[str]) -> Mailbox:
    box = Mailbox(
        transport_for(drive, email), APP, peers, Ledger(None), sealer=Sealer(Identity.ephemeral(), PinStore(None))
    )
    box.prepare()
    return box


def server_grid(drive: FakeDriveServer) -> TransportGrid:
    grid = TransportGrid(mailbox(drive, DS, [DO]), [DO], msg_timeout=20, poll_interval=0.05)
    grid.set_run(RUN)
    grid.mailbox.announce_run(RUN)
    return grid


def recognisable(n: int, tag: str) -> bytes:
    """Bytes nobody could mistake: tag and counter, repeated."""
    pattern = b"".join(f"{tag}-{i:09d}|".encode() for i in range(n // (len(tag) + 11) + 1))
    return pattern[:n]


def downloads_of(box: Mailbox) -> list[str]:
    """Spy on the account's downloads: every file id whose content it fetches."""
    api = box.transport.api  # type: ignore[attr-defined]
    seen: list[str] = []
    original = api._download

    def spy(file_id, out, max_bytes):
        seen.append(file_id)
        return original(file_id, out, max_bytes)

    api._download = spy
    return seen


def stored_bytes(drive: FakeDriveServer) -> Iterator[tuple[Path, bytes]]:
    assert drive.store is not None
    for path in sorted(Path(drive.store.dir).rglob("*")):
        if path.is_file():
            yield path, path.read_bytes()


def small_request() -> Message:
    """A train request to the client with one 8-byte array (which a test may re-point at a Drive file)."""
    return Message(
        RecordDict({"arrays": ArrayRecord({"w": Array("uint8", (8,), "numpy.ndarray", b"\x00" * 8)})}),
        node_id_for(DO),
        "train",
        group_id="1",
    )


def as_sent_by_the_grid(msg: Message) -> Message:
    """``msg`` with the ids the grid gives a request, for a test that sends it through a bare mailbox."""
    msg.metadata.__dict__["_message_id"] = os.urandom(16).hex()
    msg.metadata.__dict__["_run_id"] = RUN
    msg.metadata.__dict__["_src_node_id"] = 1
    return msg


def request_and_reply(delivery) -> tuple[Message, Message]:
    """The request a delivery to the client carries, and a reply to it with one 8-byte array at the id the
    client loop would give it."""
    request = decode_message(delivery.open_payload(), delivery.envelope.size, codecs=delivery.envelope.codecs)
    delivery.close()
    reply = Message(
        RecordDict({"arrays": ArrayRecord({"w": Array("uint8", (8,), "numpy.ndarray", b"\x01" * 8)})}),
        reply_to=request,
    )
    reply.metadata.__dict__["_message_id"] = reply_id_for(request.metadata.message_id, DO)
    return request, reply


def send_reply(client: Mailbox, request: Message, reply: Message, payload: bytes) -> None:
    """The client's ``reply`` to ``request`` with ``payload`` as its body (well-formed or not)."""
    client.send(
        kind="reply",
        recipient=DS,
        run_id=RUN,
        payload=payload,
        message_id=reply.metadata.message_id,
        reply_to=request.metadata.message_id,
        codecs=(CODEC_PARTS,),
    )


# -- 1. nothing of a payload is readable on Drive ------------------------------------------------


def test_with_encryption_on_no_payload_byte_is_readable_in_drive_storage(drive: FakeDriveServer):
    """Was: arrays of 256 KiB or more went to Drive as raw bytes (shared blobs), so Google read the model."""
    grid = server_grid(drive)
    client = mailbox(drive, DO, [DS])
    grid.mailbox.poll()  # learn the client's keys
    model = recognisable(3 * 1024 * 1024 + 123, "GLOBAL-MODEL-WEIGHTS")  # a shared blob (>= 256 KiB), several chunks
    small = recognisable(4000, "INLINE-ARRAY")  # travels inline
    content = RecordDict(
        {
            "arrays": ArrayRecord(
                {
                    "w": Array("uint8", (len(model),), "numpy.ndarray", model),
                    "b": Array("uint8", (len(small),), "numpy.ndarray", small),
                }
            ),
            "config": ConfigRecord({"note": "CONFIG-SECRET-42"}),
        }
    )
    try:
        msgs = [Message(content, node_id_for(DO), "train", group_id="1")]
        [_mid] = grid.push_messages(msgs)
        assert grid.blobs.locators(), "the model should have travelled as a shared blob"
        needles = {
            "model start": model[:40],
            "model middle": model[2_000_000:2_000_040],
            "model end": model[-40:],
            "inline array": small[1000:1040],
            "config": b"CONFIG-SECRET-42",
        }
        needles.update({f"{k} (base64)": base64.b64encode(v)[:40] for k, v in list(needles.items())})
        found = [
            (label, path.name)
            for path, data in stored_bytes(drive)
            for label, needle in needles.items()
            if needle in data
        ]
        assert not found, f"plaintext readable in the fake Drive's storage: {found}"

        # The recipient still gets every byte.
        [delivery] = client.poll().deliveries
        loop = ClientLoop(ClientApp(), client, poll_interval=0.05)
        import functools

        received = decode_message(
            delivery.open_payload(),
            delivery.envelope.size,
            codecs=delivery.envelope.codecs,
            fetch_blob=functools.partial(loop._blobs.fetch, owner=DS),
        )
        delivery.close()
        assert received.content["arrays"]["w"].data == model and received.content["arrays"]["b"].data == small
        assert received.content["config"]["note"] == "CONFIG-SECRET-42"
    finally:
        grid.close()


# -- 2. a peer cannot make you fetch arbitrary files ----------------------------------------------


def with_foreign_blob(payload_segments, array_key: str, *, locator: str, sha256: str, size: int) -> bytes:
    """A parts payload whose array ``array_key`` is re-pointed at the Drive file ``locator``."""
    index_seg, proto, *inline = [bytes(s) for s in payload_segments]
    index = json.loads(index_seg[4:])
    kept = []
    for entry, data in zip([e for e in index["arrays"] if not e.get("blob")], inline):
        if entry["key"] == array_key:
            entry.update(blob=locator, sha256=sha256, size=size, blob_key=base64.b64encode(os.urandom(32)).decode())
        else:
            kept.append(data)
    raw = json.dumps(index, separators=(",", ":")).encode()
    return struct.pack(">I", len(raw)) + raw + proto + b"".join(kept)


def private_file(
    drive: FakeDriveServer, owner: str, data: bytes, *, parent: str | None = None, props: dict | None = None
) -> str:
    created = api_for(drive, owner).upload_bytes(
        "private.bin",
        data,
        parent_id=parent,
        mime_type="application/octet-stream",
        fields="id",
        **({"properties": props} if props else {}),
    )
    return str(created["id"])


def test_a_reply_naming_a_foreign_file_causes_no_download_of_it(drive: FakeDriveServer, caplog):
    """Was: the server downloaded any file id a signed reply named, whole, before checking its hash."""
    grid = server_grid(drive)
    client = mailbox(drive, DO, [DS])
    grid.mailbox.poll()
    secret = os.urandom(3 * 1024 * 1024)  # the server's own private file (30 MiB in the review's reproduction)
    own_private = private_file(drive, DS, secret)
    api_for(drive, DS).share(own_private, DO, role="reader")  # even one the client can see
    outside = private_file(drive, DO, secret)  # the client's own file, but not in its blobs folder
    api_for(drive, DO).share(outside, DS, role="reader")
    big_link = private_file(drive, EVE, os.urandom(1024 * 1024))  # a stranger's file shared with the server
    api_for(drive, EVE).share(big_link, DS, role="reader")
    targets = {
        "server's own private file (hash known)": (own_private, hashlib.sha256(secret).hexdigest(), len(secret)),
        "client's file outside its blobs folder": (outside, hashlib.sha256(secret).hexdigest(), len(secret)),
        "stranger's file": (big_link, "0" * 64, 1024 * 1024),
    }
    server_downloads = downloads_of(grid.mailbox)
    try:
        caplog.set_level(logging.INFO)
        requests = [small_request() for _ in targets]
        request_ids = grid.push_messages(requests)
        deliveries = sorted(client.poll().deliveries, key=lambda d: request_ids.index(d.envelope.message_id))
        assert len(deliveries) == len(targets)
        for delivery, (locator, sha, size) in zip(deliveries, targets.values()):
            request, reply = request_and_reply(delivery)
            payload = with_foreign_blob(encode_message(reply), "w", locator=locator, sha256=sha, size=size)
            send_reply(client, request, reply, payload)

        def refused() -> list[str]:
            return [r.getMessage() for r in caplog.records if "not a Flower message" in r.getMessage()]

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(refused()) < len(targets):
            grid._poll_if_due(force=True)
            time.sleep(0.05)
        assert len(refused()) == len(targets), "the replies were never vetted"
        for _ in range(3):  # handled once: polling again reads nothing more
            grid._poll_if_due(force=True)
        downloaded = {label for label, (locator, _s, _n) in targets.items() if locator in server_downloads}
        assert not downloaded, f"the server downloaded {downloaded}"
        assert not list(grid.pull_messages(request_ids)), "a reply with a foreign blob was accepted"
        assert len(refused()) == len(targets) and all("blob" in line for line in refused()), refused()
        assert not [r for r in caplog.records if "poll failed" in r.getMessage()]
    finally:
        grid.close()


class _EchoApp:
    def __call__(self, message: Message, context) -> Message:
        return Message(RecordDict(), reply_to=message)


def test_a_request_naming_a_foreign_file_causes_no_download_and_is_not_retried(drive: FakeDriveServer, caplog):
    """Was: the same, server to client: a client downloaded any file id a signed request named (and retried)."""
    server = mailbox(drive, DS, [DO])
    server.announce_run(RUN)
    client = mailbox(drive, DO, [DS])
    server.poll()
    secret = os.urandom(2 * 1024 * 1024)
    client_private = private_file(drive, DO, secret)  # the client's own private file
    in_wrong_folder = private_file(drive, DS, secret)  # the server's, but not in its blobs folder
    for fid in (client_private, in_wrong_folder):
        api_for(drive, DO if fid == client_private else DS).share(
            fid, DS if fid == client_private else DO, role="reader"
        )
    # The server's genuine blobs folder holds a file whose size is not what the request declares.
    blobs_folder = server.transport.folders.blobs_folder(APP)  # type: ignore[attr-defined]
    wrong_size = private_file(
        drive, DS, os.urandom(1000), parent=blobs_folder, props=layout.blob_properties(APP, "x" * 32)
    )
    targets = {
        "client's own private file": (client_private, hashlib.sha256(secret).hexdigest(), len(secret)),
        "server file outside its blobs folder": (in_wrong_folder, hashlib.sha256(secret).hexdigest(), len(secret)),
        "blob of the wrong size": (wrong_size, "0" * 64, 10**9),
    }
    client_downloads = downloads_of(client)
    caplog.set_level(logging.INFO)
    sent = []
    for locator, sha, size in targets.values():
        msg = as_sent_by_the_grid(small_request())
        payload = with_foreign_blob(encode_message(msg), "w", locator=locator, sha256=sha, size=size)
        server.send(
            kind="request",
            recipient=DO,
            run_id=RUN,
            payload=payload,
            message_id=msg.metadata.message_id,
            codecs=(CODEC_PARTS,),
            created_at=msg.metadata.created_at,
            ttl=msg.metadata.ttl,
        )
        sent.append(msg.metadata.message_id)
    loop = ClientLoop(ClientApp(), client, poll_interval=0.05)
    loop.client_app = _EchoApp()  # type: ignore[assignment]
    for _ in range(4):  # the first poll vets them; later polls must not try again
        loop._poll_once()
    downloaded = {label for label, (locator, _s, _n) in targets.items() if locator in client_downloads}
    assert not downloaded, f"the client downloaded {downloaded}"
    for mid in sent:
        assert client.handled(mid, DS), f"request {mid} is left to be retried forever"
        lines = [r.getMessage() for r in caplog.records if mid in r.getMessage()]
        assert len(lines) == 1 and "skipped" in lines[0] and "blob" in lines[0], lines
    assert loop.report.handled == 0


# -- 3. size limits --------------------------------------------------------------------------------


def run_client_thread(drive: FakeDriveServer, tmp_path: Path, env: dict[str, str]):
    """The real client entry point (syftbox_flwr_client) in a thread; returns (thread, stop event, transport)."""
    import threading

    from syft_flwr_gdrive.base.config import Settings
    from syft_flwr_gdrive.flower.syftbox_client import syftbox_flwr_client

    settings = Settings.from_env(
        {
            "SYFTBOX_EMAIL": DO,
            "SYFT_FLWR_DRIVE_URL": drive.url,
            "SYFT_FLWR_STATE_DIR": str(tmp_path),
            "SYFT_FLWR_POLL_INTERVAL": "0.05",
            **env,
        }
    )
    transport = transport_for(drive, DO)
    stop = threading.Event()
    thread = threading.Thread(
        target=syftbox_flwr_client,
        args=(_EchoApp(), "security"),
        kwargs=dict(aggregator=DS, settings=settings, transport=transport, stop_event=stop),
        daemon=True,
    )
    return thread, stop, transport


def wait_for_reply(server: Mailbox, request_id: str, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for delivery in server.poll(accept=lambda r: None if r.kind == "reply" else "not a reply").deliveries:
            try:
                if delivery.envelope.reply_to == request_id:
                    server.mark_handled(delivery.envelope.message_id, delivery.envelope.sender)
                    return decode_message(
                        delivery.open_payload(), delivery.envelope.size, codecs=delivery.envelope.codecs
                    )
            finally:
                delivery.close()
        time.sleep(0.05)
    raise AssertionError(f"no reply to {request_id}")


def test_an_oversize_request_is_refused_from_its_listed_size_with_one_line_and_an_error_reply(
    drive: FakeDriveServer, tmp_path: Path, caplog
):
    """Was: no size limit in production (max_payload never set), any body was spooled and decrypted; no answer."""
    caplog.set_level(logging.INFO)
    server = mailbox(drive, DS, [DO])
    server.announce_run(RUN)
    thread, stop, transport = run_client_thread(drive, tmp_path, {"SYFT_FLWR_MAX_MESSAGE_MB": "1"})
    client_downloads = downloads_of(Mailbox(transport, APP, [DS], Ledger(None)))
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.sealer.knows(DO):  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the client never published its keys"
            server.poll()
            time.sleep(0.05)
        request_id = os.urandom(16).hex()
        _mid, handle = server.send(
            kind="request",
            recipient=DO,
            run_id=RUN,
            payload=os.urandom(3 * 1024 * 1024),
            message_id=request_id,
            codecs=(CODEC_PARTS,),
        )
        reply = wait_for_reply(server, request_id)
        assert reply.has_error() and reply.error.code == 3 and "message limit of 1 MiB" in reply.error.reason
        assert reply.metadata.reply_to_message_id == request_id
        time.sleep(0.5)  # more polls: still one line, no download
        assert handle not in client_downloads, "the oversize body was downloaded"
        lines = [r.getMessage() for r in caplog.records if handle in r.getMessage()]
        assert len(lines) == 1 and "over the message limit" in lines[0], lines
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


# -- 4. parse-time validation ------------------------------------------------------------------


def malformed_index_payload(message: Message) -> bytes:
    """The review's case: an index entry whose size is a string."""
    index_seg, proto, *inline = [bytes(s) for s in encode_message(message)]
    index = json.loads(index_seg[4:])
    index["arrays"][0]["size"] = "abc"
    raw = json.dumps(index, separators=(",", ":")).encode()
    return struct.pack(">I", len(raw)) + raw + proto + b"".join(inline)


def test_a_malformed_index_entry_is_one_skipped_message_not_a_stalled_poll(drive: FakeDriveServer, caplog):
    """Was: {"size": "abc"} raised ValueError outside the PayloadError handling: the server's poll aborted
    (spool files leaked) and a client retried such a request forever."""
    caplog.set_level(logging.INFO)
    grid = server_grid(drive)
    client = mailbox(drive, DO, [DS])
    grid.mailbox.poll()
    try:
        # Server side: a bad reply and a good one in the same poll.
        ids = grid.push_messages([small_request(), small_request()])
        deliveries = client.poll().deliveries
        assert len(deliveries) == 2
        replies = {}
        for delivery in deliveries:
            req, reply = request_and_reply(delivery)
            bad = req.metadata.message_id == ids[0]
            payload = malformed_index_payload(reply) if bad else b"".join(bytes(s) for s in encode_message(reply))
            send_reply(client, req, reply, payload)
            replies[req.metadata.message_id] = reply.metadata.message_id
        # Wait for both: the poll that brings one reply may not bring the other (the second file is fetched by the
        # id the first promised, at the next poll), so the good reply's arrival says nothing about the bad one's.
        pulled: list = []

        def bad_reply_lines() -> list[str]:
            return [r.getMessage() for r in caplog.records if replies[ids[0]] in r.getMessage()]

        deadline = time.monotonic() + 60
        while not (pulled and bad_reply_lines()):
            assert time.monotonic() < deadline, (
                f"good reply pulled: {bool(pulled)}, bad reply logged: {bad_reply_lines()}"
            )
            pulled.extend(grid.pull_messages([ids[1]]))
            grid._poll_if_due(force=True)
            time.sleep(0.05)
        assert grid.mailbox.handled(replies[ids[1]], DO), "the good reply was not handled"
        assert not [r for r in caplog.records if "poll failed" in r.getMessage()]
        bad_lines = bad_reply_lines()
        assert len(bad_lines) == 1 and "size is not a byte count" in bad_lines[0], bad_lines

        # Client side: a request with the same damage is answered with an error once, never retried.
        msg = as_sent_by_the_grid(small_request())
        grid.mailbox.send(
            kind="request",
            recipient=DO,
            run_id=RUN,
            payload=malformed_index_payload(msg),
            message_id=msg.metadata.message_id,
            codecs=(CODEC_PARTS,),
        )
        loop = ClientLoop(ClientApp(), client, poll_interval=0.05)
        for _ in range(4):
            loop._poll_once()
        lines = [r.getMessage() for r in caplog.records if msg.metadata.message_id in r.getMessage()]
        assert len(lines) == 1 and "skipped" in lines[0], lines
        assert client.handled(msg.metadata.message_id, DS)
        answer = wait_for_reply(grid.mailbox, msg.metadata.message_id)
        assert (
            answer.has_error() and "details are in its log" in answer.error.reason
        )  # nothing a probe could learn from
    finally:
        grid.close()


def test_peer_chosen_ids_cannot_forge_log_lines_or_split_the_ledger(tmp_path: Path, caplog):
    """Was: a newline in a peer's message id wrote a log line of its own (grid.py) and split into extra
    tokens in the handled-ids ledger, which is read back with split()."""
    from syft_flwr_gdrive.transport.memory import MemoryHub
    from syft_flwr_gdrive.transport.memory import MemoryTransport

    caplog.set_level(logging.INFO)
    hub = MemoryHub()
    forged_line = "2000-01-01 00:00:00,000 INFO syft_flwr_gdrive.flower.grid: FORGED"
    grid = TransportGrid(
        Mailbox(MemoryTransport(DS, hub), APP, [DO], Ledger(tmp_path / "ledger.log")),
        [DO],
        msg_timeout=5,
        poll_interval=0.05,
    )
    grid.set_run(RUN)
    peer = Mailbox(MemoryTransport(DO, hub), APP, [DS], Ledger(None))
    for bad_id in (f"x\n{forged_line}", "two words", "tab\there", "a" * 65, "quote'id", "slash/id", "ünï"):
        peer.send(
            kind="reply",
            recipient=DS,
            run_id=RUN,
            payload=b"not a flower message",
            message_id=bad_id,
            reply_to="0" * 32,
            codecs=(CODEC_PARTS,),
        )
    peer.send(
        kind="reply",
        recipient=DS,
        run_id=RUN,
        payload=b"x",
        message_id="ok-id",
        reply_to=f"r\n{forged_line}",
        codecs=(CODEC_PARTS,),
    )
    for _ in range(3):
        grid._poll_if_due(force=True)
    grid.close()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert forged_line not in text.splitlines() and "\nFORGED" not in text
    assert all("\n" not in r.getMessage() for r in caplog.records)
    ledger = (tmp_path / "ledger.log").read_text() if (tmp_path / "ledger.log").exists() else ""
    assert "FORGED" not in ledger and "words" not in ledger.split()
    assert len([r for r in caplog.records if "malformed" in r.getMessage()]) == 8  # one line each
