"""Shared by the reliability tests: participants, apps, federations, and planting files as any account.

Participants run the user-facing CLI (``python -m syft_flwr_gdrive.cli``) through ``LocalFederation``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from syft_flwr_gdrive.base.accounts import canonical_email
from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.localrun.federation import LocalFederation
from syft_flwr_gdrive.localrun.federation import Participant
from syft_flwr_gdrive.transport.contract import Routing
from syft_flwr_gdrive.transport.drive import layout
from syft_flwr_gdrive.transport.drive.api import DriveApi
from syft_flwr_gdrive.transport.drive.transport import DriveTransport
from tests.helpers.envelopes import body_for
from tests.helpers.fake_service import drive_api_for
from tests.helpers.flower_metrics import server_history
from tests.helpers.routings import request_routing

HERE = Path(__file__).resolve().parents[1] / "reliability"
REPO = HERE.parents[1]
MESSAGE_APP = REPO / "fixtures" / "message_app"
DIGEST_APP = HERE / "apps" / "digest_app"  # message_app + a bit-exact digest of the final model
LEAKY_APP = HERE / "apps" / "leaky_app"  # a ClientApp that raises with private data in the message
SERVER = "ds_rel@example.com"
CLIENTS = ("do_a@example.com", "d.o_b+x@example.com", "o'hara@example.org")
MESSAGE_APP_KEY = "flwr/message-digits"
DIGEST_APP_KEY = "flwr/digest-digits"

# "2026-01-01 10:00:00,000 INFO syft_flwr_gdrive.flower.client_loop: run 123: answered train (0123abcd, round 1)",
# at the start of a line (text quoted inside another line, e.g. a file name, does not count)
ANSWERED = re.compile(
    r"^\S+ \S+ INFO syft_flwr_gdrive\.flower\.client_loop: "
    r"run (\d+): answered (\S+) \(([0-9a-f]{8}|[^,]+), round ([^)]*)\)",
    re.MULTILINE,
)


# SYFT_FLWR_DRIVE_PROFILE=strict runs the suite against the strict fake (docs/drive-assumptions.md).
DRIVE_PROFILE = os.environ.get("SYFT_FLWR_DRIVE_PROFILE", "default")

ORDER_BUG = (
    "TransportGrid.send_and_receive returns replies in arrival order and FedAvg's float sums depend on that "
    "order, so the final weights (and loss/accuracy history) of the same seeded run differ in the last bits "
    "between runs; replies should be returned in a canonical order (e.g. by source node id)"
)


def make_federation(workdir: Path, drive: FakeDriveServer, project: Path = MESSAGE_APP, **kw) -> LocalFederation:
    kw.setdefault("poll_interval", 0.2)
    kw.setdefault("msg_timeout", 40.0)
    kw.setdefault("server_email", SERVER)
    kw.setdefault("client_emails", CLIENTS)
    return LocalFederation(workdir, project, drive.url, **kw)


def api_for(drive: FakeDriveServer, email: str) -> DriveApi:
    return drive_api_for(drive.url, email)


def transport_for(drive: FakeDriveServer, email: str) -> DriveTransport:
    return DriveTransport(api_for(drive, email), email)


_PLANTERS: dict[tuple[str, str, str], DriveTransport] = {}


def planter(drive: FakeDriveServer, email: str) -> DriveTransport:
    """One transport per (Drive, account) for planting: it prepares each outbox once, so a plant is one create
    (a fresh transport per file would discover and check sharing again, slower than the run it plants into)."""
    key = (drive.url, str(drive.store.dir), email)  # the store dir is unique per server, ports are reused
    if key not in _PLANTERS:
        _PLANTERS[key] = transport_for(drive, email)
    return _PLANTERS[key]


def file_props(f: dict) -> dict:
    """A listed file's routing metadata (``appProperties`` and ``properties`` merged)."""
    return {**(f.get("properties") or {}), **(f.get("appProperties") or {})}


def owned_files(drive: FakeDriveServer, email: str) -> list[dict]:
    """Every non-folder file ``email`` owns on the fake Drive now, ours or not, with its metadata.

    The fake's ground truth (``FakeDriveServer.owned_files``), not a listing: under the strict profile
    ``files.list`` may still show a file deleted within the lag or miss one just created, so a test that
    asserts what exists (or waits for something to exist) must not ask a listing."""
    return drive.owned_files(email)


def leftover_message_files(drive: FakeDriveServer, emails=(SERVER, *CLIENTS)) -> dict[str, int]:
    """Files (not folders) each participant owns on Drive now: message files, blobs, anything.

    Counted from the fake's ground truth, with the profile left as it is (participants may still run)."""
    left = {}
    for email in emails:
        files = owned_files(drive, email)
        if files:
            left[email] = len(files)
    return left


def wait_for_settled_listings(drive: FakeDriveServer, timeout: float | None = None) -> None:
    """Wait until every ``files.list`` shows the fake's current state (the list lag has passed since the
    last change): for a test that asks what a participant's listing shows, once nobody writes any more.
    Fails if Drive keeps changing for ``timeout`` seconds (default: the list lag plus 2 s)."""
    deadline = time.monotonic() + (drive.faults.list_lag + 2.0 if timeout is None else timeout)
    while (left := drive.listings_settle_in()) > 0:
        assert time.monotonic() < deadline, "the fake Drive kept changing: listings never settled"
        time.sleep(left + 0.01)  # listing times are in milliseconds


def wait_for_log(participant: Participant, text: str, timeout: float, count: int = 1) -> None:
    """Wait until ``text`` occurs ``count`` times in the participant's log (fails on timeout or exit)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if participant.log_text().count(text) >= count:
            return
        if not participant.alive():
            break
        time.sleep(0.05)
    raise AssertionError(
        f"{text!r} not seen {count}x in {participant.email}'s log (alive={participant.alive()}):\n"
        f"{participant.log_text()[-3000:]}"
    )


def answered(log: str) -> list[tuple[int, str, str, str]]:
    """(run, message type, request id prefix, round) of every 'answered' line of a client log."""
    return [(int(m.group(1)), m.group(2), m.group(3), m.group(4)) for m in ANSWERED.finditer(log)]


def duplicates(items) -> dict:
    return {k: n for k, n in Counter(items).items() if n > 1}


def run_cli(args: list[str], env: dict[str, str], timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Run the CLI to completion (killed on timeout by subprocess.run)."""
    return subprocess.run(
        [sys.executable, "-m", "syft_flwr_gdrive.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def assert_clean_exit(fed: LocalFederation, rounds: int) -> dict:
    """Server exit 0 with ``rounds`` rounds of history, every client stopped by the stop signal."""
    server = fed.server()
    assert server.process is not None and server.process.returncode == 0, server.log_text()[-4000:]
    report = server.report()
    assert report is not None, "server wrote no report"
    history = server_history(report)
    assert history["round"] == list(range(1, rounds + 1)), history
    for key, participant in fed.participants.items():
        if participant.role != "client":
            continue
        assert participant.process is not None and participant.process.returncode == 0, (
            key,
            participant.log_text()[-4000:],
        )
        assert participant.report()["stopped_by"] == "stop-signal", participant.report()
    return report


# -- planting files as any account ------------------------------------------------------------


def listed_outboxes(drive: FakeDriveServer, owner: str, app: str, recipient: str) -> list[dict]:
    """``owner``'s outbox folders of ``app`` for ``recipient`` as a listing shows them now, oldest first
    (read as their owner, so it works whatever the profile hides)."""
    folders = api_for(drive, owner).list_files(layout.outbox_query(app), fields="id,properties", order_by="createdTime")
    return [f for f in folders if layout.outbox_recipient_matches(f.get("properties"), canonical_email(recipient))]


def _listed_outbox(drive: FakeDriveServer, owner: str, app: str, recipient: str) -> str | None:
    """The oldest outbox ``owner`` already has for ``recipient``, as a listing shows it once the fake's list
    lag has passed (a planter that looked only once could miss a folder created a moment ago, make a
    duplicate, and plant where the recipient does not look until its next discovery)."""
    deadline = time.monotonic() + drive.faults.list_lag + 0.5
    while True:
        folders = listed_outboxes(drive, owner, app, recipient)
        if folders:
            return str(folders[0]["id"])
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


def outbox_of(drive: FakeDriveServer, owner: str, app: str, recipient: str) -> str:
    """Id of ``owner``'s outbox folder of ``app`` to ``recipient`` (the existing one; created and shared if missing)."""
    t = planter(drive, owner)
    key = (app, canonical_email(recipient))
    if key not in t.folders.outboxes:
        found = _listed_outbox(drive, owner, app, recipient)
        if found is not None:
            t.folders.outboxes[key] = found  # the folder its sends go into
        else:
            t.prepare(app, [recipient])
    return t.folders.outboxes[key]


def plant(
    drive: FakeDriveServer,
    owner: str,
    routing: Routing,
    body: bytes,
    *,
    name: str | None = None,
    props: dict[str, str] | None = None,
) -> str:
    """Upload ``body`` as ``owner`` into its outbox to ``routing.recipient``; returns the file id.

    By default name and metadata are what the package itself writes for ``routing``.
    """
    folder = outbox_of(drive, owner, routing.app, routing.recipient)
    if name is None and props is None:
        return planter(drive, owner).send(routing, body)
    created = api_for(drive, owner).upload_bytes(
        name if name is not None else layout.message_file_name(routing),
        body,
        parent_id=folder,
        mime_type="application/octet-stream",
        fields="id",
        properties=props if props is not None else layout.message_properties(routing),
    )
    return str(created["id"])


def make_routing(
    run_id: int,
    message_id: str,
    sender: str,
    recipient: str,
    app: str,
    kind: str = "request",
    reply_to: str = "",
    created_at: float | None = None,
    ttl: float = 600.0,
) -> Routing:
    return request_routing(
        run_id,
        message_id,
        sender=sender,
        recipient=recipient,
        app=app,
        kind=kind,
        reply_to=reply_to,
        ttl=ttl,
        **({} if created_at is None else {"created_at": created_at}),
    )


def envelope_body(routing: Routing, payload: bytes, **header_changes) -> bytes:
    """A well-formed envelope for ``routing`` (header fields overridable) around ``payload``."""
    return body_for(routing, payload, **header_changes)


def announced_run(
    drive: FakeDriveServer,
    recipient: str,
    app: str,
    sender: str = SERVER,
    timeout: float = 60,
    not_run: int | None = None,
) -> int:
    """The run ``sender`` announces to ``recipient`` (waits for an announcement other than ``not_run``).

    Read from the sender's own outbox folders (as their owner), so it works whatever the profile hides."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = [layout.announced_run(f.get("properties")) for f in listed_outboxes(drive, sender, app, recipient)]
        runs = [r for r in runs if r is not None and r != not_run]
        if runs:
            return max(runs)
        time.sleep(0.1)
    raise AssertionError(f"{sender} announced no run to {recipient}")
