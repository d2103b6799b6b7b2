"""Credential loading: every bad input gives a CredentialsError that names the fix."""

from __future__ import annotations

import datetime as dt
import json
import os

import google.auth
import google.auth.exceptions
import pytest
from google.oauth2 import credentials as oauth2_credentials
from google.oauth2 import service_account

from syft_flwr_gdrive.transport.drive import auth
from syft_flwr_gdrive.transport.drive.auth import DRIVE_SCOPE
from syft_flwr_gdrive.transport.drive.auth import AccountMismatchError
from syft_flwr_gdrive.transport.drive.auth import CredentialsError
from syft_flwr_gdrive.transport.drive.auth import load_credentials
from syft_flwr_gdrive.transport.drive.auth import verify_account


def write(tmp_path, name, content):
    p = tmp_path / name
    p.write_text(content if isinstance(content, str) else json.dumps(content))
    return p


AUTHORIZED_USER = {
    "type": "authorized_user",
    "client_id": "cid.apps.googleusercontent.com",
    "client_secret": "sec",
    "refresh_token": "1//refresh",
    "token": "ya29.access",
    "scopes": [DRIVE_SCOPE],
}


def test_missing_file(tmp_path):
    with pytest.raises(CredentialsError, match="does not exist.*Fix"):
        load_credentials(token_file=tmp_path / "nope.json")


def test_invalid_json(tmp_path):
    with pytest.raises(CredentialsError, match="not valid JSON.*Fix"):
        load_credentials(token_file=write(tmp_path, "t.json", "{not json"))


def test_unreadable(tmp_path):
    with pytest.raises(CredentialsError, match="cannot be read"):
        load_credentials(token_file=tmp_path)  # a directory


def test_client_secret_instead_of_token(tmp_path):
    p = write(tmp_path, "client_secret.json", {"installed": {"client_id": "x", "client_secret": "y"}})
    with pytest.raises(CredentialsError, match="client secret.*login --client-secret"):
        load_credentials(token_file=p)


def test_json_that_is_no_credentials(tmp_path):
    with pytest.raises(CredentialsError, match="not an OAuth token"):
        load_credentials(token_file=write(tmp_path, "t.json", {"hello": 1}))
    with pytest.raises(CredentialsError, match="type 'external_account'"):
        load_credentials(token_file=write(tmp_path, "e.json", {"type": "external_account"}))


def test_valid_token_is_loaded_without_refresh(tmp_path, mocker):
    refresh = mocker.patch.object(oauth2_credentials.Credentials, "refresh")
    future = (dt.datetime.utcnow() + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    creds = load_credentials(token_file=write(tmp_path, "t.json", {**AUTHORIZED_USER, "expiry": future}))
    assert creds.token == "ya29.access" and creds.refresh_token == "1//refresh"
    refresh.assert_not_called()


def test_expired_token_with_refresh_token_is_refreshed_and_saved(tmp_path, mocker):
    def fake_refresh(self, request):
        self.token = "ya29.new"
        self.expiry = dt.datetime.utcnow() + dt.timedelta(hours=1)

    mocker.patch.object(oauth2_credentials.Credentials, "refresh", fake_refresh)
    past = "2001-01-01T00:00:00Z"
    p = write(tmp_path, "t.json", {**AUTHORIZED_USER, "expiry": past})
    creds = load_credentials(token_file=p)
    assert creds.token == "ya29.new"
    saved = json.loads(p.read_text())
    assert saved["token"] == "ya29.new" and saved["refresh_token"] == "1//refresh"
    assert oct(os.stat(p).st_mode & 0o777) == "0o600"


def test_refresh_failure_names_the_fix(tmp_path, mocker):
    mocker.patch.object(
        oauth2_credentials.Credentials, "refresh", side_effect=google.auth.exceptions.RefreshError("invalid_grant")
    )
    p = write(tmp_path, "t.json", {**AUTHORIZED_USER, "expiry": "2001-01-01T00:00:00Z"})
    with pytest.raises(CredentialsError, match="revoked.*log in again"):
        load_credentials(token_file=p)


def test_a_token_file_google_refuses_to_refresh_names_its_login_and_the_testing_expiry(tmp_path, mocker):
    answer = {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
    refusal = google.auth.exceptions.RefreshError(f"{answer['error']}: {answer['error_description']}", answer)
    mocker.patch.object(oauth2_credentials.Credentials, "refresh", side_effect=refusal)
    p = write(tmp_path, "t.json", {**AUTHORIZED_USER, "expiry": "2001-01-01T00:00:00Z"})
    with pytest.raises(CredentialsError) as info:
        load_credentials(token_file=p)
    text = str(info.value)
    assert text.startswith("Google refused to refresh this participant's sign-in (invalid_grant: Token has been")
    assert f"--token-file {p}`" in text and '"Testing"' in text and "Publish app" in text
    assert "('" not in text and "{'" not in text


def test_expired_without_refresh_token(tmp_path):
    p = write(tmp_path, "t.json", {"token": "ya29.old", "expiry": "2001-01-01T00:00:00Z"})
    with pytest.raises(CredentialsError, match="expired and has no refresh token"):
        load_credentials(token_file=p)


def test_bare_access_token_file(tmp_path):
    creds = load_credentials(token_file=write(tmp_path, "t.json", {"token": "fake:alice@example.com"}))
    assert creds.token == "fake:alice@example.com" and creds.valid


def test_token_without_drive_scope(tmp_path):
    p = write(tmp_path, "t.json", {"token": "x", "scopes": ["https://www.googleapis.com/auth/drive.file"]})
    with pytest.raises(CredentialsError, match="drive.file cannot see"):
        load_credentials(token_file=p)


def test_service_account(tmp_path, mocker):
    info = {
        "type": "service_account",
        "client_email": "sa@p.iam.gserviceaccount.com",
        "private_key": "k",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    made = mocker.patch.object(service_account.Credentials, "from_service_account_info", return_value=mocker.Mock())
    load_credentials(service_account_file=write(tmp_path, "sa.json", info))
    assert made.call_args.kwargs["scopes"] == [DRIVE_SCOPE]


def test_service_account_damaged(tmp_path):
    info = {
        "type": "service_account",
        "client_email": "sa@p",
        "private_key": "not a key",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    with pytest.raises(CredentialsError, match="damaged or incomplete"):
        load_credentials(service_account_file=write(tmp_path, "sa.json", info))


def test_service_account_file_with_a_user_token(tmp_path):
    with pytest.raises(CredentialsError, match="not a service-account key.*token file"):
        load_credentials(service_account_file=write(tmp_path, "sa.json", AUTHORIZED_USER))


def test_adc(mocker):
    sentinel = mocker.Mock()
    default = mocker.patch.object(google.auth, "default", return_value=(sentinel, "proj"))
    mocker.patch.object(auth, "in_colab", return_value=False)
    assert load_credentials(use_adc=True) is sentinel
    assert default.call_args.kwargs["scopes"] == [DRIVE_SCOPE]


def test_adc_missing(mocker):
    mocker.patch.object(google.auth, "default", side_effect=google.auth.exceptions.DefaultCredentialsError("none"))
    mocker.patch.object(auth, "in_colab", return_value=False)
    with pytest.raises(CredentialsError, match="application-default login") as raised:
        load_credentials(use_adc=True)
    # This tool's own sign-in comes first (doctor prints this text as the fix).
    text = str(raised.value)
    assert "syft-flwr-gdrive login --client-secret" in text and text.index("syft-flwr-gdrive login") < text.index(
        "gcloud"
    )


def test_nothing_configured(mocker):
    mocker.patch.object(auth, "in_colab", return_value=False)
    with pytest.raises(CredentialsError, match="No Google credentials are configured"):
        load_credentials()


def test_colab_outside_colab():
    with pytest.raises(CredentialsError, match="not Google Colab"):
        load_credentials(use_colab=True)


def test_verify_account(mocker):
    api = mocker.Mock()
    api.about_me.return_value = "Alice@Example.com"
    assert verify_account(api, "alice@example.COM ") == "Alice@Example.com"
    with pytest.raises(AccountMismatchError) as info:
        verify_account(api, "bob@example.com")
    assert "Alice@Example.com" in str(info.value) and "bob@example.com" in str(info.value)
    assert isinstance(info.value, CredentialsError)


def test_colab_authenticates_then_uses_adc(mocker):
    import sys
    import types

    colab = types.ModuleType("google.colab")
    colab_auth = types.ModuleType("google.colab.auth")
    colab_auth.authenticate_user = mocker.Mock()
    colab.auth = colab_auth
    mocker.patch.dict(sys.modules, {"google.colab": colab, "google.colab.auth": colab_auth})
    sentinel = mocker.Mock()
    mocker.patch.object(google.auth, "default", return_value=(sentinel, None))
    assert auth.in_colab()
    assert load_credentials() is sentinel  # auto-detected
    colab_auth.authenticate_user.assert_called_once()
