"""Hostile and damaged files in participants' listings: each skipped with one clear log line,
nothing lost, nothing crashed, the federation completes.

Files are planted on the fake Drive as whichever account could really write them: the server
(a trusted peer whose file got damaged, or which replays), another datasite (forging), or a
stranger (never a peer). Every planted file is vetted by the participant it targets.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
import time
from pathlib import Path

from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.mailbox.envelope import MAGIC
from syft_flwr_gdrive.mailbox.envelope import WIRE_VERSION
from syft_flwr_gdrive.transport.drive import layout
from tests.helpers.envelopes import decode
from tests.helpers.envelopes import encode
from tests.helpers.reliability import CLIENTS
from tests.helpers.reliability import MESSAGE_APP_KEY
from tests.helpers.reliability import SERVER
from tests.helpers.reliability import announced_run
from tests.helpers.reliability import answered
from tests.helpers.reliability import api_for
from tests.helpers.reliability import assert_clean_exit
from tests.helpers.reliability import duplicates
from tests.helpers.reliability import envelope_body
from tests.helpers.reliability import file_props
from tests.helpers.reliability import leftover_message_files
from tests.helpers.reliability import make_federation
from tests.helpers.reliability import make_routing
from tests.helpers.reliability import owned_files
from tests.helpers.reliability import plant
from tests.helpers.reliability import wait_for_log

APP = MESSAGE_APP_KEY
ROUNDS = 3
# The run must outlast planting ~40 files for client 0 after its first answer: with adaptive polling a
# round takes ~1.5 s here, and planting as many seconds as that under load, so give it more rounds.
HOSTILE_ROUNDS = 8
STRANGER = "mallory@evil.example"
TARGET = CLIENTS[0]
SINGLE_FILES = {"SYFT_FLWR_BUNDLES": "false"}  # requests as one file each, as these tests capture and replant them
# A valid envelope around a payload that is not what the recipient can use: refused as unencrypted or
# undecryptable (payload encryption on) or as not a Flower message (off). One line either way.
PAYLOAD_REFUSED = ("skipped: ", "not encrypted", "rejected: ")
# A real payload under a rewritten header: its signature (encryption on) or its Flower metadata (off) disagrees.
PAYLOAD_FORGED = ("Flower metadata disagrees", "rejected: ", "not encrypted")
NOT_ITS_ID = "not the one derived from the request it answers and its sender"


class RequestCapture:
    """Downloads every request the server writes (as the server: it may read its own files).

    Requests are found in the fake's store, then downloaded by id: under the strict profile a listing
    shows a new file only some of the time for up to a second, and a request can be answered and
    deleted within that."""

    def __init__(self, drive: FakeDriveServer) -> None:
        self.drive = drive
        self.api = api_for(drive, SERVER)
        self.requests: dict[str, tuple[dict, bytes]] = {}  # file id -> (metadata, body)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RequestCapture:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(0.03):
            for f in owned_files(self.drive, SERVER):
                props = file_props(f)
                if props.get(layout.P_KIND) == "request" and f["id"] not in self.requests:
                    try:
                        self.requests[f["id"]] = (props, self.api.download_bytes(f["id"]))
                    except Exception:
                        pass  # already deleted: the reply was quick

    def for_recipient(self, email: str) -> list[tuple[dict, bytes]]:
        return [v for v in self.requests.values() if v[0].get(layout.P_TO_EMAIL) == email]

    def wait_for(self, email: str, timeout: float = 60) -> tuple[dict, bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.for_recipient(email)
            if found:
                return found[0]
            time.sleep(0.05)
        raise AssertionError(f"no request to {email} captured")


def lines_with(log: str, needle: str) -> list[str]:
    return [line for line in log.splitlines() if needle in line]


def assert_completed(fed, rounds: int = ROUNDS) -> None:
    assert_clean_exit(fed, rounds)
    server_log = fed.server().log_text()
    for phase in ("aggregate_train", "aggregate_evaluate"):
        received = re.findall(rf"INFO flwr: {phase}: Received (\d+) results and (\d+) failures", server_log)
        assert received == [("3", "0")] * rounds, (phase, received)
    for key, participant in fed.participants.items():
        log = participant.log_text()
        assert "Traceback" not in log and "poll failed" not in log, (key, log[-3000:])
        if participant.role == "client":
            lines = answered(log)
            assert len(lines) == 2 * rounds and duplicates(m for _r, _t, m, _n in lines) == {}, (key, lines)


def test_hostile_files_are_skipped_with_one_log_line_and_the_federation_completes(
    tmp_path: Path, drive: FakeDriveServer
):
    drive.faults.write_rate = (
        0.0  # the planting below (dozens of files as the server) is not what the write limit is about
    )
    # One file per request (SYFT_FLWR_BUNDLES=false): the files planted below are made from captured ones.
    # Hostile bundles: tests/reliability/test_bundles.py.
    with (
        make_federation(
            tmp_path, drive, run_config={"num-server-rounds": HOSTILE_ROUNDS}, extra_env=SINGLE_FILES
        ) as fed,
        RequestCapture(drive) as capture,
    ):
        # Clients 0 and 1 and the server start; client 2 starts once the server vetted what was planted in its name.
        fed.client(0).start()
        fed.client(1).start()
        fed.server().start()
        run_id = announced_run(drive, TARGET, APP)

        def r(mid: str, sender: str = SERVER, recipient: str = TARGET, run: int = run_id, **kw):
            return make_routing(run, mid, sender, recipient, APP, **kw)

        junk = b"\x00not a flower message"
        to_client: dict[str, tuple[str, str]] = {}  # label -> (file id, expected reason)
        # Valid envelopes whose payload is refused after the envelope checks: logged by file id (payload
        # encryption on: "not encrypted" / "rejected") or by message id (plain Flower payloads: "skipped").
        to_client_by_id: dict[str, tuple[str, str, tuple[str, ...]]] = {}  # label -> (file id, message id, reasons)

        # -- to the server, in the name of client 2 (not running yet) and of a stranger --------------
        # A reply whose id is not the one derived from its request and sender is refused from its listing,
        # before its body is read (test_hostile_datasite.py: another datasite's reply id).
        c2 = CLIENTS[2]
        to_server = {
            "corrupt-reply": (
                plant(
                    drive, c2, r("c2corrupt", c2, SERVER, kind="reply", reply_to="0" * 32), b"garbage, not an envelope"
                ),
                NOT_ITS_ID,
            ),
            "forged-reply": (
                plant(
                    drive,
                    c2,
                    r("c2forged", CLIENTS[0], SERVER, kind="reply", reply_to="0" * 32),
                    envelope_body(r("c2forged", CLIENTS[0], SERVER, kind="reply", reply_to="0" * 32), junk),
                ),
                "forged sender",
            ),
            "other-run-reply": (
                plant(
                    drive,
                    c2,
                    r("c2old", c2, SERVER, run=run_id - 1, kind="reply", reply_to="0" * 32),
                    envelope_body(r("c2old", c2, SERVER, run=run_id - 1, kind="reply", reply_to="0" * 32), junk),
                ),
                f"belongs to run {run_id - 1}",
            ),
        }
        # Files outside a peer's outbox folder never reach a poll: not listed, so not even logged.
        never_listed = {
            "server stranger-reply": (
                plant(
                    drive,
                    STRANGER,
                    r("mreply", STRANGER, SERVER, kind="reply", reply_to="0" * 32),
                    envelope_body(r("mreply", STRANGER, SERVER, kind="reply", reply_to="0" * 32), junk),
                )
            ),
        }
        unknown_reply = r("c2unknown", c2, SERVER, kind="reply", reply_to="0" * 32)
        plant(drive, c2, unknown_reply, envelope_body(unknown_reply, junk))
        for handle, _reason in to_server.values():
            wait_for_log(fed.server(), handle, 30)
        wait_for_log(fed.server(), "c2unknown", 30)
        fed.client(2).start()

        # -- to client 0, once it is busy -------------------------------------------------------
        wait_for_log(fed.client(0), "answered train", 60)
        valid = r("valid-template")
        body = envelope_body(valid, os.urandom(1000))
        big = os.urandom(12 * 1024 * 1024)
        to_client.update(
            {
                "corrupt": (plant(drive, SERVER, r("corrupt"), b"garbage, not an envelope"), "invalid envelope"),
                "empty": (plant(drive, SERVER, r("empty"), b""), "invalid envelope"),
                "truncated-payload": (
                    plant(drive, SERVER, r("valid-template"), body[:-500]),
                    "invalid envelope: payload is",
                ),
                "truncated-header": (
                    plant(drive, SERVER, r("trunchead"), envelope_body(r("trunchead"), junk)[:30]),
                    "invalid envelope: truncated",
                ),
                "padded": (
                    plant(drive, SERVER, r("padded"), envelope_body(r("padded"), junk) + b"\x00" * 100),
                    "invalid envelope: payload is",
                ),
                "header-length-4GiB": (
                    plant(drive, SERVER, r("hugelen"), MAGIC + b"\xff\xff\xff\xf0" + b"{}"),
                    "invalid envelope: header of",
                ),
                "tampered-payload": (
                    plant(drive, SERVER, r("tampered"), envelope_body(r("tampered"), junk)[:-1] + b"!"),
                    "invalid envelope: payload SHA-256",
                ),
                "envelope-version-next": (
                    plant(drive, SERVER, r("vnext"), envelope_body(r("vnext"), junk, version=WIRE_VERSION + 1)),
                    f"message format version {WIRE_VERSION + 1} is not one this build reads",
                ),
                "metadata-version-2": (
                    plant(
                        drive,
                        SERVER,
                        r("mv2"),
                        envelope_body(r("mv2"), junk),
                        props={**layout.message_properties(r("mv2")), layout.P_VERSION: "2"},
                    ),
                    "Drive layout version '2' is not one this build reads",
                ),
                "metadata-garbled": (
                    plant(
                        drive,
                        SERVER,
                        r("mg"),
                        envelope_body(r("mg"), junk),
                        props={**layout.message_properties(r("mg")), layout.P_RUN: "soon"},
                    ),
                    "no valid routing metadata",
                ),
                "header-disagrees": (
                    plant(drive, SERVER, r("hd"), envelope_body(r("hd"), junk, message_id="other")),
                    "disagrees with its metadata on message_id",
                ),
                "older-run": (
                    plant(drive, SERVER, r("old", run=run_id - 1), envelope_body(r("old", run=run_id - 1), junk)),
                    f"belongs to run {run_id - 1}",
                ),
                "newer-run": (
                    plant(drive, SERVER, r("new", run=run_id + 1), envelope_body(r("new", run=run_id + 1), junk)),
                    f"belongs to run {run_id + 1}",
                ),
                "expired": (
                    plant(
                        drive,
                        SERVER,
                        r("expired", created_at=time.time() - 7200, ttl=60),
                        envelope_body(r("expired", created_at=time.time() - 7200, ttl=60), junk),
                    ),
                    "expired",
                ),
            }
        )
        never_listed.update(
            {  # in the planters' own outboxes to the target, which is not their peer
                "client forged-sender": plant(drive, CLIENTS[1], r("forged"), envelope_body(r("forged"), junk)),
                "client non-peer": plant(
                    drive, STRANGER, r("stranger", STRANGER), envelope_body(r("stranger", STRANGER), junk)
                ),
            }
        )
        # Valid envelopes whose payload is not a Flower message: logged by message id.
        to_client_by_id["not-flower"] = (
            plant(drive, SERVER, r("notflower"), envelope_body(r("notflower"), junk)),
            "notflower",
            PAYLOAD_REFUSED,
        )
        to_client_by_id["oversized-12MiB"] = (
            plant(drive, SERVER, r("oversized"), envelope_body(r("oversized"), big)),
            "oversized",
            PAYLOAD_REFUSED,
        )
        # File names people and programs produce; each body is corrupt, so each gets one line.
        names = {
            "name-quote": "it's o'hara's.sfgd",
            "name-backslash": "back\\slash\\\\.sfgd",
            "name-slashes": "a/b/../c/.sfgd",
            "name-unicode": "ünïcødé-名前-🚀-\u202eRTL-\u200bzw.sfgd",
            "name-very-long": "L" * 5000 + ".sfgd",
            "name-empty": "",
            "name-control": "tab\tand\x1bescape\x00nul.sfgd",
        }
        for label, name in names.items():
            to_client[label] = (plant(drive, SERVER, r(label), b"corrupt", name=name), "invalid envelope")
        # Message ids with the same characters would travel in names, metadata, the ledger and log lines:
        # refused when the listing is parsed (ids are 1-64 letters, digits or . _ @ + -), one line by file id.
        weird_ids = {
            "id-quote": "it's-o'hara",
            "id-backslash": "back\\slash",
            "id-slashes": "a/b/../c",
            "id-unicode": "ünï-名前-🚀",
            "id-long": "i" * 100,
            "id-newline": "x\n2000-01-01 00:00:00,000 INFO syft_flwr_gdrive.flower.client_loop: run 1: answered train",
        }
        for label, mid in weird_ids.items():
            to_client[label] = (
                plant(drive, SERVER, r(mid), envelope_body(r(mid), junk)),
                "message id or sender is malformed",
            )

        # -- replays of real requests of this run -------------------------------------------------
        props0, body0 = capture.wait_for(TARGET)
        props1, body1 = capture.wait_for(CLIENTS[1])
        mid0 = props0[layout.P_MSG]
        wait_for_log(fed.client(0), f"({mid0[:8]},", 30)  # client 0 answered the captured request
        replay_same = plant(drive, SERVER, layout.routing_from_properties(props0, APP), body0)
        cross = layout.routing_from_properties(props1, APP)
        cross = dataclasses.replace(cross, recipient=TARGET)
        to_client["replay-of-another-clients-request"] = (
            plant(drive, SERVER, cross, body1),
            "disagrees with its metadata on recipient",
        )
        env1, payload1 = decode(body1)
        readdressed = dataclasses.replace(cross, message_id="ab" * 16)
        handle = plant(
            drive,
            SERVER,
            readdressed,
            encode(dataclasses.replace(env1, recipient=TARGET, message_id=readdressed.message_id), payload1),
        )
        to_client_by_id["replay-readdressed"] = (handle, readdressed.message_id, PAYLOAD_FORGED)

        assert fed.wait(120), "federation did not finish:\n" + fed.server().log_text()[-3000:]
        assert_completed(fed, HOSTILE_ROUNDS)
        client_log = fed.client(0).log_text()
        server_log = fed.server().log_text()

    problems = []
    for label, (handle, reason) in to_client.items():
        lines = lines_with(client_log, handle)
        if len(lines) != 1 or reason not in lines[0]:
            problems.append(f"client {label}: {lines}")
    for label, (handle, mid, reasons) in to_client_by_id.items():
        lines = lines_with(client_log, handle) + lines_with(client_log, f"request {mid} from")
        if len(lines) != 1 or not any(reason in lines[0] for reason in reasons):
            problems.append(f"client {label}: {lines}")
    for label, (handle, reason) in to_server.items():
        lines = lines_with(server_log, handle)
        if len(lines) != 1 or reason not in lines[0]:
            problems.append(f"server {label}: {lines}")
    for label, handle in never_listed.items():
        lines = lines_with(server_log if label.startswith("server") else client_log, handle)
        if lines:
            problems.append(f"{label} reached a poll: {lines}")
    unknown = lines_with(server_log, "c2unknown")
    if len(unknown) != 1 or NOT_ITS_ID not in unknown[0]:
        problems.append(f"server unknown reply: {unknown}")
    assert not problems, "\n".join(problems)
    # The exact replay of a handled request was not handled again (ids are unique in 'answered').
    assert lines_with(client_log, replay_same) == []
    planted_for_client = len(to_client) + len(to_client_by_id) + 1
    print(f"\nplanted {planted_for_client} files for client 0 and {len(to_server) + 1} for the server")

    # Nothing the target did not own was deleted: the server's and the stranger's planted files remain.
    server_files = {f["id"] for f in owned_files(drive, SERVER)}
    for label, (handle, _reason) in to_client.items():
        assert handle in server_files, f"{label} ({handle}) was deleted by someone other than its owner"
    assert {f["id"] for f in owned_files(drive, STRANGER)} >= {
        never_listed["client non-peer"],
        never_listed["server stranger-reply"],
    }
    left = leftover_message_files(drive)
    # Clients removed all they wrote in their outboxes to the server, planted files included; client 1's
    # forged file sits in its outbox to client 0, which its process does not use (`clean` removes it).
    assert left == {SERVER: left.get(SERVER), CLIENTS[1]: 1}, left


LOG_INJECTION_BUG = (
    "Mailbox._reject logs the Drive file name with %s: a newline in a file name listed to a participant (even one "
    "written by a stranger) forges whole log lines, e.g. a fake 'answered' line"
)


# Regression test (was a strict xfail, fixed in 584af16); the bug was:
#   LOG_INJECTION_BUG
def test_a_file_name_cannot_forge_log_lines(tmp_path: Path, drive: FakeDriveServer):
    forged = (
        "2000-01-01 00:00:00,000 INFO syft_flwr_gdrive.flower.client_loop: run 1: answered train (deadbeef, round 9)"
    )
    # Three rounds, not one: on the strict fake a listing shows a new file up to 1 s late, and a
    # one-round run could end before the client ever lists the planted file.
    with make_federation(
        tmp_path, drive, client_emails=CLIENTS[:1], run_config={"num-server-rounds": 3, "min-clients": 1}
    ) as fed:
        fed.server().start()
        run_id = announced_run(drive, TARGET, APP)
        # A peer's file (strangers' files are never listed): its name is the peer's to choose.
        injected = make_routing(run_id, "injected", SERVER, TARGET, APP)
        handle = plant(drive, SERVER, injected, b"junk", name="report.sfgd\n" + forged)
        # The client starts after the plant: its first poll lists (nothing is promised yet). Later polls
        # fetch promised files by id and list only every 4th time, and a one-round run may end before that.
        fed.client(0).start()
        wait_for_log(fed.client(0), handle, 30)
        assert fed.wait(60)
        log = fed.client(0).log_text()
    assert not any(line.startswith(forged) for line in log.splitlines()), (
        "a file name wrote a line of its own into the log"
    )
    assert len(answered(log)) == 6


def test_requests_replayed_from_an_earlier_run_are_not_acted_on(tmp_path: Path, drive: FakeDriveServer):
    """A real request of run A, uploaded again (as the server) during run B, as is and re-labelled."""
    state = tmp_path / "state"  # the same participants (and ledgers) in both runs
    one = dict(
        client_emails=CLIENTS[:1],
        run_config={"num-server-rounds": 1, "min-clients": 1},
        extra_env={"SYFT_FLWR_STATE_DIR": str(state), **SINGLE_FILES},
    )
    with make_federation(tmp_path / "a", drive, **one) as first, RequestCapture(drive) as capture:
        first.start_all()
        assert first.wait(60)
        assert_clean_exit(first, 1)
    old_props, old_body = capture.wait_for(TARGET, timeout=1)
    old = layout.routing_from_properties(old_props, APP)
    assert old is not None

    # Run B outlasts planting four files after its first answer (a 1-round run can end first).
    longer = {**one, "run_config": {"num-server-rounds": 4, "min-clients": 1}}
    with make_federation(tmp_path / "b", drive, **longer) as second:
        second.start_all()
        run_b = announced_run(drive, TARGET, APP, not_run=old.run_id)
        wait_for_log(second.client(0), "answered train", 60)
        as_is = plant(drive, SERVER, old, old_body)
        new_ids = dataclasses.replace(old, message_id="cd" * 16)
        as_is_new_id = plant(
            drive,
            SERVER,
            new_ids,
            encode(dataclasses.replace(decode(old_body)[0], message_id=new_ids.message_id), decode(old_body)[1]),
        )
        relabelled = plant(drive, SERVER, dataclasses.replace(old, run_id=run_b, message_id="ef" * 16), old_body)
        env, payload = decode(old_body)
        rewritten_id = "01" * 16
        rewritten = plant(
            drive,
            SERVER,
            dataclasses.replace(old, run_id=run_b, message_id=rewritten_id),
            encode(dataclasses.replace(env, run_id=run_b, message_id=rewritten_id), payload),
        )
        deadline = time.monotonic() + 30
        while not (
            lines_with(second.client(0).log_text(), rewritten)
            or lines_with(second.client(0).log_text(), f"request {rewritten_id} from")
        ):
            assert time.monotonic() < deadline, "the rewritten replay was never vetted"
            time.sleep(0.1)
        assert second.wait(60)
        assert_clean_exit(second, 4)
        log = second.client(0).log_text()

    expect = {
        as_is_new_id: f"belongs to run {old.run_id}",
        relabelled: "disagrees with its metadata on run_id, message_id",
    }
    for handle, reason in expect.items():
        lines = lines_with(log, handle)
        assert len(lines) == 1 and reason in lines[0], lines
    lines = lines_with(log, rewritten) + lines_with(log, f"request {rewritten_id} from")
    assert len(lines) == 1 and any(reason in lines[0] for reason in PAYLOAD_FORGED), lines
    # The exact copy carries an id the client's ledger has handled in run A: never acted on again.
    assert lines_with(log, as_is) == []
    runs = {run for run, *_ in answered(log)}
    assert runs == {run_b} and len(answered(log)) == 8


DECODER_ESCAPE_BUG = (
    "Mailbox._check catches only EnvelopeError from envelope.decode_file, but a header of 60,000 '[' raises "
    "RecursionError, a 5000-digit integer ValueError and created_at=10**400 OverflowError: the exception escapes "
    "Mailbox.poll, so every poll of the recipient fails ('poll failed ...') for as long as the file is listed, no "
    "other message is handled, and the run stalls (server: until SYFT_FLWR_MSG_TIMEOUT withdraws the round)"
)


def _bad_header_bodies(routing) -> dict[str, bytes]:
    import json
    import struct

    def body(header: bytes) -> bytes:
        return MAGIC + struct.pack(">I", len(header)) + header

    fields = json.loads(envelope_body(routing, b"")[8:].decode())
    return {
        "deep-json": body(b"[" * 60000),
        "5000-digit-int": body(b'{"version":1,"run_id":' + b"9" * 5000 + b"}"),
        "created_at-1e400": body(json.dumps({**fields, "created_at": 10**400}).encode()),
    }


# Regression test (was a strict xfail, fixed in 584af16); the bug was:
#   DECODER_ESCAPE_BUG
def test_undecodable_headers_from_a_peer_are_skipped_not_fatal(tmp_path: Path, drive: FakeDriveServer):
    with make_federation(
        tmp_path, drive, client_emails=CLIENTS[:1], run_config={"num-server-rounds": 1, "min-clients": 1}
    ) as fed:
        # the client starts later: its planted replies must not be cleaned up before the server looks
        fed.server().start()
        run_id = announced_run(drive, TARGET, APP)
        planted: list[tuple[str, str]] = []  # (who must log it, handle)
        for label, body in _bad_header_bodies(
            make_routing(run_id, "x", TARGET, SERVER, APP, kind="reply", reply_to="0" * 32)
        ).items():
            r = make_routing(run_id, f"to-server-{label}", TARGET, SERVER, APP, kind="reply", reply_to="0" * 32)
            planted.append(("server", plant(drive, TARGET, r, body)))
        for label, body in _bad_header_bodies(make_routing(run_id, "x", SERVER, TARGET, APP)).items():
            r = make_routing(run_id, f"to-client-{label}", SERVER, TARGET, APP)
            planted.append(("client0", plant(drive, SERVER, r, body)))

        def vetted(key: str, handle: str) -> None:
            participant = fed.participants[key]
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                log = participant.log_text()
                assert "poll failed" not in log, [line for line in log.splitlines() if "poll failed" in line][:3]
                if handle in log:
                    return
                time.sleep(0.1)
            raise AssertionError(f"{key} never logged {handle}")

        for key, handle in planted:
            if key == "server":
                vetted(key, handle)
        fed.client(0).start()
        for key, handle in planted:
            if key == "client0":
                vetted(key, handle)
        assert fed.wait(60)
        assert_clean_exit(fed, 1)
