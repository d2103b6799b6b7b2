"""Participants reach a fake Drive the way they reach Google: a refresh token and a token endpoint.

The real google-auth fetches the first access token, refreshes it before it expires and after a
401 (google-auth-httplib2's ``AuthorizedHttp``, one per request: ``service.py``), and the real
googleapiclient re-sends what the 401 refused. The fake counts the refreshes (``stats()["oauth"]``).
"""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from google.auth import _helpers as google_auth_helpers
from google.auth.exceptions import RefreshError
from google.oauth2.credentials import Credentials

from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.fake import FaultConfig
from syft_flwr_gdrive.mailbox.ledger import Ledger
from syft_flwr_gdrive.mailbox.mailbox import Mailbox
from syft_flwr_gdrive.transport.contract import AccessLost
from syft_flwr_gdrive.transport.drive import connect
from syft_flwr_gdrive.transport.drive.api import DriveApi
from syft_flwr_gdrive.transport.drive.auth import fake_drive_credentials
from syft_flwr_gdrive.transport.drive.errors import DriveAuthError
from syft_flwr_gdrive.transport.drive.errors import DriveSignInRefused
from syft_flwr_gdrive.transport.drive.errors import DriveUnavailable
from syft_flwr_gdrive.transport.drive.options import DriveOptions
from syft_flwr_gdrive.transport.drive.retry import RetryPolicy
from syft_flwr_gdrive.transport.drive.retry import is_transient
from syft_flwr_gdrive.transport.drive.retry import to_drive_error
from syft_flwr_gdrive.transport.drive.signin import SignIn
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


def test_a_revoked_refresh_token_stops_at_once_with_one_message_that_names_the_fix():
    """Google refusing a refresh for good (``invalid_grant``) is not retried, and says what, how and why in words."""
    with FakeDriveServer(access_token_ttl=1) as drive:
        api = api_on(drive)
        assert api.about_me() == ALICE
        drive.revoke_refresh_tokens(ALICE)
        with pytest.raises(DriveSignInRefused) as info:
            api.about_me()
        err = info.value
        assert isinstance(err, DriveAuthError) and isinstance(err, AccessLost)  # exit 3; the run stops
        assert err.retries == 0 and api.calls.retries == 0
        assert drive.stats()["oauth"]["refused"] == {"invalid_grant": 1}
        assert err.reason == "invalid_grant" and err.method == "about.get"
        assert str(err) == err.message == f"{err.headline} Fix: {err.fix} {err.why}"
        assert err.headline == (
            f"The fake Drive at {drive.url} refused to refresh this participant's sign-in (invalid_grant: Token "
            "has been expired or revoked.): it revoked the refresh token, as Google does when a sign-in expires "
            "or is revoked, so no Drive call can succeed."
        )
        assert err.fix.startswith("nothing to log in to on a fake Drive: restart the fake Drive")
        assert '"Testing" gets refresh tokens that expire 7 days after sign-in' in err.why
        assert "('" not in str(err) and "{'" not in str(err) and "status=" not in str(err)
        # Every later call, from any thread, fails the same way without asking Google again.
        threads = [threading.Thread(target=lambda: refusals.append(_refusal_of(api.about_me))) for _ in range(4)]
        refusals: list[str] = []
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert refusals == [str(err)] * 4 and drive.stats()["oauth"]["refused"] == {"invalid_grant": 1}


def _refusal_of(call) -> str:
    try:
        call()
    except DriveSignInRefused as exc:
        return str(exc)
    return "no refusal"


def refused(error: str = "invalid_grant", description: str = "Token has been expired or revoked.") -> RefreshError:
    """A refusal as google-auth raises it (``google/oauth2/_client.py``: the text, then the answer's JSON)."""
    answer = {"error": error, "error_description": description}
    return RefreshError(f"{error}: {description}", answer, retryable=False)


@pytest.mark.parametrize(
    "sign_in, fix, testing",
    [
        (
            SignIn("token_file", "/home/ds/ds-token.json"),
            "log in again with `syft-flwr-gdrive login --client-secret <your OAuth client JSON> "
            "--token-file /home/ds/ds-token.json`, then start this participant again.",
            True,
        ),
        (SignIn("adc"), "log in again with `gcloud auth application-default login --scopes=", False),
        (SignIn("colab"), "run the notebook's log-in again (`google.colab.auth.authenticate_user()`)", False),
        (SignIn("service_account", "/keys/sa.json"), "create a new key (IAM > Service accounts > Keys)", False),
    ],
    ids=["token-file", "adc", "colab", "service-account"],
)
def test_each_source_of_credentials_names_its_own_way_to_log_in_again(sign_in, fix, testing):
    err = to_drive_error(refused(), method="files.list", sign_in=sign_in)
    assert isinstance(err, DriveSignInRefused) and fix in err.fix
    assert "(invalid_grant: Token has been expired or revoked.)" in err.headline
    assert ('"Testing"' in str(err)) is testing  # the weekly expiry is an OAuth app's, not gcloud's or a key's
    if testing:
        assert "publish the app" in err.why and "second week" in err.why


def test_credentials_built_by_hand_still_get_a_fix():
    fake = fake_drive_credentials("http://127.0.0.1:9/", ALICE)
    assert SignIn.of(fake) == SignIn("fake", "http://127.0.0.1:9/")
    google = Credentials(token=None, refresh_token="r", token_uri="https://oauth2.googleapis.com/token")
    assert SignIn.of(google) == SignIn("token_file")
    err = to_drive_error(refused(), method="files.get")
    assert isinstance(err, DriveSignInRefused) and "syft-flwr-gdrive login" in err.fix


def test_googles_sign_in_service_failing_is_retried_not_fatal():
    failing = RefreshError("internal_failure: try again", {"error": "internal_failure"}, retryable=True)
    assert is_transient(failing)
    err = to_drive_error(failing, method="files.list", retries=4)
    assert isinstance(err, DriveUnavailable) and not isinstance(err, AccessLost)
    assert "(internal_failure)" in err.message and "('" not in err.message


def test_a_token_the_fake_ends_early_is_refused_with_a_401_then_refreshed_and_resent():
    """Tokens that stop working before their announced expiry (``access_token_accepted_for``): google-auth keeps
    using them (4 min announced, past its 3 min 45 s margin), Drive answers 401, and the call is sent again."""
    with FakeDriveServer(access_token_ttl=240, access_token_accepted_for=0.5) as drive:
        api = api_on(drive)
        folder = api.create_folder("work")
        for i in range(3):
            time.sleep(0.6)
            some_work(api, folder["id"], i)
        assert drive.stats()["statuses"]["401"] >= 3 and refreshes(drive) >= 4
        assert api.calls.retries == 0


def test_a_revoked_sign_in_at_start_is_the_same_error(tmp_path):
    with FakeDriveServer() as drive:
        drive.revoke_refresh_tokens(ALICE)
        with pytest.raises(DriveSignInRefused, match="refused to refresh this participant's sign-in"):
            connect.verified_api(participant_settings(drive, ALICE, tmp_path), DriveOptions(url=drive.url))


def test_doctor_names_the_fix_for_a_revoked_sign_in(tmp_path):
    with FakeDriveServer() as drive:
        drive.revoke_refresh_tokens(ALICE)
        checks = DriveTransport.diagnose(participant_settings(drive, ALICE, tmp_path))
    assert [(c.name, c.ok) for c in checks] == [("credentials", True), ("sign-in", False)]
    detail, fix = checks[1].detail, checks[1].fix
    assert "refused to refresh this participant's sign-in (invalid_grant: Token has been expired" in detail
    assert '"Testing"' in detail and fix.startswith("nothing to log in to on a fake Drive")


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
