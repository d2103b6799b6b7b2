"""Reaching Drive: which credentials and URL a participant uses, the per-process quota pacer, and the
``doctor`` checks of that connection.

Why apart: choosing credentials is the one place a fake Drive URL, a token file, a service
account or Application Default Credentials are told apart; the transport only gets the API.
"""

from __future__ import annotations

import threading

from syft_flwr_gdrive.base.accounts import canonical_email
from syft_flwr_gdrive.base.accounts import same_account
from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.transport.contract import Check
from syft_flwr_gdrive.transport.drive.api import DriveApi
from syft_flwr_gdrive.transport.drive.errors import DriveError
from syft_flwr_gdrive.transport.drive.errors import DriveSignInRefused
from syft_flwr_gdrive.transport.drive.options import DriveOptions
from syft_flwr_gdrive.transport.drive.ratelimit import QuotaLimiter
from syft_flwr_gdrive.transport.drive.ratelimit import WritePacer
from syft_flwr_gdrive.transport.drive.retry import RetryPolicy
from syft_flwr_gdrive.transport.drive.signin import SignIn

MAX_RETRY_SECONDS = 300.0  # one Drive call never retries longer (nor longer than the message timeout)
_LIMITERS: dict[float, QuotaLimiter] = {}
_LIMITERS_LOCK = threading.Lock()
_PACERS: dict[tuple[str, float], WritePacer] = {}


def shared_write_pacer(email: str, per_second: float) -> WritePacer | None:
    """One write pacer per account and process (Drive's write limit is per account)."""
    if per_second <= 0:
        return None
    with _LIMITERS_LOCK:
        return _PACERS.setdefault((canonical_email(email), per_second), WritePacer(per_second))


def shared_limiter(units_per_min: float | None) -> QuotaLimiter | None:
    """One quota pacer per process (the quota is per user, and a process acts as one user)."""
    if not units_per_min:
        return None
    with _LIMITERS_LOCK:
        return _LIMITERS.setdefault(units_per_min, QuotaLimiter(units_per_min))


def drive_api(
    email: str, options: DriveOptions, *, retry: RetryPolicy, limiter: QuotaLimiter | None = None
) -> tuple[DriveApi, str]:
    """The one place credentials are chosen: a Drive URL and no credentials mean the fake Drive.

    Returns the API and where its credentials came from (for ``doctor``). On a fake Drive the
    credentials are a refresh token for ``email`` and the fake's token endpoint, so access tokens
    are fetched, expire and are refreshed as they are with Google.
    """
    from syft_flwr_gdrive.transport.drive.auth import fake_drive_credentials
    from syft_flwr_gdrive.transport.drive.auth import load_credentials

    chosen = options.credentials_file
    writes = shared_write_pacer(email, options.writes_per_s)
    if options.url and not chosen:
        fake = fake_drive_credentials(options.url, email)
        sign_in = SignIn("fake", options.url)
        api = DriveApi(fake, base_url=options.url, limiter=limiter, retry=retry, sign_in=sign_in, writes=writes)
        return api, f"fake Drive at {options.url}: no credentials needed"
    credentials = load_credentials(
        token_file=options.token_file, service_account_file=options.service_account_file, use_adc=not chosen
    )
    api = DriveApi(
        credentials, base_url=options.url, limiter=limiter, retry=retry, sign_in=sign_in_for(options), writes=writes
    )
    return api, f"loaded from {chosen or 'Application Default Credentials'}"


def sign_in_for(options: DriveOptions) -> SignIn:
    """Where ``load_credentials`` takes a participant's credentials from, for these options (its order)."""
    from syft_flwr_gdrive.transport.drive.auth import in_colab

    if options.token_file:
        return SignIn("token_file", str(options.token_file))
    if options.service_account_file:
        return SignIn("service_account", str(options.service_account_file))
    return SignIn("colab") if in_colab() else SignIn("adc")


def verified_api(settings: Settings, options: DriveOptions) -> DriveApi:
    """The API a participant runs with (see :func:`drive_api`); its account must be ``settings.email``."""
    from syft_flwr_gdrive.transport.drive.auth import verify_account

    retry = RetryPolicy(max_total=min(MAX_RETRY_SECONDS, settings.msg_timeout))
    api, _source = drive_api(settings.email, options, retry=retry, limiter=shared_limiter(options.quota_units_per_min))
    verify_account(api, settings.email)
    return api


def diagnose(settings: Settings) -> list[Check]:
    """Credentials, scopes, Drive reachability and the account; stops at the first blocker."""
    from syft_flwr_gdrive.transport.drive.auth import SCOPES
    from syft_flwr_gdrive.transport.drive.auth import CredentialsError

    quick = RetryPolicy(max_attempts=3, max_total=10.0, initial_wait=0.5)  # a check should answer fast
    checks: list[Check] = []
    try:
        options = DriveOptions.from_settings(settings)
        api, source = drive_api(settings.email, options, retry=quick)
    except ConfigError as exc:
        return [Check("settings", False, str(exc), "fix the setting named above")]
    except CredentialsError as exc:
        return [Check("credentials", False, str(exc), "see the text above")]
    checks.append(Check("credentials", True, source))
    granted = set(getattr(api.credentials, "scopes", None) or [])
    if granted and not granted & set(SCOPES):
        checks.append(Check("scopes", False, f"granted {sorted(granted)}", f"log in again with the scope {SCOPES[0]}"))
        return checks
    try:
        account = api.about_me()
    except DriveSignInRefused as exc:  # the first call refreshes the sign-in: Google may refuse it for good
        checks.append(Check("sign-in", False, " ".join(p for p in (exc.headline, exc.why) if p), exc.fix))
        return checks
    except DriveError as exc:
        checks.append(
            Check(
                "drive",
                False,
                f"Drive did not answer: {exc}",
                "check the network, SYFT_FLWR_DRIVE_URL, and that the Drive API is enabled for the project",
            )
        )
        return checks
    checks.append(Check("drive", True, f"reachable ({options.url or 'www.googleapis.com'})"))
    if not same_account(account, settings.email):  # gmail: Drive reports the form the account registered
        checks.append(
            Check(
                "account",
                False,
                f"the credentials are for {account}, but SYFTBOX_EMAIL is {settings.email}",
                f"set SYFTBOX_EMAIL={account} or log in as {settings.email}",
            )
        )
    else:
        checks.append(Check("account", True, f"credentials belong to {account}"))
    return checks
