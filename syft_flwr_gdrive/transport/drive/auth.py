"""Google credentials for Drive: token files, service accounts, ADC and Colab.

Scope: the full ``https://www.googleapis.com/auth/drive`` scope, not
``drive.file``. ``drive.file`` only reaches files this OAuth client created or
the user opened with a picker; a participant must list and read the message
files its *peers* create in folders they shared with it, which ``drive.file``
hides. So the full scope is required.

Every failure raises :class:`CredentialsError` naming the problem and the fix,
because a bad token is the most common first-run failure (a sign-in Google stops
refreshing mid-run is described by :mod:`.signin`).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import google.auth
import google.auth.exceptions
import google_auth_httplib2
import httplib2
from google.auth.credentials import Credentials
from google.oauth2 import credentials as oauth2_credentials
from google.oauth2 import service_account

from syft_flwr_gdrive.transport.drive.signin import DRIVE_SCOPE
from syft_flwr_gdrive.transport.drive.signin import SignIn
from syft_flwr_gdrive.transport.drive.signin import refresh_refusal

if TYPE_CHECKING:  # pragma: no cover
    from syft_flwr_gdrive.transport.drive.api import DriveApi

__all__ = [
    "DRIVE_SCOPE",
    "SCOPES",
    "CredentialsError",
    "AccountMismatchError",
    "load_credentials",
    "fake_drive_credentials",
    "in_colab",
    "verify_account",
]

log = logging.getLogger(__name__)

SCOPES: tuple[str, ...] = (DRIVE_SCOPE,)

_LOGIN_FIX = (
    "Fix: create a token with `syft-flwr-gdrive login`, or point at a service-account "
    "key, or use Application Default Credentials "
    f"(`gcloud auth application-default login --scopes={DRIVE_SCOPE},"
    "https://www.googleapis.com/auth/cloud-platform`)."
)


class CredentialsError(Exception):
    """Credentials are missing, unreadable, of the wrong kind, or unusable."""


class AccountMismatchError(CredentialsError):
    """The credentials act as a different Google account than SYFTBOX_EMAIL."""

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(
            f"The Google credentials belong to {actual}, but SYFTBOX_EMAIL is {expected}. "
            f"Fix: set SYFTBOX_EMAIL={actual}, or log in as {expected} "
            "(peers share folders with SYFTBOX_EMAIL, so the two must match)."
        )
        self.expected = expected
        self.actual = actual


def in_colab() -> bool:
    """True when running inside Google Colab."""
    if "google.colab" in sys.modules:
        return True
    try:
        return importlib.util.find_spec("google.colab") is not None
    except (ImportError, ValueError):
        return False


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.exists():
        raise CredentialsError(f"{what} {path} does not exist. {_LOGIN_FIX}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CredentialsError(
            f"{what} {path} cannot be read ({exc}). Fix: check the path and its permissions."
        ) from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise CredentialsError(
            f"{what} {path} is not valid JSON ({exc}). Fix: the file is damaged or not a "
            f"credentials file; create it again. {_LOGIN_FIX}"
        ) from exc
    if not isinstance(data, dict):
        raise CredentialsError(f"{what} {path} is not a JSON object. {_LOGIN_FIX}")
    return data


def _refresh_request() -> google_auth_httplib2.Request:
    return google_auth_httplib2.Request(httplib2.Http(timeout=60))


def _check_scopes(creds: Credentials, origin: str) -> None:
    granted = getattr(creds, "scopes", None) or getattr(creds, "granted_scopes", None)
    if granted and DRIVE_SCOPE not in set(granted):
        raise CredentialsError(
            f"{origin} was granted scopes {sorted(granted)} but needs {DRIVE_SCOPE} "
            "(drive.file cannot see files peers create). Fix: log in again with the Drive scope."
        )


def _parse_expiry(value: Any) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.strptime(str(value).rstrip("Z").split(".")[0], "%Y-%m-%dT%H:%M:%S")


def _save_token(path: Path, creds: oauth2_credentials.Credentials) -> None:
    """Write a refreshed token back atomically so the next start skips a refresh."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".token-", dir=str(path.parent))
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(creds.to_json())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except OSError as exc:  # read-only mounts are fine: we just refresh again next time
        log.warning("Could not save the refreshed token to %s: %s", path, exc)


def _from_token_file(path: Path, scopes: Sequence[str], save_refreshed: bool) -> Credentials:
    data = _read_json(path, "Token file")
    if "installed" in data or "web" in data:
        raise CredentialsError(
            f"{path} is an OAuth client secret (client_secret.json), not a token. Fix: run "
            f"`syft-flwr-gdrive login --client-secret {path}` to create a token file from "
            "it, and pass that token file instead."
        )
    kind = data.get("type")
    if kind == "service_account":
        log.info("%s is a service-account key; loading it as one", path)
        return _from_service_account(path, scopes, None, data)
    if kind not in (None, "authorized_user"):
        raise CredentialsError(
            f"{path} holds credentials of type {kind!r}, not an OAuth user token. Fix: use "
            f"Application Default Credentials for it (use_adc). {_LOGIN_FIX}"
        )
    if "refresh_token" in data:
        try:
            creds = oauth2_credentials.Credentials.from_authorized_user_info(data, scopes=None)
        except ValueError as exc:
            raise CredentialsError(f"Token file {path} is incomplete ({exc}). {_LOGIN_FIX}") from exc
    elif data.get("token"):
        creds = oauth2_credentials.Credentials(
            token=data["token"],
            expiry=_parse_expiry(data.get("expiry")),
            scopes=data.get("scopes"),
        )
    else:
        raise CredentialsError(f"{path} is JSON but not an OAuth token (no 'token' or 'refresh_token'). {_LOGIN_FIX}")
    _check_scopes(creds, f"The token in {path}")
    if creds.expired or not creds.token:
        if not creds.refresh_token:
            raise CredentialsError(
                f"The token in {path} has expired and has no refresh token. Fix: log in "
                "again (`syft-flwr-gdrive login`) to get a token with a refresh token."
            )
        try:
            creds.refresh(_refresh_request())
        except google.auth.exceptions.RefreshError as exc:
            if exc.retryable:
                raise CredentialsError(
                    f"Google's sign-in service failed to refresh the token in {path} ({refresh_refusal(exc)}). "
                    "Fix: try again later."
                ) from exc
            raise CredentialsError(str(SignIn("token_file", str(path)).refused(exc))) from exc
        except google.auth.exceptions.TransportError as exc:
            raise CredentialsError(
                f"Could not reach Google to refresh the token in {path} ({exc}). Fix: check the network and try again."
            ) from exc
        if save_refreshed:
            _save_token(path, creds)
    return creds


def _from_service_account(
    path: Path, scopes: Sequence[str], subject: str | None, data: dict[str, Any] | None = None
) -> Credentials:
    data = data if data is not None else _read_json(path, "Service-account key")
    if data.get("type") != "service_account":
        hint = (
            " It looks like an OAuth client secret."
            if ("installed" in data or "web" in data)
            else " It looks like an OAuth user token: pass it as the token file."
            if "refresh_token" in data or "token" in data
            else ""
        )
        raise CredentialsError(
            f'{path} is not a service-account key (no "type": "service_account").{hint} '
            "Fix: download a JSON key from IAM > Service accounts > Keys."
        )
    try:
        creds = service_account.Credentials.from_service_account_info(data, scopes=list(scopes))
    except (ValueError, KeyError) as exc:
        raise CredentialsError(
            f"Service-account key {path} is damaged or incomplete ({exc}). Fix: download a "
            "new JSON key from IAM > Service accounts > Keys."
        ) from exc
    if subject:
        creds = creds.with_subject(subject)  # domain-wide delegation: act as a Workspace user
    return creds


def _from_adc(scopes: Sequence[str]) -> Credentials:
    try:
        creds, _project = google.auth.default(scopes=list(scopes))
    except google.auth.exceptions.DefaultCredentialsError as exc:
        raise CredentialsError(
            "No Google credentials found: no token file (SYFT_FLWR_TOKEN_FILE), no service-account key "
            f"(SYFT_FLWR_SERVICE_ACCOUNT_FILE), and no Application Default Credentials ({exc}). Fix: sign in with "
            "`syft-flwr-gdrive login --client-secret client_secret.json --token-file ~/token.json` and set "
            "SYFT_FLWR_TOKEN_FILE=~/token.json; or, with the gcloud CLI, run `gcloud auth "
            f"application-default login --scopes={DRIVE_SCOPE},"
            "https://www.googleapis.com/auth/cloud-platform`."
        ) from exc
    return creds


def _from_colab(scopes: Sequence[str]) -> Credentials:
    try:
        from google.colab import auth as colab_auth
    except ImportError as exc:
        raise CredentialsError(
            "Colab authentication was requested but this is not Google Colab. Fix: use a "
            "token file, a service-account key or ADC outside Colab."
        ) from exc
    colab_auth.authenticate_user()
    return _from_adc(scopes)


def load_credentials(
    *,
    token_file: str | os.PathLike[str] | None = None,
    service_account_file: str | os.PathLike[str] | None = None,
    use_adc: bool = False,
    use_colab: bool | None = None,
    subject: str | None = None,
    scopes: Sequence[str] = SCOPES,
    save_refreshed: bool = True,
) -> Credentials:
    """Google credentials from the first configured source.

    Order: ``token_file`` (OAuth authorized-user JSON, refreshed if expired),
    ``service_account_file`` (key JSON; ``subject`` impersonates a Workspace user
    via domain-wide delegation, since service accounts have no Drive storage of
    their own), Colab (``use_colab``; ``None`` means "when running in Colab"),
    then Application Default Credentials when ``use_adc``.
    """
    if token_file:
        return _from_token_file(Path(token_file).expanduser(), scopes, save_refreshed)
    if service_account_file:
        return _from_service_account(Path(service_account_file).expanduser(), scopes, subject)
    if use_colab or (use_colab is None and in_colab()):
        return _from_colab(scopes)
    if use_adc:
        return _from_adc(scopes)
    raise CredentialsError(f"No Google credentials are configured. {_LOGIN_FIX}")


#: the OAuth client a participant asks a fake Drive's token endpoint for tokens as (the fake calls it the app)
FAKE_DRIVE_CLIENT_ID = "syft-flwr-gdrive"
#: the fake checks only that a secret is sent, as Google requires one of installed apps
FAKE_DRIVE_CLIENT_SECRET = "fake-drive-has-no-secrets"


def fake_drive_credentials(url: str, email: str) -> oauth2_credentials.Credentials:
    """Credentials for ``email`` on the fake Drive at ``url``, built like a real login's.

    A refresh token (the fake trusts the email it names) and the fake's token endpoint
    (``<url>token``), no access token yet: google-auth refreshes on first use, before a token
    expires and after a 401, through the same code as against oauth2.googleapis.com.
    """
    root = url if url.endswith("/") else url + "/"
    return oauth2_credentials.Credentials(
        token=None,
        refresh_token=email,
        token_uri=root + "token",
        client_id=FAKE_DRIVE_CLIENT_ID,
        client_secret=FAKE_DRIVE_CLIENT_SECRET,
    )


def verify_account(api: DriveApi, expected_email: str) -> str:
    """Check that the credentials act as ``expected_email`` (same account); return the email Drive reports."""
    from syft_flwr_gdrive.base.accounts import same_account

    actual = api.about_me()
    if not same_account(actual, expected_email):  # gmail: Drive reports the form the account registered
        raise AccountMismatchError(expected_email, actual)
    return actual
