"""The Drive transport's own options: endpoint, credentials, quota and write pacing.

They are not shared ``Settings`` (another transport has no use for them): each is read
from ``settings.transport_options``, i.e. from ``SYFT_FLWR_<NAME>`` (``SYFT_FLWR_DRIVE_URL``,
``SYFT_FLWR_TOKEN_FILE``, ``SYFT_FLWR_SERVICE_ACCOUNT_FILE``, ``SYFT_FLWR_QUOTA_UNITS_PER_MIN``,
``SYFT_FLWR_DRIVE_WRITES_PER_S``) or from ``Settings.from_env(transport_options={...})``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.base.config import option_env
from syft_flwr_gdrive.base.config import positive_float
from syft_flwr_gdrive.transport.drive.ratelimit import WRITES_PER_SECOND
from syft_flwr_gdrive.transport.drive.ratelimit import units_for

DRIVE_URL, TOKEN_FILE, SERVICE_ACCOUNT_FILE, QUOTA, WRITES = (
    "drive_url",
    "token_file",
    "service_account_file",
    "quota_units_per_min",
    "drive_writes_per_s",
)
POLL_QUOTA_SHARE = 0.25  # with quota pacing: polls alone use at most this share of the budget


@dataclass(frozen=True)
class DriveOptions:
    url: str | None = None  # a Drive API base URL (the fake's); None: Google's
    token_file: Path | None = None  # OAuth authorized-user token JSON
    service_account_file: Path | None = None  # service-account key JSON
    quota_units_per_min: float | None = None  # client-side pacing below this per-user quota; None: none
    writes_per_s: float = WRITES_PER_SECOND  # this account's writes paced below this rate; 0: not paced

    @classmethod
    def from_settings(cls, settings: Settings) -> DriveOptions:
        given = settings.transport_options

        def path(name: str) -> Path | None:
            return Path(str(given[name])).expanduser() if given.get(name) else None

        quota = given.get(QUOTA)
        writes = given.get(WRITES)
        return cls(
            url=str(given[DRIVE_URL]) if given.get(DRIVE_URL) else None,
            token_file=path(TOKEN_FILE),
            service_account_file=path(SERVICE_ACCOUNT_FILE),
            quota_units_per_min=(
                positive_float(quota, option_env(QUOTA), unit="Drive quota units per minute", example="100000")
                if quota
                else None
            ),
            writes_per_s=_writes_per_s(writes) if writes not in (None, "") else WRITES_PER_SECOND,
        )

    @property
    def credentials_file(self) -> Path | None:
        """The token or service-account file chosen, if any (none: the fake with a URL, else ADC)."""
        return self.token_file or self.service_account_file

    def min_poll_gap(self) -> float:
        """Seconds between polls (``files.list``) so that polling alone stays within its share of the quota."""
        if not self.quota_units_per_min:
            return 0.0
        return 60.0 * units_for("files.list") / (POLL_QUOTA_SHARE * self.quota_units_per_min)


def _writes_per_s(raw: object) -> float:
    """``SYFT_FLWR_DRIVE_WRITES_PER_S``: writes per second, 0 for no pacing."""
    if str(raw).strip() in ("0", "0.0", "off"):
        return 0.0
    if not isinstance(raw, (str, int, float)):
        raise ConfigError(f"{option_env(WRITES)}={raw!r} is not a number of writes per second")
    return positive_float(raw, option_env(WRITES), unit="writes per second", example=str(WRITES_PER_SECOND))
