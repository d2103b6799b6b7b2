"""Drive-only options are the Drive transport's, not shared Settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.transport.drive.options import DriveOptions


def settings(**env: str) -> Settings:
    return Settings.from_env({"SYFTBOX_EMAIL": "a@x.com", **env})


def test_drive_options_come_from_their_variables():
    s = settings(
        SYFT_FLWR_DRIVE_URL="http://127.0.0.1:1/",
        SYFT_FLWR_TOKEN_FILE="~/t.json",
        SYFT_FLWR_QUOTA_UNITS_PER_MIN="8000",
        SYFT_FLWR_MSG_TIMEOUT="5",
    )
    assert not hasattr(s, "drive_url") and "msg_timeout" not in s.transport_options
    options = DriveOptions.from_settings(s)
    assert options == DriveOptions(
        url="http://127.0.0.1:1/", token_file=Path("~/t.json").expanduser(), quota_units_per_min=8000.0
    )
    assert options.credentials_file == options.token_file
    assert options.min_poll_gap() == pytest.approx(60 * 100 / (0.25 * 8000))  # polls: a quarter of the quota
    assert DriveOptions.from_settings(settings()).min_poll_gap() == 0.0


def test_overrides_add_to_the_environments_options():
    s = Settings.from_env(
        {"SYFTBOX_EMAIL": "a@x.com", "SYFT_FLWR_TOKEN_FILE": "/t.json"}, transport_options={"drive_url": "http://h/"}
    )
    assert DriveOptions.from_settings(s) == DriveOptions(url="http://h/", token_file=Path("/t.json"))


def test_a_bad_quota_names_its_variable():
    with pytest.raises(ConfigError, match="SYFT_FLWR_QUOTA_UNITS_PER_MIN='lots' is not a number.*quota units"):
        DriveOptions.from_settings(settings(SYFT_FLWR_QUOTA_UNITS_PER_MIN="lots"))
