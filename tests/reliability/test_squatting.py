"""A dishonest datasite squats the part ids the server announces (#23 finding 3).

A blob in parts is named in the bundle (readable by every datasite of the run) before its parts
upload. The attacker here is a real datasite of the run: its client process trains and answers like
any other, and beside it the same account reads each bundle as the datasite may, opens its own part
with its own keys, and creates files at the part ids it finds there, before the server uploads them.

* Default profile (any account may create at any generated id, as the fake always allowed): the
  server's upload meets a 409, stores the part at a fresh id that names the announced one
  (``sfg_part_of``), and every datasite finds it there; the run finishes with every reply counted.
* Strict profile (a reserved id belongs to the account that generated it): Drive refuses the squat.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import struct
import threading
import time
from pathlib import Path

from syft_flwr_gdrive.base.accounts import canonical_email
from syft_flwr_gdrive.base.accounts import same_account
from syft_flwr_gdrive.crypto.keys import Identity
from syft_flwr_gdrive.crypto.pins import PinStore
from syft_flwr_gdrive.crypto.seal import Sealer
from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.flower.codec import CODEC_PARTS
from syft_flwr_gdrive.flower.codec import parse_index
from syft_flwr_gdrive.flower.codec import parts_layout
from syft_flwr_gdrive.mailbox.ledger import Ledger
from syft_flwr_gdrive.mailbox.mailbox import Mailbox
from syft_flwr_gdrive.transport.drive import layout
from syft_flwr_gdrive.transport.drive.errors import DriveError
from syft_flwr_gdrive.transport.drive.transport import DriveTransport
from tests.helpers.fake_service import drive_api_for
from tests.helpers.reliability import CLIENTS
from tests.helpers.reliability import HERE
from tests.helpers.reliability import SERVER
from tests.helpers.reliability import leftover_message_files
from tests.helpers.reliability import make_federation

EMBEDDING_APP = HERE / "apps" / "embedding_app"
APP = "flwr/embedding-app"
ROUNDS = 2
ATTACKER = CLIENTS[2]
LINK = 1_000_000  # bytes/s per account: a 1 MiB part takes a second to upload, time for the squatter


class Squatter:
    """The dishonest datasite's second hand: reads the bundles sent to it and creates files at their part ids."""

    def __init__(self, drive: FakeDriveServer, state_dir: Path) -> None:
        self._drive = drive
        self._state_dir = state_dir
        self.squatted: dict[str, str] = {}  # part id -> "taken" (Drive made our file there) or Drive's refusal
        self.bundles_read = 0
        self.crashed: BaseException | None = None  # the attacker's own bug, surfaced rather than lost in a thread
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run_recording_crash, daemon=True)

    def __enter__(self) -> Squatter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._halt.set()
        self._thread.join(30)
        api = drive_api_for(self._drive.url, ATTACKER)
        api.delete_many([part for part, outcome in self.squatted.items() if outcome == "taken"], missing_ok=True)

    def _mailbox(self) -> Mailbox:
        """A mailbox with the datasite's own keys (copied: its client process keeps the originals)."""
        keys = self._state_dir / "keys.json"
        while not keys.exists() and not self._halt.wait(0.1):
            pass
        own = self._state_dir.parent / "squatter"
        own.mkdir(exist_ok=True)
        shutil.copy(keys, own / "keys.json")
        transport = DriveTransport(drive_api_for(self._drive.url, ATTACKER), ATTACKER)
        self._learn_the_servers_permission_id(transport)
        sealer = Sealer(Identity.load_or_create(own / "keys.json"), PinStore(None))
        return Mailbox(transport, APP, [SERVER], Ledger(None), sealer=sealer, plain_layouts={CODEC_PARTS: parts_layout})

    def _learn_the_servers_permission_id(self, transport: DriveTransport) -> None:
        """As its client knows it: from the sharing of its own outbox to the server (Drive may hide the
        server's email on the server's folders; this permission id names the server there)."""
        transport.folders.peers[APP] = [SERVER]
        while not self._halt.wait(0.2):
            for folder in transport.api.list_files(layout.outbox_query(APP), fields=layout.FOLDER_FIELDS):
                for perm in folder.get("permissions") or []:
                    if same_account(perm.get("emailAddress") or "", SERVER) and perm.get("id"):
                        transport.owners.permission_ids[SERVER] = str(perm["id"])
                        return

    def _run_recording_crash(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # noqa: BLE001 - reported by the test, not swallowed by the thread
            self.crashed = exc
            raise

    def _run(self) -> None:
        box = self._mailbox()
        api = box.transport.api  # type: ignore[attr-defined]
        while not self._halt.wait(0.05):
            try:
                deliveries = box.poll().deliveries
            except Exception:  # noqa: BLE001 - the attacker keeps trying, like a real one would
                continue
            for delivery in deliveries:
                try:
                    ids = part_ids(delivery.open_payload().read(delivery.envelope.size))
                finally:
                    box.mark_handled(delivery.envelope.message_id, delivery.envelope.sender)
                    delivery.close()
                self.bundles_read += 1
                for part in ids[1:]:  # the first part uploads at once; the later ones are the ones to take
                    try:
                        api.upload_bytes("squat.bin", b"mine now", parent_id=None, file_id=part, fields="id")
                        self.squatted[part] = "taken"
                    except DriveError as exc:
                        self.squatted[part] = f"refused {exc.status}"


def part_ids(payload: bytes) -> list[str]:
    """The ids of every blob part a Flower payload (``sfg-flwr-parts-v1``) names, read from its index."""
    (index_len,) = struct.unpack(">I", payload[:4])
    _proto, entries = parse_index(json.load(io.BytesIO(payload[4 : 4 + index_len])))
    return [locator for e in entries if e.blob is not None for locator in e.blob.locators]


def test_a_datasite_that_squats_announced_part_ids_silences_nobody(tmp_path: Path, drive: FakeDriveServer):
    drive.faults.upload_bytes_per_s = LINK
    strict = drive.faults.reserved_ids_owned
    with make_federation(
        tmp_path,
        drive,
        project=EMBEDDING_APP,
        msg_timeout=90.0,
        run_config={"num-server-rounds": ROUNDS},
        extra_env={"SYFT_FLWR_BLOB_PART_MB": "1"},
    ) as fed:
        safe = re.sub(r"[^a-z0-9._+-]", "_", canonical_email(ATTACKER))  # Settings.participant_state_dir
        with Squatter(drive, fed.workdir / "state" / safe) as squatter:
            fed.start_all()
            assert fed.wait(300), "federation did not finish:\n" + fed.server().log_text()[-3000:]
            time.sleep(0.2)
        server = fed.server()
        log = server.log_text()
        assert server.process.returncode == 0, log[-3000:]
        for phase in ("aggregate_train", "aggregate_evaluate"):  # every datasite's reply, every round
            received = [line for line in log.splitlines() if f"{phase}: Received" in line]
            assert len(received) == ROUNDS and all("Received 3 results and 0 failures" in r for r in received), received
        for i in range(len(CLIENTS)):
            client = fed.client(i)
            assert client.process.returncode == 0 and client.report()["stopped_by"] == "stop-signal"
    assert squatter.crashed is None, repr(squatter.crashed)
    assert squatter.bundles_read >= ROUNDS, squatter.bundles_read
    if strict:  # reserved ids belong to the account that generated them (409: the part was there already)
        outcomes = set(squatter.squatted.values())
        assert "refused 400" in outcomes and outcomes <= {"refused 400", "refused 409"}, squatter.squatted
        assert "Drive refused the reserved id" not in log, log[-3000:]
    else:
        assert "taken" in squatter.squatted.values(), squatter.squatted
        assert "Drive refused the reserved id" in log, log[-3000:]
    assert leftover_message_files(drive) == {}  # the squatter's own files gone too (it deleted them)
