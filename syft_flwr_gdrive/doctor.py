"""``doctor``: check a participant's set-up step by step and say what to fix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from syft_flwr_gdrive.config import ConfigError, Settings


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def run_checks(environ: Mapping[str, str] | None = None, **overrides: object) -> list[Check]:
    """Settings, credentials, Drive reachability, account match and scopes; stops at the first blocker."""
    from syft_flwr_gdrive.drive.api import DriveApi
    from syft_flwr_gdrive.drive.auth import SCOPES, CredentialsError, load_credentials
    from syft_flwr_gdrive.drive.errors import DriveError
    from syft_flwr_gdrive.drive.retry import RetryPolicy

    quick = RetryPolicy(max_attempts=3, max_total=10.0, initial_wait=0.5)  # a check should answer fast

    checks: list[Check] = []
    try:
        settings = Settings.from_env(environ, **overrides)  # type: ignore[arg-type]
    except ConfigError as exc:
        return [Check("settings", False, str(exc), "fix the setting named above")]
    checks.append(Check("settings", True, f"SYFTBOX_EMAIL={settings.email}, poll {settings.poll_interval}s, timeout {settings.msg_timeout}s"))
    checks.append(_key_check(settings))

    fake = bool(settings.drive_url) and not (settings.token_file or settings.service_account_file)
    try:
        if fake:
            api = DriveApi.for_fake(settings.drive_url, settings.email, retry=quick)  # type: ignore[arg-type]
            checks.append(Check("credentials", True, f"fake Drive at {settings.drive_url}: no credentials needed"))
        else:
            creds = load_credentials(
                token_file=settings.token_file, service_account_file=settings.service_account_file,
                use_adc=not (settings.token_file or settings.service_account_file),
            )
            source = settings.token_file or settings.service_account_file or "Application Default Credentials"
            checks.append(Check("credentials", True, f"loaded from {source}"))
            granted = set(getattr(creds, "scopes", None) or [])
            if granted and not granted & set(SCOPES):
                checks.append(Check("scopes", False, f"granted {sorted(granted)}", f"log in again with the scope {SCOPES[0]}"))
                return checks
            api = DriveApi(creds, base_url=settings.drive_url, retry=quick)
    except CredentialsError as exc:
        checks.append(Check("credentials", False, str(exc), "see the text above"))
        return checks

    try:
        account = api.about_me()
    except DriveError as exc:
        checks.append(Check("drive", False, f"Drive did not answer: {exc}",
                            "check the network, SYFT_FLWR_DRIVE_URL, and that the Drive API is enabled for the project"))
        return checks
    checks.append(Check("drive", True, f"reachable ({settings.drive_url or 'www.googleapis.com'})"))
    from syft_flwr_gdrive.accounts import same_account

    if not same_account(account, settings.email):  # gmail: Drive reports the form the account registered
        checks.append(Check("account", False, f"the credentials are for {account}, but SYFTBOX_EMAIL is {settings.email}",
                            f"set SYFTBOX_EMAIL={account} or log in as {settings.email}"))
    else:
        checks.append(Check("account", True, f"credentials belong to {account}"))
    return checks


def _key_check(settings: Settings) -> Check:
    """My key fingerprint: what a peer compares when it asks whether a changed key is really mine."""
    from syft_flwr_gdrive.crypto import CryptoError
    from syft_flwr_gdrive.trust import keys_file, my_fingerprint

    if not settings.encryption:
        return Check("keys", True, "end-to-end encryption is OFF (SYFT_FLWR_ENCRYPTION_ENABLED=false)")
    try:
        fingerprint = my_fingerprint(settings)
    except CryptoError as exc:
        return Check("keys", False, str(exc), "restore the key file from a backup")
    if fingerprint is None:
        return Check("keys", True, f"no keys yet; made on the first run in {keys_file(settings).parent}")
    return Check("keys", True, f"my key fingerprint {fingerprint} (peers see this; `syft-flwr-gdrive trust` lists theirs)")
