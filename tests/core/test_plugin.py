import pytest

from syft_flwr_gdrive.base.config import ConfigError
from syft_flwr_gdrive.base.config import ProjectConfig
from syft_flwr_gdrive.base.config import Settings
from syft_flwr_gdrive.transport.contract import Transport
from syft_flwr_gdrive.transport.drive.transport import DriveTransport
from syft_flwr_gdrive.transport.registry import available_transports
from syft_flwr_gdrive.transport.registry import create_transport
from syft_flwr_gdrive.transport.registry import transport_class


def test_p2p_is_found_by_name_through_its_entry_point():
    assert "p2p" in available_transports()
    assert transport_class("p2p") is DriveTransport


def test_unknown_transport_lists_what_is_installed():
    with pytest.raises(ConfigError, match=r"No transport named 'carrier-pigeon'.*installed: .*p2p"):
        transport_class("carrier-pigeon")


def test_transport_comes_from_project_pyproject(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.syft_flwr]\ntransport = "carrier-pigeon"\n')
    settings = Settings.from_env({"SYFTBOX_EMAIL": "a@x.com"}, project=ProjectConfig.load(tmp_path))
    assert settings.transport == "carrier-pigeon"
    with pytest.raises(ConfigError, match="carrier-pigeon"):
        create_transport(settings)


def test_drive_transport_satisfies_the_contract(mocker):
    assert isinstance(DriveTransport(mocker.Mock(), "a@x.com"), Transport)


def test_an_entry_point_that_is_not_a_transport_is_refused_by_name(monkeypatch):
    from importlib.metadata import EntryPoint

    from syft_flwr_gdrive.transport import registry as plugin

    fake = EntryPoint(name="bogus", value="builtins:object", group=plugin.GROUP)
    monkeypatch.setattr(plugin, "available_transports", lambda: {"bogus": fake})
    with pytest.raises(ConfigError, match=r"'bogus' \(builtins:object\) is not a subclass of .*Transport"):
        transport_class("bogus")


def test_dir_is_registered_too():
    from syft_flwr_gdrive.transport.directory import DirectoryTransport

    assert transport_class("dir") is DirectoryTransport
