"""``doctor``: check a participant's set-up step by step and say what to fix (the transport adds its own checks)."""

from __future__ import annotations

from collections.abc import Mapping

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.transport.contract import Check
from syft_flwr_gdrive.transport.registry import transport_class

__all__ = ["Check", "run_checks"]


def run_checks(environ: Mapping[str, str] | None = None, **overrides: object) -> list[Check]:
    """Settings, my keys, then the transport's own checks (for Drive: credentials, reachability,
    account, scopes); stops at the first blocker."""
    checks: list[Check] = []
    try:
        # overrides are Settings fields by name (the CLI's options); from_env validates each value
        settings = Settings.from_env(environ, **overrides)  # type: ignore[arg-type]
        transport = transport_class(settings.transport)
    except ConfigError as exc:
        return [Check("settings", False, str(exc), "fix the setting named above")]
    detail = (
        f"SYFTBOX_EMAIL={settings.email}, transport {settings.transport}, "
        f"poll {settings.poll_interval}s, timeout {settings.msg_timeout}s"
    )
    checks.append(Check("settings", True, detail))
    checks.append(_key_check(settings))
    return checks + transport.diagnose(settings)


def _key_check(settings: Settings) -> Check:
    """My key fingerprint: what a peer compares when it asks whether a changed key is really mine."""
    from syft_flwr_gdrive.crypto.failures import CryptoError
    from syft_flwr_gdrive.ops.key_files import keys_file
    from syft_flwr_gdrive.ops.key_files import my_fingerprint

    if not settings.encryption:
        return Check("keys", True, "end-to-end encryption is OFF (SYFT_FLWR_ENCRYPTION_ENABLED=false)")
    try:
        fingerprint = my_fingerprint(settings)
    except CryptoError as exc:
        return Check("keys", False, str(exc), "restore the key file from a backup")
    if fingerprint is None:
        return Check("keys", True, f"no keys yet; made on the first run in {keys_file(settings).parent}")
    return Check(
        "keys", True, f"my key fingerprint {fingerprint} (peers see this; `syft-flwr-gdrive trust` lists theirs)"
    )
