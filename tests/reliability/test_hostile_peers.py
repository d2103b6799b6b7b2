"""One dishonest participant of a shared directory must not silence, stall or impersonate an honest one.

One scenario per finding 4-7 of the security review (issue #23), each staged as the attacker acts: a
real participant with keys of its own on a real directory (``tests/helpers/dir_attacks.py``), a process
of another account, a victim polling in a process of its own with bounded memory, a real server and
client. Each failed before its fix (see the commit that added it).

4. Look-alike folders (``DS@x.com`` for ``ds@x.com``) and forged announcements: a folder counts as a
   participant's only if its name is exactly that participant's canonical address; announcements on
   ``dir`` are signed and checked against the pinned key; files another account planted in a peer's
   folder are refused (uid); a folder someone else made in my name stops me with the fix.
5. Special files (FIFO, link to ``/dev/zero``, device, directory, huge sparse file) named like a
   message, an announcement or a blob: refused unread, one log line each, the poll goes on.
6. A file that grows after its size check is read only up to the size checked.
7. A run config the data owner's project does not declare (a key, or a value's type) never reaches
   the ClientApp: the request is answered with an error naming the key, and nothing of the data owner's.
"""

from __future__ import annotations

import io
import json
import os
import stat
import threading
from pathlib import Path

import numpy as np
import pytest
from flwr.app import ArrayRecord
from flwr.app import ConfigRecord
from flwr.app import Context
from flwr.app import Message
from flwr.app import MetricRecord
from flwr.app import RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid
from flwr.serverapp import ServerApp

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.crypto.failures import MissingPeerKey
from syft_flwr_gdrive.flower.app_mailbox import app_key
from syft_flwr_gdrive.flower.client_loop import ClientLoop
from syft_flwr_gdrive.flower.project import FlowerProject
from syft_flwr_gdrive.flower.syftbox_server import serve
from syft_flwr_gdrive.localrun.federation import LocalFederation
from syft_flwr_gdrive.transport.directory import DirectoryTransport
from tests.helpers.client_loops import loops_running
from tests.helpers.dir_attacks import APP
from tests.helpers.dir_attacks import RUN
from tests.helpers.dir_attacks import app_dir
from tests.helpers.dir_attacks import as_nobody
from tests.helpers.dir_attacks import directory_for_accounts
from tests.helpers.dir_attacks import folders_writable_by_everyone
from tests.helpers.dir_attacks import look_alike
from tests.helpers.dir_attacks import participant
from tests.helpers.dir_attacks import victim
from tests.helpers.e2e import MESSAGE_APP
from tests.helpers.envelopes import body_for
from tests.helpers.routings import request_routing

DS, DO, MALLORY = "ds@example.com", "owner@example.com", "mallory@example.com"
GMAIL_DO = "dataowner@gmail.com"
ROOT_ONLY = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs a second account: runs as root, acts as nobody"
)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    shared = tmp_path / "shared"
    shared.mkdir()
    return shared


def message_file(routing, payload: bytes = b"poisoned") -> bytes:
    """A message file as the ``dir`` transport stores it: the routing line, then the envelope."""
    return json.dumps({"layout": 1, **routing.as_dict()}).encode() + b"\n" + body_for(routing, payload)


# -- 4. look-alike folders and forged announcements ------------------------------------------------------


@pytest.mark.parametrize(
    "victim_email, spelling",
    [(DO, "Owner@example.com"), (GMAIL_DO, "data.owner@gmail.com"), (GMAIL_DO, "dataowner@googlemail.com")],
)
def test_a_look_alike_made_before_first_contact_gets_no_key_pinned_reads_nothing_and_answers_for_nobody(
    root: Path, tmp_path: Path, victim_email: str, spelling: str
):
    # Eve makes a folder spelled like the data owner's address and publishes her keys there, before the data
    # owner ever started: the server's first contact with "the data owner" would be Eve.
    eve = look_alike(root, victim_email, spelling, [DS])
    eve.prepare()
    server = participant(root, DS, [victim_email], pins=tmp_path / "ds-pins.json")
    server.prepare(keys=False)
    server.announce_run(RUN)
    server.publish_keys()
    server.poll()
    assert victim_email not in server.sealer.pins.pinned(), "Eve's key was pinned as the data owner's"
    with pytest.raises(MissingPeerKey):  # nothing to seal a request with until the real data owner shows up
        server.send(kind="request", recipient=victim_email, run_id=RUN, payload=b"the run config")

    owner = participant(root, victim_email, [DS])
    owner.prepare()
    owner.poll()  # learns the server's keys
    server.poll()
    assert server.sealer.pins.pinned()[victim_email] == owner.sealer.identity.public
    request_id, _ = server.send(kind="request", recipient=victim_email, run_id=RUN, payload=b"the run config")
    assert eve.poll().deliveries == ()  # Eve can read the request file, not what it says
    assert [d.payload for d in owner.poll().deliveries] == [b"the run config"]

    eve.send(kind="reply", recipient=DS, run_id=RUN, payload=b"a poisoned update", reply_to=request_id)
    owner.send(kind="reply", recipient=DS, run_id=RUN, payload=b"the real update", reply_to=request_id)
    assert [d.payload for d in server.poll().deliveries] == [b"the real update"]


def test_a_look_alike_cannot_override_the_servers_run_once_its_key_is_pinned(root: Path, caplog):
    server = participant(root, DS, [DO])
    server.prepare(keys=False)
    server.announce_run(RUN)
    server.publish_keys()
    owner = participant(root, DO, [DS])
    owner.prepare()
    owner.poll()
    server.poll()
    assert owner.announced == {DS: RUN}
    # Eve announces a newer run under "DS@example.com": clients follow the newest run they see
    eve = look_alike(root, DS, "DS@example.com", [DO])
    eve.prepare(keys=False)
    eve.announce_run(RUN + 1000)
    eve.publish_keys()
    server.send(kind="request", recipient=DO, run_id=RUN, payload=b"round 1")
    for _ in range(2):  # the client's rule: act only on the run its server announces as current
        result = owner.poll(accept=lambda r: None if r.run_id == owner.announced.get(DS) else "not current")
        assert owner.announced == {DS: RUN}
        assert [d.payload for d in result.deliveries] == [b"round 1"]
    assert sum("a look-alike of 'ds@example.com'" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed-by-eve"])
def test_a_forged_announcement_in_the_servers_own_folder_is_refused_once_its_key_is_pinned(
    root: Path, signed: bool, caplog
):
    """Everyone may write everywhere in this share (one Dropbox folder, one uid): Eve replaces the server's
    announcement with one naming a newer run and her keys, written by the software itself as the server."""
    server = participant(root, DS, [DO])
    server.prepare(keys=False)
    server.announce_run(RUN)
    server.publish_keys()
    owner = participant(root, DO, [DS])
    owner.prepare()
    owner.poll()
    pinned = owner.sealer.pins.pinned()[DS]
    eve = participant(root, DS, [DO], encryption=signed)  # writes the exact folder: signed with her own key
    eve.announce_run(RUN + 1000)
    if signed:
        eve.publish_keys()
    else:  # a hand-written announcement carries no signature at all
        path = app_dir(root, DS) / "announce.json"
        path.write_text(json.dumps({"run_id": RUN + 1000, "keys": server.sealer.identity.public.encode()}))
    for _ in range(2):
        owner.poll()
        assert owner.announced == {DS: RUN}, "the forged run was followed"
        assert owner.sealer.pins.pinned()[DS] == pinned
    said = [r.getMessage() for r in caplog.records if "announcement of its run" in r.getMessage()]
    assert len(said) == 1, said


def test_a_look_alike_of_the_server_planted_before_the_run_does_not_stop_the_federation(tmp_path: Path):
    """Processes: Eve's look-alike of the server, with her keys and a run far in the future, is there before
    the client's first poll. The client must still follow the real server's run, to the end."""
    shared = tmp_path / "shared"
    shared.mkdir()
    server_email, client_email = "ds_lead@example.com", "do_1@example.com"
    app = app_key(FlowerProject.load(MESSAGE_APP).app_name)
    eve = look_alike(shared, server_email, "DS_Lead@example.com", [client_email], app=app)
    eve.prepare(keys=False)
    eve.announce_run(1 << 62)
    eve.publish_keys()
    fed = LocalFederation(
        tmp_path / "fed",
        MESSAGE_APP,
        None,
        server_email=server_email,
        client_emails=[client_email],
        poll_interval=0.2,
        msg_timeout=40.0,
        run_config={"num-server-rounds": 1, "min-clients": 1},
        extra_env={"SYFT_FLWR_TRANSPORT": "dir", "SYFT_FLWR_DIR": str(shared)},
    )
    with fed:
        fed.start_all()
        finished = fed.wait(150)
    client = fed.client(0)
    assert finished, "the federation did not finish: " + client.log_text()[-3000:]
    report = fed.server().report()
    assert report["completed"] and report["summary"]["errors"] == 0 and report["summary"]["missing"] == 0
    assert client.report()["stopped_by"] == "stop-signal" and client.report()["handled"] > 0


@ROOT_ONLY
def test_files_another_account_planted_in_a_peers_writable_folder_are_refused(caplog):
    """Encryption off, so only the directory's word counts: the server's folders are writable by everyone,
    and Eve (another account) adds a request in the server's name and replaces its announcement."""
    with directory_for_accounts() as shared:
        server = participant(shared, DS, [DO], encryption=False)
        server.prepare()
        server.announce_run(RUN)
        server.send(kind="request", recipient=DO, run_id=RUN, payload=b"genuine", message_id="genuine")
        folders_writable_by_everyone(shared / DS)
        box = app_dir(shared, DS) / "to" / DO
        forged = request_routing(RUN, "forged", sender=DS, recipient=DO, app=APP)
        as_nobody('cat > "$1/.t" && mv -f "$1/.t" "$1/request-forged.msg"', str(box), data=message_file(forged))
        announcement = json.dumps({"run_id": RUN + 1000, "keys": None}).encode()
        as_nobody('cat > "$1/.t" && mv -f "$1/.t" "$1/announce.json"', str(app_dir(shared, DS)), data=announcement)
        owner = participant(shared, DO, [DS], encryption=False)
        owner.prepare()
        for _ in range(2):
            result = owner.poll()
            assert sorted(d.envelope.message_id for d in result.deliveries) == ["genuine"]
            assert owner.announced.get(DS) != RUN + 1000
    said = [r.getMessage() for r in caplog.records if "request-forged.msg" in r.getMessage()]
    assert len(said) == 1 and "owned by uid 65534" in said[0], said


@ROOT_ONLY
def test_a_folder_another_account_made_in_my_name_stops_me_with_the_fix():
    """Eve (another account) makes the data owner's exact folder first, so that whatever the data owner
    writes lies in a folder she owns: the data owner must refuse to start, saying why and what to do."""
    with directory_for_accounts() as shared:
        as_nobody('mkdir -m 777 "$1"', str(shared / DO))
        with pytest.raises(ConfigError, match="belongs to uid 65534") as refused:
            participant(shared, DO, [DS]).prepare()
        assert "Fix: remove it" in str(refused.value)


# -- 5. special files --------------------------------------------------------------------------------


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _link_to_dev_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


def _device(path: Path) -> None:
    os.mknod(path, 0o644 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero's numbers


def _directory(path: Path) -> None:
    path.mkdir()


def _sparse_message(path: Path) -> None:
    """A real routing line, then 64 GiB of nothing (a sparse file: no disk used)."""
    routing = request_routing(RUN, "sparse", sender=DS, recipient=DO, app=APP)
    path.write_bytes(json.dumps({"layout": 1, **routing.as_dict()}).encode() + b"\n")
    os.truncate(path, 64 << 30)


SPECIAL = {"fifo": _fifo, "link-to-dev-zero": _link_to_dev_zero, "device": _device, "directory": _directory}


@pytest.mark.parametrize(
    "owner, name, make",
    [
        pytest.param(MALLORY, "request-fifo.msg", "fifo", id="fifo-message"),
        pytest.param(MALLORY, "request-dir.msg", "directory", id="directory-message"),
        pytest.param(DS, "request-zero.msg", "link-to-dev-zero", id="dev-zero-message"),
        pytest.param(DS, "request-device.msg", "device", id="device-message", marks=ROOT_ONLY),
        pytest.param(DS, "request-sparse.msg", "sparse", id="sparse-message"),
        pytest.param(MALLORY, "announce.json", "fifo", id="fifo-announcement"),
        pytest.param(MALLORY, "announce.json", "link-to-dev-zero", id="dev-zero-announcement"),
        pytest.param(MALLORY, "announce.json", "device", id="device-announcement", marks=ROOT_ONLY),
    ],
)
def test_special_files_neither_hang_nor_exhaust_the_poll_and_are_named_once(root: Path, owner, name, make):
    """Any folder in the root can hold them, a peer's or a stranger's; the victim polls twice in a process of
    its own (2 GiB of address space, 60 s) and must get the server's genuine message both times."""
    server = participant(root, DS, [DO], encryption=False)
    server.prepare()
    server.send(kind="request", recipient=DO, run_id=RUN, payload=b"genuine", message_id="genuine")
    where = app_dir(root, owner) if name == "announce.json" else app_dir(root, owner) / "to" / DO
    where.mkdir(parents=True, exist_ok=True)
    (where / name).unlink(missing_ok=True)
    (_sparse_message if make == "sparse" else SPECIAL[make])(where / name)
    answer = victim({"action": "poll", "root": str(root), "me": DO, "peers": [DS]})
    assert answer["outcome"] == "done", answer
    assert answer["polls"] == [["genuine"], ["genuine"]]
    said = [w for w in answer["warnings"] if name in w]
    assert len(said) == 1, answer["warnings"]


@pytest.mark.parametrize("make", ["fifo", "link-to-dev-zero"])
def test_a_blob_that_is_a_special_file_is_refused_unread(root: Path, make: str):
    """A hostile peer names, in a signed message, a blob of its own that is a FIFO (size 10) or a link to
    /dev/zero (size 0: what /dev/zero's listing says)."""
    locator = "0123456789abcdef0123456789abcdef"
    blobs = app_dir(root, DS) / "blobs"
    blobs.mkdir(parents=True)
    SPECIAL[make](blobs / f"{locator}.bin")
    size = 10 if make == "fifo" else 0
    answer = victim({"action": "blob", "root": str(root), "me": DO, "owner": DS, "locator": locator, "size": size})
    assert answer["outcome"] == "done" and "refused" in answer, answer


# -- 6. a file that grows after its size check ---------------------------------------------------------


class GrowsOnFirstWrite(io.BytesIO):
    """The victim's sink; the first bytes it gets are Eve's cue to append 8 MiB to the file being read."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.grown = False

    def write(self, data) -> int:  # type: ignore[override]
        if not self.grown:
            self.grown = True
            with open(self.path, "ab") as f:
                f.write(b"\0" * (8 << 20))
        return super().write(data)


def test_a_message_that_grows_after_its_size_check_is_read_only_up_to_that_size(root: Path):
    server = participant(root, DS, [DO], encryption=False)
    server.prepare()
    _, handle = server.send(kind="request", recipient=DO, run_id=RUN, payload=b"x" * 1000, message_id="grows")
    receiver = DirectoryTransport(root, DO)
    [posting] = receiver.poll(APP).inbound
    out = GrowsOnFirstWrite(root / handle)
    got = receiver.read_to(posting, out, max_bytes=posting.size + 100)
    assert out.grown and got == posting.size and len(out.getvalue()) == posting.size


def test_a_blob_that_grows_after_its_size_check_is_read_only_up_to_that_size(root: Path):
    server = DirectoryTransport(root, DS)
    locator = server.put_blob(APP, b"m" * 1000)
    out = GrowsOnFirstWrite(app_dir(root, DS) / "blobs" / f"{locator}.bin")
    got = DirectoryTransport(root, DO).get_blob(APP, locator, owner=DS, size=1000, out=out)
    assert out.grown and got == 1000 and out.getvalue() == b"m" * 1000


# -- 7. the run config -----------------------------------------------------------------------------------

DECLARED = {"learning-rate": 0.1, "local-epochs": 1, "data-path": "/private/site-a.csv"}


def _recording_client(seen: list) -> ClientApp:
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        seen.append(dict(context.run_config))
        return Message(RecordDict({"metrics": MetricRecord({"num-examples": 1})}), reply_to=msg)

    return app


def _one_round_server(answers: list) -> ServerApp:
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        nodes = list(grid.get_node_ids())
        content = RecordDict({"arrays": ArrayRecord([np.zeros(2)]), "config": ConfigRecord({"server-round": 1})})
        messages = [Message(content, dst_node_id=node, message_type="train") for node in nodes]
        for reply in grid.send_and_receive(messages, timeout=20):
            answers.append(reply.error.reason if reply.has_error() else "answered")

    return app


@pytest.mark.parametrize(
    "sent, named",
    [
        ({"learning-rate": 0.5, "upload-to": "https://eve.example/collect"}, "'upload-to'"),
        ({"learning-rate": "0.5; import os", "local-epochs": 2}, "'learning-rate' (a str where a float"),
    ],
    ids=["undeclared-key", "wrong-type"],
)
def test_a_run_config_the_data_owners_project_does_not_declare_never_reaches_the_client_app(
    root: Path, tmp_path: Path, sent: dict, named: str
):
    """A server (its project changed, or hostile) sends a run config the data owner's project does not
    declare: the ClientApp never runs with it, and the server gets an error naming the key and nothing more."""
    seen: list = []
    answers: list = []
    stop = threading.Event()
    owner = participant(root, DO, [DS], app=app_key("t"))
    loop = ClientLoop(
        _recording_client(seen), owner, poll_interval=0.05, stop_event=stop, linger=1.0, run_config=DECLARED
    )
    with loops_running([loop], stop, drain=10):
        settings = Settings.from_env({}, email=DS, poll_interval=0.05, msg_timeout=15.0, state_dir=tmp_path / "ds")
        context = Context(run_id=0, node_id=0, node_config={}, state=RecordDict(), run_config=dict(sent))
        outcome = serve(
            _one_round_server(answers), context, [DO], "t", settings=settings, transport=DirectoryTransport(root, DS)
        )
    assert outcome.completed
    assert seen == [], "the ClientApp ran with a run config its project does not declare"
    [reason] = answers
    assert "RunConfigRefused" in reason and named in reason, reason
    assert "/private/site-a.csv" not in reason and "Traceback" not in reason
    assert loop.report.run_config_refused == 1
