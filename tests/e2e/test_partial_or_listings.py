"""A federation over a Drive whose OR'ed parent listings come back partial, as field reports describe.

rclone's ``drive.go`` and its issues #3114, #4289 and #9810, and Google's issue tracker 149522397, report
a ``files.list`` whose ``q`` ORs several ``'<id>' in parents`` terms answering only some folders' files,
or none, with ``incompleteSearch: false`` and no error. With such a Drive in front of the old transport a
3-datasite quickstart ran 0 of 18 exchanges. Here the same Drive answers every OR of parents with only
the first folder's files, or with nothing: every round completes, no reply is missing, every process
exits 0 on the stop signal, and nothing is left on Drive.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.fake import FaultConfig
from syft_flwr_gdrive.transport.drive import layout
from tests.helpers.e2e import DRIVE_PROFILE
from tests.helpers.e2e import SERVER
from tests.helpers.e2e import assert_federation_succeeded
from tests.helpers.e2e import leftover_message_files
from tests.helpers.e2e import make_federation
from tests.helpers.e2e import transport_for

ROUNDS = 3


@pytest.mark.parametrize("or_listing", ["first", "none"])
def test_three_datasites_finish_every_round_when_or_listings_answer_only_the_first_folder_or_nothing(
    tmp_path: Path, or_listing: str
):
    with FakeDriveServer(profile=DRIVE_PROFILE, faults=FaultConfig(or_listing=or_listing)) as drive:
        with make_federation(tmp_path, drive, run_config={"num-server-rounds": ROUNDS}) as fed:
            fed.start_all()
            assert fed.wait(240), "federation did not finish:\n" + fed.server().log_text()[-3000:]
            assert_federation_succeeded(fed, rounds=ROUNDS)  # every round with all 3 replies, every exit 0
            server_log = fed.server().log_text()
            assert server_log.count("Received 3 results and 0 failures") == 2 * ROUNDS, server_log[-3000:]
        assert leftover_message_files(drive) == {}
        # The fault was on: an OR of the server's own outboxes answers the first folder's files, or none.
        server = transport_for(drive, SERVER)
        folders = sorted(f["id"] for f in server.api.list_files(layout.outbox_query("flwr/message-digits")))
        marker = [server.api.upload_bytes("m", b"x", parent_id=f, fields="id")["id"] for f in folders]
        drive.faults.list_lag, drive.faults.lag_all = 0.0, False
        shown = {f["id"] for f in server.api.list_files(layout.parents_query(folders), fields="id")}
        assert shown == (set(marker[:1]) if or_listing == "first" else set()), (shown, marker)
        server.api.delete_many(marker)
