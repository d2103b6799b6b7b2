"""Participants reach a fake Drive the way they reach Google: a refresh token and a token endpoint.

The real google-auth fetches the first access token, refreshes it before it expires and after a
401 (google-auth-httplib2's ``AuthorizedHttp``, one per request: ``service.py``), and the real
googleapiclient re-sends what the 401 refused. The fake counts the refreshes (``stats()["oauth"]``).
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from google.auth import _helpers as google_auth_helpers

from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.fake import FaultConfig
from syft_flwr_gdrive.mailbox.ledger import Ledger
from syft_flwr_gdrive.mailbox.mailbox import Mailbox
from syft_flwr_gdrive.transport.drive import connect
from syft_flwr_gdrive.transport.drive.api import DriveApi
from syft_flwr_gdrive.transport.drive.auth import fake_drive_credentials
from syft_flwr_gdrive.transport.drive.errors import DriveAuthError
from syft_flwr_gdrive.transport.drive.errors import DriveUnavailable
from syft_flwr_gdrive.transport.drive.options import DriveOptions
from syft_flwr_gdrive.transport.drive.retry import RetryPolicy
from syft_flwr_gdrive.transport.drive.transport import DriveTransport

ALICE, BOB = "alice@example.com", "bob@example.com"
APP = "flwr/oauth"
POLICY = RetryPolicy(max_attempts=3, initial_wait=0.001, max_wait=0.01)


def api_on(drive: FakeDriveServer, email: str = ALICE, **kwargs) -> DriveApi:
    """A DriveApi with the credentials a participant builds for a fake Drive URL."""
    kwargs.setdefault("retry", POLICY)
    return DriveApi(fake_drive_credentials(drive.url, email), base_url=drive.url, **kwargs)


def refreshes(drive: FakeDriveServer, email: str = ALICE) -> int:
    return drive.stats()["oauth"]["issued"].get(email, 0)


def http_requests(drive: FakeDriveServer) -> int:
    """Drive requests the fake answered, a batch as one (``files.get`` here comes only from batches)."""
    requests = drive.stats()["requests"]
    return sum(requests.values()) - requests.get("GET files.get", 0)


def some_work(api: DriveApi, folder_id: str, i: int) -> None:
    """One of each kind of request: metadata, a resumable upload, a batch of gets, a listing, a download."""
    body = f"round {i} ".encode() * 1000
    made = api.upload_bytes(f"f{i}", body, parent_id=folder_id)
    assert api.get_many([made["id"]])[made["id"]]["name"] == f"f{i}"
    assert f"f{i}" in {f["name"] for f in api.list_files(f"'{folder_id}' in parents", fields="id,name")}
    assert api.download_bytes(made["id"]) == body


def test_the_first_call_fetches_a_token_and_token_requests_are_not_drive_calls():
    with FakeDriveServer() as drive:
        api = api_on(drive)
        assert api.credentials.token is None and api.credentials.refresh_token == ALICE
        assert api.credentials.token_uri == drive.url + "token"
        assert api.about_me() == ALICE
        folder = api.create_folder("work")
        some_work(api, folder["id"], 0)
        assert refreshes(drive) == 1  # one token for the hour
        assert http_requests(drive) == api.calls.total
        assert "401" not in drive.stats()["statuses"]


def test_a_short_token_lifetime_is_refreshed_across_many_expiries():
    """With a 1 s lifetime google-auth refreshes ahead of expiry (it does so 3 min 45 s early), before each call."""
    with FakeDriveServer(access_token_ttl=1) as drive:
        api = api_on(drive)
        folder = api.create_folder("work")
        for i in range(3):
            some_work(api, folder["id"], i)
            time.sleep(1.1)  # the token of the last call has expired
        assert api.about_me() == ALICE
        assert refreshes(drive) >= 4
        assert http_requests(drive) == api.calls.total and api.calls.retries == 0


def test_a_401_for_an_expired_token_is_refreshed_and_resent_transparently(monkeypatch):
    """A client whose clock runs 30 s behind keeps sending its expired token: Drive answers 401, and
    AuthorizedHttp (and, for a batch's parts, googleapiclient) refresh and send the call again."""
    monkeypatch.setattr(google_auth_helpers, "REFRESH_THRESHOLD", -dt.timedelta(seconds=30))
    with FakeDriveServer(access_token_ttl=1) as drive:
        api = api_on(drive)
        assert api.about_me() == ALICE and refreshes(drive) == 1
        expiries = 3
        for n in range(1, expiries + 1):
            time.sleep(1.1)
            assert api.about_me() == ALICE
            assert refreshes(drive) == 1 + n and drive.stats()["statuses"]["401"] == n
        folder = api.create_folder("work")
        for i in range(2):
            time.sleep(1.1)
            some_work(api, folder["id"], i)
        assert refreshes(drive) >= 1 + expiries + 2
        assert api.calls.retries == 0  # below the retry policy: nothing failed
        assert http_requests(drive) == api.calls.total  # the refused requests are counted too


def test_a_refresh_does_not_bring_back_httplib2s_hidden_resend():
    """The token request and the Drive call use separate connections: a dropped call is sent once."""
    with FakeDriveServer() as drive:
        api = api_on(drive, retry=RetryPolicy(max_attempts=1))
        drive.faults = FaultConfig(drop_rate=1.0, drop_after_fraction=0.0, routes=["about.get"])
        with pytest.raises(DriveUnavailable):
            api.about_me()  # the first call: a refresh, then the call, dropped
        assert refreshes(drive) == 1
        assert drive.stats()["requests"] == {"GET about.get (dropped)": 1} and api.calls.total == 1


def test_a_revoked_refresh_token_surfaces_as_a_drive_auth_error():
    """What a participant sees today when its refresh token is revoked (handling it is another issue)."""
    with FakeDriveServer(access_token_ttl=1) as drive:
        api = api_on(drive)
        assert api.about_me() == ALICE
        drive.revoke_refresh_tokens(ALICE)
        with pytest.raises(DriveAuthError, match="invalid_grant: Token has been expired or revoked") as info:
            api.about_me()
        assert info.value.status == 401 and info.value.retries == 0
        assert drive.stats()["oauth"]["refused"] == {"invalid_grant": 1}


def participant_settings(drive: FakeDriveServer, email: str, tmp_path) -> Settings:
    env = {"SYFTBOX_EMAIL": email, "SYFT_FLWR_DRIVE_URL": drive.url}
    return Settings.from_env(env, state_dir=tmp_path / email)


def test_participants_built_by_connect_for_a_fake_url_work_end_to_end(tmp_path):
    with FakeDriveServer(access_token_ttl=2) as drive:
        api, source = connect.drive_api(ALICE, DriveOptions(url=drive.url), retry=POLICY)
        assert source.startswith("fake Drive at") and api.credentials.refresh_token == ALICE
        checks = DriveTransport.diagnose(participant_settings(drive, ALICE, tmp_path))
        assert [(c.name, c.ok) for c in checks] == [("credentials", True), ("drive", True), ("account", True)]

        alice = DriveTransport.from_settings(participant_settings(drive, ALICE, tmp_path))
        bob = DriveTransport.from_settings(participant_settings(drive, BOB, tmp_path))
        out = Mailbox(alice, APP, [BOB], Ledger(None))
        inbox = Mailbox(bob, APP, [ALICE], Ledger(None))
        out.prepare()
        inbox.prepare()
        for run in (1, 2):
            time.sleep(2.1 if run == 2 else 0)  # the second message after both tokens expired
            out.send(kind="request", recipient=BOB, run_id=run, payload=[f"hello {run}".encode()])
            [delivery] = [d for d in inbox.poll().deliveries if d.envelope.run_id == run]
            assert delivery.payload == f"hello {run}".encode()
            delivery.close()
        issued = drive.stats()["oauth"]["issued"]
        assert issued[ALICE] >= 2 and issued[BOB] >= 2
