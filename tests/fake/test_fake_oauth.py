"""The fake's OAuth 2.0 token endpoint (``POST /token``), its expiring access tokens and revocation.

Raw HTTP here, to pin the wire answers google-auth parses (``google/oauth2/_client.py``); the real
google-auth and googleapiclient refreshing against it are in ``tests/drive/test_drive_oauth.py``.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse

import pytest

from syft_flwr_gdrive.fake import FakeDriveServer
from syft_flwr_gdrive.fake import FaultConfig
from syft_flwr_gdrive.fake import fake_token_for
from syft_flwr_gdrive.fake.__main__ import parse_args

ALICE = "alice@example.com"
BOB = "bob@example.com"
FORM = "application/x-www-form-urlencoded"
INVALID_CREDENTIALS = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
    "other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project."
)


def _raw(server, method, path, headers=None, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def token_request(server, **params) -> tuple[int, dict]:
    """POST /token with ``params`` form-encoded, as google-auth sends a refresh grant."""
    status, _, body = _raw(server, "POST", "/token", {"Content-Type": FORM}, urllib.parse.urlencode(params))
    return status, json.loads(body)


def refresh(server, email: str = ALICE, client_id: str = "syft-flwr-gdrive") -> tuple[int, dict]:
    return token_request(
        server, grant_type="refresh_token", refresh_token=email, client_id=client_id, client_secret="s"
    )


def about(server, token: str) -> tuple[int, dict]:
    status, headers, body = _raw(server, "GET", "/drive/v3/about?fields=user", {"Authorization": f"Bearer {token}"})
    return status, {**json.loads(body), "_headers": headers}


def test_a_refresh_grant_is_answered_like_google(server):
    status, headers, body = _raw(
        server,
        "POST",
        "/token",
        {"Content-Type": FORM},
        "grant_type=refresh_token&refresh_token=alice%40example.com&client_id=syft-flwr-gdrive&client_secret=s",
    )
    answer = json.loads(body)
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert set(answer) == {"access_token", "expires_in", "scope", "token_type"}
    assert answer["token_type"] == "Bearer" and answer["expires_in"] == 3600
    assert answer["scope"] == "https://www.googleapis.com/auth/drive"
    assert not answer["access_token"].startswith("fake:")  # opaque: it names no one
    status, me = about(server, answer["access_token"])
    assert status == 200 and me["user"]["emailAddress"] == ALICE
    again = refresh(server)[1]["access_token"]
    assert again != answer["access_token"] and about(server, again)[0] == 200


def test_the_refresh_token_is_the_email_and_the_client_id_names_the_app(server, drive):
    """As with ``fake:<email>#<app>`` tokens, ``appProperties`` stay with the app (client id) that wrote them."""
    writer = drive(ALICE, fake_token_for(ALICE, "app1"))
    fid = writer.files().create(body={"name": "f", "appProperties": {"k": "v"}}, fields="id").execute()["id"]
    for client_id, seen in (("app1", {"k": "v"}), ("app2", None)):
        token = refresh(server, "  Alice@Example.com ", client_id)[1]["access_token"]
        got = drive(ALICE, token).files().get(fileId=fid, fields="id,appProperties").execute()
        assert got.get("appProperties") == seen, client_id


def test_a_json_body_and_a_requested_scope_are_accepted(server):
    body = {"grant_type": "refresh_token", "refresh_token": BOB, "client_id": "c", "client_secret": "s"}
    body["scope"] = "https://www.googleapis.com/auth/drive.file"
    status, _, raw = _raw(server, "POST", "/token", {"Content-Type": "application/json"}, json.dumps(body))
    answer = json.loads(raw)
    assert status == 200 and answer["scope"] == "https://www.googleapis.com/auth/drive.file"
    assert about(server, answer["access_token"])[1]["user"]["emailAddress"] == BOB


GOOD_GRANT = {"grant_type": "refresh_token", "refresh_token": ALICE, "client_id": "c", "client_secret": "s"}


@pytest.mark.parametrize(
    "change, status, error, description",
    [
        ({"grant_type": None}, 400, "unsupported_grant_type", "Invalid grant_type: "),
        ({"grant_type": "authorization_code"}, 400, "unsupported_grant_type", "Invalid grant_type: authorization_code"),
        ({"client_id": None}, 400, "invalid_request", "Could not determine client ID from request."),
        ({"client_id": "no such/app"}, 401, "invalid_client", "The OAuth client was not found."),
        ({"client_secret": None}, 400, "invalid_request", "client_secret is missing."),
        ({"refresh_token": None}, 400, "invalid_request", "Missing required parameter: refresh_token"),
        ({"refresh_token": "1//not-an-email"}, 400, "invalid_grant", "Bad Request"),
    ],
)
def test_malformed_token_requests_get_googles_errors(server, change, status, error, description):
    params = {k: v for k, v in {**GOOD_GRANT, **change}.items() if v is not None}
    assert token_request(server, **params) == (status, {"error": error, "error_description": description})
    assert server.stats()["oauth"]["refused"] == {error: 1}


def test_the_token_endpoint_takes_only_posts(server):
    status, _, body = _raw(server, "GET", "/token")
    assert status == 404 and json.loads(body)["error"]["code"] == 404


def test_an_expired_access_token_gets_drives_401_and_fake_tokens_never_expire(tmp_path):
    with FakeDriveServer(access_token_ttl=0.3) as srv:
        token = refresh(srv)[1]["access_token"]
        assert about(srv, token)[0] == 200
        time.sleep(0.4)
        status, answer = about(srv, token)
        headers = answer.pop("_headers")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
        assert answer == {
            "error": {
                "code": 401,
                "message": INVALID_CREDENTIALS,
                "errors": [
                    {
                        "message": "Invalid Credentials",
                        "domain": "global",
                        "reason": "authError",
                        "location": "Authorization",
                        "locationType": "header",
                    }
                ],
                "status": "UNAUTHENTICATED",
            }
        }
        assert about(srv, fake_token_for(ALICE))[0] == 200
        assert about(srv, refresh(srv)[1]["access_token"])[0] == 200  # a new token: the client's refresh


def test_revoking_refuses_the_refresh_token_and_ends_its_access_tokens(server):
    alice_token, bob_token = refresh(server, ALICE)[1]["access_token"], refresh(server, BOB)[1]["access_token"]
    assert server.revoke_refresh_tokens("Alice@Example.com") == 1
    assert refresh(server, ALICE) == (
        400,
        {"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
    )
    status, answer = about(server, alice_token)
    assert status == 401 and answer["error"]["status"] == "UNAUTHENTICATED"
    assert about(server, fake_token_for(ALICE))[0] == 200  # a fake: token stands for no grant
    assert about(server, bob_token)[0] == 200 and refresh(server, BOB)[0] == 200  # others are untouched
    assert server.stats()["oauth"]["revoked"] == [ALICE]


def test_token_requests_are_not_drive_calls_and_are_never_faulted(server):
    server.faults = FaultConfig(seed=1, error_rate=1.0, drop_rate=1.0, latency=10.0)
    started = time.monotonic()
    for _ in range(3):
        assert refresh(server)[0] == 200
    assert time.monotonic() - started < 10.0  # no injected latency (30 s with it; slack for a loaded machine)
    server.faults = FaultConfig()
    stats = server.stats()
    assert stats["requests"] == {} and stats["by_user"] == {} and stats["statuses"] == {}
    assert stats["oauth"]["issued"] == {ALICE: 3} and stats["faults"] == {}


def test_strict_tokens_issue_only_to_registered_accounts():
    with FakeDriveServer(strict_tokens=True) as srv:
        srv.add_user(ALICE, token="alice-secret")
        status, answer = refresh(srv, ALICE)
        assert status == 200 and about(srv, answer["access_token"])[0] == 200
        assert refresh(srv, BOB) == (400, {"error": "invalid_grant", "error_description": "Bad Request"})


def test_the_lifetime_is_a_server_setting_and_a_flag():
    with pytest.raises(ValueError, match="access_token_ttl"):
        FakeDriveServer(access_token_ttl=0)
    assert FakeDriveServer().access_token_ttl == 3600.0
    assert parse_args([]).access_token_ttl == 3600.0
    assert parse_args(["--access-token-ttl", "5"]).access_token_ttl == 5.0
    with FakeDriveServer(access_token_ttl=5) as srv:
        assert refresh(srv)[1]["expires_in"] == 5


def test_a_token_can_end_before_its_announced_expiry():
    """``access_token_accepted_for``: the answer still announces ``access_token_ttl``, but the token is refused
    (Drive's 401) after ``accepted_for`` seconds, so a client meets the 401 path whatever its refresh margin."""
    with FakeDriveServer(access_token_ttl=240, access_token_accepted_for=0.3) as srv:
        status, answer = refresh(srv)
        assert status == 200 and answer["expires_in"] == 240
        assert about(srv, answer["access_token"])[0] == 200
        time.sleep(0.4)
        status, refused = about(srv, answer["access_token"])
        assert status == 401 and refused["error"]["message"] == INVALID_CREDENTIALS
    with pytest.raises(ValueError, match="access_token_accepted_for"):
        FakeDriveServer(access_token_ttl=5, access_token_accepted_for=6)
    with pytest.raises(ValueError, match="access_token_accepted_for"):
        FakeDriveServer(access_token_accepted_for=0)
    assert parse_args([]).access_token_accepted_for is None
    assert parse_args(["--access-token-accepted-for", "2"]).access_token_accepted_for == 2.0
