from pathlib import Path

import pytest

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.config import ProjectConfig
from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.base.config import validate_email


@pytest.mark.parametrize("email", ["a_b@x.com", "a.b+c@x.co.uk", "o'neil@example.com", " Mixed@Case.COM "])
def test_valid_emails_are_normalised(email):
    assert validate_email(email) == email.strip().lower()


@pytest.mark.parametrize("email", ["", "nobody", "a@b", "a b@c.com", "a@b@c.com", "a/b@c.com"])
def test_invalid_emails_name_the_variable(email):
    with pytest.raises(ConfigError, match="SYFTBOX_EMAIL"):
        validate_email(email)


def test_missing_email_says_how_to_set_it():
    with pytest.raises(ConfigError, match="export SYFTBOX_EMAIL="):
        Settings.from_env({})


def test_defaults_and_env():
    s = Settings.from_env({"SYFTBOX_EMAIL": "a@x.com"})
    assert (s.msg_timeout, s.poll_interval, s.transport, s.msg_timeout_explicit) == (120.0, 3.0, "p2p", False)
    s = Settings.from_env({"SYFTBOX_EMAIL": "a@x.com", "SYFT_FLWR_MSG_TIMEOUT": "30", "SYFT_FLWR_POLL_INTERVAL": "0.5"})
    assert (s.msg_timeout, s.poll_interval, s.msg_timeout_explicit) == (30.0, 0.5, True)


def test_message_limit_defaults_to_2_gib_and_admits_a_1_gib_model():
    s = Settings.from_env({"SYFTBOX_EMAIL": "a@x.com"})
    assert s.max_message_bytes == 2048 * 1024 * 1024 > 1024**3 + 1024**3 // 65536 * 16
    s = Settings.from_env({"SYFTBOX_EMAIL": "a@x.com", "SYFT_FLWR_MAX_MESSAGE_MB": "1.5"})
    assert s.max_message_bytes == 1536 * 1024


@pytest.mark.parametrize("value", ["abc", "0", "0.5", "-3", "nan", "inf"])
def test_bad_message_limits_name_the_variable(value):
    with pytest.raises(ConfigError, match="SYFT_FLWR_MAX_MESSAGE_MB"):
        Settings.from_env({"SYFTBOX_EMAIL": "a@x.com", "SYFT_FLWR_MAX_MESSAGE_MB": value})


def test_blob_part_size_defaults_to_64_mib_and_reaches_the_mailbox(tmp_path):
    from syft_flwr_gdrive.flower.app_mailbox import open_mailbox
    from syft_flwr_gdrive.flower.shared_blobs import BlobPlacer
    from syft_flwr_gdrive.transport.memory import MemoryHub
    from syft_flwr_gdrive.transport.memory import MemoryTransport

    assert Settings.from_env({"SYFTBOX_EMAIL": "a@x.com"}).blob_part_bytes == 64 * 1024 * 1024
    s = Settings.from_env({"SYFTBOX_EMAIL": "a@x.com", "SYFT_FLWR_BLOB_PART_MB": "8"}, state_dir=tmp_path)
    box = open_mailbox(s, MemoryTransport("a@x.com", MemoryHub()), "demo", ["b@x.com"])
    assert BlobPlacer(box).part_bytes == 8 * 1024 * 1024  # the placer rounds it up to whole chunks per blob


@pytest.mark.parametrize("value", ["abc", "0", "0.5", "-3", "nan", "inf"])
def test_bad_blob_part_sizes_name_the_variable_and_an_example(value):
    with pytest.raises(ConfigError, match=r"SYFT_FLWR_BLOB_PART_MB=.*e\.g\. SYFT_FLWR_BLOB_PART_MB=64"):
        Settings.from_env({"SYFTBOX_EMAIL": "a@x.com", "SYFT_FLWR_BLOB_PART_MB": value})


@pytest.mark.parametrize("value", ["abc", "-1", "0", "inf", "nan"])
def test_bad_numbers_are_rejected(value):
    with pytest.raises(ConfigError, match="SYFT_FLWR_POLL_INTERVAL"):
        Settings.from_env({"SYFTBOX_EMAIL": "a@x.com", "SYFT_FLWR_POLL_INTERVAL": value})


def test_env_beats_project_beats_default(tmp_path: Path):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.syft_flwr]\napp_name = "x"\naggregator = "DS@x.com"\ndatasites = ["a@x.com"]\n'
        'transport = "p2p"\nmsg_timeout = 50\npoll_interval = 1.5\n'
    )
    project = ProjectConfig.load(tmp_path)
    assert project.aggregator == "ds@x.com" and project.datasites == ("a@x.com",)
    s = Settings.from_env({"SYFTBOX_EMAIL": "ds@x.com"}, project=project)
    assert (s.msg_timeout, s.poll_interval, s.aggregator) == (50.0, 1.5, "ds@x.com")
    s = Settings.from_env({"SYFTBOX_EMAIL": "ds@x.com", "SYFT_FLWR_MSG_TIMEOUT": "9"}, project=project)
    assert s.msg_timeout == 9.0


def test_project_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match="bootstrap"):
        ProjectConfig.load(tmp_path)
    (tmp_path / "pyproject.toml").write_text("[tool.syft_flwr\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        ProjectConfig.load(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.syft_flwr]\ndatasites = ["not-an-email"]\n')
    with pytest.raises(ConfigError, match="datasites"):
        ProjectConfig.load(tmp_path)
