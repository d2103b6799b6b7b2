"""10,000 junk files tagged to a client by a stranger never reach its polls.

A stranger shares a folder with the client and fills it with 10,000 files whose metadata
addresses the client's inbox (full routing, from a non-peer). Polls list only the peers'
outbox folders (``'<id>' in parents``), so every poll is one page, nothing is downloaded
or logged for the junk, and the federation completes.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from pathlib import Path

from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.transport.drive import layout
from tests.helpers.reliability import CLIENTS
from tests.helpers.reliability import MESSAGE_APP_KEY
from tests.helpers.reliability import SERVER
from tests.helpers.reliability import api_for
from tests.helpers.reliability import assert_clean_exit
from tests.helpers.reliability import make_federation
from tests.helpers.reliability import make_routing
from tests.helpers.reliability import outbox_of
from tests.helpers.reliability import wait_for_settled_listings

JUNK = 10_000
STRANGER = "mallory@evil.example"
TARGET = CLIENTS[0]


class ListRecorder:
    """Wraps the in-process fake's request handler: every files.list, by user, with its q and page token."""

    def __init__(self, drive: FakeDriveServer) -> None:
        self.calls: dict[str, list[tuple[str, bool]]] = defaultdict(list)  # user -> [(q, has page token)]
        self._lock = threading.Lock()
        api = drive.api
        inner = api.handle

        def handle(req, *args, **kwargs):
            resp = inner(req, *args, **kwargs)
            if req.method == "GET" and req.path.rstrip("/").endswith("/drive/v3/files"):
                user = req.headers.get("x-fake-user", "?")  # who the fake took the token for (any kind of token)
                with self._lock:
                    self.calls[user].append((req.arg("q") or "", bool(req.arg("pageToken"))))
            return resp

        api.handle = handle

    def polls(self, user: str) -> list[int]:
        """Pages per poll of ``user`` (a poll is a first page of a parents listing, then its next pages)."""
        pages: list[int] = []
        for call_q, has_token in self.calls[user]:
            if "in parents" not in call_q:
                continue
            if not has_token:
                pages.append(0)
            pages[-1] += 1
        return pages


def _junk_body(owner: str, folder: str, i: int) -> dict:
    routing = make_routing(1, f"junk{i:05d}", owner, TARGET, MESSAGE_APP_KEY)
    return {
        "name": f"request-1-junk{i:05d}.sfgd",
        "parents": [folder],
        "mimeType": "application/octet-stream",
        "properties": layout.message_properties(routing),
    }


def create_junk(drive: FakeDriveServer, owner: str, folder: str, n: int) -> None:
    """``n`` metadata-only files addressed to TARGET's inbox.

    The first 100 go through the Drive API as one batch request of creates (what a stranger would
    send); the rest are put straight into the in-process fake's store, the same records ten times
    faster than 99 more batches (about 1.6 s instead of 18 s on 2 cores).
    """
    api = api_for(drive, owner)
    service = api._service  # the googleapiclient resource DriveApi wraps; batch creates are not in its API
    failures: list[BaseException] = []

    def done(_request_id, _response, exception):
        if exception is not None:
            failures.append(exception)

    batch = service.new_batch_http_request(callback=done)
    for i in range(min(n, 100)):
        batch.add(service.files().create(body=_junk_body(owner, folder, i), fields="id"))
    api._execute("batch", batch, call=lambda b, http: b.execute(http=http))
    assert not failures, failures[:3]
    for i in range(100, n):
        drive.store.create(owner, _junk_body(owner, folder, i))


def test_ten_thousand_junk_files_keep_polls_bounded(tmp_path: Path, drive: FakeDriveServer):
    folder = outbox_of(drive, STRANGER, MESSAGE_APP_KEY, TARGET)
    drive.faults.write_rate = (
        0.0  # a batch of 100 creates would hit the strict profile's write limit; not the point here
    )
    create_junk(drive, STRANGER, folder, JUNK)
    wait_for_settled_listings(drive)  # what the client would list: the strict profile lags new files
    listed = api_for(drive, TARGET).list_files(layout.parents_query([folder]), fields="id")
    assert len(listed) >= JUNK, "the junk is not visible to the client at all"
    recorder = ListRecorder(drive)
    with make_federation(
        tmp_path, drive, client_emails=(TARGET,), run_config={"num-server-rounds": 2, "min-clients": 1}
    ) as fed:
        fed.start_all()
        assert fed.wait(120), fed.client(0).log_text()[-3000:]
        assert_clean_exit(fed, 2)
        report = fed.client(0).report()
        log = fed.client(0).log_text()

    assert report["handled"] == 4
    pages = recorder.polls(TARGET)
    print(
        f"\n{len(pages)} polls of {TARGET} beside {JUNK} junk files of a stranger; pages per poll: max {max(pages)}; "
        f"client drive calls {report['drive_calls']}"
    )
    assert len(pages) >= 3
    assert max(pages) == 1, pages  # the stranger's folder is never listed
    assert all(folder not in q for q, _ in recorder.calls[TARGET] if "in parents" in q)
    # Every listing is accounted for: the folder listings ride in the polls' batch requests (at most one per
    # folder it looks in: the server's outbox to it, the server's bundles folder, its own outbox), and the
    # client's own files.list requests are its set-up queries.
    assert sum(pages) <= 3 * report["drive_calls"]["batch.read"]
    assert report["drive_calls"].get("files.list", 0) <= 10
    # Nothing downloaded but the 4 requests and the stop signal; nothing logged for the junk.
    assert report["drive_calls"].get("media.download", 0) <= 5
    assert not [line for line in log.splitlines() if "skipping message file" in line]
    assert SERVER in fed.server().email
